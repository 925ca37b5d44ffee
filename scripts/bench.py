#!/usr/bin/env python3
"""The project's own benchmark run, driven by `upcase bench` (see scripts/bench.sh).

Starts each public peer on its own port (upcased, and socat+tr when socat is installed),
runs the workloads in interleaved rounds (A B A B ...), and prints markdown tables of the
median, min and max of msgs/s, p99 latency and server CPU-µs per message, with ratios to
upcased. Then times pipe mode against `nc -N` on a 100 MB text file through upcased.

usage: bench.py [--rounds N] [--secs S] [--pin] [--only-pipe] [--no-pipe]
"""
import argparse, json, os, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UPCASE = os.path.join(ROOT, "target", "release", "upcase")
UPCASED = os.path.join(ROOT, "target", "release", "upcased")

# name, bench flags, servers that cannot serve it
WORKLOADS = [
    ("1c-64B", ["--connections", "1", "--size", "64"], set()),
    ("100c-64B", ["--connections", "100", "--size", "64"], set()),
    ("1000c-64B", ["--connections", "1000", "--size", "64"], {"socat+tr"}),
    ("100c-1KiB-P8", ["--connections", "100", "--size", "1024", "--pipeline", "8"], set()),
    ("4c-64KiB", ["--connections", "4", "--size", "65536"], set()),
    ("4c-64KiB-unicode", ["--connections", "4", "--size", "65536", "--text", "unicode"], {"socat+tr"}),
]


