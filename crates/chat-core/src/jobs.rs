//! The retry schedule of background jobs (SPEC §5): at most 5 attempts, the next one
//! 5 s, 30 s, 60 s and 120 s after a failure; a fifth failure (300 s would be the next
//! delay in the seed's schedule) leaves the job failed for good, for the sweep to catch.

use std::time::Duration;

pub const MAX_ATTEMPTS: u32 = 5;

/// The delays after failed attempts 1, 2, 3, 4, 5.
pub const RETRY_DELAYS: [Duration; 5] = [
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(60),
    Duration::from_secs(120),
    Duration::from_secs(300),
];

/// Attempts of a webhook (SPEC §9.1): the first and five retries, after the five
/// delays, then kept as failed.
pub const WEBHOOK_ATTEMPTS: u32 = 6;

/// When to try a webhook again after `attempt` (1-based) failed, or `None` to give up.
pub fn webhook_retry_delay(attempt: u32) -> Option<Duration> {
    if attempt >= WEBHOOK_ATTEMPTS {
        return None;
    }
    RETRY_DELAYS.get(attempt.checked_sub(1)? as usize).copied()
}

/// How long a claimed job may run before another worker may take it over, unless the
/// settings say otherwise (`ChatSettings::job_lease`). A purge is a few store calls, so
/// this is generous; it is also how long a job interrupted by a crash waits to resume.
pub const JOB_LEASE: Duration = Duration::from_secs(120);

/// The error kept with a job whose worker never came back.
pub const LEASE_EXPIRED: &str = "the worker's lease expired before the job finished";

/// When to retry after `attempt` (1-based) failed, or `None` to give up.
pub fn retry_delay(attempt: u32) -> Option<Duration> {
    if attempt >= MAX_ATTEMPTS {
        return None;
    }
    RETRY_DELAYS.get(attempt.checked_sub(1)? as usize).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_attempts_then_give_up() {
        let secs: Vec<Option<u64>> = (1..=6)
            .map(|a| retry_delay(a).map(|d| d.as_secs()))
            .collect();
        assert_eq!(secs, [Some(5), Some(30), Some(60), Some(120), None, None]);
        assert_eq!(retry_delay(0), None);
        let webhook: Vec<Option<u64>> = (1..=7)
            .map(|a| webhook_retry_delay(a).map(|d| d.as_secs()))
            .collect();
        assert_eq!(
            webhook,
            [
                Some(5),
                Some(30),
                Some(60),
                Some(120),
                Some(300),
                None,
                None
            ]
        );
    }
}
