//! Importers for third-party threat intelligence: line-based indicator lists (maltrail trail
//! files, FireHOL ipsets / netsets, abuse.ch Feodo Tracker CSV exports, plain one-value-per-line
//! lists) and JSON documents (MISP events and MISP galaxy clusters in [`misp`], STIX 2.1 bundles
//! in [`stix`]).
//!
//! Invariants, for every format:
//! - Parsing is pure: it works on the text (or reader) it is handed and never touches the file
//!   system or the network.
//! - A parser never panics, whatever the input. Values that are not valid indicators, unsupported
//!   entries and malformed rows are reported in [`ImportReport::skipped`] as `(position, reason)`,
//!   the reason naming the value. The position is the 1-based line for the list formats, the
//!   1-based attribute index for MISP events, the 1-based cluster index for MISP galaxies and the
//!   1-based object index for STIX bundles (see each module); 0 means the whole document (invalid
//!   JSON, a wrong top-level shape). At most [`MAX_SKIPPED_LISTED`] are listed; all are counted.
//! - Every value is canonicalised with [`crate::indicator`]. Indicators are de-duplicated by id
//!   within one file (the first occurrence wins; later ones are counted in
//!   [`ImportReport::duplicates`]).
//! - Threat documents in [`ImportReport::threats`] have ids that are valid slugs (see [`slugify`]),
//!   unique within the report, and pass [`validate_imported`]. They carry only what the source
//!   states: usually no playbook, so they do not pass [`crate::threat::validate`] until one is
//!   written (the knowledge base refuses them as they are).
//! - The list formats leave the optional fields of [`ImportedIndicator`] (`tlp`, `confidence`,
//!   `valid_from`, `valid_until`, `description`) `None` and define no threats.

pub mod misp;
pub mod stix;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::io::Read;
use std::str::FromStr;

use serde_json::Value;

use crate::canon::parse_ip;
use crate::indicator::{IndicatorKind, canonicalize, canonicalize_as, indicator_id};
use crate::threat::{Behaviour, KbError, Playbook, Threat, ThreatKind, is_valid_slug, validate};
use crate::tlp::Tlp;

/// At most this many skipped entries are listed in [`ImportReport::skipped`]; all are counted.
pub const MAX_SKIPPED_LISTED: usize = 200;

/// One indicator read from a list or document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedIndicator {
    pub kind: IndicatorKind,
    /// The canonical value.
    pub value: String,
    /// [`indicator_id`] of `kind` and `value`.
    pub id: String,
    /// The port given with the value (`IP:port` in maltrail, `dst_port` in Feodo CSV,
    /// `ip-dst|port` in MISP).
    pub port: Option<u16>,
    /// The threat (malware family) the source attributes the indicator to, as the source names it.
    pub threat: Option<String>,
    /// The TLP label the source gives the indicator (MISP tags, STIX markings).
    pub tlp: Option<Tlp>,
    /// The source's confidence, 0–100 (STIX `confidence`; MISP: see [`misp`]).
    pub confidence: Option<u8>,
    /// From when the indicator is valid / was first seen.
    pub valid_from: Option<jiff::Timestamp>,
    /// Until when the indicator is valid / when it was last seen.
    pub valid_until: Option<jiff::Timestamp>,
    /// Free text the source gives with the indicator.
    pub description: Option<String>,
}

impl ImportedIndicator {
    /// An indicator with only the fields the list formats know; `value` must be canonical.
    fn new(kind: IndicatorKind, value: String, port: Option<u16>, threat: Option<String>) -> Self {
        let id = indicator_id(kind, &value);
        ImportedIndicator {
            kind,
            value,
            id,
            port,
            threat,
            tlp: None,
            confidence: None,
            valid_from: None,
            valid_until: None,
            description: None,
        }
    }
}

/// The result of parsing one list or document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub indicators: Vec<ImportedIndicator>,
    /// `(position, reason)` for the first [`MAX_SKIPPED_LISTED`] skipped entries (see the module
    /// documentation for what the position means in each format).
    pub skipped: Vec<(usize, String)>,
    /// The number of skipped entries (all of them).
    pub skipped_count: usize,
    /// Aliases of the threat from a maltrail `# Aliases:` header.
    pub aliases: Vec<String>,
    /// Entries whose indicator (by id) was already read from this file, plus threats whose id was
    /// already defined by an earlier entry of this file (the first one is kept).
    pub duplicates: usize,
    /// Threat documents the file defines (MISP galaxy clusters, STIX `malware` objects). They pass
    /// [`validate_imported`], not necessarily [`crate::threat::validate`].
    pub threats: Vec<Threat>,
    /// Entries that are well-formed but carry nothing this importer uses, counted by kind (e.g.
    /// STIX object types such as `attack-pattern`, `revoked malware`). Not errors.
    pub ignored: BTreeMap<String, usize>,
}

/// The supported formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// maltrail trail files: IPs, `IP:port`, domains, URLs (possibly scheme-less), `# Aliases:`.
    Maltrail,
    /// FireHOL `.ipset` / `.netset`: one IP or CIDR per line.
    Firehol,
    /// abuse.ch Feodo Tracker CSV: `dst_ip`, `dst_port`, `malware` columns.
    FeodoCsv,
    /// One value of any kind per line.
    Plain,
    /// MISP event JSON (`{"Event": {...}}`, a list of them, or a `{"response": [...]}` search
    /// result).
    MispEvent,
    /// A MISP galaxy cluster file (`{"name", "type", "uuid", "values": [...]}`).
    MispGalaxy,
    /// A STIX 2.1 bundle (or a single STIX object).
    Stix,
}

impl Format {
    /// Every format.
    pub const ALL: [Format; 7] = [
        Format::Maltrail,
        Format::Firehol,
        Format::FeodoCsv,
        Format::Plain,
        Format::MispEvent,
        Format::MispGalaxy,
        Format::Stix,
    ];

