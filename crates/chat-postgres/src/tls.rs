//! Connections over TLS. `sslmode=prefer` (the default) uses TLS whenever the server
//! offers it, `sslmode=require` refuses a server that does not, `sslmode=disable`
//! never asks. Whenever TLS is used the server's certificate is verified against the
//! system's roots, or the PEM bundle `SSL_CERT_FILE` names (libpq's `verify-full`):
//! encryption to an unverified server would protect nothing from whoever sits between.

use diesel::ConnectionResult;
use diesel_async::AsyncPgConnection;
use futures::future::BoxFuture;
use futures::FutureExt;
use std::sync::OnceLock;
use std::time::Duration;
use tokio_postgres_rustls::MakeRustlsConnect;

/// The connector, with the roots loaded once per process.
fn connector() -> MakeRustlsConnect {
    static CONNECTOR: OnceLock<MakeRustlsConnect> = OnceLock::new();
    CONNECTOR
        .get_or_init(|| {
            // The process's provider, unless one is set: aws-lc-rs, this crate's. With
            // another provider compiled into the process (reqwest's ring), rustls
            // would not choose by itself.
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
            connector_with_native_certs()
        })
        .clone()
}

fn connector_with_native_certs() -> MakeRustlsConnect {
    match MakeRustlsConnect::with_native_certs() {
        Ok((connector, _skipped)) => connector,
        Err(errors) => {
            tracing::warn!(
                ?errors,
                "no trusted root certificates: TLS connections to PostgreSQL will fail"
            );
            let roots = rustls::RootCertStore::empty();
            MakeRustlsConnect::new(
                rustls::ClientConfig::builder()
                    .with_root_certificates(roots)
                    .with_no_client_auth(),
            )
        }
    }
}

fn bad_connection(e: impl std::fmt::Display) -> diesel::ConnectionError {
    diesel::ConnectionError::BadConnection(e.to_string())
}

/// How a connection notices a peer that vanished without a sound.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Liveness {
    /// TCP keepalive: the first probe after half of it idle, then three more a sixth
    /// of it apart (at least a second); unacknowledged data for longer than all of it
    /// ends the connection.
    pub link_check: Duration,
    /// The server ends a session left idle in a transaction this long: a client that
    /// went silent mid-transaction (a partition) does not hold its locks for hours.
    pub idle_in_transaction: Duration,
}

/// `url` with the keepalive of `liveness` on our end and, in `options` (startup
/// parameters a transaction pooler would refuse), on the server's end too, with the
/// idle-in-transaction limit. Options the URL already names come first.
fn configured(
    url: &str,
    liveness: Liveness,
    server_side: bool,
) -> Result<tokio_postgres::Config, diesel::ConnectionError> {
    let mut config: tokio_postgres::Config = url.parse().map_err(bad_connection)?;
    let idle = liveness.link_check / 2;
    let interval = (liveness.link_check / 6).max(Duration::from_secs(1));
    config
        .keepalives(true)
        .keepalives_idle(idle)
        .keepalives_interval(interval)
        .keepalives_retries(3)
        .tcp_user_timeout(liveness.link_check);
    if server_side {
        let ours = format!(
            "-c idle_in_transaction_session_timeout={} -c tcp_keepalives_idle={} \
             -c tcp_keepalives_interval={} -c tcp_keepalives_count=3 -c tcp_user_timeout={}",
            liveness.idle_in_transaction.as_millis(),
            idle.as_secs().max(1),
            interval.as_secs(),
            liveness.link_check.as_millis(),
        );
        let options = match config.get_options() {
            Some(theirs) if !theirs.trim().is_empty() => format!("{theirs} {ours}"),
            _ => ours,
        };
        config.options(options);
    }
    Ok(config)
}

/// The pool's connection setup.
pub(crate) fn establish(
    url: &str,
    liveness: Liveness,
) -> BoxFuture<'_, ConnectionResult<AsyncPgConnection>> {
    async move {
        let (client, connection) = configured(url, liveness, true)?
            .connect(connector())
            .await
            .map_err(bad_connection)?;
        AsyncPgConnection::try_from_client_and_connection(client, connection).await
    }
    .boxed()
}

/// The connection setup behind a transaction pooler. diesel-async's setup sends two
/// `SET`s as prepared statements, whose parse and execution a pooler may hand to
/// different server connections: they run inside a transaction here (one server), which
/// is then rolled back, since a session setting means nothing once the pooler shares
/// the server. Statements are prepared per use from then on, never cached.
pub(crate) fn establish_for_pooler(
    url: &str,
    liveness: Liveness,
) -> BoxFuture<'_, ConnectionResult<AsyncPgConnection>> {
    async move {
        let (client, connection) = configured(url, liveness, false)?
            .connect(connector())
            .await
            .map_err(bad_connection)?;
        // Ends when the client is dropped, or with the socket.
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "a pooled PostgreSQL connection ended");
            }
        });
        client
            .batch_execute("BEGIN")
            .await
            .map_err(bad_connection)?;
        let mut conn = AsyncPgConnection::try_from(client).await?;
        diesel_async::SimpleAsyncConnection::batch_execute(&mut conn, "ROLLBACK")
            .await
            .map_err(bad_connection)?;
        diesel_async::AsyncConnection::set_prepared_statement_cache_size(
            &mut conn,
            diesel::connection::CacheSize::Disabled,
        );
        Ok(conn)
    }
    .boxed()
}
