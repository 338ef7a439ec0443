//! Long-polling support: a waiter is woken at once by a change this replica
//! makes to its flow (and by no other), and re-reads the database
//! periodically to see changes made elsewhere. Waiters have a cap of their
//! own per replica; past it, a read that asks to wait answers at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use domain::flow::FlowId;
use domain::service::FlowObserver;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

/// `BIOMETRIC_PASSKEY_LONG_POLL_MAX_WAITERS`'s default.
pub const DEFAULT_MAX_WAITERS: u32 = 1_000;

#[derive(Debug)]
pub struct FlowWatch {
    /// The flows someone waits on: a change counter, and how many wait.
    waiting: Mutex<HashMap<FlowId, (watch::Sender<u64>, usize)>>,
    waiters: Arc<Semaphore>,
}

impl Default for FlowWatch {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_WAITERS)
    }
}

/// A long-poll's hold on its flow: woken by changes to it; gives its place
/// back when dropped.
#[derive(Debug)]
pub struct Waiter<'a> {
    watch: &'a FlowWatch,
    id: FlowId,
    changes: watch::Receiver<u64>,
    _place: OwnedSemaphorePermit,
}

impl FlowWatch {
    pub fn new(max_waiters: u32) -> Self {
        Self {
            waiting: Mutex::new(HashMap::new()),
            waiters: Arc::new(Semaphore::new(max_waiters as usize)),
        }
    }

    /// Starts waiting on `id`, before the flow is read (so a change between
    /// the read and the wait is not missed); `None` when this replica already
    /// holds as many waiters as it takes.
    pub fn wait_on(&self, id: FlowId) -> Option<Waiter<'_>> {
        let place = self.waiters.clone().try_acquire_owned().ok()?;
        let mut waiting = self.waiting.lock().ok()?;
        let (sender, count) = waiting
            .entry(id)
            .or_insert_with(|| (watch::channel(0).0, 0));
        *count += 1;
        let changes = sender.subscribe();
        Some(Waiter {
            watch: self,
            id,
            changes,
            _place: place,
        })
    }

    /// How many flows have a waiter (for tests).
    pub fn flows_waited_on(&self) -> usize {
        self.waiting.lock().map(|w| w.len()).unwrap_or_default()
    }
}

impl Waiter<'_> {
    /// Resolves when the flow changes (on this replica).
    pub async fn changed(&mut self) {
        if self.changes.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        if let Ok(mut waiting) = self.watch.waiting.lock()
            && let Some((_, count)) = waiting.get_mut(&self.id)
        {
            *count -= 1;
            if *count == 0 {
                waiting.remove(&self.id);
            }
        }
    }
}

impl FlowObserver for FlowWatch {
    fn flow_changed(&self, id: FlowId) {
        // Nobody waiting on the flow is fine: nothing to wake.
        if let Ok(waiting) = self.waiting.lock()
            && let Some((sender, _)) = waiting.get(&id)
        {
            sender.send_modify(|n| *n += 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow() -> FlowId {
        FlowId(uuid::Uuid::now_v7())
    }

    #[tokio::test]
    async fn a_waiter_is_woken_by_its_flow_only() {
        let watch = FlowWatch::new(10);
        let (mine, other) = (flow(), flow());
        let mut waiter = watch.wait_on(mine).unwrap();
        watch.flow_changed(other);
        let woken = tokio::time::timeout(std::time::Duration::from_millis(50), waiter.changed());
        assert!(
            woken.await.is_err(),
            "another flow's change does not wake it"
        );
        watch.flow_changed(mine);
        let woken = tokio::time::timeout(std::time::Duration::from_millis(50), waiter.changed());
        assert!(woken.await.is_ok());
        drop(waiter);
        assert_eq!(watch.flows_waited_on(), 0, "nothing stays behind");
    }

    #[tokio::test]
    async fn a_change_before_the_wait_begins_is_not_missed() {
        let watch = FlowWatch::new(10);
        let id = flow();
        let mut waiter = watch.wait_on(id).unwrap();
        watch.flow_changed(id);
        let woken = tokio::time::timeout(std::time::Duration::from_millis(50), waiter.changed());
        assert!(woken.await.is_ok());
    }

    #[test]
    fn waiters_past_the_cap_are_not_taken() {
        let watch = FlowWatch::new(2);
        let id = flow();
        let first = watch.wait_on(id).unwrap();
        let _second = watch.wait_on(flow()).unwrap();
        assert!(watch.wait_on(flow()).is_none());
        drop(first);
        assert!(
            watch.wait_on(id).is_some(),
            "a place given back is taken again"
        );
    }
}
