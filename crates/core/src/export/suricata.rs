//! The Suricata 7 rules export: one `alert` rule per active network indicator.
//!
//! - ipv4 / ipv6 / cidr: `alert ip $HOME_NET any -> [<net>] any (...)`;
//! - domain: `alert dns $HOME_NET any -> any any (... dns.query; dotprefix; content:".<domain>";
//!   nocase; endswith; ...)` — the name itself and every name under it, never a name that merely
//!   ends in the same characters (`notevil.example` does not match `evil.example`);
//! - url (`http` / `https` only): `alert http $HOME_NET any -> any any (...
//!   flow:established,to_server; http.host; content:"<host>"; startswith; endswith; http.uri;
//!   content:"<path?query>"; startswith; endswith; ...)` — the exact host (any port) and request target. `http.uri` is
//!   Suricata's normalised buffer (percent-decoded, `\` → `/`, `//` compressed, dot segments
//!   removed; the path alone also for a proxy's absolute-form request), so a target it would
//!   change (one with `%`, `\`, `//`, dot segments or non-ASCII bytes) is matched in
//!   `http.uri.raw` instead — the target exactly as a client sends it straight to the server
//!   (a proxied request to such a URL is not matched). A URL whose host is an address matches it
//!   as the rule's destination instead of `http.host`. An `https` URL matches only where
//!   Suricata sees the decrypted request (behind a TLS-inspecting proxy). URLs of other schemes
//!   get no rule.
//!
//! File hashes get no rule: Suricata matches hashes only through `filemd5` / `filesha1` /
//! `filesha256` and a side file of hashes next to the rules, which a single downloadable rules
//! file cannot carry. They are in the other formats.
//!
//! Every rule: `msg:"threatfeed C2 <family> <value>"`, `classtype:trojan-activity`, `rev:1`,
//! `metadata:threat <id>, tlp <clear|green|amber|amber_strict|red>, confidence <n>`.
//! Text in `msg` is escaped (`\"`, `\;`, `\\`) and limited to printable ASCII; `content` bytes
//! other than letters, digits and URL punctuation that needs no escaping are written in the
//! `|hex|` form, so `"`, `;`, `\`, `|`, white space and non-ASCII bytes are always safe.
//!
//! **sids** are unique within a file and stable across exports: the sid of an indicator is
//! [`SID_BASE`] + (first 8 bytes of SHA-256 of its id, big-endian) mod [`SID_SPAN`], i.e. in
//! 1,000,000,000 – 1,999,999,999; when two indicators of one export hash to the same sid, the
//! one whose id sorts later takes the next free sid (wrapping inside the range). A sid thus
//! changes only if a colliding indicator with a smaller id appears or disappears.

use super::{Meta, active, header, is_host_name, one_line};
use crate::indicator::IndicatorKind;
use crate::intel::IndicatorRecord;
use crate::tlp::Tlp;
use ipnet::IpNet;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::net::IpAddr;

/// The first sid of the range.
pub const SID_BASE: u64 = 1_000_000_000;
/// The size of the sid range.
pub const SID_SPAN: u64 = 1_000_000_000;

/// The preferred sid of the indicator `id` (before collisions are resolved).
pub fn preferred_sid(id: &str) -> u64 {
    let digest = Sha256::digest(id.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    SID_BASE + u64::from_be_bytes(first) % SID_SPAN
}

/// The `metadata` value of a TLP label (no `+`: metadata values are plain words).
pub fn tlp_word(tlp: Tlp) -> &'static str {
    match tlp {
        Tlp::Clear => "clear",
        Tlp::Green => "green",
        Tlp::Amber => "amber",
        Tlp::AmberStrict => "amber_strict",
        Tlp::Red => "red",
    }
}

/// `s` as the text of a `msg`: printable ASCII, `\`, `"` and `;` escaped with a backslash.
fn msg_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in one_line(s, 400).chars() {
        if matches!(c, '\\' | '"' | ';') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `s` as a metadata word: letters, digits, `-`, `_` and `.`; anything else becomes `_`.
fn metadata_word(s: &str) -> String {
    let w: String = s
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if w.is_empty() { "unknown".into() } else { w }
}

/// `s` as the text of a `content`: safe bytes as they are, every other byte in `|hex|` form
/// (consecutive ones in one group).
pub fn content_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    let mut in_hex = false;
    for b in s.bytes() {
        let plain = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'.' | b'-'
                    | b'_'
                    | b'/'
                    | b'~'
                    | b'='
                    | b'&'
                    | b'%'
                    | b':'
                    | b'?'
                    | b'@'
                    | b'!'
                    | b'$'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b'['
                    | b']'
            );
        if plain {
            if in_hex {
                out.push('|');
                in_hex = false;
            }
            out.push(b as char);
        } else {
            if in_hex {
                out.push(' ');
            } else {
                out.push('|');
                in_hex = true;
            }
            out.push_str(&format!("{b:02X}"));
        }
    }
    if in_hex {
        out.push('|');
    }
    out
}

/// Host and request target (`/path?query`) of an `http` / `https` URL; `None` otherwise. The
/// host is lower case, without port or user info.
fn http_parts(url: &str) -> Option<(UrlHost, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let tail = tail.split_once('#').map_or(tail, |(t, _)| t);
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(inner) = hostport.strip_prefix('[') {
        UrlHost::Ip(inner.split_once(']')?.0.parse::<IpAddr>().ok()?)
    } else {
        let name = hostport.split(':').next().unwrap_or_default();
        match name.parse::<IpAddr>() {
            Ok(ip) => UrlHost::Ip(ip),
            Err(_) => {
                let name = name.to_ascii_lowercase();
                if !is_host_name(&name) {
                    return None;
                }
                UrlHost::Name(name)
            }
        }
    };
    let tail = if tail.is_empty() { "/" } else { tail };
    if !tail.starts_with('/') || tail.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    Some((host, tail))
}

