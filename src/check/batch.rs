//! Grading a class: `--server-cmd` starts a student's server for the run, and `--each DIR`
//! grades every submission in a folder into one grade sheet.
//!
//! The folder layout: each subfolder of `DIR` (hidden ones and files skipped, in name
//! order) is one student's submission, named by the subfolder. By default a server is
//! started as `./server {port}` and a client run as `./client {host} {port}`, each in its
//! subfolder; `--server-cmd` and the `check-client` command override that, with `{dir}`
//! for the subfolder's path.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::client::{self, ClientCheckArgs};
use super::process::{self, describe_exit, Proc};
use super::report::{CaseReport, CheckReport, Excerpt, Kind, Status, EXCERPT_BYTES};
use super::{CheckArgs, CheckError, CheckOptions, Observer};

/// The server command of `--each` when `--server-cmd` is not given.
pub const DEFAULT_SERVER_CMD: &str = "./server {port}";

/// The client command of `check-client --each` when none is given.
pub const DEFAULT_CLIENT_CMD: [&str; 3] = ["./client", "{host}", "{port}"];

/// How often a starting server is tried while it is not yet accepting.
const START_POLL: Duration = Duration::from_millis(20);

/// Why a server started with `--server-cmd` could not be graded.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// No free port could be found.
    #[error("cannot find a free port: {0}")]
    Port(#[source] std::io::Error),
    /// The command could not be started.
    #[error("cannot start `{command}`: {source}")]
    Spawn {
        /// The command.
        command: String,
        /// Why.
        source: std::io::Error,
    },
    /// The server exited before it accepted a connection.
    #[error("the server {exit} before accepting connections on port {port}{output}")]
    Exited {
        /// How it ended.
        exit: String,
        /// The port it was given.
        port: u16,
        /// The end of its output, ready to print after the sentence.
        output: String,
    },
    /// The server was still not accepting after `--start-timeout`.
    #[error(
        "the server was not accepting connections on port {port} after {} (does it use the \
         port it is given?){output}", humantime::format_duration(*after)
    )]
    NotAccepting {
        /// The port it was given.
        port: u16,
        /// How long the checker waited.
        after: Duration,
        /// The end of its output.
        output: String,
    },
}

/// A student's server, started for a run and stopped when dropped.
#[derive(Debug)]
pub struct StartedServer {
    proc: Proc,
    /// Where it accepts connections.
    pub addr: SocketAddr,
    /// The command, after substitution.
    pub command: String,
}

/// Starts `template` (a shell command) with `{port}`, `{host}`, `{addr}` and `{dir}`
/// replaced, in `dir`, and waits until it accepts connections on a free loopback port.
pub fn start_server(
    template: &str,
    dir: Option<&Path>,
    start_timeout: Duration,
) -> Result<StartedServer, StartError> {
    let addr = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(StartError::Port)?;
    let mut vars: Vec<(&str, String)> = process::address_vars(addr).into_iter().collect();
    if let Some(dir) = dir {
        vars.push(("dir", process::shell_quote(&dir.to_string_lossy())));
    }
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let command = process::substitute(template, &vars);
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(&command);
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    let proc = Proc::spawn(cmd, None).map_err(|source| StartError::Spawn {
        command: command.clone(),
        source,
    })?;
    let until = std::time::Instant::now() + start_timeout;
    loop {
        if proc.has_exited() {
            let ended = proc.finish();
            return Err(StartError::Exited {
                exit: ended
                    .status
                    .map(describe_exit)
                    .unwrap_or_else(|| "ended".into()),
                port: addr.port(),
                output: output_tail(&ended.stdout, &ended.stderr),
            });
        }
        if TcpStream::connect_timeout(&addr, START_POLL.max(Duration::from_millis(100))).is_ok() {
            return Ok(StartedServer {
                proc,
                addr,
                command,
            });
        }
        if std::time::Instant::now() >= until {
            let (out, err) = proc.output_so_far();
            return Err(StartError::NotAccepting {
                port: addr.port(),
                after: start_timeout,
                output: output_tail(&out, &err),
            });
        }
        std::thread::sleep(START_POLL);
    }
}

