//! `POST /api/v1/import?format=F` — imports a whole third-party file: maltrail lists, FireHOL
//! ipsets / netsets, abuse.ch Feodo CSV, plain lists, MISP events, MISP galaxies, STIX 2.1
//! bundles (`threatfeed_core::import`). The body is the file as it is (gzip accepted, by
//! `Content-Encoding: gzip` or by its magic bytes); the format is detected when `format` is
//! absent.
//!
//! Query: `format`, `threat` (attributed to indicators the file does not attribute), `tlp`
//! (default CLEAR for an admin's import of a public feed, GREEN for a member's), `confidence`,
//! `source` (admin only: the feed's name shown as the source; default `import:<format>`),
//! `anonymous` (members), `new_threats` (admin: add threats the knowledge base lacks; default
//! true, except for MISP galaxies, whose clusters then only enrich the known threats).
//!
//! An admin imports on behalf of the feed; a member imports its own contributions (sourced to
//! it, counted in its accuracy) and cannot change threats. The answer counts what was imported
//! (new), merged (already known), skipped (with the first reasons, by line / entry) and the
//! threats created or updated.

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::indicators::Reporter;
use crate::routes::body_error;
use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use threatfeed_core::import::{Format, parse_reader};
use threatfeed_core::intel::Contribution;
use threatfeed_core::tlp::Tlp;

/// Query of an import.
#[derive(Debug, Deserialize)]
pub struct ImportQuery {
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    threat: Option<String>,
    #[serde(default)]
    tlp: Option<String>,
    #[serde(default)]
    confidence: Option<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    anonymous: Option<String>,
    #[serde(default)]
    new_threats: Option<String>,
}

fn flag(what: &str, v: Option<&str>) -> ApiResult<Option<bool>> {
    match v.map(str::trim) {
        None | Some("") => Ok(None),
        Some("true" | "1" | "yes") => Ok(Some(true)),
        Some("false" | "0" | "no") => Ok(Some(false)),
        Some(other) => Err(ApiError::BadRequest(format!(
            "{what}: expected true or false, got {other:?}"
        ))),
    }
}

/// `POST /api/v1/import`.
pub async fn import(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ImportQuery>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let limits = state.config.limits;
    let body = body.map_err(|r| body_error(r, limits.max_body_bytes))?;
    let format = match q.format.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(f) => Some(
            f.parse::<Format>()
                .map_err(|e| ApiError::BadRequest(format!("format: {e}")))?,
        ),
    };
    let admin = caller.is_admin();
    let tlp = match q.tlp.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => {
            if admin {
                Tlp::Clear
            } else {
                Tlp::Green
            }
        }
        Some(t) => t
            .parse::<Tlp>()
            .map_err(|e| ApiError::BadRequest(format!("tlp: {e}")))?,
    };
    let confidence = match q
        .confidence
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => threatfeed_core::intel::DEFAULT_CONFIDENCE,
        Some(c) => match c.parse::<u8>() {
            Ok(n) if n <= 100 => n,
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "confidence: expected 0 to 100, got {c:?}"
                )));
            }
        },
    };
    let anonymous = flag("anonymous", q.anonymous.as_deref())?.unwrap_or(false);
    let new_threats = flag("new_threats", q.new_threats.as_deref())?;
    if !admin && q.source.is_some() {
        return Err(ApiError::Forbidden(
            "only admins may name the source of an import; members' imports are their own contributions".into(),
        ));
    }
    let gzip_header = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase());
    let raw: Vec<u8> = match gzip_header.as_deref() {
        Some("gzip" | "x-gzip") => {
            crate::routes::events::gunzip(&body, limits.max_decompressed_bytes)?
        }
        None | Some("identity") if body.starts_with(&[0x1f, 0x8b]) => {
            crate::routes::events::gunzip(&body, limits.max_decompressed_bytes)?
        }
        None | Some("identity") => body.to_vec(),
        Some(other) => {
            return Err(ApiError::UnsupportedMediaType(format!(
                "content encoding {other:?} not accepted (expected gzip or none)"
            )));
        }
    };
    let threat = q.threat.clone().filter(|t| !t.trim().is_empty());
    let st = state.clone();
    let source_name = q.source.clone().filter(|s| !s.trim().is_empty());
    tokio::task::spawn_blocking(move || -> ApiResult<Json<Value>> {
        let report = parse_reader(format, &raw[..], threat.as_deref())
            .map_err(|e| ApiError::BadRequest(format!("cannot read the body: {e}")))?;
        let used = format.unwrap_or_else(|| {
            threatfeed_core::import::detect(&String::from_utf8_lossy(&raw))
        });
        let (mut created, mut updated, mut refused) = (0, 0, Vec::new());
        let threat_count = report.threats.len();
        if threat_count > 0 {
            if admin {
                let add_new = new_threats.unwrap_or(used != Format::MispGalaxy);
                let src = source_name
                    .clone()
                    .unwrap_or_else(|| format!("import:{}", used.name()));
                (created, updated, refused) =
                    crate::routes::threats::merge_imported(&st, report.threats, &src, add_new)?;
            } else {
                refused.push(format!(
                    "{threat_count} threat definitions ignored: only admins may change threats"
                ));
            }
        }
        let reporter = if admin {
            Reporter {
                name: source_name.unwrap_or_else(|| format!("import:{}", used.name())),
                org_id: None,
                anonymous: false,
                default_tlp: tlp,
                default_confidence: confidence,
            }
        } else {
            let mut r = Reporter::member(&caller, anonymous, tlp);
            r.default_confidence = confidence;
            r
        };
        let items: Vec<Contribution> = report
            .indicators
            .into_iter()
            .map(|i| Contribution {
                value: i.value,
                kind: Some(i.kind),
                threat: i.threat,
                confidence: i.confidence,
                tlp: i.tlp,
                last_seen: i.valid_from,
                valid_until: i.valid_until,
                port: i.port,
                description: i.description,
            })
            .collect();
        let total = items.len();
        let result = st.intel.contribute(&reporter, items, jiff::Timestamp::now())?;
        let skipped: Vec<Value> = report
            .skipped
            .iter()
            .map(|(line, reason)| json!({"line": line, "reason": reason}))
            .chain(
                result
                    .rejected
                    .iter()
                    .map(|r| json!({"line": null, "reason": r.error})),
            )
            .collect();
        Ok(Json(json!({
            "format": used.name(),
            "indicators": total,
            "imported": result.added,
            "merged": result.merged + result.reactivated,
            "skipped": report.skipped_count + result.rejected.len(),
            "duplicates": report.duplicates,
            "skipped_lines": skipped,
            "ignored": report.ignored,
            "threats": {"defined": threat_count, "created": created, "updated": updated, "refused": refused},
        })))
    })
    .await
    .map_err(|e| ApiError::internal("importing", e))?
}
