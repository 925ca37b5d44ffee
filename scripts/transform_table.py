#!/usr/bin/env python3
"""Prints the transform's throughput table for BENCHMARKS.md from the last
`cargo bench --bench transform` run: criterion's median time per iteration of each sample,
as MB/s of input (MB = 10^6 B), with the ratios to std's `str::to_uppercase` from the same run.

    cargo bench --bench transform && python3 scripts/transform_table.py
"""
import json
import os
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target", "criterion")
SAMPLES = ["german", "russian", "cjk_emoji", "greek_polytonic", "mixed_scripts", "ascii"]
FUNCS = ["upcase_push", "upcase_in_place", "std_to_uppercase", "make_ascii_uppercase"]


def mb_per_s(sample, func):
    d = os.path.join(ROOT, sample, func, "new")
    try:
        with open(os.path.join(d, "benchmark.json")) as f:
            size = json.load(f)["throughput"]["Bytes"]
        with open(os.path.join(d, "estimates.json")) as f:
            ns = json.load(f)["median"]["point_estimate"]
    except (OSError, KeyError, ValueError):
        return None
    return size / ns * 1e3


def main():
    rows = []
    for s in SAMPLES:
        v = {fn: mb_per_s(s, fn) for fn in FUNCS}
        if all(x is None for x in v.values()):
            continue
        rows.append((s, v))
    if not rows:
        sys.exit("no criterion results under target/criterion: run `cargo bench --bench transform` first")
    fmt = lambda x: "–" if x is None else f"{x:,.0f}"
    ratio = lambda a, b: "–" if a is None or b is None else f"{a / b:.1f}×"
    print("| sample (64 KiB) | `push` MB/s | `push_in_place` MB/s | std MB/s | "
          "`make_ascii_uppercase` MB/s | `push` ÷ std | `push_in_place` ÷ std |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for s, v in rows:
        p, ip, std, asc = (v[fn] for fn in FUNCS)
        print(f"| {s} | {fmt(p)} | {fmt(ip)} | {fmt(std)} | {fmt(asc)} | {ratio(p, std)} | {ratio(ip, std)} |")


if __name__ == "__main__":
    main()
