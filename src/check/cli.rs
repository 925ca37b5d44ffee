//! What `upcase check` and `upcase check-client` do with their flags: which run, where
//! the report goes, and the exit status. The binary only hands over stdout and stderr.
//!
//! Exit statuses: 0 every counted case passed (with `--each`: every submission
//! conforms), 1 a case failed or the graded program could not be started, 2 usage errors
//! and an unreachable server, 130 interrupted by Ctrl-C (after printing the cases so far).

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::batch::{self, GradeSheet, SheetObserver, SheetRow};
use super::client::{self, ClientCheckArgs, ClientCheckError};
use super::export::{self, LiveTable};
use super::report::{CaseReport, CheckReport};
use super::{CheckArgs, CheckError, Observer};

/// The exit status after Ctrl-C, as shells report a death by SIGINT.
pub const EXIT_INTERRUPTED: u8 = 130;

/// `upcase check`.
pub fn check<W: Write + Send>(args: &CheckArgs, mut out: W, err: &mut dyn Write) -> u8 {
    let stop = interrupt_on_ctrl_c();
    if args.tls.insecure {
        let _ = writeln!(err, "{}", crate::tls::client::INSECURE_WARNING);
    }
    if let Some(dir) = &args.each {
        let mut printer = SheetPrinter::new(&mut out, dir, args.json);
        let sheet = batch::grade_servers(dir, args, &mut printer, &stop);
        return finish_sheet(sheet, args.sheet.as_deref(), args.json, out, err, "check");
    }
    let width = export::name_width(
        super::CASES
            .iter()
            .filter(|c| args.only.is_empty() || args.only.iter().any(|n| n == c.name))
            .map(|c| c.name),
    );
    let mut progress = Progress::new(args.timeout);
    let mut sink = if args.json {
        Err(&mut out)
    } else {
        Ok(LiveTable::new(&mut out, width))
    };
    let result = {
        let mut tee = Tee(
            &mut progress,
            sink.as_mut().ok().map(|l| l as &mut dyn Observer),
        );
        match (&args.server_cmd, &args.addr) {
            (Some(cmd), _) => batch::check_started_server(args, cmd, None, &mut tee, &stop)
                .map_err(|e| match e {
                    batch::GradeError::Check(e) => Failed::Check(e),
                    e => Failed::Other(e.to_string()),
                }),
            (None, Some(addr)) => super::run_observed(&args.options(addr.clone()), &mut tee, &stop)
                .map_err(Failed::Check),
            (None, None) => Err(Failed::Other("no server address given".into())),
        }
    };
    let report = match result {
        Ok(report) => report,
        Err(Failed::Check(
            e @ (CheckError::Unreachable(_)
            | CheckError::UnknownCase { .. }
            | CheckError::TlsSetup(_)),
        )) => {
            let _ = writeln!(err, "upcase check: error: {e}");
            return 2;
        }
        Err(Failed::Check(e)) => {
            let _ = writeln!(err, "upcase check: error: {e}");
            return 1;
        }
        Err(Failed::Other(e)) => {
            let _ = writeln!(err, "upcase check: error: {e}");
            return 1;
        }
    };
    finish_report(&report, args.junit.as_deref(), sink, err, "check")
}

/// `upcase check-client`.
pub fn check_client<W: Write + Send>(
    args: &ClientCheckArgs,
    mut out: W,
    err: &mut dyn Write,
) -> u8 {
    let stop = interrupt_on_ctrl_c();
    if let Some(dir) = &args.each {
        let mut printer = SheetPrinter::new(&mut out, dir, args.json);
        let sheet = batch::grade_clients(dir, args, &mut printer, &stop);
        return finish_sheet(
            sheet,
            args.sheet.as_deref(),
            args.json,
            out,
            err,
            "check-client",
        );
    }
    let width = export::name_width(
        client::CLIENT_CASES
            .iter()
            .filter(|c| args.only.is_empty() || args.only.iter().any(|n| n == c.name))
            .map(|c| c.name),
    );
    let mut progress = Progress::new(args.timeout);
    let mut sink = if args.json {
        Err(&mut out)
    } else {
        Ok(LiveTable::new(&mut out, width))
    };
    let opts = args.options(args.command.clone(), None);
    let result = {
        let mut tee = Tee(
            &mut progress,
            sink.as_mut().ok().map(|l| l as &mut dyn Observer),
        );
        client::run_observed(&opts, &mut tee, &stop)
    };
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            let _ = writeln!(err, "upcase check-client: error: {e}");
            return match e {
                ClientCheckError::Spawn { .. } | ClientCheckError::Runtime(_) => 1,
                _ => 2,
            };
        }
    };
    finish_report(&report, args.junit.as_deref(), sink, err, "check-client")
}

