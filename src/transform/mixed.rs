//! The 2-byte rules of the kernel for half blocks that mix scripts, as table lookups: an
//! AVX2 build of [`super::fast`]'s `kernel::<true, false, ALL>`, with the same output and
//! the same specials.
//!
//! Text that mixes Cyrillic, Greek and Latin-1 inside every 32 bytes (the load generator's,
//! say) can't take a one-script variant, and the general rules test each byte against some
//! forty lead and range conditions. Here the conditions become data. The lead bytes whose
//! continuation bytes move (`C3`, `CE`, `CF`, `D0`, `D1`) have distinct low nibbles, so one
//! `pshufb` on the low nibble of the byte before each lane fetches that lead's rules: two
//! ranges of continuation bytes with their offsets, and one single-byte exception, zeroed
//! where the byte before is not that lead. Whether a 2-byte character is covered at all
//! (else it is a special, for the table) is looked up the same way by its lead byte: the
//! largest continuation byte covered and up to two that are not.

use std::arch::x86_64::{
    __m256i, _mm256_add_epi8, _mm256_and_si256, _mm256_andnot_si256, _mm256_blendv_epi8,
    _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_min_epu8, _mm256_movemask_epi8, _mm256_or_si256,
    _mm256_set1_epi8, _mm256_setr_epi8, _mm256_setzero_si256, _mm256_slli_epi16, _mm256_srli_epi16,
    _mm256_storeu_si256, _mm256_sub_epi8,
};

use super::fast::H;

/// A 16-byte table in both 128-bit lanes, for `_mm256_shuffle_epi8`.
#[inline]
#[target_feature(enable = "avx2")]
fn table(t: [u8; 16]) -> __m256i {
    let t = t.map(|b| b as i8);
    _mm256_setr_epi8(
        t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8], t[9], t[10], t[11], t[12], t[13],
        t[14], t[15], t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8], t[9], t[10], t[11],
        t[12], t[13], t[14], t[15],
    )
}

/// `t[i]` for each lane's `i` in `0..16`, and 0 where the lane's top bit is set.
#[inline]
#[target_feature(enable = "avx2")]
fn lookup(t: __m256i, i: __m256i) -> __m256i {
    std::arch::x86_64::_mm256_shuffle_epi8(t, i)
}

/// `0xFF` where `lo <= x <= lo + len` (unsigned, wrapping), else 0.
#[inline]
#[target_feature(enable = "avx2")]
fn in_range(x: __m256i, lo: __m256i, len: __m256i) -> __m256i {
    let t = _mm256_sub_epi8(x, lo);
    _mm256_cmpeq_epi8(_mm256_min_epu8(t, len), t)
}

#[inline]
#[target_feature(enable = "avx2")]
fn splat(b: u8) -> __m256i {
    _mm256_set1_epi8(b as i8)
}

