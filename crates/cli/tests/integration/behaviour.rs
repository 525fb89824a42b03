//! Behaviour learning: a threat's `observed_behaviour` (beacon interval, ports, protocols,
//! generalised URI patterns, no victim address), and unclassified check-ins forming a cluster
//! that an admin promotes to a new threat, after which (also across a restart) matching
//! check-ins are classified to it.

use super::support::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

/// Deterministic jitter in [-1, 1].
fn jitter(i: u64) -> f64 {
    let x = i
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        >> 33;
    (x % 2001) as f64 / 1000.0 - 1.0
}

fn ts(secs: f64) -> String {
    jiff::Timestamp::from_millisecond((secs * 1000.0) as i64)
        .expect("ts")
        .to_string()
}

/// Polls `path` until `done` holds (the learner follows the log every ~200 ms).
async fn wait_for(s: &Server, token: &str, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..100 {
        let (st, v) = get(s, token, path).await;
        assert_eq!(st, StatusCode::OK, "{path}: {v}");
        if done(&v) {
            return v;
        }
        last = v;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{path} never got there: {last}");
}

async fn ingest(s: &Server, lines: &[Value]) -> u64 {
    let (st, v) = post_events(s, ADMIN, lines).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["accepted"].as_u64(), Some(lines.len() as u64), "{v}");
    v["last_seq"].as_u64().expect("last_seq")
}

