//! Typed STIX 2.1 Domain and Relationship Objects threatfeed produces — identity, indicator,
//! malware, course-of-action, relationship, sighting, observed-data — and the builders that map
//! the project's own types onto them.
//!
//! Invariants:
//! - every object has `spec_version: "2.1"`, a deterministic id ([`super::ids::sdo_id`]),
//!   `created ≤ modified` and timestamps in [`super::timestamp`]'s form (UTC, milliseconds);
//! - every object threatfeed authors has `created_by_ref` = [`producer_id`] and exactly one TLP 2.0
//!   marking in `object_marking_refs`;
//! - indicators: `valid_until` is present only when strictly after `valid_from`; `revoked` is
//!   `true` exactly when the record is not active; patterns quote values with `'` and `\` escaped;
//! - the threat knowledge base is public: malware and course-of-action are TLP:CLEAR;
//! - optional properties are omitted, never `null` or empty lists.

use super::ids::sdo_id;
use super::marking::marking_for;
use super::{SPEC_VERSION, timestamp};
use crate::indicator::IndicatorKind;
use crate::intel::IndicatorRecord;
use crate::threat::{Threat, ThreatKind};
use crate::tlp::Tlp;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// The producer's name (the `identity` every object is `created_by_ref`).
pub const PRODUCER_NAME: &str = "threatfeed";

/// `created` / `modified` of the producer identity and of the knowledge-base objects (malware,
/// course-of-action), which have no timestamps of their own. Fixed so that re-exports are
/// identical; a consumer therefore does not see a knowledge-base edit as a new version.
pub const FIXED_CREATED: &str = "2026-01-01T00:00:00.000Z";

fn is_false(b: &bool) -> bool {
    !*b
}

/// The id of the producer identity.
pub fn producer_id() -> String {
    sdo_id("identity", &format!("producer|{PRODUCER_NAME}"))
}

/// The id of the `malware` object of a knowledge-base threat.
pub fn malware_id(threat_id: &str) -> String {
    sdo_id("malware", &format!("threat|{threat_id}"))
}

/// The id of the `course-of-action` (remediation playbook) of a knowledge-base threat.
pub fn course_of_action_id(threat_id: &str) -> String {
    sdo_id("course-of-action", &format!("threat|{threat_id}"))
}

/// The id of the `indicator` of an indicator record.
pub fn indicator_stix_id(record_id: &str) -> String {
    sdo_id("indicator", &format!("record|{record_id}"))
}

/// A STIX external reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalReference {
    /// The source's name.
    pub source_name: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// An id in that source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

/// `identity`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// Always `identity`.
    #[serde(rename = "type")]
    pub object_type: String,
    /// Always `2.1`.
    pub spec_version: String,
    /// `identity--…`.
    pub id: String,
    /// Created.
    pub created: String,
    /// Modified.
    pub modified: String,
    /// Name.
    pub name: String,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `system`, `organization`, ... (identity-class-ov).
    pub identity_class: String,
    /// TLP marking.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub object_marking_refs: Vec<String>,
}

/// The producer: threatfeed itself, an identity of class `system`, TLP:CLEAR.
pub fn producer_identity() -> Identity {
    Identity {
        object_type: "identity".into(),
        spec_version: SPEC_VERSION.into(),
        id: producer_id(),
        created: FIXED_CREATED.into(),
        modified: FIXED_CREATED.into(),
        name: PRODUCER_NAME.into(),
        description: Some(
            "threatfeed, a real-time threat feed of infection check-ins and indicators".into(),
        ),
        identity_class: "system".into(),
        object_marking_refs: vec![marking_for(Tlp::Clear).into()],
    }
}

/// The identity of a member organisation (`organization`), id derived from its org id.
///
/// Only for members named in what is exported — **never** for a contributor who chose to be
/// anonymous (its org id must not leak through an identity object or its id).
pub fn member_identity(org_id: &str, name: &str) -> Identity {
    Identity {
        object_type: "identity".into(),
        spec_version: SPEC_VERSION.into(),
        id: sdo_id("identity", &format!("org|{org_id}")),
        created: FIXED_CREATED.into(),
        modified: FIXED_CREATED.into(),
        name: name.into(),
        description: None,
        identity_class: "organization".into(),
        object_marking_refs: vec![marking_for(Tlp::Clear).into()],
    }
}

