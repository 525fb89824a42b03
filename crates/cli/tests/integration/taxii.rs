//! `/taxii2/`: the OASIS `taxii2-client` and `stix2-validator` (PyPI, installed by
//! `scripts/install-test-deps.sh`) against a real server; the spec's errors over raw HTTP.

use super::support::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::process::Command;

const TAXII: &str = "application/taxii+json;version=2.1";

/// Runs `tests/peers/peer.py ARGS…` and parses its JSON output.
pub fn peer(args: &[&str]) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/peer.py");
    let out = Command::new("python3")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 (run scripts/install-test-deps.sh)");
    assert!(
        out.status.success(),
        "peer {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("peer json")
}

/// Validates STIX objects with the OASIS validator; panics listing its errors.
pub fn assert_valid_stix(name: &str, objects: &[Value]) {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join(format!("{name}.json"));
    let bundle = json!({"type": "bundle", "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d", "objects": objects});
    std::fs::write(&path, bundle.to_string()).expect("write");
    let r = peer(&["validate", path.to_str().expect("path")]);
    let res = &r[0];
    assert_eq!(
        res["is_valid"], true,
        "{name}: stix2-validator errors: {}",
        res["errors"]
    );
}

async fn taxii_get(
    s: &Server,
    token: &str,
    path: &str,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let r = client()
        .get(s.url(path))
        .basic_auth("anyone", Some(token))
        .header("accept", TAXII)
        .send()
        .await
        .expect("get");
    let st = r.status();
    let h = r.headers().clone();
    let text = r.text().await.expect("text");
    (
        st,
        h,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

const IND: &str = "/taxii2/api/collections/6a1c1f5e-8d3a-5b0e-9f1d-3c2b7a4e9d01";
const THR: &str = "/taxii2/api/collections/6a1c1f5e-8d3a-5b0e-9f1d-3c2b7a4e9d02";
const SIG: &str = "/taxii2/api/collections/6a1c1f5e-8d3a-5b0e-9f1d-3c2b7a4e9d03";

#[tokio::test]
async fn the_oasis_client_pages_through_every_collection_and_adds_objects() {
    let s = Server::start_with(Some("default_kb = false\n"), &[]);
    // 1,500 indicators in one commit: they share one timestamp.
    let items: Vec<Value> = (0..1500u32)
        .map(|i| json!({"value": format!("c2-{i}.taxii.example"), "tlp": if i % 3 == 0 { "amber" } else { "clear" }}))
        .collect();
    let (st, r) = post_json(
        &s,
        ADMIN,
        "/api/v1/indicators",
        &json!({"indicators": items}),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    // A documented threat, from a real STIX bundle.
    let bundle = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/stix/oasis-examples/indicators-for-C2-with-COA.json"
    ))
    .expect("bundle");
    let resp = client()
        .post(s.url("/api/v1/import"))
        .bearer_auth(ADMIN)
        .body(bundle)
        .send()
        .await
        .expect("import");
    assert!(resp.status().is_success());
    // Sightings.
    let lines: Vec<Value> = (0..30u64).map(|n| ev("192.0.2.9", "qakbot", n)).collect();
    assert!(post_events(&s, ADMIN, &lines).await.0.is_success());

    let r = peer(&["taxii", &s.url(""), ADMIN, "100"]);
    assert_eq!(
        r["collections"],
        json!(["Indicators", "Sightings", "Threats"]),
        "{r}"
    );
    assert_eq!(r["versions"], json!([TAXII]));
    let ind = &r["pages"]["Indicators"];
    assert_eq!(
        ind["objects"], 1502,
        "every indicator once (1,500 + the bundle's 2): {ind}"
    );
    assert_eq!(ind["distinct"], 1502, "no object repeated across pages");
    assert_eq!(ind["manifest"], 1502);
    assert!(ind["pages"].as_u64().expect("pages") >= 16, "{ind}");
    let thr = &r["pages"]["Threats"];
    assert_eq!(
        thr["objects"], 3,
        "malware, course-of-action, mitigates: {thr}"
    );
    let sig = &r["pages"]["Sightings"];
    assert!(sig["objects"].as_u64().expect("n") >= 30 * 2, "{sig}");
    // POST: the indicator is accepted, the malware refused, the status readable.
    let status = &r["status"];
    assert_eq!(status["status"], "complete", "{status}");
    assert_eq!(status["total_count"], 2);
    assert_eq!(status["success_count"], 1);
    assert_eq!(status["failure_count"], 1);
    let (_, look) = get(&s, ADMIN, "/api/v1/lookup/taxii-peer-c2.example").await;
    assert_eq!(look["known"], true, "{look}");

    // A member cleared for GREEN sees no AMBER indicator, and only its own sightings.
    let (st, v) = post_json(
        &s,
        ADMIN,
        "/api/v1/orgs",
        &json!({"name": "ISP", "kind": "isp", "scope": {"cidrs": ["198.51.100.0/24"]}, "tlp_clearance": "green"}),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let isp = v["token"].as_str().expect("token").to_string();
    let (st, h, page) = taxii_get(&s, &isp, &format!("{IND}/objects/?limit=10000")).await;
    assert_eq!(st, StatusCode::OK, "{page}");
    assert_eq!(h["content-type"], TAXII);
    let objs = page["objects"].as_array().expect("objects");
    assert_eq!(objs.len(), 1000 + 1 + 2, "{}", objs.len());
    let amber = "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421";
    assert!(
        !page.to_string().contains(amber),
        "an AMBER indicator leaked"
    );
    let (_, _, page) = taxii_get(&s, &isp, &format!("{SIG}/objects/")).await;
    assert!(
        page.get("objects").is_none(),
        "no sighting of another network: {page}"
    );

    // Every collection's STIX passes the OASIS validator.
    for (name, coll) in [("indicators", IND), ("threats", THR), ("sightings", SIG)] {
        let (_, _, page) = taxii_get(&s, ADMIN, &format!("{coll}/objects/?limit=200")).await;
        let objs = page["objects"].as_array().expect("objects").clone();
        assert!(!objs.is_empty(), "{name}");
        assert_valid_stix(name, &objs);
    }
}

#[tokio::test]
async fn versions_filters_cursors_and_the_specs_errors() {
    let s = Server::start_with(
        Some("default_kb = false\n[limits]\nmax_body_bytes = 200000\n"),
        &[],
    );
    let (_, r) = post_json(
        &s,
        ADMIN,
        "/api/v1/indicators",
        &json!({"indicators": [{"value": "v.taxii.example", "confidence": 40}]}),
    )
    .await;
    let record = r["ids"][0].as_str().expect("id").to_string();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    post_json(
        &s,
        ADMIN,
        "/api/v1/indicators",
        &json!({"indicators": [{"value": "v.taxii.example", "confidence": 90}]}),
    )
    .await;
    let (_, _, page) = taxii_get(&s, ADMIN, &format!("{IND}/objects/")).await;
    let obj = page["objects"][0].clone();
    assert_eq!(
        page["objects"].as_array().expect("objects").len(),
        1,
        "{page}"
    );
    assert_eq!(obj["confidence"], 90, "the last version by default");
    let id = obj["id"].as_str().expect("id").to_string();
    let (st, _, v) = taxii_get(&s, ADMIN, &format!("{IND}/objects/{id}/versions/")).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["versions"].as_array().expect("versions").len(), 2, "{v}");
    let (_, _, all) = taxii_get(&s, ADMIN, &format!("{IND}/objects/?match[version]=all")).await;
    assert_eq!(all["objects"].as_array().expect("objects").len(), 2);
    let (_, _, first) = taxii_get(
        &s,
        ADMIN,
        &format!("{IND}/objects/{id}/?match[version]=first"),
    )
    .await;
    assert_eq!(first["objects"][0]["confidence"], 40, "{first}");
    let (_, _, typed) = taxii_get(&s, ADMIN, &format!("{IND}/objects/?match[type]=malware")).await;
    assert!(typed.get("objects").is_none(), "{typed}");
    let (_, _, spec) = taxii_get(
        &s,
        ADMIN,
        &format!("{IND}/objects/?match[spec_version]=2.0"),
    )
    .await;
    assert!(spec.get("objects").is_none(), "{spec}");
    // Paging with limit=1 and the headers.
    let (_, h, p1) = taxii_get(
        &s,
        ADMIN,
        &format!("{IND}/objects/?limit=1&match[version]=all"),
    )
    .await;
    assert_eq!(p1["more"], true, "{p1}");
    assert!(
        h.contains_key("x-taxii-date-added-first") && h.contains_key("x-taxii-date-added-last")
    );
    let next = p1["next"].as_str().expect("next");
    let (_, _, p2) = taxii_get(
        &s,
        ADMIN,
        &format!("{IND}/objects/?limit=1&match[version]=all&next={next}"),
    )
    .await;
    assert_eq!(p2["more"], false, "{p2}");
    assert_ne!(p1["objects"][0]["modified"], p2["objects"][0]["modified"]);
    // added_after the last one: nothing.
    let last = h["x-taxii-date-added-last"]
        .to_str()
        .expect("h")
        .to_string();
    let (_, _, later) = taxii_get(
        &s,
        ADMIN,
        &format!("{IND}/objects/?match[version]=all&added_after={last}"),
    )
    .await;
    assert_eq!(
        later["objects"].as_array().map(Vec::len).unwrap_or(0),
        1,
        "only the second version is after the first: {later}"
    );
    // DELETE revokes: the last version is revoked.
    let resp = client()
        .delete(s.url(&format!("{IND}/objects/{id}/")))
        .basic_auth("admin", Some(ADMIN))
        .header("accept", TAXII)
        .send()
        .await
        .expect("delete");
    assert_eq!(resp.status(), StatusCode::OK);
    let (_, _, after) = taxii_get(&s, ADMIN, &format!("{IND}/objects/{id}/")).await;
    assert_eq!(after["objects"][0]["revoked"], true, "{after}");
    let (_, one) = get(&s, ADMIN, &format!("/api/v1/indicators/{record}")).await;
    assert_eq!(one["status"], "deleted");

    // The spec's errors, as TAXII error messages.
    let (st, h, e) = {
        let r = client()
            .get(s.url("/taxii2/"))
            .basic_auth("x", Some(ADMIN))
            .header("accept", "application/json")
            .send()
            .await
            .expect("get");
        (
            r.status(),
            r.headers().clone(),
            r.json::<Value>().await.expect("json"),
        )
    };
    assert_eq!(st, StatusCode::NOT_ACCEPTABLE, "{e}");
    assert_eq!(h["content-type"], TAXII);
    assert_eq!(e["http_status"], "406");
    let r = client()
        .get(s.url("/taxii2/"))
        .header("accept", TAXII)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().contains_key("www-authenticate"));
    let post = |ct: &'static str, body: Vec<u8>| {
        let s = &s;
        async move {
            let r = client()
                .post(s.url(&format!("{IND}/objects/")))
                .basic_auth("x", Some(ADMIN))
                .header("accept", TAXII)
                .header("content-type", ct)
                .body(body)
                .send()
                .await
                .expect("post");
            (r.status(), r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (st, _) = post("application/json", b"{\"objects\":[]}".to_vec()).await;
    assert_eq!(st, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (st, e) = post(TAXII, b"{\"no\": 1}".to_vec()).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    let (st, _) = post(TAXII, vec![b' '; 300_000]).await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE);
    for bad in [
        format!("{IND}/objects/?next=garbage"),
        format!("{IND}/objects/?added_after=yesterday"),
        format!("{IND}/objects/?limit=0"),
        format!("{IND}/objects/?match[version]=newest"),
    ] {
        let (st, _, e) = taxii_get(&s, ADMIN, &bad).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{bad}: {e}");
        assert_eq!(e["http_status"], "400");
    }
    let (st, _, _) = taxii_get(&s, ADMIN, "/taxii2/api/collections/nope/objects/").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _, _) = taxii_get(
        &s,
        ADMIN,
        &format!("{THR}/objects/indicator--00000000-0000-4000-8000-000000000000/"),
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}
