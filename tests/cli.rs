//! Both binaries, black-box, as a user runs them.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command as Cmd;
use common::{up, Upcased};
use predicates::prelude::*;

fn upcase() -> Cmd {
    let mut c = Cmd::cargo_bin("upcase").unwrap();
    c.env_remove("UPCASE_ADDR").timeout(common::PATIENCE);
    c
}

fn upcased() -> Cmd {
    let mut c = Cmd::cargo_bin("upcased").unwrap();
    c.env_remove("UPCASED_LISTEN").timeout(common::PATIENCE);
    c
}

/// A port that nothing listens on (bound, then released).
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn send_prints_only_the_reply() {
    let srv = Upcased::spawn(&[]);
    upcase()
        .args(["-c", &srv.addr.to_string(), "send", "hello", "straße"])
        .assert()
        .success()
        .stdout("HELLO STRASSE\n");
}

#[test]
fn the_address_can_come_from_the_environment() {
    let srv = Upcased::spawn(&[]);
    upcase()
        .env("UPCASE_ADDR", srv.addr.to_string())
        .args(["send", "env"])
        .assert()
        .success()
        .stdout("ENV\n");
}

#[test]
fn pipe_mode_is_binary_safe() {
    let srv = Upcased::spawn(&[]);
    let mut input: Vec<u8> = (0..=255u8).collect();
    input.extend_from_slice("\nlines of text, ünïcode\nand no final newline".as_bytes());
    input.extend(std::iter::repeat_n(b'x', 300_000));
    upcase()
        .args(["-c", &srv.addr.to_string()])
        .write_stdin(input.clone())
        .assert()
        .success()
        .stdout(up(&input));
}

#[test]
fn refused_connection_is_one_line_and_exit_1() {
    let addr = format!("127.0.0.1:{}", closed_port());
    let out = upcase().args(["-c", &addr, "send", "hi"]).assert().code(1);
    let err = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&addr) && err.contains("connection refused"),
        "{err}"
    );
    assert!(err.contains("is upcased running?"), "{err}");
    assert!(out.get_output().stdout.is_empty());
}

#[test]
fn refused_in_pipe_mode_too() {
    let addr = format!("127.0.0.1:{}", closed_port());
    upcase()
        .args(["-c", &addr])
        .write_stdin("x\n")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("is upcased running?"));
}

#[test]
fn a_silent_server_times_out_with_the_address() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let t = Instant::now();
    upcase()
        .args(["-c", &addr, "--timeout", "300ms", "send", "anyone?"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!(
            "no reply from {addr} within 300ms"
        )));
    assert!(t.elapsed() < Duration::from_secs(10));
    drop(silent);
}

#[test]
fn bad_arguments_are_usage_errors() {
    upcase()
        .args(["--timeout", "soon", "send", "x"])
        .assert()
        .code(2);
    upcase().args(["send"]).assert().code(2);
    upcase().args(["--bogus"]).assert().code(2);
    upcased()
        .args(["--listen", "nonsense"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "invalid value 'nonsense' for '--listen <ADDR>'",
        ));
    upcased()
        .args(["--idle-timeout", "forever"])
        .assert()
        .code(2);
    upcased().args(["--workers", "0"]).assert().code(2);
}

