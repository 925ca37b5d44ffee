//! Every bound and default of the service, named, with the reason for its value.
//!
//! Each has a flag that overrides it (see the binaries); the wire protocol document
//! (`docs/PROTOCOL.md`) says what a client sees when one is reached.

use std::time::Duration;

/// The port `upcased` listens on and `upcase` connects to when none is given. Unassigned by
/// IANA, and easy to remember: "2277" is "upcase" nowhere, but it is free.
pub const DEFAULT_PORT: u16 = 2277;

/// Bytes read from a socket at a time. 64 KiB matches the kernel's default loopback
/// segment and socket buffer sizes, so one read usually drains what one write delivered;
/// it is also the per-connection bound on unprocessed input.
pub const READ_CHUNK: usize = 64 * 1024;

/// The smallest `--read-buffer`: below a few KiB, per-read overhead dominates and a
/// multi-byte character could not be worked on sensibly.
pub const MIN_READ_CHUNK: usize = 1024;

/// The largest `--read-buffer`: beyond this a busy connection's bound stops being small.
pub const MAX_READ_CHUNK: usize = 16 * 1024 * 1024;

/// Held by a connection only while it has bytes in flight: the read chunk plus the worst
/// case output of upper-casing it ([`crate::transform::MAX_EXPANSION`]×). An idle
/// connection holds none of it.
pub const MAX_BUFFERED_PER_CONNECTION: usize =
    READ_CHUNK + READ_CHUNK * crate::transform::MAX_EXPANSION;

/// Default `--max-connections`. Ten thousand idle connections cost about 10 MiB of server
/// memory; the limit is there so that a flood of connections cannot exhaust descriptors
/// and starve the listener itself.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// The longest duration any flag takes (timeouts, `--duration`, `--warmup`, delays). A
/// week is far beyond any sensible timeout, and small enough that a deadline computed as
/// `now + duration` can never overflow, so no typed value can make a timer panic.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Default `--idle-timeout`: a connection that moves no byte in either direction for this
/// long is closed. Five minutes outlasts any human pause in an interactive session, and
/// bounds how long a vanished client (no FIN ever arrives) holds a slot.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// Default `--shutdown-timeout`: the whole graceful drain is bounded by this, after which
/// every remaining connection is closed. Ten seconds is what service managers commonly
/// wait between SIGTERM and SIGKILL, less a margin.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a lingering close reads and discards input after sending FIN, waiting for the
/// client to close its side. Closing a socket with unread input makes the kernel send a
/// reset, which destroys replies the client has not read yet; nginx lingers for a similar
/// few seconds (`lingering_time`/`lingering_timeout`).
pub const LINGER_TIMEOUT: Duration = Duration::from_secs(2);

/// The listen backlog. Connections that arrive in a burst wait here until accepted; 4096
/// matches the C reference and the common `somaxconn` default of current kernels.
pub const LISTEN_BACKLOG: i32 = 4096;

/// The first pause after `accept` fails for lack of resources (EMFILE, ENFILE, ENOBUFS,
/// ENOMEM). Retrying at once would spin a core, since the pending connection stays pending.
pub const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);

/// The longest pause between accept retries while resources stay exhausted: short enough
/// that accepting resumes within a second of descriptors being freed.
pub const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Warnings that could flood the log (connections refused at a limit, accept failures)
/// are written at most once per this interval, with a count of what was suppressed.
pub const LOG_INTERVAL: Duration = Duration::from_secs(1);

/// Default `--timeout` of the client: for connecting, and for waiting for a reply.
pub const DEFAULT_CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest reply `upcase send` (and each line of the interactive session) holds before
/// giving up on a server that never ends its line. A message comes from the command line,
/// where the kernel caps the arguments at a few MiB (`ARG_MAX`), and its reply is at most
/// three times as long, so 16 MiB holds any true reply; a longer message raises the bound
/// to three times its length.
pub const MAX_REPLY: usize = 16 * 1024 * 1024;

/// Lines of interactive history kept between sessions. A thousand is what bash keeps by
/// default (`HISTFILESIZE` is 500–1000), and the file stays well under a megabyte.
pub const HISTORY_MAX_ENTRIES: usize = 1000;

/// The longest line kept in the history file: longer ones (a big paste) are sent, but not
/// remembered, so that the file stays small.
pub const HISTORY_MAX_LINE: usize = 4096;

/// Buffer of the client's pipe mode, per direction. Large enough that a bulk transfer
/// costs few system calls, as `nc` does with its 64 KiB-ish buffers.
pub const PIPE_BUFFER: usize = 128 * 1024;

/// Receive buffer for one UDP datagram. The largest UDP payload is 65,507 bytes over IPv4
/// and 65,527 over IPv6 (without jumbograms); 64 KiB holds either, so nothing is truncated.
pub const UDP_MAX_DATAGRAM: usize = 64 * 1024;

/// The largest datagram the client sends: the IPv4 limit, so a message that fits goes over
/// either protocol.
pub const UDP_MAX_PAYLOAD: usize = 65_507;

/// Source addresses the UDP rate limiter tracks at once. Each costs about 64 bytes, so the
/// table stays under a few MiB even when flooded with spoofed sources.
pub const UDP_RATE_TABLE: usize = 65_536;
