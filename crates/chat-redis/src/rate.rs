use crate::Redis;
use async_trait::async_trait;
use chat_core::ports::{RateCounter, StoreResult, WindowCount};
use deadpool_redis::redis::Script;
use std::sync::LazyLock;
use std::time::Duration;

/// Counts the hit and opens the window on the first one, in one atomic step; a key
/// left without a TTL (never, but cheap to repair) gets one.
static HIT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if n == 1 or ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
",
    )
});

/// Rate windows shared by every instance: `INCR` on `{prefix}rate:<key>`, which
/// expires when its window ends.
#[derive(Debug, Clone)]
pub struct RedisRateCounter {
    redis: Redis,
}

impl RedisRateCounter {
    pub fn new(redis: Redis) -> Self {
        Self { redis }
    }
}

#[async_trait]
impl RateCounter for RedisRateCounter {
    async fn hit(&self, key: &str, window: Duration) -> StoreResult<WindowCount> {
        let key = self.redis.key(&format!("rate:{key}"));
        let window_ms = (window.as_millis() as u64).max(1);
        let (count, ttl_ms): (u64, u64) = self
            .redis
            .run(|mut c| async move { HIT.key(key).arg(window_ms).invoke_async(&mut c).await })
            .await?;
        Ok(WindowCount {
            count,
            resets_in: Duration::from_millis(ttl_ms.min(window_ms)),
        })
    }
}
