//! Load on the Redis message store alone: `tasks` concurrent writers, each doing what a
//! post does (`next_id`, then `append` with the default cut: 24 h and 100 messages) over
//! 16 threads, for `seconds`. Prints posts per second (two Redis round trips each).
//!
//!   cargo run --release -p chat-redis --example store_load -- redis://127.0.0.1:6379 16 20

use chat_core::crypto::SealedContent;
use chat_core::ports::{Appended, MessageStore, RetentionCut};
use chat_core::{MessageKind, Retention, StoredMessage, ThreadId, UserId};
use chat_redis::{Redis, RedisMessageStore, RedisSettings};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "redis://127.0.0.1:6379".into());
    let tasks: u64 = args.next().map_or(Ok(16), |a| a.parse())?;
    let seconds: u64 = args.next().map_or(Ok(10), |a| a.parse())?;

    let redis = Redis::new(&url, RedisSettings::default())?;
    let store = Arc::new(RedisMessageStore::new(redis, Duration::from_secs(86_400)));
    let retention = Retention::default();
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let workers = (0..tasks).map(|n| {
        let (store, done) = (store.clone(), done.clone());
        tokio::spawn(async move {
            let thread = ThreadId::new(1_000_000 + (n % 16) as i64).ok_or("thread id")?;
            while Instant::now() < deadline {
                let now = chrono::Utc::now();
                let message = StoredMessage {
                    id: store.next_id(thread).await?,
                    thread_id: thread,
                    sender_id: UserId::new(7).ok_or("user id")?,
                    kind: MessageKind::Text,
                    // A 120-character text sealed: nonce + ciphertext + tag.
                    content: Some(SealedContent::from_bytes(vec![0xA5; 12 + 120 + 16])),
                    created_at: now,
                };
                let cut = RetentionCut {
                    expired_before: retention.expired_before(now),
                    keep_newest: retention.max_messages,
                };
                // A refused id is retried by the service: not a post yet.
                if store.append(message, None, cut).await? == Appended::Stored {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        })
    });
    let started = Instant::now();
    for worker in futures::future::join_all(workers).await {
        worker?.map_err(|e| e.to_string())?;
    }
    let posts = done.load(Ordering::Relaxed);
    println!(
        "store posts/s: {:.0} ({posts} in {:.1} s, {tasks} tasks)",
        posts as f64 / started.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
