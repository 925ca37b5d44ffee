//! `upcase check`: grades any capitalisation server against the protocol, case by case,
//! as h2spec does for HTTP/2.
//!
//! Laid out by concern, after hyperfine:
//!
//! | module | job |
//! | --- | --- |
//! | this one | options ([`CheckArgs`], [`CheckOptions`]) and the executor, [`run`] |
//! | [`cases`] | the suite: what each case sends and which flaw fails it |
//! | `wire` | the checker's connections: send, expect, deadlines, failures |
//! | [`diagnosis`] | the tutor: known student flaws as data, matched against the failures |
//! | [`report`] | the results, as documented `serde` structs |
//! | [`export`] | the results as a table (live or at once), JSON or JUnit XML |
//! | [`client`] | `upcase check-client`: grades a student's client against a scripted server |
//! | [`process`] | the graded programs: spawning in a process group, output, deadlines |
//! | [`batch`] | `--server-cmd` and `--each`: starting servers, grading a folder, grade sheets |
//! | [`cli`] | what the binary calls: flags to runs, reports to stdout, exit statuses |
//!
//! The reference for users (every case, flag, JSON field) is `docs/check.md`.
//!
//! Every expectation is computed with the reference transform
//! ([`crate::transform::upcase`]), so the checker and `upcased` cannot disagree about
//! what upper-casing means. The library returns a [`CheckReport`]; the binary prints it.

pub mod batch;
pub mod cases;
pub mod cli;
pub mod client;
pub mod diagnosis;
pub mod export;
pub mod process;
pub mod report;
mod wire;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::PossibleValuesParser;
use tokio::time::{timeout_at, Instant};
use tokio_util::sync::CancellationToken;
use tracing::debug;

pub use cases::{Case, CASES};
pub use report::{CaseReport, CheckReport, Detail, Excerpt, Kind, ProcessOutput, Status};

use crate::client::ClientError;
use crate::transform::Mode;
use wire::{Ctx, Failure};

/// Default `--timeout`: the deadline of each case. A conforming server on loopback needs
/// milliseconds for any case; five seconds leaves room for a slow machine or network and
/// keeps a run against a server that hangs in every case under two minutes.
pub const DEFAULT_CASE_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest `--timeout`: an hour per case is already more than any grading run can
/// use, and far below the durations that overflow a clock (issue 12, item 4).
pub const MAX_CASE_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// Extra time the executor allows a case past its deadline before abandoning it. Every
/// wait inside a case is already bounded by the deadline; this only catches a wait that
/// is not.
const CASE_GRACE: Duration = Duration::from_secs(1);

/// The command line of `upcase check`.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    /// The server to grade: `HOST:PORT` or `[V6]:PORT`.
    #[arg(
        value_name = "ADDR",
        value_parser = crate::client::parse_target,
        required_unless_present_any = ["server_cmd", "each"],
        conflicts_with_all = ["server_cmd", "each"],
        help = "The server to grade: HOST:PORT or [V6]:PORT (the first address that accepts is used)"
    )]
    pub addr: Option<String>,

    /// Print the report as JSON on stdout instead of a table (with --each: the grade sheet).
    #[arg(long)]
    pub json: bool,

    /// Also write the report as JUnit XML to FILE, for CI systems and graders.
    #[arg(long, value_name = "FILE", conflicts_with = "each")]
    pub junit: Option<PathBuf>,

    /// Deadline of each case (500ms, 5s, 1m; at most 1h).
    #[arg(long, value_name = "DUR", default_value = "5s", value_parser = parse_case_timeout)]
    pub timeout: Duration,

    /// Run only these cases (repeat the flag, or separate names with commas).
    #[arg(long, value_name = "CASE", num_args = 1.., value_delimiter = ',',
          value_parser = PossibleValuesParser::new(cases::names()))]
    pub only: Vec<String>,

    /// Grade a server that claims ASCII-only upper-casing: only a–z change, and the
    /// Unicode cases are reported but not counted.
    #[arg(long)]
    pub ascii: bool,

    /// Start the server to grade with this shell command, on a free port: `{port}`,
    /// `{host}`, `{addr}` (and `{dir}` with --each) are replaced. It is stopped after the
    /// run; a crash is reported as such.
    #[arg(long, value_name = "CMD")]
    pub server_cmd: Option<String>,

    /// Grade every submission in DIR: each subfolder is one student, whose server is
    /// started with --server-cmd (default `./server {port}`, run in the subfolder).
    #[arg(long, value_name = "DIR")]
    pub each: Option<PathBuf>,

    /// With --each: also write the grade sheet to FILE, as CSV if it ends in `.csv`, else
    /// as JSON.
    #[arg(long, value_name = "FILE", requires = "each")]
    pub sheet: Option<PathBuf>,

    /// How long a server started with --server-cmd may take to accept connections.
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = parse_case_timeout)]
    pub start_timeout: Duration,

    /// `--tls`, `--ca`, `--sni`, `--insecure`.
    #[command(flatten)]
    pub tls: CheckTlsArgs,
}

