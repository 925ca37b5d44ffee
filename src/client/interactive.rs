//! The interactive session: a prompt, line editing and history, one reply per line.
//!
//! The session core, [`interactive`], reads lines from any [`LineSource`] and writes to
//! any writer; [`Editor`] is the rustyline source the binary uses on a terminal, and tests
//! drive the core with a plain iterator of lines.

use std::io::{self, Write};
use std::net::TcpStream;
use std::time::Duration;

use super::{connect, peer, send, ClientError};

/// Where the interactive session's lines come from.
pub trait LineSource {
    /// The next line, without its line ending; `None` when the user is done (end of input,
    /// Ctrl-D or Ctrl-C).
    fn next_line(&mut self) -> io::Result<Option<String>>;
}

impl<I: Iterator<Item = String>> LineSource for I {
    fn next_line(&mut self) -> io::Result<Option<String>> {
        Ok(self.next())
    }
}

/// Lines typed at a terminal, with rustyline's editing keys and in-memory history.
pub struct Editor {
    editor: rustyline::DefaultEditor,
    prompt: String,
}

impl Editor {
    /// A line editor that shows `prompt`.
    pub fn new(prompt: impl Into<String>) -> io::Result<Self> {
        let editor = rustyline::DefaultEditor::new().map_err(io::Error::other)?;
        Ok(Editor {
            editor,
            prompt: prompt.into(),
        })
    }
}

impl LineSource for Editor {
    fn next_line(&mut self) -> io::Result<Option<String>> {
        use rustyline::error::ReadlineError;
        match self.editor.readline(&self.prompt) {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = self.editor.add_history_entry(line.as_str());
                }
                Ok(Some(line))
            }
            Err(ReadlineError::Eof | ReadlineError::Interrupted) => Ok(None),
            Err(ReadlineError::Io(e)) => Err(e),
            Err(e) => Err(io::Error::other(e)),
        }
    }
}

/// Runs a session against `target`: each line from `lines` is sent with an LF, and its
/// reply written to `out`. Notices (connected, reconnected) go to `notes`.
///
/// When the server has closed the connection (its idle timeout, or a restart), the next
/// line reconnects first and says so; if that fails, so does the session, naming the
/// address.
pub fn interactive<L, W, N>(
    target: &str,
    timeout: Duration,
    lines: &mut L,
    out: &mut W,
    notes: &mut N,
) -> Result<(), ClientError>
where
    L: LineSource + ?Sized,
    W: Write + ?Sized,
    N: Write + ?Sized,
{
    let local = |what| move |source| ClientError::Local { what, source };
    let mut stream = connect(target, timeout)?;
    let _ = writeln!(
        notes,
        "connected to {}; type a line, Ctrl-D to quit",
        peer(&stream)
    );
    while let Some(line) = lines.next_line().map_err(local("reading input"))? {
        let mut message = line.into_bytes();
        message.push(b'\n');
        if is_closed(&stream) {
            stream = reconnect(target, timeout, &stream, notes)?;
        }
        let reply = match send(&mut stream, &message, timeout) {
            Ok(r) => r,
            Err(ClientError::Closed { .. } | ClientError::Io { .. }) => {
                // Gone between the check and the send: once more on a new connection.
                stream = reconnect(target, timeout, &stream, notes)?;
                send(&mut stream, &message, timeout)?
            }
            Err(e) => return Err(e),
        };
        out.write_all(&reply)
            .and_then(|()| out.flush())
            .map_err(local("writing output"))?;
    }
    Ok(())
}

fn reconnect<N: Write + ?Sized>(
    target: &str,
    timeout: Duration,
    old: &TcpStream,
    notes: &mut N,
) -> Result<TcpStream, ClientError> {
    let _ = writeln!(notes, "the server at {} closed the connection", peer(old));
    let stream = connect(target, timeout)?;
    let _ = writeln!(notes, "reconnected to {}", peer(&stream));
    Ok(stream)
}

/// Whether the server has closed its side (or reset) while we were waiting for the user.
pub(super) fn is_closed(stream: &TcpStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return true;
    }
    let mut b = [0u8; 1];
    let closed = match stream.peek(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != io::ErrorKind::WouldBlock,
    };
    closed || stream.set_nonblocking(false).is_err()
}
