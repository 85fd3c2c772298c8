//! A throwaway PostgreSQL server, and throwaway databases on one shared server.

use crate::free_port;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// Whether this process runs as root; asked once.
pub(crate) fn is_root() -> bool {
    static ROOT: OnceLock<bool> = OnceLock::new();
    *ROOT.get_or_init(|| {
        Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false)
    })
}

/// The directory of `initdb` and `pg_ctl`: `CHAT_TEST_PG_BIN`, else the newest
/// `/usr/lib/postgresql/*/bin`, else the `PATH`.
fn pg_bin() -> PathBuf {
    if let Some(dir) = std::env::var_os("CHAT_TEST_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().unwrap_or_default()
}

/// Runs a PostgreSQL tool, as the `postgres` user when we are root.
fn pg_tool(name: &str, args: &[&str]) -> io::Result<Output> {
    let bin = pg_bin().join(name);
    let bin = if bin.exists() {
        bin
    } else {
        PathBuf::from(name)
    };
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin);
        c
    } else {
        Command::new(bin)
    };
    let out = cmd.args(args).output()?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(io::Error::other(format!(
            "{name} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}

/// Lets the `postgres` user own `path` when we are root.
pub(crate) fn hand_over(path: &Path) -> io::Result<()> {
    if is_root() {
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(path)
            .status()?;
        if !status.success() {
            return Err(io::Error::other("chown to postgres failed"));
        }
    }
    Ok(())
}

/// The initialised cluster every test server copies; made once per machine.
fn template() -> io::Result<&'static Path> {
    static TEMPLATE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let made = TEMPLATE.get_or_init(|| {
        let root = std::env::temp_dir().join("chat-testkit");
        let target = root.join("pg-template");
        if target.join("PG_VERSION").exists() {
            return Ok(target);
        }
        let make = || -> io::Result<PathBuf> {
            std::fs::create_dir_all(&root)?;
            let staging = tempfile::Builder::new()
                .prefix("pg-template-")
                .tempdir_in(&root)?;
            hand_over(staging.path())?;
            let data = staging.path().join("data");
            let data_str = data.to_string_lossy().into_owned();
            pg_tool(
                "initdb",
                &[
                    "-D",
                    &data_str,
                    "-U",
                    "postgres",
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-sync",
                ],
            )?;
            // Another test process may have won the race; either template is fine.
            if std::fs::rename(&data, &target).is_err() && !target.join("PG_VERSION").exists() {
                return Err(io::Error::other("could not place the PostgreSQL template"));
            }
            Ok(target.clone())
        };
        make().map_err(|e| e.to_string())
    });
    made.as_deref().map_err(|e| io::Error::other(e.clone()))
}

/// A private PostgreSQL server, stopped and deleted on drop.
pub struct TestPostgres {
    dir: tempfile::TempDir,
    port: u16,
}

impl TestPostgres {
    /// Copies the template cluster and starts it on a free port.
    pub fn start() -> io::Result<Self> {
        let template = template()?;
        let dir = tempfile::Builder::new().prefix("chat-pg-").tempdir()?;
        let status = Command::new("cp")
            .arg("-a")
            .arg(template)
            .arg(dir.path().join("data"))
            .status()?;
        if !status.success() {
            return Err(io::Error::other("copying the PostgreSQL template failed"));
        }
        hand_over(dir.path())?;
        let pg = Self {
            dir,
            port: free_port()?,
        };
        pg.start_again()?;
        Ok(pg)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    fn data(&self) -> String {
        self.dir.path().join("data").to_string_lossy().into_owned()
    }

    /// Starts the server again after [`stop`](Self::stop), on the same port and data.
    pub fn start_again(&self) -> io::Result<()> {
        let log = self
            .dir
            .path()
            .join("server.log")
            .to_string_lossy()
            .into_owned();
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        pg_tool(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        )?;
        Ok(())
    }

    /// Serves TLS from now on with `certs` (certificate and key copied into the data
    /// directory, `ssl = on`, configuration reloaded); plain connections still work.
    pub fn enable_tls(&self, certs: &crate::TestCertificates) -> io::Result<()> {
        let data = Path::new(&self.data()).to_path_buf();
        std::fs::copy(certs.cert(), data.join("server.crt"))?;
        std::fs::copy(certs.key(), data.join("server.key"))?;
        let status = Command::new("chmod")
            .arg("600")
            .arg(data.join("server.key"))
            .status()?;
        if !status.success() {
            return Err(io::Error::other("chmod of the key failed"));
        }
        hand_over(&data)?;
        self.psql("postgres", "ALTER SYSTEM SET ssl = on")?;
        self.psql("postgres", "SELECT pg_reload_conf()")?;
        std::thread::sleep(std::time::Duration::from_millis(300));
        Ok(())
    }

    /// Stops the server and deletes its directory once process `pid` has exited: a
    /// detached watcher polls for it every half second.
    fn stop_after(&self, pid: u32) -> io::Result<()> {
        let pg_ctl = pg_bin().join("pg_ctl");
        let as_postgres = if is_root() {
            "runuser -u postgres -- "
        } else {
            ""
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; \
             {as_postgres}{} -D {} -m immediate -w stop >/dev/null 2>&1; rm -rf {}",
            pg_ctl.display(),
            self.data(),
            self.dir.path().display()
        );
        Command::new("sh")
            .args(["-c", &script])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        Ok(())
    }

    /// Stops the server (fast shutdown: committed data stays).
    pub fn stop(&self) -> io::Result<()> {
        pg_tool("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"])?;
        Ok(())
    }

    /// A new, empty database on this server, dropped with the handle.
    pub fn database(&self) -> io::Result<TestDatabase<'_>> {
        TestDatabase::create(self, None)
    }

    /// A new, empty database on this server; returns its URL.
    pub fn create_database(&self, name: &str) -> io::Result<String> {
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""))?;
        Ok(self.url(name))
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Runs SQL with `psql`; returns what it printed (unaligned, tuples only).
    pub fn psql(&self, database: &str, sql: &str) -> io::Result<String> {
        let out = Command::new("psql")
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .arg(self.url(database))
            .output()?;
        if !out.status.success() {
            return Err(io::Error::other(
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// A plain-SQL `pg_dump` of a database, data included.
    pub fn dump(&self, database: &str) -> io::Result<Vec<u8>> {
        let out = Command::new("pg_dump")
            .arg("--inserts")
            .arg(self.url(database))
            .output()?;
        if !out.status.success() {
            return Err(io::Error::other(
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ));
        }
        Ok(out.stdout)
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        let _ = pg_tool(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
    }
}

/// A database of its own for one test, on the one PostgreSQL server its test process
/// shares, cloned from a template that was migrated once (as crates.io's
/// `crates_io_test_db` does): a test pays for a `CREATE DATABASE`, not for a server's
/// start and a migration. Dropped at the end of the test. A test that stops,
/// reconfigures or restarts PostgreSQL starts a [`TestPostgres`] of its own, and
/// takes its database from there ([`TestPostgres::database`]).
pub struct TestDatabase<'a> {
    server: &'a TestPostgres,
    name: String,
}

/// The shared server, and whether its template was migrated.
struct Shared {
    server: TestPostgres,
    template: OnceLock<Result<(), String>>,
}

const TEMPLATE_DATABASE: &str = "chat_template";

fn shared() -> io::Result<&'static Shared> {
    static SHARED: OnceLock<Result<Shared, String>> = OnceLock::new();
    let shared = SHARED.get_or_init(|| {
        let server = TestPostgres::start().map_err(|e| e.to_string())?;
        // A static is never dropped: a watcher stops the server once this process
        // has exited, however it exits.
        server
            .stop_after(std::process::id())
            .map_err(|e| e.to_string())?;
        Ok(Shared {
            server,
            template: OnceLock::new(),
        })
    });
    shared.as_ref().map_err(|e| io::Error::other(e.clone()))
}

impl TestDatabase<'static> {
    /// A copy of the migrated template. `migrate` brings an empty database at the URL
    /// it is given to the schema; it runs once per process, on the first call.
    pub fn migrated(migrate: impl FnOnce(&str) -> Result<(), String>) -> io::Result<Self> {
        let shared = shared()?;
        let template = shared.template.get_or_init(|| {
            let url = shared
                .server
                .create_database(TEMPLATE_DATABASE)
                .map_err(|e| e.to_string())?;
            migrate(&url)
        });
        template.clone().map_err(io::Error::other)?;
        TestDatabase::create(&shared.server, Some(TEMPLATE_DATABASE))
    }

    /// An empty database on the shared server, for a test of the migrations themselves.
    pub fn empty() -> io::Result<Self> {
        TestDatabase::create(&shared()?.server, None)
    }
}

impl<'a> TestDatabase<'a> {
    fn create(server: &'a TestPostgres, template: Option<&str>) -> io::Result<Self> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("test_{n}");
        let from = template.map_or(String::new(), |t| format!(" TEMPLATE \"{t}\""));
        server.psql("postgres", &format!("CREATE DATABASE \"{name}\"{from}"))?;
        Ok(Self { server, name })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The shared server's port, for a proxy in front of it.
    pub fn port(&self) -> u16 {
        self.server.port()
    }

    pub fn url(&self) -> String {
        self.server.url(&self.name)
    }

    /// Runs SQL in this database with `psql`; returns what it printed.
    pub fn psql(&self, sql: &str) -> io::Result<String> {
        self.server.psql(&self.name, sql)
    }

    /// A plain-SQL `pg_dump` of this database, data included.
    pub fn dump(&self) -> io::Result<Vec<u8>> {
        self.server.dump(&self.name)
    }
}

impl Drop for TestDatabase<'_> {
    fn drop(&mut self) {
        let drop = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        let _ = self.server.psql("postgres", &drop);
    }
}
