//! `upcase`: the client. With no subcommand it runs an interactive session on a terminal
//! and pipe mode otherwise; `send` sends one message; `bench` loads the server and
//! measures it; `check` grades it. Exit codes: 0 success, 1 a failure talking to the
//! server (for `bench`: a wrong reply or a failed connection), 2 usage errors (for `bench`:
//! also an unreachable server).

use std::io::{IsTerminal, Write};
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use upcase::bench::{self, BenchArgs};
use upcase::client::{self, ClientError, Connection, Editor};
use upcase::logging::{self, LogFormat};
use upcase::net::parse_duration;

/// The first line of both `-h` and `--help`.
const ABOUT: &str = "The capitalisation service's client: talk to upcased, load it, grade it";

const LONG_ABOUT: &str = "The capitalisation service's client: talk to upcased, load it, grade it

With no subcommand: an interactive session when stdin is a terminal (history in \
$XDG_STATE_HOME/upcase/history; Ctrl-C cancels a wait for a reply, Ctrl-C or Ctrl-D at the \
prompt quits), otherwise pipe mode (stdin → server → stdout, binary-safe, FIN at end of input).";

const EXAMPLES: &str = "EXAMPLES:
    upcase                                  interactive session with localhost:2277
    upcase send grüße aus Köln              one message; prints GRÜSSE AUS KÖLN
    upcase -c 127.0.0.1:7000 < in > OUT     pipe mode against another server
    upcase --udp send hello                 one datagram
    upcase bench --connections 10           load the server and measure it
    upcase check 127.0.0.1:2277             grade a server against the protocol";

/// A client `--timeout`: a duration, and not zero (which would fail every wait at once).
fn parse_timeout(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err("must be more than zero".into());
    }
    Ok(d)
}

#[derive(Debug, Parser)]
#[command(version, about = ABOUT, long_about = LONG_ABOUT, after_long_help = EXAMPLES)]
struct Cli {
    #[command(flatten)]
    talk: Talk,

    /// Interactive session: keep no history file (lines are still recalled within the
    /// session).
    #[arg(long)]
    no_history: bool,

    /// More logging on stderr. RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    /// Write the man page or a shell completion script to stdout and exit (for packagers).
    #[arg(long, value_name = "WHAT", value_enum, hide = true, exclusive = true)]
    generate: Option<upcase::generate::Generate>,

    #[command(subcommand)]
    command: Option<Command>,
}

/// TLS on the connection: `--tls` and what it verifies.
#[derive(Debug, Clone, Default, Args)]
struct TlsFlags {
    /// Speak TLS: verify the server against the system's roots (or --ca), with SNI from the
    /// host of --connect (or --sni).
    #[arg(long)]
    tls: bool,

    /// With --tls: trust only the CA certificates in FILE (PEM), e.g. upcased's
    /// --tls-self-signed FILE.
    #[arg(long, value_name = "FILE", requires = "tls")]
    ca: Option<std::path::PathBuf>,

    /// With --tls: the server name to send and verify, instead of the host of --connect.
    #[arg(long, value_name = "NAME", requires = "tls")]
    sni: Option<String>,

    /// With --tls: verify no certificate at all (says so on stderr). For trying things out.
    #[arg(long, requires = "tls")]
    insecure: bool,
}

impl TlsFlags {
    /// Takes the flags given before the subcommand's name, unless the subcommand has its own.
    fn merge(&mut self, top: &ArgMatches, sub: &ArgMatches, from: &TlsFlags) {
        merge(top, sub, "tls", &from.tls, &mut self.tls);
        merge(top, sub, "ca", &from.ca, &mut self.ca);
        merge(top, sub, "sni", &from.sni, &mut self.sni);
        merge(top, sub, "insecure", &from.insecure, &mut self.insecure);
    }

    /// The TLS client for `target`, if `--tls`; `--insecure` says so here, once.
    fn client(&self, target: &str) -> Result<Option<client::TlsClient>, ClientError> {
        if !self.tls {
            return Ok(None);
        }
        if self.insecure {
            eprintln!("{}", upcase::tls::client::INSECURE_WARNING);
        }
        let opts = client::TlsOptions {
            ca: self.ca.clone(),
            sni: self.sni.clone(),
            insecure: self.insecure,
        };
        client::TlsClient::new(target, &opts).map(Some)
    }
}

