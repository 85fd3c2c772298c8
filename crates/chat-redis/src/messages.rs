//! The message store: one Lua script per operation, so every write is one atomic
//! round trip and no reader ever sees half of one.
//!
//! A thread's messages are one sorted set, `{thread}:messages`: the score is the id,
//! the member the encoded message (its id makes it unique), so a post is one `ZADD`,
//! the cap one `ZREMRANGEBYRANK`, and a page one `ZREVRANGEBYSCORE`. `{thread}:seq`
//! holds the newest id ever stored (it outlives a purge, so ids keep increasing), and
//! `{thread}:hold` marks a legal hold. The previous layout (`ids` and `at` sorted sets
//! and a `msg` hash, same `seq`, `hold` and idempotency keys) is still read, expired,
//! capped, redacted and held until its keys expire, a day after the upgrade: nothing a
//! previous release wrote is lost, and its instances, which share `seq`, keep ids
//! increasing while both run.

use crate::codec::{self, micros, CONTENT_FLAG};
use crate::Redis;
use async_trait::async_trait;
use chat_core::ports::{Appended, MessageStore, RetentionCut, StoreResult};
use chat_core::{
    ClockIds, IdempotencyKey, MessageId, MessagePage, StoreError, StoredMessage, ThreadId,
    Timestamp, UserId,
};
use deadpool_redis::redis::{self, Script};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

/// What every script shares. KEYS[1..4] are always `messages`, `ids`, `at`, `msg`.
/// An encoded message's creation time is 8 big-endian bytes at byte 19 (1-based), its
/// id at byte 2, its sender at bytes 10 to 17 (see [`codec`]).
const SHARED: &str = r"
local function created(v) return struct.unpack('>l', v, 19) end
local function id_of(v) return struct.unpack('>l', v, 2) end
local function fresh(v, cut) return not cut or created(v) >= cut end
-- The previous layout, while its keys live (asked once per script).
local old_layout = nil
local function old()
  if old_layout == nil then old_layout = redis.call('EXISTS', KEYS[2]) == 1 end
  return old_layout
end
local function drop_old(victims)
  for i = 1, #victims, 500 do
    local chunk = {unpack(victims, i, math.min(i + 499, #victims))}
    redis.call('ZREM', KEYS[2], unpack(chunk))
    redis.call('ZREM', KEYS[3], unpack(chunk))
    redis.call('HDEL', KEYS[4], unpack(chunk))
  end
  return #victims
end
-- The previous layout's messages created before `cut` (µs, a number: '%d' keeps every
-- digit, where concatenation would print it in exponent form).
local function drop_old_before(cut)
  return drop_old(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', string.format('(%d', cut)))
end
-- Drops messages created before `cut` from the oldest on, up to the first that is not
-- (a message created out of id order waits for the sweep; reads skip it meanwhile).
local function expire(cut)
  local n, size = 0, 1
  while true do
    local oldest = redis.call('ZRANGE', KEYS[1], 0, size - 1)
    local k = 0
    while k < #oldest and created(oldest[k + 1]) < cut do k = k + 1 end
    if k > 0 then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, k - 1) end
    n = n + k
    if k < size then break end
    size = 64
  end
  if old() then n = n + drop_old_before(cut) end
  return n
end
-- Keeps the newest `keep`, the previous layout's (older) messages dropped first.
local function cap(keep)
  if old() then
    local over = redis.call('ZCARD', KEYS[1]) + redis.call('ZCARD', KEYS[2]) - keep
    if over <= 0 then return end
    over = over - drop_old(redis.call('ZRANGE', KEYS[2], 0, over - 1))
    if over > 0 then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, over - 1) end
  else
    redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -keep - 1)
  end
end
local function redacted(v) return string.sub(v, 1, FLAG - 1) .. '\0' end
local function has_content(v) return string.byte(v, FLAG) == 1 end
";

/// The shared prelude, with the has-content byte's 1-based position.
fn script(body: &str) -> Script {
    let prelude = SHARED.replace("FLAG", &(CONTENT_FLAG + 1).to_string());
    Script::new(&format!("{prelude}\n{body}"))
}

/// KEYS: messages, ids, at, msg, seq, hold, then the batch's idempotency keys. ARGV:
/// key TTL ms, expiry cut µs or '', keep newest or '', then four per message, in order:
/// id, created µs, encoded message, and the index in KEYS of its idempotency key (0:
/// none). Returns one answer per message: 0 when stored; minus the first message's id
/// when its key holds one that is not expired (`id:created µs`); else the thread's
/// newest id, at or above its own. Ids stay strings (Lua 5.1 prints large numbers in
/// exponent form). While `hold` exists (a legal hold) the thread's keys keep no time
/// to live.
static APPEND: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local ttl, cut, keep = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local newest_arg = redis.call('GET', KEYS[5]) or '0'
local newest = tonumber(newest_arg)
local answers, stored = {}, false
for i = 4, #ARGV, 4 do
  local id, k = tonumber(ARGV[i]), tonumber(ARGV[i + 3])
  local answer = nil
  if k > 0 then
    local held = redis.call('GET', KEYS[k])
    if held then
      local sep = string.find(held, ':', 1, true)
      if not cut or tonumber(string.sub(held, sep + 1)) >= cut then
        answer = -tonumber(string.sub(held, 1, sep - 1))
      end
    end
  end
  if not answer then
    if id <= newest then
      answer = newest
    else
      newest, newest_arg = id, ARGV[i]
      redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i + 2])
      if k > 0 then redis.call('SET', KEYS[k], ARGV[i] .. ':' .. ARGV[i + 1], 'PX', ttl) end
      answer, stored = 0, true
    end
  end
  answers[#answers + 1] = answer
end
if stored then
  local held = redis.call('EXISTS', KEYS[6]) == 1
  if held then
    redis.call('SET', KEYS[5], newest_arg)
  else
    redis.call('SET', KEYS[5], newest_arg, 'PX', ttl)
    redis.call('PEXPIRE', KEYS[1], ttl)
  end
  if cut then expire(cut) end
  if keep then cap(keep) end
end
return answers
",
    )
});