/// `; its output ended: "…"`, from stderr or else stdout, or nothing if both are empty.
fn output_tail(stdout: &[u8], stderr: &[u8]) -> String {
    let bytes = if stderr.is_empty() { stdout } else { stderr };
    if bytes.is_empty() {
        return String::new();
    }
    let e = Excerpt::new(bytes, bytes.len().saturating_sub(EXCERPT_BYTES));
    format!("; its output ended: {e}")
}

impl StartedServer {
    /// A watch that turns true when the server exits.
    fn exited(&self) -> watch::Receiver<bool> {
        self.proc.exited_watch()
    }

    /// Stops the server and says, in `report`, whether it had ended during the run.
    pub fn finish(self, report: &mut CheckReport, died_after: Option<&'static str>) {
        report.command = Some(self.command.clone());
        let crashed = self.proc.has_exited();
        let ended = self.proc.finish();
        if crashed {
            let exit = ended
                .status
                .map(describe_exit)
                .unwrap_or_else(|| "ended".into());
            let during = died_after
                .map(|c| format!(" during the run, by the end of `{c}`"))
                .unwrap_or_else(|| " during the run".into());
            report.server_exit = Some(format!(
                "the server {exit}{during}{}",
                output_tail(&ended.stdout, &ended.stderr)
            ));
        }
    }
}

/// Passes every event on, and notes the first case after which the server was gone.
pub struct WatchServer<'a> {
    inner: &'a mut dyn Observer,
    exited: watch::Receiver<bool>,
    /// The case by whose end the server had exited, if it did.
    pub died_after: Option<&'static str>,
}

impl<'a> WatchServer<'a> {
    /// Watches `server`, telling `inner` everything.
    pub fn new(server: &StartedServer, inner: &'a mut dyn Observer) -> WatchServer<'a> {
        WatchServer {
            inner,
            exited: server.exited(),
            died_after: None,
        }
    }
}

impl Observer for WatchServer<'_> {
    fn started(&mut self, report: &CheckReport) {
        self.inner.started(report);
    }
    fn case_started(&mut self, name: &'static str) {
        self.inner.case_started(name);
    }
    fn case_done(&mut self, case: &CaseReport) {
        if self.died_after.is_none() && *self.exited.borrow() {
            self.died_after = Some(case.name);
        }
        self.inner.case_done(case);
    }
}

/// Runs `upcase check` against a server started with `template`: starts it, grades it,
/// stops it, and reports a crash during the run in [`CheckReport::server_exit`].
pub fn check_started_server(
    args: &CheckArgs,
    template: &str,
    dir: Option<&Path>,
    observer: &mut dyn Observer,
    stop: &CancellationToken,
) -> Result<CheckReport, GradeError> {
    let server = start_server(template, dir, args.start_timeout)?;
    let opts = CheckOptions {
        command: Some(server.command.clone()),
        ..args.options(server.addr.to_string())
    };
    let mut watch = WatchServer::new(&server, observer);
    let result = super::run_observed(&opts, &mut watch, stop);
    let died_after = watch.died_after;
    match result {
        Ok(mut report) => {
            server.finish(&mut report, died_after);
            Ok(report)
        }
        Err(e) => Err(GradeError::Check(e)),
    }
}

