//! A throwaway PgBouncer in front of a [`TestPostgres`].

use crate::free_port;
use crate::postgres::{hand_over, is_root, TestPostgres};
use std::io;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Debian's `pgbouncer` (or `CHAT_TEST_PGBOUNCER`) on a free loopback port, in
/// transaction pooling mode with a pool smaller than its clients, so that a client's
/// consecutive transactions land on different server connections, as in production.
/// Killed on drop. PgBouncer refuses to run as root: as root it runs as `postgres`.
pub struct TestPgBouncer {
    _dir: tempfile::TempDir,
    port: u16,
    child: Child,
}

impl TestPgBouncer {
    pub fn start(postgres: &TestPostgres) -> io::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("chat-pgbouncer-")
            .tempdir()?;
        let port = free_port()?;
        let users = dir.path().join("userlist.txt");
        std::fs::write(&users, "\"postgres\" \"\"\n")?;
        let ini = dir.path().join("pgbouncer.ini");
        std::fs::write(
            &ini,
            format!(
                "[databases]\n\
                 * = host=127.0.0.1 port={pg}\n\
                 [pgbouncer]\n\
                 listen_addr = 127.0.0.1\n\
                 listen_port = {port}\n\
                 unix_socket_dir =\n\
                 auth_type = trust\n\
                 auth_file = {users}\n\
                 pool_mode = transaction\n\
                 default_pool_size = 3\n\
                 max_client_conn = 500\n\
                 server_reset_query =\n\
                 ignore_startup_parameters = extra_float_digits,options\n\
                 logfile = {log}\n\
                 pidfile = {pid}\n",
                pg = postgres.port(),
                users = users.display(),
                log = dir.path().join("pgbouncer.log").display(),
                pid = dir.path().join("pgbouncer.pid").display(),
            ),
        )?;
        hand_over(dir.path())?;
        let binary =
            std::env::var("CHAT_TEST_PGBOUNCER").unwrap_or_else(|_| "/usr/sbin/pgbouncer".into());
        let mut command = if is_root() {
            // setpriv execs (runuser would fork, and killing it would leave PgBouncer).
            let mut c = Command::new("setpriv");
            c.args(["--reuid=postgres", "--regid=postgres", "--init-groups"])
                .arg(&binary);
            c
        } else {
            Command::new(&binary)
        };
        let child = command
            .arg(&ini)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                io::Error::other(format!(
                    "cannot run {binary} ({e}); install Debian's pgbouncer package"
                ))
            })?;
        let bouncer = Self {
            _dir: dir,
            port,
            child,
        };
        crate::wait_for_listener(port, Duration::from_secs(10), "pgbouncer")?;
        Ok(bouncer)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of `database` through PgBouncer.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

impl Drop for TestPgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
