use crate::Redis;
use async_trait::async_trait;
use chat_core::ports::{LeaseLock, LockToken, StoreResult};
use chat_core::StoreError;
use deadpool_redis::redis::{self, Script};
use ring::rand::{SecureRandom, SystemRandom};
use std::sync::LazyLock;
use std::time::Duration;

/// Deletes the lock only if it still holds the caller's token.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
",
    )
});

/// The single-instance Redis lock: `SET key token NX PX ttl`, released by a script that
/// compares the token first, so a holder whose lease ran out cannot free the lock that
/// someone else took since.
#[derive(Debug, Clone)]
pub struct RedisLeaseLock {
    redis: Redis,
    random: SystemRandom,
}

impl RedisLeaseLock {
    pub fn new(redis: Redis) -> Self {
        Self {
            redis,
            random: SystemRandom::new(),
        }
    }

    fn token(&self) -> StoreResult<LockToken> {
        let mut bytes = [0u8; 16];
        self.random
            .fill(&mut bytes)
            .map_err(|_| StoreError::Unavailable("no randomness for a lock token".into()))?;
        Ok(LockToken(hex::encode(bytes)))
    }
}

#[async_trait]
impl LeaseLock for RedisLeaseLock {
    async fn try_acquire(&self, name: &str, ttl: Duration) -> StoreResult<Option<LockToken>> {
        let key = self.redis.key(&format!("lock:{name}"));
        let token = self.token()?;
        let value = token.0.clone();
        let ttl_ms = (ttl.as_millis() as u64).max(1);
        let set: Option<String> = self
            .redis
            .run(|mut c| async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg(value)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl_ms)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(set.map(|_| token))
    }

    async fn release(&self, name: &str, token: &LockToken) -> StoreResult<bool> {
        let key = self.redis.key(&format!("lock:{name}"));
        let value = token.0.clone();
        let deleted: i64 = self
            .redis
            .run(|mut c| async move { RELEASE.key(key).arg(value).invoke_async(&mut c).await })
            .await?;
        Ok(deleted == 1)
    }
}
