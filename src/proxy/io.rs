//! The one piece of I/O around the decoder: reading a header from an async stream, for a
//! driver that reads with `AsyncRead` (a sans-I/O driver feeds [`Decoder`] itself).

use std::ops::Range;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::{Decoder, Header, Progress, ProxyError};

/// Why [`read_header`] gave up.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    /// The header was refused, incomplete at end of input, or late: count it as a rejected
    /// connection (`reason="proxy_header"`) and close without a reply.
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    /// The socket failed (a reset): a connection error, not the header's fault.
    #[error("reading the PROXY header: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads until `decoder` has a whole header, within `timeout`. Reads go into `buf` (any
/// non-zero size; the connection's own read buffer is best), so the client's first data
/// that arrived with the header is left there: on success `buf[range]` holds it, to be
/// served before anything else is read.
pub async fn read_header<R>(
    reader: &mut R,
    mut decoder: Decoder,
    timeout: Duration,
    buf: &mut [u8],
) -> Result<(Header, Range<usize>), HeaderError>
where
    R: AsyncRead + Unpin,
{
    let work = async {
        loop {
            let n = reader.read(buf).await?;
            if n == 0 {
                return Err(decoder.truncated().into());
            }
            if let Progress::Done { header, consumed } = decoder.feed(&buf[..n])? {
                return Ok((header, consumed..n));
            }
        }
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(result) => result,
        Err(_) => Err(ProxyError::TimedOut(timeout).into()),
    }
}
