//! Requests held at the door until a test lets them through: a test that
//! needs a request to be in flight at the emulator installs a [`Hold`],
//! waits until the request has arrived ([`Hold::arrivals`]) and releases it
//! when it is done, instead of adding latency and hoping the request is
//! still in flight a few hundred milliseconds later.

use std::sync::Arc;

use tokio::sync::watch;

use crate::server::AppState;

/// What a hold has seen: requests that arrived and whether it was released.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct HoldStatus {
    pub arrived: u64,
    pub released: bool,
}

struct Entry {
    id: u64,
    action: String,
    object: Option<String>,
    status: watch::Sender<HoldStatus>,
}

impl Entry {
    fn matches(&self, action: &str, object: Option<&str>) -> bool {
        crate::faults::targets(&self.action, self.object.as_deref(), action, object)
    }

    fn release(&self) {
        self.status.send_modify(|status| status.released = true);
    }
}

/// The installed holds, checked in order.
#[derive(Default)]
pub(crate) struct Holds {
    entries: Vec<Entry>,
    next_id: u64,
}

impl Holds {
    /// Holds requests for `action` (`*`: any) and, if given, `object`.
    fn add(&mut self, action: &str, object: Option<&str>) -> (u64, watch::Receiver<HoldStatus>) {
        self.next_id += 1;
        let (status, watch) = watch::channel(HoldStatus::default());
        self.entries.push(Entry {
            id: self.next_id,
            action: action.to_string(),
            object: object.map(str::to_string),
            status,
        });
        (self.next_id, watch)
    }

    /// Counts an arriving request with the first hold that matches it; what
    /// to wait on until that hold is released, if one does.
    pub fn arrive(
        &mut self,
        action: &str,
        object: Option<&str>,
    ) -> Option<watch::Receiver<HoldStatus>> {
        let entry = self.entries.iter().find(|e| e.matches(action, object))?;
        entry.status.send_modify(|status| status.arrived += 1);
        Some(entry.status.subscribe())
    }

    fn release(&mut self, id: u64) {
        self.entries.retain(|entry| {
            if entry.id == id {
                entry.release();
            }
            entry.id != id
        });
    }

    /// Lets every held request through (the emulator is stopping).
    pub fn release_all(&mut self) {
        for entry in self.entries.drain(..) {
            entry.release();
        }
    }
}

/// API requests held at the emulator (after their latency, before they are
/// authenticated and answered) until this is released or dropped. From
/// [`crate::Emulator::hold`].
pub struct Hold {
    state: Arc<AppState>,
    id: u64,
    status: watch::Receiver<HoldStatus>,
}

impl std::fmt::Debug for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hold")
            .field("id", &self.id)
            .field("arrived", &self.arrived())
            .finish()
    }
}

impl Hold {
    pub(crate) fn new(state: Arc<AppState>, action: &str, object: Option<&str>) -> Hold {
        let (id, status) = state.lock().holds.add(action, object);
        Hold { state, id, status }
    }

    /// How many requests have arrived at this hold so far.
    pub fn arrived(&self) -> u64 {
        self.status.borrow().arrived
    }

    /// Waits until at least `n` requests have arrived at this hold (they
    /// are held there until it is released).
    pub async fn arrivals(&self, n: u64) {
        let mut status = self.status.clone();
        // The sender lives as long as the hold is installed, which is at
        // least as long as `self`.
        let _ = status.wait_for(|s| s.arrived >= n).await;
    }

    /// Lets the held requests, and every later one, through.
    pub fn release(self) {}
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.state.lock().holds.release(self.id);
    }
}
