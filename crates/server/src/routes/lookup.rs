//! `GET /api/v1/lookup/{value}` and `POST /api/v1/lookup` (batch, up to 10,000 values): is this
//! IP, network, domain, URL or hash known-bad? Each hit carries its threat and a remediation
//! summary with a link to the full playbook. Filtered by TLP for the caller
//! (`threatfeed_core::privacy::can_see_indicator`).

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::routes::json_body;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use threatfeed_core::Viewer;
use threatfeed_core::lookup::IndicatorIndex;
use threatfeed_core::privacy::can_see_indicator;
use threatfeed_core::threat::KnowledgeBase;

/// Most values in one batch.
pub const MAX_BATCH: usize = 10_000;

/// Body of the batch lookup.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchLookup {
    values: Vec<String>,
}

fn answer(index: &IndicatorIndex, kb: &KnowledgeBase, viewer: &Viewer, raw: &str) -> Value {
    match index.lookup(raw) {
        Err(e) => json!({"value": raw, "error": e.to_string()}),
        Ok((kind, canonical, hits)) => {
            let hits: Vec<Value> = hits
                .iter()
                .filter(|h| can_see_indicator(viewer, h.tlp()))
                .map(|h| {
                    let threat = h.threat_id().and_then(|t| kb.get(t)).map(|t| {
                        json!({
                            "id": t.id, "name": t.name, "kind": t.kind,
                            "href": format!("/api/v1/threats/{}", t.id),
                            "remediation": {
                                "detect": t.playbook.detect.first(),
                                "contain": t.playbook.contain.first(),
                                "clean": t.playbook.clean.first(),
                                "verify": t.playbook.verify.first(),
                            },
                        })
                    });
                    json!({"indicator": h.indicator(), "matched": h.matched, "threat": threat})
                })
                .collect();
            json!({"value": raw, "kind": kind, "canonical": canonical, "known": !hits.is_empty(), "hits": hits})
        }
    }
}

/// `GET /api/v1/lookup/{value}`.
pub async fn one(
    State(state): State<AppState>,
    caller: Caller,
    Path(value): Path<String>,
) -> ApiResult<Json<Value>> {
    let v = answer(
        &state.indicators.load(),
        &state.kb.load(),
        &caller.viewer,
        &value,
    );
    if let Some(err) = v.get("error").and_then(Value::as_str) {
        return Err(ApiError::BadRequest(err.to_string()));
    }
    Ok(Json(v))
}

/// `POST /api/v1/lookup` with `{"values": [...]}`.
pub async fn batch(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let req: BatchLookup = json_body(&headers, &body)?;
    if req.values.len() > MAX_BATCH {
        return Err(ApiError::PayloadTooLarge(format!(
            "{} values in one lookup; at most {MAX_BATCH}",
            req.values.len()
        )));
    }
    let index = state.indicators.load_full();
    let kb = state.kb.load_full();
    let viewer = caller.viewer.clone();
    let results = tokio::task::spawn_blocking(move || {
        req.values
            .iter()
            .map(|v| answer(&index, &kb, &viewer, v))
            .collect::<Vec<Value>>()
    })
    .await
    .map_err(|e| ApiError::internal("lookup", e))?;
    let known = results.iter().filter(|r| r["known"] == true).count();
    Ok(Json(
        json!({"count": results.len(), "known": known, "results": results}),
    ))
}
