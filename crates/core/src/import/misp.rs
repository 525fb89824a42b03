//! MISP importers: events in the MISP core JSON format (`{"Event": {...}}`, a list of them, or a
//! `{"response": [...]}` search result) and MISP galaxy cluster files
//! (`{"name", "type", "uuid", "values": [...]}`, as in the `misp-galaxy` repository).
//!
//! Invariants:
//! - Never panics; a document of the wrong shape is one skipped entry at position 0.
//! - **Events** yield indicators only from the attribute types in [`SUPPORTED_TYPES`]; every other
//!   attribute (including `link`, a non-absolute `uri` and deleted attributes) is skipped with a
//!   reason naming its type and value. The skip position is the running 1-based index of the
//!   attribute in the file: an event's own `Attribute`s first, then its `Object`s' attributes in
//!   order, continuing across the events of a list.
//! - An attribute's TLP is the most restrictive `tlp:*` tag on the attribute, else on the event.
//! - An attribute's threat is, in order: a malware galaxy tag (`misp-galaxy:malpedia="Emotet"`,
//!   also `botnet`, `ransomware`, `tool`, ...; see [`MALWARE_GALAXIES`]) or cluster on the
//!   attribute, then on the event, then the `threat` argument of [`super::parse`].
//! - Confidence is [`CONFIDENCE_IDS`] for attributes flagged `to_ids`, else
//!   [`CONFIDENCE_NO_IDS`] (MISP keeps non-IDS attributes as context: still imported, trusted
//!   less).
//! - `valid_from` is the attribute's `first_seen`, else the event `date` (midnight UTC);
//!   `valid_until` is the attribute's `last_seen`. The description is the attribute's `comment`,
//!   else the event's `info`.
//! - Galaxy clusters embedded in an event (malware galaxies and `threat-actor`) and every cluster
//!   of a galaxy file become threat documents: name = `value`, aliases = `meta.synonyms`,
//!   description, references = `meta.refs`, kind from the galaxy type (`botnet`, `ransomware`) or
//!   `meta.type` hints (`RAT`, `Loader`, ...), else [`ThreatKind::Other`] (the knowledge base has
//!   no separate kind for malware families in general or for actors). A galaxy file yields no
//!   indicators; a cluster without a usable value is skipped at its 1-based index in `values`.

use serde_json::{Map, Value};

use super::{Builder, ImportedIndicator, imported_threat, kind_from_hints, parse_time, show};
use crate::indicator::{IndicatorKind, canonicalize_as};
use crate::threat::{Threat, ThreatKind};
use crate::tlp::Tlp;

/// Confidence of an attribute flagged for detection (`to_ids: true`).
pub const CONFIDENCE_IDS: u8 = 80;
/// Confidence of an attribute not flagged for detection (`to_ids` false or absent).
pub const CONFIDENCE_NO_IDS: u8 = 50;

/// The MISP attribute types imported as indicators.
pub const SUPPORTED_TYPES: &[&str] = &[
    "ip-dst",
    "ip-src",
    "ip-dst|port",
    "ip-src|port",
    "domain",
    "hostname",
    "domain|ip",
    "url",
    "uri",
    "md5",
    "sha1",
    "sha256",
    "filename|md5",
    "filename|sha1",
    "filename|sha256",
];

/// Galaxy types whose clusters name a malware family or botnet (used as an indicator's threat).
pub const MALWARE_GALAXIES: &[&str] = &[
    "malpedia",
    "botnet",
    "ransomware",
    "tool",
    "rat",
    "banker",
    "stealer",
    "backdoor",
    "android",
];

/// What an event passes down to its attributes.
struct EventContext {
    tlp: Option<Tlp>,
    threat: Option<String>,
    date: Option<jiff::Timestamp>,
    info: Option<String>,
}

