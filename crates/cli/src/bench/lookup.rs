//! `threatfeed bench lookup`: indicator lookups over a large index — the bundled C2 lists plus N
//! synthetic indicators (IPv4 addresses, domains, URLs) — reporting:
//!
//! - the build time and the memory each indicator costs (resident-set growth while building the
//!   index, divided by the indicators; and the index's own estimate);
//! - lookups per second of raw strings through `IndicatorIndex::lookup` (canonicalisation
//!   included), on one thread and on all cores;
//! - lookups per second on the typed fast path: values canonicalised beforehand, addresses
//!   parsed beforehand (`lookup_ip` / `lookup_canonical` into a reused vector), and IPv4
//!   membership (`contains_ip`, and `contains_ips` in blocks);
//! - batch lookups over HTTP: the real server started in-process (temporary data directory,
//!   default knowledge base, an admin token of its own), `POST /api/v1/lookup` with 10,000
//!   values per request from 2 connections: values per second and per-request p50 / p99.

use anyhow::{Context, bail};
use bytes::Bytes;
use rand::distr::{Alphanumeric, SampleString};
use serde_json::{Value, json};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};
use threatfeed_core::indicator::{IndicatorKind, canonicalize, indicator_id};
use threatfeed_core::lookup::{Hit, IndicatorEntry, IndicatorIndex};
use threatfeed_core::threat::KnowledgeBase;
use threatfeed_core::tlp::Tlp;

/// Options of `bench lookup`.
#[derive(Debug, clap::Args)]
pub struct LookupBenchArgs {
    /// Synthetic indicators added to the bundled ones.
    #[arg(long, default_value_t = 10_000_000)]
    pub indicators: usize,
    /// Lookups timed (half of them hits).
    #[arg(long, default_value_t = 2_000_000)]
    pub lookups: usize,
    /// Batch HTTP lookups (`POST /api/v1/lookup`, 10,000 values each) against an in-process
    /// server; 0 skips the HTTP figure.
    #[arg(long, default_value_t = 40)]
    pub http_requests: usize,
    /// Concurrent connections of the HTTP figure.
    #[arg(long, default_value_t = 2)]
    pub http_connections: usize,
}

/// Values per HTTP request (the server's maximum).
const HTTP_BATCH: usize = threatfeed_server::routes::lookup::MAX_BATCH;

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// A spread-out 32-bit value for `i` (a bijection, so synthetic addresses never repeat).
fn mix(i: u64) -> u32 {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 29;
    (x as u32) ^ (i as u32).rotate_left(16)
}

fn synthetic(i: usize) -> (IndicatorKind, String) {
    match i % 10 {
        0..=6 => (
            IndicatorKind::Ipv4,
            Ipv4Addr::from(mix(i as u64)).to_string(),
        ),
        7 | 8 => (IndicatorKind::Domain, format!("c{i:x}.bench-c2.example")),
        _ => (
            IndicatorKind::Url,
            format!("http://c{i:x}.bench-c2.example/gate.php"),
        ),
    }
}

/// A query pre-processed for the typed path.
enum Typed {
    Ip(IpAddr),
    Canonical(IndicatorKind, String),
    Invalid,
}

fn per_sec(n: usize, t: Instant) -> f64 {
    (n as f64 / t.elapsed().as_secs_f64()).round()
}

/// Runs `f` over `items` on one thread, then split over `threads`: (per second, per second).
fn timed<T: Sync>(
    items: &[T],
    threads: usize,
    f: impl Fn(&[T]) -> usize + Sync,
) -> (f64, f64, usize) {
    let t = Instant::now();
    let hits = f(items);
    let one = per_sec(items.len(), t);
    let chunk = items.len().div_ceil(threads).max(1);
    let t = Instant::now();
    std::thread::scope(|s| {
        for part in items.chunks(chunk) {
            s.spawn(|| f(part));
        }
    });
    (one, per_sec(items.len(), t), hits)
}

