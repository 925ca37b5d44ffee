//! The provided-buffer ring (`IORING_REGISTER_PBUF_RING`): the worker's receive buffers,
//! which belong to the ring and not to any connection.
//!
//! Buffers the kernel has not taken sit in the ring; a multishot receive takes one per
//! completion; the driver gives it back once the reply sent from it is out (or at once, when
//! the reply was built elsewhere). Given-back buffers go on a LIFO stack and the ring is kept
//! only about twice as full as one batch of completions takes, as `uring_upcase.c` does, so
//! that data lands in recently used, cache-hot buffers and the pool's untouched pages never
//! count in the process's resident memory.

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::IoUring;

/// An anonymous private mapping, unmapped on drop.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    fn new(len: usize) -> io::Result<Mapping> {
        // SAFETY: an anonymous private mapping at an address of the kernel's choosing aliases
        // nothing; the result is checked before use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping {
            ptr: NonNull::new(p.cast()).ok_or_else(|| io::Error::from(io::ErrorKind::Other))?,
            len,
        })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly the mapping made in `new`, unmapped once, here.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// The ring of buffer descriptors the kernel picks from, the buffers themselves, and the
/// stack of buffers the driver has given back but not yet put in the ring.
pub(crate) struct BufRing {
    entries: Mapping,
    bufs: Mapping,
    count: u16,
    size: u32,
    /// Our copy of the ring's tail (the kernel reads the shared one).
    tail: u16,
    /// Given back, not in the ring; most recently given back on top.
    free: Vec<u16>,
    /// In the ring, not yet taken by the kernel.
    in_ring: usize,
    /// How many the ring should hold, adapted each loop turn.
    target: usize,
    /// Taken by the kernel since the last `refill`.
    taken: usize,
    /// A receive found the ring empty since the last `refill`.
    ran_dry: bool,
}

/// The fewest buffers kept in the ring, however quiet the worker.
const RING_MIN: usize = 16;

impl BufRing {
    /// The buffer group id every receive names.
    pub(crate) const GROUP: u16 = 0;

    /// Maps `count` buffers (a power of two, at most 32768) of `size` bytes and registers
    /// them with `ring` as group [`GROUP`](Self::GROUP). The ring must be dropped before this.
    pub(crate) fn new(ring: &IoUring, count: u16, size: u32) -> io::Result<BufRing> {
        assert!(
            count.is_power_of_two(),
            "a buffer ring's size is a power of two"
        );
        let entries = Mapping::new(usize::from(count) * std::mem::size_of::<BufRingEntry>())?;
        let bufs = Mapping::new(usize::from(count) * size as usize)?;
        // SAFETY: `entries` is a fresh zeroed, page-aligned mapping of `count` entries that
        // lives as long as this value, which the caller drops only after the ring.
        unsafe {
            ring.submitter().register_buf_ring_with_flags(
                entries.ptr.as_ptr() as u64,
                count,
                Self::GROUP,
                0,
            )?;
        }
        let mut r = BufRing {
            entries,
            bufs,
            count,
            size,
            tail: 0,
            free: (0..count).rev().collect(),
            in_ring: 0,
            target: RING_MIN,
            taken: 0,
            ran_dry: false,
        };
        r.refill();
        Ok(r)
    }

    /// Bytes per buffer.
    pub(crate) fn size(&self) -> usize {
        self.size as usize
    }

    /// Buffers neither in a connection's hands nor in flight.
    pub(crate) fn available(&self) -> usize {
        self.free.len() + self.in_ring
    }

    /// Buffers in all.
    pub(crate) fn count(&self) -> usize {
        usize::from(self.count)
    }

    /// Whether the kernel has buffers to receive into.
    pub(crate) fn has_buffers_in_ring(&self) -> bool {
        self.in_ring > 0
    }

    /// The kernel took buffer `bid` (a completion said so).
    pub(crate) fn taken(&mut self, _bid: u16) {
        self.in_ring -= 1;
        self.taken += 1;
    }

    /// A receive failed with ENOBUFS: the ring is empty.
    pub(crate) fn ran_dry(&mut self) {
        self.ran_dry = true;
    }

    /// The first `len` bytes of buffer `bid`, which the kernel filled and handed to us.
    ///
    /// # Safety
    ///
    /// `bid` came from a completion and has not been given back since; no other reference to
    /// it is alive.
    pub(crate) unsafe fn buffer(&mut self, bid: u16, len: usize) -> &mut [u8] {
        debug_assert!(bid < self.count && len <= self.size as usize);
        // SAFETY: in bounds of the mapping; the kernel is done writing it (its completion was
        // reaped) and the caller promises no other reference.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.bufs
                    .ptr
                    .as_ptr()
                    .add(usize::from(bid) * self.size as usize),
                len,
            )
        }
    }

    /// Gives buffer `bid` back; [`refill`](Self::refill) returns it to the kernel.
    pub(crate) fn give_back(&mut self, bid: u16) {
        self.free.push(bid);
    }

    /// Puts given-back buffers in the ring, hottest first, up to a target of about twice
    /// what the last batch took (at once more when the ring ran dry). Once per loop turn.
    pub(crate) fn refill(&mut self) {
        let want = (2 * self.taken).max(RING_MIN);
        let want = if self.ran_dry {
            want.max(2 * self.target)
        } else {
            want
        };
        if want >= self.target {
            self.target = want;
        } else {
            self.target -= (self.target - want).div_ceil(16);
        }
        self.target = self.target.min(self.count());
        self.taken = 0;
        self.ran_dry = false;
        let mask = self.count - 1;
        let base = self.entries.ptr.as_ptr().cast::<BufRingEntry>();
        let mut added = 0u16;
        while self.in_ring < self.target {
            let Some(bid) = self.free.pop() else { break };
            let slot = usize::from(self.tail.wrapping_add(added) & mask);
            // SAFETY: `slot` < count, inside the entries mapping; the kernel reads only
            // entries between its head and the published tail, and this one is past the tail.
            let e = unsafe { &mut *base.add(slot) };
            // SAFETY: in bounds of the buffers mapping.
            let addr = unsafe {
                self.bufs
                    .ptr
                    .as_ptr()
                    .add(usize::from(bid) * self.size as usize)
            };
            e.set_addr(addr as u64);
            e.set_len(self.size);
            e.set_bid(bid);
            added += 1;
            self.in_ring += 1;
        }
        if added > 0 {
            self.tail = self.tail.wrapping_add(added);
            // SAFETY: the tail field overlays entry 0's reserved field, inside the mapping;
            // the kernel reads it concurrently, hence the atomic release store, which also
            // publishes the entries written above.
            unsafe {
                let tail = BufRingEntry::tail(base) as *const AtomicU16;
                (*tail).store(self.tail, Ordering::Release);
            }
        }
    }
}
