use async_trait::async_trait;
use chat_core::ports::{ClaimedJob, ExpiredLeases, JobKind, JobQueue, StoreResult};
use chat_core::{JobId, StoreError, Timestamp};
use parking_lot::Mutex;
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
struct Job {
    kind: JobKind,
    attempts: u32,
    run_at: Timestamp,
    /// Running until this instant; due again after it.
    leased_until: Option<Timestamp>,
    failed: bool,
    last_error: Option<String>,
}

#[derive(Debug, Default)]
struct Jobs {
    last_id: i64,
    by_id: BTreeMap<JobId, Job>,
}

/// Jobs in memory: they do not survive the process, like everything else in the
/// embedded default.
#[derive(Debug, Default)]
pub struct MemoryJobQueue(Mutex<Jobs>);

impl MemoryJobQueue {
    /// The last error of a job, for tests and diagnostics.
    pub fn last_error(&self, id: JobId) -> Option<String> {
        self.0
            .lock()
            .by_id
            .get(&id)
            .and_then(|j| j.last_error.clone())
    }
}

#[async_trait]
impl JobQueue for MemoryJobQueue {
    async fn enqueue(&self, kind: JobKind, run_at: Timestamp) -> StoreResult<JobId> {
        let mut jobs = self.0.lock();
        jobs.last_id += 1;
        let id = JobId::new(jobs.last_id)
            .ok_or_else(|| StoreError::Corrupt("job id overflow".into()))?;
        jobs.by_id.insert(
            id,
            Job {
                kind,
                attempts: 0,
                run_at,
                leased_until: None,
                failed: false,
                last_error: None,
            },
        );
        Ok(id)
    }

    async fn claim(
        &self,
        now: Timestamp,
        lease: std::time::Duration,
    ) -> StoreResult<Option<ClaimedJob>> {
        let mut jobs = self.0.lock();
        let due = jobs
            .by_id
            .iter_mut()
            .filter(|(_, j)| {
                !j.failed && j.run_at <= now && j.leased_until.is_none_or(|until| until <= now)
            })
            .min_by_key(|(id, j)| (j.run_at, **id));
        Ok(due.map(|(id, job)| {
            job.attempts += 1;
            job.leased_until =
                Some(now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX));
            ClaimedJob {
                id: *id,
                kind: job.kind.clone(),
                attempt: job.attempts,
            }
        }))
    }

    async fn complete(&self, id: JobId) -> StoreResult<()> {
        self.0.lock().by_id.remove(&id);
        Ok(())
    }

    async fn fail(&self, id: JobId, error: &str, run_at: Option<Timestamp>) -> StoreResult<()> {
        let mut jobs = self.0.lock();
        if let Some(job) = jobs.by_id.get_mut(&id) {
            job.leased_until = None;
            job.last_error = Some(error.to_owned());
            match run_at {
                Some(at) => job.run_at = at,
                None => job.failed = true,
            }
        }
        Ok(())
    }

    async fn failed_count(&self) -> StoreResult<u64> {
        Ok(self.0.lock().by_id.values().filter(|j| j.failed).count() as u64)
    }

    async fn expire_leases(&self, now: Timestamp, max_attempts: u32) -> StoreResult<ExpiredLeases> {
        let mut jobs = self.0.lock();
        let mut expired = ExpiredLeases::default();
        for job in jobs.by_id.values_mut() {
            if job.failed || job.leased_until.is_none_or(|until| until > now) {
                continue;
            }
            job.leased_until = None;
            job.last_error = Some(chat_core::jobs::LEASE_EXPIRED.to_owned());
            if job.attempts >= max_attempts {
                job.failed = true;
                expired.failed += 1;
            } else {
                job.run_at = now;
                expired.requeued += 1;
            }
        }
        Ok(expired)
    }
}
