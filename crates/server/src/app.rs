//! Wiring: opens the stores, bootstraps the admin, starts the writer / fan-out threads and the
//! background tasks, builds the router, serves until a shutdown signal, and shuts down without
//! losing anything acknowledged (stop accepting → finish in-flight requests → commit what is
//! queued → close the log).

use crate::auth::{Auth, new_id, new_token};
use crate::config::Config;
use crate::hub::Hub;
use crate::pipeline::committer::{Committer, CommitterThreads};
use crate::pipeline::enrich::Enricher;
use crate::ratelimit::RateLimiter;
use crate::routes;
use crate::telemetry;
use anyhow::Context;
use arc_swap::ArcSwap;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use threatfeed_core::geo::GeoDb;
use threatfeed_core::lookup::IndicatorIndex;
use threatfeed_core::threat::KnowledgeBase;
use threatfeed_core::{Org, OrgKind, Scope, Tlp, TokenRecord};
use threatfeed_store::log::{EventLog, open_log};
use threatfeed_store::state::StateStore;
use tokio_util::sync::CancellationToken;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    /// Validated configuration.
    pub config: Arc<Config>,
    /// The durable event log.
    pub log: Arc<dyn EventLog>,
    /// Members and tokens.
    pub state: Arc<StateStore>,
    /// Token table.
    pub auth: Arc<Auth>,
    /// Group committer.
    pub committer: Committer,
    /// Live fan-out.
    pub hub: Arc<Hub>,
    /// Enrichment tables.
    pub enricher: Arc<Enricher>,
    /// Ingest rate limit.
    pub ingest_limiter: Arc<RateLimiter>,
    /// The threat knowledge base (bundled, with admin edits layered over it).
    pub kb: Arc<ArcSwap<KnowledgeBase>>,
    /// The lookup index of the active indicators (rebuilt by `intel` after each change).
    pub indicators: Arc<ArcSwap<IndicatorIndex>>,
    /// Indicator records, their change log and contributors.
    pub intel: Arc<crate::indicators::IndicatorStore>,
    /// Serialises knowledge-base edits (readers never wait).
    pub kb_lock: Arc<std::sync::Mutex<()>>,
    /// Prometheus handle.
    pub metrics: PrometheusHandle,
    /// Cancelled when the server starts shutting down.
    pub shutdown: CancellationToken,
    /// Behaviour learned from the log, and unclassified clusters (`behaviour`).
    pub behaviour: Arc<crate::behaviour::Behaviour>,
    /// overview: live aggregates of the last 24 hours for the dashboard (`overview`).
    pub overview: Arc<crate::overview::Overview>,
}

/// The bundled request-pattern rules (unless `default_kb` is off), then the configured file's.
fn load_rules(config: &Config) -> anyhow::Result<threatfeed_core::rules::RuleSet> {
    let mut set = if config.default_kb {
        threatfeed_core::rules::RuleSet::bundled()?
    } else {
        threatfeed_core::rules::RuleSet::new()
    };
    if let Some(path) = &config.rules_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading rules file {}", path.display()))?;
        let extra = threatfeed_core::rules::RuleSet::from_toml(&text)
            .with_context(|| format!("rules file {}", path.display()))?;
        for r in extra.rules() {
            set.push(r.clone())
                .with_context(|| format!("rules file {}", path.display()))?;
        }
    }
    Ok(set)
}

/// Name of the geo snapshot written into the data directory by `threatfeed geo import`.
pub const GEO_SNAPSHOT_FILE: &str = "geo.tfgeo.gz";
/// Name of the admin token file.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

/// Loads the geo table: the configured snapshot, else `<data_dir>/geo.tfgeo.gz`, else the bundled one.
pub fn load_geo(cfg: &Config) -> anyhow::Result<(GeoDb, String)> {
    let candidates: Vec<PathBuf> = match &cfg.geo_snapshot {
        Some(p) => vec![p.clone()],
        None => vec![cfg.data_dir.join(GEO_SNAPSHOT_FILE)],
    };
    for p in candidates {
        if p.exists() || cfg.geo_snapshot.is_some() {
            let bytes = std::fs::read(&p)
                .with_context(|| format!("reading geo snapshot {}", p.display()))?;
            let db = GeoDb::from_snapshot(&bytes)
                .with_context(|| format!("loading geo snapshot {}", p.display()))?;
            return Ok((db, p.display().to_string()));
        }
    }
    Ok((
        GeoDb::embedded().context("loading the bundled geo snapshot")?,
        "bundled".to_string(),
    ))
}

