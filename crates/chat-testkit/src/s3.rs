//! A throwaway S3-compatible server: `s3s-fs` (crates.io), which checks AWS Signature
//! V4 on every request, presigned URLs included, so a forged or expired URL fails as it
//! would on S3.

use crate::free_port;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The `s3s-fs` release the harness is tested with; `.ci/run` installs it.
pub const S3S_FS_INSTALL: &str = "cargo install s3s-fs@0.14.1 --features binary --locked";

/// A private `s3s-fs` on a free loopback port over a temporary directory, with one
/// bucket. Objects are plain files under [`bucket_dir`](Self::bucket_dir), so a test can
/// see exactly what is stored. Killed on drop.
pub struct TestS3 {
    dir: tempfile::TempDir,
    port: u16,
    child: Child,
}

impl TestS3 {
    pub const BUCKET: &'static str = "chat-media";
    pub const ACCESS_KEY: &'static str = "chat-test-access";
    pub const SECRET_KEY: &'static str = "chat-test-secret-key-0123456789";
    pub const REGION: &'static str = "us-east-1";

    pub fn start() -> io::Result<Self> {
        let dir = tempfile::Builder::new().prefix("chat-s3-").tempdir()?;
        std::fs::create_dir(dir.path().join(Self::BUCKET))?;
        let port = free_port()?;
        let binary = s3s_fs_binary();
        let child = Command::new(&binary)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", Self::ACCESS_KEY])
            .args(["--secret-key", Self::SECRET_KEY])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                io::Error::other(format!(
                    "cannot run {} ({e}); install it with `{S3S_FS_INSTALL}` \
                     or point CHAT_TEST_S3S_FS at it",
                    binary.display()
                ))
            })?;
        let server = Self { dir, port, child };
        crate::wait_for_listener(port, Duration::from_secs(10), "s3s-fs")?;
        Ok(server)
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `s3://<bucket>`, for `CHAT_OBJECT_STORE_URL`.
    pub fn url(&self) -> String {
        format!("s3://{}", Self::BUCKET)
    }

    /// The variables an S3 client needs (object_store's `AWS_*` names).
    pub fn client_vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", Self::ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", Self::SECRET_KEY.into()),
            ("AWS_REGION", Self::REGION.into()),
            ("AWS_ALLOW_HTTP", "true".into()),
        ]
    }

    /// Freezes the server (SIGSTOP): connections are accepted by the kernel and never
    /// answered, as with a store that hangs.
    pub fn pause(&self) -> io::Result<()> {
        self.signal("-STOP")
    }

    /// Thaws it after [`pause`](Self::pause) (SIGCONT).
    pub fn resume(&self) -> io::Result<()> {
        self.signal("-CONT")
    }

    fn signal(&self, signal: &str) -> io::Result<()> {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!("kill {signal} failed")))
        }
    }

    /// Every byte stored: the objects and the server's metadata files beside them.
    pub fn all_bytes(&self) -> io::Result<Vec<u8>> {
        let mut all = Vec::new();
        let mut stack = vec![self.dir.path().to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(dir)? {
                let path = entry?.path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    all.extend(std::fs::read(path)?);
                }
            }
        }
        Ok(all)
    }

    /// Where the bucket's objects live on disk, one file per key.
    pub fn bucket_dir(&self) -> PathBuf {
        self.dir.path().join(Self::BUCKET)
    }
}

impl Drop for TestS3 {
    fn drop(&mut self) {
        let _ = self.resume();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `CHAT_TEST_S3S_FS`, else `s3s-fs` on the `PATH`, else in cargo's install directory.
fn s3s_fs_binary() -> PathBuf {
    if let Some(explicit) = std::env::var_os("CHAT_TEST_S3S_FS") {
        return explicit.into();
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|p| p.join("s3s-fs").is_file()))
        .unwrap_or(false);
    if on_path {
        return "s3s-fs".into();
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")));
    cargo_home
        .map(|home| home.join("bin/s3s-fs"))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| "s3s-fs".into())
}
