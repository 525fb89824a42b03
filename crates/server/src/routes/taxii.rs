//! TAXII 2.1 (OASIS, "TAXII Version 2.1", sections 4–5) at `/taxii2/`: discovery, one API root
//! (`/taxii2/api/`), collections, objects (GET / POST / by id / DELETE), manifest, versions and
//! status.
//!
//! Collections:
//! - **indicators** — one STIX `indicator` per version of each indicator the caller may see
//!   (TLP); a version is an entry of the indicator change log (add, update, remove — a removed
//!   indicator is `revoked`). Members may POST STIX indicators (their contributions) and DELETE
//!   (admins delete; members withdraw their own).
//! - **threats** — per documented threat a `malware`, a `course-of-action` (its playbook) and the
//!   `mitigates` relationship. Read-only.
//! - **sightings** — the caller's own sightings: per infection event in its scope (privacy
//!   model) a `sighting`, its `observed-data` and the SCOs. Read-only.
//!
//! Paging: `next` is an opaque cursor made from the log sequence of the last entry returned,
//! so objects sharing a timestamp are never skipped or repeated, and a page costs one seek in
//! the log whatever the collection's size. `added_after` seeks by binary search on the log.
//! `limit` (default 1,000, at most `limits.max_page`), `match[id|type|version|spec_version]`.
//! Media types: requests must accept `application/taxii+json;version=2.1` (406 otherwise);
//! POST bodies must be that type (415) and within `limits.max_body_bytes` (413); malformed
//! envelopes get 422, bad filters and cursors 400 — all as TAXII error messages.

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::indicators::Reporter;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use threatfeed_core::Event;
use threatfeed_core::intel::{Contribution, StoredChange};
use threatfeed_core::privacy::{can_see_event, can_see_indicator};
use threatfeed_core::tlp::Tlp;

/// The TAXII media type.
pub const MEDIA_TAXII: &str = "application/taxii+json;version=2.1";
/// The STIX media type.
pub const MEDIA_STIX: &str = "application/stix+json;version=2.1";

/// The collections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coll {
    Indicators,
    Threats,
    Sightings,
}

const COLLECTIONS: [(Coll, &str, &str, &str); 3] = [
    (
        Coll::Indicators,
        "6a1c1f5e-8d3a-5b0e-9f1d-3c2b7a4e9d01",
        "Indicators",
        "C2 infrastructure: every indicator (IP, network, domain, URL, hash) the caller may see by TLP, one version per change; removed ones are revoked. Members may add their own.",
    ),
    (
        Coll::Threats,
        "6a1c1f5e-8d3a-5b0e-9f1d-3c2b7a4e9d02",
        "Threats",
        "Documented threats: malware families with their remediation playbooks (course-of-action, mitigates).",
    ),
    (
        Coll::Sightings,
        "6a1c1f5e-8d3a-5b0e-9f1d-3c2b7a4e9d03",
        "Sightings",
        "The caller's own sightings: infection check-ins from its networks (sighting, observed-data, SCOs).",
    ),
];

fn coll_by_id(id: &str) -> Option<Coll> {
    COLLECTIONS
        .iter()
        .find(|(_, cid, _, _)| *cid == id)
        .map(|(c, ..)| *c)
}

/// A TAXII error message (section 3.6.1) with its status.
fn taxii_error(status: StatusCode, title: &str, description: impl Into<String>) -> Response {
    let body = json!({
        "title": title,
        "description": description.into(),
        "http_status": status.as_u16().to_string(),
    });
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TAXII));
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"threatfeed\", Bearer"),
        );
    }
    resp
}

fn from_api(e: ApiError) -> Response {
    let status = e.clone_status();
    taxii_error(
        status,
        status.canonical_reason().unwrap_or("error"),
        e.to_string(),
    )
}

trait StatusOf {
    fn clone_status(&self) -> StatusCode;
}

