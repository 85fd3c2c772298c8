//! The service's own work: the purge after a close, the job runner, the sweep, the
//! master key rotation, and flushing the audit trail.

use super::*;

/// What a purge removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeReport {
    pub media_deleted: u64,
    pub messages_redacted: u64,
    pub key_destroyed: bool,
    /// The thread's read markers, dropped with it.
    pub read_markers_dropped: u64,
}

/// What a sweep removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Messages past their TTL, removed from the message store.
    pub expired_messages: u64,
    /// Closed threads whose purge was run again.
    pub closed_threads: u64,
    /// Of those, purges that failed (logged; the next sweep tries again).
    pub purge_failures: u64,
    /// Objects of closed threads that were still there.
    pub media_deleted: u64,
    /// Thread keys of closed threads that were still there.
    pub keys_destroyed: u64,
    /// Messages of closed threads whose ciphertext was still there.
    pub messages_redacted: u64,
    /// Jobs whose worker died, made due again or, out of attempts, failed.
    pub stale_jobs: ExpiredLeases,
    /// Jobs kept as failed for good, all told (an operator looks at them: their purge
    /// is caught up by the sweep, but their cause is worth knowing).
    pub failed_jobs: u64,
}

/// What a master key rotation did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RotationReport {
    /// Thread keys now wrapped under the active master key.
    pub rewrapped: u64,
    /// Keys changed or destroyed by someone else meanwhile (left as they are).
    pub skipped: u64,
}

/// Closed threads (or keys) handled per store call by the sweep and the rotation.
const BATCH: u32 = 500;

/// What [`ChatService::run_next_job`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum JobOutcome {
    Done {
        thread: ThreadId,
        attempt: u32,
        report: PurgeReport,
    },
    /// A thread's transcript the FHIR server took: `messages` Communications.
    Recorded {
        thread: ThreadId,
        attempt: u32,
        messages: usize,
    },
    /// A webhook the host took.
    Delivered {
        thread: ThreadId,
        attempt: u32,
        delivery: String,
    },
    Retrying {
        /// `purge_thread`, `record_thread` or `webhook`.
        job: &'static str,
        thread: ThreadId,
        attempt: u32,
        at: crate::model::Timestamp,
        error: String,
    },
    Failed {
        job: &'static str,
        thread: ThreadId,
        attempt: u32,
        error: String,
    },
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

impl ChatService {
    /// The master key version that wraps new thread keys (the first of
    /// `CHAT_MASTER_KEYS`), what a rotation rewraps every key under.
    pub fn active_key_version(&self) -> &str {
        self.ports.key_ring.active_version()
    }

    /// Waits until the audit sink has stored every event so far: a process calls it
    /// before it exits (under a deadline of its own; the events are in the log anyway).
    pub async fn flush_audit(&self) {
        if let Some(sink) = &self.ports.audit {
            sink.flush().await;
        }
    }

    /// The purge of a closed thread: its media, and with redaction on its data key and
    /// message ciphertext. Idempotent, so a retried or interrupted run converges.
    pub async fn purge_thread(&self, thread: ThreadId) -> Result<PurgeReport, ChatError> {
        let result = async {
            let mut report = PurgeReport::default();
            // Under legal hold, or while its transcript is on its way to the medical
            // record, the purge waits: lifting the hold, or the record, queues it again.
            if self
                .ports
                .threads
                .get(thread)
                .await?
                .is_some_and(|t| t.keeps_everything())
            {
                tracing::info!(thread_id = %thread, "purge skipped: the thread keeps everything for now");
                return Ok(report);
            }
            if let Some(media) = &self.ports.media {
                report.media_deleted = media
                    .delete_prefix(&MediaPath::thread_prefix(thread))
                    .await?;
            }
            report.read_markers_dropped = self.ports.threads.forget_reads(thread).await?;
            self.ports.unread.forget(thread).await?;
            if self.settings.redact_on_close {
                // Key first: once it is gone nothing left can be read, even if the redaction
                // below fails and has to be retried.
                self.forget_key(thread);
                report.key_destroyed = self.ports.keys.destroy(thread).await?;
                report.messages_redacted = self.ports.messages.redact_thread(thread).await?;
            }
            Ok(report)
        }
        .await;
        // The sweep purges every closed thread again; a run that removed nothing is not
        // an access to anything, and would add a row per closed thread per sweep.
        let removed = |r: &PurgeReport| {
            r.media_deleted > 0
                || r.key_destroyed
                || r.messages_redacted > 0
                || r.read_markers_dropped > 0
        };
        if result.as_ref().map_or(true, removed) {
            self.audit(self.audit_event(None, AuditAction::Purge, Some(thread), &result));
        }
        if let Some(report) = result.as_ref().ok().filter(|r| removed(r)) {
            self.queue_thread_purged(thread, report).await;
        }
        result
    }

