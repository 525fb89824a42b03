//! The MISP feed export: the files a MISP instance's "Feeds" fetch reads from a feed URL.
//!
//! - `manifest.json` ([`manifest`], what [`super::render`] returns for [`super::Format::Misp`]):
//!   an object keyed by event uuid, each entry the event's `info`, `Orgc`, `analysis`,
//!   `threat_level_id`, `date`, `timestamp`, `published` and `Tag`s;
//! - `<uuid>.json` ([`event`]): `{"Event": {...}}` with one attribute per indicator;
//! - `hashes.csv` ([`hashes_csv`]): `md5(attribute value),event uuid` per attribute, which MISP
//!   uses to correlate a feed without fetching every event.
//!
//! Events: one per threat that has active indicators (`threatfeed: <name> indicators`), plus
//! `threatfeed: unattributed indicators` for indicators of no threat. A threat id the knowledge
//! base does not know is still its own event, named by the id. Event uuids are UUIDv5 (in the
//! project's namespace, [`crate::stix::ids::THREATFEED_NAMESPACE`]) of the threat id, so an event
//! keeps its uuid across exports and MISP updates it instead of adding a copy; attribute uuids
//! are UUIDv5 of the event uuid and the indicator id (an indicator whose threat changes becomes a
//! new attribute of the other event instead of one uuid claimed by two events).
//!
//! Attributes: ipv4 / ipv6 / cidr → `ip-dst` (MISP takes a CIDR there), domain → `domain`,
//! url → `url` (category `Network activity`); md5 / sha1 / sha256 (category `Payload delivery`);
//! all `to_ids: true`, tagged with their TLP (`tlp:clear` … `tlp:red`, MISP's TLP 2.0 taxonomy),
//! `first_seen` / `last_seen` from the record, `timestamp` its last change. The event is tagged
//! with the most restrictive TLP of its attributes. `analysis` 2 (complete), `threat_level_id` 2
//! (medium); the event's `date` is the day of its earliest first sighting, its `timestamp` the
//! export's generation time (so MISP always pulls the current content — removals included,
//! which no attribute timestamp can show). Only active records are written.

use super::{Meta, Threats, active, one_line};
use crate::indicator::IndicatorKind;
use crate::intel::IndicatorRecord;
use crate::stix::ids::THREATFEED_NAMESPACE;
use crate::threat::KnowledgeBase;
use crate::tlp::Tlp;
use jiff::Timestamp;
use jiff::fmt::strtime;
use md5::{Digest, Md5};
use serde::Serialize;
use std::collections::BTreeMap;
use uuid::Uuid;

/// The name of the creating organisation (`Orgc`).
pub const ORG_NAME: &str = "threatfeed";

/// The uuid of the creating organisation: fixed for the life of the project (MISP identifies the
/// feed's creator by it).
pub const ORG_UUID: &str = "427b39ec-cfad-40cb-8bd7-3642baea16d4";

/// The event-info of indicators of no threat.
pub const UNATTRIBUTED_INFO: &str = "threatfeed: unattributed indicators";

/// The uuid of the event of `threat_id` (`None`: the unattributed indicators).
pub fn event_uuid(threat_id: Option<&str>) -> String {
    let name = match threat_id {
        Some(t) => format!("misp-event|threat|{t}"),
        None => "misp-event|unattributed".to_string(),
    };
    Uuid::new_v5(&THREATFEED_NAMESPACE, name.as_bytes()).to_string()
}

/// The uuid of the attribute of indicator `record_id` in event `event_uuid`.
pub fn attribute_uuid(event_uuid: &str, record_id: &str) -> String {
    let name = format!("misp-attribute|{event_uuid}|{record_id}");
    Uuid::new_v5(&THREATFEED_NAMESPACE, name.as_bytes()).to_string()
}

/// MISP's TLP tag of `tlp`: `tlp:clear`, `tlp:green`, `tlp:amber`, `tlp:amber+strict`, `tlp:red`.
pub fn tlp_tag(tlp: Tlp) -> String {
    format!("tlp:{}", tlp.as_str())
}

