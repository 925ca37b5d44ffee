//! The one pseudo-random text generator: a fixed xorshift64 sequence, so that generated text
//! is varied (bytes lost or reordered anywhere show as a difference, not as a repeating
//! pattern lining up again) and the same on every run (a failure reproduces).
//!
//! Used for `upcase bench`'s ASCII messages and `upcase check`'s long lines.

/// The seed of [`text`]: the 64-bit golden-ratio constant, a common xorshift seed (any
/// non-zero value works; this one starts the sequence well mixed).
pub const SEED: u64 = 0x9E37_79B9_7F4A_7C15;

/// Marsaglia's xorshift64 (shifts 13, 7, 17): a full-period generator of non-zero `u64`s.
/// Not for anything that needs unpredictability.
#[derive(Debug, Clone)]
pub struct Xorshift64(u64);

impl Xorshift64 {
    /// A generator started at `seed` (0 is replaced by [`SEED`]: xorshift stays at 0).
    pub fn new(seed: u64) -> Xorshift64 {
        Xorshift64(if seed == 0 { SEED } else { seed })
    }

    /// The next value of the sequence.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// `len` bytes drawn from `alphabet` (which must not be empty) by the sequence that starts
/// at [`SEED`]: the same bytes for the same arguments on every run.
pub fn text(len: usize, alphabet: &[u8]) -> Vec<u8> {
    assert!(!alphabet.is_empty(), "textgen::text needs an alphabet");
    let mut rng = Xorshift64::new(SEED);
    (0..len)
        .map(|_| alphabet[(rng.next_u64() % alphabet.len() as u64) as usize])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_text_on_every_call_and_only_from_the_alphabet() {
        let a = text(1000, b"xyz");
        assert_eq!(a, text(1000, b"xyz"));
        assert!(a.iter().all(|b| b"xyz".contains(b)));
        assert!(b"xyz".iter().all(|c| a.contains(c)), "every letter appears");
        assert_eq!(text(10, b"ab"), text(20, b"ab")[..10]);
    }

    #[test]
    fn the_sequence_does_not_stick() {
        let mut r = Xorshift64::new(0);
        let first = r.next_u64();
        assert_ne!(first, 0);
        assert_ne!(first, r.next_u64());
    }
}
