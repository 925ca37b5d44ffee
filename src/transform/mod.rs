//! The streaming upper-caser: bytes in, bytes out, a few bytes of carried state.
//!
//! This module knows nothing of sockets. Every byte path of the program (TCP, UDP, the
//! client's expectations in `bench` and `check`) goes through [`Upcaser`], so the wire
//! behaviour is defined here and only here:
//!
//! - every valid UTF-8 character is replaced by its full Unicode upper-case mapping, exactly
//!   as [`char::to_uppercase`] gives it (`ß` → `SS`, `ﬁ` → `FI`, U+0390 → three characters);
//! - bytes that are not valid UTF-8 pass through unchanged (never replaced by U+FFFD);
//! - a character split across two calls to [`Upcaser::push`] is held back, at most
//!   [`MAX_HELD_BACK`] bytes, until it completes or proves invalid;
//! - [`Upcaser::finish`] flushes an incomplete sequence left at the end of the stream unchanged;
//! - in [`Mode::Ascii`] only `a`–`z` change, exactly like C's `toupper` in the C locale.
//!
//! Because invalid bytes are copied unchanged, how an invalid run is grouped never affects
//! the output, so the result does not depend on where the stream is split.

/// The most bytes [`Upcaser`] ever holds back between calls: the longest proper prefix of a
/// UTF-8 sequence (a 4-byte character missing its last byte).
pub const MAX_HELD_BACK: usize = 3;

/// The most bytes one input byte can turn into. U+0390 (2 bytes) becomes U+0399 U+0308
/// U+0301 (6 bytes); no mapping in Unicode grows by more than 3× per input byte.
pub const MAX_EXPANSION: usize = 3;

/// Which letters are upper-cased.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Full Unicode upper-casing, as [`char::to_uppercase`] does it.
    #[default]
    Unicode,
    /// Only `a`–`z`, as C's `toupper` in the C locale. Every other byte passes unchanged.
    Ascii,
}

/// A streaming upper-case transform.
///
/// Feed it chunks with [`push`](Self::push) as they arrive and call
/// [`finish`](Self::finish) at the end of the stream. The output is the same however the
/// input is split.
#[derive(Debug, Clone, Default)]
pub struct Upcaser {
    mode: Mode,
    held: [u8; MAX_HELD_BACK],
    held_len: u8,
}

impl Upcaser {
    /// A transform in the given mode with nothing held back.
    pub fn new(mode: Mode) -> Self {
        Upcaser {
            mode,
            held: [0; MAX_HELD_BACK],
            held_len: 0,
        }
    }

    /// The mode this transform runs in.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Bytes held back from earlier input, waiting for the rest of a character.
    pub fn held_back(&self) -> &[u8] {
        &self.held[..self.held_len as usize]
    }