/// MISP attribute type and category of an indicator kind.
pub fn attribute_type(kind: IndicatorKind) -> (&'static str, &'static str) {
    match kind {
        IndicatorKind::Ipv4 | IndicatorKind::Ipv6 | IndicatorKind::Cidr => {
            ("ip-dst", "Network activity")
        }
        IndicatorKind::Domain => ("domain", "Network activity"),
        IndicatorKind::Url => ("url", "Network activity"),
        IndicatorKind::Md5 => ("md5", "Payload delivery"),
        IndicatorKind::Sha1 => ("sha1", "Payload delivery"),
        IndicatorKind::Sha256 => ("sha256", "Payload delivery"),
    }
}

#[derive(Debug, Clone, Serialize)]
struct Tag {
    name: String,
}

#[derive(Debug, Clone, Serialize)]
struct Org {
    name: &'static str,
    uuid: &'static str,
}

const ORGC: Org = Org {
    name: ORG_NAME,
    uuid: ORG_UUID,
};

#[derive(Debug, Clone, Serialize)]
struct Attribute {
    uuid: String,
    #[serde(rename = "type")]
    kind: &'static str,
    category: &'static str,
    to_ids: bool,
    value: String,
    timestamp: String,
    first_seen: String,
    last_seen: String,
    comment: String,
    #[serde(rename = "Tag")]
    tags: Vec<Tag>,
}

#[derive(Debug, Clone, Serialize)]
struct Event {
    uuid: String,
    info: String,
    date: String,
    timestamp: String,
    publish_timestamp: String,
    analysis: &'static str,
    threat_level_id: &'static str,
    published: bool,
    #[serde(rename = "Orgc")]
    orgc: Org,
    #[serde(rename = "Tag")]
    tags: Vec<Tag>,
    #[serde(rename = "Attribute")]
    attributes: Vec<Attribute>,
}

#[derive(Serialize)]
struct EventFile<'a> {
    #[serde(rename = "Event")]
    event: &'a Event,
}

#[derive(Serialize)]
struct ManifestEntry<'a> {
    info: &'a str,
    #[serde(rename = "Orgc")]
    orgc: &'a Org,
    analysis: &'static str,
    threat_level_id: &'static str,
    date: &'a str,
    timestamp: &'a str,
    published: bool,
    #[serde(rename = "Tag")]
    tags: &'a [Tag],
}

/// MISP's time form: RFC 3339 with microseconds and an explicit UTC offset.
fn misp_time(t: Timestamp) -> String {
    strtime::format("%Y-%m-%dT%H:%M:%S%.6f+00:00", t).unwrap_or_default()
}

/// The UTC day of `t`, `YYYY-MM-DD`.
fn misp_date(t: Timestamp) -> String {
    strtime::format("%Y-%m-%d", t).unwrap_or_default()
}

fn unix(t: Timestamp) -> String {
    t.as_second().to_string()
}

fn comment(r: &IndicatorRecord) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(f) = r.family.as_deref().map(|f| one_line(f, 64))
        && !f.is_empty()
    {
        parts.push(f);
    }
    if let Some(p) = r.port {
        parts.push(format!("port {p}"));
    }
    parts.push(format!("confidence {}", r.confidence.min(100)));
    parts.push(format!("threatfeed {}", r.id));
    parts.join(", ")
}

fn attribute(event_uuid: &str, r: &IndicatorRecord) -> Attribute {
    let (kind, category) = attribute_type(r.kind);
    let first = r.first_seen.min(r.last_seen);
    let mut changed = r.last_seen.max(r.first_seen);
    if let Some(c) = r.status_changed {
        changed = changed.max(c);
    }
    Attribute {
        uuid: attribute_uuid(event_uuid, &r.id),
        kind,
        category,
        to_ids: true,
        value: r.value.trim().to_string(),
        timestamp: unix(changed),
        first_seen: misp_time(first),
        last_seen: misp_time(r.last_seen.max(first)),
        comment: comment(r),
        tags: vec![Tag {
            name: tlp_tag(r.tlp),
        }],
    }
}

