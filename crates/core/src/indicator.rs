//! Indicators of compromise: their kinds, canonical forms and stable ids.
//!
//! An indicator is one observable (an IP address, a network, a domain, a URL or a file hash) that
//! a feed says is malicious. The same indicator is written in many ways in the wild — upper case,
//! trailing dots, defanged (`hxxp://evil[.]com`), with default ports, as an IPv4-mapped IPv6
//! address, as a CIDR with host bits set — so every indicator is reduced to one canonical text
//! before it is stored, compared or given an id:
//!
//! - **ipv4 / ipv6**: the canonical address text; IPv4-mapped IPv6 is folded to IPv4;
//! - **cidr**: network address with host bits cleared and the prefix length; a full-length prefix
//!   (`/32`, `/128`) is an ipv4 / ipv6 indicator instead;
//! - **domain**: lower-case IDNA (to ASCII), no trailing dot; IP literals are refused;
//! - **url**: scheme and host lower-case, host IDNA, default port removed (`:80` for http,
//!   `:443` for https), empty path becomes `/`, fragment dropped; path and query are kept as
//!   given; a scheme-less URL (`evil.com/gate.php`) is taken as `http://`;
//! - **md5 / sha1 / sha256**: lower-case hex of 32 / 40 / 64 digits.
//!
//! [`indicator_id`] derives a deterministic id from the kind and the canonical text.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::canon::{canonical_host, parse_ip};

/// The kind of an indicator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IndicatorKind {
    Ipv4,
    Ipv6,
    Cidr,
    Domain,
    Url,
    Md5,
    Sha1,
    Sha256,
}

impl IndicatorKind {
    /// Every kind, in declaration order.
    pub const ALL: [IndicatorKind; 8] = [
        IndicatorKind::Ipv4,
        IndicatorKind::Ipv6,
        IndicatorKind::Cidr,
        IndicatorKind::Domain,
        IndicatorKind::Url,
        IndicatorKind::Md5,
        IndicatorKind::Sha1,
        IndicatorKind::Sha256,
    ];

    /// The lower-case name used in JSON and in ids.
    pub fn as_str(self) -> &'static str {
        match self {
            IndicatorKind::Ipv4 => "ipv4",
            IndicatorKind::Ipv6 => "ipv6",
            IndicatorKind::Cidr => "cidr",
            IndicatorKind::Domain => "domain",
            IndicatorKind::Url => "url",
            IndicatorKind::Md5 => "md5",
            IndicatorKind::Sha1 => "sha1",
            IndicatorKind::Sha256 => "sha256",
        }
    }

    /// The number of hex digits of a hash kind; `None` for the other kinds.
    pub fn hash_len(self) -> Option<usize> {
        match self {
            IndicatorKind::Md5 => Some(32),
            IndicatorKind::Sha1 => Some(40),
            IndicatorKind::Sha256 => Some(64),
            _ => None,
        }
    }
}

impl fmt::Display for IndicatorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for IndicatorKind {
    type Err = IndicatorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        IndicatorKind::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(t))
            .ok_or_else(|| IndicatorError::UnknownKind(s.to_string()))
    }
}

/// Why a value is not a valid indicator. Every variant names the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndicatorError {
    /// The value is empty (after trimming).
    #[error("empty indicator {0:?}")]
    Empty(String),
    /// The value is not a valid indicator of the given kind.
    #[error("invalid {kind} indicator {value:?}: {reason}")]
    Invalid {
        kind: IndicatorKind,
        value: String,
        reason: &'static str,
    },
    /// The kind of the value could not be recognised.
    #[error("unrecognised indicator {0:?}")]
    Unrecognised(String),
    /// An unknown indicator kind name.
    #[error("unknown indicator kind {0:?}")]
    UnknownKind(String),
}

fn invalid(kind: IndicatorKind, value: &str, reason: &'static str) -> IndicatorError {
    IndicatorError::Invalid {
        kind,
        value: value.to_string(),
        reason,
    }
}