/// `indicator`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Indicator {
    /// Always `indicator`.
    #[serde(rename = "type")]
    pub object_type: String,
    /// Always `2.1`.
    pub spec_version: String,
    /// `indicator--…`.
    pub id: String,
    /// The producer.
    pub created_by_ref: String,
    /// The record's first sighting.
    pub created: String,
    /// The record's last change (last seen or status change), ≥ `created`.
    pub modified: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Always `["malicious-activity"]`.
    pub indicator_types: Vec<String>,
    /// The STIX pattern.
    pub pattern: String,
    /// Always `stix`.
    pub pattern_type: String,
    /// Always `2.1`.
    pub pattern_version: String,
    /// First seen.
    pub valid_from: String,
    /// Not believed after; only when after `valid_from`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<String>,
    /// 0–100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<u8>,
    /// The record is no longer believed (expired, decayed, withdrawn, ...).
    #[serde(default, skip_serializing_if = "is_false")]
    pub revoked: bool,
    /// Free labels: the family, the indicator kind.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// TLP marking.
    pub object_marking_refs: Vec<String>,
}

/// Quotes `v` as a STIX pattern string literal: `'…'` with `\` and `'` escaped.
pub fn pattern_literal(v: &str) -> String {
    let mut s = String::with_capacity(v.len() + 2);
    s.push('\'');
    for c in v.chars() {
        if c == '\\' || c == '\'' {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('\'');
    s
}

/// The STIX pattern matching an indicator of `kind` with canonical `value`.
pub fn pattern_for(kind: IndicatorKind, value: &str) -> String {
    let lit = pattern_literal(value);
    match kind {
        IndicatorKind::Ipv4 => format!("[ipv4-addr:value = {lit}]"),
        IndicatorKind::Ipv6 => format!("[ipv6-addr:value = {lit}]"),
        IndicatorKind::Cidr if value.contains(':') => format!("[ipv6-addr:value = {lit}]"),
        IndicatorKind::Cidr => format!("[ipv4-addr:value = {lit}]"),
        IndicatorKind::Domain => format!("[domain-name:value = {lit}]"),
        IndicatorKind::Url => format!("[url:value = {lit}]"),
        IndicatorKind::Md5 => format!("[file:hashes.MD5 = {lit}]"),
        IndicatorKind::Sha1 => format!("[file:hashes.'SHA-1' = {lit}]"),
        IndicatorKind::Sha256 => format!("[file:hashes.'SHA-256' = {lit}]"),
    }
}

/// The `indicator` of a record. Source names never appear (anonymous contributors stay so);
/// pass a record already filtered by [`crate::privacy`] for the recipient.
pub fn indicator_for(r: &IndicatorRecord) -> Indicator {
    let created = timestamp(r.first_seen);
    let mut last = r.last_seen.max(r.first_seen);
    if let Some(c) = r.status_changed {
        last = last.max(c);
    }
    let valid_until = r
        .valid_until
        .map(timestamp)
        .filter(|until| until.as_str() > created.as_str());
    let family = r.family.as_deref().filter(|f| !f.trim().is_empty());
    let name = match family {
        Some(f) => format!("{} {} ({f})", r.kind, r.value),
        None => format!("{} {}", r.kind, r.value),
    };
    let description = match &r.description {
        Some(d) if !d.trim().is_empty() => d.clone(),
        _ => {
            let mut d = format!("Malicious {} reported to threatfeed", r.kind);
            if let Some(f) = family {
                d.push_str(&format!(", associated with {f}"));
            }
            if let Some(p) = r.port {
                d.push_str(&format!(", port {p}"));
            }
            if !r.is_active() {
                d.push_str(&format!("; no longer active ({})", r.status.as_str()));
            }
            d.push('.');
            d
        }
    };
    let mut labels = vec![r.kind.as_str().to_string()];
    if let Some(f) = family {
        labels.push(f.to_ascii_lowercase());
    }
    Indicator {
        object_type: "indicator".into(),
        spec_version: SPEC_VERSION.into(),
        id: indicator_stix_id(&r.id),
        created_by_ref: producer_id(),
        created: created.clone(),
        modified: timestamp(last),
        name,
        description,
        indicator_types: vec!["malicious-activity".into()],
        pattern: pattern_for(r.kind, &r.value),
        pattern_type: "stix".into(),
        pattern_version: SPEC_VERSION.into(),
        valid_from: created,
        valid_until,
        confidence: Some(r.confidence.min(100)),
        revoked: !r.is_active(),
        labels,
        object_marking_refs: vec![marking_for(r.tlp).into()],
    }
}

/// `malware`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Malware {
    /// Always `malware`.
    #[serde(rename = "type")]
    pub object_type: String,
    /// Always `2.1`.
    pub spec_version: String,
    /// `malware--…`.
    pub id: String,
    /// The producer.
    pub created_by_ref: String,
    /// Created.
    pub created: String,
    /// Modified.
    pub modified: String,
    /// Display name.
    pub name: String,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Other names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// malware-type-ov values.
    pub malware_types: Vec<String>,
    /// Always `true`: threats are families.
    pub is_family: bool,
    /// References.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external_references: Vec<ExternalReference>,
    /// TLP marking.
    pub object_marking_refs: Vec<String>,
}

/// The STIX malware-type-ov values of a threat kind.
pub fn malware_types(kind: ThreatKind) -> Vec<String> {
    let v: &[&str] = match kind {
        ThreatKind::Botnet => &["bot"],
        ThreatKind::BankingTrojan => &["trojan", "spyware"],
        ThreatKind::Loader => &["downloader", "dropper"],
        ThreatKind::Rat => &["remote-access-trojan"],
        ThreatKind::Infostealer => &["spyware"],
        ThreatKind::Ransomware => &["ransomware"],
        ThreatKind::C2Framework => &["backdoor", "remote-access-trojan"],
        ThreatKind::IotBotnet => &["bot", "ddos"],
        ThreatKind::Other => &["unknown"],
    };
    v.iter().map(|s| s.to_string()).collect()
}

/// The host of a URL, for an external reference's `source_name`.
fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map(|(_, r)| r)?;
    let host = rest.split(['/', '?', '#']).next()?;
    let host = host.rsplit('@').next()?;
    (!host.is_empty()).then_some(host)
}

