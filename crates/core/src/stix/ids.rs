//! STIX identifiers: deterministic ids for the objects threatfeed produces.
//!
//! Invariants:
//! - every id has the form `<type>--<uuid>`, `<type>` being the object's exact `type`;
//! - **SDO / SRO / identity ids** are UUIDv5 in [`THREATFEED_NAMESPACE`] over a stable key of the
//!   project's own ([`sdo_id`]): the same input always yields the same id, so a re-export updates
//!   objects downstream instead of duplicating them. The key is never derived from anything a
//!   member could not see in the object itself (no org ids of anonymous contributors);
//! - **SCO ids** follow STIX 2.1 §2.9 exactly ([`sco_id`]): UUIDv5 in [`SCO_NAMESPACE`] over the
//!   RFC 8785 (JCS) canonical JSON of the type's ID-contributing properties that are present, so
//!   any conforming producer computes the same id for the same observable;
//! - [`SCO_NAMESPACE`] is used for SCOs only, [`THREATFEED_NAMESPACE`] for everything else.

use serde_json::Value;
use uuid::Uuid;

/// The project's namespace for deterministic SDO / SRO ids:
/// `14e8855e-a9ea-4382-9245-f1fe25d17847` (a random UUIDv4 chosen once for threatfeed).
///
/// Fixed for the life of the project: changing it changes the id of every object ever exported,
/// so consumers would see duplicates instead of updates.
pub const THREATFEED_NAMESPACE: Uuid = Uuid::from_u128(0x14e8855e_a9ea_4382_9245_f1fe25d17847);

/// The STIX 2.1 namespace for Cyber-observable Object ids (§2.9):
/// `00abedb4-aa42-466c-9c01-fed23315a9b7`.
pub const SCO_NAMESPACE: Uuid = Uuid::from_u128(0x00abedb4_aa42_466c_9c01_fed23315a9b7);

/// The deterministic id of an SDO, SRO or meta object of type `ty`: `ty--UUIDv5(THREATFEED_NAMESPACE,
/// "<ty>|<key>")`. The type is part of the name so that two types sharing a key (the malware and
/// the course-of-action of one threat) get different UUIDs.
pub fn sdo_id(ty: &str, key: &str) -> String {
    let name = format!("{ty}|{key}");
    format!(
        "{ty}--{}",
        Uuid::new_v5(&THREATFEED_NAMESPACE, name.as_bytes())
    )
}

/// The STIX 2.1 deterministic id of an SCO of type `ty` whose ID-contributing properties (only
/// those present) are the members of `contributing`: `ty--UUIDv5(SCO_NAMESPACE, JCS(contributing))`.
pub fn sco_id(ty: &str, contributing: &Value) -> String {
    let canonical = jcs(contributing);
    format!(
        "{ty}--{}",
        Uuid::new_v5(&SCO_NAMESPACE, canonical.as_bytes())
    )
}

/// A random UUIDv4 id of type `ty` (bundles only: a bundle is a transport envelope, not an object).
pub fn random_id(ty: &str) -> String {
    format!("{ty}--{}", Uuid::new_v4())
}

/// RFC 8785 JSON Canonicalization Scheme: object members sorted by the UTF-16 code units of their
/// names, no whitespace, strings with the minimal JSON escaping (serde_json's escaping is exactly
/// JCS's: `\"`, `\\`, `\b \f \n \r \t`, other controls as lower-case `\u00xx`, nothing else).
///
/// Integers serialise exactly; the SCO properties threatfeed produces hold no floating-point
/// numbers (those would need ECMAScript number formatting, which is not implemented here).
pub fn jcs(v: &Value) -> String {
    let mut out = String::new();
    write_jcs(v, &mut out);
    out
}

fn write_jcs(v: &Value, out: &mut String) {
    match v {
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => {
            // Serialising a scalar Value cannot fail.
            out.push_str(&serde_json::to_string(v).unwrap_or_default());
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_jcs(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            out.push('{');
            for (i, (k, val)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k).unwrap_or_default());
                out.push(':');
                write_jcs(val, out);
            }
            out.push('}');
        }
    }
}
