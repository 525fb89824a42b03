//! The in-memory indicator index: is this IP, network, domain, URL or hash known-bad, and which
//! threat is it?
//!
//! Exact values sit in one hash map keyed by canonical text (kinds cannot collide: an IP, a
//! CIDR, a domain, a URL and a hash never share a canonical spelling); networks sit in a
//! longest-prefix trie. A lookup canonicalises its input ([`crate::indicator`]), then:
//! an IP also matches every listed network containing it; a domain also matches its listed
//! parent domains; a URL also matches its host. The index is built off the hot path and
//! swapped in whole by its owner.
//!
//! [`IndicatorIndex::bundled`] loads the C2 lists shipped in `data/kb/maltrail/` (17 families),
//! linking each indicator to the knowledge base's threat of the same family.

use crate::import::{Format, parse_reader};
use crate::indicator::{IndicatorError, IndicatorKind, canonicalize};
use crate::threat::KnowledgeBase;
use crate::tlp::Tlp;
use ipnet::IpNet;
use prefix_trie::joint::map::JointPrefixMap;
use serde::Serialize;
use std::collections::HashMap;
use std::net::IpAddr;

/// One known indicator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndicatorEntry {
    /// Deterministic id ([`crate::indicator::indicator_id`]).
    pub id: String,
    /// Kind.
    pub kind: IndicatorKind,
    /// Canonical value.
    pub value: String,
    /// The threat it belongs to, when known to the knowledge base.
    pub threat_id: Option<String>,
    /// The family name as the source gave it.
    pub family: Option<String>,
    /// The port the source listed with it.
    pub port: Option<u16>,
    /// Confidence 0–100 that it is malicious.
    pub confidence: u8,
    /// Sharing label.
    pub tlp: Tlp,
    /// Where it comes from (e.g. `maltrail`).
    pub source: String,
}

/// How a lookup matched an indicator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MatchKind {
    /// The value itself is listed.
    Exact,
    /// A listed network contains the address.
    Network,
    /// A listed parent domain.
    ParentDomain,
    /// The URL's host is listed.
    UrlHost,
}

/// One lookup result.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Hit<'a> {
    /// The indicator.
    pub indicator: &'a IndicatorEntry,
    /// How it matched.
    pub matched: MatchKind,
}

/// The index.
#[derive(Debug, Default)]
pub struct IndicatorIndex {
    entries: Vec<IndicatorEntry>,
    by_id: HashMap<String, u32>,
    exact: HashMap<String, Vec<u32>>,
    networks: JointPrefixMap<IpNet, Vec<u32>>,
}

/// What loading one bundled list did.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// The list.
    pub list: String,
    /// Indicators added.
    pub indicators: usize,
    /// Lines skipped.
    pub skipped: usize,
    /// The threat the list was linked to.
    pub threat_id: Option<String>,
}

macro_rules! bundled_lists {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/kb/maltrail/", $name, ".txt.gz")) as &[u8])),*]
    };
}

/// The maltrail family lists compiled into the binary: (family, gzip bytes).
const BUNDLED: &[(&str, &[u8])] = bundled_lists!(
    "agenttesla",
    "amadey",
    "asyncrat",
    "cobaltstrike",
    "dridex",
    "elf_gafgyt",
    "elf_mirai",
    "emotet",
    "formbook",
    "icedid",
    "lokibot",
    "njrat",
    "qakbot",
    "redline",
    "remcos",
    "trickbot",
    "ursnif",
);

