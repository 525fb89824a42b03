//! `threatfeed bench lookup`: in-process indicator lookups over a large index — the bundled C2
//! lists plus N synthetic indicators (IPv4 addresses, domains, URLs) — reporting lookups per
//! second (one thread and all cores) and the memory each indicator costs (resident-set growth
//! while building the index, divided by the indicators added).

use serde_json::{Value, json};
use std::time::Instant;
use threatfeed_core::indicator::{IndicatorKind, indicator_id};
use threatfeed_core::lookup::{IndicatorEntry, IndicatorIndex};
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
}

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
            std::net::Ipv4Addr::from(mix(i as u64)).to_string(),
        ),
        7 | 8 => (IndicatorKind::Domain, format!("c{i:x}.bench-c2.example")),
        _ => (
            IndicatorKind::Url,
            format!("http://c{i:x}.bench-c2.example/gate.php"),
        ),
    }
}

/// Runs the benchmark and returns its figures.
pub fn run(args: LookupBenchArgs) -> anyhow::Result<Value> {
    let kb = KnowledgeBase::bundled()?;
    let rss0 = rss_bytes();
    let started = Instant::now();
    let (mut index, _) = IndicatorIndex::bundled(&kb);
    let bundled = index.len();
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
                2 => std::net::Ipv4Addr::from(mix(u64::MAX - q as u64)).to_string(),
                _ => format!("n{q:x}.benign.example"),
            }
        })
        .collect();
    let one = |qs: &[String]| {
        let mut hits = 0usize;
        for q in qs {
            if index.lookup(q).is_ok_and(|(_, _, h)| !h.is_empty()) {
                hits += 1;
            }
        }
        hits
    };
    let t = Instant::now();
    let hits = one(&queries);
    let single = queries.len() as f64 / t.elapsed().as_secs_f64();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let t = Instant::now();
    let chunk = queries.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        for part in queries.chunks(chunk) {
            s.spawn(|| one(part));
        }
    });
    let parallel = queries.len() as f64 / t.elapsed().as_secs_f64();
    Ok(json!({
        "indicators": total,
        "bundled_indicators": bundled,
        "synthetic_indicators": args.indicators,
        "build_secs": (build_secs * 100.0).round() / 100.0,
        "lookups": queries.len(),
        "hit_ratio": hits as f64 / queries.len().max(1) as f64,
        "lookups_per_sec_1_thread": single.round(),
        "threads": threads,
        "lookups_per_sec_all_threads": parallel.round(),
        "rss_growth_bytes": grown,
        "bytes_per_indicator": if total > 0 { (grown as f64 / total as f64).round() } else { 0.0 },
    }))
}
