use async_trait::async_trait;
use chat_core::ports::{RateCounter, StoreResult, WindowCount};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Windows past this many keys are swept of the ended ones on the next hit.
const SWEEP_AT: usize = 10_000;

/// Rate windows within one process.
#[derive(Debug, Default)]
pub struct MemoryRateCounter {
    windows: Mutex<HashMap<String, (u64, Instant)>>,
}

#[async_trait]
impl RateCounter for MemoryRateCounter {
    async fn hit(&self, key: &str, window: Duration) -> StoreResult<WindowCount> {
        let now = Instant::now();
        let mut windows = self.windows.lock();
        if windows.len() >= SWEEP_AT {
            windows.retain(|_, (_, ends)| *ends > now);
        }
        let entry = windows.entry(key.to_owned()).or_insert((0, now + window));
        if entry.1 <= now {
            *entry = (0, now + window);
        }
        entry.0 += 1;
        Ok(WindowCount {
            count: entry.0,
            resets_in: entry.1 - now,
        })
    }
}
