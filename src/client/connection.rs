//! What the blocking client modes (`send`, the interactive session, reading a banner) talk
//! over: a plain socket, or TLS on one. One [`Connection`] trait, so that each of those is
//! written once and runs on either.

use std::io::{self, Read, Write};
use std::net::TcpStream;

use crate::tls::{self, BlockingStream};

/// A connected stream to a server. Reads and writes go through it (through rustls, over
/// TLS); timeouts, non-blocking mode and the peer's address are set and asked of the
/// socket underneath.
///
/// Reads end with `Ok(0)` when the server closes (its FIN; over TLS its `close_notify`). Over
/// TLS a close without `close_notify` is an `UnexpectedEof` error instead, and a read or
/// write that times out leaves rustls's state intact, so it may simply be tried again.
pub trait Connection: Read + Write {
    /// The socket underneath.
    fn socket(&self) -> &TcpStream;

    /// The TLS version negotiated (`TLSv1.3`), or `None` for a plain connection.
    fn tls_version(&self) -> Option<String>;

    /// Ends the client's side politely: over TLS `close_notify`, then FIN; a plain socket
    /// needs nothing (dropping it closes it). Errors are not worth reporting here: the
    /// session is over.
    fn finish(&mut self) {}
}

impl Connection for TcpStream {
    fn socket(&self) -> &TcpStream {
        self
    }

    fn tls_version(&self) -> Option<String> {
        None
    }
}

impl Connection for BlockingStream {
    fn socket(&self) -> &TcpStream {
        &self.sock
    }

    fn tls_version(&self) -> Option<String> {
        Some(tls::session_info(&self.conn).version)
    }

    fn finish(&mut self) {
        let _ = tls::close_write(self);
    }
}

/// Whether the server has closed its side (or reset) while the client waited for the user.
/// Bytes it sent that nobody asked for (after an earlier reply) are read and dropped here,
/// so that they cannot be taken for the start of the next reply. Over TLS they are read
/// through rustls, which also finds a `close_notify` waiting unread.
pub(super) fn is_closed<C: Connection + ?Sized>(conn: &mut C) -> bool {
    if conn.socket().set_nonblocking(true).is_err() {
        return true;
    }
    let mut buf = [0u8; 4096];
    // Bounded, against a server that never stops sending.
    let mut reads = 0;
    let closed = loop {
        reads += 1;
        match conn.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) if reads < 256 => continue,
            Ok(_) => break false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => break e.kind() != io::ErrorKind::WouldBlock,
        }
    };
    closed || conn.socket().set_nonblocking(false).is_err()
}
