#!/usr/bin/env python3
"""Issue 16's TLS comparison: `upcased --tls-listen` against stunnel4 in front of the C epoll
reference, and the cost of TLS over plain `upcased`, all measured in one run.

    tls_compare.py load [--rounds N] [--secs S] [--workloads W,...] [--json FILE]
    tls_compare.py handshakes [--secs S] [--threads N]
    tls_compare.py idle-mem [--connections N]
    tls_compare.py client-ab --base OLD_UPCASE [--new NEW_UPCASE] [--rounds N]

Every server runs pinned on CPU 1 and the load on CPU 0 (`taskset`). The servers:

  stunnel+c     stunnel4 (Debian's) on PORT+1, forwarding to the C epoll reference
                (../shared/bench/epoll_upcase.c, one thread) on PORT; its server CPU is the
                sum of both processes' (utime + stime from /proc/PID/stat)
  upcased-tls   `upcased --tls-listen` on PORT+2, one worker, the same certificate and key
  upcased       plain `upcased --listen` on PORT+3, one worker: what TLS costs per message

The certificate is an ECDSA P-256 one made here with openssl (the key type `upcased
--tls-self-signed` makes), for localhost, 127.0.0.1 and ::1.

`load` runs the workloads 100c-64B, 100c-1KiB-P8 and 4c-64KiB (or those named with
--workloads, which also knows 1c-64B, 4c-64B and 16c-64B) with `upcase bench --json`
(`--tls --ca CERT` for the TLS servers: every handshake before the warm-up) in interleaved
rounds (each round starts every server afresh, in turn, and runs every workload on it), and
prints the median (min-max) msgs/s, p99 latency and server CPU-us per message, with the
ratios upcased-tls / stunnel+c and upcased-tls / upcased. Server CPU per message is the
server's CPU over the whole bench run (handshakes, warm-up, window, drain) divided by the
messages of the run, warm-up included, estimated from the window's rate, as scripts/bench.py
does. The load generator's own CPU share is printed too: near 100% means the client, not the
server, bounds the throughput.

`handshakes` opens connections as fast as THREADS client threads on CPU 0 can (each: a full
TLS 1.3 handshake, one line and its reply, close; no resumption, the certificate not
verified, so that the client costs as little as it can) against upcased-tls and stunnel+c,
and prints the rate reached and the server CPU per connection, whose inverse is the
connections per second one core takes.

`idle-mem` opens N TLS connections (default 5000), each sending one line and reading its
reply, to upcased-tls and to stunnel+c, and prints the growth of the servers' resident memory
(VmRSS; for stunnel+c the sum of both processes) per connection.

`client-ab` runs two `upcase` binaries in turn as the load generator of plain upcased, the
order alternating between rounds, and prints msgs/s and the load generator's CPU per message:
the check that making the bench driver generic over TLS left the plain path as it was.

Ports: PORT is TLS_COMPARE_PORT (default 2390). Needs stunnel4, openssl, gcc and taskset
(installed with apt-get if missing, as root), and the release build (`cargo build --release`).
Take the machine's exclusive lock around it when others share it:
    flock -x /work/cpu.lock python3 scripts/tls_compare.py load --rounds 7
"""
import argparse, json, os, resource, shutil, signal, socket, ssl, statistics, subprocess, sys
import tempfile, threading, time

# the helpers of scripts/bench.py's driver: waiting for a port, a median with its range
from bench import fmt, wait_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UPCASE = os.path.join(ROOT, "target", "release", "upcase")
UPCASED = os.path.join(ROOT, "target", "release", "upcased")
PORT = int(os.environ.get("TLS_COMPARE_PORT", "2390"))
SERVER_CPU = "1"
LOAD_CPU = "0"

WORKLOADS = [
    ("100c-64B", ["--connections", "100", "--size", "64"]),
    ("100c-1KiB-P8", ["--connections", "100", "--size", "1024", "--pipeline", "8"]),
    ("4c-64KiB", ["--connections", "4", "--size", "65536"]),
]
# Not run unless named with --workloads: how the cost per message moves with connections.
EXTRA_WORKLOADS = [
    ("1c-64B", ["--connections", "1", "--size", "64"]),
    ("4c-64B", ["--connections", "4", "--size", "64"]),
    ("16c-64B", ["--connections", "16", "--size", "64"]),
]
WARMUP_S = 0.5


def shared_bench():
    for d in (os.environ.get("SHARED_BENCH", ""), os.path.join(ROOT, "..", "shared", "bench"), "/work/shared/bench"):
        if d and os.path.isfile(os.path.join(d, "epoll_upcase.c")):
            return d
    sys.exit("tls_compare.py: no epoll_upcase.c (set SHARED_BENCH to the folder holding it)")