/// The events of the feed, by uuid.
fn events(records: &[IndicatorRecord], kb: &KnowledgeBase, meta: &Meta) -> BTreeMap<String, Event> {
    let mut threats = Threats::new(kb);
    // Event key (threat id, or None) → (info, records).
    let mut groups: BTreeMap<Option<String>, (String, Vec<&IndicatorRecord>)> = BTreeMap::new();
    for r in active(records) {
        if r.value.trim().is_empty() {
            continue;
        }
        let (key, info) = match (threats.of(r), r.threat_id.as_deref().map(str::trim)) {
            (Some(t), _) => (
                Some(t.id.clone()),
                format!("threatfeed: {} indicators", one_line(&t.name, 128)),
            ),
            (None, Some(id)) if !id.is_empty() => (
                Some(id.to_string()),
                format!("threatfeed: {} indicators", one_line(id, 128)),
            ),
            _ => (None, UNATTRIBUTED_INFO.to_string()),
        };
        groups
            .entry(key)
            .or_insert_with(|| (info, Vec::new()))
            .1
            .push(r);
    }
    let generated = unix(meta.generated);
    groups
        .into_iter()
        .filter_map(|(key, (info, rs))| {
            let uuid = event_uuid(key.as_deref());
            let date = rs.iter().map(|r| r.first_seen.min(r.last_seen)).min()?;
            let tlp = rs.iter().map(|r| r.tlp).max()?;
            let attributes: Vec<Attribute> = rs.iter().map(|r| attribute(&uuid, r)).collect();
            let event = Event {
                uuid: uuid.clone(),
                info,
                date: misp_date(date),
                timestamp: generated.clone(),
                publish_timestamp: generated.clone(),
                analysis: "2",
                threat_level_id: "2",
                published: true,
                orgc: ORGC,
                tags: vec![Tag { name: tlp_tag(tlp) }],
                attributes,
            };
            Some((uuid, event))
        })
        .collect()
}

fn to_bytes<T: Serialize>(v: &T) -> Vec<u8> {
    // Strings, booleans, lists and maps with string keys only: serialising cannot fail.
    let mut out = serde_json::to_vec(v).unwrap_or_default();
    out.push(b'\n');
    out
}

/// The feed's `manifest.json`: event uuid → the event's summary.
pub fn manifest(records: &[IndicatorRecord], kb: &KnowledgeBase, meta: &Meta) -> Vec<u8> {
    let events = events(records, kb, meta);
    let manifest: BTreeMap<&str, ManifestEntry<'_>> = events
        .iter()
        .map(|(uuid, e)| {
            (
                uuid.as_str(),
                ManifestEntry {
                    info: &e.info,
                    orgc: &e.orgc,
                    analysis: e.analysis,
                    threat_level_id: e.threat_level_id,
                    date: &e.date,
                    timestamp: &e.timestamp,
                    published: e.published,
                    tags: &e.tags,
                },
            )
        })
        .collect();
    to_bytes(&manifest)
}

/// The event file `<uuid>.json` of one event uuid listed in the manifest (`uuid` may carry
/// the `.json` suffix; case is ignored); `None` when unknown.
pub fn event(
    uuid: &str,
    records: &[IndicatorRecord],
    kb: &KnowledgeBase,
    meta: &Meta,
) -> Option<Vec<u8>> {
    let wanted = uuid.trim();
    let wanted = wanted.strip_suffix(".json").unwrap_or(wanted);
    let wanted = Uuid::parse_str(wanted).ok()?.to_string();
    let events = events(records, kb, meta);
    let e = events.get(&wanted)?;
    Some(to_bytes(&EventFile { event: e }))
}

/// The feed's `hashes.csv`: `md5(attribute value),event uuid` per attribute, events by uuid.
pub fn hashes_csv(records: &[IndicatorRecord], kb: &KnowledgeBase, meta: &Meta) -> Vec<u8> {
    let mut out = String::new();
    for (uuid, e) in events(records, kb, meta) {
        for a in &e.attributes {
            let digest = Md5::digest(a.value.as_bytes());
            out.push_str(&hex::encode(digest));
            out.push(',');
            out.push_str(&uuid);
            out.push('\n');
        }
    }
    out.into_bytes()
}
