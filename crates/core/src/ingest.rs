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
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

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

/// One field's value as found in a record: a JSON scalar, borrowed from the body where possible.
/// Objects and arrays are skipped and kept only as a description, for error messages.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar<'a> {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A non-negative integer.
    UInt(u64),
    /// A negative integer.
    Int(i64),
    /// A number with a fraction or exponent.
    Float(f64),
    /// A string.
    Str(Cow<'a, str>),
    /// An object or array (not accepted by any field).
    Composite(&'static str),
}

impl fmt::Display for Scalar<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Null => f.write_str("null"),
            Scalar::Bool(b) => write!(f, "{b}"),
            Scalar::UInt(n) => write!(f, "{n}"),
            Scalar::Int(n) => write!(f, "{n}"),
            Scalar::Float(x) => write!(f, "{x}"),
            Scalar::Str(s) => write!(f, "{:?}", truncate(s, 80)),
            Scalar::Composite(what) => write!(f, "an {what}"),
        }
    }
}

impl Scalar<'_> {
    fn as_f64(&self) -> Option<f64> {
        match self {
            Scalar::UInt(n) => Some(*n as f64),
            Scalar::Int(n) => Some(*n as f64),
            Scalar::Float(x) => Some(*x),
            _ => None,
        }
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a json value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Scalar::UInt(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(if v >= 0 {
            Scalar::UInt(v as u64)
        } else {
            Scalar::Int(v)
        })
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Scalar::Float(v))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v.to_string())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Composite("object"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Composite("array"))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

type Field<'a> = Option<Scalar<'a>>;

/// A record of threatfeed's own shape, fields not yet validated. Unknown fields are ignored.
#[derive(Debug, Default, Deserialize)]
struct RawEvent<'a> {
    #[serde(default, borrow)]
    time: Field<'a>,
    #[serde(default, borrow)]
    src_ip: Field<'a>,
    #[serde(default, borrow)]
    src_port: Field<'a>,
    #[serde(default, borrow)]
    dst_ip: Field<'a>,
    #[serde(default, borrow)]
    dst_port: Field<'a>,
    #[serde(default, borrow)]
    proto: Field<'a>,
    #[serde(default, borrow)]
    host: Field<'a>,
    #[serde(default, borrow)]
    url: Field<'a>,
    #[serde(default, borrow)]
    user_agent: Field<'a>,
    #[serde(default, borrow)]
    family: Field<'a>,
    #[serde(default, borrow)]
    sensor: Field<'a>,
    #[serde(default, borrow)]
    confidence: Field<'a>,
    #[serde(default, borrow)]
    tlp: Field<'a>,
    #[serde(default, borrow)]
    id: Field<'a>,
    #[serde(default, borrow)]
    observation: Field<'a>,
    #[serde(default, borrow)]
    details: Option<&'a RawValue>,
}

/// The `HttpInfo` part of a CTIP record.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawHttpInfo<'a> {
    #[serde(default, borrow)]
    http_host: Field<'a>,
    #[serde(default, borrow)]
    http_request: Field<'a>,
    #[serde(default, borrow)]
    http_user_agent: Field<'a>,
}

/// A Microsoft CTIP-Infected record, fields not yet validated.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawCtip<'a> {
    #[serde(default, borrow)]
    source_ip: Field<'a>,
    #[serde(default, borrow)]
    source_port: Field<'a>,
    #[serde(default, borrow)]
    destination_ip: Field<'a>,
    #[serde(default, borrow)]
    destination_port: Field<'a>,
    #[serde(default, borrow)]
    date_time_received_utc: Field<'a>,
    #[serde(default, borrow)]
    malware: Field<'a>,
    #[serde(default, borrow)]
    threat_confidence: Field<'a>,
    #[serde(default, borrow, rename = "TLP")]
    tlp: Field<'a>,
    #[serde(default, borrow)]
    data_feed: Field<'a>,
    #[serde(default, borrow)]
    sourced_from: Field<'a>,
    #[serde(default, borrow)]
    transport: Field<'a>,
    #[serde(default, borrow)]
    http_info: Option<RawHttpInfo<'a>>,
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
    let push = |out: &mut Parsed, index: usize, record: &[u8]| {
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
        let r = match format {
            InputFormat::Events => {
                decode::<RawEvent<'_>>(record).and_then(|raw| event_from_raw(raw, received))
            }
            InputFormat::Ctip => {
                decode::<RawCtip<'_>>(record).and_then(|raw| event_from_raw_ctip(raw, received))
            }
        };
        match r {
            Ok(e) => out.events.push((index, e)),
            Err(error) => out.rejected.push(Rejection { index, error }),
        }
    };
    match first.map(|i| body[i]) {
        None => {}
        Some(b'[') => match serde_json::from_slice::<Vec<&RawValue>>(body) {
            Ok(items) => {
                for v in items {
                    push(&mut out, index, v.get().as_bytes());
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
                push(&mut out, index, line);
                index += 1;
            }
        }
    }
    if index > limits.max_records
        && let Some(r) = out
            .rejected
            .iter_mut()
            .find(|r| r.index == limits.max_records)
    {
        {
            r.error.push_str(&format!(
                " ({} records refused)",
                index - limits.max_records
            ));
        }
    }
    out
}

