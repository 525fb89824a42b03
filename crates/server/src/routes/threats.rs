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

/// `GET /api/v1/rules`: the request-pattern rules classification uses, in order.
pub async fn rules(State(state): State<AppState>, _caller: Caller) -> Json<Value> {
    let set = state.enricher.rules();
    let rules: Vec<&threatfeed_core::rules::Rule> = set.rules().collect();
    Json(json!({ "count": rules.len(), "rules": rules }))
}

/// `GET /api/v1/threats/{id}`: one threat with its playbook, and its `observed_behaviour`
/// (aggregates learned from the log: shown to every member, it names no victim).
pub async fn get(
    State(state): State<AppState>,
    _caller: Caller,
    Path(key): Path<String>,
) -> ApiResult<Json<Value>> {
    let threat =
        state.kb.load().get(&key).cloned().ok_or_else(|| {
            ApiError::NotFound(format!("no threat with id, name or alias {key:?}"))
        })?;
    let mut v = serde_json::to_value(&threat).map_err(|e| ApiError::internal("encoding", e))?;
    if let Value::Object(o) = &mut v {
        o.insert(
            OBSERVED.to_string(),
            crate::behaviour::observed(&state, &threat.id),
        );
    }
    Ok(Json(v))
}

/// Name of the learned-behaviour member of a threat's answer (ignored when a threat is PUT back).
pub const OBSERVED: &str = "observed_behaviour";

/// `GET /api/v1/threats/{id}/behaviour`: just the threat's observed behaviour.
pub async fn behaviour(
    State(state): State<AppState>,
    _caller: Caller,
    Path(key): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = state
        .kb
        .load()
        .get(&key)
        .map(|t| t.id.clone())
        .ok_or_else(|| ApiError::NotFound(format!("no threat with id, name or alias {key:?}")))?;
    Ok(Json(crate::behaviour::observed(&state, &id)))
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
    let mut raw: Value = json_body(&headers, &body)?;
    // A threat as GET answers it carries its learned behaviour; that is not part of the threat.
    if let Value::Object(o) = &mut raw {
        o.remove(OBSERVED);
    }
    let threat: Threat = serde_json::from_value(raw)
        .map_err(|e| ApiError::BadRequest(format!("invalid json body: {e}")))?;
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
    persist(&state, &threat)?;
    state.kb.store(std::sync::Arc::new(kb));
    tracing::info!(threat_id = %id, "threat created or edited");
    Ok(Json(threat))
}

/// Stores admin-edited or imported threats in the member store, in one commit (layered over the
/// bundled knowledge base at the next start).
fn persist_all(state: &AppState, threats: &[Threat]) -> ApiResult<()> {
    if threats.is_empty() {
        return Ok(());
    }
    let store = |e: threatfeed_store::state::StateError| ApiError::internal("storing threat", e);
    let mut ids: Vec<String> = match state.state.get_meta(STORED_IDS).map_err(store)? {
        Some(t) => serde_json::from_str(&t).unwrap_or_default(),
        None => Vec::new(),
    };
    let mut items = Vec::with_capacity(threats.len() + 1);
    for t in threats {
        let text =
            serde_json::to_string(t).map_err(|e| ApiError::internal("encoding threat", e))?;
        items.push((format!("{STORED_PREFIX}{}", t.id), text));
        if !ids.contains(&t.id) {
            ids.push(t.id.clone());
        }
    }
    let list = serde_json::to_string(&ids).map_err(|e| ApiError::internal("encoding", e))?;
    items.push((STORED_IDS.to_string(), list));
    state.state.set_meta_many(&items).map_err(store)
}

fn persist(state: &AppState, threat: &Threat) -> ApiResult<()> {
    persist_all(state, std::slice::from_ref(threat))
}

