//! `/api/v1/indicators` — the indicator records: list, contribute, read, withdraw / delete,
//! report a false positive, and follow their changes (additions *and removals*).
//!
//! - `GET /api/v1/indicators?type=&threat=&since=&min_confidence=&active=&after=&limit=` — a page
//!   of the records the caller may see (TLP), ordered by id; `next` is the `after` of the next
//!   page. `active` is `true` (default), `false` or `any`; `min_confidence` applies to the
//!   decayed confidence.
//! - `POST /api/v1/indicators` — `{"indicators": [{"value", "type"?, "threat"?, "confidence"?,
//!   "tlp"?, "last_seen"?, "valid_until"?, "port"?, "description"?}], "anonymous"?, "tlp"?}`;
//!   every member may contribute; each bad item is rejected with its index and the reason, the
//!   rest are durable when the answer comes. `anonymous: true` hides the member from everyone
//!   else. Default TLP: the request's `tlp`, else GREEN.
//! - `GET /api/v1/indicators/{id}`, `DELETE /api/v1/indicators/{id}` (admin: delete; member:
//!   withdraw its own report), `POST /api/v1/indicators/{id}/false-positive`.
//! - `GET /api/v1/indicators/changes?after=SEQ&limit=N` and `GET /api/v1/indicators/stream`
//!   (SSE: `id: <seq>`, `event: add|update|remove`, resumable with `Last-Event-ID`/`?after=`) —
//!   the change log, TLP-filtered.

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::indicators::{ListFilter, Reporter};
use crate::routes::json_body;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::time::Duration;
use threatfeed_core::intel::{Contribution, StoredChange};
use threatfeed_core::privacy::can_see_indicator;
use threatfeed_core::tlp::Tlp;

/// Most items in one contribution.
pub const MAX_CONTRIBUTION: usize = 10_000;

/// Query of the listing.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    threat: Option<String>,
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    min_confidence: Option<String>,
    #[serde(default)]
    active: Option<String>,
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    limit: Option<String>,
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Parses a page size of 1..=max (default `dflt`).
pub fn parse_limit(s: Option<&str>, dflt: usize, max: usize) -> ApiResult<usize> {
    match s {
        None => Ok(dflt.min(max)),
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::BadRequest(format!(
                "limit: expected 1 to {max}, got {s:?}"
            ))),
        },
    }
}

/// Parses an RFC 3339 time or epoch seconds.
pub fn parse_time(what: &str, s: &str) -> ApiResult<jiff::Timestamp> {
    if let Ok(secs) = s.parse::<i64>() {
        return jiff::Timestamp::from_second(secs).map_err(|_| {
            ApiError::BadRequest(format!("{what}: epoch seconds out of range: {s:?}"))
        });
    }
    s.parse::<jiff::Timestamp>().map_err(|_| {
        ApiError::BadRequest(format!(
            "{what}: expected an RFC 3339 time or epoch seconds, got {s:?}"
        ))
    })
}

/// `GET /api/v1/indicators`.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let kb = state.kb.load();
    let mut f = ListFilter {
        limit: parse_limit(non_empty(&q.limit), 1000, state.config.limits.max_page)?,
        active: Some(true),
        after: non_empty(&q.after).map(str::to_string),
        ..Default::default()
    };
    if let Some(k) = non_empty(&q.kind) {
        f.kind = Some(
            k.parse()
                .map_err(|e: threatfeed_core::indicator::IndicatorError| {
                    ApiError::BadRequest(format!("type: {e}"))
                })?,
        );
    }
    if let Some(t) = non_empty(&q.threat) {
        f.threat = Some(kb.get(t).map_or_else(|| t.to_string(), |t| t.id.clone()));
    }
    if let Some(s) = non_empty(&q.since) {
        f.since = Some(parse_time("since", s)?);
    }
    if let Some(m) = non_empty(&q.min_confidence) {
        f.min_confidence = Some(match m.parse::<u8>() {
            Ok(n) if n <= 100 => n,
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "min_confidence: expected 0 to 100, got {m:?}"
                )));
            }
        });
    }
    f.active = match non_empty(&q.active) {
        None | Some("true") => Some(true),
        Some("false") => Some(false),
        Some("any") => None,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "active: expected true, false or any, got {other:?}"
            )));
        }
    };
    let intel = state.intel.clone();
    let (items, next) =
        tokio::task::spawn_blocking(move || intel.list(&caller, &f, jiff::Timestamp::now()))
            .await
            .map_err(|e| ApiError::internal("listing indicators", e))?;
    Ok(Json(
        json!({"count": items.len(), "indicators": items, "next": next}),
    ))
}