/// Tables indexed by the low nibble of a lead byte whose continuation bytes move. Entry
/// `k` belongs to the lead byte `OWNER[k]`; what they give for any other byte before is
/// masked off.
const OWNER: [u8; 16] = lead_table(&[
    (0xC3, 0xC3),
    (0xD0, 0xD0),
    (0xD1, 0xD1),
    (0xCE, 0xCE),
    (0xCF, 0xCF),
]);
/// First range: Latin-1 à-þ, Cyrillic а-п, р-я, Greek α-ο (and the final ς), π-ϋ.
const LO1: [u8; 16] = lead_table(&[
    (0xC3, 0xA0),
    (0xD0, 0xB0),
    (0xD1, 0x80),
    (0xCE, 0xB1),
    (0xCF, 0x80),
]);
const LEN1: [u8; 16] = lead_table(&[
    (0xC3, 0x1F),
    (0xD0, 0x0F),
    (0xD1, 0x0F),
    (0xCE, 0x0E),
    (0xCF, 0x0B),
]);
const D1: [u8; 16] = lead_table(&[
    (0xC3, 0xE0),
    (0xD0, 0xE0),
    (0xD1, 0x20),
    (0xCE, 0xE0),
    (0xCF, 0x20),
]);
/// Second range: ß (both bytes become `S`), Cyrillic ѐ-џ, Greek ά-ί, ύ ώ.
const LO2: [u8; 16] = lead_table(&[(0xC3, 0x9F), (0xD1, 0x90), (0xCE, 0xAC), (0xCF, 0x8D)]);
const LEN2: [u8; 16] = lead_table(&[(0xC3, 0x00), (0xD1, 0x0F), (0xCE, 0x03), (0xCF, 0x01)]);
const D2: [u8; 16] = lead_table(&[(0xC3, 0xB4), (0xD1, 0xF0), (0xCE, 0xDB), (0xCF, 0x01)]);
/// One more byte: ÷ (inside the first range) stays, ά is one further than έ ή ί, ς -> Σ.
const X: [u8; 16] = lead_table(&[(0xC3, 0xB7), (0xCE, 0xAC), (0xCF, 0x82)]);
const DX: [u8; 16] = lead_table(&[(0xC3, 0x20), (0xCE, 0xFF), (0xCF, 0x01)]);

/// A table by low nibble from `(lead byte, value)` pairs, zero elsewhere.
const fn lead_table(entries: &[(u8, u8)]) -> [u8; 16] {
    let mut t = [0u8; 16];
    let mut i = 0;
    while i < entries.len() {
        t[(entries[i].0 & 0x0F) as usize] = entries[i].1;
        i += 1;
    }
    t
}

/// Which 2-byte characters the rules get right (the general kernel's list, as data): by
/// lead byte `C0..=DF`, a rule number; by rule, those whose next byte `n` is in
/// `LO ..= LO + LEN` (wrapping) and not one with `n & MASK == BAD`.
const OK_RULES: [[u8; 4]; 8] = [
    [0, 0xFF, 0, 0xFF],    // 0: covered whatever follows
    [0, 0xFF, 0xFF, 0xB5], // 1: C2, not µ
    [0xC0, 0xFE, 0, 0xFF], // 2: C3, not ÿ (BF)
    [0, 0xAF, 0xFF, 0x85], // 3: CD, below B0, not U+0345
    [0, 0xFF, 0xDF, 0x90], // 4: CE, not ΐ (90) or ΰ (B0)
    [0, 0x8E, 0, 0xFF],    // 5: CF, below 8F
    [0, 0x9F, 0, 0xFF],    // 6: D1, below A0
    [0, 0, 0, 0],          // 7: none: the range holds only 0, which is bad
];

/// The rule of [`OK_RULES`] for each lead byte `C0..=DF`.
const OK_RULE_OF: [u8; 32] = {
    let mut t = [7u8; 32];
    let mut c = 0xC0;
    while c <= 0xDF {
        t[c - 0xC0] = match c {
            0xC0 | 0xC1 | 0xCB | 0xCC | 0xD0 | 0xD7..=0xDF => 0,
            0xC2 => 1,
            0xC3 => 2,
            0xCD => 3,
            0xCE => 4,
            0xCF => 5,
            0xD1 => 6,
            _ => 7,
        };
        c += 1;
    }
    t
};
const OK_RULE_OF_HALVES: [[u8; 16]; 2] = [half(&OK_RULE_OF, false), half(&OK_RULE_OF, true)];
const OK_LO: [u8; 16] = ok_column(0);
const OK_LEN: [u8; 16] = ok_column(1);
const OK_MASK: [u8; 16] = ok_column(2);
const OK_BAD: [u8; 16] = ok_column(3);

/// Column `k` of [`OK_RULES`], as a table by rule number.
const fn ok_column(k: usize) -> [u8; 16] {
    let mut t = [0u8; 16];
    let mut i = 0;
    while i < OK_RULES.len() {
        t[i] = OK_RULES[i][k];
        i += 1;
    }
    t
}