/// Undoes the usual defanging of threat-intel text: `hxxp://` → `http://`, `[.]` / `(.)` /
/// `{.}` / `[dot]` → `.`, `[:]` → `:`, `[://]` → `://`. Also trims surrounding whitespace.
pub fn refang(raw: &str) -> String {
    let mut s = raw.trim().to_string();
    // Repeat until nothing changes, so that refanging is idempotent ("[[.].]" → "[.]" → ".").
    loop {
        let before = s.len();
        for (from, to) in [
            ("[://]", "://"),
            ("[.]", "."),
            ("(.)", "."),
            ("{.}", "."),
            ("[dot]", "."),
            ("[DOT]", "."),
            ("[:]", ":"),
        ] {
            if s.contains(from) {
                s = s.replace(from, to);
            }
        }
        if s.len() == before {
            break;
        }
    }
    // hxxp:// / hxxps:// / hXXp:// as the scheme of a URL.
    if let Some(head) = s.get(..4)
        && head.eq_ignore_ascii_case("hxxp")
        && let Some(rest) = s.get(4..)
        && (rest.starts_with("://")
            || rest
                .get(..4)
                .is_some_and(|r| r.eq_ignore_ascii_case("s://")))
    {
        s = format!("http{rest}");
    }
    s
}

/// Canonicalises an indicator of unknown kind, detecting the kind from the text.
///
/// Detection: anything with `://` is a URL; an IP literal is ipv4/ipv6; `ip/len` is a CIDR;
/// other text with a `/` is a scheme-less URL; 32/40/64 hex digits are a hash; the rest must be
/// a domain.
pub fn canonicalize(raw: &str) -> Result<(IndicatorKind, String), IndicatorError> {
    let t = refang(raw);
    if t.is_empty() {
        return Err(IndicatorError::Empty(raw.to_string()));
    }
    if t.contains("://") {
        return canonicalize_as(IndicatorKind::Url, raw);
    }
    if let Some(ip) = parse_ip(&t) {
        return Ok(ip_indicator(ip));
    }
    if let Some((addr, len)) = t.split_once('/') {
        if parse_ip(addr).is_some() && !len.is_empty() && len.bytes().all(|b| b.is_ascii_digit()) {
            return canonicalize_as(IndicatorKind::Cidr, raw);
        }
        return canonicalize_as(IndicatorKind::Url, raw);
    }
    if t.bytes().all(|b| b.is_ascii_hexdigit()) {
        match t.len() {
            32 => return canonicalize_as(IndicatorKind::Md5, raw),
            40 => return canonicalize_as(IndicatorKind::Sha1, raw),
            64 => return canonicalize_as(IndicatorKind::Sha256, raw),
            _ => {}
        }
    }
    if t.contains(':') || t.contains(char::is_whitespace) {
        return Err(IndicatorError::Unrecognised(raw.to_string()));
    }
    canonicalize_as(IndicatorKind::Domain, raw)
}

fn ip_indicator(ip: IpAddr) -> (IndicatorKind, String) {
    match ip {
        IpAddr::V4(_) => (IndicatorKind::Ipv4, ip.to_string()),
        IpAddr::V6(_) => (IndicatorKind::Ipv6, ip.to_string()),
    }
}

