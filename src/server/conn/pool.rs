//! The per-thread pool the readiness driver borrows buffers from while a connection has
//! bytes to move, so an idle connection holds none.
//!
//! The pool is bounded in bytes ([`limits::BUFFER_POOL_BYTES`]), counting each pair's input
//! buffer and its spill buffer's capacity; buffers given back beyond it are freed. One pair
//! is kept whatever its size, so one busy connection does not allocate per read.

use std::cell::RefCell;

use crate::limits;

/// A connection's buffers, lent from the pool only while it has bytes to move.
pub(crate) struct Buffers {
    /// Where bytes are read, and upper-cased in place when they can be.
    pub(crate) input: Box<[u8]>,
    /// Where a reply is built when it cannot be in place.
    pub(crate) spill: Vec<u8>,
}

#[derive(Default)]
struct Pool {
    free: Vec<Buffers>,
    bytes: usize,
}

thread_local! {
    static POOL: RefCell<Pool> = RefCell::new(Pool::default());
}

impl Buffers {
    fn bytes(&self) -> usize {
        self.input.len() + self.spill.capacity()
    }

    /// Buffers with an input buffer of `size` bytes, from the pool when it has some.
    pub(crate) fn take(size: usize) -> Buffers {
        POOL.with(|p| {
            let mut p = p.borrow_mut();
            let b = p.free.pop()?;
            p.bytes -= b.bytes();
            Some(b)
        })
        .filter(|b| b.input.len() == size)
        .unwrap_or_else(|| Buffers {
            input: vec![0u8; size].into_boxed_slice(),
            spill: Vec::new(),
        })
    }

    /// Returns the buffers to this thread's pool, or frees them if that would take the pool
    /// past its bound.
    pub(crate) fn give_back(self) {
        POOL.with(|p| {
            let mut p = p.borrow_mut();
            let n = self.bytes();
            if p.free.is_empty() || p.bytes + n <= limits::BUFFER_POOL_BYTES {
                p.bytes += n;
                p.free.push(self);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pooled() -> (usize, usize) {
        POOL.with(|p| {
            let p = p.borrow();
            (p.free.len(), p.bytes)
        })
    }

    #[test]
    fn buffers_beyond_the_byte_bound_are_freed() {
        std::thread::spawn(|| {
            let size = 64 * 1024;
            let burst: Vec<_> = (0..64).map(|_| Buffers::take(size)).collect();
            for b in burst {
                b.give_back();
            }
            let (count, bytes) = pooled();
            assert!(bytes <= limits::BUFFER_POOL_BYTES, "{bytes} bytes kept");
            assert_eq!(count, limits::BUFFER_POOL_BYTES / size);
            // Reuse takes from the pool and keeps its accounting straight.
            let b = Buffers::take(size);
            assert_eq!(pooled(), (count - 1, bytes - size));
            b.give_back();
            assert_eq!(pooled(), (count, bytes));
        })
        .join()
        .unwrap();
    }

    #[test]
    fn one_pair_is_kept_even_when_larger_than_the_bound() {
        std::thread::spawn(|| {
            let size = 16 * 1024 * 1024;
            let (a, b) = (Buffers::take(size), Buffers::take(size));
            a.give_back();
            b.give_back();
            assert_eq!(pooled(), (1, size), "one kept, the other freed");
        })
        .join()
        .unwrap();
    }
}
