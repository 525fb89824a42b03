//! `GET /api/v1/stream` and `GET /api/v1/events`: scoped live delivery, resume without gap or
//! duplicate, lagging subscribers caught up from the log.

use super::support::*;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;

fn seqs(evs: &[Value]) -> Vec<u64> {
    evs.iter()
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect()
}

#[tokio::test]
async fn an_isp_and_a_cert_each_receive_only_their_own_infections_live() {
    let s = Server::start();
    // 8.8.8.0/24 is Google (AS15169, US); 1.1.1.1 is Cloudflare (AS13335); 193.0.0.0/21 RIPE NCC (NL).
    let (_, isp) = create_org(
        &s,
        "Example ISP",
        "isp",
        json!({"cidrs": ["8.8.8.0/24"], "asns": [13335]}),
    )
    .await;
    let (_, cert) = create_org(&s, "CERT-NL", "cert", json!({"countries": ["NL"]})).await;
    let (_, v6isp) = create_org(&s, "V6 ISP", "isp", json!({"cidrs": ["2001:db8:1::/48"]})).await;
    let (_, nobody) = create_org(&s, "Empty Co", "company", json!({})).await;
    let mut s_isp = Sse::open(&s, &isp, "/api/v1/stream", None).await;
    let mut s_cert = Sse::open(&s, &cert, "/api/v1/stream", None).await;
    let mut s_v6 = Sse::open(&s, &v6isp, "/api/v1/stream", None).await;
    let mut s_none = Sse::open(&s, &nobody, "/api/v1/stream", None).await;
    let mut s_admin = Sse::open(&s, ADMIN, "/api/v1/stream", None).await;

    let batch = vec![
        ev("8.8.8.8", "emotet", 1),                                // isp (cidr)
        ev("193.0.0.1", "qakbot", 2),                              // cert (country NL)
        ev("1.1.1.1", "mirai", 3),                                 // isp (asn 13335)
        ev("9.9.9.9", "emotet", 4),                                // nobody but admin
        ev("2001:db8:1::5", "emotet", 5),                          // v6 isp
        json!({"src_ip": "8.8.8.9", "tlp": "red", "family": "x"}), // RED: admin only
    ];
    let (st, v) = post_events(&s, ADMIN, &batch).await;
    assert!(st.is_success(), "{v}");

    let t = Duration::from_secs(5);
    let got_isp = s_isp.take(2, t).await;
    assert_eq!(
        got_isp
            .iter()
            .map(|e| e["src_ip"].as_str().expect("ip"))
            .collect::<Vec<_>>(),
        vec!["8.8.8.8", "1.1.1.1"]
    );
    let got_cert = s_cert.take(1, t).await;
    assert_eq!(got_cert[0]["src_ip"], "193.0.0.1");
    assert_eq!(got_cert[0]["country"], "NL");
    assert_eq!(s_v6.take(1, t).await[0]["src_ip"], "2001:db8:1::5");
    let got_admin = s_admin.take(6, t).await;
    assert_eq!(seqs(&got_admin), vec![1, 2, 3, 4, 5, 6]);
    // Nothing more arrives for anyone.
    let short = Duration::from_millis(500);
    assert!(s_isp.take(1, short).await.is_empty());
    assert!(s_cert.take(1, short).await.is_empty());
    assert!(s_none.take(1, short).await.is_empty());

    // The log listing applies the same rule.
    let listed: Vec<String> = all_events(&s, &isp)
        .await
        .iter()
        .map(|e| e["src_ip"].as_str().expect("ip").to_string())
        .collect();
    assert_eq!(listed, vec!["8.8.8.8", "1.1.1.1"]);
    assert!(all_events(&s, &nobody).await.is_empty());
}

