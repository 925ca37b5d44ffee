#!/bin/sh
# Kernel entries per message of a server under one loadgen workload (issue 18): system calls,
# io_uring_enter and epoll_wait calls, and io_uring completions, counted by perf's
# tracepoints over the whole timed run (the server pinned to CPU 1, loadgen to CPU 0).
#
# usage: scripts/kernel-entries.sh PORT "LOADGEN ARGS" SERVER ARGV...   ({port} in ARGV is PORT)
# e.g.   scripts/kernel-entries.sh 2430 "-c 1000 -s 64" target/release/upcased --io uring --listen 127.0.0.1:{port}
#
# Needs perf, and the loadgen compare.py builds (/tmp/cmp-loadgen). Run it under the
# exclusive lock: flock -x /work/cpu.lock scripts/kernel-entries.sh ...
set -eu
port=$1 lg=$2
shift 2
argv=$(printf '%s\n' "$@" | sed "s/{port}/$port/g" | tr '\n' ' ')
# shellcheck disable=SC2086
setsid taskset -c 1 $argv >/dev/null 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT
i=0
until python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.5).close()" 2>/dev/null; do
    i=$((i + 1)); [ "$i" -lt 100 ] || { echo "server did not start" >&2; exit 1; }
    sleep 0.05
done
out=$(mktemp)
# Count only the timed window: loadgen warms up for 0.5 s (-w), perf starts with it and
# stops with loadgen, so the counts cover the warm-up too; per message uses all_msgs, which
# counts warm-up messages as well.
# shellcheck disable=SC2086
perf stat -x, -o "$out" -p "$pid" \
    -e raw_syscalls:sys_enter -e syscalls:sys_enter_io_uring_enter \
    -e syscalls:sys_enter_epoll_wait -e syscalls:sys_enter_epoll_pwait \
    -e io_uring:io_uring_complete \
    -- taskset -c 0 /tmp/cmp-loadgen -p "$port" -d 3 -w 0.5 $lg >"$out.lg"
python3 - "$out" "$out.lg" <<'EOF'
import sys
counts = {}
for line in open(sys.argv[1]):
    f = line.strip().split(",")
    if len(f) > 2 and f[0].replace(".", "").isdigit():
        counts[f[2]] = float(f[0])
lg = dict(kv.split("=") for kv in open(sys.argv[2]).read().split())
msgs = float(lg["all_msgs"])
sc = counts.get("raw_syscalls:sys_enter", 0)
ue = counts.get("syscalls:sys_enter_io_uring_enter", 0)
ew = counts.get("syscalls:sys_enter_epoll_wait", 0) + counts.get("syscalls:sys_enter_epoll_pwait", 0)
cq = counts.get("io_uring:io_uring_complete", 0)
print(f"msgs_per_s={lg['msgs_per_s']} msgs={msgs:.0f} syscalls_per_msg={sc / msgs:.3f} "
      f"uring_enter_per_msg={ue / msgs:.4f} epoll_wait_per_msg={ew / msgs:.4f} "
      f"cqes_per_msg={cq / msgs:.3f} cqes_per_enter={(cq / ue) if ue else 0:.2f}")
EOF
rm -f "$out" "$out.lg"
