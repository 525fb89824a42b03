//! Durability: kill -9 during ingest loses no acknowledged event and leaves no gap in `seq`;
//! SIGTERM drains and commits what is in flight.

use super::support::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Acknowledged batches: (marker, first seq, last seq).
type Acked = Arc<Mutex<Vec<(u64, u64, u64)>>>;

/// Posts batches from `writers` tasks until stopped; returns the acknowledged (marker, seq range) pairs.
async fn hammer(
    base: String,
    writers: usize,
    stop: Arc<std::sync::atomic::AtomicBool>,
    acked: Acked,
) -> Vec<(u64, u64, u64)> {
    let mut tasks = Vec::new();
    for w in 0..writers as u64 {
        let base = base.clone();
        let stop = stop.clone();
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            let c = client();
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let marker = w * 1_000_000 + n;
                let body: String = (0..50)
                    .map(|i| {
                        format!(
                            "{}\n",
                            ev(
                                &format!("10.{w}.{}.{}", n % 250, i),
                                "emotet",
                                marker * 100 + i
                            )
                        )
                    })
                    .collect();
                let r = c
                    .post(format!("{base}/api/v1/events"))
                    .bearer_auth(ADMIN)
                    .header("content-type", "application/x-ndjson")
                    .body(body)
                    .send()
                    .await;
                let Ok(r) = r else { break };
                if !r.status().is_success() {
                    break;
                }
                let Ok(v) = r.json::<Value>().await else {
                    break;
                };
                let last = v["last_seq"].as_u64().expect("last_seq");
                let accepted = v["accepted"].as_u64().expect("accepted");
                acked
                    .lock()
                    .expect("lock")
                    .push((marker, last + 1 - accepted, last));
                n += 1;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    acked.lock().expect("lock").clone()
}

/// Waits (up to 60 s) until `n` batches are acknowledged, so the kill lands mid-load even on a
/// slow machine.
async fn wait_for_batches(acked: &Acked, n: usize) {
    for _ in 0..600 {
        if acked.lock().expect("lock").len() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the load never got going");
}

async fn check_all_acked_present(s: &Server, acked: &[(u64, u64, u64)]) {
    let events = all_events(s, ADMIN).await;
    let seqs: Vec<u64> = events
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect();
    // seq has no gap: 1..=N.
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "seq has no gap"
    );
    let urls: BTreeSet<&str> = events
        .iter()
        .map(|e| e["url"].as_str().expect("url"))
        .collect();
    for (marker, first, last) in acked {
        assert!(
            *last <= seqs.len() as u64,
            "acknowledged seq {last} is missing after restart"
        );
        for i in 0..50u64 {
            let url = format!("http://c2.example.net/gate.php?n={}", marker * 100 + i);
            assert!(urls.contains(url.as_str()), "acknowledged event {url} lost");
        }
        // The acknowledged range holds exactly that batch.
        let e = &events[(*first - 1) as usize];
        assert_eq!(
            e["url"],
            format!("http://c2.example.net/gate.php?n={}", marker * 100)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_ingest_loses_no_acknowledged_event() {
    for backend in ["redb", "fjall"] {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("d");
        let mut s = Server::start_in(&dir, None, &[("THREATFEED_LOG_BACKEND", backend)], true);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let acked: Acked = Arc::default();
        let h = tokio::spawn(hammer(s.base.clone(), 8, stop.clone(), acked.clone()));
        wait_for_batches(&acked, 30).await;
        s.kill9();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let acked = h.await.expect("join");
        assert!(
            acked.len() > 10,
            "{backend}: the load ran ({} batches acknowledged)",
            acked.len()
        );
        let s2 = Server::start_in(&dir, None, &[("THREATFEED_LOG_BACKEND", backend)], true);
        check_all_acked_present(&s2, &acked).await;
        // And the log continues from where it stopped.
        let (_, h) = get(&s2, ADMIN, "/healthz").await;
        let before = h["last_seq"].as_u64().expect("last_seq");
        let (_, v) = post_events(&s2, ADMIN, &[ev("192.0.2.1", "emotet", 1)]).await;
        assert_eq!(v["last_seq"].as_u64(), Some(before + 1), "{backend}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_shuts_down_gracefully_and_commits_in_flight_batches() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("d");
    let mut s = Server::start_in(&dir, None, &[], true);
    let mut stream = Sse::open(&s, ADMIN, "/api/v1/stream", None).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let acked: Acked = Arc::default();
    let h = tokio::spawn(hammer(s.base.clone(), 4, stop.clone(), acked.clone()));
    wait_for_batches(&acked, 10).await;
    let status = s.terminate();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(status.success(), "clean exit: {status:?}");
    let acked = h.await.expect("join");
    // The open stream was closed by the shutdown, not left hanging.
    while stream.next(Duration::from_secs(5)).await.is_some() {}
    let s2 = Server::start_in(&dir, None, &[], true);
    check_all_acked_present(&s2, &acked).await;
}
