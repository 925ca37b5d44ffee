//! Flawed capitalisation servers, one per flaw a student's server typically has, for
//! grading with `upcase check`. Each is written the way such a server usually is: plain
//! blocking sockets, a thread per connection unless the flaw is about that, and exactly
//! one mistake. They listen on `127.0.0.1:0` (or the port [`set_port`] chose) and run
//! until the test process ends.

#![allow(dead_code)] // each test binary uses some of them

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::Arc;
use std::thread;

use upcase::transform::{upcase, Mode, Upcaser};

/// What the read-once server reads: the 1 KiB buffer of countless tutorials.
pub const READ_ONCE_BUFFER: usize = 1024;

/// How much of each reply the partial-write server gets out. A server that calls
/// `write()` once and ignores its count loses whatever the kernel did not take; how much
/// that is depends on socket buffers and timing, so the fixture fixes it at 8 KiB to fail
/// the same way every run. The checker's largest single-read replies are well under it
/// except in `large-message`.
pub const PARTIAL_WRITE: usize = 8 * 1024;

/// The port the next server binds: 0 (a free one) unless a process fixture set it.
static PORT: AtomicU16 = AtomicU16::new(0);

/// Makes the servers started from now on listen on `port` (for a server run as a
/// process, on the port `--server-cmd` gave it).
pub fn set_port(port: u16) {
    PORT.store(port, Ordering::SeqCst);
}

fn bind() -> TcpListener {
    TcpListener::bind(("127.0.0.1", PORT.load(Ordering::SeqCst))).unwrap()
}

/// Binds a loopback port and serves each connection on its own thread.
fn serve_threaded(handler: fn(TcpStream)) -> SocketAddr {
    let listener = bind();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || handler(stream));
        }
    });
    addr
}

/// A correct connection loop: stream bytes through the transform as they arrive, flush
/// held-back bytes at EOF, then close.
fn serve_correctly(mut stream: TcpStream, mode: Mode) {
    let mut up = Upcaser::new(mode);
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = Vec::new();
    loop {
        out.clear();
        match stream.read(&mut buf) {
            Ok(0) => {
                up.finish(&mut out);
                let _ = stream.write_all(&out);
                let _ = stream.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => up.push(&buf[..n], &mut out),
            Err(_) => return,
        }
        if stream.write_all(&out).is_err() {
            return;
        }
    }
}

/// Reads once, replies to that, and closes: the tutorial's server taken literally.
pub fn read_once_reply_close() -> SocketAddr {
    serve_threaded(|mut stream| {
        let mut buf = [0u8; READ_ONCE_BUFFER];
        if let Ok(n) = stream.read(&mut buf) {
            let _ = stream.write_all(&upcase(&buf[..n], Mode::Unicode));
        }
    })
}

/// Serves connections one after another: the next client waits until the previous one
/// has gone.
pub fn one_client_at_a_time() -> SocketAddr {
    let listener = bind();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            serve_correctly(stream, Mode::Unicode);
        }
    });
    addr
}

/// Calls `write()` once per read and ignores how much it wrote (see [`PARTIAL_WRITE`]).
pub fn ignores_partial_writes() -> SocketAddr {
    serve_threaded(|mut stream| {
        let mut up = Upcaser::new(Mode::Unicode);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let mut out = Vec::new();
            match stream.read(&mut buf) {
                Ok(0) => {
                    up.finish(&mut out);
                    let _ = stream.write_all(&out);
                    let _ = stream.shutdown(Shutdown::Write);
                    return;
                }
                Ok(n) => up.push(&buf[..n], &mut out),
                Err(_) => return,
            }
            let short = out.len().min(PARTIAL_WRITE);
            // The flaw: the count `write` returns is never looked at.
            if stream.write(&out[..short]).is_err() {
                return;
            }
        }
    })
}

/// Transforms each read on its own with `transform`, writes the result, and closes at EOF:
/// the loop of the two per-read flaws below, which differ only in the transform.
fn serve_per_read(mut stream: TcpStream, transform: fn(&[u8]) -> Vec<u8>) {
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => {
                let _ = stream.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => {
                if stream.write_all(&transform(&buf[..n])).is_err() {
                    return;
                }
            }
        }
    }
}

/// Decodes each read on its own, lossily, and upper-cases it: characters split between
/// reads, and bytes that are not UTF-8, become U+FFFD.
pub fn lossy_per_read() -> SocketAddr {
    serve_threaded(|stream| {
        serve_per_read(stream, |b| {
            String::from_utf8_lossy(b).to_uppercase().into_bytes()
        })
    })
}

/// Upper-cases each read on its own, passing invalid bytes through: nothing is lost, but
/// a letter split between reads is not upper-cased.
pub fn stateless_per_read() -> SocketAddr {
    serve_threaded(|stream| serve_per_read(stream, |b| upcase(b, Mode::Unicode)))
}

/// Correct in every way but one: only `a`–`z` are upper-cased.
pub fn ascii_only() -> SocketAddr {
    serve_threaded(|stream| serve_correctly(stream, Mode::Ascii))
}

/// Replies line by line, on each LF, and at EOF closes without answering the partial line
/// it still holds.
pub fn drops_last_message_on_half_close() -> SocketAddr {
    serve_threaded(|mut stream| {
        let mut pending = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => {
                    // The flaw: `pending` holds the last message, and is dropped.
                    let _ = stream.shutdown(Shutdown::Write);
                    return;
                }
                Ok(n) => pending.extend_from_slice(&buf[..n]),
            }
            while let Some(lf) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=lf).collect();
                if stream.write_all(&upcase(&line, Mode::Unicode)).is_err() {
                    return;
                }
            }
        }
    })
}