/// Canonicalises `raw` as an indicator of the given kind.
///
/// The returned kind can differ from the requested one where the canonical form says so: a
/// `/32` or `/128` CIDR (or a bare address given as a CIDR) is an ipv4 / ipv6 indicator, and an
/// IPv4-mapped IPv6 address is ipv4.
pub fn canonicalize_as(
    kind: IndicatorKind,
    raw: &str,
) -> Result<(IndicatorKind, String), IndicatorError> {
    let t = refang(raw);
    if t.is_empty() {
        return Err(IndicatorError::Empty(raw.to_string()));
    }
    match kind {
        IndicatorKind::Ipv4 | IndicatorKind::Ipv6 => {
            let ip = parse_ip(&t).ok_or_else(|| invalid(kind, raw, "not an IP address"))?;
            if kind == IndicatorKind::Ipv4 && !ip.is_ipv4() {
                return Err(invalid(kind, raw, "not an IPv4 address"));
            }
            Ok(ip_indicator(ip))
        }
        IndicatorKind::Cidr => canonical_cidr(&t, raw),
        IndicatorKind::Domain => canonical_domain(&t, raw).map(|d| (IndicatorKind::Domain, d)),
        IndicatorKind::Url => canonical_url(&t, raw).map(|u| (IndicatorKind::Url, u)),
        IndicatorKind::Md5 | IndicatorKind::Sha1 | IndicatorKind::Sha256 => {
            let want = kind.hash_len().unwrap_or(0);
            if t.len() != want {
                return Err(invalid(kind, raw, "wrong length"));
            }
            if !t.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(invalid(kind, raw, "not hex"));
            }
            Ok((kind, t.to_ascii_lowercase()))
        }
    }
}

fn canonical_cidr(t: &str, raw: &str) -> Result<(IndicatorKind, String), IndicatorError> {
    const K: IndicatorKind = IndicatorKind::Cidr;
    let Some((addr, len)) = t.split_once('/') else {
        let ip = parse_ip(t).ok_or_else(|| invalid(K, raw, "not an IP network"))?;
        return Ok(ip_indicator(ip));
    };
    if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) || len.len() > 3 {
        return Err(invalid(K, raw, "bad prefix length"));
    }
    let len: u8 = len
        .parse()
        .map_err(|_| invalid(K, raw, "bad prefix length"))?;
    let addr = addr.trim();
    let addr = addr
        .strip_prefix('[')
        .and_then(|a| a.strip_suffix(']'))
        .unwrap_or(addr);
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| invalid(K, raw, "not an IP network"))?;
    let net = match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) if len >= 96 => IpNet::new(IpAddr::V4(v4), len - 96),
            _ => IpNet::new(ip, len),
        },
        IpAddr::V4(_) => IpNet::new(ip, len),
    }
    .map_err(|_| invalid(K, raw, "prefix length too long"))?
    .trunc();
    if net.prefix_len() == net.max_prefix_len() {
        return Ok(ip_indicator(net.addr()));
    }
    Ok((K, net.to_string()))
}

fn canonical_domain(t: &str, raw: &str) -> Result<String, IndicatorError> {
    const K: IndicatorKind = IndicatorKind::Domain;
    if parse_ip(t).is_some() {
        return Err(invalid(K, raw, "an IP address is not a domain"));
    }
    if t.contains(':') || t.contains('/') || t.contains('[') {
        return Err(invalid(K, raw, "not a host name"));
    }
    let host = canonical_host(t).map_err(|_| invalid(K, raw, "not a host name"))?;
    if parse_ip(&host).is_some() {
        return Err(invalid(K, raw, "an IP address is not a domain"));
    }
    if !host.contains('.') {
        return Err(invalid(K, raw, "a domain needs at least two labels"));
    }
    Ok(host)
}

