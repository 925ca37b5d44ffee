//! The interactive session: a prompt, line editing and history, one reply per line.
//!
//! The session core, [`interactive_session`], reads lines from any [`LineSource`] and
//! writes to any writer, over plain TCP or TLS (one loop, generic over the
//! [`Connection`]); [`Editor`] is the rustyline source the binary uses on a terminal, and
//! tests drive the core with a plain iterator of lines.
//!
//! Nothing typed is lost: lines typed ahead while a reply is awaited stay in the editor's
//! buffer for the next prompt (rustyline's `buffer-redux`), and a paste that arrives as one
//! string with line breaks is sent line by line, each answered in order.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::connection::is_closed;
use super::history::History;
use super::{connect, peer, send_cancellable, ClientError, Connection, TlsClient};
use crate::limits::HISTORY_MAX_ENTRIES;

/// Where the interactive session's lines come from.
pub trait LineSource {
    /// The next line, without its line ending (it may hold several lines, as a paste
    /// does); `None` when the user is done (end of input, Ctrl-D or Ctrl-C).
    fn next_line(&mut self) -> io::Result<Option<String>>;
}

impl<I: Iterator<Item = String>> LineSource for I {
    fn next_line(&mut self) -> io::Result<Option<String>> {
        Ok(self.next())
    }
}

/// Lines typed at a terminal, with rustyline's editing keys, and history kept in a file
/// between sessions (see [`super::history`]).
pub struct Editor {
    editor: rustyline::DefaultEditor,
    prompt: String,
    history: History,
    /// Where the history is saved; `None` with `--no-history`, or after a failed save.
    file: Option<PathBuf>,
}

impl Editor {
    /// A line editor that shows `prompt`, with the history in `history_file` (loaded now,
    /// saved after every line), or none.
    pub fn new(prompt: impl Into<String>, history_file: Option<PathBuf>) -> io::Result<Self> {
        let config = rustyline::Config::builder()
            .max_history_size(HISTORY_MAX_ENTRIES)
            .map_err(io::Error::other)?
            .build();
        let mut editor = rustyline::DefaultEditor::with_config(config).map_err(io::Error::other)?;
        let history = match &history_file {
            Some(path) => History::load(path).unwrap_or_else(|e| {
                tracing::warn!(path = %path.display(), error = %e, "cannot read the history");
                History::default()
            }),
            None => History::default(),
        };
        for line in history.entries() {
            let _ = editor.add_history_entry(line);
        }
        Ok(Editor {
            editor,
            prompt: prompt.into(),
            history,
            file: history_file,
        })
    }

    fn remember(&mut self, line: &str) {
        if !self.history.add(line) {
            return;
        }
        let _ = self.editor.add_history_entry(line);
        if let Some(path) = &self.file {
            if let Err(e) = self.history.save(path) {
                tracing::warn!(path = %path.display(), error = %e,
                    "cannot save the history; it is kept for this session only");
                self.file = None;
            }
        }
    }
}

impl LineSource for Editor {
    fn next_line(&mut self) -> io::Result<Option<String>> {
        use rustyline::error::ReadlineError;
        match self.editor.readline(&self.prompt) {
            Ok(line) => {
                self.remember(&line);
                Ok(Some(line))
            }
            Err(ReadlineError::Eof | ReadlineError::Interrupted) => Ok(None),
            Err(ReadlineError::Io(e)) => Err(e),
            Err(e) => Err(io::Error::other(e)),
        }
    }
}

/// The lines in what a [`LineSource`] gave: a paste may hold several. An empty string is
/// one empty line; a final line break does not make another.
pub(super) fn split_lines(text: &str) -> impl Iterator<Item = String> + '_ {
    let pieces: Box<dyn Iterator<Item = &str>> = if text.is_empty() {
        Box::new(std::iter::once(""))
    } else {
        Box::new(text.split_terminator('\n'))
    };
    pieces.map(|l| l.strip_suffix('\r').unwrap_or(l).to_string())
}

/// Where and how an interactive session connects: the server, the bound on each wait,
/// TLS or not, and whether each connection starts with a banner line.
#[derive(Debug, Clone, Copy)]
pub struct Session<'a> {
    /// The server's address, `HOST:PORT`.
    pub target: &'a str,
    /// Bound on connecting (the handshake included) and on the whole wait for each reply.
    pub timeout: Duration,
    /// Speak TLS with this client's configuration (`--tls`), or plain TCP.
    pub tls: Option<&'a TlsClient>,
    /// The server sends a banner line first (`upcased --banner`): each connection's, the
    /// first and every reconnection's, is read and written to the notes before the session
    /// goes on.
    pub banner: bool,
}

/// Runs a session: each line from `lines` is sent with an LF, and its reply written to
/// `out`. Notices (connected, reconnected, cancelled, the banners) go to `notes`. The same
/// loop runs over plain TCP and over TLS.
///
/// When the server has closed the connection (its idle timeout, or a restart), the next
/// line reconnects first and says so; if that fails, so does the session, naming the
/// address. When `interrupted` is raised (Ctrl-C, see [`super::interrupt`]) during a
/// wait, the wait is abandoned, the connection dropped (its reply would arrive late and
/// be taken for the next one's), the rest of a paste discarded (as the terminal discards
/// typed-ahead input at Ctrl-C), and the session goes on with the next line. At the end
/// of the lines a TLS connection is closed with `close_notify`.
pub fn interactive_session<L, W, N>(
    session: &Session<'_>,
    lines: &mut L,
    out: &mut W,
    notes: &mut N,
    interrupted: &AtomicBool,
) -> Result<(), ClientError>
where
    L: LineSource + ?Sized,
    W: Write + ?Sized,
    N: Write + ?Sized,
{
    let (target, timeout) = (session.target, session.timeout);
    let io = Io {
        lines,
        out,
        notes,
        interrupted,
    };
    match session.tls {
        Some(tls) => run(|| tls.connect(target, timeout), timeout, session.banner, io),
        None => run(|| connect(target, timeout), timeout, session.banner, io),
    }
}