/// Imports MISP events (see the module documentation).
pub(super) fn parse_events(b: &mut Builder, v: &Value, threat: Option<&str>) {
    let events: Vec<&Value> = match v {
        Value::Object(o) if o.contains_key("Event") => vec![v],
        Value::Object(o) => match o.get("response").and_then(Value::as_array) {
            Some(r) => r.iter().collect(),
            None => {
                b.skip(
                    0,
                    "not a MISP event: expected {\"Event\": {...}} or a list of them".to_string(),
                );
                return;
            }
        },
        Value::Array(a) => a.iter().collect(),
        other => {
            b.skip(0, format!("not a MISP event: {}", show(other)));
            return;
        }
    };
    let mut n = 0usize;
    for (i, e) in events.into_iter().enumerate() {
        match e.get("Event").and_then(Value::as_object) {
            Some(ev) => event(b, ev, threat, &mut n),
            None => b.skip(0, format!("entry {} is not a MISP event object", i + 1)),
        }
    }
}

fn event(b: &mut Builder, ev: &Map<String, Value>, threat: Option<&str>, n: &mut usize) {
    let tags = tag_names(ev.get("Tag"));
    let ctx = EventContext {
        tlp: tlp_from_tags(&tags),
        threat: threat_from_tags(&tags)
            .or_else(|| threat_from_galaxies(ev.get("Galaxy")))
            .or_else(|| threat.map(str::to_string)),
        date: ev.get("date").and_then(Value::as_str).and_then(parse_time),
        info: ev
            .get("info")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string),
    };
    for g in ev
        .get("Galaxy")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let gtype = g.get("type").and_then(Value::as_str).unwrap_or("");
        let wanted = gtype == "threat-actor" || MALWARE_GALAXIES.contains(&gtype);
        for c in g
            .get("GalaxyCluster")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if !wanted {
                b.ignore(&format!("galaxy cluster ({gtype})"));
                continue;
            }
            match cluster_threat(gtype, c) {
                Ok(t) => {
                    b.push_threat(t);
                }
                Err(why) => b.skip(0, format!("event galaxy {gtype:?}: {why}")),
            }
        }
    }
    for a in ev
        .get("Attribute")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        *n += 1;
        attribute(b, *n, a, &ctx);
    }
    for o in ev
        .get("Object")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for a in o
            .get("Attribute")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            *n += 1;
            attribute(b, *n, a, &ctx);
        }
    }
}

/// The `name`s of a MISP `Tag` list.
fn tag_names(tags: Option<&Value>) -> Vec<&str> {
    tags.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("name").and_then(Value::as_str))
        .collect()
}

/// The most restrictive `tlp:*` tag.
fn tlp_from_tags(tags: &[&str]) -> Option<Tlp> {
    tags.iter()
        .filter(|t| t.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("tlp:")))
        .filter_map(|t| t.parse::<Tlp>().ok())
        .max()
}

/// The value of the first malware galaxy tag, e.g. `misp-galaxy:malpedia="Emotet"` → `Emotet`.
fn threat_from_tags(tags: &[&str]) -> Option<String> {
    tags.iter().find_map(|t| {
        let rest = t.strip_prefix("misp-galaxy:")?;
        let (gtype, value) = rest.split_once('=')?;
        if !MALWARE_GALAXIES.contains(&gtype.trim()) {
            return None;
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value)
            .trim();
        (!value.is_empty()).then(|| value.to_string())
    })
}

