//! systemd integration: socket activation (`sd_listen_fds`) and readiness (`sd_notify`).
//!
//! **Activation.** A service manager that opened the sockets itself (systemd's `.socket`
//! units, `systemd-socket-activate`) passes them from descriptor 3 on, with `LISTEN_PID` set
//! to the process they are for, `LISTEN_FDS` to their count and `LISTEN_FDNAMES` to their
//! colon-separated names. [`take_listen_fds`] reads those three variables, removes them from
//! the environment (so no child inherits them), and adopts each descriptor as a
//! [`TcpListener`] (a listening stream socket) or a [`UdpSocket`] (a datagram socket), told
//! apart by `SO_TYPE`. Anything else (a Unix socket, a connected socket from `Accept=yes`, a
//! file) is a typed [`ActivationError`], never a guess.
//!
//! **Readiness.** With `NOTIFY_SOCKET` set, a [`Notifier`] sends `READY=1`, `STOPPING=1`,
//! `STATUS=…` and, when `WATCHDOG_USEC` asks for it, `WATCHDOG=1` at half that interval
//! ([`Notifier::run_watchdog`]). Without it, every call is a no-op, so the server calls it
//! unconditionally.
//!
//! # Why not a crate
//!
//! Both kept crates were read (`sd-notify` 0.5.0, `listenfd` 1.0.2); each misses something
//! this module must do, and the protocol itself is a few lines:
//! - `sd-notify` connects `NOTIFY_SOCKET` as a file path, so an abstract-namespace address
//!   (`@name`, which systemd uses in containers and `systemd-run --user`) fails with
//!   "no such file"; its errors are untyped and its env-unsetting calls are `unsafe fn`.
//! - `listenfd` accepts a missing `LISTEN_PID` (a `systemfd` extension that sd_listen_fds
//!   does not allow), silently ignores a malformed `LISTEN_FDS`, neither reads nor unsets
//!   `LISTEN_FDNAMES`, and makes the caller say which index is TCP and which is UDP.
//!
//! The semantics below follow `sd_listen_fds(3)` and `sd_notify(3)` / `sd_watchdog_enabled(3)`.

use std::env;
use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram};
use std::time::Duration;

use socket2::{Domain, Socket, Type};
use tokio_util::sync::CancellationToken;

use crate::limits::NOTIFY_SEND_TIMEOUT;

/// The first descriptor a service manager passes (`SD_LISTEN_FDS_START`).
pub const LISTEN_FDS_START: RawFd = 3;

/// The name `sd_listen_fds_with_names` gives every descriptor when `LISTEN_FDNAMES` is unset.
pub const UNNAMED: &str = "unknown";

const LISTEN_PID: &str = "LISTEN_PID";
const LISTEN_FDS: &str = "LISTEN_FDS";
const LISTEN_FDNAMES: &str = "LISTEN_FDNAMES";
const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";
const WATCHDOG_USEC: &str = "WATCHDOG_USEC";
const WATCHDOG_PID: &str = "WATCHDOG_PID";

