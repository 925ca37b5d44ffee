#!/usr/bin/env python3
"""Interleaved rounds of the shared load generator against the C epoll reference and `upcased`
(and optionally the naive tokio peer), pinned like compare.py (server on CPU 1, load on
CPU 0), reporting medians of msgs/s, server CPU per message, p50 and p99, and each server's
ratios to the C reference paired round by round. compare.py reports p99 only; this is for
the `1c-64B` p50 target, and for any workload that needs more rounds than a table of all.

    cargo build --release
    python3 scripts/interleaved.py --rounds 7 --load "-c 1 -s 64"
    python3 scripts/interleaved.py --rounds 9 --load "-c 4 -s 65536" --naive
    python3 scripts/interleaved.py --rounds 7 --variant "admin=--admin 127.0.0.1:0"
    python3 scripts/interleaved.py --rounds 7 --load "-c 1000 -s 64" --no-pin \
        --variant "reuse-port=--reuse-port"
    python3 scripts/interleaved.py --rounds 11 --load "-c 1000 -s 64" --no-ref \
        --base-bin /tmp/upcased-before        # an A/B of two builds, order alternating
    python3 scripts/interleaved.py --rounds 21 --load "-c 100 -s 64" --uring-ref \
        --project-args "--io uring"           # beside the C io_uring server too (needs liburing)
    python3 scripts/interleaved.py --rounds 31 --load "-c 1000 -s 64" --uring-ref --aa \
        --project-args "--io uring"           # and a second copy of it: the noise floor

The C programs are built from ../shared/bench/ into a temporary directory with gcc.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile

# the server helpers of scripts/bench.sh's driver: free ports, start pinned, stop, CPU time
from bench import free_port, session_cpu, start, stop, wait_port

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
SHARED = os.path.abspath(os.path.join(ROOT, "..", "shared", "bench"))


def build(tmp):
    lg, ref = os.path.join(tmp, "loadgen"), os.path.join(tmp, "epoll_upcase")
    subprocess.run(["gcc", "-O2", "-o", lg, os.path.join(SHARED, "loadgen.c")], check=True)
    subprocess.run(["gcc", "-O3", "-pthread", "-o", ref, os.path.join(SHARED, "epoll_upcase.c")], check=True)
    return lg, ref


def uring_ref(tmp):
    out = os.path.join(tmp, "uring_upcase")
    subprocess.run(["gcc", "-O3", "-pthread", "-o", out, os.path.join(SHARED, "uring_upcase.c"), "-luring"],
                   check=True)
    return out


def naive_bin():
    target = os.path.join(tempfile.gettempdir(), "cmp-naive-tokio-target")
    subprocess.run(["cargo", "build", "--release", "-q", "--locked", "--target-dir", target],
                   cwd=os.path.join(SHARED, "naive-tokio"), check=True)
    return os.path.join(target, "release", "naive-tokio")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--secs", default="2")
    ap.add_argument("--load", default="-c 1 -s 64", help="loadgen arguments (default: %(default)s)")
    ap.add_argument("--naive", action="store_true", help="also the naive tokio peer")
    ap.add_argument("--no-pin", action="store_true", help="let the scheduler place the server and the load")
    ap.add_argument("--project-bin", default=os.path.join(ROOT, "target", "release", "upcased"))
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=ARGS",
                    help="also upcased with these extra arguments, reported as NAME (repeatable)")
    ap.add_argument("--base-bin", metavar="PATH",
                    help="also this other build of upcased, reported as `base`, with upcased's "
                         "CPU per message paired against it round by round")
    ap.add_argument("--project-args", default="", metavar="ARGS",
                    help="extra arguments for upcased (and the base build), e.g. \"--io uring\"")
    ap.add_argument("--uring-ref", action="store_true",
                    help="also the C io_uring server of ../shared/bench (built with -luring), with "
                         "upcased's CPU per message paired against it round by round")
    ap.add_argument("--aa", action="store_true",
                    help="also a second copy of the C reference (of c-uring with --uring-ref), "
                         "paired against the first: an A/A control, the spread a ratio near 1 "
                         "has from noise alone")
    ap.add_argument("--no-ref", action="store_true",
                    help="leave out the C reference (ratios are then to the first server)")
    a = ap.parse_args()
    if not os.path.exists(a.project_bin):
        sys.exit(f"{a.project_bin} not found: run `cargo build --release` first")
    tmp = tempfile.mkdtemp(prefix="upcase-interleaved-")
    loadgen, ref = build(tmp)
    servers = [] if a.no_ref else [("c-epoll", [ref, "{port}", "1"])]
    if a.uring_ref:
        servers.append(("c-uring", [uring_ref(tmp), "{port}", "1"]))
    if a.aa:
        if a.no_ref and not a.uring_ref:
            sys.exit("--aa needs a C reference")
        control = "c-uring" if a.uring_ref else "c-epoll"
        servers.append((control + "#2", dict(servers)[control]))
    project_args = a.project_args.split()
    if a.base_bin:
        servers.append(("base", [a.base_bin, "--listen", "127.0.0.1:{port}"] + project_args))
    servers.append(("upcased", [a.project_bin, "--listen", "127.0.0.1:{port}"] + project_args))
    for v in a.variant:
        name, _, extra = v.partition("=")
        servers.append((name, [a.project_bin, "--listen", "127.0.0.1:{port}"] + extra.split()))
    if a.naive:
        servers.append(("naive-tokio", [naive_bin(), "127.0.0.1:{port}"]))
    res = {name: [] for name, _ in servers}
    for r in range(a.rounds):
        # every other round runs the servers in reverse order, so neither always goes first
        for name, cmd in (servers if r % 2 == 0 else servers[::-1]):
            port = free_port()
            p = start([c.replace("{port}", str(port)) for c in cmd], pin=not a.no_pin)
            try:
                if not wait_port(port):
                    sys.exit(f"{name} did not start on port {port}")
                c0 = session_cpu(p.pid)
                out = subprocess.run(([] if a.no_pin else ["taskset", "-c", "0"])
                                     + [loadgen, "-p", str(port), "-d", a.secs, "-w", "0.5"]
                                     + a.load.split(), capture_output=True, text=True, check=True)
                c1 = session_cpu(p.pid)
            finally:
                stop(p)
            d = {k: float(v) for k, v in (kv.split("=") for kv in out.stdout.split())}
            res[name].append({"msgs": d["msgs_per_s"], "cpu": (c1 - c0) * 1e6 / max(d["all_msgs"], 1),
                              "p50": d["p50_us"], "p99": d["p99_us"]})
    med = lambda xs, k: statistics.median(x[k] for x in xs)
    first = servers[0][0]
    base = res[first]
    print(f"# loadgen {a.load}, {a.rounds} interleaved rounds of {a.secs} s, "
          f"{'unpinned' if a.no_pin else 'pinned'}; medians "
          f"[paired ratio to {first}: msgs/s, CPU per message, p50]")
    print("| server | msgs/s | CPU-µs/msg | p50 µs | p99 µs | ratios |")
    print("|---|---:|---:|---:|---:|---|")
    for name, xs in res.items():
        ratio = lambda k: statistics.median(x[k] / y[k] for x, y in zip(xs, base))
        print(f"| {name} | {med(xs, 'msgs'):,.0f} | {med(xs, 'cpu'):.2f} | {med(xs, 'p50'):.1f} | "
              f"{med(xs, 'p99'):.1f} | {ratio('msgs'):.2f} / {ratio('cpu'):.2f} / {ratio('p50'):.2f} |")
        rounds = " ".join("%.1f" % x["p50"] for x in xs)
        print(f"| (p50 per round) | | | {rounds} | | |")
    pairs = [(v.partition("=")[0], "upcased") for v in a.variant]
    if a.base_bin:
        pairs.append(("upcased", "base"))
    if a.uring_ref:
        pairs.append(("upcased", "c-uring"))
    if a.aa:
        pairs += [("upcased", control + "#2"), (control + "#2", control)]
    for name, other in pairs:
        xs, ys = res[name], res[other]
        ratios = [x["cpu"] / y["cpu"] for x, y in zip(xs, ys)]
        print(f"# {name} vs {other}, CPU per message, paired by round: median "
              f"{statistics.median(ratios):.3f} (rounds: {' '.join('%.3f' % r for r in ratios)})")


if __name__ == "__main__":
    main()