/// The first or second half of a 32-entry table.
const fn half(t: &[u8; 32], second: bool) -> [u8; 16] {
    let mut h = [0u8; 16];
    let mut i = 0;
    while i < 16 {
        h[i] = t[i + if second { 16 } else { 0 }];
        i += 1;
    }
    h
}

/// The entry of a 32-entry table for each lane's lead byte `C0..=DF`: by its low nibble
/// from one half or the other, chosen by bit 4 (`hi` is that bit moved to the top).
#[inline]
#[target_feature(enable = "avx2")]
fn lookup32(t: [[u8; 16]; 2], nibble: __m256i, hi: __m256i) -> __m256i {
    _mm256_blendv_epi8(lookup(table(t[0]), nibble), lookup(table(t[1]), nibble), hi)
}

/// `delta` where the lane's byte is in the range `lo ..= lo + len`, all by lead nibble `k`.
#[inline]
#[target_feature(enable = "avx2")]
fn rule(c: __m256i, k: __m256i, lo: [u8; 16], len: [u8; 16], delta: [u8; 16]) -> __m256i {
    let hit = in_range(c, lookup(table(lo), k), lookup(table(len), k));
    _mm256_and_si256(hit, lookup(table(delta), k))
}

/// Upper-cases `win[2..H+2]` into `out` by the 2-byte and ASCII rules and returns the
/// specials, exactly as `kernel::<true, false, ALL>` does: the caller saw no lead byte of a
/// 3- or 4-byte character of a script with case.
#[target_feature(enable = "avx2")]
pub(super) fn kernel(win: &[u8; H + 5], out: &mut [u8; H]) -> u32 {
    // SAFETY: `win` holds `H + 5` bytes, so each 32-byte load at offsets 1, 2 and 3 is in
    // bounds.
    let (p1, c, n) = unsafe {
        let at = |k: usize| _mm256_loadu_si256(win.as_ptr().add(k).cast::<__m256i>());
        (at(1), at(2), at(3))
    };
    let nibble = splat(0x0F);
    // ASCII a-z
    let mut d = _mm256_and_si256(in_range(c, splat(b'a'), splat(25)), splat(0xE0));
    // continuation bytes, by the lead byte before them
    let k = _mm256_and_si256(p1, nibble);
    let owned = _mm256_cmpeq_epi8(lookup(table(OWNER), k), p1);
    let x = _mm256_cmpeq_epi8(c, lookup(table(X), k));
    let moved = _mm256_add_epi8(
        _mm256_add_epi8(rule(c, k, LO1, LEN1, D1), rule(c, k, LO2, LEN2, D2)),
        _mm256_and_si256(x, lookup(table(DX), k)),
    );
    d = _mm256_add_epi8(d, _mm256_and_si256(owned, moved));
    // lead bytes: D1 -> D0 and CF -> CE before a continuation byte, ß's C3 -> S
    let ncont = in_range(n, splat(0x80), splat(0x3F));
    let d1_cf = _mm256_or_si256(
        _mm256_cmpeq_epi8(c, splat(0xD1)),
        _mm256_cmpeq_epi8(c, splat(0xCF)),
    );
    d = _mm256_add_epi8(d, _mm256_and_si256(d1_cf, ncont));
    let sharp_s = _mm256_and_si256(
        _mm256_cmpeq_epi8(c, splat(0xC3)),
        _mm256_cmpeq_epi8(n, splat(0x9F)),
    );
    d = _mm256_add_epi8(
        d,
        _mm256_and_si256(sharp_s, splat(0x53u8.wrapping_sub(0xC3))),
    );
    // specials: lead bytes C0-DF of characters the rules above do not cover
    let lead_nibble = _mm256_and_si256(c, nibble);
    let hi = _mm256_slli_epi16::<3>(c);
    let r = lookup32(OK_RULE_OF_HALVES, lead_nibble, hi);
    let in_ok = in_range(n, lookup(table(OK_LO), r), lookup(table(OK_LEN), r));
    let bad = _mm256_cmpeq_epi8(
        _mm256_and_si256(n, lookup(table(OK_MASK), r)),
        lookup(table(OK_BAD), r),
    );
    let covered = _mm256_andnot_si256(bad, in_ok);
    let two = in_range(c, splat(0xC0), splat(0x1F));
    let special = _mm256_andnot_si256(covered, two);
    // SAFETY: `out` holds `H` = 32 bytes, one unaligned 32-byte store.
    unsafe {
        _mm256_storeu_si256(out.as_mut_ptr().cast::<__m256i>(), _mm256_add_epi8(c, d));
    }
    _mm256_movemask_epi8(special) as u32
}

