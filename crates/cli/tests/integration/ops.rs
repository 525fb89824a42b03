//! `/healthz`, `/metrics`, unknown routes, the example config.

use super::support::*;
use reqwest::StatusCode;

#[tokio::test]
async fn health_and_prometheus_metrics() {
    let s = Server::start();
    post_events(
        &s,
        ADMIN,
        &[
            ev("192.0.2.1", "emotet", 1),
            serde_json::json!({"src_ip": "bad"}),
        ],
    )
    .await;
    let (st, h) = get(&s, ADMIN, "/healthz").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(h["status"], "ok");
    assert_eq!(h["last_seq"], 1);
    let text = client()
        .get(s.url("/metrics"))
        .send()
        .await
        .expect("m")
        .text()
        .await
        .expect("t");
    for name in [
        "threatfeed_events_ingested_total 1",
        "threatfeed_events_rejected_total 1",
        "threatfeed_log_records 1",
        "threatfeed_ingest_latency_seconds_bucket",
        "threatfeed_process_peak_resident_memory_bytes",
        "threatfeed_subscribers",
    ] {
        assert!(text.contains(name), "metrics lack {name:?}:\n{text}");
    }
}

#[tokio::test]
async fn unknown_api_routes_answer_json_not_html() {
    let s = Server::start();
    let (st, v) = get(&s, ADMIN, "/api/v1/nope").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "not_found");
}

#[test]
fn the_example_config_is_accepted_by_the_binary() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config.example.toml");
    let text = std::fs::read_to_string(cfg).expect("config.example.toml");
    // Point it at a scratch dir and a free port, keep everything else as documented.
    let text = text
        .replace("listen = \"127.0.0.1:8080\"", "listen = \"127.0.0.1:0\"")
        .replace(
            "data_dir = \"./threatfeed-data\"",
            &format!("data_dir = {:?}", tmp.path().join("d")),
        );
    let mut s = Server::start_in(&tmp.path().join("d"), Some(&text), &[], true);
    assert!(s.base.starts_with("http://127.0.0.1:"));
    assert!(s.terminate().success());
}

#[tokio::test]
async fn retention_trims_the_oldest_events_and_seq_keeps_counting() {
    let s = Server::start_with(
        Some("default_kb = false\n[retention]\nmax_events = 10\ninterval_secs = 1\n"),
        &[],
    );
    let lines: Vec<serde_json::Value> = (0..30).map(|i| ev("192.0.2.1", "emotet", i)).collect();
    let (st, v) = post_events(&s, ADMIN, &lines).await;
    assert!(st.is_success(), "{v}");
    let mut records = u64::MAX;
    // Up to 60 s: the suite runs other servers on the same 2 cores.
    for _ in 0..300 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let (_, h) = get(&s, ADMIN, "/healthz").await;
        records = h["log_records"].as_u64().expect("records");
        if records <= 10 {
            break;
        }
    }
    assert_eq!(records, 10);
    let seqs: Vec<u64> = all_events(&s, ADMIN)
        .await
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(seqs, (21..=30).collect::<Vec<_>>(), "the newest are kept");
    let (_, v) = post_events(&s, ADMIN, &[ev("192.0.2.1", "emotet", 99)]).await;
    assert_eq!(v["last_seq"], 31, "seqs are never reused");
}