/// Why one submission could not be graded.
#[derive(Debug, thiserror::Error)]
pub enum GradeError {
    /// Its server did not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The check could not run.
    #[error(transparent)]
    Check(#[from] CheckError),
    /// The client check could not run.
    #[error(transparent)]
    Client(#[from] client::ClientCheckError),
    /// The default command's program is missing.
    #[error("no executable `{program}` in {dir}")]
    Missing {
        /// The program looked for.
        program: String,
        /// The submission's folder.
        dir: String,
    },
}

/// One student's line of the grade sheet.
#[derive(Debug, Clone, Serialize)]
pub struct SheetRow {
    /// The subfolder's name.
    pub student: String,
    /// `"conforms"`, `"fails"`, `"error"` (could not be graded) or `"interrupted"`.
    pub status: &'static str,
    /// Counted cases passed.
    pub passed: usize,
    /// Counted cases failed.
    pub failed: usize,
    /// Cases run but not counted.
    pub informational: usize,
    /// The names of the counted cases that failed.
    pub failed_cases: Vec<&'static str>,
    /// Whether the server would conform under `--ascii` rules (servers only; `false`
    /// for clients and errors).
    pub ascii_conforming: bool,
    /// The diagnosis line, if any.
    pub diagnosis: Option<String>,
    /// Why it could not be graded, for `"error"`.
    pub error: Option<String>,
    /// The whole report, as `--json` prints it for one run.
    pub report: Option<CheckReport>,
}

impl SheetRow {
    fn graded(student: String, report: CheckReport) -> SheetRow {
        SheetRow {
            student,
            status: if report.interrupted {
                "interrupted"
            } else if report.success() {
                "conforms"
            } else {
                "fails"
            },
            passed: report.passed,
            failed: report.failed,
            informational: report.informational,
            failed_cases: report
                .cases
                .iter()
                .filter(|c| c.counted && c.status == Status::Fail)
                .map(|c| c.name)
                .collect(),
            ascii_conforming: report.kind == Kind::Server && report.ascii_conforming,
            diagnosis: report
                .server_exit
                .iter()
                .chain(report.diagnosis.iter())
                .cloned()
                .reduce(|a, b| format!("{a}; {b}")),
            error: None,
            report: Some(report),
        }
    }

    fn error(student: String, e: &GradeError) -> SheetRow {
        SheetRow {
            student,
            status: "error",
            passed: 0,
            failed: 0,
            informational: 0,
            failed_cases: Vec::new(),
            ascii_conforming: false,
            diagnosis: None,
            error: Some(e.to_string()),
            report: None,
        }
    }
}

/// The grade sheet of a folder.
#[derive(Debug, Clone, Serialize)]
pub struct GradeSheet {
    /// Servers or clients.
    pub kind: Kind,
    /// The folder graded.
    pub dir: String,
    /// Submissions graded (rows).
    pub submissions: usize,
    /// Rows with status `"conforms"`.
    pub conforming: usize,
    /// The run was stopped before every submission was graded.
    pub interrupted: bool,
    /// One row per submission, in name order.
    pub rows: Vec<SheetRow>,
}

impl GradeSheet {
    /// Whether every submission conforms.
    pub fn success(&self) -> bool {
        !self.interrupted && self.conforming == self.submissions
    }

    /// The sheet as CSV: one header line, then one line per student.
    pub fn csv(&self) -> String {
        let mut s = String::from(
            "student,status,passed,failed,informational,failed_cases,ascii_conforming,diagnosis,error\n",
        );
        for r in &self.rows {
            let fields = [
                r.student.clone(),
                r.status.to_string(),
                r.passed.to_string(),
                r.failed.to_string(),
                r.informational.to_string(),
                r.failed_cases.join(";"),
                r.ascii_conforming.to_string(),
                r.diagnosis.clone().unwrap_or_default(),
                r.error.clone().unwrap_or_default(),
            ];
            let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
            s.push_str(&line.join(","));
            s.push('\n');
        }
        s
    }

    /// The sheet as pretty-printed JSON.
    pub fn json(&self) -> serde_json::Result<String> {
        serde_json::to_string_pretty(self)
    }
}

/// Quotes a CSV field when it needs it (RFC 4180).
fn csv_field(f: &str) -> String {
    if f.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", f.replace('"', "\"\""))
    } else {
        f.to_string()
    }
}

/// Why a folder could not be graded at all.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// The folder could not be read.
    #[error("cannot read the folder {dir}: {source}")]
    Read {
        /// The folder.
        dir: String,
        /// Why.
        source: std::io::Error,
    },
    /// It holds no submission.
    #[error("{dir} holds no submissions (one subfolder per student is expected)")]
    Empty {
        /// The folder.
        dir: String,
    },
}