/// KEYS: messages, ids, at, msg, seq, hold, dek. ARGV: `1` to hold, else the message
/// TTL ms and the data key's TTL ms. Holding marks the thread and takes every key's
/// time to live away; lifting the hold gives them back.
static HOLD: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
if ARGV[1] == '1' then
  redis.call('SET', KEYS[6], '1')
  for i = 1, 5 do redis.call('PERSIST', KEYS[i]) end
  redis.call('PERSIST', KEYS[7])
else
  redis.call('DEL', KEYS[6])
  for i = 1, 5 do redis.call('PEXPIRE', KEYS[i], ARGV[1]) end
  redis.call('PEXPIRE', KEYS[7], ARGV[2])
end
return 0
",
    )
});

/// KEYS: messages, ids, at, msg. ARGV: upper bound ('+inf' or '(id'), limit, expiry
/// cut µs or ''. Returns up to limit + 1 encoded messages, newest first, skipping
/// expired ones, from both layouts.
static PAGE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local want = tonumber(ARGV[2]) + 1
local cut = tonumber(ARGV[3])
local picked, offset = {}, 0
while #picked < want do
  local batch = redis.call('ZREVRANGEBYSCORE', KEYS[1], ARGV[1], '-inf', 'LIMIT', offset, want)
  for _, v in ipairs(batch) do
    if fresh(v, cut) and #picked < want then picked[#picked + 1] = v end
  end
  if #batch < want then break end
  offset = offset + #batch
end
if not old() then return picked end
local older, offset = {}, 0
while #older < want do
  local ids = redis.call('ZREVRANGEBYSCORE', KEYS[2], ARGV[1], '-inf', 'LIMIT', offset, want)
  if #ids == 0 then break end
  for _, v in ipairs(redis.call('HMGET', KEYS[4], unpack(ids))) do
    if v and fresh(v, cut) and #older < want then older[#older + 1] = v end
  end
  offset = offset + #ids
end
-- Both newest first: merged, the newest `want`.
local merged, a, b = {}, 1, 1
while #merged < want and (a <= #picked or b <= #older) do
  if b > #older or (a <= #picked and id_of(picked[a]) > id_of(older[b])) then
    merged[#merged + 1] = picked[a]; a = a + 1
  else
    merged[#merged + 1] = older[b]; b = b + 1
  end
end
return merged
",
    )
});

/// KEYS: messages, ids, at, msg. ARGV: message id. The encoded message, or nil.
static GET: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local found = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[1])
if #found > 0 then return found[1] end
return redis.call('HGET', KEYS[4], ARGV[1])
",
    )
});

/// KEYS: messages, ids, at, msg. ARGV: message id, or '' for every message of the
/// thread. Rewrites each message that has content as its header with the has-content
/// flag cleared (see [`codec`]); returns how many.
static REDACT: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local n = 0
local found
if ARGV[1] == '' then
  found = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
