//! `GET /api/v1/overview` and `GET /api/v1/overview/stream` — the live aggregates of the last
//! 24 hours behind the dashboard (see [`crate::overview`] for what they hold).
//!
//! Both serve the snapshot the overview thread last rendered: the handlers never touch the
//! aggregates. The stream sends it as `event: overview` once a second (the first at once), which
//! also keeps the connection alive. With `dashboard_public_overview = true` (the default) no
//! token is needed — the answer holds only counts per country, threat and ASN and TLP:CLEAR
//! indicators, never an address; with `false` any valid token is (401 otherwise).

use crate::app::AppState;
use crate::error::ApiResult;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use std::convert::Infallible;
use std::time::Duration;

/// How often the stream sends a snapshot.
pub const STREAM_EVERY: Duration = Duration::from_secs(1);

fn authorize(state: &AppState, headers: &HeaderMap) -> ApiResult<()> {
    if state.config.dashboard_public_overview {
        return Ok(());
    }
    state.auth.authenticate(headers).map(|_| ())
}

/// `GET /api/v1/sensors` (admin): per sensor name seen on events in the last 24 hours, when it
/// was last heard from (`last_event`, `idle_secs`) and how many check-ins and DNS queries it
/// sent — the sensors' health at a glance.
pub async fn sensors(
    State(state): State<AppState>,
    caller: crate::auth::Caller,
) -> ApiResult<axum::Json<serde_json::Value>> {
    caller.require_admin()?;
    let now = jiff::Timestamp::now().as_millisecond();
    let list = state.overview.with(|a| a.sensors(now));
    Ok(axum::Json(serde_json::json!({ "sensors": list })))
}

/// `GET /api/v1/overview`.
pub async fn get(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    authorize(&state, &headers)?;
    let snap = state.overview.snapshot();
    let mut resp = snap.json.clone().into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(resp)
}

/// `GET /api/v1/overview/stream`.
pub async fn stream(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    authorize(&state, &headers)?;
    let overview = state.overview.clone();
    let shutdown = state.shutdown.clone();
    let s = async_stream::stream! {
        yield Ok::<Bytes, Infallible>(Bytes::from_static(b": threatfeed overview\n\n"));
        let mut tick = tokio::time::interval(STREAM_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => yield Ok(overview.snapshot().sse.clone()),
                _ = shutdown.cancelled() => break,
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
