//! The DNS response-policy zone (RPZ) export, in BIND zone-file syntax, for resolvers that
//! implement RPZ (BIND, Unbound, Knot Resolver, PowerDNS Recursor).
//!
//! Every owner name is relative and the file has no `$ORIGIN`, so the operator loads it under
//! any zone name (`rpz.threatfeed.` in the examples). Content:
//! - `$TTL 300`; an SOA whose serial is the export's [`Meta::serial`] modulo 2³² (SOA serials
//!   are 32-bit; RFC 1982 serial arithmetic keeps ordering across the wrap as long as one
//!   transfer never skips 2³¹ changes), refresh 1 h, retry 10 min, expire 7 days, negative TTL
//!   5 min; one NS, `localhost.` (an RPZ is never queried directly);
//! - per domain indicator `name CNAME .` and `*.name CNAME .` (NXDOMAIN for the name and every
//!   name under it);
//! - per ipv4 / ipv6 / cidr indicator the `rpz-ip` trigger (answers containing an address in
//!   it are rewritten to NXDOMAIN): IPv4 `32.4.3.2.1.rpz-ip` (prefix length, then the octets
//!   reversed), IPv6 `128.1.zz.db8.2001.rpz-ip` (prefix length, then the 16-bit groups reversed
//!   in hex, `zz` for the longest run of at least two zero groups — the first such run on ties,
//!   as in RFC 5952 — which is the form BIND calls canonical).
//!
//! URLs and hashes have no RPZ form and are left out. A domain is left out when a zone cannot
//! carry it safely: not a plain host name ([`super::is_host_name`]), longer than
//! [`MAX_DOMAIN_LEN`] (so `*.<domain>.<zone>` fits the 255-octet name limit under any zone name
//! of up to 63 characters), or ending in a label that starts with `rpz-` (it would be read as an
//! `rpz-ip` / `rpz-nsdname` / ... trigger instead of a domain). Each entry carries the threat as
//! a `;` comment. Only active records are written.

use super::{Meta, active, header, is_host_name, one_line};
use crate::indicator::IndicatorKind;
use crate::intel::IndicatorRecord;
use ipnet::IpNet;
use std::collections::HashSet;
use std::fmt::Write as _;
use std::net::IpAddr;

/// The longest domain written: `*.` + domain + `.` + a zone name of 63 characters must fit
/// the 255-octet wire limit of a DNS name.
pub const MAX_DOMAIN_LEN: usize = 187;

/// The SOA serial of an export: its serial modulo 2³².
pub fn soa_serial(meta: &Meta) -> u32 {
    (meta.serial % (1u64 << 32)) as u32
}

/// The relative owner name of the `rpz-ip` trigger of `net`; `None` for a prefix length of 0,
/// which RPZ cannot express.
pub fn ip_trigger(net: IpNet) -> Option<String> {
    let net = net.trunc();
    match net {
        IpNet::V4(n) => {
            let p = n.prefix_len();
            let [a, b, c, d] = n.network().octets();
            (p > 0).then(|| format!("{p}.{d}.{c}.{b}.{a}.rpz-ip"))
        }
        IpNet::V6(n) => {
            let p = n.prefix_len();
            // BIND keeps IPv4-mapped networks as IPv4 triggers.
            if p >= 96
                && let Some(v4) = n.network().to_ipv4_mapped()
            {
                let [a, b, c, d] = v4.octets();
                let p = p - 96;
                return (p > 0).then(|| format!("{p}.{d}.{c}.{b}.{a}.rpz-ip"));
            }
            if p == 0 {
                return None;
            }
            let g = n.network().segments();
            // The longest run of at least two zero groups, the first on ties.
            let (mut best, mut best_len) = (usize::MAX, 1usize);
            let mut i = 0;
            while i < g.len() {
                if g[i] == 0 {
                    let start = i;
                    while i < g.len() && g[i] == 0 {
                        i += 1;
                    }
                    if i - start > best_len {
                        best = start;
                        best_len = i - start;
                    }
                } else {
                    i += 1;
                }
            }
            let mut name = p.to_string();
            let mut k = g.len();
            while k > 0 {
                k -= 1;
                if best != usize::MAX && k >= best && k < best + best_len {
                    name.push_str(".zz");
                    k = best;
                } else {
                    let _ = write!(name, ".{:x}", g[k]);
                }
            }
            name.push_str(".rpz-ip");
            Some(name)
        }
    }
}

/// Whether a zone can carry `d` as a QNAME trigger (see the module doc).
pub fn is_rpz_domain(d: &str) -> bool {
    is_host_name(d)
        && d.len() <= MAX_DOMAIN_LEN
        && !d
            .rsplit('.')
            .next()
            .is_some_and(|tld| tld.to_ascii_lowercase().starts_with("rpz-"))
}

/// The comment of an entry: the family, else the threat id.
fn comment(r: &IndicatorRecord) -> String {
    let who = r
        .family
        .as_deref()
        .or(r.threat_id.as_deref())
        .map(|s| one_line(s, 64))
        .unwrap_or_default();
    if who.is_empty() {
        String::new()
    } else {
        format!(" ; {who}")
    }
}

/// The zone (see the module doc).
pub fn render(records: &[IndicatorRecord], meta: &Meta) -> Vec<u8> {
    let mut body = String::new();
    let mut owners: HashSet<String> = HashSet::new();
    let mut count = 0usize;
    for r in active(records) {
        let c = comment(r);
        let value = r.value.trim();
        match r.kind {
            IndicatorKind::Ipv4 | IndicatorKind::Ipv6 | IndicatorKind::Cidr => {
                let net = match r.kind {
                    IndicatorKind::Cidr => value.parse::<IpNet>().ok(),
                    _ => value.parse::<IpAddr>().ok().map(IpNet::from),
                };
                if let Some(owner) = net.and_then(ip_trigger)
                    && owners.insert(owner.clone())
                {
                    let _ = writeln!(body, "{owner} CNAME .{c}");
                    count += 1;
                }
            }
            IndicatorKind::Domain => {
                let d = value.to_ascii_lowercase();
                if is_rpz_domain(&d) && owners.insert(d.clone()) {
                    let _ = writeln!(body, "{d} CNAME .{c}");
                    let _ = writeln!(body, "*.{d} CNAME .{c}");
                    count += 1;
                }
            }
            _ => {}
        }
    }
    let mut out = header(";", "response policy zone", meta, count);
    out.push_str("; Owner names are relative: load it under any zone name, e.g. rpz.threatfeed.\n");
    out.push_str("$TTL 300\n");
    let _ = writeln!(
        out,
        "@ IN SOA localhost. hostmaster.localhost. ( {} 3600 600 604800 300 )",
        soa_serial(meta)
    );
    out.push_str("@ IN NS localhost.\n");
    out.push_str(&body);
    out.into_bytes()
}