/// What the admin bootstrap did, for the binary to print.
#[derive(Debug)]
pub enum AdminBootstrap {
    /// A new token was created and written to the file; print it once.
    Created {
        /// The secret.
        token: String,
        /// Where it was written.
        path: PathBuf,
    },
    /// `THREATFEED_ADMIN_TOKEN` is the admin token.
    FromEnv,
    /// An admin token already exists.
    Existing,
}

fn write_secret_file(path: &Path, secret: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(format!("{secret}\n").as_bytes())?;
    f.sync_all()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// Ensures an admin organisation and token exist (PRODUCT.md, "Admin bootstrap").
pub fn bootstrap_admin(
    state: &StateStore,
    auth: &Auth,
    data_dir: &Path,
    env_token: Option<&str>,
) -> anyhow::Result<AdminBootstrap> {
    let admin = match state
        .orgs()?
        .into_iter()
        .find(|o| o.kind == OrgKind::Admin && o.name == "admin")
    {
        Some(o) => o,
        None => {
            let org = Org {
                id: new_id("org"),
                name: "admin".into(),
                kind: OrgKind::Admin,
                scope: Scope::default(),
                tlp_clearance: Tlp::Red,
                created: jiff::Timestamp::now(),
            };
            state.put_org(&org)?;
            org
        }
    };
    if let Some(secret) = env_token.map(str::trim).filter(|s| !s.is_empty()) {
        auth.set_env_admin(secret, &admin.id);
        return Ok(AdminBootstrap::FromEnv);
    }
    let path = data_dir.join(ADMIN_TOKEN_FILE);
    let has_token = state
        .tokens()?
        .iter()
        .any(|t| t.org_id == admin.id && t.label == "bootstrap" && t.revoked.is_none());
    if has_token && path.exists() {
        return Ok(AdminBootstrap::Existing);
    }
    let (secret, hash) = new_token();
    let rec = TokenRecord {
        id: new_id("tok"),
        org_id: admin.id.clone(),
        hash,
        label: "bootstrap".into(),
        created: jiff::Timestamp::now(),
        revoked: None,
    };
    state.put_token(&rec)?;
    write_secret_file(&path, &secret)?;
    Ok(AdminBootstrap::Created {
        token: secret,
        path,
    })
}

/// Builds the router over `state`.
pub fn router(state: AppState) -> Router {
    let body_limit = state.config.limits.max_body_bytes;
    let api = Router::new()
        .route("/orgs", post(routes::orgs::create).get(routes::orgs::list))
        .route("/orgs/{id}", get(routes::orgs::get))
        .route("/orgs/{id}/tokens", post(routes::orgs::create_token))
        .route("/tokens", get(routes::orgs::list_tokens))
        .route("/tokens/{id}", delete(routes::orgs::revoke_token))
        .route("/me", get(routes::orgs::me))
        .route(
            "/events",
            post(routes::events::ingest).get(routes::events::list),
        )
        .route("/stream", get(routes::stream::stream))
        .route("/reports/infections", get(routes::reports::infections))
        .route("/admin/geo/reload", post(routes::ops::geo_reload))
        .route("/threats", get(routes::threats::list))
        .route(
            "/indicators",
            get(routes::indicators::list).post(routes::indicators::contribute),
        )
        .route("/import", post(routes::import::import))
        .route("/rules", get(routes::threats::rules))
        .route("/indicators/changes", get(routes::indicators::changes))
        .route("/indicators/stream", get(routes::indicators::stream))
        .route(
            "/indicators/{id}",
            get(routes::indicators::get).delete(routes::indicators::delete),
        )
        .route(
            "/indicators/{id}/false-positive",
            post(routes::indicators::false_positive),
        )
        .route("/export/misp/{file}", get(routes::export::misp_file))
        .route("/export/{format}", get(routes::export::export))
        .route("/lookup", post(routes::lookup::batch))
        .route("/lookup/{value}", get(routes::lookup::one))
        .route(
            "/threats/{id}",
            get(routes::threats::get).put(routes::threats::put),
        )
        // behaviour: observed behaviour and unclassified clusters.
        .route("/threats/{id}/behaviour", get(routes::threats::behaviour))
        .route("/clusters", get(routes::clusters::list))
        .route("/clusters/{id}/promote", post(routes::clusters::promote))
        // overview: the dashboard's aggregates.
        .route("/overview", get(routes::overview::get))
        .route("/overview/stream", get(routes::overview::stream))
        .route("/sensors", get(routes::overview::sensors))
        .fallback(api_not_found)
        .layer(DefaultBodyLimit::max(body_limit));
    use routes::taxii;
    let taxii = Router::new()
        .route("/taxii2/", get(taxii::discovery))
        .route("/taxii2/api/", get(taxii::api_root))
        .route("/taxii2/api/status/{status_id}/", get(taxii::status))
        .route("/taxii2/api/collections/", get(taxii::collections))
        .route("/taxii2/api/collections/{id}/", get(taxii::collection))
        .route(
            "/taxii2/api/collections/{id}/manifest/",
            get(taxii::manifest),
        )
        .route(
            "/taxii2/api/collections/{id}/objects/",
            get(taxii::get_objects).post(taxii::add_objects),
        )
        .route(
            "/taxii2/api/collections/{id}/objects/{object_id}/",
            get(taxii::get_object).delete(taxii::delete_object),
        )
        .route(
            "/taxii2/api/collections/{id}/objects/{object_id}/versions/",
            get(taxii::versions),
        )
        .layer(DefaultBodyLimit::max(body_limit));
    Router::new()
        .nest("/api/v1", api)
        .merge(taxii)
        .route("/healthz", get(routes::ops::healthz))
        .route("/metrics", get(routes::ops::metrics))
        // overview: the embedded dashboard page.
        .route("/", get(routes::dashboard::index))
        .route("/assets/{file}", get(routes::dashboard::file))
        .fallback(api_not_found)
        .with_state(state)
}

async fn api_not_found(uri: axum::http::Uri) -> crate::error::ApiError {
    crate::error::ApiError::NotFound(format!("no route for {}", uri.path()))
}

/// A started server, before it serves.
pub struct Server {
    state: AppState,
    threads: CommitterThreads,
    /// What the admin bootstrap did.
    pub admin: AdminBootstrap,
}

impl Server {
    /// Opens everything under `config.data_dir`.
    pub fn open(config: Config, env_admin_token: Option<&str>) -> anyhow::Result<Server> {
        let metrics = telemetry::install();
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
        let log = open_log(config.log_backend, &config.data_dir)
            .with_context(|| format!("opening the event log in {}", config.data_dir.display()))?;
        let state =
            Arc::new(StateStore::open(&config.data_dir).context("opening the member store")?);
        let auth = Arc::new(Auth::default());
        let admin = bootstrap_admin(&state, &auth, &config.data_dir, env_admin_token)?;
        auth.reload(&state).map_err(|e| anyhow::anyhow!("{e}"))?;
        let kb = routes::threats::load_knowledge_base(&state, config.default_kb)
            .context("loading the threat knowledge base")?;
        tracing::info!(threats = kb.len(), "threat knowledge base loaded");
        let kb = Arc::new(ArcSwap::from_pointee(kb));
        let indicators = Arc::new(ArcSwap::from_pointee(IndicatorIndex::new()));
        let changes_dir = config.data_dir.join("indicator-changes");
        let changes = open_log(config.log_backend, &changes_dir).with_context(|| {
            format!(
                "opening the indicator change log in {}",
                changes_dir.display()
            )
        })?;
        let intel = Arc::new(
            crate::indicators::IndicatorStore::open(
                state.clone(),
                changes,
                indicators.clone(),
                kb.clone(),
                config.indicators.clone(),
            )
            .context("opening the indicator store")?,
        );
        // The bundled C2 lists take a moment to parse: serve at once, swap them in when ready.
        if config.default_kb {
            let intel = intel.clone();
            std::thread::Builder::new()
                .name("load-indicators".into())
                .spawn(move || {
                    let added = intel.load_bundled();
                    tracing::info!(indicators = added, "bundled indicators loaded");
                })?;
        }
        let rules = load_rules(&config)?;
        // behaviour: rules of promoted clusters, after the configured ones.
        let promotions =
            crate::behaviour::load_promotions(&state).context("loading promoted clusters")?;
        let rules = crate::behaviour::with_promoted_rules(rules, &promotions);
        tracing::info!(rules = rules.len(), "request-pattern rules loaded");
        let (geo, source) = load_geo(&config)?;
        tracing::info!(source, stats = ?geo.stats(), "geo table loaded");
        let stats = log.stats();
        telemetry::log_size(stats.records, stats.bytes, stats.last_seq);
        tracing::info!(
            backend = log.backend(),
            last_seq = stats.last_seq,
            records = stats.records,
            "event log opened"
        );
        let hub = Arc::new(Hub::new(config.subscriber_buffer));
        let (committer, threads) = Committer::start(log.clone(), hub.clone())?;
        let state = AppState {
            ingest_limiter: Arc::new(RateLimiter::new(config.limits.ingest_events_per_sec)),
            config: Arc::new(config),
            log,
            state,
            auth,
            committer,
            hub,
            enricher: Arc::new(Enricher::new(geo, kb.clone(), indicators.clone(), rules)),
            indicators: indicators.clone(),
            intel,
            kb,
            kb_lock: Arc::new(std::sync::Mutex::new(())),
            metrics,
            shutdown: CancellationToken::new(),
            behaviour: Arc::new(crate::behaviour::Behaviour::new(&promotions)),
            overview: Arc::new(crate::overview::Overview::new()),
        };
        Ok(Server {
            state,
            threads,
            admin,
        })
    }

    /// The shared state (for tests that drive the router in-process).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves on `listener` until `stop` resolves, then shuts down gracefully.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let state = self.state.clone();
        let app = router(state.clone());
        let background = spawn_background(state.clone());
        // behaviour: replay the log, then follow it, until shutdown.
        let learner = state
            .behaviour
            .spawn(state.log.clone(), state.shutdown.clone())
            .context("starting the behaviour learner")?;
        // overview: replay the last 24 h, then follow both logs, until shutdown.
        let overview = state
            .overview
            .spawn(
                crate::overview::Sources {
                    log: state.log.clone(),
                    changes: state.intel.changes().clone(),
                    intel: state.intel.clone(),
                    kb: state.kb.clone(),
                },
                state.shutdown.clone(),
            )
            .context("starting the overview")?;
        let shutdown = state.shutdown.clone();
        let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
            stop.await;
            tracing::info!("shutting down: no new requests; finishing in-flight ones");
            shutdown.cancel();
        });
        serve.await.context("http server")?;
        background.abort();
        // behaviour: the learner stops within one poll of the shutdown signal.
        let _ = tokio::task::spawn_blocking(move || learner.join()).await;
        // overview: stops within one poll of the shutdown signal.
        let _ = tokio::task::spawn_blocking(move || overview.join()).await;
        state.committer.stop().await;
        let threads = self.threads;
        tokio::task::spawn_blocking(move || threads.join())
            .await
            .context("joining writer")?;
        let stats = state.log.stats();
        tracing::info!(last_seq = stats.last_seq, "event log closed cleanly");
        Ok(())
    }
}

