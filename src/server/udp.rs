//! UDP mode: one reply datagram per request datagram, safe to expose.
//!
//! An echo-like UDP service is a classic amplifier and loop partner (CERT CA-1996-01:
//! echo ↔ chargen loops, spoofed reflection). Three rules keep this one harmless:
//!
//! - no reply to a source port below 1024, where echo (7), chargen (19), DNS (53) and other
//!   reflectors live, so two services can never bounce datagrams between themselves;
//! - a reply is never larger than its request: a datagram whose upper-case is longer is
//!   dropped and counted, so a spoofed request reflects no more bytes than it cost;
//! - an optional per-source-address rate limit (`--udp-rate`).
//!
//! Each datagram is upper-cased on its own with a fresh [`Upcaser`]; nothing carries over.
//! The receive and send buffers are allocated once per socket and reused.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::time::Instant;

use tokio::net::UdpSocket;
use tracing::debug;

use super::stats::{bump, WorkerStats};
use super::Shared;
use crate::limits;
use crate::transform::Upcaser;

/// Lowest source port that gets a reply: 0–1023 are the privileged, well-known services.
pub const MIN_REPLY_PORT: u16 = 1024;

/// Serves datagrams on `socket` until the drain begins. UDP has nothing to drain: it stops
/// at once.
pub(super) async fn serve(
    socket: UdpSocket,
    shared: &Shared,
    stats: &WorkerStats,
) -> io::Result<()> {
    let mut input = vec![0u8; limits::UDP_MAX_DATAGRAM];
    let mut output = Vec::with_capacity(limits::UDP_MAX_DATAGRAM * 3);
    let mut rate = shared.config.udp_rate.map(RateLimiter::new);
    loop {
        let (n, from) = tokio::select! {
            biased;
            () = shared.drain.cancelled() => return Ok(()),
            r = socket.recv_from(&mut input) => match r {
                Ok(x) => x,
                // An ICMP error for an earlier reply surfaces here on some systems; it
                // concerns that peer only.
                Err(e) => {
                    debug!(error = %e, "udp receive failed; carrying on");
                    continue;
                }
            },
        };
        if from.port() < MIN_REPLY_PORT {
            bump(&stats.udp_privileged_port);
            debug!(%from, "udp: no reply to a privileged source port");
            continue;
        }
        if let Some(rate) = rate.as_mut() {
            if !rate.allow(from.ip(), Instant::now()) {
                bump(&stats.udp_rate_limited);
                shared.limit_log.warn(|suppressed| {
                    tracing::warn!(%from, suppressed, "udp datagram dropped: --udp-rate reached")
                });
                continue;
            }
        }
        output.clear();
        let mut up = Upcaser::new(shared.config.mode);
        up.push(&input[..n], &mut output);
        up.finish(&mut output);
        if output.len() > n {
            bump(&stats.udp_would_amplify);
            debug!(%from, request = n, reply = output.len(), "udp: reply would be larger than the request; dropped");
            continue;
        }
        match socket.send_to(&output, from).await {
            Ok(_) => bump(&stats.udp_replied),
            Err(e) => debug!(%from, error = %e, "udp send failed"),
        }
    }
}

/// A token bucket per source address: `rate` datagrams a second, bursts up to `rate`.
struct RateLimiter {
    rate: f64,
    buckets: HashMap<IpAddr, (f64, Instant)>,
}

impl RateLimiter {
    fn new(rate: u32) -> Self {
        RateLimiter {
            rate: f64::from(rate.max(1)),
            buckets: HashMap::new(),
        }
    }

    fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        if self.buckets.len() >= limits::UDP_RATE_TABLE && !self.buckets.contains_key(&ip) {
            // Forget addresses whose bucket has refilled: they are as good as new. If
            // that frees nothing, the table is full of active senders (or spoofed ones)
            // and a new address waits its turn.
            let rate = self.rate;
            self.buckets.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < rate
            });
            if self.buckets.len() >= limits::UDP_RATE_TABLE {
                return false;
            }
        }
        let (tokens, at) = self.buckets.entry(ip).or_insert((self.rate, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.rate).min(self.rate);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rate_limiter_allows_the_rate_and_refills() {
        let mut r = RateLimiter::new(5);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let t0 = Instant::now();
        let allowed = (0..20).filter(|_| r.allow(ip, t0)).count();
        assert_eq!(allowed, 5);
        assert!(r.allow(ip, t0 + Duration::from_millis(250)));
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        assert!(r.allow(other, t0), "each address has its own bucket");
    }
}
