//! The host's own accounting of plugin instances: two classes (the built-in
//! plugins, and custom `.wasm` plugins), each with its own fetch slots,
//! shared fairly by namespace, and its own budget of linear memory, so that
//! nothing a custom plugin does can take an instance or a byte from the
//! built-in KMS and OOS plugins.
//!
//! Memory is reserved in WebAssembly pages (64 KiB). Before a fetch
//! instantiates its plugin it waits for the plugin's footprint (the memory
//! it grew to at load, in `describe`); growth beyond that is taken from the
//! class budget if free, else the fetch fails (retryably) instead of the
//! node running out of memory. Everything an instance reserved is returned
//! when its store is dropped.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::fair::{FairShare, Permit};

/// WebAssembly page size.
pub(crate) const PAGE: usize = 64 << 10;

/// The two classes of plugins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// Compiled into the binary.
    Builtin,
    /// A component file from the operator.
    Custom,
}

impl Class {
    /// The config key of the class's memory budget.
    pub(crate) fn memory_key(self) -> &'static str {
        match self {
            Class::Builtin => "limits.plugin_memory_mib",
            Class::Custom => "limits.custom_plugin_memory_mib",
        }
    }
}

/// Fetch slots and memory of one class of plugins.
#[derive(Debug)]
pub(crate) struct Pool {
    slots: FairShare,
    memory: Arc<Semaphore>,
    memory_pages: usize,
}

impl Pool {
    /// `slots` fetch slots (at most `per_namespace` to one namespace) and
    /// `memory_mib` of linear memory.
    pub(crate) fn new(slots: usize, per_namespace: usize, memory_mib: u64) -> Pool {
        let memory_pages = ((memory_mib as usize) << 20) / PAGE;
        Pool {
            slots: FairShare::new(slots, per_namespace),
            memory: Arc::new(Semaphore::new(memory_pages)),
            memory_pages,
        }
    }

    /// A fetch slot for `namespace`, in its turn.
    pub(crate) async fn slot(&self, namespace: &str) -> Permit {
        self.slots.acquire(namespace).await
    }

    /// Waits for `bytes` of memory (rounded up to pages, at most the whole
    /// budget) and returns the account that the instance's limiter draws on.
    pub(crate) async fn reserve(&self, bytes: usize) -> Account {
        let pages = bytes.div_ceil(PAGE).min(self.memory_pages) as u32;
        let permit = self
            .memory
            .clone()
            .acquire_many_owned(pages)
            .await
            .expect("never closed");
        Account {
            budget: self.memory.clone(),
            held: Some(permit),
            used: 0,
        }
    }

    /// An account with nothing reserved (loading, `plugin check`).
    pub(crate) fn unreserved(&self) -> Account {
        Account {
            budget: self.memory.clone(),
            held: None,
            used: 0,
        }
    }
}

/// The memory one instance holds; returned to the budget when dropped.
#[derive(Debug)]
pub(crate) struct Account {
    budget: Arc<Semaphore>,
    held: Option<OwnedSemaphorePermit>,
    used: usize,
}

impl Account {
    /// Grows the instance's memory by `bytes`: from what it reserved, then
    /// from the budget if pages are free. `false`: the budget is exhausted.
    pub(crate) fn grow(&mut self, bytes: usize) -> bool {
        let held_bytes = self.held.as_ref().map_or(0, |p| p.num_permits() * PAGE);
        let needed = (self.used + bytes).saturating_sub(held_bytes);
        if needed > 0 {
            let pages = needed.div_ceil(PAGE) as u32;
            match self.budget.clone().try_acquire_many_owned(pages) {
                Ok(more) => match &mut self.held {
                    Some(held) => held.merge(more),
                    None => self.held = Some(more),
                },
                Err(_) => return false,
            }
        }
        self.used += bytes;
        true
    }

    /// Bytes the instance has grown to.
    pub(crate) fn used(&self) -> usize {
        self.used
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn growth_draws_on_the_reservation_then_the_budget() {
        let pool = Pool::new(4, 4, 1);
        let mut a = pool.reserve(3 * PAGE).await;
        assert!(a.grow(2 * PAGE));
        assert!(a.grow(PAGE));
        // beyond the reservation: from the budget while pages are free
        assert!(a.grow(13 * PAGE));
        assert_eq!(pool.memory.available_permits(), 0);
        assert!(!a.grow(1), "the 1 MiB budget is spent");
        let mut b = pool.unreserved();
        assert!(!b.grow(PAGE));
        drop(a);
        assert_eq!(pool.memory.available_permits(), 16);
        assert!(b.grow(PAGE));
        assert_eq!(b.used(), PAGE);
    }

    #[tokio::test(start_paused = true)]
    async fn a_reservation_waits_for_memory_to_be_returned() {
        let pool = Arc::new(Pool::new(4, 4, 1));
        let first = pool.reserve(1 << 20).await;
        let waiting = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.reserve(PAGE).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        assert!(!waiting.is_finished());
        drop(first);
        let second = waiting.await.unwrap();
        drop(second);
        assert_eq!(pool.memory.available_permits(), 16);
        // more than the budget is clamped to the budget
        let all = pool.reserve(100 << 20).await;
        assert_eq!(pool.memory.available_permits(), 0);
        drop(all);
    }
}
