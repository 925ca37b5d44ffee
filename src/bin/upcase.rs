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

    /// Speak TLS: verify the server against the system's roots (or --ca), with SNI from the
    /// host of --connect (or --sni).
    #[arg(long, global = true, conflicts_with = "udp")]
    tls: bool,

    /// With --tls: trust only the CA certificates in FILE (PEM), e.g. upcased's
    /// --tls-self-signed FILE.
    #[arg(long, value_name = "FILE", global = true, requires = "tls")]
    ca: Option<std::path::PathBuf>,

    /// With --tls: the server name to send and verify, instead of the host of --connect.
    #[arg(long, value_name = "NAME", global = true, requires = "tls")]
    sni: Option<String>,

    /// With --tls: verify no certificate at all (says so on stderr). For trying things out.
    #[arg(long, global = true, requires = "tls")]
    insecure: bool,

    /// More logging on stderr. RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

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
    let tls_opts = client::TlsOptions {
        ca: cli.ca.clone(),
        sni: cli.sni.clone(),
        insecure: cli.insecure,
    };
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
    if cli.tls {
        let client = tls_client(&tls_opts, &cli.connect)?;
        return run_tls(&cli.connect, cli.timeout, &client, send).map(|()| ExitCode::SUCCESS);
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

/// The TLS configuration `--tls`, `--ca`, `--sni` and `--insecure` ask for, for `target`;
/// `--insecure` says so here, once.
fn tls_client(opts: &client::TlsOptions, target: &str) -> Result<client::TlsClient, ClientError> {
    if opts.insecure {
        eprintln!("{}", upcase::tls::client::INSECURE_WARNING);
    }
    client::TlsClient::new(target, opts)
}

/// The same three ways of talking, over TLS.
fn run_tls(
    target: &str,
    timeout: Duration,
    tls: &client::TlsClient,
    send: Option<Vec<String>>,
) -> Result<(), ClientError> {
    let local = |what| move |source| ClientError::Local { what, source };
    match send {
        Some(text) => {
            let mut message = text.join(" ").into_bytes();
            message.push(b'\n');
            let mut stream = tls.connect(target, timeout)?;
            let reply = client::send_tls(&mut stream, &message, timeout)?;
            let _ = upcase::tls::close_write(&mut stream);
            let mut out = std::io::stdout().lock();
            out.write_all(&reply)
                .and_then(|()| out.flush())
                .map_err(local("writing output"))?;
        }
        None if std::io::stdin().is_terminal() => {
            let mut editor =
                Editor::new("upcase/tls> ").map_err(local("starting the line editor"))?;
            client::interactive_tls(
                target,
                timeout,
                tls,
                &mut editor,
                &mut std::io::stdout(),
                &mut std::io::stderr(),
            )?;
        }
        None => {
            client::pipe_tls(
                target,
                timeout,
                tls,
                tokio::io::stdin(),
                tokio::io::stdout(),
            )?;
        }
    }
    Ok(())
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
