//! The Pusher WebSocket on a listener of its own (`CHAT_WS_BIND`), served by
//! tokio-tungstenite rather than inside actix-web's HTTP server. Same protocol, same
//! hub, same checks as `/app/{key}` on the API's port; what changes is the cost of an
//! idle socket: one task and small, bounded buffers instead of an actix-http
//! dispatcher with its two 8 KiB buffers (docs/BENCHMARKS.md).

use super::socket::{refusal, refuse, Connection};
use super::transport::{tungstenite_incoming, TungsteniteOut};
use super::Realtime;
use chat_core::ChatService;
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// How long a client has to complete the HTTP upgrade.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest frame or message a client may send (as on the API's port).
const MAX_FRAME_BYTES: usize = 16 * 1024;

fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        // Grows as a frame needs it. A client sends rarely (subscribe, ping: a few
        // hundred bytes), and every idle socket keeps this much: 1 KiB cost 0.4 KB more
        // per socket than 256 bytes (docs/BENCHMARKS.md); a longer frame takes a few reads.
        .read_buffer_size(256)
        // A frame sent alone goes out at once (a send flushes); frames fed together
        // (`TungsteniteOut::texts`) are written together. A socket that cannot take
        // 64 KiB more is gone.
        .write_buffer_size(16 * 1024)
        .max_write_buffer_size(64 * 1024)
        .max_frame_size(Some(MAX_FRAME_BYTES))
        .max_message_size(Some(MAX_FRAME_BYTES))
}

/// Accepts WebSocket connections until the task is dropped.
pub async fn serve(listener: TcpListener, realtime: Arc<Realtime>, service: ChatService) {
    // One copy for every socket: a `ChatService` is a dozen handles (224 bytes).
    let service = Arc::new(service);
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(connection(stream, realtime.clone(), service.clone()));
            }
            Err(error) => {
                // Out of descriptors, usually: wait rather than spin.
                tracing::warn!(%error, "cannot accept a WebSocket connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// What the upgrade request asked for.
struct Upgrade {
    key: String,
    query: String,
    origin: Option<String>,
}

async fn connection(stream: TcpStream, realtime: Arc<Realtime>, service: Arc<ChatService>) {
    let _ = stream.set_nodelay(true);
    let enabled = service.settings().enabled;
    let mut upgrade = None;
    // The signature is tungstenite's handshake callback's.
    #[expect(
        clippy::result_large_err,
        reason = "the signature is tungstenite's handshake callback's"
    )]
    let inspect = |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        let refuse = |status: StatusCode| {
            let mut error = ErrorResponse::new(None);
            *error.status_mut() = status;
            error
        };
        let Some(key) = request.uri().path().strip_prefix("/app/") else {
            return Err(refuse(StatusCode::NOT_FOUND));
        };
        if !enabled {
            return Err(refuse(StatusCode::NOT_IMPLEMENTED));
        }
        upgrade = Some(Upgrade {
            key: key.to_owned(),
            query: request.uri().query().unwrap_or_default().to_owned(),
            origin: request
                .headers()
                .get("origin")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        });
        Ok(response)
    };
    let handshake =
        tokio_tungstenite::accept_hdr_async_with_config(stream, inspect, Some(config()));
    // Boxed: done once, and inline its state would stay in the socket's task for as
    // long as the socket lives.
    let handshake = Box::pin(handshake);
    let Ok(Ok(socket)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await else {
        return;
    };
    let Some(upgrade) = upgrade else {
        return;
    };
    let (sink, stream) = socket.split();
    let out = TungsteniteOut(sink);
    // The request's strings end here, not with the socket.
    let refused = refusal(
        &realtime,
        &upgrade.key,
        &upgrade.query,
        upgrade.origin.as_deref(),
    );
    drop(upgrade);
    match refused {
        Some((code, message)) => refuse(out, code, message).await,
        None => {
            Connection::new(realtime, out, service)
                .run(tungstenite_incoming(stream))
                .await
        }
    }
}