fn canonical_url(t: &str, raw: &str) -> Result<String, IndicatorError> {
    const K: IndicatorKind = IndicatorKind::Url;
    if t.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(K, raw, "whitespace in URL"));
    }
    let (scheme, rest) = match t.split_once("://") {
        Some((s, r)) => (s.to_ascii_lowercase(), r),
        None => ("http".to_string(), t),
    };
    let scheme_ok = scheme
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.');
    if !scheme_ok {
        return Err(invalid(K, raw, "bad scheme"));
    }
    let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(auth_end);
    let tail = tail.split_once('#').map_or(tail, |(before, _)| before);
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (host, port) = if let Some(after) = hostport.strip_prefix('[') {
        let (inner, after) = after
            .split_once(']')
            .ok_or_else(|| invalid(K, raw, "bad host"))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| invalid(K, raw, "bad host"))?,
            ),
        };
        (inner, port)
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    let port = match port {
        None | Some("") => None,
        Some(p) => {
            if !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid(K, raw, "bad port"));
            }
            Some(p.parse::<u16>().map_err(|_| invalid(K, raw, "bad port"))?)
        }
    };
    if host.is_empty() {
        return Err(invalid(K, raw, "missing host"));
    }
    let host = match parse_ip(host) {
        Some(IpAddr::V6(v6)) => format!("[{v6}]"),
        Some(ip) => ip.to_string(),
        None => {
            if host.contains(':') || host.contains('[') || host.contains(']') {
                return Err(invalid(K, raw, "bad host"));
            }
            canonical_host(host).map_err(|_| invalid(K, raw, "bad host"))?
        }
    };
    let default_port = match scheme.as_str() {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    };
    let port = port.filter(|p| Some(*p) != default_port);
    let mut out = String::with_capacity(t.len() + 8);
    out.push_str(&scheme);
    out.push_str("://");
    if let Some(u) = userinfo {
        out.push_str(u);
        out.push('@');
    }
    out.push_str(&host);
    if let Some(p) = port {
        out.push(':');
        out.push_str(&p.to_string());
    }
    if !tail.starts_with('/') {
        out.push('/');
    }
    out.push_str(tail);
    Ok(out)
}

