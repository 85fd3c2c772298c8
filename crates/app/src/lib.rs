//! `chat-server`: reads the configuration, wires the adapters into one `ChatService`,
//! and serves it. The binary (`main.rs`) is only the command line over this.
#![forbid(unsafe_code)]

mod background;
pub mod config;
mod identity_provider;
mod media_gateway;
mod moving_keys;
mod outbound;
mod recorder;
mod serving;
mod telemetry;
mod webhooks;
mod wiring;

pub use background::{flush_audit, sweep_once, SweepError};
pub use config::{Config, ConfigError};
pub use serving::{pusher_settings, Application};
pub use telemetry::{init_logging, metrics_handle};
pub use wiring::{
    build_service, connect_postgres, connect_redis, issue_token, open_media, Overrides, Wired,
};

use actix_web::dev::Server;
use actix_web::{App, HttpServer};
use anyhow::Context;
use chat_core::crypto::KeyRing;
use chat_core::ports::{
    Clock, LeaseLock, MediaStore, MessageStore, RateCounter, ThreadKeyStore, ThreadRecorder,
    WebhookSender,
};
use chat_core::{ChatService, ChatSettings, JobId, JobOutcome, Ports, Retention, SweepReport};
use chat_crypto::MasterKeyRing;
use chat_http::limits::RateLimits;
use chat_http::ops::{names, Operations, Probe};
use chat_http::pusher::{PusherSettings, Realtime};
use chat_http::{HttpState, TokenVerifier};
use chat_kms::{KmsKeyRing, KmsSettings};
use chat_memory::*;
use chat_postgres::{PgSettings, PgStore};
use chat_redis::{
    EventLinkHealth, Redis, RedisChannelRegistry, RedisEventBus, RedisKeyStore, RedisLeaseLock,
    RedisMessageStore, RedisRateCounter, RedisSettings,
};
use config::{MasterKeySetting, MessageStoreKind};
use futures::FutureExt;
use secrecy::ExposeSecret;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
