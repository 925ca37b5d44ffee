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

/// Free buffers each worker thread keeps for reuse, in bytes (input buffers plus the spill
/// buffers' capacity). A burst of busy connections at a large `--read-buffer` would otherwise
/// leave its buffers resident after it ends. 1 MiB holds several default-sized pairs (64 KiB
/// input, up to 192 KiB of spill), which covers the usual case where a thread serves one
/// connection's chunk at a time and hands the same pair to the next. One pair is always kept,
/// even if it alone is larger, so a single busy connection at a 16 MiB `--read-buffer` does
/// not allocate on every read.
pub const BUFFER_POOL_BYTES: usize = 1024 * 1024;

/// How long after the drain deadline the server waits for its connection tasks to return
/// before it stops anyway. Every connection closes itself by the deadline (the lingering close
/// included), so this only covers scheduling; the process exits within
/// `--shutdown-timeout` plus this.
pub const DRAIN_MARGIN: Duration = Duration::from_millis(250);

/// How often the server logs a one-line summary of its counters (at info level, and only
/// when one of them changed since the last line). Once a minute is often enough to see a
/// trend in a log and rare enough to never flood one.
pub const STATS_LOG_INTERVAL: Duration = Duration::from_secs(60);

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

/// Default `--tls-handshake-timeout`: a TLS handshake not finished by then is closed and
/// counted as `timeout`. A handshake takes two round trips and a few milliseconds of CPU;
/// ten seconds covers a slow mobile link many times over, and bounds how long a client
/// that connects and says nothing holds a slot (it counts against `--max-connections`).
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// TLS sessions the server remembers for resumption (stateful, shared by all connections).
/// rustls's own default: a few hundred bytes each, so about 100 KiB at most, and enough
/// for a benchmark's clients to resume when they reconnect.
pub const TLS_SESSION_CACHE: usize = 256;
/// The longest PROXY protocol v1 header, CRLF included: the spec's worst case,
/// `PROXY UNKNOWN` with two full IPv6 addresses and two 5-digit ports. The spec says a line
/// with no CRLF in its first 107 bytes is invalid, so this is fixed, not a flag.
pub const PROXY_V1_MAX_HEADER: usize = 107;

/// The protocol's own ceiling for a PROXY v2 header: 16 fixed bytes plus a 16-bit length.
pub const PROXY_V2_PROTOCOL_MAX: usize = 16 + 65_535;

/// Default cap on a PROXY v2 header (16 fixed bytes, addresses and TLVs). The largest
/// address block is 216 bytes (two `AF_UNIX` paths); what senders add on top (HAProxy's SSL
/// TLV with a certificate's CN, cipher and algorithms, a unique ID of at most 128 bytes, an
/// authority of at most 255, AWS's and GCP's endpoint IDs) stays well under 1 KiB. 4 KiB
/// leaves four times that, while a connection that is still in its header phase cannot make
/// the server hold 64 KiB per connection for a header it will discard.
pub const PROXY_V2_MAX_HEADER: usize = 4096;

/// The smallest v2 cap that still admits every address block the spec defines: 16 fixed
/// bytes plus two 108-byte `AF_UNIX` paths.
pub const PROXY_V2_MIN_HEADER_CAP: usize = 16 + 216;

/// Default `--proxy-header-timeout`: the whole PROXY header must arrive within this long of
/// the accept. The spec asks for no less than 3 s, to cover a TCP retransmit; 5 s leaves a
/// second retransmit's margin and still frees a silent connection's slot quickly.
pub const DEFAULT_PROXY_HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest `--banner` line, LF included, after `{id}` and `{hostname}` are filled in
/// (the two addresses add at most 2 × 47 bytes on top). A banner is one line a person or a
/// balancer's check reads; 1 KiB is far more than that needs and keeps a typo such as a
/// pasted file from being sent on every connection.
pub const MAX_BANNER: usize = 1024;

/// Connections the admin port serves at once. Probes and scrapes are a handful of short
/// requests; 16 covers a kubelet, a balancer's checks and a few scrapers, and a flood of
/// idle connections to the admin port cannot take descriptors from the data path.
pub const ADMIN_MAX_CONNECTIONS: usize = 16;

/// How long an admin connection may take to send a request's headers (and, between
/// requests on a kept-alive connection, to start the next one). Probes send theirs in one
/// segment; 5 s bounds a stalled or slow-loris client's hold on one of the few slots.
pub const ADMIN_HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest an admin connection is kept alive: after this it is closed once its current
/// request is answered. Prometheus and kubelets reconnect freely; a bound keeps a client
/// that holds connections open from filling [`ADMIN_MAX_CONNECTIONS`] for good.
pub const ADMIN_KEEP_ALIVE: Duration = Duration::from_secs(60);
/// How long one `sd_notify` datagram may block when the service manager's socket queue is
/// full. A manager that reads nothing for a second is wedged; the sender logs and goes on
/// rather than stall the runtime that runs the watchdog task.
pub const NOTIFY_SEND_TIMEOUT: Duration = Duration::from_secs(1);

/// Bytes read at a time while a connection's PROXY header is incomplete. HAProxy's v2 header
/// with its usual TLVs is well under this, so one read takes it; a longer one takes more
/// reads (the decoder keeps the pieces, up to its cap). The client's data that arrives with
/// the header is what is left of this read, so a proxied connection holds no more than this
/// before the core takes over.
pub const PROXY_READ_CHUNK: usize = 512;

/// Address space for one io_uring worker's receive buffers (`--io uring`): split into
/// buffers of `--read-buffer` bytes, a power of two from 16 to 4096 of them (1024 × 64 KiB by
/// default). They belong to the ring, not to connections, and only buffers actually used
/// become resident: the ring is kept about twice as full as one batch of completions takes,
/// refilled with the most recently returned buffers first. 1024 lets every one of a
/// thousand busy connections have a buffer in flight at once. No flag: it follows
/// `--read-buffer`.
pub const URING_POOL_BYTES: usize = 64 * 1024 * 1024;

/// Received input an io_uring connection may hold unanswered before its receive is paused
/// (cancelled, and armed again once its queue is short): the same 256 KiB the C reference
/// caps each multishot receive at. Without a cap one fast sender whose peer never reads
/// would take the whole pool. While fewer than a quarter of the pool's buffers are free,
/// every connection is held to one buffer. No flag: it bounds a pool the flags size.
pub const URING_QUEUE_BYTES: usize = 256 * 1024;

/// The most slots in an io_uring worker's file table (sparse: the kernel allocates a pointer
/// per slot, no file until a connection is registered at its slot), as the C reference's;
/// fewer where `RLIMIT_NOFILE` is lower. Connections past it are named by descriptor. No
/// flag: it changes no behaviour, only the cost of an operation.
pub const URING_FILE_TABLE: usize = 65536;

/// Submission queue entries per io_uring worker. A loop turn rarely queues more (a send and
/// perhaps a receive per connection that moved); when it does, the queue is submitted early
/// and filling goes on, so this bounds no behaviour, only how often that happens.
pub const URING_SQ_ENTRIES: u32 = 1024;

/// Completion queue entries per io_uring worker: multishot receives and accepts post many
/// completions per submission. The kernel keeps overflowing completions, but on a slow path;
/// 16 Ki entries (a 256 KiB mapping) hold a turn's worth at tens of thousands of connections.
pub const URING_CQ_ENTRIES: u32 = 16 * 1024;
