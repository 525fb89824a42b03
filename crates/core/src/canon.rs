//! Canonical forms of the observables carried by events: host names and IP addresses.
//!
//! Host names are lower-cased, IDNA-encoded (UTS #46, to ASCII), stripped of a trailing dot and of
//! a `:port` suffix (as found in HTTP `Host` headers); IP literals become their canonical text; an
//! IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is folded to IPv4 everywhere. Free text kept
//! from sensors is cut to a byte budget on a character boundary ([`truncate`]).

use std::net::IpAddr;

/// Why a host name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid host name {0:?}")]
pub struct HostError(pub String);

/// Folds an IPv4-mapped IPv6 address to IPv4; other addresses are returned unchanged.
pub fn fold_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// Parses an IP address (v4 or v6, optionally in `[...]`), folding IPv4-mapped IPv6.
pub fn parse_ip(s: &str) -> Option<IpAddr> {
    let t = s.trim();
    let t = t
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(t);
    t.parse::<IpAddr>().ok().map(fold_ip)
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Canonicalises a host name (or IP literal) as described in the module header.
pub fn canonical_host(raw: &str) -> Result<String, HostError> {
    let t = raw.trim();
    if t.is_empty() {
        return Err(HostError(raw.to_string()));
    }
    if let Some(ip) = parse_ip(t) {
        return Ok(ip.to_string());
    }
    // "[v6]:port" or "name:port"
    let without_port = if let Some(rest) = t.strip_prefix('[') {
        match rest.split_once(']') {
            Some((inner, _)) => {
                return parse_ip(inner)
                    .map(|ip| ip.to_string())
                    .ok_or_else(|| HostError(raw.to_string()));
            }
            None => return Err(HostError(raw.to_string())),
        }
    } else {
        match t.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') && p.parse::<u16>().is_ok() => h,
            Some(_) => return Err(HostError(raw.to_string())),
            None => t,
        }
    };
    if let Some(ip) = parse_ip(without_port) {
        return Ok(ip.to_string());
    }
    let name = without_port.strip_suffix('.').unwrap_or(without_port);
    // Fast path: already lower-case ASCII letters, digits, '-', '_' and '.' need no IDNA mapping
    // (labels starting with "xn--" still go through IDNA to be validated).
    let plain = name.bytes().all(|b| {
        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.' || b == b'_'
    }) && !name.contains("xn--");
    let ascii = if plain {
        name.to_string()
    } else {
        idna::domain_to_ascii(name).map_err(|_| HostError(raw.to_string()))?
    };
    if ascii.is_empty() || ascii.len() > 253 {
        return Err(HostError(raw.to_string()));
    }
    for label in ascii.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(HostError(raw.to_string()));
        }
    }
    Ok(ascii)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_in_many_spellings_are_one() {
        for s in [
            "Example.COM",
            "example.com.",
            " example.com ",
            "example.com:8080",
            "EXAMPLE.com.:80",
        ] {
            assert_eq!(canonical_host(s).as_deref(), Ok("example.com"), "{s}");
        }
        assert_eq!(
            canonical_host("bücher.de").as_deref(),
            Ok("xn--bcher-kva.de")
        );
        assert_eq!(
            canonical_host("[2001:DB8::1]:443").as_deref(),
            Ok("2001:db8::1")
        );
        assert_eq!(
            canonical_host("::ffff:192.0.2.1").as_deref(),
            Ok("192.0.2.1")
        );
        assert!(canonical_host("").is_err());
        assert!(canonical_host("bad host!").is_err());
        assert!(canonical_host("a..b").is_err());
    }

    #[test]
    fn ipv4_mapped_folds() {
        assert_eq!(parse_ip("::ffff:10.1.2.3"), "10.1.2.3".parse().ok());
        assert_eq!(parse_ip("[2001:db8::1]"), "2001:db8::1".parse().ok());
        assert_eq!(parse_ip("300.1.1.1"), None);
    }
}
