//! Student clients, one correct and one per flaw of `upcase check-client`'s table, each
//! written the way such a client usually is (blocking sockets, a buffer, a loop) with
//! exactly one mistake. Each runs as a process: `HOST PORT` as arguments, lines on stdin.
//!
//! Names are those of `upcase::check::diagnosis::CLIENT_FLAWS`, plus `correct`,
//! `spins-on-close` and `prints-garbage` (the two ways to fail `server-closes`).

use std::io::{self, BufRead, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

/// How a flawed client differs from the correct one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flaw {
    None,
    DoesNotPrint,
    SendsNul,
    RecvOnce,
    GivesUp,
    CutsLongLines,
    Mangles,
    SpinsOnClose,
    PrintsGarbage,
    IgnoresConnect,
    LoopsAtEof,
}

/// Runs the client named `name` with `args` (host, port) and exits; `None` if there is
/// no such client.
pub fn run(name: &str, args: &[String]) -> Option<i32> {
    let flaw = match name {
        "correct" => Flaw::None,
        "does-not-print-the-reply" => Flaw::DoesNotPrint,
        "sends-extra-bytes" => Flaw::SendsNul,
        "recv-once" => Flaw::RecvOnce,
        "gives-up-early" => Flaw::GivesUp,
        "cuts-long-lines" => Flaw::CutsLongLines,
        "mangles-non-ascii" => Flaw::Mangles,
        "spins-on-close" => Flaw::SpinsOnClose,
        "prints-garbage" => Flaw::PrintsGarbage,
        "ignores-connect" => Flaw::IgnoresConnect,
        "loops-at-eof" => Flaw::LoopsAtEof,
        _ => return None,
    };
    let host = args.first().map(String::as_str).unwrap_or("127.0.0.1");
    let port = args.get(1).map(String::as_str).unwrap_or("2277");
    Some(client(flaw, host, port))
}

fn idle_forever() -> ! {
    // The flaw is an endless loop; this one sleeps instead of spinning a core.
    loop {
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn client(flaw: Flaw, host: &str, port: &str) -> i32 {
    let mut stream = match TcpStream::connect(format!("{host}:{port}")) {
        Ok(s) => Some(s),
        Err(e) if flaw == Flaw::IgnoresConnect => {
            let _ = e; // the flaw: the failure goes unnoticed
            None
        }
        Err(e) => {
            eprintln!("cannot connect to {host}:{port}: {e}");
            return 1;
        }
    };
    if flaw == Flaw::GivesUp {
        if let Some(s) = &stream {
            let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        }
    }
    let stdin = io::stdin();
    let mut input = stdin.lock();
    let mut out = io::stdout();
    loop {
        let mut line = Vec::new();
        let n = if flaw == Flaw::CutsLongLines {
            // fgets(buf, 1024, stdin): at most 1023 bytes, up to and including an LF.
            let mut byte = [0u8; 1];
            while line.len() < 1023 && !line.ends_with(b"\n") {
                match input.read(&mut byte) {
                    Ok(1) => line.push(byte[0]),
                    _ => break,
                }
            }
            line.len()
        } else {
            input.read_until(b'\n', &mut line).unwrap_or(0)
        };
        if n == 0 {
            if flaw == Flaw::LoopsAtEof {
                idle_forever();
            }
            return 0;
        }
        let Some(s) = stream.as_mut() else {
            // Ignored connect: send and recv fail, nothing is printed, "success".
            continue;
        };
        let mut message = line.clone();
        if flaw == Flaw::SendsNul {
            message.push(0);
        }
        if let Err(e) = s.write_all(&message) {
            eprintln!("send: {e}");
            return 1;
        }
        let want_lf = line.ends_with(b"\n");
        if !want_lf && flaw != Flaw::CutsLongLines {
            let _ = s.shutdown(Shutdown::Write);
        }
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match s.read(&mut buf) {
                Ok(n) => n,
                Err(e) => {
                    eprintln!("recv: {e}");
                    return 1;
                }
            };
            if n == 0 {
                match flaw {
                    Flaw::SpinsOnClose => idle_forever(),
                    Flaw::PrintsGarbage => {
                        // The flaw: the buffer recv did not fill is printed anyway.
                        let _ = out.write_all(&[0u8; 64]);
                        let _ = out.flush();
                        return 0;
                    }
                    _ if want_lf => {
                        eprintln!("the server closed the connection");
                        return 1;
                    }
                    _ => return 0,
                }
            }
            let got = &buf[..n];
            let shown: Vec<u8> = match flaw {
                Flaw::DoesNotPrint => b"message sent\n".to_vec(),
                Flaw::Mangles => got
                    .iter()
                    .map(|&b| if b < 0x80 { b } else { b'?' })
                    .collect(),
                _ => got.to_vec(),
            };
            let _ = out.write_all(&shown);
            let _ = out.flush();
            if flaw == Flaw::RecvOnce || (want_lf && got.contains(&b'\n')) {
                break;
            }
        }
    }
}
