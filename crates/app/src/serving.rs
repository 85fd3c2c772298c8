//! Serving: the listeners, the HTTP and WebSocket servers, and the background tasks
//! an `Application` starts beside them.

use super::*;
use crate::background::{flush_webhook_batches, run_sweeps, run_unread_checks, JobRunner};

/// How long each backend has to answer `/readyz`.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// A running server: its address, and the future that drives it.
pub struct Application {
    pub addr: SocketAddr,
    /// Where the dedicated WebSocket listener (`CHAT_WS_BIND`) listens, if configured.
    pub ws_addr: Option<SocketAddr>,
    ws_listener: Option<tokio::net::TcpListener>,
    pub server: Server,
    pub service: ChatService,
    /// The adapters the service was built on (see `Wired::ports`).
    pub ports: Ports,
    lock: Arc<dyn LeaseLock>,
    sweep_interval: Option<Duration>,
    realtime: Arc<Realtime>,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Set on `SIGTERM`: `/readyz` answers 503 from then on.
    draining: Arc<std::sync::atomic::AtomicBool>,
    grace: Duration,
}

/// Of the grace, how long the instance keeps serving once `/readyz` fails, so that the
/// load balancer sees it and sends the next requests elsewhere, at most.
const DRAIN_NOTICE: Duration = Duration::from_secs(5);

/// Connections a listener keeps waiting for `accept` before the kernel drops new ones
/// (capped by `net.core.somaxconn`). The default of Rust's and tokio's listeners, 128,
/// overflowed when 10,000 WebSocket clients connected 200 at a time: 1,248 dropped
/// handshakes, each a client retrying a second later (docs/BENCHMARKS.md).
const LISTEN_BACKLOG: u32 = 4096;