/// Body of a contribution.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContributeBody {
    indicators: Vec<Value>,
    #[serde(default)]
    anonymous: bool,
    #[serde(default)]
    tlp: Option<Tlp>,
}

/// `POST /api/v1/indicators`.
pub async fn contribute(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let req: ContributeBody = json_body(&headers, &body)?;
    if req.indicators.len() > MAX_CONTRIBUTION {
        return Err(ApiError::PayloadTooLarge(format!(
            "{} indicators in one request; at most {MAX_CONTRIBUTION}",
            req.indicators.len()
        )));
    }
    // Items are decoded one by one so that one malformed item is rejected alone.
    let mut items = Vec::with_capacity(req.indicators.len());
    let mut bad = Vec::new();
    for (i, v) in req.indicators.into_iter().enumerate() {
        match serde_json::from_value::<Contribution>(v) {
            Ok(c) => items.push((i, c)),
            Err(e) => bad.push(json!({"index": i, "error": format!("invalid indicator: {e}")})),
        }
    }
    let reporter = Reporter::member(&caller, req.anonymous, req.tlp.unwrap_or(Tlp::Green));
    let intel = state.intel.clone();
    let (positions, items): (Vec<usize>, Vec<Contribution>) = items.into_iter().unzip();
    let report = tokio::task::spawn_blocking(move || {
        intel.contribute(&reporter, items, jiff::Timestamp::now())
    })
    .await
    .map_err(|e| ApiError::internal("contributing", e))??;
    let mut rejected = bad;
    for r in &report.rejected {
        let index = positions.get(r.index).copied().unwrap_or(r.index);
        rejected.push(json!({"index": index, "error": r.error}));
    }
    let status = if report.ids.is_empty() && !rejected.is_empty() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(json!({
            "added": report.added,
            "merged": report.merged,
            "reactivated": report.reactivated,
            "rejected": rejected,
            "ids": report.ids,
        })),
    )
        .into_response())
}

/// `GET /api/v1/indicators/{id}`.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    state
        .intel
        .get(&caller, &id, jiff::Timestamp::now())
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no indicator {id:?}")))
}

/// `DELETE /api/v1/indicators/{id}`.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let intel = state.intel.clone();
    let id2 = id.clone();
    let status =
        tokio::task::spawn_blocking(move || intel.delete(&caller, &id2, jiff::Timestamp::now()))
            .await
            .map_err(|e| ApiError::internal("deleting", e))??;
    Ok(Json(json!({"id": id, "status": status})))
}

/// `POST /api/v1/indicators/{id}/false-positive`.
pub async fn false_positive(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let intel = state.intel.clone();
    let id2 = id.clone();
    let (status, reports) = tokio::task::spawn_blocking(move || {
        intel.report_false_positive(&caller, &id2, jiff::Timestamp::now())
    })
    .await
    .map_err(|e| ApiError::internal("reporting", e))??;
    Ok(Json(
        json!({"id": id, "status": status, "reports": reports}),
    ))
}

/// Query of the change listing and stream.
#[derive(Debug, Deserialize)]
pub struct ChangesQuery {
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    limit: Option<String>,
}

fn parse_seq(what: &str, s: &str) -> ApiResult<u64> {
    s.trim()
        .parse::<u64>()
        .map_err(|_| ApiError::BadRequest(format!("{what}: not a sequence number: {s:?}")))
}

