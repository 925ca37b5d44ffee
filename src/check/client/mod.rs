//! `upcase check-client`: grades a student's client, the other half of the exercise.
//!
//! The client is run once per case, with the case's input on its stdin, against a
//! scripted server of the checker's own ([`script`]) on `--listen`. Each case judges what
//! the server received, what the client printed and how it ended. `{host}`, `{port}` and
//! `{addr}` in the command are replaced with the scripted server's address, and
//! `UPCASE_HOST`, `UPCASE_PORT` and `UPCASE_ADDR` are set in its environment, so a client
//! that takes its address from its arguments, from the environment, or has it compiled in
//! (graded with `--listen` on that address) can all be graded.
//!
//! Cases run one at a time on the same listening socket; `refused` runs last, because it
//! closes that socket. A client still running at the case's deadline is killed, with its
//! whole process group (see [`super::process`]).

mod script;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::time::Duration;

use clap::builder::PossibleValuesParser;
use tokio::net::TcpListener;
use tokio::time::{sleep, sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use super::process::{self, describe_exit, Proc};
use super::report::{self, CaseReport, CheckReport, Excerpt, Kind, ProcessOutput};
use super::wire::Failure;
use super::{conclude, diagnosis, Observer, Status};
use crate::transform::{upcase, Mode};
use script::Script;

/// Default `--timeout` of `check-client`: a correct client needs well under a second for
/// any case but `slow-reply` (1.5 s); five seconds leaves room for a slow machine.
pub const DEFAULT_CLIENT_CASE_TIMEOUT: Duration = Duration::from_secs(5);

/// The shortest `--timeout`: `slow-reply` answers after [`SLOW_REPLY`], and the client
/// must have time to print it.
pub const MIN_CLIENT_CASE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long the `slow-reply` server waits before answering: longer than the one-second
/// receive timeouts students set "to be safe", short enough to keep a run quick.
pub const SLOW_REPLY: Duration = Duration::from_millis(1500);

/// The pause between the pieces of a reply sent in pieces: long enough that the pieces
/// arrive in separate `recv` calls on any machine that is not badly overloaded.
pub const PIECE_GAP: Duration = Duration::from_millis(100);

/// The size of `long-message`'s line: beyond the 1 KiB and 4 KiB buffers of most
/// tutorials, and beyond one `recv` of a reply sent in pieces.
pub const LONG_MESSAGE: usize = 8 * 1024;

/// How often the checker looks at a client's output for the reply it waits for.
const OUTPUT_POLL: Duration = Duration::from_millis(20);

/// How long the scripted server may take, once the client is gone, to read what the
/// client sent before it went.
const DRAIN_GRACE: Duration = Duration::from_secs(1);

/// The command line of `upcase check-client`.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientCheckArgs {
    /// Where the scripted server listens; give the address a client has compiled in.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0",
          value_parser = crate::net::parse_listen_addr)]
    pub listen: SocketAddr,

    /// Deadline of each case; a client still running then is killed (2s to 1h).
    #[arg(long, value_name = "DUR", default_value = "5s", value_parser = parse_client_timeout)]
    pub timeout: Duration,

    /// Print the report as JSON on stdout instead of a table (with --each: the grade sheet).
    #[arg(long)]
    pub json: bool,

    /// Also write the report as JUnit XML to FILE.
    #[arg(long, value_name = "FILE", conflicts_with = "each")]
    pub junit: Option<PathBuf>,

    /// Run only these cases (repeat the flag, or separate names with commas).
    #[arg(long, value_name = "CASE", num_args = 1.., value_delimiter = ',',
          value_parser = PossibleValuesParser::new(names()))]
    pub only: Vec<String>,

    /// Grade every submission in DIR: each subfolder is one student, whose client is run
    /// in that subfolder with COMMAND (default `./client {host} {port}`; `{dir}` is the
    /// subfolder).
    #[arg(long, value_name = "DIR")]
    pub each: Option<PathBuf>,

    /// With --each: also write the grade sheet to FILE, as CSV if it ends in `.csv`, else
    /// as JSON.
    #[arg(long, value_name = "FILE", requires = "each")]
    pub sheet: Option<PathBuf>,

    /// The client to grade and its arguments, after `--`; `{host}`, `{port}` and `{addr}`
    /// are replaced with the scripted server's address.
    #[arg(last = true, value_name = "COMMAND", required_unless_present = "each")]
    pub command: Vec<String>,
}

