use async_trait::async_trait;
use chat_core::ports::{ChannelMember, ChannelRegistry, StoreResult};
use chat_core::Timestamp;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};

/// Subscriptions of this process's sockets, by channel.
#[derive(Debug, Default)]
pub struct MemoryChannelRegistry(Mutex<BTreeMap<String, HashMap<ChannelMember, Timestamp>>>);

#[async_trait]
impl ChannelRegistry for MemoryChannelRegistry {
    async fn hold(
        &self,
        subscriptions: &[(String, ChannelMember)],
        until: Timestamp,
    ) -> StoreResult<()> {
        let mut channels = self.0.lock();
        for (channel, member) in subscriptions {
            channels
                .entry(channel.clone())
                .or_default()
                .insert(member.clone(), until);
        }
        Ok(())
    }

    async fn release(&self, channel: &str, member: &ChannelMember) -> StoreResult<()> {
        let mut channels = self.0.lock();
        if let Some(members) = channels.get_mut(channel) {
            members.remove(member);
            if members.is_empty() {
                channels.remove(channel);
            }
        }
        Ok(())
    }

    async fn members(&self, channel: &str, now: Timestamp) -> StoreResult<Vec<ChannelMember>> {
        let channels = self.0.lock();
        let mut members: Vec<ChannelMember> = channels
            .get(channel)
            .map(|m| {
                m.iter()
                    .filter(|(_, until)| **until > now)
                    .map(|(member, _)| member.clone())
                    .collect()
            })
            .unwrap_or_default();
        members.sort_by(|a, b| a.socket.cmp(&b.socket));
        Ok(members)
    }

    async fn occupied(&self, prefix: &str, now: Timestamp) -> StoreResult<Vec<(String, u64)>> {
        let channels = self.0.lock();
        Ok(channels
            .range(prefix.to_owned()..)
            .take_while(|(name, _)| name.starts_with(prefix))
            .map(|(name, members)| {
                let held = members.values().filter(|until| **until > now).count() as u64;
                (name.clone(), held)
            })
            .filter(|(_, held)| *held > 0)
            .collect())
    }
}
