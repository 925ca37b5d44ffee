#!/usr/bin/env bash
# Scale-out trial on loopback: three upcased instances behind HAProxy (deploy/haproxy.cfg),
# a load test through the balancer, a graceful stop of one instance in the middle of it, then
# a crash (kill -9) of another. Every claim of docs/DEPLOY.md's "several hosts" section is
# checked here; the script ends with one "N passed, M failed" line and exits 1 on a failure.
#
#   scripts/scale-out.sh                  # builds the release binaries first
#   UPCASED=path UPCASE=path scripts/scale-out.sh
#   scripts/scale-out.sh --balancer nginx # the same through deploy/nginx-stream.conf
#
# Options: --balancer haproxy|nginx (default haproxy), --duration DUR of each bench window
# (default 10s; whole seconds), --connections N (default 100), --keep (keep the work
# directory with every log and report).
#
# Needs: haproxy (or nginx with the stream module), curl, jq. Uses the addresses and ports
# written in deploy/*.cfg/.conf: 127.0.0.1:22770 (HAProxy), :22779 (its stats), :22780 (nginx),
# and 127.0.1.{1,2,3}:22771 (data) and :22772 (admin) for the instances. They sit below the
# kernel's ephemeral range (32768-60999 by default), so no client socket of an earlier round
# or of a test can hold one of them; still, run one trial at a time.
#
# Pass means, for the graceful round (SIGTERM of instance 2 halfway):
#   - bench reports zero wrong replies, resets, timeouts and connect failures;
#   - every instance served connections before the stop (bench's `banners`);
#   - the balancer marked instance 2 down within one check interval plus the check timeout;
#   - instance 2 exited 0 after its drain, within its deadline (no "cut a line" warning),
#     and bench reconnected the connections it closed: no more reconnects than instance 2
#     had connections, and no more messages sent again (the one in flight when the drain's
#     FIN crossed it, at --pipeline 1) than reconnects;
#   - restarted, instance 2 is back up in the balancer and gets new connections.
# and for the crash round (kill -9 of instance 3 halfway):
#   - wrong replies stay 0; only connections that instance 3 held may fail (errors at most
#     the connections it served), and the script prints how many did; the balancer closes
#     the others' client side with a FIN, so bench reconnects them (no more than instance 3
#     held) and sends again the message each had in flight (no more than reconnects);
#   - the balancer marked instance 3 down within one check interval plus the check timeout.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD

# ---- what this script reads from bench's --json report (one place to change) ----------------
JQ_WRONG='.errors.wrong_replies'
JQ_RESETS='.errors.resets'
JQ_TIMEOUTS='.errors.timeouts'
JQ_CONNECT_FAILURES='.errors.connect_failures'
JQ_RECONNECTS='.reconnects'
JQ_RETRIED='.retried'
# `banners`: banner text -> connections that got it. The banner is '{id} saw {client}', so
# the instance is the first word; the client part differs per connection.
JQ_PER_INSTANCE='[.banners // {} | to_entries[] | {id: (.key | split(" ")[0]), n: .value}]
                 | group_by(.id) | map({key: .[0].id, value: (map(.n) | add)}) | from_entries'

# ---- the layout, as in deploy/haproxy.cfg and deploy/nginx-stream.conf ----------------------
INSTANCES=(1 2 3)
data_addr() { echo "127.0.1.$1:22771"; }
admin_addr() { echo "127.0.1.$1:22772"; }
HAPROXY_FRONT=127.0.0.1:22770
HAPROXY_STATS=127.0.0.1:22779
NGINX_FRONT=127.0.0.1:22780
# inter 500ms + timeout check 1s (deploy/haproxy.cfg): the latest a failed check can end.
DOWN_WITHIN_MS=1500
# rise 2 × inter 500ms, plus the instance's start-up, with room for a loaded machine.
UP_WITHIN_MS=5000
DRAIN_DELAY=2s
BANNER='{id} saw {client}'