enum Failed {
    Check(CheckError),
    Other(String),
}

/// Where the report goes: the live table (`Ok`), or stdout as JSON (`Err`).
type Sink<'a, W> = Result<LiveTable<&'a mut W>, &'a mut W>;

fn finish_report<W: Write + Send>(
    report: &CheckReport,
    junit: Option<&Path>,
    sink: Sink<'_, W>,
    err: &mut dyn Write,
    name: &str,
) -> u8 {
    if let Some(path) = junit {
        if let Err(e) = std::fs::write(path, export::junit(report)) {
            let _ = writeln!(
                err,
                "upcase {name}: error: cannot write the JUnit report to {}: {e}",
                path.display()
            );
            return 2;
        }
    }
    let written = match sink {
        Ok(live) => live.finish(report).map(|_| ()),
        Err(out) => match export::json(report) {
            Ok(text) => out
                .write_all(text.as_bytes())
                .and_then(|()| out.write_all(b"\n"))
                .and_then(|()| out.flush()),
            Err(e) => {
                let _ = writeln!(err, "upcase {name}: error: cannot write the report: {e}");
                return 1;
            }
        },
    };
    if let Err(e) = written {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            let _ = writeln!(err, "upcase {name}: error: writing the report: {e}");
            return 1;
        }
    }
    if report.interrupted {
        EXIT_INTERRUPTED
    } else if report.success() {
        0
    } else {
        1
    }
}

fn finish_sheet<W: Write>(
    sheet: Result<GradeSheet, batch::BatchError>,
    path: Option<&Path>,
    json: bool,
    mut out: W,
    err: &mut dyn Write,
    name: &str,
) -> u8 {
    let sheet = match sheet {
        Ok(sheet) => sheet,
        Err(e) => {
            let _ = writeln!(err, "upcase {name}: error: {e}");
            return 2;
        }
    };
    let as_json = |sheet: &GradeSheet| {
        sheet.json().map(|mut s| {
            s.push('\n');
            s
        })
    };
    if let Some(path) = path {
        let text = if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
        {
            Ok(sheet.csv())
        } else {
            as_json(&sheet)
        };
        let written = text
            .map_err(std::io::Error::other)
            .and_then(|t| std::fs::write(path, t));
        if let Err(e) = written {
            let _ = writeln!(
                err,
                "upcase {name}: error: cannot write the grade sheet to {}: {e}",
                path.display()
            );
            return 2;
        }
    }
    let printed = if json {
        as_json(&sheet)
            .map_err(std::io::Error::other)
            .and_then(|t| out.write_all(t.as_bytes()))
    } else {
        writeln!(
            out,
            "\n{} of {} submissions conform{}",
            sheet.conforming,
            sheet.submissions,
            if sheet.interrupted {
                " (interrupted)"
            } else {
                ""
            }
        )
    };
    if let Err(e) = printed.and_then(|()| out.flush()) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            let _ = writeln!(err, "upcase {name}: error: writing the grade sheet: {e}");
            return 1;
        }
    }
    if sheet.interrupted {
        EXIT_INTERRUPTED
    } else if sheet.success() {
        0
    } else {
        1
    }
}

