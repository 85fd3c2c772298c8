//! The real server as a process, and the backends' test variables and contents.

use super::*;

/// The real binary, its log read from a pipe.
pub struct ServerProcess {
    child: std::process::Child,
    pub base: String,
    log: Arc<Mutex<String>>,
}

impl ServerProcess {
    /// `chat-server serve` with the test secret, a free port and `vars`.
    pub fn start(vars: &[(&str, &str)]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_chat-server"))
            .env("CHAT_BIND", "127.0.0.1:0")
            .env("CHAT_JWT_SECRET", SECRET)
            .env("CHAT_OBJECT_STORE_URL", "memory://")
            .env("CHAT_RATE_LIMIT_POSTS", "0")
            .env("CHAT_RATE_LIMIT_UPLOADS", "0")
            .env("CHAT_RATE_LIMIT_AUTH", "0")
            .envs(vars.iter().copied())
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let addr: String = rest
                        .chars()
                        .take_while(|c| !c.is_whitespace() && *c != '"')
                        .collect();
                    let _ = addr_tx.send(addr);
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the server announces its address");
        Self {
            child,
            base: format!("http://{addr}"),
            log,
        }
    }

    /// Its HTTP API.
    pub fn api(&self) -> Api {
        Api::new(self.base.clone())
    }

    /// Sends it `SIGTERM`, as Kubernetes and systemd stop it.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Whether it exited, of itself, within `within`.
    pub fn exits_within(&mut self, within: Duration) -> bool {
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Kills it; returns everything it logged.
    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_millis(200));
        let log = self.log.lock().unwrap().clone();
        log
    }
}

impl Drop for ServerProcess {
    /// A test that fails before `stop` leaves no server running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` every 50 ms until it gives a value, failing the test with `what`
/// after `within`: the one polling loop of the tests.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not within {within:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A migrated database of its own for one test, on the PostgreSQL server the test
/// process shares; migrated once, by the binary's own `chat-server migrate`.
pub fn database() -> chat_testkit::TestDatabase<'static> {
    chat_testkit::TestDatabase::migrated(|url| {
        let out = Command::new(env!("CARGO_BIN_EXE_chat-server"))
            .arg("migrate")
            .env("CHAT_DATABASE_URL", url)
            .env("CHAT_MASTER_KEY", MASTER_KEY)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    })
    .expect("PostgreSQL starts and the template migrates")
}

/// The variables that select the database at `url`.
pub fn postgres_vars(db: &chat_testkit::TestDatabase<'_>) -> Vec<(&'static str, String)> {
    vec![
        ("CHAT_DATABASE_URL", db.url()),
        ("CHAT_MASTER_KEY", MASTER_KEY.to_owned()),
        ("CHAT_STORE_TIMEOUT_MS", "2000".to_owned()),
    ]
}

pub const MASTER_KEY: &str = "q83vEjRWeJASNFZ4kBI0VniQEjRWeJASNFZ4kBI0Vng=";

/// `(&str, &str)` views of owned variables.
pub fn borrowed<'a>(vars: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    vars.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Every byte Redis holds: each key's serialized form (DUMP) and its values as read
/// (DUMP may compress them).
pub fn everything_in(redis: &chat_testkit::TestRedis) -> Vec<u8> {
    let keys = String::from_utf8(redis.cli(&["--scan"]).unwrap()).unwrap();
    let mut all = Vec::new();
    for key in keys.lines() {
        let kind = String::from_utf8(redis.cli(&["TYPE", key]).unwrap()).unwrap();
        let read: &[&str] = match kind.trim() {
            "hash" => &["HGETALL"],
            "zset" => &["ZRANGE", "0", "-1", "WITHSCORES"],
            "string" => &["GET"],
            other => panic!("unexpected {other} at {key}"),
        };
        let mut args = read.to_vec();
        args.insert(1, key);
        all.extend(redis.cli(&args).unwrap());
        all.extend(redis.cli(&["DUMP", key]).unwrap());
    }
    all
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