/// The `malware` object of a knowledge-base threat (a family; TLP:CLEAR).
pub fn malware_for(t: &Threat) -> Malware {
    let mut external_references = vec![ExternalReference {
        source_name: PRODUCER_NAME.into(),
        description: Some("threatfeed knowledge base".into()),
        url: None,
        external_id: Some(t.id.clone()),
    }];
    external_references.extend(t.references.iter().map(|u| ExternalReference {
        source_name: url_host(u).unwrap_or("reference").to_string(),
        description: None,
        url: Some(u.clone()),
        external_id: None,
    }));
    Malware {
        object_type: "malware".into(),
        spec_version: SPEC_VERSION.into(),
        id: malware_id(&t.id),
        created_by_ref: producer_id(),
        created: FIXED_CREATED.into(),
        modified: FIXED_CREATED.into(),
        name: t.name.clone(),
        description: Some(t.description.clone()).filter(|d| !d.trim().is_empty()),
        aliases: t.aliases.clone(),
        malware_types: malware_types(t.kind),
        is_family: true,
        external_references,
        object_marking_refs: vec![marking_for(Tlp::Clear).into()],
    }
}

/// A stand-in `malware` for a check-in whose threat is not in the knowledge base: the family as
/// the sensor named it (id from the lower-cased name), or "Unidentified malware" when none was
/// named. `malware_types: ["unknown"]`, TLP:CLEAR (a family name is not victim data).
pub fn unclassified_malware(family: Option<&str>) -> Malware {
    let family = family.map(str::trim).filter(|f| !f.is_empty());
    let (id, name, description) = match family {
        Some(f) => (
            sdo_id("malware", &format!("family|{}", f.to_ascii_lowercase())),
            f.to_string(),
            "A malware family named by a sensor, not documented in the threatfeed knowledge base.",
        ),
        None => (
            sdo_id("malware", "unidentified"),
            "Unidentified malware".to_string(),
            "Malware whose family is not known: a check-in to a monitored command-and-control \
             address that no sensor, indicator or rule attributed.",
        ),
    };
    Malware {
        object_type: "malware".into(),
        spec_version: SPEC_VERSION.into(),
        id,
        created_by_ref: producer_id(),
        created: FIXED_CREATED.into(),
        modified: FIXED_CREATED.into(),
        name,
        description: Some(description.into()),
        aliases: Vec::new(),
        malware_types: vec!["unknown".into()],
        is_family: true,
        external_references: Vec::new(),
        object_marking_refs: vec![marking_for(Tlp::Clear).into()],
    }
}

/// `course-of-action`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CourseOfAction {
    /// Always `course-of-action`.
    #[serde(rename = "type")]
    pub object_type: String,
    /// Always `2.1`.
    pub spec_version: String,
    /// `course-of-action--…`.
    pub id: String,
    /// The producer.
    pub created_by_ref: String,
    /// Created.
    pub created: String,
    /// Modified.
    pub modified: String,
    /// `Remediation: <threat name>`.
    pub name: String,
    /// The playbook as text.
    pub description: String,
    /// TLP marking.
    pub object_marking_refs: Vec<String>,
}

/// The remediation playbook of `t` as plain text: sections `Detect`, `Contain`, `Clean`, `Verify`
/// (one `- ` line per step) and `Customer notice`.
pub fn playbook_text(t: &Threat) -> String {
    let p = &t.playbook;
    let mut s = String::new();
    for (title, steps) in [
        ("Detect", &p.detect),
        ("Contain", &p.contain),
        ("Clean", &p.clean),
        ("Verify", &p.verify),
    ] {
        s.push_str(title);
        s.push_str(":\n");
        for step in steps {
            s.push_str("- ");
            s.push_str(step.trim());
            s.push('\n');
        }
        s.push('\n');
    }
    s.push_str("Customer notice:\n");
    s.push_str(p.customer_notice.trim());
    s
}

