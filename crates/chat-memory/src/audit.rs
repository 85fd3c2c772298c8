use chat_core::{AuditEvent, AuditSink};
use parking_lot::Mutex;

/// Keeps audit events in memory, oldest first: for tests and embedding programs that
/// want to look at the trail. Unbounded, so not for a long-running server.
#[derive(Debug, Default)]
pub struct MemoryAuditLog {
    events: Mutex<Vec<AuditEvent>>,
}

impl MemoryAuditLog {
    /// Every event recorded so far.
    pub fn events(&self) -> Vec<AuditEvent> {
        self.events.lock().clone()
    }
}

impl AuditSink for MemoryAuditLog {
    fn record(&self, event: &AuditEvent) {
        self.events.lock().push(event.clone());
    }
}
