//! `pusher-load`: opens N subscribed connections over M private channels of any
//! Pusher-protocol server, triggers events at a fixed rate (or as fast as it can), and
//! reports trigger-to-delivery latency (p50, p99, max), deliveries per second, and the
//! server's resident memory per idle connection.
//!
//! Subscriptions are signed here with the app secret, as the server's own authorizer
//! would sign them, so any server works. Events are triggered either through
//! chat-server's API (`--trigger chat`: a text message whose text carries the send
//! time) or through the Pusher HTTP API (`--trigger pusher`: `POST
//! /apps/{id}/events`, which soketi and Pusher itself serve).
#![forbid(unsafe_code)]

use clap::{Parser, ValueEnum};
use futures::{SinkExt, StreamExt};
use md5::{Digest, Md5};
use ring::hmac;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

#[derive(Clone, Copy, ValueEnum)]
enum Trigger {
    /// chat-server: register requests, open threads, post text messages (admin token).
    Chat,
    /// The Pusher HTTP API: `POST /apps/{app_id}/events`, signed with key and secret.
    Pusher,
}

#[derive(Parser)]
#[command(name = "pusher-load", version, about)]
struct Args {
    /// The server, e.g. http://127.0.0.1:8080 (WebSocket at ws://…/app/{key}).
    #[arg(long)]
    url: String,
    /// Where the WebSockets go when not on `--url`, e.g. chat-server's `CHAT_WS_BIND`
    /// (http://127.0.0.1:8081).
    #[arg(long)]
    ws_url: Option<String>,
    #[arg(long)]
    key: String,
    #[arg(long)]
    secret: String,
    /// Needed by `--trigger pusher`.
    #[arg(long, default_value = "chat")]
    app_id: String,
    #[arg(long, value_enum, default_value = "chat")]
    trigger: Trigger,
    /// An admin bearer token, for `--trigger chat`.
    #[arg(long)]
    token: Option<String>,
    /// Subscribed connections.
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// Channels they spread over (connection i joins channel i mod M).
    #[arg(long, default_value_t = 100)]
    channels: usize,
    /// Triggers per second; 0 triggers as fast as `--concurrency` allows.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Triggers in flight at most.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// How long to trigger, seconds; 0 only connects, measures and exits.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// The server's process id, to read its resident memory and the CPU time it spends
    /// while triggering (Linux).
    #[arg(long)]
    server_pid: Option<u32>,
    /// The first request id `--trigger chat` registers (ids must be unused).
    #[arg(long, default_value_t = 1_000_000)]
    first_request: u64,
    /// Each socket whispers (`client-typing` on its channel) every this many seconds,
    /// from a random start; 0: never.
    #[arg(long, default_value_t = 0)]
    whisper_every: u64,
    /// Inbox reads (`GET /api/chat/threads?scope=all`, the `--token`) per second while
    /// triggering; 0: none.
    #[arg(long, default_value_t = 0)]
    inbox_reads: u64,
    /// Prints the running counts every this many seconds while triggering; 0: only at
    /// the end.
    #[arg(long, default_value_t = 0)]
    report_every: u64,
    /// Loopback source addresses the sockets connect from, in turn (127.0.0.1 up to
    /// 127.0.0.N): one address reaches one server port from about 28,000 ephemeral
    /// ports at most, so 100,000 sockets need four.
    #[arg(long, default_value_t = 1)]
    sources: u8,
}

/// What happened so far, for the running reports.
#[derive(Default)]
struct Counters {
    delivered: AtomicU64,
    whispers: AtomicU64,
    /// Sockets the server closed (or that broke) after they subscribed.
    closed: AtomicU64,
    inbox_reads: AtomicU64,
    inbox_failed: AtomicU64,
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// CPU time (user + system) the process has used, in seconds (Linux `/proc`, at the
/// kernel's clock-tick resolution, 100 Hz on common kernels).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The name may hold spaces: fields are counted from after its closing parenthesis.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let (user, system): (f64, f64) = (fields.get(11)?.parse().ok()?, fields.get(12)?.parse().ok()?);
    Some((user + system) / 100.0)
}

/// The send time a delivered event carries: `data.sent`, or a text `t:<micros>`, read
/// off the frame as it came (`data` is JSON encoded in a string) rather than parsed:
/// the load generator shares the machine with the server, and parsing every delivery
/// twice cost more CPU than the server spent delivering it (docs/BENCHMARKS.md).
/// Only the trigger's own markers are looked for: each miss is a scan of the frame.
fn sent_at(frame: &str, trigger: Trigger) -> Option<u64> {
    let markers: &[&str] = match trigger {
        Trigger::Pusher => &["\\\"sent\\\":", "\"sent\":"],
        Trigger::Chat => &["\\\"t:", "\"t:"],
    };
    markers.iter().find_map(|marker| {
        let rest = &frame[frame.find(marker)? + marker.len()..];
        let end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        rest[..end].parse().ok()
    })
}

