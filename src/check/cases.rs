//! The suite: every case, what it sends, and the flaw that makes a server fail it.
//!
//! A case opens its own connections, computes what it expects with the reference
//! transform ([`crate::transform::upcase`]), and returns a short note on success or a
//! failure. Cases run one after another, so that a server serving one client at a
//! time fails only the cases about concurrency.
//!
//! Each case tests one thing, so that a flawed server fails the cases of its flaw and no
//! others where that is possible: the cases other than the Unicode ones send ASCII letters
//! only, the single-message cases send one message, and so on.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use super::wire::{Conn, Ctx, Failure};

/// Lines written in one burst by `pipelined`: about 3 KiB, more than the 1 KiB a naive
/// server reads at once, so the replies to later lines need later reads.
pub const PIPELINED_LINES: usize = 100;

/// Clients held open at once by `many-clients`. Issue 2 asks servers for 100+ concurrent
/// clients; one hundred descriptors fit in any default limit on either side.
pub const MANY_CLIENTS: usize = 100;

/// The size of `large-message`: far beyond any read buffer or socket buffer a server
/// might use whole, so it must be read and written in parts.
pub const LARGE_MESSAGE: usize = 1024 * 1024;

/// The checker writes the large message in pieces of this size while reading the reply.
const LARGE_WRITE: usize = 64 * 1024;

/// How long a split case waits for the echo that proves the server read the first piece
/// of a character. A streaming server answers in microseconds; a second allows for a
/// loaded machine and costs only a server that waits for a newline, once per case. It is
/// never more than a quarter of the case's deadline, so that such a server still has the
/// time to answer the whole line.
const SPLIT_ECHO_WAIT: Duration = Duration::from_secs(1);

/// Pause after the abrupt clients of `abrupt-disconnect` before the next client comes:
/// long enough for a server that dies of a reset (SIGPIPE, an unhandled error) to do so
/// within the case that caused it.
const ABRUPT_SETTLE: Duration = Duration::from_millis(100);

/// What a case returns: a note on success.
type Outcome = Result<String, Failure>;

/// The future a case runs as.
type CaseFuture = Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// One named case of the suite.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    /// Short name, as `--only` takes it.
    pub name: &'static str,
    /// What the case does.
    pub description: &'static str,
    /// The flaw a server that fails it most likely has.
    pub flaw: &'static str,
    /// A Unicode case: informational under `--ascii`.
    pub unicode: bool,
    run: fn(Ctx) -> CaseFuture,
}

impl Case {
    /// Runs the case against the server in `ctx`.
    pub(super) fn run(&self, ctx: Ctx) -> CaseFuture {
        (self.run)(ctx)
    }
}

