//! `threatfeed import` and `POST /api/v1/import` on real files (testdata/): FireHOL, Feodo CSV,
//! plain lists, MISP events and galaxies, STIX bundles; and request-pattern classification.

use super::support::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Command;

const NO_KB: &str = "default_kb = false\n";

fn testdata(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata")
        .join(rel)
}

async fn post_file(s: &Server, token: &str, query: &str, body: Vec<u8>) -> (StatusCode, Value) {
    let r = client()
        .post(s.url(&format!("/api/v1/import{query}")))
        .bearer_auth(token)
        .body(body)
        .send()
        .await
        .expect("post");
    answer(r).await
}

/// The data rows of the Feodo CSV: (ip, malware).
fn feodo_rows() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(testdata(
        "blocklists/feodotracker_ipblocklist_2024-04-04.csv",
    ))
    .expect("csv");
    text.lines()
        .filter(|l| l.starts_with('"') && !l.contains("dst_ip"))
        .map(|l| {
            let cols: Vec<&str> = l.split(',').map(|c| c.trim_matches('"')).collect();
            (cols[1].to_string(), cols[5].to_string())
        })
        .collect()
}

#[tokio::test]
async fn the_import_command_reads_real_lists_and_reports_what_it_skipped() {
    let s = Server::start_with(Some(NO_KB), &[]);
    let dir = tempfile::tempdir().expect("tmp");
    let plain = dir.path().join("c2.txt");
    std::fs::write(
        &plain,
        "# my team's list\n\nbad-c2.example\n203.0.113.50\nthis is not an indicator\nhxxp://bad-c2[.]example/gate.php\n",
    )
    .expect("write");
    let out = Command::new(bin())
        .args([
            "import",
            "--server",
            &s.url(""),
            "--token",
            ADMIN,
            "--threat",
            "emotet",
        ])
        .arg(testdata(
            "blocklists/feodotracker_ipblocklist_2024-04-04.csv",
        ))
        .arg(testdata("blocklists/spamhaus_drop.netset"))
        .arg(&plain)
        .output()
        .expect("run import");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].contains("feodo-csv"), "{stdout}");
    assert!(lines[1].contains("firehol"), "{stdout}");
    assert!(
        lines[2].contains("plain") && lines[2].contains("1 skipped"),
        "{stdout}"
    );
    assert!(
        stderr.contains("c2.txt:5") && stderr.contains("this is not an indicator"),
        "the odd line is reported with file and line: {stderr}"
    );
    let totals: Value = serde_json::from_str(lines.last().expect("totals")).expect("json");
    let rows = feodo_rows();
    let unique_ips: std::collections::HashSet<&String> = rows.iter().map(|(ip, _)| ip).collect();
    let drop_nets = std::fs::read_to_string(testdata("blocklists/spamhaus_drop.netset"))
        .expect("netset")
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .count();
    assert_eq!(
        totals["imported"].as_u64(),
        Some((unique_ips.len() + drop_nets + 3) as u64),
        "{totals}"
    );
    // Importing again merges instead of duplicating.
    let again = Command::new(bin())
        .args(["import", "--server", &s.url(""), "--token", ADMIN])
        .arg(testdata("blocklists/spamhaus_drop.netset"))
        .output()
        .expect("run import");
    let again_out = String::from_utf8_lossy(&again.stdout);
    let t2: Value = serde_json::from_str(again_out.lines().last().expect("totals")).expect("json");
    assert_eq!(t2["imported"], 0, "{again_out}");
    assert_eq!(t2["merged"].as_u64(), Some(drop_nets as u64), "{again_out}");

    // What was imported is looked up: a Feodo C2 with its family, an address inside a DROP
    // network, the plain list's domain with the --threat family.
    let (ip, family) = &rows[0];
    let (_, look) = get(&s, ADMIN, &format!("/api/v1/lookup/{ip}")).await;
    assert_eq!(look["known"], true, "{look}");
    assert_eq!(
        look["hits"][0]["indicator"]["family"],
        json!(family),
        "{look}"
    );
    assert_eq!(
        look["hits"][0]["indicator"]["source"], "import:feodo-csv",
        "{look}"
    );
    let (_, list) = get(&s, ADMIN, "/api/v1/indicators?type=cidr&limit=1").await;
    let net = list["indicators"][0]["value"]
        .as_str()
        .expect("cidr")
        .to_string();
    let inside = net.split('/').next().expect("addr").to_string();
    let (_, look) = get(&s, ADMIN, &format!("/api/v1/lookup/{inside}")).await;
    assert_eq!(look["hits"][0]["matched"], "network", "{look}");
    let (_, look) = get(&s, ADMIN, "/api/v1/lookup/x.bad-c2.example").await;
    assert_eq!(look["hits"][0]["indicator"]["family"], "emotet", "{look}");
}

