//! Exports of the indicator feed in the formats the people who consume it load directly: a SOC's
//! TIP (STIX 2.1, MISP feed, JSON, CSV), a firewall or router (IP and CIDR lists), a resolver
//! (hosts file, BIND response-policy zone), a proxy (URL list), an IDS (Suricata rules).
//!
//! [`render`] turns records into the bytes of one [`Format`]; [`misp`] serves the other files of
//! a MISP feed (one event file per threat, `hashes.csv`).
//!
//! Submodules: [`bundle`] (STIX 2.1), [`table`] (JSON, CSV), [`lists`] (ip, cidr, domain, url,
//! hosts), [`rpz`] (BIND response-policy zone), [`suricata`] (Suricata 7 rules), [`misp`] (MISP
//! feed).
//!
//! Invariants (for every format):
//! - nothing here decides who may see what: callers pass records already filtered by
//!   [`crate::privacy`] for the recipient; no source or reporter is ever written;
//! - **full export** (`meta.since == None`): only active records are written, whatever is passed;
//! - **incremental export** (`meta.since == Some`, only where [`Format::supports_since`]: STIX,
//!   CSV, JSON): every record passed is written, the inactive ones as removals (their status; in
//!   STIX `revoked: true`), so a consumer's copy shrinks as well as grows;
//! - list formats (ip, cidr, domain, url, hosts, rpz, suricata) and the MISP feed never hold an
//!   inactive record: they are always complete snapshots of what is believed now;
//! - output is deterministic: the same records, knowledge base and [`Meta`] give the same bytes
//!   (records are ordered by kind, value and id; objects and ids are derived, never random);
//! - no input makes it panic: a value a format cannot hold safely (a domain a zone file cannot
//!   carry, a URL scheme Suricata cannot inspect) is left out of that format, never written
//!   half-escaped.

pub mod bundle;
pub mod lists;
pub mod misp;
pub mod rpz;
pub mod suricata;
pub mod table;

#[cfg(test)]
mod tests;

use crate::intel::IndicatorRecord;
use crate::threat::{KnowledgeBase, Threat};
use jiff::Timestamp;
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

/// An export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// A STIX 2.1 bundle: producer identity, TLP markings, threats, indicators.
    Stix,
    /// CSV, one row per record.
    Csv,
    /// JSON: the feed's metadata and one object per record.
    Json,
    /// IPv4 / IPv6 addresses, one per line.
    Ip,
    /// Addresses and networks aggregated to the fewest CIDR blocks, one per line.
    Cidr,
    /// Domain names, one per line.
    Domain,
    /// URLs, one per line.
    Url,
    /// A hosts file: `0.0.0.0 <domain>`.
    Hosts,
    /// A BIND response-policy zone (RPZ).
    Rpz,
    /// Suricata 7 rules.
    Suricata,
    /// A MISP feed (this format's [`render`] is the feed's `manifest.json`).
    Misp,
}

impl Format {
    /// Every format.
    pub const ALL: [Format; 11] = [
        Format::Stix,
        Format::Csv,
        Format::Json,
        Format::Ip,
        Format::Cidr,
        Format::Domain,
        Format::Url,
        Format::Hosts,
        Format::Rpz,
        Format::Suricata,
        Format::Misp,
    ];

