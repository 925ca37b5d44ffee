#!/usr/bin/env python3
"""Server memory per idle connection: the project's own measurement (BENCHMARKS.md, "Idle memory").

Starts `upcased` (target/release/upcased unless --server says otherwise) on a free loopback
port, reads its resident memory (VmRSS of /proc/PID/status), opens N connections that each send
one line and read its reply, waits for the server to settle, reads VmRSS again, and prints the
difference divided by N, in KiB. The connections stay open (idle) while it measures.

usage: scripts/idle_mem.py [N] [--server PATH] [-- SERVER FLAGS...]
   e.g. cargo build --release && python3 scripts/idle_mem.py 10000
"""
import argparse, os, resource, socket, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def vm_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", nargs="?", type=int, default=10000, help="connections (default %(default)s)")
    ap.add_argument("--server", default=os.path.join(ROOT, "target", "release", "upcased"))
    ap.add_argument("--settle", type=float, default=1.0, help="seconds to wait before reading RSS")
    ap.add_argument("flags", nargs="*", help="extra upcased flags, after --")
    a = ap.parse_args()

    # One descriptor per connection here, and as many in the server.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, a.n + 1024)
    if want < a.n + 64:
        sys.exit(f"the descriptor limit ({hard}) is too low for {a.n} connections: raise `ulimit -Hn`")
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    server = subprocess.Popen(
        [a.server, "--listen", f"127.0.0.1:{port}", "-q", "--max-connections", str(a.n + 16), *a.flags],
        stdout=subprocess.DEVNULL,
    )
    conns = []
    try:
        deadline = time.time() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    sys.exit("upcased did not start")
                time.sleep(0.05)
        time.sleep(a.settle)
        before = vm_rss_kib(server.pid)
        line = b"an idle connection says hello once\n"
        for _ in range(a.n):
            c = socket.create_connection(("127.0.0.1", port))
            c.sendall(line)
            conns.append(c)
        for c in conns:
            got = b""
            while len(got) < len(line):
                chunk = c.recv(len(line) - len(got))
                if not chunk:
                    sys.exit("the server closed a connection")
                got += chunk
            if got != line.upper():
                sys.exit(f"wrong reply: {got!r}")
        time.sleep(a.settle)
        after = vm_rss_kib(server.pid)
        print(f"connections={a.n} rss_before_kib={before} rss_after_kib={after} "
              f"per_connection_kib={(after - before) / a.n:.2f}")
    finally:
        for c in conns:
            c.close()
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
