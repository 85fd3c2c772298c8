//! The host's webhooks (SPEC §9.1): queued as durable jobs when a message is stored, a
//! thread closed or purged, and delivered (with retries) by the job runner, so a host
//! that is slow or down never slows or fails the use case. Ids and times only.

use super::*;
use serde_json::{json, Value};

/// The real-time channel of a thread (SPEC §6), as the channel registry names it.
fn thread_channel(thread: ThreadId) -> String {
    crate::Channel::private(thread).to_string()
}

impl ChatService {
    /// Queues one webhook event, `delivery` naming it uniquely (the host deduplicates
    /// by it, so the same event queued twice is one to the host). A queue that is down
    /// loses the webhook, logged: the use case that caused it stands.
    pub(super) async fn queue_webhook(&self, thread: ThreadId, delivery: String, event: Value) {
        if self.ports.webhooks.is_none() {
            return;
        }
        let now = self.ports.clock.now();
        let body = json!({ "time_ms": now.timestamp_millis(), "events": [event] }).to_string();
        let job = JobKind::Webhook(WebhookDelivery {
            id: delivery,
            thread,
            body,
        });
        if let Err(error) = self.ports.jobs.enqueue(job, now).await {
            tracing::warn!(thread_id = %thread, %error, "could not queue a webhook");
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
        let channel = thread_channel(thread.id);
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
        let mut offline: Vec<i64> = std::iter::once(thread.client_id)
            .chain(thread.admin_id)
            .chain(thread.staff_ids.iter().copied())
            .filter(|user| *user != sender && !online.contains(user))
            .map(UserId::get)
            .collect();
        offline.sort_unstable();
        offline.dedup();
        let event = json!({
            "name": "message_created",
            "channel": channel,
            "thread_id": thread.id.get(),
            "request_id": thread.request_id.get(),
            "message_id": message.get(),
            "sender_id": sender.get(),
            "type": kind.as_str(),
            "created_at": rfc3339(created_at),
            "offline_user_ids": offline,
        });
        self.queue_webhook(
            thread.id,
            format!(
                "message_created.{thread_id}.{message}",
                thread_id = thread.id
            ),
            event,
        )
        .await;
    }

    pub(super) async fn queue_thread_closed(&self, thread: &Thread) {
        let Some(closed_at) = thread.closed_at else {
            return;
        };
        let event = json!({
            "name": "thread_closed",
            "channel": thread_channel(thread.id),
            "thread_id": thread.id.get(),
            "request_id": thread.request_id.get(),
            "closed_at": rfc3339(closed_at),
        });
        self.queue_webhook(thread.id, format!("thread_closed.{}", thread.id), event)
            .await;
    }

    /// `thread_recorded` (with how many messages went) or `thread_record_failed`
    /// (SPEC §10): ids and counts only.
    pub(super) async fn queue_record_webhook(
        &self,
        thread: ThreadId,
        request: RequestId,
        name: &'static str,
        messages: Option<usize>,
    ) {
        let mut event = json!({
            "name": name,
            "channel": thread_channel(thread),
            "thread_id": thread.get(),
            "request_id": request.get(),
        });
        if let Some(messages) = messages {
            event["messages"] = json!(messages);
        }
        let at = self.ports.clock.now().timestamp_micros();
        self.queue_webhook(thread, format!("{name}.{thread}.{at}"), event)
            .await;
    }

    pub(super) async fn queue_thread_purged(&self, thread: ThreadId, report: &PurgeReport) {
        if self.ports.webhooks.is_none() {
            return;
        }
        let request = match self.ports.threads.get(thread).await {
            Ok(found) => found.map(|t| t.request_id.get()),
            Err(_) => None,
        };
        let now = self.ports.clock.now();
        let event = json!({
            "name": "thread_purged",
            "channel": thread_channel(thread),
            "thread_id": thread.get(),
            "request_id": request,
            "media_deleted": report.media_deleted,
            "messages_redacted": report.messages_redacted,
            "key_destroyed": report.key_destroyed,
            "read_markers_dropped": report.read_markers_dropped,
        });
        let delivery = format!("thread_purged.{thread}.{}", now.timestamp_micros());
        self.queue_webhook(thread, delivery, event).await;
    }

    /// Whether webhooks are sent: callers skip the work of building one otherwise.
    pub fn sends_webhooks(&self) -> bool {
        self.ports.webhooks.is_some()
    }

    /// Pusher's occupancy and presence webhooks (SPEC §9.1), which the real-time
    /// adapter sees happen: `channel_occupied` / `channel_vacated` of a thread's
    /// channel (no user) and `member_added` / `member_removed` of its presence one.
    pub async fn channel_webhook(
        &self,
        thread: ThreadId,
        name: &'static str,
        channel: String,
        user: Option<UserId>,
    ) {
        if self.ports.webhooks.is_none() {
            return;
        }
        let mut event = json!({ "name": name, "channel": channel });
        if let Some(user) = user {
            event["user_id"] = json!(user.to_string());
        }
        let at = self.ports.clock.now().timestamp_micros();
        let who = user.map(|u| u.to_string()).unwrap_or_default();
        let delivery = format!("{name}.{channel}.{who}.{at}");
        self.queue_webhook(thread, delivery, event).await;
    }

    /// One attempt at a webhook job.
    pub(super) async fn deliver_webhook(&self, delivery: &WebhookDelivery) -> Result<(), String> {
        match &self.ports.webhooks {
            Some(sender) => sender.deliver(delivery).await,
            None => Err("webhooks are not configured (CHAT_WEBHOOK_URL) on this instance".into()),
        }
    }
}

pub(super) fn rfc3339(at: crate::Timestamp) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
