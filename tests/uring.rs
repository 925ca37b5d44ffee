//! The io_uring driver on real loopback sockets: a test starts one worker on its own thread
//! on a `127.0.0.1:0` listener and talks plain blocking TCP to it.
#![cfg(all(target_os = "linux", feature = "uring"))]

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::time::Instant;
use upcase::transform::{upcase, Mode};
use upcase::uring::{self, Handle, Options, Policy, Stats};

/// How long a test waits for any one reply before it fails (a bound against hangs, not a
/// timing assertion).
const PATIENCE: Duration = Duration::from_secs(20);

struct Server {
    addr: SocketAddr,
    handle: Handle,
    stats: Arc<Stats>,
    thread: Option<JoinHandle<Result<(), uring::Error>>>,
}

impl Server {
    /// Stops the worker (a drain that ends at once) and waits for it.
    fn stop(mut self) -> Arc<Stats> {
        self.join_with(Instant::now());
        self.stats.clone()
    }

    fn join_with(&mut self, deadline: Instant) {
        if let Some(t) = self.thread.take() {
            self.handle.drain(deadline);
            t.join().expect("worker panicked").expect("worker failed");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.join_with(Instant::now());
    }
}

fn policy() -> Policy {
    Policy {
        mode: Mode::Unicode,
        idle_timeout: Some(Duration::from_secs(60)),
        linger_timeout: Duration::from_millis(500),
        read_limit: 64 * 1024,
    }
}

/// A worker with `policy`, or `None` (and a line saying why) where io_uring is unavailable.
fn start(policy: Policy) -> Option<Server> {
    if let Err(why) = uring::probe() {
        eprintln!("skipped: io_uring unavailable: {why}");
        return None;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = Handle::new().unwrap();
    let stats = Arc::new(Stats::default());
    let opts = Options {
        policy,
        max_connections: 10_000,
    };
    let (h, s) = (handle.clone(), stats.clone());
    let thread = std::thread::spawn(move || uring::run(&[listener], &opts, &s, &h));
    Some(Server {
        addr,
        handle,
        stats,
        thread: Some(thread),
    })
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.set_write_timeout(Some(PATIENCE)).unwrap();
    s
}

fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    s.read_exact(&mut buf).unwrap();
    buf
}

fn read_to_end(s: &mut TcpStream) -> Vec<u8> {
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    buf
}

#[test]
fn probe_names_no_reason_here() {
    // This machine (kernel 6.18, io_uring_disabled=0) has everything the driver needs.
    match uring::probe() {
        Ok(()) => {}
        Err(why) => {
            let text = why.to_string();
            assert!(!text.is_empty());
            eprintln!("skipped: io_uring unavailable: {text}");
        }
    }
}

#[test]
fn round_trip_upper_cases_unicode() {
    let Some(srv) = start(policy()) else { return };
    let mut c = connect(srv.addr);
    c.write_all("hello straße\n".as_bytes()).unwrap();
    assert_eq!(read_n(&mut c, 14), b"HELLO STRASSE\n");
    c.write_all(b"again\n").unwrap();
    assert_eq!(read_n(&mut c, 6), b"AGAIN\n");
    drop(c);
    let stats = srv.stop();
    assert_eq!(stats.served.load(Ordering::Relaxed), 1);
}

#[test]
fn a_mebibyte_comes_back_whole_and_in_order() {
    let Some(srv) = start(policy()) else { return };
    let mut c = connect(srv.addr);
    let input: Vec<u8> = (0..1 << 20)
        .map(|i: u32| b"abcdefghij klmnopqrstuvwxyz\n"[(i % 28) as usize])
        .collect();
    let expected = upcase(&input, Mode::Unicode);
    let mut w = c.try_clone().unwrap();
    let sent = input.clone();
    let writer = std::thread::spawn(move || {
        w.write_all(&sent).unwrap();
        w.shutdown(Shutdown::Write).unwrap();
    });
    let got = read_to_end(&mut c);
    writer.join().unwrap();
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "reply differs from the upper-case");
}

#[test]
fn a_character_split_across_reads_is_held_back_then_completed() {
    let Some(srv) = start(policy()) else { return };
    let mut c = connect(srv.addr);
    c.write_all(b"ab\xc3").unwrap();
    assert_eq!(read_n(&mut c, 2), b"AB", "the lead byte waits");
    c.write_all(b"\xa9\n").unwrap();
    assert_eq!(read_n(&mut c, 3), "É\n".as_bytes());
    drop(srv);
}