impl StatusOf for ApiError {
    fn clone_status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// A TAXII step's result: its error is the finished error response (built once per failed
/// request; the functions returning it allow `result_large_err`, since boxing it would only add
/// an allocation).
type TaxiiResult<T> = Result<T, Response>;

/// Authenticates and checks `Accept`.
#[allow(clippy::result_large_err)]
fn begin(state: &AppState, headers: &HeaderMap) -> TaxiiResult<Caller> {
    let caller = state.auth.authenticate(headers).map_err(from_api)?;
    if let Some(accept) = headers.get(header::ACCEPT) {
        let a = accept.to_str().unwrap_or("").to_ascii_lowercase();
        let ok = a.split(',').any(|part| {
            let p: String = part
                .split(";q=")
                .next()
                .unwrap_or("")
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            p == "*/*"
                || p == "application/*"
                || p == "application/taxii+json"
                || p == "application/taxii+json;version=2.1"
        });
        if !ok {
            return Err(taxii_error(
                StatusCode::NOT_ACCEPTABLE,
                "Not Acceptable",
                format!("Accept {a:?} cannot be served; this server speaks {MEDIA_TAXII}"),
            ));
        }
    }
    Ok(caller)
}

fn taxii_json(status: StatusCode, v: &Value) -> Response {
    let mut resp = (status, v.to_string()).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TAXII));
    resp
}

/// `GET /taxii2/`.
pub async fn discovery(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(r) = begin(&state, &headers) {
        return r;
    }
    taxii_json(
        StatusCode::OK,
        &json!({
            "title": "threatfeed TAXII server",
            "description": "Real-time C2 indicators, threats with remediation playbooks, and each member's own sightings.",
            "default": "/taxii2/api/",
            "api_roots": ["/taxii2/api/"],
        }),
    )
}

/// `GET /taxii2/api/`.
pub async fn api_root(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(r) = begin(&state, &headers) {
        return r;
    }
    taxii_json(
        StatusCode::OK,
        &json!({
            "title": "threatfeed",
            "description": "The feed's API root.",
            "versions": [MEDIA_TAXII],
            "max_content_length": state.config.limits.max_body_bytes,
        }),
    )
}

fn collection_resource(c: Coll) -> Value {
    let (_, id, title, description) = COLLECTIONS
        .iter()
        .find(|(k, ..)| *k == c)
        .copied()
        .unwrap_or(COLLECTIONS[0]);
    json!({
        "id": id,
        "title": title,
        "description": description,
        "can_read": true,
        "can_write": c == Coll::Indicators,
        "media_types": [MEDIA_STIX],
    })
}