def session_cpu(sid):
    """CPU seconds used so far by every process of a session (a server and its children)."""
    tot = 0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(rest[3]) == sid:
            tot += sum(int(x) for x in rest[11:15])
    return tot / os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def start(argv, pin):
    p = subprocess.Popen((["taskset", "-c", "1"] if pin else []) + argv, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    return p


def stop(p):
    try:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(p.pid, signal.SIGKILL)
    time.sleep(0.3)


def fmt(xs, f):
    return f"{f(statistics.median(xs))} ({f(min(xs))}–{f(max(xs))})"


def servers():
    s = [("upcased", [UPCASED, "--listen", "127.0.0.1:{port}", "-q"])]
    if shutil.which("socat"):
        s.append(("socat+tr", ["socat", "TCP-LISTEN:{port},fork,reuseaddr,bind=127.0.0.1,backlog=4096",
                               "EXEC:stdbuf -o0 tr a-z A-Z"]))
    return s


def load(a):
    res = {}
    for r in range(a.rounds):
        for name, cmd in servers():
            port = free_port()
            p = start([c.replace("{port}", str(port)) for c in cmd], a.pin)
            try:
                if not wait_port(port):
                    print(f"# {name}: did not start", file=sys.stderr)
                    continue
                for wname, flags, skip in WORKLOADS:
                    if name in skip:
                        continue
                    argv = (["taskset", "-c", "0"] if a.pin else []) + [
                        UPCASE, "-c", f"127.0.0.1:{port}", "bench", "--json",
                        "--duration", f"{a.secs}s", "--warmup", "500ms"] + flags
                    c0 = session_cpu(p.pid)
                    out = subprocess.run(argv, capture_output=True, text=True, timeout=a.secs + 120)
                    if out.returncode != 0:
                        # A failed run's reasons are in its JSON (errors, schedule); usage and
                        # connect errors on stderr.
                        try:
                            why = json.dumps(json.loads(out.stdout)["errors"])
                        except (ValueError, KeyError):
                            why = out.stderr.strip()[:200]
                        print(f"# {name} {wname}: exit {out.returncode}: {why}", file=sys.stderr)
                        res.setdefault((name, wname), []).append(None)
                        continue
                    j = json.loads(out.stdout)
                    total = j["messages"] * (j["duration_s"] + 0.5) / j["duration_s"]
                    j["cpu_us"] = (session_cpu(p.pid) - c0) * 1e6 / max(total, 1)
                    res.setdefault((name, wname), []).append(j)
                    print(f"# round {r} {name} {wname}: {j['msgs_per_s']:,.0f} msgs/s "
                          f"p99 {j['latency_us']['p99']:.0f}us {j['cpu_us']:.2f}cpu-us", file=sys.stderr)
            finally:
                stop(p)
    print(f"\n`upcase bench`, pinned={a.pin}, {a.rounds} rounds of {a.secs} s; "
          "median (min–max); ratio of medians to upcased\n")
    names = [n for n, _ in servers()]
    for metric, key, f in [("msgs/s", "msgs_per_s", lambda x: f"{x:,.0f}"),
                           ("p99 latency µs", None, lambda x: f"{x:,.0f}"),
                           ("server CPU µs per message", "cpu_us", lambda x: f"{x:.2f}")]:
        print(f"**{metric}**\n")
        print("| workload | " + " | ".join(names) + " |")
        print("|---" * (len(names) + 1) + "|")
        for wname, _, _ in WORKLOADS:
            cells = []
            base = None
            for n in names:
                runs = res.get((n, wname), [])
                ok = [x for x in runs if x]
                if not ok or len(ok) < len(runs):
                    cells.append("FAIL" if runs else "–")
                    continue
                xs = [x["latency_us"]["p99"] if key is None else x[key] for x in ok]
                m = statistics.median(xs)
                if n == "upcased":
                    base = m
                ratio = f" [{m / base:.2f}×]" if base and n != "upcased" else ""
                cells.append(fmt(xs, f) + ratio)
            print(f"| {wname} | " + " | ".join(cells) + " |")
        print()


def pipe(a):
    data = os.path.join(tempfile.gettempdir(), "upcase-bench-100MB.txt")
    if not os.path.exists(data) or os.path.getsize(data) != 100_000_000:
        words = "alpha beta gamma straße grüße привет ωμέγα hello world capital letters 東京".split()
        line, buf, n = 0, [], 0
        while n < 100_000_000:
            s = (" ".join(words[(line * 7 + k * 3) % len(words)] for k in range(12)) + "\n").encode()
            buf.append(s)
            n += len(s)
            line += 1
        with open(data, "wb") as f:
            f.write(b"".join(buf)[:100_000_000])
    port = free_port()
    p = start([UPCASED, "--listen", f"127.0.0.1:{port}", "-q"], False)
    try:
        wait_port(port)
        tools = [("upcase (pipe mode)", [UPCASE, "-c", f"127.0.0.1:{port}"])]
        if shutil.which("nc"):
            tools.append(("nc -N", ["nc", "-N", "127.0.0.1", str(port)]))
        times = {t: [] for t, _ in tools}
        for r in range(a.rounds + 2):
            for t, argv in (tools if r % 2 == 0 else tools[::-1]):
                with open(data, "rb") as fin:
                    t0 = time.perf_counter()
                    out = subprocess.run(argv, stdin=fin, stdout=subprocess.PIPE)
                    el = time.perf_counter() - t0
                if out.returncode != 0 or len(out.stdout) < 100_000_000:
                    print(f"# {t}: exit {out.returncode}, {len(out.stdout)} bytes", file=sys.stderr)
                    continue
                times[t].append(el)
        print(f"**Pipe mode: 100 MB of mixed text through upcased** ({a.rounds + 2} interleaved runs, "
              "seconds, median (min–max))\n")
        print("| client | time s | MB/s |")
        print("|---|---|---|")
        base = statistics.median(times[tools[0][0]]) if times[tools[0][0]] else None
        for t, xs in times.items():
            if not xs:
                print(f"| {t} | FAIL | |")
                continue
            m = statistics.median(xs)
            rel = f" [{m / base:.2f}× upcase]" if base and t != tools[0][0] else ""
            print(f"| {t} | {fmt(xs, lambda x: f'{x:.3f}')}{rel} | {100 / m:,.0f} |")
        print()
    finally:
        stop(p)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--secs", type=float, default=2)
    ap.add_argument("--pin", action="store_true")
    ap.add_argument("--only-pipe", action="store_true")
    ap.add_argument("--no-pipe", action="store_true")
    a = ap.parse_args()
    if not a.only_pipe:
        load(a)
    if not a.no_pipe:
        pipe(a)


if __name__ == "__main__":
    main()
