//! `GET /api/v1/stream` — the caller's scoped live feed as Server-Sent Events.
//!
//! Every message is `id: <seq>` + `data: <event JSON>`. A client resumes with the standard
//! `Last-Event-ID` header (or `?after=SEQ`) and receives every visible event after that seq, with
//! no gap and no duplicate; without either it starts at the head (live only). `?after=0` replays
//! the whole retained log.
//!
//! How the guarantee holds: the stream registers with the hub *before* reading the log, so every
//! event committed after registration arrives on its queue and every event before it is in the
//! log; the `seq` cursor drops what was already sent. If the subscriber falls behind, the hub
//! closes its queue and the stream goes back to the log from its cursor (catch-up), then
//! registers again — it is never silently dropped.

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::telemetry;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::time::Duration;
use threatfeed_core::Event;
use threatfeed_core::privacy::can_see_event;

/// Query of the stream.
#[derive(Debug, Deserialize)]
pub struct StreamQuery {
    #[serde(default)]
    after: Option<String>,
}

/// Records read from the log per catch-up step.
const CATCH_UP_PAGE: usize = 2048;

/// Largest chunk written at once: queued batches are coalesced up to this size, so a busy
/// subscriber costs one write per chunk rather than one per event.
const MAX_CHUNK: usize = 256 * 1024;

fn parse_seq(what: &str, s: &str) -> ApiResult<u64> {
    s.trim()
        .parse::<u64>()
        .map_err(|_| ApiError::BadRequest(format!("{what}: not a sequence number: {s:?}")))
}

/// Appends one SSE message (`id: <seq>`, `data: <json>`) to `buf`. Event JSON is compact and
/// escapes newlines, so it always fits one `data:` line.
fn push_message(buf: &mut Vec<u8>, seq: u64, json: &str) {
    buf.extend_from_slice(b"id: ");
    buf.extend_from_slice(seq.to_string().as_bytes());
    buf.extend_from_slice(b"\ndata: ");
    buf.extend_from_slice(json.as_bytes());
    buf.extend_from_slice(b"\n\n");
}

/// `GET /api/v1/stream`.
pub async fn stream(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<StreamQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let from_header = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.trim().is_empty());
    let start = match (from_header, q.after.as_deref().filter(|s| !s.is_empty())) {
        (Some(h), _) => parse_seq("Last-Event-ID", h)?,
        (None, Some(a)) => parse_seq("after", a)?,
        (None, None) => state.log.last_seq(),
    };
    let viewer = caller.viewer.clone();
    let hub = state.hub.clone();
    let log = state.log.clone();
    let shutdown = state.shutdown.clone();
    let keepalive = Duration::from_secs(state.config.keepalive_secs);
    let s = async_stream::stream! {
        let mut cursor = start;
        // Tell the client the stream is open before the first event.
        yield Ok::<Bytes, Infallible>(Bytes::from_static(b": threatfeed stream\n\n"));
        'outer: loop {
            let mut sub = hub.subscribe(&viewer, cursor);
            // Catch up from the durable log.
            loop {
                let log2 = log.clone();
                let read = tokio::task::spawn_blocking(move || log2.read_after(cursor, CATCH_UP_PAGE)).await;
                let recs = match read {
                    Ok(Ok(r)) => r,
                    Ok(Err(err)) => {
                        tracing::error!(%err, "stream catch-up read failed");
                        yield Ok(Bytes::from_static(b"event: error\ndata: event log read failed; reconnect with Last-Event-ID\n\n"));
                        break 'outer;
                    }
                    Err(err) => {
                        tracing::error!(%err, "stream catch-up task failed");
                        break 'outer;
                    }
                };
                let n = recs.len();
                let mut sent = 0u64;
                let mut buf = Vec::new();
                for r in recs {
                    cursor = r.seq;
                    let visible = viewer.is_admin()
                        || Event::decode_stored(r.seq, &r.data).is_ok_and(|e| can_see_event(&viewer, &e));
                    if visible {
                        sent += 1;
                        push_message(&mut buf, r.seq, &threatfeed_core::event::delivery_json(r.seq, &r.data));
                    }
                }
                if !buf.is_empty() {
                    yield Ok(Bytes::from(buf));
                }
                telemetry::events_delivered(sent);
                sub.delivered.store(cursor, Ordering::Relaxed);
                if n < CATCH_UP_PAGE || shutdown.is_cancelled() {
                    break;
                }
            }
            // Live.
            loop {
                let batch = tokio::select! {
                    b = sub.rx.recv() => b,
                    _ = tokio::time::sleep(keepalive) => {
                        yield Ok(Bytes::from_static(b":\n\n"));
                        continue;
                    }
                    _ = shutdown.cancelled() => break 'outer,
                };
                let Some(batch) = batch else {
                    // Queue closed: lagged. Catch up from the log and register again.
                    continue 'outer;
                };
                let mut buf = Vec::new();
                let mut next = Some(batch);
                while let Some(batch) = next.take() {
                    for c in batch.iter() {
                        if c.event.seq <= cursor {
                            continue;
                        }
                        cursor = c.event.seq;
                        push_message(&mut buf, cursor, c.json());
                    }
                    if buf.len() < MAX_CHUNK {
                        next = sub.rx.try_recv().ok();
                    }
                }
                if !buf.is_empty() {
                    yield Ok(Bytes::from(buf));
                }
                sub.delivered.store(cursor, Ordering::Relaxed);
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