fn listen(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// What the chat routes share: the service, the token verifier, the body limit, the
/// rate limits and the FHIR systems of an export.
fn http_state(
    config: &Config,
    service: ChatService,
    rate_counter: Arc<dyn RateCounter>,
) -> anyhow::Result<HttpState> {
    Ok(HttpState {
        service,
        tokens: Arc::new(token_verifier(config)?),
        max_body_bytes: config.http.max_body_bytes,
        limits: RateLimits {
            counter: rate_counter,
            window: Duration::from_secs(60),
            posts: config.http.rate_limit_posts,
            uploads: config.http.rate_limit_uploads,
            auth: config.http.rate_limit_auth,
        },
        fhir: chat_fhir::Systems {
            user: config.record.user_system.clone(),
            request: config.record.request_system.clone(),
        },
    })
}

/// `/metrics`: the recorder's text, the event link's heartbeat age updated first.
fn render_metrics(
    handle: metrics_exporter_prometheus::PrometheusHandle,
    event_link: Option<EventLinkHealth>,
) -> Arc<dyn Fn() -> String + Send + Sync> {
    Arc::new(move || {
        if let Some(link) = &event_link {
            record_event_link(link);
        }
        handle.render()
    })
}

impl Application {
    /// Binds the configured address (port 0 picks a free one) and wires everything.
    pub async fn build(config: &Config, overrides: Overrides) -> anyhow::Result<Self> {
        config.check_can_serve()?;
        let listener = listen(config.bind)
            .and_then(tokio::net::TcpListener::into_std)
            .with_context(|| format!("cannot listen on {} (CHAT_BIND)", config.bind))?;
        let addr = listener.local_addr()?;
        // The dedicated WebSocket listener (`CHAT_WS_BIND`), if any.
        let ws_listener = config
            .realtime
            .ws_bind
            .map(|at| listen(at).with_context(|| format!("cannot listen on {at} (CHAT_WS_BIND)")))
            .transpose()?;
        let ws_addr = ws_listener
            .as_ref()
            .map(tokio::net::TcpListener::local_addr)
            .transpose()?;
        let media = open_media(config, addr)?;
        let Wired {
            service,
            ports,
            lock,
            mut probes,
            rate_counter,
            event_link,
        } = build_service(config, overrides, Some(media.store.clone())).await?;
        let objects = media.store.clone();
        probes.push(Probe::new("media", move || {
            let objects = objects.clone();
            async move { objects.ping().await.map_err(|e| e.to_string()) }.boxed()
        }));
        let metrics = metrics_handle();
        let realtime = Realtime::new(pusher_settings(config), ports.channels.clone());
        let state = http_state(config, service.clone(), rate_counter)?;
        let draining = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let grace = config.shutdown_grace;
        let operations = Operations {
            draining: draining.clone(),
            probes,
            probe_timeout: PROBE_TIMEOUT,
            metrics: metrics
                .clone()
                .map(|handle| render_metrics(handle, event_link)),
        };
        let served_realtime = realtime.clone();
        let gateway = media.gateway.clone();
        let allowed_origins = config.http.allowed_origins.clone();
        let server = HttpServer::new(move || {
            let app = App::new()
                .wrap(chat_http::no_store())
                .wrap(actix_web::middleware::from_fn(telemetry::log_request))
                .wrap(chat_http::cors(allowed_origins.as_deref()))
                .wrap(actix_web::middleware::from_fn(chat_http::cors_finish))
                .configure(chat_http::configure(
                    state.clone(),
                    served_realtime.clone(),
                    operations.clone(),
                ));
            // Every image goes in and out through the service's own signed URLs.
            app.configure(media_gateway::configure(gateway.clone()))
        })
        .listen(listener)?
        // The drain is ours (SPEC §8): `/readyz` fails before the listener closes.
        .disable_signals()
        .shutdown_timeout(grace.saturating_sub(drain_notice(grace)).as_secs().max(1))
        .run();
        Ok(Self {
            addr,
            ws_addr,
            ws_listener,
            server,
            service,
            ports,
            lock,
            sweep_interval: config.chat.sweep_interval,
            realtime,
            metrics,
            draining,
            grace,
        })
    }

    /// Serves until the server stops, running background jobs and the sweep beside it.
    /// On `SIGTERM` (or Ctrl-C) it drains (SPEC §8): `/readyz` answers 503 at once,
    /// every WebSocket is closed with 4200, no new job is claimed; after a short notice
    /// the listener closes and requests in flight finish; jobs still running at the
    /// end of the grace are given back; the process exits within the grace.
    pub async fn run(self) -> std::io::Result<()> {
        let worker = JobRunner::start(self.service.clone());
        let handle = self.server.handle();
        let (draining, realtime, grace) =
            (self.draining.clone(), self.realtime.clone(), self.grace);
        let (drained_tx, drained) = tokio::sync::oneshot::channel();
        let signals = tokio::spawn(async move {
            shutdown_signal().await;
            let deadline = tokio::time::Instant::now() + grace;
            tracing::info!(
                grace_secs = grace.as_secs(),
                "draining: /readyz fails, sockets reconnect elsewhere"
            );
            draining.store(true, std::sync::atomic::Ordering::SeqCst);
            realtime.hub().drain();
            let _ = drained_tx.send(deadline);
            tokio::time::sleep(drain_notice(grace)).await;
            handle.stop(true).await;
        });
        let delivery = tokio::spawn(self.realtime.clone().deliver_events(self.service.clone()));
        let renewal = tokio::spawn(self.realtime.clone().renew_subscriptions());
        let departures = tokio::spawn(
            self.realtime
                .clone()
                .announce_departed(self.service.clone()),
        );
        let websockets = self.ws_listener.map(|listener| {
            tokio::spawn(chat_http::pusher::listener::serve(
                listener,
                self.realtime.clone(),
                self.service.clone(),
            ))
        });
        let sweeper = self
            .sweep_interval
            .map(|every| tokio::spawn(run_sweeps(self.service.clone(), self.lock.clone(), every)));
        let unread = self
            .service
            .settings()
            .unread_escalation
            .map(|_| tokio::spawn(run_unread_checks(self.service.clone())));
        let batches = self
            .service
            .settings()
            .webhook_batch
            .map(|b| tokio::spawn(flush_webhook_batches(self.service.clone(), b.wait)));
        // The recorder's histograms need draining now and then (no HTTP exporter does it).
        let upkeep = self.metrics.clone().map(|handle| {
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval(Duration::from_secs(5));
                loop {
                    ticks.tick().await;
                    handle.run_upkeep();
                }
            })
        });
        let result = self.server.await;
        // The events of the last batch (the drain's departures among them) are queued,
        // for this instance's job runner or, past the grace, another instance's.
        if let Some(batches) = batches {
            batches.abort();
        }
        self.service.flush_webhooks().await;
        match tokio::time::timeout(Duration::ZERO, drained).await {
            Ok(Ok(deadline)) => worker.drain(&self.service, deadline).await,
            _ => worker.abort(),
        }
        signals.abort();
        flush_audit(&self.service).await;
        if let Some(upkeep) = upkeep {
            upkeep.abort();
        }
        delivery.abort();
        renewal.abort();
        departures.abort();
        if let Some(websockets) = websockets {
            websockets.abort();
        }
        if let Some(sweeper) = sweeper {
            sweeper.abort();
        }
        if let Some(unread) = unread {
            unread.abort();
        }
        result
    }
}

