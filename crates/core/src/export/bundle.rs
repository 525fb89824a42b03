//! The STIX 2.1 export: one bundle holding the producer identity, the TLP 2.0 marking
//! definitions its objects reference, for every threat a record belongs to the threat's
//! `malware`, `course-of-action` and `mitigates` relationship, and per record its `indicator`
//! (plus `indicates` → malware when the threat is known).
//!
//! Built from [`crate::stix`]; the mapping rules (deterministic ids, revocation of inactive
//! records, one marking per object) are that module's. Here: the bundle is self-contained
//! (every reference resolves inside it, as `stix2-validator --enforce-refs` checks), ordered
//! (identity, markings, threats by id, indicators by kind and value), and its own id is derived
//! from the [`Meta`] instead of random, so one export has one bundle id.

use super::{Meta, Threats, changed};
use crate::intel::IndicatorRecord;
use crate::stix::{self, ids::sdo_id, marking_object, sdo::producer_identity, to_value};
use crate::threat::{KnowledgeBase, Threat};
use crate::tlp::Tlp;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// The bundle id of an export: `bundle--UUIDv5` of the export's serial, since and time.
pub fn bundle_id(meta: &Meta) -> String {
    let since = meta
        .since
        .map_or_else(|| "full".to_string(), |s| s.to_string());
    sdo_id(
        "bundle",
        &format!("export|{}|{since}|{}", meta.serial, meta.generated),
    )
}

/// The STIX bundle of `records` (see the module doc), as JSON bytes.
pub fn render(records: &[IndicatorRecord], kb: &KnowledgeBase, meta: &Meta) -> Vec<u8> {
    let mut threats = Threats::new(kb);
    let rows: Vec<(&IndicatorRecord, Option<&Threat>)> = changed(records, meta)
        .into_iter()
        .map(|r| (r, threats.of(r)))
        .collect();

    // The producer identity, malware and course-of-action are TLP:CLEAR.
    let mut tlps: BTreeSet<Tlp> = BTreeSet::from([Tlp::Clear]);
    let mut referenced: BTreeMap<&str, &Threat> = BTreeMap::new();
    for (r, t) in &rows {
        tlps.insert(r.tlp);
        if let Some(t) = t {
            referenced.insert(t.id.as_str(), t);
        }
    }

    let mut objects: Vec<Value> = Vec::with_capacity(1 + tlps.len() + 3 * referenced.len());
    objects.push(to_value(&producer_identity()));
    objects.extend(tlps.into_iter().map(marking_object));
    for t in referenced.values() {
        objects.extend(stix::threat_objects(t));
    }
    for (r, t) in rows {
        objects.extend(stix::indicator_objects(r, t));
    }

    let mut b = stix::bundle(objects);
    if let Some(o) = b.as_object_mut() {
        o.insert("id".into(), Value::String(bundle_id(meta)));
    }
    let mut out = serde_json::to_vec(&b).unwrap_or_default();
    out.push(b'\n');
    out
}