fn spawn_background(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let retention_every = Duration::from_secs(state.config.retention_interval_secs);
        let mut retention = tokio::time::interval(retention_every);
        let mut gauges = tokio::time::interval(Duration::from_secs(1));
        let mut sweep =
            tokio::time::interval(Duration::from_secs(state.config.indicator_sweep_secs));
        loop {
            tokio::select! {
                _ = retention.tick() => {
                    let log = state.log.clone();
                    let policy = state.config.retention;
                    let now_ms = jiff::Timestamp::now().as_millisecond();
                    match tokio::task::spawn_blocking(move || log.trim(&policy, now_ms)).await {
                        Ok(Ok(n)) => telemetry::retention_trimmed(n),
                        Ok(Err(err)) => tracing::error!(%err, "retention failed"),
                        Err(err) => tracing::error!(%err, "retention task failed"),
                    }
                }
                _ = sweep.tick() => {
                    let intel = state.intel.clone();
                    match tokio::task::spawn_blocking(move || intel.sweep(jiff::Timestamp::now())).await {
                        Ok(Ok(0)) => {}
                        Ok(Ok(n)) => tracing::info!(removed = n, "indicators expired or decayed"),
                        Ok(Err(err)) => tracing::error!(%err, "indicator sweep failed"),
                        Err(err) => tracing::error!(%err, "indicator sweep task failed"),
                    }
                }
                _ = gauges.tick() => {
                    telemetry::process_memory();
                    telemetry::subscriber_lag(state.hub.max_lag());
                }
            }
        }
    })
}