    /// The name used on the command line and in APIs: `maltrail`, `firehol`, `feodo-csv`,
    /// `plain`, `misp-event`, `misp-galaxy`, `stix`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Maltrail => "maltrail",
            Format::Firehol => "firehol",
            Format::FeodoCsv => "feodo-csv",
            Format::Plain => "plain",
            Format::MispEvent => "misp-event",
            Format::MispGalaxy => "misp-galaxy",
            Format::Stix => "stix",
        }
    }

    /// `true` for the JSON document formats.
    pub fn is_json(self) -> bool {
        matches!(self, Format::MispEvent | Format::MispGalaxy | Format::Stix)
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Error for a string that is not a format name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown import format {0:?} (expected maltrail, firehol, feodo-csv, plain, misp-event, misp-galaxy or stix)"
)]
pub struct UnknownFormat(pub String);

impl FromStr for Format {
    type Err = UnknownFormat;

    /// Accepts [`Format::name`] case-insensitively, with `_` for `-`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase().replace('_', "-");
        Format::ALL
            .into_iter()
            .find(|f| f.name() == t)
            .ok_or_else(|| UnknownFormat(s.to_string()))
    }
}

/// Detects the format of a list or document from its content.
///
/// Text starting with `{` or `[` is tried as JSON: a top-level `"Event"` object (or a list of
/// `{"Event": ...}`) is [`Format::MispEvent`], an object with a `"values"` array and a `"uuid"`,
/// `"name"` or `"type"` is [`Format::MispGalaxy`], `"type": "bundle"` (or a single object with a
/// STIX id `type--uuid`) is [`Format::Stix`]. JSON that does not parse (e.g. truncated) is sniffed
/// for the same keys. Everything else is detected from its comments and first data line.
pub fn detect(text: &str) -> Format {
    let body = strip_bom(text).trim_start();
    if body.starts_with('{') || body.starts_with('[') {
        let found = match serde_json::from_str::<Value>(body) {
            Ok(v) => detect_json(&v),
            Err(_) => sniff_json(body),
        };
        if let Some(f) = found {
            return f;
        }
    }
    detect_lines(text)
}

fn strip_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// The JSON format of a parsed document, if it is one of ours.
fn detect_json(v: &Value) -> Option<Format> {
    let is_event = |v: &Value| v.get("Event").is_some_and(Value::is_object);
    match v {
        Value::Object(o) => {
            if is_event(v)
                || o.get("response")
                    .and_then(Value::as_array)
                    .is_some_and(|a| a.first().is_some_and(is_event))
            {
                return Some(Format::MispEvent);
            }
            if o.get("values").is_some_and(Value::is_array)
                && ["uuid", "name", "type"].iter().any(|k| o.contains_key(*k))
            {
                return Some(Format::MispGalaxy);
            }
            let ty = o.get("type").and_then(Value::as_str);
            if ty == Some("bundle") {
                return Some(Format::Stix);
            }
            let id = o.get("id").and_then(Value::as_str).unwrap_or("");
            if let Some(ty) = ty
                && id.strip_prefix(ty).is_some_and(|r| r.starts_with("--"))
            {
                return Some(Format::Stix);
            }
            None
        }
        Value::Array(a) => a.first().filter(|e| is_event(e)).map(|_| Format::MispEvent),
        _ => None,
    }
}

/// Guesses the JSON format of a document that does not parse, from its first 64 KiB.
fn sniff_json(body: &str) -> Option<Format> {
    let mut end = body.len().min(64 * 1024);
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    let head: String = body[..end].chars().filter(|c| !c.is_whitespace()).collect();
    if head.contains("\"Event\":{") {
        Some(Format::MispEvent)
    } else if head.contains("\"type\":\"bundle\"") {
        Some(Format::Stix)
    } else if head.contains("\"values\":[") {
        Some(Format::MispGalaxy)
    } else {
        None
    }
}

/// Detects a line-based list format from its comments and first data line.
fn detect_lines(text: &str) -> Format {
    let mut comments = 0usize;
    for line in text.lines().map(str::trim) {
        if line.is_empty() {
            continue;
        }
        if let Some(c) = line.strip_prefix('#') {
            comments += 1;
            let c = c.trim();
            let lower = c.to_ascii_lowercase();
            if lower.contains("maltrail") || lower.starts_with("aliases:") {
                return Format::Maltrail;
            }
            if (lower.contains("hash:ip") || lower.contains("hash:net")) && lower.contains("ipset")
            {
                return Format::Firehol;
            }
            if comments > 60 {
                break;
            }
            continue;
        }
        // The first data line.
        if line.starts_with('"') && line.contains("dst_ip") {
            return Format::FeodoCsv;
        }
        break;
    }
    Format::Plain
}

/// Reads a list or document from `reader` (invalid UTF-8 is replaced) and parses it; detects the
/// format when `format` is `None`.
pub fn parse_reader(
    format: Option<Format>,
    mut reader: impl Read,
    threat: Option<&str>,
) -> std::io::Result<ImportReport> {
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes);
    if format.is_none() {
        // Parse JSON once for both detection and import.
        let body = strip_bom(&text).trim_start();
        if (body.starts_with('{') || body.starts_with('['))
            && let Ok(v) = serde_json::from_str::<Value>(body)
            && let Some(f) = detect_json(&v)
        {
            let mut b = Builder::new();
            parse_value(&mut b, f, &v, threat);
            return Ok(b.report);
        }
    }
    let format = format.unwrap_or_else(|| detect(&text));
    Ok(parse(format, &text, threat))
}

struct Builder {
    report: ImportReport,
    seen: HashSet<String>,
    threat_ids: HashSet<String>,
}

impl Builder {
    fn new() -> Self {
        Builder {
            report: ImportReport::default(),
            seen: HashSet::new(),
            threat_ids: HashSet::new(),
        }
    }

    fn skip(&mut self, line: usize, reason: String) {
        self.report.skipped_count += 1;
        if self.report.skipped.len() < MAX_SKIPPED_LISTED {
            self.report.skipped.push((line, reason));
        }
    }

    fn add(&mut self, kind: IndicatorKind, value: String, port: Option<u16>, threat: Option<&str>) {
        self.push(ImportedIndicator::new(
            kind,
            value,
            port,
            threat.map(str::to_string),
        ));
    }