/// Decodes one record into its raw shape, with a readable error.
fn decode<'a, T: Deserialize<'a>>(record: &'a [u8]) -> Result<T, String> {
    let shown = || truncate(&String::from_utf8_lossy(record), 80);
    // Structs would also accept a JSON array positionally: refuse anything but an object.
    let first = record.iter().find(|b| !b.is_ascii_whitespace());
    let not_object = matches!(
        first,
        Some(b'[') | Some(b'"') | Some(b'-') | Some(b'0'..=b'9') | Some(b't' | b'f' | b'n')
    );
    if not_object && serde_json::from_slice::<IgnoredAny>(record).is_ok() {
        return Err(format!("record is not a json object: {:?}", shown()));
    }
    serde_json::from_slice::<T>(record).map_err(|e| {
        let shown = shown();
        if e.is_data() {
            format!("invalid record: {e}")
        } else {
            format!("invalid json: {e}: {shown:?}")
        }
    })
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

/// Parses a time: RFC 3339 string, or epoch seconds (integer, float or numeric string).
pub fn parse_time(v: &Scalar<'_>) -> Result<Timestamp, String> {
    let bad = || format!("time: expected RFC 3339 or epoch seconds, got {v}");
    match v {
        Scalar::Str(s) => {
            let t = s.trim();
            if let Ok(ts) = t.parse::<Timestamp>() {
                return Ok(ts);
            }
            match t.parse::<f64>() {
                Ok(f) => epoch_seconds(f).ok_or_else(bad),
                Err(_) => Err(bad()),
            }
        }
        other => other.as_f64().and_then(epoch_seconds).ok_or_else(bad),
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

fn opt_str<'v>(key: &str, v: &'v Field<'_>) -> Result<Option<&'v str>, String> {
    match v {
        None | Some(Scalar::Null) => Ok(None),
        Some(Scalar::Str(s)) if s.trim().is_empty() => Ok(None),
        Some(Scalar::Str(s)) => Ok(Some(s.as_ref())),
        Some(other) => Err(format!("{key}: expected a string, got {other}")),
    }
}

fn opt_text(key: &str, v: &Field<'_>, max: usize) -> Result<Option<String>, String> {
    match opt_str(key, v)? {
        None => Ok(None),
        Some(s) if s.len() > max => Err(format!(
            "{key}: longer than {max} bytes: {:?}",
            truncate(s, 40)
        )),
        Some(s) => Ok(Some(s.to_string())),
    }
}

fn opt_port(key: &str, v: &Field<'_>) -> Result<Option<u16>, String> {
    let bad = |shown: &dyn fmt::Display| format!("{key}: not a port number (0-65535): {shown}");
    match v {
        None | Some(Scalar::Null) => Ok(None),
        Some(Scalar::UInt(n)) => u16::try_from(*n).map(Some).map_err(|_| bad(n)),
        Some(s @ Scalar::Str(t)) => t.trim().parse::<u16>().map(Some).map_err(|_| bad(s)),
        Some(other) => Err(bad(other)),
    }
}

fn opt_ip(key: &str, v: &Field<'_>) -> Result<Option<std::net::IpAddr>, String> {
    match opt_str(key, v)? {
        None => Ok(None),
        Some(s) => parse_ip(s)
            .map(Some)
            .ok_or_else(|| format!("{key}: invalid ip address {s:?}")),
    }
}

fn required_ip(key: &str, v: &Field<'_>) -> Result<std::net::IpAddr, String> {
    opt_ip(key, v)?.ok_or_else(|| format!("{key}: missing (required)"))
}

fn opt_confidence(key: &str, v: &Field<'_>) -> Result<Option<u8>, String> {
    match v {
        None | Some(Scalar::Null) => Ok(None),
        Some(n @ (Scalar::UInt(_) | Scalar::Int(_) | Scalar::Float(_))) => match n.as_f64() {
            Some(f) if (0.0..=100.0).contains(&f) => Ok(Some(f.round() as u8)),
            _ => Err(format!("{key}: must be 0-100, got {n}")),
        },
        Some(other) => Err(format!("{key}: must be a number 0-100, got {other}")),
    }
}

fn opt_tlp(key: &str, v: &Field<'_>) -> Result<Option<Tlp>, String> {
    match opt_str(key, v)? {
        None => Ok(None),
        Some(s) => s
            .parse::<Tlp>()
            .map(Some)
            .map_err(|e| format!("{key}: {e}")),
    }
}

fn lower_token(key: &str, v: &Field<'_>) -> Result<Option<String>, String> {
    Ok(opt_text(key, v, 128)?.map(|s| s.trim().to_ascii_lowercase()))
}

fn opt_host(key: &str, v: &Field<'_>) -> Result<Option<String>, String> {
    match opt_str(key, v)? {
        None => Ok(None),
        Some(h) => canonical_host(h)
            .map(Some)
            .map_err(|err| format!("{key}: {err}")),
    }
}

fn event_from_raw(raw: RawEvent<'_>, received: Timestamp) -> Result<Event, String> {
    let src_ip = required_ip("src_ip", &raw.src_ip)?;
    let time = match &raw.time {
        None | Some(Scalar::Null) => received,
        Some(t) => parse_time(t)?,
    };
    let mut e = Event::new(src_ip, time, received);
    e.src_port = opt_port("src_port", &raw.src_port)?;
    e.dst_ip = opt_ip("dst_ip", &raw.dst_ip)?;
    e.dst_port = opt_port("dst_port", &raw.dst_port)?;
    e.proto = lower_token("proto", &raw.proto)?;
    e.host = opt_host("host", &raw.host)?;
    e.url = opt_text("url", &raw.url, 4096)?;
    e.user_agent = opt_text("user_agent", &raw.user_agent, 1024)?;
    e.family = lower_token("family", &raw.family)?;
    e.sensor = opt_text("sensor", &raw.sensor, 256)?;
    e.confidence = opt_confidence("confidence", &raw.confidence)?;
    if let Some(t) = opt_tlp("tlp", &raw.tlp)? {
        e.tlp = t;
    }
    e.id = opt_text("id", &raw.id, MAX_ID)?;
    if let Some(id) = &e.id
        && !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'.' | b'_' | b'-'))
    {
        return Err(format!(
            "id: {id:?} has characters other than letters, digits, ':', '.', '_' and '-'"
        ));
    }
    e.observation = lower_token("observation", &raw.observation)?;
    e.details = opt_details(raw.details)?;
    Ok(e)
}

/// Longest event id.
const MAX_ID: usize = 128;
/// Largest `details` object, as sent.
const MAX_DETAILS: usize = 4096;

/// `details`: absent, `null`, or a JSON object of at most [`MAX_DETAILS`] bytes.
fn opt_details(raw: Option<&RawValue>) -> Result<Option<serde_json::Value>, String> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let text = raw.get();
    if text == "null" {
        return Ok(None);
    }
    if text.len() > MAX_DETAILS {
        return Err(format!(
            "details: {} bytes, more than the {MAX_DETAILS} allowed",
            text.len()
        ));
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v @ serde_json::Value::Object(_)) => Ok(Some(v)),
        _ => Err(format!("details: expected a JSON object, got {text:.60}")),
    }
}