    /// The lower-case name (as in `?format=` and URLs).
    pub fn name(self) -> &'static str {
        match self {
            Format::Stix => "stix",
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Ip => "ip",
            Format::Cidr => "cidr",
            Format::Domain => "domain",
            Format::Url => "url",
            Format::Hosts => "hosts",
            Format::Rpz => "rpz",
            Format::Suricata => "suricata",
            Format::Misp => "misp",
        }
    }

    /// The media type of the rendered bytes.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Stix => "application/stix+json;version=2.1",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Json | Format::Misp => "application/json",
            Format::Rpz => "text/dns; charset=utf-8",
            Format::Ip
            | Format::Cidr
            | Format::Domain
            | Format::Url
            | Format::Hosts
            | Format::Suricata => "text/plain; charset=utf-8",
        }
    }

    /// Whether the format can carry an incremental export (additions *and* removals since a
    /// change-log seq): STIX, CSV and JSON. The others are always complete snapshots.
    pub fn supports_since(self) -> bool {
        matches!(self, Format::Stix | Format::Csv | Format::Json)
    }

    /// The suggested file name of a download.
    pub fn file_name(self) -> &'static str {
        match self {
            Format::Stix => "threatfeed.stix.json",
            Format::Csv => "threatfeed.csv",
            Format::Json => "threatfeed.json",
            Format::Ip => "threatfeed-ip.txt",
            Format::Cidr => "threatfeed-cidr.txt",
            Format::Domain => "threatfeed-domain.txt",
            Format::Url => "threatfeed-url.txt",
            Format::Hosts => "threatfeed.hosts",
            Format::Rpz => "threatfeed.rpz",
            Format::Suricata => "threatfeed-suricata.rules",
            Format::Misp => "manifest.json",
        }
    }

    /// The names of every format, comma separated (for messages).
    pub fn names() -> String {
        Format::ALL.map(Format::name).join(", ")
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A format name that is not one of [`Format::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown export format {0:?} (expected one of: {names})", names = Format::names())]
pub struct UnknownFormat(pub String);

impl FromStr for Format {
    type Err = UnknownFormat;

    /// A format by name, ignoring case and surrounding white space.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        Format::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(t))
            .ok_or_else(|| UnknownFormat(s.to_string()))
    }
}

/// What an export says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// When it was generated.
    pub generated: Timestamp,
    /// The indicator change-log seq it is current to (the RPZ SOA serial, modulo 2³²).
    pub serial: u64,
    /// For an incremental export, the seq it starts after; `None` for a full export.
    pub since: Option<u64>,
}

/// Renders `records` as `format`.
///
/// `records` are already filtered for the recipient (privacy / TLP) and carry no sources.
/// Full export (`meta.since == None`): callers pass active records only (inactive ones are left
/// out regardless). Incremental (`meta.since == Some`): the records changed since then,
/// including inactive ones, which STIX, CSV and JSON write as removals; list formats always
/// write active records only. For [`Format::Misp`] this returns the feed's `manifest.json`
/// (see [`misp`] for the event files and `hashes.csv`).
pub fn render(
    format: Format,
    records: &[IndicatorRecord],
    kb: &KnowledgeBase,
    meta: &Meta,
) -> Vec<u8> {
    match format {
        Format::Stix => bundle::render(records, kb, meta),
        Format::Csv => table::csv(records, meta),
        Format::Json => table::json(records, meta),
        Format::Ip => lists::ip(records, meta),
        Format::Cidr => lists::cidr(records, meta),
        Format::Domain => lists::domain(records, meta),
        Format::Url => lists::url(records, meta),
        Format::Hosts => lists::hosts(records, meta),
        Format::Rpz => rpz::render(records, meta),
        Format::Suricata => suricata::render(records, meta),
        Format::Misp => misp::manifest(records, kb, meta),
    }
}

/// `records` in export order: by kind, value and id.
fn sorted(records: &[IndicatorRecord]) -> Vec<&IndicatorRecord> {
    let mut v: Vec<&IndicatorRecord> = records.iter().collect();
    v.sort_by(|a, b| (a.kind, &a.value, &a.id).cmp(&(b.kind, &b.value, &b.id)));
    v
}

/// The active records, in export order.
fn active(records: &[IndicatorRecord]) -> Vec<&IndicatorRecord> {
    let mut v = sorted(records);
    v.retain(|r| r.is_active());
    v
}

/// The records a format with removals writes: all of them in an incremental export, the active
/// ones in a full export; in export order.
fn changed<'a>(records: &'a [IndicatorRecord], meta: &Meta) -> Vec<&'a IndicatorRecord> {
    if meta.since.is_some() {
        sorted(records)
    } else {
        active(records)
    }
}

/// `s` made safe for one line of a text format: printable ASCII only (anything else becomes
/// `?`, white space a blank), trimmed, at most `max` characters.
fn one_line(s: &str, max: usize) -> String {
    let mapped: String = s
        .chars()
        .map(|c| match c {
            ' '..='~' => c,
            c if c.is_whitespace() => ' ',
            _ => '?',
        })
        .take(max)
        .collect();
    mapped.trim().to_string()
}

/// Whether `d` is a host name every list, hosts file and zone file can carry: ASCII letters,
/// digits, `-` and `_`, at least two labels of 1–63 characters, at most 253 characters.
pub fn is_host_name(d: &str) -> bool {
    if d.is_empty() || d.len() > 253 || !d.contains('.') {
        return false;
    }
    d.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// Resolves records' threat ids in the knowledge base, once per id.
struct Threats<'a> {
    kb: &'a KnowledgeBase,
    cache: HashMap<String, Option<&'a Threat>>,
}

impl<'a> Threats<'a> {
    fn new(kb: &'a KnowledgeBase) -> Self {
        Threats {
            kb,
            cache: HashMap::new(),
        }
    }

    /// The documented threat of `r`, if its threat id is known to the knowledge base.
    fn of(&mut self, r: &IndicatorRecord) -> Option<&'a Threat> {
        let id = r.threat_id.as_deref()?;
        if let Some(t) = self.cache.get(id) {
            return *t;
        }
        let t = self.kb.get(id);
        self.cache.insert(id.to_string(), t);
        t
    }
}

/// The one comment line opening a plain-text format:
/// `<mark> threatfeed <what>, generated <time>, serial <n>, <count> entries`.
fn header(mark: &str, what: &str, meta: &Meta, count: usize) -> String {
    format!(
        "{mark} threatfeed {what}, generated {}, serial {}, {count} entries\n",
        meta.generated, meta.serial
    )
}
