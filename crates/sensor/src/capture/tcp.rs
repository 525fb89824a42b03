//! Raw TCP listeners: accept, take the client from a PROXY v1 header when the peer is a trusted
//! proxy, read up to `first_bytes` within the read timeout, record what arrived (even nothing)
//! as an event (`proto` = the listener's name, `details: {first_bytes (hex), length}`), close.

use super::proxy::{ProxyScan, ProxyV1, scan_proxy_v1};
use super::{ConnGuard, Ctx};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::AsyncReadExt;
use tokio::time::Instant;

/// The per-listener settings.
pub(crate) struct TcpShared {
    pub proto: String,
    pub first_bytes: usize,
}

/// Accept loop of one raw TCP listener.
pub(crate) async fn serve(
    ctx: Arc<Ctx>,
    shared: Arc<TcpShared>,
    listener: tokio::net::TcpListener,
) {
    while let Some((stream, peer, guard)) = super::accept(&ctx, &listener).await {
        let local = match stream.local_addr() {
            Ok(a) => a,
            Err(_) => continue,
        };
        ctx.tracker.spawn(connection(
            ctx.clone(),
            shared.clone(),
            stream,
            peer,
            local,
            guard,
        ));
    }
}

async fn connection(
    ctx: Arc<Ctx>,
    shared: Arc<TcpShared>,
    mut stream: tokio::net::TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    _guard: ConnGuard,
) {
    let trusted = ctx.is_trusted(peer.ip());
    let deadline = Instant::now() + ctx.read_timeout;
    let limit = shared.first_bytes;
    // Room for a PROXY header in front of the data, when one may come.
    let cap = limit
        + if trusted {
            super::proxy::PROXY_V1_MAX
        } else {
            0
        };
    let mut buf = vec![0u8; cap];
    let mut filled = 0usize;
    // Where the data starts (after a PROXY header); None while that is undecided.
    let mut data_start = if trusted { None } else { Some(0) };
    let mut source = (peer.ip(), Some(peer.port()));
    // The address the client originally connected to (a PROXY header's destination: the
    // seized C2 address whose traffic the proxy hands to this listener).
    let mut original_dst: Option<std::net::SocketAddr> = None;
    let mut eof = false;
    loop {
        if let Some(start) = data_start
            && filled - start >= limit
        {
            break;
        }
        if filled >= cap {
            break;
        }
        let read = tokio::select! {
            () = ctx.cancel.cancelled() => break,
            r = tokio::time::timeout_at(deadline, stream.read(&mut buf[filled..])) => r,
        };
        match read {
            Ok(Ok(0)) => {
                eof = true;
            }
            Ok(Ok(n)) => filled += n,
            Ok(Err(_)) | Err(_) => break,
        }
        if data_start.is_none() {
            match scan_proxy_v1(&buf[..filled]) {
                ProxyScan::Absent => data_start = Some(0),
                ProxyScan::Header(h, len) => {
                    if let ProxyV1::Tcp { src, dst } = h {
                        source = (src.ip(), Some(src.port()));
                        original_dst = Some(dst);
                    }
                    data_start = Some(len);
                }
                ProxyScan::Invalid => {
                    ctx.malformed(&shared.proto);
                    return;
                }
                ProxyScan::Incomplete => {
                    if eof && filled > 0 {
                        // A truncated PROXY header and nothing else: malformed.
                        ctx.malformed(&shared.proto);
                        return;
                    }
                }
            }
        }
        if eof {
            break;
        }
    }
    let start = data_start.unwrap_or(0).min(filled);
    let data = &buf[start..filled.min(start + limit)];
    let mut e = ctx.event(&shared.proto, source.0, source.1, local);
    if let Some(dst) = original_dst {
        e.dst_ip = Some(threatfeed_core::canon::fold_ip(dst.ip()));
        e.dst_port = Some(dst.port());
    }
    e.details = Some(serde_json::json!({
        "first_bytes": hex::encode(data),
        "length": data.len(),
    }));
    // Close only once the check-in is durable in the spool.
    ctx.record(e, Some(data)).wait().await;
}