/// Every case, in the order they run.
pub const CASES: &[Case] = &[
    Case {
        name: "basic",
        description: "one line is sent back upper-cased while the connection stays open",
        flaw: "no upper-casing, or the server waits for the client to close before replying",
        unicode: false,
        run: |ctx| Box::pin(basic(ctx)),
    },
    Case {
        name: "sequential",
        description: "five messages on one connection, each sent after the previous reply",
        flaw: "the server reads once, replies and closes, or serves one message per connection",
        unicode: false,
        run: |ctx| Box::pin(sequential(ctx)),
    },
    Case {
        name: "pipelined",
        description: "100 lines written in one burst all come back, in order",
        flaw: "the server handles one read per message, or loses data that arrived together",
        unicode: false,
        run: |ctx| Box::pin(pipelined(ctx)),
    },
    Case {
        name: "empty-line",
        description: "an empty line comes back as an empty line, and the connection goes on",
        flaw: "the server treats an empty line as the end of the session",
        unicode: false,
        run: |ctx| Box::pin(empty_line(ctx)),
    },
    Case {
        name: "streams-before-newline",
        description: "a partial line is sent back before its newline arrives",
        flaw: "the server buffers whole lines instead of streaming bytes as they arrive",
        unicode: false,
        run: |ctx| Box::pin(streams_before_newline(ctx)),
    },
    Case {
        name: "concurrent-idle",
        description: "a second client is served while the first stays connected and idle",
        flaw: "the server serves one client at a time",
        unicode: false,
        run: |ctx| Box::pin(concurrent_idle(ctx)),
    },
    Case {
        name: "many-clients",
        description: "100 clients connected at once each get their own reply",
        flaw: "the server serves one client at a time, or a fixed few",
        unicode: false,
        run: |ctx| Box::pin(many_clients(ctx)),
    },
    Case {
        name: "large-message",
        description: "a 1 MiB line, written while the reply is read, comes back whole",
        flaw: "the server ignores partial reads or writes (a write() whose count is not \
               checked), or reads only once",
        unicode: false,
        run: |ctx| Box::pin(large_message(ctx)),
    },
    Case {
        name: "half-close-no-newline",
        description: "a message without newline, then a half-close: the reply comes, then EOF",
        flaw: "the server drops the last message when the client half-closes, or never closes",
        unicode: false,
        run: |ctx| Box::pin(half_close_no_newline(ctx)),
    },
    Case {
        name: "incomplete-at-eof",
        description: "an unfinished UTF-8 sequence before a half-close comes back unchanged",
        flaw: "the server drops or replaces an unfinished character at the end of the stream",
        unicode: false,
        run: |ctx| Box::pin(incomplete_at_eof(ctx)),
    },
    Case {
        name: "serves-after-half-close",
        description: "after a client half-closes and is answered, the next client is served",
        flaw: "the server exits or stops accepting when a client closes",
        unicode: false,
        run: |ctx| Box::pin(serves_after_half_close(ctx)),
    },
    Case {
        name: "non-letters",
        description: "CR, NUL, tabs, controls, digits and punctuation come back unchanged",
        flaw: "the server trims, strips CR, stops at NUL, or changes non-letters",
        unicode: false,
        run: |ctx| Box::pin(non_letters(ctx)),
    },
    Case {
        name: "invalid-utf8",
        description: "bytes that are not valid UTF-8 pass through unchanged",
        flaw: "the server replaces invalid bytes with U+FFFD, or drops the connection on them",
        unicode: false,
        run: |ctx| Box::pin(invalid_utf8(ctx)),
    },
    Case {
        name: "split-character",
        description: "multi-byte characters (no letters) split across two writes survive",
        flaw: "the server decodes each read on its own and mangles characters split between reads",
        unicode: false,
        run: |ctx| Box::pin(split_character(ctx)),
    },
    Case {
        name: "unicode-letters",
        description: "accented Latin, Greek, Cyrillic, ǆ, ı and a 4-byte letter are upper-cased",
        flaw: "the server upper-cases ASCII only",
        unicode: true,
        run: |ctx| Box::pin(unicode_letters(ctx)),
    },
    Case {
        name: "unicode-special-casing",
        description: "letters whose upper case is longer: ß → SS, ﬁ → FI, ŉ → ʼN, ΐ → three",
        flaw: "the server maps one character to one (simple case mapping, towupper)",
        unicode: true,
        run: |ctx| Box::pin(unicode_special_casing(ctx)),
    },
    Case {
        name: "split-letter",
        description: "letters split across two writes are still upper-cased",
        flaw: "the server upper-cases each read on its own and misses letters split between reads",
        unicode: true,
        run: |ctx| Box::pin(split_letter(ctx)),
    },
    // Last: a server that dies of it fails every case after it, which would hide what
    // those cases have to say.
    Case {
        name: "abrupt-disconnect",
        description: "clients that reset mid-stream do not break the server for the next one",
        flaw: "the server dies on a reset or a broken pipe (SIGPIPE, an unhandled error)",
        unicode: false,
        run: |ctx| Box::pin(abrupt_disconnect(ctx)),
    },
];

/// The names of every case, in order.
pub fn names() -> Vec<&'static str> {
    CASES.iter().map(|c| c.name).collect()
}

/// One message, one reply, on a fresh connection.
async fn round_trip(ctx: Ctx, message: &[u8]) -> Outcome {
    let mut c = ctx.connect().await?;
    c.send(message).await?;
    c.expect(message, &ctx.expect(message)).await?;
    Ok(format!("{} bytes back as expected", message.len()))
}

async fn basic(ctx: Ctx) -> Outcome {
    round_trip(ctx, b"hello, world\n").await
}