/// Why the inherited descriptors cannot be served. Each names the descriptor and the fix.
#[derive(Debug, thiserror::Error)]
pub enum ActivationError {
    /// `LISTEN_PID` is not a positive process id.
    #[error("LISTEN_PID={0:?} is not a process id")]
    BadPid(String),
    /// `LISTEN_FDS` is not a count of descriptors.
    #[error("LISTEN_FDS={0:?} is not a count of descriptors")]
    BadCount(String),
    /// `LISTEN_FDNAMES` has a different number of names than `LISTEN_FDS` has descriptors.
    #[error("LISTEN_FDNAMES has {names} names for {fds} descriptors in LISTEN_FDS")]
    NameCount {
        /// Names in `LISTEN_FDNAMES`.
        names: usize,
        /// Descriptors in `LISTEN_FDS`.
        fds: usize,
    },
    /// A descriptor that `LISTEN_FDS` announced is not open.
    #[error("inherited descriptor {fd} ({name}) is not open: {source}")]
    NotOpen {
        /// The descriptor number.
        fd: RawFd,
        /// Its name from `LISTEN_FDNAMES`.
        name: String,
        /// What `fcntl` said.
        source: io::Error,
    },
    /// A descriptor is open but is not a socket.
    #[error("inherited descriptor {fd} ({name}) is not a socket")]
    NotSocket {
        /// The descriptor number.
        fd: RawFd,
        /// Its name from `LISTEN_FDNAMES`.
        name: String,
    },
    /// A socket of a family other than IPv4 and IPv6, such as a Unix socket.
    #[error(
        "inherited socket {fd} ({name}) is an {family} socket; upcased serves only IPv4 and \
         IPv6: use ListenStream=/ListenDatagram= with an address and port in the .socket unit"
    )]
    NotInet {
        /// The descriptor number.
        fd: RawFd,
        /// Its name from `LISTEN_FDNAMES`.
        name: String,
        /// The family, as `AF_UNIX` or a number.
        family: String,
    },
    /// An inet socket that is neither a stream nor a datagram socket.
    #[error("inherited socket {fd} ({name}) is neither a stream nor a datagram socket")]
    UnsupportedType {
        /// The descriptor number.
        fd: RawFd,
        /// Its name from `LISTEN_FDNAMES`.
        name: String,
    },
    /// A stream socket that is not listening: a connection from `Accept=yes`.
    #[error(
        "inherited stream socket {fd} ({name}) is not listening; upcased accepts its own \
         connections: set Accept=no in the .socket unit"
    )]
    NotListening {
        /// The descriptor number.
        fd: RawFd,
        /// Its name from `LISTEN_FDNAMES`.
        name: String,
    },
    /// A socket option could not be read or set.
    #[error("could not prepare inherited socket {fd} ({name}): {source}")]
    Io {
        /// The descriptor number.
        fd: RawFd,
        /// Its name from `LISTEN_FDNAMES`.
        name: String,
        /// The system call's error.
        source: io::Error,
    },
}

/// The socket-activation variables as found in the environment, before any is acted on.
///
/// Kept apart from the process environment so that the rules can be tested without it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActivationEnv {
    /// `LISTEN_PID`: the process the descriptors are for.
    pub listen_pid: Option<String>,
    /// `LISTEN_FDS`: how many descriptors, from [`LISTEN_FDS_START`].
    pub listen_fds: Option<String>,
    /// `LISTEN_FDNAMES`: their names, colon-separated.
    pub listen_fdnames: Option<String>,
}

impl ActivationEnv {
    /// Reads the three variables and removes them from the environment, whatever they hold
    /// (as `sd_listen_fds(1)` does), so that no child process inherits them.
    ///
    /// Call it from `main` before any thread starts: the environment is process-wide.
    pub fn take() -> Self {
        let read = |key: &str| env::var_os(key).map(|v| v.to_string_lossy().into_owned());
        let found = ActivationEnv {
            listen_pid: read(LISTEN_PID),
            listen_fds: read(LISTEN_FDS),
            listen_fdnames: read(LISTEN_FDNAMES),
        };
        env::remove_var(LISTEN_PID);
        env::remove_var(LISTEN_FDS);
        env::remove_var(LISTEN_FDNAMES);
        found
    }

    /// The descriptors passed to process `pid` and their names: empty when `LISTEN_PID` or
    /// `LISTEN_FDS` is unset, when `LISTEN_PID` names another process (the variables were
    /// inherited, not meant for us), or when `LISTEN_FDS` is 0.
    pub fn descriptors(&self, pid: u32) -> Result<Vec<(RawFd, String)>, ActivationError> {
        let Some(listen_pid) = &self.listen_pid else {
            return Ok(Vec::new());
        };
        let for_pid = listen_pid
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| ActivationError::BadPid(listen_pid.clone()))?;
        if for_pid != pid {
            return Ok(Vec::new());
        }
        let Some(listen_fds) = &self.listen_fds else {
            return Ok(Vec::new());
        };
        let count = listen_fds
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|&n| i64::from(n) <= i64::from(RawFd::MAX - LISTEN_FDS_START))
            .ok_or_else(|| ActivationError::BadCount(listen_fds.clone()))?
            as usize;
        if count == 0 {
            return Ok(Vec::new());
        }
        let names: Vec<String> = match &self.listen_fdnames {
            Some(names) => names.split(':').map(str::to_owned).collect(),
            None => vec![UNNAMED.to_owned(); count],
        };
        if names.len() != count {
            return Err(ActivationError::NameCount {
                names: names.len(),
                fds: count,
            });
        }
        Ok((LISTEN_FDS_START..).zip(names).collect())
    }
}

