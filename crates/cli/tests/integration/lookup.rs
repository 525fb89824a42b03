//! `/api/v1/lookup` and classification against the bundled C2 lists (data/kb/maltrail).

use super::support::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::io::Read;

/// The first line of a bundled list that `keep` accepts.
fn listed(family: &str, keep: impl Fn(&str) -> bool) -> String {
    let p = format!(
        "{}/../../data/kb/maltrail/{family}.txt.gz",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(p).expect("list"))
        .read_to_string(&mut text)
        .expect("gunzip");
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .find(|l| !l.is_empty() && keep(l))
        .expect("a matching line")
        .to_string()
}

/// `a.b.c.d` or `a.b.c.d:port` lines.
fn is_ipv4(l: &str) -> bool {
    l.split(':')
        .next()
        .is_some_and(|ip| ip.parse::<std::net::Ipv4Addr>().is_ok())
}

fn ip_part(l: &str) -> String {
    l.split(':').next().unwrap_or(l).to_string()
}

fn is_domain(l: &str) -> bool {
    !l.contains('/')
        && !l.contains(':')
        && !l.ends_with(".onion")
        && l.parse::<std::net::IpAddr>().is_err()
        && l.contains('.')
}

#[tokio::test]
async fn lookups_answer_with_the_threat_and_its_remediation() {
    let s = Server::start();
    wait_for_indicators(&s).await;
    let (_, isp) = create_org(&s, "ISP", "isp", json!({"asns": [64500]})).await;
    let ip = ip_part(&listed("emotet", is_ipv4));
    let (st, v) = get(&s, &isp, &format!("/api/v1/lookup/{ip}")).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["known"], true, "{v}");
    assert_eq!(v["kind"], "ipv4");
    // The same address may be listed for more than one family; the first one listed wins.
    let hit = &v["hits"][0];
    assert!(hit["threat"]["id"].is_string(), "{v}");
    assert_eq!(
        hit["threat"]["href"],
        format!(
            "/api/v1/threats/{}",
            hit["threat"]["id"].as_str().expect("id")
        )
    );
    assert!(
        hit["threat"]["remediation"]["clean"]
            .as_str()
            .is_some_and(|c| c.len() > 20),
        "{v}"
    );
    // A sub-domain of a listed domain matches its parent; a URL matches its host.
    let domain = listed("qakbot", is_domain);
    let (_, v) = get(&s, &isp, &format!("/api/v1/lookup/www.{domain}")).await;
    assert_eq!(v["hits"][0]["matched"], "parent-domain", "{v}");
    let (_, v) = get(
        &s,
        &isp,
        &format!(
            "/api/v1/lookup/{}",
            urlencode(&format!("http://{domain}/x.php"))
        ),
    )
    .await;
    assert_eq!(v["hits"][0]["matched"], "url-host", "{v}");
    // Unknown and invalid values.
    let (_, v) = get(&s, &isp, "/api/v1/lookup/192.0.2.123").await;
    assert_eq!(v["known"], false);
    let (st, v) = get(&s, &isp, "/api/v1/lookup/not_a_value").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(
        v["error"]["message"]
            .as_str()
            .expect("m")
            .contains("not_a_value"),
        "{v}"
    );

    // Batch.
    let (st, v) = post_json(
        &s,
        &isp,
        "/api/v1/lookup",
        &json!({"values": [ip, "192.0.2.123", "???"]}),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["count"], 3);
    assert_eq!(v["known"], 1);
    assert!(v["results"][2]["error"].is_string());
    let too_many: Vec<Value> = (0..10_001)
        .map(|i| json!(format!("10.0.{}.{}", i / 250, i % 250)))
        .collect();
    let (st, _) = post_json(&s, &isp, "/api/v1/lookup", &json!({"values": too_many})).await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn check_ins_without_a_family_are_classified_by_their_c2() {
    let s = Server::start();
    wait_for_indicators(&s).await;
    let domain = listed("icedid", is_domain);
    let ip = ip_part(&listed("trickbot", is_ipv4));
    let (_, known) = get(&s, ADMIN, &format!("/api/v1/lookup/{ip}")).await;
    let ip_threat = known["hits"][0]["threat"]["id"].clone();
    assert!(ip_threat.is_string(), "{known}");
    let lines = vec![
        json!({"src_ip": "192.0.2.1", "host": format!("api.{domain}")}),
        json!({"src_ip": "192.0.2.2", "dst_ip": ip, "dst_port": 443}),
        json!({"src_ip": "192.0.2.3", "host": "benign.example.org", "dst_ip": "192.0.2.200"}),
    ];
    assert!(post_events(&s, ADMIN, &lines).await.0.is_success());
    let evs = all_events(&s, ADMIN).await;
    assert_eq!(evs[0]["threat_id"], "icedid", "{}", evs[0]);
    assert_eq!(evs[0]["family"], "icedid");
    assert_eq!(
        evs[0]["classified_by"],
        json!(format!("indicator:host:api.{domain}"))
    );
    assert_eq!(evs[0]["playbook"], "/api/v1/threats/icedid");
    let (st, doc) = get(&s, ADMIN, evs[0]["playbook"].as_str().expect("link")).await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        doc["playbook"]["clean"]
            .as_array()
            .is_some_and(|c| !c.is_empty())
    );
    assert_eq!(evs[1]["threat_id"], ip_threat, "{}", evs[1]);
    assert!(
        evs[1]["classified_by"]
            .as_str()
            .is_some_and(|c| c.starts_with("indicator:dst_ip:")),
        "{}",
        evs[1]
    );
    assert!(evs[2]["threat_id"].is_null());
    assert!(evs[2].get("playbook").is_none());
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn the_lookup_command_prints_one_verdict_per_value() {
    let s = Server::start();
    wait_for_indicators(&s).await;
    let ip = ip_part(&listed("emotet", is_ipv4));
    let out = std::process::Command::new(bin())
        .args(["lookup", &ip, "192.0.2.55", "not a value"])
        .env("THREATFEED_SERVER", &s.base)
        .env("THREATFEED_TOKEN", ADMIN)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["known"], true);
    assert!(lines[0]["clean"].is_string());
    assert_eq!(lines[1]["known"], false);
    assert!(lines[2]["error"].is_string());
}
