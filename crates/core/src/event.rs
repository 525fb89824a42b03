//! The infection event: one check-in of an infected machine seen at a sensor.
//!
//! One type, [`Event`], carries the input fields of the interface contract (PRODUCT.md, "Event
//! fields") and the fields added on arrival (`received`, `asn`, `as_name`, `country`, `threat_id`).
//! The log key is its `seq`; the stored form is the event's JSON *without* `seq`
//! ([`Event::encode_stored`]), and the delivered form splices `"seq":N` in front
//! ([`delivery_json`]) so that delivery never re-serialises an event.

use crate::tlp::Tlp;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// An infection event (sighting).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Log sequence number; 0 until committed. Not part of the stored form (it is the key).
    #[serde(default, skip_serializing)]
    pub seq: u64,
    /// When the server accepted it.
    pub received: Timestamp,
    /// When the sensor saw it.
    pub time: Timestamp,
    /// The infected machine.
    pub src_ip: IpAddr,
    /// Its source port.
    pub src_port: Option<u16>,
    /// The sinkhole / C2 address it contacted.
    pub dst_ip: Option<IpAddr>,
    /// The port it contacted.
    pub dst_port: Option<u16>,
    /// Transport or application protocol (`tcp`, `udp`, `http`, `dns`, ...), lower case.
    pub proto: Option<String>,
    /// The C2 host name asked for, canonical.
    pub host: Option<String>,
    /// The URL requested.
    pub url: Option<String>,
    /// The HTTP user agent.
    pub user_agent: Option<String>,
    /// Malware family, as reported by the sensor or classified.
    pub family: Option<String>,
    /// The sensor that saw it.
    pub sensor: Option<String>,
    /// Confidence 0–100.
    pub confidence: Option<u8>,
    /// TLP label (default AMBER: infection events are victim data).
    pub tlp: Tlp,
    /// Autonomous system of `src_ip`.
    pub asn: Option<u32>,
    /// Name of that autonomous system.
    pub as_name: Option<String>,
    /// ISO country of `src_ip`.
    pub country: Option<String>,
    /// The threat it was classified to.
    pub threat_id: Option<String>,
    /// What classified it when the sensor gave no family: `indicator:<kind>:<value>` (a known
    /// indicator matched its host, URL or destination) or `rule:<id>` (a request-pattern rule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classified_by: Option<String>,
    /// Where the threat's documentation and remediation playbook is
    /// (`/api/v1/threats/<threat_id>`), when the event has a threat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub playbook: Option<String>,
    /// The sensor's id for this event (`[A-Za-z0-9:._-]`, ≤ 128 chars): the server accepts an
    /// id once, so a sensor may resend a batch whose answer it did not get.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// What `src_ip` was seen doing, when it is not a bot's own check-in: `dns-query` means a
    /// resolver asked for a seized C2 name on behalf of some client behind it (the address is
    /// the resolver's, not the infected machine's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observation: Option<String>,
    /// Protocol details recorded by the sensor (a JSON object, ≤ 4 KiB): for HTTP the method,
    /// path, query, selected headers, body size and first bytes; for raw TCP the first bytes;
    /// for DNS the query name, type and transport.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

impl Event {
    /// A minimal event for `src_ip` at `time`, received now-ish; other fields empty.
    pub fn new(src_ip: IpAddr, time: Timestamp, received: Timestamp) -> Event {
        Event {
            seq: 0,
            received,
            time,
            src_ip,
            src_port: None,
            dst_ip: None,
            dst_port: None,
            proto: None,
            host: None,
            url: None,
            user_agent: None,
            family: None,
            sensor: None,
            confidence: None,
            tlp: Tlp::default(),
            asn: None,
            as_name: None,
            country: None,
            threat_id: None,
            classified_by: None,
            playbook: None,
            id: None,
            observation: None,
            details: None,
        }
    }

    /// The stored (log) form: compact JSON object without `seq`.
    pub fn encode_stored(&self) -> Vec<u8> {
        // Serialising a struct of plain fields cannot fail.
        serde_json::to_vec(self).unwrap_or_else(|_| b"{}".to_vec())
    }

    /// Decodes a stored record, setting `seq` from the log key.
    pub fn decode_stored(seq: u64, bytes: &[u8]) -> Result<Event, serde_json::Error> {
        let mut e: Event = serde_json::from_slice(bytes)?;
        e.seq = seq;
        Ok(e)
    }

    /// The delivered JSON of this event (with `seq`).
    pub fn to_delivery_json(&self) -> String {
        delivery_json(self.seq, &self.encode_stored())
    }
}

/// Builds the delivered JSON (`{"seq":N,...}`) from a seq and a stored record.
pub fn delivery_json(seq: u64, stored: &[u8]) -> String {
    let body = std::str::from_utf8(stored).unwrap_or("{}");
    let rest = body.strip_prefix('{').unwrap_or("}");
    if rest.trim_start().starts_with('}') {
        format!("{{\"seq\":{seq}}}")
    } else {
        format!("{{\"seq\":{seq},{rest}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_form_round_trips_and_delivery_has_seq() {
        let mut e = Event::new(
            "192.0.2.7".parse().expect("ip"),
            Timestamp::from_second(1_700_000_000).expect("ts"),
            Timestamp::from_second(1_700_000_001).expect("ts"),
        );
        e.asn = Some(64500);
        e.host = Some("c2.example".into());
        let stored = e.encode_stored();
        assert!(!String::from_utf8_lossy(&stored).contains("\"seq\""));
        let back = Event::decode_stored(42, &stored).expect("decode");
        assert_eq!(back.seq, 42);
        assert_eq!(back.host, e.host);
        let delivered: serde_json::Value =
            serde_json::from_str(&delivery_json(42, &stored)).expect("json");
        assert_eq!(delivered["seq"], 42);
        assert_eq!(delivered["src_ip"], "192.0.2.7");
        assert_eq!(delivered["asn"], 64500);
        assert!(delivered.get("threat_id").is_some());
    }
}
