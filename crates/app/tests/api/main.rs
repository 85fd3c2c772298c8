//! Black-box tests of the HTTP API: each spawns the real server on a free loopback port
//! and talks to it over HTTP, knowing only SPEC §2, §3 and §5.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly on what it does not expect"
)]

mod audit;
mod auth;
mod browser;
mod care;
mod client_js;
mod cors;
mod delivery;
mod drain;
mod helpers;
mod host;
mod identity;
mod kms;
mod lifecycle;
mod links;
mod media;
mod operations;
mod pagination;
mod pgbouncer;
mod policy;
mod postgres;
mod privacy;
mod rate_limits;
mod realtime;
mod record;
mod redis;
mod redis_ha;
mod retention;
mod tls;
mod unavailable;
mod unread;
mod validation;
