//! STIX 2.1 output: the project's indicators, threats and infection check-ins as STIX objects
//! and bundles, with our own serde types (no mature Rust STIX crate exists).
//!
//! Submodules:
//! - [`ids`] — deterministic ids (project namespace for SDOs / SROs, the STIX §2.9 algorithm for
//!   SCOs) and RFC 8785 canonical JSON;
//! - [`marking`] — the published TLP 2.0 marking definitions;
//! - [`sdo`] — typed identity, indicator, malware, course-of-action, relationship, sighting,
//!   observed-data, and the builders from [`crate::intel::IndicatorRecord`] and
//!   [`crate::threat::Threat`];
//! - [`observed`] — a check-in ([`crate::Event`]) as sighting + observed-data + SCOs.
//!
//! Invariants (for everything produced here):
//! - every object carries `spec_version: "2.1"` and a deterministic id, so exporting the same
//!   input twice yields the same objects (only a bundle's own id is random);
//! - timestamps are RFC 3339 UTC with exactly millisecond precision ([`timestamp`]), truncated —
//!   truncation keeps `created ≤ modified` and `valid_from < valid_until` true after formatting;
//! - every SDO / SRO / SCO carries exactly one TLP 2.0 marking; a bundle carries the marking
//!   objects it references only if the caller adds them ([`marking::marking_object`]);
//! - nothing here decides who may see what: callers pass records and events already filtered by
//!   [`crate::privacy`] for the recipient.

pub mod ids;
pub mod marking;
pub mod observed;
pub mod sdo;

#[cfg(test)]
mod tests;

pub use marking::{marking_for, marking_object};
pub use observed::sighting_for;
pub use sdo::{
    CourseOfAction, ExternalReference, Identity, Indicator, Malware, ObservedData, Relationship,
    RelationshipKind, Sighting, course_of_action_for, indicator_for, malware_for, member_identity,
    producer_identity, relationship,
};

use crate::intel::IndicatorRecord;
use crate::threat::Threat;
use jiff::Timestamp;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::HashSet;

/// The STIX version of every object.
pub const SPEC_VERSION: &str = "2.1";

/// A STIX timestamp: RFC 3339, UTC, exactly three fractional digits, `Z`
/// (`2026-06-01T12:00:00.000Z`). Sub-millisecond precision is truncated (towards the past).
pub fn timestamp(t: Timestamp) -> String {
    let ms = t.as_nanosecond().div_euclid(1_000_000);
    let frac = ms.rem_euclid(1000);
    let whole = i64::try_from(ms.div_euclid(1000))
        .ok()
        .and_then(|s| Timestamp::from_second(s).ok())
        .unwrap_or(t);
    format!("{}.{frac:03}Z", whole.strftime("%Y-%m-%dT%H:%M:%S"))
}

/// A typed STIX object as JSON. Our types serialise to JSON objects with string keys only, which
/// cannot fail; `Value::Null` would be returned otherwise.
pub fn to_value<T: Serialize>(o: &T) -> Value {
    serde_json::to_value(o).unwrap_or(Value::Null)
}

/// A STIX bundle (`bundle--<uuid4>`) of `objects`. Objects repeated with the same `id` and
/// `modified` (a threat's malware added once per indicator, say) are kept once, first
/// occurrence first; `null`s are dropped.
pub fn bundle(objects: Vec<Value>) -> Value {
    let mut seen: HashSet<(String, String)> = HashSet::new();
    let objects: Vec<Value> = objects
        .into_iter()
        .filter(|o| !o.is_null())
        .filter(|o| {
            let id = o["id"].as_str().unwrap_or_default().to_string();
            let modified = o["modified"].as_str().unwrap_or_default().to_string();
            id.is_empty() || seen.insert((id, modified))
        })
        .collect();
    json!({
        "type": "bundle",
        "id": ids::random_id("bundle"),
        "objects": objects,
    })
}

/// A threat as STIX: `[malware, course-of-action, relationship(course-of-action mitigates
/// malware)]`, all TLP:CLEAR.
pub fn threat_objects(t: &Threat) -> Vec<Value> {
    let malware = malware_for(t);
    let coa = course_of_action_for(t);
    let rel = sdo::relationship_at(
        RelationshipKind::Mitigates,
        &coa.id,
        &malware.id,
        coa.created.clone(),
    );
    vec![to_value(&malware), to_value(&coa), to_value(&rel)]
}

/// An indicator record as STIX: `[indicator]`, plus `relationship(indicator indicates malware)`
/// when its threat is known (add [`threat_objects`] of it to the bundle too). The relationship
/// is created with the indicator and carries its TLP.
pub fn indicator_objects(r: &IndicatorRecord, threat: Option<&Threat>) -> Vec<Value> {
    let ind = indicator_for(r);
    let mut out = Vec::with_capacity(2);
    if let Some(t) = threat {
        let rel = sdo::relationship_at(
            RelationshipKind::Indicates,
            &ind.id,
            &sdo::malware_id(&t.id),
            ind.created.clone(),
        )
        .marked(r.tlp);
        out.push(to_value(&ind));
        out.push(to_value(&rel));
    } else {
        out.push(to_value(&ind));
    }
    out
}
