//! Parsing of sensor input into [`Event`]s, one record at a time, so one bad record never sinks
//! a batch.
//!
//! Formats (interface contract, `POST /api/v1/events`):
//! - [`InputFormat::Events`]: NDJSON (one JSON object per line; blank lines ignored) or a single
//!   JSON array of objects, with the contract's fields: `time` (RFC 3339 or epoch seconds),
//!   `src_ip` (required), `src_port`, `dst_ip`, `dst_port`, `proto`, `host`, `url`, `user_agent`,
//!   `family`, `sensor`, `confidence` (0–100), `tlp`. Unknown fields are ignored.
//! - [`InputFormat::Ctip`]: Microsoft CTIP-Infected style records (`DataFeed`, `Malware`,
//!   `ThreatCode`, `SourceIp`, `SourcePort`, `DestinationIp`, `DestinationPort`,
//!   `DateTimeReceivedUtc` as a Windows FILETIME — 100-ns ticks since 1601-01-01 UTC —,
//!   `ThreatConfidence`, `TLP`, `HttpInfo.{HttpHost, HttpRequest, HttpUserAgent}`), as NDJSON or
//!   an array.
//!
//! Each record yields either an event (not yet enriched: `received` set, enrichment fields empty)
//! or a [`Rejection`] naming its index, the field and the offending value.

use crate::canon::{canonical_host, parse_ip};
use crate::event::Event;
use crate::tlp::Tlp;
use jiff::Timestamp;
use serde_json::{Map, Value};

/// Which record shape the body carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InputFormat {
    /// threatfeed's own event fields.
    #[default]
    Events,
    /// Microsoft CTIP-Infected records.
    Ctip,
}

impl std::str::FromStr for InputFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "" | "events" | "ndjson" | "json" => Ok(InputFormat::Events),
            "ctip" => Ok(InputFormat::Ctip),
            other => Err(format!(
                "unknown input format {other:?} (expected events or ctip)"
            )),
        }
    }
}

/// A refused record: its 0-based index in the batch and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Rejection {
    /// Position of the record in the batch (0-based, counting records, not blank lines).
    pub index: usize,
    /// What is wrong, naming the field and the offending value.
    pub error: String,
}

/// The outcome of parsing one body.
#[derive(Debug, Default)]
pub struct Parsed {
    /// The accepted events, in input order, with the index they had in the batch.
    pub events: Vec<(usize, Event)>,
    /// The refused records.
    pub rejected: Vec<Rejection>,
}

/// Limits applied while parsing.
#[derive(Debug, Clone, Copy)]
pub struct ParseLimits {
    /// Most records accepted in one body; records past it are rejected with a clear error.
    pub max_records: usize,
}

impl Default for ParseLimits {
    fn default() -> Self {
        ParseLimits {
            max_records: 100_000,
        }
    }
}

/// Parses a whole (decompressed) body.
pub fn parse_body(
    body: &[u8],
    format: InputFormat,
    received: Timestamp,
    limits: ParseLimits,
) -> Parsed {
    let mut out = Parsed::default();
    let first = body.iter().position(|b| !b.is_ascii_whitespace());
    let mut index = 0usize;
    let push = |out: &mut Parsed, index: usize, rec: Result<Value, String>| {
        if index >= limits.max_records {
            if index == limits.max_records {
                out.rejected.push(Rejection {
                    index,
                    error: format!(
                        "batch too large: at most {} records per request; this and the following records were not accepted",
                        limits.max_records
                    ),
                });
            }
            return;
        }
        let r = rec.and_then(|v| match format {
            InputFormat::Events => event_from_value(&v, received),
            InputFormat::Ctip => event_from_ctip(&v, received),
        });
        match r {
            Ok(e) => out.events.push((index, e)),
            Err(error) => out.rejected.push(Rejection { index, error }),
        }
    };
    match first.map(|i| body[i]) {
        None => {}
        Some(b'[') => match serde_json::from_slice::<Vec<Value>>(body) {
            Ok(items) => {
                for v in items {
                    push(&mut out, index, Ok(v));
                    index += 1;
                }
            }
            Err(e) => out.rejected.push(Rejection {
                index: 0,
                error: format!("invalid json array: {e}"),
            }),
        },
        Some(_) => {
            for line in body.split(|&b| b == b'\n') {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if line.iter().all(|b| b.is_ascii_whitespace()) {
                    continue;
                }
                let rec = serde_json::from_slice::<Value>(line).map_err(|e| {
                    format!(
                        "invalid json: {e}: {:?}",
                        truncate(&String::from_utf8_lossy(line), 80)
                    )
                });
                push(&mut out, index, rec);
                index += 1;
            }
        }
    }
    if index > limits.max_records {
        // Count of the records beyond the limit, for the caller's message.
        if let Some(r) = out
            .rejected
            .iter_mut()
            .find(|r| r.index == limits.max_records)
        {
            r.error.push_str(&format!(
                " ({} records refused)",
                index - limits.max_records
            ));
        }
    }
    out
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n).collect();
        t.push('…');
        t
    }
}

