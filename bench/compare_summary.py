#!/usr/bin/env python3
"""compare_summary: turn bench/compare's raw runs into the issue-8 comparison.

    compare_summary.py RAWDIR --cases "plain tlshub ..." [--rounds N --conns N
                       --mib N --data N] [--out SUMMARY.json]

RAWDIR holds tlshub-bench JSON files named CASE-KIND-ROUND.json (KIND: echo,
bulk) and CASE-bulkcpu-ROUND.txt (node 1's CPU busy % during that bulk run).
Throughput per case is the median of its rounds; each throughput ratio is
given two ways: ratio of the medians, and the median of the per-round ratios
(both cases measured back to back in the same round, so drift cancels).
Latency percentiles are over every successful connection of every round
(nearest rank, as tlshub-bench does); connections/s is the median of the
rounds. Connection setup is connect() -> first echoed byte (a tlshub flow
carries data only once keyed, so the key wait is inside it). The
per-connection handshake cases (openssl, boringssl) are compared with
tlshub as slowdowns (MODE / tlshub latency, tlshub / MODE connections/s,
also per round) against the >= 10x goal. Prints a table and the ratios against the goals; writes JSON with
--out. Exit 1 if any connection failed.
"""

import argparse
import glob
import json
import os
import re
import statistics
import sys
import time

from bench_summary import kernel_desc, pct, ratio  # same directory: the issue-7 bench's helpers

GOALS = {
    # name: (numerator, denominator, metric, comparison, bound, text)
    "tlshub_over_wireguard_throughput": ("tlshub", "wireguard", "bulk", ">=", 1.0,
                                         "TLSHUB throughput >= WireGuard's"),
    "tlshub_over_proxy_throughput": ("tlshub", "proxy", "bulk", ">=", 2.0,
                                     "TLSHUB throughput >= 2x the userspace proxy's"),
    "tlshub_over_plain_first_byte_p50": ("tlshub", "plain", "fb50", "<=", 1.2,
                                         "TLSHUB connection setup within 1.2x of plain TCP (p50)"),
    "tlshub_over_plain_first_byte_p99": ("tlshub", "plain", "fb99", "<=", 1.2,
                                         "TLSHUB connection setup within 1.2x of plain TCP (p99)"),
    "plain_over_tlshub_connections_per_second": ("plain", "tlshub", "cps", "<=", 1.2,
                                                 "TLSHUB connections/s within 1.2x of plain TCP"),
}
# TLSHUB connection setup >= 10x faster than the per-connection handshake
# modes (the goal names OpenSSL; BoringSSL is held to the same bound).
for _m, _M in (("openssl", "OPENSSL"), ("boringssl", "BORINGSSL")):
    GOALS[f"{_m}_over_tlshub_first_byte_p50"] = (
        _m, "tlshub", "fb50", ">=", 10.0, f"TLSHUB connection setup >= 10x faster than {_M} mode (p50)")
    GOALS[f"{_m}_over_tlshub_first_byte_p99"] = (
        _m, "tlshub", "fb99", ">=", 10.0, f"TLSHUB connection setup >= 10x faster than {_M} mode (p99)")
    GOALS[f"tlshub_over_{_m}_connections_per_second"] = (
        "tlshub", _m, "cps", ">=", 10.0, f"TLSHUB connections/s >= 10x {_M} mode's")


def rounds_of(raw, case, kind):
    out = {}
    for path in glob.glob(os.path.join(raw, f"{case}-{kind}-*.json")):
        m = re.search(r"-(\d+)\.json$", path)
        with open(path) as f:
            out[int(m.group(1))] = json.load(f)
    return out


def echo_cps(raw, case):
    """{round: connections/s} of a case's echo runs."""
    return {k: r["connections_per_second"] for k, r in rounds_of(raw, case, "echo").items()}


