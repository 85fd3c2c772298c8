//! Background work: the job runner (the purge after a close), the sweep on its lease
//! locks, the webhook batches, and flushing the audit trail before a process exits.

use super::*;

/// How long a process that exits waits for its audit events to be stored.
const AUDIT_FLUSH_DEADLINE: Duration = Duration::from_secs(10);

/// Waits (a bounded time) until the audit events recorded so far are stored: before
/// the process exits. Whatever misses the deadline is in the `chat_audit` log.
pub async fn flush_audit(service: &ChatService) {
    if tokio::time::timeout(AUDIT_FLUSH_DEADLINE, service.flush_audit())
        .await
        .is_err()
    {
        tracing::warn!("audit events not all stored before exit; they are in the log");
    }
}

/// Held by the instance whose sweep is due; never released, so that, whichever instance
/// ticks, nobody sweeps again until (nine tenths of) the interval has passed.
const SWEEP_DUE_LOCK: &str = "chat:sweep:due";
/// Held while a sweep runs, by `serve` and `cleanup` alike, so two never overlap. Its
/// lease bounds how long a crashed sweeper blocks the next one.
const SWEEP_RUNNING_LOCK: &str = "chat:sweep:running";
const SWEEP_RUNNING_LEASE: Duration = Duration::from_secs(15 * 60);

/// Why a sweep did not run.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("another instance is sweeping right now")]
    Busy,
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// Runs one sweep unless another is running anywhere, and logs what it removed.
pub async fn sweep_once(
    service: &ChatService,
    lock: &dyn LeaseLock,
) -> Result<SweepReport, SweepError> {
    let token = lock
        .try_acquire(SWEEP_RUNNING_LOCK, SWEEP_RUNNING_LEASE)
        .await
        .map_err(|e| anyhow::anyhow!("the sweep lock is unavailable: {e}"))?
        .ok_or(SweepError::Busy)?;
    let started = std::time::Instant::now();
    let result = service.sweep().await;
    if let Err(error) = lock.release(SWEEP_RUNNING_LOCK, &token).await {
        tracing::warn!(%error, "could not release the sweep lock; it lapses by itself");
    }
    let report = result.map_err(|e| {
        metrics::counter!(names::JOBS, "job" => "sweep", "outcome" => "failed").increment(1);
        anyhow::anyhow!("sweep failed: {e}")
    })?;
    let outcome = if report.purge_failures == 0 {
        "done"
    } else {
        "partial"
    };
    metrics::counter!(names::JOBS, "job" => "sweep", "outcome" => outcome).increment(1);
    metrics::gauge!(names::JOBS_FAILED).set(report.failed_jobs as f64);
    tracing::info!(
        job = "sweep",
        outcome,
        expired_messages = report.expired_messages,
        closed_threads = report.closed_threads,
        purge_failures = report.purge_failures,
        media_deleted = report.media_deleted,
        keys_destroyed = report.keys_destroyed,
        messages_redacted = report.messages_redacted,
        stale_jobs_requeued = report.stale_jobs.requeued,
        stale_jobs_failed = report.stale_jobs.failed,
        failed_jobs = report.failed_jobs,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "sweep finished"
    );
    Ok(report)
}

/// Every `every`, the instance that takes the due lock sweeps (the first tick is at
/// start). Errors are logged; the next interval tries again.
pub(crate) async fn run_sweeps(service: ChatService, lock: Arc<dyn LeaseLock>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match lock.try_acquire(SWEEP_DUE_LOCK, every * 9 / 10).await {
            Ok(Some(_due)) => match sweep_once(&service, lock.as_ref()).await {
                Ok(_) => {}
                Err(SweepError::Busy) => tracing::info!("sweep skipped: one is still running"),
                Err(SweepError::Failed(error)) => tracing::warn!("{error:#}"),
            },
            Ok(None) => tracing::debug!("sweep not due here: another instance has run it"),
            Err(error) => tracing::warn!(%error, "the sweep lock is unavailable"),
        }
    }
}