impl ClientCheckArgs {
    /// The options these arguments ask for, running `command` in `dir`.
    pub fn options(&self, command: Vec<String>, dir: Option<PathBuf>) -> ClientCheckOptions {
        ClientCheckOptions {
            command,
            dir,
            listen: self.listen,
            timeout: self.timeout,
            only: self.only.clone(),
        }
    }
}

/// A `check-client --timeout`: between [`MIN_CLIENT_CASE_TIMEOUT`] and an hour.
pub fn parse_client_timeout(s: &str) -> Result<Duration, String> {
    let d = super::parse_case_timeout(s)?;
    if d < MIN_CLIENT_CASE_TIMEOUT {
        return Err(
            "must be at least 2s, since slow-reply answers after 1.5s (the range is 2s to 1h)"
                .into(),
        );
    }
    Ok(d)
}

/// What to grade and how.
#[derive(Debug, Clone)]
pub struct ClientCheckOptions {
    /// The program and its arguments, before substitution.
    pub command: Vec<String>,
    /// The directory to run it in; the checker's own when `None`.
    pub dir: Option<PathBuf>,
    /// Where the scripted server listens (port 0: a free one).
    pub listen: SocketAddr,
    /// The deadline of each case.
    pub timeout: Duration,
    /// Names of the cases to run; empty for all.
    pub only: Vec<String>,
}

impl ClientCheckOptions {
    /// Every case, for `command`, on a free loopback port, with the default deadline.
    pub fn new(command: Vec<String>) -> ClientCheckOptions {
        ClientCheckOptions {
            command,
            dir: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            timeout: DEFAULT_CLIENT_CASE_TIMEOUT,
            only: Vec::new(),
        }
    }
}

