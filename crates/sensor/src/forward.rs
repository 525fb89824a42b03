//! Spool → feed server: `POST /api/v1/events` (NDJSON, gzip) with the sensor's token, oldest
//! first, in batches of up to `batch_max`.
//!
//! An event leaves the spool only after the server answered for it: accepted, or rejected
//! with a reason (logged and counted — resending a refused record would not help). Each event
//! carries the id `<spool instance>:<seq>`; the server accepts an id once, so a batch resent
//! after a lost answer is not duplicated. While the server is unreachable or failing, the
//! forwarder retries with exponential backoff (100 ms → 5 s; `Retry-After` honoured on 429),
//! logs once that it is spooling and once when the server is back; a 413 halves the batch.

use crate::spool::Spool;
use anyhow::Context;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Where and how to forward.
#[derive(Debug, Clone)]
pub struct ForwardConfig {
    /// The feed server's base URL.
    pub server: String,
    /// The sensor's API token.
    pub token: String,
    /// Events per request at most.
    pub batch_max: usize,
}

/// How long a shutdown waits for the spool to drain.
const DRAIN: Duration = Duration::from_secs(5);

/// The NDJSON body of `recs`, each with its id spliced in front (stored records never carry
/// one).
fn body(spool: &Spool, recs: &[threatfeed_store::log::LogRecord]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(recs.iter().map(|r| r.data.len() + 64).sum());
    for r in recs {
        let rest = r.data.strip_prefix(b"{").unwrap_or(b"}");
        out.extend_from_slice(b"{\"id\":\"");
        out.extend_from_slice(spool.event_id(r.seq).as_bytes());
        out.push(b'"');
        if !rest.starts_with(b"}") {
            out.push(b',');
        }
        out.extend_from_slice(rest);
        out.push(b'\n');
    }
    let mut gz = flate2::write::GzEncoder::new(
        Vec::with_capacity(out.len() / 4),
        flate2::Compression::fast(),
    );
    gz.write_all(&out)?;
    Ok(gz.finish()?)
}

/// What one POST came to.
enum Outcome {
    /// The server answered for every event up to this seq.
    Acked {
        accepted: u64,
        rejected: u64,
        duplicates: u64,
    },
    /// Try again after this long.
    Retry(Duration),
    /// The batch was too large.
    TooLarge,
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    cfg: &ForwardConfig,
    body: Vec<u8>,
    backoff: Duration,
    down: &mut bool,
) -> Outcome {
    let resp = client
        .post(url)
        .bearer_auth(&cfg.token)
        .header("content-type", "application/x-ndjson")
        .header("content-encoding", "gzip")
        .body(body)
        .send()
        .await;
    let resp = match resp {
        Ok(r) => r,
        Err(e) => {
            if !*down {
                tracing::warn!(error = %e, server = %cfg.server, "feed server unreachable: check-ins stay in the spool");
                *down = true;
            }
            metrics::counter!("threatfeed_sinkhole_forward_failures_total").increment(1);
            return Outcome::Retry(backoff);
        }
    };
    let status = resp.status();
    if status.is_success() {
        let v: serde_json::Value = match resp.json().await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "unreadable answer from the feed server; resending");
                return Outcome::Retry(backoff);
            }
        };
        if *down {
            tracing::info!(server = %cfg.server, "feed server reachable again: replaying the spool");
            *down = false;
        }
        let rejected = v["rejected"].as_array().map_or(0, Vec::len) as u64;
        for r in v["rejected"].as_array().into_iter().flatten().take(10) {
            tracing::warn!(index = %r["index"], error = %r["error"], "the feed server refused a check-in");
        }
        return Outcome::Acked {
            accepted: v["accepted"].as_u64().unwrap_or(0),
            rejected,
            duplicates: v["duplicates"].as_u64().unwrap_or(0),
        };
    }
    metrics::counter!("threatfeed_sinkhole_forward_failures_total").increment(1);
    if status == reqwest::StatusCode::PAYLOAD_TOO_LARGE {
        return Outcome::TooLarge;
    }
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_secs);
    let text = resp.text().await.unwrap_or_default();
    if !*down {
        tracing::warn!(%status, answer = %text.chars().take(200).collect::<String>(), "the feed server refused the batch: check-ins stay in the spool");
        *down = true;
    }
    Outcome::Retry(retry_after.unwrap_or(backoff))
}

/// Sends spooled events in order until `shutdown` turns true, then tries for up to 5 s to
/// drain what is left (what is not sent stays in the spool for the next start).
pub async fn run(
    spool: Arc<Spool>,
    cfg: ForwardConfig,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .context("building the http client")?;
    let url = format!("{}/api/v1/events", cfg.server.trim_end_matches('/'));
    let mut appended = spool.subscribe();
    let mut batch_max = cfg.batch_max.max(1);
    let mut backoff = Duration::from_millis(100);
    let mut down = false;
    let mut drain_until: Option<tokio::time::Instant> = None;
    loop {
        if drain_until.is_none() && *shutdown.borrow() {
            drain_until = Some(tokio::time::Instant::now() + DRAIN);
        }
        if drain_until.is_some_and(|d| tokio::time::Instant::now() >= d) {
            break;
        }
        let sp = spool.clone();
        let recs = tokio::task::spawn_blocking(move || sp.pending(batch_max))
            .await
            .context("spool reader")??;
        let Some(last) = recs.last().map(|r| r.seq) else {
            if drain_until.is_some() {
                break;
            }
            tokio::select! {
                _ = appended.changed() => {}
                _ = shutdown.changed() => {}
            }
            continue;
        };
        let body = body(&spool, &recs)?;
        match post(&client, &url, &cfg, body, backoff, &mut down).await {
            Outcome::Acked {
                accepted,
                rejected,
                duplicates,
            } => {
                let sp = spool.clone();
                tokio::task::spawn_blocking(move || sp.ack(last))
                    .await
                    .context("spool ack")??;
                metrics::counter!("threatfeed_sinkhole_forwarded_total").increment(accepted);
                metrics::counter!("threatfeed_sinkhole_forward_rejected_total").increment(rejected);
                metrics::counter!("threatfeed_sinkhole_forward_duplicates_total")
                    .increment(duplicates);
                backoff = Duration::from_millis(100);
                batch_max = (batch_max * 2).min(cfg.batch_max.max(1));
            }
            Outcome::TooLarge => {
                batch_max = (batch_max / 2).max(1);
            }
            Outcome::Retry(wait) => {
                let wait = match drain_until {
                    Some(d) => wait.min(d.saturating_duration_since(tokio::time::Instant::now())),
                    None => wait,
                };
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.changed(), if drain_until.is_none() => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
    let left = spool.stats().pending;
    if left > 0 {
        tracing::info!(
            pending = left,
            "stopping with check-ins still in the spool: they are sent at the next start"
        );
    }
    Ok(())
}