def setup():
    """Installs what is missing, builds the C reference, makes the certificate and the
    stunnel configuration. Returns the working directory."""
    need = [pkg for cmd, pkg in (("stunnel4", "stunnel4"), ("openssl", "openssl"), ("gcc", "gcc"), ("taskset", "util-linux"))
            if not shutil.which(cmd)]
    if need:
        subprocess.run(["apt-get", "install", "-y", "-qq", *need], check=True, stdout=subprocess.DEVNULL)
    for b in (UPCASE, UPCASED):
        if not os.access(b, os.X_OK):
            sys.exit(f"tls_compare.py: {b} is missing: run `cargo build --release` first")
    work = tempfile.mkdtemp(prefix="tls-compare.")
    subprocess.run(["gcc", "-O3", "-pthread", "-o", os.path.join(work, "epoll_upcase"),
                    os.path.join(shared_bench(), "epoll_upcase.c")], check=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "30", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1",
                    # Not a CA (openssl's default for -x509): rustls refuses a CA certificate
                    # as the server's own.
                    "-addext", "basicConstraints=critical,CA:FALSE",
                    "-addext", "extendedKeyUsage=serverAuth",
                    "-keyout", os.path.join(work, "key.pem"), "-out", os.path.join(work, "cert.pem")],
                   check=True, capture_output=True)
    with open(os.path.join(work, "stunnel.conf"), "w") as f:
        f.write(f"""foreground = quiet
pid =
output = {work}/stunnel.log
debug = warning
socket = l:TCP_NODELAY=1
socket = r:TCP_NODELAY=1

[upcase]
accept = 127.0.0.1:{PORT + 1}
connect = 127.0.0.1:{PORT}
cert = {work}/cert.pem
key = {work}/key.pem
sslVersionMin = TLSv1.2
""")
    return work


def versions():
    v = subprocess.run(["stunnel4", "-version"], capture_output=True, text=True)
    lines = [l for l in (v.stdout + v.stderr).splitlines() if l.startswith(("stunnel", "Running"))]
    u = subprocess.run([UPCASED, "--version"], capture_output=True, text=True).stdout.strip()
    return "; ".join(lines + [u])


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(soft, n)
    if want > hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return
        except (ValueError, OSError):
            sys.exit(f"the descriptor limit ({hard}) is too low for {n}: raise `ulimit -Hn`")
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


