//! `threatfeed geo import` builds a geo snapshot from CSV (`first_ip,last_ip,asn,org` and
//! `first_ip,last_ip,cc`, as in the bundled data) or iptoasn TSV files, writes it into the data
//! directory (where `serve` loads it instead of the bundled one), and can tell a running server
//! to reload it. `threatfeed geo lookup IP…` answers from the same table, offline.

use crate::client::ClientArgs;
use anyhow::{Context, bail};
use reqwest::Method;
use std::path::PathBuf;
use threatfeed_core::geo::{GeoBuilder, GeoDb};

/// `threatfeed geo …`.
#[derive(Debug, clap::Subcommand)]
pub enum GeoCommand {
    /// Build a snapshot from newer data and install it.
    Import {
        /// `first_ip,last_ip,asn,org` CSV (plain or .gz; repeatable; v4 and v6).
        #[arg(long = "asn-csv")]
        asn_csv: Vec<PathBuf>,
        /// `first_ip,last_ip,cc` CSV (plain or .gz; repeatable).
        #[arg(long = "country-csv")]
        country_csv: Vec<PathBuf>,
        /// iptoasn TSV (`start end asn cc name`; plain or .gz; repeatable).
        #[arg(long)]
        iptoasn: Vec<PathBuf>,
        /// Write here instead of <data-dir>/geo.tfgeo.gz.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Ask the running server (--server, admin token) to reload the table.
        #[arg(long)]
        reload: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Look addresses up (in <data-dir>/geo.tfgeo.gz if present, else the bundled table).
    Lookup {
        /// Addresses.
        #[arg(required = true)]
        ips: Vec<String>,
        /// Data directory.
        #[arg(
            long = "data-dir",
            env = "THREATFEED_DATA_DIR",
            default_value = "./threatfeed-data"
        )]
        data_dir: PathBuf,
    },
}

/// Runs a `geo` subcommand.
pub async fn run(cmd: GeoCommand) -> anyhow::Result<()> {
    match cmd {
        GeoCommand::Import {
            asn_csv,
            country_csv,
            iptoasn,
            out,
            reload,
            client,
        } => {
            if asn_csv.is_empty() && country_csv.is_empty() && iptoasn.is_empty() {
                bail!("nothing to import: give --asn-csv, --country-csv and/or --iptoasn files");
            }
            let mut b = GeoBuilder::new();
            let mut report = Vec::new();
            for (kind, files) in [
                ("asn-csv", &asn_csv),
                ("country-csv", &country_csv),
                ("iptoasn", &iptoasn),
            ] {
                for f in files {
                    let r = std::fs::File::open(f)
                        .with_context(|| format!("cannot open {}", f.display()))?;
                    let r = std::io::BufReader::new(r);
                    let stats = match kind {
                        "asn-csv" => b.add_asn_csv(r),
                        "country-csv" => b.add_country_csv(r),
                        _ => b.add_iptoasn_tsv(r),
                    }
                    .with_context(|| format!("importing {}", f.display()))?;
                    for s in &stats.skipped {
                        eprintln!("{}: skipped {s}", f.display());
                    }
                    report.push(serde_json::json!({"file": f.display().to_string(), "format": kind, "rows": stats.rows, "skipped": stats.skipped_count}));
                }
            }
            let db = b.build();
            let path = out.unwrap_or_else(|| {
                client
                    .data_dir
                    .join(threatfeed_server::app::GEO_SNAPSHOT_FILE)
            });
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, db.to_snapshot())
                .with_context(|| format!("writing {}", tmp.display()))?;
            std::fs::rename(&tmp, &path)
                .with_context(|| format!("installing {}", path.display()))?;
            println!(
                "{}",
                serde_json::json!({"snapshot": path.display().to_string(), "stats": db.stats(), "files": report})
            );
            if reload {
                let c = client.connect()?;
                let v = c
                    .send_json(c.request(Method::POST, "/api/v1/admin/geo/reload"))
                    .await?;
                println!("{v}");
            }
        }
        GeoCommand::Lookup { ips, data_dir } => {
            let p = data_dir.join(threatfeed_server::app::GEO_SNAPSHOT_FILE);
            let db = if p.exists() {
                GeoDb::from_snapshot(
                    &std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?,
                )?
            } else {
                GeoDb::embedded()?
            };
            for ip in ips {
                let Some(addr) = threatfeed_core::canon::parse_ip(&ip) else {
                    bail!("not an ip address: {ip:?}");
                };
                let g = db.lookup(addr);
                println!(
                    "{}",
                    serde_json::json!({"ip": addr, "asn": g.asn, "as_name": g.as_name, "country": g.country})
                );
            }
        }
    }
    Ok(())
}