    /// Upper-cases `input`, appending the result to `out`.
    ///
    /// An incomplete character at the end of `input` is held back and completed by the next
    /// call. `out` grows by at most `(held_back + input.len()) * MAX_EXPANSION` bytes.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        if self.mode == Mode::Ascii {
            out.extend(input.iter().map(u8::to_ascii_uppercase));
            return;
        }
        let mut input = input;
        if self.held_len > 0 {
            input = self.complete_held(input, out);
            if self.held_len > 0 {
                return; // still incomplete: all of `input` went into `held`
            }
        }
        let rest = upcase_utf8(input, out);
        self.held[..rest.len()].copy_from_slice(rest);
        self.held_len = rest.len() as u8;
    }

    /// Ends the stream: flushes any held-back bytes unchanged, since they can no longer
    /// become a character.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.held_back());
        self.held_len = 0;
    }

    /// Upper-cases `input` in place when it can, which it can when the output has the same
    /// length as the input and nothing is held back or left over; otherwise it falls back to
    /// [`push`](Self::push) into `spill`. Returns the output either way.
    ///
    /// This is the server's hot path: ASCII and same-length text never leave the read buffer.
    pub fn push_in_place<'a>(&mut self, buf: &'a mut [u8], spill: &'a mut Vec<u8>) -> &'a [u8] {
        if self.mode == Mode::Ascii {
            buf.make_ascii_uppercase();
            return buf;
        }
        if self.held_len == 0 && buf.is_ascii() {
            buf.make_ascii_uppercase();
            return buf;
        }
        spill.clear();
        self.push(buf, spill);
        spill
    }

    /// Feeds bytes to a held-back prefix until it completes, proves invalid, or `input`
    /// runs out. Returns what is left of `input`.
    fn complete_held<'a>(&mut self, input: &'a [u8], out: &mut Vec<u8>) -> &'a [u8] {
        let mut buf = [0u8; 4];
        let held = self.held_len as usize;
        buf[..held].copy_from_slice(&self.held[..held]);
        let want = utf8_len(buf[0]);
        let take = (want - held).min(input.len());
        buf[held..held + take].copy_from_slice(&input[..take]);
        let have = held + take;
        match std::str::from_utf8(&buf[..have]) {
            Ok(s) => {
                upcase_str(s, out);
                self.held_len = 0;
                &input[take..]
            }
            Err(e) => match e.error_len() {
                None => {
                    // still a valid prefix: only possible when `input` ran out
                    self.held[..have].copy_from_slice(&buf[..have]);
                    self.held_len = have as u8;
                    &input[take..]
                }
                Some(bad) => {
                    // The held bytes were a valid prefix, so the first error lies at or after
                    // them: `bad >= held`. Those bytes pass unchanged and scanning resumes
                    // in `input` right after them.
                    out.extend_from_slice(&buf[..bad]);
                    self.held_len = 0;
                    &input[bad - held..]
                }
            },
        }
    }
}

/// The length of a UTF-8 sequence from its lead byte, 1 for bytes that cannot lead one.
fn utf8_len(lead: u8) -> usize {
    match lead {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => 1,
    }
}

/// Upper-cases a whole chunk; returns an incomplete (but so far valid) trailing sequence
/// that must be held back.
fn upcase_utf8<'a>(mut input: &'a [u8], out: &mut Vec<u8>) -> &'a [u8] {
    out.reserve(input.len());
    loop {
        match std::str::from_utf8(input) {
            Ok(s) => {
                upcase_str(s, out);
                return &[];
            }
            Err(e) => {
                let (good, bad) = input.split_at(e.valid_up_to());
                // SAFETY: `valid_up_to` is the length of the prefix that `from_utf8` has just
                // validated as UTF-8.
                upcase_str(unsafe { std::str::from_utf8_unchecked(good) }, out);
                match e.error_len() {
                    Some(n) => {
                        out.extend_from_slice(&bad[..n]);
                        input = &bad[n..];
                    }
                    None => return bad,
                }
            }
        }
    }
}

/// Upper-cases valid text, with a fast path for ASCII runs.
fn upcase_str(s: &str, out: &mut Vec<u8>) {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let ascii_run = bytes[i..]
            .iter()
            .position(|b| !b.is_ascii())
            .unwrap_or(bytes.len() - i);
        out.extend(bytes[i..i + ascii_run].iter().map(u8::to_ascii_uppercase));
        i += ascii_run;
        if i == bytes.len() {
            break;
        }
        let Some(c) = s[i..].chars().next() else {
            break;
        };
        let mut tmp = [0u8; 4];
        for u in c.to_uppercase() {
            out.extend_from_slice(u.encode_utf8(&mut tmp).as_bytes());
        }
        i += c.len_utf8();
    }
}

/// The whole transform in one call: what a stream holding exactly `input` comes back as.
pub fn upcase(input: &[u8], mode: Mode) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut up = Upcaser::new(mode);
    up.push(input, &mut out);
    up.finish(&mut out);
    out
}

/// The obvious implementation built on std alone, kept as the oracle the tests compare
/// [`Upcaser`] against: valid UTF-8 through [`str::to_uppercase`], invalid bytes copied.
pub fn reference_upcase(input: &[u8], mode: Mode) -> Vec<u8> {
    if mode == Mode::Ascii {
        return input.to_ascii_uppercase();
    }
    let mut out = Vec::with_capacity(input.len());
    for chunk in input.utf8_chunks() {
        out.extend_from_slice(chunk.valid().to_uppercase().as_bytes());
        out.extend_from_slice(chunk.invalid());
    }
    out
}

#[cfg(test)]
mod tests;
