//! The sinkhole's configuration: one TOML file (`sinkhole.example.toml` documents every key).
//!
//! Unknown keys are refused, every key has a default, and [`SinkholeConfig::validate`] checks
//! the values, naming the key and the value in its errors. The listener sections (`[http]`,
//! `[[tcp]]`, `[dns]`) are optional, but at least one listener must be configured.

use anyhow::{Context, bail};
use ipnet::IpNet;
use serde::Deserialize;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;
use threatfeed_core::Tlp;
use threatfeed_core::canon::canonical_host;

/// The largest `body_head_bytes` / `first_bytes`: the hex of it must fit in an event's
/// `details` (≤ 4 KiB).
pub const MAX_HEAD_BYTES: usize = 1024;

/// The environment variable holding the sensor token when `token` is empty.
pub const TOKEN_ENV: &str = "THREATFEED_TOKEN";

/// The whole sinkhole configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SinkholeConfig {
    /// The sensor name put on every event.
    pub sensor: String,
    /// The feed server's base URL.
    pub server: String,
    /// The sensor token; when empty, the environment variable `THREATFEED_TOKEN`.
    pub token: String,
    /// The on-disk spool's directory.
    pub spool_dir: PathBuf,
    /// The spool's size bound.
    pub spool_max_bytes: u64,
    /// The largest batch written to the spool (and forwarded) at once.
    pub batch_max: usize,
    /// How long captured events may wait before the spool writer commits them.
    pub flush_ms: u64,
    /// Where `/metrics` and `/healthz` are served; none when absent.
    pub metrics_listen: Option<SocketAddr>,
    /// Peers whose `X-Forwarded-For`, PROXY v1 header or EDNS Client Subnet is honoured
    /// (CIDRs or single addresses).
    pub trusted_proxies: Vec<String>,
    /// Check-ins per second recorded per source address (burst: twice as many); 0 = no limit.
    pub rate_per_source: u32,
    /// Clients sending slower than this are cut off (HTTP headers and body, TCP first bytes,
    /// DNS over TCP).
    pub read_timeout_ms: u64,
    /// Concurrent connections over all TCP-based listeners.
    pub max_connections: usize,
    /// TLP label of the events.
    pub tlp: Tlp,
    /// The HTTP listener(s).
    pub http: Option<HttpConfig>,
    /// Raw TCP listeners.
    pub tcp: Vec<TcpConfig>,
    /// The DNS listener(s).
    pub dns: Option<DnsConfig>,
    /// Seized domains and their families (classification at the sensor).
    pub seized: Vec<SeizedDomain>,
}

impl Default for SinkholeConfig {
    fn default() -> Self {
        SinkholeConfig {
            sensor: "sinkhole-1".into(),
            server: "http://127.0.0.1:8080".into(),
            token: String::new(),
            spool_dir: PathBuf::from("./sinkhole-spool"),
            spool_max_bytes: 1 << 30,
            batch_max: 5000,
            flush_ms: 2,
            metrics_listen: None,
            trusted_proxies: vec!["127.0.0.1/32".into(), "::1/128".into()],
            rate_per_source: 50,
            read_timeout_ms: 5000,
            max_connections: 20_000,
            tlp: Tlp::Amber,
            http: None,
            tcp: Vec::new(),
            dns: None,
            seized: Vec::new(),
        }
    }
}

/// `[http]`: the catch-all HTTP listener.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Addresses to listen on (any number, IPv4 and IPv6).
    pub listen: Vec<SocketAddr>,
    /// The status of every answer.
    pub response_status: u16,
    /// The body of every answer.
    pub response_body: String,
    /// Its content type.
    pub response_content_type: String,
    /// Request headers recorded in `details.headers` (case-insensitive names).
    pub record_headers: Vec<String>,
    /// How many bytes of the request body are recorded (hex, `details.body_head`).
    pub body_head_bytes: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 8081))],
            response_status: 200,
            response_body: "OK".into(),
            response_content_type: "text/plain".into(),
            record_headers: vec![
                "accept".into(),
                "content-type".into(),
                "referer".into(),
                "cookie".into(),
            ],
            body_head_bytes: 256,
        }
    }
}

/// `[[tcp]]`: a raw TCP listener recording the first bytes a client sends.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TcpConfig {
    /// Addresses to listen on.
    pub listen: Vec<SocketAddr>,
    /// The `proto` of its events (lower case).
    pub proto: String,
    /// How many bytes are read and recorded.
    pub first_bytes: usize,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            listen: Vec::new(),
            proto: "tcp".into(),
            first_bytes: 256,
        }
    }
}