    /// Adds an indicator unless one with the same id was already read.
    fn push(&mut self, ind: ImportedIndicator) {
        if !self.seen.insert(ind.id.clone()) {
            self.report.duplicates += 1;
            return;
        }
        self.report.indicators.push(ind);
    }

    /// Adds a threat unless one with the same id was already read; `false` for a duplicate.
    fn push_threat(&mut self, t: Threat) -> bool {
        if !self.threat_ids.insert(t.id.clone()) {
            self.report.duplicates += 1;
            return false;
        }
        self.report.threats.push(t);
        true
    }

    /// Counts an entry that carries nothing this importer uses.
    fn ignore(&mut self, what: &str) {
        *self.report.ignored.entry(what.to_string()).or_default() += 1;
    }
}

/// Parses a list or document in the given format. `threat` is attributed to every indicator
/// the source does not attribute itself (a Feodo row's `malware` column, a MISP galaxy tag or a
/// STIX `indicates` relationship take precedence).
pub fn parse(format: Format, text: &str, threat: Option<&str>) -> ImportReport {
    let mut b = Builder::new();
    if format.is_json() {
        match serde_json::from_str::<Value>(strip_bom(text)) {
            Ok(v) => parse_value(&mut b, format, &v, threat),
            Err(e) => b.skip(0, format!("invalid JSON: {e}")),
        }
        return b.report;
    }
    let mut csv_columns: Option<CsvColumns> = None;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            if format == Format::Maltrail {
                let c = comment.trim();
                if let Some(head) = c.get(..8)
                    && head.eq_ignore_ascii_case("aliases:")
                {
                    for a in c[8..].split(',').map(str::trim).filter(|a| !a.is_empty()) {
                        if !b.report.aliases.iter().any(|x| x == a) {
                            b.report.aliases.push(a.to_string());
                        }
                    }
                }
            }
            continue;
        }
        // A trailing comment after whitespace ("evil.com/x.php  # compromised site").
        let line = match format {
            Format::Maltrail | Format::Plain => strip_inline_comment(line),
            _ => line,
        };
        match format {
            Format::Maltrail => maltrail_line(&mut b, n, line, threat),
            Format::Firehol => match canonicalize_as(IndicatorKind::Cidr, line) {
                Ok((kind, value)) => b.add(kind, value, None, threat),
                Err(e) => b.skip(n, e.to_string()),
            },
            Format::FeodoCsv => match &csv_columns {
                None => match CsvColumns::from_header(line) {
                    Some(cols) => csv_columns = Some(cols),
                    None => b.skip(n, format!("not a Feodo CSV header: {line:?}")),
                },
                Some(cols) => feodo_row(&mut b, n, line, cols, threat),
            },
            // Plain (the JSON formats returned above).
            _ => match canonicalize(line) {
                Ok((kind, value)) => b.add(kind, value, None, threat),
                Err(e) => b.skip(n, e.to_string()),
            },
        }
    }
    b.report
}

/// Imports a parsed JSON document of a JSON format.
fn parse_value(b: &mut Builder, format: Format, v: &Value, threat: Option<&str>) {
    match format {
        Format::MispEvent => misp::parse_events(b, v, threat),
        Format::MispGalaxy => misp::parse_galaxy(b, v),
        Format::Stix => stix::parse_bundle(b, v, threat),
        _ => b.skip(0, format!("{format} is not a JSON format")),
    }
}

/// Turns a display name into a threat id: ASCII letters and digits lower-cased, every run of
/// other characters (including non-ASCII letters) one `-`, no `-` at either end, at most 64
/// characters. `None` when nothing is left (e.g. `"$$$"`).
pub fn slugify(name: &str) -> Option<String> {
    let mut slug = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    slug.truncate(64); // ASCII only, so any index is a char boundary
    while slug.ends_with('-') {
        slug.pop();
    }
    is_valid_slug(&slug).then_some(slug)
}

/// Checks a threat made by an importer: everything [`crate::threat::validate`] checks (slug id,
/// a name with letters or digits, usable aliases, `http(s)` references, no blank playbook items)
/// except that the description and the playbook sections may be empty, since a source rarely
/// states them. `validate` itself is unchanged: the knowledge base still requires a full playbook.
pub fn validate_imported(t: &Threat) -> Result<(), KbError> {
    const NOT_STATED: &str = "(not stated by the source)";
    let mut probe = t.clone();
    if probe.description.trim().is_empty() {
        probe.description = NOT_STATED.to_string();
    }
    let p = &mut probe.playbook;
    for section in [&mut p.detect, &mut p.contain, &mut p.clean, &mut p.verify] {
        if section.is_empty() {
            section.push(NOT_STATED.to_string());
        }
    }
    if p.customer_notice.trim().is_empty() {
        p.customer_notice = NOT_STATED.to_string();
    }
    validate(&probe)
}

/// Lower-case ASCII letters and digits of `s` (how the knowledge base compares names).
fn name_key(s: &str) -> String {
    s.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Builds a threat from what a source states: the id is [`slugify`] of the name; aliases without
/// letters or digits, or equal to the name or an earlier alias, are dropped; references that are
/// not whitespace-free `http(s)` URLs are dropped (after trimming); the playbook is empty. `Err`
/// names the value when no valid threat can be made.
fn imported_threat<'a>(
    name: &str,
    kind: ThreatKind,
    description: &str,
    aliases: impl IntoIterator<Item = &'a str>,
    references: impl IntoIterator<Item = &'a str>,
) -> Result<Threat, String> {
    let name = name.trim();
    let Some(id) = slugify(name) else {
        return Err(format!("threat name {name:?} gives no valid id"));
    };
    let mut keys = HashSet::from([name_key(name)]);
    let mut kept_aliases = Vec::new();
    for a in aliases.into_iter().map(str::trim) {
        let key = name_key(a);
        if !key.is_empty() && keys.insert(key) {
            kept_aliases.push(a.to_string());
        }
    }
    let mut refs: Vec<String> = Vec::new();
    for r in references.into_iter().map(str::trim) {
        let ok = (r.starts_with("https://") || r.starts_with("http://"))
            && !r.chars().any(char::is_whitespace);
        if ok && !refs.iter().any(|x| x == r) {
            refs.push(r.to_string());
        }
    }
    let t = Threat {
        id,
        name: name.to_string(),
        aliases: kept_aliases,
        kind,
        description: description.trim().to_string(),
        references: refs,
        behaviour: Behaviour::default(),
        playbook: Playbook {
            detect: Vec::new(),
            contain: Vec::new(),
            clean: Vec::new(),
            verify: Vec::new(),
            customer_notice: String::new(),
        },
    };
    validate_imported(&t).map_err(|e| format!("threat {name:?}: {e}"))?;
    Ok(t)
}

