//! Shared test support: an in-process server on an ephemeral port, and `upcased` run as a
//! child process the way a user runs it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use upcase::server::{Config, Driver, Listeners, Server};

/// Generous bound for anything a test waits on: the machine is small and shared.
pub const PATIENCE: Duration = Duration::from_secs(20);

thread_local! {
    /// The connection driver this thread's test runs the server on ([`per_driver!`]); `Auto`
    /// (the server's own default) outside it.
    static DRIVER: std::cell::Cell<Driver> = const { std::cell::Cell::new(Driver::Auto) };
}

/// The driver the current test runs the server on.
pub fn driver() -> Driver {
    DRIVER.with(|d| d.get())
}

/// Whether the io_uring driver can run here; why not, if it cannot. Probed once per test
/// process.
pub fn uring_unavailable() -> Option<String> {
    static WHY: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    WHY.get_or_init(|| {
        #[cfg(all(target_os = "linux", feature = "uring"))]
        return upcase::uring::probe().err().map(|e| e.to_string());
        #[cfg(not(all(target_os = "linux", feature = "uring")))]
        Some("this build has no io_uring driver".into())
    })
    .clone()
}

/// Runs `body` with every server it starts ([`TestServer`], [`Upcased`]) on `driver`. Where
/// io_uring is unavailable the uring half says so and passes without running.
pub fn with_driver(driver: Driver, body: impl FnOnce()) {
    if driver == Driver::Uring {
        if let Some(why) = uring_unavailable() {
            eprintln!("skipped (the io_uring half): io_uring is unavailable here: {why}");
            return;
        }
    }
    DRIVER.with(|d| d.set(driver));
    body();
}

