//! `threatfeed sinkhole`: the listeners ([`crate::capture`]), the spool writer
//! ([`crate::sink`]), the forwarder ([`crate::forward`]) and `/metrics` in one process.
//!
//! [`start`] binds everything and returns a [`Running`] sinkhole exposing the bound addresses;
//! [`Running::shutdown`] stops accepting, lets in-flight requests finish briefly, drops the sink
//! (the writer commits what is queued and ends), then stops the forwarder (a last drain of ≤ 5 s)
//! and waits for it. [`run`] is the command: start, log the addresses, wait for ctrl-c or
//! SIGTERM, shut down.

use crate::capture::Capture;
use crate::config::SinkholeConfig;
use crate::forward::{self, ForwardConfig};
use crate::spool::Spool;
use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How long in-flight connections may finish at shutdown.
const CAPTURE_GRACE: Duration = Duration::from_secs(5);
/// How long the spool writer may take to commit what is queued at shutdown.
const WRITER_GRACE: Duration = Duration::from_secs(30);
/// How long the forwarder may take to stop (its own drain is ≤ 5 s).
const FORWARD_GRACE: Duration = Duration::from_secs(15);

/// Command-line options of `threatfeed sinkhole`; they override the file.
#[derive(Debug, Clone, clap::Args)]
pub struct SinkholeArgs {
    /// The sinkhole configuration (TOML; see sinkhole.example.toml).
    #[arg(long, env = "THREATFEED_SINKHOLE_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// The feed server's base URL (overrides `server`).
    #[arg(long)]
    pub server: Option<String>,
    /// The sensor token (overrides `token`).
    #[arg(long, env = "THREATFEED_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The spool directory (overrides `spool_dir`).
    #[arg(long, value_name = "DIR")]
    pub spool_dir: Option<PathBuf>,
}

impl SinkholeArgs {
    /// The configuration: the file, with the command line's overrides, validated.
    pub fn load(&self) -> anyhow::Result<SinkholeConfig> {
        let path = self.config.as_deref().context(
            "no sinkhole configuration: give --config PATH or set THREATFEED_SINKHOLE_CONFIG \
             (sinkhole.example.toml documents every key)",
        )?;
        let mut cfg = SinkholeConfig::from_file(path)?;
        if let Some(s) = &self.server {
            cfg.server = s.clone();
        }
        if let Some(t) = &self.token {
            cfg.token = t.clone();
        }
        if let Some(d) = &self.spool_dir {
            cfg.spool_dir = d.clone();
        }
        cfg.validate()?;
        Ok(cfg)
    }
}

/// A running sinkhole.
pub struct Running {
    capture: Capture,
    spool: Arc<Spool>,
    writer: tokio::task::JoinHandle<()>,
    forward_stop: watch::Sender<bool>,
    forwarder: tokio::task::JoinHandle<anyhow::Result<()>>,
    metrics: Option<MetricsServer>,
}

struct MetricsServer {
    addr: SocketAddr,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// The bound HTTP addresses.
    pub fn http_addrs(&self) -> Vec<SocketAddr> {
        self.capture.http_addrs().to_vec()
    }

    /// The bound raw TCP addresses, with their `proto`.
    pub fn tcp_addrs(&self) -> Vec<(String, SocketAddr)> {
        self.capture.tcp_addrs().to_vec()
    }

    /// The bound DNS addresses (UDP and TCP on each).
    pub fn dns_addrs(&self) -> Vec<SocketAddr> {
        self.capture.dns_addrs().to_vec()
    }

