#!/usr/bin/env bash
# User-space instructions per message of a server, which machine noise does not move.
#
#   scripts/callgrind-per-msg.sh BIN PORT "LOADGEN ARGS" [EXTRA SERVER ARGS...]
#   scripts/callgrind-per-msg.sh target/release/upcased 24501 "-c 1000 -s 64"
#   scripts/callgrind-per-msg.sh target/release/upcased 24502 "-c 100 -s 64" --io uring
#   scripts/callgrind-per-msg.sh --raw PORT "LOADGEN ARGS" SERVER ARGV...   ({port} in ARGV is PORT)
#   scripts/callgrind-per-msg.sh --raw 24503 "-c 100 -s 64" /tmp/cmp-uring-upcase {port} 1
#
# Runs BIN --listen 127.0.0.1:PORT --workers 1 [EXTRA...] (or, with --raw, SERVER ARGV as
# given) under callgrind with the instrumentation off, switches it on just before
# ../shared/bench/loadgen runs for 4 s (no warm-up, so connection set-up is counted) and off
# when it ends, dumps the counts and kills the server (valgrind may not deliver a signal to
# a server blocked in io_uring_enter), and prints the program's instructions (every thread)
# divided by loadgen's all_msgs. Needs valgrind and gcc.
set -euo pipefail
usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
if [[ ${1:-} == --raw ]]; then
    (($# >= 4)) || usage
    port=$2 load=$3
    shift 3
    server=("${@//\{port\}/$port}")
else
    (($# >= 3)) || usage
    bin=$1 port=$2 load=$3
    shift 3
    server=("$bin" --listen "127.0.0.1:$port" --workers 1 "$@")
fi
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${SHARED_BENCH:-$root/../shared/bench}
for tool in valgrind callgrind_control gcc; do
    command -v "$tool" >/dev/null || { echo "callgrind-per-msg.sh: $tool not found" >&2; exit 1; }
done
out=$(mktemp -d /tmp/callgrind-per-msg.XXXXXX)
trap 'kill -9 "${pid:-0}" 2>/dev/null || true; rm -rf "$out"' EXIT
gcc -O2 -o "$out/loadgen" "$shared/loadgen.c"

valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out/cg" \
    "${server[@]}" >/dev/null 2>"$out/valgrind.log" &
pid=$!
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.2
done
sleep 1
callgrind_control -i on "$pid" >/dev/null 2>&1
res=$("$out/loadgen" -h 127.0.0.1 -p "$port" -w 0 -d 4 $load)
callgrind_control -i off "$pid" >/dev/null 2>&1
# The dump request is served at the server's next event: connect until the dump is there.
(timeout 30 callgrind_control -d "$pid" >/dev/null 2>&1 &)
for _ in $(seq 100); do
    compgen -G "$out/cg.*" >/dev/null && break
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || true
    sleep 0.3
done
sleep 1
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true

msgs=$(tr ' ' '\n' <<<"$res" | sed -n 's/^all_msgs=//p')
ir=$(cat "$out"/cg.* 2>/dev/null | awk '/^totals:/ { s += $2 } END { if (s) print s }')
[[ -n $msgs && $msgs -gt 0 && -n $ir ]] || { echo "callgrind-per-msg.sh: no figures ($res)" >&2; exit 1; }
echo "ir=$ir msgs=$msgs ir_per_msg=$((ir / msgs))"
