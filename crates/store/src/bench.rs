//! The store benchmark behind `threatfeed bench store`: the same workload on every event-log
//! backend, each in a fresh subdirectory, so their figures compare.
//!
//! Workload per backend: append `events` copies of `record` in batches of `batch` (one append =
//! one group commit, timed one by one for the latency percentiles), read everything back in
//! pages of 1000 with `read_after`, drop the log and time reopening it, then measure the files.
//! The subdirectory (`<dir>/redb`, `<dir>/fjall`) must not exist beforehand and is removed
//! afterwards (a failure to remove it is logged, not returned).

use crate::log::{EventLog, LogBackend, LogError, open_log};
use serde::Serialize;
use std::path::Path;
use std::time::{Duration, Instant};

/// Page size of the read-back phase.
const READ_PAGE: usize = 1000;

/// The figures of one backend.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoreBenchResult {
    /// Backend name.
    pub backend: &'static str,
    /// Records appended.
    pub events: usize,
    /// Records per append (group commit).
    pub batch: usize,
    /// Records appended per second, over all appends.
    pub append_events_per_sec: f64,
    /// Median latency of one append (commit included), milliseconds.
    pub append_p50_ms: f64,
    /// 99th-percentile latency of one append, milliseconds.
    pub append_p99_ms: f64,
    /// Records read back per second.
    pub read_events_per_sec: f64,
    /// Time to reopen the log, milliseconds.
    pub reopen_ms: f64,
    /// Size of the log's files after the run.
    pub disk_bytes: u64,
}

