use async_trait::async_trait;
use chat_core::ports::{socket_instance, ChannelMember, ChannelRegistry, StoreResult};
use chat_core::Timestamp;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};

/// Subscriptions of this process's sockets, by channel, and until when each instance
/// that holds some counts as alive.
#[derive(Debug, Default)]
pub struct MemoryChannelRegistry(Mutex<Registry>);

#[derive(Debug, Default)]
struct Registry {
    channels: BTreeMap<String, HashMap<ChannelMember, Timestamp>>,
    instances: HashMap<String, Timestamp>,
}

#[async_trait]
impl ChannelRegistry for MemoryChannelRegistry {
    async fn hold(
        &self,
        subscriptions: &[(String, ChannelMember)],
        until: Timestamp,
    ) -> StoreResult<()> {
        let mut registry = self.0.lock();
        for (channel, member) in subscriptions {
            registry
                .channels
                .entry(channel.clone())
                .or_default()
                .insert(member.clone(), until);
            let alive = registry
                .instances
                .entry(socket_instance(&member.socket).to_owned())
                .or_insert(until);
            *alive = (*alive).max(until);
        }
        Ok(())
    }

    async fn release(&self, channel: &str, member: &ChannelMember) -> StoreResult<()> {
        let channels = &mut self.0.lock().channels;
        if let Some(members) = channels.get_mut(channel) {
            members.remove(member);
            if members.is_empty() {
                channels.remove(channel);
            }
        }
        Ok(())
    }

    async fn members(&self, channel: &str, now: Timestamp) -> StoreResult<Vec<ChannelMember>> {
        let channels = &self.0.lock().channels;
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
        let channels = &self.0.lock().channels;
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

    async fn reap(&self, now: Timestamp) -> StoreResult<Vec<(String, ChannelMember)>> {
        let mut registry = self.0.lock();
        let dead: Vec<String> = registry
            .instances
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(instance, _)| instance.clone())
            .collect();
        let mut reaped = Vec::new();
        for instance in dead {
            registry.instances.remove(&instance);
            for (channel, members) in registry.channels.iter_mut() {
                members.retain(|member, until| {
                    let theirs = socket_instance(&member.socket) == instance && *until <= now;
                    if theirs {
                        reaped.push((channel.clone(), member.clone()));
                    }
                    !theirs
                });
            }
            registry.channels.retain(|_, members| !members.is_empty());
        }
        Ok(reaped)
    }
}