/// Why a client could not be graded at all.
#[derive(Debug, thiserror::Error)]
pub enum ClientCheckError {
    /// No command was given.
    #[error("no client command given: put it after `--`, e.g. `upcase check-client -- ./client {{host}} {{port}}`")]
    NoCommand,
    /// `only` named a case that does not exist.
    #[error("no case named `{name}`; the cases are: {}", names().join(", "))]
    UnknownCase {
        /// The name given.
        name: String,
    },
    /// The scripted server could not listen on `--listen`.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The client program could not be started.
    #[error("cannot start `{program}`: {source}")]
    Spawn {
        /// The program as given.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// The checker's own runtime could not start.
    #[error("cannot start the checker: {0}")]
    Runtime(#[source] std::io::Error),
}

/// One case of the client suite.
#[derive(Debug, Clone, Copy)]
pub struct ClientCase {
    /// Short name, as `--only` takes it.
    pub name: &'static str,
    /// What the scripted server and the input do.
    pub description: &'static str,
    /// The flaw a client that fails it most likely has.
    pub flaw: &'static str,
    /// Whether it counts towards the verdict.
    pub counted: bool,
    /// The client's stdin.
    input: fn() -> Vec<u8>,
    /// What the scripted server does.
    script: Script,
    /// Whether the case is over as soon as its reply shows on stdout (the client is then
    /// stopped), rather than when the client exits.
    ends_on_reply: bool,
    judge: fn(&Seen) -> Result<String, Failure>,
}

/// Every case, in the order they run.
pub const CLIENT_CASES: &[ClientCase] = &[
    ClientCase {
        name: "basic",
        description: "the server echoes the upper-case at once: the reply is on stdout, exit 0",
        flaw: "the client does not print the reply, or prints something else",
        counted: true,
        input: || b"hello, world\n".to_vec(),
        script: Script::Echo,
        ends_on_reply: false,
        judge: |s| {
            let note = s.shows_reply()?;
            s.exited_zero()?;
            Ok(format!("{note}, exit 0"))
        },
    },
    ClientCase {
        name: "sends-the-input",
        description: "exactly the typed line reaches the server, with or without its LF",
        flaw: "the client sends `sizeof(buf)` bytes, a NUL terminator or stale buffer bytes",
        counted: true,
        input: || b"send exactly this\n".to_vec(),
        script: Script::Echo,
        ends_on_reply: false,
        judge: Seen::sent_the_line,
    },
    ClientCase {
        name: "reply-in-pieces",
        description: "the reply comes in 3 writes 100 ms apart: the whole reply is shown",
        flaw: "the client calls `recv` once and assumes it got the whole reply",
        counted: true,
        input: || b"a reply in three pieces\n".to_vec(),
        script: Script::Reply {
            delay: Duration::ZERO,
            pieces: 3,
        },
        ends_on_reply: true,
        judge: Seen::shows_reply,
    },
    ClientCase {
        name: "slow-reply",
        description: "the server replies after 1.5 s: the reply is shown",
        flaw: "the client gives up early or does not wait for the reply",
        counted: true,
        input: || b"worth the wait\n".to_vec(),
        script: Script::Reply {
            delay: SLOW_REPLY,
            pieces: 1,
        },
        ends_on_reply: true,
        judge: Seen::shows_reply,
    },
    ClientCase {
        name: "long-message",
        description: "an 8 KiB line, its reply in 4 pieces: the whole reply is shown",
        flaw: "a fixed small buffer, a truncating `fgets`, or an unchecked `send` count",
        counted: true,
        input: || super::cases::large_text(LONG_MESSAGE),
        script: Script::Reply {
            delay: Duration::ZERO,
            pieces: 4,
        },
        ends_on_reply: true,
        judge: Seen::shows_reply,
    },
    ClientCase {
        name: "unicode",
        description: "`grüße, мир`: the reply is shown byte for byte",
        flaw: "the client mangles bytes above 0x7F",
        counted: true,
        input: || "grüße, мир\n".as_bytes().to_vec(),
        script: Script::Echo,
        ends_on_reply: true,
        judge: Seen::shows_reply,
    },
    ClientCase {
        name: "server-closes",
        description: "the server reads the line and closes without a reply: the client exits \
                      in time with an error message or a non-zero status, printing no garbage",
        flaw: "the client loops on `recv` returning 0, or prints a buffer `recv` did not fill",
        counted: true,
        input: || b"is anyone there?\n".to_vec(),
        script: Script::Close,
        ends_on_reply: false,
        judge: Seen::handled_the_close,
    },
    ClientCase {
        name: "eof-on-stdin",
        description: "stdin is empty: the client exits in time",
        flaw: "the client loops forever when `fgets` returns NULL",
        counted: true,
        input: Vec::new,
        script: Script::Echo,
        ends_on_reply: false,
        judge: Seen::exited_at_eof,
    },
    ClientCase {
        name: "several-lines",
        description: "two lines on stdin: both replies are shown (informational: the \
                      tutorial's client may stop after one)",
        flaw: "the client handles one line and exits",
        counted: false,
        input: || b"first line\nsecond line\n".to_vec(),
        script: Script::Echo,
        ends_on_reply: true,
        judge: Seen::shows_reply,
    },
    // Last: it closes the listening socket.
    ClientCase {
        name: "refused",
        description: "nothing listens: an error message and a non-zero status, in time",
        flaw: "the client ignores `connect`'s result",
        counted: true,
        input: || b"hello?\n".to_vec(),
        script: Script::Nothing,
        ends_on_reply: false,
        judge: Seen::reported_the_refusal,
    },
];

/// The names of every client case, in order.
pub fn names() -> Vec<&'static str> {
    CLIENT_CASES.iter().map(|c| c.name).collect()
}

/// What a case saw: the input, what the server got and sent, and how the client ended.
#[derive(Debug)]
struct Seen {
    input: Vec<u8>,
    /// Every byte the scripted server received, over all connections, in order.
    received: Vec<u8>,
    /// What the scripted server sends back for the input.
    reply: Vec<u8>,
    status: Option<ExitStatus>,
    /// The client was still running at the deadline, and was killed.
    timed_out: bool,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    timeout: Duration,
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

fn is_garbage(out: &[u8]) -> bool {
    match std::str::from_utf8(out) {
        Ok(s) => s
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')),
        Err(_) => true,
    }
}

impl Seen {
    fn timeout_text(&self) -> String {
        humantime::format_duration(self.timeout).to_string()
    }

    fn exit_text(&self) -> String {
        if self.timed_out {
            format!("still running after {} (killed)", self.timeout_text())
        } else {
            self.status
                .map(describe_exit)
                .unwrap_or_else(|| "ended".into())
        }
    }

    /// The replies, one per input line, without their LF: what must show on stdout.
    fn wanted(&self) -> Vec<Vec<u8>> {
        self.reply
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(<[u8]>::to_vec)
            .collect()
    }

    fn bytes_failure(&self, reason: String, expected: &[u8]) -> Failure {
        let mut f = Failure::with_bytes(reason, &self.reply, expected, &self.stdout);
        if let Some(d) = &mut f.detail {
            // The stdout around where the reply should start: the whole output is in
            // `output`; here the start is most telling.
            d.got = Excerpt::new(&self.stdout, 0);
        }
        f
    }

