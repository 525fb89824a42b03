//! `GET /api/v1/export/{format}` and `GET /api/v1/export/misp/{file}`: the indicators the caller
//! may see (TLP, [`threatfeed_core::privacy`]) as a blocklist, zone, rule set, STIX bundle, CSV,
//! JSON or MISP feed ([`threatfeed_core::export`]).
//!
//! Conditional and incremental pulls:
//! - every answer carries an `ETag` derived from the change log's head, the format, the query and
//!   what the caller may see; `If-None-Match` with it answers `304 Not Modified` without
//!   rendering anything, so a firewall polling every minute costs nothing while the feed is idle;
//! - `X-Threatfeed-Serial` is the change log's head at the time of the export (the RPZ serial);
//!   `?since=<serial>` (stix, csv, json) returns only what changed after it — additions, updates,
//!   and removals (expired, decayed, withdrawn, false positives) flagged as inactive.
//!
//! Filters: `threat` (id, name or alias) and `min_confidence`.

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use threatfeed_core::export::{self, Format, Meta};
use threatfeed_core::intel::IndicatorRecord;

/// The query of an export.
#[derive(Debug, Default, Deserialize)]
pub struct ExportQuery {
    /// Only changes after this serial (stix, csv, json).
    pub since: Option<String>,
    /// Only this threat's indicators.
    pub threat: Option<String>,
    /// Only indicators at least this confident.
    pub min_confidence: Option<String>,
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// A parsed export request.
struct Request {
    format: Format,
    since: Option<u64>,
    threat: Option<String>,
    min_confidence: Option<u8>,
}

fn parse(state: &AppState, format: &str, q: &ExportQuery) -> ApiResult<Request> {
    let format: Format = format
        .parse()
        .map_err(|e: export::UnknownFormat| ApiError::NotFound(e.to_string()))?;
    let since = match non_empty(&q.since) {
        None => None,
        Some(s) => {
            if !format.supports_since() {
                return Err(ApiError::BadRequest(format!(
                    "since: the {} export is always the whole list (poll it with If-None-Match); \
                     incremental pulls are available for stix, csv and json",
                    format.name()
                )));
            }
            Some(s.parse::<u64>().map_err(|_| {
                ApiError::BadRequest(format!(
                    "since: expected the X-Threatfeed-Serial of an earlier export, got {s:?}"
                ))
            })?)
        }
    };
    let threat = non_empty(&q.threat).map(|t| {
        state
            .kb
            .load()
            .get(t)
            .map_or_else(|| t.to_ascii_lowercase(), |t| t.id.clone())
    });
    let min_confidence = match non_empty(&q.min_confidence) {
        None => None,
        Some(m) => match m.parse::<u8>() {
            Ok(n) if n <= 100 => Some(n),
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "min_confidence: expected 0-100, got {m:?}"
                )));
            }
        },
    };
    Ok(Request {
        format,
        since,
        threat,
        min_confidence,
    })
}

/// The entity tag of an export: what the caller may see, the request, and the log head.
fn etag(caller: &Caller, req: &Request, part: &str, head: u64) -> String {
    let mut h = Sha256::new();
    h.update(req.format.name().as_bytes());
    h.update(b"\0");
    h.update(part.as_bytes());
    h.update(b"\0");
    h.update(if caller.is_admin() { "admin" } else { "member" }.as_bytes());
    h.update(caller.viewer.clearance.as_str().as_bytes());
    h.update(format!("{:?}|{:?}|{:?}", req.since, req.threat, req.min_confidence).as_bytes());
    let d = h.finalize();
    format!("\"{head:x}-{}\"", hex::encode(&d[..8]))
}

fn not_modified(headers: &HeaderMap, tag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == tag || t == "*")
        })
}

