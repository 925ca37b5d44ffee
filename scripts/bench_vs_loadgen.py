#!/usr/bin/env python3
"""Interleaved rounds of loadgen.c and upcase bench against one upcased; medians and ratios.

usage: start `taskset -c 1 target/release/upcased --listen 127.0.0.1:7001 -q`, build
`gcc -O2 -o /tmp/loadgen ../shared/bench/loadgen.c`, then `python3 scripts/bench_vs_loadgen.py [ROUNDS]`.
"""
import json, os, re, statistics, subprocess, sys
PORT, ROUNDS, D, W = 7001, int(sys.argv[1]) if len(sys.argv) > 1 else 3, 3, 1
BIN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "target/release/upcase")
WORKLOADS = [(100, 64, 1), (1000, 64, 1), (100, 1024, 8), (4, 65536, 1)]
def timed(cmd):
    p = subprocess.run(["/usr/bin/time", "-f", "TIME %U %S", "taskset", "-c", "0"] + cmd,
                       capture_output=True, text=True)
    t = re.search(r"TIME ([\d.]+) ([\d.]+)", p.stderr)
    return p, float(t.group(1)) + float(t.group(2))
rows = []
for c, s, k in WORKLOADS:
    res = {"loadgen": [], "bench": []}
    for r in range(ROUNDS):
      for tool in (["loadgen", "bench"] if r % 2 == 0 else ["bench", "loadgen"]):
       if tool == "loadgen":
        p, cpu = timed(["/tmp/loadgen", "-h", "127.0.0.1", "-p", str(PORT), "-c", str(c), "-s", str(s),
                        "-P", str(k), "-d", str(D), "-w", str(W)])
        f = dict(kv.split("=") for kv in p.stdout.split())
        rate = float(f["msgs_per_s"])
        res["loadgen"].append((rate, float(f["p99_us"]), cpu / (rate * (D + W)) * 1e6, int(f["errors"])))
       else:
        p, cpu = timed([BIN, "-c", f"127.0.0.1:{PORT}", "bench", "--connections", str(c), "--size", str(s),
                        "--pipeline", str(k), "--duration", f"{D}s", "--warmup", f"{W}s", "--json"])
        j = json.loads(p.stdout)
        rate = j["msgs_per_s"]
        res["bench"].append((rate, j["latency_us"]["p99"], cpu / (rate * (D + W)) * 1e6,
                             sum(j["errors"].values())))
      print(c, s, k, r, "loadgen", res["loadgen"][-1], "bench", res["bench"][-1], flush=True)
    med = {t: [statistics.median(x[i] for x in v) for i in range(3)] + [sum(x[3] for x in v)]
           for t, v in res.items()}
    rows.append((c, s, k, med))
print()
print("| workload | loadgen.c msgs/s | upcase bench msgs/s | ratio | loadgen.c p99 µs | bench p99 µs | loadgen.c CPU µs/msg | bench CPU µs/msg | bench errors |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for c, s, k, m in rows:
    lg, b = m["loadgen"], m["bench"]
    print(f"| {c} conns × {s} B, pipeline {k} | {lg[0]:,.0f} | {b[0]:,.0f} | {b[0]/lg[0]:.2f} | {lg[1]:,.0f} | {b[1]:,.0f} | {lg[2]:.2f} | {b[2]:.2f} | {b[3]} |")
