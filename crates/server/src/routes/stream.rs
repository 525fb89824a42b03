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
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::Stream;
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

fn parse_seq(what: &str, s: &str) -> ApiResult<u64> {
    s.trim()
        .parse::<u64>()
        .map_err(|_| ApiError::BadRequest(format!("{what}: not a sequence number: {s:?}")))
}

/// `GET /api/v1/stream`.
pub async fn stream(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<StreamQuery>,
    headers: HeaderMap,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
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
    let s = async_stream::stream! {
        let mut cursor = start;
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
                        yield Ok(SseEvent::default().event("error").data("event log read failed; reconnect with Last-Event-ID"));
                        break 'outer;
                    }
                    Err(err) => {
                        tracing::error!(%err, "stream catch-up task failed");
                        break 'outer;
                    }
                };
                let n = recs.len();
                let mut sent = 0u64;
                for r in recs {
                    cursor = r.seq;
                    let visible = viewer.is_admin()
                        || Event::decode_stored(r.seq, &r.data).is_ok_and(|e| can_see_event(&viewer, &e));
                    if visible {
                        sent += 1;
                        yield Ok(SseEvent::default().id(r.seq.to_string()).data(threatfeed_core::event::delivery_json(r.seq, &r.data)));
                    }
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
                    _ = shutdown.cancelled() => break 'outer,
                };
                let Some(batch) = batch else {
                    // Queue closed: lagged. Catch up from the log and register again.
                    continue 'outer;
                };
                for c in batch.iter() {
                    if c.event.seq <= cursor {
                        continue;
                    }
                    cursor = c.event.seq;
                    yield Ok(SseEvent::default().id(cursor.to_string()).data(c.json()));
                }
                sub.delivered.store(cursor, Ordering::Relaxed);
            }
        }
    };
    Ok(Sse::new(s)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(state.config.keepalive_secs))))
}
