//! The channel registry: one sorted set per channel, its members the subscriptions
//! (`socket`, tab, user id or empty), scored by the time (ms) they are held until; one
//! sorted set of the channels, scored by the latest such time; and one of the
//! instances, scored by the time each is alive until. Reads count only what is held
//! past now, so the entries of an instance that died lapse by themselves; a reaper
//! claims the dead instance (one `ZREM` wins) and takes what it left, so that its
//! departures are announced once. What lapsed and nobody reaped (a release that
//! failed) is pruned an hour later.

use crate::Redis;
use async_trait::async_trait;
use chat_core::ports::{socket_instance, ChannelMember, ChannelRegistry, StoreResult};
use chat_core::{StoreError, Timestamp, UserId};
use deadpool_redis::redis::{self, Script};
use futures::StreamExt;
use std::sync::LazyLock;

/// KEYS: the channel's set. ARGV: until ms, then the members. Adds or renews them. A
/// set nobody renews for a day goes (what lapsed in it is dropped as it is read). The
/// index of channels is another key (another slot in a cluster), so it is kept by a
/// command of its own.
static HOLD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], ARGV[1], ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], 86400000)
return 0
",
    )
});

/// KEYS: the instances. ARGV: an instance, now ms. Removes the instance if it is not
/// alive past now: 1 for the one caller that did.
static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local held = redis.call('ZSCORE', KEYS[1], ARGV[1])
if held and tonumber(held) <= tonumber(ARGV[2]) then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 1
end
return 0
",
    )
});

/// KEYS: a channel's set. ARGV: now ms, then instance prefixes (`<instance>.`).
/// Removes and returns the lapsed members of those instances.
static REAP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local taken = {}
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])) do
  for i = 2, #ARGV do
    if string.sub(m, 1, #ARGV[i]) == ARGV[i] then
      redis.call('ZREM', KEYS[1], m)
      taken[#taken + 1] = m
      break
    end
  end
end
return taken
",
    )
});

/// KEYS: the index of channels. ARGV: a channel, now ms. Drops the channel from the
/// index unless someone holds it past now.
static UNLIST: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local held = redis.call('ZSCORE', KEYS[1], ARGV[1])
if held and tonumber(held) <= tonumber(ARGV[2]) then redis.call('ZREM', KEYS[1], ARGV[1]) end
return 0
",
    )
});

/// How long a lapsed entry nobody reaped stays before reads prune it, ms.
const PRUNE_AFTER_MS: i64 = 3_600_000;
/// Dead instances one reap takes on, at most.
const REAP_INSTANCES: usize = 100;

#[derive(Debug, Clone)]
pub struct RedisChannelRegistry {
    redis: Redis,
}

impl RedisChannelRegistry {
    pub fn new(redis: Redis) -> Self {
        Self { redis }
    }

    fn channel_key(&self, channel: &str) -> String {
        self.redis.key(&format!("ch:{{{channel}}}"))
    }

    fn index_key(&self) -> String {
        self.redis.key("channels")
    }

    fn instances_key(&self) -> String {
        self.redis.key("instances")
    }
}

fn ms(t: Timestamp) -> i64 {
    t.timestamp_millis()
}

/// `socket \t user \t info` (JSON text holds no raw tab).
fn encode(member: &ChannelMember) -> String {
    let user = member.user.map(|u| u.to_string()).unwrap_or_default();
    let info = member.info.as_deref().unwrap_or_default();
    format!("{}\t{user}\t{info}", member.socket)
}

fn decode(raw: &str) -> StoreResult<ChannelMember> {
    let mut parts = raw.splitn(3, '\t');
    let (Some(socket), Some(user), Some(info)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(StoreError::Corrupt("redis: channel member".into()));
    };
    let user = match user {
        "" => None,
        id => Some(
            id.parse::<UserId>()
                .map_err(|_| StoreError::Corrupt("redis: channel member user".into()))?,
        ),
    };
    Ok(ChannelMember {
        socket: socket.to_owned(),
        user,
        info: (!info.is_empty()).then(|| info.to_owned()),
    })
}

#[async_trait]
impl ChannelRegistry for RedisChannelRegistry {
    async fn hold(
        &self,
        subscriptions: &[(String, ChannelMember)],
        until: Timestamp,
    ) -> StoreResult<()> {
        let mut by_channel: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
        for (channel, member) in subscriptions {
            by_channel.entry(channel).or_default().push(encode(member));
        }
        for (channel, members) in by_channel {
            let mut invocation = HOLD.key(self.channel_key(channel));
            invocation.arg(ms(until));
            for member in members {
                invocation.arg(member);
            }
            self.redis
                .run(|mut c| async move { invocation.invoke_async::<i64>(&mut c).await })
                .await?;
            // The index keeps the later time: what it lists past now is held somewhere.
            let index = self.index_key();
            self.redis
                .run(|mut c| async move {
                    redis::cmd("ZADD")
                        .arg(index)
                        .arg("GT")
                        .arg(ms(until))
                        .arg(channel)
                        .query_async::<i64>(&mut c)
                        .await
                })
                .await?;
        }
        // The instances keep their later time too: alive until then.
        let mut alive = redis::cmd("ZADD");
        alive.arg(self.instances_key()).arg("GT");
        let instances: std::collections::BTreeSet<&str> = subscriptions
            .iter()
            .map(|(_, m)| socket_instance(&m.socket))
            .collect();
        for instance in &instances {
            alive.arg(ms(until)).arg(*instance);
        }
        if !instances.is_empty() {
            self.redis
                .run(|mut c| async move { alive.query_async::<i64>(&mut c).await })
                .await?;
        }
        Ok(())
    }