#[tokio::test]
async fn stix_and_misp_documents_bring_their_threats_and_playbook_text() {
    let s = Server::start_with(Some(NO_KB), &[]);
    let bundle = std::fs::read(testdata(
        "stix/oasis-examples/indicators-for-C2-with-COA.json",
    ))
    .expect("bundle");
    let (st, r) = post_file(&s, ADMIN, "", bundle).await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(r["format"], "stix", "{r}");
    assert_eq!(r["imported"], 2, "{r}");
    assert_eq!(r["threats"]["created"], 1, "{r}");
    let (st, t) = get(&s, ADMIN, "/api/v1/threats/poison%20ivy").await;
    assert_eq!(st, StatusCode::OK, "{t}");
    let playbook = t["playbook"].to_string();
    assert!(
        playbook.contains("Add TCP port 80 Filter Rule"),
        "the course of action is playbook text: {playbook}"
    );
    let (_, look) = get(
        &s,
        ADMIN,
        "/api/v1/lookup/ef537f25c895bfa782526529a9b63d97aa631564d5d789c2b765448c8635fb6c",
    )
    .await;
    assert_eq!(look["hits"][0]["indicator"]["threat_id"], t["id"], "{look}");
    assert_eq!(look["hits"][0]["threat"]["name"], "Poison Ivy", "{look}");

    // A MISP event: typed attributes become indicators at the event's TLP, others are skipped
    // with the attribute's type named.
    let (_, m) = create_org(&s, "MISP member", "company", json!({})).await;
    let event = std::fs::read(testdata("misp/event-emotet.json")).expect("event");
    let (st, r) = post_file(&s, &m, "?anonymous=true", event).await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(r["format"], "misp-event", "{r}");
    assert!(r["imported"].as_u64().expect("n") >= 6, "{r}");
    let reasons = r["skipped_lines"].to_string();
    assert!(reasons.contains("email-src"), "{reasons}");
    assert!(
        r["threats"]["refused"].to_string().contains("only admins") || r["threats"]["defined"] == 0,
        "a member's import does not change threats: {r}"
    );
    let (_, look) = get(&s, &m, "/api/v1/lookup/shop-example-garden.com").await;
    assert_eq!(look["known"], true, "{look}");
    assert_eq!(look["hits"][0]["indicator"]["tlp"], "green", "{look}");
    assert_eq!(
        look["hits"][0]["indicator"]["source"], "anonymous member",
        "{look}"
    );
    let (_, me) = get(&s, &m, "/api/v1/me").await;
    assert!(
        me["contributions"]["contributed"].as_u64().expect("n") >= 6,
        "{me}"
    );
    // Members may not name a feed as the source.
    let (st, _) = post_file(&s, &m, "?source=abuse.ch", b"198.51.100.1\n".to_vec()).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, e) = post_file(&s, ADMIN, "?format=yaml", b"x".to_vec()).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(e.to_string().contains("yaml"), "{e}");
    // Garbage in a JSON format is a report, not a crash.
    let (st, r) = post_file(
        &s,
        ADMIN,
        "?format=stix",
        b"{\"type\": \"bundle\", \"objects\": [".to_vec(),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(r["imported"], 0);
    assert!(r["skipped"].as_u64().expect("n") >= 1, "{r}");
}

