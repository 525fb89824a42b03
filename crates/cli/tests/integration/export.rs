//! `/api/v1/export/{format}` and `threatfeed export` over the bundled C2 lists plus members'
//! contributions, checked with the tools that consume them: BIND's `named-checkzone` loads the
//! RPZ zone, the OASIS `stix2-validator` the STIX bundle, PyMISP the MISP feed, the `csv` crate
//! the CSV; plain lists hold one valid entry per line. ETag / If-None-Match, `?since=`
//! (additions and removals) and TLP filtering of every format.

use super::support::*;
use super::taxii::{assert_valid_stix, peer};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::net::IpAddr;
use std::process::Command;

/// GET with an optional If-None-Match: (status, etag, serial, body).
async fn fetch(
    s: &Server,
    token: &str,
    path: &str,
    etag: Option<&str>,
) -> (StatusCode, String, u64, String) {
    let mut req = client().get(s.url(path)).bearer_auth(token);
    if let Some(t) = etag {
        req = req.header("if-none-match", t);
    }
    let r = req.send().await.expect("get");
    let st = r.status();
    let tag = r
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let serial = r
        .headers()
        .get("x-threatfeed-serial")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (st, tag, serial, r.text().await.expect("body"))
}

/// The entries of a plain list (comment and blank lines skipped).
fn entries(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

fn is_domain(s: &str) -> bool {
    s.len() <= 253
        && s.contains('.')
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_export_loads_in_the_tool_that_consumes_it() {
    let s = Server::start();
    wait_for_indicators(&s).await;
    // Members' findings on top of the bundled lists: one AMBER.
    let (st, r) = post_json(
        &s,
        ADMIN,
        "/api/v1/indicators",
        &json!({"indicators": [
            {"value": "198.51.100.77", "threat": "lokibot"},
            {"value": "203.0.113.0/25", "threat": "lokibot"},
            {"value": "203.0.113.128/25", "threat": "lokibot"},
            {"value": "export-c2.example", "threat": "lokibot", "confidence": 90},
            {"value": "http://export-c2.example/fre.php", "threat": "lokibot"},
            {"value": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "threat": "lokibot"},
            {"value": "amber-only.example", "threat": "lokibot", "tlp": "amber"},
        ]}),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{r}");

    // RPZ: BIND loads it; its SOA serial is the export's serial.
    let (st, _, serial, rpz) = fetch(&s, ADMIN, "/api/v1/export/rpz", None).await;
    assert_eq!(st, StatusCode::OK);
    let dir = tempfile::tempdir().expect("tmp");
    let zone = dir.path().join("threatfeed.rpz");
    std::fs::write(&zone, &rpz).expect("write");
    let out = Command::new("named-checkzone")
        .args(["rpz.threatfeed.", zone.to_str().expect("path")])
        .output()
        .expect("named-checkzone (scripts/install-test-deps.sh installs bind9-utils)");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "named-checkzone refused the zone: {said}"
    );
    assert!(
        said.contains(&format!("serial {serial}")),
        "zone serial is not {serial}: {said}"
    );
    assert!(rpz.contains("export-c2.example CNAME ."), "domain missing");
    assert!(
        rpz.contains("*.export-c2.example CNAME ."),
        "sub-domains missing"
    );
    assert!(
        rpz.contains("32.77.100.51.198.rpz-ip"),
        "IP trigger missing"
    );

    // Plain lists: one valid entry per line, ours included, AMBER too for the admin.
    let (_, _, _, ips) = fetch(&s, ADMIN, "/api/v1/export/ip", None).await;
    let ips = entries(&ips);
    assert!(ips.len() > 1000, "{}", ips.len());
    for l in &ips {
        assert!(l.parse::<IpAddr>().is_ok(), "not an IP: {l:?}");
    }
    assert!(ips.contains(&"198.51.100.77"));
    let (_, _, _, cidrs) = fetch(&s, ADMIN, "/api/v1/export/cidr", None).await;
    let cidrs = entries(&cidrs);
    for l in &cidrs {
        assert!(l.parse::<ipnet::IpNet>().is_ok(), "not a network: {l:?}");
    }
    assert!(
        cidrs.contains(&"203.0.113.0/24"),
        "two /25 halves aggregate into the /24"
    );
    let (_, _, _, domains) = fetch(&s, ADMIN, "/api/v1/export/domain", None).await;
    let domains = entries(&domains);
    for l in &domains {
        assert!(is_domain(l), "not a domain: {l:?}");
    }
    assert!(domains.contains(&"amber-only.example"));
    let (_, _, _, urls) = fetch(&s, ADMIN, "/api/v1/export/url", None).await;
    for l in entries(&urls) {
        let (scheme, rest) = l.split_once("://").expect("a scheme");
        assert!(
            !scheme.is_empty()
                && scheme.bytes().all(|b| b.is_ascii_lowercase())
                && !rest.is_empty()
                && !l.contains(char::is_whitespace),
            "not a URL: {l:?}"
        );
    }
    let (_, _, _, hosts) = fetch(&s, ADMIN, "/api/v1/export/hosts", None).await;
    let hosts = entries(&hosts);
    assert_eq!(hosts.len(), domains.len());
    for l in &hosts {
        let (ip, name) = l.split_once(' ').expect("two fields");
        assert_eq!(ip, "0.0.0.0");
        assert!(is_domain(name.trim()), "{l:?}");
    }

    // CSV parses, one row per indicator, with a header.
    let (_, _, _, csv) = fetch(&s, ADMIN, "/api/v1/export/csv?threat=lokibot", None).await;
    let mut rd = csv::Reader::from_reader(csv.as_bytes());
    let header = rd.headers().expect("header").clone();
    assert!(header.iter().any(|h| h == "value"), "{header:?}");
    let vi = header
        .iter()
        .position(|h| h == "value")
        .expect("value column");
    let rows: Vec<csv::StringRecord> = rd.records().map(|r| r.expect("row")).collect();
    let values: HashSet<&str> = rows.iter().filter_map(|r| r.get(vi)).collect();
    assert!(values.contains("export-c2.example"));
    assert!(values.contains("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    assert_eq!(values.len(), rows.len(), "one row per indicator");

    // STIX: the OASIS validator accepts the bundle.
    let (st, _, _, stix) = fetch(&s, ADMIN, "/api/v1/export/stix?threat=lokibot", None).await;
    assert_eq!(st, StatusCode::OK);
    let bundle: Value = serde_json::from_str(&stix).expect("json");
    let objects = bundle["objects"].as_array().expect("objects");
    assert!(objects.iter().any(|o| o["type"] == "course-of-action"));
    assert!(
        objects.iter().any(|o| o["type"] == "indicator"
            && o["pattern"] == "[domain-name:value = 'export-c2.example']"),
        "{stix:.400}"
    );
    assert_valid_stix("export", objects);

    // Suricata: unique sids, the threat and TLP in the metadata.
    let (_, _, _, rules) = fetch(&s, ADMIN, "/api/v1/export/suricata", None).await;
    let mut sids = HashSet::new();
    for l in entries(&rules) {
        assert!(l.starts_with("alert "), "{l:?}");
        let sid = l
            .split("sid:")
            .nth(1)
            .and_then(|r| r.split(';').next())
            .expect("sid");
        assert!(sids.insert(sid.to_string()), "duplicate sid {sid}");
    }
    assert!(rules.contains("export-c2.example") && rules.contains("lokibot"));

    // MISP: the CLI writes the feed; PyMISP loads every event.
    let feed = dir.path().join("misp");
    let out = Command::new(bin())
        .args(["export", "misp", "--threat", "lokibot", "--server"])
        .arg(s.url(""))
        .args(["--token", ADMIN, "--output"])
        .arg(&feed)
        .output()
        .expect("threatfeed export");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m = peer(&["misp", feed.to_str().expect("path")]);
    let events = m["events"].as_array().expect("events");
    assert!(!events.is_empty(), "{m}");
    let values: Vec<&str> = events
        .iter()
        .flat_map(|e| e["values"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    assert!(values.contains(&"export-c2.example"), "{m}");
    assert!(m["hashes"].as_u64().unwrap_or(0) >= values.len() as u64);

    // A member cleared for GREEN never gets the AMBER indicator, in any format.
    let (st, v) = post_json(
        &s,
        ADMIN,
        "/api/v1/orgs",
        &json!({"name": "ISP", "kind": "isp", "scope": {"cidrs": ["192.0.2.0/24"]}, "tlp_clearance": "green"}),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let isp = v["token"].as_str().expect("token").to_string();
    for f in [
        "domain",
        "hosts",
        "rpz",
        "suricata",
        "csv?threat=lokibot",
        "json?threat=lokibot",
        "stix?threat=lokibot",
    ] {
        let (st, _, _, body) = fetch(&s, &isp, &format!("/api/v1/export/{f}"), None).await;
        assert_eq!(st, StatusCode::OK, "{f}");
        assert!(!body.contains("amber-only.example"), "AMBER leaked in {f}");
        assert!(
            body.contains("export-c2.example"),
            "{f} lacks a GREEN-visible one"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_and_incremental_pulls_see_additions_and_removals() {
    let s = Server::start_with(Some("default_kb = false\n"), &[]);
    let (_, r) = post_json(
        &s,
        ADMIN,
        "/api/v1/indicators",
        &json!({"indicators": [{"value": "192.0.2.10"}, {"value": "192.0.2.11"}]}),
    )
    .await;
    let first_id = r["ids"][0].as_str().expect("id").to_string();

    // Unchanged feed: 304, nothing rendered; the tag differs per format.
    let (st, tag, serial, body) = fetch(&s, ADMIN, "/api/v1/export/ip", None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(entries(&body), vec!["192.0.2.10", "192.0.2.11"]);
    assert!(!tag.is_empty());
    let (st, tag2, ..) = fetch(&s, ADMIN, "/api/v1/export/ip", Some(&tag)).await;
    assert_eq!(st, StatusCode::NOT_MODIFIED);
    assert_eq!(tag2, tag);
    let (st, ..) = fetch(&s, ADMIN, "/api/v1/export/domain", Some(&tag)).await;
    assert_eq!(st, StatusCode::OK, "another format is another entity");

    // A removal and an addition: the tag changes, the list shrinks and grows.
    let st = client()
        .delete(s.url(&format!("/api/v1/indicators/{first_id}")))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("delete")
        .status();
    assert!(st.is_success(), "{st}");
    post_json(
        &s,
        ADMIN,
        "/api/v1/indicators",
        &json!({"indicators": [{"value": "192.0.2.12"}]}),
    )
    .await;
    let (st, tag3, serial2, body) = fetch(&s, ADMIN, "/api/v1/export/ip", Some(&tag)).await;
    assert_eq!(st, StatusCode::OK);
    assert_ne!(tag3, tag);
    assert!(serial2 > serial);
    assert_eq!(entries(&body), vec!["192.0.2.11", "192.0.2.12"]);

    // Incremental JSON and CSV since the first pull: the addition and the removal only.
    let (st, _, _, body) = fetch(
        &s,
        ADMIN,
        &format!("/api/v1/export/json?since={serial}"),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    let mut changed: Vec<(String, bool)> = v["indicators"]
        .as_array()
        .expect("indicators")
        .iter()
        .map(|i| {
            (
                i["value"].as_str().unwrap_or("").to_string(),
                i["active"].as_bool().expect("active"),
            )
        })
        .collect();
    changed.sort();
    assert_eq!(
        changed,
        vec![
            ("192.0.2.10".to_string(), false),
            ("192.0.2.12".to_string(), true)
        ]
    );
    let (_, _, _, body) = fetch(
        &s,
        ADMIN,
        &format!("/api/v1/export/stix?since={serial}"),
        None,
    )
    .await;
    let bundle: Value = serde_json::from_str(&body).expect("json");
    let revoked: Vec<&Value> = bundle["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .filter(|o| o["type"] == "indicator" && o["revoked"] == true)
        .collect();
    assert_eq!(revoked.len(), 1, "the removal is a revoked indicator");

    // Errors name the problem.
    let (st, _, _, body) = fetch(&s, ADMIN, "/api/v1/export/ip?since=3", None).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("since"), "{body}");
    let (st, _, _, body) = fetch(&s, ADMIN, "/api/v1/export/pdf", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert!(body.contains("pdf") && body.contains("rpz"), "{body}");
    let (st, _, _, body) = fetch(&s, ADMIN, "/api/v1/export/json?since=yesterday", None).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(body.contains("yesterday"), "{body}");

    // The CLI keeps the ETag beside the file and skips an unchanged download.
    let dir = tempfile::tempdir().expect("tmp");
    let out_file = dir.path().join("block.txt");
    for expect_unchanged in [false, true] {
        let out = Command::new(bin())
            .args(["export", "ip", "--server"])
            .arg(s.url(""))
            .args(["--token", ADMIN, "--output"])
            .arg(&out_file)
            .output()
            .expect("threatfeed export");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        assert_eq!(
            err.contains("\"unchanged\":true"),
            expect_unchanged,
            "{err}"
        );
    }
    let text = std::fs::read_to_string(&out_file).expect("file");
    assert_eq!(entries(&text), vec!["192.0.2.11", "192.0.2.12"]);
}

/// Every real STIX file under testdata/stix imports; the re-export of what came in passes the
/// OASIS validator and holds every imported indicator and the threats they point at.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_stix_bundles_import_and_re_export_valid() {
    let s = Server::start_with(Some("default_kb = false\n"), &[]);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/stix");
    let mut files = Vec::new();
    for sub in [
        "oasis-examples",
        "oasis-examples/threat-reports",
        "mitre-attack",
    ] {
        for e in std::fs::read_dir(root.join(sub)).expect("dir") {
            let p = e.expect("entry").path();
            let name = p.to_string_lossy().to_string();
            if name.ends_with(".json") || name.ends_with(".json.gz") {
                files.push(p);
            }
        }
    }
    files.sort();
    assert!(files.len() >= 8, "{files:?}");
    let mut imported = 0;
    for f in &files {
        let resp = client()
            .post(s.url("/api/v1/import?format=stix&new_threats=true"))
            .bearer_auth(ADMIN)
            .body(std::fs::read(f).expect("read"))
            .send()
            .await
            .expect("import");
        let st = resp.status();
        let v: Value = resp.json().await.expect("json");
        assert_eq!(st, StatusCode::OK, "{}: {v}", f.display());
        imported += v["imported"].as_u64().unwrap_or(0) + v["merged"].as_u64().unwrap_or(0);
    }
    assert!(imported >= 5, "{imported}");
    let (st, _, _, body) = fetch(&s, ADMIN, "/api/v1/export/stix", None).await;
    assert_eq!(st, StatusCode::OK);
    let bundle: Value = serde_json::from_str(&body).expect("json");
    let objects = bundle["objects"].as_array().expect("objects");
    let (_, list) = get(&s, ADMIN, "/api/v1/indicators?limit=10000").await;
    let records = list["indicators"].as_array().expect("indicators");
    assert!(!records.is_empty());
    let patterns: Vec<&str> = objects
        .iter()
        .filter(|o| o["type"] == "indicator")
        .filter_map(|o| o["pattern"].as_str())
        .collect();
    assert_eq!(
        patterns.len(),
        records.len(),
        "one STIX indicator per record"
    );
    for r in records {
        let value = r["value"].as_str().expect("value");
        assert!(
            patterns.iter().any(|p| p.contains(value)),
            "{value} missing from the re-export"
        );
    }
    // Each indicator with a threat `indicates` a malware that is in the bundle.
    let malware: HashSet<&str> = objects
        .iter()
        .filter(|o| o["type"] == "malware")
        .filter_map(|o| o["id"].as_str())
        .collect();
    let indicates: Vec<&Value> = objects
        .iter()
        .filter(|o| o["type"] == "relationship" && o["relationship_type"] == "indicates")
        .collect();
    let with_threat = records
        .iter()
        .filter(|r| r["threat_id"].is_string())
        .count();
    assert_eq!(
        indicates.len(),
        with_threat,
        "one indicates per attributed record"
    );
    for rel in indicates {
        let target = rel["target_ref"].as_str().expect("target");
        assert!(malware.contains(target), "{target} not in the bundle");
    }
    assert_valid_stix("reexport", objects);
}
