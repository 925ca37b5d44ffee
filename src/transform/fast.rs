//! The block kernel and the loop that drives it, in place or into a separate buffer.
//!
//! See the module doc of [`super`] for the method. The kernel is written as plain loops
//! over fixed-size arrays, with no branches inside, so that the compiler turns each of them
//! into a handful of SIMD instructions; [`drive`] picks an AVX2 build of the same code at
//! run time where the CPU has it.
//!
//! Which build runs is a [`Kernel`], passed down the loop by value: [`Portable`], or
//! [`Avx2`], a token that only [`Avx2::detect`] can make. The calls into code compiled for
//! AVX2 live in `Avx2`'s methods, so holding the token is what makes them sound, not a
//! convention about which caller passes which flag. Both tokens are zero-sized.

use std::mem::MaybeUninit;

use super::table::{is_cont, step, Decoded, Step};

/// Bytes per block: four SSE registers, two AVX2 registers.
pub(super) const N: usize = 64;

/// A bit per byte of a block.
type Mask = u64;

/// The window the kernel sees around a block at `p`: `p-2 .. p+N+3`. Three bytes after the
/// block, so that a character starting in it can be classified whole; two before, which
/// the rules read but which never decide anything, since a block starts at a character
/// boundary (they may already be output, in place).
const WIN: usize = N + 5;

/// Extra capacity [`CopySink`] needs beyond the output itself: it stores whole blocks and
/// whole 8-byte steps and lets the next store overwrite the tail.
pub(super) const SLACK: usize = 2 * N + 8;

/// Where the transformed bytes go.
pub(super) trait Sink {
    /// Whether output overwrites input. Then every step must keep its length; [`drive`]
    /// stops at the first that does not.
    const IN_PLACE: bool;
    /// The input, as it was before any output was written at or after the read position.
    fn input(&self) -> &[u8];
    /// Writes `out[from..to]` at output offset `w` (`to <= N`). A copying sink may store
    /// `N` bytes and let later writes overwrite the rest.
    fn put_seg(&mut self, w: usize, out: &[u8; 2 * N], from: usize, to: usize);
    /// Writes a whole block at `w`.
    fn put_block(&mut self, w: usize, block: &[u8; N]);
    /// Writes a step's bytes at `w`.
    fn put_step(&mut self, w: usize, s: &Step);
    /// Writes a whole block of ASCII at `w`. The next block does not read back into it.
    fn put_ascii(&mut self, w: usize, block: &[u8; N]) {
        self.put_block(w, block);
    }
    /// Completes every write.
    fn flush(&mut self) {}
}

/// Output overwrites the input buffer.
///
/// Whole blocks are stored one block late: storing a block and at once loading the next
/// window, which overlaps it, would stall the load until the store completes (a failed
/// store-to-load forward). Storing late means every load reads bytes no store is pending on.
pub(super) struct InPlace<'a> {
    buf: &'a mut [u8],
    pending: [u8; N],
    /// Where `pending` goes, if anything is pending.
    pending_at: Option<usize>,
}

impl<'a> InPlace<'a> {
    pub fn new(buf: &'a mut [u8]) -> Self {
        InPlace {
            buf,
            pending: [0; N],
            pending_at: None,
        }
    }
}

impl Sink for InPlace<'_> {
    const IN_PLACE: bool = true;
    #[inline(always)]
    fn input(&self) -> &[u8] {
        self.buf
    }
    #[inline(always)]
    fn put_seg(&mut self, w: usize, out: &[u8; 2 * N], from: usize, to: usize) {
        self.flush();
        self.buf[w..w + (to - from)].copy_from_slice(&out[from..to]);
    }
    #[inline(always)]
    fn put_block(&mut self, w: usize, block: &[u8; N]) {
        self.flush();
        self.pending = *block;
        self.pending_at = Some(w);
    }
    #[inline(always)]
    fn put_step(&mut self, w: usize, s: &Step) {
        self.flush();
        self.buf[w..w + s.out_len].copy_from_slice(&s.bytes()[..s.out_len]);
    }
    #[inline(always)]
    fn put_ascii(&mut self, w: usize, block: &[u8; N]) {
        self.flush();
        self.buf[w..w + N].copy_from_slice(block);
    }
    #[inline(always)]
    fn flush(&mut self) {
        if let Some(at) = self.pending_at.take() {
            self.buf[at..at + N].copy_from_slice(&self.pending);
        }
    }
}

