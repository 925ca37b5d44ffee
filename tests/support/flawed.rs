//! Flawed capitalisation servers, one per flaw a student's server typically has, for
//! grading with `upcase check`. Each is written the way such a server usually is: plain
//! blocking sockets, a thread per connection unless the flaw is about that, and exactly
//! one mistake. They listen on `127.0.0.1:0` and run until the test process ends.

#![allow(dead_code)] // each test binary uses some of them

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
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

/// Binds an ephemeral loopback port and serves each connection on its own thread.
fn serve_threaded(handler: fn(TcpStream)) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
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
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
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
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
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