/// `GET /taxii2/api/collections/`.
pub async fn collections(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let _caller = match begin(&state, &headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let list: Vec<Value> = COLLECTIONS
        .iter()
        .map(|(c, ..)| collection_resource(*c))
        .collect();
    taxii_json(StatusCode::OK, &json!({ "collections": list }))
}

#[allow(clippy::result_large_err)]
fn find_coll(id: &str) -> TaxiiResult<Coll> {
    coll_by_id(id).ok_or_else(|| {
        taxii_error(
            StatusCode::NOT_FOUND,
            "Collection not found",
            format!("no collection with id {id:?}"),
        )
    })
}

/// `GET /taxii2/api/collections/{id}/`.
pub async fn collection(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let _caller = match begin(&state, &headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    match find_coll(&id) {
        Ok(c) => taxii_json(StatusCode::OK, &collection_resource(c)),
        Err(r) => r,
    }
}

/// The query of objects and manifest requests.
#[derive(Debug, Default)]
struct Filters {
    added_after: Option<jiff::Timestamp>,
    limit: usize,
    next: Option<u64>,
    ids: Option<Vec<String>>,
    types: Option<Vec<String>>,
    versions: VersionFilter,
    spec_ok: bool,
}

#[derive(Debug, Default, Clone, PartialEq)]
enum VersionFilter {
    #[default]
    Last,
    First,
    All,
    At(Vec<String>),
}

const CURSOR_PREFIX: &str = "tf1.";

fn bad(what: &str, value: &str, why: &str) -> Response {
    taxii_error(
        StatusCode::BAD_REQUEST,
        "Bad Request",
        format!("{what} {value:?}: {why}"),
    )
}

#[allow(clippy::result_large_err)]
fn parse_filters(q: &HashMap<String, String>, max: usize) -> TaxiiResult<Filters> {
    let mut f = Filters {
        limit: 1000.min(max),
        spec_ok: true,
        ..Default::default()
    };
    for (k, v) in q {
        match k.as_str() {
            "added_after" => {
                f.added_after = Some(
                    v.parse::<jiff::Timestamp>()
                        .map_err(|_| bad("added_after", v, "expected an RFC 3339 timestamp"))?,
                );
            }
            "limit" => {
                f.limit = match v.parse::<usize>() {
                    Ok(n) if n >= 1 => n.min(max),
                    _ => return Err(bad("limit", v, "expected a positive integer")),
                };
            }
            "next" => {
                let seq = v
                    .strip_prefix(CURSOR_PREFIX)
                    .and_then(|h| u64::from_str_radix(h, 16).ok())
                    .ok_or_else(|| bad("next", v, "not a cursor this server issued"))?;
                f.next = Some(seq);
            }
            "match[id]" => f.ids = Some(v.split(',').map(|s| s.trim().to_string()).collect()),
            "match[type]" => f.types = Some(v.split(',').map(|s| s.trim().to_string()).collect()),
            "match[version]" => {
                let parts: Vec<String> = v.split(',').map(|s| s.trim().to_string()).collect();
                f.versions = if parts.iter().any(|p| p == "all") {
                    VersionFilter::All
                } else if parts.len() == 1 && parts[0] == "last" {
                    VersionFilter::Last
                } else if parts.len() == 1 && parts[0] == "first" {
                    VersionFilter::First
                } else {
                    for p in &parts {
                        if p != "first" && p != "last" && p.parse::<jiff::Timestamp>().is_err() {
                            return Err(bad(
                                "match[version]",
                                p,
                                "expected last, first, all or a timestamp",
                            ));
                        }
                    }
                    VersionFilter::At(parts)
                };
            }
            "match[spec_version]" => {
                f.spec_ok = v.split(',').any(|s| s.trim() == "2.1");
            }
            other if other.starts_with("match[") => {
                return Err(bad("filter", other, "not supported by this server"));
            }
            _ => {}
        }
    }
    Ok(f)
}

/// One entry of a collection: the objects added at one log position.
struct Entry {
    seq: u64,
    added: jiff::Timestamp,
    objects: Vec<Obj>,
}

/// One STIX object of an entry, already serialised (a page is written without building a
/// JSON tree of its objects).
struct Obj {
    /// The object's JSON.
    body: Box<RawValue>,
    /// Its STIX type.
    kind: String,
    /// Its id.
    id: String,
    /// Its version (`modified`, else `created`, else the date added).
    version: String,
    /// Whether this is the object's first version.
    first: bool,
    /// Whether this is the object's last version.
    last: bool,
}

impl Obj {
    /// A single-version object from its JSON.
    fn single(v: Value, added: jiff::Timestamp) -> Option<Obj> {
        let id = v["id"].as_str().unwrap_or("").to_string();
        let kind = v["type"].as_str().unwrap_or("").to_string();
        let version = version_of(&v, added);
        let body = serde_json::value::to_raw_value(&v).ok()?;
        Some(Obj {
            body,
            kind,
            id,
            version,
            first: true,
            last: true,
        })
    }
}

/// STIX timestamp text (RFC 3339, UTC, milliseconds).
fn stix_time(t: jiff::Timestamp) -> String {
    threatfeed_core::stix::timestamp(t)
}

fn object_passes(f: &Filters, obj: &Obj) -> bool {
    let Obj {
        kind,
        id,
        version,
        first,
        last,
        ..
    } = obj;
    if !f.spec_ok {
        return false;
    }
    if let Some(ids) = &f.ids
        && !ids.iter().any(|i| i == id)
    {
        return false;
    }
    if let Some(types) = &f.types
        && !types.iter().any(|x| x == kind)
    {
        return false;
    }
    match &f.versions {
        VersionFilter::All => true,
        VersionFilter::Last => *last,
        VersionFilter::First => *first,
        VersionFilter::At(list) => list.iter().any(|p| {
            (p == "first" && *first)
                || (p == "last" && *last)
                || p.parse::<jiff::Timestamp>().ok() == version.parse::<jiff::Timestamp>().ok()
        }),
    }
}

fn version_of(v: &Value, added: jiff::Timestamp) -> String {
    v.get("modified")
        .or_else(|| v.get("created"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| stix_time(added))
}

/// The entry of one change-log record (indicators collection), if the caller may see it.
fn indicator_entry(state: &AppState, caller: &Caller, seq: u64, data: &[u8]) -> Option<Entry> {
    let change: StoredChange = serde_json::from_slice(data).ok()?;
    if !can_see_indicator(&caller.viewer, change.indicator.tlp) {
        return None;
    }
    let record = change.to_record();
    let mut obj = threatfeed_core::stix::indicator_for(&record);
    // Each change is a version: its time is the object's `modified`.
    let mut modified = stix_time(change.time);
    if obj.created > modified {
        modified = obj.created.clone();
    }
    obj.modified = modified.clone();
    let (first, last) = state
        .intel
        .version_bounds(&record.id)
        .map_or((true, true), |(f, l)| (f == seq, l == seq));
    let body = serde_json::value::to_raw_value(&obj).ok()?;
    Some(Entry {
        seq,
        added: change.time,
        objects: vec![Obj {
            body,
            kind: "indicator".into(),
            id: obj.id,
            version: modified,
            first,
            last,
        }],
    })
}

/// The entry of one event-log record (sightings collection), if in the caller's scope.
fn sighting_entry(caller: &Caller, seq: u64, received_ms: i64, data: &[u8]) -> Option<Entry> {
    let e = Event::decode_stored(seq, data).ok()?;
    if !can_see_event(&caller.viewer, &e) {
        return None;
    }
    let added = jiff::Timestamp::from_millisecond(received_ms).unwrap_or(e.received);
    let objects = threatfeed_core::stix::sighting_for(&e)
        .into_iter()
        .filter_map(|o| Obj::single(o, added))
        .collect();
    Some(Entry {
        seq,
        added,
        objects,
    })
}

/// When the threats collection's objects were added: the server's start.
fn threats_added() -> jiff::Timestamp {
    static T: OnceLock<jiff::Timestamp> = OnceLock::new();
    *T.get_or_init(jiff::Timestamp::now)
}

/// Reads entries after `after` until `limit` objects (entries are never split; a first entry
/// larger than `limit` is returned whole). Returns the entries and whether more may follow.
fn read_page(
    state: &AppState,
    caller: &Caller,
    coll: Coll,
    f: &Filters,
) -> Result<(Vec<Entry>, bool), ApiError> {
    let mut out: Vec<Entry> = Vec::new();
    let mut count = 0usize;
    match coll {
        Coll::Threats => {
            let kb = state.kb.load();
            let start = f.next.unwrap_or(0) as usize;
            let added = threats_added();
            if f.added_after.is_some_and(|a| added <= a) {
                return Ok((out, false));
            }
            for (i, t) in kb.threats().iter().enumerate().skip(start) {
                let objects: Vec<_> = threatfeed_core::stix::threat_objects(t)
                    .into_iter()
                    .filter_map(|o| Obj::single(o, added))
                    .filter(|o| object_passes(f, o))
                    .collect();
                if objects.is_empty() {
                    continue;
                }
                if count > 0 && count + objects.len() > f.limit {
                    return Ok((out, true));
                }
                count += objects.len();
                out.push(Entry {
                    seq: i as u64 + 1,
                    added,
                    objects,
                });
            }
            Ok((out, false))
        }
        Coll::Indicators | Coll::Sightings => {
            let log = if coll == Coll::Indicators {
                state.intel.changes().clone()
            } else {
                state.log.clone()
            };
            let mut cursor = match (f.next, f.added_after) {
                (Some(n), _) => n,
                (None, Some(t)) => seek_after(log.as_ref(), t.as_millisecond())?,
                (None, None) => 0,
            };
            let head = log.last_seq();
            let mut scanned = 0usize;
            while cursor < head && scanned < 1_000_000 {
                let recs = log
                    .read_after(cursor, 1024)
                    .map_err(|e| ApiError::internal("reading the log", e))?;
                if recs.is_empty() {
                    break;
                }
                for r in recs {
                    scanned += 1;
                    let entry = match coll {
                        Coll::Indicators => indicator_entry(state, caller, r.seq, &r.data),
                        _ => sighting_entry(caller, r.seq, r.received_ms, &r.data),
                    };
                    if let Some(mut e) = entry {
                        e.objects.retain(|o| object_passes(f, o));
                        if !e.objects.is_empty() {
                            if count > 0 && count + e.objects.len() > f.limit {
                                return Ok((out, true));
                            }
                            count += e.objects.len();
                            out.push(e);
                        }
                    }
                    cursor = r.seq;
                    if count >= f.limit {
                        return Ok((out, cursor < head));
                    }
                }
            }
            // A scan cut short by its bound still has more to read.
            if cursor < head && !out.is_empty() {
                return Ok((out, true));
            }
            Ok((out, false))
        }
    }
}

/// The last seq whose record was received at or before `ms` (binary search on the log).
fn seek_after(log: &dyn threatfeed_store::log::EventLog, ms: i64) -> Result<u64, ApiError> {
    let first = log.stats().first_seq.unwrap_or(1);
    let (mut lo, mut hi) = (first.saturating_sub(1), log.last_seq());
    // Invariant: records ≤ lo are at or before ms (or lo is before the log); records > hi after.
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        let rec = log
            .read_after(mid - 1, 1)
            .map_err(|e| ApiError::internal("reading the log", e))?;
        match rec.first() {
            Some(r) if r.received_ms <= ms => lo = r.seq.max(mid),
            _ => hi = mid - 1,
        }
    }
    Ok(lo)
}

/// `X-TAXII-Date-Added-First` / `-Last` of a non-empty answer.
fn date_added_headers(
    resp: &mut Response,
    first: Option<jiff::Timestamp>,
    last: Option<jiff::Timestamp>,
) {
    if let (Some(f), Some(l)) = (first, last)
        && let (Ok(f), Ok(l)) = (
            HeaderValue::from_str(&stix_time(f)),
            HeaderValue::from_str(&stix_time(l)),
        )
    {
        resp.headers_mut().insert("x-taxii-date-added-first", f);
        resp.headers_mut().insert("x-taxii-date-added-last", l);
    }
}

fn envelope_response(entries: Vec<Entry>, more: bool, manifest: bool) -> Response {
    let first_added = entries.first().map(|e| e.added);
    let last_added = entries.last().map(|e| e.added);
    let next = entries
        .last()
        .map(|e| format!("{CURSOR_PREFIX}{:x}", e.seq));
    /// The envelope (or manifest), its objects spliced in as they are.
    #[derive(serde::Serialize)]
    struct Envelope {
        more: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        next: Option<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        objects: Vec<Box<RawValue>>,
    }
    let mut objects = Vec::new();
    for e in entries {
        let added = stix_time(e.added);
        for o in e.objects {
            if manifest {
                let item = json!({
                    "id": o.id,
                    "date_added": added,
                    "version": o.version,
                    "media_type": MEDIA_STIX,
                });
                if let Ok(raw) = serde_json::value::to_raw_value(&item) {
                    objects.push(raw);
                }
            } else {
                objects.push(o.body);
            }
        }
    }
    let env = Envelope {
        more,
        next: next.filter(|_| more),
        objects,
    };
    let body = serde_json::to_vec(&env).unwrap_or_else(|_| b"{\"more\":false}".to_vec());
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TAXII));
    date_added_headers(&mut resp, first_added, last_added);
    resp
}

