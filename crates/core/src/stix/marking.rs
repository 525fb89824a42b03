//! TLP 2.0 data markings as STIX 2.1 `marking-definition` objects.
//!
//! STIX 2.1 predefines only TLP 1.0 markings; TLP 2.0 is published by OASIS as a property extension
//! (`extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d`) with one fixed marking object per
//! label (oasis-open/cti-stix-common-objects, `extension-definition-specifications/tlp-2.0/`).
//!
//! Invariants:
//! - the ids, names, `created` and extension body are the published ones, byte for byte — never
//!   generated: a consumer recognises TLP by id;
//! - the objects carry exactly the published properties (the published objects have no
//!   `created_by_ref`, so neither do these);
//! - every STIX object threatfeed produces is marked with exactly one of these (its TLP).

use crate::tlp::Tlp;
use serde_json::{Value, json};

/// The TLP 2.0 marking extension definition.
pub const TLP2_EXTENSION_ID: &str = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d";

/// The `created` timestamp of every TLP 2.0 marking definition.
pub const TLP2_CREATED: &str = "2022-10-01T00:00:00.000Z";

/// TLP:CLEAR.
pub const TLP_CLEAR: &str = "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487";
/// TLP:GREEN.
pub const TLP_GREEN: &str = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb";
/// TLP:AMBER.
pub const TLP_AMBER: &str = "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421";
/// TLP:AMBER+STRICT.
pub const TLP_AMBER_STRICT: &str = "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003";
/// TLP:RED.
pub const TLP_RED: &str = "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1";

/// The id of the TLP 2.0 marking definition of `tlp`.
pub fn marking_for(tlp: Tlp) -> &'static str {
    match tlp {
        Tlp::Clear => TLP_CLEAR,
        Tlp::Green => TLP_GREEN,
        Tlp::Amber => TLP_AMBER,
        Tlp::AmberStrict => TLP_AMBER_STRICT,
        Tlp::Red => TLP_RED,
    }
}

/// The marking's `name`: `TLP:CLEAR`, `TLP:GREEN`, `TLP:AMBER`, `TLP:AMBER+STRICT`, `TLP:RED`.
pub fn marking_name(tlp: Tlp) -> String {
    format!("TLP:{}", tlp.as_str().to_ascii_uppercase())
}

/// The full published `marking-definition` object of `tlp`, to include in bundles.
pub fn marking_object(tlp: Tlp) -> Value {
    json!({
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": marking_for(tlp),
        "created": TLP2_CREATED,
        "name": marking_name(tlp),
        "extensions": {
            TLP2_EXTENSION_ID: {
                "extension_type": "property-extension",
                "tlp_2_0": tlp.as_str(),
            }
        }
    })
}
