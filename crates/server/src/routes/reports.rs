//! `GET /api/v1/reports/infections?since=…&format=json|csv` — the ISP abuse-desk view.
//!
//! One row per infected IP in the caller's networks (scoped by the privacy model): ASN, AS name,
//! country, families and threat ids seen, first / last seen, check-in count. `since` is RFC 3339,
//! epoch seconds, or a relative age like `24h` / `7d` (default `24h`); it applies to the
//! sensor's `time`. Rows are ordered by check-in count, highest first, then by IP.

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use threatfeed_core::Event;
use threatfeed_core::privacy::can_see_event;

/// Query of the report.
#[derive(Debug, Deserialize)]
pub struct ReportQuery {
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    format: Option<String>,
}

/// One infected IP.
#[derive(Debug, Serialize)]
pub struct InfectionRow {
    ip: IpAddr,
    asn: Option<u32>,
    as_name: Option<String>,
    country: Option<String>,
    families: BTreeSet<String>,
    threat_ids: BTreeSet<String>,
    first_seen: jiff::Timestamp,
    last_seen: jiff::Timestamp,
    count: u64,
}

/// Parses `since`: RFC 3339, epoch seconds, or `<n>(s|m|h|d)` before now.
pub fn parse_since(s: &str, now: jiff::Timestamp) -> ApiResult<jiff::Timestamp> {
    let t = s.trim();
    let bad = || {
        ApiError::BadRequest(format!(
            "since: expected RFC 3339, epoch seconds or an age like 24h, got {s:?}"
        ))
    };
    if let Ok(ts) = t.parse::<jiff::Timestamp>() {
        return Ok(ts);
    }
    if let Ok(secs) = t.parse::<i64>() {
        return jiff::Timestamp::from_second(secs).map_err(|_| bad());
    }
    let (num, unit) = t.split_at(t.len().saturating_sub(1));
    let n: i64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => n,
        "m" => n.checked_mul(60).ok_or_else(bad)?,
        "h" => n.checked_mul(3600).ok_or_else(bad)?,
        "d" => n.checked_mul(86_400).ok_or_else(bad)?,
        _ => return Err(bad()),
    };
    now.checked_sub(jiff::SignedDuration::from_secs(secs))
        .map_err(|_| bad())
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// `GET /api/v1/reports/infections`.
pub async fn infections(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ReportQuery>,
) -> ApiResult<Response> {
    let now = jiff::Timestamp::now();
    let since = parse_since(q.since.as_deref().unwrap_or("24h"), now)?;
    let csv = match q.format.as_deref() {
        None | Some("" | "json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "format: expected json or csv, got {other:?}"
            )));
        }
    };
    let log = state.log.clone();
    let viewer = caller.viewer.clone();
    let (rows, events) =
        tokio::task::spawn_blocking(move || -> ApiResult<(Vec<InfectionRow>, u64)> {
            let mut by_ip: HashMap<IpAddr, InfectionRow> = HashMap::new();
            let mut cursor = 0u64;
            let mut total = 0u64;
            loop {
                let recs = log
                    .read_after(cursor, 8192)
                    .map_err(|e| ApiError::internal("reading the log", e))?;
                if recs.is_empty() {
                    break;
                }
                for r in recs {
                    cursor = r.seq;
                    let Ok(e) = Event::decode_stored(r.seq, &r.data) else {
                        continue;
                    };
                    if e.time < since || !can_see_event(&viewer, &e) {
                        continue;
                    }
                    total += 1;
                    let row = by_ip.entry(e.src_ip).or_insert_with(|| InfectionRow {
                        ip: e.src_ip,
                        asn: e.asn,
                        as_name: e.as_name.clone(),
                        country: e.country.clone(),
                        families: BTreeSet::new(),
                        threat_ids: BTreeSet::new(),
                        first_seen: e.time,
                        last_seen: e.time,
                        count: 0,
                    });
                    row.count += 1;
                    row.first_seen = row.first_seen.min(e.time);
                    row.last_seen = row.last_seen.max(e.time);
                    if let Some(f) = e.family {
                        row.families.insert(f);
                    }
                    if let Some(t) = e.threat_id {
                        row.threat_ids.insert(t);
                    }
                }
            }
            let mut rows: Vec<InfectionRow> = by_ip.into_values().collect();
            rows.sort_by(|a, b| b.count.cmp(&a.count).then(a.ip.cmp(&b.ip)));
            Ok((rows, total))
        })
        .await
        .map_err(|e| ApiError::internal("building the report", e))??;
    if csv {
        let mut out =
            String::from("ip,asn,as_name,country,families,threat_ids,first_seen,last_seen,count\n");
        for r in &rows {
            let fams: Vec<&str> = r.families.iter().map(String::as_str).collect();
            let tids: Vec<&str> = r.threat_ids.iter().map(String::as_str).collect();
            out.push_str(&format!(
                "{},{},{},{},{},{},{},{},{}\n",
                r.ip,
                r.asn.map(|a| a.to_string()).unwrap_or_default(),
                csv_field(r.as_name.as_deref().unwrap_or("")),
                r.country.as_deref().unwrap_or(""),
                csv_field(&fams.join(";")),
                csv_field(&tids.join(";")),
                r.first_seen,
                r.last_seen,
                r.count
            ));
        }
        return Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"infections.csv\"",
                ),
            ],
            out,
        )
            .into_response());
    }
    let body = serde_json::json!({
        "org_id": caller.org.id,
        "since": since,
        "generated": now,
        "infected_ips": rows.len(),
        "events": events,
        "infections": rows,
    });
    Ok(axum::Json(body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_forms() {
        let now = jiff::Timestamp::from_second(1_000_000).expect("ts");
        assert_eq!(
            parse_since("24h", now).expect("24h").as_second(),
            1_000_000 - 86_400
        );
        assert_eq!(parse_since("90", now).expect("epoch").as_second(), 90);
        assert_eq!(
            parse_since("1970-01-02T00:00:00Z", now)
                .expect("rfc")
                .as_second(),
            86_400
        );
        assert!(parse_since("soon", now).is_err());
        assert!(parse_since("5w", now).is_err());
    }
}