/// An inherited socket, adopted and ready to serve.
#[derive(Debug)]
pub enum InheritedSocket {
    /// A listening stream socket (`ListenStream=`), non-blocking.
    Tcp(TcpListener),
    /// A datagram socket (`ListenDatagram=`), non-blocking.
    Udp(UdpSocket),
}

/// One socket from the service manager, with the name it gave it.
#[derive(Debug)]
pub struct Inherited {
    /// The descriptor number it arrived as (for the log).
    pub fd: RawFd,
    /// Its name from `LISTEN_FDNAMES` (`FileDescriptorName=` in the unit; by default the
    /// socket unit's name), or [`UNNAMED`].
    pub name: String,
    /// The socket itself.
    pub socket: InheritedSocket,
}

impl Inherited {
    /// The address the socket is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match &self.socket {
            InheritedSocket::Tcp(l) => l.local_addr(),
            InheritedSocket::Udp(s) => s.local_addr(),
        }
    }

    /// `"tcp"` or `"udp"`, for the log.
    pub fn kind(&self) -> &'static str {
        match self.socket {
            InheritedSocket::Tcp(_) => "tcp",
            InheritedSocket::Udp(_) => "udp",
        }
    }
}

/// Socket activation in one call: reads and unsets the variables ([`ActivationEnv::take`]),
/// then adopts every descriptor passed to this process. An empty list means the
/// process was not socket-activated and should bind its own listeners.
///
/// Call it once, from `main`, before any thread starts and before anything else opens a
/// descriptor that it might mistake for its own (a second call finds the variables gone and
/// returns an empty list). On an error, every descriptor adopted so far is closed.
pub fn take_listen_fds() -> Result<Vec<Inherited>, ActivationError> {
    let found = ActivationEnv::take();
    found
        .descriptors(std::process::id())?
        .into_iter()
        .map(|(fd, name)| adopt(fd, name))
        .collect()
}

/// Adopts one passed descriptor: checks that it is open and is an inet socket that listens
/// (stream) or a datagram socket, sets `FD_CLOEXEC` and non-blocking mode, and takes
/// ownership of it. On an error the descriptor is closed if it was open.
///
/// Private, because taking ownership of a descriptor by number is sound only for the
/// numbers the activation protocol hands over (`3..3+LISTEN_FDS`, to this process and to no
/// one else in it); [`take_listen_fds`] is the one caller, and removes the variables first so
/// that no second claim can be made through them.
fn adopt(fd: RawFd, name: String) -> Result<Inherited, ActivationError> {
    // SAFETY: F_GETFD only reads the descriptor's flags; on a closed number it fails with EBADF.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(ActivationError::NotOpen {
            fd,
            name,
            source: io::Error::last_os_error(),
        });
    }
    // SAFETY: the descriptor is open (checked just above) and belongs to this process by the
    // activation protocol (see the doc comment): nothing else owns it, so the `OwnedFd` may
    // close it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let socket = Socket::from(owned);
    let io_err = |name: &String, source| ActivationError::Io {
        fd,
        name: name.clone(),
        source,
    };
    socket.set_cloexec(true).map_err(|e| io_err(&name, e))?;
    let ty = match socket.r#type() {
        Ok(ty) => ty,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSOCK) => {
            return Err(ActivationError::NotSocket { fd, name })
        }
        Err(e) => return Err(io_err(&name, e)),
    };
    let domain = socket.domain().map_err(|e| io_err(&name, e))?;
    if domain != Domain::IPV4 && domain != Domain::IPV6 {
        let family = if domain == Domain::UNIX {
            "AF_UNIX".to_owned()
        } else {
            format!("address family {}", libc::c_int::from(domain))
        };
        return Err(ActivationError::NotInet { fd, name, family });
    }
    let inherited = if ty == Type::STREAM {
        if !socket.is_listener().map_err(|e| io_err(&name, e))? {
            return Err(ActivationError::NotListening { fd, name });
        }
        socket.set_nonblocking(true).map_err(|e| io_err(&name, e))?;
        InheritedSocket::Tcp(socket.into())
    } else if ty == Type::DGRAM {
        socket.set_nonblocking(true).map_err(|e| io_err(&name, e))?;
        InheritedSocket::Udp(socket.into())
    } else {
        return Err(ActivationError::UnsupportedType { fd, name });
    };
    Ok(Inherited {
        fd,
        name,
        socket: inherited,
    })
}

