//! A throwaway KMS-compatible server: moto's `moto_server` (PyPI `moto[server]`).

use crate::free_port;
use std::io;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// `moto_server` on a free loopback port, speaking the KMS API over HTTP (its state in
/// memory). Killed on drop. [`pause`](Self::pause) makes it stop answering without
/// losing its keys, which is what an unreachable KMS looks like to a client.
pub struct TestKms {
    port: u16,
    child: Child,
}

/// The region and static credentials the tests use; moto accepts any.
pub const TEST_AWS_REGION: &str = "eu-west-1";

impl TestKms {
    pub fn start() -> io::Result<Self> {
        let port = free_port()?;
        let binary =
            std::env::var("CHAT_TEST_MOTO_SERVER").unwrap_or_else(|_| "moto_server".into());
        let child = Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                io::Error::other(format!(
                    "cannot run {binary} ({e}); pip install 'moto[server]'"
                ))
            })?;
        let kms = Self { port, child };
        crate::wait_for_listener(port, Duration::from_secs(20), "moto_server")?;
        Ok(kms)
    }

    /// `http://127.0.0.1:<port>`: the endpoint (`AWS_ENDPOINT_URL`).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The variables a client of this server needs: region, KMS's own endpoint (so an
    /// object store beside it keeps its own), credentials.
    pub fn aws_vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_REGION", TEST_AWS_REGION.into()),
            ("AWS_ENDPOINT_URL_KMS", self.url()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ]
    }

    /// Creates a symmetric key; returns its id.
    pub fn create_key(&self) -> io::Result<String> {
        self.boto3("print(kms.create_key()['KeyMetadata']['KeyId'])")
            .map(|out| out.trim().to_owned())
    }

    /// What KMS decrypts a wrapped thread key (hex) of `thread` to: the plaintext data
    /// key (hex), for a test to look for it where it must never be.
    pub fn decrypt_thread_key(&self, wrapped_hex: &str, thread: i64) -> io::Result<String> {
        self.boto3(&format!(
            "print(kms.decrypt(CiphertextBlob=bytes.fromhex('{wrapped_hex}'), \
             EncryptionContext={{'chat_thread_id': '{thread}'}})['Plaintext'].hex())"
        ))
        .map(|out| out.trim().to_owned())
    }

    /// Disables a key: what crypto-shredding with KMS does to every ciphertext under it.
    pub fn disable_key(&self, key_id: &str) -> io::Result<()> {
        self.boto3(&format!("kms.disable_key(KeyId='{key_id}')"))
            .map(drop)
    }

    /// Stops the server from answering (SIGSTOP); its keys stay.
    pub fn pause(&self) -> io::Result<()> {
        self.signal("STOP")
    }

    /// Lets it answer again (SIGCONT).
    pub fn resume(&self) -> io::Result<()> {
        self.signal("CONT")
    }

    fn signal(&self, name: &str) -> io::Result<()> {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!("kill -{name} failed")))
        }
    }

    /// Runs Python with `kms`, a boto3 client of this server (boto3 comes with moto).
    fn boto3(&self, code: &str) -> io::Result<String> {
        let script = format!(
            "import boto3\nkms = boto3.client('kms', region_name='{TEST_AWS_REGION}', \
             endpoint_url='{}', aws_access_key_id='test', aws_secret_access_key='test')\n{code}\n",
            self.url()
        );
        let out = Command::new("python3").arg("-c").arg(script).output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "boto3: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for TestKms {
    fn drop(&mut self) {
        let _ = self.resume();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
