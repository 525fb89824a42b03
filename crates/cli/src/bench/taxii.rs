//! `threatfeed bench taxii`: TAXII 2.1 paging over a large collection.
//!
//! Writes N indicator changes (synthetic IPv4 addresses, domains and URLs; groups of
//! `--same-time` changes share one timestamp, as a bulk import does) into the indicator change
//! log of a temporary data directory, opens the real server on it in-process (the time to open
//! is reported: it reads the whole change log to index the versions), then, as a TAXII client
//! would, pages through the Indicators collection with `GET …/objects/?limit=L` following `next`
//! to the end, and reports objects/s and the per-page latency p50 / p99 / max. A second figure
//! starts pages at random `added_after` times (binary search on the log) to show that a page
//! deep in the collection costs what the first one does.

use anyhow::{Context, bail};
use rand::Rng;
use rand::distr::{Alphanumeric, SampleString};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use threatfeed_core::indicator::{IndicatorKind, indicator_id};
use threatfeed_core::intel::{Change, ChangeOp, Status, Summary};
use threatfeed_core::tlp::Tlp;
use threatfeed_store::log::{LogBackend, open_log};

/// Options of `bench taxii`.
#[derive(Debug, clap::Args)]
pub struct TaxiiBenchArgs {
    /// Objects in the Indicators collection.
    #[arg(long, default_value_t = 10_000_000)]
    pub objects: usize,
    /// Objects per page (`limit`).
    #[arg(long, default_value_t = 1000)]
    pub page: usize,
    /// Pages to read following `next` from the start (0 = the whole collection).
    #[arg(long, default_value_t = 0)]
    pub pages: usize,
    /// Pages started at a random `added_after`.
    #[arg(long, default_value_t = 200)]
    pub random_pages: usize,
    /// Consecutive objects sharing one `date_added`.
    #[arg(long, default_value_t = 10_000)]
    pub same_time: usize,
}

const MEDIA: &str = "application/taxii+json;version=2.1";
const INDICATORS: &str = "6a1c1f5e-8d3a-5b0e-9f1d-3c2b7a4e9d01";

fn synthetic(i: usize) -> (IndicatorKind, String) {
    match i % 10 {
        // Multiplying by an odd constant is a bijection on u32: no address repeats (a repeat
        // would be a second version of one object, and only the last version is listed).
        0..=6 => (
            IndicatorKind::Ipv4,
            std::net::Ipv4Addr::from((i as u32).wrapping_mul(0x9E37_79B1)).to_string(),
        ),
        7 | 8 => (IndicatorKind::Domain, format!("c{i:x}.taxii-bench.example")),
        _ => (
            IndicatorKind::Url,
            format!("http://c{i:x}.taxii-bench.example/gate.php"),
        ),
    }
}

/// Fills the change log of `dir` with `n` additions; returns the first timestamp.
fn fill(dir: &std::path::Path, n: usize, same_time: usize) -> anyhow::Result<jiff::Timestamp> {
    let log = open_log(LogBackend::Redb, &dir.join("indicator-changes"))?;
    let start = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(86_400);
    let mut batch: Vec<(i64, Vec<u8>)> = Vec::with_capacity(50_000);
    let mut i = 0;
    while i < n {
        batch.clear();
        for j in i..(i + 50_000).min(n) {
            // One millisecond per group of `same_time` objects.
            let t = start + jiff::SignedDuration::from_millis((j / same_time.max(1)) as i64);
            let (kind, value) = synthetic(j);
            let id = indicator_id(kind, &value);
            let change = Change {
                op: ChangeOp::Add,
                time: t,
                indicator: Summary {
                    id: &id,
                    kind,
                    value: &value,
                    threat_id: Some("qakbot"),
                    family: Some("qakbot"),
                    port: None,
                    confidence: 80,
                    tlp: if j % 4 == 0 { Tlp::Green } else { Tlp::Clear },
                    first_seen: t,
                    last_seen: t,
                    valid_until: None,
                    status: Status::Active,
                },
            };
            batch.push((t.as_millisecond(), serde_json::to_vec(&change)?));
        }
        let refs: Vec<(i64, &[u8])> = batch.iter().map(|(t, d)| (*t, d.as_slice())).collect();
        log.append(&refs)?;
        i += batch.len();
    }
    Ok(start)
}

use super::{ms, percentile_ms as percentile};

fn summary(mut lat: Vec<Duration>) -> Value {
    lat.sort();
    json!({
        "pages": lat.len(),
        "page_p50_ms": percentile(&lat, 50.0),
        "page_p99_ms": percentile(&lat, 99.0),
        "page_max_ms": lat.last().map(|d| ms(*d)),
    })
}

