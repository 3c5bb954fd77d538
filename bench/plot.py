#!/usr/bin/python3
"""bench/plot.py: the README's plots from `make bench`'s results (Debian's
python3-matplotlib; `scripts/setup bench` installs it). Run on the host.

  setup-latency.png   connect -> first echoed byte, one CDF per case, for
                      each topology (bench/results/raw-one, raw): the
                      per-connection cost of keying a flow
  throughput.png      bulk Mbit/s per case, one flow and four flows, for
                      each topology (the *-node-summary.json medians)
  rr-latency.png      request/response round trip p50 and p99 per case

A topology without results is left out; with none at all, it says so.
"""
import glob
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RES = os.environ.get("BENCH_RESULTS") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
CASES = ("plain", "secured", "ceiling")
TOPOS = (("one", "raw-one", "one kernel, two nodes"), ("two", "raw", "two kernels (two VMs)"))


def first_bytes(raw, case):
    v = []
    for path in glob.glob(os.path.join(raw, f"{case}-echo-*.json")):
        with open(path) as f:
            v += [c["first_byte_ms"] for c in json.load(f)["connections"]
                  if c["state"] == "success" and c["first_byte_ms"] is not None]
    return sorted(v)


def bars(topos, name, title, ylabel, series):
    """One bar chart per topology: per case, a bar for each (label, value
    of the case's summary) in `series`."""
    fig, axes = plt.subplots(1, len(topos), figsize=(6 * len(topos), 4.2), squeeze=False)
    for ax, (_, _, label, summ) in zip(axes[0], topos):
        xs = range(len(CASES))
        for k, (what, value) in enumerate(series):
            off = (k - (len(series) - 1) / 2) * 0.4
            ax.bar([x + off for x in xs], [value(summ["cases"][c]) or 0 for c in CASES], 0.4, label=what)
        ax.set_xticks(list(xs), CASES)
        ax.set_ylabel(ylabel)
        ax.set_title(label)
        ax.legend()
    fig.suptitle(title + "\nTCG VMs, " + topos[0][3]["setup"]["vms"].split(", ", 2)[-1], fontsize=9)
    fig.tight_layout()
    fig.savefig(os.path.join(RES, name), dpi=110)


def main():
    topos = []
    for key, raw, label in TOPOS:
        summ = os.path.join(RES, f"{key}-node-summary.json")
        if os.path.exists(summ):
            with open(summ) as f:
                topos.append((key, os.path.join(RES, raw), label, json.load(f)))
    if not topos:
        sys.exit("bench/plot.py: no bench/results/*-node-summary.json (run make bench)")
    # "one QEMU TCG VM, 2 vCPUs, <kernel>": the kernel part is common.
    kernel = "TCG VMs, " + topos[0][3]["setup"]["vms"].split(", ", 2)[-1]

    fig, axes = plt.subplots(1, len(topos), figsize=(6 * len(topos), 4.2), squeeze=False)
    for ax, (_, raw, label, _) in zip(axes[0], topos):
        for case in CASES:
            v = first_bytes(raw, case)
            if v:
                ax.plot(v, [(i + 1) / len(v) for i in range(len(v))], label=f"{case} (n={len(v)})")
        ax.set_xscale("log")
        ax.set_xlabel("socket() -> first echoed byte (ms, log)")
        ax.set_ylabel("fraction of connections")
        ax.set_title(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle("Connection setup latency, 64-byte echo per connection\n" + kernel, fontsize=9)
    fig.tight_layout()
    fig.savefig(os.path.join(RES, "setup-latency.png"), dpi=110)

    bars(topos, "throughput.png", "Bulk throughput", "Mbit/s (median of rounds)",
         (("1 flow", lambda c: c["bulk_mbps_median"]), ("4 flows", lambda c: c.get("bulk4_mbps_median"))))
    bars(topos, "rr-latency.png", "Request/response on an established flow (64 B)", "round trip (ms)",
         (("p50", lambda c: c.get("rr_ms", {}).get("p50")), ("p99", lambda c: c.get("rr_ms", {}).get("p99"))))
    print("plots: bench/results/{setup-latency,throughput,rr-latency}.png")


if __name__ == "__main__":
    main()
