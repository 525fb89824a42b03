//! Where the simulated bots come from: infected addresses drawn from the real networks of the
//! bundled geo snapshot, and C2 servers taken from the bundled maltrail lists of each family.
//!
//! The geo snapshot ([`GeoDb`]) offers no public way to enumerate its ranges, only
//! [`GeoDb::lookup`]; so addresses are drawn at random (deterministically per seed) from the
//! public unicast space and kept only when the snapshot places them in an announced network
//! (an ASN *and* a country). A cap per ASN keeps the population spread over many networks.

use super::rng::Rng;
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex, OnceLock};
use threatfeed_core::geo::GeoDb;
use threatfeed_core::intel::BUNDLED_LISTS;
use threatfeed_core::threat::KnowledgeBase;

/// One C2 server of a family's list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct C2 {
    /// A domain name, or an IP address in text form.
    pub(crate) host: String,
    /// The address when the entry is one.
    pub(crate) ip: Option<IpAddr>,
    /// The port the list gives, if any.
    pub(crate) port: Option<u16>,
}

/// The bundled geo snapshot, loaded once per process.
pub(crate) fn geo() -> anyhow::Result<&'static GeoDb> {
    static GEO: OnceLock<GeoDb> = OnceLock::new();
    if let Some(g) = GEO.get() {
        return Ok(g);
    }
    let db = GeoDb::embedded().map_err(|e| anyhow::anyhow!("bundled geo snapshot: {e}"))?;
    Ok(GEO.get_or_init(|| db))
}

fn is_public_v4(a: Ipv4Addr) -> bool {
    let o = a.octets();
    !(a.is_private()
        || a.is_loopback()
        || a.is_link_local()
        || a.is_multicast()
        || a.is_broadcast()
        || a.is_documentation()
        || a.is_unspecified()
        || o[0] == 0
        || o[0] >= 240
        || (o[0] == 100 && (64..128).contains(&o[1]))
        || (o[0] == 192 && o[1] == 0 && o[2] == 0)
        || (o[0] == 198 && (18..20).contains(&o[1])))
}

/// The RIRs' big IPv6 blocks: the top 12 bits (2001::/16 handled as 2001 itself).
const V6_BLOCKS: &[u16] = &[0x2001, 0x2400, 0x2600, 0x2800, 0x2a00, 0x2c00];

fn random_v6(rng: &mut Rng) -> Ipv6Addr {
    let block = rng.pick(V6_BLOCKS).copied().unwrap_or(0x2a00);
    let top = if block == 0x2001 {
        0x2001
    } else {
        block | rng.below(16) as u16
    };
    let low = (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64());
    Ipv6Addr::from((u128::from(top) << 112) | (low & ((1u128 << 112) - 1)))
}

/// `n` distinct infected addresses in announced networks, about one in sixteen IPv6, at most
/// `max(2, n / 25)` per ASN while enough others can be found.
pub(crate) fn draw_ips(geo: &GeoDb, n: usize, seed: u64) -> anyhow::Result<Vec<IpAddr>> {
    let mut rng = Rng::derive(seed, 0x1b, 0);
    let cap = (n / 25).max(2);
    let mut per_asn: HashMap<u32, usize> = HashMap::new();
    let mut seen = HashSet::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    let mut attempts: u64 = 0;
    let budget = (n as u64).saturating_mul(2_000).max(100_000);
    while out.len() < n {
        attempts += 1;
        if attempts > budget {
            anyhow::bail!(
                "could only find {} of {n} infected addresses in the geo snapshot",
                out.len()
            );
        }
        // Past half the budget, the per-ASN cap is lifted (a huge population).
        let capped = attempts < budget / 2;
        let ip = if rng.below(16) == 0 {
            IpAddr::V6(random_v6(&mut rng))
        } else {
            let a = Ipv4Addr::from(rng.next_u64() as u32);
            if !is_public_v4(a) {
                continue;
            }
            IpAddr::V4(a)
        };
        let info = geo.lookup(ip);
        let (Some(asn), Some(_)) = (info.asn, info.country) else {
            continue;
        };
        if asn == 0 || seen.contains(&ip) {
            continue;
        }
        let count = per_asn.entry(asn).or_insert(0);
        if capped && *count >= cap {
            continue;
        }
        *count += 1;
        seen.insert(ip);
        out.push(ip);
    }
    Ok(out)
}

