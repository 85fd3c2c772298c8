//! Thread data keys in Redis, for the memory-only mode (SPEC §4: `CHAT_MESSAGE_STORE=redis`):
//! each wrapped key lives beside its thread's messages (`{prefix}{<thread>}:key`, the
//! same hash slot: `{prefix}{<thread>}:dek`), never in PostgreSQL, so a database dump
//! or backup holds no key.
//! A key expires a margin after its thread's messages can: every read of it renews
//! its time to live (the service reads it at least once a minute while the thread is
//! in use, its in-memory copy lasting no longer), so it never expires before a
//! message it opens; a thread whose messages and key both expired gets a new key with
//! its next message.

use crate::Redis;
use async_trait::async_trait;
use chat_core::crypto::WrappedKey;
use chat_core::ports::{StoreResult, ThreadKeyStore};
use chat_core::{StoreError, ThreadId};
use deadpool_redis::redis::{self, Script};
use std::sync::LazyLock;
use std::time::Duration;

/// KEYS: the thread's key. ARGV: the encoded key, the time to live in ms. Stores it
/// unless one is there; returns the one stored now, its time to live renewed.
static INSERT_IF_ABSENT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local current = redis.call('GET', KEYS[1])
if current then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return current
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ARGV[1]
",
    )
});

/// KEYS: the thread's key. ARGV: the old encoded key, the new one, the time to live in
/// ms. Compare and swap: 1 when it replaced it.
static REPLACE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
",
    )
});

/// How long a key outlives the newest message it can open, past the message time to
/// live: more than the service keeps a key in memory without reading it again.
pub(crate) const MARGIN: Duration = Duration::from_secs(3600);

/// KEYS: the thread's key, its hold marker. ARGV: the time to live in ms. The key,
/// its time to live renewed, unless the thread is under legal hold (then it has none).
static GET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[2]) == 1 then return redis.call('GET', KEYS[1]) end
return redis.call('GETEX', KEYS[1], 'PX', ARGV[1])
",
    )
});

/// Wrapped thread keys in Redis.
#[derive(Debug, Clone)]
pub struct RedisKeyStore {
    redis: Redis,
    ttl_ms: u64,
}

impl RedisKeyStore {
    /// `message_ttl`: how long the thread's messages live in Redis (the message TTL, or
    /// the quiet-thread time without one); keys live a margin longer.
    pub fn new(redis: Redis, message_ttl: Duration) -> Self {
        Self {
            redis,
            ttl_ms: (message_ttl + MARGIN).as_millis() as u64,
        }
    }

    fn key(&self, thread: ThreadId) -> String {
        self.redis.key(&format!("{{{thread}}}:dek"))
    }

    fn hold_marker(&self, thread: ThreadId) -> String {
        self.redis.key(&format!("{{{thread}}}:hold"))
    }
}

/// `version \0 wrapped bytes`: a version never holds a NUL.
fn encode(key: &WrappedKey) -> Vec<u8> {
    let mut out = key.version().as_bytes().to_vec();
    out.push(0);
    out.extend_from_slice(key.as_bytes());
    out
}

fn decode(raw: &[u8]) -> StoreResult<WrappedKey> {
    let at = raw
        .iter()
        .position(|b| *b == 0)
        .ok_or_else(|| StoreError::Corrupt("redis: thread key".into()))?;
    let version = std::str::from_utf8(&raw[..at])
        .map_err(|_| StoreError::Corrupt("redis: thread key version".into()))?;
    Ok(WrappedKey::new(version, raw[at + 1..].to_vec()))
}

#[async_trait]
impl ThreadKeyStore for RedisKeyStore {
    async fn insert_if_absent(&self, thread: ThreadId, key: WrappedKey) -> StoreResult<WrappedKey> {
        let mut insert = INSERT_IF_ABSENT.key(self.key(thread));
        insert.arg(encode(&key)).arg(self.ttl_ms);
        let stored: Vec<u8> = self
            .redis
            .run(|mut c| async move { insert.invoke_async(&mut c).await })
            .await?;
        decode(&stored)
    }

    async fn get(&self, thread: ThreadId) -> StoreResult<Option<WrappedKey>> {
        let mut get = GET.key(self.key(thread));
        get.key(self.hold_marker(thread)).arg(self.ttl_ms);
        let raw: Option<Vec<u8>> = self
            .redis
            .run(|mut c| async move { get.invoke_async(&mut c).await })
            .await?;
        raw.as_deref().map(decode).transpose()
    }

    async fn destroy(&self, thread: ThreadId) -> StoreResult<bool> {
        let key = self.key(thread);
        let removed: i64 = self
            .redis
            .run(|mut c| async move { redis::cmd("DEL").arg(key).query_async(&mut c).await })
            .await?;
        Ok(removed > 0)
    }

    async fn wrapped_under_other_than(
        &self,
        version: &str,
        after: Option<ThreadId>,
        limit: u32,
    ) -> StoreResult<Vec<(ThreadId, WrappedKey)>> {
        let prefix = self.redis.key("{");
        let names = self.redis.scan_keys(&format!("{prefix}*}}:dek")).await?;
        let mut threads: Vec<ThreadId> = names
            .iter()
            .filter_map(|name| {
                name.strip_prefix(&prefix)?
                    .strip_suffix("}:dek")?
                    .parse()
                    .ok()
            })
            .filter(|thread| after.is_none_or(|after| *thread > after))
            .collect();
        threads.sort();
        let mut found = Vec::new();
        for thread in threads {
            if found.len() >= limit as usize {
                break;
            }
            if let Some(key) = self.get(thread).await? {
                if key.version() != version {
                    found.push((thread, key));
                }
            }
        }
        Ok(found)
    }

    async fn replace(
        &self,
        thread: ThreadId,
        old: &WrappedKey,
        new: WrappedKey,
    ) -> StoreResult<bool> {
        let mut replace = REPLACE.key(self.key(thread));
        replace.arg(encode(old)).arg(encode(&new)).arg(self.ttl_ms);
        let replaced: i64 = self
            .redis
            .run(|mut c| async move { replace.invoke_async(&mut c).await })
            .await?;
        Ok(replaced == 1)
    }
}