async fn page(
    state: AppState,
    headers: HeaderMap,
    id: String,
    q: HashMap<String, String>,
    manifest: bool,
) -> Response {
    let caller = match begin(&state, &headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let coll = match find_coll(&id) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let f = match parse_filters(&q, state.config.limits.max_page) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let st = state.clone();
    match tokio::task::spawn_blocking(move || read_page(&st, &caller, coll, &f)).await {
        Ok(Ok((entries, more))) => envelope_response(entries, more, manifest),
        Ok(Err(e)) => from_api(e),
        Err(e) => from_api(ApiError::internal("taxii page", e)),
    }
}

/// `GET /taxii2/api/collections/{id}/objects/`.
pub async fn get_objects(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    page(state, headers, id, q, false).await
}

/// `GET /taxii2/api/collections/{id}/manifest/`.
pub async fn manifest(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    page(state, headers, id, q, true).await
}

/// The versions of one object: (object, version, added), oldest first.
fn object_versions(
    state: &AppState,
    caller: &Caller,
    coll: Coll,
    object_id: &str,
) -> Result<Vec<Entry>, ApiError> {
    match coll {
        Coll::Indicators => {
            let Some(record_id) = state.intel.record_id_for_stix(object_id) else {
                return Ok(Vec::new());
            };
            let mut out = Vec::new();
            for seq in state.intel.versions(&record_id) {
                let recs = state
                    .intel
                    .changes()
                    .read_after(seq - 1, 1)
                    .map_err(|e| ApiError::internal("reading the change log", e))?;
                if let Some(r) = recs.first().filter(|r| r.seq == seq)
                    && let Some(e) = indicator_entry(state, caller, r.seq, &r.data)
                {
                    out.push(e);
                }
            }
            Ok(out)
        }
        Coll::Threats => {
            let kb = state.kb.load();
            let added = threats_added();
            for (i, t) in kb.threats().iter().enumerate() {
                for o in threatfeed_core::stix::threat_objects(t) {
                    if o["id"].as_str() == Some(object_id) {
                        return Ok(vec![Entry {
                            seq: i as u64 + 1,
                            added,
                            objects: Obj::single(o, added).into_iter().collect(),
                        }]);
                    }
                }
            }
            Ok(Vec::new())
        }
        // Sighting ids are not indexed: page the collection with match[id] instead.
        Coll::Sightings => Ok(Vec::new()),
    }
}

/// The versions of `object_id` the caller may see; a TAXII 404 when there is none.
async fn found_versions(
    state: &AppState,
    caller: Caller,
    coll: Coll,
    object_id: String,
) -> TaxiiResult<Vec<Entry>> {
    let st = state.clone();
    let oid = object_id.clone();
    let versions = match tokio::task::spawn_blocking(move || {
        object_versions(&st, &caller, coll, &oid)
    })
    .await
    {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return Err(from_api(e)),
        Err(e) => return Err(from_api(ApiError::internal("taxii object versions", e))),
    };
    if versions.is_empty() {
        return Err(taxii_error(
            StatusCode::NOT_FOUND,
            "Object not found",
            format!("no object {object_id:?} in this collection for you"),
        ));
    }
    Ok(versions)
}

/// `GET /taxii2/api/collections/{id}/objects/{object_id}/`.
pub async fn get_object(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, object_id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let caller = match begin(&state, &headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let coll = match find_coll(&id) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let f = match parse_filters(&q, state.config.limits.max_page) {
        Ok(f) => f,
        Err(r) => return r,
    };
    if coll == Coll::Sightings {
        let mut q2 = q.clone();
        q2.insert("match[id]".into(), object_id);
        return page(state, headers, id, q2, false).await;
    }
    let versions = match found_versions(&state, caller, coll, object_id).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let mut kept: Vec<Entry> = versions
        .into_iter()
        .filter_map(|mut e| {
            e.objects.retain(|o| object_passes(&f, o));
            (!e.objects.is_empty()).then_some(e)
        })
        .collect();
    kept.truncate(f.limit);
    envelope_response(kept, false, false)
}

/// `GET /taxii2/api/collections/{id}/objects/{object_id}/versions/`.
pub async fn versions(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, object_id)): Path<(String, String)>,
) -> Response {
    let caller = match begin(&state, &headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let coll = match find_coll(&id) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let entries = match found_versions(&state, caller, coll, object_id).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let mut list: Vec<String> = entries
        .iter()
        .flat_map(|e| e.objects.iter().map(|o| o.version.clone()))
        .collect();
    list.dedup();
    let mut resp = taxii_json(StatusCode::OK, &json!({"more": false, "versions": list}));
    date_added_headers(
        &mut resp,
        entries.first().map(|e| e.added),
        entries.last().map(|e| e.added),
    );
    resp
}

/// Status resources of recent POSTs, by id (bounded).
#[derive(Default)]
struct Statuses {
    by_id: HashMap<String, (String, Value)>,
    order: std::collections::VecDeque<String>,
}

const MAX_STATUSES: usize = 10_000;

fn statuses() -> &'static Mutex<Statuses> {
    static S: OnceLock<Mutex<Statuses>> = OnceLock::new();
    S.get_or_init(|| Mutex::new(Statuses::default()))
}

