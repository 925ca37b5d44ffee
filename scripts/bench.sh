#!/usr/bin/env bash
# Reproduces BENCHMARKS.md's project figures: builds the release binaries, installs the public
# peers (socat, OpenBSD netcat) if they are missing, and measures them with `upcase bench` and
# pipe mode against `nc -N`. Extra arguments go to scripts/bench.py, e.g. --rounds 5 --pin.
#
# Everything here runs from this repository alone; idle memory is scripts/idle_mem.py. The
# cross-check against the C references in ../shared/bench/ (compare.py, loadgen.c) is external:
# those programs are not part of this repository (see BENCHMARKS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v socat >/dev/null || need+=(socat)
command -v nc >/dev/null || need+=(netcat-openbsd)
command -v taskset >/dev/null || need+=(util-linux)
if ((${#need[@]})); then
    apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi
cargo build --release --locked
echo "# $(nproc) CPUs: $(lscpu | sed -n 's/^Model name: *//p'); kernel $(uname -r); load: $(cut -d' ' -f1-3 /proc/loadavg)"
exec python3 scripts/bench.py "$@"
