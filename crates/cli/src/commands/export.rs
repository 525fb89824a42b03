//! `threatfeed export FORMAT`: fetches an export from a running server (what the token may
//! see) and writes it to standard output or, with `--output`, to a file replaced atomically
//! (written beside it, then renamed), so a firewall or resolver reloading the file never reads
//! half of it. With `--output`, the export's `ETag` is kept in `<file>.etag` and sent back as
//! `If-None-Match` next time: an unchanged feed is not downloaded again (for cron jobs).
//! The `misp` format writes a whole MISP feed directory (`manifest.json`, `hashes.csv`, one
//! `<uuid>.json` per event) into `--output DIR`.

use crate::client::{ClientArgs, api_error};
use anyhow::{Context, bail};
use reqwest::{Method, StatusCode};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Options of `export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// stix, csv, json, ip, cidr, domain, url, hosts, rpz, suricata or misp.
    pub format: String,
    /// Write to this file (atomically) instead of standard output; for `misp`, a directory.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Only changes after this serial (the `serial` printed by an earlier export; stix, csv, json).
    #[arg(long)]
    pub since: Option<u64>,
    /// Only this threat's indicators (id, name or alias).
    #[arg(long)]
    pub threat: Option<String>,
    /// Only indicators at least this confident (0-100).
    #[arg(long)]
    pub min_confidence: Option<u8>,
    #[command(flatten)]
    pub client: ClientArgs,
}

fn query(args: &ExportArgs) -> Vec<(&'static str, String)> {
    let mut q = Vec::new();
    if let Some(s) = args.since {
        q.push(("since", s.to_string()));
    }
    if let Some(t) = &args.threat {
        q.push(("threat", t.clone()));
    }
    if let Some(m) = args.min_confidence {
        q.push(("min_confidence", m.to_string()));
    }
    q
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename.
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}

fn etag_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".etag");
    PathBuf::from(p)
}

/// A query value, percent-encoded (RFC 3986 unreserved characters kept).
fn percent_encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One GET; `None` when the server answered 304 to `etag`.
async fn fetch(
    c: &crate::client::Client,
    path: &str,
    q: &[(&'static str, String)],
    etag: Option<&str>,
) -> anyhow::Result<Option<(Vec<u8>, Option<String>, String)>> {
    let mut url = path.to_string();
    for (i, (k, v)) in q.iter().enumerate() {
        url.push(if i == 0 { '?' } else { '&' });
        url.push_str(k);
        url.push('=');
        url.push_str(&percent_encode(v));
    }
    let mut req = c.request(Method::GET, &url);
    if let Some(t) = etag {
        req = req.header("if-none-match", t);
    }
    let resp = req.send().await.context("cannot reach the server")?;
    let status = resp.status();
    if status == StatusCode::NOT_MODIFIED {
        return Ok(None);
    }
    let tag = resp
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let serial = resp
        .headers()
        .get("x-threatfeed-serial")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("?")
        .to_string();
    let body = resp.bytes().await.context("reading the export")?;
    if !status.is_success() {
        return Err(api_error(status, &String::from_utf8_lossy(&body)));
    }
    Ok(Some((body.to_vec(), tag, serial)))
}

/// Runs `export`.
pub async fn run(args: ExportArgs) -> anyhow::Result<()> {
    let c = args.client.connect()?;
    let q = query(&args);
    let format = args.format.trim().to_ascii_lowercase();
    if format == "misp" {
        let Some(dir) = &args.output else {
            bail!("the misp format is a feed directory: pass --output DIR");
        };
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let Some((manifest, _, serial)) =
            fetch(&c, "/api/v1/export/misp/manifest.json", &q, None).await?
        else {
            bail!("unexpected 304");
        };
        let events: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&manifest).context("the MISP manifest is not a JSON object")?;
        for uuid in events.keys() {
            let Some((body, ..)) =
                fetch(&c, &format!("/api/v1/export/misp/{uuid}.json"), &q, None).await?
            else {
                continue;
            };
            write_atomically(&dir.join(format!("{uuid}.json")), &body)?;
        }
        if let Some((hashes, ..)) = fetch(&c, "/api/v1/export/misp/hashes.csv", &q, None).await? {
            write_atomically(&dir.join("hashes.csv"), &hashes)?;
        }
        write_atomically(&dir.join("manifest.json"), &manifest)?;
        eprintln!(
            "{}",
            serde_json::json!({"format": "misp", "events": events.len(), "serial": serial, "output": dir})
        );
        return Ok(());
    }
    let path = format!("/api/v1/export/{format}");
    let Some(out) = &args.output else {
        let Some((body, _, serial)) = fetch(&c, &path, &q, None).await? else {
            bail!("unexpected 304");
        };
        std::io::stdout().lock().write_all(&body)?;
        eprintln!(
            "{}",
            serde_json::json!({"format": format, "bytes": body.len(), "serial": serial})
        );
        return Ok(());
    };
    let tag_file = etag_path(out);
    let previous = if out.exists() {
        std::fs::read_to_string(&tag_file)
            .ok()
            .map(|s| s.trim().to_string())
    } else {
        None
    };
    match fetch(&c, &path, &q, previous.as_deref()).await? {
        None => eprintln!(
            "{}",
            serde_json::json!({"format": format, "unchanged": true, "output": out})
        ),
        Some((body, tag, serial)) => {
            write_atomically(out, &body)?;
            match tag {
                Some(t) => std::fs::write(&tag_file, t)?,
                None => {
                    let _ = std::fs::remove_file(&tag_file);
                }
            }
            eprintln!(
                "{}",
                serde_json::json!({"format": format, "bytes": body.len(), "serial": serial, "output": out})
            );
        }
    }
    Ok(())
}
