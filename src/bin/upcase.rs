//! `upcase`: the client. With no subcommand it runs an interactive session on a terminal
//! and pipe mode otherwise; `send` sends one message; `bench` loads the server and
//! measures it. Exit codes: 0 success, 1 a failure talking to the server (for `bench`: a
//! wrong reply or a failed connection), 2 usage errors (for `bench`: also an unreachable
//! server).

use std::io::{IsTerminal, Write};
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use upcase::bench::{self, BenchArgs};
use upcase::client::{self, ClientError, Editor};
use upcase::logging::{self, LogFormat};
use upcase::net::parse_duration;

/// Client for the capitalisation service: talk to upcased (or any compatible server).
///
/// With no subcommand: an interactive session when stdin is a terminal, otherwise pipe
/// mode (stdin → server → stdout, binary-safe, FIN at end of input).
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Cli {
    /// Server address, HOST:PORT or [V6]:PORT; every resolved address is tried.
    #[arg(
        short = 'c',
        long = "connect",
        value_name = "ADDR",
        env = "UPCASE_ADDR",
        default_value = "localhost:2277",
        global = true
    )]
    connect: String,

    /// Bound on connecting and on waiting for a reply (500ms, 10s, 5m).
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = parse_duration,
          global = true)]
    timeout: Duration,

    /// Use UDP: one datagram per message (no LF), each reply printed with LF.
    #[arg(long, global = true)]
    udp: bool,

    /// More logging on stderr. RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    /// Write the man page or a shell completion script to stdout and exit (for packagers).
    #[arg(long, value_name = "WHAT", value_enum, hide = true, exclusive = true)]
    generate: Option<upcase::generate::Generate>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Grade a server against the protocol: run the conformance cases and report on each.
    ///
    /// Exit status: 0 if every case passes, 1 if any fails, 2 if the server cannot be
    /// reached or the usage is wrong.
    Check(upcase::check::CheckArgs),
    /// Send one message (the words joined by spaces, plus LF) and print the reply.
    Send {
        /// The message.
        #[arg(required = true, num_args = 1.., value_name = "TEXT")]
        text: Vec<String>,
    },
    /// Load the server and measure it: throughput, latency percentiles, every reply checked.
    ///
    /// Exit status: 0 when every reply was right, 1 when any was wrong or a connection
    /// failed, 2 for usage errors and an unreachable server.
    Bench(BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(what) = cli.generate {
        use clap::CommandFactory;
        return match upcase::generate::to_stdout(Cli::command(), what) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("upcase: error: could not write to stdout: {e}");
                ExitCode::FAILURE
            }
        };
    }
    logging::init(LogFormat::Text, tracing::Level::WARN, cli.verbose, 0);
    match run(cli) {
        Ok(code) => code,
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("upcase: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, ClientError> {
    let local = |what| move |source| ClientError::Local { what, source };
    if cli.timeout.is_zero() {
        // A zero timeout would mean "fail at once"; clap has no range for durations.
        eprintln!("error: invalid value '0' for '--timeout <DUR>': must be more than zero");
        return Ok(ExitCode::from(2));
    }
    let send = match cli.command {
        Some(Command::Check(args)) => return check(&args),
        Some(Command::Bench(mut args)) => {
            args.udp = cli.udp;
            // The progress line goes to stderr, but only when a person watches stdout.
            let progress = std::io::stdout()
                .is_terminal()
                .then(bench::Progress::stderr);
            let result = match bench::run(&cli.connect, cli.timeout, &args, progress.as_ref()) {
                Ok(result) => result,
                Err(e) => {
                    eprintln!("upcase: error: {e}");
                    return Ok(ExitCode::from(e.exit_code()));
                }
            };
            let mut out = std::io::stdout().lock();
            if args.json {
                bench::export::write_json(&result, &mut out)
            } else {
                bench::export::write_table(&result, &mut out)
            }
            .map_err(local("writing output"))?;
            return Ok(ExitCode::from(result.exit_code()));
        }
        Some(Command::Send { text }) => Some(text),
        None => None,
    };
    if cli.udp {
        return run_udp(&cli.connect, cli.timeout, send).map(|()| ExitCode::SUCCESS);
    }
    match send {
        Some(text) => {
            let mut message = text.join(" ").into_bytes();
            message.push(b'\n');
            let mut stream = client::connect(&cli.connect, cli.timeout)?;
            let reply = client::send(&mut stream, &message, cli.timeout)?;
            let mut out = std::io::stdout().lock();
            out.write_all(&reply)
                .and_then(|()| out.flush())
                .map_err(local("writing output"))?;
        }
        None if std::io::stdin().is_terminal() => {
            let mut editor = Editor::new("upcase> ").map_err(local("starting the line editor"))?;
            client::interactive(
                &cli.connect,
                cli.timeout,
                &mut editor,
                &mut std::io::stdout(),
                &mut std::io::stderr(),
            )?;
        }
        None => {
            let stream = client::connect(&cli.connect, cli.timeout)?;
            // Raw descriptors, not std's line-buffered stdout: pipe mode moves bulk data.
            let stdin = std::io::stdin()
                .as_fd()
                .try_clone_to_owned()
                .map_err(local("opening stdin"))?;
            let stdout = std::io::stdout()
                .as_fd()
                .try_clone_to_owned()
                .map_err(local("opening stdout"))?;
            client::pipe(
                stream,
                std::fs::File::from(stdin),
                &mut std::fs::File::from(stdout),
                cli.timeout,
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The same three ways of talking, over UDP: `send` is one datagram.
fn run_udp(target: &str, timeout: Duration, send: Option<Vec<String>>) -> Result<(), ClientError> {
    let local = |what| move |source| ClientError::Local { what, source };
    let mut udp = client::UdpClient::connect(target, timeout)?;
    match send {
        Some(text) => {
            let reply = udp.exchange(text.join(" ").as_bytes())?;
            let mut out = std::io::stdout().lock();
            out.write_all(reply)
                .and_then(|()| out.write_all(b"\n"))
                .and_then(|()| out.flush())
                .map_err(local("writing output"))?;
        }
        None if std::io::stdin().is_terminal() => {
            let mut editor =
                Editor::new("upcase/udp> ").map_err(local("starting the line editor"))?;
            eprintln!("sending datagrams to {}; Ctrl-D to quit", udp.peer());
            client::interactive_udp(&mut udp, &mut editor, &mut std::io::stdout())?;
        }
        None => {
            let stdout = std::io::stdout()
                .as_fd()
                .try_clone_to_owned()
                .map_err(local("opening stdout"))?;
            let mut out = std::io::BufWriter::new(std::fs::File::from(stdout));
            client::pipe_udp(&mut udp, std::io::stdin().lock(), &mut out)?;
        }
    }
    Ok(())
}

/// `upcase check`: runs the suite, prints the table or JSON, writes JUnit XML if asked.
fn check(args: &upcase::check::CheckArgs) -> Result<ExitCode, ClientError> {
    use upcase::check::{self, export, CheckError};
    let report = match check::run(&args.options()) {
        Ok(report) => report,
        Err(e @ (CheckError::Unreachable(_) | CheckError::UnknownCase { .. })) => {
            eprintln!("upcase check: error: {e}");
            return Ok(ExitCode::from(2));
        }
        Err(e) => {
            eprintln!("upcase check: error: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    if let Some(path) = &args.junit {
        if let Err(e) = std::fs::write(path, export::junit(&report)) {
            eprintln!(
                "upcase check: error: cannot write the JUnit report to {}: {e}",
                path.display()
            );
            return Ok(ExitCode::from(2));
        }
    }
    let text = if args.json {
        match export::json(&report) {
            Ok(mut json) => {
                json.push('\n');
                json
            }
            Err(e) => {
                eprintln!("upcase check: error: cannot write the report as JSON: {e}");
                return Ok(ExitCode::FAILURE);
            }
        }
    } else {
        export::table(&report)
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|source| ClientError::Local {
            what: "writing the report",
            source,
        })?;
    Ok(if report.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
