//! `POST /api/v1/events` (ingest) and `GET /api/v1/events` (the caller's scoped view of the log).
//!
//! Ingest: sensor and admin tokens only; body NDJSON or a JSON array (`?format=ctip` for
//! Microsoft CTIP records), optionally `Content-Encoding: gzip`; limits on the body size (as sent
//! and decompressed), the records per request, and the events per second per organisation. Each
//! bad record is reported by index and the rest are kept; the answer comes after the accepted
//! events are durable: `{"accepted": N, "rejected": [{"index", "error"}], "last_seq": S}`.

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::routes::{body_error, media_type};
use crate::telemetry;
use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use std::io::Read;
use std::time::Instant;
use threatfeed_core::Event;
use threatfeed_core::ingest::{InputFormat, ParseLimits, parse_body};
use threatfeed_core::privacy::can_see_event;

/// Query of `POST /api/v1/events`.
#[derive(Debug, Deserialize)]
pub struct IngestQuery {
    #[serde(default)]
    format: Option<String>,
}

/// Decompresses a gzip body, refusing output over `limit` bytes.
pub fn gunzip(body: &[u8], limit: usize) -> ApiResult<Vec<u8>> {
    let mut out = Vec::new();
    let mut dec = flate2::read::MultiGzDecoder::new(body).take(limit as u64 + 1);
    dec.read_to_end(&mut out)
        .map_err(|e| ApiError::BadRequest(format!("invalid gzip body: {e}")))?;
    if out.len() > limit {
        return Err(ApiError::PayloadTooLarge(format!(
            "decompressed body larger than the limit of {limit} bytes"
        )));
    }
    Ok(out)
}

/// `POST /api/v1/events`.
pub async fn ingest(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<IngestQuery>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let started = Instant::now();
    if !caller.org.kind.may_ingest() {
        telemetry::ingest_request_refused("forbidden");
        return Err(ApiError::Forbidden(format!(
            "only sensor and admin tokens may post events; organisation {:?} is of kind {}",
            caller.org.name, caller.org.kind
        )));
    }
    let limits = state.config.limits;
    let body = body.map_err(|r| {
        telemetry::ingest_request_refused("body");
        body_error(r, limits.max_body_bytes)
    })?;
    let format: InputFormat = q
        .format
        .as_deref()
        .unwrap_or("")
        .parse()
        .map_err(ApiError::BadRequest)?;
    match media_type(&headers).as_deref() {
        Some(
            "application/x-ndjson"
            | "application/ndjson"
            | "application/jsonl"
            | "application/jsonlines"
            | "application/x-jsonlines"
            | "application/json",
        ) => {}
        other => {
            telemetry::ingest_request_refused("content_type");
            return Err(ApiError::UnsupportedMediaType(format!(
                "content type {:?} not accepted (expected application/x-ndjson or application/json)",
                other.unwrap_or("none")
            )));
        }
    }
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase());
    let received = jiff::Timestamp::now();
    let enricher = state.enricher.clone();
    let max_records = limits.max_batch_records;
    let max_decompressed = limits.max_decompressed_bytes;
    let work = tokio::task::spawn_blocking(move || -> ApiResult<_> {
        let raw: std::borrow::Cow<'_, [u8]> = match encoding.as_deref() {
            None | Some("identity") => std::borrow::Cow::Borrowed(&body[..]),
            Some("gzip" | "x-gzip") => std::borrow::Cow::Owned(gunzip(&body, max_decompressed)?),
            Some(other) => {
                return Err(ApiError::UnsupportedMediaType(format!(
                    "content encoding {other:?} not accepted (expected gzip or none)"
                )));
            }
        };
        let parsed = parse_body(&raw, format, received, ParseLimits { max_records });
        let (indexes, mut events): (Vec<usize>, Vec<Event>) = parsed.events.into_iter().unzip();
        drop(indexes);
        enricher.enrich(&mut events);
        let stored: Vec<Vec<u8>> = events.iter().map(Event::encode_stored).collect();
        Ok((events, stored, parsed.rejected))
    });
    let (events, stored, rejected) = work
        .await
        .map_err(|e| ApiError::internal("ingest worker", e))?
        .inspect_err(|e| {
            if let ApiError::PayloadTooLarge(_) = e {
                telemetry::ingest_request_refused("body");
            }
        })?;
    if let Err(wait) = state.ingest_limiter.take(&caller.org.id, events.len()) {
        telemetry::ingest_request_refused("rate");
        return Err(ApiError::RateLimited {
            message: format!(
                "ingest rate limit of {} events/s for this organisation exceeded; nothing from this request was accepted",
                limits.ingest_events_per_sec
            ),
            retry_after_secs: wait,
        });
    }
    telemetry::events_rejected(rejected.len() as u64);
    let (accepted, duplicates, last_seq) = if events.is_empty() {
        (0, 0, state.log.last_seq())
    } else {
        let a = state
            .committer
            .append(events, stored)
            .await
            .map_err(ApiError::Unavailable)?;
        let last = if a.logged == 0 {
            state.log.last_seq()
        } else {
            a.first_seq + a.logged as u64 - 1
        };
        (a.logged, a.duplicates, last)
    };
    telemetry::events_ingested(accepted as u64);
    telemetry::ingest_latency(started.elapsed().as_secs_f64());
    Ok(Json(json!({
        "accepted": accepted,
        "duplicates": duplicates,
        "rejected": rejected,
        "last_seq": last_seq
    })))
}

/// Query of `GET /api/v1/events`.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    limit: Option<String>,
}

/// Most log records scanned for one page (a narrow scope on a huge log returns a partial page
/// with `next_after` to continue from).
const MAX_SCAN: usize = 1_000_000;

/// `GET /api/v1/events?after=SEQ&limit=N`.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<Response> {
    let after = match q.after.as_deref() {
        None | Some("") => 0,
        Some(s) => s
            .parse::<u64>()
            .map_err(|_| ApiError::BadRequest(format!("after: not a sequence number: {s:?}")))?,
    };
    let max = state.config.limits.max_page;
    let limit = match q.limit.as_deref() {
        None | Some("") => 100.min(max),
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => n,
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "limit: expected 1 to {max}, got {s:?}"
                )));
            }
        },
    };
    let log = state.log.clone();
    let viewer = caller.viewer.clone();
    let body = tokio::task::spawn_blocking(move || -> ApiResult<String> {
        let mut out = String::from("{\"events\":[");
        let mut cursor = after;
        let mut found = 0usize;
        let mut scanned = 0usize;
        let head = log.last_seq();
        'scan: while found < limit && scanned < MAX_SCAN && cursor < head {
            let recs = log
                .read_after(cursor, 4096)
                .map_err(|e| ApiError::internal("reading the log", e))?;
            if recs.is_empty() {
                break;
            }
            for r in recs {
                scanned += 1;
                let visible = viewer.is_admin()
                    || Event::decode_stored(r.seq, &r.data)
                        .is_ok_and(|e| can_see_event(&viewer, &e));
                cursor = r.seq;
                if visible {
                    if found > 0 {
                        out.push(',');
                    }
                    out.push_str(&threatfeed_core::event::delivery_json(r.seq, &r.data));
                    found += 1;
                    if found == limit {
                        break 'scan;
                    }
                }
            }
        }
        out.push_str(&format!("],\"next_after\":{cursor},\"last_seq\":{head}}}"));
        Ok(out)
    })
    .await
    .map_err(|e| ApiError::internal("listing events", e))??;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}
