//! One TCP connection, from accept to close: the policy as a sans-I/O state machine, the
//! readiness driver that runs it, the transport seam beneath that driver, and the buffer
//! pool the driver borrows from.
//!
//! | piece | job | what comes next here |
//! | --- | --- | --- |
//! | [`Connection`] (`machine.rs`) | the policy: transform, line boundary, idle and drain deadlines, memory bound; events in, decisions out, no I/O | every driver runs this one |
//! | `driver.rs` | the tokio readiness loop: waits, reads, writes, lingers | an io_uring driver beside it, feeding the machine ring buffers |
//! | [`Transport`] (`transport.rs`) | what that loop needs from a stream; implemented for plain TCP (`server/tcp.rs`) | a TLS stream implements it and the loop is unchanged |
//! | `pool.rs` | per-thread buffers, bounded in bytes, lent only while bytes move | |
//!
//! A connection ends when the client half-closes (everything owed is sent, then FIN), on an
//! error, at the idle timeout, or during a drain: at a line boundary at once, mid-line once
//! the line's LF has been echoed, and at the drain deadline whatever its state. Every ending
//! by the server flushes held-back bytes still owed and is a lingering close, bounded by the
//! drain deadline during a drain.

mod driver;
mod machine;
mod pool;
mod transport;

pub(crate) use driver::serve;
pub use machine::{Connection, End, Next, Policy, Timer};
pub(crate) use transport::peek_waiting;
pub use transport::Transport;