/// The deterministic id of an indicator: `ind_` and the first 16 bytes, in hex, of
/// SHA-256(`kind:canonical`).
pub fn indicator_id(kind: IndicatorKind, canonical: &str) -> String {
    let mut h = Sha256::new();
    h.update(kind.as_str().as_bytes());
    h.update(b":");
    h.update(canonical.as_bytes());
    let digest = h.finalize();
    format!("ind_{}", hex::encode(&digest[..16]))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn c(s: &str) -> (IndicatorKind, String) {
        canonicalize(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn detects_kinds() {
        use IndicatorKind::*;
        assert_eq!(c("192.0.2.1"), (Ipv4, "192.0.2.1".into()));
        assert_eq!(c("2001:DB8::1"), (Ipv6, "2001:db8::1".into()));
        assert_eq!(c("::ffff:192.0.2.1"), (Ipv4, "192.0.2.1".into()));
        assert_eq!(c("192.0.2.7/24"), (Cidr, "192.0.2.0/24".into()));
        assert_eq!(c("192.0.2.7/32"), (Ipv4, "192.0.2.7".into()));
        assert_eq!(c("2001:db8::1/128"), (Ipv6, "2001:db8::1".into()));
        assert_eq!(c("2001:db8::1/32"), (Cidr, "2001:db8::/32".into()));
        assert_eq!(c("::ffff:10.1.2.3/104"), (Cidr, "10.0.0.0/8".into()));
        assert_eq!(c("Evil.COM."), (Domain, "evil.com".into()));
        assert_eq!(c("bücher.de"), (Domain, "xn--bcher-kva.de".into()));
        assert_eq!(
            c("evil.com/gate.php"),
            (Url, "http://evil.com/gate.php".into())
        );
        assert_eq!(
            c("HTTPS://Evil.com:443?q=A#frag"),
            (Url, "https://evil.com/?q=A".into())
        );
        assert_eq!(
            c("http://[2001:DB8::1]:8080/x"),
            (Url, "http://[2001:db8::1]:8080/x".into())
        );
        assert_eq!(
            c("ftp://ftp.Example.com"),
            (Url, "ftp://ftp.example.com/".into())
        );
        assert_eq!(c(&"AB".repeat(16)), (Md5, "ab".repeat(16)));
        assert_eq!(c(&"Cd".repeat(20)), (Sha1, "cd".repeat(20)));
        assert_eq!(c(&"eF".repeat(32)), (Sha256, "ef".repeat(32)));
    }

    #[test]
    fn defanged() {
        use IndicatorKind::*;
        assert_eq!(
            c("hxxp://evil[.]com/a[.]php"),
            (Url, "http://evil.com/a.php".into())
        );
        assert_eq!(c("hXXps://evil(.)com"), (Url, "https://evil.com/".into()));
        assert_eq!(c("192[.]0[.]2[.]1"), (Ipv4, "192.0.2.1".into()));
        assert_eq!(c("http[:]//evil.com:80/"), (Url, "http://evil.com/".into()));
    }

    #[test]
    fn errors_name_the_value() {
        for (kind, v) in [
            (IndicatorKind::Domain, "192.0.2.1"),
            (IndicatorKind::Domain, "bad host!"),
            (IndicatorKind::Ipv4, "2001:db8::1"),
            (IndicatorKind::Cidr, "10.0.0.0/33"),
            (IndicatorKind::Md5, "abc"),
            (IndicatorKind::Sha1, &"g".repeat(40)),
            (IndicatorKind::Url, "http://evil.com:99999/"),
            (IndicatorKind::Url, "http:///path"),
        ] {
            let e = canonicalize_as(kind, v).expect_err(v).to_string();
            assert!(e.contains(v), "{e}");
        }
        assert!(canonicalize("").is_err());
        assert!(canonicalize("not a value").is_err());
        assert!(canonicalize("1.2.3.4:80").is_err());
    }

    #[test]
    fn ids_are_deterministic_and_distinct() {
        let a = indicator_id(IndicatorKind::Domain, "evil.com");
        assert_eq!(a, indicator_id(IndicatorKind::Domain, "evil.com"));
        assert_eq!(a.len(), 4 + 32);
        assert!(a.starts_with("ind_"));
        assert_ne!(a, indicator_id(IndicatorKind::Url, "evil.com"));
        assert_eq!(
            serde_json::to_string(&IndicatorKind::Sha256)
                .ok()
                .as_deref(),
            Some("\"sha256\"")
        );
        assert_eq!("IPV4".parse::<IndicatorKind>(), Ok(IndicatorKind::Ipv4));
    }

    fn label() -> impl Strategy<Value = String> {
        "[a-z][a-z0-9]{0,8}"
    }

    fn mixed_case(s: &str, mask: u64) -> String {
        s.chars()
            .enumerate()
            .map(|(i, ch)| {
                if mask >> (i % 64) & 1 == 1 {
                    ch.to_ascii_uppercase()
                } else {
                    ch
                }
            })
            .collect()
    }

    proptest! {
        #[test]
        fn domain_spellings_agree(a in label(), b in label(), mask in any::<u64>()) {
            let d = format!("{a}.{b}.com");
            let spellings = [
                d.clone(),
                d.to_ascii_uppercase(),
                mixed_case(&d, mask),
                format!("{d}."),
                format!("  {d}  "),
                d.replace('.', "[.]"),
                d.replace('.', "(.)"),
                format!("{}.", mixed_case(&d, !mask)),
                d.replacen('.', "[.]", 1),
                format!("{}.", d.replace('.', "[.]")),
            ];
            for s in &spellings {
                let (k, v) = canonicalize(s).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(k, IndicatorKind::Domain);
                prop_assert_eq!(&v, &d);
                prop_assert_eq!(indicator_id(k, &v), indicator_id(IndicatorKind::Domain, &d));
            }
        }

        #[test]
        fn url_spellings_agree(a in label(), p in "[a-z0-9]{1,8}", q in "[A-Za-z0-9=]{0,6}", mask in any::<u64>()) {
            let query = if q.is_empty() { String::new() } else { format!("?{q}") };
            let want = format!("http://{a}.com/{p}.php{query}");
            let spellings = [
                want.clone(),
                format!("HTTP://{}.COM/{p}.php{query}", a.to_ascii_uppercase()),
                format!("hxxp://{a}[.]com/{p}.php{query}"),
                format!("http://{a}.com:80/{p}.php{query}"),
                format!("http://{a}.com./{p}.php{query}#top"),
                format!("{a}.com/{p}.php{query}"),
                format!("{}/{p}.php{query}", mixed_case(&format!("{a}.com"), mask)),
                format!("hXXp://{a}(.)com:80/{p}.php{query}#x"),
                format!("http[:]//{a}.com/{p}.php{query}"),
                format!("  http://{a}.com/{p}.php{query}  "),
            ];
            for s in &spellings {
                let (k, v) = canonicalize(s).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(k, IndicatorKind::Url);
                prop_assert_eq!(&v, &want, "from {}", s);
            }
        }

        #[test]
        fn ip_and_cidr_spellings_agree(o in any::<[u8; 4]>(), len in 8u8..32, host in any::<u32>()) {
            let ip = std::net::Ipv4Addr::from(o);
            let want_ip = ip.to_string();
            for s in [
                want_ip.clone(),
                format!("::ffff:{ip}"),
                format!("::FFFF:{ip}"),
                format!("[::ffff:{ip}]"),
                want_ip.replace('.', "[.]"),
                format!(" {ip} "),
                format!("{ip}/32"),
                format!("::ffff:{ip}/128"),
                format!("[:][:]ffff[:]{}", want_ip.replace('.', "(.)")),
                format!("[{ip}]"),
            ] {
                let got = canonicalize(&s).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(&got, &(IndicatorKind::Ipv4, want_ip.clone()), "from {}", s);
            }
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            let net = std::net::Ipv4Addr::from(u32::from(ip) & mask);
            let want_net = format!("{net}/{len}");
            let noisy = std::net::Ipv4Addr::from((u32::from(ip) & mask) | (host & !mask));
            for s in [
                want_net.clone(),
                format!("{noisy}/{len}"),
                format!("{ip}/{len}"),
                format!("::ffff:{noisy}/{}", u32::from(len) + 96),
                format!("{}/{len}", noisy.to_string().replace('.', "[.]")),
            ] {
                let got = canonicalize(&s).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(&got, &(IndicatorKind::Cidr, want_net.clone()), "from {}", s);
            }
        }

        #[test]
        fn canonicalize_is_idempotent(s in "[ -~]{0,40}") {
            if let Ok((k, v)) = canonicalize(&s) {
                let again = canonicalize(&v).map_err(|e| TestCaseError::fail(format!("{s:?} -> {v:?}: {e}")))?;
                prop_assert_eq!(&again, &(k, v.clone()));
                let as_kind = canonicalize_as(k, &v).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(as_kind, (k, v));
            }
        }

        #[test]
        fn idempotent_on_indicator_like_text(
            prefix in proptest::sample::select(vec!["", "http://", "HXXPS://", "ftp://", "::ffff:", "["]),
            body in "[a-fA-F0-9.:/\\[\\]()#?%@_x-]{1,40}",
        ) {
            let s = format!("{prefix}{body}");
            if let Ok((k, v)) = canonicalize(&s) {
                let again = canonicalize(&v).map_err(|e| TestCaseError::fail(format!("{s:?} -> {v:?}: {e}")))?;
                prop_assert_eq!(&again, &(k, v.clone()), "from {:?}", s);
                prop_assert_eq!(indicator_id(again.0, &again.1), indicator_id(k, &v));
            }
        }

        #[test]
        fn idempotent_on_urls(host in label(), path in "[a-zA-Z0-9/._~%?=&-]{0,20}", port in any::<u16>()) {
            let s = format!("HTTPS://{host}.Net:{port}/{path}");
            let (k, v) = canonicalize(&s).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(canonicalize(&v), Ok((k, v.clone())));
        }
    }
}
