//! A TCP proxy that a test puts between the service and a backend (Redis, PostgreSQL)
//! to break the link the ways a network does, above all the silent way: a flow that
//! stops carrying anything while neither end is told, as a partition or a load
//! balancer that dropped an idle flow's state does before any timeout fires.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// What happens to a connection made to the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arrivals {
    /// Forwarded to the target.
    Forward,
    /// Accepted and reset at once, as a port nobody listens on.
    Refuse,
    /// Accepted and never answered, as a host behind a partition.
    Blackhole,
}

/// One forwarded connection: both sockets, and whether it still carries bytes.
struct Flow {
    client: TcpStream,
    server: TcpStream,
    /// Set: bytes read from either side are dropped, and nothing is closed.
    frozen: AtomicBool,
    /// Set by a reset: both sockets were shut down.
    reset: AtomicBool,
}

struct State {
    flows: Mutex<Vec<Arc<Flow>>>,
    /// Connections accepted while blackholed, held open and unanswered.
    held: Mutex<Vec<TcpStream>>,
    arrivals: Mutex<Arrivals>,
    delay: Mutex<Duration>,
    /// Bytes read from a frozen flow and thrown away.
    dropped: AtomicU64,
    stopped: AtomicBool,
}

/// A loopback TCP proxy to `target`, on a free port, with faults on demand. Every
/// fault applies at once; [`heal`](Self::heal) undoes them. Stops when dropped.
pub struct FaultProxy {
    port: u16,
    state: Arc<State>,
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A copier thread that panicked leaves the data usable: recover it.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How often a copier looks up from a blocking read, to notice the proxy stopped.
const POLL: Duration = Duration::from_millis(100);

impl FaultProxy {
    /// Listens on a free loopback port and forwards every connection to `target`.
    pub fn start(target: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        listener.set_nonblocking(true)?;
        let state = Arc::new(State {
            flows: Mutex::default(),
            held: Mutex::default(),
            arrivals: Mutex::new(Arrivals::Forward),
            delay: Mutex::new(Duration::ZERO),
            dropped: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
        });
        let accepting = state.clone();
        std::thread::spawn(move || accept(listener, target, accepting));
        Ok(Self { port, state })
    }

