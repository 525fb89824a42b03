//! The listeners of the sinkhole: HTTP ([`http`]), raw TCP ([`tcp`]) and DNS over UDP and TCP
//! ([`dns`]), each check-in turned into a [`threatfeed_core::Event`] and handed to a sink.
//!
//! [`Capture::start`] binds every configured address (IPv4 and IPv6; port 0 allowed) and
//! spawns the accept loops. The sink is any `Fn(Event) -> bool` (false = the queue was full and
//! the event dropped): the sinkhole passes its spool writer, the tests a channel. Connections
//! over all TCP-based listeners are bounded by one semaphore of `max_connections`; each source
//! address is rate-limited ([`ratelimit`]); trusted proxies may name the real client
//! ([`proxy`]). Check-ins are classified at the sensor when their host is a seized domain or a
//! bundled request-pattern rule matches ([`Classifier`]).
//!
//! Metrics: `threatfeed_sinkhole_checkins_total{proto}`, `threatfeed_sinkhole_rate_limited_total`,
//! `threatfeed_sinkhole_dropped_total`, `threatfeed_sinkhole_connections_active`,
//! `threatfeed_sinkhole_malformed_total{proto}`.

pub mod dns;
pub mod http;
pub mod proxy;
pub mod ratelimit;
pub mod tcp;

use crate::config::SinkholeConfig;
use anyhow::Context as _;
use ipnet::IpNet;
use jiff::Timestamp;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use threatfeed_core::canon::fold_ip;
use threatfeed_core::rules::{Request, RuleSet};
use threatfeed_core::{Event, Tlp};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What the sink did with a captured event.
#[derive(Debug)]
pub enum Accepted {
    /// Not kept (queue full, spool full, or rate-limited).
    Dropped,
    /// Kept.
    Done,
    /// Queued: the receiver says whether it became durable.
    Pending(tokio::sync::oneshot::Receiver<bool>),
}

impl From<bool> for Accepted {
    fn from(ok: bool) -> Accepted {
        if ok {
            Accepted::Done
        } else {
            Accepted::Dropped
        }
    }
}

impl From<Option<tokio::sync::oneshot::Receiver<bool>>> for Accepted {
    fn from(rx: Option<tokio::sync::oneshot::Receiver<bool>>) -> Accepted {
        rx.map_or(Accepted::Dropped, Accepted::Pending)
    }
}

impl Accepted {
    /// Waits until the event is kept or not (a sink that stopped counts as not kept).
    pub async fn wait(self) -> bool {
        match self {
            Accepted::Dropped => false,
            Accepted::Done => true,
            Accepted::Pending(rx) => rx.await.unwrap_or(false),
        }
    }
}

/// Where captured events go.
pub type SinkFn = Arc<dyn Fn(Event) -> Accepted + Send + Sync>;

/// Metric names, each written once.
pub mod metric {
    /// Check-ins recorded, by `proto`.
    pub const CHECKINS: &str = "threatfeed_sinkhole_checkins_total";
    /// Check-ins answered but not recorded (per-source rate limit).
    pub const RATE_LIMITED: &str = "threatfeed_sinkhole_rate_limited_total";
    /// Check-ins the sink refused (queue full): counted by the sink itself (`sink::Sink::send`).
    pub const DROPPED: &str = "threatfeed_sinkhole_dropped_total";
    /// Open connections (HTTP, raw TCP, DNS over TCP).
    pub const CONNECTIONS_ACTIVE: &str = "threatfeed_sinkhole_connections_active";
    /// Malformed requests / packets, by `proto`.
    pub const MALFORMED: &str = "threatfeed_sinkhole_malformed_total";
}

/// Sensor-side classification: seized domains (longest match), then the bundled rules.
#[derive(Debug, Clone)]
pub struct Classifier {
    /// (canonical domain, family), longest domain first.
    seized: Vec<(String, String)>,
    rules: RuleSet,
}

impl Classifier {
    /// From `[[seized]]` (already validated) and a rule set.
    pub fn new(seized: &[crate::config::SeizedDomain], rules: RuleSet) -> Classifier {
        let mut s: Vec<(String, String)> = seized
            .iter()
            .filter_map(|d| {
                threatfeed_core::canon::canonical_host(&d.domain)
                    .ok()
                    .map(|c| (c, d.family.clone()))
            })
            .collect();
        s.sort_by_key(|d| std::cmp::Reverse(d.0.len()));
        Classifier { seized: s, rules }
    }

    /// The seized domain `host` is, or is below (longest match), with its family.
    pub fn seized_match(&self, host: &str) -> Option<(&str, &str)> {
        self.seized
            .iter()
            .find(|(d, _)| {
                host == d
                    || (host.len() > d.len()
                        && host.ends_with(d.as_str())
                        && host.as_bytes()[host.len() - d.len() - 1] == b'.')
            })
            .map(|(d, f)| (d.as_str(), f.as_str()))
    }