BALANCER=haproxy
DURATION=10
CONNECTIONS=100
KEEP=0
while [ $# -gt 0 ]; do
    case "$1" in
        --balancer) BALANCER=$2; shift 2 ;;
        --duration) DURATION=${2%s}; shift 2 ;;
        --connections) CONNECTIONS=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "scale-out: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$BALANCER" in
    haproxy) FRONT=$HAPROXY_FRONT; PROXY_VERSION=v2 ;;
    nginx) FRONT=$NGINX_FRONT; PROXY_VERSION=v1 ;;
    *) echo "scale-out: --balancer is haproxy or nginx, not $BALANCER" >&2; exit 2 ;;
esac
[[ "$DURATION" =~ ^[0-9]+$ && "$DURATION" -ge 2 ]] \
    || { echo "scale-out: --duration takes whole seconds, at least 2" >&2; exit 2; }

# ---- bookkeeping ---------------------------------------------------------------------------
PASSED=0
FAILED=0
ok() { PASSED=$((PASSED + 1)); echo "  ok: $*"; }
bad() { FAILED=$((FAILED + 1)); echo "  FAILED: $*"; }
check() { # check "what" COMMAND...: the command's status decides
    local what=$1; shift
    if "$@"; then ok "$what"; else bad "$what"; fi
}
die() { echo "scale-out: $*" >&2; FAILED=$((FAILED + 1)); exit 1; }
now_ms() { date +%s%3N; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/upcase-scale-out.XXXXXX")
declare -A PID=()
BALANCER_PID=
BENCH_PID=
cleanup() {
    local p
    for p in "${PID[@]}" $BALANCER_PID $BENCH_PID; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${PID[@]}" $BALANCER_PID $BENCH_PID; do
        wait "$p" 2>/dev/null || true
    done
    if [ "$KEEP" = 1 ] || [ "$FAILED" -gt 0 ]; then
        echo "scale-out: logs and reports kept in $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

# ---- preflight -----------------------------------------------------------------------------
for tool in curl jq "$BALANCER"; do
    command -v "$tool" >/dev/null || die "$tool not found (apt-get install ${tool/nginx/nginx-light libnginx-mod-stream})"
done
if [ -z "${UPCASED:-}" ] || [ -z "${UPCASE:-}" ]; then
    echo "scale-out: building release binaries"
    cargo build --release --locked --bins -q
    target=${CARGO_TARGET_DIR:-$ROOT/target}/release
    UPCASED=${UPCASED:-$target/upcased}
    UPCASE=${UPCASE:-$target/upcase}
fi
[ -x "$UPCASED" ] || die "no upcased at $UPCASED"
[ -x "$UPCASE" ] || die "no upcase at $UPCASE"
ports=$(for a in "$HAPROXY_FRONT" "$HAPROXY_STATS" "$NGINX_FRONT" "$(data_addr 1)" "$(admin_addr 1)"; do
    printf '%s|' "${a##*:}"
done)
taken=$(ss -Htln | awk '{print $4}' | grep -E ":(${ports%|})\$" || true)
[ -z "$taken" ] || die "ports already in use: $taken (a previous run still going?)"

# ---- instances -----------------------------------------------------------------------------
start_instance() { # start_instance N: starts it and waits until its /readyz says 200
    local n=$1
    "$UPCASED" --listen "$(data_addr "$n")" --admin "$(admin_addr "$n")" \
        --proxy-protocol "$PROXY_VERSION" --banner "$BANNER" \
        --drain-delay "$DRAIN_DELAY" --instance-id "$n" \
        >>"$WORK/upcased$n.log" 2>&1 &
    PID[$n]=$!
    local deadline=$(($(now_ms) + 10000))
    until curl -fsS -o /dev/null "http://$(admin_addr "$n")/readyz" 2>/dev/null; do
        if ! kill -0 "${PID[$n]}" 2>/dev/null; then
            tail -n 20 "$WORK/upcased$n.log" >&2
            die "upcased $n exited at start (log above)"
        fi
        [ "$(now_ms)" -lt "$deadline" ] || die "upcased $n not ready within 10 s"
        sleep 0.1
    done
}

# ---- balancer ------------------------------------------------------------------------------
start_balancer() {
    case "$BALANCER" in
        haproxy)
            HAPROXY_STATS_SOCKET=$WORK/haproxy.sock \
                haproxy -f "$ROOT/deploy/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
            BALANCER_PID=$!
            ;;
        nginx)
            local module=/usr/lib/nginx/modules/ngx_stream_module.so
            {
                [ -e "$module" ] && echo "load_module $module;"
                echo "pid $WORK/nginx.pid; daemon off; error_log stderr notice; events {}"
                echo "include $ROOT/deploy/nginx-stream.conf;"
            } >"$WORK/nginx.conf"
            nginx -e stderr -p "$WORK" -c "$WORK/nginx.conf" >"$WORK/nginx.log" 2>&1 &
            BALANCER_PID=$!
            ;;
    esac
    local deadline=$(($(now_ms) + 10000))
    until (exec 3<>"/dev/tcp/${FRONT%:*}/${FRONT#*:}") 2>/dev/null; do
        kill -0 "$BALANCER_PID" 2>/dev/null || { cat "$WORK/$BALANCER.log" >&2; die "$BALANCER exited"; }
        [ "$(now_ms)" -lt "$deadline" ] || die "$BALANCER not listening on $FRONT within 10 s"
        sleep 0.1
    done
}