/// The `course-of-action` of a threat: its remediation playbook (TLP:CLEAR).
pub fn course_of_action_for(t: &Threat) -> CourseOfAction {
    CourseOfAction {
        object_type: "course-of-action".into(),
        spec_version: SPEC_VERSION.into(),
        id: course_of_action_id(&t.id),
        created_by_ref: producer_id(),
        created: FIXED_CREATED.into(),
        modified: FIXED_CREATED.into(),
        name: format!("Remediation: {}", t.name),
        description: playbook_text(t),
        object_marking_refs: vec![marking_for(Tlp::Clear).into()],
    }
}

/// The relationship types threatfeed produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RelationshipKind {
    /// indicator → malware.
    Indicates,
    /// course-of-action → malware.
    Mitigates,
}

impl RelationshipKind {
    /// The `relationship_type`.
    pub fn as_str(self) -> &'static str {
        match self {
            RelationshipKind::Indicates => "indicates",
            RelationshipKind::Mitigates => "mitigates",
        }
    }
}

/// `relationship`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Relationship {
    /// Always `relationship`.
    #[serde(rename = "type")]
    pub object_type: String,
    /// Always `2.1`.
    pub spec_version: String,
    /// `relationship--…` from (type, source, target).
    pub id: String,
    /// The producer.
    pub created_by_ref: String,
    /// Created.
    pub created: String,
    /// Modified (= created).
    pub modified: String,
    /// `indicates`, `mitigates`.
    pub relationship_type: String,
    /// Source object id.
    pub source_ref: String,
    /// Target object id.
    pub target_ref: String,
    /// TLP marking.
    pub object_marking_refs: Vec<String>,
}

impl Relationship {
    /// The same relationship marked `tlp` instead (TLP:CLEAR by default).
    pub fn marked(mut self, tlp: Tlp) -> Relationship {
        self.object_marking_refs = vec![marking_for(tlp).into()];
        self
    }
}

/// A relationship `source_id —kind→ target_id`, TLP:CLEAR unless [`Relationship::marked`].
/// Its id depends on (kind, source, target) only.
pub fn relationship(
    kind: RelationshipKind,
    source_id: &str,
    target_id: &str,
    created: Timestamp,
) -> Relationship {
    relationship_at(kind, source_id, target_id, timestamp(created))
}

pub(super) fn relationship_at(
    kind: RelationshipKind,
    source_id: &str,
    target_id: &str,
    created: String,
) -> Relationship {
    let kind = kind.as_str();
    Relationship {
        object_type: "relationship".into(),
        spec_version: SPEC_VERSION.into(),
        id: sdo_id("relationship", &format!("{kind}|{source_id}|{target_id}")),
        created_by_ref: producer_id(),
        modified: created.clone(),
        created,
        relationship_type: kind.into(),
        source_ref: source_id.into(),
        target_ref: target_id.into(),
        object_marking_refs: vec![marking_for(Tlp::Clear).into()],
    }
}

/// `sighting`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sighting {
    /// Always `sighting`.
    #[serde(rename = "type")]
    pub object_type: String,
    /// Always `2.1`.
    pub spec_version: String,
    /// `sighting--…`.
    pub id: String,
    /// The producer.
    pub created_by_ref: String,
    /// Created (when the server received the check-in).
    pub created: String,
    /// Modified (= created).
    pub modified: String,
    /// When the sensor saw it.
    pub first_seen: String,
    /// When the sensor saw it.
    pub last_seen: String,
    /// Always 1: one sighting per check-in.
    pub count: u32,
    /// The malware sighted.
    pub sighting_of_ref: String,
    /// The observed-data of the check-in.
    pub observed_data_refs: Vec<String>,
    /// The producer.
    pub where_sighted_refs: Vec<String>,
    /// 0–100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<u8>,
    /// TLP marking.
    pub object_marking_refs: Vec<String>,
}

/// `observed-data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedData {
    /// Always `observed-data`.
    #[serde(rename = "type")]
    pub object_type: String,
    /// Always `2.1`.
    pub spec_version: String,
    /// `observed-data--…`.
    pub id: String,
    /// The producer.
    pub created_by_ref: String,
    /// Created.
    pub created: String,
    /// Modified.
    pub modified: String,
    /// When the sensor saw it.
    pub first_observed: String,
    /// When the sensor saw it.
    pub last_observed: String,
    /// Always 1.
    pub number_observed: u32,
    /// The SCOs.
    pub object_refs: Vec<String>,
    /// TLP marking.
    pub object_marking_refs: Vec<String>,
}
