//! One character at a time: decoding a UTF-8 sequence and looking up its upper case.
//!
//! This is the exact path: every character the block kernel of [`super::fast`] does not
//! handle itself comes here. Mappings of the Basic Multilingual Plane come from tables that
//! `build.rs` generates from `char::to_uppercase`; the few cased characters beyond it
//! (Deseret, Osage, Adlam, ...) ask `char::to_uppercase` directly.

mod generated {
    include!(concat!(env!("OUT_DIR"), "/upcase_tables.rs"));
}

use generated::{STAGE1, STAGE2};

/// One character's worth of output: up to 7 bytes packed low byte first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Step {
    /// The output bytes, first byte in the lowest 8 bits.
    pub packed: u64,
    /// How many input bytes the step consumes (1 for an invalid byte).
    pub in_len: usize,
    /// How many bytes of `packed` are output.
    pub out_len: usize,
}

impl Step {
    /// The output bytes as an array; only the first `out_len` mean anything.
    #[inline(always)]
    pub fn bytes(&self) -> [u8; 8] {
        self.packed.to_le_bytes()
    }
}

/// What [`step`] found at the start of its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Decoded {
    /// A character (or a byte that cannot start one, passed through as itself).
    Step(Step),
    /// A valid but incomplete sequence that runs to the end of the input: hold it back.
    Truncated,
}

/// The packed upper case of a Basic Multilingual Plane scalar value, or 0 when it maps to
/// itself.
#[inline(always)]
pub(super) fn bmp_upper(cp: u32) -> u64 {
    debug_assert!(cp < 0x10000);
    let block = STAGE1[(cp >> 6) as usize] as usize;
    STAGE2[block][(cp & 63) as usize]
}

/// Whether `b` is a UTF-8 continuation byte.
#[inline(always)]
pub(super) fn is_cont(b: u8) -> bool {
    (b as i8) < -64
}

/// Decodes the character at the start of `input` (never empty) and upper-cases it.
///
/// Invalid bytes come back one at a time, unchanged: since they are copied, how an invalid
/// run is grouped never shows in the output. A valid prefix cut off by the end of `input`
/// is [`Decoded::Truncated`].
#[inline(always)]
pub(super) fn step(input: &[u8]) -> Decoded {
    let lead = input[0];
    let invalid = Decoded::Step(Step {
        packed: u64::from(lead) | 1 << 56,
        in_len: 1,
        out_len: 1,
    });
    // The range the second byte must fall in, per the UTF-8 definition (RFC 3629): it
    // excludes overlong forms, surrogates and values beyond U+10FFFF.
    let (len, lo, hi) = match lead {
        0x00..=0x7F => {
            let up = lead.to_ascii_uppercase();
            return Decoded::Step(Step {
                packed: u64::from(up) | 1 << 56,
                in_len: 1,
                out_len: 1,
            });
        }
        0xC2..=0xDF => (2, 0x80, 0xBF),
        0xE0 => (3, 0xA0, 0xBF),
        0xED => (3, 0x80, 0x9F),
        0xE1..=0xEF => (3, 0x80, 0xBF),
        0xF0 => (4, 0x90, 0xBF),
        0xF4 => (4, 0x80, 0x8F),
        0xF1..=0xF3 => (4, 0x80, 0xBF),
        _ => return invalid,
    };
    let Some(&second) = input.get(1) else {
        return Decoded::Truncated;
    };
    if !(lo..=hi).contains(&second) {
        return invalid;
    }
    let mut cp = u32::from(lead) & (0x7F >> len);
    cp = cp << 6 | u32::from(second & 0x3F);
    for i in 2..len {
        match input.get(i) {
            None => return Decoded::Truncated,
            Some(&b) if is_cont(b) => cp = cp << 6 | u32::from(b & 0x3F),
            Some(_) => return invalid,
        }
    }
    let mapped = if cp < 0x10000 { bmp_upper(cp) } else { 0 };
    let packed = if mapped != 0 {
        mapped
    } else if cp >= 0x10000 {
        supplementary_upper(cp)
    } else {
        0
    };
    if packed == 0 {
        // maps to itself: the input bytes are the output
        let mut same = 0u64;
        for (i, &b) in input[..len].iter().enumerate() {
            same |= u64::from(b) << (8 * i);
        }
        return Decoded::Step(Step {
            packed: same | (len as u64) << 56,
            in_len: len,
            out_len: len,
        });
    }
    Decoded::Step(Step {
        packed,
        in_len: len,
        out_len: (packed >> 56) as usize,
    })
}

/// The packed upper case of a scalar value beyond the BMP (or 0 when unchanged). Cased
/// letters there are rare and all map one-to-one, so std is asked directly.
#[cold]
fn supplementary_upper(cp: u32) -> u64 {
    let Some(c) = char::from_u32(cp) else {
        return 0;
    };
    let mut up = c.to_uppercase();
    match (up.next(), up.next()) {
        (Some(u), None) if u == c => 0,
        _ => {
            let s: String = c.to_uppercase().collect();
            let mut packed = (s.len() as u64) << 56;
            for (i, &b) in s.as_bytes().iter().enumerate() {
                packed |= u64::from(b) << (8 * i);
            }
            packed
        }
    }
}