    /// Runs the next due background job, if any: claims it, runs it, and completes it or
    /// schedules its retry. Returns what happened, for the caller to log and pace itself.
    pub async fn run_next_job(&self) -> Result<Option<JobOutcome>, ChatError> {
        match self.next_job().await? {
            Some(job) => Ok(Some(self.run_job(job).await?)),
            None => Ok(None),
        }
    }

    /// Claims the next due background job, if any, for [`Self::run_job`]: a runner
    /// that runs several at once (webhooks wait on the host) claims, then runs.
    pub async fn next_job(&self) -> Result<Option<ClaimedJob>, ChatError> {
        let now = self.ports.clock.now();
        Ok(self.ports.jobs.claim(now, self.settings.job_lease).await?)
    }

    /// Gives back a job this instance claimed and will not finish (it is shutting
    /// down): due again at once, for another instance.
    pub async fn release_job(&self, job: crate::ids::JobId) -> Result<(), ChatError> {
        let now = self.ports.clock.now();
        Ok(self
            .ports
            .jobs
            .fail(
                job,
                "released: its instance shut down before finishing it",
                Some(now),
            )
            .await?)
    }

    /// Runs a claimed job, and completes it or schedules its retry.
    pub async fn run_job(&self, job: ClaimedJob) -> Result<JobOutcome, ChatError> {
        let now = self.ports.clock.now();
        let (name, thread, result, retry) = self.attempt_job(&job).await;
        let outcome = match result {
            Ok(done) => {
                self.ports.jobs.complete(job.id).await?;
                done
            }
            Err(error) => {
                let retry_at = retry
                    .and_then(|d| chrono::Duration::from_std(d).ok())
                    .map(|d| now + d);
                self.ports.jobs.fail(job.id, &error, retry_at).await?;
                match retry_at {
                    Some(at) => JobOutcome::Retrying {
                        job: name,
                        thread,
                        attempt: job.attempt,
                        at,
                        error,
                    },
                    None => JobOutcome::Failed {
                        job: name,
                        thread,
                        attempt: job.attempt,
                        error,
                    },
                }
            }
        };
        // A transcript that failed every attempt: the thread keeps its content, and
        // the host hears of it (SPEC §10).
        if let (JobKind::RecordThread(thread), JobOutcome::Failed { .. }) = (&job.kind, &outcome) {
            self.record_failed(*thread).await;
        }
        Ok(outcome)
    }

