//! `threatfeed ingest FILE…`: streams event files to a running server in batches, with a progress
//! bar and a summary. Files may be NDJSON, a JSON array, or CTIP records (`--format ctip`), plain
//! or `.gz`; `-` reads standard input. Records the server rejects are listed with file and line.

use crate::client::{ClientArgs, api_error};
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::Method;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;

/// Options of `ingest`.
#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    /// Files to send (`-` for standard input).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Record format: events (threatfeed fields) or ctip.
    #[arg(long, default_value = "events")]
    pub format: String,
    /// Records per request.
    #[arg(long, default_value_t = 5000)]
    pub batch: usize,
    /// Rejections to print in full (the rest are counted).
    #[arg(long, default_value_t = 20)]
    pub show_rejected: usize,
    #[command(flatten)]
    pub client: ClientArgs,
}

fn open(path: &PathBuf) -> anyhow::Result<Box<dyn BufRead>> {
    let raw: Box<dyn Read> = if path.as_os_str() == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
        )
    };
    let mut br = BufReader::new(raw);
    let gz = br
        .fill_buf()
        .map(|b| b.starts_with(&[0x1f, 0x8b]))
        .unwrap_or(false);
    Ok(if gz {
        Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(br)))
    } else {
        Box::new(br)
    })
}

/// Splits a file into records: NDJSON lines, or the elements of one JSON array.
fn records(path: &PathBuf) -> anyhow::Result<Vec<(usize, String)>> {
    let mut r = open(path)?;
    let mut text = String::new();
    r.read_to_string(&mut text)
        .with_context(|| format!("reading {} (not UTF-8 text?)", path.display()))?;
    if text.trim_start().starts_with('[') {
        let items: Vec<serde_json::Value> = serde_json::from_str(&text)
            .with_context(|| format!("{}: invalid JSON array", path.display()))?;
        return Ok(items
            .into_iter()
            .enumerate()
            .map(|(i, v)| (i + 1, v.to_string()))
            .collect());
    }
    Ok(text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| (i + 1, l.to_string()))
        .collect())
}

/// Runs `ingest`.
pub async fn run(args: IngestArgs) -> anyhow::Result<()> {
    let client = args.client.connect()?;
    let batch = args.batch.clamp(1, 100_000);
    let mut all = Vec::new();
    for f in &args.files {
        for (line, rec) in records(f)? {
            all.push((f.display().to_string(), line, rec));
        }
    }
    let bar = ProgressBar::new(all.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {bar:40} {pos}/{len} records  {per_sec}  eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = std::time::Instant::now();
    let (mut accepted, mut rejected, mut last_seq) = (0u64, 0u64, 0u64);
    let mut shown = 0usize;
    for chunk in all.chunks(batch) {
        let mut body = String::new();
        for (_, _, rec) in chunk {
            body.push_str(rec);
            body.push('\n');
        }
        let req = client
            .request(
                Method::POST,
                &format!("/api/v1/events?format={}", args.format),
            )
            .header("content-type", "application/x-ndjson")
            .body(body);
        let mut attempt = 0;
        let v = loop {
            let resp = req
                .try_clone()
                .context("request")?
                .send()
                .await
                .context("cannot reach the server")?;
            let status = resp.status();
            let retry = resp
                .headers()
                .get("retry-after")
                .and_then(|h| h.to_str().ok())
                .and_then(|s| s.parse::<u64>().ok());
            let text = resp.text().await.unwrap_or_default();
            if status.as_u16() == 429 && attempt < 10 {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_secs(retry.unwrap_or(1))).await;
                continue;
            }
            if !status.is_success() {
                bar.abandon();
                return Err(api_error(status, &text));
            }
            break serde_json::from_str::<serde_json::Value>(&text)
                .context("server answer is not JSON")?;
        };
        accepted += v["accepted"].as_u64().unwrap_or(0);
        last_seq = v["last_seq"].as_u64().unwrap_or(last_seq);
        for r in v["rejected"].as_array().into_iter().flatten() {
            rejected += 1;
            if shown < args.show_rejected {
                shown += 1;
                let i = r["index"].as_u64().unwrap_or(0) as usize;
                let (file, line) = chunk
                    .get(i)
                    .map(|(f, l, _)| (f.as_str(), *l))
                    .unwrap_or(("?", 0));
                bar.suspend(|| {
                    eprintln!(
                        "rejected {file}:{line}: {}",
                        r["error"].as_str().unwrap_or("")
                    )
                });
            }
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "records": all.len(), "accepted": accepted, "rejected": rejected, "last_seq": last_seq,
            "elapsed_secs": (secs * 1000.0).round() / 1000.0,
            "records_per_sec": if secs > 0.0 { (all.len() as f64 / secs).round() } else { 0.0 },
        })
    );
    if rejected > shown as u64 {
        eprintln!(
            "{} more rejected records not shown (--show-rejected N)",
            rejected - shown as u64
        );
    }
    Ok(())
}
