//! Parsers for third-party indicator lists: maltrail trail files, FireHOL ipsets / netsets,
//! abuse.ch Feodo Tracker CSV exports and plain one-value-per-line lists.
//!
//! Parsing is pure: it works on the text (or reader) it is handed. Every value is canonicalised
//! with [`crate::indicator`]; values that are not valid indicators, path-only maltrail trails and
//! malformed rows are reported in [`ImportReport::skipped`] with their 1-based line number and the
//! reason (naming the value) — a parser never panics on odd input. Indicators are de-duplicated
//! by id within one file (the first occurrence wins; later ones are counted in
//! [`ImportReport::duplicates`]).

use std::collections::HashSet;
use std::io::Read;

use crate::canon::parse_ip;
use crate::indicator::{IndicatorKind, canonicalize, canonicalize_as, indicator_id};

/// At most this many skipped lines are listed in [`ImportReport::skipped`]; all are counted.
pub const MAX_SKIPPED_LISTED: usize = 200;

/// One indicator read from a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedIndicator {
    pub kind: IndicatorKind,
    /// The canonical value.
    pub value: String,
    /// [`indicator_id`] of `kind` and `value`.
    pub id: String,
    /// The port given with the value (`IP:port` in maltrail, `dst_port` in Feodo CSV).
    pub port: Option<u16>,
    /// The threat (malware family) the list attributes the indicator to.
    pub threat: Option<String>,
}

/// The result of parsing one list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub indicators: Vec<ImportedIndicator>,
    /// `(line, reason)` for the first [`MAX_SKIPPED_LISTED`] skipped lines.
    pub skipped: Vec<(usize, String)>,
    /// The number of skipped lines (all of them).
    pub skipped_count: usize,
    /// Aliases of the threat from a maltrail `# Aliases:` header.
    pub aliases: Vec<String>,
    /// Lines whose indicator (by id) was already read from this file.
    pub duplicates: usize,
}

/// The supported list formats.
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
}

/// Detects the format of a list from its content.
pub fn detect(text: &str) -> Format {
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

/// Reads a list from `reader` (invalid UTF-8 is replaced) and parses it; detects the format when
/// `format` is `None`.
pub fn parse_reader(
    format: Option<Format>,
    mut reader: impl Read,
    threat: Option<&str>,
) -> std::io::Result<ImportReport> {
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes);
    let format = format.unwrap_or_else(|| detect(&text));
    Ok(parse(format, &text, threat))
}

struct Builder {
    report: ImportReport,
    seen: HashSet<String>,
}

impl Builder {
    fn new() -> Self {
        Builder {
            report: ImportReport::default(),
            seen: HashSet::new(),
        }
    }

    fn skip(&mut self, line: usize, reason: String) {
        self.report.skipped_count += 1;
        if self.report.skipped.len() < MAX_SKIPPED_LISTED {
            self.report.skipped.push((line, reason));
        }
    }

    fn add(&mut self, kind: IndicatorKind, value: String, port: Option<u16>, threat: Option<&str>) {
        let id = indicator_id(kind, &value);
        if !self.seen.insert(id.clone()) {
            self.report.duplicates += 1;
            return;
        }
        self.report.indicators.push(ImportedIndicator {
            kind,
            value,
            id,
            port,
            threat: threat.map(str::to_string),
        });
    }
}

/// Parses a list in the given format. `threat` is attributed to every indicator (a Feodo row's
/// own `malware` column takes precedence).
pub fn parse(format: Format, text: &str, threat: Option<&str>) -> ImportReport {
    let mut b = Builder::new();
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
            Format::Firehol | Format::FeodoCsv => line,
        };
        match format {
            Format::Maltrail => maltrail_line(&mut b, n, line, threat),
            Format::Firehol => match canonicalize_as(IndicatorKind::Cidr, line) {
                Ok((kind, value)) => b.add(kind, value, None, threat),
                Err(e) => b.skip(n, e.to_string()),
            },
            Format::Plain => match canonicalize(line) {
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
        }
    }
    b.report
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
}