/// The [`ThreatKind`] a free-text malware type suggests (MISP `meta.type`, STIX
/// `malware_types`), if any.
fn kind_hint(s: &str) -> Option<ThreatKind> {
    let k = name_key(s);
    Some(match k.as_str() {
        "ransomware" => ThreatKind::Ransomware,
        "rat" | "remoteaccesstrojan" => ThreatKind::Rat,
        "bot" | "botnet" => ThreatKind::Botnet,
        "loader" | "dropper" | "downloader" => ThreatKind::Loader,
        "stealer" | "infostealer" | "pws" | "passwordstealer" | "spyware" | "keylogger" => {
            ThreatKind::Infostealer
        }
        "banker" | "banking" | "bankingtrojan" => ThreatKind::BankingTrojan,
        _ => return None,
    })
}

/// The most specific kind suggested by any of `hints` (ransomware first, then RAT, botnet,
/// banking trojan, loader, infostealer), or `fallback`.
fn kind_from_hints<'a>(
    hints: impl IntoIterator<Item = &'a str>,
    fallback: ThreatKind,
) -> ThreatKind {
    const ORDER: [ThreatKind; 6] = [
        ThreatKind::Ransomware,
        ThreatKind::Rat,
        ThreatKind::Botnet,
        ThreatKind::BankingTrojan,
        ThreatKind::Loader,
        ThreatKind::Infostealer,
    ];
    let found: Vec<ThreatKind> = hints.into_iter().filter_map(kind_hint).collect();
    ORDER
        .into_iter()
        .find(|k| found.contains(k))
        .unwrap_or(fallback)
}

/// Parses an RFC 3339 timestamp, or a bare `YYYY-MM-DD` date (midnight UTC), or Unix seconds.
fn parse_time(s: &str) -> Option<jiff::Timestamp> {
    let s = s.trim();
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Some(t);
    }
    if let Ok(d) = s.parse::<jiff::civil::Date>() {
        return d
            .to_zoned(jiff::tz::TimeZone::UTC)
            .ok()
            .map(|z| z.timestamp());
    }
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<i64>()
            .ok()
            .and_then(|n| jiff::Timestamp::from_second(n).ok());
    }
    None
}

/// A short, bounded rendering of a JSON value for skip reasons.
fn show(v: &Value) -> String {
    let s = match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    };
    if s.chars().count() > 120 {
        let mut cut: String = s.chars().take(117).collect();
        cut.push_str("...");
        cut
    } else {
        s
    }
}

/// Cuts a `#` comment that follows whitespace off a value (a `#` inside a URL is a fragment).
fn strip_inline_comment(line: &str) -> &str {
    let mut prev_ws = false;
    for (i, c) in line.char_indices() {
        if c == '#' && prev_ws {
            return line[..i].trim_end();
        }
        prev_ws = c.is_whitespace();
    }
    line
}

/// Splits `host:port` / `[v6]:port`; `None` when there is no port.
fn split_port(s: &str) -> Option<(&str, &str)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return Some((host, after.strip_prefix(':')?));
    }
    let (host, port) = s.rsplit_once(':')?;
    if host.contains(':') {
        return None; // a bare IPv6 address
    }
    Some((host, port))
}

fn maltrail_line(b: &mut Builder, n: usize, line: &str, threat: Option<&str>) {
    if line.starts_with('/') {
        b.skip(n, format!("path-only trail {line:?}"));
        return;
    }
    if line.contains(char::is_whitespace) {
        b.skip(n, format!("unexpected whitespace in {line:?}"));
        return;
    }
    if !line.contains('/')
        && let Some((host, port)) = split_port(line)
    {
        let Ok(port) = port.parse::<u16>() else {
            b.skip(n, format!("bad port in {line:?}"));
            return;
        };
        match canonicalize(host) {
            Ok((kind, value))
                if matches!(
                    kind,
                    IndicatorKind::Ipv4 | IndicatorKind::Ipv6 | IndicatorKind::Domain
                ) =>
            {
                b.add(kind, value, Some(port), threat)
            }
            Ok(_) => b.skip(n, format!("not a host before the port in {line:?}")),
            Err(e) => b.skip(n, e.to_string()),
        }
        return;
    }
    match canonicalize(line) {
        Ok((kind, value)) => b.add(kind, value, None, threat),
        Err(e) => b.skip(n, e.to_string()),
    }
}

struct CsvColumns {
    ip: usize,
    port: Option<usize>,
    malware: Option<usize>,
}

impl CsvColumns {
    fn from_header(line: &str) -> Option<Self> {
        let fields = split_csv(line)?;
        let find = |name: &str| fields.iter().position(|f| f.trim() == name);
        Some(CsvColumns {
            ip: find("dst_ip")?,
            port: find("dst_port"),
            malware: find("malware"),
        })
    }
}

