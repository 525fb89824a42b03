//! `POST /api/v1/events`: formats, enrichment, per-record errors, limits.

use super::support::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::io::Write;

async fn raw_post(
    s: &Server,
    ctype: &str,
    encoding: Option<&str>,
    body: Vec<u8>,
    query: &str,
) -> (StatusCode, Value) {
    let mut req = client()
        .post(s.url(&format!("/api/v1/events{query}")))
        .bearer_auth(ADMIN)
        .header("content-type", ctype)
        .body(body);
    if let Some(e) = encoding {
        req = req.header("content-encoding", e);
    }
    let r = req.send().await.expect("post");
    answer(r).await
}

#[tokio::test]
async fn bad_records_are_named_and_the_rest_of_the_batch_is_kept_and_enriched() {
    let s = Server::start();
    let body = concat!(
        "{\"src_ip\":\"8.8.8.8\",\"time\":\"2026-06-01T00:00:00Z\",\"host\":\"Bad.Example.COM.\",\"family\":\"Emotet\"}\n",
        "{\"src_ip\":\"999.1.1.1\"}\n",
        "{not json\n",
        "\n",
        "{\"src_ip\":\"2001:4860:4860::8888\",\"time\":1780000000,\"src_port\":\"4444\",\"tlp\":\"TLP:GREEN\"}\n",
        "{\"time\":1780000000}\n",
        "{\"src_ip\":\"::ffff:192.0.2.9\",\"dst_port\":70000}\n",
    );
    let (st, v) = raw_post(
        &s,
        "application/x-ndjson",
        None,
        body.as_bytes().to_vec(),
        "",
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["accepted"], 2);
    let rejected = v["rejected"].as_array().expect("rejected");
    let idx: Vec<u64> = rejected
        .iter()
        .map(|r| r["index"].as_u64().expect("index"))
        .collect();
    assert_eq!(idx, vec![1, 2, 4, 5]);
    assert!(
        rejected[0]["error"]
            .as_str()
            .expect("e")
            .contains("999.1.1.1")
    );
    assert!(rejected[2]["error"].as_str().expect("e").contains("src_ip"));
    assert!(rejected[3]["error"].as_str().expect("e").contains("70000"));
    assert_eq!(v["last_seq"], 2);

    let evs = all_events(&s, ADMIN).await;
    assert_eq!(evs.len(), 2);
    let a = &evs[0];
    assert_eq!(a["seq"], 1);
    assert_eq!(a["host"], "bad.example.com");
    assert_eq!(a["family"], "emotet");
    assert_eq!(a["threat_id"], "emotet");
    assert_eq!(a["asn"], 15169, "8.8.8.8 is Google's AS15169: {a}");
    assert_eq!(a["country"], "US");
    assert!(
        a["as_name"]
            .as_str()
            .expect("as_name")
            .to_lowercase()
            .contains("google")
    );
    assert!(a["received"].is_string());
    let b = &evs[1];
    assert_eq!(b["seq"], 2);
    assert_eq!(b["asn"], 15169, "IPv6 enrichment: {b}");
    assert_eq!(b["src_port"], 4444);
    assert_eq!(b["tlp"], "green");
    assert_eq!(b["time"], "2026-05-28T20:26:40Z");
}

