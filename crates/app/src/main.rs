//! The `chat-server` command line.

use chat_server::{init_logging, issue_token, Application, Config, Overrides, SweepError};
use clap::{Parser, Subcommand};
use std::process::ExitCode;
use std::time::Duration;

/// Temporary, encrypted chat threads for home-care service requests.
///
/// Configured from the environment (CHAT_*); see docs/ARCHITECTURE.md and the README.
#[derive(Parser)]
#[command(name = "chat-server", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API (the default).
    Serve,
    /// Apply pending database migrations (CHAT_DATABASE_URL) and exit.
    Migrate,
    /// Run the sweep once (expired messages, leftovers of closed threads, stale jobs),
    /// print what it removed, and exit. Refused while another instance is sweeping.
    Cleanup,
    /// Rewrap every thread key under the first key of CHAT_MASTER_KEYS, print how many,
    /// and exit. Afterwards the older keys can leave the ring.
    RotateMasterKey,
    /// Print a bearer token signed with the configured secret, for trying the service out.
    Token {
        /// The user id (`sub` claim).
        #[arg(long)]
        sub: i64,
        /// The role; `admin` is the super-admin.
        #[arg(long, default_value = "client")]
        role: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("chat-server: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Token { sub, role, ttl } => {
            if sub <= 0 {
                eprintln!("chat-server: --sub must be a positive integer");
                return ExitCode::from(2);
            }
            match issue_token(&config, sub, &role, Duration::from_secs(ttl)) {
                Ok(token) => {
                    println!("{token}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("chat-server: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Serve => serve(config),
        Command::Migrate => migrate(config),
        Command::Cleanup => cleanup(config),
        Command::RotateMasterKey => rotate_master_key(config),
    }
}

/// Runs `work` on a multi-threaded runtime and turns its outcome into an exit code.
fn run(work: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("chat-server: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(work) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("chat-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn migrate(config: Config) -> ExitCode {
    init_logging(config.log_format);
    run(async {
        if config.stores.database_url.is_none() {
            anyhow::bail!("CHAT_DATABASE_URL is not set: there is no database to migrate");
        }
        chat_server::connect_postgres(&config, true).await?;
        println!("migrations up to date");
        Ok(())
    })
}

/// The service as `serve` wires it, without listening.
async fn wire(config: &Config) -> anyhow::Result<chat_server::Wired> {
    config.check_can_serve()?;
    let media = chat_server::open_media(config, config.bind)?;
    chat_server::build_service(config, Overrides::default(), Some(media.store)).await
}

fn cleanup(config: Config) -> ExitCode {
    init_logging(config.log_format);
    run(async {
        let wired = wire(&config).await?;
        let report = match chat_server::sweep_once(&wired.service, wired.lock.as_ref()).await {
            Ok(report) => report,
            Err(SweepError::Busy) => {
                anyhow::bail!("another instance is sweeping right now; try again later")
            }
            Err(SweepError::Failed(e)) => return Err(e),
        };
        chat_server::flush_audit(&wired.service).await;
        println!("expired messages removed:    {}", report.expired_messages);
        println!("closed threads checked:      {}", report.closed_threads);
        println!("  media objects deleted:     {}", report.media_deleted);
        println!("  thread keys destroyed:     {}", report.keys_destroyed);
        println!("  messages redacted:         {}", report.messages_redacted);
        println!("  purges that failed:        {}", report.purge_failures);
        println!(
            "stale jobs made due again:   {}",
            report.stale_jobs.requeued
        );
        println!("stale jobs failed for good:  {}", report.stale_jobs.failed);
        println!("jobs kept as failed, all:    {}", report.failed_jobs);
        if report.purge_failures > 0 {
            anyhow::bail!(
                "{} closed thread(s) could not be purged; see the log, and run cleanup again",
                report.purge_failures
            );
        }
        Ok(())
    })
}

fn rotate_master_key(config: Config) -> ExitCode {
    init_logging(config.log_format);
    run(async {
        if config.stores.database_url.is_none() {
            anyhow::bail!(
                "CHAT_DATABASE_URL is not set: the in-memory key store lives and dies with \
                 one process, so there is nothing to rotate"
            );
        }
        let wired = wire(&config).await?;
        let active = wired.service.active_key_version().to_owned();
        let report = wired.service.rotate_master_key().await?;
        println!(
            "{} thread key(s) rewrapped under master key {active}; {} changed meanwhile and left as they are",
            report.rewrapped, report.skipped
        );
        Ok(())
    })
}

fn serve(config: Config) -> ExitCode {
    init_logging(config.log_format);
    run(async {
        let app = Application::build(&config, Overrides::default()).await?;
        tracing::info!(addr = %app.addr, "chat-server listening on http://{}", app.addr);
        if let Some(ws) = app.ws_addr {
            tracing::info!(addr = %ws, "Pusher WebSockets also on ws://{ws}/app/{{key}}");
        }
        if config.auth.jwt_secret_is_builtin {
            tracing::warn!(
                "no CHAT_JWT_SECRET: using the built-in development secret (loopback only). \
                 Get a token with: chat-server token --sub 1 --role admin"
            );
        }
        app.run().await?;
        Ok(())
    })
}
