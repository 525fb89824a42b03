//! Telemetry as types: each thing worth counting is one function here that records the metric
//! (and logs where useful) under the `threatfeed_` naming rule, so names never drift apart.
//!
//! Metrics are exported in Prometheus text format on `GET /metrics`.

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder (once) and returns its handle.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let latency = [
                0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
            ];
            let sizes = [1.0, 10.0, 100.0, 1_000.0, 10_000.0, 100_000.0];
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &latency)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_events".into()), &sizes));
            let recorder = match builder {
                Ok(b) => b.build_recorder(),
                Err(_) => PrometheusBuilder::new().build_recorder(),
            };
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
            }
            handle
        })
        .clone()
}

/// Events accepted and committed.
pub fn events_ingested(n: u64) {
    counter!("threatfeed_events_ingested_total").increment(n);
}

/// Records refused at ingest.
pub fn events_rejected(n: u64) {
    counter!("threatfeed_events_rejected_total").increment(n);
}

/// Whole ingest requests refused (limits, auth, content type).
pub fn ingest_request_refused(reason: &'static str) {
    counter!("threatfeed_ingest_requests_refused_total", "reason" => reason).increment(1);
}

/// Time from request arrival to durable acknowledgement.
pub fn ingest_latency(seconds: f64) {
    histogram!("threatfeed_ingest_latency_seconds").record(seconds);
}

/// One group commit: events written and fsync'd together, and how long it took.
pub fn group_commit(events: usize, seconds: f64) {
    histogram!("threatfeed_commit_batch_events").record(events as f64);
    histogram!("threatfeed_commit_latency_seconds").record(seconds);
}

/// Log size after a commit or trim.
pub fn log_size(records: u64, bytes: u64, last_seq: u64) {
    gauge!("threatfeed_log_records").set(records as f64);
    gauge!("threatfeed_log_bytes").set(bytes as f64);
    gauge!("threatfeed_log_last_seq").set(last_seq as f64);
}

/// Events removed by retention.
pub fn retention_trimmed(n: u64) {
    if n > 0 {
        tracing::info!(removed = n, "retention trimmed the event log");
    }
    counter!("threatfeed_retention_trimmed_total").increment(n);
}

/// Live subscribers currently connected.
pub fn subscribers(n: usize) {
    gauge!("threatfeed_subscribers").set(n as f64);
}

/// A subscriber's buffer overflowed: it is switched to catch-up from the log (not dropped).
pub fn subscriber_lagged(org_id: &str) {
    tracing::debug!(org_id, "subscriber fell behind; catching up from the log");
    counter!("threatfeed_subscriber_lagged_total").increment(1);
}

/// How far the slowest live subscriber is behind the head of the log, in events.
pub fn subscriber_lag(events: u64) {
    gauge!("threatfeed_subscriber_lag_events_max").set(events as f64);
}

/// Events delivered to stream subscribers (counting each subscriber).
pub fn events_delivered(n: u64) {
    counter!("threatfeed_events_delivered_total").increment(n);
}

/// Authentication failures.
pub fn auth_failed(reason: &'static str) {
    counter!("threatfeed_auth_failures_total", "reason" => reason).increment(1);
}

/// Process memory, read from `/proc/self/status` (Linux): current and peak resident set size.
pub fn process_memory() {
    if let Ok(s) = std::fs::read_to_string("/proc/self/status") {
        for line in s.lines() {
            let kb = |l: &str| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
                    .map(|v| v * 1024.0)
            };
            if line.starts_with("VmRSS:")
                && let Some(b) = kb(line)
            {
                gauge!("threatfeed_process_resident_memory_bytes").set(b);
            } else if line.starts_with("VmHWM:")
                && let Some(b) = kb(line)
            {
                gauge!("threatfeed_process_peak_resident_memory_bytes").set(b);
            }
        }
    }
}
