//! The Pusher-protocol WebSocket and the webhooks it sends the host (SPEC §6, §9).

use super::env::{err, ConfigError, Env};
use chat_http::pusher::PusherSettings;
use secrecy::SecretString;
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct RealtimeConfig {
    /// `CHAT_WS_BIND`: a second listen address serving only the Pusher WebSocket
    /// (`/app/{key}`), on tokio-tungstenite: a fraction of the memory per idle socket
    /// of `/app/{key}` on `CHAT_BIND`, which keeps working. Unset by default.
    pub ws_bind: Option<SocketAddr>,
    /// `CHAT_PUSHER_APP_ID`: the Pusher app id. Default `chat`.
    pub app_id: String,
    /// `CHAT_PUSHER_APP_KEY`: the public key clients connect with (`/app/{key}`).
    /// Default `chat-key`.
    pub app_key: String,
    /// `CHAT_PUSHER_APP_SECRET`: signs channel subscriptions. Default: derived from
    /// `CHAT_JWT_SECRET`, so every instance with the same secret agrees.
    pub app_secret: Option<SecretString>,
    /// `CHAT_BROADCAST_EVENT_PREFIX`: prefix of event names. Default `App\Events\`.
    pub event_prefix: String,
    /// `CHAT_PUSHER_ACTIVITY_TIMEOUT_SECS`: a WebSocket silent this long is pinged, and
    /// closed (4201) if it stays silent as long again (at most 30 s more). Default 30,
    /// 1..=3600.
    pub activity_timeout: Duration,
    /// `CHAT_SUBSCRIPTION_LAPSE_SECS`: how long the channel registry holds a socket's
    /// subscription before its instance must renew it (every third of it). An instance
    /// that dies stops renewing: its sockets leave the counts this long after, at
    /// most, and one instance then sends the `member_removed` and `channel_vacated`
    /// they never sent (SPEC §6, §9.1). Default 60 s, 3..=3600.
    pub subscription_lapse: Duration,
    /// `CHAT_WEBHOOK_URL`: where the host takes webhooks
    /// (`https://host.example/pusher/webhooks`); unset: none are sent.
    pub webhook_url: Option<String>,
    /// `CHAT_WEBHOOK_BATCH_MS`: webhook events wait this long at most, or until
    /// `CHAT_WEBHOOK_BATCH_SIZE` of them wait, and leave together as one delivery (one
    /// job, one request, one signature). `0`: each event leaves at once, alone.
    /// Default 250 ms, at most 5000.
    pub webhook_batch_wait: Option<Duration>,
    /// `CHAT_WEBHOOK_BATCH_SIZE`: events in one delivery, at most. Default 100,
    /// 1..=1000.
    pub webhook_batch_size: usize,
}

impl RealtimeConfig {
    pub(crate) fn from_env(env: &Env, defaults: PusherSettings) -> Result<Self, ConfigError> {
        Ok(Self {
            ws_bind: match env.get("CHAT_WS_BIND") {
                None => None,
                Some(raw) => Some(
                    raw.parse()
                        .map_err(|_| err("CHAT_WS_BIND", format!("cannot parse {raw:?}")))?,
                ),
            },
            app_id: env.text("CHAT_PUSHER_APP_ID", "chat"),
            app_key: env.text("CHAT_PUSHER_APP_KEY", "chat-key"),
            app_secret: env.secret("CHAT_PUSHER_APP_SECRET"),
            // Not trimmed: a prefix may end in a space.
            event_prefix: env
                .0
                .get("CHAT_BROADCAST_EVENT_PREFIX")
                .cloned()
                .unwrap_or(defaults.event_prefix),
            activity_timeout: env.seconds(
                "CHAT_PUSHER_ACTIVITY_TIMEOUT_SECS",
                defaults.activity_timeout,
                1..=3600,
            )?,
            subscription_lapse: env.seconds(
                "CHAT_SUBSCRIPTION_LAPSE_SECS",
                defaults.subscription_lapse,
                3..=3600,
            )?,
            webhook_url: env.http_url("CHAT_WEBHOOK_URL")?,
            webhook_batch_wait: match env.bounded("CHAT_WEBHOOK_BATCH_MS", 250u64, 0..=5000)? {
                0 => None,
                ms => Some(Duration::from_millis(ms)),
            },
            webhook_batch_size: env.bounded("CHAT_WEBHOOK_BATCH_SIZE", 100usize, 1..=1000)?,
        })
    }
}