/// Splits one CSV record (RFC 4180 quoting, `""` inside quotes). `None` on unbalanced quotes.
fn split_csv(line: &str) -> Option<Vec<String>> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut in_quotes = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        if in_quotes {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    cur.push('"');
                } else {
                    in_quotes = false;
                }
            } else {
                cur.push(c);
            }
        } else if c == '"' && cur.trim().is_empty() && !was_quoted {
            cur.clear();
            in_quotes = true;
            was_quoted = true;
        } else if c == ',' {
            fields.push(std::mem::take(&mut cur));
            was_quoted = false;
        } else if was_quoted && !c.is_whitespace() {
            return None; // text after a closing quote
        } else if !was_quoted {
            cur.push(c);
        }
    }
    if in_quotes {
        return None;
    }
    fields.push(cur);
    Some(fields)
}

fn feodo_row(b: &mut Builder, n: usize, line: &str, cols: &CsvColumns, threat: Option<&str>) {
    let Some(fields) = split_csv(line) else {
        b.skip(n, format!("malformed CSV row {line:?}"));
        return;
    };
    let Some(ip_text) = fields.get(cols.ip) else {
        b.skip(n, format!("missing dst_ip in {line:?}"));
        return;
    };
    let Some(ip) = parse_ip(ip_text) else {
        b.skip(n, format!("invalid dst_ip {ip_text:?}"));
        return;
    };
    let port = match cols.port.and_then(|i| fields.get(i)).map(|p| p.trim()) {
        None | Some("") => None,
        Some(p) => match p.parse::<u16>() {
            Ok(p) => Some(p),
            Err(_) => {
                b.skip(n, format!("invalid dst_port {p:?}"));
                return;
            }
        },
    };
    let row_threat = cols
        .malware
        .and_then(|i| fields.get(i))
        .map(|m| m.trim())
        .filter(|m| !m.is_empty());
    let kind = if ip.is_ipv4() {
        IndicatorKind::Ipv4
    } else {
        IndicatorKind::Ipv6
    };
    b.add(kind, ip.to_string(), port, row_threat.or(threat));
}

/// The real-world documents the importer tests read (copied into `testdata/`; see `NOTICE`).
#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
pub(crate) mod fixtures {
    use std::io::Read;

    macro_rules! testdata {
        ($p:literal) => {
            (
                $p,
                include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/", $p)),
            )
        };
    }

    /// MISP galaxy cluster files.
    pub const GALAXIES: [(&str, &[u8]); 5] = [
        testdata!("misp-galaxy/botnet.json"),
        testdata!("misp-galaxy/malpedia.json.gz"),
        testdata!("misp-galaxy/ransomware.json.gz"),
        testdata!("misp-galaxy/threat-actor.json.gz"),
        testdata!("misp-galaxy/tool.json.gz"),
    ];

    /// The OASIS STIX 2.1 examples.
    pub const OASIS: [(&str, &[u8]); 8] = [
        testdata!("stix/oasis-examples/indicator-for-c2-ip-address.json"),
        testdata!("stix/oasis-examples/indicator-to-campaign-relationship.json"),
        testdata!("stix/oasis-examples/indicators-for-C2-with-COA.json"),
        testdata!("stix/oasis-examples/infrastructure.json"),
        testdata!("stix/oasis-examples/interop-objectmarking-test.json"),
        testdata!("stix/oasis-examples/malicious-email-indicator-with-attachment.json"),
        testdata!("stix/oasis-examples/threat-reports/apt1.json"),
        testdata!("stix/oasis-examples/threat-reports/poisonivy.json"),
    ];

    /// MITRE ATT&CK STIX bundles.
    pub const MITRE: [(&str, &[u8]); 2] = [
        testdata!("stix/mitre-attack/ics-attack-18.1.json.gz"),
        testdata!("stix/mitre-attack/mobile-attack-17.1.json.gz"),
    ];

    /// The hand-written MISP event.
    pub const MISP_EVENT: (&str, &[u8]) = testdata!("misp/event-emotet.json");

    /// The text of a fixture, gunzipped when its name ends in `.gz`.
    pub fn text((name, bytes): (&str, &[u8])) -> String {
        if name.ends_with(".gz") {
            let mut s = String::new();
            flate2::read::GzDecoder::new(bytes)
                .read_to_string(&mut s)
                .unwrap();
            s
        } else {
            String::from_utf8(bytes.to_vec()).unwrap()
        }
    }

