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
    /// The address it is counted under, once placed (and only with a per-IP limit).
    ip: Option<IpAddr>,
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
        let mut slot = self.admit_unplaced()?;
        slot.place(ip)?;
        Ok(slot)
    }

    /// Takes a place under `max_connections` only: for a connection whose client address is
    /// not known yet (a PROXY header names it), placed under the per-IP limit by
    /// [`Slot::place`] once it is.
    pub(crate) fn admit_unplaced(self: &Arc<Self>) -> Result<Slot, Refusal> {
        let a = &self.admission;
        if a.active.fetch_add(1, Ordering::AcqRel) >= a.max {
            a.active.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::OverLimit);
        }
        Ok(Slot {
            shared: self.clone(),
            ip: None,
        })
    }
}

impl Slot {
    /// Counts the connection under its client address's limit; on `Err` the slot is still
    /// unplaced, and dropping it frees its place under `max_connections`.
    pub(crate) fn place(&mut self, ip: IpAddr) -> Result<(), Refusal> {
        debug_assert!(self.ip.is_none(), "a slot is placed once");
        let a = &self.shared.admission;
        if let Some(per_ip) = a.max_per_ip {
            let mut map = a.per_ip.lock().unwrap_or_else(|e| e.into_inner());
            let n = map.entry(ip).or_insert(0);
            if *n >= per_ip {
                return Err(Refusal::PerIp);
            }
            *n += 1;
            self.ip = Some(ip);
        }
        Ok(())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let a = &self.shared.admission;
        if let Some(ip) = self.ip {
            let mut map = a.per_ip.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = map.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&ip);
                }
            }
        }
        a.active.fetch_sub(1, Ordering::AcqRel);
    }
}
