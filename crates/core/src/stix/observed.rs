//! An infection check-in ([`crate::Event`]) as STIX: a `sighting` of the malware, the
//! `observed-data` it rests on, and the Cyber-observable Objects (SCOs) of the connection —
//! `ipv4-addr` / `ipv6-addr` (source, destination), `domain-name` (host), `url`,
//! `autonomous-system` (of the source) and `network-traffic`.
//!
//! Invariants:
//! - SCO ids are the STIX 2.1 deterministic ids ([`super::ids::sco_id`]) over exactly the
//!   ID-contributing properties of the type that are present (`value`; `number`; for
//!   network-traffic `start`, `src_ref`, `dst_ref`, `src_port`, `dst_port`, `protocols` — no
//!   `end` or `extensions` are produced), so the same observable has the same id everywhere;
//!   network-traffic `start` is written without trailing fraction zeros ([`compact_timestamp`])
//!   so that the OASIS python library computes the same ids;
//! - the sighting and observed-data ids derive from the event's `seq` (committed events), or from
//!   the connection's fields for an uncommitted event (`seq` 0);
//! - every object — SDO, SRO and SCO — is marked with the event's TLP: the SCOs hold victim data
//!   (the infected machine's address);
//! - `network-traffic` always has `protocols` and a `src_ref`; a `url` SCO is produced only for an
//!   absolute URL (a bare path is completed with the host when there is one);
//! - the user agent and the country are not mapped (no standard property without inventing an
//!   HTTP method or a location object).

use super::ids::{sco_id, sdo_id};
use super::marking::marking_for;
use super::sdo::{ObservedData, Sighting, malware_id, producer_id, unclassified_malware};
use super::{SPEC_VERSION, timestamp, to_value};
use crate::event::Event;
use serde_json::{Map, Value, json};
use std::net::IpAddr;

/// An SCO of `ty` with its deterministic id: `contributing` (the ID-contributing properties),
/// plus `other` properties that do not contribute to the id.
fn sco(ty: &str, contributing: Value, other: &[(&str, Value)], marking: &str) -> Value {
    let id = sco_id(ty, &contributing);
    let mut m = Map::new();
    m.insert("type".into(), ty.into());
    m.insert("spec_version".into(), SPEC_VERSION.into());
    m.insert("id".into(), id.into());
    if let Value::Object(c) = contributing {
        m.extend(c);
    }
    for (k, v) in other {
        m.insert((*k).into(), v.clone());
    }
    m.insert("object_marking_refs".into(), json!([marking]));
    Value::Object(m)
}

/// The `ipv4-addr` or `ipv6-addr` SCO of an address.
pub fn ip_sco(ip: IpAddr, marking: &str) -> Value {
    let ty = match ip {
        IpAddr::V4(_) => "ipv4-addr",
        IpAddr::V6(_) => "ipv6-addr",
    };
    sco(ty, json!({ "value": ip.to_string() }), &[], marking)
}

/// The `network-traffic` protocols of a check-in, outermost first: `proto` lower-cased, an
/// application protocol preceded by its usual transport (`["tcp","http"]`, `["udp","dns"]`);
/// without `proto`, the IP version (`["ipv4"]`).
pub fn protocols(proto: Option<&str>, ip: IpAddr) -> Vec<String> {
    let p = proto
        .map(|p| p.trim().to_ascii_lowercase())
        .unwrap_or_default();
    match p.as_str() {
        "" => vec![if ip.is_ipv4() { "ipv4" } else { "ipv6" }.into()],
        "tcp" | "udp" | "icmp" | "sctp" | "ipv4" | "ipv6" => vec![p],
        "dns" | "ntp" | "snmp" | "tftp" | "syslog" | "ssdp" | "netbios-ns" => vec!["udp".into(), p],
        _ => vec!["tcp".into(), p],
    }
}

/// The absolute URL of the check-in, if one can be stated: the URL as given when it has a scheme,
/// else a path completed with the host (`https` for `proto` https/tls, `http` otherwise).
fn absolute_url(e: &Event) -> Option<String> {
    let u = e.url.as_deref()?.trim();
    if u.is_empty() {
        return None;
    }
    if u.contains("://") {
        return Some(u.to_string());
    }
    let host = e.host.as_deref().filter(|h| !h.is_empty())?;
    if !u.starts_with('/') {
        return None;
    }
    let scheme = match e.proto.as_deref().map(str::to_ascii_lowercase).as_deref() {
        Some("https") | Some("tls") | Some("ssl") => "https",
        _ => "http",
    };
    let host = match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(_)) => format!("[{host}]"),
        _ => host.to_string(),
    };
    Some(format!("{scheme}://{host}{u}"))
}

/// [`timestamp`] without trailing zeros in the fraction (`…T12:00:00.5Z`, `…T12:00:00Z`), for
/// the timestamps that contribute to an SCO id (network-traffic `start`). Equally valid STIX, and
/// the form the OASIS python `stix2` library re-serialises timestamps to before hashing: with it,
/// the ids computed here from our JSON and the ids that library computes agree.
pub fn compact_timestamp(t: jiff::Timestamp) -> String {
    let full = timestamp(t);
    let body = full
        .trim_end_matches('Z')
        .trim_end_matches('0')
        .trim_end_matches('.');
    format!("{body}Z")
}

