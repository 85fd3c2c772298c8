//! The two WebSocket servers a Pusher connection can run on: actix-ws inside the HTTP
//! server (`/app/{key}` on `CHAT_BIND`), and tokio-tungstenite on its own listener
//! (`CHAT_WS_BIND`), whose per-connection state is a fraction of an actix-http
//! dispatcher's. The connection loop ([`super::socket`]) sees only these two traits.

use super::hub::Frame;
use futures::{SinkExt, Stream, StreamExt};
use std::future::Future;

/// A frame from the client, as the connection loop cares about it.
pub enum Incoming {
    Text(String),
    Ping(Vec<u8>),
    Close,
    /// Binary frames and pongs: they only prove the client is there.
    Other,
    /// A protocol or transport error, or the end of the stream: the socket is done.
    Broken,
}

/// The client is gone: nothing more can be sent, and the connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gone;

/// The sending half of a WebSocket.
pub trait Outgoing: Send {
    fn text(&mut self, text: &str) -> impl Future<Output = Result<(), Gone>> + Send;
    /// Frames the hub queued, in order; a transport that can writes them together.
    fn texts(&mut self, frames: &[Frame]) -> impl Future<Output = Result<(), Gone>> + Send {
        async move {
            for frame in frames {
                self.text(frame).await?;
            }
            Ok(())
        }
    }
    fn pong(&mut self, payload: Vec<u8>) -> impl Future<Output = Result<(), Gone>> + Send;
    /// Closes with a code and reason (`None`: a normal close).
    fn close(self, reason: Option<(u16, String)>) -> impl Future<Output = ()> + Send;
}

impl Outgoing for actix_ws::Session {
    async fn text(&mut self, text: &str) -> Result<(), Gone> {
        actix_ws::Session::text(self, text.to_owned())
            .await
            .map_err(|_| Gone)
    }

    async fn pong(&mut self, payload: Vec<u8>) -> Result<(), Gone> {
        actix_ws::Session::pong(self, &payload)
            .await
            .map_err(|_| Gone)
    }

    async fn close(self, reason: Option<(u16, String)>) {
        let reason = reason.map(|(code, message)| actix_ws::CloseReason {
            code: actix_ws::CloseCode::from(code),
            description: Some(message),
        });
        let _ = actix_ws::Session::close(self, reason).await;
    }
}

/// The frames of an actix-ws socket.
pub fn actix_incoming(
    stream: actix_ws::AggregatedMessageStream,
) -> impl Stream<Item = Incoming> + Unpin {
    stream.map(|message| match message {
        Ok(actix_ws::AggregatedMessage::Text(text)) => Incoming::Text(text.to_string()),
        Ok(actix_ws::AggregatedMessage::Ping(bytes)) => Incoming::Ping(bytes.to_vec()),
        Ok(actix_ws::AggregatedMessage::Close(_)) => Incoming::Close,
        Ok(actix_ws::AggregatedMessage::Binary(_) | actix_ws::AggregatedMessage::Pong(_)) => {
            Incoming::Other
        }
        Err(_) => Incoming::Broken,
    })
}

type Tungstenite = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;
type Message = tokio_tungstenite::tungstenite::Message;

/// The sending half of a tokio-tungstenite socket.
pub struct TungsteniteOut(pub futures::stream::SplitSink<Tungstenite, Message>);

impl Outgoing for TungsteniteOut {
    async fn text(&mut self, text: &str) -> Result<(), Gone> {
        self.0.send(Message::text(text)).await.map_err(|_| Gone)
    }

    /// Buffered, then written with one flush: when a socket falls behind (the machine
    /// busy), the frames that queued up meanwhile cost one write, not one each.
    async fn texts(&mut self, frames: &[Frame]) -> Result<(), Gone> {
        for frame in frames {
            self.0
                .feed(Message::text(&**frame))
                .await
                .map_err(|_| Gone)?;
        }
        self.0.flush().await.map_err(|_| Gone)
    }

    async fn pong(&mut self, payload: Vec<u8>) -> Result<(), Gone> {
        self.0
            .send(Message::Pong(payload.into()))
            .await
            .map_err(|_| Gone)
    }

    async fn close(mut self, reason: Option<(u16, String)>) {
        use tokio_tungstenite::tungstenite::protocol::CloseFrame;
        let frame = reason.map(|(code, message)| CloseFrame {
            code: code.into(),
            reason: message.into(),
        });
        let _ = self.0.send(Message::Close(frame)).await;
        let _ = self.0.close().await;
    }
}

/// The frames of a tokio-tungstenite socket.
pub fn tungstenite_incoming(
    stream: futures::stream::SplitStream<Tungstenite>,
) -> impl Stream<Item = Incoming> + Unpin {
    stream.map(|message| match message {
        Ok(Message::Text(text)) => Incoming::Text(text.as_str().to_owned()),
        Ok(Message::Ping(bytes)) => Incoming::Ping(bytes.to_vec()),
        Ok(Message::Close(_)) => Incoming::Close,
        Ok(Message::Binary(_) | Message::Pong(_) | Message::Frame(_)) => Incoming::Other,
        Err(_) => Incoming::Broken,
    })
}