/// Output goes into the spare capacity of a vector, which must hold
/// `MAX_EXPANSION * input + SLACK` bytes.
pub(super) struct CopySink<'a> {
    pub input: &'a [u8],
    pub out: &'a mut [MaybeUninit<u8>],
}

/// Views initialised bytes as possibly-uninitialised ones, for copying into spare capacity.
#[inline(always)]
fn as_uninit(bytes: &[u8]) -> &[MaybeUninit<u8>] {
    // SAFETY: `MaybeUninit<u8>` has the size, alignment and validity of `u8` and admits
    // every value `u8` does; the slice is shared, so nothing can write uninitialised bytes
    // through it into `bytes`.
    unsafe { &*(bytes as *const [u8] as *const [MaybeUninit<u8>]) }
}

impl Sink for CopySink<'_> {
    const IN_PLACE: bool = false;
    #[inline(always)]
    fn input(&self) -> &[u8] {
        self.input
    }
    #[inline(always)]
    fn put_seg(&mut self, w: usize, out: &[u8; 2 * N], from: usize, _to: usize) {
        self.out[w..w + N].copy_from_slice(as_uninit(&out[from..from + N]));
    }
    #[inline(always)]
    fn put_block(&mut self, w: usize, block: &[u8; N]) {
        self.out[w..w + N].copy_from_slice(as_uninit(block));
    }
    #[inline(always)]
    fn put_step(&mut self, w: usize, s: &Step) {
        self.out[w..w + 8].copy_from_slice(as_uninit(&s.bytes()));
    }
}

/// How [`drive`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// All input up to `held` was transformed into `written` output bytes; what is left
    /// from `held` on is a valid but incomplete character to hold back.
    Done { written: usize, held: usize },
    /// In place only: the character at `at` changes length. Everything before it is done
    /// (in place, so `at` is also the output length), and `at` is a character boundary.
    Stopped { at: usize },
}

/// Transforms `sink.input()[p..]`, writing output from offset `w`. `p` must be a character
/// boundary: the start of the stream, or just after a character or an invalid byte.
#[inline]
pub(super) fn drive<S: Sink>(sink: &mut S, p: usize, w: usize) -> Outcome {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    if let Some(avx2) = Avx2::detect() {
        return avx2.drive(sink, p, w);
    }
    drive_generic(Portable, sink, p, w)
}

/// A build of the kernel: what [`drive_generic`] calls for the parts that differ by CPU.
pub(super) trait Kernel: Copy {
    /// Whether [`mixed`](Self::mixed) is the table-lookup kernel of `mixed.rs`, faster than
    /// the general rules on half blocks that mix scripts. If not, it is the general rules
    /// themselves, and [`kernel_any`] picks narrower variants per half instead.
    const LOOKUP: bool;
    /// The masks of [`classify_portable`] for the block in `win`.
    fn classify(self, win: &[u8; WIN]) -> [Mask; 4];
    /// Exactly `kernel::<true, false, ALL>`: the 2-byte and ASCII rules for a half block
    /// with no lead byte of a 3- or 4-byte character of a script with case.
    fn mixed(self, win: &[u8; H + 5], out: &mut [u8; H]) -> u32;
}

/// The kernel as plain Rust, for any CPU: what the compiler makes of the loops for the
/// target's baseline instruction set.
#[derive(Debug, Clone, Copy)]
pub(super) struct Portable;

impl Kernel for Portable {
    const LOOKUP: bool = false;
    #[inline(always)]
    fn classify(self, win: &[u8; WIN]) -> [Mask; 4] {
        classify_portable(win)
    }
    #[inline(always)]
    fn mixed(self, win: &[u8; H + 5], out: &mut [u8; H]) -> u32 {
        kernel::<true, false, ALL>(win, out)
    }
}

/// Proof that the CPU supports AVX2: the private field means only [`Avx2::detect`] makes
/// one, and it does so only after `is_x86_feature_detected!` said yes.
#[cfg(all(target_arch = "x86_64", not(miri)))]
#[derive(Debug, Clone, Copy)]
pub(super) struct Avx2(());

#[cfg(all(target_arch = "x86_64", not(miri)))]
impl Avx2 {
    /// The token, where the CPU supports AVX2 (std caches the answer after the first call,
    /// so this is one load and a test). In this crate's tests, `None` inside
    /// [`portable_only`], so that the portable kernel is tested where AVX2 exists too.
    #[inline]
    pub(super) fn detect() -> Option<Self> {
        #[cfg(test)]
        if PORTABLE_ONLY.get() {
            return None;
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            Some(Avx2(()))
        } else {
            None
        }
    }