/// How the interactive session and pipe mode talk to the server.
#[derive(Debug, Clone, Args)]
struct Talk {
    /// Server address, HOST:PORT or [V6]:PORT (a host alone: port 2277); every resolved
    /// address is tried.
    #[arg(short = 'c', long = "connect", value_name = "ADDR", env = "UPCASE_ADDR",
          default_value = "localhost:2277", value_parser = client::parse_target)]
    connect: String,

    /// Bound on connecting and on waiting for the server (500ms, 10s, 5m). Interactive: the
    /// whole wait for each reply. Pipe mode: the longest the server may take no input while
    /// we have some to send, and after the end of input, the whole wait for the rest of the
    /// reply; never the wait for our own input.
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = parse_timeout)]
    timeout: Duration,

    /// Use UDP: one datagram per line (no LF), each reply printed with LF.
    #[arg(long, conflicts_with = "tls")]
    udp: bool,
    /// The server sends a banner line first (upcased --banner): read it (inside TLS with
    /// --tls), print it on stderr, then go on as usual.
    #[arg(long, conflicts_with = "udp")]
    banner: bool,

    #[command(flatten)]
    tls: TlsFlags,
}

/// How `send` talks to the server.
#[derive(Debug, Clone, Args)]
struct SendTalk {
    /// Server address, HOST:PORT or [V6]:PORT (a host alone: port 2277); every resolved
    /// address is tried.
    #[arg(short = 'c', long = "connect", value_name = "ADDR", env = "UPCASE_ADDR",
          default_value = "localhost:2277", value_parser = client::parse_target)]
    connect: String,

    /// Bound on connecting, and on the whole exchange: sending the message and receiving
    /// the whole reply (500ms, 10s, 5m).
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = parse_timeout)]
    timeout: Duration,

    /// Use UDP: the message is one datagram (no LF), the reply printed with LF.
    #[arg(long, conflicts_with = "tls")]
    udp: bool,
    /// The server sends a banner line first (upcased --banner): read it, print it on
    /// stderr, then go on as usual.
    #[arg(long, conflicts_with = "udp")]
    banner: bool,

    #[command(flatten)]
    tls: TlsFlags,
}

/// How `bench` reaches the server.
#[derive(Debug, Clone, Args)]
struct BenchTalk {
    /// Server address, HOST:PORT or [V6]:PORT (a host alone: port 2277); every resolved
    /// address is tried for the first connection, the one that accepts for the rest.
    #[arg(short = 'c', long = "connect", value_name = "ADDR", env = "UPCASE_ADDR",
          default_value = "localhost:2277", value_parser = client::parse_target)]
    connect: String,

    /// Bound on opening each connection, and how long a reply may take before it counts
    /// as a timeout (500ms, 10s, 5m).
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = parse_timeout)]
    timeout: Duration,

    /// Load over UDP: one datagram per message instead of a TCP stream.
    #[arg(long, conflicts_with = "tls")]
    udp: bool,

    #[command(flatten)]
    tls: TlsFlags,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Grade a server against the protocol: run the conformance cases and report on each.
    ///
    /// Exit status: 0 if every case passes, 1 if any fails (or, with --tls, the handshake
    /// fails), 2 if the server cannot be reached or the usage is wrong.
    Check(upcase::check::CheckArgs),
    /// Grade a client: run it once per case against a scripted server, and report on each.
    ///
    /// Put the client's command after `--`; `{host}`, `{port}` and `{addr}` in it are
    /// replaced with the scripted server's address. Exit status: 0 if every counted case
    /// passes, 1 if any fails, 2 for usage errors, 130 after Ctrl-C.
    CheckClient(upcase::check::client::ClientCheckArgs),
    /// Send one message (the words joined by spaces, plus LF) and print the reply line.
    ///
    /// Exit status: 0 with the reply on stdout; 1 when the server is unreachable, too slow
    /// (--timeout), or closes before the whole reply line.
    Send {
        #[command(flatten)]
        talk: SendTalk,
        /// The message.
        #[arg(required = true, num_args = 1.., value_name = "TEXT")]
        text: Vec<String>,
    },
    /// Load the server and measure it: throughput, latency percentiles, every reply checked.
    ///
    /// Exit status: 0 when every reply was right and on time, 1 when any was wrong, late or
    /// missing, a connection failed, the open loop's schedule slipped, or (--tls) the first
    /// handshake failed; 2 for usage errors and an unreachable server; 130 after Ctrl-C (the
    /// figures so far are printed).
    Bench {
        #[command(flatten)]
        talk: BenchTalk,
        #[command(flatten)]
        args: BenchArgs,
    },
}