struct Target {
    args: Args,
    /// Where the WebSockets connect, resolved once.
    ws_server: std::net::SocketAddr,
    http: reqwest::Client,
    signer: hmac::Key,
    counters: Counters,
}

impl Target {
    fn ws_url(&self) -> String {
        let base = self
            .args
            .ws_url
            .as_deref()
            .unwrap_or(&self.args.url)
            .replacen("http", "ws", 1);
        format!("{base}/app/{}?protocol=7&client=pusher-load", self.args.key)
    }

    /// The channels, created on the server first when it is chat-server (32 at a time).
    async fn channels(&self) -> Result<Vec<String>, String> {
        futures::stream::iter(0..self.args.channels as u64)
            .map(|i| self.channel(i))
            .buffered(32)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect()
    }

    async fn channel(&self, i: u64) -> Result<String, String> {
        let Trigger::Chat = self.args.trigger else {
            return Ok(format!("private-load.{i}"));
        };
        let token = self.args.token.as_deref().ok_or("--token is required")?;
        let request = self.args.first_request + i;
        let url = &self.args.url;
        self.http
            .put(format!("{url}/api/requests/{request}"))
            .bearer_auth(token)
            .json(&json!({"client_id": 1}))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let opened: Value = self
            .http
            .post(format!("{url}/api/requests/{request}/chat/open"))
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        let thread = opened["threadId"].as_i64().ok_or("no threadId")?;
        Ok(format!("private-chat.{thread}"))
    }