else
  found = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[1], 'WITHSCORES')
end
for i = 1, #found, 2 do
  local v = found[i]
  if has_content(v) then
    redis.call('ZREM', KEYS[1], v)
    redis.call('ZADD', KEYS[1], found[i + 1], redacted(v))
    n = n + 1
  end
end
if old() then
  local pairs_ = {}
  if ARGV[1] == '' then
    pairs_ = redis.call('HGETALL', KEYS[4])
  else
    local v = redis.call('HGET', KEYS[4], ARGV[1])
    if v then pairs_ = {ARGV[1], v} end
  end
  for i = 1, #pairs_, 2 do
    if has_content(pairs_[i + 1]) then
      redis.call('HSET', KEYS[4], pairs_[i], redacted(pairs_[i + 1]))
      n = n + 1
    end
  end
end
return n
",
    )
});

/// KEYS: messages, ids, at, msg. ARGV: the read marker id ('0': none), the reader's id
/// as its 8 stored bytes, expiry cut µs or ''. Counts the messages above the marker,
/// not expired, whose sender (bytes 10 to 17 of the stored value) is not the reader. At
/// most the thread's cap of messages is walked.
static UNREAD: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local cut = tonumber(ARGV[3])
local n = 0
local function count(v)
  if v and fresh(v, cut) and string.sub(v, 10, 17) ~= ARGV[2] then n = n + 1 end
end
for _, v in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf')) do count(v) end
if old() then
  local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. ARGV[1], '+inf')
  if #ids > 0 then
    for _, v in ipairs(redis.call('HMGET', KEYS[4], unpack(ids))) do count(v) end
  end
end
return n
",
    )
});