    /// [`drive_generic`] compiled for AVX2.
    #[inline]
    fn drive<S: Sink>(self, sink: &mut S, p: usize, w: usize) -> Outcome {
        // SAFETY: `self` exists, so the CPU supports AVX2, the one requirement that
        // `#[target_feature(enable = "avx2")]` adds to calling `drive_avx2`.
        unsafe { drive_avx2(self, sink, p, w) }
    }
}

#[cfg(all(target_arch = "x86_64", not(miri)))]
impl Kernel for Avx2 {
    const LOOKUP: bool = true;
    #[inline(always)]
    fn classify(self, win: &[u8; WIN]) -> [Mask; 4] {
        // SAFETY: `self` exists, so the CPU supports AVX2, all that `mixed::classify`
        // requires.
        unsafe { super::mixed::classify(win) }
    }
    #[inline(always)]
    fn mixed(self, win: &[u8; H + 5], out: &mut [u8; H]) -> u32 {
        // SAFETY: `self` exists, so the CPU supports AVX2, all that `mixed::kernel`
        // requires.
        unsafe { super::mixed::kernel(win, out) }
    }
}

/// [`drive_generic`] compiled for AVX2: the same code, twice the lanes per instruction.
#[cfg(all(target_arch = "x86_64", not(miri)))]
#[target_feature(enable = "avx2")]
fn drive_avx2<S: Sink>(avx2: Avx2, sink: &mut S, p: usize, w: usize) -> Outcome {
    drive_generic(avx2, sink, p, w)
}

#[cfg(test)]
thread_local! {
    /// Set by [`portable_only`]: [`Avx2::detect`] then says no.
    static PORTABLE_ONLY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with the portable kernel on this thread, even where the CPU has AVX2.
#[cfg(test)]
pub(super) fn portable_only<R>(f: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            PORTABLE_ONLY.set(self.0);
        }
    }
    let _reset = Reset(PORTABLE_ONLY.replace(true));
    f()
}

/// The loop: blocks of `N` bytes through the kernel, characters it does not cover through
/// the table.
///
/// A block starts only where the input holds no continuation byte (or at the caller's
/// boundary), so no rule of the kernel ever needs the bytes before the block: those may
/// already be output when working in place. A character cut by the end of a block is
/// left to the next block.
#[inline(always)]
fn drive_generic<S: Sink, K: Kernel>(k: K, sink: &mut S, mut p: usize, mut w: usize) -> Outcome {
    let end = incomplete_tail(sink.input(), p);
    // the kernel's output, then zeros: a copying sink stores `N` bytes from any offset
    let mut out = [0u8; 2 * N];
    while p < end {
        // ASCII, a block at a time: the next byte, whatever it is, starts a character or
        // is invalid, so no context is carried
        while p + N <= end {
            let block: [u8; N] = sink.input()[p..p + N].try_into().expect("N bytes");
            if movemask(&block) != 0 {
                break;
            }
            sink.put_ascii(
                w,
                &block.map(|b| b.wrapping_sub(m(within(b, b'a', b'z')) & 0x20)),
            );
            p += N;
            w += N;
        }
        if p >= end {
            break;
        }
        // The window: 2 bytes before the block, the block, 3 bytes of look-ahead. Near the
        // ends it is a padded copy: zeros continue nothing, just as the end of the input
        // (or a held-back sequence, which starts with a lead byte) continues nothing.
        let mut edge = [0u8; WIN];
        let lanes = (end - p).min(N);
        let (specials, next) = {
            let win: &[u8; WIN] = if p >= 2 && p + WIN - 2 <= end {
                sink.input()[p - 2..p + WIN - 2]
                    .try_into()
                    .expect("WIN bytes")
            } else {
                let real = (end - p).min(WIN - 2);
                edge[2..2 + real].copy_from_slice(&sink.input()[p..p + real]);
                &edge
            };
            // bit i: the byte at `p + i + 1` is not a continuation byte
            let mut starts = [0u8; N];
            for (i, s) in starts.iter_mut().enumerate() {
                *s = m(!is_cont(win[i + 3]));
            }
            let starts = movemask(&starts);
            let specials = kernel_any(k, win, (&mut out[..N]).try_into().expect("N bytes"));
            // Where the next block starts: back over continuation bytes to the start of
            // the character the block cuts (at most 3; more are invalid and cut nothing).
            let mut next = lanes;
            if p + next < end {
                let last = starts & (0xF << (N - 4)); // bytes p+N-3 ..= p+N
                if last != 0 {
                    next = N - last.leading_zeros() as usize;
                }
            }
            if S::IN_PLACE {
                // the cut character stays as it is, so a whole block can be stored (lane
                // indices as bytes: compared as `usize`, they take eight times the lanes)
                const LANE: [u8; N] = {
                    let mut lane = [0u8; N];
                    let mut i = 0;
                    while i < N {
                        lane[i] = i as u8;
                        i += 1;
                    }
                    lane
                };
                let next = next as u8;
                for ((o, &lane), &c) in out[..N].iter_mut().zip(&LANE).zip(&win[2..N + 2]) {
                    let keep = m(lane < next);
                    *o = *o & keep | c & !keep;
                }
            }
            (specials & (Mask::MAX >> (N - next)), next)
        };
        if specials == 0 && lanes == N {
            // one store of the whole block; beyond `next` it holds the input (in place) or
            // bytes the next store overwrites
            sink.put_block(w, out[..N].try_into().expect("N bytes"));
            w += next;
            p += next;
            continue;
        }
        // Characters the kernel does not cover: copy the kernel's output up to each one,
        // then the character's mapping from the table. (Zero lanes are never special.)
        let mut seg = 0; // block offset from which the kernel's output is wanted
        let mut m = specials;
        while m != 0 {
            let k = m.trailing_zeros() as usize;
            m &= m - 1;
            if k < seg {
                continue; // a lead byte inside the previous character: it was invalid
            }
            // Not yet overwritten, even in place: output so far ends at `p + k`. The
            // character is complete before `next` (or invalid).
            let Decoded::Step(s) = step(&sink.input()[p + k..]) else {
                unreachable!("a character before `end` is complete or invalid");
            };
            sink.put_seg(w, &out, seg, k);
            w += k - seg;
            if S::IN_PLACE && s.out_len != s.in_len {
                sink.flush();
                return Outcome::Stopped { at: p + k };
            }
            sink.put_step(w, &s);
            w += s.out_len;
            seg = k + s.in_len;
        }
        if seg < next {
            sink.put_seg(w, &out, seg, next);
            w += next - seg;
        }
        p += next.max(seg);
    }
    sink.flush();
    Outcome::Done {
        written: w,
        held: end,
    }
}