/// The bearer-token verifier of the configuration (SPEC §2). With a JWKS, the
/// provider's keys are fetched in the background at once, so the first request does
/// not wait for them; a provider unreachable now is tried again when a token needs it.
fn token_verifier(config: &Config) -> anyhow::Result<TokenVerifier> {
    use crate::config::TokenVerification;
    let keys = match &config.auth.token_verification {
        TokenVerification::Secret => chat_http::TokenKeys::Fixed {
            algorithm: jsonwebtoken::Algorithm::HS256,
            key: jsonwebtoken::DecodingKey::from_secret(
                config.auth.jwt_secret.expose_secret().as_bytes(),
            ),
        },
        TokenVerification::PublicKey { algorithm, pem, .. } => {
            let (_, key) = chat_http::public_key_from_pem(pem).map_err(anyhow::Error::msg)?;
            chat_http::TokenKeys::Fixed {
                algorithm: *algorithm,
                key,
            }
        }
        TokenVerification::Jwks { url, cache } => {
            let source = Arc::new(crate::identity_provider::HttpJwks::new(
                url.clone(),
                config.stores.link_check,
            )?);
            let provider = Arc::new(chat_http::JwksKeys::new(url.clone(), source, *cache));
            let prefetching = provider.clone();
            tokio::spawn(async move { prefetching.prefetch().await });
            chat_http::TokenKeys::Jwks(provider)
        }
    };
    Ok(TokenVerifier::new(chat_http::AuthConfig {
        keys,
        issuer: config.auth.issuer.clone(),
        audience: config.auth.audience.clone(),
        leeway_secs: config.auth.leeway.as_secs(),
    }))
}

/// The WebSocket server's settings. Without `CHAT_PUSHER_APP_SECRET` the secret is
/// derived from the JWT secret (HMAC under a fixed label), never the JWT secret itself.
pub fn pusher_settings(config: &Config) -> PusherSettings {
    let secret = match &config.realtime.app_secret {
        Some(secret) => secret.expose_secret().as_bytes().to_vec(),
        None => {
            let key = ring::hmac::Key::new(
                ring::hmac::HMAC_SHA256,
                config.auth.jwt_secret.expose_secret().as_bytes(),
            );
            ring::hmac::sign(&key, b"chat-server pusher app secret")
                .as_ref()
                .to_vec()
        }
    };
    let mut settings = PusherSettings::new(
        config.realtime.app_id.clone(),
        config.realtime.app_key.clone(),
        secret,
    );
    settings.allowed_origins = config.http.allowed_origins.clone();
    settings.event_prefix = config.realtime.event_prefix.clone();
    settings.activity_timeout = config.realtime.activity_timeout;
    settings.grant_leeway = config.auth.leeway;
    settings.subscription_lapse = config.realtime.subscription_lapse;
    settings
}

/// The event link's counters and age, read from the bus as `/metrics` renders.
fn record_event_link(link: &EventLinkHealth) {
    metrics::counter!(names::EVENT_LINK_CHECKS_FAILED).absolute(link.checks_failed());
    metrics::counter!(names::EVENT_LINK_REPLACED).absolute(link.links_replaced());
    let age = link
        .since_alive()
        .map_or(f64::INFINITY, |ago| ago.as_secs_f64());
    metrics::gauge!(names::EVENT_LINK_SILENT_SECONDS).set(age);
}

/// How long the instance keeps serving once `/readyz` fails: half the grace, at most
/// [`DRAIN_NOTICE`].
fn drain_notice(grace: Duration) -> Duration {
    (grace / 2).min(DRAIN_NOTICE)
}

/// `SIGTERM` (what Kubernetes and systemd send) or Ctrl-C.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(error) => {
                tracing::warn!(%error, "no SIGTERM handler; only Ctrl-C drains");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A burst of connections that arrives faster than the server accepts waits in the
    /// listen queue instead of being dropped (a dropped handshake costs the client a
    /// one-second SYN retry). Nothing accepts here: every connection must still
    /// complete its TCP handshake.
    #[tokio::test]
    async fn a_burst_of_connections_waits_to_be_accepted() {
        let listener = listen("127.0.0.1:0".parse().unwrap_or_else(|_| unreachable!()))
            .unwrap_or_else(|e| panic!("listen: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        // More than the 128 of a default listener, within the kernel's own cap.
        let somaxconn: usize = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(4096);
        let burst = somaxconn.min(600);
        let connects = (0..burst).map(|_| {
            tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
        });
        let connected = futures::future::join_all(connects)
            .await
            .into_iter()
            .filter(|c| matches!(c, Ok(Ok(_))))
            .count();
        assert_eq!(
            connected, burst,
            "connections dropped by a full listen queue"
        );
        drop(listener);
    }
}