    fn shows_reply(&self) -> Result<String, Failure> {
        let wanted = self.wanted();
        for (i, line) in wanted.iter().enumerate() {
            if contains(&self.stdout, line) {
                continue;
            }
            let which = if wanted.len() > 1 {
                format!("reply {} of {}: ", i + 1, wanted.len())
            } else {
                String::new()
            };
            // The longest start of the reply that did show.
            let (mut lo, mut hi) = (0, line.len());
            while lo < hi {
                let mid = (lo + hi).div_ceil(2);
                if contains(&self.stdout, &line[..mid]) {
                    lo = mid;
                } else {
                    hi = mid - 1;
                }
            }
            let reason = if self.stdout.is_empty() {
                format!("{which}nothing on stdout ({})", self.exit_text())
            } else if lo >= 8.min(line.len()) && lo > 0 {
                format!(
                    "{which}only the first {lo} of {} bytes of the reply were shown ({})",
                    line.len(),
                    self.exit_text()
                )
            } else {
                format!(
                    "{which}the reply does not appear on stdout ({})",
                    self.exit_text()
                )
            };
            let mut f = self.bytes_failure(reason, line);
            if i > 0 {
                f = f.because(Some("the client handles one line and exits"));
            }
            return Err(f);
        }
        let total: usize = wanted.iter().map(Vec::len).sum();
        Ok(if wanted.len() > 1 {
            format!("{} replies shown ({total} bytes)", wanted.len())
        } else {
            format!("the {total}-byte reply shown")
        })
    }

    fn exited_zero(&self) -> Result<(), Failure> {
        match self.status {
            Some(s) if s.success() && !self.timed_out => Ok(()),
            _ => Err(Failure::new(format!(
                "the reply was shown, but the client {}",
                self.exit_text()
            ))
            .because(if self.timed_out {
                Some("the client does not exit at the end of its input")
            } else {
                None
            })),
        }
    }

    fn sent_the_line(&self) -> Result<String, Failure> {
        let line = self.input.strip_suffix(b"\n").unwrap_or(&self.input);
        if self.received == self.input || self.received == line {
            return Ok(format!(
                "{} bytes arrived, the line {} its LF",
                self.received.len(),
                if self.received == self.input {
                    "with"
                } else {
                    "without"
                }
            ));
        }
        let got = &self.received;
        let reason = if got.is_empty() {
            format!("nothing reached the server ({})", self.exit_text())
        } else if got.starts_with(line)
            && got[line.len()..].iter().all(|&b| b == b'\n' || b == 0)
            && got[line.len()..].contains(&0)
        {
            format!(
                "{} bytes arrived for a {}-byte line: NUL bytes after it (a C string's \
                 terminator, or sizeof(buf) bytes, was sent)",
                got.len(),
                self.input.len()
            )
        } else if got.starts_with(line) {
            format!(
                "{} bytes arrived for a {}-byte line: extra bytes after it",
                got.len(),
                self.input.len()
            )
        } else if line.starts_with(got) {
            format!(
                "only {} of the line's {} bytes arrived",
                got.len(),
                line.len()
            )
        } else {
            format!(
                "the bytes that arrived differ from the line, from byte {}",
                report::first_difference(&self.input, got)
            )
        };
        Err(Failure::with_bytes(reason, &self.input, &self.input, got))
    }

    fn handled_the_close(&self) -> Result<String, Failure> {
        if self.timed_out {
            return Err(Failure::new(format!(
                "still running {} after the server closed the connection",
                self.timeout_text()
            ))
            .because(Some("the client loops on `recv` returning 0")));
        }
        if is_garbage(&self.stdout) {
            return Err(Failure::new(
                "printed bytes that are not text after the server closed (a buffer `recv` \
                 did not fill?)",
            )
            .because(Some("the client prints a buffer `recv` did not fill")));
        }
        let status = self.status.expect("not timed out");
        if status.signal_death() {
            return Err(Failure::new(format!(
                "{} after the server closed the connection",
                describe_exit(status)
            )));
        }
        if status.success() && self.stderr.is_empty() {
            return Err(Failure::new(
                "exited with status 0 and no message on stderr, though the server closed \
                 without replying",
            )
            .because(Some(
                "the client takes a closed connection for an empty reply: `recv` returning 0 \
                 is an error here",
            )));
        }
        Ok(format!("{}, and said so", describe_exit(status)))
    }

