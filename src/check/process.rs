//! The programs being graded, as processes: a student's client for each `check-client`
//! case, a student's server for `--server-cmd`.
//!
//! Each is started in a process group of its own (`process_group(0)`), so that a program
//! that forks, or a shell running one, is stopped whole with one `killpg`, and so that
//! the terminal's Ctrl-C reaches the checker and not the student's program (the checker
//! then stops it itself). The group leader is watched with `waitid(WNOWAIT)`: it is known
//! to have exited without being reaped, so its process-group id cannot be reused before
//! the final `killpg` that clears away whatever it left running.
//!
//! Output is captured on threads, up to [`OUTPUT_CAP`] bytes a stream; the rest is read
//! and dropped, so that a chatty program never blocks on a full pipe.

use std::io::{self, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

/// Bytes of each output stream kept: far more than an excerpt shows, enough to find a
/// reply in a program's output among prompts and debugging lines.
pub const OUTPUT_CAP: usize = 256 * 1024;

/// How long the output threads may take to see the end of their pipes once the whole
/// process group is dead. Only a process that left the group (a daemon) can keep a pipe
/// open longer; its output is then cut there.
const OUTPUT_GRACE: Duration = Duration::from_secs(1);

/// One running program, in its own process group.
#[derive(Debug)]
pub struct Proc {
    child: Option<Child>,
    pid: i32,
    exited: watch::Receiver<bool>,
    stdout: Capture,
    stderr: Capture,
}

/// What a program left behind: how it ended, and its output.
#[derive(Debug, Clone)]
pub struct Ended {
    /// Its exit status (after a kill, the signal that killed it).
    pub status: Option<ExitStatus>,
    /// What it wrote to stdout, up to [`OUTPUT_CAP`] bytes.
    pub stdout: Vec<u8>,
    /// What it wrote to stderr, up to [`OUTPUT_CAP`] bytes.
    pub stderr: Vec<u8>,
}

#[derive(Debug, Clone)]
struct Capture {
    bytes: Arc<Mutex<Vec<u8>>>,
    done: Arc<Mutex<Option<mpsc::Receiver<()>>>>,
}

impl Capture {
    fn start(mut pipe: impl Read + Send + 'static) -> Capture {
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = bytes.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match pipe.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        let mut kept = sink.lock().unwrap_or_else(|p| p.into_inner());
                        let room = OUTPUT_CAP.saturating_sub(kept.len());
                        kept.extend_from_slice(&buf[..n.min(room)]);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            let _ = tx.send(());
        });
        Capture {
            bytes,
            done: Arc::new(Mutex::new(Some(rx))),
        }
    }

    /// What was captured, after waiting (at most [`OUTPUT_GRACE`]) for the pipe to close.
    fn take(&self) -> Vec<u8> {
        if let Some(rx) = self.done.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = rx.recv_timeout(OUTPUT_GRACE);
        }
        self.snapshot()
    }

    fn snapshot(&self) -> Vec<u8> {
        self.bytes.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Proc {
    /// Starts `cmd` in a new process group, with `stdin` written to its standard input
    /// (then closed; `None` leaves it empty) and its output captured.
    pub fn spawn(mut cmd: Command, stdin: Option<Vec<u8>>) -> io::Result<Proc> {
        cmd.process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn()?;
        let pid = i32::try_from(child.id()).map_err(io::Error::other)?;
        let input = child.stdin.take();
        std::thread::spawn(move || {
            if let (Some(mut pipe), Some(bytes)) = (input, stdin) {
                // A program that exits without reading its input is not an error here.
                let _ = pipe.write_all(&bytes);
            }
        });
        let stdout = Capture::start(child.stdout.take().expect("piped"));
        let stderr = Capture::start(child.stderr.take().expect("piped"));
        let (tx, exited) = watch::channel(false);
        std::thread::spawn(move || {
            wait_without_reaping(pid);
            let _ = tx.send(true);
        });
        Ok(Proc {
            child: Some(child),
            pid,
            exited,
            stdout,
            stderr,
        })
    }

    /// Whether the program (the group's leader) has exited.
    pub fn has_exited(&self) -> bool {
        *self.exited.borrow()
    }

    /// A watch that turns true when the program has exited.
    pub fn exited_watch(&self) -> watch::Receiver<bool> {
        self.exited.clone()
    }

    /// Waits until the program has exited.
    pub async fn exit(&self) {
        let mut rx = self.exited.clone();
        let _ = rx.wait_for(|&e| e).await;
    }

    /// Waits until the program has exited or `until`, whichever comes first; true if it
    /// exited.
    pub fn wait_until(&self, until: std::time::Instant) -> bool {
        while !self.has_exited() {
            let now = std::time::Instant::now();
            if now >= until {
                return false;
            }
            std::thread::sleep((until - now).min(Duration::from_millis(20)));
        }
        true
    }

    /// What it has written to stdout and stderr so far.
    pub fn output_so_far(&self) -> (Vec<u8>, Vec<u8>) {
        (self.stdout.snapshot(), self.stderr.snapshot())
    }

    /// Stops the whole process group (the program, if still running, and anything it
    /// left behind), reaps the program, and returns how it ended and what it wrote.
    pub fn finish(mut self) -> Ended {
        let status = self.reap();
        Ended {
            status,
            stdout: self.stdout.take(),
            stderr: self.stderr.take(),
        }
    }

    fn reap(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        kill_group(self.pid);
        child.wait().ok()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.reap();
    }
}

/// Sends SIGKILL to the process group `pgid`.
fn kill_group(pgid: i32) {
    // SAFETY: killpg is a plain system call with no memory arguments. `pgid` is the id of
    // a child this process has not reaped yet, so no other group can hold it.
    unsafe {
        libc::killpg(pgid, libc::SIGKILL);
    }
}

/// Blocks until process `pid` (a child of this process) has exited, leaving it to be
/// reaped by its `Child`.
fn wait_without_reaping(pid: i32) {
    let Ok(id) = libc::id_t::try_from(pid) else {
        return;
    };
    loop {
        // SAFETY: `info` is a valid, writable siginfo_t that outlives the call, and the
        // flags ask only to wait (WNOWAIT leaves the child unreaped).
        let rc = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::waitid(libc::P_PID, id, &mut info, libc::WEXITED | libc::WNOWAIT)
        };
        if rc == 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return;
        }
    }
}

