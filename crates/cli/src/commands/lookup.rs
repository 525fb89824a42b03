//! `threatfeed lookup VALUE…`: asks a running server whether IPs, networks, domains, URLs or
//! hashes are known-bad, and prints one JSON line per value (its threat and first remediation
//! steps when known). `-` reads values from standard input, one per line.

use crate::client::ClientArgs;
use anyhow::bail;
use reqwest::Method;
use std::io::BufRead;

/// Options of `lookup`.
#[derive(Debug, clap::Args)]
pub struct LookupArgs {
    /// Values to look up (`-` for standard input, one per line).
    #[arg(required = true)]
    pub values: Vec<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Runs `lookup`; exits non-zero when nothing could be asked.
pub async fn run(args: LookupArgs) -> anyhow::Result<()> {
    let mut values = Vec::new();
    for v in args.values {
        if v == "-" {
            for line in std::io::stdin().lock().lines() {
                let line = line?;
                let t = line.trim();
                if !t.is_empty() && !t.starts_with('#') {
                    values.push(t.to_string());
                }
            }
        } else {
            values.push(v);
        }
    }
    if values.is_empty() {
        bail!("no values to look up");
    }
    let c = args.client.connect()?;
    for chunk in values.chunks(crate::commands::lookup::BATCH) {
        let v = c
            .send_json(
                c.request(Method::POST, "/api/v1/lookup")
                    .json(&serde_json::json!({ "values": chunk })),
            )
            .await?;
        for r in v["results"].as_array().into_iter().flatten() {
            let threats: Vec<&str> = r["hits"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|h| h["threat"]["id"].as_str())
                .collect();
            let line = serde_json::json!({
                "value": r["value"],
                "known": r["known"],
                "error": r["error"],
                "canonical": r["canonical"],
                "threats": threats,
                "clean": r["hits"][0]["threat"]["remediation"]["clean"],
            });
            println!("{line}");
        }
    }
    Ok(())
}

/// Values per request.
pub const BATCH: usize = threatfeed_server::routes::lookup::MAX_BATCH;
