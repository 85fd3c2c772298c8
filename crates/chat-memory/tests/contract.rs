//! The in-memory adapters against the port contract suites.

use chat_contract as contract;
use chat_memory::*;

contract::suites! {
    request_directory => MemoryRequestDirectory::default(),
    thread_repository => MemoryThreadRepository::default(),
    care_team_and_inbox => MemoryThreadRepository::default(),
    message_retraction_and_unread => MemoryMessageStore::default(),
    thread_key_store => MemoryKeyStore::default(),
    message_store => MemoryMessageStore::default(),
    unread_checks => MemoryUnreadChecks::default(),
    job_queue => MemoryJobQueue::default(),
    event_bus => MemoryEventBus::default(),
    rate_counter => MemoryRateCounter::default(),
    lease_lock => MemoryLeaseLock::default(),
    channel_registry => MemoryChannelRegistry::default(),
    channel_registry_reaping => MemoryChannelRegistry::default(),
}

/// The bus's lag, with a buffer of 4.
#[tokio::test]
async fn event_bus_lag() {
    contract::event_bus_lag(&MemoryEventBus::new(4), 4).await;
}