/// Where a valid but incomplete sequence at the end of `input` starts, or `input.len()`.
/// `from` is a character boundary; nothing before it is held.
fn incomplete_tail(input: &[u8], from: usize) -> usize {
    let len = input.len();
    for back in 1..=3.min(len - from) {
        let i = len - back;
        let b = input[i];
        if b >= 0xC0 {
            return match step(&input[i..]) {
                Decoded::Truncated => i,
                Decoded::Step(_) => len,
            };
        }
        if !is_cont(b) {
            return len;
        }
    }
    len
}

/// For the block in `win`, a bit per byte of: a 2-byte lead byte; a 3- or 4-byte lead byte
/// of a script with case; a 2-byte lead byte other than `C2`, `C3`; one other than `C2`,
/// `D0`, `D1`.
#[inline(always)]
pub(super) fn classify_portable(win: &[u8; WIN]) -> [Mask; 4] {
    let (mut two, mut three) = ([0u8; N], [0u8; N]);
    let (mut beyond_latin1, mut beyond_cyrillic) = ([0u8; N], [0u8; N]);
    for i in 0..N {
        let c = win[i + 2];
        two[i] = m(within(c, 0xC0, 0xDF));
        beyond_latin1[i] = m(within(c, 0xC0, 0xDF) & !within(c, 0xC2, 0xC3));
        beyond_cyrillic[i] = m(within(c, 0xC0, 0xDF) & (c != 0xC2) & !within(c, 0xD0, 0xD1));
        // the lead bytes of 3- and 4-byte characters where some letters have case; the
        // others (E0, E3-E9, EB-EE, F1-F4, and invalid F5-FF) only start caseless ones
        three[i] = m((c == 0xE1) | (c == 0xE2) | (c == 0xEA) | (c == 0xEF) | (c == 0xF0));
    }
    [
        movemask(&two),
        movemask(&three),
        movemask(&beyond_latin1),
        movemask(&beyond_cyrillic),
    ]
}

