//! The channel registry: one sorted set per channel, its members the subscriptions
//! (`socket`, tab, user id or empty), scored by the time (ms) they are held until; and
//! one sorted set of the channels, scored by the latest such time. Reads count only
//! what is held past now, so the entries of an instance that died lapse by themselves.

use crate::Redis;
use async_trait::async_trait;
use chat_core::ports::{ChannelMember, ChannelRegistry, StoreResult};
use chat_core::{StoreError, Timestamp, UserId};
use deadpool_redis::redis::{self, Script};
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
        // What lapsed (its instance stopped renewing it) is dropped as it is read.
        let raw: Vec<String> = self
            .redis
            .run(|mut c| async move {
                redis::pipe()
                    .cmd("ZREMRANGEBYSCORE")
                    .arg(&key)
                    .arg("-inf")
                    .arg(now_ms)
                    .ignore()
                    .cmd("ZRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1)
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
        // Channels nobody has held since: dropped from the index as it is read.
        let names: Vec<String> = self
            .redis
            .run(|mut c| async move {
                redis::pipe()
                    .cmd("ZREMRANGEBYSCORE")
                    .arg(&index)
                    .arg("-inf")
                    .arg(now_ms)
                    .ignore()
                    .cmd("ZRANGE")
                    .arg(&index)
                    .arg(0)
                    .arg(-1)
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
}
