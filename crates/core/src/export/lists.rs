//! The plain list exports, one entry per line, for firewalls, routers, proxies and resolvers:
//!
//! - `ip`: the ipv4 and ipv6 indicators, canonical text, sorted (IPv4 first), unique;
//! - `cidr`: the ipv4, ipv6 and cidr indicators aggregated to the fewest CIDR blocks covering
//!   exactly the same addresses (an address is a `/32` or `/128`), always `address/length`;
//! - `domain`: the domain indicators; `url`: the URL indicators;
//! - `hosts`: `0.0.0.0 <domain>` per domain indicator (a sink-holed hosts file).
//!
//! Each starts with one `#` comment line (generation time, serial, number of entries), which
//! firewall and resolver tools skip. Only active records are listed, whatever is passed.
//! A value that is not a valid entry of its list (a non-canonical record read back from
//! somewhere) is left out rather than written as a line a tool might misread: addresses and
//! networks are parsed and re-printed, domains must be plain host names
//! ([`super::is_host_name`]), URLs must be canonical (a scheme, a host, no white space or
//! control character).

use super::{Meta, active, header, is_host_name};
use crate::indicator::{IndicatorKind, canonicalize_as};
use crate::intel::IndicatorRecord;
use ipnet::IpNet;
use std::collections::BTreeSet;
use std::net::IpAddr;

fn finish(what: &str, meta: &Meta, entries: &[String]) -> Vec<u8> {
    let mut out = header("#", what, meta, entries.len());
    for e in entries {
        out.push_str(e);
        out.push('\n');
    }
    out.into_bytes()
}

/// The addresses of the active ipv4 / ipv6 records, sorted, unique.
pub fn addresses(records: &[IndicatorRecord]) -> BTreeSet<IpAddr> {
    active(records)
        .into_iter()
        .filter(|r| matches!(r.kind, IndicatorKind::Ipv4 | IndicatorKind::Ipv6))
        .filter_map(|r| r.value.trim().parse::<IpAddr>().ok())
        .collect()
}

/// The networks of the active ipv4 / ipv6 / cidr records (addresses as `/32` / `/128`, host
/// bits cleared), before aggregation.
pub fn networks(records: &[IndicatorRecord]) -> Vec<IpNet> {
    active(records)
        .into_iter()
        .filter_map(|r| match r.kind {
            IndicatorKind::Ipv4 | IndicatorKind::Ipv6 => {
                r.value.trim().parse::<IpAddr>().ok().map(IpNet::from)
            }
            IndicatorKind::Cidr => r.value.trim().parse::<IpNet>().ok().map(|n| n.trunc()),
            _ => None,
        })
        .collect()
}

/// The domains of the active domain records that are plain host names, lower case, sorted,
/// unique.
pub fn domains(records: &[IndicatorRecord]) -> BTreeSet<String> {
    active(records)
        .into_iter()
        .filter(|r| r.kind == IndicatorKind::Domain)
        .map(|r| r.value.trim().to_ascii_lowercase())
        .filter(|d| is_host_name(d))
        .collect()
}

/// `ip`: one address per line.
pub fn ip(records: &[IndicatorRecord], meta: &Meta) -> Vec<u8> {
    let entries: Vec<String> = addresses(records).iter().map(IpAddr::to_string).collect();
    finish("ip list", meta, &entries)
}

/// `cidr`: the minimal CIDR list, one block per line.
pub fn cidr(records: &[IndicatorRecord], meta: &Meta) -> Vec<u8> {
    let mut nets = IpNet::aggregate(&networks(records));
    nets.sort();
    let entries: Vec<String> = nets.iter().map(IpNet::to_string).collect();
    finish("cidr list", meta, &entries)
}

/// `domain`: one domain per line.
pub fn domain(records: &[IndicatorRecord], meta: &Meta) -> Vec<u8> {
    let entries: Vec<String> = domains(records).into_iter().collect();
    finish("domain list", meta, &entries)
}

/// Whether `u` is a URL in its canonical form ([`canonicalize_as`]): a scheme, a host, no white
/// space or control character.
fn is_canonical_url(u: &str) -> bool {
    !u.chars().any(|c| c.is_whitespace() || c.is_control())
        && matches!(canonicalize_as(IndicatorKind::Url, u), Ok((IndicatorKind::Url, c)) if c == u)
}

/// `url`: one URL per line.
pub fn url(records: &[IndicatorRecord], meta: &Meta) -> Vec<u8> {
    let entries: BTreeSet<String> = active(records)
        .into_iter()
        .filter(|r| r.kind == IndicatorKind::Url)
        .map(|r| r.value.trim().to_string())
        .filter(|u| is_canonical_url(u))
        .collect();
    let entries: Vec<String> = entries.into_iter().collect();
    finish("url list", meta, &entries)
}

/// `hosts`: `0.0.0.0 <domain>` per domain.
pub fn hosts(records: &[IndicatorRecord], meta: &Meta) -> Vec<u8> {
    let entries: Vec<String> = domains(records)
        .into_iter()
        .map(|d| format!("0.0.0.0 {d}"))
        .collect();
    finish("hosts file", meta, &entries)
}
