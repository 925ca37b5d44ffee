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
//! | [`server`] | `upcased`: accept loops, connections, limits, timeouts, drain |
//! | `uring` | the io_uring driver for the connection core: one ring per worker, multishot accept and receive into a provided-buffer ring (Linux, feature `uring`) |
//! | [`client`] | `upcase`: connecting, pipe mode, `send`, the interactive session |
//! | [`bench`](mod@bench) | `upcase bench`: the load generator — closed and open loop, verified replies, latency |
//! | [`check`] | `upcase check`: the conformance suite that grades any server, and its reports |
//!
//! The binaries in `src/bin/` only parse arguments, set up logging, call one function here
//! and turn its result into an exit status.

pub mod bench;
pub mod check;
pub mod client;
pub mod limits;
pub mod logging;
pub mod net;
pub mod server;
pub mod tls;
pub mod transform;
pub mod units;
#[cfg(all(target_os = "linux", feature = "uring"))]
pub mod uring;
