//! What a trusted proxy may tell about the real client: the last address of
//! `X-Forwarded-For` (HTTP) and the PROXY protocol v1 header (raw TCP).

use std::net::{IpAddr, SocketAddr};
use threatfeed_core::canon::parse_ip;

/// The longest PROXY v1 header, CRLF included (the specification's bound).
pub const PROXY_V1_MAX: usize = 107;

/// The last address of the `X-Forwarded-For` values (the one the trusted proxy added), given
/// every header line in order. None when absent or not an address.
pub fn last_forwarded_for<'a>(values: impl Iterator<Item = &'a [u8]>) -> Option<IpAddr> {
    let last_line = values.last()?;
    let text = std::str::from_utf8(last_line).ok()?;
    let last = text.rsplit(',').next()?.trim();
    // Tolerate "addr:port" and "[v6]:port" forms some proxies write.
    parse_ip(last).or_else(|| last.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

/// A parsed PROXY v1 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyV1 {
    /// `PROXY TCP4|TCP6 src dst sport dport`: the client.
    Tcp { src: SocketAddr, dst: SocketAddr },
    /// `PROXY UNKNOWN ...`: the proxy does not know; keep the peer.
    Unknown,
}

/// The outcome of looking for a PROXY v1 header at the start of `buf`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyScan {
    /// `buf` does not start with one: plain data.
    Absent,
    /// It may start one: more bytes are needed.
    Incomplete,
    /// A header of `len` bytes (CRLF included).
    Header(ProxyV1, usize),
    /// It starts like one but is not a valid header.
    Invalid,
}

/// Looks for a PROXY v1 header at the start of `buf`.
pub fn scan_proxy_v1(buf: &[u8]) -> ProxyScan {
    const SIG: &[u8] = b"PROXY ";
    let n = buf.len().min(SIG.len());
    if buf[..n] != SIG[..n] {
        return ProxyScan::Absent;
    }
    let window = &buf[..buf.len().min(PROXY_V1_MAX)];
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() >= PROXY_V1_MAX {
            ProxyScan::Invalid
        } else {
            ProxyScan::Incomplete
        };
    };
    match parse_line(&buf[..end]) {
        Some(h) => ProxyScan::Header(h, end + 2),
        None => ProxyScan::Invalid,
    }
}

fn parse_line(line: &[u8]) -> Option<ProxyV1> {
    let text = std::str::from_utf8(line).ok()?;
    let mut parts = text.split(' ');
    if parts.next()? != "PROXY" {
        return None;
    }
    let fam = parts.next()?;
    if fam == "UNKNOWN" {
        return Some(ProxyV1::Unknown);
    }
    let src: IpAddr = parts.next()?.parse().ok()?;
    let dst: IpAddr = parts.next()?.parse().ok()?;
    let sport: u16 = parts.next()?.parse().ok()?;
    let dport: u16 = parts.next()?.parse().ok()?;
    if parts.next().is_some() {
        return None;
    }
    let ok = match fam {
        "TCP4" => src.is_ipv4() && dst.is_ipv4(),
        "TCP6" => src.is_ipv6() && dst.is_ipv6(),
        _ => false,
    };
    ok.then_some(ProxyV1::Tcp {
        src: SocketAddr::new(src, sport),
        dst: SocketAddr::new(dst, dport),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_takes_the_last_address() {
        let v: Vec<&[u8]> = vec![b"10.0.0.1", b"198.51.100.1, 203.0.113.9"];
        assert_eq!(
            last_forwarded_for(v.into_iter()),
            Some("203.0.113.9".parse().expect("ip"))
        );
        let v: Vec<&[u8]> = vec![b"garbage"];
        assert_eq!(last_forwarded_for(v.into_iter()), None);
        let v: Vec<&[u8]> = vec![b"[2001:db8::1]:443"];
        assert_eq!(
            last_forwarded_for(v.into_iter()),
            Some("2001:db8::1".parse().expect("ip"))
        );
    }

    #[test]
    fn proxy_v1_headers() {
        let h = b"PROXY TCP4 203.0.113.7 192.0.2.1 40000 4444\r\nhello";
        match scan_proxy_v1(h) {
            ProxyScan::Header(ProxyV1::Tcp { src, dst }, len) => {
                assert_eq!(src, "203.0.113.7:40000".parse().expect("addr"));
                assert_eq!(dst.port(), 4444);
                assert_eq!(&h[len..], b"hello");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(scan_proxy_v1(b"PRO"), ProxyScan::Incomplete);
        assert_eq!(scan_proxy_v1(b"PROXY TCP4 1.2.3.4"), ProxyScan::Incomplete);
        assert_eq!(scan_proxy_v1(b"GET / HTTP/1.1\r\n"), ProxyScan::Absent);
        assert_eq!(scan_proxy_v1(b""), ProxyScan::Incomplete);
        assert_eq!(
            scan_proxy_v1(b"PROXY TCP4 2001:db8::1 192.0.2.1 1 2\r\n"),
            ProxyScan::Invalid
        );
        assert!(matches!(
            scan_proxy_v1(b"PROXY UNKNOWN\r\n"),
            ProxyScan::Header(ProxyV1::Unknown, 15)
        ));
        assert_eq!(scan_proxy_v1(&[b'P'; 200]), ProxyScan::Absent);
        let mut long = b"PROXY ".to_vec();
        long.extend_from_slice(&[b'1'; 150]);
        assert_eq!(scan_proxy_v1(&long), ProxyScan::Invalid);
    }
}
