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
//! | [`report`] | the results, as documented `serde` structs |
//! | [`export`] | the results as a table, JSON or JUnit XML |
//!
//! Every expectation is computed with the reference transform
//! ([`crate::transform::upcase`]), so the checker and `upcased` cannot disagree about
//! what upper-casing means. The library returns a [`CheckReport`]; the binary prints it.

pub mod cases;
pub mod export;
pub mod report;
mod wire;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::PossibleValuesParser;
use tokio::time::{timeout_at, Instant};
use tracing::debug;

pub use cases::{Case, CASES};
pub use report::{CaseReport, CheckReport, Detail, Excerpt, Status};

use crate::client::{self, ClientError};
use crate::transform::Mode;
use wire::{Ctx, Failure};

/// Default `--timeout`: the deadline of each case. A conforming server on loopback needs
/// milliseconds for any case; five seconds leaves room for a slow machine or network and
/// keeps a run against a server that hangs in every case under two minutes.
pub const DEFAULT_CASE_TIMEOUT: Duration = Duration::from_secs(5);

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
        help = "The server to grade: HOST:PORT or [V6]:PORT (the first address that accepts is used)"
    )]
    pub addr: String,

    /// Print the report as JSON on stdout instead of a table.
    #[arg(long)]
    pub json: bool,

    /// Also write the report as JUnit XML to FILE, for CI systems and graders.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,

    /// Deadline of each case (500ms, 5s, 1m).
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
}

impl CheckArgs {
    /// The options these arguments ask for.
    pub fn options(&self) -> CheckOptions {
        CheckOptions {
            target: self.addr.clone(),
            mode: if self.ascii {
                Mode::Ascii
            } else {
                Mode::Unicode
            },
            timeout: self.timeout,
            only: self.only.clone(),
        }
    }
}

/// A `--timeout` value: a duration, and not zero (which would fail every case at once).
fn parse_case_timeout(s: &str) -> Result<Duration, String> {
    let d = crate::net::parse_duration(s)?;
    if d.is_zero() {
        return Err("must be more than zero".into());
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
}

impl CheckOptions {
    /// Every case, against `target`, in Unicode mode, with the default deadline.
    pub fn new(target: impl Into<String>) -> CheckOptions {
        CheckOptions {
            target: target.into(),
            mode: Mode::Unicode,
            timeout: DEFAULT_CASE_TIMEOUT,
            only: Vec::new(),
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

/// Runs the selected cases against the server, one after another, and reports on each.
///
/// First connects once, so that an unreachable server is an error
/// ([`CheckError::Unreachable`]) rather than a report of every case failing. Runs on a
/// thread and runtime of its own, so it may be called from async code too.
pub fn run(opts: &CheckOptions) -> Result<CheckReport, CheckError> {
    let selected = select(&opts.only)?;
    let probe = client::connect(&opts.target, opts.timeout)?;
    let addr = probe.peer_addr().map_err(|source| ClientError::Connect {
        addr: opts.target.clone(),
        source,
    })?;
    drop(probe);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CheckError::Runtime)?;
    let report = std::thread::scope(|s| {
        s.spawn(|| runtime.block_on(run_cases(opts, addr, &selected)))
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    });
    Ok(report)
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

async fn run_cases(opts: &CheckOptions, addr: SocketAddr, selected: &[&Case]) -> CheckReport {
    let started = Instant::now();
    let mut cases = Vec::with_capacity(selected.len());
    for case in selected {
        let counted = !(case.unicode && opts.mode == Mode::Ascii);
        // Unicode cases always expect Unicode upper-casing: under --ascii they report
        // whether the server does more than it claims.
        let mode = if case.unicode {
            Mode::Unicode
        } else {
            opts.mode
        };
        let start = Instant::now();
        let ctx = Ctx {
            addr,
            mode,
            deadline: start + opts.timeout,
            timeout: opts.timeout,
        };
        let outcome = match timeout_at(ctx.deadline + CASE_GRACE, case.run(ctx)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(Failure::new(format!(
                "the case did not finish within {}",
                ctx.timeout_text()
            ))),
        };
        let duration_ms = start.elapsed().as_secs_f64() * 1e3;
        let (status, reason, detail) = match outcome {
            Ok(note) => (Status::Pass, note, None),
            Err(f) => (Status::Fail, f.reason, f.detail),
        };
        debug!(case = case.name, ?status, %reason, duration_ms, "case done");
        cases.push(CaseReport {
            name: case.name,
            description: case.description,
            flaw: case.flaw,
            unicode: case.unicode,
            counted,
            status,
            reason,
            duration_ms,
            detail,
        });
    }
    let count = |status| {
        cases
            .iter()
            .filter(|c| c.counted && c.status == status)
            .count()
    };
    CheckReport {
        server: opts.target.clone(),
        resolved: addr.to_string(),
        mode: match opts.mode {
            Mode::Unicode => "unicode",
            Mode::Ascii => "ascii",
        },
        timeout_ms: u64::try_from(opts.timeout.as_millis()).unwrap_or(u64::MAX),
        passed: count(Status::Pass),
        failed: count(Status::Fail),
        informational: cases.iter().filter(|c| !c.counted).count(),
        duration_ms: started.elapsed().as_secs_f64() * 1e3,
        cases,
    }
}
