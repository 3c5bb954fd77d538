#!/usr/bin/env python3
"""bench_summary: turn bench/tlshub-bench's raw runs into the comparison.

    bench_summary.py RAWDIR [--rounds N --conns N --mib N --data N]
                     [--status FILE] [--out SUMMARY.json]

RAWDIR holds tlshub-bench JSON files named CASE-KIND-ROUND.json (CASE:
plain, secured, ceiling; KIND: echo, bulk). Latency percentiles are taken
over every successful connection of every round (nearest rank, as
tlshub-bench does); throughput is the median of the rounds' bulk runs.
Prints a table and the ratios; writes them as JSON with --out.
"""

import argparse
import glob
import json
import os
import statistics
import sys
import time


def kernel_desc():
    """Which kernel the VMs ran (TLSHUB_KERNEL, set by `make bench*`)."""
    if os.environ.get("TLSHUB_KERNEL", "test") == "bench":
        return "benchmark kernel (kernel/bench.config: no sanitizers or lock debugging)"
    return "KASAN/lockdep/kmemleak test kernel"

CASES = ("plain", "secured", "ceiling")


def pct(values, p):
    if not values:
        return None
    v = sorted(values)
    rank = max(1, min(len(v), -(-len(v) * p // 100)))
    return v[int(rank) - 1]


def load(raw, case, kind):
    """Each run's JSON, with the kernel's busy CPU time around it (the
    run's `.cpu.json`, if any) as `busy_cs`."""
    runs = []
    for path in sorted(glob.glob(os.path.join(raw, f"{case}-{kind}-*.json"))):
        if path.endswith(".cpu.json"):
            continue
        with open(path) as f:
            run = json.load(f)
        cpu = path[:-len(".json")] + ".cpu.json"
        if os.path.exists(cpu):
            with open(cpu) as f:
                run["busy_cs"] = json.load(f)["busy_cs"]
        runs.append(run)
    return runs


def cpu_per_gbit(runs):
    """Busy CPU seconds of the kernel per Gbit the runs moved."""
    runs = [r for r in runs if "busy_cs" in r]
    bits = sum(r["total_bytes_sent"] for r in runs) * 8
    return round(sum(r["busy_cs"] for r in runs) / 100 / (bits / 1e9), 3) if bits else None


def case_summary(raw, case):
    echo, bulk = load(raw, case, "echo"), load(raw, case, "bulk")
    rr_runs, bulk4 = load(raw, case, "rr"), load(raw, case, "bulk4")
    # Each run's own p50/p99 (its first round trip, which keys the flow,
    # is not among them).
    rr_p50 = [r["rr_ms"]["p50"] for r in rr_runs if r.get("rr_ms")]
    rr_p99 = [r["rr_ms"]["p99"] for r in rr_runs if r.get("rr_ms")]
    mbps4 = [r["aggregate_throughput_mbps"] for r in bulk4 if r["successful_connections"] == 4]
    rows = [c for r in echo for c in r["connections"] if c["state"] == "success"]
    lat = [c["connection_latency_ms"] for c in rows]
    fb = [c["first_byte_ms"] for c in rows if c["first_byte_ms"] is not None]
    mbps = [r["avg_throughput_mbps"] for r in bulk if r["successful_connections"] == 1]
    return {
        "echo_runs": len(echo),
        "connections": sum(r["total_connections"] for r in echo),
        "failed_connections": sum(r["failed_connections"] + r["timeout_connections"] for r in echo),
        "connect_ms": {"p50": pct(lat, 50), "p99": pct(lat, 99),
                       "avg": statistics.fmean(lat) if lat else None},
        "first_byte_ms": {"p50": pct(fb, 50), "p99": pct(fb, 99),
                          "avg": statistics.fmean(fb) if fb else None},
        "connections_per_second": [r["connections_per_second"] for r in echo],
        "bulk_runs": len(bulk),
        "bulk_failed": sum(1 for r in bulk if r["successful_connections"] != 1),
        "bulk_mbps": mbps,
        "bulk_mbps_median": statistics.median(mbps) if mbps else None,
        "client_cpu_percent_bulk": [r["cpu_percent"] for r in bulk],
        "rr_runs": len(rr_runs),
        "rr_failed": sum(1 for r in rr_runs if r["successful_connections"] != 1),
        # Medians over the runs of each run's p50/p99.
        "rr_ms": {"p50": statistics.median(rr_p50) if rr_p50 else None,
                  "p99": statistics.median(rr_p99) if rr_p99 else None},
        "bulk4_runs": len(bulk4),
        "bulk4_failed": sum(1 for r in bulk4 if r["successful_connections"] != 4),
        "bulk4_mbps": mbps4,
        "bulk4_mbps_median": statistics.median(mbps4) if mbps4 else None,
        "cpu_seconds_per_gbit": {"bulk": cpu_per_gbit(bulk), "bulk4": cpu_per_gbit(bulk4)},
    }


def ratio(a, b):
    return round(a / b, 3) if a is not None and b else None


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("raw")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--conns", type=int)
    ap.add_argument("--mib", type=int)
    ap.add_argument("--data", type=int)
    ap.add_argument("--rr", type=int)
    ap.add_argument("--topology", choices=("one", "two"), default="two")
    ap.add_argument("--status")
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    cases = {c: case_summary(a.raw, c) for c in CASES}
    p, s, c = cases["plain"], cases["secured"], cases["ceiling"]
    ratios = {
        "secured_over_plain_first_byte_p50": ratio(s["first_byte_ms"]["p50"], p["first_byte_ms"]["p50"]),
        "secured_over_plain_first_byte_p99": ratio(s["first_byte_ms"]["p99"], p["first_byte_ms"]["p99"]),
        "secured_over_plain_connect_p50": ratio(s["connect_ms"]["p50"], p["connect_ms"]["p50"]),
        "secured_over_plain_connect_p99": ratio(s["connect_ms"]["p99"], p["connect_ms"]["p99"]),
        "ceiling_over_plain_first_byte_p50": ratio(c["first_byte_ms"]["p50"], p["first_byte_ms"]["p50"]),
        "secured_over_ceiling_throughput": ratio(s["bulk_mbps_median"], c["bulk_mbps_median"]),
        "secured_over_plain_throughput": ratio(s["bulk_mbps_median"], p["bulk_mbps_median"]),
        "ceiling_over_plain_throughput": ratio(c["bulk_mbps_median"], p["bulk_mbps_median"]),
        "secured_over_plain_rr_p50": ratio(s["rr_ms"]["p50"], p["rr_ms"]["p50"]),
        "secured_over_plain_rr_p99": ratio(s["rr_ms"]["p99"], p["rr_ms"]["p99"]),
        "secured_over_ceiling_rr_p50": ratio(s["rr_ms"]["p50"], c["rr_ms"]["p50"]),
        "secured_over_ceiling_throughput_4_flows": ratio(s["bulk4_mbps_median"], c["bulk4_mbps_median"]),
        "secured_over_plain_throughput_4_flows": ratio(s["bulk4_mbps_median"], p["bulk4_mbps_median"]),
    }
    f = lambda v, d=2: "-" if v is None else f"{v:.{d}f}"
    out = sys.stdout.write
    where = "one kernel serving both nodes" if a.topology == "one" else "two nodes, two kernels"
    out(f"\n== tlshub-bench, {where} (TCG VMs, {kernel_desc()}: compare ratios)\n")
    out(f"   {a.rounds} rounds; echo: {a.conns} connections x {a.data} B per round and case; "
        f"rr: {a.rr} round trips; bulk: {a.mib} MiB, 1 and 4 flows\n\n")
    out(f"{'case':<9} {'connect p50/p99 ms':>20} {'first byte p50/p99 ms':>23} {'rr p50/p99 ms':>16} "
        f"{'bulk Mbps':>10} {'4 flows':>8} {'CPU s/Gbit':>11}  failed\n")
    for name, v in cases.items():
        failed = v['failed_connections'] + v['bulk_failed'] + v['rr_failed'] + v['bulk4_failed']
        out(f"{name:<9} {f(v['connect_ms']['p50']) + ' / ' + f(v['connect_ms']['p99']):>20} "
            f"{f(v['first_byte_ms']['p50']) + ' / ' + f(v['first_byte_ms']['p99']):>23} "
            f"{f(v['rr_ms']['p50'], 3) + ' / ' + f(v['rr_ms']['p99'], 3):>16} "
            f"{f(v['bulk_mbps_median'], 1):>10} {f(v['bulk4_mbps_median'], 1):>8} "
            f"{f(v['cpu_seconds_per_gbit']['bulk'], 1):>11}  {failed}\n")
    out("\nratios\n")
    out(f"  secured / plain, connect -> first byte:  p50 x{f(ratios['secured_over_plain_first_byte_p50'], 3)}, "
        f"p99 x{f(ratios['secured_over_plain_first_byte_p99'], 3)}\n")
    out(f"  secured / plain, connect() latency:      p50 x{f(ratios['secured_over_plain_connect_p50'], 3)}, "
        f"p99 x{f(ratios['secured_over_plain_connect_p99'], 3)}\n")
    out(f"  secured / plain, request/response:       p50 x{f(ratios['secured_over_plain_rr_p50'], 3)}, "
        f"p99 x{f(ratios['secured_over_plain_rr_p99'], 3)} (secured / ceiling p50 "
        f"x{f(ratios['secured_over_ceiling_rr_p50'], 3)})\n")
    out(f"  secured / ceiling, bulk throughput:      x{f(ratios['secured_over_ceiling_throughput'], 3)}, "
        f"4 flows x{f(ratios['secured_over_ceiling_throughput_4_flows'], 3)}\n")
    out(f"  secured / plain, bulk throughput:        x{f(ratios['secured_over_plain_throughput'], 3)}\n")
    out(f"  (ceiling / plain: first byte p50 x{f(ratios['ceiling_over_plain_first_byte_p50'], 3)}, "
        f"throughput x{f(ratios['ceiling_over_plain_throughput'], 3)})\n")
    if a.out:
        summary = {
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "setup": {"rounds": a.rounds, "echo_connections_per_round": a.conns, "echo_bytes": a.data,
                      "bulk_mib": a.mib, "rr_round_trips": a.rr, "cipher": "aes-128-gcm (TLS 1.3)",
                      "topology": a.topology,
                      "vms": ("one QEMU TCG VM, 2 vCPUs, " if a.topology == "one"
                              else "two QEMU TCG VMs, 1 vCPU each, ") + kernel_desc()},
            "cases": cases,
            "ratios": ratios,
        }
        with open(a.out, "w") as fh:
            json.dump(summary, fh, indent=1)
            fh.write("\n")
        out(f"\nsummary: {os.path.relpath(a.out)}; raw runs: {os.path.relpath(a.raw)}/\n")
    bad = sum(v["failed_connections"] + v["bulk_failed"] + v["rr_failed"] + v["bulk4_failed"]
              for v in cases.values())
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