#[tokio::test]
async fn json_arrays_gzip_and_ctip_records_are_accepted() {
    let s = Server::start();
    let arr = json!([{"src_ip": "1.1.1.1"}, {"src_ip": "9.9.9.9", "family": "mirai"}]);
    let (st, v) = raw_post(
        &s,
        "application/json",
        None,
        serde_json::to_vec(&arr).expect("json"),
        "",
    )
    .await;
    assert_eq!(
        (st, v["accepted"].as_u64()),
        (StatusCode::OK, Some(2)),
        "{v}"
    );

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for i in 0..500 {
        writeln!(gz, "{}", ev(&format!("192.0.2.{}", i % 250), "qakbot", i)).expect("write");
    }
    let (st, v) = raw_post(
        &s,
        "application/x-ndjson",
        Some("gzip"),
        gz.finish().expect("gz"),
        "",
    )
    .await;
    assert_eq!(
        (st, v["accepted"].as_u64()),
        (StatusCode::OK, Some(500)),
        "{v}"
    );
    assert_eq!(v["last_seq"], 502);

    // Microsoft CTIP-Infected record, FILETIME 2021-01-01T00:00:00Z.
    let ctip = json!({"DataFeed": "CTIP-Infected", "SourcedFrom": "SinkHoleMessage",
        "DateTimeReceivedUtc": 132539328000000000i64, "Malware": "Conficker", "ThreatCode": "B106-Conficker",
        "ThreatConfidence": "High", "TLP": "Amber", "SourceIp": "8.8.4.4", "SourcePort": 50123,
        "DestinationIp": "203.0.113.9", "DestinationPort": 80,
        "HttpInfo": {"HttpHost": "Bad.Example", "HttpRequest": "GET /search?q=1 HTTP/1.1", "HttpUserAgent": "Mozilla/4.0"}});
    let (st, v) = raw_post(
        &s,
        "application/x-ndjson",
        None,
        format!("{ctip}\n{{\"SourceIp\":\"x\"}}\n").into_bytes(),
        "?format=ctip",
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["accepted"], 1);
    assert!(
        v["rejected"][0]["error"]
            .as_str()
            .expect("e")
            .contains("SourceIp")
    );
    let evs = all_events(&s, ADMIN).await;
    let last = evs.last().expect("event");
    assert_eq!(last["time"], "2021-01-01T00:00:00Z");
    assert_eq!(last["family"], "conficker");
    assert_eq!(last["url"], "http://bad.example/search?q=1");
    assert_eq!(last["asn"], 15169);
}

