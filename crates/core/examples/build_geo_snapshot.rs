//! Builds the geo snapshot shipped as `data/geo/snapshot.tfgeo.gz` (see `data/geo/README.md`).
//!
//! ```text
//! cargo run --release -p threatfeed-core --example build_geo_snapshot -- \
//!     --asn asn-ipv4.csv.gz --asn asn-ipv6.csv.gz \
//!     --country asn-country-ipv4.csv.gz --country asn-country-ipv6.csv.gz \
//!     [--iptoasn ip2asn-combined.tsv.gz] --out data/geo/snapshot.tfgeo.gz
//! ```
//!
//! Files are imported in the order given (a later file wins where ranges overlap). After
//! writing, the snapshot is loaded back, compared with the built table, and load and lookup
//! times are printed.

use std::error::Error;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Instant;

use threatfeed_core::geo::{GeoBuilder, GeoDb};

fn main() -> Result<(), Box<dyn Error>> {
    let mut inputs: Vec<(String, PathBuf)> = Vec::new();
    let mut out: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--asn" | "--country" | "--iptoasn" => inputs.push((a.clone(), value()?.into())),
            "--out" | "-o" => out = Some(value()?.into()),
            "-h" | "--help" => {
                println!(
                    "usage: build_geo_snapshot (--asn F | --country F | --iptoasn F)... --out FILE"
                );
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?} (see --help)").into()),
        }
    }
    let out = out.ok_or("--out FILE is required")?;
    if inputs.is_empty() {
        return Err("no input files: give --asn, --country and/or --iptoasn".into());
    }

    let t = Instant::now();
    let mut b = GeoBuilder::new();
    for (kind, path) in &inputs {
        let r = std::io::BufReader::new(
            std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?,
        );
        let stats = match kind.as_str() {
            "--asn" => b.add_asn_csv(r),
            "--country" => b.add_country_csv(r),
            _ => b.add_iptoasn_tsv(r),
        }
        .map_err(|e| format!("{}: {e}", path.display()))?;
        println!(
            "{}: {} rows, {} skipped",
            path.display(),
            stats.rows,
            stats.skipped_count
        );
        for s in &stats.skipped {
            println!("  skipped {s}");
        }
    }
    let db = b.build();
    println!("built {:?} in {:.2?}", db.stats(), t.elapsed());

    let bytes = db.to_snapshot();
    std::fs::write(&out, &bytes).map_err(|e| format!("{}: {e}", out.display()))?;
    println!("wrote {} ({} bytes)", out.display(), bytes.len());

    let t = Instant::now();
    let back = GeoDb::from_snapshot(&std::fs::read(&out)?)?;
    println!("loaded back in {:.2?}", t.elapsed());
    if back != db {
        return Err("the snapshot does not read back to the same table".into());
    }

    // Lookup speed over pseudo-random addresses (xorshift, fixed seed).
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let n = 2_000_000u32;
    let (mut hits4, mut hits6) = (0u32, 0u32);
    let t = Instant::now();
    for _ in 0..n {
        let ip = IpAddr::V4(Ipv4Addr::from(next() as u32));
        hits4 += u32::from(back.lookup(std::hint::black_box(ip)).asn.is_some());
    }
    let v4 = t.elapsed();
    let t = Instant::now();
    for _ in 0..n {
        // Inside 2000::/3, where the data is.
        let hi = (next() & 0x1fff_ffff_ffff_ffff) | 0x2000_0000_0000_0000;
        let ip = IpAddr::V6(Ipv6Addr::from((u128::from(hi) << 64) | u128::from(next())));
        hits6 += u32::from(back.lookup(std::hint::black_box(ip)).asn.is_some());
    }
    let v6 = t.elapsed();
    println!(
        "lookup: v4 {:.0} ns ({hits4} of {n} hit), v6 {:.0} ns ({hits6} of {n} hit)",
        v4.as_nanos() as f64 / f64::from(n),
        v6.as_nanos() as f64 / f64::from(n),
    );
    Ok(())
}
