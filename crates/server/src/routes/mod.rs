//! HTTP routes, one file per resource, and the small request helpers they share.
//!
//! - [`orgs`] — members and tokens (`/api/v1/orgs`, `/api/v1/tokens`, `/api/v1/me`);
//! - [`events`] — ingest and the scoped log listing (`/api/v1/events`);
//! - [`stream`] — the live SSE stream (`/api/v1/stream`);
//! - [`reports`] — the infection report (`/api/v1/reports/infections`);
//! - [`threats`] — the threat knowledge base and playbooks (`/api/v1/threats`);
//! - [`indicators`] — indicator records, contributions, removals and their change stream
//!   (`/api/v1/indicators`);
//! - [`import`] — whole third-party files, format detected (`/api/v1/import`);
//! - [`lookup`] — known-bad lookups, single and batch (`/api/v1/lookup`);
//! - [`export`] — blocklists, RPZ, Suricata, STIX, CSV, JSON, MISP feed (`/api/v1/export`);
//! - [`taxii`] — the TAXII 2.1 server (`/taxii2/`);
//! - [`ops`] — `/healthz`, `/metrics`, admin operations;
//! - [`clusters`] — unclassified check-ins grouped by pattern, and their promotion to a threat
//!   (`/api/v1/clusters`);
//! - [`dashboard`] — the embedded dashboard page (`/`, `/assets/app.js`, `/assets/app.css`);
//! - [`overview`] — the address-free aggregates behind it (`/api/v1/overview`, `…/stream`).

pub mod clusters;
pub mod dashboard;
pub mod events;
pub mod export;
pub mod import;
pub mod indicators;
pub mod lookup;
pub mod ops;
pub mod orgs;
pub mod overview;
pub mod reports;
pub mod stream;
pub mod taxii;
pub mod threats;

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use axum::extract::FromRequestParts;
use axum::extract::rejection::BytesRejection;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use bytes::Bytes;
use serde::de::DeserializeOwned;

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        state.auth.authenticate(&parts.headers)
    }
}

/// Maps a body-reading failure (e.g. over the size limit) to the API error table.
pub fn body_error(rej: BytesRejection, limit: usize) -> ApiError {
    if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge(format!(
            "request body larger than the limit of {limit} bytes"
        ))
    } else {
        ApiError::BadRequest(format!("cannot read request body: {rej}"))
    }
}

/// The media type of a request, lower-case, without parameters.
pub fn media_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
}

/// Parses a JSON request body, requiring a JSON content type.
pub fn json_body<T: DeserializeOwned>(headers: &HeaderMap, body: &Bytes) -> Result<T, ApiError> {
    match media_type(headers).as_deref() {
        Some("application/json") | None => {}
        Some(other) => {
            return Err(ApiError::UnsupportedMediaType(format!(
                "content type {other:?} not accepted here (expected application/json)"
            )));
        }
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("invalid json body: {e}")))
}