/// `POST /taxii2/api/collections/{id}/objects/`.
pub async fn add_objects(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let caller = match begin(&state, &headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let coll = match find_coll(&id) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.chars()
                .filter(|c| !c.is_whitespace())
                .collect::<String>()
                .to_ascii_lowercase()
        });
    if !matches!(
        ct.as_deref(),
        Some("application/taxii+json;version=2.1") | Some("application/taxii+json")
    ) {
        return taxii_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported Media Type",
            format!(
                "Content-Type {:?} not accepted; send {MEDIA_TAXII}",
                ct.unwrap_or_default()
            ),
        );
    }
    let body = match body {
        Ok(b) => b,
        Err(rej) => {
            return from_api(crate::routes::body_error(
                rej,
                state.config.limits.max_body_bytes,
            ));
        }
    };
    if coll != Coll::Indicators {
        return taxii_error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "this collection cannot be written by you (only the indicators collection accepts members' objects)",
        );
    }
    let envelope: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return taxii_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Unprocessable Entity",
                format!("the body is not a JSON envelope: {e}"),
            );
        }
    };
    let Some(objects) = envelope.get("objects").and_then(Value::as_array).cloned() else {
        return taxii_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Unprocessable Entity",
            "the envelope has no \"objects\" array",
        );
    };
    if objects.len() > crate::routes::indicators::MAX_CONTRIBUTION {
        return taxii_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Payload Too Large",
            format!(
                "{} objects in one envelope; at most {}",
                objects.len(),
                crate::routes::indicators::MAX_CONTRIBUTION
            ),
        );
    }
    let st = state.clone();
    let result = tokio::task::spawn_blocking(move || add_indicators(&st, &caller, objects)).await;
    match result {
        Ok(Ok(status)) => taxii_json(StatusCode::ACCEPTED, &status),
        Ok(Err(e)) => from_api(e),
        Err(e) => from_api(ApiError::internal("taxii add", e)),
    }
}

