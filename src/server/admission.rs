//! Admission: the connection limits shared by every worker, and the slot a connection holds
//! while it is served.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::Shared;

/// Connections being served, in total and per address. Touched once per connection, never
/// per message.
#[derive(Debug)]
pub(crate) struct Admission {
    max: usize,
    max_per_ip: Option<usize>,
    active: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `max_connections` reached.
    OverLimit,
    /// `max_connections_per_ip` reached for its address.
    PerIp,
}

/// A connection's place in the limits; freed when dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl Admission {
    pub(crate) fn new(max: usize, max_per_ip: Option<usize>) -> Self {
        Admission {
            max,
            max_per_ip,
            active: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
        }
    }

    /// Connections being served now.
    pub(crate) fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// The limit `why` stands for.
    pub(crate) fn limit(&self, why: Refusal) -> usize {
        match why {
            Refusal::OverLimit => self.max,
            Refusal::PerIp => self.max_per_ip.unwrap_or(0),
        }
    }
}

impl Shared {
    /// Takes a connection slot for `ip`, or says which limit refuses it.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refusal> {
        let a = &self.admission;
        if a.active.fetch_add(1, Ordering::AcqRel) >= a.max {
            a.active.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::OverLimit);
        }
        if let Some(per_ip) = a.max_per_ip {
            let mut map = a.per_ip.lock().unwrap_or_else(|e| e.into_inner());
            let n = map.entry(ip).or_insert(0);
            if *n >= per_ip {
                drop(map);
                a.active.fetch_sub(1, Ordering::AcqRel);
                return Err(Refusal::PerIp);
            }
            *n += 1;
        }
        Ok(Slot {
            shared: self.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let a = &self.shared.admission;
        if a.max_per_ip.is_some() {
            let mut map = a.per_ip.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = map.get_mut(&self.ip) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&self.ip);
                }
            }
        }
        a.active.fetch_sub(1, Ordering::AcqRel);
    }
}
