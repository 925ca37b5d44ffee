#!/usr/bin/env bash
# The TLS anchor of issue 16's comparison: stunnel4 (Debian's) in front of the C epoll
# reference, on loopback, with a generated ECDSA P-256 certificate (the key type
# `upcased --tls-self-signed` makes, so both sides pay for the same signatures).
#
#   scripts/tls-stunnel.sh [--smoke] [--pin CPU]
#
# Starts both, prints one line per server with its port and pid (both pids' CPU is the pair's
# server CPU), the CA file for clients, and waits until interrupted; then stops both.
# --smoke makes one round trip with `openssl s_client` and exits instead of waiting.
# --pin CPU puts both server processes on that CPU, as compare.py --pin does for the others.
#
# Ports come from STUNNEL_TLS_PORT (default 2391) and C_EPOLL_PORT (default 2390); the C
# reference is compiled to /tmp from ../shared/bench/epoll_upcase.c (or SHARED_BENCH).
#
# The measured comparison (this pair, `upcased --tls-listen` with the same kind of
# certificate, and plain `upcased`, pinned, in interleaved rounds; handshakes per second; idle
# memory per connection) is scripts/tls_compare.py; this script is for trying the pair by hand.
set -euo pipefail
cd "$(dirname "$0")/.."

smoke=0 pin=""
while (($#)); do
    case "$1" in
        --smoke) smoke=1 ;;
        --pin) pin="$2"; shift ;;
        -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "tls-stunnel.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

tls_port=${STUNNEL_TLS_PORT:-2391}
c_port=${C_EPOLL_PORT:-2390}
shared=${SHARED_BENCH:-../shared/bench}
[[ -f "$shared/epoll_upcase.c" ]] || shared=/work/shared/bench
[[ -f "$shared/epoll_upcase.c" ]] || { echo "tls-stunnel.sh: no epoll_upcase.c in $shared (set SHARED_BENCH)" >&2; exit 1; }

need=()
command -v stunnel4 >/dev/null || need+=(stunnel4)
command -v openssl >/dev/null || need+=(openssl)
command -v gcc >/dev/null || need+=(gcc)
if ((${#need[@]})); then
    apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi

work=$(mktemp -d /tmp/tls-stunnel.XXXXXX)
c_bin=/tmp/epoll_upcase
gcc -O3 -pthread -o "$c_bin" "$shared/epoll_upcase.c"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" \
    -addext basicConstraints=critical,CA:FALSE -addext extendedKeyUsage=serverAuth \
    -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null

cat >"$work/stunnel.conf" <<EOF
foreground = quiet
pid =
output = $work/stunnel.log
debug = warning
socket = l:TCP_NODELAY=1
socket = r:TCP_NODELAY=1

[upcase]
accept = 127.0.0.1:$tls_port
connect = 127.0.0.1:$c_port
cert = $work/cert.pem
key = $work/key.pem
sslVersionMin = TLSv1.2
EOF

pids=()
stop() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap stop EXIT
trap 'exit 130' INT TERM

run() {
    if [[ -n "$pin" ]]; then taskset -c "$pin" "$@" & else "$@" & fi
    pids+=($!)
}
run "$c_bin" "$c_port" 1
run stunnel4 "$work/stunnel.conf"

# Wait until stunnel accepts: it is the outer of the two.
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$tls_port") 2>/dev/null && break
    sleep 0.05
done

echo "c-epoll    127.0.0.1:$c_port  pid ${pids[0]}"
echo "stunnel    127.0.0.1:$tls_port  pid ${pids[1]}  (TLS, forwards to c-epoll)"
echo "ca         $work/cert.pem  (key $work/key.pem)"

if ((smoke)); then
    # s_client quits at its input's end: hold the input open long enough for the reply.
    reply=$( (printf 'hello over tls\n'; sleep 2) | timeout 10 openssl s_client -quiet -no_ign_eof \
        -connect "127.0.0.1:$tls_port" -servername localhost -CAfile "$work/cert.pem" \
        -verify_return_error 2>/dev/null)
    if [[ "$reply" == "HELLO OVER TLS" ]]; then
        echo "smoke: ok ($reply)"
    else
        echo "smoke: FAILED, got: $reply" >&2
        exit 1
    fi
    exit 0
fi
echo "serving; Ctrl-C stops both"
wait