#[tokio::test]
async fn limits_and_wrong_requests_get_the_documented_errors_and_lose_nothing() {
    let cfg =
        "[limits]\nmax_body_bytes = 4096\nmax_batch_records = 3\nmax_decompressed_bytes = 8192\n";
    let s = Server::start_with(Some(cfg), &[]);
    let one = format!("{}\n", ev("192.0.2.1", "emotet", 0));
    let (st, v) = raw_post(
        &s,
        "application/x-ndjson",
        None,
        one.clone().into_bytes(),
        "",
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");

    // Wrong content type.
    let (st, v) = raw_post(
        &s,
        "application/x-www-form-urlencoded",
        None,
        one.clone().into_bytes(),
        "",
    )
    .await;
    assert_eq!(st, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(v["error"]["code"], "unsupported_media_type");
    // Unknown encoding, corrupt gzip.
    let (st, _) = raw_post(
        &s,
        "application/x-ndjson",
        Some("br"),
        one.clone().into_bytes(),
        "",
    )
    .await;
    assert_eq!(st, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (st, v) = raw_post(
        &s,
        "application/x-ndjson",
        Some("gzip"),
        b"not gzip".to_vec(),
        "",
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    // Unknown format.
    let (st, v) = raw_post(
        &s,
        "application/x-ndjson",
        None,
        one.clone().into_bytes(),
        "?format=xml",
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(v["error"]["message"].as_str().expect("m").contains("xml"));
    // Huge body: 413 with a JSON error.
    let (st, v) = raw_post(
        &s,
        "application/x-ndjson",
        None,
        one.repeat(100).into_bytes(),
        "",
    )
    .await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert_eq!(v["error"]["code"], "payload_too_large");
    assert!(v["error"]["message"].as_str().expect("m").contains("4096"));
    // A gzip bomb: small on the wire, over the decompressed limit.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&vec![b' '; 100_000]).expect("gz");
    let (st, _) = raw_post(
        &s,
        "application/x-ndjson",
        Some("gzip"),
        gz.finish().expect("gz"),
        "",
    )
    .await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE);
    // Too many records: the first 3 are kept, the rest named.
    let five: String = (0..5)
        .map(|i| format!("{}\n", ev("192.0.2.2", "emotet", i)))
        .collect();
    let (st, v) = raw_post(&s, "application/x-ndjson", None, five.into_bytes(), "").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["accepted"], 3);
    assert!(
        v["rejected"][0]["error"]
            .as_str()
            .expect("m")
            .contains("at most 3"),
        "{v}"
    );
    // Nothing acknowledged was lost along the way.
    let evs = all_events(&s, ADMIN).await;
    assert_eq!(evs.len(), 4);
    let seqs: Vec<u64> = evs
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(seqs, vec![1, 2, 3, 4]);
}

#[tokio::test]
async fn the_ingest_rate_limit_refuses_whole_requests_with_retry_after() {
    let s = Server::start_with(Some("[limits]\ningest_events_per_sec = 10\n"), &[]);
    let batch: Vec<Value> = (0..8).map(|i| ev("192.0.2.3", "emotet", i)).collect();
    let (st, _) = post_events(&s, ADMIN, &batch).await;
    assert_eq!(st, StatusCode::OK);
    let r = client()
        .post(s.url("/api/v1/events"))
        .bearer_auth(ADMIN)
        .header("content-type", "application/x-ndjson")
        .body(batch.iter().map(|l| format!("{l}\n")).collect::<String>())
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().get("retry-after").is_some());
    assert_eq!(
        all_events(&s, ADMIN).await.len(),
        8,
        "the refused request added nothing"
    );
}

/// A sensor resending a batch (it lost the answer) is not logged twice — also after the server
/// was killed with -9 and restarted; bad ids are named.
#[tokio::test]
async fn events_with_ids_are_accepted_once_even_across_a_kill_9() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("d");
    let mut s = Server::start_in(&dir, Some("default_kb = false\n"), &[], true);
    let batch: Vec<Value> = (0..20u64)
        .map(|n| {
            let mut e = ev("192.0.2.44", "emotet", n);
            e["id"] = json!(format!("0f1e2d3c:{n}"));
            e["details"] = json!({"method": "POST", "path": "/gate.php"});
            e
        })
        .collect();
    let (st, v) = post_events(&s, ADMIN, &batch).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        (v["accepted"].as_u64(), v["duplicates"].as_u64()),
        (Some(20), Some(0))
    );
    // Half of it again, plus 5 new ones.
    let mut again: Vec<Value> = batch[10..].to_vec();
    for n in 20..25u64 {
        let mut e = ev("192.0.2.44", "emotet", n);
        e["id"] = json!(format!("0f1e2d3c:{n}"));
        again.push(e);
    }
    let (_, v) = post_events(&s, ADMIN, &again).await;
    assert_eq!(
        (v["accepted"].as_u64(), v["duplicates"].as_u64()),
        (Some(5), Some(10)),
        "{v}"
    );
    s.kill9();
    let s = Server::start_in(&dir, Some("default_kb = false\n"), &[], true);
    let (_, v) = post_events(&s, ADMIN, &batch).await;
    assert_eq!(
        (v["accepted"].as_u64(), v["duplicates"].as_u64()),
        (Some(0), Some(20)),
        "the ids are remembered across a restart: {v}"
    );
    let events = all_events(&s, ADMIN).await;
    assert_eq!(events.len(), 25, "each event once");
    assert_eq!(
        events[0]["details"]["path"], "/gate.php",
        "details are kept"
    );
    assert_eq!(events[0]["id"], "0f1e2d3c:0");
    // An id with characters outside the allowed set is refused by name.
    let mut bad = ev("192.0.2.44", "emotet", 99);
    bad["id"] = json!("no spaces allowed");
    let (_, v) = post_events(&s, ADMIN, &[bad]).await;
    assert_eq!(v["accepted"], 0);
    let err = v["rejected"][0]["error"].as_str().expect("error");
    assert!(err.contains("no spaces allowed"), "{err}");
}