fn valid_domain(d: &str) -> bool {
    d.len() <= 253
        && d.contains('.')
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
        && d.rsplit('.')
            .next()
            .is_some_and(|tld| tld.bytes().any(|b| b.is_ascii_lowercase()))
}

/// Parses one maltrail list: domains (also the hosts of URL entries) and IP[:port] entries.
fn parse_list(text: &str) -> Vec<C2> {
    let mut seen = HashSet::new();
    let mut domains = Vec::new();
    let mut ips = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let rest = line.split_once("://").map_or(line, |(_, r)| r);
        let hostport = rest.split(['/', '?']).next().unwrap_or("");
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, p.parse::<u16>().ok()),
            _ => (hostport, None),
        };
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if !seen.insert((host.clone(), port)) {
            continue;
        }
        if let Ok(ip) = host.parse::<IpAddr>() {
            ips.push(C2 {
                host,
                ip: Some(ip),
                port,
            });
        } else if valid_domain(&host) {
            domains.push(C2 {
                host,
                ip: None,
                port,
            });
        }
    }
    if domains.is_empty() { ips } else { domains }
}

/// The C2 servers of `family` (a KB id) from the bundled maltrail lists: its domains (the
/// simulator's bots resolve names), or its IP entries when the list has no domain.
pub(crate) fn c2_pool(kb: &KnowledgeBase, family: &str) -> anyhow::Result<Arc<Vec<C2>>> {
    static POOLS: OnceLock<Mutex<HashMap<String, Arc<Vec<C2>>>>> = OnceLock::new();
    let pools = POOLS.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(p) = pools.lock().ok().and_then(|m| m.get(family).cloned()) {
        return Ok(p);
    }
    let mut entries = Vec::new();
    for (list, gz) in BUNDLED_LISTS {
        if kb.get(list).is_some_and(|t| t.id == family) {
            let mut text = String::new();
            flate2::read::GzDecoder::new(*gz)
                .read_to_string(&mut text)
                .map_err(|e| anyhow::anyhow!("bundled maltrail list {list}: {e}"))?;
            entries.extend(parse_list(&text));
        }
    }
    let pool = Arc::new(entries);
    if let Ok(mut m) = pools.lock() {
        m.insert(family.to_string(), pool.clone());
    }
    Ok(pool)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    #[test]
    fn simulate_maltrail_lines_become_c2_entries() {
        let text = "# comment\nexample-c2.com\nhttp://185.185.40.152/jeff/five/fre.php\n\
                    occe.com/image1/fre.php\n1.2.3.4:5552\nbad_name.com\nEvil.Example.ORG.\n";
        let pool = parse_list(text);
        let hosts: Vec<&str> = pool.iter().map(|c| c.host.as_str()).collect();
        assert_eq!(hosts, ["example-c2.com", "occe.com", "evil.example.org"]);
        let ips = parse_list("1.2.3.4:5552\n5.6.7.8\n");
        assert_eq!(ips[0].port, Some(5552));
        assert_eq!(ips[1].ip, Some(IpAddr::V4(Ipv4Addr::new(5, 6, 7, 8))));
    }

    #[test]
    fn simulate_public_v4_filter() {
        for a in [
            "10.1.2.3",
            "192.168.1.1",
            "100.64.0.1",
            "127.0.0.1",
            "224.0.0.1",
            "198.18.0.1",
        ] {
            assert!(!is_public_v4(a.parse().unwrap()), "{a}");
        }
        assert!(is_public_v4("8.8.8.8".parse().unwrap()));
    }
}