/// `[dns]`: the authoritative DNS listener (UDP and TCP on each address).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsConfig {
    /// Addresses to listen on, UDP and TCP each.
    pub listen: Vec<SocketAddr>,
    /// Zones answered authoritatively (the names and everything below them).
    pub zones: Vec<String>,
    /// A records of every name in the zones.
    pub answer_v4: Vec<Ipv4Addr>,
    /// AAAA records of every name in the zones.
    pub answer_v6: Vec<Ipv6Addr>,
    /// TTL of the answers.
    pub ttl: u32,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            listen: vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 5353))],
            zones: Vec::new(),
            answer_v4: vec![Ipv4Addr::LOCALHOST],
            answer_v6: vec![Ipv6Addr::LOCALHOST],
            ttl: 300,
        }
    }
}

/// `[[seized]]`: a seized domain (and its sub-domains) and the family behind it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeizedDomain {
    /// The domain.
    pub domain: String,
    /// The malware family.
    pub family: String,
}

fn valid_name_chars(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// Parses one `trusted_proxies` entry: a CIDR or a single address.
pub fn parse_trusted(s: &str) -> Option<IpNet> {
    let t = s.trim();
    if let Ok(net) = t.parse::<IpNet>() {
        return Some(net.trunc());
    }
    t.parse::<IpAddr>().ok().map(IpNet::from)
}

impl SinkholeConfig {
    /// Parses a TOML text and validates it.
    pub fn from_toml(text: &str) -> anyhow::Result<SinkholeConfig> {
        let cfg: SinkholeConfig =
            toml::from_str(text).map_err(|e| anyhow::anyhow!("sinkhole configuration: {e}"))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads, parses and validates a file.
    pub fn from_file(path: &Path) -> anyhow::Result<SinkholeConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading sinkhole configuration {}", path.display()))?;
        SinkholeConfig::from_toml(&text).with_context(|| format!("in {}", path.display()))
    }

    /// The read timeout.
    pub fn read_timeout(&self) -> Duration {
        Duration::from_millis(self.read_timeout_ms)
    }

    /// The spool writer's flush interval.
    pub fn flush(&self) -> Duration {
        Duration::from_millis(self.flush_ms)
    }

    /// The token: `token`, else the environment variable `THREATFEED_TOKEN`, else empty.
    pub fn effective_token(&self) -> String {
        if !self.token.is_empty() {
            return self.token.clone();
        }
        std::env::var(TOKEN_ENV).unwrap_or_default()
    }

    /// The trusted proxies, parsed (entries that do not parse are skipped; `validate` refuses
    /// them).
    pub fn trusted_nets(&self) -> Vec<IpNet> {
        self.trusted_proxies
            .iter()
            .filter_map(|s| parse_trusted(s))
            .collect()
    }

    /// Checks every value; the error names the key and the value.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !valid_name_chars(&self.sensor, 128) {
            bail!(
                "sensor = {:?}: must be 1-128 characters of A-Z a-z 0-9 - _ . :",
                self.sensor
            );
        }
        if !(self.server.starts_with("http://") || self.server.starts_with("https://"))
            || self.server.len() <= "http://".len()
        {
            bail!(
                "server = {:?}: must be an http:// or https:// URL",
                self.server
            );
        }
        if self.spool_dir.as_os_str().is_empty() {
            bail!("spool_dir = \"\": must name a directory");
        }
        if self.spool_max_bytes < 1 << 20 {
            bail!(
                "spool_max_bytes = {}: must be at least 1048576 (1 MiB)",
                self.spool_max_bytes
            );
        }
        if self.batch_max == 0 || self.batch_max > 100_000 {
            bail!("batch_max = {}: must be 1..=100000", self.batch_max);
        }
        if self.flush_ms == 0 || self.flush_ms > 60_000 {
            bail!("flush_ms = {}: must be 1..=60000", self.flush_ms);
        }
        for p in &self.trusted_proxies {
            if parse_trusted(p).is_none() {
                bail!("trusted_proxies: {p:?} is neither a CIDR nor an IP address");
            }
        }
        if self.read_timeout_ms == 0 || self.read_timeout_ms > 600_000 {
            bail!(
                "read_timeout_ms = {}: must be 1..=600000",
                self.read_timeout_ms
            );
        }
        if self.max_connections == 0 || self.max_connections > 1_000_000 {
            bail!(
                "max_connections = {}: must be 1..=1000000",
                self.max_connections
            );
        }
        let mut listeners = 0usize;
        if let Some(h) = &self.http {
            listeners += h.listen.len();
            if !(100..=599).contains(&h.response_status)
                || hyper::StatusCode::from_u16(h.response_status).is_err()
            {
                bail!(
                    "http.response_status = {}: must be an HTTP status 100..=599",
                    h.response_status
                );
            }
            if hyper::header::HeaderValue::from_str(&h.response_content_type).is_err() {
                bail!(
                    "http.response_content_type = {:?}: not a valid header value",
                    h.response_content_type
                );
            }
            for name in &h.record_headers {
                if hyper::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    bail!("http.record_headers: {name:?} is not a valid header name");
                }
            }
            if h.record_headers.len() > 32 {
                bail!(
                    "http.record_headers: {} names, at most 32",
                    h.record_headers.len()
                );
            }
            if h.body_head_bytes > MAX_HEAD_BYTES {
                bail!(
                    "http.body_head_bytes = {}: at most {MAX_HEAD_BYTES}",
                    h.body_head_bytes
                );
            }
        }
        for (i, t) in self.tcp.iter().enumerate() {
            listeners += t.listen.len();
            if t.listen.is_empty() {
                bail!("tcp[{i}].listen is empty");
            }
            let ok = !t.proto.is_empty()
                && t.proto.len() <= 32
                && t.proto
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
            if !ok {
                bail!(
                    "tcp[{i}].proto = {:?}: must be 1-32 characters of a-z 0-9 - _ .",
                    t.proto
                );
            }
            if t.first_bytes == 0 || t.first_bytes > MAX_HEAD_BYTES {
                bail!(
                    "tcp[{i}].first_bytes = {}: must be 1..={MAX_HEAD_BYTES}",
                    t.first_bytes
                );
            }
        }
        if let Some(d) = &self.dns {
            listeners += d.listen.len();
            if d.zones.is_empty() && !d.listen.is_empty() {
                bail!("dns.zones is empty: the DNS listener would refuse every query");
            }
            for z in &d.zones {
                match canonical_host(z) {
                    Ok(c) if c.parse::<IpAddr>().is_err() => {}
                    _ => bail!("dns.zones: {z:?} is not a domain name"),
                }
            }
            if d.answer_v4.is_empty() && d.answer_v6.is_empty() {
                bail!("dns.answer_v4 and dns.answer_v6 are both empty");
            }
            if d.answer_v4.len() + d.answer_v6.len() > 16 {
                bail!("dns: at most 16 answer addresses");
            }
        }
        if listeners == 0 {
            bail!("no listener: configure [http] listen, [[tcp]] listen or [dns] listen");
        }
        for (i, s) in self.seized.iter().enumerate() {
            match canonical_host(&s.domain) {
                Ok(c) if c.parse::<IpAddr>().is_err() => {}
                _ => bail!("seized[{i}].domain = {:?}: not a domain name", s.domain),
            }
            if !valid_name_chars(&s.family, 64) {
                bail!(
                    "seized[{i}].family = {:?}: must be 1-64 characters of A-Z a-z 0-9 - _ . :",
                    s.family
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_file_parses_and_validates() {
        let text = include_str!("../../../sinkhole.example.toml");
        let cfg = SinkholeConfig::from_toml(text).expect("example parses");
        assert_eq!(cfg.sensor, "sinkhole-1");
        assert_eq!(cfg.http.as_ref().map(|h| h.response_status), Some(200));
        assert_eq!(cfg.tcp.len(), 1);
        assert_eq!(cfg.dns.as_ref().map(|d| d.ttl), Some(300));
        assert_eq!(cfg.seized.len(), 1);
        assert_eq!(cfg.trusted_nets().len(), 2);
        assert!(cfg.metrics_listen.is_some());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused_naming_the_key() {
        let e = SinkholeConfig::from_toml("sensr = \"x\"\n[http]\n").expect_err("unknown key");
        assert!(e.to_string().contains("sensr"), "{e}");
        let e = SinkholeConfig::from_toml("rate_per_source = 5\nread_timeout_ms = 0\n[http]\n")
            .expect_err("zero timeout");
        assert!(e.to_string().contains("read_timeout_ms = 0"), "{e}");
        let e = SinkholeConfig::from_toml("trusted_proxies = [\"10.0.0.0/33\"]\n[http]\n")
            .expect_err("bad cidr");
        assert!(e.to_string().contains("10.0.0.0/33"), "{e}");
        let e = SinkholeConfig::from_toml("").expect_err("no listener");
        assert!(e.to_string().contains("no listener"), "{e}");
        let e = SinkholeConfig::from_toml("[[tcp]]\nlisten = [\"127.0.0.1:0\"]\nproto = \"A B\"\n")
            .expect_err("bad proto");
        assert!(e.to_string().contains("tcp[0].proto"), "{e}");
    }

    #[test]
    fn defaults_fill_missing_keys() {
        let cfg = SinkholeConfig::from_toml("[http]\n").expect("minimal");
        assert_eq!(cfg.batch_max, 5000);
        assert_eq!(cfg.tlp, Tlp::Amber);
        let h = cfg.http.expect("http");
        assert_eq!(h.response_body, "OK");
        assert_eq!(
            h.listen,
            vec!["127.0.0.1:8081".parse::<SocketAddr>().expect("addr")]
        );
        assert!(parse_trusted("192.0.2.1").is_some());
    }
}