    /// Sets `family` and `classified_by` when a seized domain or a rule matches.
    pub fn classify(&self, e: &mut Event, first_bytes: Option<&[u8]>) {
        if let Some(host) = e.host.as_deref()
            && let Some((d, f)) = self.seized_match(host)
        {
            e.classified_by = Some(format!("seized:{d}"));
            e.family = Some(f.to_string());
            return;
        }
        let mut req = Request::from_event(e);
        req.first_bytes = first_bytes;
        if let Some(rule) = self.rules.classify(&req) {
            let (id, threat) = (rule.id.clone(), rule.threat.clone());
            e.classified_by = Some(format!("rule:{id}"));
            e.family = Some(threat);
        }
    }
}

/// Binds UDP and TCP on the same port of `addr`. With port 0, the TCP port the UDP socket was
/// given may already be taken by another program's TCP socket: then both are tried again on
/// another ephemeral port (a few times).
async fn bind_dns_pair(
    addr: SocketAddr,
) -> anyhow::Result<(tokio::net::UdpSocket, tokio::net::TcpListener)> {
    let attempts = if addr.port() == 0 { 20 } else { 1 };
    let mut last = None;
    for _ in 0..attempts {
        let udp = tokio::net::UdpSocket::bind(addr)
            .await
            .with_context(|| format!("binding dns udp listener {addr}"))?;
        let bound = udp.local_addr()?;
        match tokio::net::TcpListener::bind(bound).await {
            Ok(tl) => return Ok((udp, tl)),
            Err(e) => last = Some((bound, e)),
        }
    }
    match last {
        Some((bound, e)) => Err(e).with_context(|| format!("binding dns tcp listener {bound}")),
        None => anyhow::bail!("binding dns listeners on {addr}"),
    }
}

/// What every listener shares.
pub(crate) struct Ctx {
    pub sensor: String,
    pub tlp: Tlp,
    pub trusted: Vec<IpNet>,
    pub read_timeout: Duration,
    pub limiter: ratelimit::RateLimiter,
    pub classifier: Classifier,
    pub sink: SinkFn,
    pub conns: Arc<Semaphore>,
    pub cancel: CancellationToken,
    pub tracker: TaskTracker,
}

impl Ctx {
    /// True when `peer` may speak for its clients.
    pub fn is_trusted(&self, peer: IpAddr) -> bool {
        let p = fold_ip(peer);
        self.trusted.iter().any(|n| n.contains(&p))
    }

    /// A fresh event with the common fields.
    pub fn event(
        &self,
        proto: &str,
        src: IpAddr,
        src_port: Option<u16>,
        local: SocketAddr,
    ) -> Event {
        let now = Timestamp::now();
        let mut e = Event::new(fold_ip(src), now, now);
        e.src_port = src_port;
        let dst = fold_ip(local.ip());
        e.dst_ip = (!dst.is_unspecified()).then_some(dst);
        e.dst_port = Some(local.port());
        e.proto = Some(proto.to_string());
        e.sensor = Some(self.sensor.clone());
        e.tlp = self.tlp;
        e
    }

    /// Applies the rate limit of the event's source; when allowed, classifies and records it.
    /// Returns whether it was recorded.
    pub fn record(&self, mut e: Event, first_bytes: Option<&[u8]>) -> Accepted {
        if !self.limiter.allow(e.src_ip) {
            metrics::counter!(metric::RATE_LIMITED).increment(1);
            return Accepted::Dropped;
        }
        self.classifier.classify(&mut e, first_bytes);
        let proto = e.proto.clone().unwrap_or_default();
        let a = (self.sink)(e);
        // A dropped event is counted (`threatfeed_sinkhole_dropped_total`) and logged by the sink.
        if !matches!(a, Accepted::Dropped) {
            metrics::counter!(metric::CHECKINS, "proto" => proto).increment(1);
        }
        a
    }

    /// Counts a malformed request.
    pub fn malformed(&self, proto: &str) {
        metrics::counter!(metric::MALFORMED, "proto" => proto.to_string()).increment(1);
    }
}

/// Decrements the active-connections gauge when dropped.
pub(crate) struct ConnGuard {
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl ConnGuard {
    pub fn new(permit: tokio::sync::OwnedSemaphorePermit) -> ConnGuard {
        metrics::gauge!(metric::CONNECTIONS_ACTIVE).increment(1.0);
        ConnGuard { _permit: permit }
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        metrics::gauge!(metric::CONNECTIONS_ACTIVE).decrement(1.0);
    }
}

/// Accepts one connection under the connection limit; None when shutting down.
pub(crate) async fn accept(
    ctx: &Ctx,
    listener: &tokio::net::TcpListener,
) -> Option<(tokio::net::TcpStream, SocketAddr, ConnGuard)> {
    loop {
        let permit = tokio::select! {
            () = ctx.cancel.cancelled() => return None,
            p = ctx.conns.clone().acquire_owned() => p.ok()?,
        };
        let res = tokio::select! {
            () = ctx.cancel.cancelled() => return None,
            r = listener.accept() => r,
        };
        match res {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                return Some((stream, peer, ConnGuard::new(permit)));
            }
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                drop(permit);
                tokio::select! {
                    () = ctx.cancel.cancelled() => return None,
                    () = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
            }
        }
    }
}