/// A visible change: seq, op, delivered JSON.
type VisibleChange = (u64, String, String);

/// The visible changes after `after` (up to `limit` read): `(seq, op, json)` and the cursor.
fn read_changes(
    state: &AppState,
    viewer: &threatfeed_core::Viewer,
    after: u64,
    limit: usize,
) -> ApiResult<(Vec<VisibleChange>, u64)> {
    let recs = state
        .intel
        .changes()
        .read_after(after, limit)
        .map_err(|e| ApiError::internal("reading the indicator change log", e))?;
    let mut cursor = after;
    let mut out = Vec::new();
    for r in recs {
        cursor = r.seq;
        let Ok(head) = serde_json::from_slice::<StoredChange>(&r.data) else {
            continue;
        };
        if can_see_indicator(viewer, head.indicator.tlp) {
            let body = String::from_utf8_lossy(&r.data);
            out.push((
                r.seq,
                head.op.as_str().to_string(),
                threatfeed_core::event::delivery_json(r.seq, body.as_bytes()),
            ));
        }
    }
    Ok((out, cursor))
}

/// `GET /api/v1/indicators/changes`.
pub async fn changes(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ChangesQuery>,
) -> ApiResult<Response> {
    let after = match non_empty(&q.after) {
        None => 0,
        Some(s) => parse_seq("after", s)?,
    };
    let limit = parse_limit(non_empty(&q.limit), 1000, state.config.limits.max_page)?;
    let head = state.intel.changes().last_seq();
    let st = state.clone();
    let (items, cursor) =
        tokio::task::spawn_blocking(move || read_changes(&st, &caller.viewer, after, limit))
            .await
            .map_err(|e| ApiError::internal("reading changes", e))??;
    let mut out = String::from("{\"changes\":[");
    for (i, (_, _, j)) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(j);
    }
    out.push_str(&format!("],\"next_after\":{cursor},\"last_seq\":{head}}}"));
    Ok(([(header::CONTENT_TYPE, "application/json")], out).into_response())
}

/// `GET /api/v1/indicators/stream`.
pub async fn stream(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ChangesQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let from_header = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.trim().is_empty());
    let mut cursor = match (from_header, non_empty(&q.after)) {
        (Some(h), _) => parse_seq("Last-Event-ID", h)?,
        (None, Some(a)) => parse_seq("after", a)?,
        (None, None) => state.intel.changes().last_seq(),
    };
    let mut head = state.intel.subscribe();
    let keepalive = Duration::from_secs(state.config.keepalive_secs);
    let shutdown = state.shutdown.clone();
    let viewer = caller.viewer.clone();
    let s = async_stream::stream! {
        yield Ok::<Bytes, Infallible>(Bytes::from_static(b": threatfeed indicator changes\n\n"));
        loop {
            // Drain the log from the cursor; the watch is marked seen first so that an append
            // racing with the read wakes the loop again.
            head.borrow_and_update();
            loop {
                let (st, v) = (state.clone(), viewer.clone());
                let read = tokio::task::spawn_blocking(move || read_changes(&st, &v, cursor, 1024)).await;
                let Ok(Ok((items, next))) = read else {
                    yield Ok(Bytes::from_static(b"event: error\ndata: change log read failed; reconnect with Last-Event-ID\n\n"));
                    return;
                };
                let mut buf = String::new();
                for (seq, op, json) in &items {
                    buf.push_str(&format!("id: {seq}\nevent: {op}\ndata: {json}\n\n"));
                }
                if !buf.is_empty() {
                    yield Ok(Bytes::from(buf));
                }
                let progressed = next > cursor;
                cursor = next;
                if !progressed {
                    break;
                }
            }
            tokio::select! {
                changed = head.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                _ = tokio::time::sleep(keepalive) => {
                    yield Ok(Bytes::from_static(b":\n\n"));
                }
                _ = shutdown.cancelled() => return,
            }
        }
    };
    let mut resp = Body::from_stream(s).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(resp)
}
