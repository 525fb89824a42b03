//! `threatfeed bench sinkhole`: the sinkhole sensor end to end, in one process — the real
//! sinkhole (`threatfeed_sensor::sinkhole`), the real feed server, the real simulator — on
//! loopback sockets:
//!
//! 1. **outage**: the sinkhole starts while its server is not running yet; the simulator sends
//!    `--outage-checkins` HTTP check-ins as fast as it can: the capture rate with the server
//!    unreachable (everything goes to the spool);
//! 2. **drain**: the server starts where the sinkhole expects it; the time until it has logged
//!    every spooled check-in gives the spool's drain rate;
//! 3. **live HTTP**: an SSE subscriber connected, the simulator sends `--checkins` check-ins at
//!    `--rate`; reported: captured/s, and capture → subscriber latency p50 / p99 (capture time =
//!    the event's `time`, stamped by the sinkhole when the request arrived);
//! 4. **live DNS**: `--dns-queries` UDP queries from `--dns-clients` concurrent resolvers as
//!    fast as answers come: answered/s and the same latency.
//!
//! Everything shares the machine's cores (sinkhole, forwarder, server, simulator, subscriber).

use super::ingest::SseParser;
use anyhow::{Context, bail};
use futures::StreamExt;
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use rand::distr::{Alphanumeric, SampleString};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use threatfeed_sensor::config::{DnsConfig, HttpConfig, SinkholeConfig};
use threatfeed_sensor::simulate::{SimConfig, simulate};

/// Options of `bench sinkhole`.
#[derive(Debug, clap::Args)]
pub struct SinkholeBenchArgs {
    /// HTTP check-ins sent while the server is down (then drained).
    #[arg(long, default_value_t = 50_000)]
    pub outage_checkins: u64,
    /// HTTP check-ins of the live phase.
    #[arg(long, default_value_t = 20_000)]
    pub checkins: u64,
    /// Rate of the live HTTP phase (check-ins/s; 0 = as fast as possible).
    #[arg(long, default_value_t = 2_000.0)]
    pub rate: f64,
    /// DNS queries of the live phase.
    #[arg(long, default_value_t = 20_000)]
    pub dns_queries: u64,
    /// Concurrent DNS clients.
    #[arg(long, default_value_t = 32)]
    pub dns_clients: usize,
    /// Simulated bots.
    #[arg(long, default_value_t = 2_000)]
    pub bots: usize,
    /// Concurrent simulator connections.
    #[arg(long, default_value_t = 128)]
    pub concurrency: usize,
}

fn pct(sorted: &[f64], p: f64) -> Option<f64> {
    let n = sorted.len();
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    sorted
        .get(rank.clamp(1, n.max(1)) - 1)
        .map(|v| (v * 100.0).round() / 100.0)
}

fn free_addr() -> anyhow::Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?)
}

/// The server's `last_seq`.
async fn last_seq(client: &reqwest::Client, base: &str) -> u64 {
    match client.get(format!("{base}/healthz")).send().await {
        Ok(r) => r
            .json::<Value>()
            .await
            .ok()
            .and_then(|v| v["last_seq"].as_u64())
            .unwrap_or(0),
        Err(_) => 0,
    }
}

