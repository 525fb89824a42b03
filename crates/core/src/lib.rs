//! threatfeed core: the domain types and pure logic shared by every stage of the data path.
//!
//! Nothing here does I/O beyond reading bytes it is handed. Modules:
//! - [`tlp`] — TLP 2.0 labels;
//! - [`org`] — members, kinds, scopes, token records;
//! - [`event`] — the infection event and its stored / delivered forms;
//! - [`canon`] — canonical host names and IP addresses;
//! - [`ingest`] — parsing of sensor input (NDJSON, JSON arrays, Microsoft CTIP records);
//! - [`geo`] — the IP → ASN / AS name / country table used for enrichment;
//! - [`threat`] — the threat knowledge base: threats, behaviour, remediation playbooks;
//! - [`indicator`] — indicators of compromise: kinds, canonical forms, deterministic ids;
//! - [`intel`] — indicator records: sources, merging, expiry and decay, change entries;
//! - [`lookup`] — the in-memory indicator index: lookups and classification of check-ins;
//! - [`import`] — parsers for the indicator lists of the field (maltrail, FireHOL, Feodo CSV, plain);
//! - [`rules`] — request-pattern rules (URI, user agent, first bytes) that recognise a family;
//! - [`stix`] — STIX 2.1 output: indicators, threats and check-ins as STIX objects and bundles;
//! - [`export`] — the indicator feed for download: STIX, CSV, JSON, lists, hosts, RPZ, Suricata, MISP;
//! - [`privacy`] — the privacy model: who may see which event (the one place it is decided).

pub mod canon;
pub mod event;
pub mod export;
pub mod geo;
pub mod import;
pub mod indicator;
pub mod ingest;
pub mod intel;
pub mod lookup;
pub mod org;
pub mod privacy;
pub mod rules;
pub mod stix;
pub mod threat;
pub mod tlp;

pub use event::Event;
pub use org::{Org, OrgKind, Scope, TokenRecord};
pub use privacy::{AudienceIndex, Viewer, can_see_event};
pub use tlp::Tlp;