    async fn release(&self, channel: &str, member: &ChannelMember) -> StoreResult<()> {
        let key = self.channel_key(channel);
        let member = encode(member);
        self.redis
            .run(|mut c| async move {
                redis::cmd("ZREM")
                    .arg(key)
                    .arg(member)
                    .query_async::<i64>(&mut c)
                    .await
            })
            .await?;
        Ok(())
    }

    async fn members(&self, channel: &str, now: Timestamp) -> StoreResult<Vec<ChannelMember>> {
        let key = self.channel_key(channel);
        let now_ms = ms(now);
        // What lapsed stays for the reaper; what nobody reaped is pruned much later.
        let raw: Vec<String> = self
            .redis
            .run(|mut c| async move {
                redis::pipe()
                    .cmd("ZREMRANGEBYSCORE")
                    .arg(&key)
                    .arg("-inf")
                    .arg(now_ms - PRUNE_AFTER_MS)
                    .ignore()
                    .cmd("ZRANGEBYSCORE")
                    .arg(&key)
                    .arg(format!("({now_ms}"))
                    .arg("+inf")
                    .query_async::<(Vec<String>,)>(&mut c)
                    .await
                    .map(|(members,)| members)
            })
            .await?;
        let mut members = raw
            .iter()
            .map(|m| decode(m))
            .collect::<StoreResult<Vec<_>>>()?;
        members.sort_by(|a, b| a.socket.cmp(&b.socket));
        Ok(members)
    }

    async fn occupied(&self, prefix: &str, now: Timestamp) -> StoreResult<Vec<(String, u64)>> {
        let index = self.index_key();
        let now_ms = ms(now);
        // Channels someone holds past now; long-lapsed ones are pruned as it is read.
        let names: Vec<String> = self
            .redis
            .run(|mut c| async move {
                redis::pipe()
                    .cmd("ZREMRANGEBYSCORE")
                    .arg(&index)
                    .arg("-inf")
                    .arg(now_ms - PRUNE_AFTER_MS)
                    .ignore()
                    .cmd("ZRANGEBYSCORE")
                    .arg(&index)
                    .arg(format!("({now_ms}"))
                    .arg("+inf")
                    .query_async::<(Vec<String>,)>(&mut c)
                    .await
                    .map(|(names,)| names)
            })
            .await?;
        let mut occupied = Vec::new();
        for name in names.into_iter().filter(|n| n.starts_with(prefix)) {
            let key = self.channel_key(&name);
            let held: u64 = self
                .redis
                .run(|mut c| async move {
                    redis::cmd("ZCOUNT")
                        .arg(key)
                        .arg(format!("({now_ms}"))
                        .arg("+inf")
                        .query_async(&mut c)
                        .await
                })
                .await?;
            if held > 0 {
                occupied.push((name, held));
            }
        }
        occupied.sort();
        Ok(occupied)
    }

    async fn reap(&self, now: Timestamp) -> StoreResult<Vec<(String, ChannelMember)>> {
        let now_ms = ms(now);
        let instances = self.instances_key();
        let lapsed: Vec<String> = {
            let key = instances.clone();
            self.redis
                .run(|mut c| async move {
                    redis::cmd("ZRANGEBYSCORE")
                        .arg(key)
                        .arg("-inf")
                        .arg(now_ms)
                        .arg("LIMIT")
                        .arg(0)
                        .arg(REAP_INSTANCES)
                        .query_async(&mut c)
                        .await
                })
                .await?
        };
        let mut claimed = Vec::new();
        for instance in lapsed {
            let mut claim = CLAIM.key(&instances);
            claim.arg(&instance).arg(now_ms);
            let won: i64 = self
                .redis
                .run(|mut c| async move { claim.invoke_async(&mut c).await })
                .await?;
            if won == 1 {
                claimed.push(format!("{instance}."));
            }
        }
        if claimed.is_empty() {
            return Ok(Vec::new());
        }
        let index = self.index_key();
        let channels: Vec<String> = self
            .redis
            .run(|mut c| async move {
                redis::cmd("ZRANGE")
                    .arg(index)
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        let claimed = &claimed;
        let reaped = futures::stream::iter(channels)
            .map(|channel| async move {
                let mut reap = REAP.key(self.channel_key(&channel));
                reap.arg(now_ms);
                for prefix in claimed {
                    reap.arg(prefix);
                }
                let taken: Vec<String> = self
                    .redis
                    .run(|mut c| async move { reap.invoke_async(&mut c).await })
                    .await?;
                if !taken.is_empty() {
                    let mut unlist = UNLIST.key(self.index_key());
                    unlist.arg(&channel).arg(now_ms);
                    self.redis
                        .run(|mut c| async move { unlist.invoke_async::<i64>(&mut c).await })
                        .await?;
                }
                taken
                    .iter()
                    .map(|raw| Ok((channel.clone(), decode(raw)?)))
                    .collect::<StoreResult<Vec<_>>>()
            })
            .buffer_unordered(32)
            .collect::<Vec<_>>()
            .await;
        Ok(reaped
            .into_iter()
            .collect::<StoreResult<Vec<_>>>()?
            .into_iter()
            .flatten()
            .collect())
    }
}
