//! Escalation when unread (SPEC §10): a message some recipient has not read
//! `CHAT_UNREAD_ESCALATION_SECS` after it was posted sends the host `message_unread`,
//! once. Posts arm a per-thread check ([`UnreadChecks`]) due when their message is that
//! old; a check judges every message of the thread that came of age since the last
//! one, and arms the next for the youngest it could not judge yet. A post pays for no
//! job: within an instance, a thread whose check is already armed for its message is
//! not armed again (the [`ArmedThreads`] memo), so arming costs a store write per
//! thread and per delay at most, however many messages it gets.

use super::*;
use crate::Timestamp;
use futures::StreamExt;
use parking_lot::Mutex;
use std::collections::HashMap;

/// How long a worker holds a claimed check before another may take it over.
pub const UNREAD_CHECK_LEASE: Duration = Duration::from_secs(60);

/// Threads one claim takes at most.
pub const UNREAD_CHECKS_AT_ONCE: usize = 100;
/// How soon a check that failed runs again.
const UNREAD_RETRY_AFTER: Duration = Duration::from_secs(5);
/// Checks that run concurrently, each on its own thread.
const UNREAD_CHECKS_CONCURRENTLY: usize = 8;

/// Threads the memo remembers at most; past it, the stale entries go, then all.
const MEMO_CAPACITY: usize = 10_000;

/// What this instance armed: per thread, the time before which a posted message is
/// surely judged by an armed check (its due time, less a margin for the clocks of
/// other instances). Only a cache: forgetting it costs one more arm.
#[derive(Default)]
pub(crate) struct ArmedThreads(Mutex<HashMap<ThreadId, Timestamp>>);

impl ArmedThreads {
    fn covers(&self, thread: ThreadId, created_at: Timestamp) -> bool {
        self.0
            .lock()
            .get(&thread)
            .is_some_and(|until| created_at < *until)
    }

    fn remember(&self, thread: ThreadId, until: Timestamp, now: Timestamp) {
        let mut armed = self.0.lock();
        if armed.len() >= MEMO_CAPACITY {
            armed.retain(|_, until| *until > now);
            if armed.len() >= MEMO_CAPACITY {
                armed.clear();
            }
        }
        armed.insert(thread, until);
    }
}

/// What one round of [`ChatService::run_unread_checks`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnreadReport {
    /// Threads checked.
    pub threads: usize,
    /// `message_unread` webhooks queued.
    pub escalated: usize,
}

impl ChatService {
    /// Whether unread escalation runs: a delay is set and the host takes webhooks.
    fn unread_escalation(&self) -> Option<Duration> {
        self.ports
            .webhooks
            .as_ref()
            .and(self.settings.unread_escalation)
    }

    /// After a post is stored: makes sure a check of its thread is due when the message
    /// is `CHAT_UNREAD_ESCALATION_SECS` old, unless this instance knows one is. A store
    /// that is down is logged; the post stands (like a webhook that cannot be queued).
    pub(super) async fn arm_unread_check(&self, thread: ThreadId, created_at: Timestamp) {
        let Some(delay) = self.unread_escalation() else {
            return;
        };
        if self.unread_armed.covers(thread, created_at) {
            return;
        }
        let due = created_at + chrono_duration(delay);
        if let Err(error) = self.ports.unread.arm(thread, due).await {
            tracing::warn!(thread_id = %thread, %error, "could not arm the unread check");
            return;
        }
        // Another instance's clock may run a little ahead of ours: leave it a margin.
        let margin = (delay / 2).min(Duration::from_secs(2));
        self.unread_armed.remember(
            thread,
            due - chrono_duration(margin),
            self.ports.clock.now(),
        );
    }

    /// Claims the checks due now (at most [`UNREAD_CHECKS_AT_ONCE`]) and runs them. The
    /// background task calls it in a loop; an error is the store's.
    pub async fn run_unread_checks(&self) -> Result<UnreadReport, ChatError> {
        let Some(delay) = self.unread_escalation() else {
            return Ok(UnreadReport::default());
        };
        let now = self.ports.clock.now();
        let checks = self
            .ports
            .unread
            .claim(now, UNREAD_CHECK_LEASE, UNREAD_CHECKS_AT_ONCE)
            .await?;
        let mut report = UnreadReport {
            threads: checks.len(),
            ..UnreadReport::default()
        };
        // A few threads at a time: each check waits on its stores most of its time.
        let runs = checks.into_iter().map(|check| async move {
            let outcome = self.check_unread(&check, delay, now).await;
            (check, outcome)
        });
        let mut running = futures::stream::iter(runs).buffer_unordered(UNREAD_CHECKS_CONCURRENTLY);
        while let Some((check, outcome)) = running.next().await {
            match outcome {
                Ok(escalated) => report.escalated += escalated,
                Err(error) => {
                    tracing::warn!(thread_id = %check.thread, %error, "unread check failed; it runs again shortly");
                    self.retry_unread_check(&check, now).await;
                }
            }
        }
        Ok(report)
    }

