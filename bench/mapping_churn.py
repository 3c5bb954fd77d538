#!/usr/bin/env python3
"""Mapping churn benchmark (inside tlshub's VM, module loaded; see
bench/mapping-churn). Not a test: it asserts nothing about times.

For each table size: load a table of that many pods (tlshubctl mapping load),
then time OPS single-pod map-add requests, then OPS map-del requests, each a
request/ack round trip on one netlink socket in this process. Then, with the
largest table loaded, time nlctrl CTRL_CMD_GETFAMILY ("tlshub") round trips
idle and while another process churns map-add/map-del on that table.
Prints per-op mean and p99 and the ratios largest/smallest table and
churn/idle."""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "vm"))
from nlfuzz import (A_POD, A_POD_NAME, MAP_ADD, MAP_DEL, P_IPV4, P_NAME, P_NODE, Sock, ip4,  # noqa: E402
                    nest, s, status)


def pod_add(i, prefix="bench"):
    return nest(A_POD, s(P_NAME, f"{prefix}-{i}"), s(P_NODE, f"node-{i % 50}"),
                ip4(P_IPV4, f"10.{200 + (i >> 16) % 50}.{i >> 8 & 255}.{i & 255}"))


def load_table(n):
    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
        for i in range(n):
            f.write(f"pod-{i} node-{i % 50} 10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255} "
                    f"fd00::{i >> 16:x}:{i & 0xffff:x}\n")
    t0 = time.perf_counter()
    subprocess.run(["tlshubctl", "mapping", "load", f.name], check=True, stdout=subprocess.DEVNULL)
    os.unlink(f.name)
    return time.perf_counter() - t0


def timed(fn, n):
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - t0)
    return out


def p99(xs):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(0.99 * (len(xs) - 1))))]


def ms(x):
    return f"{x * 1e3:9.3f}"


def churn():
    """Child mode: add and delete pods on the loaded table until killed."""
    sk, i = Sock(), 0
    while True:
        err, msg, _ = sk.request(MAP_ADD, pod_add(i, "churn"))
        assert err == 0, (err, msg)
        err, msg, _ = sk.request(MAP_DEL, s(A_POD_NAME, f"churn-{i}"))
        assert err == 0, (err, msg)
        i += 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100,100000", help="table sizes (pods), comma-separated")
    ap.add_argument("--ops", type=int, default=500, help="map-add and map-del requests per table size")
    ap.add_argument("--samples", type=int, default=300, help="nlctrl GETFAMILY round trips, idle and under churn")
    ap.add_argument("--prefix", default="", help="prefix for every output line (e.g. 'bench: ')")
    ap.add_argument("--churn", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--burn", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.burn:
        # Control: the same competition for the CPUs, no netlink at all.
        while True:
            pass
    if a.churn:
        churn()
    out = lambda line: print(f"{a.prefix}{line}", flush=True)
    sizes = [int(x) for x in a.sizes.split(",")]
    sk = Sock(timeout=60)
    rows = {}
    out(f"mapping churn: {a.ops} single-pod map-add then map-del per table size, one socket; times in ms")
    out(f"{'pods':>8} {'load s':>7} {'add mean':>9} {'add p99':>9} {'del mean':>9} {'del p99':>9}")
    for n in sizes:
        load = load_table(n)

        def add(i):
            err, msg, _ = sk.request(MAP_ADD, pod_add(i))
            assert err == 0, (err, msg)

        def dele(i):
            err, msg, _ = sk.request(MAP_DEL, s(A_POD_NAME, f"bench-{i}"))
            assert err == 0, (err, msg)
        adds, dels = timed(add, a.ops), timed(dele, a.ops)
        st = status(sk)
        assert st["pods"] == n, st
        rows[n] = (statistics.mean(adds), p99(adds), statistics.mean(dels), p99(dels))
        out(f"{n:>8} {load:7.2f} {ms(rows[n][0])} {ms(rows[n][1])} {ms(rows[n][2])} {ms(rows[n][3])}")
    lo, hi = min(sizes), max(sizes)
    if lo != hi:
        out(f"ratio {hi}/{lo} pods: add mean x{rows[hi][0] / rows[lo][0]:.2f}, del mean x{rows[hi][2] / rows[lo][2]:.2f}, "
            f"add p99 x{rows[hi][1] / rows[lo][1]:.2f}, del p99 x{rows[hi][3] / rows[lo][3]:.2f}")

    # nlctrl family lookups with the largest table loaded (it still is).
    ctl = Sock(timeout=60)
    idle = timed(lambda i: ctl.resolve("tlshub"), a.samples)

    def under(flag):
        child = subprocess.Popen([sys.executable, os.path.abspath(__file__), flag])
        time.sleep(0.5)
        xs = timed(lambda i: ctl.resolve("tlshub"), a.samples)
        child.kill()
        child.wait()
        if child.returncode not in (-9, 0):
            sys.exit(f"{flag} process failed ({child.returncode})")
        return xs

    # A CPU-bound process without netlink is the control: what is left
    # between it and the churn is contention on shared locks.
    burn = under("--burn")
    busy = under("--churn")
    out(f"nlctrl GETFAMILY with {hi} pods loaded, {a.samples} round trips; ms")
    out(f"{'':>8} {'mean':>9} {'p99':>9} {'max':>9}")
    for name, xs in (("idle", idle), ("cpu-burn", burn), ("churn", busy)):
        out(f"{name:>8} {ms(statistics.mean(xs))} {ms(p99(xs))} {ms(max(xs))}")
    out(f"ratio churn/idle: mean x{statistics.mean(busy) / statistics.mean(idle):.2f}, p99 x{p99(busy) / p99(idle):.2f}")
    out(f"ratio churn/cpu-burn: mean x{statistics.mean(busy) / statistics.mean(burn):.2f}, p99 x{p99(busy) / p99(burn):.2f}")


if __name__ == "__main__":
    main()
