//! Highly available Redis deployments for tests: a Redis Cluster and a Sentinel group,
//! made of private `redis-server` processes on free loopback ports.

use crate::free_port;
use crate::proxy::FaultProxy;
use crate::redis::TestRedis;
use std::io;
use std::time::{Duration, Instant};

/// A Redis Cluster of three masters, each with one replica (`redis-cli --cluster
/// create`), with a node timeout of one second, so that a replica takes over within a
/// few seconds of its master's death.
pub struct TestRedisCluster {
    nodes: Vec<TestRedis>,
    /// With [`TestRedisCluster::start_behind_proxies`]: one proxy per node, in the
    /// nodes' order, whose address is the one the node announces to clients.
    proxies: Vec<FaultProxy>,
}

/// Up to three attempts at `start`: on a machine busy with many tests, a bus port
/// taken meanwhile or a node timing out while the cluster forms fails one attempt.
fn with_retries<T>(what: &str, start: impl Fn() -> io::Result<T>) -> io::Result<T> {
    let mut last = None;
    for _ in 0..3 {
        match start() {
            Ok(started) => return Ok(started),
            Err(e) => {
                eprintln!("{what} did not start, trying again: {e}");
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no attempt")))
}

impl TestRedisCluster {
    pub fn start() -> io::Result<Self> {
        with_retries("the Redis cluster", || Self::start_once(false))
    }

    /// A cluster whose nodes each sit behind a [`FaultProxy`] and announce its address
    /// (`cluster-announce-port`): every client connection, to the seeds and to the
    /// nodes `CLUSTER SLOTS` names, goes through the node's proxy, so a test can
    /// break one shard's links (the nodes' own bus does not).
    pub fn start_behind_proxies() -> io::Result<Self> {
        with_retries("the Redis cluster behind proxies", || {
            Self::start_once(true)
        })
    }

    fn start_once(behind_proxies: bool) -> io::Result<Self> {
        let mut nodes = Vec::new();
        for _ in 0..6 {
            let bus = free_port()?.to_string();
            nodes.push(TestRedis::start_with(&[
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "1000",
                "--cluster-port",
                &bus,
                // A replica syncs at once rather than after Redis's 5 s default.
                "--repl-diskless-sync-delay",
                "0",
            ])?);
        }
        let mut proxies = Vec::new();
        if behind_proxies {
            for node in &nodes {
                let proxy = FaultProxy::to_port(node.port())?;
                let port = proxy.port().to_string();
                node.cli(&["CONFIG", "SET", "cluster-announce-port", &port])?;
                proxies.push(proxy);
            }
        }
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let out = std::process::Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "redis-cli --cluster create: {}",
                String::from_utf8_lossy(&out.stdout)
            )));
        }
        let cluster = Self { nodes, proxies };
        cluster.wait_healthy(Duration::from_secs(20))?;
        cluster.wait_replicated(Duration::from_secs(20))?;
        Ok(cluster)
    }

    /// Until every replica has synced with its master, so that a master may die.
    fn wait_replicated(&self, within: Duration) -> io::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            if self.nodes.iter().filter(|n| synced_replica(n)).count() == 3 {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(io::Error::other("the replicas did not sync"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every node, comma-separated: what `CHAT_REDIS_URL` takes in cluster mode
    /// (through the proxies, when the nodes sit behind them).
    pub fn url(&self) -> String {
        match self.proxies.is_empty() {
            true => self.nodes.iter().map(TestRedis::url).collect::<Vec<_>>(),
            false => self
                .proxies
                .iter()
                .map(|p| format!("redis://{}", p.address()))
                .collect(),
        }
        .join(",")
    }

    /// The proxy in front of `node`, when the nodes sit behind proxies.
    pub fn proxy_of(&self, node: &TestRedis) -> Option<&FaultProxy> {
        let at = self.nodes.iter().position(|n| n.port() == node.port())?;
        self.proxies.get(at)
    }

    pub fn nodes(&self) -> &[TestRedis] {
        &self.nodes
    }

    /// The node that is master of `key`'s slot now.
    pub fn master_of(&self, key: &str) -> io::Result<&TestRedis> {
        for node in self.live() {
            let slot: u16 = text(node.cli(&["CLUSTER", "KEYSLOT", key])?)
                .trim()
                .parse()
                .map_err(io::Error::other)?;
            let nodes = text(node.cli(&["CLUSTER", "NODES"])?);
            let Some(owner) = nodes.lines().find(|line| serves(line, slot)) else {
                continue;
            };
            let port = owner
                .split_whitespace()
                .nth(1)
                .and_then(|a| a.split('@').next())
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| p.parse::<u16>().ok());
            // A node announces its proxy's port when it sits behind one.
            let announced = |i: usize, n: &TestRedis| {
                Some(n.port()) == port || self.proxies.get(i).map(FaultProxy::port) == port
            };
            if let Some((_, master)) = self
                .nodes
                .iter()
                .enumerate()
                .find(|(i, n)| announced(*i, n))
            {
                return Ok(master);
            }
        }
        Err(io::Error::other(format!("no master serves {key}")))
    }

    /// Until every live node says `cluster_state:ok` and every slot has a live master.
    pub fn wait_healthy(&self, within: Duration) -> io::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            let ok = self.live().all(|node| {
                node.cli(&["CLUSTER", "INFO"])
                    .map(text)
                    .is_ok_and(|info| info.contains("cluster_state:ok"))
            });
            if ok {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(io::Error::other("the cluster did not become healthy"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn live(&self) -> impl Iterator<Item = &TestRedis> {
        self.nodes.iter().filter(|n| n.command(&["PING"]).is_ok())
    }
}

/// Whether a `CLUSTER NODES` line is a live master serving `slot`.
fn serves(line: &str, slot: u16) -> bool {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() < 9 || !fields[2].contains("master") || fields[2].contains("fail") {
        return false;
    }
    fields[8..].iter().any(|range| {
        let mut ends = range.splitn(2, '-').map(|e| e.parse::<u16>().ok());
        match (ends.next().flatten(), ends.next().flatten()) {
            (Some(a), Some(b)) => (a..=b).contains(&slot),
            (Some(a), None) => a == slot,
            _ => false,
        }
    })
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A Sentinel group: one master, one replica, and one sentinel (quorum 1) that fails
/// over one second after the master stops answering.
pub struct TestRedisSentinel {
    master: TestRedis,
    replica: TestRedis,
    sentinel: TestRedis,
}

/// The master's name the sentinel watches.
pub const SENTINEL_MASTER: &str = "chat";

impl TestRedisSentinel {
    pub fn start() -> io::Result<Self> {
        with_retries("the Redis sentinel group", Self::start_once)
    }

    fn start_once() -> io::Result<Self> {
        // A replica syncs at once rather than after Redis's 5 s default.
        let master = TestRedis::start_with(&["--repl-diskless-sync-delay", "0"])?;
        let port = master.port().to_string();
        let replica = TestRedis::start_with(&["--replicaof", "127.0.0.1", &port])?;
        let config = format!(
            "sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {port} 1\n\
             sentinel down-after-milliseconds {SENTINEL_MASTER} 1000\n\
             sentinel failover-timeout {SENTINEL_MASTER} 3000\n"
        );
        let sentinel = TestRedis::start_sentinel(&config)?;
        let group = Self {
            master,
            replica,
            sentinel,
        };
        group.wait_replicated(Duration::from_secs(10))?;
        Ok(group)
    }

    /// The sentinel's URL: what `CHAT_REDIS_URL` takes in sentinel mode.
    pub fn url(&self) -> String {
        self.sentinel.url()
    }

    /// The server the group started with as its master.
    pub fn master(&self) -> &TestRedis {
        &self.master
    }

    pub fn replica(&self) -> &TestRedis {
        &self.replica
    }

    /// The port of the master the sentinel names now.
    pub fn current_master_port(&self) -> io::Result<u16> {
        let reply =
            text(
                self.sentinel
                    .cli(&["SENTINEL", "get-master-addr-by-name", SENTINEL_MASTER])?,
            );
        reply
            .lines()
            .nth(1)
            .and_then(|p| p.trim().parse().ok())
            .ok_or_else(|| io::Error::other(format!("sentinel answered {reply:?}")))
    }

    /// Until the replica has caught up with the master.
    fn wait_replicated(&self, within: Duration) -> io::Result<()> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if synced_replica(&self.replica) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(io::Error::other("the replica did not sync with the master"))
    }
}

/// Until every replica `master` lists has acknowledged all it has written (their
/// offsets reach the master's): what a replica has not received when its master dies,
/// Redis did not keep, so a test that kills a master waits for this first.
pub fn wait_replicas_caught_up(master: &TestRedis, within: Duration) -> io::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        let info = text(master.cli(&["INFO", "replication"])?);
        // `master_repl_offset:<n>`, and one `slave<i>:ip=…,port=…,state=…,offset=<n>,lag=…`
        // per replica.
        let offset: Option<u64> = info
            .lines()
            .find_map(|l| l.strip_prefix("master_repl_offset:")?.trim().parse().ok());
        let replicas: Vec<Option<u64>> = info
            .lines()
            .filter(|l| l.starts_with("slave") && l.contains("ip="))
            .map(|l| {
                l.split([',', ':'])
                    .find_map(|kv| kv.strip_prefix("offset=")?.trim().parse().ok())
            })
            .collect();
        if let Some(offset) = offset {
            if !replicas.is_empty() && replicas.iter().all(|r| r.is_some_and(|r| r >= offset)) {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err(io::Error::other(format!(
                "the replicas did not catch up: {info}"
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `node` is a replica whose link to its master is up.
fn synced_replica(node: &TestRedis) -> bool {
    node.cli(&["INFO", "replication"])
        .map(text)
        .is_ok_and(|i| i.contains("role:slave") && i.contains("master_link_status:up"))
}