fn show(v: &Value) -> String {
    truncate(&v.to_string(), 80)
}

fn as_object(v: &Value) -> Result<&Map<String, Value>, String> {
    v.as_object()
        .ok_or_else(|| format!("record is not a json object: {}", show(v)))
}

/// Parses a time: RFC 3339 string, or epoch seconds (integer, float or numeric string).
pub fn parse_time(v: &Value) -> Result<Timestamp, String> {
    let bad = || format!("time: expected RFC 3339 or epoch seconds, got {}", show(v));
    match v {
        Value::String(s) => {
            let t = s.trim();
            if let Ok(ts) = t.parse::<Timestamp>() {
                return Ok(ts);
            }
            match t.parse::<f64>() {
                Ok(f) => epoch_seconds(f).ok_or_else(bad),
                Err(_) => Err(bad()),
            }
        }
        Value::Number(n) => n.as_f64().and_then(epoch_seconds).ok_or_else(bad),
        _ => Err(bad()),
    }
}

fn epoch_seconds(f: f64) -> Option<Timestamp> {
    if !f.is_finite() {
        return None;
    }
    let secs = f.floor();
    let nanos = ((f - secs) * 1e9).round() as i32;
    if !(-377_705_116_800.0..=253_402_207_200.0).contains(&secs) {
        return None;
    }
    Timestamp::new(secs as i64, nanos.clamp(0, 999_999_999)).ok()
}

fn opt_str<'a>(o: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, String> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(other) => Err(format!("{key}: expected a string, got {}", show(other))),
    }
}

fn opt_text(o: &Map<String, Value>, key: &str, max: usize) -> Result<Option<String>, String> {
    match opt_str(o, key)? {
        None => Ok(None),
        Some(s) if s.len() > max => Err(format!(
            "{key}: longer than {max} bytes: {:?}",
            truncate(s, 40)
        )),
        Some(s) => Ok(Some(s.to_string())),
    }
}

fn opt_port(o: &Map<String, Value>, key: &str) -> Result<Option<u16>, String> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .map(Some)
            .ok_or_else(|| format!("{key}: not a port number (0-65535): {n}")),
        Some(Value::String(s)) => s
            .trim()
            .parse::<u16>()
            .map(Some)
            .map_err(|_| format!("{key}: not a port number (0-65535): {s:?}")),
        Some(other) => Err(format!(
            "{key}: not a port number (0-65535): {}",
            show(other)
        )),
    }
}

fn opt_ip(o: &Map<String, Value>, key: &str) -> Result<Option<std::net::IpAddr>, String> {
    match opt_str(o, key)? {
        None => Ok(None),
        Some(s) => parse_ip(s)
            .map(Some)
            .ok_or_else(|| format!("{key}: invalid ip address {s:?}")),
    }
}

fn opt_confidence(o: &Map<String, Value>, key: &str) -> Result<Option<u8>, String> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(f) if (0.0..=100.0).contains(&f) => Ok(Some(f.round() as u8)),
            _ => Err(format!("{key}: must be 0-100, got {n}")),
        },
        Some(other) => Err(format!(
            "{key}: must be a number 0-100, got {}",
            show(other)
        )),
    }
}

fn opt_tlp(o: &Map<String, Value>, key: &str) -> Result<Option<Tlp>, String> {
    match opt_str(o, key)? {
        None => Ok(None),
        Some(s) => s
            .parse::<Tlp>()
            .map(Some)
            .map_err(|e| format!("{key}: {e}")),
    }
}

fn lower_token(o: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    Ok(opt_text(o, key, 128)?.map(|s| s.trim().to_ascii_lowercase()))
}

/// Maps one record of threatfeed's own shape to an event.
pub fn event_from_value(v: &Value, received: Timestamp) -> Result<Event, String> {
    let o = as_object(v)?;
    let src_ip = match opt_str(o, "src_ip")? {
        None => return Err("src_ip: missing (required)".to_string()),
        Some(s) => parse_ip(s).ok_or_else(|| format!("src_ip: invalid ip address {s:?}"))?,
    };
    let time = match o.get("time") {
        None | Some(Value::Null) => received,
        Some(t) => parse_time(t)?,
    };
    let mut e = Event::new(src_ip, time, received);
    e.src_port = opt_port(o, "src_port")?;
    e.dst_ip = opt_ip(o, "dst_ip")?;
    e.dst_port = opt_port(o, "dst_port")?;
    e.proto = lower_token(o, "proto")?;
    e.host = match opt_str(o, "host")? {
        None => None,
        Some(h) => Some(canonical_host(h).map_err(|err| format!("host: {err}"))?),
    };
    e.url = opt_text(o, "url", 4096)?;
    e.user_agent = opt_text(o, "user_agent", 1024)?;
    e.family = lower_token(o, "family")?;
    e.sensor = opt_text(o, "sensor", 256)?;
    e.confidence = opt_confidence(o, "confidence")?;
    if let Some(t) = opt_tlp(o, "tlp")? {
        e.tlp = t;
    }
    Ok(e)
}