/// A socket with the name the service manager gave it.
pub type Named<T> = (String, T);

/// Splits adopted sockets by kind, in the order the service manager passed them, each with
/// its name.
pub fn partition(inherited: Vec<Inherited>) -> (Vec<Named<TcpListener>>, Vec<Named<UdpSocket>>) {
    let mut tcp = Vec::new();
    let mut udp = Vec::new();
    for i in inherited {
        match i.socket {
            InheritedSocket::Tcp(l) => tcp.push((i.name, l)),
            InheritedSocket::Udp(s) => udp.push((i.name, s)),
        }
    }
    (tcp, udp)
}

/// Why a notification could not be set up or sent. A service can run without notifying, so
/// callers usually log these and go on; under `Type=notify`, the manager then times the
/// start out, which the log line explains.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// `NOTIFY_SOCKET` is neither a path (`/…`) nor an abstract name (`@…`).
    #[error(
        "NOTIFY_SOCKET={0:?} is not a Unix socket path or @abstract name (vsock is not supported)"
    )]
    UnsupportedAddress(String),
    /// `NOTIFY_SOCKET` is too long for a Unix socket address, or holds a NUL byte.
    #[error("NOTIFY_SOCKET={addr:?} is not a usable socket address: {source}")]
    BadAddress {
        /// The variable's value.
        addr: String,
        /// What the address constructor said.
        source: io::Error,
    },
    /// `WATCHDOG_USEC` is not a positive number of microseconds.
    #[error("WATCHDOG_USEC={0:?} is not a positive number of microseconds")]
    BadWatchdogUsec(String),
    /// `WATCHDOG_PID` is not a process id.
    #[error("WATCHDOG_PID={0:?} is not a process id")]
    BadWatchdogPid(String),
    /// The datagram could not be sent.
    #[error("could not notify the service manager at {addr}: {source}")]
    Send {
        /// The variable's value.
        addr: String,
        /// The system call's error.
        source: io::Error,
    },
}

/// One line of a notification (`sd_notify(3)` names them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State<'a> {
    /// `READY=1`: every listener is serving.
    Ready,
    /// `STOPPING=1`: the drain has begun.
    Stopping,
    /// `STATUS=…`: one line for a person (`systemctl status`); newlines become spaces.
    Status(&'a str),
    /// `WATCHDOG=1`: still alive.
    Watchdog,
}

impl State<'_> {
    fn write_to(self, out: &mut String) {
        match self {
            State::Ready => out.push_str("READY=1"),
            State::Stopping => out.push_str("STOPPING=1"),
            State::Watchdog => out.push_str("WATCHDOG=1"),
            State::Status(text) => {
                out.push_str("STATUS=");
                out.extend(text.chars().map(|c| if c == '\n' { ' ' } else { c }));
            }
        }
        out.push('\n');
    }
}