/// Contributes the indicators of `objects` as `caller`; returns the status resource.
fn add_indicators(
    state: &AppState,
    caller: &Caller,
    objects: Vec<Value>,
) -> Result<Value, ApiError> {
    let total = objects.len();
    let mut successes = Vec::new();
    let mut failures = Vec::new();
    let mut items = Vec::new();
    let mut item_objects = Vec::new();
    for o in &objects {
        let oid = o
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let version = o
            .get("modified")
            .or_else(|| o.get("created"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if o.get("type").and_then(Value::as_str) != Some("indicator") {
            failures.push(json!({"id": oid, "version": version, "message": format!("object type {:?} is not accepted in the indicators collection", o.get("type").and_then(Value::as_str).unwrap_or(""))}));
            continue;
        }
        let bundle = json!({"type": "bundle", "id": "bundle--00000000-0000-4000-8000-000000000000", "objects": [o]});
        let report = threatfeed_core::import::parse(
            threatfeed_core::import::Format::Stix,
            &bundle.to_string(),
            None,
        );
        if report.indicators.is_empty() {
            let why = report
                .skipped
                .first()
                .map(|(_, r)| r.clone())
                .unwrap_or_else(|| "no supported observable in its pattern".into());
            failures.push(json!({"id": oid, "version": version, "message": why}));
            continue;
        }
        for i in report.indicators {
            items.push(Contribution {
                value: i.value,
                kind: Some(i.kind),
                threat: i.threat,
                confidence: i.confidence,
                tlp: i.tlp,
                last_seen: i.valid_from,
                valid_until: i.valid_until,
                port: i.port,
                description: i.description,
            });
            item_objects.push((oid.clone(), version.clone()));
        }
    }
    let reporter = Reporter::member(caller, false, Tlp::Green);
    let report = state
        .intel
        .contribute(&reporter, items, jiff::Timestamp::now())?;
    let rejected: std::collections::HashSet<usize> =
        report.rejected.iter().map(|r| r.index).collect();
    let mut ok_ids = std::collections::HashSet::new();
    for (i, (oid, version)) in item_objects.iter().enumerate() {
        if rejected.contains(&i) {
            let msg = report
                .rejected
                .iter()
                .find(|r| r.index == i)
                .map(|r| r.error.clone())
                .unwrap_or_default();
            failures.push(json!({"id": oid, "version": version, "message": msg}));
        } else if ok_ids.insert(oid.clone()) {
            successes.push(json!({"id": oid, "version": version}));
        }
    }
    let status_id = uuid::Uuid::new_v4().to_string();
    let now = stix_time(jiff::Timestamp::now());
    let status = json!({
        "id": status_id,
        "status": "complete",
        "request_timestamp": now,
        "total_count": total,
        "success_count": successes.len(),
        "successes": successes,
        "failure_count": failures.len(),
        "failures": failures,
        "pending_count": 0,
        "pendings": [],
    });
    let mut s = statuses().lock().unwrap_or_else(|p| p.into_inner());
    s.by_id
        .insert(status_id.clone(), (caller.org.id.clone(), status.clone()));
    s.order.push_back(status_id);
    while s.order.len() > MAX_STATUSES {
        if let Some(old) = s.order.pop_front() {
            s.by_id.remove(&old);
        }
    }
    Ok(status)
}

/// `GET /taxii2/api/status/{status_id}/`.
pub async fn status(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(status_id): Path<String>,
) -> Response {
    let caller = match begin(&state, &headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let s = statuses().lock().unwrap_or_else(|p| p.into_inner());
    match s.by_id.get(&status_id) {
        Some((owner, v)) if *owner == caller.org.id || caller.is_admin() => {
            taxii_json(StatusCode::OK, v)
        }
        _ => taxii_error(
            StatusCode::NOT_FOUND,
            "Status not found",
            format!("no status {status_id:?} for you"),
        ),
    }
}

/// `DELETE /taxii2/api/collections/{id}/objects/{object_id}/`.
pub async fn delete_object(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, object_id)): Path<(String, String)>,
) -> Response {
    let caller = match begin(&state, &headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let coll = match find_coll(&id) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if coll != Coll::Indicators {
        return taxii_error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "objects of this collection cannot be deleted",
        );
    }
    let Some(record_id) = state.intel.record_id_for_stix(&object_id) else {
        return taxii_error(
            StatusCode::NOT_FOUND,
            "Object not found",
            format!("no object {object_id:?} in this collection"),
        );
    };
    let st = state.clone();
    match tokio::task::spawn_blocking(move || {
        st.intel.delete(&caller, &record_id, jiff::Timestamp::now())
    })
    .await
    {
        Ok(Ok(_)) => StatusCode::OK.into_response(),
        Ok(Err(e)) => from_api(e),
        Err(e) => from_api(ApiError::internal("taxii delete", e)),
    }
}