/// Ticks (100 ns) between 1601-01-01 and 1970-01-01.
const FILETIME_UNIX_EPOCH: i128 = 116_444_736_000_000_000;

/// Converts a Windows FILETIME (100-ns ticks since 1601-01-01 UTC) to a timestamp.
pub fn filetime_to_timestamp(ticks: i128) -> Option<Timestamp> {
    let since_unix = ticks - FILETIME_UNIX_EPOCH;
    let nanos = since_unix.checked_mul(100)?;
    Timestamp::from_nanosecond(nanos).ok()
}

/// Maps one Microsoft CTIP-Infected record to an event.
pub fn event_from_ctip(v: &Value, received: Timestamp) -> Result<Event, String> {
    let o = as_object(v)?;
    let src_ip = match opt_str(o, "SourceIp")? {
        None => return Err("SourceIp: missing (required)".to_string()),
        Some(s) => parse_ip(s).ok_or_else(|| format!("SourceIp: invalid ip address {s:?}"))?,
    };
    let time = match o.get("DateTimeReceivedUtc") {
        None | Some(Value::Null) => received,
        Some(Value::Number(n)) => n
            .as_i64()
            .and_then(|t| filetime_to_timestamp(i128::from(t)))
            .ok_or_else(|| format!("DateTimeReceivedUtc: not a Windows FILETIME: {n}"))?,
        Some(Value::String(s)) => match s.trim().parse::<i128>() {
            Ok(t) => filetime_to_timestamp(t)
                .ok_or_else(|| format!("DateTimeReceivedUtc: not a Windows FILETIME: {s:?}"))?,
            Err(_) => s
                .trim()
                .parse::<Timestamp>()
                .map_err(|_| format!("DateTimeReceivedUtc: not a Windows FILETIME: {s:?}"))?,
        },
        Some(other) => {
            return Err(format!(
                "DateTimeReceivedUtc: not a Windows FILETIME: {}",
                show(other)
            ));
        }
    };
    let mut e = Event::new(src_ip, time, received);
    e.src_port = opt_port(o, "SourcePort")?;
    e.dst_ip = opt_ip(o, "DestinationIp")?;
    e.dst_port = opt_port(o, "DestinationPort")?;
    e.family = lower_token(o, "Malware")?;
    let feed = opt_text(o, "DataFeed", 128)?;
    let sourced = opt_text(o, "SourcedFrom", 128)?;
    e.sensor = match (feed, sourced) {
        (Some(f), Some(s)) => Some(format!("{f}/{s}")),
        (Some(f), None) => Some(f),
        (None, s) => s,
    };
    e.confidence = match o.get("ThreatConfidence") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "high" => Some(90),
            "medium" => Some(60),
            "low" => Some(30),
            _ => {
                return Err(format!(
                    "ThreatConfidence: expected High, Medium or Low, got {s:?}"
                ));
            }
        },
        Some(n @ Value::Number(_)) => opt_confidence(o, "ThreatConfidence")
            .map_err(|_| format!("ThreatConfidence: must be 0-100, got {n}"))?,
        Some(other) => {
            return Err(format!(
                "ThreatConfidence: expected High, Medium or Low, got {}",
                show(other)
            ));
        }
    };
    if let Some(t) = opt_tlp(o, "TLP")? {
        e.tlp = t;
    }
    if let Some(Value::Object(http)) = o.get("HttpInfo") {
        if let Some(h) = opt_str(http, "HttpHost")? {
            e.host = Some(canonical_host(h).map_err(|err| format!("HttpInfo.HttpHost: {err}"))?);
        }
        e.user_agent = opt_text(http, "HttpUserAgent", 1024)?;
        if let Some(req) = opt_str(http, "HttpRequest")? {
            // "GET /path?q HTTP/1.1" or just "/path".
            let mut parts = req.split_whitespace();
            let first = parts.next().unwrap_or("");
            let path = if first.starts_with('/') {
                first
            } else {
                parts.next().unwrap_or("")
            };
            if path.starts_with('/') {
                let host = e
                    .host
                    .clone()
                    .or_else(|| e.dst_ip.map(|ip| ip.to_string()))
                    .unwrap_or_default();
                e.url = Some(truncate(&format!("http://{host}{path}"), 4096));
            }
        }
        e.proto = Some("http".to_string());
    }
    if e.proto.is_none() {
        e.proto =
            lower_token(o, "Transport")?.or_else(|| lower_token(o, "Protocol").ok().flatten());
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> Timestamp {
        Timestamp::from_second(1_780_000_000).expect("ts")
    }

    #[test]
    fn ndjson_keeps_good_records_and_names_bad_ones() {
        let body = br#"{"src_ip":"192.0.2.1","time":"2026-06-01T00:00:00Z","host":"C2.Example.COM.","tlp":"TLP:GREEN"}

{"src_ip":"999.1.1.1"}
not json
{"src_ip":"2001:db8::5","time":1780000000.5,"src_port":"4444","confidence":80}
{"time":1}
{"src_ip":"192.0.2.2","dst_port":70000}
"#;
        let p = parse_body(body, InputFormat::Events, now(), ParseLimits::default());
        assert_eq!(p.events.len(), 2);
        assert_eq!(p.events[0].0, 0);
        assert_eq!(p.events[0].1.host.as_deref(), Some("c2.example.com"));
        assert_eq!(p.events[0].1.tlp, Tlp::Green);
        assert_eq!(p.events[1].0, 3);
        assert_eq!(p.events[1].1.src_port, Some(4444));
        assert_eq!(p.events[1].1.time.as_millisecond(), 1_780_000_000_500);
        let idx: Vec<usize> = p.rejected.iter().map(|r| r.index).collect();
        assert_eq!(idx, vec![1, 2, 4, 5]);
        assert!(p.rejected[0].error.contains("999.1.1.1"));
        assert!(p.rejected[2].error.contains("src_ip: missing"));
        assert!(p.rejected[3].error.contains("70000"));
    }

    #[test]
    fn json_array_and_limits() {
        let body = serde_json::to_vec(&json!([
            {"src_ip":"192.0.2.1"}, {"src_ip":"192.0.2.2"}, {"src_ip":"192.0.2.3"}
        ]))
        .expect("json");
        let p = parse_body(
            &body,
            InputFormat::Events,
            now(),
            ParseLimits { max_records: 2 },
        );
        assert_eq!(p.events.len(), 2);
        assert_eq!(p.rejected.len(), 1);
        assert!(
            p.rejected[0].error.contains("at most 2"),
            "{}",
            p.rejected[0].error
        );
        assert_eq!(p.events[0].1.time, now());
    }

    #[test]
    fn ctip_record_maps() {
        // 2021-01-01T00:00:00Z as FILETIME.
        let ticks: i64 = 132_539_328_000_000_000;
        let rec = json!({
            "DataFeed": "CTIP-Infected", "SourcedFrom": "SinkHoleMessage",
            "DateTimeReceivedUtc": ticks, "Malware": "Conficker", "ThreatCode": "B106-Conficker",
            "ThreatConfidence": "High", "TLP": "Amber", "SourceIp": "198.51.100.23", "SourcePort": 50123,
            "DestinationIp": "203.0.113.9", "DestinationPort": 80,
            "HttpInfo": {"HttpHost": "Bad.Example", "HttpRequest": "GET /search?q=1 HTTP/1.1",
                         "HttpUserAgent": "Mozilla/4.0"}
        });
        let e = event_from_ctip(&rec, now()).expect("ctip");
        assert_eq!(e.time.to_string(), "2021-01-01T00:00:00Z");
        assert_eq!(e.family.as_deref(), Some("conficker"));
        assert_eq!(e.confidence, Some(90));
        assert_eq!(e.url.as_deref(), Some("http://bad.example/search?q=1"));
        assert_eq!(e.sensor.as_deref(), Some("CTIP-Infected/SinkHoleMessage"));
        assert_eq!(e.proto.as_deref(), Some("http"));
        let bad = event_from_ctip(
            &json!({"SourceIp": "1.2.3.4", "DateTimeReceivedUtc": "soon"}),
            now(),
        );
        assert!(bad.expect_err("bad time").contains("soon"));
    }

    #[test]
    fn epoch_and_rfc3339() {
        assert_eq!(
            parse_time(&json!("2026-06-01T02:00:00+02:00"))
                .expect("t")
                .as_second(),
            1_780_272_000
        );
        assert_eq!(
            parse_time(&json!(1_780_272_000)).expect("t").as_second(),
            1_780_272_000
        );
        assert!(parse_time(&json!("yesterday")).is_err());
        assert!(parse_time(&json!(1e300)).is_err());
    }
}
