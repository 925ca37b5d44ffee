//! Ctrl-C in the interactive session: the SIGINT handler raises a flag, and the wait for a
//! reply, which looks at the flag several times a second, gives up and returns to the
//! prompt, as a shell does with a running command. At the prompt the terminal is in raw
//! mode, Ctrl-C is a key and no signal, and the line editor ends the session.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    // One atomic store: async-signal-safe.
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// Installs the SIGINT handler and returns the flag it raises. Without `SA_RESTART`, so
/// that a blocked read returns at once. Until this is called, SIGINT ends the process as
/// usual (exit status 130), which is what `send` and pipe mode want.
pub fn install() -> io::Result<&'static AtomicBool> {
    // SAFETY: an all-zero `sigaction` is a valid value (no flags, empty mask, null handler),
    // and every field we rely on is set below.
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction = on_sigint as extern "C" fn(libc::c_int) as libc::sighandler_t;
    sa.sa_flags = 0;
    // SAFETY: `sa.sa_mask` is a valid, owned signal set.
    unsafe { libc::sigemptyset(&mut sa.sa_mask) };
    // SAFETY: `sa` is fully initialised and the handler only stores to an atomic; the old
    // action is not asked for (null).
    if unsafe { libc::sigaction(libc::SIGINT, &sa, std::ptr::null_mut()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(&INTERRUPTED)
}