/// Runs the workload on redb and fjall, in fresh subdirectories of `dir`.
pub fn bench_backends(
    dir: &Path,
    events: usize,
    batch: usize,
    record: &[u8],
) -> Result<Vec<StoreBenchResult>, LogError> {
    LogBackend::ALL
        .into_iter()
        .map(|kind| {
            let sub = dir.join(kind.as_str());
            std::fs::create_dir_all(dir).map_err(|source| LogError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
            std::fs::create_dir(&sub).map_err(|source| LogError::Io {
                path: sub.clone(),
                source,
            })?;
            let result = bench_one(kind, &sub, events, batch, record);
            if let Err(e) = std::fs::remove_dir_all(&sub) {
                tracing::warn!(path = %sub.display(), error = %e, "could not remove benchmark directory");
            }
            result
        })
        .collect()
}

fn bench_one(
    kind: LogBackend,
    dir: &Path,
    events: usize,
    batch: usize,
    record: &[u8],
) -> Result<StoreBenchResult, LogError> {
    let batch = batch.max(1);
    let log = open_log(kind, dir)?;

    // Append phase: one timed append per batch.
    let mut latencies = Vec::with_capacity(events.div_ceil(batch));
    let mut appended = 0usize;
    let t0_ms: i64 = 1_700_000_000_000;
    let append_start = Instant::now();
    while appended < events {
        let n = batch.min(events - appended);
        let records: Vec<(i64, &[u8])> = (appended..appended + n)
            .map(|i| (t0_ms + i64::try_from(i).unwrap_or(i64::MAX), record))
            .collect();
        let t = Instant::now();
        log.append(&records)?;
        latencies.push(t.elapsed());
        appended += n;
    }
    let append_time = append_start.elapsed();

    // Read phase: pages of READ_PAGE until the end.
    let read_start = Instant::now();
    let read = read_all(&*log)?;
    let read_time = read_start.elapsed();
    if read != events as u64 {
        return Err(LogError::Backend {
            backend: log.backend(),
            location: dir.display().to_string(),
            detail: format!("benchmark read back {read} records, appended {events}"),
        });
    }
    let backend = log.backend();
    drop(log);

    let reopen_start = Instant::now();
    let log = open_log(kind, dir)?;
    let reopen_time = reopen_start.elapsed();
    let disk_bytes = dir_size(dir)?;
    drop(log);

    latencies.sort_unstable();
    Ok(StoreBenchResult {
        backend,
        events,
        batch,
        append_events_per_sec: per_sec(events as u64, append_time),
        append_p50_ms: ms(percentile(&latencies, 50)),
        append_p99_ms: ms(percentile(&latencies, 99)),
        read_events_per_sec: per_sec(read, read_time),
        reopen_ms: ms(reopen_time),
        disk_bytes,
    })
}

fn read_all(log: &dyn EventLog) -> Result<u64, LogError> {
    let mut cursor = 0;
    let mut count = 0u64;
    loop {
        let page = log.read_after(cursor, READ_PAGE)?;
        let Some(last) = page.last() else {
            return Ok(count);
        };
        cursor = last.seq;
        count += page.len() as u64;
    }
}

fn per_sec(n: u64, d: Duration) -> f64 {
    let secs = d.as_secs_f64();
    if secs > 0.0 { n as f64 / secs } else { 0.0 }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The `p`th percentile (nearest rank) of sorted durations; zero when empty.
fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

/// Total size of the regular files under `dir`.
fn dir_size(dir: &Path) -> Result<u64, LogError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| LogError::Io { path, source }
    };
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(io(&d))? {
            let entry = entry.map_err(io(&d))?;
            let meta = entry.metadata().map_err(io(&entry.path()))?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                total += meta.len();
            }
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECORD: &[u8] = br#"{"ts":"2025-06-01T12:00:00.000Z","source":"sinkhole-ams-1","ip":"192.0.2.17","port":49152,"asn":64500,"as_name":"EXAMPLE-NET","country":"NL","family":"mirai","type":"infection","dst_ip":"198.51.100.4","dst_port":443,"protocol":"tcp","hostname":"c2.example.net","url":"http://c2.example.net/gate.php","tlp":"amber","confidence":80,"tags":["botnet","iot"],"sensor":"sensor_0123456789abcdef","id":"0190f2a4-7c1e-7b3a-9d2e-5f6a7b8c9d0e"}"#;

    #[test]
    fn percentiles_use_nearest_rank() {
        let d: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&d, 50), Duration::from_millis(50));
        assert_eq!(percentile(&d, 99), Duration::from_millis(99));
        assert_eq!(percentile(&d[..1], 99), Duration::from_millis(1));
        assert_eq!(percentile(&[], 50), Duration::ZERO);
    }

    #[test]
    fn small_run_reports_both_backends_and_cleans_up() {
        let dir = tempfile::tempdir().expect("tempdir");
        let results = bench_backends(dir.path(), 2_500, 1000, RECORD).expect("bench");
        assert_eq!(
            results.iter().map(|r| r.backend).collect::<Vec<_>>(),
            vec!["redb", "fjall"]
        );
        for r in &results {
            assert_eq!(r.events, 2_500);
            assert!(
                r.append_events_per_sec > 0.0 && r.read_events_per_sec > 0.0,
                "{r:?}"
            );
            assert!(r.append_p99_ms >= r.append_p50_ms, "{r:?}");
            assert!(r.disk_bytes > 0, "{r:?}");
        }
        assert!(!dir.path().join("redb").exists() && !dir.path().join("fjall").exists());
        // A second run in the same directory works (the subdirectories were removed).
        bench_backends(dir.path(), 10, 3, RECORD).expect("second run");
    }

    /// `cargo test --release -p threatfeed-store -- --ignored bench --nocapture`
    /// (`BENCH_EVENTS` overrides the 200k events).
    #[test]
    #[ignore = "benchmark; run in release mode"]
    fn bench_store_release() {
        let events = std::env::var("BENCH_EVENTS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(200_000);
        println!("record: {} bytes", RECORD.len());
        for batch in [10_000, 1000, 100] {
            let dir = tempfile::tempdir().expect("tempdir");
            for r in bench_backends(dir.path(), events, batch, RECORD).expect("bench") {
                println!(
                    "{:5} events={} batch={:5} append={:>9.0} ev/s p50={:7.2} ms p99={:7.2} ms read={:>9.0} ev/s reopen={:7.1} ms disk={:.1} MiB",
                    r.backend,
                    r.events,
                    r.batch,
                    r.append_events_per_sec,
                    r.append_p50_ms,
                    r.append_p99_ms,
                    r.read_events_per_sec,
                    r.reopen_ms,
                    r.disk_bytes as f64 / (1024.0 * 1024.0)
                );
            }
        }
    }
}
