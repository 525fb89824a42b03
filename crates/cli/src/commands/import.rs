//! `threatfeed import [--format F] [--threat NAME] FILE…`: sends third-party indicator files
//! (maltrail lists, FireHOL ipsets / netsets, abuse.ch Feodo CSV, plain lists, MISP events and
//! galaxies, STIX 2.1 bundles; plain or `.gz`; `-` for standard input) to a running server's
//! `POST /api/v1/import`, one request per file, with a progress bar over the bytes. Prints one
//! summary line per file (imported / merged / skipped, with the first skipped lines and their
//! reasons) and the totals as JSON.

use crate::client::{ClientArgs, api_error};
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::Method;
use serde_json::{Value, json};
use std::io::Read;
use std::path::PathBuf;

/// Options of `import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// Files to import (`-` for standard input).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// maltrail, firehol, feodo-csv, plain, misp-event, misp-galaxy or stix (default: detected
    /// from the content).
    #[arg(long)]
    pub format: Option<String>,
    /// Threat of the indicators the file does not attribute (e.g. a plain list).
    #[arg(long)]
    pub threat: Option<String>,
    /// TLP of the imported indicators (default: clear for an admin, green for a member).
    #[arg(long)]
    pub tlp: Option<String>,
    /// Confidence 0-100 of indicators the file gives none.
    #[arg(long)]
    pub confidence: Option<u8>,
    /// Source name shown on the indicators (admin only; default import:<format>).
    #[arg(long)]
    pub source: Option<String>,
    /// Contribute anonymously (members).
    #[arg(long)]
    pub anonymous: bool,
    /// Skipped lines to print per file (all are counted).
    #[arg(long, default_value_t = 10)]
    pub show_skipped: usize,
    #[command(flatten)]
    pub client: ClientArgs,
}

fn read(path: &PathBuf) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("reading standard input")?;
    } else {
        std::fs::File::open(path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .with_context(|| format!("cannot read {}", path.display()))?;
    }
    Ok(bytes)
}

/// `?k=v&...`, percent-encoded (empty when there is nothing).
fn query_string(pairs: &[(&str, String)]) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    };
    if pairs.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect();
    format!("?{}", parts.join("&"))
}

/// Runs `import`.
pub async fn run(args: ImportArgs) -> anyhow::Result<()> {
    let client = args.client.connect()?;
    let mut query: Vec<(&str, String)> = Vec::new();
    if let Some(f) = &args.format {
        query.push(("format", f.clone()));
    }
    if let Some(t) = &args.threat {
        query.push(("threat", t.clone()));
    }
    if let Some(t) = &args.tlp {
        query.push(("tlp", t.clone()));
    }
    if let Some(c) = args.confidence {
        query.push(("confidence", c.to_string()));
    }
    if let Some(s) = &args.source {
        query.push(("source", s.clone()));
    }
    if args.anonymous {
        query.push(("anonymous", "true".into()));
    }
    let qs = query_string(&query);
    let files: Vec<(String, Vec<u8>)> = args
        .files
        .iter()
        .map(|f| Ok((f.display().to_string(), read(f)?)))
        .collect::<anyhow::Result<_>>()?;
    let total_bytes: u64 = files.iter().map(|(_, b)| b.len() as u64).sum();
    let bar = ProgressBar::new(total_bytes);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {bar:40} {bytes}/{total_bytes}  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut totals = json!({"files": files.len(), "indicators": 0, "imported": 0, "merged": 0, "skipped": 0, "threats_created": 0, "threats_updated": 0});
    for (name, bytes) in files {
        bar.set_message(name.clone());
        let len = bytes.len() as u64;
        let resp = client
            .request(Method::POST, &format!("/api/v1/import{qs}"))
            .header("content-type", "application/octet-stream")
            .body(bytes)
            .send()
            .await
            .context("cannot reach the server")?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            bar.abandon();
            return Err(api_error(status, &text).context(format!("importing {name}")));
        }
        let v: Value = serde_json::from_str(&text).context("server answer is not JSON")?;
        bar.inc(len);
        bar.suspend(|| {
            println!(
                "{name}: {} — {} imported, {} merged, {} skipped, {} duplicate lines; threats: {} created, {} updated",
                v["format"].as_str().unwrap_or("?"),
                v["imported"],
                v["merged"],
                v["skipped"],
                v["duplicates"],
                v["threats"]["created"],
                v["threats"]["updated"],
            );
            for s in v["skipped_lines"]
                .as_array()
                .into_iter()
                .flatten()
                .take(args.show_skipped)
            {
                match s["line"].as_u64() {
                    Some(l) => eprintln!("  skipped {name}:{l}: {}", s["reason"].as_str().unwrap_or("")),
                    None => eprintln!("  skipped {name}: {}", s["reason"].as_str().unwrap_or("")),
                }
            }
            for r in v["threats"]["refused"].as_array().into_iter().flatten() {
                eprintln!("  {name}: {}", r.as_str().unwrap_or(""));
            }
        });
        for (k, from) in [
            ("indicators", "indicators"),
            ("imported", "imported"),
            ("merged", "merged"),
            ("skipped", "skipped"),
        ] {
            totals[k] = json!(totals[k].as_u64().unwrap_or(0) + v[from].as_u64().unwrap_or(0));
        }
        totals["threats_created"] = json!(
            totals["threats_created"].as_u64().unwrap_or(0)
                + v["threats"]["created"].as_u64().unwrap_or(0)
        );
        totals["threats_updated"] = json!(
            totals["threats_updated"].as_u64().unwrap_or(0)
                + v["threats"]["updated"].as_u64().unwrap_or(0)
        );
    }
    bar.finish_and_clear();
    println!("{totals}");
    Ok(())
}