    /// A check that failed (a busy or briefly unreachable store) is released, due
    /// again in [`UNREAD_RETRY_AFTER`], its mark unchanged; when even that fails, it is
    /// held until its lease runs out, then claimed again.
    async fn retry_unread_check(&self, check: &UnreadCheck, now: Timestamp) {
        // No message predates the epoch: a mark there judged nothing.
        let mark = check
            .checked_through
            .unwrap_or(chrono::DateTime::UNIX_EPOCH);
        let again = now + chrono_duration(UNREAD_RETRY_AFTER);
        if let Err(error) = self.ports.unread.finish(check, mark, Some(again)).await {
            tracing::warn!(thread_id = %check.thread, %error, "could not release the unread check; it runs after its lease");
        }
    }

    /// One thread's check at `now`: every kept message created after the last check's
    /// mark and at least `delay` ago whose recipients have not all read it sends
    /// `message_unread`; the next check is armed for the oldest younger message.
    async fn check_unread(
        &self,
        check: &UnreadCheck,
        delay: Duration,
        now: Timestamp,
    ) -> Result<usize, ChatError> {
        let thread = match self.ports.threads.get(check.thread).await? {
            Some(thread) if !thread.is_closed() => thread,
            // Closed or gone: nothing of it escalates any more.
            _ => {
                self.ports.unread.forget(check.thread).await?;
                return Ok(0);
            }
        };
        let of_age = now - chrono_duration(delay);
        let cut = self.retention_of(&thread).expired_before(now);
        // Newest first, page by page, down to the last check's mark.
        let mut judged = Vec::new();
        let mut oldest_young = None;
        let mut before = None;
        'pages: loop {
            let page = self
                .ports
                .messages
                .page(thread.id, before, PageRequest::MAX_LIMIT, cut)
                .await?;
            for message in page.messages.iter().rev() {
                if check
                    .checked_through
                    .is_some_and(|t| message.created_at <= t)
                {
                    break 'pages;
                }
                if message.created_at > of_age {
                    oldest_young = Some(message.created_at);
                } else if message.content.is_some() {
                    judged.push((message.id, message.sender_id, message.created_at));
                }
            }
            before = page.messages.first().map(|m| m.id);
            if !page.has_more || before.is_none() {
                break;
            }
        }
        let mut escalated = 0;
        if !judged.is_empty() {
            let reads: HashMap<UserId, MessageId> = self
                .ports
                .threads
                .reads(thread.id)
                .await?
                .into_iter()
                .collect();
            let participants = thread.participants();
            for (id, sender, created_at) in judged.into_iter().rev() {
                let mut unread: Vec<UserId> = participants
                    .iter()
                    .filter(|user| **user != sender)
                    .filter(|user| reads.get(user).is_none_or(|marker| *marker < id))
                    .copied()
                    .collect();
                if unread.is_empty() {
                    continue;
                }
                unread.sort_unstable();
                self.queue_message_unread(&thread, id, sender, created_at, unread)
                    .await;
                escalated += 1;
            }
        }
        let next = oldest_young.map(|created_at| created_at + chrono_duration(delay));
        self.ports.unread.finish(check, of_age, next).await?;
        Ok(escalated)
    }

    async fn queue_message_unread(
        &self,
        thread: &Thread,
        message: MessageId,
        sender: UserId,
        created_at: Timestamp,
        unread_user_ids: Vec<UserId>,
    ) {
        self.queue_webhook(crate::webhook::WebhookEvent::MessageUnread {
            thread: crate::webhook::OnThread(thread.id),
            request_id: thread.request_id,
            message_id: message,
            sender_id: sender,
            created_at,
            unread_user_ids,
        })
        .await;
    }
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}