/// Fills the empty sections of an imported threat's playbook with generic steps, saying so.
fn with_generic_playbook(mut t: Threat, source: &str) -> Threat {
    let note = format!("(generic step: {source} gave no playbook for {})", t.name);
    let p = &mut t.playbook;
    if p.detect.is_empty() {
        p.detect.push(format!(
            "Look for connections from your networks to the indicators listed for this threat (GET /api/v1/indicators?threat={}); each source address is a host to investigate. {note}",
            t.id
        ));
    }
    if p.contain.is_empty() {
        p.contain.push(format!(
            "Move the host to a quarantine network or block its outbound traffic, and block the listed indicators at the firewall and resolver until it is cleaned. {note}"
        ));
    }
    if p.clean.is_empty() {
        p.clean.push(format!(
            "Follow the security vendor's removal guidance for this family; when in doubt, back up user data, reinstall the operating system from trusted media, scan the backup before restoring it, and change every password used on the host. {note}"
        ));
    }
    if p.verify.is_empty() {
        p.verify.push(format!(
            "Confirm that the host has not contacted any listed indicator for several days and that a current anti-malware scan is clean. {note}"
        ));
    }
    if p.customer_notice.trim().is_empty() {
        p.customer_notice = format!(
            "A device on your connection appears to be infected with malicious software ({}). Please run an up-to-date security scan on all your devices, change your passwords afterwards, and contact us if you need help.",
            t.name
        );
    }
    if t.description.trim().is_empty() {
        t.description = format!("{} (imported from {source}; no description given).", t.name);
    }
    t
}

/// Merges threats from an import into the knowledge base (admin): a known threat (by id, name
/// or alias) gains the new aliases, references and playbook text, and its description if it
/// had none; an unknown one is added with generic playbook steps for what the source did not
/// state. Returns (created, updated, refused with reasons).
pub fn merge_imported(
    state: &AppState,
    threats: Vec<Threat>,
    source: &str,
    add_new: bool,
) -> ApiResult<(usize, usize, Vec<String>)> {
    let _edit = state.kb_lock.lock().unwrap_or_else(|p| p.into_inner());
    let mut kb = threatfeed_core::threat::KnowledgeBase::clone(&state.kb.load());
    let (mut created, mut updated, mut refused) = (0, 0, Vec::new());
    let mut changed = Vec::new();
    for t in threats {
        let existing = kb
            .get(&t.id)
            .or_else(|| kb.get(&t.name))
            .or_else(|| t.aliases.iter().find_map(|a| kb.get(a)))
            .cloned();
        let (merged, is_new) = match existing {
            Some(mut e) => {
                let before = e.clone();
                for a in &t.aliases {
                    let taken = kb.get(a).is_some_and(|o| o.id != e.id);
                    let known = e.name.eq_ignore_ascii_case(a)
                        || e.aliases.iter().any(|x| x.eq_ignore_ascii_case(a));
                    if !taken && !known {
                        e.aliases.push(a.clone());
                    }
                }
                if !e.name.eq_ignore_ascii_case(&t.name)
                    && !e.aliases.iter().any(|x| x.eq_ignore_ascii_case(&t.name))
                    && kb.get(&t.name).is_none_or(|o| o.id == e.id)
                {
                    e.aliases.push(t.name.clone());
                }
                for r in &t.references {
                    if !e.references.contains(r) {
                        e.references.push(r.clone());
                    }
                }
                if e.description.trim().is_empty() {
                    e.description = t.description.clone();
                }
                let p = &mut e.playbook;
                for (mine, theirs) in [
                    (&mut p.detect, &t.playbook.detect),
                    (&mut p.contain, &t.playbook.contain),
                    (&mut p.clean, &t.playbook.clean),
                    (&mut p.verify, &t.playbook.verify),
                ] {
                    for step in theirs {
                        if !mine.contains(step) {
                            mine.push(step.clone());
                        }
                    }
                }
                if e == before {
                    continue;
                }
                (e, false)
            }
            None if add_new => {
                let mut t = t;
                // Names another threat already answers to stay with that threat.
                t.aliases.retain(|a| kb.get(a).is_none());
                (with_generic_playbook(t, source), true)
            }
            None => continue,
        };
        match kb.upsert(merged.clone()) {
            Ok(()) => {
                if is_new {
                    created += 1;
                } else {
                    updated += 1;
                }
                changed.push(merged);
            }
            Err(e) => {
                refused.push(format!("threat {:?}: {e}", merged.name));
            }
        }
    }
    persist_all(state, &changed)?;
    state.kb.store(std::sync::Arc::new(kb));
    Ok((created, updated, refused))
}
