//! The tabular exports: JSON (the feed's metadata and one object per record) and CSV (one row
//! per record, quoted by the `csv` crate).
//!
//! Both carry removals in an incremental export: a record that is no longer believed is written
//! with its status (`expired`, `decayed`, `withdrawn`, ...) and, in JSON, `"active": false`.
//! Timestamps are RFC 3339 UTC; absent values are `null` in JSON and empty in CSV.

use super::{Meta, changed};
use crate::intel::{IndicatorRecord, Summary};
use jiff::Timestamp;
use serde::Serialize;

/// The CSV header, in column order.
pub const CSV_HEADER: [&str; 12] = [
    "id",
    "type",
    "value",
    "threat_id",
    "family",
    "port",
    "confidence",
    "tlp",
    "first_seen",
    "last_seen",
    "valid_until",
    "status",
];

/// The API path of a threat's documentation and remediation playbook.
pub fn playbook_path(threat_id: &str) -> String {
    format!("/api/v1/threats/{threat_id}")
}

#[derive(Serialize)]
struct JsonFeed<'a> {
    generated: Timestamp,
    serial: u64,
    since: Option<u64>,
    count: usize,
    indicators: Vec<JsonIndicator<'a>>,
}

#[derive(Serialize)]
struct JsonIndicator<'a> {
    #[serde(flatten)]
    summary: Summary<'a>,
    active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    playbook: Option<String>,
}

impl<'a> JsonIndicator<'a> {
    fn of(r: &'a IndicatorRecord) -> Self {
        JsonIndicator {
            summary: r.summary(),
            active: r.is_active(),
            playbook: r.threat_id.as_deref().map(playbook_path),
        }
    }
}

/// The JSON export: `{"generated", "serial", "since", "count", "indicators": [...]}`.
pub fn json(records: &[IndicatorRecord], meta: &Meta) -> Vec<u8> {
    let indicators: Vec<JsonIndicator<'_>> = changed(records, meta)
        .into_iter()
        .map(JsonIndicator::of)
        .collect();
    let feed = JsonFeed {
        generated: meta.generated,
        serial: meta.serial,
        since: meta.since,
        count: indicators.len(),
        indicators,
    };
    // Strings, numbers and timestamps only: serialising cannot fail.
    let mut out = serde_json::to_vec(&feed).unwrap_or_default();
    out.push(b'\n');
    out
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// The CSV export: [`CSV_HEADER`], then one row per record.
pub fn csv(records: &[IndicatorRecord], meta: &Meta) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    // Writing to a `Vec` cannot fail; a failed row would be left out rather than panic.
    let _ = w.write_record(CSV_HEADER);
    for r in changed(records, meta) {
        let row = [
            r.id.clone(),
            r.kind.as_str().to_string(),
            r.value.clone(),
            opt(r.threat_id.as_deref()),
            opt(r.family.as_deref()),
            opt(r.port),
            r.confidence.to_string(),
            r.tlp.as_str().to_string(),
            r.first_seen.to_string(),
            r.last_seen.to_string(),
            opt(r.valid_until),
            r.status.as_str().to_string(),
        ];
        let _ = w.write_record(&row);
    }
    w.into_inner().unwrap_or_default()
}
