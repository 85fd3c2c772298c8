//! Lease locks in a table: acquired by an upsert that only takes over an expired row,
//! released by the owner's token only. The database's clock decides expiry.

use crate::{db, PgStore};
use async_trait::async_trait;
use chat_core::ports::{LeaseLock, LockToken, StoreResult};
use diesel::sql_types::{BigInt, Text};
use diesel_async::RunQueryDsl;
use std::time::Duration;

#[derive(diesel::QueryableByName)]
struct Token {
    #[diesel(sql_type = Text)]
    token: String,
}

#[async_trait]
impl LeaseLock for PgStore {
    async fn try_acquire(&self, name: &str, ttl: Duration) -> StoreResult<Option<LockToken>> {
        let name = name.to_owned();
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        self.run(async move |mut conn| {
            // A concurrent insert of the same name waits for the first to commit, then
            // sees a live lease and takes nothing: exactly one contender wins.
            let won = diesel::sql_query(
                "INSERT INTO chat_locks (name, token, expires_at) \
                 VALUES ($1, gen_random_uuid()::text, now() + $2 * interval '1 millisecond') \
                 ON CONFLICT (name) DO UPDATE \
                   SET token = EXCLUDED.token, expires_at = EXCLUDED.expires_at \
                   WHERE chat_locks.expires_at <= now() \
                 RETURNING token",
            )
            .bind::<Text, _>(name)
            .bind::<BigInt, _>(ttl_ms)
            .load::<Token>(&mut conn)
            .await
            .map_err(db)?;
            Ok(won.into_iter().next().map(|t| LockToken(t.token)))
        })
        .await
    }

    async fn release(&self, name: &str, token: &LockToken) -> StoreResult<bool> {
        let (name, token) = (name.to_owned(), token.0.clone());
        self.run(async move |mut conn| {
            let released = diesel::sql_query(
                "DELETE FROM chat_locks WHERE name = $1 AND token = $2 AND expires_at > now()",
            )
            .bind::<Text, _>(name)
            .bind::<Text, _>(token)
            .execute(&mut conn)
            .await
            .map_err(db)?;
            Ok(released > 0)
        })
        .await
    }
}