#[tokio::test]
async fn resume_with_last_event_id_has_no_gap_and_no_duplicate() {
    let s = Server::start();
    let (_, isp) = create_org(&s, "ISP", "isp", json!({"cidrs": ["192.0.2.0/24"]})).await;
    let mut first: Vec<Value> = Vec::new();
    for round in 0..3u64 {
        let lines: Vec<Value> = (0..20)
            .map(|i| {
                // Every other event is outside the ISP's scope.
                let ip = if i % 2 == 0 {
                    format!("192.0.2.{i}")
                } else {
                    format!("198.51.100.{i}")
                };
                ev(&ip, "emotet", round * 100 + i)
            })
            .collect();
        post_events(&s, ADMIN, &lines).await;
    }
    // Read 7 from the start, disconnect, resume from the last id seen.
    let mut a = Sse::open(&s, &isp, "/api/v1/stream?after=0", None).await;
    first.extend(a.take(7, Duration::from_secs(5)).await);
    drop(a);
    let last_id = first.last().expect("some")["seq"].as_u64().expect("seq");
    // More events arrive while disconnected.
    let more: Vec<Value> = (0..10)
        .map(|i| ev(&format!("192.0.2.{}", 100 + i), "emotet", 1000 + i))
        .collect();
    post_events(&s, ADMIN, &more).await;
    let mut b = Sse::open(&s, &isp, "/api/v1/stream", Some(last_id)).await;
    let rest = b.take(1000, Duration::from_millis(1500)).await;
    let mut all = first.clone();
    all.extend(rest);
    let got = seqs(&all);
    let want: Vec<u64> = seqs(&all_events(&s, &isp).await);
    assert_eq!(want.len(), 40);
    assert_eq!(got, want, "exactly the visible events, in order, once each");
    // ?after= works the same.
    let mut c = Sse::open(
        &s,
        &isp,
        &format!("/api/v1/stream?after={}", want[35]),
        None,
    )
    .await;
    assert_eq!(
        seqs(&c.take(10, Duration::from_millis(1500)).await),
        want[36..].to_vec()
    );
    // A bad Last-Event-ID is a 400, not a stream.
    let r = client()
        .get(s.url("/api/v1/stream"))
        .bearer_auth(&isp)
        .header("last-event-id", "abc")
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), reqwest::StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_subscriber_that_falls_behind_is_caught_up_from_the_log_not_dropped() {
    // One batch of buffer: any burst overflows the live queue.
    let s = Server::start_with(Some("[stream]\nsubscriber_buffer = 1\n"), &[]);
    let mut slow = Sse::open(&s, ADMIN, "/api/v1/stream", None).await;
    // ~24 MB of events in 60 separate commits while the client reads nothing: more than the
    // socket buffers hold, so the one-batch live queue must overflow.
    let total = 60_000u64;
    for chunk in 0..60u64 {
        let lines: Vec<Value> = (0..1000)
            .map(|i| {
                ev(
                    &format!("10.{}.{}.{}", chunk, i / 250, i % 250),
                    "emotet",
                    chunk * 1000 + i,
                )
            })
            .collect();
        let (st, v) = post_events(&s, ADMIN, &lines).await;
        assert!(st.is_success(), "{v}");
    }
    // Read slowly at first so the queue overflows.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = slow.take(total as usize, Duration::from_secs(30)).await;
    let got = seqs(&got);
    assert_eq!(
        got,
        (1..=total).collect::<Vec<_>>(),
        "every event, in order, once"
    );
    let (_, m) = get(&s, ADMIN, "/healthz").await;
    assert_eq!(m["last_seq"], total);
    let metrics = client()
        .get(s.url("/metrics"))
        .send()
        .await
        .expect("m")
        .text()
        .await
        .expect("t");
    assert!(
        metrics.contains("threatfeed_subscriber_lagged_total"),
        "the lag was counted"
    );
    let unique: BTreeSet<u64> = got.into_iter().collect();
    assert_eq!(unique.len() as u64, total);
}

#[tokio::test]
async fn an_idle_stream_gets_keep_alive_comments() {
    use futures::StreamExt;
    let s = Server::start_with(Some("[stream]\nkeepalive_secs = 1\n"), &[]);
    let r = client()
        .get(s.url("/api/v1/stream"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("open");
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let mut body = r.bytes_stream();
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    // After the opening comment, an empty comment block arrives on an idle stream.
    while !seen.contains("\n\n:\n\n") {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .expect("a keep-alive within 5 s");
        seen.push_str(&String::from_utf8_lossy(
            &chunk.expect("open").expect("bytes"),
        ));
    }
}
