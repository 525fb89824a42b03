//! The catch-all HTTP listener (hyper 1, HTTP/1.x): any Host, any path, any method gets the
//! configured answer; each request becomes an event (`proto: "http"`) with the method, path,
//! query, selected headers, body size and the first body bytes in `details`.
//!
//! Header reads are bounded by `read_timeout` (hyper's `header_read_timeout`: a client
//! trickling its headers is cut off), body reads by the same timeout and a 64 KiB cap.
//! Malformed requests make hyper close the connection (counted as malformed).

use super::{ConnGuard, Ctx, clip, proxy};
use crate::config::HttpConfig;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HOST, HeaderName, HeaderValue, USER_AGENT};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use threatfeed_core::canon::canonical_host;

/// The most body bytes read (and counted) per request.
pub const BODY_CAP: usize = 64 * 1024;
/// The longest path / query / header value recorded.
const FIELD_MAX: usize = 512;
/// The longest URL recorded.
const URL_MAX: usize = 2048;
/// How long in-flight requests may finish once shutdown began.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// The per-listener settings, prepared once.
pub(crate) struct HttpShared {
    status: StatusCode,
    body: Bytes,
    content_type: HeaderValue,
    record: Vec<HeaderName>,
    body_head: usize,
}

impl HttpShared {
    pub fn new(h: &HttpConfig) -> anyhow::Result<HttpShared> {
        let record = h
            .record_headers
            .iter()
            .map(|n| HeaderName::from_bytes(n.to_ascii_lowercase().as_bytes()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("http.record_headers: {e}"))?;
        Ok(HttpShared {
            status: StatusCode::from_u16(h.response_status)
                .map_err(|e| anyhow::anyhow!("http.response_status: {e}"))?,
            body: Bytes::from(h.response_body.clone()),
            content_type: HeaderValue::from_str(&h.response_content_type)
                .map_err(|e| anyhow::anyhow!("http.response_content_type: {e}"))?,
            record,
            body_head: h.body_head_bytes,
        })
    }

    fn response(&self) -> Response<Full<Bytes>> {
        let mut r = Response::new(Full::new(self.body.clone()));
        *r.status_mut() = self.status;
        r.headers_mut()
            .insert(CONTENT_TYPE, self.content_type.clone());
        r
    }
}

/// Accept loop of one HTTP listener.
pub(crate) async fn serve(
    ctx: Arc<Ctx>,
    shared: Arc<HttpShared>,
    listener: tokio::net::TcpListener,
) {
    while let Some((stream, peer, guard)) = super::accept(&ctx, &listener).await {
        let local = match stream.local_addr() {
            Ok(a) => a,
            Err(_) => continue,
        };
        let (ctx2, shared2) = (ctx.clone(), shared.clone());
        ctx.tracker
            .spawn(connection(ctx2, shared2, stream, peer, local, guard));
    }
}

async fn connection(
    ctx: Arc<Ctx>,
    shared: Arc<HttpShared>,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    _guard: ConnGuard,
) {
    let svc_ctx = ctx.clone();
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let (ctx, shared) = (svc_ctx.clone(), shared.clone());
        async move {
            handle(&ctx, &shared, req, peer, local).await;
            Ok::<_, std::convert::Infallible>(shared.response())
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(ctx.read_timeout)
        .max_buf_size(64 * 1024);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = ctx.cancel.cancelled() => {
            conn.as_mut().graceful_shutdown();
            match tokio::time::timeout(SHUTDOWN_GRACE, conn.as_mut()).await {
                Ok(r) => r,
                Err(_) => Ok(()),
            }
        }
    };
    if let Err(e) = result {
        // Parse errors and header timeouts; a client closing early is not malformed.
        if e.is_parse() || e.is_parse_status() || e.is_timeout() {
            ctx.malformed("http");
        }
        tracing::debug!(%peer, error = %e, "http connection ended with an error");
    }
}

/// Reads the body (≤ [`BODY_CAP`], within the read timeout): (bytes seen, first bytes).
async fn read_body(body: Incoming, head: usize, timeout: Duration) -> (usize, Vec<u8>) {
    let mut size = 0usize;
    let mut first = Vec::with_capacity(head.min(1024));
    let mut body = body;
    let read = async {
        while size < BODY_CAP {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        size += data.len();
                        if first.len() < head {
                            let take = (head - first.len()).min(data.len());
                            first.extend_from_slice(&data[..take]);
                        }
                    }
                }
                Some(Err(_)) | None => break,
            }
        }
    };
    let _ = tokio::time::timeout(timeout, read).await;
    (size, first)
}

async fn handle(
    ctx: &Ctx,
    shared: &HttpShared,
    req: Request<Incoming>,
    peer: SocketAddr,
    local: SocketAddr,
) {
    let (parts, body) = req.into_parts();
    let (body_size, body_head) = read_body(body, shared.body_head, ctx.read_timeout).await;

    let (mut src_ip, mut src_port) = (peer.ip(), Some(peer.port()));
    if ctx.is_trusted(peer.ip())
        && let Some(ip) = proxy::last_forwarded_for(
            parts
                .headers
                .get_all("x-forwarded-for")
                .iter()
                .map(|v| v.as_bytes()),
        )
    {
        src_ip = ip;
        src_port = None;
    }

    let raw_host = parts
        .headers
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| parts.uri.authority().map(|a| a.to_string()));
    let host = raw_host.as_deref().and_then(|h| canonical_host(h).ok());
    let path = clip(parts.uri.path(), FIELD_MAX);
    let query = parts.uri.query().map(|q| clip(q, FIELD_MAX));
    let user_agent = parts
        .headers
        .get(USER_AGENT)
        .map(|v| clip(&String::from_utf8_lossy(v.as_bytes()), FIELD_MAX));

    let mut e = ctx.event("http", src_ip, src_port, local);
    let url_host = match &host {
        Some(h) if h.contains(':') => format!("[{h}]"),
        Some(h) => h.clone(),
        None => match fold_local(local) {
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            v4 => v4.to_string(),
        },
    };
    let url = match &query {
        Some(q) => format!("http://{url_host}{path}?{q}"),
        None => format!("http://{url_host}{path}"),
    };
    e.url = Some(clip(&url, URL_MAX));
    e.host = host;
    e.user_agent = user_agent;

    let mut headers = serde_json::Map::new();
    for name in &shared.record {
        let vals: Vec<String> = parts
            .headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        if !vals.is_empty() {
            let joined = clip(&vals.join(", "), FIELD_MAX);
            headers.insert(name.as_str().to_string(), serde_json::Value::String(joined));
        }
    }
    let mut details = serde_json::json!({
        "method": clip(parts.method.as_str(), 32),
        "path": path,
        "query": query,
        "headers": headers,
        "body_size": body_size,
        "body_head": hex::encode(&body_head),
    });
    // Keep details within the event's 4 KiB: the headers give way first.
    if serde_json::to_vec(&details).map(|v| v.len()).unwrap_or(0) > 4000 {
        details["headers"] = serde_json::json!({});
    }
    e.details = Some(details);
    // Answer only once the check-in is durable in the spool.
    ctx.record(e, None).wait().await;
}

fn fold_local(local: SocketAddr) -> std::net::IpAddr {
    threatfeed_core::canon::fold_ip(local.ip())
}