/// An exit status in words: "exited with status 1", "killed by signal 11 (SIGSEGV)".
pub fn describe_exit(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        if code > 128 && code - 128 < 32 {
            // A shell reports its child's death by signal N as 128 + N.
            return format!(
                "exited with status {code} (a shell's way of saying: killed by signal {})",
                signal_text(code - 128)
            );
        }
        return format!("exited with status {code}");
    }
    match status.signal() {
        Some(sig) => format!("killed by signal {}", signal_text(sig)),
        None => "ended".to_string(),
    }
}

fn signal_text(sig: i32) -> String {
    let name = match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT, an abort or a failed assertion",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE, e.g. a division by zero",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV, a bad memory access",
        libc::SIGPIPE => "SIGPIPE, a write to a closed connection",
        libc::SIGTERM => "SIGTERM",
        _ => return sig.to_string(),
    };
    format!("{sig} ({name})")
}

/// Replaces each `{name}` of `vars` in `text` with its value.
pub fn substitute(text: &str, vars: &[(&str, &str)]) -> String {
    let mut out = text.to_string();
    for (name, value) in vars {
        out = out.replace(&format!("{{{name}}}"), value);
    }
    out
}

/// Quotes `s` as one word for `sh`.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@,+".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `{host}`, `{port}` and `{addr}` for an address: the host bare (`::1`, as a program
/// taking a host and a port wants it), the address bracketed as usual (`[::1]:2277`).
pub fn address_vars(addr: std::net::SocketAddr) -> [(&'static str, String); 3] {
    [
        ("host", addr.ip().to_string()),
        ("port", addr.port().to_string()),
        ("addr", addr.to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitution_and_quoting() {
        let vars = address_vars("[::1]:80".parse().unwrap());
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(
            substitute("c {host} {port} --to={addr}", &vars),
            "c ::1 80 --to=[::1]:80"
        );
        assert_eq!(shell_quote("a b'c"), r"'a b'\''c'");
        assert_eq!(shell_quote("/x/y-1"), "/x/y-1");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn a_killed_group_is_reported_with_its_signal() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo hi; sleep 60"]);
        let p = Proc::spawn(cmd, None).unwrap();
        assert!(!p.wait_until(std::time::Instant::now() + Duration::from_millis(50)));
        let ended = p.finish();
        assert_eq!(ended.status.unwrap().signal(), Some(libc::SIGKILL));
        assert_eq!(ended.stdout, b"hi\n");
    }

    #[test]
    fn exit_statuses_in_words() {
        assert_eq!(
            describe_exit(ExitStatus::from_raw(3 << 8)),
            "exited with status 3"
        );
        assert_eq!(
            describe_exit(ExitStatus::from_raw(libc::SIGSEGV)),
            "killed by signal 11 (SIGSEGV, a bad memory access)"
        );
    }
}