/// The top-level flags that only the interactive session and pipe mode use. `send` and
/// `bench` take them before their name too (`upcase -c ADDR send hi`), other subcommands
/// refuse them.
const TALK_FLAGS: [(&str, &str); 8] = [
    ("connect", "-c/--connect"),
    ("timeout", "--timeout"),
    ("udp", "--udp"),
    ("tls", "--tls"),
    ("ca", "--ca"),
    ("sni", "--sni"),
    ("insecure", "--insecure"),
    ("banner", "--banner"),
];

/// The top-level flags that `check` does not take: it has its own `--timeout` (per case),
/// and its address is an argument. Its TLS flags it takes before its name too.
const NOT_FOR_CHECK: [(&str, &str); 4] = [
    ("connect", "-c/--connect"),
    ("timeout", "--timeout"),
    ("udp", "--udp"),
    ("banner", "--banner"),
];

/// Refuses, as a usage error, the first of `flags` given before the subcommand `name`.
fn refuse_flags(matches: &ArgMatches, name: &str, flags: &[(&str, &str)]) {
    if let Some((_, flag)) = flags.iter().find(|(id, _)| given(matches, id)) {
        Cli::command()
            .error(
                clap::error::ErrorKind::ArgumentConflict,
                format!("{flag} is not used by `upcase {name}`"),
            )
            .exit();
    }
}

fn given(m: &ArgMatches, id: &str) -> bool {
    m.value_source(id) == Some(ValueSource::CommandLine)
}

/// A flag given on the command line before the subcommand's name counts unless the
/// subcommand's own copy was given too (the one nearer the subcommand wins).
fn merge<T: Clone>(top: &ArgMatches, sub: &ArgMatches, id: &str, top_v: &T, sub_v: &mut T) {
    if given(top, id) && !given(sub, id) {
        *sub_v = top_v.clone();
    }
}

fn parse() -> Cli {
    let matches = Cli::command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let Some((name, sub)) = matches.subcommand() else {
        return cli;
    };
    match &mut cli.command {
        Some(Command::Send { talk, .. }) => {
            merge(
                &matches,
                sub,
                "connect",
                &cli.talk.connect,
                &mut talk.connect,
            );
            merge(
                &matches,
                sub,
                "timeout",
                &cli.talk.timeout,
                &mut talk.timeout,
            );
            merge(&matches, sub, "udp", &cli.talk.udp, &mut talk.udp);
            merge(&matches, sub, "banner", &cli.talk.banner, &mut talk.banner);
            talk.tls.merge(&matches, sub, &cli.talk.tls);
        }
        Some(Command::Bench { talk, args }) => {
            merge(
                &matches,
                sub,
                "connect",
                &cli.talk.connect,
                &mut talk.connect,
            );
            merge(
                &matches,
                sub,
                "timeout",
                &cli.talk.timeout,
                &mut talk.timeout,
            );
            merge(&matches, sub, "udp", &cli.talk.udp, &mut talk.udp);
            merge(&matches, sub, "banner", &cli.talk.banner, &mut args.banner);
            talk.tls.merge(&matches, sub, &cli.talk.tls);
        }
        Some(Command::Check(args)) => {
            let (top, tls) = (&cli.talk.tls, &mut args.tls);
            merge(&matches, sub, "tls", &top.tls, &mut tls.tls);
            merge(&matches, sub, "ca", &top.ca, &mut tls.ca);
            merge(&matches, sub, "sni", &top.sni, &mut tls.sni);
            merge(&matches, sub, "insecure", &top.insecure, &mut tls.insecure);
            refuse_flags(&matches, name, &NOT_FOR_CHECK);
        }
        _ => refuse_flags(&matches, name, &TALK_FLAGS),
    }
    if cli.no_history {
        Cli::command()
            .error(
                clap::error::ErrorKind::ArgumentConflict,
                format!("--no-history is for the interactive session, not `upcase {name}`"),
            )
            .exit();
    }
    cli
}