/// Maps one record of threatfeed's own shape (one JSON object) to an event.
pub fn event_from_json(record: &[u8], received: Timestamp) -> Result<Event, String> {
    decode::<RawEvent<'_>>(record).and_then(|raw| event_from_raw(raw, received))
}

/// Ticks (100 ns) between 1601-01-01 and 1970-01-01.
const FILETIME_UNIX_EPOCH: i128 = 116_444_736_000_000_000;

/// Converts a Windows FILETIME (100-ns ticks since 1601-01-01 UTC) to a timestamp.
pub fn filetime_to_timestamp(ticks: i128) -> Option<Timestamp> {
    let since_unix = ticks - FILETIME_UNIX_EPOCH;
    let nanos = since_unix.checked_mul(100)?;
    Timestamp::from_nanosecond(nanos).ok()
}

fn ctip_time(v: &Field<'_>, received: Timestamp) -> Result<Timestamp, String> {
    let bad =
        |shown: &dyn fmt::Display| format!("DateTimeReceivedUtc: not a Windows FILETIME: {shown}");
    match v {
        None | Some(Scalar::Null) => Ok(received),
        Some(Scalar::UInt(n)) => filetime_to_timestamp(i128::from(*n)).ok_or_else(|| bad(n)),
        Some(s @ Scalar::Str(t)) => match t.trim().parse::<i128>() {
            Ok(ticks) => filetime_to_timestamp(ticks).ok_or_else(|| bad(s)),
            Err(_) => t.trim().parse::<Timestamp>().map_err(|_| bad(s)),
        },
        Some(other) => Err(bad(other)),
    }
}

