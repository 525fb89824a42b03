//! The client subcommands against a real server: org, token, ingest, geo.

use super::support::*;
use std::process::Command;

fn tf(s: &Server, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin())
        .args(args)
        .env("THREATFEED_SERVER", &s.base)
        .env("THREATFEED_TOKEN", ADMIN)
        .output()
        .expect("run threatfeed");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn testdata(p: &str) -> String {
    format!("{}/../../testdata/{p}", env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test]
async fn org_token_and_ingest_commands_work_end_to_end() {
    let s = Server::start();
    let (ok, out, err) = tf(
        &s,
        &[
            "org",
            "create",
            "--name",
            "Google ISP desk",
            "--kind",
            "isp",
            "--asn",
            "15169",
            "--cidr",
            "2001:4860::/32",
        ],
    );
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let token = v["token"].as_str().expect("token").to_string();
    let org_id = v["id"].as_str().expect("id").to_string();
    let (ok, out, _) = tf(&s, &["org", "list"]);
    assert!(ok && out.contains("Google ISP desk") && out.contains(&org_id));
    let (ok, _, err) = tf(
        &s,
        &[
            "org",
            "create",
            "--name",
            "x",
            "--kind",
            "isp",
            "--cidr",
            "10.0.0.1/8",
        ],
    );
    assert!(!ok && err.contains("10.0.0.1/8"), "clear error: {err}");

    // Ingest a real file with bad lines, plain and gzip.
    let (ok, out, err) = tf(
        &s,
        &[
            "ingest",
            &testdata("events/checkins.ndjson"),
            "--batch",
            "64",
        ],
    );
    assert!(ok, "{err}");
    let sum: serde_json::Value = serde_json::from_str(out.trim()).expect("summary json");
    assert_eq!(sum["accepted"], 200);
    assert_eq!(sum["rejected"], 3);
    assert!(
        err.contains("not-an-ip") && err.contains("checkins.ndjson:"),
        "rejections named with file:line: {err}"
    );
    let (ok, out, _) = tf(&s, &["ingest", &testdata("events/checkins.ndjson.gz")]);
    assert!(ok);
    assert!(out.contains("\"accepted\":200"));
    let (ok, out, err) = tf(
        &s,
        &[
            "ingest",
            "--format",
            "ctip",
            &testdata("events/ctip.ndjson"),
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains("\"accepted\":20"), "{out}");

    // The ISP's token sees only its networks.
    let mine = all_events(&s, &token).await;
    assert!(!mine.is_empty());
    assert!(
        mine.iter().all(|e| e["asn"] == 15169),
        "only AS15169 events"
    );

    // Token create / revoke.
    let (ok, out, _) = tf(
        &s,
        &["token", "create", "--org", &org_id, "--label", "second"],
    );
    assert!(ok);
    let t: serde_json::Value = serde_json::from_str(&out).expect("json");
    let tid = t["token_id"].as_str().expect("id");
    let (ok, out, _) = tf(&s, &["token", "list"]);
    assert!(ok && out.contains(tid));
    let (ok, _, _) = tf(&s, &["token", "revoke", tid]);
    assert!(ok);
    let (st, _) = get(&s, t["token"].as_str().expect("t"), "/api/v1/me").await;
    assert_eq!(st, reqwest::StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn geo_import_installs_a_snapshot_the_server_reloads() {
    let s = Server::start();
    let dir = s.dir.to_string_lossy().to_string();
    // Import a tiny table in which 8.8.8.8 belongs to a made-up AS, then reload.
    let tmp = tempfile::tempdir().expect("tmp");
    let asn = tmp.path().join("asn.csv");
    std::fs::write(&asn, "8.8.8.0,8.8.8.255,64500,\"Test Networks, Inc.\"\n").expect("w");
    let cc = tmp.path().join("cc.csv");
    std::fs::write(&cc, "8.8.8.0,8.8.8.255,NL\n").expect("w");
    let (ok, out, err) = tf(
        &s,
        &[
            "geo",
            "import",
            "--asn-csv",
            asn.to_str().expect("p"),
            "--country-csv",
            cc.to_str().expect("p"),
            "--data-dir",
            &dir,
            "--reload",
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains("\"source\""), "{out}");
    post_events(&s, ADMIN, &[ev("8.8.8.8", "emotet", 1)]).await;
    let evs = all_events(&s, ADMIN).await;
    assert_eq!(evs[0]["asn"], 64500);
    assert_eq!(evs[0]["as_name"], "Test Networks, Inc.");
    assert_eq!(evs[0]["country"], "NL");
    let (ok, out, _) = tf(&s, &["geo", "lookup", "8.8.8.8", "--data-dir", &dir]);
    assert!(ok && out.contains("64500"));

    // The iptoasn TSV format and the testdata samples import too.
    let (ok, out, err) = tf(
        &s,
        &[
            "geo",
            "import",
            "--iptoasn",
            &testdata("geo/iptoasn-sample.tsv"),
            "--out",
            tmp.path().join("x.gz").to_str().expect("p"),
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains("\"rows\""), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ingest_benchmark_runs_and_every_scoped_delivery_arrives() {
    let s = Server::start();
    let (ok, out, err) = tf(
        &s,
        &[
            "bench",
            "ingest",
            "--events",
            "3000",
            "--subscribers",
            "6",
            "--batch",
            "200",
            "--connections",
            "2",
        ],
    );
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("one JSON object");
    assert_eq!(v["acked"], 3000, "{v}");
    assert_eq!(v["rejected"], 0, "{v}");
    assert!(
        v["deliveries_expected"].as_u64().expect("expected") > 0,
        "{v}"
    );
    assert_eq!(v["deliveries_missing"], 0, "{v}");
    assert_eq!(
        v["deliveries_unexpected"], 0,
        "no event outside a subscriber's scope: {v}"
    );
    for k in [
        "events_per_sec",
        "latency_p50_ms",
        "latency_p99_ms",
        "latency_max_ms",
        "server_peak_rss_bytes",
    ] {
        assert!(v[k].as_f64().is_some_and(|x| x > 0.0), "{k} in {v}");
    }
}

#[test]
fn the_store_benchmark_prints_figures_for_both_engines() {
    let out = Command::new(bin())
        .args(["bench", "store", "--events", "2000", "--batch", "500"])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let backends: Vec<&str> = v["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["backend"].as_str().expect("b"))
        .collect();
    assert_eq!(backends, vec!["redb", "fjall"]);
    assert!(
        v["results"][0]["append_events_per_sec"]
            .as_f64()
            .expect("f")
            > 0.0
    );
}

#[test]
fn the_lookup_benchmark_prints_figures() {
    let out = Command::new(bin())
        .args([
            "bench",
            "lookup",
            "--indicators",
            "20000",
            "--lookups",
            "20000",
        ])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(v["indicators"].as_u64().expect("n") > 100_000);
    let ratio = v["hit_ratio"].as_f64().expect("ratio");
    assert!(
        (0.4..0.6).contains(&ratio),
        "half the queries are listed: {v}"
    );
    assert!(v["lookups_per_sec_1_thread"].as_f64().expect("f") > 0.0);
}