/// Runs the cheapest kernel variant that is exact for this window.
///
/// Blocks start where the input holds no continuation byte, so whether a rule can fire
/// depends only on the lead bytes inside the block.
#[inline(always)]
fn kernel_any<K: Kernel>(k: K, win: &[u8; WIN], out: &mut [u8; N]) -> Mask {
    let [two, three, beyond_l, beyond_c] = k.classify(win);
    if two == 0 && (three == 0 || caseless(win)) {
        // nothing but ASCII, continuation bytes and caseless characters
        for (o, &c) in out.iter_mut().zip(&win[2..N + 2]) {
            *o = c.wrapping_sub(m(within(c, b'a', b'z')) & 0x20);
        }
        return 0;
    }
    if K::LOOKUP && three == 0 {
        // Only 2-byte characters: one choice for the whole block, so that text mixing
        // scripts word by word does not mispredict a branch per half.
        let (lo, hi) = out.split_at_mut(H);
        let (lo, hi): (&mut [u8; H], &mut [u8; H]) = (
            lo.try_into().expect("half block"),
            hi.try_into().expect("half block"),
        );
        let (win_lo, win_hi) = (
            win[..H + 5].try_into().expect("half window"),
            win[H..].try_into().expect("half window"),
        );
        let (lo, hi) = if beyond_l == 0 {
            (
                kernel::<true, false, LATIN1>(win_lo, lo),
                kernel::<true, false, LATIN1>(win_hi, hi),
            )
        } else if beyond_c == 0 {
            (
                kernel::<true, false, CYRILLIC>(win_lo, lo),
                kernel::<true, false, CYRILLIC>(win_hi, hi),
            )
        } else {
            (k.mixed(win_lo, lo), k.mixed(win_hi, hi))
        };
        return Mask::from(lo) | Mask::from(hi) << H;
    }
    // Greek is only asked about when a block holds neither only Latin-1 nor only
    // Cyrillic, so that those scripts do not pay for it.
    let beyond_g = if beyond_l != 0 && beyond_c != 0 {
        let mut beyond_greek = [0u8; N];
        for (g, &c) in beyond_greek.iter_mut().zip(&win[2..N + 2]) {
            let two = within(c, 0xC0, 0xDF) & (c != 0xC2) & !within(c, 0xCE, 0xCF);
            let three = (c == 0xE2) | (c == 0xEA) | (c == 0xEF) | (c == 0xF0);
            *g = m(two | three);
        }
        movemask(&beyond_greek)
    } else {
        Mask::MAX
    };
    // Each half through the cheapest kernel for it. The upper half may start inside a
    // character, so its choice also counts the lead bytes among the 3 bytes before it.
    const _: () = assert!(N == 2 * H);
    let (lo, hi) = out.split_at_mut(H);
    let lo = kernel_for(
        k,
        two & LOW != 0,
        three & LOW != 0,
        script(beyond_l & LOW, beyond_c & LOW, beyond_g & LOW),
        win[..H + 5].try_into().expect("half window"),
        lo.try_into().expect("half block"),
    );
    let hi = kernel_for(
        k,
        two >> (H - 3) != 0,
        three >> (H - 3) != 0,
        script(
            beyond_l >> (H - 3),
            beyond_c >> (H - 3),
            beyond_g >> (H - 3),
        ),
        win[H..].try_into().expect("half window"),
        hi.try_into().expect("half block"),
    );
    Mask::from(lo) | Mask::from(hi) << H
}

/// Whether every lead byte in the block starts a character of a script without case: CJK,
/// kana, Hangul, most emoji, and the punctuation around them (U+2000-213F, fullwidth
/// forms). Those blocks need only their ASCII upper-cased.
#[inline(always)]
fn caseless(win: &[u8; WIN]) -> bool {
    let mut cased = [0u8; N];
    for i in 0..N {
        let (c, n) = (win[i + 2], win[i + 3]);
        let caseless = within(c, 0xE3, 0xE9)
            | within(c, 0xEB, 0xEE)
            | (c >= 0xF1)
            | (c == 0xF0) & (n >= 0x9F)
            | (c == 0xE2) & (n < 0x85)
            | (c == 0xEF) & (n != 0xAC) & (n != 0xBD);
        cased[i] = m((c >= 0xC0) & !caseless);
    }
    movemask(&cased) == 0
}

/// Lanes the kernel works on at once: one AVX2 register. Wider, the full kernel runs out
/// of registers.
pub(super) const H: usize = 32;

/// The bits of the lower half of a block.
const LOW: Mask = (1 << H) - 1;

