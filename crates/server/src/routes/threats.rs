//! `GET /api/v1/threats`, `GET /api/v1/threats/{id}`, `PUT /api/v1/threats/{id}` — the threat
//! knowledge base: what each family is, how it behaves, and the remediation playbook (detect /
//! contain / clean / verify / customer notice).
//!
//! Lookups accept the id, the name or any alias, case-insensitively. Threats are documentation,
//! not victim data: every member may read them. Only admins create or edit; edits are stored in
//! the member store and survive restarts, layered over the bundled knowledge base.

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::routes::json_body;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use bytes::Bytes;
use serde_json::{Value, json};
use threatfeed_core::threat::Threat;

/// Key prefix of admin-edited threats in the member store's metadata.
pub const STORED_PREFIX: &str = "threat/";
/// Metadata key listing the ids of admin-edited threats (JSON array).
pub const STORED_IDS: &str = "threat-ids";

/// The bundled knowledge base (unless `default_kb` is off) with the admin-edited threats stored
/// in `store` layered over it.
pub fn load_knowledge_base(
    store: &threatfeed_store::state::StateStore,
    default_kb: bool,
) -> anyhow::Result<threatfeed_core::threat::KnowledgeBase> {
    let mut kb = if default_kb {
        threatfeed_core::threat::KnowledgeBase::bundled()?
    } else {
        threatfeed_core::threat::KnowledgeBase::new()
    };
    let ids: Vec<String> = match store.get_meta(STORED_IDS)? {
        Some(text) => serde_json::from_str(&text)?,
        None => Vec::new(),
    };
    for id in ids {
        if let Some(text) = store.get_meta(&format!("{STORED_PREFIX}{id}"))? {
            match serde_json::from_str::<Threat>(&text) {
                Ok(t) => {
                    if let Err(err) = kb.upsert(t) {
                        tracing::warn!(threat_id = %id, %err, "stored threat refused; keeping the bundled one");
                    }
                }
                Err(err) => {
                    tracing::warn!(threat_id = %id, %err, "stored threat unreadable; ignored")
                }
            }
        }
    }
    Ok(kb)
}

/// `GET /api/v1/threats`: every threat, without the long texts.
pub async fn list(State(state): State<AppState>, _caller: Caller) -> Json<Value> {
    let kb = state.kb.load();
    let items: Vec<Value> = kb
        .threats()
        .iter()
        .map(|t| {
            json!({
                "id": t.id, "name": t.name, "aliases": t.aliases, "kind": t.kind,
                "description": t.description, "href": format!("/api/v1/threats/{}", t.id),
            })
        })
        .collect();
    Json(json!({ "threats": items }))
}

/// `GET /api/v1/threats/{id}`: one threat with its playbook.
pub async fn get(
    State(state): State<AppState>,
    _caller: Caller,
    Path(key): Path<String>,
) -> ApiResult<Json<Threat>> {
    state
        .kb
        .load()
        .get(&key)
        .cloned()
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no threat with id, name or alias {key:?}")))
}

/// `PUT /api/v1/threats/{id}`: create or replace a threat (admin).
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Threat>> {
    caller.require_admin()?;
    let threat: Threat = json_body(&headers, &body)?;
    if threat.id != id {
        return Err(ApiError::Unprocessable(format!(
            "the body's id {:?} does not match the path's {id:?}",
            threat.id
        )));
    }
    let _edit = state.kb_lock.lock().unwrap_or_else(|p| p.into_inner());
    let mut kb = threatfeed_core::threat::KnowledgeBase::clone(&state.kb.load());
    kb.upsert(threat.clone())
        .map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    let text =
        serde_json::to_string(&threat).map_err(|e| ApiError::internal("encoding threat", e))?;
    let store = |e: threatfeed_store::state::StateError| ApiError::internal("storing threat", e);
    state
        .state
        .set_meta(&format!("{STORED_PREFIX}{id}"), &text)
        .map_err(store)?;
    let mut ids: Vec<String> = match state.state.get_meta(STORED_IDS).map_err(store)? {
        Some(t) => serde_json::from_str(&t).unwrap_or_default(),
        None => Vec::new(),
    };
    if !ids.contains(&id) {
        ids.push(id.clone());
        let list = serde_json::to_string(&ids).map_err(|e| ApiError::internal("encoding", e))?;
        state.state.set_meta(STORED_IDS, &list).map_err(store)?;
    }
    state.kb.store(std::sync::Arc::new(kb));
    tracing::info!(threat_id = %id, "threat created or edited");
    Ok(Json(threat))
}