    /// A proxy to a service on loopback `port`.
    pub fn to_port(port: u16) -> io::Result<Self> {
        Self::start(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `host:port` of the proxy, for a URL.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// How many connections it forwards now (frozen ones included).
    pub fn flows(&self) -> usize {
        locked(&self.state.flows).len()
    }

    /// How many bytes frozen flows have thrown away so far: a test waits on it to
    /// know the proxy has seen what was sent into the partition.
    pub fn dropped_bytes(&self) -> u64 {
        self.state.dropped.load(Ordering::SeqCst)
    }

    /// Every current flow stops carrying bytes, both ways, and nothing is closed:
    /// the silent death of a link. Connections made afterwards are forwarded.
    pub fn freeze(&self) {
        for flow in locked(&self.state.flows).iter() {
            flow.frozen.store(true, Ordering::SeqCst);
        }
    }

    /// Every current flow is reset (both sockets closed at once, without lingering).
    pub fn reset(&self) {
        for flow in locked(&self.state.flows).drain(..) {
            flow.reset.store(true, Ordering::SeqCst);
            for socket in [&flow.client, &flow.server] {
                let _ = socket2::SockRef::from(socket).set_linger(Some(Duration::ZERO));
                let _ = socket.shutdown(Shutdown::Both);
            }
        }
    }

    /// New connections are accepted and reset at once.
    pub fn refuse_new(&self) {
        *locked(&self.state.arrivals) = Arrivals::Refuse;
    }

    /// New connections are accepted and never answered.
    pub fn blackhole_new(&self) {
        *locked(&self.state.arrivals) = Arrivals::Blackhole;
    }

    /// A partition: every current flow frozen and every new one blackholed.
    pub fn partition(&self) {
        self.blackhole_new();
        self.freeze();
    }

    /// Every chunk of bytes waits `delay` before it is forwarded.
    pub fn delay(&self, delay: Duration) {
        *locked(&self.state.delay) = delay;
    }

    /// Undoes every fault: frozen flows carry bytes again (what was sent meanwhile
    /// is lost, as a network loses it), new connections are forwarded, no delay, and
    /// the connections held unanswered are closed.
    pub fn heal(&self) {
        *locked(&self.state.arrivals) = Arrivals::Forward;
        *locked(&self.state.delay) = Duration::ZERO;
        for flow in locked(&self.state.flows).iter() {
            flow.frozen.store(false, Ordering::SeqCst);
        }
        for held in locked(&self.state.held).drain(..) {
            let _ = held.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.state.stopped.store(true, Ordering::SeqCst);
        self.reset();
        self.heal();
    }
}

fn accept(listener: TcpListener, target: SocketAddr, state: Arc<State>) {
    while !state.stopped.load(Ordering::SeqCst) {
        let client = match listener.accept() {
            Ok((client, _)) => client,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            Err(_) => continue,
        };
        let _ = client.set_nonblocking(false);
        let arrivals = *locked(&state.arrivals);
        match arrivals {
            Arrivals::Refuse => {
                let _ = socket2::SockRef::from(&client).set_linger(Some(Duration::ZERO));
                drop(client);
            }
            Arrivals::Blackhole => locked(&state.held).push(client),
            Arrivals::Forward => {
                let Ok(server) = TcpStream::connect_timeout(&target, Duration::from_secs(2)) else {
                    continue;
                };
                let _ = server.set_nodelay(true);
                let _ = client.set_nodelay(true);
                let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else {
                    continue;
                };
                let flow = Arc::new(Flow {
                    client,
                    server,
                    frozen: AtomicBool::new(false),
                    reset: AtomicBool::new(false),
                });
                locked(&state.flows).push(flow.clone());
                let (up, down) = (flow.clone(), state.clone());
                std::thread::spawn(move || copy(client2, &up, Direction::Up, &down));
                let state = state.clone();
                std::thread::spawn(move || copy(server2, &flow, Direction::Down, &state));
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Direction {
    /// Client to server.
    Up,
    /// Server to client.
    Down,
}

/// Copies what `from` reads to the flow's other socket, dropping it while the flow is
/// frozen; at the end (either side closed, or the proxy stopped) closes the other
/// side's write half, as the first side closed, and forgets the flow. A frozen flow
/// does not carry a close either: the other side learns of it only once the flow is
/// healed, as behind a partition the peer never hears the FIN.
fn copy(mut from: TcpStream, flow: &Arc<Flow>, direction: Direction, state: &State) {
    let mut to = match direction {
        Direction::Up => &flow.server,
        Direction::Down => &flow.client,
    };
    let _ = from.set_read_timeout(Some(POLL));
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if state.stopped.load(Ordering::SeqCst) {
            break;
        }
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if flow.frozen.load(Ordering::SeqCst) {
                    state.dropped.fetch_add(n as u64, Ordering::SeqCst);
                    continue;
                }
                let delay = *locked(&state.delay);
                if !delay.is_zero() {
                    std::thread::sleep(delay);
                }
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    while flow.frozen.load(Ordering::SeqCst)
        && !flow.reset.load(Ordering::SeqCst)
        && !state.stopped.load(Ordering::SeqCst)
    {
        std::thread::sleep(POLL);
    }
    let _ = to.shutdown(Shutdown::Write);
    locked(&state.flows).retain(|f| !Arc::ptr_eq(f, flow));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;

    /// An echo server on loopback: each line comes back.
    fn echo() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for conn in listener.incoming().take(16) {
                let Ok(conn) = conn else { continue };
                std::thread::spawn(move || {
                    let mut out = conn.try_clone().unwrap();
                    for line in io::BufReader::new(conn).lines() {
                        let Ok(line) = line else { break };
                        if writeln!(out, "{line}").is_err() {
                            break;
                        }
                    }
                });
            }
        });
        port
    }

    fn connect(proxy: &FaultProxy) -> (TcpStream, io::BufReader<TcpStream>) {
        let stream = TcpStream::connect(proxy.address()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let reader = io::BufReader::new(stream.try_clone().unwrap());
        (stream, reader)
    }

    fn round_trip(stream: &mut TcpStream, reader: &mut io::BufReader<TcpStream>) -> Option<String> {
        writeln!(stream, "ping").ok()?;
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(n) if n > 0 => Some(line.trim().to_owned()),
            _ => None,
        }
    }

    #[test]
    fn a_frozen_flow_carries_nothing_and_stays_open_while_new_flows_work() {
        let proxy = FaultProxy::to_port(echo()).unwrap();
        let (mut old, mut old_reader) = connect(&proxy);
        assert_eq!(
            round_trip(&mut old, &mut old_reader).as_deref(),
            Some("ping")
        );
        proxy.freeze();
        writeln!(old, "lost").unwrap();
        // No answer, and not closed either: the read times out instead of ending.
        let mut line = String::new();
        let read = old_reader.read_line(&mut line);
        assert!(
            matches!(&read, Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)),
            "a frozen flow neither answers nor closes: {read:?}"
        );
        // Heal only once the proxy has thrown the bytes away (bounded wait), so what
        // was sent into the partition can never leak out after it.
        for _ in 0..100 {
            if proxy.dropped_bytes() >= 5 {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(proxy.dropped_bytes(), 5, "\"lost\\n\" was dropped");
        let (mut new, mut new_reader) = connect(&proxy);
        assert_eq!(
            round_trip(&mut new, &mut new_reader).as_deref(),
            Some("ping")
        );
        proxy.heal();
        // Bytes sent while frozen are lost; the flow carries again.
        assert_eq!(
            round_trip(&mut old, &mut old_reader).as_deref(),
            Some("ping")
        );
    }

    #[test]
    fn blackholed_and_refused_connections_get_no_answer() {
        let proxy = FaultProxy::to_port(echo()).unwrap();
        proxy.blackhole_new();
        let (mut held, mut held_reader) = connect(&proxy);
        assert_eq!(round_trip(&mut held, &mut held_reader), None);
        proxy.refuse_new();
        let (mut refused, mut refused_reader) = connect(&proxy);
        assert_eq!(round_trip(&mut refused, &mut refused_reader), None);
        proxy.heal();
        let (mut fine, mut fine_reader) = connect(&proxy);
        assert_eq!(
            round_trip(&mut fine, &mut fine_reader).as_deref(),
            Some("ping")
        );
    }

    #[test]
    fn a_reset_closes_every_flow() {
        let proxy = FaultProxy::to_port(echo()).unwrap();
        let (mut a, mut a_reader) = connect(&proxy);
        assert!(round_trip(&mut a, &mut a_reader).is_some());
        assert_eq!(proxy.flows(), 1);
        proxy.reset();
        let mut line = String::new();
        let read = a_reader.read_line(&mut line);
        assert!(matches!(read, Ok(0) | Err(_)), "closed: {read:?}");
    }
}
