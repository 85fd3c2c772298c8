//! A throwaway Redis server.

use crate::free_port;
use std::io::{self, BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A private `redis-server` (Debian's package, or `CHAT_TEST_REDIS_SERVER`): loopback,
/// a free port, no snapshots, no append-only file. Killed on drop.
pub struct TestRedis {
    dir: tempfile::TempDir,
    port: u16,
    child: Mutex<Option<Child>>,
    extra: Vec<String>,
    tls_port: Option<u16>,
    /// A configuration file given first (a sentinel's, which the sentinel rewrites).
    config: Option<std::path::PathBuf>,
}

impl TestRedis {
    pub fn start() -> io::Result<Self> {
        Self::start_with(&[])
    }

    /// Starts with extra `redis-server` options, e.g. `["--maxmemory-policy",
    /// "volatile-lru"]`.
    pub fn start_with(options: &[&str]) -> io::Result<Self> {
        let redis = Self {
            dir: tempfile::Builder::new().prefix("chat-redis-").tempdir()?,
            port: free_port()?,
            child: Mutex::new(None),
            extra: options.iter().map(|s| s.to_string()).collect(),
            tls_port: None,
            config: None,
        };
        redis.start_again()?;
        Ok(redis)
    }

    /// Also serves TLS with `certs` on a second port ([`tls_url`](Self::tls_url)); the
    /// plain port stays for the harness's own commands.
    pub fn start_tls(certs: &crate::TestCertificates) -> io::Result<Self> {
        let tls_port = free_port()?;
        let path = |p: std::path::PathBuf| p.to_string_lossy().into_owned();
        let redis = Self {
            dir: tempfile::Builder::new().prefix("chat-redis-").tempdir()?,
            port: free_port()?,
            child: Mutex::new(None),
            extra: vec![
                "--tls-port".into(),
                tls_port.to_string(),
                "--tls-cert-file".into(),
                path(certs.cert()),
                "--tls-key-file".into(),
                path(certs.key()),
                "--tls-ca-cert-file".into(),
                path(certs.ca()),
                "--tls-auth-clients".into(),
                "no".into(),
            ],
            tls_port: Some(tls_port),
            config: None,
        };
        redis.start_again()?;
        Ok(redis)
    }

    /// Runs `redis-server <file> --sentinel`, `file` holding `config` (the sentinel
    /// rewrites it as it learns).
    pub(crate) fn start_sentinel(config: &str) -> io::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("chat-sentinel-")
            .tempdir()?;
        let file = dir.path().join("sentinel.conf");
        std::fs::write(&file, config)?;
        let redis = Self {
            dir,
            port: free_port()?,
            child: Mutex::new(None),
            extra: vec!["--sentinel".into()],
            tls_port: None,
            config: Some(file),
        };
        redis.start_again()?;
        Ok(redis)
    }

    /// `rediss://127.0.0.1:<tls port>`, when started with [`start_tls`](Self::start_tls).
    pub fn tls_url(&self) -> Option<String> {
        self.tls_port.map(|p| format!("rediss://127.0.0.1:{p}"))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server again after [`kill`](Self::kill), on the same port, empty.
    pub fn start_again(&self) -> io::Result<()> {
        let binary =
            std::env::var("CHAT_TEST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let mut command = Command::new(&binary);
        if let Some(config) = &self.config {
            command.arg(config);
        }
        let child = command
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                io::Error::other(format!(
                    "cannot run {binary} ({e}); install Debian's redis-server package"
                ))
            })?;
        *self.lock_child() = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.command(&["PING"]).is_ok_and(|r| r == "+PONG") {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(io::Error::other(
            "redis-server did not answer PING within 10 s",
        ))
    }

    /// Kills the server (SIGKILL): what a crash looks like to clients.
    pub fn kill(&self) -> io::Result<()> {
        if let Some(mut child) = self.lock_child().take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Sends one command and returns the first line of the reply, e.g. `+OK` or `:3`.
    pub fn command(&self, args: &[&str]) -> io::Result<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        stream.write_all(request.as_bytes())?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line)?;
        Ok(line.trim_end().to_owned())
    }

    /// Runs `redis-cli` against this server with raw output; returns what it printed.
    pub fn cli(&self, args: &[&str]) -> io::Result<Vec<u8>> {
        let out: Output = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "--raw"])
            .args(args)
            .output()?;
        if !out.status.success() {
            return Err(io::Error::other(
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ));
        }
        Ok(out.stdout)
    }

    fn lock_child(&self) -> std::sync::MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}
