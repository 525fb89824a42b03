//! `threatfeed serve`: runs the feed server until SIGINT / SIGTERM, then shuts down without
//! losing acknowledged events.

use anyhow::Context;
use std::path::PathBuf;
use threatfeed_server::app::AdminBootstrap;
use threatfeed_server::{RawConfig, Server};

/// Options of `serve`. Flags override the environment, which overrides the config file.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// TOML configuration file (see config.example.toml).
    #[arg(long, env = "THREATFEED_CONFIG")]
    pub config: Option<PathBuf>,
    /// Listen address [default: 127.0.0.1:8080].
    #[arg(long, env = "THREATFEED_LISTEN")]
    pub listen: Option<String>,
    /// Data directory [default: ./threatfeed-data].
    #[arg(long = "data-dir", env = "THREATFEED_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Event log engine: redb or fjall [default: redb].
    #[arg(long = "log-backend", env = "THREATFEED_LOG_BACKEND")]
    pub log_backend: Option<String>,
    /// Start without the bundled threat knowledge base and C2 indicator lists.
    #[arg(long = "no-default-kb")]
    pub no_default_kb: bool,
    /// Also run a sinkhole and a bot simulator feeding it, in this process: a live feed at once.
    #[arg(long)]
    pub demo: bool,
    /// Log format: text or json.
    #[arg(
        long = "log-format",
        env = "THREATFEED_LOG_FORMAT",
        default_value = "text"
    )]
    pub log_format: String,
}

/// Logs to stderr (`THREATFEED_LOG` filter; `json` or text).
pub fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("THREATFEED_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Installs the SIGINT / SIGTERM handlers now (before the server announces itself, so a signal
/// that arrives right after start-up still means "shut down gracefully") and returns the future
/// that resolves on the first of them.
/// Resolves on SIGINT or SIGTERM.
pub fn stop_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async move {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

/// Runs the server.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    init_tracing(&args.log_format);
    let mut raw = match &args.config {
        Some(p) => RawConfig::from_file(p)?,
        None => RawConfig::default(),
    };
    if args.listen.is_some() {
        raw.listen = args.listen.clone();
    }
    if args.data_dir.is_some() {
        raw.data_dir = args.data_dir.clone();
    }
    if args.log_backend.is_some() {
        raw.log_backend = args.log_backend.clone();
    }
    if args.no_default_kb {
        raw.default_kb = Some(false);
    }
    let config = raw.validate()?;
    let listen = config.listen;
    let data_dir = config.data_dir.clone();
    let env_token = std::env::var("THREATFEED_ADMIN_TOKEN").ok();
    let server = tokio::task::block_in_place(|| Server::open(config, env_token.as_deref()))?;
    let created_admin = match &server.admin {
        AdminBootstrap::Created { token, .. } => Some(token.clone()),
        _ => None,
    };
    match &server.admin {
        AdminBootstrap::Created { token, path } => {
            println!(
                "admin token (shown once; also written to {}): {token}",
                path.display()
            );
        }
        AdminBootstrap::FromEnv => tracing::info!("admin token taken from THREATFEED_ADMIN_TOKEN"),
        AdminBootstrap::Existing => {
            tracing::info!("admin token unchanged (see admin.token in the data directory)")
        }
    }
    let stop = stop_signal()?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let local = listener.local_addr().context("listener address")?;
    tracing::info!(%local, "threatfeed listening");
    println!("listening on http://{local}");
    if !args.demo {
        return server.serve(listener, stop).await;
    }
    // The demo starts once the server answers; at shutdown it stops before the server, so the
    // sinkhole can hand over what it still holds.
    let demo = tokio::spawn(crate::commands::demo::start(
        format!("http://{local}"),
        data_dir,
        created_admin,
    ));
    let stop = async move {
        stop.await;
        match demo.await {
            Ok(Ok(d)) => d.shutdown().await,
            Ok(Err(e)) => tracing::warn!(error = %e, "the demo did not start"),
            Err(e) => tracing::warn!(error = %e, "the demo task failed"),
        }
    };
    server.serve(listener, stop).await
}
