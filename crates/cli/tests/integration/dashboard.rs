//! The embedded dashboard in a real headless browser (Debian's Chromium driven by
//! `playwright-core`, both installed by `scripts/install-test-deps.sh`): the live overview moves
//! while check-ins arrive, an ISP signed in with its token sees only its own infections, a
//! threat page shows its playbook, the lookup box answers, an admin creates and revokes a token.
//! Screenshots of each view are written to `target/screenshots/`.

use super::support::*;
use serde_json::{Value, json};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_works_in_a_real_browser() {
    let s = Server::start();
    wait_for_indicators(&s).await;
    let (st, v) = post_json(
        &s,
        ADMIN,
        "/api/v1/orgs",
        &json!({"name": "Browser ISP", "kind": "isp", "scope": {"cidrs": ["198.51.100.0/24"]}}),
    )
    .await;
    assert!(st.is_success(), "{v}");
    let isp = v["token"].as_str().expect("token").to_string();
    // A known C2 name of the bundled lists, for the lookup box.
    let (_, list) = get(&s, ADMIN, "/api/v1/indicators?type=domain&limit=1").await;
    let known = list["indicators"][0]["value"]
        .as_str()
        .expect("a bundled domain")
        .to_string();

    // Check-ins keep arriving while the browser looks: the ISP's and another network's.
    let running = Arc::new(AtomicBool::new(true));
    let feeder = {
        let (running, base) = (running.clone(), s.base.clone());
        tokio::spawn(async move {
            let mut n = 0u64;
            while running.load(Ordering::Relaxed) {
                // Without `time`: seen now (the overview is about the last 24 hours).
                let mut a = ev("198.51.100.23", "emotet", n);
                let mut b = ev("203.0.113.77", "qakbot", n);
                for e in [&mut a, &mut b] {
                    if let Some(o) = e.as_object_mut() {
                        o.remove("time");
                    }
                }
                let body = format!("{a}\n{b}\n");
                let _ = client()
                    .post(format!("{base}/api/v1/events"))
                    .bearer_auth(ADMIN)
                    .header("content-type", "application/x-ndjson")
                    .body(body)
                    .send()
                    .await;
                n += 1;
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
        })
    };

    let shots = concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/screenshots");
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("browser.json");
    std::fs::write(
        &cfg,
        json!({
            "base": s.base, "admin": ADMIN, "isp": isp,
            "ispIp": "198.51.100.23", "otherIp": "203.0.113.77",
            "known": known, "shots": shots, "chromium": "/usr/bin/chromium",
        })
        .to_string(),
    )
    .expect("config");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/dashboard.mjs");
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .arg(&cfg)
            .output()
            .expect("node (scripts/install-test-deps.sh installs it and playwright-core)")
    })
    .await
    .expect("browser");
    running.store(false, Ordering::Relaxed);
    let _ = feeder.await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the browser run failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_str(stdout.trim()).expect("browser json");
    assert_eq!(seen["ok"], true, "{seen}");
    for view in ["overview", "member", "threat", "lookup", "admin"] {
        let p = std::path::Path::new(shots).join(format!("{view}.png"));
        assert!(
            std::fs::metadata(&p)
                .map(|m| m.len() > 10_000)
                .unwrap_or(false),
            "no screenshot of {view}"
        );
    }
}