#[tokio::test]
async fn a_misp_galaxy_enriches_the_known_threats() {
    let s = Server::start();
    let galaxy = std::fs::read(testdata("misp-galaxy/botnet.json")).expect("galaxy");
    let (_, before) = get(&s, ADMIN, "/api/v1/threats").await;
    let n_before = before["threats"].as_array().expect("threats").len();
    let (st, r) = post_file(&s, ADMIN, "", galaxy.clone()).await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(r["format"], "misp-galaxy", "{r}");
    assert!(r["threats"]["defined"].as_u64().expect("n") > 100, "{r}");
    assert_eq!(r["threats"]["created"], 0, "{r}");
    assert!(r["threats"]["updated"].as_u64().expect("n") >= 1, "{r}");
    let (_, after) = get(&s, ADMIN, "/api/v1/threats").await;
    assert_eq!(
        after["threats"].as_array().expect("threats").len(),
        n_before
    );
    // With new_threats=true the unknown botnets are added, with generic, labelled steps.
    let (_, r) = post_file(&s, ADMIN, "?new_threats=true", galaxy).await;
    assert!(r["threats"]["created"].as_u64().expect("n") > 50, "{r}");
    let (st, t) = get(&s, ADMIN, "/api/v1/threats/necurs").await;
    assert_eq!(st, StatusCode::OK, "{t}");
    assert!(
        t["playbook"]["clean"][0]
            .as_str()
            .expect("step")
            .contains("generic step"),
        "{t}"
    );
    assert!(!t["description"].as_str().expect("d").is_empty());
}

#[tokio::test]
async fn check_ins_are_classified_by_request_patterns_and_say_what_matched() {
    let s = Server::start();
    let (_, sensor) = create_org(&s, "Sinkhole", "sensor", json!({})).await;
    let lines = vec![
        json!({"src_ip": "192.0.2.10", "time": "2026-06-01T12:00:00Z", "proto": "http", "dst_port": 80,
               "host": "unlisted-host.example", "url": "http://unlisted-host.example/fre.php"}),
        json!({"src_ip": "192.0.2.11", "time": "2026-06-01T12:00:00Z", "proto": "http",
               "host": "another-unlisted.example", "url": "http://another-unlisted.example/x",
               "user_agent": "Mozilla/4.08 (Charon; Inferno)"}),
        json!({"src_ip": "192.0.2.12", "time": "2026-06-01T12:00:00Z", "proto": "http",
               "host": "benign.example", "url": "http://benign.example/index.html"}),
    ];
    let (st, r) = post_events(&s, &sensor, &lines).await;
    assert_eq!(st, StatusCode::OK, "{r}");
    let events = all_events(&s, ADMIN).await;
    assert_eq!(events.len(), 3);
    assert_eq!(events[0]["threat_id"], "lokibot", "{}", events[0]);
    assert_eq!(events[0]["classified_by"], "rule:lokibot-fre-php");
    assert_eq!(events[1]["threat_id"], "lokibot", "{}", events[1]);
    assert_eq!(events[1]["classified_by"], "rule:lokibot-user-agent");
    assert_eq!(events[2]["threat_id"], Value::Null, "{}", events[2]);
    assert!(events[2].get("classified_by").is_none());
    // The rules in use are listed for analysts.
    let (_, rules) = get(&s, &sensor, "/api/v1/rules").await;
    let ids: Vec<&str> = rules["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| r["id"].as_str().expect("id"))
        .collect();
    assert!(ids.contains(&"lokibot-fre-php"), "{ids:?}");
}