/// Runs the benchmark and returns its figures.
pub fn run(args: LookupBenchArgs) -> anyhow::Result<Value> {
    let kb = KnowledgeBase::bundled()?;
    let rss0 = rss_bytes();
    let started = Instant::now();
    let (mut index, _) = IndicatorIndex::bundled(&kb);
    let bundled = index.len();
    index.reserve(args.indicators);
    for i in 0..args.indicators {
        let (kind, value) = synthetic(i);
        index.insert(IndicatorEntry {
            id: indicator_id(kind, &value),
            kind,
            value,
            threat_id: Some("emotet".to_string()),
            family: None,
            port: None,
            confidence: 80,
            tlp: Tlp::Clear,
            source: "bench".to_string(),
        });
    }
    let build_secs = started.elapsed().as_secs_f64();
    let total = index.len();
    let grown = rss_bytes().saturating_sub(rss0);
    let estimate = index.memory_bytes();
    // Queries: half synthetic hits (all kinds, sub-domains too), half misses.
    let queries: Vec<String> = (0..args.lookups)
        .map(|q| {
            let i = (mix(q as u64) as usize) % args.indicators.max(1);
            match q % 4 {
                0 => synthetic(i).1,
                1 => match synthetic(i) {
                    (IndicatorKind::Domain, d) => format!("www.{d}"),
                    (_, v) => v,
                },
                2 => Ipv4Addr::from(mix(u64::MAX - q as u64)).to_string(),
                _ => format!("n{q:x}.benign.example"),
            }
        })
        .collect();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());

    // The string API, as callers with raw text use it.
    let (single, parallel, hits) = timed(&queries, threads, |qs| {
        qs.iter()
            .filter(|q| index.lookup(q).is_ok_and(|(_, _, h)| !h.is_empty()))
            .count()
    });

    // The typed path: the same queries, canonicalised (and addresses parsed) beforehand.
    let typed: Vec<Typed> = queries
        .iter()
        .map(|q| match canonicalize(q) {
            Ok((IndicatorKind::Ipv4 | IndicatorKind::Ipv6, v)) => {
                v.parse().map_or(Typed::Invalid, Typed::Ip)
            }
            Ok((k, v)) => Typed::Canonical(k, v),
            Err(_) => Typed::Invalid,
        })
        .collect();
    let (typed_single, typed_parallel, typed_hits) = timed(&typed, threads, |qs| {
        let mut out: Vec<Hit<'_>> = Vec::with_capacity(16);
        let mut hits = 0;
        for q in qs {
            out.clear();
            match q {
                Typed::Ip(ip) => index.lookup_ip(*ip, &mut out),
                Typed::Canonical(k, v) => index.lookup_canonical(*k, v, &mut out),
                Typed::Invalid => {}
            }
            hits += usize::from(!out.is_empty());
        }
        hits
    });
    if typed_hits != hits {
        bail!("the typed path found {typed_hits} hits, the string API {hits}");
    }

    // IPv4 membership: half listed synthetic addresses, half random ones.
    let ips: Vec<IpAddr> = (0..args.lookups)
        .map(|q| {
            let i = (mix(q as u64) as usize) % args.indicators.max(1);
            let listed = i - i % 10; // i % 10 == 0: an IPv4 indicator
            IpAddr::V4(Ipv4Addr::from(if q % 2 == 0 {
                mix(listed as u64)
            } else {
                mix(u64::MAX - q as u64)
            }))
        })
        .collect();
    let (ip_single, ip_parallel, ip_hits) = timed(&ips, threads, |qs| {
        qs.iter().filter(|ip| index.contains_ip(**ip)).count()
    });
    let (block_single, block_parallel, block_hits) = timed(&ips, threads, |qs| {
        let mut out = Vec::with_capacity(qs.len());
        index.contains_ips(qs, &mut out);
        out.iter().filter(|b| **b).count()
    });
    if ip_hits != block_hits {
        bail!("contains_ips found {block_hits} hits, contains_ip {ip_hits}");
    }

    // Values for the HTTP figure: half listed in the bundled lists, half not.
    let step = (bundled / (HTTP_BATCH / 2)).max(1);
    let mut listed: Vec<String> = index
        .iter()
        .take(bundled)
        .step_by(step)
        .map(|e| e.value)
        .collect();
    listed.truncate(HTTP_BATCH / 2);
    drop(index);
    let http = if args.http_requests > 0 {
        let mut values = Vec::with_capacity(HTTP_BATCH);
        for (n, v) in listed.into_iter().enumerate() {
            values.push(v);
            values.push(if n % 2 == 0 {
                Ipv4Addr::from(mix(u64::MAX / 3 + n as u64)).to_string()
            } else {
                format!("n{n:x}.benign.example")
            });
        }
        http_bench(values, args.http_requests, args.http_connections.max(1))?
    } else {
        Value::Null
    };

    Ok(json!({
        "indicators": total,
        "bundled_indicators": bundled,
        "synthetic_indicators": args.indicators,
        "build_secs": (build_secs * 100.0).round() / 100.0,
        "lookups": queries.len(),
        "hit_ratio": hits as f64 / queries.len().max(1) as f64,
        "lookups_per_sec_1_thread": single,
        "threads": threads,
        "lookups_per_sec_all_threads": parallel,
        "typed_lookups_per_sec_1_thread": typed_single,
        "typed_lookups_per_sec_all_threads": typed_parallel,
        "ipv4_contains_hit_ratio": ip_hits as f64 / ips.len().max(1) as f64,
        "ipv4_contains_per_sec_1_thread": ip_single,
        "ipv4_contains_per_sec_all_threads": ip_parallel,
        "ipv4_contains_blocked_per_sec_1_thread": block_single,
        "ipv4_contains_blocked_per_sec_all_threads": block_parallel,
        "rss_growth_bytes": grown,
        "bytes_per_indicator": if total > 0 { (grown as f64 / total as f64).round() } else { 0.0 },
        "index_estimate_bytes": estimate,
        "http": http,
    }))
}

