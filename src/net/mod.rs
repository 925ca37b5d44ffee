//! The small pieces of networking that both binaries and the tests share: binding listener
//! sockets (`bind.rs`) and the descriptor limit (`rlimit.rs`). Typed values such as
//! addresses and durations live in [`crate::units`]; they are re-exported here for the
//! callers that have always found them here.

pub(crate) mod bind;
mod rlimit;

pub use bind::{bind_tcp, bind_udp, connect_udp};
pub use rlimit::{nofile_limit, raise_nofile_limit};

pub use crate::units::{parse_duration, parse_listen_addr};