impl IndicatorIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of indicators.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds an indicator; returns false (and keeps the first) when its id is already present.
    pub fn insert(&mut self, e: IndicatorEntry) -> bool {
        if self.by_id.contains_key(&e.id) {
            return false;
        }
        let i = self.entries.len() as u32;
        self.by_id.insert(e.id.clone(), i);
        if e.kind == IndicatorKind::Cidr {
            if let Ok(net) = e.value.parse::<IpNet>() {
                match self.networks.get_mut(&net) {
                    Some(v) => v.push(i),
                    None => {
                        self.networks.insert(net, vec![i]);
                    }
                }
            }
        } else {
            self.exact.entry(e.value.clone()).or_default().push(i);
        }
        self.entries.push(e);
        true
    }

    /// The bundled C2 lists, linked to `kb`'s threats.
    pub fn bundled(kb: &KnowledgeBase) -> (IndicatorIndex, Vec<LoadReport>) {
        let mut index = IndicatorIndex::new();
        let mut reports = Vec::new();
        for (family, gz) in BUNDLED {
            let threat_id = kb.get(family).map(|t| t.id.clone());
            let reader = flate2::read::GzDecoder::new(*gz);
            let (indicators, skipped) =
                match parse_reader(Some(Format::Maltrail), reader, Some(family)) {
                    Ok(r) => (r.indicators, r.skipped_count),
                    Err(_) => (Vec::new(), 0),
                };
            let mut added = 0;
            for ind in indicators {
                let e = IndicatorEntry {
                    id: ind.id,
                    kind: ind.kind,
                    value: ind.value,
                    threat_id: threat_id.clone(),
                    family: Some((*family).to_string()),
                    port: ind.port,
                    confidence: 80,
                    tlp: Tlp::Clear,
                    source: "maltrail".to_string(),
                };
                if index.insert(e) {
                    added += 1;
                }
            }
            reports.push(LoadReport {
                list: (*family).to_string(),
                indicators: added,
                skipped,
                threat_id,
            });
        }
        (index, reports)
    }

    fn push_exact<'a>(&'a self, key: &str, matched: MatchKind, out: &mut Vec<Hit<'a>>) {
        if let Some(ids) = self.exact.get(key) {
            for &i in ids {
                if let Some(e) = self.entries.get(i as usize) {
                    out.push(Hit {
                        indicator: e,
                        matched,
                    });
                }
            }
        }
    }

    fn push_networks<'a>(&'a self, net: &IpNet, out: &mut Vec<Hit<'a>>) {
        for ids in self.networks.cover_values(net) {
            for &i in ids {
                if let Some(e) = self.entries.get(i as usize) {
                    out.push(Hit {
                        indicator: e,
                        matched: MatchKind::Network,
                    });
                }
            }
        }
    }

    fn push_domain<'a>(&'a self, domain: &str, out: &mut Vec<Hit<'a>>) {
        self.push_exact(domain, MatchKind::Exact, out);
        let mut rest = domain;
        while let Some((_, parent)) = rest.split_once('.') {
            if !parent.contains('.') {
                break;
            }
            self.push_exact(parent, MatchKind::ParentDomain, out);
            rest = parent;
        }
    }

    /// Every indicator matching `raw` (any kind, auto-detected): its canonical kind and value,
    /// and the hits, most specific first.
    pub fn lookup(
        &self,
        raw: &str,
    ) -> Result<(IndicatorKind, String, Vec<Hit<'_>>), IndicatorError> {
        let (kind, value) = canonicalize(raw)?;
        let mut out = Vec::new();
        match kind {
            IndicatorKind::Ipv4 | IndicatorKind::Ipv6 => {
                self.push_exact(&value, MatchKind::Exact, &mut out);
                if let Ok(ip) = value.parse::<IpAddr>() {
                    self.push_networks(&IpNet::from(ip), &mut out);
                }
            }
            IndicatorKind::Cidr => {
                if let Ok(net) = value.parse::<IpNet>() {
                    self.push_networks(&net, &mut out);
                }
            }
            IndicatorKind::Domain => self.push_domain(&value, &mut out),
            IndicatorKind::Url => {
                self.push_exact(&value, MatchKind::Exact, &mut out);
                if let Some(host) = url_host(&value) {
                    let before = out.len();
                    if let Ok((hk, hv)) = canonicalize(host) {
                        match hk {
                            IndicatorKind::Domain => self.push_domain(&hv, &mut out),
                            IndicatorKind::Ipv4 | IndicatorKind::Ipv6 => {
                                self.push_exact(&hv, MatchKind::Exact, &mut out);
                                if let Ok(ip) = hv.parse::<IpAddr>() {
                                    self.push_networks(&IpNet::from(ip), &mut out);
                                }
                            }
                            _ => {}
                        }
                    }
                    for h in &mut out[before..] {
                        h.matched = MatchKind::UrlHost;
                    }
                }
            }
            IndicatorKind::Md5 | IndicatorKind::Sha1 | IndicatorKind::Sha256 => {
                self.push_exact(&value, MatchKind::Exact, &mut out);
            }
        }
        Ok((kind, value, out))
    }

    /// The threat a check-in talks to, from its C2 host name (exact or parent domain), its URL,
    /// or its destination address: `(threat id, what matched)`.
    pub fn classify(
        &self,
        host: Option<&str>,
        url: Option<&str>,
        dst_ip: Option<IpAddr>,
    ) -> Option<(String, String)> {
        let first = |what: &str, value: &str, hits: Vec<Hit<'_>>| {
            hits.into_iter()
                .find_map(|h| h.indicator.threat_id.clone())
                .map(|t| (t, format!("{what}:{value}")))
        };
        if let Some(h) = host
            && let Ok((_, v, hits)) = self.lookup(h)
            && let Some(found) = first("host", &v, hits)
        {
            return Some(found);
        }
        if let Some(u) = url
            && let Ok((IndicatorKind::Url, v, hits)) = self.lookup(u)
            && let Some(found) = first("url", &v, hits)
        {
            return Some(found);
        }
        if let Some(ip) = dst_ip
            && let Ok((_, v, hits)) = self.lookup(&ip.to_string())
            && let Some(found) = first("dst_ip", &v, hits)
        {
            return Some(found);
        }
        None
    }
}