fn event_from_raw_ctip(raw: RawCtip<'_>, received: Timestamp) -> Result<Event, String> {
    let src_ip = required_ip("SourceIp", &raw.source_ip)?;
    let time = ctip_time(&raw.date_time_received_utc, received)?;
    let mut e = Event::new(src_ip, time, received);
    e.src_port = opt_port("SourcePort", &raw.source_port)?;
    e.dst_ip = opt_ip("DestinationIp", &raw.destination_ip)?;
    e.dst_port = opt_port("DestinationPort", &raw.destination_port)?;
    e.family = lower_token("Malware", &raw.malware)?;
    let feed = opt_text("DataFeed", &raw.data_feed, 128)?;
    let sourced = opt_text("SourcedFrom", &raw.sourced_from, 128)?;
    e.sensor = match (feed, sourced) {
        (Some(f), Some(s)) => Some(format!("{f}/{s}")),
        (Some(f), None) => Some(f),
        (None, s) => s,
    };
    e.confidence = match &raw.threat_confidence {
        Some(Scalar::Str(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "high" => Some(90),
            "medium" => Some(60),
            "low" => Some(30),
            _ => {
                return Err(format!(
                    "ThreatConfidence: expected High, Medium or Low, got {s:?}"
                ));
            }
        },
        other => opt_confidence("ThreatConfidence", other)?,
    };
    if let Some(t) = opt_tlp("TLP", &raw.tlp)? {
        e.tlp = t;
    }
    if let Some(http) = &raw.http_info {
        e.host = opt_host("HttpInfo.HttpHost", &http.http_host)?;
        e.user_agent = opt_text("HttpInfo.HttpUserAgent", &http.http_user_agent, 1024)?;
        if let Some(req) = opt_str("HttpInfo.HttpRequest", &http.http_request)? {
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
        e.proto = lower_token("Transport", &raw.transport)?;
    }
    Ok(e)
}

/// Maps one Microsoft CTIP-Infected record (one JSON object) to an event.
pub fn event_from_ctip(record: &[u8], received: Timestamp) -> Result<Event, String> {
    decode::<RawCtip<'_>>(record).and_then(|raw| event_from_raw_ctip(raw, received))
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
        let e = event_from_ctip(rec.to_string().as_bytes(), now()).expect("ctip");
        assert_eq!(e.time.to_string(), "2021-01-01T00:00:00Z");
        assert_eq!(e.family.as_deref(), Some("conficker"));
        assert_eq!(e.confidence, Some(90));
        assert_eq!(e.url.as_deref(), Some("http://bad.example/search?q=1"));
        assert_eq!(e.sensor.as_deref(), Some("CTIP-Infected/SinkHoleMessage"));
        assert_eq!(e.proto.as_deref(), Some("http"));
        let bad = event_from_ctip(
            br#"{"SourceIp": "1.2.3.4", "DateTimeReceivedUtc": "soon"}"#,
            now(),
        );
        assert!(bad.expect_err("bad time").contains("soon"));
    }

    #[test]
    fn epoch_and_rfc3339() {
        let t = |s: &str| parse_time(&serde_json::from_str::<Scalar<'_>>(s).expect("scalar"));
        assert_eq!(
            t(r#""2026-06-01T02:00:00+02:00""#).expect("t").as_second(),
            1_780_272_000
        );
        assert_eq!(t("1780272000").expect("t").as_second(), 1_780_272_000);
        assert_eq!(
            t(r#""1780272000.25""#).expect("t").as_millisecond(),
            1_780_272_000_250
        );
        assert!(t(r#""yesterday""#).is_err());
        assert!(t("1e300").is_err());
        assert!(t("{}").expect_err("object").contains("an object"));
    }

    #[test]
    fn odd_records_are_refused_with_reasons() {
        let body = b"\"str\"\n[1]\n{\"src_ip\": {\"a\": 1}}\n{\"src_ip\": \"192.0.2.1\", \"confidence\": 101}\n{\"src_ip\": \"192.0.2.1\", \"host\": \"a b\"}\n{\"src_ip\": \"192.0.2.1\", \"extra\": [1, {\"x\": 2}]}\n";
        let p = parse_body(body, InputFormat::Events, now(), ParseLimits::default());
        let errs: Vec<&str> = p.rejected.iter().map(|r| r.error.as_str()).collect();
        assert_eq!(p.events.len(), 1, "{errs:?}");
        assert!(errs[0].contains("not a json object"), "{errs:?}");
        assert!(errs[1].contains("not a json object"), "{errs:?}");
        assert!(
            errs[2].contains("src_ip: expected a string, got an object"),
            "{errs:?}"
        );
        assert!(
            errs[3].contains("confidence: must be 0-100, got 101"),
            "{errs:?}"
        );
        assert!(errs[4].contains("host"), "{errs:?}");
    }
}