/// Instantiates each test once per connection driver: `fn name() { .. }` becomes the tests
/// `name::epoll` and `name::uring`, the same body with every server it starts on that
/// driver (see [`with_driver`]). The two halves of one test take turns (a lock of their
/// own), so that a test never runs beside its own twin: the load a test puts on the machine
/// is what it was written for.
#[allow(unused_macros)]
macro_rules! per_driver {
    ($($(#[doc = $doc:literal])* fn $name:ident() $body:block)*) => {$(
        $(#[doc = $doc])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn body() $body

            static TURNS: std::sync::Mutex<()> = std::sync::Mutex::new(());

            #[test]
            fn epoll() {
                let _turn = TURNS.lock().unwrap_or_else(|e| e.into_inner());
                crate::common::with_driver(upcase::server::Driver::Epoll, body)
            }

            #[test]
            fn uring() {
                let _turn = TURNS.lock().unwrap_or_else(|e| e.into_inner());
                crate::common::with_driver(upcase::server::Driver::Uring, body)
            }
        }
    )*};
}

/// The library's server, serving on an ephemeral port on a runtime of its own: the one
/// in-process harness of the integration tests (TCP, and TCP with UDP on the same port).
pub struct TestServer {
    pub addr: SocketAddr,
    pub server: Server,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    /// TCP on `127.0.0.1:0`.
    pub fn start(config: Config) -> TestServer {
        Self::start_on("127.0.0.1:0".parse().unwrap(), config)
    }

    /// TCP on `addr`.
    pub fn start_on(addr: SocketAddr, config: Config) -> TestServer {
        let listener = upcase::net::bind_tcp(addr).expect("bind");
        Self::serve(Listeners::from(vec![listener]), config)
    }

    /// TCP on a listener the test has bound and set up itself.
    pub fn start_with(listener: std::net::TcpListener, config: Config) -> TestServer {
        Self::serve(Listeners::from(vec![listener]), config)
    }

    /// TCP and UDP on the same free port of `ip` (`127.0.0.1`, `[::1]`).
    pub fn start_udp(ip: &str, config: Config) -> TestServer {
        let tcp = upcase::net::bind_tcp(format!("{ip}:0").parse().unwrap()).expect("bind");
        let udp = upcase::net::bind_udp(tcp.local_addr().unwrap()).expect("bind udp");
        let mut listeners = Listeners::from(vec![tcp]);
        listeners.udp.push(udp);
        Self::serve(listeners, config)
    }

    /// On listeners the test bound itself (with their own settings); `addr` is the first.
    pub fn start_on_listeners(listeners: Listeners, config: Config) -> TestServer {
        Self::serve(listeners, config)
    }

    fn serve(listeners: Listeners, mut config: Config) -> TestServer {
        if driver() != Driver::Auto {
            config.io = driver();
        }
        let addr = listeners.tcp[0].socket.local_addr().unwrap();
        let server = Server::new(config);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let s = server.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(s.run(listeners, async move {
                let _ = rx.await;
            }))
        });
        TestServer {
            addr,
            server,
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    /// Starts the drain and waits for the server to return.
    pub fn stop(mut self) -> Duration {
        let t = Instant::now();
        let _ = self.stop.take().unwrap().send(());
        self.thread.take().unwrap().join().unwrap().unwrap();
        t.elapsed()
    }

    /// Starts the drain without waiting.
    pub fn begin_stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }

    /// Waits for the server to return after [`begin_stop`].
    pub fn join(mut self) -> std::io::Result<()> {
        self.thread.take().unwrap().join().unwrap()
    }

    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).expect("connect");
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        s.set_nodelay(true).unwrap();
        s
    }

    /// Polls the counters until `f` holds, or fails the test after [`PATIENCE`].
    pub fn wait_for(&self, what: &str, f: impl Fn(&upcase::server::Stats) -> bool) {
        let end = Instant::now() + PATIENCE;
        loop {
            let st = self.server.stats();
            if f(&st) {
                return;
            }
            assert!(Instant::now() < end, "timed out waiting for {what}: {st:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// Sends `msg` and reads until `want` bytes came back.
pub fn roundtrip(s: &mut TcpStream, msg: &[u8], want: usize) -> Vec<u8> {
    s.write_all(msg).unwrap();
    read_n(s, want)
}

pub fn read_n(s: &mut TcpStream, want: usize) -> Vec<u8> {
    let mut got = vec![0u8; want];
    s.read_exact(&mut got).expect("reply");
    got
}

/// Holds back (`true`) or lets go of (`false`) what `s` sends (`TCP_CORK`): written while
/// corked, it leaves in one segment.
#[allow(dead_code)]
pub fn cork(s: &TcpStream, on: bool) {
    use std::os::fd::AsRawFd;
    let on = libc::c_int::from(on);
    // SAFETY: sets an int socket option from a live local on a socket the caller owns.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_CORK,
            std::ptr::from_ref(&on).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "TCP_CORK: {}", std::io::Error::last_os_error());
}

/// Sends one byte as TCP urgent data (`MSG_OOB`).
#[allow(dead_code)]
pub fn send_urgent(s: &TcpStream, byte: u8) {
    use std::os::fd::AsRawFd;
    // SAFETY: sends one byte from a live local on a socket the caller owns.
    let n = unsafe {
        libc::send(
            s.as_raw_fd(),
            std::ptr::from_ref(&byte).cast(),
            1,
            libc::MSG_OOB,
        )
    };
    assert_eq!(n, 1, "MSG_OOB: {}", std::io::Error::last_os_error());
}

/// Reads to EOF; panics on an error such as a reset.
pub fn read_to_end(s: &mut TcpStream) -> Vec<u8> {
    let mut v = Vec::new();
    s.read_to_end(&mut v).expect("read to EOF");
    v
}

pub fn up(b: &[u8]) -> Vec<u8> {
    upcase::transform::upcase(b, upcase::transform::Mode::Unicode)
}

/// `upcased` as a child process, started the way a user would, on a free port.
pub struct Upcased {
    pub child: Child,
    pub addr: SocketAddr,
    pub stderr: Arc<Mutex<String>>,
}

impl Upcased {
    pub fn spawn(args: &[&str]) -> Upcased {
        Self::spawn_with(Command::new(env!("CARGO_BIN_EXE_upcased")), args)
    }

    /// Spawns `cmd` (which runs upcased, perhaps under a wrapper) with `--listen
    /// 127.0.0.1:0` and `args`, and waits for its "listening on" line.
    pub fn spawn_with(cmd: Command, args: &[&str]) -> Upcased {
        Self::spawn_listening(cmd, "127.0.0.1:0", args)
    }

    /// [`spawn_with`](Self::spawn_with), listening on `listen` instead.
    pub fn spawn_listening(cmd: Command, listen: &str, args: &[&str]) -> Upcased {
        Self::spawn_reading_log(cmd, listen, args, true)
    }

    /// [`spawn`](Self::spawn), with the log's reader gone once the "listening on" line is
    /// read: every line after it meets a closed pipe. `log()` holds only the lines before.
    pub fn spawn_log_unread(args: &[&str]) -> Upcased {
        let cmd = Command::new(env!("CARGO_BIN_EXE_upcased"));
        Self::spawn_reading_log(cmd, "127.0.0.1:0", args, false)
    }

    fn spawn_reading_log(mut cmd: Command, listen: &str, args: &[&str], read: bool) -> Upcased {
        if driver() != Driver::Auto {
            cmd.args(["--io", driver().as_str()]);
        }
        let mut child = cmd
            .env_remove("UPCASED_IO")
            .args(["--listen", listen])
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("UPCASED_LISTEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn upcased");
        let mut lines = BufReader::new(child.stderr.take().unwrap());
        let mut seen = String::new();
        let addr = loop {
            let mut line = String::new();
            if lines.read_line(&mut line).unwrap() == 0 {
                panic!("upcased exited before listening: {seen}");
            }
            seen.push_str(&line);
            if let Some(i) = line.find("listening on ") {
                let rest = &line[i + 13..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_hexdigit() || ".:[]".contains(c)))
                    .unwrap_or(rest.len());
                break rest[..end].parse().unwrap();
            }
        };
        let stderr = Arc::new(Mutex::new(seen));
        if !read {
            drop(lines);
            return Upcased {
                child,
                addr,
                stderr,
            };
        }
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in lines.lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Upcased {
            child,
            addr,
            stderr,
        }
    }

    /// `upcased` with a TLS listener on a free port (`--tls-listen 127.0.0.1:0`) and `args`
    /// (a certificate: `--tls-self-signed FILE`, or `--tls-cert` and `--tls-key`); `addr`
    /// is the TLS listener's. The plain `--listen` that [`Upcased::spawn_with`] adds is there
    /// too.
    pub fn spawn_tls(args: &[&str]) -> Upcased {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_upcased"));
        cmd.env_remove("UPCASED_TLS_LISTEN");
        let mut u = Self::spawn_with(cmd, &[&["--tls-listen", "127.0.0.1:0"], args].concat());
        // The TLS listener is logged after the plain one.
        let end = Instant::now() + PATIENCE;
        loop {
            let log = u.log();
            if let Some(line) = log.lines().find(|l| l.contains(" (tls")) {
                let addr = line.rsplit("listening on ").next().unwrap();
                u.addr = addr.split(" (tls").next().unwrap().parse().unwrap();
                return u;
            }
            assert!(Instant::now() < end, "no TLS listener: {log}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig}");
    }

    /// Waits for the process to exit, failing the test after [`PATIENCE`].
    pub fn wait(&mut self) -> std::process::ExitStatus {
        let end = Instant::now() + PATIENCE;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(Instant::now() < end, "upcased did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).expect("connect");
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        s
    }

    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Upcased {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("upcased's log:\n{}", self.log());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
