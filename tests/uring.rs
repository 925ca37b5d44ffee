//! What is particular to the io_uring driver, on real sockets: `--io` and how the driver is
//! chosen, refused and reported, and the buffer pool under clients that never read. Every
//! other promise is tested on both drivers by the server, hardening, UDP, PROXY and metrics
//! tests (`per_driver!`).
#![cfg(all(target_os = "linux", feature = "uring"))]

#[macro_use]
mod common;

use std::io::{ErrorKind, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{read_n, TestServer, Upcased};
use upcase::server::{Config, Driver};

/// `upcased ARGS` run to its exit: the status and what it wrote to stderr.
fn upcased(args: &[&str], cmd: Option<Command>) -> (std::process::ExitStatus, String) {
    let mut cmd = cmd.unwrap_or_else(|| Command::new(env!("CARGO_BIN_EXE_upcased")));
    let out = cmd
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .env_remove("UPCASED_IO")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_probe_names_no_reason_here_or_says_why() {
    // This machine (Linux 6.18, io_uring_disabled=0) has everything the driver needs; where
    // one lacks it, the reason is one line naming the fix.
    match upcase::uring::probe() {
        Ok(()) => {}
        Err(why) => {
            let text = why.to_string();
            assert!(!text.is_empty() && !text.contains('\n'));
            eprintln!("skipped: io_uring unavailable: {text}");
        }
    }
}

#[test]
fn the_log_says_once_which_driver_serves() {
    if let Some(why) = common::uring_unavailable() {
        eprintln!("skipped: io_uring unavailable: {why}");
        return;
    }
    for (io, want) in [
        ("uring", "connection driver: io_uring"),
        ("auto", "connection driver: io_uring"),
        ("epoll", "connection driver: epoll"),
    ] {
        let mut u = Upcased::spawn(&["--io", io]);
        let mut c = u.connect();
        c.write_all(b"which\n").unwrap();
        assert_eq!(read_n(&mut c, 6), b"WHICH\n");
        u.signal("TERM");
        assert!(u.wait().success());
        let log = u.log();
        assert_eq!(log.matches("connection driver:").count(), 1, "{log}");
        assert!(log.contains(want), "--io {io}: {log}");
    }
}

#[test]
fn auto_serves_tls_listeners_on_epoll_and_io_uring_refuses_them() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let ca = ca.to_str().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_upcased"));
    cmd.args(["--tls-listen", "127.0.0.1:0", "--tls-self-signed", ca]);
    let mut u = Upcased::spawn_with(cmd, &["--io", "auto"]);
    let end = std::time::Instant::now() + common::PATIENCE;
    while !u.log().contains("connection driver:") {
        assert!(std::time::Instant::now() < end, "{}", u.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        u.log().contains("connection driver: epoll (TLS"),
        "{}",
        u.log()
    );
    u.signal("TERM");
    assert!(u.wait().success());

    let (status, err) = upcased(
        &[
            "--io",
            "uring",
            "--tls-listen",
            "127.0.0.1:0",
            "--tls-self-signed",
            ca,
        ],
        None,
    );
    assert_eq!(status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("--io uring does not serve --tls-listen"),
        "{err}"
    );
}

#[test]
fn an_unknown_driver_is_a_usage_error() {
    let (status, err) = upcased(&["--io", "kqueue"], None);
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("kqueue"), "{err}");
}

/// `upcased` under a seccomp filter that fails `io_uring_setup` with EPERM, as a container
/// runtime's default profile does.
fn without_io_uring() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_upcased"));
    // SAFETY: the closure runs in the child between fork and exec, and only makes two
    // prctl calls on data it owns (no allocation, no locks).
    unsafe {
        cmd.pre_exec(|| {
            const NR_IO_URING_SETUP: u32 = 425;
            let eperm = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
            let mut filter = [
                // A = the system call number (offset 0 of struct seccomp_data).
                libc::sock_filter {
                    code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16,
                    jt: 0,
                    jf: 0,
                    k: 0,
                },
                libc::sock_filter {
                    code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
                    jt: 0,
                    jf: 1,
                    k: NR_IO_URING_SETUP,
                },
                libc::sock_filter {
                    code: (libc::BPF_RET | libc::BPF_K) as u16,
                    jt: 0,
                    jf: 0,
                    k: eperm,
                },
                libc::sock_filter {
                    code: (libc::BPF_RET | libc::BPF_K) as u16,
                    jt: 0,
                    jf: 0,
                    k: libc::SECCOMP_RET_ALLOW,
                },
            ];
            let prog = libc::sock_fprog {
                len: filter.len() as u16,
                filter: filter.as_mut_ptr(),
            };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &prog as *const libc::sock_fprog,
                ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

#[test]
fn io_uring_unavailable_is_one_line_and_exit_1_and_auto_falls_back_to_epoll() {
    let (status, err) = upcased(&["--io", "uring"], Some(without_io_uring()));
    assert_eq!(status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("--io uring: io_uring is unavailable here") && err.contains("seccomp"),
        "{err}"
    );

    let mut u = Upcased::spawn_with(without_io_uring(), &["--io", "auto"]);
    let mut c = u.connect();
    c.write_all(b"fallback\n").unwrap();
    assert_eq!(read_n(&mut c, 9), b"FALLBACK\n");
    u.signal("TERM");
    assert!(u.wait().success());
    assert!(
        u.log()
            .contains("connection driver: epoll (io_uring unavailable)"),
        "{}",
        u.log()
    );
}

#[test]
fn clients_that_never_read_stall_only_themselves_and_leave_the_pool_to_others() {
    common::with_driver(Driver::Uring, || {
        let srv = TestServer::start(Config {
            idle_timeout: Some(Duration::from_secs(60)),
            ..Config::default()
        });
        // Clients pour input in and never read a reply: each fills its socket buffers and
        // then its share of the pool, and is paused.
        let mut hogs = Vec::new();
        for _ in 0..16 {
            let h = srv.connect();
            h.set_nonblocking(true).unwrap();
            hogs.push(h);
        }
        let chunk = vec![b'x'; 64 * 1024];
        let mut poured = vec![0usize; hogs.len()];
        let mut stuck = 0;
        // Write until every hog's writes would block for a while: the server stopped reading.
        for _round in 0..4000 {
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
        // Others are still served, in full, while the hogs hold what they hold.
        for _ in 0..4 {
            let mut c = srv.connect();
            let msg = vec![b'q'; 200 * 1024];
            let mut w = c.try_clone().unwrap();
            let m = msg.clone();
            let t = std::thread::spawn(move || w.write_all(&m).unwrap());
            assert_eq!(read_n(&mut c, msg.len()), vec![b'Q'; msg.len()]);
            t.join().unwrap();
        }
        srv.wait_for("the four served clients' closes", |s| s.active == 16);
        drop(hogs);
        srv.wait_for("the hogs to be released", |s| s.active == 0);
    });
}
