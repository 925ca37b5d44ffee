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

    /// More logging on stderr. RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
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
    match cli.command {
        Some(Command::Bench(args)) => {
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
        Some(Command::Send { text }) => {
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
