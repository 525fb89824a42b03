//! `threatfeed bench …`: benchmarks that print one JSON object of figures on stdout.
//!
//! - `bench ingest` — drives a running server: ingest throughput, ingest → subscriber latency
//!   with K scoped SSE subscribers, server peak RSS;
//! - `bench lookup` — in-process indicator lookups per second and memory per indicator;
//! - `bench store` — the two embedded log engines (redb, fjall) on our event shape;
//! - `bench sinkhole` — the sinkhole end to end: capture rate (HTTP, DNS), spool drain after an
//!   outage, capture → subscriber latency;
//! - `bench taxii` — TAXII 2.1 pages over a large Indicators collection: objects/s, page latency.

pub mod ingest;
pub mod lookup;
pub mod sinkhole;
pub mod taxii;

use std::path::PathBuf;

/// `threatfeed bench …`.
#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Load-generate against a running server and measure throughput and delivery latency.
    Ingest(ingest::IngestBenchArgs),
    /// In-process indicator lookups over the bundled lists plus N synthetic indicators.
    Lookup(lookup::LookupBenchArgs),
    /// The sinkhole end to end: capture and forwarding rates, spool drain, capture → subscriber latency.
    Sinkhole(sinkhole::SinkholeBenchArgs),
    /// TAXII 2.1 paging over a large Indicators collection (objects/s, page p50 / p99).
    Taxii(taxii::TaxiiBenchArgs),
    /// Compare the embedded log engines on appends, reads and reopen.
    Store {
        /// Events to append.
        #[arg(long, default_value_t = 200_000)]
        events: usize,
        /// Events per group commit (repeatable to try several).
        #[arg(long = "batch", default_values_t = vec![1000usize, 100])]
        batches: Vec<usize>,
        /// Scratch directory [default: a temporary one].
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

/// Milliseconds, rounded to 0.01.
pub(crate) fn ms(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1e5).round() / 100.0
}

/// Nearest-rank percentile `p` (0–100) of an ascending slice, in milliseconds.
pub(crate) fn percentile_ms(sorted: &[std::time::Duration], p: f64) -> Option<f64> {
    let n = sorted.len();
    let rank = ((p.clamp(0.0, 100.0) / 100.0) * n as f64).ceil() as usize;
    sorted.get(rank.clamp(1, n.max(1)) - 1).map(|d| ms(*d))
}

/// Runs a benchmark and prints its JSON.
pub async fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Ingest(args) => {
            let v = ingest::run(args).await?;
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        BenchCommand::Lookup(args) => {
            let v = tokio::task::spawn_blocking(move || lookup::run(args)).await??;
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        BenchCommand::Sinkhole(args) => {
            let v = sinkhole::run(args).await?;
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        BenchCommand::Taxii(args) => {
            let v = tokio::task::spawn_blocking(move || taxii::run(args)).await??;
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        BenchCommand::Store {
            events,
            batches,
            dir,
        } => {
            let v =
                tokio::task::spawn_blocking(move || store_bench(events, batches, dir)).await??;
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
    }
    Ok(())
}

fn sample_event() -> Vec<u8> {
    let mut e = threatfeed_core::Event::new(
        "203.0.113.77"
            .parse()
            .unwrap_or(std::net::IpAddr::from([203, 0, 113, 77])),
        jiff::Timestamp::now(),
        jiff::Timestamp::now(),
    );
    e.src_port = Some(49_731);
    e.dst_ip = "198.51.100.10".parse().ok();
    e.dst_port = Some(443);
    e.proto = Some("http".into());
    e.host = Some("update-check.badnet-c2.example".into());
    e.url = Some("http://update-check.badnet-c2.example/gate.php?id=8f3a2c&v=2".into());
    e.user_agent = Some("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36".into());
    e.family = Some("emotet".into());
    e.sensor = Some("sinkhole-eu-1".into());
    e.confidence = Some(90);
    e.asn = Some(64_496);
    e.as_name = Some("Example Broadband Networks Ltd".into());
    e.country = Some("NL".into());
    e.threat_id = Some("emotet".into());
    e.encode_stored()
}

fn store_bench(
    events: usize,
    batches: Vec<usize>,
    dir: Option<PathBuf>,
) -> anyhow::Result<serde_json::Value> {
    let record = sample_event();
    let tmp;
    let base = match dir {
        Some(d) => d,
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let mut results = Vec::new();
    for (i, b) in batches.iter().enumerate() {
        let d = base.join(format!("run{i}"));
        std::fs::create_dir_all(&d)?;
        results.extend(threatfeed_store::bench::bench_backends(
            &d, events, *b, &record,
        )?);
    }
    Ok(serde_json::json!({"record_bytes": record.len(), "results": results}))
}