    /// One attempt at a job: its name, its thread, what came of it (the error names a
    /// store, crypto or host failure, never content), and when it may run again after
    /// a failure (`None`: never).
    async fn attempt_job(
        &self,
        job: &ClaimedJob,
    ) -> (
        &'static str,
        ThreadId,
        Result<JobOutcome, String>,
        Option<Duration>,
    ) {
        let attempt = job.attempt;
        match &job.kind {
            JobKind::PurgeThread(thread) => {
                let result = match self.purge_thread(*thread).await {
                    Ok(report) => Ok(JobOutcome::Done {
                        thread: *thread,
                        attempt,
                        report,
                    }),
                    Err(error) => Err(error_chain(&error)),
                };
                let retry = crate::jobs::retry_delay(attempt);
                ("purge_thread", *thread, result, retry)
            }
            JobKind::RecordThread(thread) => {
                let result =
                    self.record_thread(*thread)
                        .await
                        .map(|messages| JobOutcome::Recorded {
                            thread: *thread,
                            attempt,
                            messages,
                        });
                let retry = crate::jobs::retry_delay(attempt);
                ("record_thread", *thread, result, retry)
            }
            JobKind::Webhook(delivery) => {
                let result = self
                    .deliver_webhook(delivery)
                    .await
                    .map(|()| JobOutcome::Delivered {
                        thread: delivery.thread,
                        attempt,
                        delivery: delivery.id.clone(),
                    });
                let retry = crate::jobs::webhook_retry_delay(attempt);
                ("webhook", delivery.thread, result, retry)
            }
        }
    }

    /// The periodic clean-up (SPEC §5): removes expired messages, runs the purge of
    /// every closed thread again (so media, keys or ciphertext that a failed or lost
    /// purge job left behind go too; a purge that finds nothing costs a listing), and
    /// settles jobs whose worker died. Callers make sure only one instance runs it at a
    /// time (a lease lock). A thread whose purge fails is logged and counted, and the
    /// sweep goes on with the others.
    pub async fn sweep(&self) -> Result<SweepReport, ChatError> {
        let now = self.ports.clock.now();
        let mut report = SweepReport::default();
        if let Some(cut) = self.settings.retention.expired_before(now) {
            // A thread under legal hold keeps everything (SPEC §10).
            let held = self.ports.threads.held_threads().await?;
            report.expired_messages = self.ports.messages.delete_expired(cut, &held).await?;
        }
        let mut after = None;
        loop {
            let closed = self.ports.threads.closed_threads(after, BATCH).await?;
            for &thread in &closed {
                report.closed_threads += 1;
                match self.purge_thread(thread).await {
                    Ok(purged) => {
                        report.media_deleted += purged.media_deleted;
                        report.keys_destroyed += u64::from(purged.key_destroyed);
                        report.messages_redacted += purged.messages_redacted;
                    }
                    Err(error) => {
                        report.purge_failures += 1;
                        let error = error_chain(&error);
                        tracing::warn!(thread_id = %thread, %error, "sweep: purge failed");
                    }
                }
            }
            match closed.last() {
                Some(&last) if closed.len() == BATCH as usize => after = Some(last),
                _ => break,
            }
        }
        report.stale_jobs = self
            .ports
            .jobs
            .expire_leases(now, crate::jobs::MAX_ATTEMPTS)
            .await?;
        report.failed_jobs = self.ports.jobs.failed_count().await?;
        Ok(report)
    }

    /// Rewraps every thread key that is not under the active master key (the first of
    /// `CHAT_MASTER_KEYS`), so that the older keys can then leave the ring; with a key
    /// service, every thread key (re-encrypted under the key's current material, or
    /// moved to a new key id). Message
    /// ciphertext is untouched: only the small wrapped data keys change. Safe to run
    /// while serving, and again after an interruption.
    pub async fn rotate_master_key(&self) -> Result<RotationReport, ChatError> {
        // A key service rotates its material behind one key id: every key then goes
        // (no version is empty), else those under another version.
        let other_than = match self.ports.key_ring.rotation_rewraps_all() {
            true => String::new(),
            false => self.ports.key_ring.active_version().to_owned(),
        };
        let mut report = RotationReport::default();
        let mut after = None;
        loop {
            let batch = self
                .ports
                .keys
                .wrapped_under_other_than(&other_than, after, BATCH)
                .await?;
            for (thread, old) in &batch {
                let new = self.ports.key_ring.rewrap(*thread, old).await?;
                if self.ports.keys.replace(*thread, old, new).await? {
                    report.rewrapped += 1;
                } else {
                    report.skipped += 1;
                }
            }
            match batch.last() {
                Some((last, _)) if batch.len() == BATCH as usize => after = Some(*last),
                _ => break,
            }
        }
        Ok(report)
    }
}
