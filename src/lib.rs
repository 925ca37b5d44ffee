//! `upcase`: a capitalisation service and the tools around it.
//!
//! A TCP (and opt-in UDP) server that upper-cases whatever bytes it receives and sends them
//! straight back, and a client that talks to it, loads it and grades it.
//!
//! # Layout
//!
//! | module | job |
//! | --- | --- |
//! | [`transform`] | the pure streaming upper-caser: bytes in, bytes out, ≤ 3 bytes of state |
//! | [`limits`] | every bound and default, named, with the reason for its value |
//! | [`logging`] | `tracing` set-up for the binaries: text or JSON, to stderr |
//! | [`units`] | the values typed on a command line: durations, sizes, addresses — one rule each |
//! | [`net`] | listener binding, descriptor limits |
//! | [`tls`] | TLS for both sides (rustls, ring): certificates and reload, configurations, handshakes and their failure reasons, the TLS pipe |
//! | [`proxy`] | the PROXY protocol v1/v2: a sans-I/O header decoder, and encoders for clients |
//! | [`banner`] | `--banner`: the template, checked at startup, and the line each connection gets |
//! | [`admin`] | `--admin`: `/livez`, `/readyz` and `/metrics` over HTTP/1.1 on its own thread |
//! | [`server`] | `upcased`: config, listeners with their settings, workers, accept loops, limits, drain, counters |
//! | [`server::conn`] | one connection: [`Connection`](server::conn::Connection), the sans-I/O state machine that holds the policy (transform, line boundary, idle and drain deadlines, memory bound); the tokio readiness driver that runs it (where an io_uring driver goes beside it); and [`Transport`](server::conn::Transport), the seam beneath that driver (where TLS goes) |
//! | [`reuseport`] | `--reuse-port`: TCP and UDP sockets bound with `SO_REUSEPORT` |
//! | [`systemd`] | socket activation (inherited listeners) and `sd_notify` readiness, stop and watchdog |
//! | [`client`] | `upcase`: connecting, pipe mode, `send`, the interactive session |
//! | [`bench`](mod@bench) | `upcase bench`: the load generator — closed and open loop, verified replies, latency |
//! | [`check`] | `upcase check`: the conformance suite that grades any server, and its reports |
//!
//! The binaries in `src/bin/` only parse arguments, set up logging, call one function here
//! and turn its result into an exit status.

pub mod admin;
pub mod banner;
pub mod bench;
pub mod check;
pub mod client;
pub mod limits;
pub mod logging;
pub mod net;
pub mod proxy;
pub mod reuseport;
pub mod server;
pub mod systemd;
pub mod tls;
pub mod transform;
pub mod units;