class Server:
    """One server under test: its processes (pinned to SERVER_CPU) and the port clients use."""

    def __init__(self, name, work, pin=True):
        self.name, self.procs = name, []
        cert, key = os.path.join(work, "cert.pem"), os.path.join(work, "key.pem")
        pin = ["taskset", "-c", SERVER_CPU] if pin else []
        if name == "stunnel+c":
            self.port, self.tls = PORT + 1, True
            self._start(pin + [os.path.join(work, "epoll_upcase"), str(PORT), "1"], PORT)
            self._start(pin + ["stunnel4", os.path.join(work, "stunnel.conf")], PORT + 1)
        elif name == "upcased-tls":
            self.port, self.tls = PORT + 2, True
            self._start(pin + [UPCASED, "--tls-listen", f"127.0.0.1:{PORT + 2}", "--tls-cert", cert,
                               "--tls-key", key, "--workers", "1", "--max-connections", "100000", "-q"], PORT + 2)
        elif name == "upcased":
            self.port, self.tls = PORT + 3, False
            self._start(pin + [UPCASED, "--listen", f"127.0.0.1:{PORT + 3}", "--workers", "1",
                               "--max-connections", "100000", "-q"], PORT + 3)
        else:
            raise ValueError(name)

    def _start(self, argv, port):
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.procs.append(p)
        if not wait_port(port):
            self.stop()
            raise RuntimeError(f"{self.name}: {argv[0]} did not listen on {port}")

    def cpu(self):
        """CPU seconds of every process of the server (all threads), so far."""
        tot = 0
        for p in self.procs:
            with open(f"/proc/{p.pid}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
            tot += sum(int(x) for x in rest[11:15])
        return tot / os.sysconf("SC_CLK_TCK")

    def rss_kib(self):
        tot = 0
        for p in self.procs:
            with open(f"/proc/{p.pid}/status") as f:
                tot += next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
        return tot

    def stop(self):
        for p in reversed(self.procs):
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in reversed(self.procs):
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        # Let the kernel finish the closes before the next server binds.
        time.sleep(0.3)


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def bench_once(server, work, flags, secs):
    argv = ["taskset", "-c", LOAD_CPU, UPCASE, "-c", f"127.0.0.1:{server.port}", "bench", "--json",
            "--duration", f"{secs}s", "--warmup", f"{int(WARMUP_S * 1000)}ms"] + flags
    if server.tls:
        argv += ["--tls", "--ca", os.path.join(work, "cert.pem")]
    c0, l0, t0 = server.cpu(), children_cpu(), time.time()
    out = subprocess.run(argv, capture_output=True, text=True, timeout=secs + 120)
    wall, load_cpu = time.time() - t0, children_cpu() - l0
    if out.returncode != 0:
        try:
            why = json.dumps(json.loads(out.stdout)["errors"])
        except (ValueError, KeyError):
            why = out.stderr.strip()[:300]
        print(f"# {server.name} {' '.join(flags)}: exit {out.returncode}: {why}", file=sys.stderr)
        return None
    j = json.loads(out.stdout)
    total = j["messages"] * (j["duration_s"] + WARMUP_S) / j["duration_s"]
    j["cpu_us"] = (server.cpu() - c0) * 1e6 / max(total, 1)
    j["load_cpu_share"] = load_cpu / wall
    return j


def cmd_load(a):
    work = setup()
    servers = ["stunnel+c", "upcased-tls", "upcased"]
    workloads = [w for w in WORKLOADS + EXTRA_WORKLOADS
                 if (w in WORKLOADS and not a.workloads) or w[0] in a.workloads.split(",")]
    res, tls = {}, {}
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    load_before = open("/proc/loadavg").read().split()[:3]
    try:
        for r in range(a.rounds):
            for name in servers:
                s = Server(name, work)
                try:
                    for wname, flags in workloads:
                        j = bench_once(s, work, flags, a.secs)
                        res.setdefault((name, wname), []).append(j)
                        if j and j.get("tls"):
                            tls[name] = f"{j['tls']['version']} {j['tls']['cipher_suite']}"
                finally:
                    s.stop()
            print(f"# round {r + 1} of {a.rounds} done", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ended = time.strftime("%H:%M:%S UTC", time.gmtime())
    load_after = open("/proc/loadavg").read().split()[:3]
    print(f"# {started} – {ended}; load average before {' '.join(load_before)}, after {' '.join(load_after)}")
    print(f"# {versions()}")
    print(f"# pinned: load on CPU {LOAD_CPU}, servers on CPU {SERVER_CPU}; {a.rounds} interleaved rounds of "
          f"{a.secs} s after {WARMUP_S} s warm-up; median (min–max)")
    for name, t in sorted(tls.items()):
        print(f"# {name}: {t}")
    ok = {k: [x for x in v if x] for k, v in res.items()}
    failed = {k: len(v) - len(ok[k]) for k, v in res.items() if len(v) != len(ok[k])}
    med = lambda k, f: statistics.median(f(x) for x in ok[k]) if ok.get(k) else float("nan")
    for title, f, fm in (
        ("msgs/s", lambda x: x["msgs_per_s"], lambda v: f"{v:,.0f}"),
        ("p99 latency, µs", lambda x: x["latency_us"]["p99"], lambda v: f"{v:,.0f}"),
        ("server CPU-µs per message", lambda x: x["cpu_us"], lambda v: f"{v:.2f}"),
        ("load generator's CPU share of its core", lambda x: x["load_cpu_share"], lambda v: f"{v:.0%}"),
    ):
        print(f"\n**{title}**\n")
        print("| workload | " + " | ".join(servers) + " |")
        print("|---" * (len(servers) + 1) + "|")
        for wname, _ in workloads:
            cells = [fmt([f(x) for x in ok[(n, wname)]], fm) if ok.get((n, wname)) else "FAIL" for n in servers]
            print(f"| {wname} | " + " | ".join(cells) + " |")
    print("\n**ratios of medians**\n")
    print("| workload | msgs/s upcased-tls ÷ stunnel+c | CPU/msg upcased-tls ÷ stunnel+c "
          "| TLS cost per message: upcased-tls − upcased (÷) |")
    print("|---|---|---|---|")
    summary = {}
    for wname, _ in workloads:
        t = lambda n: med((n, wname), lambda x: x["msgs_per_s"])
        c = lambda n: med((n, wname), lambda x: x["cpu_us"])
        summary[wname] = {n: {"msgs_per_s": t(n), "cpu_us": c(n)} for n in servers}
        print(f"| {wname} | {t('upcased-tls') / t('stunnel+c'):.2f}× | {c('upcased-tls') / c('stunnel+c'):.2f}× "
              f"| +{c('upcased-tls') - c('upcased'):.2f} µs ({c('upcased-tls') / c('upcased'):.2f}×) |")
    for k, n in failed.items():
        print(f"# {k[0]} {k[1]}: {n} failed runs (left out)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"rounds": {f"{k[0]}|{k[1]}": v for k, v in res.items()}, "summary": summary}, f, indent=1)


def client_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def cmd_handshakes(a):
    work = setup()
    os.sched_setaffinity(0, {int(LOAD_CPU)})
    ctx = client_context()
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    load_before = open("/proc/loadavg").read().split()[:3]
    rows = []
    try:
        for r in range(a.rounds):
            for name in ("stunnel+c", "upcased-tls"):
                s = Server(name, work)
                try:
                    stop_at = [0.0]
                    counts, errors, info = [0] * a.threads, [0] * a.threads, {}

                    def worker(i):
                        while time.time() < stop_at[0]:
                            try:
                                with socket.create_connection(("127.0.0.1", s.port), timeout=10) as raw:
                                    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                                    with ctx.wrap_socket(raw, server_hostname="localhost") as c:
                                        c.sendall(b"hi\n")
                                        got = b""
                                        while len(got) < 3:
                                            chunk = c.recv(3 - len(got))
                                            if not chunk:
                                                break
                                            got += chunk
                                        if got != b"HI\n":
                                            raise OSError(f"reply {got!r}")
                                        info.setdefault("tls", f"{c.version()} {c.cipher()[0]}")
                                counts[i] += 1
                            except OSError as e:
                                errors[i] += 1
                                info.setdefault("error", str(e))

                    # A short warm-up, then the measured stretch.
                    for secs, measured in ((0.5, False), (a.secs, True)):
                        counts[:] = [0] * a.threads
                        c0, t0 = s.cpu(), time.time()
                        stop_at[0] = t0 + secs
                        ts = [threading.Thread(target=worker, args=(i,)) for i in range(a.threads)]
                        for t in ts:
                            t.start()
                        for t in ts:
                            t.join()
                        wall, cpu = time.time() - t0, s.cpu() - c0
                    n = sum(counts)
                    rows.append((name, n / wall, cpu * 1e6 / max(n, 1), cpu / wall, sum(errors), info))
                finally:
                    s.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load_after = open("/proc/loadavg").read().split()[:3]
    print(f"# {started}; load average before {' '.join(load_before)}, after {' '.join(load_after)}")
    print(f"# {versions()}")
    print(f"# {a.rounds} rounds of {a.secs} s per server, {a.threads} client threads on CPU {LOAD_CPU} "
          f"(Python ssl, {ssl.OPENSSL_VERSION}), server on CPU {SERVER_CPU}; each connection: full "
          f"handshake, one 3-byte line and its reply, close")
    print("\n| server | connections/s reached | server CPU-µs per connection | server CPU share "
          "| connections/s one core takes (1 ÷ CPU per connection) | errors |")
    print("|---|---|---|---|---|---|")
    for name in ("stunnel+c", "upcased-tls"):
        mine = [r for r in rows if r[0] == name]
        rate = [r[1] for r in mine]
        cpu = [r[2] for r in mine]
        share = [r[3] for r in mine]
        print(f"| {name} | {fmt(rate, lambda v: f'{v:,.0f}')} | {fmt(cpu, lambda v: f'{v:.0f}')} "
              f"| {fmt(share, lambda v: f'{v:.0%}')} | {fmt([1e6 / c for c in cpu], lambda v: f'{v:,.0f}')} "
              f"| {sum(r[4] for r in mine)} |")
        print(f"# {name}: {mine[-1][5]}")


def cmd_idle_mem(a):
    work = setup()
    raise_nofile(3 * a.connections + 1024)
    ctx = client_context()
    line = b"an idle connection says hello once\n"
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    print(f"# {started}; load average {' '.join(open('/proc/loadavg').read().split()[:3])}")
    print(f"# {versions()}")
    print(f"# {a.connections} TLS connections (Python ssl, {ssl.OPENSSL_VERSION}), each one line and its reply, "
          f"then idle; VmRSS of the server's processes before and {a.settle} s after")
    print("\n| server | RSS before, KiB | RSS after, KiB | per connection, KiB |")
    print("|---|---|---|---|")
    try:
        for name in a.servers.split(","):
            s = Server(name, work, pin=False)
            conns = []
            try:
                time.sleep(a.settle)
                before = s.rss_kib()
                for _ in range(a.connections):
                    raw = socket.create_connection(("127.0.0.1", s.port), timeout=30)
                    c = ctx.wrap_socket(raw, server_hostname="localhost") if s.tls else raw
                    c.sendall(line)
                    conns.append(c)
                for c in conns:
                    got = b""
                    while len(got) < len(line):
                        chunk = c.recv(len(line) - len(got))
                        if not chunk:
                            sys.exit(f"{name} closed a connection")
                        got += chunk
                    if got != line.upper():
                        sys.exit(f"{name}: wrong reply {got!r}")
                time.sleep(a.settle)
                after = s.rss_kib()
                print(f"| {name} | {before:,} | {after:,} | {(after - before) / a.connections:.2f} |")
            finally:
                for c in conns:
                    c.close()
                s.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def cmd_client_ab(a):
    """Two `upcase` binaries as the load generator of plain upcased, interleaved: does the
    driver's TLS genericity cost the plain path anything?"""
    work = setup()
    bins = {"base": a.base, "new": a.new}
    res = {}
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    load_before = open("/proc/loadavg").read().split()[:3]
    try:
        for r in range(a.rounds):
            s = Server("upcased", work)
            try:
                for wname, flags in WORKLOADS:
                    for label in (("base", "new") if r % 2 == 0 else ("new", "base")):
                        argv = ["taskset", "-c", LOAD_CPU, bins[label], "-c", f"127.0.0.1:{s.port}", "bench",
                                "--json", "--duration", f"{a.secs}s", "--warmup", f"{int(WARMUP_S * 1000)}ms"] + flags
                        l0 = children_cpu()
                        out = subprocess.run(argv, capture_output=True, text=True, timeout=a.secs + 60)
                        cpu = children_cpu() - l0
                        if out.returncode != 0:
                            print(f"# {label} {wname}: exit {out.returncode}", file=sys.stderr)
                            continue
                        j = json.loads(out.stdout)
                        total = j["messages"] * (j["duration_s"] + WARMUP_S) / j["duration_s"]
                        res.setdefault((label, wname), []).append((j["msgs_per_s"], cpu * 1e6 / max(total, 1)))
            finally:
                s.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load_after = open("/proc/loadavg").read().split()[:3]
    print(f"# {started}; load average before {' '.join(load_before)}, after {' '.join(load_after)}")
    print(f"# base={a.base} new={a.new}; plain upcased on CPU {SERVER_CPU}, the load on CPU {LOAD_CPU}; "
          f"{a.rounds} rounds of {a.secs} s, the order alternating; median (min–max)")
    print("\n| workload | msgs/s base | msgs/s new | new ÷ base | client CPU-µs/msg base | new | new ÷ base |")
    print("|---|---|---|---|---|---|---|")
    for wname, _ in WORKLOADS:
        b, n = res.get(("base", wname), []), res.get(("new", wname), [])
        if not b or not n:
            print(f"| {wname} | FAIL |")
            continue
        mb, mn = statistics.median(x[0] for x in b), statistics.median(x[0] for x in n)
        cb, cn = statistics.median(x[1] for x in b), statistics.median(x[1] for x in n)
        print(f"| {wname} | {fmt([x[0] for x in b], lambda v: f'{v:,.0f}')} | {fmt([x[0] for x in n], lambda v: f'{v:,.0f}')} "
              f"| {mn / mb:.3f} | {fmt([x[1] for x in b], lambda v: f'{v:.2f}')} | {fmt([x[1] for x in n], lambda v: f'{v:.2f}')} "
              f"| {cn / cb:.3f} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("load")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--secs", type=float, default=2)
    p.add_argument("--workloads", default="")
    p.add_argument("--json", default="")
    p = sub.add_parser("handshakes")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--secs", type=float, default=3)
    p.add_argument("--threads", type=int, default=4)
    p = sub.add_parser("idle-mem")
    p.add_argument("--connections", type=int, default=5000)
    p.add_argument("--settle", type=float, default=2.0)
    p.add_argument("--servers", default="upcased-tls,stunnel+c,upcased")
    p = sub.add_parser("client-ab")
    p.add_argument("--base", required=True, help="the upcase binary to compare against")
    p.add_argument("--new", default=UPCASE)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--secs", type=float, default=2)
    a = ap.parse_args()
    {"load": cmd_load, "handshakes": cmd_handshakes, "idle-mem": cmd_idle_mem, "client-ab": cmd_client_ab}[a.cmd](a)


if __name__ == "__main__":
    main()