async fn sequential(ctx: Ctx) -> Outcome {
    let messages: [&[u8]; 5] = [
        b"first message\n",
        b"the second one is a little longer than the first\n",
        b"3\n",
        b"fourth: Mixed Case stays upper\n",
        b"fifth and last\n",
    ];
    let mut c = ctx.connect().await?;
    for (i, m) in messages.iter().enumerate() {
        c.send(m).await?;
        c.expect(m, &ctx.expect(m))
            .await
            .map_err(|f| f.context(format!("message {} of {}: ", i + 1, messages.len())))?;
    }
    Ok(format!("{} replies in turn", messages.len()))
}

async fn pipelined(ctx: Ctx) -> Outcome {
    let burst: Vec<u8> = (0..PIPELINED_LINES)
        .flat_map(|i| format!("line {i:03}: the quick brown fox\n").into_bytes())
        .collect();
    let mut c = ctx.connect().await?;
    c.send(&burst).await?;
    c.expect(&burst, &ctx.expect(&burst)).await?;
    Ok(format!(
        "{PIPELINED_LINES} lines ({} bytes) back in order",
        burst.len()
    ))
}

async fn empty_line(ctx: Ctx) -> Outcome {
    let mut c = ctx.connect().await?;
    c.send(b"\n").await?;
    c.expect(b"\n", b"\n")
        .await
        .map_err(|f| f.context("the empty line: "))?;
    let next = b"not empty\n";
    c.send(next).await?;
    c.expect(next, &ctx.expect(next))
        .await
        .map_err(|f| f.context("the line after it: "))?;
    Ok("empty line echoed, connection still served".into())
}

async fn streams_before_newline(ctx: Ctx) -> Outcome {
    let mut c = ctx.connect().await?;
    let part = b"no newline yet";
    c.send(part).await?;
    c.expect(part, &ctx.expect(part))
        .await
        .map_err(|f| f.context("before the newline: "))?;
    let rest = b", now one\n";
    c.send(rest).await?;
    c.expect(rest, &ctx.expect(rest))
        .await
        .map_err(|f| f.context("after the newline: "))?;
    Ok("partial line answered at once".into())
}

async fn concurrent_idle(ctx: Ctx) -> Outcome {
    let mut first = ctx.connect().await?;
    let m1 = b"first client\n";
    first.send(m1).await?;
    first
        .expect(m1, &ctx.expect(m1))
        .await
        .map_err(|f| f.context("first client: "))?;
    let mut second = ctx
        .connect()
        .await
        .map_err(|f| f.context("second client: "))?;
    let m2 = b"second client, first one idle\n";
    second.send(m2).await?;
    second
        .expect(m2, &ctx.expect(m2))
        .await
        .map_err(|f| f.context("second client, while the first stays connected: "))?;
    let m3 = b"first client again\n";
    first.send(m3).await?;
    first
        .expect(m3, &ctx.expect(m3))
        .await
        .map_err(|f| f.context("first client, after the second: "))?;
    Ok("second client served beside an idle first".into())
}

async fn many_clients(ctx: Ctx) -> Outcome {
    let mut conns = Vec::with_capacity(MANY_CLIENTS);
    for i in 0..MANY_CLIENTS {
        let c = ctx.connect().await.map_err(|f| {
            f.context(format!(
                "client {} of {MANY_CLIENTS} (the others still connected): ",
                i + 1
            ))
        })?;
        conns.push(c);
    }
    // Every client is connected before any sends, and each keeps its connection until
    // all are done: the server must hold all of them at once.
    let mut tasks = JoinSet::new();
    for (i, mut c) in conns.into_iter().enumerate() {
        let ctx = ctx.clone();
        tasks.spawn(async move {
            let m = format!("client {:03} of {MANY_CLIENTS} says hello\n", i + 1).into_bytes();
            let r = match c.send(&m).await {
                Ok(()) => c.expect(&m, &ctx.expect(&m)).await,
                Err(f) => Err(f),
            };
            (i, r, c)
        });
    }
    let mut failures: Vec<(usize, Failure)> = Vec::new();
    let mut keep: Vec<Conn> = Vec::with_capacity(MANY_CLIENTS);
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((i, r, c)) => {
                keep.push(c);
                if let Err(f) = r {
                    failures.push((i, f));
                }
            }
            Err(e) => return Err(Failure::new(format!("a client task failed: {e}"))),
        }
    }
    drop(keep);
    failures.sort_by_key(|(i, _)| *i);
    let failed = failures.len();
    match failures.into_iter().next() {
        None => Ok(format!("{MANY_CLIENTS} clients served at once")),
        Some((i, f)) => Err(f.context(format!(
            "{failed} of {MANY_CLIENTS} clients got no correct reply; client {}: ",
            i + 1
        ))),
    }
}