fn main() -> ExitCode {
    let cli = parse();
    if let Some(what) = cli.generate {
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

fn local(what: &'static str) -> impl FnOnce(std::io::Error) -> ClientError {
    move |source| ClientError::Local { what, source }
}

fn run(cli: Cli) -> Result<ExitCode, ClientError> {
    match cli.command {
        Some(Command::Check(args)) => {
            let code = upcase::check::cli::check(&args, std::io::stdout(), &mut std::io::stderr());
            Ok(ExitCode::from(code))
        }
        Some(Command::CheckClient(args)) => {
            let code =
                upcase::check::cli::check_client(&args, std::io::stdout(), &mut std::io::stderr());
            Ok(ExitCode::from(code))
        }
        Some(Command::Bench { talk, mut args }) => {
            args.udp = talk.udp;
            // An unreadable --ca or a bad --sni is a usage error, as for every bench flag.
            args.tls = match talk.tls.client(&talk.connect) {
                Ok(tls) => tls,
                Err(e) => {
                    eprintln!("upcase: error: {e}");
                    return Ok(ExitCode::from(2));
                }
            };
            // The progress line goes to stderr, but only when a person watches stdout.
            let progress = std::io::stdout()
                .is_terminal()
                .then(bench::Progress::stderr);
            // Ctrl-C ends the run early: the figures so far are printed, and the status is 130.
            let ctrl_c = || async {
                if tokio::signal::ctrl_c().await.is_err() {
                    std::future::pending::<()>().await;
                }
            };
            let run = bench::run_until(
                &talk.connect,
                talk.timeout,
                &args,
                progress.as_ref(),
                ctrl_c,
            );
            let result = match run {
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
            Ok(ExitCode::from(result.exit_code()))
        }
        Some(Command::Send { talk, text }) if talk.udp => {
            let mut udp = client::UdpClient::connect(&talk.connect, talk.timeout)?;
            let reply = udp.exchange(text.join(" ").as_bytes())?;
            let mut out = std::io::stdout().lock();
            out.write_all(reply)
                .and_then(|()| out.write_all(b"\n"))
                .and_then(|()| out.flush())
                .map_err(local("writing output"))?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Send { talk, text }) => {
            let mut message = text.join(" ").into_bytes();
            message.push(b'\n');
            match talk.tls.client(&talk.connect)? {
                Some(tls) => {
                    let mut stream = tls.connect(&talk.connect, talk.timeout)?;
                    send_and_print(&mut stream, &talk, &message)?;
                    stream.finish();
                }
                None => {
                    let mut stream = client::connect(&talk.connect, talk.timeout)?;
                    send_and_print(&mut stream, &talk, &message)?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        None if cli.talk.udp => {
            run_udp(&cli.talk, cli.no_history)?;
            Ok(ExitCode::SUCCESS)
        }
        None if std::io::stdin().is_terminal() => {
            let tls = cli.talk.tls.client(&cli.talk.connect)?;
            let interrupted = client::interrupt::install().map_err(local("handling Ctrl-C"))?;
            let prompt = if tls.is_some() {
                "upcase/tls> "
            } else {
                "upcase> "
            };
            let mut editor = Editor::new(prompt, history_file(cli.no_history))
                .map_err(local("starting the line editor"))?;
            let session = client::Session {
                target: &cli.talk.connect,
                timeout: cli.talk.timeout,
                tls: tls.as_ref(),
                banner: cli.talk.banner,
            };
            client::interactive_session(
                &session,
                &mut editor,
                &mut std::io::stdout(),
                &mut std::io::stderr(),
                interrupted,
            )?;
            Ok(ExitCode::SUCCESS)
        }
        None if cli.talk.tls.tls => {
            let tls = cli
                .talk
                .tls
                .client(&cli.talk.connect)?
                .unwrap_or_else(|| unreachable!());
            let mut stderr = std::io::stderr();
            client::pipe_tls(
                &cli.talk.connect,
                cli.talk.timeout,
                &tls,
                cli.talk.banner.then_some(&mut stderr as &mut dyn Write),
                tokio::io::stdin(),
                tokio::io::stdout(),
            )?;
            Ok(ExitCode::SUCCESS)
        }
        None => {
            let mut stream = client::connect(&cli.talk.connect, cli.talk.timeout)?;
            if cli.talk.banner {
                print_banner(&mut stream, cli.talk.timeout)?;
            }
            let addr = stream
                .peer_addr()
                .map_or_else(|_| cli.talk.connect.clone(), |a| a.to_string());
            // Raw descriptors, not std's line-buffered stdout: pipe mode moves bulk data.
            let stdin = std::io::stdin()
                .as_fd()
                .try_clone_to_owned()
                .map_err(local("opening stdin"))?;
            let stdout = std::io::stdout()
                .as_fd()
                .try_clone_to_owned()
                .map_err(local("opening stdout"))?;
            let stats = client::pipe(
                stream,
                std::fs::File::from(stdin),
                &mut std::fs::File::from(stdout),
                cli.talk.timeout,
            )?;
            if stats.received_lines > stats.sent_lines {
                eprintln!(
                    "upcase: warning: {addr} sent {} line(s) for the {} of the input",
                    stats.received_lines, stats.sent_lines
                );
            }
            if stats.closed_by_server {
                eprintln!(
                    "upcase: {addr} closed the connection before the input ended; every line sent was answered, nothing is lost"
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Reads the connection's banner line and prints it on stderr as it came.
fn print_banner<C: Connection>(stream: &mut C, timeout: Duration) -> Result<(), ClientError> {
    let line = client::read_banner(stream, timeout)?;
    let mut err = std::io::stderr().lock();
    err.write_all(&line)
        .and_then(|()| err.flush())
        .map_err(local("writing the banner to stderr"))
}

/// `upcase send` on a connection, plain or TLS: the banner if asked for, the message, the
/// reply line on stdout, and a warning for bytes after it.
fn send_and_print<C: Connection>(
    stream: &mut C,
    talk: &SendTalk,
    message: &[u8],
) -> Result<(), ClientError> {
    if talk.banner {
        print_banner(stream, talk.timeout)?;
    }
    let reply = client::send(stream, message, talk.timeout)?;
    let mut out = std::io::stdout().lock();
    out.write_all(&reply.line)
        .and_then(|()| out.flush())
        .map_err(local("writing output"))?;
    if reply.extra > 0 {
        eprintln!(
            "upcase: warning: {} sent {} more byte(s) after the reply line; not printed",
            stream
                .socket()
                .peer_addr()
                .map_or_else(|_| talk.connect.clone(), |a| a.to_string()),
            reply.extra
        );
    }
    Ok(())
}

/// Where the interactive history goes: nowhere with `--no-history`, or when the
/// environment names no home.
fn history_file(no_history: bool) -> Option<std::path::PathBuf> {
    if no_history {
        return None;
    }
    client::history::default_path()
}

/// The interactive session and pipe mode over UDP.
fn run_udp(talk: &Talk, no_history: bool) -> Result<(), ClientError> {
    let mut udp = client::UdpClient::connect(&talk.connect, talk.timeout)?;
    if std::io::stdin().is_terminal() {
        let interrupted = client::interrupt::install().map_err(local("handling Ctrl-C"))?;
        let mut editor = Editor::new("upcase/udp> ", history_file(no_history))
            .map_err(local("starting the line editor"))?;
        eprintln!(
            "sending datagrams to {}; Ctrl-D to quit (Ctrl-C cancels a wait)",
            udp.peer()
        );
        client::interactive_udp(
            &mut udp,
            &mut editor,
            &mut std::io::stdout(),
            &mut std::io::stderr(),
            interrupted,
        )
    } else {
        let stdout = std::io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .map_err(local("opening stdout"))?;
        let mut out = std::io::BufWriter::new(std::fs::File::from(stdout));
        client::pipe_udp(&mut udp, std::io::stdin().lock(), &mut out).map(|_| ())
    }
}