def case_summary(raw, case):
    echo, bulk = rounds_of(raw, case, "echo"), rounds_of(raw, case, "bulk")
    rows = [c for r in echo.values() for c in r["connections"] if c["state"] == "success"]
    lat = [c["connection_latency_ms"] for c in rows]
    fb = [c["first_byte_ms"] for c in rows if c["first_byte_ms"] is not None]
    mbps = {k: r["avg_throughput_mbps"] for k, r in bulk.items() if r["successful_connections"] == 1}
    cps = [echo[k]["connections_per_second"] for k in sorted(echo)]
    cpu = {}
    for path in glob.glob(os.path.join(raw, f"{case}-bulkcpu-*.txt")):
        m = re.search(r"-(\d+)\.txt$", path)
        with open(path) as f:
            cpu[int(m.group(1))] = int(f.read().strip())
    return {
        "echo_runs": len(echo),
        "connections": sum(r["total_connections"] for r in echo.values()),
        "failed_connections": sum(r["failed_connections"] + r["timeout_connections"] for r in echo.values()),
        "connect_ms": {"p50": pct(lat, 50), "p99": pct(lat, 99),
                       "avg": statistics.fmean(lat) if lat else None},
        "first_byte_ms": {"p50": pct(fb, 50), "p99": pct(fb, 99),
                          "avg": statistics.fmean(fb) if fb else None},
        "connections_per_second": cps,
        "connections_per_second_median": statistics.median(cps) if cps else None,
        "bulk_runs": len(bulk),
        "bulk_failed": sum(1 for r in bulk.values() if r["successful_connections"] != 1),
        "bulk_mbps_by_round": {str(k): mbps[k] for k in sorted(mbps)},
        "bulk_mbps_median": statistics.median(mbps.values()) if mbps else None,
        "client_cpu_percent_bulk": [bulk[k]["cpu_percent"] for k in sorted(bulk)],
        "node1_cpu_busy_percent_bulk": [cpu[k] for k in sorted(cpu)],
    }


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("raw")
    ap.add_argument("--cases", required=True)
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--conns", type=int)
    ap.add_argument("--mib", type=int)
    ap.add_argument("--data", type=int)
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    names = a.cases.split()
    cases = {c: case_summary(a.raw, c) for c in names}

    def tput(num, den):
        n, d = cases.get(num), cases.get(den)
        if not n or not d:
            return None, []
        nr, dr = n["bulk_mbps_by_round"], d["bulk_mbps_by_round"]
        per = [round(nr[k] / dr[k], 3) for k in sorted(nr, key=int) if k in dr and dr[k]]
        return ratio(n["bulk_mbps_median"], d["bulk_mbps_median"]), per

    ratios, per_round = {}, {}
    for num, den in [("tlshub", "plain"), ("tlshub", "wireguard"), ("tlshub", "proxy"),
                     ("tlshub-chacha", "wireguard"), ("tlshub-chacha", "proxy"),
                     ("tlshub-chacha", "tlshub"), ("wireguard", "plain"), ("proxy", "plain")]:
        if num in cases and den in cases:
            key = f"{num.replace('-', '_')}_over_{den}_throughput"
            ratios[key], per = tput(num, den)
            per_round[key] = per
            ratios[key + "_median_of_rounds"] = statistics.median(per) if per else None
    for c in names:
        if c == "plain" or not cases[c]["echo_runs"] or not cases["plain"]["echo_runs"]:
            continue
        k = c.replace("-", "_")
        s, p = cases[c], cases["plain"]
        ratios[f"{k}_over_plain_first_byte_p50"] = ratio(s["first_byte_ms"]["p50"], p["first_byte_ms"]["p50"])
        ratios[f"{k}_over_plain_first_byte_p99"] = ratio(s["first_byte_ms"]["p99"], p["first_byte_ms"]["p99"])
        ratios[f"{k}_over_plain_connect_p50"] = ratio(s["connect_ms"]["p50"], p["connect_ms"]["p50"])
        ratios[f"{k}_over_plain_connections_per_second"] = ratio(
            s["connections_per_second_median"], p["connections_per_second_median"])
    t, p = cases.get("tlshub"), cases.get("plain")
    if t and p and t["echo_runs"] and p["echo_runs"]:
        ratios["plain_over_tlshub_connections_per_second"] = ratio(
            p["connections_per_second_median"], t["connections_per_second_median"])
    setup_per_round = {}
    for m in ("openssl", "boringssl"):
        s = cases.get(m)
        if not (t and s and t["echo_runs"] and s["echo_runs"]):
            continue
        ratios[f"{m}_over_tlshub_first_byte_p50"] = ratio(s["first_byte_ms"]["p50"], t["first_byte_ms"]["p50"])
        ratios[f"{m}_over_tlshub_first_byte_p99"] = ratio(s["first_byte_ms"]["p99"], t["first_byte_ms"]["p99"])
        ratios[f"{m}_over_tlshub_connect_p50"] = ratio(s["connect_ms"]["p50"], t["connect_ms"]["p50"])
        key = f"tlshub_over_{m}_connections_per_second"
        ratios[key] = ratio(t["connections_per_second_median"], s["connections_per_second_median"])
        tr, sr = echo_cps(a.raw, "tlshub"), echo_cps(a.raw, m)
        setup_per_round[key] = [round(tr[k] / sr[k], 3) for k in sorted(tr) if k in sr and sr[k]]
        ratios[key + "_median_of_rounds"] = (statistics.median(setup_per_round[key])
                                            if setup_per_round[key] else None)

    goals = {}
    for key, (num, den, metric, cmp, bound, text) in GOALS.items():
        v = ratios.get(key)
        met = None if v is None else (v >= bound if cmp == ">=" else v <= bound)
        goals[key] = {"goal": f"{cmp} {bound}", "measured": v, "met": met, "what": text}

    f = lambda v, d=2: "-" if v is None else f"{v:.{d}f}"
    out = sys.stdout.write
    out(f"\n== bench/compare, two nodes (TCG VMs, {kernel_desc()}: compare ratios)\n")
    out(f"   {a.rounds} interleaved rounds; bulk: {a.mib} MiB, one connection; "
        f"echo: {a.conns} connections x {a.data} B per round and case\n\n")
    out(f"{'case':<14} {'bulk Mbps (median)':>18} {'per round':>24} {'n1 CPU %':>10} "
        f"{'connect p50/p99 ms':>20} {'first byte p50/p99 ms':>23} {'conn/s':>7}  failed\n")
    for name, v in cases.items():
        rounds = ", ".join(f(x, 1) for x in v["bulk_mbps_by_round"].values())
        cpu = ",".join(str(x) for x in v["node1_cpu_busy_percent_bulk"])
        out(f"{name:<14} {f(v['bulk_mbps_median'], 1):>18} {rounds:>24} {cpu:>10} "
            f"{f(v['connect_ms']['p50']) + ' / ' + f(v['connect_ms']['p99']):>20} "
            f"{f(v['first_byte_ms']['p50']) + ' / ' + f(v['first_byte_ms']['p99']):>23} "
            f"{f(v['connections_per_second_median'], 1):>7}  {v['failed_connections'] + v['bulk_failed']}\n")
    out("\nthroughput ratios (ratio of medians; median of per-round ratios; per round)\n")
    for key, per in per_round.items():
        out(f"  {key:<44} x{f(ratios[key], 3)}  x{f(ratios[key + '_median_of_rounds'], 3)}  "
            f"[{', '.join(f(x, 3) for x in per)}]\n")
    out("\nconnection setup ratios (over plain TCP)\n")
    for key, v in ratios.items():
        if "_over_plain_" in key and "throughput" not in key:
            out(f"  {key:<44} x{f(v, 3)}\n")
    if setup_per_round or "openssl_over_tlshub_first_byte_p50" in ratios:
        out("\nconnection setup, per-connection handshake modes vs tlshub (slowdown of MODE)\n")
        for key, v in ratios.items():
            if key.startswith(("openssl_over_tlshub_", "boringssl_over_tlshub_")) or key in setup_per_round:
                per = setup_per_round.get(key)
                out(f"  {key:<44} x{f(v, 3)}"
                    + (f"  median of rounds x{f(ratios[key + '_median_of_rounds'], 3)}  "
                       f"[{', '.join(f(x, 3) for x in per)}]" if per else "") + "\n")
    out("\nissue-8 goals\n")
    for key, g in goals.items():
        state = "n/a" if g["met"] is None else ("met" if g["met"] else "NOT met")
        out(f"  {g['what']:<66} goal {g['goal']:<8} measured x{f(g['measured'], 3)}  {state}\n")
    if a.out:
        summary = {
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "setup": {
                "rounds": a.rounds, "bulk_mib": a.mib, "echo_connections_per_round": a.conns,
                "echo_bytes": a.data, "cases": names,
                "ciphers": {
                    "tlshub": "kTLS TLS 1.3 AES-128-GCM (tlshub's default), secret from tlshubd (mutual TLS 1.3)",
                    "tlshub-chacha": "kTLS TLS 1.3 ChaCha20-Poly1305 (tlshubctl cipher set on both kernels)",
                    "proxy": "stunnel4 pair, TLS 1.3 TLS_AES_128_GCM_SHA256, mutual certificates, "
                             "client in pod x1's netns, server in node 2's netns forwarding to pod y1",
                    "wireguard": "kernel WireGuard (ChaCha20-Poly1305) between the nodes, pods w1/w2 routed via wg0, MTU 1420",
                    "plain": "unmapped pods x1 -> y1, no encryption",
                    "openssl": "a1 -> b1, tlshubctl mode set openssl on both kernels: per flow, a full "
                               "mutual TLS 1.3 handshake between the nodes' tlshub-worker-openssl "
                               "(driven by tlshubd), exported secret pushed by both agents "
                               "(flow-key-set); then kTLS TLS 1.3 AES-128-GCM",
                    "boringssl": "the same with tlshub-worker-boring (BoringSSL)",
                },
                "vms": "two QEMU TCG VMs, 1 vCPU each, " + kernel_desc() + ", 2-core host",
            },
            "cases": cases,
            "ratios": ratios,
            "throughput_ratios_per_round": per_round,
            "setup_ratios_per_round": setup_per_round,
            "goals": goals,
        }
        checks = os.path.join(a.raw, "checks.txt")
        if os.path.exists(checks):
            with open(checks) as fh:
                summary["checks"] = fh.read().splitlines()
        with open(a.out, "w") as fh:
            json.dump(summary, fh, indent=1)
            fh.write("\n")
        out(f"\nsummary: {os.path.relpath(a.out)}; raw runs: {os.path.relpath(a.raw)}/\n")
    bad = sum(v["failed_connections"] + v["bulk_failed"] for v in cases.values())
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
