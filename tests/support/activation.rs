//! Socket activation as a service manager does it, for the tests that start `upcased` (or a
//! probe) on inherited sockets: the descriptors at 3, 4, … and `LISTEN_FDS` and (through
//! `sh`, so that it is the child's own pid) `LISTEN_PID` set.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

/// A command that runs `program` with `fds` placed at 3, 4, …, `LISTEN_FDS` set, and
/// `LISTEN_PID` the child's own pid; `LISTEN_FDNAMES`, `NOTIFY_SOCKET` and `LISTEN_PID` from
/// this process removed (the caller sets names and a notify socket if it wants them). The
/// returned descriptors are the close-on-exec copies the child's are made from: keep them
/// until the child has been spawned.
pub fn activation_command(
    program: impl AsRef<std::ffi::OsStr>,
    fds: &[RawFd],
) -> (Command, Vec<OwnedFd>) {
    // Copies far above 3.., so that placing them cannot overwrite one another; close-on-exec,
    // so that only the placed copies reach the child.
    let high: Vec<OwnedFd> = fds
        .iter()
        .map(|&fd| {
            // SAFETY: F_DUPFD_CLOEXEC makes a new descriptor from one the caller holds open.
            let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 100) };
            assert!(new >= 100, "dup: {}", std::io::Error::last_os_error());
            // SAFETY: `new` was just created and nothing else owns it.
            unsafe { OwnedFd::from_raw_fd(new) }
        })
        .collect();
    let raw: Vec<RawFd> = high.iter().map(|f| f.as_raw_fd()).collect();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"LISTEN_PID=$$; export LISTEN_PID; exec "$0" "$@""#)
        .arg(program)
        .env("LISTEN_FDS", fds.len().to_string())
        .env_remove("LISTEN_PID")
        .env_remove("LISTEN_FDNAMES")
        .env_remove("NOTIFY_SOCKET");
    // SAFETY: the closure runs in the forked child before exec and calls only dup2, which is
    // async-signal-safe; the targets 3.. are below the sources (>= 100), so none is lost.
    unsafe {
        cmd.pre_exec(move || {
            for (i, &fd) in raw.iter().enumerate() {
                if libc::dup2(fd, 3 + i as RawFd) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    (cmd, high)
}