/// `upcase check --tls`: grade a TLS server with the same cases, each connection shaking
/// hands first.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CheckTlsArgs {
    /// Speak TLS to the server: verify it against the system's roots (or --ca), with SNI
    /// from the host of ADDR (or --sni).
    #[arg(long)]
    pub tls: bool,

    /// With --tls: trust only the CA certificates in FILE (PEM), e.g. upcased's
    /// --tls-self-signed FILE.
    #[arg(long, value_name = "FILE", requires = "tls")]
    pub ca: Option<PathBuf>,

    /// With --tls: the server name to send and verify, instead of the host of ADDR.
    #[arg(long, value_name = "NAME", requires = "tls")]
    pub sni: Option<String>,

    /// With --tls: verify no certificate at all (says so on stderr). For trying things out.
    #[arg(long, requires = "tls")]
    pub insecure: bool,
}

impl CheckTlsArgs {
    /// The client's TLS options, if `--tls`.
    pub fn options(&self) -> Option<crate::client::TlsOptions> {
        self.tls.then(|| crate::client::TlsOptions {
            ca: self.ca.clone(),
            sni: self.sni.clone(),
            insecure: self.insecure,
        })
    }
}

impl CheckArgs {
    /// The options these arguments ask for, against `target`.
    pub fn options(&self, target: impl Into<String>) -> CheckOptions {
        CheckOptions {
            target: target.into(),
            mode: if self.ascii {
                Mode::Ascii
            } else {
                Mode::Unicode
            },
            timeout: self.timeout,
            only: self.only.clone(),
            command: None,
            tls: self.tls.options(),
        }
    }
}

/// A `--timeout` value: a duration, more than zero (which would fail every case at once)
/// and at most [`MAX_CASE_TIMEOUT`].
///
/// A local bounded parser: the shared `upcase::units` parsers were not on `main` yet.
pub fn parse_case_timeout(s: &str) -> Result<Duration, String> {
    let d = crate::net::parse_duration(s)?;
    if d.is_zero() {
        return Err("must be more than zero (the range is 1ms to 1h)".into());
    }
    if d > MAX_CASE_TIMEOUT {
        return Err("must be at most 1h (the range is 1ms to 1h)".into());
    }
    Ok(d)
}

/// What to check and how.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// The server's address, as the user gave it.
    pub target: String,
    /// What the server claims to do; [`Mode::Ascii`] makes the Unicode cases informational.
    pub mode: Mode,
    /// The deadline of each case.
    pub timeout: Duration,
    /// Names of the cases to run; empty for all.
    pub only: Vec<String>,
    /// The command the server was started with (`--server-cmd`), for the report.
    pub command: Option<String>,
    /// Over TLS: whom to trust and which name to verify (the target's host by default).
    pub tls: Option<crate::client::TlsOptions>,
}

impl CheckOptions {
    /// Every case, against `target`, in Unicode mode, with the default deadline.
    pub fn new(target: impl Into<String>) -> CheckOptions {
        CheckOptions {
            target: target.into(),
            mode: Mode::Unicode,
            timeout: DEFAULT_CASE_TIMEOUT,
            only: Vec::new(),
            command: None,
            tls: None,
        }
    }
}