#[test]
fn a_busy_port_is_one_line_naming_the_address_and_exit_1() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = upcased().args(["--listen", &addr]).assert().code(1);
    let err = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    let last = err.lines().last().unwrap_or_default();
    assert!(last.contains(&addr) && last.contains("in use"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn listen_addresses_come_from_the_environment_comma_separated() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_upcased"))
        .env("UPCASED_LISTEN", "127.0.0.1:0,127.0.0.1:0")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = child.stderr.take().unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while seen.matches("listening on 127.0.0.1:").count() < 2 {
        let n = err.read(&mut buf).unwrap();
        assert!(n > 0, "exited early: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(
        !seen.contains("127.0.0.1:0\n"),
        "real ports are logged: {seen}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn sigterm_and_sigint_exit_0_soon() {
    for sig in ["TERM", "INT"] {
        let mut srv = Upcased::spawn(&[]);
        let t = Instant::now();
        srv.signal(sig);
        let st = srv.wait();
        assert!(st.success(), "SIG{sig}: {st:?}");
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}

#[test]
fn json_logs_are_one_object_per_line() {
    let srv = Upcased::spawn(&["--log-format", "json"]);
    let log = srv.log();
    let line = log.lines().find(|l| l.contains("listening on")).unwrap();
    assert!(line.starts_with('{') && line.ends_with('}'), "{line}");
}

#[test]
fn a_closed_stdout_is_a_quiet_exit() {
    let srv = Upcased::spawn(&[]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_upcase"))
        .args(["-c", &srv.addr.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    stdin.write_all(b"first line\n").unwrap();
    let mut first = [0u8; 11];
    stdout.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"FIRST LINE\n");
    drop(stdout); // like `| head -1`
    let writer = std::thread::spawn(move || {
        for _ in 0..1000 {
            if stdin.write_all(&[b'y'; 4096]).is_err() {
                break;
            }
        }
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success(), "{:?}", out.status);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn nc_style_client_without_newline_gets_reply_then_eof() {
    let srv = Upcased::spawn(&["--ascii"]);
    let mut c = srv.connect();
    c.write_all("straße".as_bytes()).unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    assert_eq!(got, "STRAßE".as_bytes());
}

// ---- the client's command line

fn stderr_of(out: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&out.get_output().stderr).into_owned()
}

#[test]
fn a_subcommand_takes_only_the_flags_it_uses() {
    let help = upcase().args(["check", "--help"]).assert().success();
    let help = String::from_utf8_lossy(&help.get_output().stdout).into_owned();
    for flag in ["--connect", "--udp", "UPCASE_ADDR", "--no-history"] {
        assert!(!help.contains(flag), "check --help lists {flag}:\n{help}");
    }
    upcase().args(["check", "--udp", "x"]).assert().code(2);
    upcase()
        .args(["check", "-c", "127.0.0.1:1", "127.0.0.1:1"])
        .assert()
        .code(2);
    let out = upcase()
        .args(["-c", "127.0.0.1:1", "check", "127.0.0.1:1"])
        .assert()
        .code(2);
    assert!(stderr_of(&out).contains("not used by `upcase check`"));
    upcase()
        .args(["--no-history", "send", "x"])
        .assert()
        .code(2);
    // send and bench take the connection flags before or after their name.
    let srv = Upcased::spawn(&[]);
    for args in [
        ["-c", &srv.addr.to_string(), "send", "a"],
        ["send", "-c", &srv.addr.to_string(), "a"],
    ] {
        upcase().args(args).assert().success().stdout("A\n");
    }
}

#[test]
fn addresses_follow_the_servers_rule_with_hints() {
    let out = upcase().args(["check", "24101"]).assert().code(2);
    assert!(stderr_of(&out).contains("did you mean 127.0.0.1:24101?"));
    let out = upcase()
        .args(["-c", "::1:2277", "send", "hi"])
        .assert()
        .code(2);
    assert!(stderr_of(&out).contains("[::1]:2277"));
    let out = upcase()
        .env("UPCASE_ADDR", "24101")
        .args(["send", "hi"])
        .assert()
        .code(2);
    assert!(stderr_of(&out).contains("did you mean 127.0.0.1:24101?"));
    upcase()
        .args(["-c", "24101", "bench", "--duration", "1s"])
        .assert()
        .code(2);
}

#[test]
fn every_duration_flag_of_the_client_is_bounded() {
    for args in [
        ["send", "--timeout", "18446744073709551615", "hi"],
        ["--timeout", "18446744073709551615", "send", "hi"],
        ["send", "--timeout", "0", "hi"],
        ["send", "--timeout", "8d", "hi"],
    ] {
        let out = upcase().args(args).assert().code(2);
        assert!(!stderr_of(&out).contains("panicked"), "{args:?}");
    }
}

#[test]
fn help_and_version_say_what_upcase_is() {
    let short = upcase().arg("-h").assert().success();
    let long = upcase().arg("--help").assert().success();
    let first = |a: &assert_cmd::assert::Assert| {
        String::from_utf8_lossy(&a.get_output().stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(first(&short), first(&long));
    let long = String::from_utf8_lossy(&long.get_output().stdout).into_owned();
    assert!(long.contains("EXAMPLES:"), "{long}");
    upcase()
        .arg("--version")
        .assert()
        .success()
        .stdout("upcase 0.1.0\n");
    let bench = upcase().args(["bench", "--help"]).assert().success();
    let bench = String::from_utf8_lossy(&bench.get_output().stdout).into_owned();
    let udp = bench
        .split("--udp")
        .nth(1)
        .and_then(|s| s.split("\n\n").next())
        .unwrap_or_default();
    assert!(!udp.contains("print"), "bench --udp: {udp}");
}

#[test]
fn send_exits_1_on_a_short_reply_and_prints_nothing() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            let _ = c.read(&mut [0u8; 64]);
            let _ = c.write_all(b"HEL");
        }
    });
    let out = upcase()
        .args(["-c", &addr, "send", "hello"])
        .assert()
        .code(1)
        .stdout("");
    assert!(stderr_of(&out).contains("closed the connection early"));
    let out = upcase()
        .args(["-c", &addr])
        .write_stdin("hello\n")
        .assert()
        .code(1)
        .stdout("HEL");
    assert!(stderr_of(&out).contains("closed the connection early"));
}

#[test]
fn an_idle_pipe_told_the_server_closed_exits_0() {
    let mut srv = common::TestServer::start(upcase::server::Config::default());
    let mut child = Command::new(env!("CARGO_BIN_EXE_upcase"))
        .args(["-c", &srv.addr.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap(); // open, and silent: `sleep 30 | upcase`
    srv.wait_for("the pipe's connection", |st| st.active == 1);
    srv.begin_stop(); // a drain: SIGTERM to upcased
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {err}", out.status);
    assert!(err.contains("nothing is lost"), "{err}");
    srv.join().unwrap();
}

// ---- the interactive session on a real terminal (a pseudo-terminal the test holds)

/// `upcase` with a pseudo-terminal as its controlling terminal and stdin/stdout/stderr;
/// the test types into the master side and reads the screen from it.
struct Terminal {
    child: std::process::Child,
    master: std::fs::File,
    screen: std::sync::Arc<std::sync::Mutex<String>>,
    /// The prompt the session draws: `upcase/tls> ` with `--tls`.
    prompt: &'static str,
}

impl Terminal {
    fn spawn(args: &[&str], env: &[(&str, &std::path::Path)]) -> Terminal {
        use std::os::fd::FromRawFd;
        use std::os::unix::process::CommandExt;
        // SAFETY: posix_openpt returns a new descriptor or -1, checked below.
        let fd = unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY) };
        assert!(fd >= 0, "posix_openpt: {}", std::io::Error::last_os_error());
        // SAFETY: fd is a master pseudo-terminal we own.
        assert_eq!(unsafe { libc::grantpt(fd) }, 0);
        // SAFETY: as above.
        assert_eq!(unsafe { libc::unlockpt(fd) }, 0);
        let mut name = [0 as libc::c_char; 128];
        // SAFETY: the buffer is ours and its length is passed.
        let named = unsafe { libc::ptsname_r(fd, name.as_mut_ptr(), name.len()) };
        assert_eq!(named, 0);
        // SAFETY: ptsname_r wrote a NUL-terminated string into `name`.
        let path = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) }
            .to_str()
            .unwrap()
            .to_string();
        // SAFETY: fd is open and owned by nothing else from here on.
        let master = unsafe { std::fs::File::from_raw_fd(fd) };
        let slave = || {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .unwrap()
        };
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_upcase"));
        cmd.args(args)
            .env_remove("UPCASE_ADDR")
            .env("TERM", "xterm")
            .stdin(slave())
            .stdout(slave())
            .stderr(slave());
        for (k, v) in env {
            cmd.env(k, v);
        }
        // SAFETY: setsid and ioctl are async-signal-safe and touch only the child: a new
        // session whose controlling terminal is the pseudo-terminal on stdin.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap();
        let screen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut reader = master.try_clone().unwrap();
        let sink = screen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // Ends with EIO once the child and its terminal are gone.
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Terminal {
            child,
            master,
            screen,
            prompt: if args.contains(&"--tls") {
                "upcase/tls> "
            } else {
                "upcase> "
            },
        }
    }

    fn type_keys(&mut self, keys: &str) {
        self.master.write_all(keys.as_bytes()).unwrap();
    }

    /// Waits until the screen shows `text` (`n` times), failing after [`common::PATIENCE`].
    fn wait_for(&self, text: &str, n: usize) {
        let end = Instant::now() + common::PATIENCE;
        while self.screen.lock().unwrap().matches(text).count() < n {
            assert!(
                Instant::now() < end,
                "no {text:?} on the screen:\n{}",
                self.screen.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until a prompt is drawn after the last `text` on the screen: the session is
    /// reading its next line, so a key typed now goes to the line editor, not to the
    /// terminal's cooked mode between two lines.
    fn wait_for_prompt_after(&self, text: &str) {
        let end = Instant::now() + common::PATIENCE;
        loop {
            {
                let screen = self.screen.lock().unwrap();
                if let (Some(t), Some(p)) = (screen.rfind(text), screen.rfind(self.prompt)) {
                    if p > t {
                        return;
                    }
                }
                assert!(Instant::now() < end, "no prompt after {text:?}:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn wait(&mut self) -> std::process::ExitStatus {
        let end = Instant::now() + common::PATIENCE;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(Instant::now() < end, "upcase did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("upcase-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn typed_ahead_lines_are_all_answered_in_order_and_kept_in_the_history() {
    let srv = Upcased::spawn(&[]);
    let state = temp_dir("state");
    let addr = srv.addr.to_string();
    let mut t = Terminal::spawn(&["-c", &addr], &[("XDG_STATE_HOME", &state)]);
    t.wait_for("connected to", 1);
    // As `tmux send-keys "aaa" Enter "bbb" Enter "ccc" Enter` does: all in one go.
    t.type_keys("aaa\rbbb\rccc\r");
    t.wait_for("CCC", 1);
    let screen = t.screen.lock().unwrap().clone();
    let (a, b, c) = (
        screen.find("AAA").unwrap(),
        screen.find("BBB").unwrap(),
        screen.find("CCC").unwrap(),
    );
    assert!(a < b && b < c, "{screen}");
    t.wait_for_prompt_after("CCC");
    t.type_keys("\x04"); // Ctrl-D at the prompt
    assert!(t.wait().success());
    let history = std::fs::read_to_string(state.join("upcase/history")).unwrap();
    assert_eq!(history, "aaa\nbbb\nccc\n");

    // The next session recalls it: Up, Up, Enter sends "bbb" again.
    let home = temp_dir("home");
    let mut t = Terminal::spawn(
        &["-c", &addr],
        &[("XDG_STATE_HOME", &state), ("HOME", &home)],
    );
    t.wait_for("connected to", 1);
    t.type_keys("\x1b[A\x1b[A\r");
    t.wait_for("BBB", 1);
    t.wait_for_prompt_after("BBB");
    t.type_keys("\x03"); // Ctrl-C at the prompt quits too
    assert!(t.wait().success());

    // --no-history writes nothing; without XDG_STATE_HOME the file is under HOME.
    let mut t = Terminal::spawn(&["-c", &addr, "--no-history"], &[("HOME", &home)]);
    t.wait_for("connected to", 1);
    t.type_keys("secret\r");
    t.wait_for("SECRET", 1);
    t.wait_for_prompt_after("SECRET");
    t.type_keys("\x04");
    assert!(t.wait().success());
    assert!(!home.join(".local/state/upcase/history").exists());
    let mut t = Terminal::spawn(&["-c", &addr], &[("HOME", &home)]);
    t.wait_for("connected to", 1);
    t.type_keys("kept\r");
    t.wait_for("KEPT", 1);
    t.wait_for_prompt_after("KEPT");
    t.type_keys("\x04");
    assert!(t.wait().success());
    let history = std::fs::read_to_string(home.join(".local/state/upcase/history")).unwrap();
    assert_eq!(history, "kept\n");
    let _ = std::fs::remove_dir_all(&state);
    let _ = std::fs::remove_dir_all(&home);
}

/// Sends a line the server (which reports each line it sees on `seen`) never answers,
/// presses Ctrl-C while the client waits, and checks the session goes on: "cancelled", and
/// the next line answered.
fn press_ctrl_c_while_waiting(t: &mut Terminal, seen: &std::sync::mpsc::Receiver<()>) {
    t.type_keys("stuck\r");
    seen.recv_timeout(common::PATIENCE).unwrap();
    // Ctrl-C: the terminal sends SIGINT to the waiting client.
    t.type_keys("\x03");
    t.wait_for("cancelled", 1);
    t.type_keys("next\r");
    t.wait_for("NEXT", 1);
    assert!(t.child.try_wait().unwrap().is_none(), "the session ended");
}

#[test]
fn ctrl_c_while_waiting_returns_to_the_prompt() {
    // The first connection gets no reply; the next ones are answered.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let (seen_tx, seen_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for (i, c) in l.incoming().enumerate() {
            let Ok(mut c) = c else { return };
            let seen_tx = seen_tx.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = c.read(&mut buf) {
                    if i == 0 {
                        let _ = seen_tx.send(());
                        std::thread::sleep(common::PATIENCE * 2);
                        return;
                    }
                    let _ = c.write_all(&buf[..n].to_ascii_uppercase());
                }
            });
        }
    });
    let mut t = Terminal::spawn(&["-c", &addr, "--no-history", "--timeout", "1m"], &[]);
    t.wait_for("connected to", 1);
    press_ctrl_c_while_waiting(&mut t, &seen_rx);
    t.type_keys("\x04");
    assert!(t.wait().success());
}

// ---- the same session over TLS: one session loop, so the same history and Ctrl-C

#[test]
fn a_tls_session_on_a_terminal_shows_the_banner_and_keeps_the_history() {
    let dir = temp_dir("tls-ca");
    let ca = dir.join("ca.pem");
    let ca = ca.to_str().unwrap();
    let srv = Upcased::spawn_tls(&[
        "--tls-self-signed",
        ca,
        "--banner",
        "{id} saw {client}",
        "--instance-id",
        "edge-1",
    ]);
    let target = format!("localhost:{}", srv.addr.port());
    let tls = ["--tls", "--ca", ca, "--banner", "-c", &target];
    let state = temp_dir("tls-state");
    let mut t = Terminal::spawn(&tls, &[("XDG_STATE_HOME", &state)]);
    t.wait_for("over TLSv1.3", 1);
    t.wait_for("edge-1 saw 127.0.0.1:", 1);
    t.type_keys("aaa\rbbb\r");
    t.wait_for("BBB", 1);
    t.wait_for_prompt_after("BBB");
    t.type_keys("\x04");
    assert!(t.wait().success());
    let history = std::fs::read_to_string(state.join("upcase/history")).unwrap();
    assert_eq!(history, "aaa\nbbb\n");

    // The next session recalls it: Up, Up, Enter sends "aaa" again.
    let mut t = Terminal::spawn(&tls, &[("XDG_STATE_HOME", &state)]);
    t.wait_for("edge-1 saw 127.0.0.1:", 1);
    t.type_keys("\x1b[A\x1b[A\r");
    t.wait_for("AAA", 1);
    t.wait_for_prompt_after("AAA");
    t.type_keys("\x03"); // Ctrl-C at the prompt quits
    assert!(t.wait().success());

    // --no-history writes nothing.
    let home = temp_dir("tls-home");
    let args = [&tls[..], &["--no-history"]].concat();
    let mut t = Terminal::spawn(&args, &[("HOME", &home)]);
    t.wait_for("edge-1 saw 127.0.0.1:", 1);
    t.type_keys("secret\r");
    t.wait_for("SECRET", 1);
    t.wait_for_prompt_after("SECRET");
    t.type_keys("\x04");
    assert!(t.wait().success());
    assert!(!home.join(".local/state/upcase/history").exists());
    for d in [dir, state, home] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn ctrl_c_while_waiting_over_tls_returns_to_the_prompt() {
    // A TLS server whose first connection takes a line and never answers; the next ones
    // are answered.
    let dir = temp_dir("tls-stall");
    let ca = dir.join("ca.pem");
    let config = upcase::tls::server_config(upcase::tls::self_signed(&ca).unwrap()).unwrap();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = format!("localhost:{}", l.local_addr().unwrap().port());
    let (seen_tx, seen_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for (i, c) in l.incoming().enumerate() {
            let Ok(c) = c else { return };
            let (config, seen_tx) = (config.clone(), seen_tx.clone());
            std::thread::spawn(move || {
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut s = rustls::StreamOwned::new(conn, c);
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = s.read(&mut buf) {
                    if i == 0 {
                        let _ = seen_tx.send(());
                        std::thread::sleep(common::PATIENCE * 2);
                        return;
                    }
                    let _ = s.write_all(&buf[..n].to_ascii_uppercase());
                    let _ = s.flush();
                }
            });
        }
    });
    let args = [
        "--tls",
        "--ca",
        ca.to_str().unwrap(),
        "-c",
        &target,
        "--no-history",
        "--timeout",
        "1m",
    ];
    let mut t = Terminal::spawn(&args, &[]);
    t.wait_for("over TLSv1.3", 1);
    press_ctrl_c_while_waiting(&mut t, &seen_rx);
    t.wait_for_prompt_after("NEXT");
    t.type_keys("\x04");
    assert!(t.wait().success());
    let _ = std::fs::remove_dir_all(dir);
}