/// The value of the first cluster of the first malware galaxy in a MISP `Galaxy` list.
fn threat_from_galaxies(galaxies: Option<&Value>) -> Option<String> {
    galaxies
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|g| {
            g.get("type")
                .and_then(Value::as_str)
                .is_some_and(|t| MALWARE_GALAXIES.contains(&t))
        })
        .flat_map(|g| {
            g.get("GalaxyCluster")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .find_map(|c| {
            c.get("value")
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        })
}

/// MISP booleans come as `true`, `"1"`, `1` or `"true"`.
fn misp_bool(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_u64() == Some(1),
        Some(Value::String(s)) => s == "1" || s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

fn attribute(b: &mut Builder, n: usize, a: &Value, ctx: &EventContext) {
    let Some(a) = a.as_object() else {
        b.skip(n, format!("attribute is not an object: {}", show(a)));
        return;
    };
    let ty = a.get("type").and_then(Value::as_str).unwrap_or("");
    let Some(value) = a.get("value").and_then(Value::as_str) else {
        let v = a
            .get("value")
            .map(show)
            .unwrap_or_else(|| "none".to_string());
        b.skip(
            n,
            format!("attribute of type {ty:?} has no text value ({v})"),
        );
        return;
    };
    let shown = show(&Value::String(value.to_string()));
    if misp_bool(a.get("deleted")) {
        b.skip(n, format!("deleted attribute of type {ty:?}: {shown}"));
        return;
    }
    // (kind to canonicalise as, text, port)
    let mut parts: Vec<(IndicatorKind, &str, Option<u16>)> = Vec::new();
    match ty {
        "ip-dst" | "ip-src" => parts.push((IndicatorKind::Cidr, value, None)),
        "ip-dst|port" | "ip-src|port" => {
            let Some((ip, port)) = value.rsplit_once('|') else {
                b.skip(n, format!("{ty} without '|': {shown}"));
                return;
            };
            let Ok(port) = port.trim().parse::<u16>() else {
                b.skip(n, format!("{ty} with a bad port: {shown}"));
                return;
            };
            parts.push((IndicatorKind::Cidr, ip, Some(port)));
        }
        "domain" | "hostname" => parts.push((IndicatorKind::Domain, value, None)),
        "domain|ip" => {
            let Some((domain, ip)) = value.split_once('|') else {
                b.skip(n, format!("{ty} without '|': {shown}"));
                return;
            };
            parts.push((IndicatorKind::Domain, domain, None));
            parts.push((IndicatorKind::Cidr, ip, None));
        }
        "url" => parts.push((IndicatorKind::Url, value, None)),
        "uri" if value.contains("://") => parts.push((IndicatorKind::Url, value, None)),
        "uri" => {
            b.skip(n, format!("uri is not absolute: {shown}"));
            return;
        }
        "link" => {
            b.skip(n, format!("link is a reference, not an indicator: {shown}"));
            return;
        }
        "md5" => parts.push((IndicatorKind::Md5, value, None)),
        "sha1" => parts.push((IndicatorKind::Sha1, value, None)),
        "sha256" => parts.push((IndicatorKind::Sha256, value, None)),
        "filename|md5" | "filename|sha1" | "filename|sha256" => {
            let kind = match ty {
                "filename|md5" => IndicatorKind::Md5,
                "filename|sha1" => IndicatorKind::Sha1,
                _ => IndicatorKind::Sha256,
            };
            let Some((_, hash)) = value.rsplit_once('|') else {
                b.skip(n, format!("{ty} without '|': {shown}"));
                return;
            };
            parts.push((kind, hash, None));
        }
        _ => {
            b.skip(n, format!("unsupported attribute type {ty:?}: {shown}"));
            return;
        }
    }
    let tags = tag_names(a.get("Tag"));
    let tlp = tlp_from_tags(&tags).or(ctx.tlp);
    let threat = threat_from_tags(&tags)
        .or_else(|| threat_from_galaxies(a.get("Galaxy")))
        .or_else(|| ctx.threat.clone());
    let confidence = if misp_bool(a.get("to_ids")) {
        CONFIDENCE_IDS
    } else {
        CONFIDENCE_NO_IDS
    };
    let valid_from = a
        .get("first_seen")
        .and_then(Value::as_str)
        .and_then(parse_time)
        .or(ctx.date);
    let valid_until = a
        .get("last_seen")
        .and_then(Value::as_str)
        .and_then(parse_time);
    let description = a
        .get("comment")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .or_else(|| ctx.info.clone());
    for (want, text, port) in parts {
        match canonicalize_as(want, text) {
            Ok((kind, canonical)) => {
                let mut ind = ImportedIndicator::new(kind, canonical, port, threat.clone());
                ind.tlp = tlp;
                ind.confidence = Some(confidence);
                ind.valid_from = valid_from;
                ind.valid_until = valid_until;
                ind.description = description.clone();
                b.push(ind);
            }
            Err(e) => b.skip(n, format!("{ty}: {e}")),
        }
    }
}

/// Imports a MISP galaxy cluster file (see the module documentation).
pub(super) fn parse_galaxy(b: &mut Builder, v: &Value) {
    let Some(values) = v.get("values").and_then(Value::as_array) else {
        b.skip(
            0,
            "not a MISP galaxy: expected an object with a \"values\" array".to_string(),
        );
        return;
    };
    let gtype = v.get("type").and_then(Value::as_str).unwrap_or("");
    for (i, c) in values.iter().enumerate() {
        match cluster_threat(gtype, c) {
            Ok(t) => {
                b.push_threat(t);
            }
            Err(why) => b.skip(i + 1, why),
        }
    }
}

/// Strings of a JSON value that is a string or a list of strings.
fn strings(v: Option<&Value>) -> Vec<&str> {
    match v {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// The threat kind of a cluster of galaxy type `gtype` with `meta.type` hints.
fn galaxy_kind(gtype: &str, hints: &[&str]) -> ThreatKind {
    match gtype {
        "botnet" => ThreatKind::Botnet,
        "ransomware" => ThreatKind::Ransomware,
        "rat" => ThreatKind::Rat,
        "banker" => ThreatKind::BankingTrojan,
        "stealer" => ThreatKind::Infostealer,
        _ => kind_from_hints(hints.iter().copied(), ThreatKind::Other),
    }
}

/// One galaxy cluster as a threat.
fn cluster_threat(gtype: &str, c: &Value) -> Result<Threat, String> {
    let Some(c) = c.as_object() else {
        return Err(format!("cluster is not an object: {}", show(c)));
    };
    let uuid = c.get("uuid").and_then(Value::as_str).unwrap_or("?");
    let Some(value) = c
        .get("value")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|v| !v.is_empty())
    else {
        let v = c
            .get("value")
            .map(show)
            .unwrap_or_else(|| "none".to_string());
        return Err(format!("cluster {uuid} has no usable value ({v})"));
    };
    let meta = c.get("meta");
    let hints = strings(meta.and_then(|m| m.get("type")));
    imported_threat(
        value,
        galaxy_kind(gtype, &hints),
        c.get("description").and_then(Value::as_str).unwrap_or(""),
        strings(meta.and_then(|m| m.get("synonyms"))),
        strings(meta.and_then(|m| m.get("refs"))),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::super::fixtures::{GALAXIES, MISP_EVENT, text};
    use super::super::{Format, ImportReport, detect, parse, slugify, validate_imported};
    use super::*;
    use std::collections::HashSet;

    fn ts(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn misp_event_fixture() {
        let event = text(MISP_EVENT);
        assert_eq!(detect(&event), Format::MispEvent);
        let r = parse(Format::MispEvent, &event, Some("fallback"));
        let got: Vec<(IndicatorKind, &str, Option<u16>)> = r
            .indicators
            .iter()
            .map(|i| (i.kind, i.value.as_str(), i.port))
            .collect();
        assert_eq!(
            got,
            [
                (IndicatorKind::Ipv4, "45.79.112.203", None),
                (IndicatorKind::Ipv4, "103.75.201.2", Some(443)),
                (IndicatorKind::Domain, "shop-example-garden.com", None),
                (
                    IndicatorKind::Url,
                    "http://shop-example-garden.com/wp-content/uploads/Invoice_0510.zip",
                    None
                ),
                (
                    IndicatorKind::Sha256,
                    "a4f1c3d2e5b6978812345678abcdef0123456789abcdef0123456789abcdef01",
                    None
                ),
                (IndicatorKind::Md5, "0f3c2b1a9e8d7c6b5a4f3e2d1c0b9a87", None),
                (IndicatorKind::Ipv6, "2604:a880:400:d0::1a3e:5001", None),
                (IndicatorKind::Domain, "c2.emotet-example.org", None),
            ]
        );
        // The comment, the email-src and the object's port attribute, by attribute index.
        let lines: Vec<usize> = r.skipped.iter().map(|(n, _)| *n).collect();
        assert_eq!(lines, [7, 8, 10]);
        assert!(r.skipped[0].1.contains("\"comment\""), "{:?}", r.skipped);
        assert!(r.skipped[1].1.contains("\"email-src\""));
        assert!(r.skipped[1].1.contains("accounts@invoices-example.net"));
        assert!(r.skipped[2].1.contains("\"port\"") && r.skipped[2].1.contains("8080"));
        assert_eq!(r.skipped_count, 3);
        assert_eq!(r.duplicates, 0);

        // The malpedia galaxy tag beats the fallback threat.
        assert!(
            r.indicators
                .iter()
                .all(|i| i.threat.as_deref() == Some("Emotet"))
        );
        // Event tag tlp:green; the attribute's own tag wins.
        let tlps: Vec<Option<Tlp>> = r.indicators.iter().map(|i| i.tlp).collect();
        let g = Some(Tlp::Green);
        assert_eq!(tlps, [g, Some(Tlp::Amber), g, g, g, g, g, Some(Tlp::Red)]);
        let conf: Vec<u8> = r.indicators.iter().filter_map(|i| i.confidence).collect();
        assert_eq!(conf, [80, 80, 50, 80, 80, 80, 80, 80]);
        let first = &r.indicators[0];
        assert_eq!(first.valid_from, Some(ts("2024-05-09T18:22:00Z")));
        assert_eq!(first.valid_until, Some(ts("2024-05-12T06:00:00Z")));
        assert_eq!(first.description.as_deref(), Some("Emotet C2"));
        let second = &r.indicators[1];
        assert_eq!(second.valid_from, Some(ts("2024-05-10T00:00:00Z")));
        assert_eq!(second.valid_until, None);
        assert_eq!(
            second.description.as_deref(),
            Some("Emotet epoch 5 malspam wave: C2 servers and loader payloads")
        );

        // The event's malpedia cluster is a threat document.
        assert_eq!(r.threats.len(), 1);
        let t = &r.threats[0];
        assert_eq!((t.id.as_str(), t.name.as_str()), ("emotet", "Emotet"));
        assert_eq!(t.aliases, ["Geodo", "Heodo"]);
        assert_eq!(t.references.len(), 2);
        assert!(t.description.starts_with("While Emotet"));
        assert_eq!(validate_imported(t), Ok(()));

        // A list of events: attribute indices run on, everything else is a duplicate.
        let two = format!("[{event}, {event}]");
        let r2 = parse(Format::MispEvent, &two, None);
        assert_eq!(r2.indicators, r.indicators);
        assert_eq!(r2.duplicates, 8 + 1);
        let lines: Vec<usize> = r2.skipped.iter().map(|(n, _)| *n).collect();
        assert_eq!(lines, [7, 8, 10, 18, 19, 21]);
        let search = format!("{{\"response\": [{event}]}}");
        assert_eq!(parse(Format::MispEvent, &search, None), r);
    }

    #[test]
    fn misp_attribute_types() {
        let attrs = [
            ("ip-src", "10.1.2.0/24", true),
            ("ip-src|port", "[2001:db8::1]|8443", false),
            ("ip-dst|port", "2001:db8::2|53", true),
            ("domain|ip", "Evil.example|198.51.100.7", true),
            ("uri", "/gate.php", true),
            ("uri", "https://evil.example/gate.php", true),
            ("link", "https://blog.example/report", true),
            (
                "filename|sha1",
                "a.exe|DA39A3EE5E6B4B0D3255BFEF95601890AFD80709",
                true,
            ),
            ("filename|sha256", "no-pipe", true),
            ("md5", "not-a-hash", true),
            ("ip-dst|port", "1.2.3.4|http", true),
            ("yara", &"x".repeat(500), true),
        ];
        let list: Vec<Value> = attrs
            .iter()
            .map(|(t, v, ids)| serde_json::json!({"type": t, "value": v, "to_ids": ids}))
            .collect();
        let mut deleted =
            serde_json::json!({"type": "domain", "value": "gone.example", "deleted": true});
        deleted["to_ids"] = Value::from("1");
        let mut all = list.clone();
        all.push(deleted);
        all.push(Value::from(5));
        all.push(serde_json::json!({"type": "domain", "value": 7}));
        let doc = serde_json::json!({"Event": {"info": "x", "Attribute": all}}).to_string();
        let r = parse(Format::MispEvent, &doc, Some("Fallback"));
        let got: Vec<(&str, Option<u16>)> = r
            .indicators
            .iter()
            .map(|i| (i.value.as_str(), i.port))
            .collect();
        assert_eq!(
            got,
            [
                ("10.1.2.0/24", None),
                ("2001:db8::1", Some(8443)),
                ("2001:db8::2", Some(53)),
                ("evil.example", None),
                ("198.51.100.7", None),
                ("https://evil.example/gate.php", None),
                ("da39a3ee5e6b4b0d3255bfef95601890afd80709", None),
            ]
        );
        assert!(
            r.indicators
                .iter()
                .all(|i| i.threat.as_deref() == Some("Fallback"))
        );
        assert!(r.indicators.iter().all(|i| i.tlp.is_none()));
        let lines: Vec<usize> = r.skipped.iter().map(|(n, _)| *n).collect();
        assert_eq!(lines, [5, 7, 9, 10, 11, 12, 13, 14, 15], "{:?}", r.skipped);
        let why = |n: usize| &r.skipped.iter().find(|(l, _)| *l == n).unwrap().1;
        assert!(why(5).contains("not absolute"));
        assert!(why(7).contains("link"));
        assert!(why(12).contains("\"yara\"") && why(12).len() < 200);
        assert!(why(13).contains("deleted"));
        // Galaxy clusters of other galaxies do not name the threat; unknown shapes are skipped.
        let doc = serde_json::json!({"Event": {
            "Tag": [{"name": "misp-galaxy:threat-actor=\"APT1\""}, {"name": "tlp:amber+strict"},
                    {"name": "tlp:green"}, {"name": "tlp:ex:chr"}],
            "Galaxy": [{"type": "mitre-attack-pattern", "GalaxyCluster": [{"value": "Phishing - T1566"}]},
                       {"type": "botnet", "GalaxyCluster": [{"value": "Necurs", "meta": {"synonyms": ["Necurs botnet"]}}]},
                       {"type": "threat-actor", "GalaxyCluster": [{"value": "$$$"}]}],
            "Attribute": [{"type": "domain", "value": "a.example"}],
            "Object": [{"Attribute": "nope"}, {"name": "x"}]
        }})
        .to_string();
        let r = parse(Format::MispEvent, &doc, None);
        assert_eq!(r.indicators.len(), 1);
        assert_eq!(r.indicators[0].threat.as_deref(), Some("Necurs"));
        assert_eq!(r.indicators[0].tlp, Some(Tlp::AmberStrict));
        assert_eq!(r.threats.len(), 1);
        assert_eq!(r.threats[0].kind, ThreatKind::Botnet);
        assert_eq!(
            r.ignored.get("galaxy cluster (mitre-attack-pattern)"),
            Some(&1)
        );
        assert_eq!(r.skipped.len(), 1);
        assert_eq!(r.skipped[0].0, 0);
        for bad in [
            "{}",
            "[1, {\"Event\": 3}]",
            "\"Event\"",
            "{\"response\": 5}",
        ] {
            let r = parse(Format::MispEvent, bad, None);
            assert!(r.indicators.is_empty() && r.skipped_count >= 1, "{bad}");
            assert!(r.skipped.iter().all(|(n, _)| *n == 0), "{bad}");
        }
    }

    /// Independent count of the threats a galaxy file should give: clusters whose value has an
    /// ASCII letter or digit, by distinct id.
    fn expected_ids(v: &Value) -> (usize, usize) {
        let mut ids = HashSet::new();
        let mut usable = 0;
        for c in v["values"].as_array().unwrap() {
            let Some(value) = c["value"].as_str() else {
                continue;
            };
            if !value.chars().any(|c| c.is_ascii_alphanumeric()) {
                continue;
            }
            usable += 1;
            let words: Vec<String> = value
                .split(|c: char| !c.is_ascii_alphanumeric())
                .filter(|w| !w.is_empty())
                .map(str::to_ascii_lowercase)
                .collect();
            let mut id = words.join("-");
            id.truncate(64);
            ids.insert(id.trim_end_matches('-').to_string());
        }
        (usable, ids.len())
    }

    #[test]
    fn misp_galaxy_files() {
        let mut measured = Vec::new();
        for f in GALAXIES {
            let name = f.0;
            let body = text(f);
            let v: Value = serde_json::from_str(&body).unwrap();
            let clusters = v["values"].as_array().unwrap().len();
            let (usable, distinct) = expected_ids(&v);
            assert_eq!(detect(&body), Format::MispGalaxy, "{name}");
            let r: ImportReport = parse(Format::MispGalaxy, &body, None);
            assert!(r.indicators.is_empty(), "{name}");
            assert_eq!(r.threats.len(), distinct, "{name}");
            assert_eq!(r.threats.len() + r.duplicates, usable, "{name}");
            assert_eq!(
                r.threats.len() + r.duplicates + r.skipped_count,
                clusters,
                "{name}"
            );
            let ids: HashSet<&str> = r.threats.iter().map(|t| t.id.as_str()).collect();
            assert_eq!(ids.len(), r.threats.len(), "{name}: ids unique");
            for t in &r.threats {
                assert_eq!(validate_imported(t), Ok(()), "{name}");
                assert_eq!(slugify(&t.name).as_deref(), Some(t.id.as_str()));
                assert!(t.playbook.detect.is_empty() && t.playbook.contain.is_empty());
            }
            measured.push((
                name,
                clusters,
                r.threats.len(),
                r.duplicates,
                r.skipped_count,
            ));
            eprintln!(
                "{name}: {clusters} clusters, {} threats, {} duplicate ids, {} skipped {:?}",
                r.threats.len(),
                r.duplicates,
                r.skipped_count,
                r.skipped
            );
            let kinds: HashSet<ThreatKind> = r.threats.iter().map(|t| t.kind).collect();
            match v["type"].as_str().unwrap() {
                "botnet" => assert_eq!(kinds, HashSet::from([ThreatKind::Botnet])),
                "ransomware" => assert_eq!(kinds, HashSet::from([ThreatKind::Ransomware])),
                "tool" => {
                    assert!(kinds.contains(&ThreatKind::Rat) && kinds.contains(&ThreatKind::Other))
                }
                _ => assert_eq!(kinds, HashSet::from([ThreatKind::Other]), "{name}"),
            }
        }
        assert_eq!(
            measured,
            [
                ("misp-galaxy/botnet.json", 148, 148, 0, 0),
                ("misp-galaxy/malpedia.json.gz", 3683, 3682, 1, 0),
                ("misp-galaxy/ransomware.json.gz", 2135, 2134, 0, 1),
                ("misp-galaxy/threat-actor.json.gz", 1041, 1041, 0, 0),
                ("misp-galaxy/tool.json.gz", 608, 608, 0, 0),
            ]
        );
    }

    #[test]
    fn misp_galaxy_content() {
        let galaxy = |n: &str| {
            parse(
                Format::MispGalaxy,
                &super::super::fixtures::find(&GALAXIES, n),
                None,
            )
        };
        let botnet = galaxy("botnet.json");
        let bagle = botnet.threats.iter().find(|t| t.id == "bagle").unwrap();
        assert_eq!(bagle.aliases, ["Beagle", "Mitglieder", "Lodeight"]);
        assert_eq!(
            bagle.references,
            ["https://en.wikipedia.org/wiki/Bagle_(computer_worm)"]
        );
        assert!(bagle.description.contains("mass-mailing"));
        let malpedia = galaxy("malpedia.json.gz");
        let emotet = malpedia.threats.iter().find(|t| t.id == "emotet").unwrap();
        assert_eq!(emotet.aliases, ["Geodo", "Heodo"]);
        let ransomware = galaxy("ransomware.json.gz");
        assert!(
            ransomware.skipped[0].1.contains("$$$"),
            "{:?}",
            ransomware.skipped
        );
        let actors = galaxy("threat-actor.json.gz");
        // A synonym without ASCII letters is dropped, the cluster kept.
        assert!(
            actors
                .threats
                .iter()
                .all(|t| t.aliases.iter().all(|a| a != "狼毒草"))
        );
        for bad in [
            "{\"values\": 3}",
            "[]",
            "{\"values\": [1, {\"value\": \"\"}, {}]}",
        ] {
            let r = parse(Format::MispGalaxy, bad, None);
            assert!(r.threats.is_empty() && r.skipped_count >= 1, "{bad}");
        }
        let r = parse(
            Format::MispGalaxy,
            "{\"values\": [1, {\"value\": \"\"}, {}]}",
            None,
        );
        let lines: Vec<usize> = r.skipped.iter().map(|(n, _)| *n).collect();
        assert_eq!(lines, [1, 2, 3]);
    }

    #[test]
    fn misp_truncations_never_panic() {
        let event = text(MISP_EVENT);
        for end in (0..event.len()).step_by(7) {
            let cut = &event[..end];
            let r = parse(Format::MispEvent, cut, None);
            assert!(r.indicators.len() <= 8);
        }
    }
}