/// [`interactive_session`] over plain TCP, without a banner.
pub fn interactive<L, W, N>(
    target: &str,
    timeout: Duration,
    lines: &mut L,
    out: &mut W,
    notes: &mut N,
    interrupted: &AtomicBool,
) -> Result<(), ClientError>
where
    L: LineSource + ?Sized,
    W: Write + ?Sized,
    N: Write + ?Sized,
{
    let session = Session {
        target,
        timeout,
        tls: None,
        banner: false,
    };
    interactive_session(&session, lines, out, notes, interrupted)
}

/// The session's input, output, notes and Ctrl-C flag.
struct Io<'a, L: ?Sized, W: ?Sized, N: ?Sized> {
    lines: &'a mut L,
    out: &'a mut W,
    notes: &'a mut N,
    interrupted: &'a AtomicBool,
}

/// The session loop, on connections that `dial` opens.
fn run<C, L, W, N>(
    dial: impl Fn() -> Result<C, ClientError>,
    timeout: Duration,
    banner: bool,
    io: Io<'_, L, W, N>,
) -> Result<(), ClientError>
where
    C: Connection,
    L: LineSource + ?Sized,
    W: Write + ?Sized,
    N: Write + ?Sized,
{
    let Io {
        lines,
        out,
        notes,
        interrupted,
    } = io;
    let local = |what| move |source| ClientError::Local { what, source };
    let mut first = dial()?;
    let over = first
        .tls_version()
        .map_or_else(String::new, |v| format!(" over {v}"));
    let _ = writeln!(
        notes,
        "connected to {}{over}; type a line, Ctrl-D to quit (Ctrl-C cancels a wait)",
        peer(first.socket())
    );
    if banner {
        show_banner(&mut first, timeout, notes)?;
    }
    let reconnect = |old: Option<&C>, notes: &mut N| -> Result<C, ClientError> {
        if let Some(old) = old {
            let _ = writeln!(
                notes,
                "the server at {} closed the connection",
                peer(old.socket())
            );
        }
        let mut stream = dial()?;
        let _ = writeln!(notes, "reconnected to {}", peer(stream.socket()));
        if banner {
            show_banner(&mut stream, timeout, notes)?;
        }
        Ok(stream)
    };
    let mut stream = Some(first);
    // A connection that has not yet carried a reply: if it closes unanswered, trying a
    // new one would only repeat that.
    let mut fresh = true;
    let mut queue: VecDeque<String> = VecDeque::new();
    loop {
        let Some(line) = queue.pop_front() else {
            match lines.next_line().map_err(local("reading input"))? {
                Some(text) => {
                    // Any Ctrl-C before this was a key at the prompt, not a cancel.
                    interrupted.store(false, Ordering::Relaxed);
                    queue.extend(split_lines(&text));
                    continue;
                }
                None => {
                    if let Some(mut s) = stream {
                        s.finish();
                    }
                    return Ok(());
                }
            }
        };
        let mut message = line.into_bytes();
        message.push(b'\n');
        let mut conn = match stream.take() {
            Some(mut s) => {
                if is_closed(&mut s) {
                    fresh = true;
                    reconnect(Some(&s), notes)?
                } else {
                    s
                }
            }
            None => {
                fresh = true;
                reconnect(None, notes)?
            }
        };
        let mut outcome = send_cancellable(&mut conn, &message, timeout, interrupted);
        if !fresh
            && matches!(
                outcome,
                Err(ClientError::Closed { .. }
                    | ClientError::Io { .. }
                    | ClientError::InputRefused { .. })
            )
        {
            // Gone between the check and the send: once more on a new connection.
            conn = reconnect(Some(&conn), notes)?;
            outcome = send_cancellable(&mut conn, &message, timeout, interrupted);
        }
        match outcome {
            Ok(reply) => {
                fresh = false;
                stream = Some(conn);
                out.write_all(&reply.line)
                    .and_then(|()| out.flush())
                    .map_err(local("writing output"))?;
            }
            Err(ClientError::Cancelled) => {
                interrupted.store(false, Ordering::Relaxed);
                let dropped = queue.len();
                queue.clear();
                let _ = if dropped > 0 {
                    writeln!(
                        notes,
                        "\ncancelled; {dropped} more pasted line(s) not sent (the next line opens a new connection)"
                    )
                } else {
                    writeln!(notes, "\ncancelled (the next line opens a new connection)")
                };
            }
            Err(e) => return Err(e),
        }
    }
}

/// Reads the connection's banner line and writes it to `notes` as it came.
fn show_banner<C: Connection, N: Write + ?Sized>(
    stream: &mut C,
    timeout: Duration,
    notes: &mut N,
) -> Result<(), ClientError> {
    let line = super::read_banner(stream, timeout)?;
    let _ = notes.write_all(&line).and_then(|()| notes.flush());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::split_lines;

    #[test]
    fn a_paste_is_split_into_its_lines() {
        let v: Vec<String> = split_lines("aaa\nbbb\r\nccc\n").collect();
        assert_eq!(v, ["aaa", "bbb", "ccc"]);
        let v: Vec<String> = split_lines("").collect();
        assert_eq!(v, [""]);
        let v: Vec<String> = split_lines("a\n\nb").collect();
        assert_eq!(v, ["a", "", "b"]);
    }
}