#[test]
fn half_close_flushes_held_back_bytes_then_fin() {
    let Some(srv) = start(policy()) else { return };
    let mut c = connect(srv.addr);
    c.write_all(b"end\xf0\x9f\x98").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut c), b"END\xf0\x9f\x98");
    let stats = srv.stop();
    assert_eq!(stats.closed_client.load(Ordering::Relaxed), 1);
}

#[test]
fn a_client_that_never_reads_stalls_only_itself() {
    let Some(srv) = start(policy()) else { return };
    // Several clients pour input in and never read a reply: each fills its socket buffers
    // and then its share of the pool, and is paused.
    let mut hogs = Vec::new();
    for _ in 0..16 {
        let h = connect(srv.addr);
        h.set_nonblocking(true).unwrap();
        hogs.push(h);
    }
    let chunk = vec![b'x'; 64 * 1024];
    let mut poured = vec![0usize; hogs.len()];
    let mut stuck = 0;
    // Write until every hog's writes would block for a while: the server stopped reading.
    for _round in 0..2000 {
        let mut progressed = false;
        for (h, n) in hogs.iter_mut().zip(poured.iter_mut()) {
            match h.write(&chunk) {
                Ok(k) => {
                    *n += k;
                    progressed = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => panic!("hog write failed: {e}"),
            }
        }
        if progressed {
            stuck = 0;
        } else {
            stuck += 1;
            if stuck > 50 {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    assert!(
        stuck > 50,
        "the server kept reading from clients that never read"
    );
    // Bounded: a hog gets no further than the kernel's buffers plus its queue bound.
    for n in &poured {
        assert!(
            *n < 64 << 20,
            "{n} bytes taken from a client that never reads"
        );
    }
    // Others are still served, in full.
    for _ in 0..4 {
        let mut c = connect(srv.addr);
        let msg = vec![b'q'; 200 * 1024];
        let mut w = c.try_clone().unwrap();
        let m = msg.clone();
        let t = std::thread::spawn(move || w.write_all(&m).unwrap());
        assert_eq!(read_n(&mut c, msg.len()), vec![b'Q'; msg.len()]);
        t.join().unwrap();
    }
    drop(hogs);
}

#[test]
fn idle_timeout_closes_and_flushes_held_back_bytes() {
    let Some(srv) = start(Policy {
        idle_timeout: Some(Duration::from_millis(200)),
        ..policy()
    }) else {
        return;
    };
    let mut c = connect(srv.addr);
    c.write_all(b"hi\xe2").unwrap();
    assert_eq!(read_n(&mut c, 2), b"HI");
    // Nothing more is sent: the server closes, first sending the byte it held back.
    assert_eq!(read_to_end(&mut c), b"\xe2");
    let stats = srv.stop();
    assert_eq!(stats.closed_idle.load(Ordering::Relaxed), 1);
}

#[test]
fn drain_closes_at_line_boundaries_and_finishes_lines_in_progress() {
    let Some(mut srv) = start(policy()) else {
        return;
    };
    let mut idle = connect(srv.addr);
    idle.write_all(b"done\n").unwrap();
    assert_eq!(read_n(&mut idle, 5), b"DONE\n");
    let mut busy = connect(srv.addr);
    busy.write_all(b"first half ").unwrap();
    assert_eq!(read_n(&mut busy, 11), b"FIRST HALF ");
    srv.handle.drain(Instant::now() + PATIENCE);
    // At a line boundary: closed at once.
    assert_eq!(read_to_end(&mut idle), b"");
    // Mid-line: answered up to the LF, then closed; what followed is not answered.
    busy.write_all(b"rest\nnot answered\n").unwrap();
    assert_eq!(read_to_end(&mut busy), b"REST\n");
    // No new connections are served; the worker returns once all are closed.
    srv.join_with(Instant::now());
    assert_eq!(srv.stats.closed_drain.load(Ordering::Relaxed), 2);
}

#[test]
fn the_drain_deadline_closes_a_line_that_never_ends() {
    let Some(mut srv) = start(policy()) else {
        return;
    };
    let mut busy = connect(srv.addr);
    busy.write_all(b"never ends \xc3").unwrap();
    assert_eq!(read_n(&mut busy, 11), b"NEVER ENDS ");
    srv.handle
        .drain(Instant::now() + Duration::from_millis(200));
    // The held-back byte still goes out, then FIN.
    assert_eq!(read_to_end(&mut busy), b"\xc3");
    srv.join_with(Instant::now());
    assert_eq!(srv.stats.closed_drain_deadline.load(Ordering::Relaxed), 1);
    assert_eq!(srv.stats.drain_cut.load(Ordering::Relaxed), 1);
}