/// Class bits of a byte, as `HI[high nibble] & LO[low nibble]` (each set is a union of
/// products of nibble sets): a 2-byte lead byte `C0..=DF`; a 3- or 4-byte lead byte of a
/// script with case (`E1`, `E2`, `EA`, `EF` | `F0`); a 2-byte lead byte other than `C2`,
/// `C3` (`C0..=DF` without them | `D0..=DF`); other than `C2`, `D0`, `D1`.
const TWO: u8 = 1;
const THREE_E: u8 = 2;
const THREE_F: u8 = 4;
const NOT_LATIN1_C: u8 = 8;
const NOT_LATIN1_D: u8 = 16;
const NOT_CYRILLIC_C: u8 = 32;
const NOT_CYRILLIC_D: u8 = 64;
const CLASS_HI: [u8; 16] = {
    let mut t = [0u8; 16];
    t[0xC] = TWO | NOT_LATIN1_C | NOT_CYRILLIC_C;
    t[0xD] = TWO | NOT_LATIN1_D | NOT_CYRILLIC_D;
    t[0xE] = THREE_E;
    t[0xF] = THREE_F;
    t
};
const CLASS_LO: [u8; 16] = {
    let mut t = [TWO | NOT_LATIN1_C | NOT_LATIN1_D | NOT_CYRILLIC_C | NOT_CYRILLIC_D; 16];
    t[0x0] = TWO | NOT_LATIN1_C | NOT_LATIN1_D | NOT_CYRILLIC_C | THREE_F;
    t[0x1] = TWO | NOT_LATIN1_C | NOT_LATIN1_D | NOT_CYRILLIC_C | THREE_E;
    t[0x2] = TWO | NOT_LATIN1_D | NOT_CYRILLIC_D | THREE_E;
    t[0x3] = TWO | NOT_LATIN1_D | NOT_CYRILLIC_C | NOT_CYRILLIC_D;
    t[0xA] |= THREE_E;
    t[0xF] |= THREE_E;
    t
};

/// For the block `win[2..66]`, a bit per byte of: a 2-byte lead byte; a 3- or 4-byte lead
/// byte of a script with case; a 2-byte lead byte other than `C2`, `C3`; one other than
/// `C2`, `D0`, `D1`. The same masks as the portable loop in `fast::kernel_any`.
#[target_feature(enable = "avx2")]
pub(super) fn classify(win: &[u8; 2 * H + 5]) -> [u64; 4] {
    let mut masks = [0u64; 4];
    for half in 0..2 {
        // SAFETY: `2 + 32 * half + 32 <= 2 * H + 5`: the load is in bounds.
        let c = unsafe { _mm256_loadu_si256(win.as_ptr().add(2 + H * half).cast::<__m256i>()) };
        let lo = _mm256_and_si256(c, splat(0x0F));
        let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(c), splat(0x0F));
        let class = _mm256_and_si256(lookup(table(CLASS_LO), lo), lookup(table(CLASS_HI), hi));
        for (mask, bits) in masks.iter_mut().zip([
            TWO,
            THREE_E | THREE_F,
            NOT_LATIN1_C | NOT_LATIN1_D,
            NOT_CYRILLIC_C | NOT_CYRILLIC_D,
        ]) {
            let none =
                _mm256_cmpeq_epi8(_mm256_and_si256(class, splat(bits)), _mm256_setzero_si256());
            let set = !(_mm256_movemask_epi8(none) as u32);
            *mask |= u64::from(set) << (H * half);
        }
    }
    masks
}

