#!/usr/bin/env bash
# User-space instructions per message of an upcased build, which machine noise does not move.
#
#   scripts/callgrind-per-msg.sh BIN PORT "LOADGEN ARGS" [EXTRA SERVER ARGS...]
#   scripts/callgrind-per-msg.sh target/release/upcased 24501 "-c 1000 -s 64"
#   scripts/callgrind-per-msg.sh target/release/upcased 24502 "-c 100 -s 64" --admin 127.0.0.1:24503
#
# Runs BIN --listen 127.0.0.1:PORT --workers 1 [EXTRA...] under callgrind with the
# instrumentation off, switches it on just before ../shared/bench/loadgen runs for 4 s (no
# warm-up, so connection set-up is counted) and off when it ends, and prints the program's
# total instructions (every thread) divided by loadgen's all_msgs. Needs valgrind and gcc.
set -euo pipefail
(($# >= 3)) || { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
bin=$1 port=$2 load=$3
shift 3
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${SHARED_BENCH:-$root/../shared/bench}
for tool in valgrind callgrind_control callgrind_annotate gcc; do
    command -v "$tool" >/dev/null || { echo "callgrind-per-msg.sh: $tool not found" >&2; exit 1; }
done
out=$(mktemp -d /tmp/callgrind-per-msg.XXXXXX)
trap 'rm -rf "$out"' EXIT
gcc -O2 -o "$out/loadgen" "$shared/loadgen.c"

valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out/cg.%p" \
    "$bin" --listen "127.0.0.1:$port" --workers 1 "$@" 2>"$out/valgrind.log" &
pid=$!
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.2
done
sleep 1
callgrind_control -i on "$pid" >/dev/null 2>&1
res=$("$out/loadgen" -h 127.0.0.1 -p "$port" -w 0 -d 4 $load)
callgrind_control -i off "$pid" >/dev/null 2>&1
kill -INT "$pid"
wait "$pid" || true

msgs=$(tr ' ' '\n' <<<"$res" | sed -n 's/^all_msgs=//p')
ir=$(callgrind_annotate "$out"/cg.* 2>/dev/null |
    awk '/PROGRAM TOTALS/ && !done { gsub(",", "", $1); print $1; done = 1 }')
[[ -n $msgs && $msgs -gt 0 && -n $ir ]] || { echo "callgrind-per-msg.sh: no figures ($res)" >&2; exit 1; }
echo "ir=$ir msgs=$msgs ir_per_msg=$((ir / msgs))"