/// Why a check could not run at all. A server that fails cases is not an error: that is
/// what the [`CheckReport`] says.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The server could not be reached, so no case could run.
    #[error(transparent)]
    Unreachable(#[from] ClientError),
    /// `--tls`: the client configuration could not be made (an unreadable `--ca` file, a
    /// bad `--sni` name).
    #[error(transparent)]
    TlsSetup(Box<ClientError>),
    /// `--tls`: the server was reached but the first handshake failed (a certificate not
    /// trusted, a name mismatch, a server that speaks no TLS): no case could run.
    #[error(transparent)]
    Tls(Box<crate::tls::TlsError>),
    /// `only` named a case that does not exist.
    #[error("no case named `{name}`; the cases are: {}", cases::names().join(", "))]
    UnknownCase {
        /// The name given.
        name: String,
    },
    /// The checker's own runtime could not start.
    #[error("cannot start the checker: {0}")]
    Runtime(#[source] std::io::Error),
}

/// Watches a run as it goes: the live table, a progress line, the `--server-cmd` watcher.
/// Every method has an empty default.
pub trait Observer: Send {
    /// The run is about to start; `report` holds its settings and no case yet.
    fn started(&mut self, _report: &CheckReport) {}
    /// A case is about to run.
    fn case_started(&mut self, _name: &'static str) {}
    /// A case has finished; its hint is not final until the run is (see [`conclude`]).
    fn case_done(&mut self, _case: &CaseReport) {}
}

/// Watches nothing.
impl Observer for () {}

/// Runs the selected cases against the server, one after another, and reports on each.
///
/// First connects once, so that an unreachable server is an error
/// ([`CheckError::Unreachable`]) rather than a report of every case failing. Runs on a
/// thread and runtime of its own, so it may be called from async code too.
pub fn run(opts: &CheckOptions) -> Result<CheckReport, CheckError> {
    run_observed(opts, &mut (), &CancellationToken::new())
}

/// [`run`], telling `observer` about each case, and stopping early (with
/// [`CheckReport::interrupted`] set) when `stop` is cancelled.
pub fn run_observed(
    opts: &CheckOptions,
    observer: &mut dyn Observer,
    stop: &CancellationToken,
) -> Result<CheckReport, CheckError> {
    let selected = select(&opts.only)?;
    let tls = match &opts.tls {
        Some(o) => Some(
            crate::client::TlsClient::new(&opts.target, o)
                .map_err(|e| CheckError::TlsSetup(Box::new(e)))?,
        ),
        None => None,
    };
    let (addr, session) = match &tls {
        None => {
            let probe = crate::client::connect(&opts.target, opts.timeout)?;
            let addr = probe.peer_addr().map_err(|source| ClientError::Connect {
                addr: opts.target.clone(),
                source,
            })?;
            (addr, None)
        }
        Some(client) => {
            let mut probe = client
                .connect(&opts.target, opts.timeout)
                .map_err(|e| match e {
                    ClientError::Tls(e) => CheckError::Tls(Box::new(e)),
                    e => CheckError::Unreachable(e),
                })?;
            let addr = probe
                .sock
                .peer_addr()
                .map_err(|source| ClientError::Connect {
                    addr: opts.target.clone(),
                    source,
                })?;
            let session = crate::tls::session_info(&probe.conn);
            let _ = crate::tls::close_write(&mut probe);
            (addr, Some(session))
        }
    };
    let target = Target { addr, tls, session };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CheckError::Runtime)?;
    let report = std::thread::scope(|s| {
        s.spawn(|| runtime.block_on(run_cases(opts, target, &selected, observer, stop)))
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    });
    Ok(report)
}

/// Fills in what needs every case: the counts, whether the run would pass under
/// `--ascii` rules, the diagnosis from `table`, and each failure's hint.
pub fn conclude(report: &mut CheckReport, table: &'static [diagnosis::KnownFlaw]) {
    let count = |status| {
        report
            .cases
            .iter()
            .filter(|c| c.counted && c.status == status)
            .count()
    };
    report.passed = count(Status::Pass);
    report.failed = count(Status::Fail);
    report.informational = report.cases.iter().filter(|c| !c.counted).count();
    report.ascii_conforming = report
        .cases
        .iter()
        .all(|c| c.unicode || !c.counted || c.status == Status::Pass);
    let found = diagnosis::diagnose(&report.cases, table);
    report.diagnosis = found.line();
    for case in &mut report.cases {
        if case.status == Status::Fail && case.hint.is_empty() {
            case.hint = found.hint_for(case.name).unwrap_or(case.flaw).to_string();
        }
    }
    report.duration_ms = report::round_ms(report.duration_ms);
}

/// The cases `only` names, in suite order; all of them when it is empty.
fn select(only: &[String]) -> Result<Vec<&'static Case>, CheckError> {
    if let Some(name) = only.iter().find(|n| !CASES.iter().any(|c| c.name == *n)) {
        return Err(CheckError::UnknownCase { name: name.clone() });
    }
    Ok(CASES
        .iter()
        .filter(|c| only.is_empty() || only.iter().any(|n| n == c.name))
        .collect())
}

