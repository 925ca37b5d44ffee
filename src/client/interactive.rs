//! The interactive session: a prompt, line editing and history, one reply per line.
//!
//! The session core, [`interactive`], reads lines from any [`LineSource`] and writes to
//! any writer; [`Editor`] is the rustyline source the binary uses on a terminal, and tests
//! drive the core with a plain iterator of lines.
//!
//! Nothing typed is lost: lines typed ahead while a reply is awaited stay in the editor's
//! buffer for the next prompt (rustyline's `buffer-redux`), and a paste that arrives as one
//! string with line breaks is sent line by line, each answered in order.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::history::History;
use super::{connect, peer, send_cancellable, ClientError};
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

/// Runs a session against `target`: each line from `lines` is sent with an LF, and its
/// reply written to `out`. Notices (connected, reconnected, cancelled) go to `notes`.
///
/// When the server has closed the connection (its idle timeout, or a restart), the next
/// line reconnects first and says so; if that fails, so does the session, naming the
/// address. When `interrupted` is raised (Ctrl-C, see [`super::interrupt`]) during a
/// wait, the wait is abandoned, the connection dropped (its reply would arrive late and
/// be taken for the next one's), the rest of a paste discarded (as the terminal discards
/// typed-ahead input at Ctrl-C), and the session goes on with the next line.
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
    let local = |what| move |source| ClientError::Local { what, source };
    let first = connect(target, timeout)?;
    let _ = writeln!(
        notes,
        "connected to {}; type a line, Ctrl-D to quit (Ctrl-C cancels a wait)",
        peer(&first)
    );
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
                None => return Ok(()),
            }
        };
        let mut message = line.into_bytes();
        message.push(b'\n');
        let mut conn = match stream.take() {
            Some(s) if is_closed(&s) => {
                fresh = true;
                reconnect(target, timeout, Some(&s), notes)?
            }
            Some(s) => s,
            None => {
                fresh = true;
                reconnect(target, timeout, None, notes)?
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
            conn = reconnect(target, timeout, Some(&conn), notes)?;
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

fn reconnect<N: Write + ?Sized>(
    target: &str,
    timeout: Duration,
    old: Option<&TcpStream>,
    notes: &mut N,
) -> Result<TcpStream, ClientError> {
    if let Some(old) = old {
        let _ = writeln!(notes, "the server at {} closed the connection", peer(old));
    }
    let stream = connect(target, timeout)?;
    let _ = writeln!(notes, "reconnected to {}", peer(&stream));
    Ok(stream)
}

/// Whether the server has closed its side (or reset) while we were waiting for the user.
/// Bytes it sent that nobody asked for (after an earlier reply) are read and dropped here,
/// so that they cannot be taken for the start of the next reply.
fn is_closed(stream: &TcpStream) -> bool {
    use std::io::Read;
    if stream.set_nonblocking(true).is_err() {
        return true;
    }
    let mut buf = [0u8; 4096];
    // Bounded, against a server that never stops sending.
    let mut reads = 0;
    let closed = loop {
        reads += 1;
        match (&*stream).read(&mut buf) {
            Ok(0) => break true,
            Ok(_) if reads < 256 => continue,
            Ok(_) => break false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => break e.kind() != io::ErrorKind::WouldBlock,
        }
    };
    closed || stream.set_nonblocking(false).is_err()
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
