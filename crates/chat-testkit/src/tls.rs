//! A throwaway certificate authority and a server certificate for `localhost` and
//! `127.0.0.1`, made with the `openssl` command line (ECDSA P-256, valid one day).

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A CA, and a server certificate and key it signed, as PEM files in a temporary
/// directory (deleted on drop). Point `SSL_CERT_FILE` at [`ca`](Self::ca) to trust it.
pub struct TestCertificates {
    dir: tempfile::TempDir,
}

impl TestCertificates {
    pub fn generate() -> io::Result<Self> {
        let dir = tempfile::Builder::new().prefix("chat-tls-").tempdir()?;
        let d = dir.path();
        std::fs::write(
            d.join("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
        )?;
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        openssl(
            d,
            &[
                &["req", "-x509"],
                &ec[..],
                &["-keyout", "ca.key", "-out", "ca.pem"],
                &["-days", "1", "-subj", "/CN=chat-test-ca"],
            ],
        )?;
        openssl(
            d,
            &[
                &["req"],
                &ec[..],
                &["-keyout", "server.key", "-out", "server.csr"],
                &["-subj", "/CN=localhost"],
            ],
        )?;
        openssl(
            d,
            &[
                &[
                    "x509",
                    "-req",
                    "-in",
                    "server.csr",
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                ],
                &[
                    "-CAcreateserial",
                    "-out",
                    "server.pem",
                    "-days",
                    "1",
                    "-extfile",
                    "server.ext",
                ],
            ],
        )?;
        Ok(Self { dir })
    }

    /// The CA certificate (PEM).
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The server certificate (PEM), for `localhost` and `127.0.0.1`.
    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    /// The server's private key (PEM).
    pub fn key(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }
}

fn openssl(dir: &Path, args: &[&[&str]]) -> io::Result<()> {
    let out = Command::new("openssl")
        .args(args.concat())
        .current_dir(dir)
        .output()
        .map_err(|e| {
            io::Error::other(format!(
                "cannot run openssl ({e}); install Debian's openssl"
            ))
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "openssl failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}