/// The host part of a canonical URL.
fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split_once(']').map(|(h, _)| h);
    }
    Some(authority.rsplit_once(':').map_or(authority, |(h, _)| h))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indicator::indicator_id;

    fn entry(kind: IndicatorKind, value: &str, threat: &str) -> IndicatorEntry {
        IndicatorEntry {
            id: indicator_id(kind, value),
            kind,
            value: value.to_string(),
            threat_id: Some(threat.to_string()),
            family: None,
            port: None,
            confidence: 80,
            tlp: Tlp::Clear,
            source: "test".into(),
        }
    }

    #[test]
    fn ips_networks_parents_and_url_hosts_match() {
        let mut ix = IndicatorIndex::new();
        assert!(ix.insert(entry(IndicatorKind::Ipv4, "192.0.2.7", "emotet")));
        assert!(
            !ix.insert(entry(IndicatorKind::Ipv4, "192.0.2.7", "emotet")),
            "dedup by id"
        );
        ix.insert(entry(IndicatorKind::Cidr, "198.51.100.0/24", "qakbot"));
        ix.insert(entry(IndicatorKind::Domain, "evil.example", "trickbot"));
        ix.insert(entry(
            IndicatorKind::Url,
            "http://shop.example/gate.php",
            "icedid",
        ));
        let kinds = |v: &str| -> Vec<(String, MatchKind)> {
            ix.lookup(v)
                .expect("valid")
                .2
                .iter()
                .map(|h| (h.indicator.threat_id.clone().unwrap_or_default(), h.matched))
                .collect()
        };
        assert_eq!(
            kinds("192.0.2.7"),
            vec![("emotet".into(), MatchKind::Exact)]
        );
        assert_eq!(
            kinds("::ffff:192.0.2.7"),
            vec![("emotet".into(), MatchKind::Exact)]
        );
        assert_eq!(
            kinds("198.51.100.9"),
            vec![("qakbot".into(), MatchKind::Network)]
        );
        assert_eq!(
            kinds("a.b.EVIL.example."),
            vec![("trickbot".into(), MatchKind::ParentDomain)]
        );
        assert_eq!(
            kinds("hxxp://evil[.]example/x"),
            vec![("trickbot".into(), MatchKind::UrlHost)]
        );
        assert_eq!(
            kinds("HTTP://shop.example:80/gate.php"),
            vec![("icedid".into(), MatchKind::Exact)]
        );
        assert!(kinds("203.0.113.1").is_empty());
        assert!(
            ix.lookup("example").is_err(),
            "a single label is not a domain"
        );
        assert_eq!(
            ix.classify(Some("x.evil.example"), None, None),
            Some(("trickbot".into(), "host:x.evil.example".into()))
        );
        assert_eq!(
            ix.classify(None, None, "198.51.100.200".parse().ok()),
            Some(("qakbot".into(), "dst_ip:198.51.100.200".into()))
        );
        assert_eq!(
            ix.classify(Some("benign.example"), None, "203.0.113.1".parse().ok()),
            None
        );
    }

    #[test]
    fn the_bundled_lists_load_and_link_to_threats() {
        let kb = KnowledgeBase::bundled().expect("kb");
        let (ix, reports) = IndicatorIndex::bundled(&kb);
        assert_eq!(reports.len(), 17);
        assert!(ix.len() > 100_000, "{} indicators", ix.len());
        for r in &reports {
            assert!(r.indicators > 100, "{r:?}");
            assert!(
                r.threat_id.is_some(),
                "every bundled list has a documented threat: {r:?}"
            );
        }
        // A real line of the emotet list resolves to Emotet.
        let text = {
            use std::io::Read;
            let gz = BUNDLED
                .iter()
                .find(|(f, _)| *f == "emotet")
                .expect("emotet")
                .1;
            let mut s = String::new();
            flate2::read::GzDecoder::new(gz)
                .read_to_string(&mut s)
                .expect("gunzip");
            s
        };
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#') && !l.contains('/') && !l.contains(':'))
            .expect("a plain line");
        let (_, _, hits) = ix.lookup(line).expect("lookup");
        assert!(
            hits.iter()
                .any(|h| h.indicator.threat_id.as_deref() == Some("emotet")),
            "{line}"
        );
    }
}