/// Where the cases go: the address the probe reached, and under `--tls` the client
/// configuration and what the probe's handshake negotiated.
struct Target {
    addr: SocketAddr,
    tls: Option<crate::client::TlsClient>,
    session: Option<crate::tls::SessionInfo>,
}

async fn run_cases(
    opts: &CheckOptions,
    target: Target,
    selected: &[&Case],
    observer: &mut dyn Observer,
    stop: &CancellationToken,
) -> CheckReport {
    let started = Instant::now();
    let mut report = CheckReport {
        kind: Kind::Server,
        server: opts.target.clone(),
        resolved: target.addr.to_string(),
        tls: target.session.clone(),
        mode: match opts.mode {
            Mode::Unicode => "unicode",
            Mode::Ascii => "ascii",
        },
        timeout_ms: u64::try_from(opts.timeout.as_millis()).unwrap_or(u64::MAX),
        passed: 0,
        failed: 0,
        informational: 0,
        duration_ms: 0.0,
        diagnosis: None,
        ascii_conforming: false,
        interrupted: false,
        command: opts.command.clone(),
        server_exit: None,
        cases: Vec::with_capacity(selected.len()),
    };
    observer.started(&report);
    for case in selected {
        let counted = !(case.unicode && opts.mode == Mode::Ascii);
        // Unicode cases always expect Unicode upper-casing: under --ascii they report
        // whether the server does more than it claims.
        let mode = if case.unicode {
            Mode::Unicode
        } else {
            opts.mode
        };
        observer.case_started(case.name);
        let start = Instant::now();
        let ctx = Ctx {
            addr: target.addr,
            tls: target.tls.clone(),
            mode,
            deadline: start + opts.timeout,
            timeout: opts.timeout,
        };
        let outcome = tokio::select! {
            biased;
            () = stop.cancelled() => {
                report.interrupted = true;
                break;
            }
            outcome = timeout_at(ctx.deadline + CASE_GRACE, case.run(ctx.clone())) => outcome,
        };
        let outcome = outcome.unwrap_or_else(|_| {
            Err(Failure::new(format!(
                "the case did not finish within {}",
                ctx.timeout_text()
            )))
        });
        let duration_ms = report::round_ms(start.elapsed().as_secs_f64() * 1e3);
        let (status, reason, detail, hint) = match outcome {
            Ok(note) => (Status::Pass, note, None, String::new()),
            Err(f) => (
                Status::Fail,
                f.reason,
                f.detail.map(|d| *d),
                f.cause.unwrap_or_default().to_string(),
            ),
        };
        debug!(case = case.name, ?status, %reason, duration_ms, "case done");
        let done = CaseReport {
            name: case.name,
            description: case.description,
            flaw: case.flaw,
            hint,
            unicode: case.unicode,
            counted,
            status,
            reason,
            duration_ms,
            detail,
            output: None,
        };
        observer.case_done(&done);
        report.cases.push(done);
    }
    report.duration_ms = started.elapsed().as_secs_f64() * 1e3;
    conclude(&mut report, diagnosis::SERVER_FLAWS);
    report
}