/// Runs the unread checks that are due (SPEC §10), polling once a second, at once
/// again after a full claim. A check interrupted by a stop is held until its lease
/// runs out, then another instance runs it.
pub(crate) async fn run_unread_checks(service: ChatService) {
    loop {
        let started = std::time::Instant::now();
        let full = match service.run_unread_checks().await {
            Ok(report) => {
                if report.threads > 0 {
                    metrics::counter!(names::JOBS, "job" => "unread_check", "outcome" => "done")
                        .increment(report.threads as u64);
                    metrics::counter!(names::MESSAGES_UNREAD_ESCALATED)
                        .increment(report.escalated as u64);
                    tracing::debug!(
                        job = "unread_check",
                        threads = report.threads,
                        escalated = report.escalated,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "unread checks run"
                    );
                }
                report.threads >= chat_core::service::UNREAD_CHECKS_AT_ONCE
            }
            Err(error) => {
                chat_http::ops::count_error(&error);
                tracing::warn!(%error, "the unread checks are unavailable");
                false
            }
        };
        if !full {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// Queues the webhook events waiting for a batch every `every`
/// (`CHAT_WEBHOOK_BATCH_MS`); a batch that fills up leaves before.
pub(crate) async fn flush_webhook_batches(service: ChatService, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        service.flush_webhooks().await;
    }
}

/// Jobs one instance runs at once: a webhook waits up to 5 s on its host, and a host
/// that hangs must not hold up the others, nor the purges.
const JOBS_AT_ONCE: usize = 16;

/// The background job runner: up to [`JOBS_AT_ONCE`] jobs at a time, claimed back to
/// back while there is work and a free slot, else polled once a second; and, when the
/// instance drains, what it had claimed and not finished is given back.
pub(crate) struct JobRunner {
    stop: tokio::sync::watch::Sender<bool>,
    running: Arc<parking_lot::Mutex<HashMap<JobId, tokio::task::AbortHandle>>>,
    claimer: tokio::task::JoinHandle<()>,
}

impl JobRunner {
    pub(crate) fn start(service: ChatService) -> Self {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let running: Arc<parking_lot::Mutex<HashMap<JobId, tokio::task::AbortHandle>>> =
            Arc::default();
        let tracked = running.clone();
        let claimer = tokio::spawn(async move {
            let slots = Arc::new(tokio::sync::Semaphore::new(JOBS_AT_ONCE));
            while !*stopped.borrow() {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                match service.next_job().await {
                    Ok(Some(job)) => {
                        let id = job.id;
                        let runner = service.clone();
                        let done = tracked.clone();
                        // Registered before it can finish, so it also leaves the map.
                        let mut map = tracked.lock();
                        let task = tokio::spawn(async move {
                            let _slot = slot;
                            match runner.run_job(job).await {
                                Ok(outcome) => log_outcome(&outcome),
                                Err(error) => {
                                    chat_http::ops::count_error(&error);
                                    tracing::warn!(%error, "the job queue is unavailable");
                                }
                            }
                            done.lock().remove(&id);
                        });
                        map.insert(id, task.abort_handle());
                        continue;
                    }
                    Ok(None) => {}
                    Err(error) => {
                        chat_http::ops::count_error(&error);
                        tracing::warn!(%error, "the job queue is unavailable");
                    }
                }
                drop(slot);
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stopped.changed() => {}
                }
            }
        });
        Self {
            stop,
            running,
            claimer,
        }
    }

    /// Claims nothing more, lets the jobs in hand run until `deadline`, then gives
    /// back those still running, for another instance to run at once.
    pub(crate) async fn drain(self, service: &ChatService, deadline: tokio::time::Instant) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout_at(deadline, self.claimer).await;
        while !self.running.lock().is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let unfinished: Vec<(JobId, tokio::task::AbortHandle)> =
            self.running.lock().drain().collect();
        for (id, task) in unfinished {
            task.abort();
            match service.release_job(id).await {
                Ok(()) => {
                    tracing::info!(job_id = %id, "job given back: the instance is shutting down")
                }
                Err(error) => {
                    tracing::warn!(job_id = %id, %error, "job not given back; its lease runs out")
                }
            }
        }
    }

    /// Stops at once (the process exits without a drain).
    pub(crate) fn abort(self) {
        self.claimer.abort();
        for (_, task) in self.running.lock().drain() {
            task.abort();
        }
    }
}

fn log_outcome(outcome: &JobOutcome) {
    let (job, label) = match outcome {
        JobOutcome::Done { .. } => ("purge_thread", "done"),
        JobOutcome::Recorded { .. } => ("record_thread", "done"),
        JobOutcome::Delivered { .. } => ("webhook", "done"),
        JobOutcome::Retrying { job, .. } => (*job, "retrying"),
        JobOutcome::Failed { job, .. } => (*job, "failed"),
    };
    metrics::counter!(names::JOBS, "job" => job, "outcome" => label).increment(1);
    match outcome {
        JobOutcome::Done {
            thread,
            attempt,
            report,
        } => tracing::info!(
            job, thread_id = %thread, attempt, outcome = "done",
            media_deleted = report.media_deleted, messages_redacted = report.messages_redacted,
            key_destroyed = report.key_destroyed, "job finished"
        ),
        JobOutcome::Recorded {
            thread,
            attempt,
            messages,
        } => tracing::info!(
            job, thread_id = %thread, attempt, outcome = "done", messages,
            "transcript recorded"
        ),
        JobOutcome::Delivered {
            thread,
            attempt,
            delivery,
        } => tracing::info!(
            job, thread_id = %thread, attempt, outcome = "done", delivery = %delivery,
            "webhook delivered"
        ),
        JobOutcome::Retrying {
            thread,
            attempt,
            at,
            error,
            ..
        } => tracing::warn!(
            job, thread_id = %thread, attempt, outcome = "retrying",
            retry_at = %at, %error, "job failed, will retry"
        ),
        JobOutcome::Failed {
            thread,
            attempt,
            error,
            ..
        } => tracing::error!(
            job, thread_id = %thread, attempt, outcome = "failed",
            %error, "job failed for good"
        ),
    }
}