    /// The bound `/metrics` address, when configured.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|m| m.addr)
    }

    /// The spool (for inspection).
    pub fn spool(&self) -> &Arc<Spool> {
        &self.spool
    }

    /// Stops accepting, lets in-flight requests finish (≤ 5 s), lets the writer commit what is
    /// queued, stops the forwarder (a last drain ≤ 5 s) and waits for it.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let Running {
            capture,
            spool,
            writer,
            forward_stop,
            forwarder,
            metrics,
        } = self;
        // Dropping the capture releases the last Sink clone: the writer drains and ends.
        capture.shutdown(CAPTURE_GRACE).await;
        match tokio::time::timeout(WRITER_GRACE, writer).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "spool writer failed"),
            Err(_) => tracing::error!("spool writer did not finish in time"),
        }
        let _ = forward_stop.send(true);
        let forwarded = match tokio::time::timeout(FORWARD_GRACE, forwarder).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Err(anyhow::anyhow!("forwarder task failed: {e}")),
            Err(_) => Err(anyhow::anyhow!("forwarder did not stop in time")),
        };
        if let Some(m) = metrics {
            m.cancel.cancel();
            let _ = m.task.await;
        }
        drop(spool);
        forwarded
    }
}

/// Binds every listener of `cfg` (ports may be 0), opens the spool and starts the writer, the
/// forwarder and the metrics listener.
pub async fn start(cfg: SinkholeConfig) -> anyhow::Result<Running> {
    cfg.validate()?;
    let token = cfg.effective_token();
    if token.is_empty() {
        tracing::warn!(
            "no sensor token (token, --token or THREATFEED_TOKEN): the server will refuse the events"
        );
    }
    let spool = Spool::open(&cfg.spool_dir, cfg.spool_max_bytes)
        .with_context(|| format!("opening the spool {}", cfg.spool_dir.display()))?;
    // Metrics first, so the listeners' first counts are recorded.
    let metrics = match cfg.metrics_listen {
        Some(addr) => Some(start_metrics(addr).await?),
        None => None,
    };
    let (sink, writer) = crate::sink::start(spool.clone(), cfg.batch_max, cfg.flush());
    let capture = match Capture::start(&cfg, move |e| sink.send_durable(e)).await {
        Ok(c) => c,
        Err(e) => {
            if let Some(m) = metrics {
                m.cancel.cancel();
            }
            // The failed capture dropped its sink: the writer ends by itself.
            let _ = writer.await;
            return Err(e);
        }
    };
    let (forward_stop, rx) = watch::channel(false);
    let fcfg = ForwardConfig {
        server: cfg.server.clone(),
        token,
        batch_max: cfg.batch_max,
    };
    let forwarder = tokio::spawn(forward::run(spool.clone(), fcfg, rx));
    Ok(Running {
        capture,
        spool,
        writer,
        forward_stop,
        forwarder,
        metrics,
    })
}

/// `threatfeed sinkhole`: start, log the bound addresses, run until ctrl-c or SIGTERM, shut
/// down.
pub async fn run(args: SinkholeArgs) -> anyhow::Result<()> {
    let cfg = args.load()?;
    let sensor = cfg.sensor.clone();
    let running = start(cfg).await?;
    for a in running.http_addrs() {
        tracing::info!(%a, "sinkhole: http listening");
    }
    for (proto, a) in running.tcp_addrs() {
        tracing::info!(%a, proto, "sinkhole: tcp listening");
    }
    for a in running.dns_addrs() {
        tracing::info!(%a, "sinkhole: dns listening (udp and tcp)");
    }
    if let Some(a) = running.metrics_addr() {
        tracing::info!(%a, "sinkhole: metrics on /metrics");
    }
    tracing::info!(sensor, "sinkhole running");
    wait_for_signal().await;
    tracing::info!("sinkhole: shutting down");
    running.shutdown().await
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The handle of the recorder this module installed (once per process).
static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The Prometheus recorder: installed on first use; None when another recorder was installed
/// first (e.g. in-process with the server): then its owner renders the metrics.
fn prometheus() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| match PrometheusBuilder::new().install_recorder() {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    "a metrics recorder is already installed: /metrics of the sinkhole stays empty"
                );
                None
            }
        })
        .as_ref()
}