/// Streams correctly but never closes after the client half-closes: `read` returning 0
/// is not taken as the end, so the client waits for an EOF that never comes.
pub fn never_closes() -> SocketAddr {
    serve_threaded(|mut stream| {
        let mut up = Upcaser::new(Mode::Unicode);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let mut out = Vec::new();
            match stream.read(&mut buf) {
                Ok(0) => {
                    // The flaw: the socket is kept open (here: forever, without spinning).
                    up.finish(&mut out);
                    let _ = stream.write_all(&out);
                    loop {
                        thread::park();
                    }
                }
                Ok(n) => up.push(&buf[..n], &mut out),
                Err(_) => return,
            }
            if stream.write_all(&out).is_err() {
                return;
            }
        }
    })
}

/// Correct until a connection fails with an error (a reset, a broken pipe): then the
/// whole server stops, as one that unwraps every I/O result or dies of SIGPIPE does.
pub fn dies_on_reset() -> SocketAddr {
    let listener = bind();
    let addr = listener.local_addr().unwrap();
    let dead = Arc::new(AtomicBool::new(false));
    thread::spawn(move || {
        for stream in listener.incoming() {
            if dead.load(Ordering::SeqCst) {
                return; // drops the listener: connections are refused from now on
            }
            let Ok(stream) = stream else { continue };
            let dead = dead.clone();
            thread::spawn(move || {
                let mut stream = stream;
                let mut up = Upcaser::new(Mode::Unicode);
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let mut out = Vec::new();
                    let ok = match stream.read(&mut buf) {
                        Ok(0) => {
                            up.finish(&mut out);
                            let _ = stream.write_all(&out);
                            let _ = stream.shutdown(Shutdown::Write);
                            return;
                        }
                        Ok(n) => {
                            up.push(&buf[..n], &mut out);
                            stream.write_all(&out).is_ok()
                        }
                        Err(_) => false,
                    };
                    if !ok {
                        dead.store(true, Ordering::SeqCst);
                        // Wake the accept loop so that it sees it is dead.
                        let _ = TcpStream::connect(addr);
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Correct, but upper-cases one character to one (C's `towupper`, Unicode's simple case
/// mapping): a letter whose upper case is longer (`ß` → `SS`) is left as it is.
pub fn simple_case_mapping() -> SocketAddr {
    serve_threaded(|mut stream| {
        let mut carry: Vec<u8> = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match stream.read(&mut buf) {
                Ok(0) | Err(_) => {
                    let _ = stream.write_all(&carry);
                    let _ = stream.shutdown(Shutdown::Write);
                    return;
                }
                Ok(n) => n,
            };
            carry.extend_from_slice(&buf[..n]);
            // Keep an unfinished character at the end for the next read.
            let mut cut = carry.len();
            for back in 1..=3.min(carry.len()) {
                let b = carry[carry.len() - back];
                if b & 0xC0 != 0x80 {
                    let need = match b {
                        0xC2..=0xDF => 2,
                        0xE0..=0xEF => 3,
                        0xF0..=0xF4 => 4,
                        _ => 1,
                    };
                    if need > back {
                        cut = carry.len() - back;
                    }
                    break;
                }
            }
            let rest = carry.split_off(cut);
            let mut out = Vec::with_capacity(carry.len());
            for chunk in carry.utf8_chunks() {
                for c in chunk.valid().chars() {
                    let mut up = c.to_uppercase();
                    let one = match (up.next(), up.next()) {
                        (Some(u), None) => u,
                        _ => c,
                    };
                    let mut b = [0u8; 4];
                    out.extend_from_slice(one.encode_utf8(&mut b).as_bytes());
                }
                out.extend_from_slice(chunk.invalid());
            }
            carry = rest;
            if stream.write_all(&out).is_err() {
                return;
            }
        }
    })
}

/// Correct until a write fails (a client reset): then the whole process aborts, as a C
/// server killed by SIGPIPE does. Only for a server run as a process of its own.
pub fn crashes_on_reset() -> SocketAddr {
    serve_threaded(|mut stream| {
        let mut up = Upcaser::new(Mode::Unicode);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let mut out = Vec::new();
            match stream.read(&mut buf) {
                Ok(0) => {
                    up.finish(&mut out);
                    let _ = stream.write_all(&out);
                    let _ = stream.shutdown(Shutdown::Write);
                    return;
                }
                Ok(n) => up.push(&buf[..n], &mut out),
                Err(_) => std::process::abort(),
            }
            if stream.write_all(&out).is_err() {
                std::process::abort();
            }
        }
    })
}

/// Every server of this module by the name of its flaw in `upcase::check::diagnosis`
/// (`correct` for one without), for running them as processes.
pub fn by_name(name: &str) -> Option<fn() -> SocketAddr> {
    Some(match name {
        "correct" => || serve_threaded(|s| serve_correctly(s, Mode::Unicode)),
        "read-once" => read_once_reply_close,
        "one-client-at-a-time" => one_client_at_a_time,
        "ignores-partial-writes" => ignores_partial_writes,
        "lossy-per-read" => lossy_per_read,
        "ascii-only" => ascii_only,
        "simple-case-mapping" => simple_case_mapping,
        "stateless-per-read" => stateless_per_read,
        "line-buffered" => drops_last_message_on_half_close,
        "never-closes" => never_closes,
        "dies-on-reset" => dies_on_reset,
        "crashes-on-reset" => crashes_on_reset,
        _ => return None,
    })
}
