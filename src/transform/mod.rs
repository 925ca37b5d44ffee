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
//!
//! # Method
//!
//! std's [`str::to_uppercase`] decodes every character, looks it up in a table by binary
//! search and encodes the result: 250–450 MB/s. This module avoids per-character work for
//! the text that dominates real traffic. It cuts the input into blocks of 64 bytes and
//! classifies each block with a few SIMD instructions (`fast.rs`): a block of ASCII is
//! upper-cased as a vector (`a`–`z` minus 0x20). Otherwise one branch-free kernel computes,
//! for every byte at once, what it must become from the byte itself and its neighbours,
//! using the fact that many scripts map a lower-case range to an upper-case range by a
//! fixed offset of the UTF-8 bytes: Latin-1 `à`–`þ` (second byte −0x20), `ß` (both bytes
//! become `S`), Cyrillic `а`–`я`, `ё`…`џ` (second byte ±, lead `D1`→`D0`), Greek `α`–`ω` and
//! its tonos letters, and the Greek Extended letters with breathings and grave accents
//! (U+1F00–1F7D: third byte +8 or a fixed remap). Lead bytes of caseless scripts (CJK,
//! kana, Hangul, most emoji, general punctuation) are recognised and their characters
//! copied as they are. Every other character (one that changes length, like `ῆ` → `Η͂`,
//! or belongs to a script the kernel has no rule for) is flagged by the kernel, and only
//! those go one at a time through a two-stage table (`table.rs`) that `build.rs` generates
//! from [`char::to_uppercase`] itself, so the mapping can never drift from Rust's Unicode
//! version. Blocks always start at a character boundary, so a block never needs bytes that
//! an earlier block may already have overwritten: that is what lets the same loop work in
//! place ([`Upcaser::push_in_place`], until a character changes length) or into a separate
//! buffer. The kernel is plain Rust over fixed-size arrays that the compiler vectorises;
//! an AVX2 build of it is picked at run time where the CPU has AVX2. It also comes in
//! narrower variants, picked per half block by the lead bytes it holds (only Latin-1,
//! only Cyrillic, only Greek and Greek Extended), so that text in one script pays only
//! for that script's rules: polytonic Greek, which needs both the 2- and the 3-byte
//! rules, runs about 1.4× faster in its own variant than in the full kernel. Text that
//! changes script every word (Cyrillic, German, Greek and CJK side by side, as the load
//! generator sends) fits no variant; under AVX2 its 2-byte rules run as table lookups
//! instead (`mixed.rs`): the lead bytes whose letters move have distinct low nibbles, so
//! one `pshufb` by the nibble of the byte before fetches each byte's ranges and offsets,
//! about 1.5× faster than testing every rule. The tests
//! compare every scalar value, in every block position and beside every kind of neighbour, and
//! random valid, invalid and truncated streams split anywhere, against std.

/// The most bytes [`Upcaser`] ever holds back between calls: the longest proper prefix of a
/// UTF-8 sequence (a 4-byte character missing its last byte).
pub const MAX_HELD_BACK: usize = 3;

/// The most bytes one input byte can turn into. U+0390 (2 bytes) becomes U+0399 U+0308
/// U+0301 (6 bytes); no mapping in Unicode grows by more than 3× per input byte.
pub const MAX_EXPANSION: usize = 3;

/// Up to this many bytes, [`Upcaser::push_in_place`] first upper-cases the ASCII letters of
/// its input in one pass that also checks whether it is all ASCII: if it is, that is the
/// result. For a 64-byte message that takes 93 instructions against the block
/// kernel's 219, most of them its set-up (callgrind, in the server). Longer input, and
/// short input that is not all ASCII, goes to the kernel, which checks as it goes.
const SHORT: usize = 256;