/// A token cancelled by the first Ctrl-C (SIGINT). The handler is installed before this
/// returns, so a Ctrl-C from then on stops the run instead of killing the process.
fn interrupt_on_ctrl_c() -> CancellationToken {
    let token = CancellationToken::new();
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return token;
    };
    let signal = {
        let _guard = rt.enter();
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
    };
    let Ok(mut signal) = signal else {
        return token;
    };
    let t = token.clone();
    let _ = std::thread::Builder::new()
        .name("upcase-check-ctrl-c".into())
        .spawn(move || {
            rt.block_on(async {
                if signal.recv().await.is_some() {
                    t.cancel();
                }
            });
        });
    token
}

/// Two observers as one.
struct Tee<'a>(&'a mut dyn Observer, Option<&'a mut dyn Observer>);

impl Observer for Tee<'_> {
    fn started(&mut self, report: &CheckReport) {
        self.0.started(report);
        if let Some(o) = &mut self.1 {
            o.started(report);
        }
    }
    fn case_started(&mut self, name: &'static str) {
        self.0.case_started(name);
        if let Some(o) = &mut self.1 {
            o.case_started(name);
        }
    }
    fn case_done(&mut self, case: &CaseReport) {
        self.0.case_done(case);
        if let Some(o) = &mut self.1 {
            o.case_done(case);
        }
    }
}

/// On a terminal, a line on stderr naming the case running, so that a hanging program
/// shows where it hangs; erased before each case's line is printed.
struct Progress {
    on: bool,
    timeout: Duration,
}

impl Progress {
    fn new(timeout: Duration) -> Progress {
        Progress {
            on: std::io::stderr().is_terminal(),
            timeout,
        }
    }
}

impl Observer for Progress {
    fn case_started(&mut self, name: &'static str) {
        if self.on {
            let mut e = std::io::stderr();
            let _ = write!(
                e,
                "\r\x1b[K… {name} (at most {})",
                humantime::format_duration(self.timeout)
            );
            let _ = e.flush();
        }
    }
    fn case_done(&mut self, _case: &CaseReport) {
        if self.on {
            let mut e = std::io::stderr();
            let _ = write!(e, "\r\x1b[K");
            let _ = e.flush();
        }
    }
}

/// With `--each`, one line per submission as it is graded (nothing under `--json`).
struct SheetPrinter<'a, W: Write> {
    out: &'a mut W,
    width: usize,
    on: bool,
    progress: bool,
}

impl<'a, W: Write> SheetPrinter<'a, W> {
    fn new(out: &'a mut W, dir: &Path, json: bool) -> SheetPrinter<'a, W> {
        let width = batch::submissions(dir)
            .map(|s| s.iter().map(|(n, _)| n.len()).max().unwrap_or(0))
            .unwrap_or(0);
        if !json {
            let _ = writeln!(out, "grading every submission in {}\n", dir.display());
        }
        SheetPrinter {
            out,
            width,
            on: !json,
            progress: std::io::stderr().is_terminal(),
        }
    }
}

impl<W: Write> SheetObserver for SheetPrinter<'_, W> {
    fn student_started(&mut self, student: &str) {
        if self.progress {
            let mut e = std::io::stderr();
            let _ = write!(e, "\r\x1b[K… grading {student}");
            let _ = e.flush();
        }
    }

    fn student_done(&mut self, row: &SheetRow) {
        if self.progress {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
        }
        if !self.on {
            return;
        }
        let what = match (&row.error, &row.diagnosis) {
            (Some(e), _) => e.clone(),
            (None, d) => {
                let mut s = format!("{} passed, {} failed", row.passed, row.failed);
                if let Some(d) = d {
                    s.push_str(&format!(": {d}"));
                } else if row.status == "fails" {
                    s.push_str(&format!(": {}", row.failed_cases.join(", ")));
                }
                s
            }
        };
        let label = match row.status {
            "conforms" => "PASS ",
            "fails" => "FAIL ",
            "error" => "ERROR",
            _ => "STOP ",
        };
        let _ = writeln!(
            self.out,
            "{label}  {:w$}  {what}",
            row.student,
            w = self.width
        );
        let _ = self.out.flush();
    }
}