/// The host of a URL rule.
enum UrlHost {
    /// An address: matched as the rule's destination.
    Ip(IpAddr),
    /// A name: matched in `http.host`.
    Name(String),
}

/// Whether Suricata's normalised `http.uri` buffer holds `target` unchanged: printable ASCII
/// without `%` (percent-decoded there), `\` (made `/`), `//` (compressed) or dot segments
/// (removed). Other targets are matched in `http.uri.raw`, the request target as sent.
fn survives_normalisation(target: &str) -> bool {
    target
        .bytes()
        .all(|b| (b'!'..=b'~').contains(&b) && b != b'%' && b != b'\\')
        && !target.contains("//")
        && !target.contains("/./")
        && !target.contains("/../")
        && !target.ends_with("/.")
        && !target.ends_with("/..")
}

/// The rule of `r` without its sid and closing (`… metadata…; sid:` is appended by the caller);
/// `None` for kinds and values that get no rule.
fn rule_head(r: &IndicatorRecord) -> Option<String> {
    let value = r.value.trim();
    let family = r
        .family
        .as_deref()
        .or(r.threat_id.as_deref())
        .map(|f| one_line(f, 64))
        .filter(|f| !f.is_empty())
        .unwrap_or_else(|| "unattributed".into());
    let (header, options) = match r.kind {
        IndicatorKind::Ipv4 | IndicatorKind::Ipv6 => {
            let ip = value.parse::<IpAddr>().ok()?;
            (
                format!("alert ip $HOME_NET any -> [{ip}] any"),
                String::new(),
            )
        }
        IndicatorKind::Cidr => {
            let net = value.parse::<IpNet>().ok()?.trunc();
            (
                format!("alert ip $HOME_NET any -> [{net}] any"),
                String::new(),
            )
        }
        IndicatorKind::Domain => {
            let d = value.to_ascii_lowercase();
            if !is_host_name(&d) {
                return None;
            }
            (
                "alert dns $HOME_NET any -> any any".to_string(),
                format!(
                    " dns.query; dotprefix; content:\".{}\"; nocase; endswith;",
                    content_text(&d)
                ),
            )
        }
        IndicatorKind::Url => {
            let (host, target) = http_parts(value)?;
            let (dest, host_match) = match host {
                UrlHost::Ip(ip) => (format!("[{ip}]"), String::new()),
                UrlHost::Name(name) => (
                    "any".to_string(),
                    format!(
                        " http.host; content:\"{}\"; startswith; endswith;",
                        content_text(&name)
                    ),
                ),
            };
            let buffer = if survives_normalisation(target) {
                "http.uri"
            } else {
                "http.uri.raw"
            };
            (
                format!("alert http $HOME_NET any -> {dest} any"),
                format!(
                    " flow:established,to_server;{host_match} {buffer}; content:\"{}\"; \
                     startswith; endswith;",
                    content_text(target)
                ),
            )
        }
        IndicatorKind::Md5 | IndicatorKind::Sha1 | IndicatorKind::Sha256 => return None,
    };
    let msg = msg_text(&format!("threatfeed C2 {family} {value}"));
    Some(format!(
        "{header} (msg:\"{msg}\";{options} classtype:trojan-activity;"
    ))
}

/// The rules (see the module doc).
pub fn render(records: &[IndicatorRecord], meta: &Meta) -> Vec<u8> {
    // Rules in export order, one per indicator id; sids assigned in id order.
    let mut ids: HashSet<&str> = HashSet::new();
    let mut rules: Vec<(&IndicatorRecord, String)> = active(records)
        .into_iter()
        .filter(|r| ids.insert(r.id.as_str()))
        .filter_map(|r| rule_head(r).map(|h| (r, h)))
        .collect();
    let mut by_id: Vec<usize> = (0..rules.len()).collect();
    by_id.sort_by(|&a, &b| rules[a].0.id.cmp(&rules[b].0.id));
    let mut used: HashSet<u64> = HashSet::with_capacity(rules.len());
    let mut sids: Vec<Option<u64>> = vec![None; rules.len()];
    for i in by_id {
        if used.len() as u64 >= SID_SPAN {
            break;
        }
        let mut sid = preferred_sid(&rules[i].0.id);
        while !used.insert(sid) {
            sid = if sid + 1 >= SID_BASE + SID_SPAN {
                SID_BASE
            } else {
                sid + 1
            };
        }
        sids[i] = Some(sid);
    }
    let mut body = String::new();
    let mut count = 0usize;
    for ((r, head), sid) in rules.drain(..).zip(sids) {
        let Some(sid) = sid else { continue };
        let threat = metadata_word(r.threat_id.as_deref().unwrap_or("unknown"));
        body.push_str(&format!(
            "{head} sid:{sid}; rev:1; metadata:threat {threat}, tlp {}, confidence {};)\n",
            tlp_word(r.tlp),
            r.confidence.min(100)
        ));
        count += 1;
    }
    let mut out = header("#", "Suricata rules", meta, count);
    out.push_str(&format!(
        "# sids {SID_BASE}-{}: derived from the indicator id, stable across exports\n",
        SID_BASE + SID_SPAN - 1
    ));
    out.push_str(&body);
    out.into_bytes()
}