/// Truncates a string to at most `max` bytes, on a character boundary.
pub(crate) fn clip(s: &str, max: usize) -> String {
    threatfeed_core::canon::truncate(s, max).to_string()
}

/// The running listeners.
pub struct Capture {
    http: Vec<SocketAddr>,
    tcp: Vec<(String, SocketAddr)>,
    dns: Vec<SocketAddr>,
    ctx: Arc<Ctx>,
    cleanup: tokio::task::JoinHandle<()>,
}

impl Capture {
    /// Binds every listener of `cfg` (validated) and starts serving; captured events go to
    /// `sink`.
    pub async fn start<F, R>(cfg: &SinkholeConfig, sink: F) -> anyhow::Result<Capture>
    where
        F: Fn(Event) -> R + Send + Sync + 'static,
        R: Into<Accepted>,
    {
        cfg.validate()?;
        let rules = RuleSet::bundled().map_err(|e| anyhow::anyhow!("bundled rules: {e}"))?;
        let ctx = Arc::new(Ctx {
            sensor: cfg.sensor.clone(),
            tlp: cfg.tlp,
            trusted: cfg.trusted_nets(),
            read_timeout: cfg.read_timeout(),
            limiter: ratelimit::RateLimiter::new(cfg.rate_per_source),
            classifier: Classifier::new(&cfg.seized, rules),
            sink: Arc::new(move |e| sink(e).into()),
            conns: Arc::new(Semaphore::new(cfg.max_connections)),
            cancel: CancellationToken::new(),
            tracker: TaskTracker::new(),
        });
        let mut cap = Capture {
            http: Vec::new(),
            tcp: Vec::new(),
            dns: Vec::new(),
            cleanup: tokio::spawn(ratelimit::cleanup_task(ctx.clone())),
            ctx: ctx.clone(),
        };
        // On an error below, the listeners already spawned are stopped by dropping `cap`.
        if let Some(h) = &cfg.http {
            let shared = Arc::new(http::HttpShared::new(h)?);
            for addr in &h.listen {
                let l = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding http listener {addr}"))?;
                cap.http.push(l.local_addr()?);
                ctx.tracker
                    .spawn(http::serve(ctx.clone(), shared.clone(), l));
            }
        }
        for t in &cfg.tcp {
            let shared = Arc::new(tcp::TcpShared {
                proto: t.proto.clone(),
                first_bytes: t.first_bytes,
            });
            for addr in &t.listen {
                let l = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding tcp listener {addr} ({})", t.proto))?;
                cap.tcp.push((t.proto.clone(), l.local_addr()?));
                ctx.tracker
                    .spawn(tcp::serve(ctx.clone(), shared.clone(), l));
            }
        }
        if let Some(d) = &cfg.dns {
            let zone = Arc::new(dns::Authority::new(d)?);
            for addr in &d.listen {
                let (udp, tl) = bind_dns_pair(*addr).await?;
                let bound = udp.local_addr()?;
                cap.dns.push(bound);
                ctx.tracker
                    .spawn(dns::serve_udp(ctx.clone(), zone.clone(), udp));
                ctx.tracker
                    .spawn(dns::serve_tcp(ctx.clone(), zone.clone(), tl));
            }
        }
        Ok(cap)
    }

    /// The bound HTTP addresses.
    pub fn http_addrs(&self) -> &[SocketAddr] {
        &self.http
    }

    /// The bound raw TCP addresses, with their `proto`.
    pub fn tcp_addrs(&self) -> &[(String, SocketAddr)] {
        &self.tcp
    }

    /// The bound DNS addresses (UDP and TCP on each).
    pub fn dns_addrs(&self) -> &[SocketAddr] {
        &self.dns
    }

    /// Stops accepting, gives in-flight connections up to `grace` to finish, then aborts the
    /// rest. The sink is released once this returns.
    pub async fn shutdown(mut self, grace: Duration) {
        self.ctx.cancel.cancel();
        self.ctx.tracker.close();
        if tokio::time::timeout(grace, self.ctx.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("capture: connections still open after the grace period, closing them");
        }
        self.cleanup.abort();
        let _ = (&mut self.cleanup).await;
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.ctx.cancel.cancel();
        self.cleanup.abort();
    }
}

#[cfg(test)]
mod tests;