    /// The fixture named `name` among `set`.
    pub fn find(set: &[(&'static str, &'static [u8])], name: &str) -> String {
        let f = set.iter().find(|(n, _)| n.ends_with(name)).unwrap();
        text(*f)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    const MALTRAIL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/kb/maltrail");
    const BLOCKLISTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/blocklists");

    fn read(path: &Path) -> String {
        let bytes = std::fs::read(path).unwrap();
        if path.extension().is_some_and(|e| e == "gz") {
            let mut s = String::new();
            flate2::read::GzDecoder::new(&bytes[..])
                .read_to_string(&mut s)
                .unwrap();
            s
        } else {
            String::from_utf8(bytes).unwrap()
        }
    }

    fn files(dir: &str, pred: impl Fn(&str) -> bool) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| pred(p.file_name().unwrap().to_str().unwrap()))
            .collect();
        v.sort();
        v
    }

    /// Non-blank lines not starting with `#`, counted independently of the parser.
    fn data_lines(text: &str) -> usize {
        text.lines()
            .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            .count()
    }

    fn check_counts(name: &str, text: &str, r: &ImportReport, header_rows: usize) {
        assert_eq!(
            r.indicators.len() + r.skipped_count + r.duplicates,
            data_lines(text) - header_rows,
            "{name}"
        );
        assert!(r.skipped.len() <= MAX_SKIPPED_LISTED, "{name}");
        assert_eq!(r.skipped.len(), r.skipped_count.min(MAX_SKIPPED_LISTED));
        let ids: HashSet<&str> = r.indicators.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids.len(), r.indicators.len(), "{name}: ids unique");
        for i in &r.indicators {
            assert_eq!(i.id, indicator_id(i.kind, &i.value));
            assert_eq!(
                canonicalize_as(i.kind, &i.value),
                Ok((i.kind, i.value.clone()))
            );
        }
    }

    #[test]
    fn maltrail_files_parse() {
        let paths = files(MALTRAIL, |n| n.ends_with(".txt.gz"));
        assert_eq!(paths.len(), 17);
        for p in paths {
            let name = p.file_name().unwrap().to_str().unwrap().to_string();
            let family = name.trim_end_matches(".txt.gz");
            let text = read(&p);
            assert_eq!(detect(&text), Format::Maltrail, "{name}");
            let r = parse(Format::Maltrail, &text, Some(family));
            check_counts(&name, &text, &r, 0);
            assert!(!r.indicators.is_empty(), "{name}");
            assert!(
                r.indicators
                    .iter()
                    .all(|i| i.threat.as_deref() == Some(family))
            );
            // Independent count of path-only trails: all of them are skipped.
            let paths_only = text.lines().filter(|l| l.trim().starts_with('/')).count();
            assert!(r.skipped_count >= paths_only, "{name}");
            let with_port = text
                .lines()
                .map(str::trim)
                .filter(|l| {
                    !l.starts_with('#')
                        && !l.contains('/')
                        && l.rsplit_once(':').is_some_and(|(h, p)| {
                            h.parse::<std::net::Ipv4Addr>().is_ok() && p.parse::<u16>().is_ok()
                        })
                })
                .count();
            let ported = r.indicators.iter().filter(|i| i.port.is_some()).count();
            assert!(ported <= with_port, "{name}");
            let aliases_line = text.lines().find(|l| l.starts_with("# Aliases:"));
            assert_eq!(aliases_line.is_some(), !r.aliases.is_empty(), "{name}");
            for (n, why) in r
                .skipped
                .iter()
                .filter(|(_, w)| !w.starts_with("path-only"))
            {
                eprintln!("{name}:{n}: {why}");
            }
            eprintln!(
                "{name}: {} indicators, {} skipped ({} path-only), {} duplicates, {} aliases",
                r.indicators.len(),
                r.skipped_count,
                paths_only,
                r.duplicates,
                r.aliases.len()
            );
        }
    }

    #[test]
    fn maltrail_aliases() {
        let text = read(&Path::new(MALTRAIL).join("qakbot.txt.gz"));
        let r = parse(detect(&text), &text, Some("qakbot"));
        assert_eq!(r.aliases, ["qakbot", "qbot", "pikabot"]);
    }

    #[test]
    fn blocklists_parse() {
        let paths = files(BLOCKLISTS, |n| !n.starts_with("SOURCE") && n != "README.md");
        assert_eq!(paths.len(), 9);
        for p in paths {
            let name = p.file_name().unwrap().to_str().unwrap().to_string();
            let text = read(&p);
            let csv = name.contains(".csv");
            let want = if csv {
                Format::FeodoCsv
            } else {
                Format::Firehol
            };
            assert_eq!(detect(&text), want, "{name}");
            let r = parse(want, &text, None);
            check_counts(&name, &text, &r, usize::from(csv));
            assert_eq!(r.skipped_count, 0, "{name}: {:?}", r.skipped);
            assert!(!r.indicators.is_empty(), "{name}");
            if csv {
                assert!(
                    r.indicators
                        .iter()
                        .all(|i| i.threat.is_some() && i.port.is_some())
                );
            } else {
                assert!(r.indicators.iter().all(|i| matches!(
                    i.kind,
                    IndicatorKind::Ipv4 | IndicatorKind::Ipv6 | IndicatorKind::Cidr
                )));
            }
            eprintln!(
                "{name}: {} indicators, {} skipped, {} duplicates",
                r.indicators.len(),
                r.skipped_count,
                r.duplicates
            );
        }
    }

    #[test]
    fn feodo_rows_carry_their_threat() {
        let text = read(&Path::new(BLOCKLISTS).join("feodotracker_ipblocklist_2024-04-04.csv"));
        let r = parse(Format::FeodoCsv, &text, Some("fallback"));
        let first = &r.indicators[0];
        assert_eq!(first.value, "192.9.135.73");
        assert_eq!(first.port, Some(1194));
        assert_eq!(first.threat.as_deref(), Some("Pikabot"));
        // Independently: the last quoted field of each data row.
        for (i, line) in text
            .lines()
            .filter(|l| l.starts_with('"') && !l.contains("dst_ip"))
            .enumerate()
        {
            let malware = line.rsplit(',').next().unwrap().trim_matches('"');
            let ip = line.split(',').nth(1).unwrap().trim_matches('"');
            if let Some(ind) = r.indicators.iter().find(|x| x.value == ip) {
                assert!(ind.threat.is_some(), "row {i}");
                if r.duplicates == 0 {
                    assert_eq!(ind.threat.as_deref(), Some(malware), "row {i}");
                }
            }
        }
        // This export lists only Pikabot C2s; every row carries it rather than the fallback.
        assert_eq!(r.indicators.len(), 28);
        assert!(
            r.indicators
                .iter()
                .all(|i| i.threat.as_deref() == Some("Pikabot"))
        );
    }

    #[test]
    fn odd_lines_are_reported_by_line_number() {
        let text = "# Copyright (c) Maltrail developers\n\
                    # Aliases: foo, bar\n\
                    \n\
                    evil.com\n\
                    /gate.php\n\
                    1.2.3.4:99999\n\
                    bad host!\n\
                    EVIL.com.\n\
                    5.6.7.8:8080\n\
                    hxxp://bad[.]org/x.php   # defanged\n\
                    http://[::1\n";
        assert_eq!(detect(text), Format::Maltrail);
        let r = parse(Format::Maltrail, text, Some("foo"));
        assert_eq!(r.aliases, ["foo", "bar"]);
        assert_eq!(r.duplicates, 1);
        let lines: Vec<usize> = r.skipped.iter().map(|(n, _)| *n).collect();
        assert_eq!(lines, [5, 6, 7, 11]);
        assert!(r.skipped[0].1.contains("/gate.php"));
        assert!(r.skipped[1].1.contains("1.2.3.4:99999"));
        assert!(r.skipped[2].1.contains("bad host!"));
        let vals: Vec<(&str, Option<u16>)> = r
            .indicators
            .iter()
            .map(|i| (i.value.as_str(), i.port))
            .collect();
        assert_eq!(
            vals,
            [
                ("evil.com", None),
                ("5.6.7.8", Some(8080)),
                ("http://bad.org/x.php", None)
            ]
        );

        let csv = "# preamble\n\"dst_ip\",\"dst_port\",\"malware\"\n\"1.2.3.4\",\"80\",\"X\"\n\
                   \"nope\",\"80\",\"X\"\n\"1.2.3.5\",\"port\",\"X\"\n\"1.2.3.6\n\"1.2.3.7\",\"\",\"\"\n";
        assert_eq!(detect(csv), Format::FeodoCsv);
        let r = parse(Format::FeodoCsv, csv, Some("fallback"));
        let lines: Vec<usize> = r.skipped.iter().map(|(n, _)| *n).collect();
        assert_eq!(lines, [4, 5, 6]);
        assert_eq!(r.indicators.len(), 2);
        assert_eq!(r.indicators[1].threat.as_deref(), Some("fallback"));
        assert_eq!(r.indicators[1].port, None);

        let net = "# ipv4 hash:net ipset\n10.0.0.1/8\n10.0.0.0/8\nfoo\n1.2.3.4/33\n2001:db8::/32\n";
        assert_eq!(detect(net), Format::Firehol);
        let r = parse(Format::Firehol, net, None);
        assert_eq!(r.duplicates, 1);
        assert_eq!(r.skipped_count, 2);
        assert_eq!(r.skipped[0].0, 4);
        assert_eq!(r.indicators[0].value, "10.0.0.0/8");

        let plain = "evil.com\n\n# c\n1.2.3.4\n\u{1}\n".to_string() + &"a".repeat(64);
        assert_eq!(detect(&plain), Format::Plain);
        let r = parse(Format::Plain, &plain, None);
        assert_eq!(r.indicators.len(), 3);
        assert_eq!(r.indicators[2].kind, IndicatorKind::Sha256);
        assert_eq!(r.skipped[0].0, 5);
    }

    #[test]
    fn skipped_list_is_capped() {
        let text = "bad!\n".repeat(500);
        let r = parse(Format::Plain, &text, None);
        assert_eq!(r.skipped.len(), MAX_SKIPPED_LISTED);
        assert_eq!(r.skipped_count, 500);
        let r = parse_reader(None, text.as_bytes(), None).unwrap();
        assert_eq!(r.skipped_count, 500);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "[ -~\\n]{0,200}") {
            for f in [Format::Maltrail, Format::Firehol, Format::FeodoCsv, Format::Plain] {
                let r = parse(f, &s, None);
                proptest::prop_assert!(r.indicators.len() + r.skipped_count + r.duplicates <= s.lines().count());
            }
        }
    }

    #[test]
    fn format_names_round_trip() {
        let names: Vec<&str> = Format::ALL.iter().map(|f| f.name()).collect();
        assert_eq!(
            names,
            [
                "maltrail",
                "firehol",
                "feodo-csv",
                "plain",
                "misp-event",
                "misp-galaxy",
                "stix"
            ]
        );
        for f in Format::ALL {
            assert_eq!(f.name().parse::<Format>(), Ok(f));
            assert_eq!(f.to_string().to_uppercase().parse::<Format>(), Ok(f));
        }
        assert_eq!("misp_event".parse::<Format>(), Ok(Format::MispEvent));
        let err = "csv".parse::<Format>().unwrap_err();
        assert!(err.to_string().contains("\"csv\""), "{err}");
    }

    #[test]
    fn detect_recognises_every_json_fixture() {
        use fixtures::*;
        for f in GALAXIES {
            assert_eq!(detect(&text(f)), Format::MispGalaxy, "{}", f.0);
        }
        for f in OASIS.iter().chain(&MITRE) {
            assert_eq!(detect(&text(*f)), Format::Stix, "{}", f.0);
        }
        let event = text(MISP_EVENT);
        assert_eq!(detect(&event), Format::MispEvent);
        assert_eq!(detect(&format!("[{event}, {event}]")), Format::MispEvent);
        assert_eq!(
            detect(&format!("{{\"response\": [{event}]}}")),
            Format::MispEvent
        );
        // Truncated documents are still recognised (and then reported as invalid JSON).
        let cut = &event[..event.len() / 2];
        assert_eq!(detect(cut), Format::MispEvent);
        let r = parse(detect(cut), cut, None);
        assert_eq!(r.skipped_count, 1);
        assert_eq!(r.skipped[0].0, 0);
        assert!(
            r.skipped[0].1.starts_with("invalid JSON"),
            "{:?}",
            r.skipped
        );
        let bundle = find(&OASIS, "apt1.json");
        assert_eq!(detect(&bundle[..300]), Format::Stix);
        let galaxy = find(&GALAXIES, "botnet.json");
        assert_eq!(detect(&galaxy[..300]), Format::MispGalaxy);
        // JSON that is none of them, and the line formats, are unaffected.
        assert_eq!(detect("[1, 2]"), Format::Plain);
        assert_eq!(detect("{\"a\": 1}"), Format::Plain);
        assert_eq!(detect("# ipv4 hash:ip ipset\n1.2.3.4\n"), Format::Firehol);
    }

    #[test]
    fn parse_reader_detects_json() {
        let event = fixtures::text(fixtures::MISP_EVENT);
        let a = parse_reader(None, event.as_bytes(), None).unwrap();
        let b = parse(Format::MispEvent, &event, None);
        assert_eq!(a, b);
        assert_eq!(a.indicators.len(), 8);
        // An explicit format wins over detection.
        let r = parse_reader(Some(Format::Stix), event.as_bytes(), None).unwrap();
        assert!(r.indicators.is_empty());
        assert_eq!(r.skipped_count, 1, "{:?}", r.skipped);
        assert_eq!(r.skipped[0].0, 0);
    }

    #[test]
    fn list_formats_leave_new_fields_empty() {
        let r = parse(Format::Plain, "evil.com\n1.2.3.4\n", Some("x"));
        assert!(r.threats.is_empty() && r.ignored.is_empty());
        for i in &r.indicators {
            assert_eq!(
                (
                    i.tlp,
                    i.confidence,
                    i.valid_from,
                    i.valid_until,
                    &i.description
                ),
                (None, None, None, None, &None)
            );
        }
    }

    #[test]
    fn slugify_and_validate_imported() {
        assert_eq!(slugify("Cobalt Strike").as_deref(), Some("cobalt-strike"));
        assert_eq!(
            slugify("  Agent_Tesla!! v2 ").as_deref(),
            Some("agent-tesla-v2")
        );
        assert_eq!(
            slugify("Zeus Sphinx (Zloader)").as_deref(),
            Some("zeus-sphinx-zloader")
        );
        assert_eq!(
            slugify("Ryuk—Ransomware").as_deref(),
            Some("ryuk-ransomware")
        );
        assert_eq!(slugify("$$$"), None);
        assert_eq!(slugify("狼毒草"), None);
        let long = slugify(&"ab ".repeat(40)).unwrap();
        assert!(long.len() <= 64 && is_valid_slug(&long), "{long}");

        let t = imported_threat(
            "Emotet",
            ThreatKind::Botnet,
            "",
            ["Geodo", "emotet", " ", "GEODO", "Heodo", "狼毒草"],
            [
                "https://example.org/a",
                " https://example.org/b ",
                "example.org/c",
                "https://x y",
            ],
        )
        .unwrap();
        assert_eq!(t.id, "emotet");
        assert_eq!(t.aliases, ["Geodo", "Heodo"]);
        assert_eq!(
            t.references,
            ["https://example.org/a", "https://example.org/b"]
        );
        assert_eq!(validate_imported(&t), Ok(()));
        // The full validation still wants a description and a playbook.
        assert!(validate(&t).is_err());
        let mut bad = t.clone();
        bad.playbook.clean.push(" ".to_string());
        assert!(validate_imported(&bad).is_err());
        bad = t.clone();
        bad.id = "Emotet".to_string();
        assert_eq!(
            validate_imported(&bad),
            Err(KbError::BadSlug("Emotet".to_string()))
        );
        assert!(imported_threat("$$$", ThreatKind::Other, "", [], []).is_err());
    }

    /// JSON values built from the keys and strings the importers look at.
    fn arb_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        const KEYS: &[&str] = &[
            "type",
            "id",
            "objects",
            "pattern",
            "pattern_type",
            "name",
            "value",
            "values",
            "description",
            "meta",
            "synonyms",
            "refs",
            "Event",
            "Attribute",
            "Object",
            "Tag",
            "Galaxy",
            "GalaxyCluster",
            "to_ids",
            "deleted",
            "first_seen",
            "last_seen",
            "date",
            "info",
            "comment",
            "relationship_type",
            "source_ref",
            "target_ref",
            "is_family",
            "revoked",
            "aliases",
            "malware_types",
            "object_marking_refs",
            "confidence",
            "valid_from",
            "definition_type",
            "definition",
            "tlp",
            "external_references",
            "url",
        ];
        const STRINGS: &[&str] = &[
            "bundle",
            "indicator",
            "malware",
            "relationship",
            "indicates",
            "mitigates",
            "course-of-action",
            "marking-definition",
            "malware--1",
            "indicator--1",
            "course-of-action--1",
            "ip-dst",
            "ip-dst|port",
            "domain|ip",
            "filename|md5",
            "url",
            "uri",
            "link",
            "botnet",
            "malpedia",
            "tlp:red",
            "misp-galaxy:malpedia=\"X\"",
            "stix",
            "[ipv4-addr:value = '192.0.2.1']",
            "[file:hashes.'SHA-256' = 'x' OR url:value = 'y'",
            "1.2.3.4|80",
            "evil.example",
            "2024-01-01",
            "Emotet",
            "$$$",
            "",
            "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed",
            "ransomware",
            "bot",
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            proptest::sample::select(STRINGS).prop_map(Value::from),
            "[ -~]{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::vec((proptest::sample::select(KEYS), inner), 0..6).prop_map(
                    |kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
                ),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn json_formats_never_panic(s in "[ -~\\n]{0,300}") {
            for f in [Format::MispEvent, Format::MispGalaxy, Format::Stix] {
                let r = parse(f, &s, None);
                proptest::prop_assert!(r.skipped.len() <= MAX_SKIPPED_LISTED);
            }
            let _ = detect(&s);
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let r = parse_reader(None, &bytes[..], Some("x")).unwrap();
            proptest::prop_assert!(r.skipped.len() <= MAX_SKIPPED_LISTED);
        }

        #[test]
        fn arbitrary_json_documents_never_panic(v in arb_json()) {
            let wrapped = [
                v.clone(),
                serde_json::json!({"Event": v.clone()}),
                serde_json::json!([{"Event": {"Attribute": v.clone(), "Object": [{"Attribute": v.clone()}], "Galaxy": v.clone(), "Tag": v.clone()}}]),
                serde_json::json!({"type": "galaxy", "values": v.clone()}),
                serde_json::json!({"type": "bundle", "objects": v.clone()}),
            ];
            for doc in wrapped {
                let text = doc.to_string();
                let _ = parse(detect(&text), &text, Some("x"));
                for f in [Format::MispEvent, Format::MispGalaxy, Format::Stix] {
                    let r = parse(f, &text, None);
                    for t in &r.threats {
                        proptest::prop_assert_eq!(validate_imported(t), Ok(()));
                    }
                }
            }
        }

        #[test]
        fn json_shaped_noise_never_panics(s in "[\\[\\]{}:,\"' a-zA-Z0-9.\\\\|-]{0,200}") {
            for prefix in ["{\"Event\":", "{\"type\":\"bundle\",\"objects\":", "{\"values\":"] {
                let doc = format!("{prefix}{s}");
                let _ = parse(detect(&doc), &doc, None);
                for f in [Format::MispEvent, Format::MispGalaxy, Format::Stix] {
                    let _ = parse(f, &doc, None);
                }
            }
        }
    }
}