async fn large_message(ctx: Ctx) -> Outcome {
    let message = large_text(LARGE_MESSAGE);
    let mut c = ctx.connect().await?;
    let start = Instant::now();
    c.exchange_large(&message, LARGE_WRITE).await?;
    Ok(format!(
        "1 MiB back whole in {} ms",
        start.elapsed().as_millis()
    ))
}

/// `len` bytes of lower-case text, spaces and punctuation, ending in LF and with no other
/// LF: one long line. Pseudo-random, so that bytes lost anywhere show at once as a
/// difference rather than lining up with a repeating pattern.
pub fn large_text(len: usize) -> Vec<u8> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz abcdefghijklmnopqrstuvwxyz.,;0123456789";
    let mut text = crate::textgen::text(len.saturating_sub(1), ALPHABET);
    text.push(b'\n');
    text
}

/// Sends `message`, half-closes, and expects the whole reply and then EOF.
async fn send_then_half_close(ctx: &Ctx, message: &[u8]) -> Result<(), Failure> {
    let expected = ctx.expect(message);
    let mut c = ctx.connect().await?;
    c.send(message).await?;
    c.half_close().await?;
    c.expect(message, &expected).await?;
    c.expect_eof(message, &expected).await
}

async fn half_close_no_newline(ctx: Ctx) -> Outcome {
    send_then_half_close(&ctx, b"the last words, with no newline").await?;
    Ok("reply, then EOF".into())
}

async fn incomplete_at_eof(ctx: Ctx) -> Outcome {
    // "abc €" cut after the first two bytes of the euro sign: it can never complete.
    send_then_half_close(&ctx, b"abc \xE2\x82").await?;
    Ok("held-back bytes flushed at EOF".into())
}

async fn serves_after_half_close(ctx: Ctx) -> Outcome {
    let m1 = b"goodbye\n";
    let e1 = ctx.expect(m1);
    let mut first = ctx.connect().await?;
    first.send(m1).await?;
    first.half_close().await?;
    first
        .expect(m1, &e1)
        .await
        .map_err(|f| f.context("first client: "))?;
    first
        .expect_eof(m1, &e1)
        .await
        .map_err(|f| f.context("first client: "))?;
    drop(first);
    let m2 = b"hello again\n";
    let mut next = ctx
        .connect()
        .await
        .map_err(|f| f.context("next client: "))?;
    next.send(m2).await?;
    next.expect(m2, &ctx.expect(m2))
        .await
        .map_err(|f| f.context("next client: "))?;
    Ok("next client served".into())
}

async fn abrupt_disconnect(ctx: Ctx) -> Outcome {
    // One client resets in the middle of a stream, with replies still owed to it, so the
    // server's next write meets a reset socket (EPIPE/ECONNRESET)...
    let mut mid = ctx.connect().await?;
    let hello = b"hello\n";
    mid.send(hello).await?;
    mid.expect(hello, &ctx.expect(hello))
        .await
        .map_err(|f| f.context("the client about to reset: "))?;
    // Whether the server takes all of it does not matter: this client is about to vanish.
    let burst = large_text(64 * 1024);
    let _ = mid.send(&burst).await;
    mid.set_reset_on_close();
    drop(mid);
    // ...and one resets before sending anything.
    let early = ctx.connect().await?;
    early.set_reset_on_close();
    drop(early);
    tokio::time::sleep(ABRUPT_SETTLE).await;
    let next = b"anyone there?\n";
    round_trip(ctx, next)
        .await
        .map_err(|f| f.context("the client after two resets: "))?;
    Ok("served after two resets".into())
}

async fn non_letters(ctx: Ctx) -> Outcome {
    round_trip(
        ctx,
        b"tab\there cr\r\nnul:\0 del:\x7F esc:\x1B[1m bell:\x07 \x01\x1F \
          0123456789 !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~\n",
    )
    .await
}