fn records(state: &AppState, caller: &Caller, req: &Request) -> (Vec<IndicatorRecord>, u64) {
    let (mut records, head) = state.intel.snapshot(&caller.viewer, req.since);
    if let Some(t) = &req.threat {
        records.retain(|r| r.threat_id.as_deref() == Some(t.as_str()));
    }
    if let Some(m) = req.min_confidence {
        records.retain(|r| r.confidence >= m);
    }
    (records, head)
}

fn respond(body: Vec<u8>, content_type: &str, file_name: &str, tag: &str, head: u64) -> Response {
    let mut resp = (StatusCode::OK, Body::from(body)).into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("inline; filename=\"{file_name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    with_tags(resp, tag, head)
}

fn with_tags(mut resp: Response, tag: &str, head: u64) -> Response {
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(tag) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        "x-threatfeed-serial",
        HeaderValue::from_str(&head.to_string()).unwrap_or(HeaderValue::from_static("0")),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// `GET /api/v1/export/{format}`.
pub async fn export(
    State(state): State<AppState>,
    caller: Caller,
    Path(format): Path<String>,
    Query(q): Query<ExportQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let req = parse(&state, &format, &q)?;
    let head = state.intel.changes().last_seq();
    let tag = etag(&caller, &req, "", head);
    if not_modified(&headers, &tag) {
        return Ok(with_tags(
            StatusCode::NOT_MODIFIED.into_response(),
            &tag,
            head,
        ));
    }
    let format = req.format;
    let st = state.clone();
    let (body, head, tag) = tokio::task::spawn_blocking(move || {
        let (records, head) = records(&st, &caller, &req);
        let meta = Meta {
            generated: jiff::Timestamp::now(),
            serial: head,
            since: req.since,
        };
        let kb = st.kb.load();
        // The log may have moved since the tag above: tag what is actually exported.
        let tag = etag(&caller, &req, "", head);
        (export::render(req.format, &records, &kb, &meta), head, tag)
    })
    .await
    .map_err(|e| ApiError::internal("rendering the export", e))?;
    Ok(respond(
        body,
        format.content_type(),
        format.file_name(),
        &tag,
        head,
    ))
}

/// `GET /api/v1/export/misp/{file}`: `manifest.json`, `hashes.csv` or `<event uuid>.json` — the
/// layout MISP's feed fetcher expects under the feed URL `/api/v1/export/misp/`.
pub async fn misp_file(
    State(state): State<AppState>,
    caller: Caller,
    Path(file): Path<String>,
    Query(q): Query<ExportQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let req = parse(&state, "misp", &q)?;
    let head = state.intel.changes().last_seq();
    let tag = etag(&caller, &req, &file, head);
    if not_modified(&headers, &tag) {
        return Ok(with_tags(
            StatusCode::NOT_MODIFIED.into_response(),
            &tag,
            head,
        ));
    }
    let st = state.clone();
    let name = file.clone();
    let part = file.clone();
    let (body, head, tag) = tokio::task::spawn_blocking(move || {
        let (records, head) = records(&st, &caller, &req);
        let tag = etag(&caller, &req, &part, head);
        let meta = Meta {
            generated: jiff::Timestamp::now(),
            serial: head,
            since: None,
        };
        let kb = st.kb.load();
        let body = match name.as_str() {
            "manifest.json" => Some(export::render(Format::Misp, &records, &kb, &meta)),
            "hashes.csv" => Some(export::misp::hashes_csv(&records, &kb, &meta)),
            other => other
                .strip_suffix(".json")
                .and_then(|uuid| export::misp::event(uuid, &records, &kb, &meta)),
        };
        (body, head, tag)
    })
    .await
    .map_err(|e| ApiError::internal("rendering the MISP feed", e))?;
    let Some(body) = body else {
        return Err(ApiError::NotFound(format!(
            "no MISP feed file {file:?}: the feed holds manifest.json, hashes.csv and one \
             <event uuid>.json per event listed in the manifest"
        )));
    };
    let ct = if file.ends_with(".csv") {
        "text/csv; charset=utf-8"
    } else {
        "application/json"
    };
    Ok(respond(body, ct, &file, &tag, head))
}