async fn start_metrics(addr: SocketAddr) -> anyhow::Result<MetricsServer> {
    let handle = prometheus().cloned();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding metrics_listen {addr}"))?;
    let addr = listener.local_addr()?;
    let cancel = CancellationToken::new();
    let task = tokio::spawn(serve_metrics(listener, handle, cancel.clone()));
    Ok(MetricsServer { addr, cancel, task })
}

async fn serve_metrics(
    listener: tokio::net::TcpListener,
    handle: Option<PrometheusHandle>,
    cancel: CancellationToken,
) {
    let handle = Arc::new(handle);
    let conns = tokio_util::task::TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            () = cancel.cancelled() => break,
            r = listener.accept() => r,
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let (handle, cancel) = (handle.clone(), cancel.clone());
        conns.spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let handle = handle.clone();
                async move {
                    Ok::<_, std::convert::Infallible>(metrics_response(
                        &req,
                        handle.as_ref().as_ref(),
                    ))
                }
            });
            let mut b = hyper::server::conn::http1::Builder::new();
            b.timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10));
            let conn = b.serve_connection(TokioIo::new(stream), svc);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                () = cancel.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(1), conn.as_mut()).await;
                }
            }
        });
    }
    conns.close();
    let _ = tokio::time::timeout(Duration::from_secs(2), conns.wait()).await;
}

fn metrics_response<B>(
    req: &Request<B>,
    handle: Option<&PrometheusHandle>,
) -> Response<Full<Bytes>> {
    let (status, ctype, body) = match req.uri().path() {
        "/metrics" => {
            let text = match handle {
                Some(h) => h.render(),
                None => {
                    "# the process's metrics recorder is not the sinkhole's: see its own /metrics\n"
                        .to_string()
                }
            };
            (StatusCode::OK, "text/plain; version=0.0.4", text)
        }
        "/healthz" => (StatusCode::OK, "text/plain", "ok\n".to_string()),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".to_string(),
        ),
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(ctype),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sinkhole_spools_checkins_serves_metrics_and_shuts_down() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = SinkholeConfig::from_toml(&format!(
            r#"
sensor = "test-sinkhole"
server = "http://127.0.0.1:9"
token = "t"
spool_dir = {:?}
metrics_listen = "127.0.0.1:0"
flush_ms = 5
[http]
listen = ["127.0.0.1:0"]
[[seized]]
domain = "seized-c2.example"
family = "emotet"
"#,
            dir.path().join("spool")
        ))
        .expect("config");
        let running = start(cfg).await.expect("start");
        let http = running.http_addrs()[0];
        let metrics = running.metrics_addr().expect("metrics addr");
        let client = reqwest::Client::new();
        let r = client
            .get(format!("http://{http}/gate.php?id=1"))
            .header("host", "a.seized-c2.example")
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 200);
        let health = client
            .get(format!("http://{metrics}/healthz"))
            .send()
            .await
            .expect("healthz");
        assert_eq!(health.status(), 200);
        let m = client
            .get(format!("http://{metrics}/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        if prometheus().is_some() {
            assert!(m.contains("threatfeed_sinkhole_checkins_total"), "{m}");
        }
        let spool = running.spool().clone();
        running.shutdown().await.ok();
        assert_eq!(spool.stats().pending, 1, "the check-in was spooled");
    }

    #[test]
    fn args_override_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.toml");
        std::fs::write(&path, "[http]\nlisten = [\"127.0.0.1:0\"]\n").expect("write");
        let args = SinkholeArgs {
            config: Some(path),
            server: Some("https://feed.example".into()),
            token: Some("tok".into()),
            spool_dir: Some("/tmp/x".into()),
        };
        let cfg = args.load().expect("load");
        assert_eq!(cfg.server, "https://feed.example");
        assert_eq!(cfg.effective_token(), "tok");
        assert_eq!(cfg.spool_dir, PathBuf::from("/tmp/x"));
        let none = SinkholeArgs {
            config: None,
            server: None,
            token: None,
            spool_dir: None,
        };
        assert!(none.load().is_err());
    }
}