/// Runs the benchmark (on the current tokio runtime, from a blocking thread).
pub fn run(args: TaxiiBenchArgs) -> anyhow::Result<Value> {
    if args.page == 0 || args.objects == 0 {
        bail!("--objects and --page must be positive");
    }
    let dir = tempfile::tempdir().context("temporary data directory")?;
    let t = Instant::now();
    let start = fill(dir.path(), args.objects, args.same_time)?;
    let fill_secs = t.elapsed().as_secs_f64();
    eprintln!(
        "wrote {} indicator changes in {fill_secs:.1} s; opening the server",
        args.objects
    );
    let handle = tokio::runtime::Handle::current();
    handle.block_on(async move {
        let raw = threatfeed_server::RawConfig {
            listen: Some("127.0.0.1:0".into()),
            data_dir: Some(dir.path().to_path_buf()),
            default_kb: Some(false),
            limits: threatfeed_server::config::RawLimits {
                max_page: Some(args.page.max(1000)),
                ..Default::default()
            },
            ..Default::default()
        };
        let config = raw.validate()?;
        let admin = Alphanumeric.sample_string(&mut rand::rng(), 40);
        let t = Instant::now();
        let server = threatfeed_server::Server::open(config, Some(&admin))?;
        let open_secs = t.elapsed().as_secs_f64();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!(
            "http://{}/taxii2/api/collections/{INDICATORS}/objects/",
            listener.local_addr()?
        );
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(server.serve(listener, async move {
            let _ = stop_rx.await;
        }));
        let client = reqwest::Client::new();
        let get = |url: String| {
            let (client, admin) = (client.clone(), admin.clone());
            async move {
                let t = Instant::now();
                let resp = client
                    .get(&url)
                    .bearer_auth(&admin)
                    .header("accept", MEDIA)
                    .send()
                    .await?
                    .error_for_status()?;
                let body = resp.bytes().await?;
                let took = t.elapsed();
                let v: Value = serde_json::from_slice(&body)?;
                anyhow::Ok((v, took, body.len()))
            }
        };
        // Sequential paging from the start, as `as_pages` does.
        let mut lat = Vec::new();
        let mut objects = 0usize;
        let mut bytes = 0usize;
        let mut next: Option<String> = None;
        let started = Instant::now();
        loop {
            let url = match &next {
                None => format!("{base}?limit={}", args.page),
                Some(n) => format!("{base}?limit={}&next={n}", args.page),
            };
            let (v, took, len) = get(url).await?;
            lat.push(took);
            bytes += len;
            objects += v["objects"].as_array().map_or(0, Vec::len);
            let more = v["more"].as_bool().unwrap_or(false);
            next = v["next"].as_str().map(str::to_string);
            if !more || next.is_none() || (args.pages > 0 && lat.len() >= args.pages) {
                break;
            }
            if lat.len() % 1000 == 0 {
                eprintln!("{} pages, {objects} objects", lat.len());
            }
        }
        let elapsed = started.elapsed().as_secs_f64();
        if args.pages == 0 && objects != args.objects {
            bail!(
                "paged {objects} objects, expected {}: paging skipped or repeated objects",
                args.objects
            );
        }
        let pages = lat.len();
        let sequential = summary(lat);
        // Random starting points.
        // Groups are 1 ms apart; `added_after` the last group's time would be past the end.
        let groups = args.objects.div_ceil(args.same_time.max(1)) as i64;
        let mut lat = Vec::new();
        for _ in 0..if groups > 1 { args.random_pages } else { 0 } {
            let at =
                start + jiff::SignedDuration::from_millis(rand::rng().random_range(0..groups - 1));
            let url = format!(
                "{base}?limit={}&added_after={}",
                args.page,
                threatfeed_core::stix::timestamp(at)
            );
            let (v, took, _) = get(url).await?;
            if v["objects"].as_array().is_none_or(Vec::is_empty) {
                bail!("a page at {at} came back empty");
            }
            lat.push(took);
        }
        let random = summary(lat);
        let _ = stop_tx.send(());
        served.await??;
        Ok(json!({
            "objects": args.objects,
            "page_limit": args.page,
            "same_timestamp_group": args.same_time,
            "fill_secs": (fill_secs * 100.0).round() / 100.0,
            "server_open_secs": (open_secs * 100.0).round() / 100.0,
            "sequential": {
                "objects_read": objects,
                "objects_per_sec": (objects as f64 / elapsed).round(),
                "bytes_per_page": bytes / pages.max(1),
                "latency": sequential,
            },
            "random_added_after": random,
        }))
    })
}