/// Sends notifications to the service manager, or does nothing when there is none.
///
/// Cheap to clone: each clone sends to the same address. A fresh unbound socket is used for
/// each message, as `sd_notify` does, so a manager that re-binds its socket (a systemd
/// re-exec) is still reached.
#[derive(Debug, Clone)]
pub struct Notifier {
    target: Option<(String, UnixAddr)>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// A notifier that sends nothing (no service manager).
    pub fn disabled() -> Self {
        Notifier {
            target: None,
            watchdog: None,
        }
    }

    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` (leaving them set: only
    /// this process sends, and keeping them is what `sd_notify(0, …)` does).
    pub fn from_env() -> Result<Self, NotifyError> {
        let read = |key: &str| env::var_os(key).map(|v| v.to_string_lossy().into_owned());
        Notifier::from_values(
            read(NOTIFY_SOCKET).as_deref(),
            read(WATCHDOG_USEC).as_deref(),
            read(WATCHDOG_PID).as_deref(),
            std::process::id(),
        )
    }

    /// The same from given values, for process `pid`: the watchdog is on when
    /// `watchdog_usec` is set and `watchdog_pid` is unset or `pid` (`sd_watchdog_enabled`).
    /// Without a notify socket there is no one to ping, so the watchdog is off too.
    pub fn from_values(
        notify_socket: Option<&str>,
        watchdog_usec: Option<&str>,
        watchdog_pid: Option<&str>,
        pid: u32,
    ) -> Result<Self, NotifyError> {
        let target = match notify_socket {
            None | Some("") => None,
            Some(s) => Some((s.to_owned(), parse_notify_addr(s)?)),
        };
        let watchdog = match watchdog_usec {
            None => None,
            Some(usec) => {
                let usec = usec
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|&u| u > 0)
                    .ok_or_else(|| NotifyError::BadWatchdogUsec(usec.to_owned()))?;
                let for_us = match watchdog_pid {
                    None | Some("") => true,
                    Some(p) => {
                        p.trim()
                            .parse::<u32>()
                            .ok()
                            .filter(|&p| p > 0)
                            .ok_or_else(|| NotifyError::BadWatchdogPid(p.to_owned()))?
                            == pid
                    }
                };
                for_us.then(|| Duration::from_micros(usec))
            }
        };
        let watchdog = if target.is_some() { watchdog } else { None };
        Ok(Notifier { target, watchdog })
    }

    /// Whether there is a service manager to notify.
    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// The watchdog timeout the manager set (`WATCHDOG_USEC`), if it applies to us.
    pub fn watchdog_timeout(&self) -> Option<Duration> {
        self.watchdog
    }

    /// How often [`Notifier::run_watchdog`] pings: half the timeout, as `sd_watchdog_enabled(3)`
    /// recommends, so one late ping does not trip it.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog.map(|t| (t / 2).max(Duration::from_micros(1)))
    }

    /// Sends these lines in one datagram. Does nothing when there is no manager.
    pub fn notify(&self, states: &[State<'_>]) -> Result<(), NotifyError> {
        let Some((name, addr)) = &self.target else {
            return Ok(());
        };
        let mut msg = String::new();
        for s in states {
            s.write_to(&mut msg);
        }
        let send_err = |source| NotifyError::Send {
            addr: name.clone(),
            source,
        };
        let sock = UnixDatagram::unbound().map_err(send_err)?;
        // A manager that does not read must not hang the caller (the watchdog task runs on
        // the server's runtime).
        sock.set_write_timeout(Some(NOTIFY_SEND_TIMEOUT))
            .map_err(send_err)?;
        let sent = sock.send_to_addr(msg.as_bytes(), addr).map_err(send_err)?;
        if sent != msg.len() {
            return Err(send_err(io::Error::new(
                io::ErrorKind::WriteZero,
                "the notification was truncated",
            )));
        }
        Ok(())
    }

    /// `READY=1` with a status line: send it once every listener is serving.
    pub fn ready(&self, status: &str) -> Result<(), NotifyError> {
        self.notify(&[State::Ready, State::Status(status)])
    }

    /// `STOPPING=1` with a status line: send it when the drain begins.
    pub fn stopping(&self, status: &str) -> Result<(), NotifyError> {
        self.notify(&[State::Stopping, State::Status(status)])
    }

    /// A `STATUS=` line alone.
    pub fn status(&self, status: &str) -> Result<(), NotifyError> {
        self.notify(&[State::Status(status)])
    }

    /// Pings the watchdog every [`Notifier::watchdog_interval`] (the first at once) until
    /// `stop` is cancelled; returns at once when no watchdog applies. A failed ping is
    /// logged as a warning and the loop goes on (pings are seconds apart, so that cannot
    /// flood the log).
    ///
    /// Spawn it on the runtime that serves connections, so that a wedged runtime stops the
    /// pings and the manager restarts the service; cancel `stop` when the process exits,
    /// not when the drain begins (a draining server is alive).
    pub async fn run_watchdog(self, stop: CancellationToken) {
        let Some(every) = self.watchdog_interval() else {
            return;
        };
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {
                    if let Err(e) = self.notify(&[State::Watchdog]) {
                        tracing::warn!(error = %e, "watchdog ping failed");
                    }
                }
            }
        }
    }
}

/// `/path` is a file-system socket, `@name` an abstract one (`sd_notify(3)`, Notes).
fn parse_notify_addr(s: &str) -> Result<UnixAddr, NotifyError> {
    let bad = |source| NotifyError::BadAddress {
        addr: s.to_owned(),
        source,
    };
    if let Some(name) = s.strip_prefix('@') {
        UnixAddr::from_abstract_name(name.as_bytes()).map_err(bad)
    } else if s.starts_with('/') {
        UnixAddr::from_pathname(s).map_err(bad)
    } else {
        Err(NotifyError::UnsupportedAddress(s.to_owned()))
    }
}

/// The descriptor flags of `fd` include `FD_CLOEXEC` (for tests and diagnostics).
pub fn is_cloexec(fd: &impl AsRawFd) -> io::Result<bool> {
    // SAFETY: F_GETFD only reads the flags of a descriptor the caller holds open.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(flags & libc::FD_CLOEXEC != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pid: Option<&str>, fds: Option<&str>, names: Option<&str>) -> ActivationEnv {
        ActivationEnv {
            listen_pid: pid.map(str::to_owned),
            listen_fds: fds.map(str::to_owned),
            listen_fdnames: names.map(str::to_owned),
        }
    }

    #[test]
    fn descriptors_start_at_three_with_their_names() {
        let got = env(Some("42"), Some("2"), Some("web:dns"))
            .descriptors(42)
            .unwrap();
        assert_eq!(got, vec![(3, "web".to_owned()), (4, "dns".to_owned())]);
    }

    #[test]
    fn unnamed_descriptors_are_called_unknown() {
        let got = env(Some("42"), Some("2"), None).descriptors(42).unwrap();
        assert_eq!(got, vec![(3, UNNAMED.to_owned()), (4, UNNAMED.to_owned())]);
    }

    #[test]
    fn empty_names_stay_empty() {
        let got = env(Some("42"), Some("3"), Some("a::c"))
            .descriptors(42)
            .unwrap();
        assert_eq!(got[1], (4, String::new()));
    }

    #[test]
    fn variables_meant_for_another_process_are_ignored() {
        assert!(env(Some("41"), Some("2"), None)
            .descriptors(42)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn missing_pid_or_count_or_a_zero_count_means_not_activated() {
        assert!(env(None, Some("2"), None)
            .descriptors(42)
            .unwrap()
            .is_empty());
        assert!(env(Some("42"), None, None)
            .descriptors(42)
            .unwrap()
            .is_empty());
        assert!(env(Some("42"), Some("0"), None)
            .descriptors(42)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn malformed_variables_are_errors() {
        for pid in ["", "x", "0", "-1"] {
            assert!(
                matches!(
                    env(Some(pid), Some("1"), None).descriptors(42),
                    Err(ActivationError::BadPid(_))
                ),
                "LISTEN_PID={pid:?}"
            );
        }
        for fds in ["", "two", "-1", "4294967295"] {
            assert!(
                matches!(
                    env(Some("42"), Some(fds), None).descriptors(42),
                    Err(ActivationError::BadCount(_))
                ),
                "LISTEN_FDS={fds:?}"
            );
        }
    }

    #[test]
    fn name_count_must_match() {
        let e = env(Some("42"), Some("2"), Some("only-one"))
            .descriptors(42)
            .unwrap_err();
        assert!(
            matches!(e, ActivationError::NameCount { names: 1, fds: 2 }),
            "{e}"
        );
    }

    #[test]
    fn adopting_a_closed_descriptor_is_refused_without_closing_anything() {
        // A number far above anything this test process has open.
        let e = adopt(1_000_000, "gone".into()).unwrap_err();
        assert!(
            matches!(e, ActivationError::NotOpen { fd: 1_000_000, .. }),
            "{e}"
        );
    }

    #[test]
    fn notify_socket_forms() {
        assert!(Notifier::from_values(None, None, None, 1)
            .unwrap()
            .target
            .is_none());
        assert!(Notifier::from_values(Some(""), None, None, 1)
            .unwrap()
            .target
            .is_none());
        let abs = Notifier::from_values(Some("@/org/freedesktop/systemd1/notify"), None, None, 1)
            .unwrap();
        let (_, addr) = abs.target.unwrap();
        assert_eq!(
            addr.as_abstract_name(),
            Some(&b"/org/freedesktop/systemd1/notify"[..])
        );
        let path = Notifier::from_values(Some("/run/systemd/notify"), None, None, 1).unwrap();
        assert_eq!(
            path.target.unwrap().1.as_pathname(),
            Some(std::path::Path::new("/run/systemd/notify"))
        );
        assert!(matches!(
            Notifier::from_values(Some("vsock:2:1234"), None, None, 1),
            Err(NotifyError::UnsupportedAddress(_))
        ));
        let long = format!("/{}", "x".repeat(200));
        assert!(matches!(
            Notifier::from_values(Some(&long), None, None, 1),
            Err(NotifyError::BadAddress { .. })
        ));
    }

    #[test]
    fn watchdog_follows_sd_watchdog_enabled() {
        let sock = Some("@upcase-test-unused");
        let on = Notifier::from_values(sock, Some("3000000"), None, 7).unwrap();
        assert_eq!(on.watchdog_timeout(), Some(Duration::from_secs(3)));
        assert_eq!(on.watchdog_interval(), Some(Duration::from_millis(1500)));
        let ours = Notifier::from_values(sock, Some("3000000"), Some("7"), 7).unwrap();
        assert!(ours.watchdog_interval().is_some());
        let theirs = Notifier::from_values(sock, Some("3000000"), Some("8"), 7).unwrap();
        assert_eq!(theirs.watchdog_interval(), None);
        let no_socket = Notifier::from_values(None, Some("3000000"), None, 7).unwrap();
        assert_eq!(no_socket.watchdog_interval(), None);
        for bad in ["", "0", "soon", "-5"] {
            assert!(matches!(
                Notifier::from_values(sock, Some(bad), None, 7),
                Err(NotifyError::BadWatchdogUsec(_))
            ));
        }
        assert!(matches!(
            Notifier::from_values(sock, Some("1000"), Some("me"), 7),
            Err(NotifyError::BadWatchdogPid(_))
        ));
    }

    #[test]
    fn status_lines_stay_one_line() {
        let mut out = String::new();
        State::Status("two\nlines").write_to(&mut out);
        State::Ready.write_to(&mut out);
        assert_eq!(out, "STATUS=two lines\nREADY=1\n");
    }

    #[test]
    fn partition_keeps_the_managers_order_within_each_kind() {
        let tcp = |name: &str| Inherited {
            fd: 3,
            name: name.into(),
            socket: InheritedSocket::Tcp(TcpListener::bind("127.0.0.1:0").unwrap()),
        };
        let udp = Inherited {
            fd: 4,
            name: "dns".into(),
            socket: InheritedSocket::Udp(UdpSocket::bind("127.0.0.1:0").unwrap()),
        };
        let (t, u) = partition(vec![tcp("a"), udp, tcp("b")]);
        let names: Vec<_> = t.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].0, "dns");
    }

    #[test]
    fn a_disabled_notifier_sends_nothing_and_succeeds() {
        let n = Notifier::disabled();
        assert!(!n.is_enabled());
        n.ready("serving").unwrap();
        n.stopping("draining").unwrap();
    }
}