/// Which rules a half block needs: [`LATIN1`] if its only 2-byte lead bytes are `C2`,
/// `C3`; [`CYRILLIC`] if they are `C2`, `D0`, `D1`; [`GREEK`] if they are `C2`, `CE`,
/// `CF` and its only 3- and 4-byte lead bytes of scripts with case are `E1`; else [`ALL`].
/// The first two say nothing about 3- and 4-byte lead bytes.
#[inline(always)]
fn script(beyond_latin1: Mask, beyond_cyrillic: Mask, beyond_greek: Mask) -> u8 {
    if beyond_latin1 == 0 {
        LATIN1
    } else if beyond_cyrillic == 0 {
        CYRILLIC
    } else if beyond_greek == 0 {
        GREEK
    } else {
        ALL
    }
}

/// Every 2-byte rule.
pub(super) const ALL: u8 = 0;
/// The 2-byte rules for the lead bytes `C2` and `C3` only.
const LATIN1: u8 = 1;
/// The 2-byte rules for the lead bytes `C2`, `D0` and `D1` only.
const CYRILLIC: u8 = 2;
/// The 2-byte rules for the lead bytes `C2`, `CE` and `CF` only, and the 3-byte rules for
/// the lead byte `E1` only (Greek and Greek Extended, monotonic and polytonic).
const GREEK: u8 = 3;

/// Runs the kernel variant for a half block: with the 2-byte rules of `script` if `two`,
/// with the longer ones if `three`.
#[inline(always)]
fn kernel_for<K: Kernel>(
    k: K,
    two: bool,
    three: bool,
    script: u8,
    win: &[u8; H + 5],
    out: &mut [u8; H],
) -> u32 {
    if K::LOOKUP && two && !three && script == ALL {
        return k.mixed(win, out);
    }
    match (two, three, script) {
        (true, false, LATIN1) => kernel::<true, false, LATIN1>(win, out),
        (true, false, CYRILLIC) => kernel::<true, false, CYRILLIC>(win, out),
        (true, false, GREEK) => kernel::<true, false, GREEK>(win, out),
        (true, false, _) => kernel::<true, false, ALL>(win, out),
        (false, true, _) => kernel::<false, true, ALL>(win, out),
        (false, false, _) => kernel::<false, false, ALL>(win, out),
        (true, true, GREEK) => kernel::<true, true, GREEK>(win, out),
        (true, true, _) => kernel::<true, true, ALL>(win, out),
    }
}

/// `0xFF` for true, `0` for false: a lane mask.
#[inline(always)]
fn m(b: bool) -> u8 {
    (b as u8).wrapping_neg()
}

/// Whether `lo <= b <= hi`, in two lane operations.
#[inline(always)]
fn within(b: u8, lo: u8, hi: u8) -> bool {
    b.wrapping_sub(lo) <= hi - lo
}