# HAProxy's view of instance N: UP, DOWN, "UP 1/2" (rising), ... (the stats CSV's status).
server_status() {
    curl -fsS "http://$HAPROXY_STATS/;csv" 2>/dev/null \
        | awk -F, -v s="upcased$1" '$1 == "upcased" && $2 == s { print $18 }'
}
# wait_status N WANT WITHIN_MS: prints the milliseconds it took, or fails after WITHIN_MS
# (the wait itself goes on to twice that, so a slow transition is reported with its time).
wait_status() {
    local n=$1 want=$2 within=$3 start
    start=$(now_ms)
    while [ "$(server_status "$n")" != "$want" ]; do
        [ $(($(now_ms) - start)) -lt $((within * 2)) ] || { echo never; return 1; }
        sleep 0.05
    done
    local took=$(($(now_ms) - start))
    echo "$took"
    [ "$took" -le "$within" ]
}

# ---- bench ---------------------------------------------------------------------------------
start_bench() { # start_bench NAME: bench through the balancer in the background
    "$UPCASE" --connect "$FRONT" --timeout 5s bench --banner --reconnect \
        --connections "$CONNECTIONS" --duration "${DURATION}s" --warmup 1s --json \
        >"$WORK/$1.json" 2>"$WORK/$1.err" &
    BENCH_PID=$!
}
finish_bench() { # finish_bench NAME: waits; bench exits 1 when it counted errors
    local status=0
    wait "$BENCH_PID" || status=$?
    BENCH_PID=
    jq -e . "$WORK/$1.json" >/dev/null 2>&1 \
        || die "bench wrote no JSON report (status $status): $(tail -n 5 "$WORK/$1.err")"
}
field() { jq -r "$2 // 0" "$WORK/$1.json"; }
served_by() { jq -r "($JQ_PER_INSTANCE)[\"$2\"] // 0" "$WORK/$1.json"; }
halfway() { sleep $((1 + DURATION / 2)); } # warm-up, then half the window

# ---- the run -------------------------------------------------------------------------------
echo "scale-out: three instances behind $BALANCER, work directory $WORK"
for n in "${INSTANCES[@]}"; do start_instance "$n"; done
start_balancer
if [ "$BALANCER" = haproxy ]; then
    for n in "${INSTANCES[@]}"; do
        took=$(wait_status "$n" UP "$UP_WITHIN_MS") || die "instance $n never came UP in HAProxy"
    done
fi

echo "round 1: SIGTERM of instance 2 halfway through ${DURATION}s at $CONNECTIONS connections"
start_bench graceful
halfway
stopped_at=$(now_ms)
kill -TERM "${PID[2]}"
if [ "$BALANCER" = haproxy ]; then
    took=$(wait_status 2 DOWN "$DOWN_WITHIN_MS") \
        && ok "HAProxy marked instance 2 down ${took} ms after SIGTERM (bound ${DOWN_WITHIN_MS} ms)" \
        || bad "HAProxy marked instance 2 down after ${took} ms (bound ${DOWN_WITHIN_MS} ms)"
