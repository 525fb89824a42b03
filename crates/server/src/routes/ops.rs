//! Operations: `GET /healthz`, `GET /metrics` (Prometheus text), and admin operations
//! (`POST /api/v1/admin/geo/reload`).

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::telemetry;
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::{Value, json};

/// `GET /healthz`.
pub async fn healthz(State(state): State<AppState>) -> Json<Value> {
    let stats = state.log.stats();
    Json(json!({
        "status": if state.shutdown.is_cancelled() { "stopping" } else { "ok" },
        "version": env!("CARGO_PKG_VERSION"),
        "log_backend": state.log.backend(),
        "last_seq": stats.last_seq,
        "log_records": stats.records,
        "subscribers": state.hub.subscriber_count(),
        "indicators": state.indicators.load().len(),
        "threats": state.kb.load().len(),
    }))
}

/// `GET /metrics`.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    telemetry::process_memory();
    let stats = state.log.stats();
    telemetry::log_size(stats.records, stats.bytes, stats.last_seq);
    telemetry::subscribers(state.hub.subscriber_count());
    telemetry::subscriber_lag(state.hub.max_lag());
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

/// `POST /api/v1/admin/geo/reload`: reloads the geo snapshot from the data directory.
pub async fn geo_reload(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    let cfg = state.config.clone();
    let (geo, source) = tokio::task::spawn_blocking(move || crate::app::load_geo(&cfg))
        .await
        .map_err(|e| ApiError::internal("geo reload", e))?
        .map_err(|e| ApiError::Unprocessable(format!("cannot load geo snapshot: {e}")))?;
    let stats = geo.stats();
    state.enricher.swap_geo(geo);
    tracing::info!(%source, "geo table reloaded");
    Ok(Json(json!({"source": source, "stats": stats})))
}
