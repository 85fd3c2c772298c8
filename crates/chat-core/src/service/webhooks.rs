//! The host's webhooks (SPEC §9.1): queued as durable jobs when a message is stored, a
//! thread closed or purged, and delivered (with retries) by the job runner, so a host
//! that is slow or down never slows or fails the use case. The events are typed
//! ([`WebhookEvent`]); ids and times only.

use super::*;
use crate::webhook::{OnThread, WebhookEvent};

impl ChatService {
    /// Queues one webhook event. With batching (`webhook_batch`), it waits for the next
    /// batch, which leaves when it is full or at the next
    /// [`flush_webhooks`](Self::flush_webhooks); else it is queued at once. A queue
    /// that is down loses the webhook, logged: the use case that caused it stands. The
    /// real-time adapter queues Pusher's occupancy and presence events here too.
    pub async fn queue_webhook(&self, event: WebhookEvent) {
        if self.ports.webhooks.is_none() {
            return;
        }
        let Some(batching) = self.settings.webhook_batch else {
            return self.enqueue_webhooks(vec![event]).await;
        };
        let full = {
            let mut waiting = self.waiting_webhooks.lock();
            waiting.push(event);
            (waiting.len() >= batching.max_events.get()).then(|| std::mem::take(&mut *waiting))
        };
        if let Some(batch) = full {
            self.enqueue_webhooks(batch).await;
        }
    }

    /// Queues the webhook events waiting for a batch, as one delivery. The host process
    /// calls it every [`WebhookBatching::wait`], and before it exits.
    pub async fn flush_webhooks(&self) {
        let batch = std::mem::take(&mut *self.waiting_webhooks.lock());
        if !batch.is_empty() {
            self.enqueue_webhooks(batch).await;
        }
    }

    /// One delivery of `events`, queued as one job. Its delivery id names it uniquely
    /// (the host deduplicates by it): an event alone keeps its own (the same event
    /// queued twice is one to the host); a batch is named after its first event and its
    /// size.
    async fn enqueue_webhooks(&self, events: Vec<WebhookEvent>) {
        let Some(first) = events.first() else {
            return;
        };
        let thread = first.thread();
        let now = self.ports.clock.now();
        let id = match events.len() {
            1 => first.delivery_id(now),
            n => format!("batch.{}.{n}", first.delivery_id(now)),
        };
        let body = match WebhookEvent::body_of(&events, now) {
            Ok(body) => body,
            Err(error) => {
                tracing::error!(thread_id = %thread, %error, "could not serialize a webhook");
                return;
            }
        };
        let job = JobKind::Webhook(WebhookDelivery { id, thread, body });
        if let Err(error) = self.ports.jobs.enqueue(job, now).await {
            tracing::warn!(thread_id = %thread, events = events.len(), %error, "could not queue a webhook");
        }
    }

    /// `message_created`, with the participants other than the sender who have no
    /// socket on the thread's channel on any instance now: whom the host notifies.
    pub(super) async fn queue_message_created(
        &self,
        thread: &Thread,
        sender: UserId,
        message: MessageId,
        kind: MessageKind,
        created_at: crate::Timestamp,
    ) {
        if self.ports.webhooks.is_none() {
            return;
        }
        let channel = crate::Channel::private(thread.id).to_string();
        let online: Vec<UserId> = match self
            .ports
            .channels
            .members(&channel, self.ports.clock.now())
            .await
        {
            Ok(members) => members.into_iter().filter_map(|m| m.user).collect(),
            Err(error) => {
                // Unknown: everyone counts as offline (a notification too many).
                tracing::warn!(thread_id = %thread.id, %error, "channel registry unavailable for a webhook");
                Vec::new()
            }
        };
        let mut offline: Vec<UserId> = std::iter::once(thread.client_id)
            .chain(thread.admin_id)
            .chain(thread.staff_ids.iter().copied())
            .filter(|user| *user != sender && !online.contains(user))
            .collect();
        offline.sort_unstable();
        offline.dedup();
        self.queue_webhook(WebhookEvent::MessageCreated {
            thread: OnThread(thread.id),
            request_id: thread.request_id,
            message_id: message,
            sender_id: sender,
            kind,
            created_at,
            offline_user_ids: offline,
        })
        .await;
    }

    pub(super) async fn queue_thread_closed(&self, thread: &Thread) {
        let Some(closed_at) = thread.closed_at else {
            return;
        };
        self.queue_webhook(WebhookEvent::ThreadClosed {
            thread: OnThread(thread.id),
            request_id: thread.request_id,
            closed_at,
        })
        .await;
    }

    pub(super) async fn queue_thread_purged(&self, thread: ThreadId, report: &PurgeReport) {
        if self.ports.webhooks.is_none() {
            return;
        }
        let request = match self.ports.threads.get(thread).await {
            Ok(found) => found.map(|t| t.request_id),
            Err(_) => None,
        };
        self.queue_webhook(WebhookEvent::ThreadPurged {
            thread: OnThread(thread),
            request_id: request,
            media_deleted: report.media_deleted,
            messages_redacted: report.messages_redacted,
            key_destroyed: report.key_destroyed,
            read_markers_dropped: report.read_markers_dropped,
        })
        .await;
    }

    /// Whether webhooks are sent: callers skip the work of building one otherwise.
    pub fn sends_webhooks(&self) -> bool {
        self.ports.webhooks.is_some()
    }

    /// One attempt at a webhook job.
    pub(super) async fn deliver_webhook(&self, delivery: &WebhookDelivery) -> Result<(), String> {
        match &self.ports.webhooks {
            Some(sender) => sender.deliver(delivery).await,
            None => Err("webhooks are not configured (CHAT_WEBHOOK_URL) on this instance".into()),
        }
    }
}