use super::percentile_ms;

/// Starts the server in-process on a free port, waits for the bundled indicators, posts
/// `requests` batches of `values` over `connections` connections, stops the server.
fn http_bench(values: Vec<String>, requests: usize, connections: usize) -> anyhow::Result<Value> {
    let handle = tokio::runtime::Handle::current();
    handle.block_on(async move {
        let dir = tempfile::tempdir().context("temporary data directory")?;
        let raw = threatfeed_server::RawConfig {
            listen: Some("127.0.0.1:0".into()),
            data_dir: Some(dir.path().to_path_buf()),
            ..Default::default()
        };
        let config = raw.validate()?;
        let admin = Alphanumeric.sample_string(&mut rand::rng(), 40);
        let server = threatfeed_server::Server::open(config, Some(&admin))?;
        let indicators = server.state().indicators.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the bench server")?;
        let base = format!("http://{}", listener.local_addr()?);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(server.serve(listener, async move {
            let _ = stop_rx.await;
        }));
        // The bundled lists are loaded in the background: wait for them.
        let deadline = Instant::now() + Duration::from_secs(180);
        while indicators.load().len() < 100_000 {
            if Instant::now() > deadline {
                bail!("the server did not load its bundled indicators within 180 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let server_indicators = indicators.load().len();
        let body = Bytes::from(serde_json::to_vec(&json!({ "values": values }))?);
        let url = format!("{base}/api/v1/lookup");
        // One request first (warm-up, and a check of the answer).
        let client = reqwest::Client::new();
        let first: Value = client
            .post(&url)
            .bearer_auth(&admin)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let known = first["known"].as_u64().unwrap_or(0);
        if first["count"].as_u64() != Some(values.len() as u64) || known == 0 {
            bail!(
                "unexpected lookup answer: count {}, known {known}",
                first["count"]
            );
        }
        let started = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..connections {
            let n = requests / connections + usize::from(c < requests % connections);
            let (url, admin, body) = (url.clone(), admin.clone(), body.clone());
            tasks.push(tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut lat = Vec::with_capacity(n);
                let mut bytes = 0usize;
                for _ in 0..n {
                    let t = Instant::now();
                    let resp = client
                        .post(&url)
                        .bearer_auth(&admin)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await?
                        .error_for_status()?;
                    bytes += resp.bytes().await?.len();
                    lat.push(t.elapsed());
                }
                anyhow::Ok((lat, bytes))
            }));
        }
        let mut lat = Vec::new();
        let mut bytes = 0;
        for t in tasks {
            let (l, b) = t.await??;
            lat.extend(l);
            bytes += b;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let _ = stop_tx.send(());
        served.await??;
        lat.sort();
        let sent = lat.len() * values.len();
        Ok(json!({
            "server_indicators": server_indicators,
            "requests": lat.len(),
            "values_per_request": values.len(),
            "known_per_request": known,
            "connections": connections,
            "response_bytes_per_request": bytes / lat.len().max(1),
            "values_per_sec": (sent as f64 / elapsed).round(),
            "request_p50_ms": percentile_ms(&lat, 50.0),
            "request_p99_ms": percentile_ms(&lat, 99.0),
            "request_max_ms": lat.last().map(|d| (d.as_secs_f64() * 1e5).round() / 100.0),
        }))
    })
}