    fn exited_at_eof(&self) -> Result<String, Failure> {
        if self.timed_out {
            return Err(Failure::new(format!(
                "still running {} after its input ended (stdin was empty)",
                self.timeout_text()
            )));
        }
        let status = self.status.expect("not timed out");
        if status.signal_death() {
            return Err(Failure::new(format!(
                "{} when its input was empty",
                describe_exit(status)
            )));
        }
        Ok(format!("{} at the end of its input", describe_exit(status)))
    }

    fn reported_the_refusal(&self) -> Result<String, Failure> {
        if self.timed_out {
            return Err(Failure::new(format!(
                "still running after {}, with nothing listening",
                self.timeout_text()
            )));
        }
        let status = self.status.expect("not timed out");
        if status.signal_death() || status.success() {
            return Err(Failure::new(format!(
                "{} with nothing listening: the failed `connect` went unnoticed",
                describe_exit(status)
            )));
        }
        if self.stderr.is_empty() && self.stdout.is_empty() {
            return Err(Failure::new(format!(
                "{} but printed no error message",
                describe_exit(status)
            )));
        }
        Ok(format!("{}, with a message", describe_exit(status)))
    }
}

trait SignalDeath {
    fn signal_death(&self) -> bool;
}

impl SignalDeath for ExitStatus {
    fn signal_death(&self) -> bool {
        use std::os::unix::process::ExitStatusExt;
        self.signal().is_some()
    }
}

/// Runs the selected cases against the client and reports on each.
pub fn run(opts: &ClientCheckOptions) -> Result<CheckReport, ClientCheckError> {
    run_observed(opts, &mut (), &CancellationToken::new())
}

/// [`run`], telling `observer` about each case and stopping early when `stop` is
/// cancelled.
pub fn run_observed(
    opts: &ClientCheckOptions,
    observer: &mut dyn Observer,
    stop: &CancellationToken,
) -> Result<CheckReport, ClientCheckError> {
    if opts.command.is_empty() {
        return Err(ClientCheckError::NoCommand);
    }
    if let Some(name) = opts.only.iter().find(|n| !names().contains(&n.as_str())) {
        return Err(ClientCheckError::UnknownCase { name: name.clone() });
    }
    let selected: Vec<&ClientCase> = CLIENT_CASES
        .iter()
        .filter(|c| opts.only.is_empty() || opts.only.iter().any(|n| n == c.name))
        .collect();
    let std_listener =
        crate::net::bind_tcp(opts.listen).map_err(|source| ClientCheckError::Listen {
            addr: opts.listen,
            source,
        })?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ClientCheckError::Runtime)?;
    std::thread::scope(|s| {
        s.spawn(|| {
            runtime.block_on(async {
                let listener = TcpListener::from_std(std_listener).map_err(|source| {
                    ClientCheckError::Listen {
                        addr: opts.listen,
                        source,
                    }
                })?;
                run_cases(opts, listener, &selected, observer, stop).await
            })
        })
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

async fn run_cases(
    opts: &ClientCheckOptions,
    listener: TcpListener,
    selected: &[&ClientCase],
    observer: &mut dyn Observer,
    stop: &CancellationToken,
) -> Result<CheckReport, ClientCheckError> {
    let addr = listener
        .local_addr()
        .map_err(|source| ClientCheckError::Listen {
            addr: opts.listen,
            source,
        })?;
    let vars = process::address_vars(addr);
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let command: Vec<String> = opts
        .command
        .iter()
        .map(|w| process::substitute(w, &vars))
        .collect();
    let started = Instant::now();
    let mut report = CheckReport {
        kind: Kind::Client,
        server: addr.to_string(),
        resolved: addr.to_string(),
        tls: None,
        mode: "unicode",
        timeout_ms: u64::try_from(opts.timeout.as_millis()).unwrap_or(u64::MAX),
        passed: 0,
        failed: 0,
        informational: 0,
        duration_ms: 0.0,
        diagnosis: None,
        ascii_conforming: false,
        interrupted: false,
        command: Some(
            command
                .iter()
                .map(|w| process::shell_quote(w))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        server_exit: None,
        cases: Vec::with_capacity(selected.len()),
    };
    observer.started(&report);
    let mut listener = Some(std::sync::Arc::new(listener));
    for case in selected {
        if case.script == Script::Nothing {
            listener = None; // nothing listens from now on
        }
        observer.case_started(case.name);
        let done = tokio::select! {
            biased;
            () = stop.cancelled() => {
                report.interrupted = true;
                break;
            }
            done = run_case(case, listener.clone(), &command, addr, opts) => done?,
        };
        observer.case_done(&done);
        report.cases.push(done);
    }
    report.duration_ms = started.elapsed().as_secs_f64() * 1e3;
    conclude(&mut report, diagnosis::CLIENT_FLAWS);
    Ok(report)
}

async fn run_case(
    case: &ClientCase,
    listener: Option<std::sync::Arc<TcpListener>>,
    command: &[String],
    addr: SocketAddr,
    opts: &ClientCheckOptions,
) -> Result<CaseReport, ClientCheckError> {
    let input = (case.input)();
    let reply = upcase(&input, Mode::Unicode);
    let start = Instant::now();
    let deadline = start + opts.timeout;
    let server = match listener {
        Some(l) => Some(script::CaseServer::start(l, case.script).await),
        None => None,
    };
    let mut cmd = Command::new(&command[0]);
    cmd.args(&command[1..])
        .env("UPCASE_HOST", addr.ip().to_string())
        .env("UPCASE_PORT", addr.port().to_string())
        .env("UPCASE_ADDR", addr.to_string());
    if let Some(dir) = &opts.dir {
        cmd.current_dir(dir);
    }
    let proc = Proc::spawn(cmd, Some(input.clone())).map_err(|source| ClientCheckError::Spawn {
        program: command[0].clone(),
        source,
    })?;
    let wanted: Vec<Vec<u8>> = reply
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    let mut timed_out = false;
    loop {
        tokio::select! {
            () = proc.exit() => break,
            () = sleep_until(deadline) => {
                timed_out = true;
                break;
            }
            () = sleep(OUTPUT_POLL), if case.ends_on_reply => {
                let (out, _) = proc.output_so_far();
                if wanted.iter().all(|l| contains(&out, l)) {
                    break;
                }
            }
        }
    }
    // A client stopped because its reply showed did not time out.
    let exited = proc.has_exited();
    let ended = tokio::task::spawn_blocking(move || proc.finish())
        .await
        .map_err(|e| ClientCheckError::Runtime(std::io::Error::other(e)))?;
    let received = match server {
        Some(s) => s.stop(DRAIN_GRACE).await,
        None => Vec::new(),
    };
    let seen = Seen {
        input,
        received,
        reply,
        status: if exited { ended.status } else { None },
        timed_out,
        stdout: ended.stdout,
        stderr: ended.stderr,
        timeout: opts.timeout,
    };
    let seen = if !exited && !timed_out {
        // Stopped once its reply showed: judged as if it had exited well.
        Seen {
            status: Some(success_status()),
            ..seen
        }
    } else {
        seen
    };
    let outcome = (case.judge)(&seen);
    let duration_ms = report::round_ms(start.elapsed().as_secs_f64() * 1e3);
    Ok(match outcome {
        Ok(reason) => CaseReport {
            name: case.name,
            description: case.description,
            flaw: case.flaw,
            hint: String::new(),
            unicode: false,
            counted: case.counted,
            status: Status::Pass,
            reason,
            duration_ms,
            detail: None,
            output: None,
        },
        Err(f) => CaseReport {
            name: case.name,
            description: case.description,
            flaw: case.flaw,
            hint: f.cause.unwrap_or_default().to_string(),
            unicode: false,
            counted: case.counted,
            status: Status::Fail,
            reason: f.reason,
            duration_ms,
            detail: f.detail.map(|d| *d),
            output: Some(ProcessOutput {
                exit: seen.exit_text(),
                stdout: Excerpt::new(&seen.stdout, 0),
                stderr: Excerpt::new(&seen.stderr, 0),
            }),
        },
    })
}

/// The status of a process that exited with 0.
fn success_status() -> ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    ExitStatus::from_raw(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_is_last_and_names_are_unique() {
        let mut n = names();
        assert_eq!(n.last(), Some(&"refused"));
        n.sort_unstable();
        n.dedup();
        assert_eq!(n.len(), CLIENT_CASES.len());
    }

    #[test]
    fn garbage_is_what_is_not_text() {
        assert!(!is_garbage(b"Enter a message: \r\n\tok"));
        assert!(is_garbage(b"\0\0\0"));
        assert!(is_garbage(b"\xff"));
        assert!(!is_garbage("grüße".as_bytes()));
    }
}
