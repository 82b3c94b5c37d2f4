//! Fair sharing of a node-wide resource between tenants (namespaces).
//!
//! A [`FairShare`] has `capacity` permits in all and gives one key (a
//! namespace) at most `per_key` of them at a time. When permits are scarce,
//! a released permit goes to the waiting key that holds the fewest (the
//! longest waiter first among equals), so a namespace that floods the node
//! waits behind its own requests while another namespace's first request is
//! served next. With `per_key < capacity`, one namespace can never hold every
//! permit, so another namespace always finds a free one unless several
//! namespaces are saturating their shares at once.
//!
//! Waiting is cancellation-safe: a waiter dropped before it is served leaves
//! the queue; a permit handed to a waiter that has just gone is passed on.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// Permits shared fairly between keys.
#[derive(Debug)]
pub struct FairShare {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    capacity: usize,
    per_key: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    in_use: usize,
    /// Permits held per key (keys with none are removed).
    held: HashMap<Arc<str>, usize>,
    /// Waiters per key, oldest first (keys with none are removed).
    waiting: HashMap<Arc<str>, VecDeque<Waiter>>,
    next_ticket: u64,
}

#[derive(Debug)]
struct Waiter {
    ticket: u64,
    wake: oneshot::Sender<Permit>,
}

/// One permit; released when dropped.
#[derive(Debug)]
pub struct Permit {
    inner: Arc<Inner>,
    key: Arc<str>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.inner.release(&self.key);
    }
}

/// What a key holds and waits for, for messages and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Permits held by the key.
    pub held: usize,
    /// Permits held in all.
    pub in_use: usize,
    /// The key's waiters.
    pub waiting: usize,
}

impl FairShare {
    /// `capacity` permits in all, at most `per_key` (clamped to 1..=capacity)
    /// to one key.
    pub fn new(capacity: usize, per_key: usize) -> FairShare {
        let capacity = capacity.max(1);
        FairShare {
            inner: Arc::new(Inner {
                capacity,
                per_key: per_key.clamp(1, capacity),
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// The total number of permits.
    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    /// The most permits one key may hold.
    pub fn per_key(&self) -> usize {
        self.inner.per_key
    }

    /// What `key` holds and waits for now.
    pub fn usage(&self, key: &str) -> Usage {
        let state = self.inner.lock();
        Usage {
            held: state.held.get(key).copied().unwrap_or(0),
            in_use: state.in_use,
            waiting: state.waiting.get(key).map_or(0, VecDeque::len),
        }
    }

    /// A permit for `key`, now if one is free within the key's share, else
    /// when it is this key's turn.
    pub async fn acquire(&self, key: &str) -> Permit {
        match self.acquire_queueing_at_most(key, usize::MAX).await {
            Ok(permit) => permit,
            Err(_) => unreachable!("no queue holds usize::MAX waiters"),
        }
    }

    /// [`FairShare::acquire`], unless `key` would have to wait behind
    /// `max_waiting` of its own waiters already: then its usage at that
    /// moment, at once. The check and the queueing are one step, so
    /// concurrent callers cannot queue past the bound.
    pub async fn acquire_queueing_at_most(
        &self,
        key: &str,
        max_waiting: usize,
    ) -> Result<Permit, Usage> {
        let (ticket, key, mut wake) = {
            let mut state = self.inner.lock();
            let key: Arc<str> = match state.held.get_key_value(key) {
                Some((k, _)) => k.clone(),
                None => Arc::from(key),
            };
            let queued = state.waiting.contains_key(&key);
            if !queued && self.inner.may_take(&state, &key) {
                state.take(&key);
                return Ok(Permit {
                    inner: self.inner.clone(),
                    key,
                });
            }
            let waiting = state.waiting.get(&key).map_or(0, VecDeque::len);
            if waiting >= max_waiting {
                return Err(Usage {
                    held: state.held.get(&key).copied().unwrap_or(0),
                    in_use: state.in_use,
                    waiting,
                });
            }
            let (tx, rx) = oneshot::channel();
            let ticket = state.next_ticket;
            state.next_ticket += 1;
            state
                .waiting
                .entry(key.clone())
                .or_default()
                .push_back(Waiter { ticket, wake: tx });
            (ticket, key, rx)
        };
        let mut guard = Dequeue {
            inner: &self.inner,
            key: &key,
            ticket,
            armed: true,
        };
        let permit = (&mut wake)
            .await
            .expect("a waiter is never dropped unserved");
        guard.armed = false;
        Ok(permit)
    }
}

/// Takes a cancelled waiter out of its queue; if it was served in the
/// meantime, the permit in its channel is dropped, which passes it on.
struct Dequeue<'a> {
    inner: &'a Arc<Inner>,
    key: &'a Arc<str>,
    ticket: u64,
    armed: bool,
}

impl Drop for Dequeue<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let mut state = self.inner.lock();
        if let Some(queue) = state.waiting.get_mut(self.key) {
            queue.retain(|w| w.ticket != self.ticket);
            if queue.is_empty() {
                state.waiting.remove(self.key);
            }
        }
    }
}

impl State {
    fn take(&mut self, key: &Arc<str>) {
        self.in_use += 1;
        *self.held.entry(key.clone()).or_default() += 1;
    }