async fn invalid_utf8(ctx: Ctx) -> Outcome {
    // A stray continuation byte, bytes that never occur, a truncated sequence followed by
    // ASCII, an overlong encoding, a surrogate, and a 5-byte form.
    round_trip(
        ctx,
        b"bad: \x80 \xFF\xFE \xC3( \xE2\x82( \xC0\xAF \xED\xA0\x80 \xF8\x88\x80\x80\x80 end\n",
    )
    .await
}

/// Splits `text` into writes: for each `(c, k)` in `cuts`, in order, the next `c` is cut
/// after its `k`-th byte.
fn split_inside(text: &str, cuts: &[(char, usize)]) -> Vec<Vec<u8>> {
    let mut parts = Vec::new();
    let mut current = Vec::new();
    let mut cuts = cuts.iter().peekable();
    for c in text.chars() {
        let mut buf = [0u8; 4];
        let bytes = c.encode_utf8(&mut buf).as_bytes();
        match cuts.peek() {
            Some(&&(want, k)) if want == c => {
                cuts.next();
                current.extend_from_slice(&bytes[..k]);
                parts.push(std::mem::take(&mut current));
                current.extend_from_slice(&bytes[k..]);
            }
            _ => current.extend_from_slice(bytes),
        }
    }
    parts.push(current);
    parts
}

async fn split_character(ctx: Ctx) -> Outcome {
    // Non-letters of 2, 3 and 4 bytes, each cut at a different place: a server that only
    // passes bytes through gets them right, one that decodes each read on its own does not.
    let parts = split_inside(
        "price: 5€ — half: ½ — smile: 🙂 — done\n",
        &[('€', 1), ('—', 2), ('½', 1), ('🙂', 2)],
    );
    split_case(ctx, parts).await
}

async fn split_letter(ctx: Ctx) -> Outcome {
    let parts = split_inside(
        "café жук ωmega 𐐨 straße\n",
        &[('é', 1), ('ж', 1), ('ω', 1), ('𐐨', 3), ('ß', 1)],
    );
    split_case(ctx, parts).await
}

async fn split_case(ctx: Ctx, parts: Vec<Vec<u8>>) -> Outcome {
    let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    let mut c = ctx.connect().await?;
    c.send_split(&parts, SPLIT_ECHO_WAIT.min(ctx.timeout / 4))
        .await?;
    Ok(format!(
        "{} characters split across writes came back right",
        parts.len() - 1
    ))
}

async fn unicode_letters(ctx: Ctx) -> Outcome {
    round_trip(
        ctx,
        "héllo wörld ñ ÿ · ωμέγα λόγος ς · кириллица ёж · ǆ ı · 𐐨\n".as_bytes(),
    )
    .await
}

async fn unicode_special_casing(ctx: Ctx) -> Outcome {
    round_trip(ctx, "straße ﬁx ŉ ΐ ǰ\n".as_bytes()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        let mut names = names();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CASES.len());
    }

    #[test]
    fn split_inside_cuts_inside_the_chosen_characters() {
        let parts = split_inside("a€b", &[('€', 1)]);
        assert_eq!(parts, vec![b"a\xE2".to_vec(), b"\x82\xACb".to_vec()]);
        let parts = split_inside("é🙂", &[('é', 1), ('🙂', 3)]);
        assert_eq!(parts.len(), 3);
        assert_eq!(parts.concat(), "é🙂".as_bytes());
    }

    #[test]
    fn large_text_is_one_line_without_upper_case() {
        let t = large_text(10_000);
        assert_eq!(t.len(), 10_000);
        assert_eq!(t.iter().filter(|&&b| b == b'\n').count(), 1);
        assert_eq!(t.last(), Some(&b'\n'));
        assert!(!t.iter().any(u8::is_ascii_uppercase));
    }

    #[test]
    fn the_unicode_group_is_the_three_unicode_cases() {
        // The other cases must pass on an ASCII-only server; see the module doc.
        let unicode: Vec<_> = CASES.iter().filter(|c| c.unicode).map(|c| c.name).collect();
        assert_eq!(
            unicode,
            ["unicode-letters", "unicode-special-casing", "split-letter"]
        );
        assert_eq!(CASES.last().map(|c| c.name), Some("abrupt-disconnect"));
    }
}
