//! The message store: one Lua script per operation, so every write is one atomic
//! round trip and no reader ever sees half of one.

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

/// Removes `victims` from a thread's three keys. Shared by the scripts below.
const DROP: &str = r"
local function drop(victims)
  for i = 1, #victims, 500 do
    local chunk = {unpack(victims, i, math.min(i + 499, #victims))}
    redis.call('ZREM', KEYS[1], unpack(chunk))
    redis.call('ZREM', KEYS[2], unpack(chunk))
    redis.call('HDEL', KEYS[3], unpack(chunk))
  end
  return #victims
end
local function drop_expired(cut)
  if cut == '' then return 0 end
  return drop(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. cut))
end
";

/// KEYS: ids, at, msg, seq, hold, then the batch's idempotency keys. ARGV: key TTL ms,
/// expiry cut µs or '', keep newest or '', then four per message, in order: id, created
/// µs, encoded message, and the index in KEYS of its idempotency key (0: none). Returns
/// one answer per message: 0 when stored; minus the first message's id when its key
/// holds one that is not expired (`id:created µs`); else the thread's newest id, at or
/// above its own. Ids stay strings (Lua 5.1 prints large numbers in exponent form).
/// `seq` outlives a purge, so ids keep increasing after one. While `hold` exists (a
/// legal hold) the thread's keys keep no time to live.
static APPEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{DROP}
local ttl, cut, keep = ARGV[1], ARGV[2], ARGV[3]
local newest_arg = redis.call('GET', KEYS[4]) or '0'
local newest = tonumber(newest_arg)
local answers, stored = {{}}, false
for i = 4, #ARGV, 4 do
  local id, created, k = tonumber(ARGV[i]), ARGV[i + 1], tonumber(ARGV[i + 3])
  local answer = nil
  if k > 0 then
    local held = redis.call('GET', KEYS[k])
    if held then
      local sep = string.find(held, ':', 1, true)
      if cut == '' or tonumber(string.sub(held, sep + 1)) >= tonumber(cut) then
        answer = -tonumber(string.sub(held, 1, sep - 1))
      end
    end
  end
  if not answer then
    if id <= newest then
      answer = newest
    else
      newest, newest_arg = id, ARGV[i]
      redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i])
      redis.call('ZADD', KEYS[2], created, ARGV[i])
      redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 2])
      if k > 0 then redis.call('SET', KEYS[k], ARGV[i] .. ':' .. created, 'PX', ttl) end
      answer, stored = 0, true
    end
  end
  answers[#answers + 1] = answer
end
if stored then
  local held = redis.call('EXISTS', KEYS[5]) == 1
  if held then
    redis.call('SET', KEYS[4], newest_arg)
  else
    redis.call('SET', KEYS[4], newest_arg, 'PX', ttl)
  end
  drop_expired(cut)
  -- All but the newest `keep`: ranks 0 to -(keep + 1), none while there are fewer.
  if keep ~= '' then drop(redis.call('ZRANGE', KEYS[1], 0, -tonumber(keep) - 1)) end
  if not held then
    for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ttl) end
  end
end
return answers
"
    ))
});

/// KEYS: hold, ids, at, msg, seq, dek. ARGV: `1` to hold, else the message TTL ms and
/// the data key's TTL ms. Holding marks the thread and takes every key's time to live
/// away; lifting the hold gives them back.
static HOLD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if ARGV[1] == '1' then
  redis.call('SET', KEYS[1], '1')
  for i = 2, 6 do redis.call('PERSIST', KEYS[i]) end
else
  redis.call('DEL', KEYS[1])
  for i = 2, 5 do redis.call('PEXPIRE', KEYS[i], ARGV[1]) end
  redis.call('PEXPIRE', KEYS[6], ARGV[2])
end
return 0
",
    )
});

/// KEYS: ids, at, msg. ARGV: upper bound ('+inf' or '(id'), limit, expiry cut µs or ''.
/// Returns up to limit + 1 encoded messages, newest first, skipping expired ones.
static PAGE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local want = tonumber(ARGV[2]) + 1
local cut = ARGV[3] ~= '' and tonumber(ARGV[3]) or nil
local picked, offset = {}, 0
while #picked < want do
  local ids = redis.call('ZREVRANGEBYSCORE', KEYS[1], ARGV[1], '-inf', 'LIMIT', offset, want)
  if #ids == 0 then break end
  for _, id in ipairs(ids) do
    local created = cut and tonumber(redis.call('ZSCORE', KEYS[2], id))
    if not cut or (created and created >= cut) then
      picked[#picked + 1] = id
      if #picked == want then break end
    end
  end
  offset = offset + #ids
end
if #picked == 0 then return {} end
return redis.call('HMGET', KEYS[3], unpack(picked))
",
    )
});

/// KEYS: msg. Rewrites every message that has content as its header with the
/// has-content flag cleared (see [`codec`]).
static REDACT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"
local flag = {pos}
local all = redis.call('HGETALL', KEYS[1])
local n = 0
for i = 1, #all, 2 do
  local v = all[i + 1]
  if string.byte(v, flag) == 1 then
    redis.call('HSET', KEYS[1], all[i], string.sub(v, 1, flag - 1) .. '\0')
    n = n + 1
  end
end
return n
",
        pos = CONTENT_FLAG + 1
    ))
});

/// KEYS: msg. ARGV: message id. Redacts that one message in place, as [`REDACT`] does
/// them all; returns 1 when it had content.
static REDACT_ONE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"
local flag = {pos}
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v and string.byte(v, flag) == 1 then
  redis.call('HSET', KEYS[1], ARGV[1], string.sub(v, 1, flag - 1) .. '\0')
  return 1
