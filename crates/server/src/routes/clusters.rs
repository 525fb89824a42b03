//! `GET /api/v1/clusters`, `POST /api/v1/clusters/{id}/promote` — check-ins no threat claims,
//! grouped by a shared pattern (`behaviour::ClusterKey`), and their promotion to a threat (admin).
//!
//! Promoting creates the threat when it is new (through `routes::threats::merge_imported`, the
//! admin import path: persisted, generic labelled playbook steps) and makes future check-ins of
//! the pattern classify to it: a request-pattern rule for URI and user-agent clusters (stored in
//! the member store, loaded at start, swapped into the enricher at once), a domain indicator for
//! domain clusters (the indicator store persists it). Past events are not rewritten; the cluster
//! leaves the list. Clusters hold no victim address, only counts and samples of hosts, paths and
//! user agents.

use crate::app::AppState;
use crate::auth::Caller;
use crate::behaviour::{ClusterKind, PROMOTED_META, Promotion, load_promotions};
use crate::error::{ApiError, ApiResult};
use crate::routes::json_body;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use threatfeed_core::threat::{Playbook, Threat, ThreatKind, is_valid_slug};

/// Query of the listing.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    /// At most this many (default 100, at most 1,000).
    pub limit: Option<usize>,
}

/// `GET /api/v1/clusters` (admin): the clusters, most check-ins first.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    let limit = q.limit.unwrap_or(100).min(1000);
    Ok(Json(state.behaviour.with(|l| l.clusters_json(limit))))
}

/// Body of a promotion.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromoteBody {
    /// The threat's slug (an existing threat, or a new one).
    pub threat: String,
    /// Display name of a new threat (default: the slug).
    #[serde(default)]
    pub name: Option<String>,
    /// Kind of a new threat (default `other`).
    #[serde(default)]
    pub kind: Option<ThreatKind>,
    /// Description of a new threat.
    #[serde(default)]
    pub description: Option<String>,
}

/// `POST /api/v1/clusters/{id}/promote` (admin).
pub async fn promote(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    let req: PromoteBody = json_body(&headers, &body)?;
    let slug = req.threat.trim().to_string();
    if !is_valid_slug(&slug) {
        return Err(ApiError::Unprocessable(format!(
            "threat {slug:?} is not a slug (lower-case [a-z0-9] words joined by '-')"
        )));
    }
    let _one = state.behaviour.promote_lock.lock().await;
    let (key, promoted) = state
        .behaviour
        .with(|l| (l.cluster_key(&id), l.is_promoted(&id)));
    let key = match key {
        Some(k) => k,
        None if promoted => {
            return Err(ApiError::Conflict(format!(
                "cluster {id:?} was already promoted"
            )));
        }
        None => return Err(ApiError::NotFound(format!("no cluster with id {id:?}"))),
    };

    // The rule first, so that a pattern that cannot be a rule changes nothing.
    let rule = key.rule(&slug);
    let mut rules = threatfeed_core::rules::RuleSet::clone(&state.enricher.rules());
    if let Some(r) = &rule {
        rules
            .push(r.clone())
            .map_err(|e| ApiError::Unprocessable(format!("cluster {id:?}: {e}")))?;
    }

    // The threat: an existing one (by id, name or alias), or a new one with generic steps.
    let existing = state.kb.load().get(&slug).map(|t| t.id.clone());
    let threat_id = match existing {
        Some(t) => t,
        None => {
            let name = req
                .name
                .as_deref()
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .unwrap_or(&slug)
                .to_string();
            let description = req
                .description
                .clone()
                .filter(|d| !d.trim().is_empty())
                .unwrap_or_else(|| {
                    format!(
                        "{name}: promoted by an admin from unclassified check-ins sharing the pattern {}.",
                        key.describe()
                    )
                });
            let t = Threat {
                id: slug.clone(),
                name,
                aliases: Vec::new(),
                kind: req.kind.unwrap_or(ThreatKind::Other),
                description,
                references: Vec::new(),
                behaviour: Default::default(),
                playbook: Playbook {
                    detect: Vec::new(),
                    contain: Vec::new(),
                    clean: Vec::new(),
                    verify: Vec::new(),
                    customer_notice: String::new(),
                },
            };
            let st = state.clone();
            let (_, _, refused) = tokio::task::spawn_blocking(move || {
                crate::routes::threats::merge_imported(
                    &st,
                    vec![t],
                    "an admin's promotion of a check-in cluster",
                    true,
                )
            })
            .await
            .map_err(|e| ApiError::internal("creating threat", e))??;
            if let Some(why) = refused.first() {
                return Err(ApiError::Unprocessable(why.clone()));
            }
            state
                .kb
                .load()
                .get(&slug)
                .map(|t| t.id.clone())
                .ok_or_else(|| ApiError::Unprocessable(format!("threat {slug:?} not created")))?
        }
    };
    let rule = rule.map(|mut r| {
        r.threat = threat_id.clone();
        r
    });

    // Domain clusters: a domain indicator of the threat (persisted by the indicator store).
    let mut indicator = None;
    if key.kind == ClusterKind::Domain
        && let Some(domain) = key.domain.clone()
    {
        let c: threatfeed_core::intel::Contribution = serde_json::from_value(json!({
            "value": domain, "type": "domain", "threat": threat_id,
            "description": format!("promoted from unclassified check-in cluster {id}"),
        }))
        .map_err(|e| ApiError::internal("building indicator", e))?;
        let reporter =
            crate::indicators::Reporter::member(&caller, false, threatfeed_core::Tlp::Green);
        let intel = state.intel.clone();
        let report = tokio::task::spawn_blocking(move || {
            intel.contribute(&reporter, vec![c], jiff::Timestamp::now())
        })
        .await
        .map_err(|e| ApiError::internal("contributing", e))??;
        if let Some(r) = report.rejected.first() {
            return Err(ApiError::Unprocessable(format!(
                "cluster {id:?}: domain indicator refused: {}",
                r.error
            )));
        }
        indicator = Some(domain);
    }

    // Persist the promotion, then let it take effect.
    let promotion = Promotion {
        cluster: id.clone(),
        key: key.clone(),
        threat: threat_id.clone(),
        rule: rule.clone(),
        indicator: indicator.clone(),
        at: jiff::Timestamp::now(),
    };
    let st = state.clone();
    tokio::task::spawn_blocking(move || -> ApiResult<()> {
        let store = |e: anyhow::Error| ApiError::internal("storing promotion", e);
        let mut all = load_promotions(&st.state).map_err(store)?;
        all.push(promotion);
        let text =
            serde_json::to_string(&all).map_err(|e| ApiError::internal("encoding promotion", e))?;
        st.state
            .set_meta(PROMOTED_META, &text)
            .map_err(|e| ApiError::internal("storing promotion", e))
    })
    .await
    .map_err(|e| ApiError::internal("storing promotion", e))??;
    if rule.is_some() {
        state.enricher.swap_rules(rules);
    }
    state.behaviour.with(|l| l.mark_promoted(&id));
    tracing::info!(cluster = %id, threat = %threat_id, "cluster promoted");
    Ok(Json(json!({
        "cluster": id,
        "key": key,
        "threat": threat_id,
        "href": format!("/api/v1/threats/{threat_id}"),
        "rule": rule,
        "indicator": indicator.map(|d| json!({"type": "domain", "value": d})),
    })))
}