/// Upper-cases the ASCII letters of `buf` and returns whether all of it is ASCII, in one
/// pass without branches, which the compiler vectorises.
///
/// Where it is not all ASCII, what it did still holds under full Unicode upper-casing,
/// which may then go over the same bytes: it changed only `a`–`z`, which stand for
/// themselves in UTF-8 (every byte of a longer sequence is 0x80 or above), and the upper
/// case of `A`–`Z` is itself.
fn upcase_ascii_letters(buf: &mut [u8]) -> bool {
    let mut seen = 0u8;
    for b in buf.iter_mut() {
        seen |= *b;
        *b -= u8::from(b.wrapping_sub(b'a') < 26) << 5;
    }
    seen < 0x80
}

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
            let start = out.len();
            out.extend_from_slice(input);
            out[start..].make_ascii_uppercase();
            return;
        }
        let mut input = input;
        if self.held_len > 0 {
            input = self.complete_held(input, out);
            if self.held_len > 0 {
                return; // still incomplete: all of `input` went into `held`
            }
        }
        let held = copy_into(input, 0, out);
        self.hold(&input[held..]);
    }

    /// Ends the stream: flushes any held-back bytes unchanged, since they can no longer
    /// become a character.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.held_back());
        self.held_len = 0;
    }

    /// Upper-cases `buf` in place when it can, which it can as long as every character's
    /// upper case has the same UTF-8 length as the character (ASCII, Latin-1, Cyrillic,
    /// Greek without iota subscripts, CJK, emoji, and `ß` → `SS` all do) and nothing is
    /// held back from the previous call. From the first character that changes length on,
    /// it copies: the output is then built in `spill`. Returns the output either way.
    ///
    /// An incomplete character at the end of `buf` is held back as by [`push`](Self::push),
    /// so the returned slice may be shorter than `buf` even in place.
    ///
    /// This is the server's hot path: most text never leaves the read buffer.
    pub fn push_in_place<'a>(&mut self, buf: &'a mut [u8], spill: &'a mut Vec<u8>) -> &'a [u8] {
        if self.mode == Mode::Ascii {
            buf.make_ascii_uppercase();
            return buf;
        }
        if self.held_len > 0 {
            spill.clear();
            self.push(buf, spill);
            return spill;
        }
        if buf.len() <= SHORT && upcase_ascii_letters(buf) {
            // A short message of ASCII (most requests of a line service): one plain pass
            // costs less than setting up the block kernel. The result is the same.
            return buf;
        }
        match fast::drive(&mut fast::InPlace::new(buf), 0, 0) {
            fast::Outcome::Done { held, .. } => {
                self.hold(&buf[held..]);
                &buf[..held]
            }
            fast::Outcome::Stopped { at } => {
                spill.clear();
                spill.extend_from_slice(&buf[..at]);
                let held = copy_into(buf, at, spill);
                self.hold(&buf[held..]);
                spill
            }
        }
    }

    /// Keeps `rest`, a valid but incomplete sequence, for the next call.
    fn hold(&mut self, rest: &[u8]) {
        self.held[..rest.len()].copy_from_slice(rest);
        self.held_len = rest.len() as u8;
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
        // The held bytes are a lead byte and continuation bytes, so only a step at the lead
        // can be truncated; once it fails, the rest are single invalid bytes.
        let mut at = 0;
        while at < held {
            match table::step(&buf[at..have]) {
                table::Decoded::Step(s) => {
                    out.extend_from_slice(&s.bytes()[..s.out_len]);
                    at += s.in_len;
                }
                table::Decoded::Truncated => {
                    // only possible when `input` ran out
                    self.hold(&buf[..have]);
                    return &input[take..];
                }
            }
        }
        self.held_len = 0;
        &input[at - held..]
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

/// Upper-cases `input[p..]` onto the end of `out`; `p` is a character boundary. Returns where a valid but incomplete trailing sequence starts (`input.len()` if
/// there is none).
fn copy_into(input: &[u8], p: usize, out: &mut Vec<u8>) -> usize {
    out.reserve((input.len() - p) * MAX_EXPANSION + fast::SLACK);
    let start = out.len();
    let spare = out.capacity() - start;
    let mut sink = fast::CopySink {
        input,
        out: out.spare_capacity_mut(),
    };
    let fast::Outcome::Done { written, held } = fast::drive(&mut sink, p, 0) else {
        unreachable!("a copying sink never stops");
    };
    // Each step of `w` in `drive` follows a bounds-checked store at least as long, so the
    // output cannot have run past the spare capacity without a panic.
    debug_assert!(
        written <= spare,
        "{written} bytes written into {spare} of spare capacity"
    );
    // SAFETY: `drive` writes its output contiguously from the start of the spare capacity
    // and reports its length as `written`, so `start + written` bytes are initialised; the
    // sink's bounds-checked slice writes keep `written` within the capacity.
    unsafe { out.set_len(start + written) };
    held
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

mod fast;
#[cfg(all(target_arch = "x86_64", not(miri)))]
mod mixed;
mod table;

#[cfg(test)]
mod tests;
