//! Long-polling support: waiters learn of flow changes made by this replica at
//! once, and re-read the database periodically to see changes made elsewhere.

use domain::flow::FlowId;
use domain::service::FlowObserver;
use tokio::sync::broadcast;

/// How many change notices may queue before slow waiters fall back to re-reading.
const CAPACITY: usize = 1024;

#[derive(Debug)]
pub struct FlowWatch {
    changes: broadcast::Sender<FlowId>,
}

impl Default for FlowWatch {
    fn default() -> Self {
        Self {
            changes: broadcast::channel(CAPACITY).0,
        }
    }
}

impl FlowWatch {
    pub fn subscribe(&self) -> broadcast::Receiver<FlowId> {
        self.changes.subscribe()
    }
}

impl FlowObserver for FlowWatch {
    fn flow_changed(&self, id: FlowId) {
        // No receiver is fine: nobody is waiting.
        let _ = self.changes.send(id);
    }
}