end
return 0
",
        pos = CONTENT_FLAG + 1
    ))
});

/// KEYS: ids, at, msg. ARGV: the read marker id ('0': none), the reader's id as its 8
/// stored bytes, expiry cut µs or ''. Counts the messages above the marker, not
/// expired, whose sender (bytes 10 to 17 of the stored value) is not the reader. At
/// most the thread's cap of messages is walked.
static UNREAD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local cut = ARGV[3] ~= '' and tonumber(ARGV[3]) or nil
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf')
local n = 0
for _, id in ipairs(ids) do
  local fresh = true
  if cut then
    local created = tonumber(redis.call('ZSCORE', KEYS[2], id))
    fresh = created ~= nil and created >= cut
  end
  if fresh then
    local v = redis.call('HGET', KEYS[3], id)
    if v and string.sub(v, 10, 17) ~= ARGV[2] then n = n + 1 end
  end
end
return n
",
    )
});

/// KEYS: ids, at, msg. ARGV: expiry cut µs.
static EXPIRE: LazyLock<Script> =
    LazyLock::new(|| Script::new(&format!("{DROP}\nreturn drop_expired(ARGV[1])")));

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

    fn ttl_ms(&self) -> u64 {
        (self.key_ttl.as_millis() as u64).max(1)
    }

    /// The threads that have messages, found with SCAN.
    async fn threads_with_messages(&self) -> StoreResult<Vec<ThreadId>> {
        let prefix_len = self.redis.key("{").len();
        let keys = self.redis.scan_keys(&self.redis.key("{*}:at")).await?;
        Ok(keys
            .iter()
            .filter_map(|k| {
                let id = k.get(prefix_len..)?.strip_suffix("}:at")?;
                id.parse::<ThreadId>().ok()
            })
            .collect())
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
        let mut invocation = APPEND.key(keys.ids);
        invocation
            .key(keys.at)
            .key(keys.msg)
            .key(keys.seq)
            .key(keys.hold);
        invocation
            .arg(self.ttl_ms())
            .arg(opt_arg(cut.expired_before.map(micros)))
            .arg(opt_arg(cut.keep_newest.map(|n| i64::from(n.get()))));
        let mut next_key = 6;
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
        let keys = self.keys(thread);
        let upper = before.map_or_else(|| "+inf".to_owned(), |id| format!("({id}"));
        let expiry = opt_arg(expired_before.map(micros));
        let newest_first: Vec<Option<Vec<u8>>> = self
            .redis
            .run(|mut c| async move {
                PAGE.key(keys.ids)
                    .key(keys.at)
                    .key(keys.msg)
                    .arg(upper)
                    .arg(limit)
                    .arg(expiry)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        let mut messages = newest_first
            .into_iter()
            .flatten()
            .map(|bytes| codec::decode_message(thread, &bytes))
            .collect::<StoreResult<Vec<_>>>()?;
        let has_more = messages.len() > limit as usize;
        messages.truncate(limit as usize);
        messages.reverse();
        Ok(MessagePage { messages, has_more })
    }

    async fn get(&self, thread: ThreadId, id: MessageId) -> StoreResult<Option<StoredMessage>> {
        let keys = self.keys(thread);
        let bytes: Option<Vec<u8>> = self
            .redis
            .run(|mut c| async move {
                redis::cmd("HGET")
                    .arg(keys.msg)
                    .arg(id.get())
                    .query_async(&mut c)
                    .await
            })
            .await?;
        bytes.map(|b| codec::decode_message(thread, &b)).transpose()
    }

    async fn redact(&self, thread: ThreadId, id: MessageId) -> StoreResult<bool> {
        let keys = self.keys(thread);
        let redacted: i64 = self
            .redis
            .run(|mut c| async move {
                REDACT_ONE
                    .key(keys.msg)
                    .arg(id.get())
                    .invoke_async(&mut c)
                    .await
            })
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
            let keys = self.keys(*thread);
            let cut = cut.clone();
            let marker = marker.map_or(0, MessageId::get);
            self.redis.run(move |mut c| async move {
                UNREAD
                    .key(keys.ids)
                    .key(keys.at)
                    .key(keys.msg)
                    .arg(marker)
                    .arg(reader.get().to_be_bytes().to_vec())
                    .arg(cut)
                    .invoke_async::<u64>(&mut c)
                    .await
            })
        });
        futures::future::try_join_all(counts).await
    }

    async fn redact_thread(&self, thread: ThreadId) -> StoreResult<u64> {
        let keys = self.keys(thread);
        self.redis
            .run(|mut c| async move { REDACT.key(keys.msg).invoke_async(&mut c).await })
            .await
    }

    async fn set_hold(&self, thread: ThreadId, hold: bool) -> StoreResult<()> {
        let keys = self.keys(thread);
        let mut invocation = HOLD.key(keys.hold);
        invocation
            .key(keys.ids)
            .key(keys.at)
            .key(keys.msg)
            .key(keys.seq)
            .key(keys.dek);
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
            let keys = self.keys(thread);
            removed += self
                .redis
                .run(|mut c| async move {
                    EXPIRE
                        .key(keys.ids)
                        .key(keys.at)
                        .key(keys.msg)
                        .arg(cut)
                        .invoke_async::<u64>(&mut c)
                        .await
                })
                .await?;
        }
        Ok(removed)
    }
}