/// The submissions in `dir`: its subfolders that are not hidden, in name order.
pub fn submissions(dir: &Path) -> Result<Vec<(String, PathBuf)>, BatchError> {
    let read = |source| BatchError::Read {
        dir: dir.display().to_string(),
        source,
    };
    let mut subs = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read)? {
        let entry = entry.map_err(read)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !entry.path().is_dir() {
            continue;
        }
        let path = std::fs::canonicalize(entry.path()).unwrap_or_else(|_| entry.path());
        subs.push((name, path));
    }
    subs.sort();
    if subs.is_empty() {
        return Err(BatchError::Empty {
            dir: dir.display().to_string(),
        });
    }
    Ok(subs)
}

/// Watches a batch: one call per submission graded.
pub trait SheetObserver {
    /// A submission is about to be graded.
    fn student_started(&mut self, _student: &str) {}
    /// A submission has been graded.
    fn student_done(&mut self, _row: &SheetRow) {}
}

/// Watches nothing.
impl SheetObserver for () {}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Grades every server in `dir` with `upcase check` (the settings of `args`).
pub fn grade_servers(
    dir: &Path,
    args: &CheckArgs,
    observer: &mut dyn SheetObserver,
    stop: &CancellationToken,
) -> Result<GradeSheet, BatchError> {
    let template = args.server_cmd.as_deref().unwrap_or(DEFAULT_SERVER_CMD);
    grade_each(dir, Kind::Server, observer, stop, |student_dir| {
        if args.server_cmd.is_none() && !is_executable(&student_dir.join("server")) {
            return Err(GradeError::Missing {
                program: "server".into(),
                dir: student_dir.display().to_string(),
            });
        }
        check_started_server(args, template, Some(student_dir), &mut (), stop)
    })
}

/// Grades every client in `dir` with `upcase check-client` (the settings of `args`).
pub fn grade_clients(
    dir: &Path,
    args: &ClientCheckArgs,
    observer: &mut dyn SheetObserver,
    stop: &CancellationToken,
) -> Result<GradeSheet, BatchError> {
    let template: Vec<String> = if args.command.is_empty() {
        DEFAULT_CLIENT_CMD.iter().map(|s| s.to_string()).collect()
    } else {
        args.command.clone()
    };
    grade_each(dir, Kind::Client, observer, stop, |student_dir| {
        if args.command.is_empty() && !is_executable(&student_dir.join("client")) {
            return Err(GradeError::Missing {
                program: "client".into(),
                dir: student_dir.display().to_string(),
            });
        }
        let d = student_dir.to_string_lossy();
        let command = template
            .iter()
            .map(|w| process::substitute(w, &[("dir", &d)]))
            .collect();
        let opts = args.options(command, Some(student_dir.to_path_buf()));
        Ok(client::run_observed(&opts, &mut (), stop)?)
    })
}

fn grade_each(
    dir: &Path,
    kind: Kind,
    observer: &mut dyn SheetObserver,
    stop: &CancellationToken,
    mut grade: impl FnMut(&Path) -> Result<CheckReport, GradeError>,
) -> Result<GradeSheet, BatchError> {
    let subs = submissions(dir)?;
    let mut rows = Vec::with_capacity(subs.len());
    let mut interrupted = false;
    for (student, path) in subs {
        if stop.is_cancelled() {
            interrupted = true;
            break;
        }
        observer.student_started(&student);
        let row = match grade(&path) {
            Ok(report) => SheetRow::graded(student, report),
            Err(e) => SheetRow::error(student, &e),
        };
        observer.student_done(&row);
        interrupted |= row.status == "interrupted";
        rows.push(row);
        if interrupted {
            break;
        }
    }
    Ok(GradeSheet {
        kind,
        dir: dir.display().to_string(),
        submissions: rows.len(),
        conforming: rows.iter().filter(|r| r.status == "conforms").count(),
        interrupted,
        rows,
    })
}
