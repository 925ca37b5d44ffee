//! Whether this process may use the io_uring driver, and if not, exactly why.
//!
//! The probe does what the driver will do, on a throw-away ring: set one up, ask the kernel
//! which opcodes it has, register a provided-buffer ring, and run one multishot receive on a
//! socket pair. Each failure maps to one [`Unavailable`] reason that names its fix.

use std::io;
use std::os::fd::AsRawFd;

use io_uring::{cqueue, opcode, types, IoUring};

use super::bufring::BufRing;

/// Why the io_uring driver cannot run here.
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    /// `kernel.io_uring_disabled` forbids new rings (2), or allows them only to the group in
    /// `kernel.io_uring_group` (1), which this process is not in.
    #[error("io_uring is disabled by the sysctl kernel.io_uring_disabled={0} (set it to 0)")]
    Disabled(u8),
    /// `io_uring_setup` failed with EPERM though the sysctl allows it: a seccomp filter (a
    /// container runtime's default profile, say) or another security policy denies it.
    #[error("io_uring_setup is denied (EPERM): a seccomp filter or security policy blocks io_uring (in a container, allow io_uring_setup/enter/register)")]
    Denied,
    /// The kernel has no io_uring at all (ENOSYS): built without it, or older than 5.1.
    #[error("this kernel has no io_uring (ENOSYS)")]
    NotInKernel,
    /// Setting up the ring ran out of locked memory (ENOMEM): before Linux 5.12 rings count
    /// against `RLIMIT_MEMLOCK`.
    #[error("io_uring_setup ran out of locked memory (ENOMEM; RLIMIT_MEMLOCK is {0} bytes): raise `ulimit -l`")]
    LockedMemory(u64),
    /// The kernel lacks an opcode the driver uses.
    #[error(
        "this kernel's io_uring lacks the {0} operation (the driver needs Linux 6.0 or later)"
    )]
    MissingOpcode(&'static str),
    /// Registering a provided-buffer ring failed (`IORING_REGISTER_PBUF_RING`, Linux 5.19).
    #[error("this kernel's io_uring has no provided-buffer rings (IORING_REGISTER_PBUF_RING, Linux 5.19+): {0}")]
    NoBufferRing(io::Error),
    /// A multishot receive did not stay armed (`IORING_RECV_MULTISHOT`, Linux 6.0).
    #[error("this kernel's io_uring has no multishot receive (Linux 6.0+): {0}")]
    NoMultishotRecv(String),
    /// Any other failure, with the step that failed.
    #[error("io_uring probe failed at {0}: {1}")]
    Other(&'static str, io::Error),
}

/// Checks that the io_uring driver can run in this process: `Ok(())`, or the one reason it
/// cannot. Cheap (a few system calls); call it once, before choosing the driver.
pub fn probe() -> Result<(), Unavailable> {
    // On a thread of its own: when a ring is torn down, the kernel's exit work later adds
    // task work (with a signal-like notification) to every thread that submitted to it,
    // which would interrupt the caller's next blocking socket call that has a timeout
    // (EINTR). A thread that has exited gets none.
    std::thread::Builder::new()
        .name("upcased-probe".into())
        .spawn(probe_here)
        .map_err(|e| Unavailable::Other("spawning the probe thread", e))?
        .join()
        .unwrap_or_else(|_| {
            Err(Unavailable::Other(
                "the probe thread",
                io::Error::other("panicked"),
            ))
        })
}

fn probe_here() -> Result<(), Unavailable> {
    let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .ok()
        .and_then(|s| s.trim().parse::<u8>().ok())
        .unwrap_or(0);
    let ring = match IoUring::builder().build(8) {
        Ok(r) => r,
        Err(e) => return Err(setup_error(e, disabled)),
    };
    let mut p = io_uring::Probe::new();
    ring.submitter()
        .register_probe(&mut p)
        .map_err(|e| Unavailable::Other("IORING_REGISTER_PROBE", e))?;
    for (code, name) in [
        (opcode::AcceptMulti::CODE, "ACCEPT"),
        (opcode::RecvMulti::CODE, "RECV"),
        (opcode::Send::CODE, "SEND"),
        (opcode::AsyncCancel::CODE, "ASYNC_CANCEL"),
        (opcode::Read::CODE, "READ"),
    ] {
        if !p.is_supported(code) {
            return Err(Unavailable::MissingOpcode(name));
        }
    }
    multishot_recv(ring)
}

fn setup_error(e: io::Error, disabled: u8) -> Unavailable {
    match e.raw_os_error() {
        Some(libc::EPERM) if disabled != 0 => Unavailable::Disabled(disabled),
        Some(libc::EPERM) => Unavailable::Denied,
        Some(libc::ENOSYS) => Unavailable::NotInKernel,
        Some(libc::ENOMEM) => Unavailable::LockedMemory(memlock_limit()),
        _ => Unavailable::Other("io_uring_setup", e),
    }
}

fn memlock_limit() -> u64 {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` through a valid pointer to a local.
    unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut rl) };
    rl.rlim_cur
}

/// Registers a small buffer ring and runs one multishot receive on a socket pair: it must
/// deliver a byte into a ring buffer and stay armed (`IORING_CQE_F_MORE`).
fn multishot_recv(mut ring: IoUring) -> Result<(), Unavailable> {
    let bufs = BufRing::new(&ring, 2, 64).map_err(Unavailable::NoBufferRing)?;
    let (a, b) =
        std::os::unix::net::UnixStream::pair().map_err(|e| Unavailable::Other("socketpair", e))?;
    let recv = opcode::RecvMulti::new(types::Fd(a.as_raw_fd()), BufRing::GROUP)
        .build()
        .user_data(1);
    // SAFETY: the entry refers to the buffer group registered above, which outlives the ring's
    // use here, and to no memory of ours.
    unsafe { ring.submission().push(&recv) }
        .map_err(|_| Unavailable::Other("submission", io::ErrorKind::Other.into()))?;
    std::io::Write::write_all(&mut &b, b"x").map_err(|e| Unavailable::Other("write", e))?;
    ring.submit_and_wait(1)
        .map_err(|e| Unavailable::Other("io_uring_enter", e))?;
    let cqe = ring
        .completion()
        .next()
        .ok_or_else(|| Unavailable::NoMultishotRecv("no completion".into()))?;
    if cqe.result() < 0 {
        return Err(Unavailable::NoMultishotRecv(
            io::Error::from_raw_os_error(-cqe.result()).to_string(),
        ));
    }
    if cqe.result() != 1 || cqueue::buffer_select(cqe.flags()).is_none() {
        return Err(Unavailable::NoMultishotRecv(format!(
            "unexpected completion (result {}, flags {:#x})",
            cqe.result(),
            cqe.flags()
        )));
    }
    if !cqueue::more(cqe.flags()) {
        return Err(Unavailable::NoMultishotRecv(
            "the receive did not stay armed".into(),
        ));
    }
    // Cancel the receive and reap its last completion before the ring goes, so that the
    // teardown has nothing in flight to cancel.
    let cancel = opcode::AsyncCancel::new(1).build().user_data(2);
    // SAFETY: a cancel points to no memory.
    unsafe { ring.submission().push(&cancel) }
        .map_err(|_| Unavailable::Other("submission", io::ErrorKind::Other.into()))?;
    let mut ended = false;
    let mut cancelled = false;
    while !(ended && cancelled) {
        ring.submit_and_wait(1)
            .map_err(|e| Unavailable::Other("io_uring_enter", e))?;
        for c in ring.completion() {
            match c.user_data() {
                1 if !cqueue::more(c.flags()) => ended = true,
                2 => cancelled = true,
                _ => {}
            }
        }
    }
    drop(ring);
    drop(bufs);
    Ok(())
}
