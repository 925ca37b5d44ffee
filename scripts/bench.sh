#!/usr/bin/env bash
# Reproduces BENCHMARKS.md's project figures: builds the release binaries, installs the public
# peers (socat, OpenBSD netcat) if they are missing, and measures them with `upcase bench` and
# pipe mode against `nc -N`. Extra arguments go to scripts/bench.py, e.g. --rounds 5 --pin.
#
# The cross-check against the shared C references is separate:
#   python3 ../shared/bench/compare.py --pin --rounds 3 --project-bin target/release/upcased
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