    /// The waiting key to serve next: the fewest held, then the oldest ticket.
    fn next_key(&self, per_key: usize) -> Option<Arc<str>> {
        self.waiting
            .iter()
            .filter_map(|(key, queue)| {
                let held = self.held.get(key).copied().unwrap_or(0);
                let front = queue.front()?;
                (held < per_key).then_some((held, front.ticket, key))
            })
            .min_by_key(|(held, ticket, _)| (*held, *ticket))
            .map(|(_, _, key)| key.clone())
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn may_take(&self, state: &State, key: &str) -> bool {
        state.in_use < self.capacity && state.held.get(key).copied().unwrap_or(0) < self.per_key
    }

    fn release(self: &Arc<Self>, key: &Arc<str>) {
        let mut undelivered = None;
        {
            let mut state = self.lock();
            state.in_use -= 1;
            match state.held.get_mut(key) {
                Some(n) if *n > 1 => *n -= 1,
                _ => {
                    state.held.remove(key);
                }
            }
            // One permit was freed, so at most one waiter can be served: the
            // released key's next waiter, or any key's if the node was full.
            if state.in_use < self.capacity
                && let Some(next) = state.next_key(self.per_key)
            {
                let queue = state.waiting.get_mut(&next).expect("next_key is waiting");
                let waiter = queue.pop_front().expect("next_key has a waiter");
                if queue.is_empty() {
                    state.waiting.remove(&next);
                }
                state.take(&next);
                let permit = Permit {
                    inner: self.clone(),
                    key: next,
                };
                // A waiter that has just gone returns the permit; its drop,
                // outside the lock, releases it again for the next one.
                undelivered = waiter.wake.send(permit).err();
            }
        }
        drop(undelivered);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn pending(share: &Arc<FairShare>, key: &'static str) -> tokio::task::JoinHandle<Permit> {
        let share = share.clone();
        let task = tokio::spawn(async move { share.acquire(key).await });
        // let it queue
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(1)).await;
        task
    }

    #[tokio::test(start_paused = true)]
    async fn one_key_never_holds_more_than_its_share() {
        let share = Arc::new(FairShare::new(4, 2));
        let a1 = share.acquire("a").await;
        let _a2 = share.acquire("a").await;
        let a3 = pending(&share, "a").await;
        assert!(!a3.is_finished(), "a is at its share");
        // another key still gets the free permits at once
        let _b1 = share.acquire("b").await;
        let _b2 = share.acquire("b").await;
        assert_eq!(
            share.usage("a"),
            Usage {
                held: 2,
                in_use: 4,
                waiting: 1
            }
        );
        drop(a1);
        let _a3 = a3.await.unwrap();
        assert_eq!(share.usage("a").held, 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_never_queue_past_the_bound() {
        let share = Arc::new(FairShare::new(1, 1));
        let held = share.acquire("a").await;
        // 40 callers on two threads at once: exactly 3 queue, the rest are
        // refused (a check then a separate queueing let more through).
        let callers: Vec<_> = (0..40)
            .map(|_| {
                let share = share.clone();
                tokio::spawn(async move {
                    let outcome = share.acquire_queueing_at_most("a", 3).await;
                    outcome.map(drop).map_err(|usage| usage.waiting)
                })
            })
            .collect();
        let refused = async {
            while callers.iter().filter(|c| c.is_finished()).count() < 37 {
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), refused)
            .await
            .expect("37 callers refused at once");
        assert_eq!(share.usage("a").waiting, 3);
        drop(held);
        let mut outcomes = Vec::new();
        for caller in callers {
            outcomes.push(caller.await.unwrap());
        }
        assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 3);
        assert!(outcomes.iter().all(|o| *o == Ok(()) || *o == Err(3)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_released_permit_goes_to_the_key_holding_fewest() {
        let share = Arc::new(FairShare::new(3, 3));
        let a: Vec<_> = [
            share.acquire("a").await,
            share.acquire("a").await,
            share.acquire("a").await,
        ]
        .into();
        // a floods the queue first, then b asks once
        let a_waiters = [pending(&share, "a").await, pending(&share, "a").await];
        let b = pending(&share, "b").await;
        let mut a = a.into_iter();
        drop(a.next());
        let _b = b.await.unwrap();
        assert!(a_waiters.iter().all(|w| !w.is_finished()), "b went first");
        drop(a.next());
        for w in a_waiters {
            drop(a.next());
            drop(w.await.unwrap());
        }
        assert_eq!(
            share.usage("a"),
            Usage {
                held: 0,
                in_use: 1,
                waiting: 0
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_waiter_leaves_the_queue_and_loses_nothing() {
        let share = Arc::new(FairShare::new(1, 1));
        let held = share.acquire("a").await;
        let gone = pending(&share, "b").await;
        gone.abort();
        let _ = gone.await;
        assert_eq!(
            share.usage("b"),
            Usage {
                held: 0,
                in_use: 1,
                waiting: 0
            }
        );
        let next = pending(&share, "c").await;
        drop(held);
        let c = next.await.unwrap();
        assert_eq!(share.usage("c").held, 1);
        drop(c);
        assert_eq!(share.usage("c"), Usage::default());
    }

    #[tokio::test(start_paused = true)]
    async fn a_permit_sent_to_a_waiter_that_just_went_is_passed_on() {
        let share = Arc::new(FairShare::new(1, 1));
        let held = share.acquire("a").await;
        // Queue b by hand, then drop its receiver before the release.
        let (tx, rx) = oneshot::channel();
        {
            let mut state = share.inner.lock();
            state
                .waiting
                .entry(Arc::from("b"))
                .or_default()
                .push_back(Waiter {
                    ticket: 99,
                    wake: tx,
                });
        }
        drop(rx);
        let c = pending(&share, "c").await;
        drop(held);
        // b's permit came back and went to c
        let _c = c.await.unwrap();
        assert_eq!(share.usage("b").held, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn many_keys_under_contention_keep_the_books_straight() {
        let share = Arc::new(FairShare::new(8, 3));
        let mut tasks = Vec::new();
        for i in 0..200u64 {
            let share = share.clone();
            tasks.push(tokio::spawn(async move {
                let key = ["a", "b", "c", "d", "e"][(i % 5) as usize];
                let _p = share.acquire(key).await;
                let usage = share.usage(key);
                assert!(usage.held <= 3 && usage.in_use <= 8, "{usage:?}");
                tokio::time::sleep(Duration::from_millis(1 + i % 7)).await;
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(share.usage("a"), Usage::default());
    }
}