fi
status=0
wait "${PID[2]}" || status=$?
unset 'PID[2]'
check "instance 2 exited 0 after its drain (status $status, $(($(now_ms) - stopped_at)) ms after SIGTERM)" \
    test "$status" -eq 0
finish_bench graceful
for what in WRONG RESETS TIMEOUTS CONNECT_FAILURES; do
    path=JQ_$what
    value=$(field graceful "${!path}")
    check "graceful round: ${what,,} = $value (want 0)" test "$value" -eq 0
done
for n in "${INSTANCES[@]}"; do
    got=$(served_by graceful "$n")
    check "instance $n got $got connections (bench's banners; all three had some before the stop)" test "$got" -gt 0
done
reconnects=$(field graceful "$JQ_RECONNECTS")
retried=$(field graceful "$JQ_RETRIED")
held=$(served_by graceful 2)
check "bench reconnected the connections instance 2 closed: reconnects = $reconnects (0 < it <= $held)" \
    test "$reconnects" -gt 0 -a "$reconnects" -le "$held"
# The drain closes a connection at a line boundary; the next message may already be on its
# way, and bench sends it again on the new connection (docs/bench.md#reconnecting): at
# --pipeline 1, at most one per reconnect.
check "messages sent again after the drain's FIN: retried = $retried (<= reconnects)" \
    test "$retried" -le "$reconnects"
cut=$(grep -c 'cut a line in progress' "$WORK/upcased2.log" || true)
check "instance 2's drain cut no line ($cut warnings)" test "$cut" -eq 0

echo "restart of instance 2"
start_instance 2
if [ "$BALANCER" = haproxy ]; then
    took=$(wait_status 2 UP "$UP_WITHIN_MS") \
        && ok "instance 2 back UP in HAProxy after ${took} ms" \
        || bad "instance 2 not back UP within ${UP_WITHIN_MS} ms (${took})"
else
    sleep 5 # nginx shuns a failed server for fail_timeout (deploy/nginx-stream.conf)
fi
"$UPCASE" --connect "$FRONT" --timeout 5s bench --banner --connections 30 \
    --duration 1s --warmup 0 --json >"$WORK/rejoin.json" 2>"$WORK/rejoin.err" || true
got=$(served_by rejoin 2)
check "restarted instance 2 gets new connections ($got of 30)" test "$got" -gt 0

echo "round 2: kill -9 of instance 3 halfway"
start_bench crash
halfway
kill -KILL "${PID[3]}"
if [ "$BALANCER" = haproxy ]; then
    took=$(wait_status 3 DOWN "$DOWN_WITHIN_MS") \
        && ok "HAProxy marked instance 3 down ${took} ms after kill -9 (bound ${DOWN_WITHIN_MS} ms)" \
        || bad "HAProxy marked instance 3 down after ${took} ms (bound ${DOWN_WITHIN_MS} ms)"
fi
wait "${PID[3]}" 2>/dev/null || true
unset 'PID[3]'
finish_bench crash
wrong=$(field crash "$JQ_WRONG")
check "crash round: wrong replies = $wrong (want 0)" test "$wrong" -eq 0
failed=$(($(field crash "$JQ_RESETS") + $(field crash "$JQ_TIMEOUTS") \
    + $(field crash "$JQ_CONNECT_FAILURES")))
held=$(served_by crash 3)
echo "  crash round: $failed connections failed; instance 3 had served $held"
check "only instance 3's connections failed ($failed <= $held)" test "$failed" -le "$held"
check "instance 3 held connections when it was killed ($held)" test "$held" -gt 0
reconnects=$(field crash "$JQ_RECONNECTS")
retried=$(field crash "$JQ_RETRIED")
check "crash round: retried $retried <= reconnects $reconnects <= instance 3's $held" \
    test "$retried" -le "$reconnects" -a "$reconnects" -le "$held"

echo "scale-out: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