/// Upper-cases the block `win[2..N+2]` into `out` by the fixed-offset rules, and returns
/// a bit per block offset where a character starts that the rules do not cover: its bytes
/// in `out` are wrong and must come from [`step`] instead.
///
/// `TWO` enables the rules for 2-byte characters, `THREE` those for 3- and 4-byte ones.
/// `SCRIPT` narrows `TWO` to the lead bytes of one script (see [`script`]), exact when the
/// half block (and the 3 bytes before it) holds no other 2-byte lead byte; [`GREEK`] also
/// narrows `THREE` to the lead byte `E1`, exact when it holds none of `E2`, `EA`, `EF`, `F0`.
/// Disabling `TWO` is exact when the half block (and the 3 bytes before it) holds no lead
/// byte `C0..=DF`: its 2-byte lead bytes are then reported as specials, so the result
/// stays exact, only slower. Disabling `THREE` requires that it holds none of the lead
/// bytes `E1`, `E2`, `EA`, `EF`, `F0`: every other lead byte `>= E0` starts a character
/// without case (or is invalid), which the variant then copies.
#[inline(always)]
pub(super) fn kernel<const TWO: bool, const THREE: bool, const SCRIPT: u8>(
    win: &[u8; H + 5],
    out: &mut [u8; H],
) -> u32 {
    let mut special = [0u8; H];
    for i in 0..H {
        let (p2, p1, c, n, n2) = (win[i], win[i + 1], win[i + 2], win[i + 3], win[i + 4]);
        let cont = is_cont(c);
        let lead = c >= 0xC0;
        // ASCII a-z
        let mut d = m(within(c, b'a', b'z')) & 0xE0;
        let mut ok = !lead;
        if TWO && SCRIPT == LATIN1 {
            // the rules below for lead bytes C2 and C3 only
            let minus20 = (p1 == 0xC3) & (c >= 0xA0) & (c != 0xB7);
            d = d.wrapping_add(m(cont & minus20) & 0xE0);
            d = d.wrapping_add(m((c == 0xC3) & (n == 0x9F)) & 0x53u8.wrapping_sub(0xC3));
            d = d.wrapping_add(m((p1 == 0xC3) & (c == 0x9F)) & 0x53u8.wrapping_sub(0x9F));
            ok |= (c == 0xC2) & (n != 0xB5) | (c == 0xC3) & (n != 0xBF);
        } else if TWO && SCRIPT == CYRILLIC {
            // the rules below for lead bytes C2, D0 and D1 only
            d = d.wrapping_add(m(cont & (p1 == 0xD0) & (c >= 0xB0)) & 0xE0);
            d = d.wrapping_add(m((p1 == 0xD1) & within(c, 0x80, 0x8F)) & 0x20);
            d = d.wrapping_add(m((p1 == 0xD1) & within(c, 0x90, 0x9F)) & 0xF0);
            d = d.wrapping_add(m((c == 0xD1) & is_cont(n)));
            ok |= (c == 0xC2) & (n != 0xB5) | (c == 0xD0) | (c == 0xD1) & (n < 0xA0);
        } else if TWO && SCRIPT == GREEK {
            // the rules below for lead bytes C2, CE and CF only
            d = d.wrapping_add(m(cont & (p1 == 0xCE) & (c >= 0xB1)) & 0xE0);
            d = d.wrapping_add(m(cont & (p1 == 0xCE) & within(c, 0xAC, 0xAF)) & 0xDB);
            d = d.wrapping_add(m(cont & (p1 == 0xCE) & (c == 0xAC)));
            d = d.wrapping_add(m((p1 == 0xCF) & within(c, 0x80, 0x8B)) & 0x20);
            d = d.wrapping_add(m((p1 == 0xCF) & ((c == 0x82) | within(c, 0x8D, 0x8E))) & 1);
            d = d.wrapping_add(m((c == 0xCF) & is_cont(n)));
            ok |= (c == 0xC2) & (n != 0xB5)
                | (c == 0xCE) & (n != 0x90) & (n != 0xB0)
                | (c == 0xCF) & (n < 0x8F);
        } else if TWO {
            let ncont = is_cont(n);
            // continuation bytes of a 2-byte character, by its lead byte `p1`:
            // Latin-1 à-þ (not ÷), Cyrillic а-п, Greek α-ο: -0x20 (same lead)
            let minus20 = (p1 == 0xC3) & (c >= 0xA0) & (c != 0xB7)
                | (p1 == 0xD0) & (c >= 0xB0)
                | (p1 == 0xCE) & (c >= 0xB1);
            d = d.wrapping_add(m(cont & minus20) & 0xE0);
            // Greek ά -> Ά (-0x26), έ ή ί -> Έ Ή Ί (-0x25)
            d = d.wrapping_add(m(cont & (p1 == 0xCE) & within(c, 0xAC, 0xAF)) & 0xDB);
            d = d.wrapping_add(m(cont & (p1 == 0xCE) & (c == 0xAC)));
            // Cyrillic р-я (D1 80-8F -> D0 A0-AF), ѐ-џ (D1 90-9F -> D0 80-8F)
            d = d.wrapping_add(m((p1 == 0xD1) & within(c, 0x80, 0x8F)) & 0x20);
            d = d.wrapping_add(m((p1 == 0xD1) & within(c, 0x90, 0x9F)) & 0xF0);
            // Greek π-ϋ (CF 80-8B -> CE A0-AB; ς CF 82 -> Σ CE A3), ό ύ ώ (-> CE 8C-8F)
            d = d.wrapping_add(m((p1 == 0xCF) & within(c, 0x80, 0x8B)) & 0x20);
            d = d.wrapping_add(m((p1 == 0xCF) & ((c == 0x82) | within(c, 0x8D, 0x8E))) & 1);
            // and their lead bytes, D1 -> D0 and CF -> CE
            d = d.wrapping_add(m(((c == 0xD1) | (c == 0xCF)) & ncont));
            // ß (C3 9F) -> SS: both bytes become 'S'
            d = d.wrapping_add(m((c == 0xC3) & (n == 0x9F)) & 0x53u8.wrapping_sub(0xC3));
            d = d.wrapping_add(m((p1 == 0xC3) & (c == 0x9F)) & 0x53u8.wrapping_sub(0x9F));
            // 2-byte characters the rules above get right (or that map to themselves)
            ok |= (c == 0xC2) & (n != 0xB5)
                | (c == 0xC3) & (n != 0xBF)
                | (c == 0xD0)
                | (c == 0xD1) & (n < 0xA0)
                | (c == 0xCE) & (n != 0x90) & (n != 0xB0)
                | (c == 0xCF) & (n < 0x8F)
                | within(c, 0xCB, 0xCC)
                | (c == 0xCD) & (n != 0x85) & (n < 0xB0)
                | within(c, 0xD7, 0xDF)
                | within(c, 0xC0, 0xC1);
        }
        if THREE {
            // Greek Extended U+1F00-1F7F: most lower-case letters are +8 from their capital
            let e1 = (p2 == 0xE1) & cont;
            let bc = e1 & (p1 == 0xBC) & (c & 0x08 == 0) & !within(c, 0x96, 0x97);
            let bd = e1
                & (p1 == 0xBD)
                & (within(c, 0x80, 0x85) | within(c, 0x90, 0x97) | within(c, 0xA0, 0xA7));
            d = d.wrapping_add(m(bc | bd) & 0x08);
            // U+1F70-1F7D (grave and oxia accents) -> U+1FBA-1FFB: E1 BD xx -> E1 BE/BF yy
            let grave = e1 & (p1 == 0xBD);
            let t = |lo, hi, delta: u8| m(grave & within(c, lo, hi)) & delta;
            d = d
                .wrapping_add(t(0xB0, 0xB1, 0x0A))
                .wrapping_add(t(0xB2, 0xB5, 0xD6)) // -0x2A
                .wrapping_add(t(0xB6, 0xB7, 0xE4)) // -0x1C
                .wrapping_add(t(0xBA, 0xBB, 0xF0)) // -0x10
                .wrapping_add(t(0xBC, 0xBD, 0xFE)); // -0x02
            let second = (p1 == 0xE1) & (c == 0xBD);
            d = d.wrapping_add(m(second & within(n, 0xB0, 0xB1)) & 1);
            d = d.wrapping_add(m(second & within(n, 0xB2, 0xBD)) & 2);
            let bd_special = within(n2, 0x90, 0x96) & (n2 & 1 == 0);
            let greek_ext = (n == 0xBC) | (n == 0xBD) & !bd_special | (n == 0xBE) & (n2 == 0xBD);
            if SCRIPT == GREEK {
                // the caller saw no lead byte E2, EA, EF or F0: every other one but E1
                // starts a character without case (or is invalid)
                ok |= (c >= 0xE0) & ((c != 0xE1) | greek_ext);
            } else {
                ok |= (c == 0xE0)
                    | within(c, 0xE3, 0xEE) & (c != 0xEA)
                    | (c == 0xEA) & !within(n, 0x99, 0xAF)
                    | (c == 0xEF) & (n != 0xAC) & (n != 0xBD)
                    | (c == 0xE2) & ((n < 0x85) | within(n, 0x94, 0xAF))
                    | (c == 0xE1) & greek_ext
                    | (c == 0xF0) & (n >= 0x9F)
                    | (c >= 0xF1);
            }
        }
        if !THREE {
            // the caller saw no lead byte of a script with case among these
            ok |= c >= 0xE0;
        }
        out[i] = c.wrapping_add(d);
        special[i] = m(lead & !ok);
    }
    movemask_half(&special)
}

/// [`movemask`] of half a block.
#[inline(always)]
fn movemask_half(v: &[u8; H]) -> u32 {
    let mut both = [0u8; N];
    both[..H].copy_from_slice(v);
    movemask(&both) as u32
}

/// The top bit of each byte, as a bit mask (`pmovmskb`).
#[inline(always)]
fn movemask(v: &[u8; N]) -> Mask {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    {
        use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_movemask_epi8};
        let mut mask = 0;
        for (i, chunk) in v.chunks_exact(16).enumerate() {
            // SAFETY: SSE2 is part of the x86_64 baseline, so the intrinsics are available;
            // the unaligned 16-byte load reads exactly `chunk`.
            let bits =
                unsafe { _mm_movemask_epi8(_mm_loadu_si128(chunk.as_ptr().cast::<__m128i>())) };
            mask |= Mask::from(bits as u16) << (16 * i);
        }
        mask
    }
    #[cfg(not(all(target_arch = "x86_64", not(miri))))]
    {
        let mut mask = 0;
        for (i, &b) in v.iter().enumerate() {
            mask |= Mask::from(b >> 7) << i;
        }
        mask
    }
}