/// Waits until the server's log reaches `target`; the time it took.
async fn wait_seq(client: &reqwest::Client, base: &str, target: u64) -> anyhow::Result<Duration> {
    let t = Instant::now();
    while last_seq(client, base).await < target {
        if t.elapsed() > Duration::from_secs(600) {
            bail!("the server did not log {target} events within 600 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(t.elapsed())
}

/// Subscribes to the live stream and records, per event of `sensor`, capture → arrival (ms).
async fn subscribe(
    base: String,
    token: String,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<Vec<(String, f64)>>> {
    let resp = reqwest::Client::new()
        .get(format!("{base}/api/v1/stream"))
        .bearer_auth(&token)
        .send()
        .await?
        .error_for_status()?;
    Ok(tokio::spawn(async move {
        let mut out = Vec::new();
        let mut parser = SseParser::default();
        let mut msgs = Vec::new();
        let mut body = resp.bytes_stream();
        let mut stop = stop;
        loop {
            tokio::select! {
                chunk = body.next() => {
                    let Some(Ok(chunk)) = chunk else { break };
                    let now = jiff::Timestamp::now();
                    parser.feed(&chunk, &mut msgs);
                    for m in msgs.drain(..) {
                        let Ok(v) = serde_json::from_str::<Value>(&m.data) else { continue };
                        let Some(t) = v["time"].as_str().and_then(|t| t.parse::<jiff::Timestamp>().ok()) else { continue };
                        let lat = (now.as_nanosecond() - t.as_nanosecond()) as f64 / 1e6;
                        out.push((v["proto"].as_str().unwrap_or("").to_string(), lat));
                    }
                }
                _ = stop.changed() => break,
            }
        }
        out
    }))
}

fn latency(mut v: Vec<f64>) -> Value {
    v.sort_by(|a, b| a.total_cmp(b));
    json!({"delivered": v.len(), "p50_ms": pct(&v, 50.0), "p99_ms": pct(&v, 99.0), "max_ms": v.last().map(|x| (x * 100.0).round() / 100.0)})
}

/// `clients` resolvers sending `n` queries for names under `zone` to `dns`, each waiting for
/// its answer; the answers counted.
async fn dns_load(dns: SocketAddr, zone: &str, n: u64, clients: usize) -> anyhow::Result<u64> {
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..clients.max(1) {
        let (next, zone) = (next.clone(), zone.to_string());
        tasks.push(tokio::spawn(async move {
            let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
            sock.connect(dns).await?;
            let mut answered = 0u64;
            let mut buf = vec![0u8; 4096];
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let name = Name::from_ascii(format!("b{i:x}.{zone}."))?;
                let mut m = Message::new();
                m.set_id((i & 0xffff) as u16)
                    .set_message_type(MessageType::Query)
                    .set_op_code(OpCode::Query)
                    .set_recursion_desired(true)
                    .add_query(Query::query(name, RecordType::A));
                sock.send(&m.to_vec()?).await?;
                if let Ok(Ok(len)) =
                    tokio::time::timeout(Duration::from_secs(1), sock.recv(&mut buf)).await
                    && Message::from_vec(&buf[..len]).is_ok()
                {
                    answered += 1;
                }
            }
            anyhow::Ok(answered)
        }));
    }
    let mut answered = 0;
    for t in tasks {
        answered += t.await??;
    }
    Ok(answered)
}

/// Runs the benchmark.
pub async fn run(args: SinkholeBenchArgs) -> anyhow::Result<Value> {
    let dir = tempfile::tempdir().context("temporary directory")?;
    let admin = Alphanumeric.sample_string(&mut rand::rng(), 40);
    let server_addr = free_addr()?;
    let base = format!("http://{server_addr}");
    let zone = "bench-c2.example";
    let any: SocketAddr = "127.0.0.1:0".parse()?;
    let cfg = SinkholeConfig {
        sensor: "bench-sinkhole".into(),
        server: base.clone(),
        token: admin.clone(),
        spool_dir: dir.path().join("spool"),
        rate_per_source: 0,
        http: Some(HttpConfig {
            listen: vec![any],
            ..Default::default()
        }),
        dns: Some(DnsConfig {
            listen: vec![any],
            zones: vec![zone.into()],
            answer_v4: vec![std::net::Ipv4Addr::LOCALHOST],
            ..Default::default()
        }),
        ..Default::default()
    };
    cfg.validate()?;
    let sinkhole = threatfeed_sensor::sinkhole::start(cfg).await?;
    let http = sinkhole
        .http_addrs()
        .first()
        .copied()
        .context("http listener")?;
    let dns = sinkhole
        .dns_addrs()
        .first()
        .copied()
        .context("dns listener")?;
    let sim = |n: u64, rate: f64, seed: u64| SimConfig {
        http: Some(http),
        tcp: Vec::new(),
        dns: None,
        bots: args.bots,
        families: vec!["lokibot".into(), "formbook".into(), "amadey".into()],
        rate,
        duration: Duration::from_secs(3600),
        max_checkins: Some(n),
        beacon_scale: 0.0001,
        jitter: 0.1,
        seed,
        concurrency: args.concurrency,
    };

    // 1. Outage: capture into the spool.
    eprintln!(
        "outage: {} check-ins with the server down",
        args.outage_checkins
    );
    let r = simulate(sim(args.outage_checkins, 0.0, 1)).await?;
    let outage = json!({
        "sent": r.sent, "failed": r.failed,
        "captured_per_sec": r.checkins_per_sec.round(),
        "spooled": sinkhole.spool().stats().pending,
    });
    let spooled = sinkhole.spool().stats().pending;

    // 2. Drain: start the server where the sinkhole expects it.
    let raw = threatfeed_server::RawConfig {
        listen: Some(server_addr.to_string()),
        data_dir: Some(dir.path().join("server")),
        ..Default::default()
    };
    let server = threatfeed_server::Server::open(raw.validate()?, Some(&admin))?;
    let listener = tokio::net::TcpListener::bind(server_addr).await?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(server.serve(listener, async move {
        let _ = stop_rx.await;
    }));
    let client = reqwest::Client::new();
    eprintln!("drain: {spooled} spooled check-ins");
    // The forwarder notices the server on its next retry (backoff ≤ 5 s): the drain rate is
    // measured from the first event logged.
    let resume = wait_seq(&client, &base, 1).await?;
    let drain_time = wait_seq(&client, &base, spooled).await?;
    let drain = json!({
        "events": spooled,
        "first_event_after_secs": (resume.as_secs_f64() * 100.0).round() / 100.0,
        "secs": (drain_time.as_secs_f64() * 100.0).round() / 100.0,
        "events_per_sec": (spooled as f64 / drain_time.as_secs_f64().max(1e-9)).round(),
    });

    // 3. Live HTTP with a subscriber.
    let (sub_stop, sub_rx) = tokio::sync::watch::channel(false);
    let sub = subscribe(base.clone(), admin.clone(), sub_rx).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    eprintln!("live http: {} check-ins at {}/s", args.checkins, args.rate);
    let before = last_seq(&client, &base).await;
    let t = Instant::now();
    let r = simulate(sim(args.checkins, args.rate, 2)).await?;
    let captured = r.sent;
    wait_seq(&client, &base, before + captured).await?;
    let http_e2e = t.elapsed();
    let live_http = json!({
        "sent": r.sent, "failed": r.failed,
        "captured_per_sec": r.checkins_per_sec.round(),
        "delivered_per_sec": (captured as f64 / http_e2e.as_secs_f64()).round(),
    });

    // 4. Live DNS.
    eprintln!(
        "live dns: {} queries from {} clients",
        args.dns_queries, args.dns_clients
    );
    let before = last_seq(&client, &base).await;
    let t = Instant::now();
    let answered = dns_load(dns, zone, args.dns_queries, args.dns_clients).await?;
    let dns_secs = t.elapsed();
    wait_seq(&client, &base, before + answered).await?;
    let dns_e2e = t.elapsed();
    let live_dns = json!({
        "queries": args.dns_queries, "answered": answered,
        "answered_per_sec": (answered as f64 / dns_secs.as_secs_f64()).round(),
        "delivered_per_sec": (answered as f64 / dns_e2e.as_secs_f64()).round(),
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = sub_stop.send(true);
    let seen = sub.await?;
    let (http_lat, dns_lat): (Vec<_>, Vec<_>) = seen.into_iter().partition(|(p, _)| p == "http");
    sinkhole.shutdown().await?;
    let _ = stop_tx.send(());
    served.await??;
    Ok(json!({
        "outage_http": outage,
        "spool_drain": drain,
        "live_http": live_http,
        "live_http_latency": latency(http_lat.into_iter().map(|(_, l)| l).collect()),
        "live_dns": live_dns,
        "live_dns_latency": latency(dns_lat.into_iter().map(|(_, l)| l).collect()),
        "latency_is": "arrival on the SSE stream − the event's time (stamped by the sinkhole at capture)",
    }))
}