#[tokio::test]
async fn observed_behaviour_learns_a_family_and_clusters_are_promoted() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("d");
    let mut s = Server::start_in(&dir, None, &[], true);
    let (_, isp) = create_org(&s, "ISP", "isp", json!({"asns": [64501]})).await;

    // Five bots of a known family beaconing every 60 s ± 10 %, one missed beat each.
    let base = jiff::Timestamp::now().as_second() as f64 - 3.0 * 3600.0;
    let mut lines = Vec::new();
    for b in 0..5u64 {
        let ip = format!("198.51.100.{}", 20 + b);
        let mut t = base + b as f64 * 13.0;
        for i in 0..12u64 {
            t += 60.0 * (1.0 + 0.1 * jitter(b * 100 + i));
            if i == 6 {
                continue;
            }
            let n = 1000 + b * 100 + i;
            lines.push(json!({
                "src_ip": ip, "family": "emotet", "time": ts(t), "proto": "http",
                "dst_port": 8080, "host": "c2.example.net",
                "url": format!("http://c2.example.net/api/{n}/0123abcd4567ef89/gate.php?id={n}&v=2"),
                "user_agent": "Mozilla/4.0 (compatible; MSIE 7.0)", "sensor": "test",
            }));
        }
    }
    // A resolver asking for the C2 name: not a bot.
    lines.push(json!({
        "src_ip": "203.0.113.53", "family": "emotet", "time": ts(base), "proto": "dns",
        "dst_port": 53, "host": "c2.example.net", "observation": "dns-query", "sensor": "test",
    }));
    let last = ingest(&s, &lines).await;

    let v = wait_for(&s, &isp, "/api/v1/threats/emotet", |v| {
        v["observed_behaviour"]["as_of_seq"].as_u64() >= Some(last)
    })
    .await;
    let text = v.to_string();
    assert!(
        !text.contains("198.51.100.") && !text.contains("203.0.113."),
        "a victim address leaked: {text}"
    );
    let ob = &v["observed_behaviour"];
    assert_eq!(ob["checkins"], 55, "{ob}");
    assert_eq!(ob["dns_queries"], 1, "{ob}");
    assert_eq!(ob["infected_ips"]["total"], 5, "{ob}");
    let per_hour = ob["infected_ips"]["per_hour"].as_array().expect("per_hour");
    assert!(!per_hour.is_empty());
    assert!(per_hour.iter().all(|h| h["ips"].as_u64() <= Some(5)));
    let median = ob["beacon_interval_secs"]["median"]
        .as_f64()
        .expect("median");
    assert!((54.0..=66.0).contains(&median), "interval {median}");
    assert_eq!(ob["beacon_interval_secs"]["bots"], 5, "{ob}");
    assert_eq!(ob["ports"][0], json!({"port": 8080, "count": 55}));
    assert_eq!(ob["protocols"][0], json!({"name": "http", "count": 55}));
    assert_eq!(
        ob["uri_patterns"][0],
        json!({"pattern": "/api/{n}/{hex}/gate.php?id=*&v=*", "count": 55})
    );
    assert_eq!(ob["c2_hosts"][0]["host"], "c2.example.net");
    assert_eq!(
        ob["user_agents"][0]["user_agent"],
        "Mozilla/4.0 (compatible; MSIE 7.0)"
    );
    assert!(ob["first_seen"].is_string() && ob["last_seen"].is_string());
    // The same, alone; and the GET → PUT round trip of a threat still works.
    let (st, only) = get(&s, &isp, "/api/v1/threats/Emotet/behaviour").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(only["checkins"], 55);
    let r = client()
        .put(s.url("/api/v1/threats/emotet"))
        .bearer_auth(ADMIN)
        .json(&v)
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), StatusCode::OK);

    // Unclassified check-ins sharing a pattern form a cluster.
    let mut lines = Vec::new();
    for i in 0..8u64 {
        lines.push(json!({
            "src_ip": format!("192.0.2.{}", 10 + i % 4), "time": ts(base + i as f64 * 30.0),
            "proto": "http", "dst_port": 8443, "host": "x.zq-unknown.example",
            "url": format!("http://x.zq-unknown.example/zq/{}/beacon.cgi", 500 + i),
            "sensor": "test",
        }));
    }
    let last = ingest(&s, &lines).await;
    let (st, _) = get(&s, &isp, "/api/v1/clusters").await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let v = wait_for(&s, ADMIN, "/api/v1/clusters", |v| {
        v["as_of_seq"].as_u64() >= Some(last)
    })
    .await;
    assert!(!v.to_string().contains("192.0.2."), "{v}");
    let cluster = v["clusters"]
        .as_array()
        .expect("clusters")
        .iter()
        .find(|c| c["key"]["path"] == "/zq/{n}/beacon.cgi")
        .unwrap_or_else(|| panic!("no cluster: {v}"))
        .clone();
    assert_eq!(cluster["checkins"], 8, "{cluster}");
    assert_eq!(cluster["distinct_ips"], 4, "{cluster}");
    assert_eq!(cluster["key"]["dst_port"], 8443);
    assert_eq!(cluster["sample_hosts"][0], "x.zq-unknown.example");
    let id = cluster["id"].as_str().expect("id").to_string();

    let promote = format!("/api/v1/clusters/{id}/promote");
    let body = json!({"threat": "zq-beacon", "name": "ZQ Beacon", "kind": "botnet"});
    let (st, _) = post_json(&s, &isp, &promote, &body).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, p) = post_json(&s, ADMIN, &promote, &body).await;
    assert_eq!(st, StatusCode::OK, "{p}");
    assert_eq!(p["threat"], "zq-beacon");
    let (st, _) = post_json(&s, ADMIN, &promote, &body).await;
    assert_eq!(st, StatusCode::CONFLICT);
    let (st, t) = get(&s, &isp, "/api/v1/threats/zq-beacon").await;
    assert_eq!(st, StatusCode::OK, "{t}");
    assert_eq!(t["kind"], "botnet");
    assert!(
        !t["playbook"]["detect"]
            .as_array()
            .expect("steps")
            .is_empty()
    );

    // A new matching check-in is classified to the new threat, and the cluster is gone.
    let newer = json!({
        "src_ip": "192.0.2.77", "time": ts(base + 9000.0), "proto": "http", "dst_port": 8443,
        "host": "y.zq-unknown.example", "url": "http://y.zq-unknown.example/zq/9999/beacon.cgi",
        "sensor": "test",
    });
    let seq = ingest(&s, std::slice::from_ref(&newer)).await;
    let (_, evs) = get(&s, ADMIN, &format!("/api/v1/events?after={}", seq - 1)).await;
    let e = &evs["events"][0];
    assert_eq!(e["threat_id"], "zq-beacon", "{e}");
    assert_eq!(e["classified_by"], format!("rule:cluster-{id}"), "{e}");
    let v = wait_for(&s, ADMIN, "/api/v1/clusters", |v| {
        v["as_of_seq"].as_u64() >= Some(seq)
    })
    .await;
    assert!(
        !v["clusters"]
            .as_array()
            .expect("clusters")
            .iter()
            .any(|c| c["id"] == id.as_str()),
        "{v}"
    );
    let ob = wait_for(&s, ADMIN, "/api/v1/threats/zq-beacon/behaviour", |v| {
        v["as_of_seq"].as_u64() >= Some(seq)
    })
    .await;
    assert_eq!(ob["checkins"], 1, "{ob}");

    // The promotion survives a restart: replayed history does not form the cluster again, and
    // the rule still classifies.
    s.terminate();
    let s2 = Server::start_in(&dir, None, &[], true);
    let seq = ingest(&s2, std::slice::from_ref(&newer)).await;
    let (_, evs) = get(&s2, ADMIN, &format!("/api/v1/events?after={}", seq - 1)).await;
    assert_eq!(evs["events"][0]["threat_id"], "zq-beacon", "{evs}");
    let v = wait_for(&s2, ADMIN, "/api/v1/clusters", |v| {
        v["as_of_seq"].as_u64() >= Some(seq)
    })
    .await;
    assert!(
        !v["clusters"]
            .as_array()
            .expect("clusters")
            .iter()
            .any(|c| c["id"] == id.as_str()),
        "{v}"
    );
    let ob = wait_for(&s2, ADMIN, "/api/v1/threats/emotet/behaviour", |v| {
        v["as_of_seq"].as_u64() >= Some(seq)
    })
    .await;
    assert_eq!(ob["checkins"], 55, "replayed: {ob}");
}
