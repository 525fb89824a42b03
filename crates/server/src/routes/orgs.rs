//! Members and tokens: `POST/GET /api/v1/orgs`, `GET /api/v1/orgs/{id}`,
//! `POST /api/v1/orgs/{id}/tokens`, `GET /api/v1/tokens`, `DELETE /api/v1/tokens/{id}`,
//! `GET /api/v1/me`. Everything but `me` needs an admin token.

use crate::app::AppState;
use crate::auth::{Caller, new_id, new_token};
use crate::error::{ApiError, ApiResult};
use crate::routes::json_body;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use threatfeed_core::{Org, OrgKind, Scope, Tlp, TokenRecord};

/// Body of `POST /api/v1/orgs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateOrg {
    name: String,
    kind: String,
    #[serde(default)]
    scope: RawScope,
    #[serde(default)]
    tlp_clearance: Option<String>,
}

/// A scope as sent by a client.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScope {
    #[serde(default)]
    cidrs: Vec<String>,
    #[serde(default)]
    asns: Vec<u64>,
    #[serde(default)]
    countries: Vec<String>,
}

/// Body of `POST /api/v1/orgs/{id}/tokens`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    #[serde(default)]
    label: String,
}

/// A token record as listed (never the hash).
#[derive(Debug, Serialize)]
struct TokenView<'a> {
    id: &'a str,
    org_id: &'a str,
    label: &'a str,
    created: jiff::Timestamp,
    revoked: Option<jiff::Timestamp>,
}

fn issue_token(state: &AppState, org_id: &str, label: String) -> ApiResult<(String, TokenRecord)> {
    let (secret, hash) = new_token();
    let rec = TokenRecord {
        id: new_id("tok"),
        org_id: org_id.to_string(),
        hash,
        label,
        created: jiff::Timestamp::now(),
        revoked: None,
    };
    state
        .state
        .put_token(&rec)
        .map_err(|e| ApiError::internal("storing token", e))?;
    state.auth.put_token(&rec);
    Ok((secret, rec))
}

/// Validates a creation request into an [`Org`].
pub fn org_from_request(req: CreateOrg) -> ApiResult<Org> {
    let name = req.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::Unprocessable(format!(
            "invalid organisation name {:?} (1 to 200 characters)",
            req.name
        )));
    }
    let kind: OrgKind = req
        .kind
        .parse()
        .map_err(|e: threatfeed_core::org::ScopeError| ApiError::Unprocessable(e.to_string()))?;
    let scope = Scope::parse(&req.scope.cidrs, &req.scope.asns, &req.scope.countries)
        .and_then(|s| s.validated(kind))
        .map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    let tlp_clearance = match req.tlp_clearance {
        None => Tlp::Amber,
        Some(s) => s
            .parse::<Tlp>()
            .map_err(|e| ApiError::Unprocessable(format!("tlp_clearance: {e}")))?,
    };
    Ok(Org {
        id: new_id("org"),
        name,
        kind,
        scope,
        tlp_clearance,
        created: jiff::Timestamp::now(),
    })
}

/// `POST /api/v1/orgs`.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require_admin()?;
    let req: CreateOrg = json_body(&headers, &body)?;
    let org = org_from_request(req)?;
    if !state.auth.add_org_if_new_name(&org) {
        return Err(ApiError::Conflict(format!(
            "an organisation named {:?} already exists",
            org.name
        )));
    }
    if let Err(e) = state.state.put_org(&org) {
        state.auth.remove_org(&org.id);
        return Err(ApiError::internal("storing organisation", e));
    }
    let (secret, rec) = issue_token(&state, &org.id, "initial".into())?;
    tracing::info!(org_id = %org.id, name = %org.name, kind = %org.kind, "organisation created");
    let mut v = serde_json::to_value(&org).map_err(|e| ApiError::internal("encoding", e))?;
    v["token"] = json!(secret);
    v["token_id"] = json!(rec.id);
    Ok((StatusCode::CREATED, Json(v)))
}

/// `GET /api/v1/orgs`.
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    let orgs = state
        .state
        .orgs()
        .map_err(|e| ApiError::internal("listing organisations", e))?;
    Ok(Json(json!({ "orgs": orgs })))
}

/// `GET /api/v1/orgs/{id}`.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Org>> {
    if !caller.is_admin() && caller.org.id != id {
        return Err(ApiError::Forbidden(
            "only admins may read other organisations".into(),
        ));
    }
    state
        .state
        .org(&id)
        .map_err(|e| ApiError::internal("reading organisation", e))?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no organisation with id {id:?}")))
}

/// `GET /api/v1/me`: the caller's own organisation, and its record as a contributor.
pub async fn me(State(state): State<AppState>, caller: Caller) -> Json<Value> {
    let mut v = serde_json::to_value(caller.org.as_ref()).unwrap_or_else(|_| json!({}));
    v["token_id"] = json!(caller.token_id);
    let stats = state.intel.stats(&caller.org.id);
    v["contributions"] = json!({
        "contributed": stats.contributed,
        "false_positives": stats.false_positives,
        "accuracy": stats.accuracy(),
    });
    Json(v)
}

/// `POST /api/v1/orgs/{id}/tokens`.
pub async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require_admin()?;
    let req: CreateToken = if body.is_empty() {
        CreateToken::default()
    } else {
        json_body(&headers, &body)?
    };
    if state
        .state
        .org(&id)
        .map_err(|e| ApiError::internal("reading organisation", e))?
        .is_none()
    {
        return Err(ApiError::NotFound(format!(
            "no organisation with id {id:?}"
        )));
    }
    let (secret, rec) = issue_token(&state, &id, req.label)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"token_id": rec.id, "org_id": id, "token": secret, "label": rec.label})),
    ))
}

/// `GET /api/v1/tokens`.
pub async fn list_tokens(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    let tokens = state
        .state
        .tokens()
        .map_err(|e| ApiError::internal("listing tokens", e))?;
    let views: Vec<TokenView<'_>> = tokens
        .iter()
        .map(|t| TokenView {
            id: &t.id,
            org_id: &t.org_id,
            label: &t.label,
            created: t.created,
            revoked: t.revoked,
        })
        .collect();
    Ok(Json(json!({ "tokens": views })))
}

/// `DELETE /api/v1/tokens/{id}`.
pub async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    let rec = state
        .state
        .revoke_token(&id, jiff::Timestamp::now())
        .map_err(|e| ApiError::internal("revoking token", e))?
        .ok_or_else(|| ApiError::NotFound(format!("no token with id {id:?}")))?;
    state.auth.revoke_token(&rec.id);
    tracing::info!(token_id = %id, org_id = %rec.org_id, "token revoked");
    Ok(Json(
        json!({"token_id": rec.id, "org_id": rec.org_id, "revoked": rec.revoked}),
    ))
}