#[cfg(test)]
mod tests {
    use super::super::fast::{self, Avx2, Kernel, ALL, H, N};

    /// A de Bruijn sequence over bytes of order 3: every 3-byte string occurs in it once,
    /// cyclically (the standard construction by concatenating Lyndon words).
    fn de_bruijn_bytes() -> Vec<u8> {
        const K: usize = 256;
        const ORDER: usize = 3;
        let mut a = [0usize; ORDER + 1];
        let mut seq = Vec::with_capacity(K * K * K + 2);
        fn db(t: usize, p: usize, a: &mut [usize; ORDER + 1], seq: &mut Vec<u8>) {
            if t > ORDER {
                if ORDER.is_multiple_of(p) {
                    seq.extend(a[1..=p].iter().map(|&x| x as u8));
                }
            } else {
                a[t] = a[t - p];
                db(t + 1, p, a, seq);
                for j in a[t - p] + 1..K {
                    a[t] = j;
                    db(t + 1, t, a, seq);
                }
            }
        }
        db(1, 1, &mut a, &mut seq);
        let wrap = [seq[0], seq[1]];
        seq.extend(wrap);
        seq
    }

    /// The lookup kernel gives the general kernel's output and specials for every
    /// (byte before, byte, byte after), the only bytes either reads.
    #[test]
    #[cfg_attr(miri, ignore = "AVX2 intrinsics")]
    fn lookup_kernel_equals_the_general_rules_on_every_byte_triple() {
        let Some(avx2) = Avx2::detect() else {
            eprintln!("skipped: no AVX2");
            return;
        };
        let seq = de_bruijn_bytes();
        assert_eq!(seq.len(), (1 << 24) + 2);
        let mut seen = 0;
        for start in (0..seq.len() - 2).step_by(H) {
            // lane i reads win[i + 1 ..= i + 3]; pad the end with zeros
            let mut win = [0u8; H + 5];
            let avail = (seq.len() - start).min(H + 4);
            win[1..1 + avail].copy_from_slice(&seq[start..start + avail]);
            let (mut want, mut got) = ([0u8; H], [0u8; H]);
            let want_special = fast::kernel::<true, false, ALL>(&win, &mut want);
            let got_special = avx2.mixed(&win, &mut got);
            let lanes = (seq.len() - 2 - start).min(H);
            let live = if lanes == H {
                u32::MAX
            } else {
                (1 << lanes) - 1
            };
            for i in 0..lanes {
                assert_eq!(
                    (got[i], got_special >> i & 1),
                    (want[i], want_special >> i & 1),
                    "bytes {:02X?}",
                    &win[i + 1..i + 4]
                );
            }
            assert_eq!(got_special & live, want_special & live);
            seen += lanes;
        }
        assert_eq!(seen, 1 << 24);
    }

    /// The lookup classifier agrees with the portable one on every byte at every lane.
    #[test]
    #[cfg_attr(miri, ignore = "AVX2 intrinsics")]
    fn lookup_classifier_equals_the_portable_one_on_every_byte() {
        let Some(avx2) = Avx2::detect() else {
            eprintln!("skipped: no AVX2");
            return;
        };
        for shift in 0..N {
            let mut win = [0u8; N + 5];
            for (i, b) in win.iter_mut().enumerate() {
                *b = ((i + shift) * 4) as u8; // 64 lanes, 4 shifts: each byte at each lane
            }
            for b in 0..=3u8 {
                let win = win.map(|x| x.wrapping_add(b));
                let got = avx2.classify(&win);
                assert_eq!(got, fast::classify_portable(&win), "window {win:02X?}");
            }
        }
    }
}
