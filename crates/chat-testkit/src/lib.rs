//! Real servers for tests, started and stopped by the tests themselves.
//!
//! [`TestPostgres`] runs a private PostgreSQL on a free loopback port in a temporary
//! directory and stops it when dropped. `initdb` runs once per machine into a template
//! that each server copies, so a server starts in well under a second. PostgreSQL
//! refuses to run as root, so as root the harness runs it as the `postgres` user.
//! [`TestDatabase`] is cheaper still: a database of a test's own, cloned from a
//! migrated template on the one server its test process shares.
//!
//! [`TestRedis`] runs a private `redis-server` on a free loopback port, with no
//! persistence, and kills it when dropped. [`TestRedisCluster`] (three masters, three
//! replicas) and [`TestRedisSentinel`] (master, replica, sentinel) are made of them.
//!
//! [`TestPgBouncer`] puts Debian's PgBouncer, in transaction pooling mode, in front of
//! a [`TestPostgres`].
//!
//! [`TestKms`] runs moto's KMS-compatible server on a free loopback port.
//!
//! [`TestS3`] runs a private S3-compatible server (`s3s-fs`) on a free loopback port
//! over a temporary directory, and kills it when dropped.
//!
//! [`FaultProxy`] sits between the service and a backend and breaks the link on
//! demand: frozen flows (silent, never closed), resets, refused or blackholed new
//! connections, delays.
//!
//! [`TestCertificates`] makes a throwaway CA and server certificate, with which
//! PostgreSQL and Redis can serve TLS ([`TestPostgres::enable_tls`],
//! [`TestRedis::start_tls`]).
#![forbid(unsafe_code)]

mod kms;
mod pgbouncer;
mod postgres;
mod proxy;
mod redis;
mod redis_ha;
mod s3;
mod tls;

pub use kms::{TestKms, TEST_AWS_REGION};
pub use pgbouncer::TestPgBouncer;
pub use postgres::{TestDatabase, TestPostgres};
pub use proxy::FaultProxy;
pub use redis::TestRedis;
pub use redis_ha::{wait_replicas_caught_up, TestRedisCluster, TestRedisSentinel, SENTINEL_MASTER};
pub use s3::{TestS3, S3S_FS_INSTALL};
pub use tls::TestCertificates;

use std::io;
use std::net::TcpListener;

/// Waits until something listens on loopback `port`, for at most `within`; `what`
/// names the server in the error.
pub(crate) fn wait_for_listener(
    port: u16,
    within: std::time::Duration,
    what: &str,
) -> io::Result<()> {
    let deadline = std::time::Instant::now() + within;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if std::time::Instant::now() > deadline {
            return Err(io::Error::other(format!(
                "{what} did not listen within {} s",
                within.as_secs()
            )));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Ok(())
}

/// A free loopback port (the OS picks it; it is free again when this returns).
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
