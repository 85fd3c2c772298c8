//! The in-memory adapters against the port contract suites.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chat_contract as contract;
use chat_memory::*;

#[tokio::test]
async fn request_directory() {
    contract::request_directory(&MemoryRequestDirectory::default()).await;
}

#[tokio::test]
async fn thread_repository() {
    contract::thread_repository(&MemoryThreadRepository::default()).await;
}

#[tokio::test]
async fn care_team_and_inbox() {
    contract::care_team_and_inbox(&MemoryThreadRepository::default()).await;
}

#[tokio::test]
async fn message_retraction_and_unread() {
    contract::message_retraction_and_unread(&MemoryMessageStore::default()).await;
}

#[tokio::test]
async fn thread_key_store() {
    contract::thread_key_store(&MemoryKeyStore::default()).await;
}

#[tokio::test]
async fn message_store() {
    contract::message_store(&MemoryMessageStore::default()).await;
}

#[tokio::test]
async fn unread_checks() {
    contract::unread_checks(&MemoryUnreadChecks::default()).await;
}

#[tokio::test]
async fn job_queue() {
    contract::job_queue(&MemoryJobQueue::default()).await;
}

#[tokio::test]
async fn event_bus() {
    contract::event_bus(&MemoryEventBus::default()).await;
}

#[tokio::test]
async fn event_bus_lag() {
    contract::event_bus_lag(&MemoryEventBus::new(4), 4).await;
}

#[tokio::test]
async fn rate_counter() {
    contract::rate_counter(&MemoryRateCounter::default()).await;
}

#[tokio::test]
async fn lease_lock() {
    contract::lease_lock(&MemoryLeaseLock::default()).await;
}

#[tokio::test]
async fn channel_registry() {
    contract::channel_registry(&MemoryChannelRegistry::default()).await;
    contract::channel_registry_reaping(&MemoryChannelRegistry::default()).await;
}