/// KEYS: messages, ids, at, msg. ARGV: expiry cut µs. The sweep: every message created
/// before the cut, in whatever order, from both layouts.
static EXPIRE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local cut = tonumber(ARGV[1])
local expired = {}
for _, v in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if created(v) < cut then expired[#expired + 1] = v end
end
for i = 1, #expired, 500 do
  redis.call('ZREM', KEYS[1], unpack(expired, i, math.min(i + 499, #expired)))
end
local n = #expired
if old() then n = n + drop_old_before(cut) end
return n
",
    )
});

/// Messages in Redis, ciphertext only. Each thread's keys expire `key_ttl` after its
/// last post, which with `key_ttl` = the message TTL is when its newest message expires.
///
/// Ids are drawn in the instance ([`ClockIds`]): the append script refuses an id at or
/// below the thread's newest and returns that newest, which the next id then exceeds.
#[derive(Debug, Clone)]
pub struct RedisMessageStore {
    redis: Redis,
    key_ttl: Duration,
    ids: Arc<ClockIds>,
}

struct ThreadKeys {
    /// The sorted set of the thread's messages, by id.
    messages: String,
    /// The previous layout's keys, read until they expire.
    ids: String,
    at: String,
    msg: String,
    seq: String,
    /// Present while the thread is under legal hold.
    hold: String,
    /// The thread's data key, in the memory-only mode ([`crate::RedisKeyStore`]).
    dek: String,
}

impl RedisMessageStore {
    pub fn new(redis: Redis, key_ttl: Duration) -> Self {
        Self {
            redis,
            key_ttl,
            ids: Arc::default(),
        }
    }

    fn keys(&self, thread: ThreadId) -> ThreadKeys {
        let base = self.redis.key(&format!("{{{thread}}}"));
        ThreadKeys {
            messages: format!("{base}:messages"),
            ids: format!("{base}:ids"),
            at: format!("{base}:at"),
            msg: format!("{base}:msg"),
            seq: format!("{base}:seq"),
            hold: format!("{base}:hold"),
            dek: format!("{base}:dek"),
        }
    }

    /// The key of a sender's idempotency key, beside the thread's other keys (same hash
    /// slot).
    fn idempotency_key(&self, thread: ThreadId, sender: UserId, key: &IdempotencyKey) -> String {
        let base = self.redis.key(&format!("{{{thread}}}"));
        format!("{base}:key:{sender}:{}", key.as_str())
    }

    /// A script's invocation with the four keys every script reads first.
    fn invocation(script: &'static Script, keys: &ThreadKeys) -> redis::ScriptInvocation<'static> {
        let mut invocation = script.key(&keys.messages);
        invocation.key(&keys.ids).key(&keys.at).key(&keys.msg);
        invocation
    }

    fn ttl_ms(&self) -> u64 {
        (self.key_ttl.as_millis() as u64).max(1)
    }

    /// The threads that have messages, in either layout, found with SCAN.
    async fn threads_with_messages(&self) -> StoreResult<Vec<ThreadId>> {
        let prefix_len = self.redis.key("{").len();
        let mut threads = Vec::new();
        for suffix in ["}:messages", "}:at"] {
            let pattern = self.redis.key(&format!("{{*{suffix}"));
            for key in self.redis.scan_keys(&pattern).await? {
                let thread = key
                    .get(prefix_len..)
                    .and_then(|k| k.strip_suffix(suffix))
                    .and_then(|id| id.parse::<ThreadId>().ok());
                threads.extend(thread);
            }
        }
        threads.sort_unstable();
        threads.dedup();
        Ok(threads)
    }
}

fn opt_arg(value: Option<i64>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

#[async_trait]
impl MessageStore for RedisMessageStore {
    async fn next_id(&self, _thread: ThreadId) -> StoreResult<MessageId> {
        self.ids.next(chrono::Utc::now())
    }

    async fn append_all(
        &self,
        batch: &[(StoredMessage, Option<IdempotencyKey>)],
        cut: RetentionCut,
    ) -> StoreResult<Vec<Appended>> {
        let Some((first, _)) = batch.first() else {
            return Ok(Vec::new());
        };
        let thread = first.thread_id;
        let keys = self.keys(thread);
        let mut invocation = Self::invocation(&APPEND, &keys);
        invocation.key(keys.seq).key(keys.hold);
        invocation
            .arg(self.ttl_ms())
            .arg(opt_arg(cut.expired_before.map(micros)))
            .arg(opt_arg(cut.keep_newest.map(|n| i64::from(n.get()))));
        let mut next_key = 7;
        for (message, key) in batch {
            if message.thread_id != thread {
                return Err(StoreError::Corrupt(
                    "append_all: one thread per batch".into(),
                ));
            }
            let key_index = match key {
                Some(key) => {
                    invocation.key(self.idempotency_key(thread, message.sender_id, key));
                    next_key += 1;
                    next_key - 1
                }
                None => 0,
            };
            invocation
                .arg(message.id.get())
                .arg(micros(message.created_at))
                .arg(codec::encode_message(message))
                .arg(key_index);
        }
        let answers: Vec<i64> = self
            .redis
            .run(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await?;
        if answers.len() != batch.len() {
            return Err(StoreError::Corrupt("redis: one answer per message".into()));
        }
        answers
            .into_iter()
            .map(|answer| match answer {
                0 => Ok(Appended::Stored),
                first if first < 0 => MessageId::new(-first)
                    .map(Appended::Duplicate)
                    .ok_or_else(|| StoreError::Corrupt("redis: idempotency key".into())),
                newest => {
                    let newest = MessageId::new(newest)
                        .ok_or_else(|| StoreError::Corrupt("redis: newest id".into()))?;
                    self.ids.raise_floor(newest);
                    Ok(Appended::Behind)
                }
            })
            .collect()
    }

    async fn page(
        &self,
        thread: ThreadId,
        before: Option<MessageId>,
        limit: u32,
        expired_before: Option<Timestamp>,
    ) -> StoreResult<MessagePage<StoredMessage>> {
        let upper = before.map_or_else(|| "+inf".to_owned(), |id| format!("({id}"));
        let mut invocation = Self::invocation(&PAGE, &self.keys(thread));
        invocation
            .arg(upper)
            .arg(limit)
            .arg(opt_arg(expired_before.map(micros)));
        let newest_first: Vec<Vec<u8>> = self
            .redis
            .run(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await?;
        let mut messages = newest_first
            .into_iter()
            .map(|bytes| codec::decode_message(thread, &bytes))
            .collect::<StoreResult<Vec<_>>>()?;
        let has_more = messages.len() > limit as usize;
        messages.truncate(limit as usize);
        messages.reverse();
        Ok(MessagePage { messages, has_more })
    }

    async fn get(&self, thread: ThreadId, id: MessageId) -> StoreResult<Option<StoredMessage>> {
        let mut invocation = Self::invocation(&GET, &self.keys(thread));
        invocation.arg(id.get());
        let bytes: Option<Vec<u8>> = self
            .redis
            .run(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await?;
        bytes.map(|b| codec::decode_message(thread, &b)).transpose()
    }

    async fn redact(&self, thread: ThreadId, id: MessageId) -> StoreResult<bool> {
        let mut invocation = Self::invocation(&REDACT, &self.keys(thread));
        invocation.arg(id.get());
        let redacted: i64 = self
            .redis
            .run(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await?;
        Ok(redacted == 1)
    }

    /// One script per thread (each thread's keys may live on another shard), run
    /// side by side.
    async fn unread_counts(
        &self,
        reader: UserId,
        threads: &[(ThreadId, Option<MessageId>)],
        expired_before: Option<Timestamp>,
    ) -> StoreResult<Vec<u64>> {
        let cut = opt_arg(expired_before.map(micros));
        let counts = threads.iter().map(|(thread, marker)| {
            let mut invocation = Self::invocation(&UNREAD, &self.keys(*thread));
            invocation
                .arg(marker.map_or(0, MessageId::get))
                .arg(reader.get().to_be_bytes().to_vec())
                .arg(cut.clone());
            self.redis
                .run(move |mut c| async move { invocation.invoke_async::<u64>(&mut c).await })
        });
        futures::future::try_join_all(counts).await
    }

    async fn redact_thread(&self, thread: ThreadId) -> StoreResult<u64> {
        let mut invocation = Self::invocation(&REDACT, &self.keys(thread));
        invocation.arg("");
        self.redis
            .run(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await
    }

    async fn set_hold(&self, thread: ThreadId, hold: bool) -> StoreResult<()> {
        let keys = self.keys(thread);
        let mut invocation = Self::invocation(&HOLD, &keys);
        invocation.key(keys.seq).key(keys.hold).key(keys.dek);
        match hold {
            true => invocation.arg("1"),
            false => invocation
                .arg(self.ttl_ms())
                .arg(self.ttl_ms() + crate::keys::MARGIN.as_millis() as u64),
        };
        self.redis
            .run(|mut c| async move { invocation.invoke_async::<i64>(&mut c).await })
            .await?;
        Ok(())
    }

    async fn delete_expired(
        &self,
        expired_before: Timestamp,
        keep: &[ThreadId],
    ) -> StoreResult<u64> {
        let cut = micros(expired_before);
        let mut removed = 0;
        for thread in self.threads_with_messages().await? {
            if keep.contains(&thread) {
                continue;
            }
            let mut invocation = Self::invocation(&EXPIRE, &self.keys(thread));
            invocation.arg(cut);
            removed += self
                .redis
                .run(|mut c| async move { invocation.invoke_async::<u64>(&mut c).await })
                .await?;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RedisSettings;
    use chat_core::crypto::SealedContent;
    use chat_core::MessageKind;
    use chat_testkit::TestRedis;
    use std::num::NonZeroU32;

    fn message(thread: ThreadId, id: i64) -> StoredMessage {
        StoredMessage {
            id: MessageId::new(id).unwrap(),
            thread_id: thread,
            sender_id: UserId::new(7).unwrap(),
            kind: MessageKind::Text,
            content: Some(SealedContent::from_bytes(vec![id as u8; 40])),
            // Created at id × 10 µs.
            created_at: chrono::DateTime::from_timestamp_micros(id * 10).unwrap(),
        }
    }

    fn ids(page: &MessagePage<StoredMessage>) -> Vec<i64> {
        page.messages.iter().map(|m| m.id.get()).collect()
    }

    /// A message as the previous release stored it: in the `ids` and `at` sorted sets
    /// and the `msg` hash.
    async fn write_previous_layout(store: &RedisMessageStore, m: StoredMessage) {
        let keys = store.keys(m.thread_id);
        let id = m.id.get();
        store
            .redis
            .run(|mut c| async move {
                redis::pipe()
                    .zadd(keys.ids, id, id)
                    .zadd(keys.at, id, micros(m.created_at))
                    .hset(keys.msg, id, codec::encode_message(&m))
                    .query_async::<()>(&mut c)
                    .await
            })
            .await
            .unwrap();
    }

    /// The previous layout's messages expire to the µs, as the new layout's do: a cut
    /// at today's times keeps all its digits in the script.
    #[tokio::test]
    async fn the_previous_layout_expires_to_the_microsecond() {
        let server = TestRedis::start().unwrap();
        let redis = Redis::new(&server.url(), RedisSettings::default()).unwrap();
        let store = RedisMessageStore::new(redis, Duration::from_secs(86_400));
        let thread = ThreadId::new(44).unwrap();
        let now = 1_765_000_000_000_001;
        for (id, created) in [(1, now), (2, now + 1)] {
            let m = StoredMessage {
                created_at: chrono::DateTime::from_timestamp_micros(created).unwrap(),
                ..message(thread, id)
            };
            write_previous_layout(&store, m).await;
        }
        let cut = chrono::DateTime::from_timestamp_micros(now + 1).unwrap();
        assert_eq!(store.delete_expired(cut, &[]).await.unwrap(), 1);
        assert_eq!(ids(&store.page(thread, None, 10, None).await.unwrap()), [2]);
    }

    async fn append(store: &RedisMessageStore, m: StoredMessage, cut: RetentionCut) -> Appended {
        store.append(m, None, cut).await.unwrap()
    }

    /// What the previous release wrote (its `ids` and `at` sorted sets, its `msg` hash,
    /// `seq`) is read, merged, capped, expired and redacted with what this one writes,
    /// until it expires; and ids keep increasing across the two.
    #[tokio::test]
    async fn the_previous_layout_is_read_with_the_new_until_it_expires() {
        let server = TestRedis::start().unwrap();
        let redis = Redis::new(&server.url(), RedisSettings::default()).unwrap();
        let store = RedisMessageStore::new(redis, Duration::from_secs(86_400));
        let thread = ThreadId::new(42).unwrap();
        let keys = store.keys(thread);
        for id in 1..=4 {
            write_previous_layout(&store, message(thread, id)).await;
        }
        server
            .command(&["SET", &keys.seq, "4", "PX", "86400000"])
            .unwrap();
        let keep_all = RetentionCut::KEEP_ALL;

        let read = store.page(thread, None, 10, None).await.unwrap();
        assert_eq!(ids(&read), [1, 2, 3, 4], "the previous layout is read");
        assert_eq!(
            append(&store, message(thread, 3), keep_all).await,
            Appended::Behind,
            "the newest id is the previous layout's"
        );
        assert_eq!(
            append(&store, message(thread, 5), keep_all).await,
            Appended::Stored
        );
        let merged = store.page(thread, None, 10, None).await.unwrap();
        assert_eq!(ids(&merged), [1, 2, 3, 4, 5]);
        let newest_two = store.page(thread, None, 2, None).await.unwrap();
        assert_eq!((ids(&newest_two), newest_two.has_more), (vec![4, 5], true));
        let before_four = store
            .page(thread, Some(MessageId::new(4).unwrap()), 2, None)
            .await
            .unwrap();
        assert_eq!(ids(&before_four), [2, 3]);
        let id = |n| MessageId::new(n).unwrap();
        assert_eq!(store.get(thread, id(2)).await.unwrap().unwrap().id, id(2));
        assert_eq!(store.get(thread, id(5)).await.unwrap().unwrap().id, id(5));
        let reader = UserId::new(8).unwrap();
        let unread = store
            .unread_counts(reader, &[(thread, Some(id(2)))], None)
            .await
            .unwrap();
        assert_eq!(unread, [3], "3, 4 and 5");

        // The cap counts both layouts and drops the oldest, the previous layout's first.
        let keep_three = RetentionCut {
            expired_before: None,
            keep_newest: NonZeroU32::new(3),
        };
        assert_eq!(
            append(&store, message(thread, 6), keep_three).await,
            Appended::Stored
        );
        assert_eq!(
            ids(&store.page(thread, None, 10, None).await.unwrap()),
            [4, 5, 6]
        );
        // Expiry too: created before 55 µs are 4 (40) and 5 (50).
        let expire_55 = RetentionCut {
            expired_before: chrono::DateTime::from_timestamp_micros(55),
            keep_newest: None,
        };
        assert_eq!(
            append(&store, message(thread, 7), expire_55).await,
            Appended::Stored
        );
        assert_eq!(
            ids(&store.page(thread, None, 10, None).await.unwrap()),
            [6, 7]
        );
        assert_eq!(server.command(&["EXISTS", &keys.ids]).unwrap(), ":0");

        // Redaction reaches both.
        let thread = ThreadId::new(43).unwrap();
        write_previous_layout(&store, message(thread, 1)).await;
        assert_eq!(
            append(&store, message(thread, 2), keep_all).await,
            Appended::Stored
        );
        assert_eq!(store.redact_thread(thread).await.unwrap(), 2);
        let redacted = store.page(thread, None, 10, None).await.unwrap();
        assert_eq!(ids(&redacted), [1, 2]);
        assert!(redacted.messages.iter().all(|m| m.content.is_none()));
    }
}
