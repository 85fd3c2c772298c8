//! The audit trail's table: events are queued by [`PgAuditSink::record`] (which never
//! waits on the database) and appended in batches by one writer task, which retries
//! until the database takes them. Each event gets a random id when it is recorded, and
//! a batch inserts only the ids not stored yet: a retried batch whose first commit
//! went through (its answer lost to a timeout or a dropped connection) adds nothing.

use crate::schema::chat_audit_events as audit;
use crate::{db, PgStore};
use chat_core::{AuditEvent, AuditSink, MessageId, RequestId, ThreadId, UserId};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Events waiting for the database; past this, new ones are only in the log.
const QUEUE: usize = 10_000;
/// Rows per `INSERT`.
const BATCH: usize = 500;
const MAX_BACKOFF: Duration = Duration::from_secs(5);

#[derive(Insertable)]
#[diesel(table_name = audit)]
struct AuditRow {
    event_id: Option<uuid::Uuid>,
    at: chat_core::Timestamp,
    actor_id: Option<i64>,
    role: Option<String>,
    action: &'static str,
    thread_id: Option<i64>,
    request_id: Option<i64>,
    message_id: Option<i64>,
    outcome: &'static str,
    detail: Option<String>,
}

impl AuditRow {
    fn new(event_id: uuid::Uuid, e: AuditEvent) -> Self {
        Self {
            event_id: Some(event_id),
            at: e.at,
            actor_id: e.actor.map(UserId::get),
            role: e.role,
            action: e.action.as_str(),
            thread_id: e.thread.map(ThreadId::get),
            request_id: e.request.map(RequestId::get),
            message_id: e.message.map(MessageId::get),
            outcome: e.outcome.as_str(),
            detail: e.detail,
        }
    }
}

/// Appends audit events to `chat_audit_events`.
/// What the writer task is sent: events, in order, and requests to say when every
/// event before them is stored.
enum Queued {
    Event(uuid::Uuid, AuditEvent),
    Flush(oneshot::Sender<()>),
}

pub struct PgAuditSink {
    queue: mpsc::Sender<Queued>,
}

#[async_trait::async_trait]
impl AuditSink for PgAuditSink {
    fn record(&self, event: &AuditEvent) {
        // A full queue means the database has been down for long: the event is in the
        // `chat_audit` log only, and this says so.
        let id = uuid::Uuid::new_v4();
        if self
            .queue
            .try_send(Queued::Event(id, event.clone()))
            .is_err()
        {
            tracing::error!(
                target: chat_core::audit::AUDIT_TARGET,
                action = event.action.as_str(),
                "audit event not stored in the database: its queue is full"
            );
        }
    }

    async fn flush(&self) {
        let (done, stored) = oneshot::channel();
        if self.queue.send(Queued::Flush(done)).await.is_ok() {
            let _ = stored.await;
        }
    }
}

impl PgStore {
    /// A sink over this store, and its writer task (on the current Tokio runtime), which
    /// ends when the sink is dropped and the queue is written.
    pub fn audit_sink(self: &Arc<Self>) -> PgAuditSink {
        let (queue, mut queued) = mpsc::channel::<Queued>(QUEUE);
        let store = self.clone();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            while queued.recv_many(&mut batch, BATCH).await > 0 {
                let mut rows = Vec::with_capacity(batch.len());
                let mut waiting = Vec::new();
                for item in batch.drain(..) {
                    match item {
                        Queued::Event(id, event) => rows.push(AuditRow::new(id, event)),
                        Queued::Flush(done) => waiting.push(done),
                    }
                }
                let mut backoff = Duration::from_millis(100);
                while !rows.is_empty() {
                    match store.append_audit(&rows).await {
                        Ok(()) => break,
                        Err(error) => {
                            tracing::warn!(%error, pending = rows.len(), "audit events not written yet; retrying");
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(MAX_BACKOFF);
                        }
                    }
                }
                for done in waiting {
                    let _ = done.send(());
                }
            }
        });
        PgAuditSink { queue }
    }

    async fn append_audit(&self, rows: &[AuditRow]) -> Result<(), chat_core::StoreError> {
        self.run(async move |mut conn| {
            diesel::insert_into(audit::table)
                .values(rows)
                .on_conflict(audit::event_id)
                .do_nothing()
                .execute(&mut conn)
                .await
                .map_err(db)?;
            Ok(())
        })
        .await
    }
}