/// The stable key of an event's sighting / observed-data.
fn event_key(e: &Event) -> String {
    if e.seq != 0 {
        return format!("seq|{}", e.seq);
    }
    format!(
        "event|{}|{}|{}|{}|{}|{}",
        timestamp(e.time),
        e.src_ip,
        e.src_port.map(|p| p.to_string()).unwrap_or_default(),
        e.dst_ip.map(|p| p.to_string()).unwrap_or_default(),
        e.dst_port.map(|p| p.to_string()).unwrap_or_default(),
        e.host.as_deref().unwrap_or_default(),
    )
}

/// The id of the `sighting` of an event.
pub fn sighting_id(e: &Event) -> String {
    sdo_id("sighting", &event_key(e))
}

/// The id of the `observed-data` of an event.
pub fn observed_data_id(e: &Event) -> String {
    sdo_id("observed-data", &event_key(e))
}

/// A check-in as STIX objects: `[sighting, observed-data, SCOs…]`, plus a stand-in `malware`
/// ([`unclassified_malware`]) when the event has no `threat_id`.
///
/// `sighting_of_ref` is the malware of `event.threat_id` ([`malware_id`]) — add
/// [`super::threat_objects`] of that threat to the bundle — or else the stand-in malware
/// returned here (the family the sensor named, or "Unidentified malware"): a sighting must
/// reference an SDO, and "some malware checked in to this C2" is what a check-in establishes.
/// `where_sighted_refs` is the producer identity ([`super::sdo::producer_identity`]); the
/// bundle also needs it and the event's TLP marking object.
pub fn sighting_for(e: &Event) -> Vec<Value> {
    let marking = marking_for(e.tlp);
    let time = timestamp(e.time);
    let received = timestamp(e.received);
    let mut scos: Vec<Value> = Vec::new();

    let src = ip_sco(e.src_ip, marking);
    let src_id = src["id"].clone();
    scos.push(src);

    let mut dst_id = None;
    if let Some(dst) = e.dst_ip {
        let d = ip_sco(dst, marking);
        dst_id = Some(d["id"].clone());
        scos.push(d);
    }

    let host = e
        .host
        .as_deref()
        .map(str::trim)
        .filter(|h| !h.is_empty() && h.parse::<IpAddr>().is_err());
    if let Some(h) = host {
        let d = sco("domain-name", json!({ "value": h }), &[], marking);
        if dst_id.is_none() {
            dst_id = Some(d["id"].clone());
        }
        scos.push(d);
    }

    if let Some(u) = absolute_url(e) {
        scos.push(sco("url", json!({ "value": u }), &[], marking));
    }

    if let Some(asn) = e.asn {
        let other: Vec<(&str, Value)> = e
            .as_name
            .as_deref()
            .filter(|n| !n.trim().is_empty())
            .map(|n| ("name", Value::from(n)))
            .into_iter()
            .collect();
        scos.push(sco(
            "autonomous-system",
            json!({ "number": asn }),
            &other,
            marking,
        ));
    }

    let mut traffic = Map::new();
    traffic.insert("start".into(), compact_timestamp(e.time).into());
    traffic.insert("src_ref".into(), src_id);
    if let Some(d) = dst_id {
        traffic.insert("dst_ref".into(), d);
    }
    if let Some(p) = e.src_port {
        traffic.insert("src_port".into(), p.into());
    }
    if let Some(p) = e.dst_port {
        traffic.insert("dst_port".into(), p.into());
    }
    traffic.insert(
        "protocols".into(),
        json!(protocols(e.proto.as_deref(), e.src_ip)),
    );
    scos.push(sco("network-traffic", Value::Object(traffic), &[], marking));

    let mut extra = Vec::new();
    let sighting_of_ref = match &e.threat_id {
        Some(t) => malware_id(t),
        None => {
            let m = unclassified_malware(e.family.as_deref());
            let id = m.id.clone();
            extra.push(to_value(&m));
            id
        }
    };

    let observed = ObservedData {
        object_type: "observed-data".into(),
        spec_version: SPEC_VERSION.into(),
        id: observed_data_id(e),
        created_by_ref: producer_id(),
        created: received.clone(),
        modified: received.clone(),
        first_observed: time.clone(),
        last_observed: time.clone(),
        number_observed: 1,
        object_refs: scos
            .iter()
            .filter_map(|s| s["id"].as_str().map(String::from))
            .collect(),
        object_marking_refs: vec![marking.into()],
    };
    let sighting = Sighting {
        object_type: "sighting".into(),
        spec_version: SPEC_VERSION.into(),
        id: sighting_id(e),
        created_by_ref: producer_id(),
        created: received.clone(),
        modified: received,
        first_seen: time.clone(),
        last_seen: time,
        count: 1,
        sighting_of_ref,
        observed_data_refs: vec![observed.id.clone()],
        where_sighted_refs: vec![producer_id()],
        confidence: e.confidence.map(|c| c.min(100)),
        object_marking_refs: vec![marking.into()],
    };

    let mut out = vec![to_value(&sighting), to_value(&observed)];
    out.extend(scos);
    out.extend(extra);
    out
}