    /// A TCP connection to the WebSocket server from `source` (any free port).
    async fn connect_from(&self, source: std::net::Ipv4Addr) -> std::io::Result<TcpStream> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(std::net::SocketAddr::from((source, 0)))?;
        socket.connect(self.ws_server).await
    }

    /// Connects, subscribes to `channel`, then forwards each event's latency.
    async fn subscriber(
        self: Arc<Self>,
        source: std::net::Ipv4Addr,
        channel: String,
        latencies: mpsc::UnboundedSender<u64>,
        ready: mpsc::Sender<Result<(), String>>,
    ) {
        let fail = |e: String| {
            let ready = ready.clone();
            async move {
                let _ = ready.send(Err(e)).await;
            }
        };
        // tungstenite zeroes its whole read buffer (128 KiB by default) before each
        // read: with a thousand sockets that was a third of this process's CPU.
        let config = WebSocketConfig::default().read_buffer_size(4096);
        let stream = match self.connect_from(source).await {
            Ok(stream) => stream,
            Err(e) => return fail(format!("connect from {source} failed: {e}")).await,
        };
        let handshake =
            tokio_tungstenite::client_async_with_config(self.ws_url(), stream, Some(config));
        let Ok((mut ws, _)) = handshake.await else {
            return fail("handshake failed".into()).await;
        };
        let mut socket_id = None;
        let mut subscribed = false;
        let every = Duration::from_secs(self.args.whisper_every.max(1));
        let offset = Duration::from_millis(now_micros() % every.as_millis().max(1) as u64);
        let mut whispers = tokio::time::interval_at(tokio::time::Instant::now() + offset, every);
        loop {
            let text = tokio::select! {
                message = ws.next() => match message {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(_)) => continue,
                    Some(Err(_)) | None => break,
                },
                _ = whispers.tick(), if subscribed && self.args.whisper_every > 0 => {
                    let whisper = json!({"event": "client-typing", "channel": channel,
                        "data": {"typing": true}});
                    if ws.send(Message::Text(whisper.to_string().into())).await.is_err() {
                        break;
                    }
                    self.counters.whispers.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            };
            // The events triggered; the protocol's own (`pusher:…`) are parsed below.
            if socket_id.is_some() && !text.contains("\"pusher") {
                if let Some(sent) = sent_at(&text, self.args.trigger) {
                    self.counters.delivered.fetch_add(1, Ordering::Relaxed);
                    let _ = latencies.send(now_micros().saturating_sub(sent));
                }
                continue;
            }
            let frame: Value = serde_json::from_str(&text).unwrap_or_default();
            match frame["event"].as_str() {
                Some("pusher:connection_established") => {
                    let (id, subscribe) = self.subscription(&frame, &channel);
                    if ws.send(subscribe).await.is_err() {
                        return fail("send failed".into()).await;
                    }
                    socket_id = Some(id);
                }
                Some("pusher_internal:subscription_succeeded") => {
                    subscribed = true;
                    let _ = ready.send(Ok(())).await;
                }
                Some("pusher:subscription_error") | Some("pusher:error") => {
                    return fail(format!("refused: {text}")).await;
                }
                Some("pusher:ping") => {
                    let pong = json!({"event": "pusher:pong", "data": {}}).to_string();
                    let _ = ws.send(Message::Text(pong.into())).await;
                }
                _ => {}
            }
        }
        if subscribed {
            self.counters.closed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The socket id of `pusher:connection_established`, and the signed subscription
    /// to `channel` for it.
    fn subscription(&self, established: &Value, channel: &str) -> (String, Message) {
        let data: Value = established["data"]
            .as_str()
            .and_then(|d| serde_json::from_str(d).ok())
            .unwrap_or_default();
        let id = data["socket_id"].as_str().unwrap_or_default().to_owned();
        let tag = hmac::sign(&self.signer, format!("{id}:{channel}").as_bytes());
        let auth = format!("{}:{}", self.args.key, hex::encode(tag));
        let subscribe = json!({"event": "pusher:subscribe",
            "data": {"channel": channel, "auth": auth}});
        (id, Message::Text(subscribe.to_string().into()))
    }

    /// Reads the inbox `--inbox-reads` times a second until `deadline`.
    async fn read_inboxes(self: Arc<Self>, deadline: Instant) {
        let mut ticks =
            tokio::time::interval(Duration::from_secs_f64(1.0 / self.args.inbox_reads as f64));
        let url = format!("{}/api/chat/threads?scope=all&limit=20", self.args.url);
        while Instant::now() < deadline {
            ticks.tick().await;
            let read = self
                .http
                .get(&url)
                .bearer_auth(self.args.token.as_deref().unwrap_or_default())
                .send()
                .await;
            let counter = match read {
                Ok(r) if r.status().is_success() => &self.counters.inbox_reads,
                _ => &self.counters.inbox_failed,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Prints the running counts every `--report-every` seconds until `deadline`.
    async fn report(
        self: Arc<Self>,
        sent: Arc<AtomicU64>,
        failed: Arc<AtomicU64>,
        deadline: Instant,
    ) {
        let every = Duration::from_secs(self.args.report_every);
        let started = Instant::now();
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        while Instant::now() < deadline {
            ticks.tick().await;
            let c = &self.counters;
            println!(
                "at {:.0} s: triggered {} ({} failed), delivered {}, whispers {}, inbox reads {} ({} failed), sockets closed {}",
                started.elapsed().as_secs_f64(),
                sent.load(Ordering::Relaxed),
                failed.load(Ordering::Relaxed),
                c.delivered.load(Ordering::Relaxed),
                c.whispers.load(Ordering::Relaxed),
                c.inbox_reads.load(Ordering::Relaxed),
                c.inbox_failed.load(Ordering::Relaxed),
                c.closed.load(Ordering::Relaxed),
            );
        }
    }

    async fn trigger(&self, channel: &str, thread_url: &str) -> bool {
        let sent = now_micros();
        let response = match self.args.trigger {
            Trigger::Chat => {
                self.http
                    .post(thread_url)
                    .bearer_auth(self.args.token.as_deref().unwrap_or_default())
                    .json(&json!({"type": "text", "text": format!("t:{sent}")}))
                    .send()
                    .await
            }
            Trigger::Pusher => {
                let body = json!({"name": "load", "channels": [channel],
                    "data": json!({"sent": sent}).to_string()})
                .to_string();
                let path = format!("/apps/{}/events", self.args.app_id);
                let query = format!(
                    "auth_key={}&auth_timestamp={}&auth_version=1.0&body_md5={}",
                    self.args.key,
                    sent / 1_000_000,
                    hex::encode(Md5::digest(body.as_bytes()))
                );
                let tag = hmac::sign(&self.signer, format!("POST\n{path}\n{query}").as_bytes());
                self.http
                    .post(format!(
                        "{}{path}?{query}&auth_signature={}",
                        self.args.url,
                        hex::encode(tag)
                    ))
                    .header("Content-Type", "application/json")
                    .body(body)
                    .send()
                    .await
            }
        };
        response.is_ok_and(|r| r.status().is_success())
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

/// The IPv4 address of the server at `url` (`http://host:port`).
async fn ipv4_address(url: &str) -> Result<std::net::SocketAddr, String> {
    let authority = url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .ok_or_else(|| format!("{url:?} names no host"))?;
    tokio::net::lookup_host(authority)
        .await
        .map_err(|e| format!("{authority}: {e}"))?
        .find(std::net::SocketAddr::is_ipv4)
        .ok_or_else(|| format!("{authority}: no IPv4 address"))
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args = Args::parse();
    let signer = hmac::Key::new(hmac::HMAC_SHA256, args.secret.as_bytes());
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()
        .map_err(|e| e.to_string())?;
    let ws_server = ipv4_address(args.ws_url.as_deref().unwrap_or(&args.url)).await?;
    let target = Arc::new(Target {
        args,
        ws_server,
        http,
        signer,
        counters: Counters::default(),
    });
    let args = &target.args;
    let channels = target.channels().await?;
    let rss_before = args.server_pid.and_then(rss_bytes);
    let (subscribed, mut latency_rx) = target.subscribe_all(&channels).await?;
    tokio::time::sleep(Duration::from_secs(2)).await; // let the server settle
    if let (Some(before), Some(after)) = (rss_before, args.server_pid.and_then(rss_bytes)) {
        println!(
            "server resident memory: {:.1} MiB before, {:.1} MiB with the connections: {:.1} KB per idle connection",
            before as f64 / 1048576.0,
            after as f64 / 1048576.0,
            after.saturating_sub(before) as f64 / 1024.0 / subscribed.max(1) as f64
        );
    }
    if args.seconds == 0 {
        return Ok(());
    }
    let cpu_before = (
        args.server_pid.and_then(cpu_seconds),
        cpu_seconds(std::process::id()),
    );
    let triggered = target.clone().trigger_all(&channels).await;
    // Collect what arrives, until nothing has for a second.
    let mut latencies = Vec::new();
    while let Ok(Some(l)) = tokio::time::timeout(Duration::from_secs(1), latency_rx.recv()).await {
        latencies.push(l);
    }
    let collect_secs = triggered.started.elapsed().as_secs_f64();
    let cpu_after = (
        args.server_pid.and_then(cpu_seconds),
        cpu_seconds(std::process::id()),
    );
    latencies.sort_unstable();
    let per_channel = (subscribed / channels.len()).max(1) as u64;
    target.print_results(&triggered, &latencies, per_channel, collect_secs);
    let per_delivery = |before: Option<f64>, after: Option<f64>| {
        let used = after? - before?;
        Some((used, used * 1e6 / latencies.len().max(1) as f64))
    };
    if let Some((used, each)) = per_delivery(cpu_before.0, cpu_after.0) {
        println!("server CPU while triggering: {used:.2} s, {each:.1} µs per delivery");
    }
    // On a machine the server shares, what the measuring costs limits what it can see.
    if let Some((used, each)) = per_delivery(cpu_before.1, cpu_after.1) {
        println!("load generator CPU while triggering: {used:.2} s, {each:.1} µs per delivery");
    }
    Ok(())
}

/// What the trigger phase did.
struct Triggered {
    started: Instant,
    secs: f64,
    sent: u64,
    failed: u64,
}

impl Target {
    /// Connects and subscribes `--connections` sockets over the channels, 200
    /// handshakes at a time; returns how many, and where their latencies arrive.
    async fn subscribe_all(
        self: &Arc<Self>,
        channels: &[String],
    ) -> Result<(usize, mpsc::UnboundedReceiver<u64>), String> {
        let started = Instant::now();
        let (latency_tx, latency_rx) = mpsc::unbounded_channel();
        let (ready_tx, mut ready_rx) = mpsc::channel(self.args.connections.max(1));
        let mut subscribed = 0;
        let sources = usize::from(self.args.sources.max(1));
        for batch in (0..self.args.connections).collect::<Vec<_>>().chunks(200) {
            for &i in batch {
                let channel = channels[i % channels.len()].clone();
                let source = std::net::Ipv4Addr::new(127, 0, 0, 1 + (i % sources) as u8);
                tokio::spawn(self.clone().subscriber(
                    source,
                    channel,
                    latency_tx.clone(),
                    ready_tx.clone(),
                ));
            }
            for _ in batch {
                match tokio::time::timeout(Duration::from_secs(30), ready_rx.recv()).await {
                    Ok(Some(Ok(()))) => subscribed += 1,
                    Ok(Some(Err(e))) => return Err(format!("a subscriber failed: {e}")),
                    _ => return Err("subscribing timed out".into()),
                }
            }
        }
        println!(
            "subscribed {subscribed} connections over {} channels in {:.1} s",
            channels.len(),
            started.elapsed().as_secs_f64()
        );
        Ok((subscribed, latency_rx))
    }

    /// Triggers at `--rate` (or flat out) for `--seconds`, spreading over the channels,
    /// `--concurrency` requests at most in flight.
    async fn trigger_all(self: Arc<Self>, channels: &[String]) -> Triggered {
        let args = &self.args;
        let thread_urls: Vec<String> = channels
            .iter()
            .map(|c| {
                let thread = c.rsplit('.').next().unwrap_or_default();
                format!("{}/api/chat/threads/{thread}/messages", args.url)
            })
            .collect();
        let (sent, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let permits = Arc::new(tokio::sync::Semaphore::new(args.concurrency));
        let deadline = Instant::now() + Duration::from_secs(args.seconds);
        let mut ticks = (args.rate > 0).then(|| {
            let mut t = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate as f64));
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            t
        });
        let started = Instant::now();
        if args.inbox_reads > 0 {
            tokio::spawn(self.clone().read_inboxes(deadline));
        }
        if args.report_every > 0 {
            tokio::spawn(self.clone().report(sent.clone(), failed.clone(), deadline));
        }
        for n in 0.. {
            if Instant::now() >= deadline {
                break;
            }
            if let Some(t) = ticks.as_mut() {
                t.tick().await;
            }
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            let (target, sent, failed) = (self.clone(), sent.clone(), failed.clone());
            let (channel, url) = (
                channels[n % channels.len()].clone(),
                thread_urls[n % channels.len()].clone(),
            );
            tokio::spawn(async move {
                let counter = if target.trigger(&channel, &url).await {
                    sent
                } else {
                    failed
                };
                counter.fetch_add(1, Ordering::Relaxed);
                drop(permit);
            });
        }
        let _ = permits.acquire_many(args.concurrency as u32).await;
        Triggered {
            started,
            secs: started.elapsed().as_secs_f64(),
            sent: sent.load(Ordering::Relaxed),
            failed: failed.load(Ordering::Relaxed),
        }
    }

    fn print_results(
        &self,
        triggered: &Triggered,
        latencies: &[u64],
        per_channel: u64,
        collect_secs: f64,
    ) {
        let Triggered {
            secs, sent, failed, ..
        } = *triggered;
        println!(
            "triggered {sent} events in {secs:.1} s ({:.0}/s), {failed} failed",
            sent as f64 / secs
        );
        println!(
            "deliveries: {} of {} expected, {:.0}/s",
            latencies.len(),
            sent * per_channel,
            latencies.len() as f64 / (collect_secs - 1.0).max(secs)
        );
        let c = &self.counters;
        println!(
            "whispers {}, inbox reads {} ({} failed), sockets closed by the server {}",
            c.whispers.load(Ordering::Relaxed),
            c.inbox_reads.load(Ordering::Relaxed),
            c.inbox_failed.load(Ordering::Relaxed),
            c.closed.load(Ordering::Relaxed)
        );
        println!(
            "trigger-to-delivery latency: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            percentile(latencies, 0.50),
            percentile(latencies, 0.99),
            percentile(latencies, 1.0)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::{sent_at, Trigger};

    #[test]
    fn reads_the_send_time_of_either_trigger() {
        // The Pusher HTTP API relays `data` as the string it was given.
        let relayed = r#"{"event":"load","channel":"private-chat.thread.7","data":"{\"sent\":1764000000123456}"}"#;
        assert_eq!(
            sent_at(relayed, Trigger::Pusher),
            Some(1_764_000_000_123_456)
        );
        let object = r#"{"event":"load","data":{"sent":42}}"#;
        assert_eq!(sent_at(object, Trigger::Pusher), Some(42));
        // chat-server: the message, with its text `t:<micros>`.
        let posted = r#"{"event":"message.created","channel":"private-chat.thread.7","data":"{\"id\":1796181071548402,\"type\":\"text\",\"text\":\"t:1764000000654321\",\"sentAt\":\"2026-12-02T00:00:00Z\"}"}"#;
        assert_eq!(sent_at(posted, Trigger::Chat), Some(1_764_000_000_654_321));
        assert_eq!(
            sent_at(posted, Trigger::Pusher),
            None,
            "not a field of a post"
        );
        assert_eq!(
            sent_at(
                r#"{"event":"message.created","data":"{\"text\":\"hello\"}"}"#,
                Trigger::Chat
            ),
            None
        );
    }
}
