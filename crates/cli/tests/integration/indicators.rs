//! `/api/v1/indicators`: contributions (merged, TLP, anonymous), removals by expiry, decay,
//! withdrawal and false-positive reports — each emitted on the change stream — and persistence.

use super::support::*;
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

const NO_KB: &str = "default_kb = false\n";

async fn create_cleared(s: &Server, name: &str, kind: &str, tlp: &str) -> (String, String) {
    let (st, v) = post_json(
        s,
        ADMIN,
        "/api/v1/orgs",
        &json!({"name": name, "kind": kind, "tlp_clearance": tlp}),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    (
        v["id"].as_str().expect("id").to_string(),
        v["token"].as_str().expect("token").to_string(),
    )
}

async fn delete(s: &Server, token: &str, path: &str) -> (StatusCode, Value) {
    let r = client()
        .delete(s.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("delete");
    let st = r.status();
    (st, r.json().await.unwrap_or(Value::Null))
}

fn values(list: &Value) -> Vec<String> {
    list["indicators"]
        .as_array()
        .expect("indicators")
        .iter()
        .map(|i| i["value"].as_str().expect("value").to_string())
        .collect()
}

#[tokio::test]
async fn contributions_merge_respect_tlp_and_keep_anonymous_contributors_hidden() {
    let s = Server::start_with(Some(NO_KB), &[]);
    let (a_id, a) = create_cleared(&s, "Acme Threat Research", "company", "amber").await;
    let (b_id, b) = create_cleared(&s, "Blue ISP", "isp", "green").await;

    let (st, r) = post_json(
        &s,
        &a,
        "/api/v1/indicators",
        &json!({"anonymous": true, "indicators": [
            {"value": "hxxp://Evil[.]example:80/gate.php", "threat": "emotet", "confidence": 90},
            {"value": "192.0.2.55", "tlp": "amber"},
            {"value": "not valid!"},
            {"value": "192.0.2.56", "confidence": 250},
        ]}),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(r["added"], 2, "{r}");
    let rejected = r["rejected"].as_array().expect("rejected");
    assert_eq!(rejected.len(), 2, "{r}");
    assert_eq!(rejected[0]["index"], 2);
    assert!(
        rejected[0]["error"]
            .as_str()
            .expect("e")
            .contains("not valid!")
    );
    assert_eq!(rejected[1]["index"], 3);

    // The same URL written another way by another member is the same indicator.
    let (_, r2) = post_json(
        &s,
        &b,
        "/api/v1/indicators",
        &json!({"indicators": [{"value": "EVIL.example/gate.php", "confidence": 40}]}),
    )
    .await;
    assert_eq!(r2["merged"], 1, "{r2}");
    assert_eq!(r2["ids"][0], r["ids"][0]);

    // B (cleared GREEN) sees the URL, not the AMBER address, and never who A is.
    let (st, list) = get(&s, &b, "/api/v1/indicators").await;
    assert_eq!(st, StatusCode::OK, "{list}");
    assert_eq!(
        values(&list),
        vec!["http://evil.example/gate.php".to_string()]
    );
    let text = list.to_string();
    assert!(
        !text.contains("Acme"),
        "anonymous contributor leaked: {text}"
    );
    assert!(!text.contains(&a_id), "member id leaked: {text}");
    let url = &list["indicators"][0];
    assert_eq!(url["confidence"], 90, "highest source wins");
    let names: Vec<&str> = url["sources"]
        .as_array()
        .expect("sources")
        .iter()
        .map(|s| s["name"].as_str().expect("name"))
        .collect();
    assert!(names.contains(&"anonymous member"), "{names:?}");
    assert!(names.contains(&"Blue ISP"), "{names:?}");
    let (_, one) = get(
        &s,
        &b,
        &format!("/api/v1/indicators/{}", r["ids"][1].as_str().expect("id")),
    )
    .await;
    assert_eq!(one["error"]["code"], "not_found", "{one}");
    let (_, look) = get(&s, &b, "/api/v1/lookup/192.0.2.55").await;
    assert_eq!(look["known"], false, "{look}");
    let (_, look) = get(
        &s,
        &b,
        "/api/v1/lookup/hxxp%3A%2F%2Fevil%5B.%5Dexample%2Fgate.php",
    )
    .await;
    assert_eq!(look["known"], true, "{look}");
    assert!(!look.to_string().contains("Acme"), "{look}");

    // A sees both, and itself by name on its own report.
    let (_, list) = get(&s, &a, "/api/v1/indicators").await;
    assert_eq!(values(&list).len(), 2, "{list}");
    let mine = list["indicators"]
        .as_array()
        .expect("list")
        .iter()
        .flat_map(|i| i["sources"].as_array().expect("sources").clone())
        .find(|s| s["yours"] == true)
        .expect("own source");
    assert_eq!(mine["name"], "Acme Threat Research");
    assert_eq!(mine["anonymous"], true);
    let (_, look) = get(&s, &a, "/api/v1/lookup/192.0.2.55").await;
    assert_eq!(look["known"], true, "{look}");

    // Even the admin sees "anonymous member".
    let (_, list) = get(&s, ADMIN, "/api/v1/indicators").await;
    assert!(!list.to_string().contains("Acme"), "{list}");
    // Filters.
    let (_, list) = get(&s, &a, "/api/v1/indicators?type=ipv4").await;
    assert_eq!(values(&list), vec!["192.0.2.55".to_string()]);
    let (_, list) = get(&s, &a, "/api/v1/indicators?min_confidence=80").await;
    assert_eq!(
        values(&list),
        vec!["http://evil.example/gate.php".to_string()]
    );
    let (_, list) = get(&s, &a, "/api/v1/indicators?threat=emotet").await;
    assert_eq!(values(&list).len(), 1, "{list}");
    let (st, e) = get(&s, &a, "/api/v1/indicators?type=ipv5").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(e.to_string().contains("ipv5"), "{e}");
    let (st, _) = get(&s, &a, "/api/v1/indicators?since=yesterday").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    // Paging by id.
    let (_, p1) = get(&s, &a, "/api/v1/indicators?limit=1").await;
    let next = p1["next"].as_str().expect("next").to_string();
    let (_, p2) = get(&s, &a, &format!("/api/v1/indicators?limit=1&after={next}")).await;
    assert_eq!(values(&p1).len() + values(&p2).len(), 2);
    assert_ne!(values(&p1), values(&p2));
    let _ = b_id;
}

#[tokio::test]
async fn expiry_and_decay_emit_removals_on_the_change_stream() {
    let config =
        format!("{NO_KB}[indicators]\nsweep_secs = 1\n[indicators.half_life]\nipv4 = \"2s\"\n");
    let s = Server::start_with(Some(&config), &[]);
    let (_, m) = create_cleared(&s, "Member", "company", "amber").await;
    let mut stream = Sse::open(&s, &m, "/api/v1/indicators/stream", None).await;
    let until = (jiff::Timestamp::now() + jiff::SignedDuration::from_secs(2)).to_string();
    let sha = "a".repeat(64);
    let (st, r) = post_json(
        &s,
        &m,
        "/api/v1/indicators",
        &json!({"indicators": [
            {"value": "short-lived.example", "valid_until": until},
            {"value": "198.51.100.7", "confidence": 50},
            {"value": sha},
        ]}),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    let mut adds = Vec::new();
    let mut removes = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while removes.len() < 2 && tokio::time::Instant::now() < deadline {
        let Some(msg) = stream.next(Duration::from_secs(10)).await else {
            break;
        };
        let v: Value = serde_json::from_str(&msg.data).expect("json");
        assert_eq!(msg.id.as_deref(), Some(v["seq"].to_string().as_str()));
        let value = v["indicator"]["value"].as_str().expect("value").to_string();
        match msg.event.as_deref() {
            Some("add") => adds.push(value),
            Some("remove") => removes.push((value, v["indicator"]["status"].clone())),
            other => panic!("unexpected event {other:?}"),
        }
    }
    adds.sort();
    assert_eq!(adds.len(), 3, "{adds:?}");
    removes.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        removes,
        vec![
            ("198.51.100.7".to_string(), json!("decayed")),
            ("short-lived.example".to_string(), json!("expired")),
        ]
    );
    // The hash never decays; lookups and the active list shrink with the removals.
    let (_, list) = get(&s, &m, "/api/v1/indicators").await;
    assert_eq!(values(&list), vec![sha.clone()]);
    let (_, list) = get(&s, &m, "/api/v1/indicators?active=false").await;
    assert_eq!(values(&list).len(), 2, "{list}");
    let (_, look) = get(&s, &m, "/api/v1/lookup/short-lived.example").await;
    assert_eq!(look["known"], false, "{look}");
    // The change log lists the same history, and resumes after a seq.
    let (_, ch) = get(&s, &m, "/api/v1/indicators/changes").await;
    let ops: Vec<&str> = ch["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| c["op"].as_str().expect("op"))
        .collect();
    assert_eq!(ops.iter().filter(|o| **o == "add").count(), 3, "{ops:?}");
    assert_eq!(ops.iter().filter(|o| **o == "remove").count(), 2, "{ops:?}");
    let (_, tail) = get(&s, &m, "/api/v1/indicators/changes?after=3").await;
    assert_eq!(
        tail["changes"].as_array().expect("changes").len(),
        2,
        "{tail}"
    );
    // Resuming the stream from seq 3 replays the removals.
    let mut resumed = Sse::open(&s, &m, "/api/v1/indicators/stream", Some(3)).await;
    let msg = resumed.next(Duration::from_secs(10)).await.expect("replay");
    assert_eq!(msg.event.as_deref(), Some("remove"));
    assert_eq!(msg.id.as_deref(), Some("4"));
}

#[tokio::test]
async fn withdrawals_false_positives_and_accuracy_survive_a_restart() {
    let mut s = Server::start_with(Some(NO_KB), &[]);
    let (_, a) = create_cleared(&s, "Contributor", "company", "amber").await;
    let (_, b) = create_cleared(&s, "Reporter One", "isp", "green").await;
    let (_, c) = create_cleared(&s, "Reporter Two", "cert", "green").await;
    let (_, r) = post_json(
        &s,
        &a,
        "/api/v1/indicators",
        &json!({"indicators": [{"value": "fp.example"}, {"value": "mine.example"}, {"value": "203.0.113.9"}]}),
    )
    .await;
    let ids: Vec<String> = r["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|v| v.as_str().expect("id").to_string())
        .collect();
    // One member's report is not enough (threshold 2); the second removes it.
    let (st, fp) = post_json(
        &s,
        &b,
        &format!("/api/v1/indicators/{}/false-positive", ids[0]),
        &json!({}),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{fp}");
    assert_eq!(fp["status"], "active");
    let (_, fp) = post_json(
        &s,
        &c,
        &format!("/api/v1/indicators/{}/false-positive", ids[0]),
        &json!({}),
    )
    .await;
    assert_eq!(fp["status"], "false-positive", "{fp}");
    let (_, me) = get(&s, &a, "/api/v1/me").await;
    assert_eq!(me["contributions"]["contributed"], 3, "{me}");
    assert_eq!(me["contributions"]["false_positives"], 1, "{me}");
    let acc = me["contributions"]["accuracy"].as_f64().expect("accuracy");
    assert!((acc - 2.0 / 3.0).abs() < 1e-9, "{acc}");
    // A member cannot delete another's indicator; the contributor withdraws its own.
    let (st, e) = delete(&s, &b, &format!("/api/v1/indicators/{}", ids[1])).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{e}");
    let (st, w) = delete(&s, &a, &format!("/api/v1/indicators/{}", ids[1])).await;
    assert_eq!(st, StatusCode::OK, "{w}");
    assert_eq!(w["status"], "withdrawn");
    let (st, d) = delete(&s, ADMIN, &format!("/api/v1/indicators/{}", ids[2])).await;
    assert_eq!(st, StatusCode::OK, "{d}");
    assert_eq!(d["status"], "deleted");
    let (st, _) = delete(&s, ADMIN, "/api/v1/indicators/ind_0000000000000000").await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // Everything is durable: restart and read it back; the change log continues.
    s.terminate();
    let tmp = s.take_tmp();
    let dir = s_dir(&tmp);
    drop(s);
    let s = Server::start_in(&dir, Some(NO_KB), &[], true);
    let (_, list) = get(&s, &a, "/api/v1/indicators?active=any").await;
    let statuses: Vec<(String, String)> = list["indicators"]
        .as_array()
        .expect("list")
        .iter()
        .map(|i| {
            (
                i["value"].as_str().expect("v").to_string(),
                i["status"].as_str().expect("s").to_string(),
            )
        })
        .collect();
    assert_eq!(statuses.len(), 3, "{statuses:?}");
    assert!(statuses.contains(&("fp.example".into(), "false-positive".into())));
    assert!(statuses.contains(&("mine.example".into(), "withdrawn".into())));
    assert!(statuses.contains(&("203.0.113.9".into(), "deleted".into())));
    let (_, me) = get(&s, &a, "/api/v1/me").await;
    assert_eq!(me["contributions"]["false_positives"], 1, "{me}");
    // Re-contributing reactivates and continues the change log's sequence.
    let (_, r) = post_json(
        &s,
        &a,
        "/api/v1/indicators",
        &json!({"indicators": [{"value": "mine.example"}]}),
    )
    .await;
    assert_eq!(r["reactivated"], 1, "{r}");
    let (_, ch) = get(&s, &a, "/api/v1/indicators/changes").await;
    let seqs: Vec<u64> = ch["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| c["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(seqs, (1..=7).collect::<Vec<u64>>(), "{ch}");
    drop(tmp);
}

fn s_dir(tmp: &Option<tempfile::TempDir>) -> std::path::PathBuf {
    tmp.as_ref().expect("tmp").path().join("data")
}

/// TLP as a property over the API: random indicators at random TLPs, members at every
/// clearance; each sees, in the listing and in lookups, exactly what the sharing rule allows.
#[tokio::test]
async fn listings_and_lookups_filter_by_tlp_as_a_property() {
    let s = Server::start_with(Some(NO_KB), &[]);
    let tlps = ["clear", "green", "amber", "amber+strict", "red"];
    let mut members = Vec::new();
    for (i, clearance) in ["clear", "green", "amber", "amber+strict"]
        .iter()
        .enumerate()
    {
        let (_, t) = create_cleared(&s, &format!("member-{i}"), "isp", clearance).await;
        members.push((i, *clearance, t));
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x7f1e);
    let mut truth = Vec::new();
    let mut items = Vec::new();
    for n in 0..60u32 {
        let tlp = tlps[rng.random_range(0..tlps.len())];
        let value = if n % 2 == 0 {
            format!(
                "10.{}.{}.{}",
                n,
                rng.random_range(0..255u8),
                rng.random_range(1..255u8)
            )
        } else {
            format!("host{n}-{}.example", rng.random_range(0..1_000_000u32))
        };
        items.push(json!({"value": value, "tlp": tlp}));
        truth.push((value, tlp));
    }
    let (st, r) = post_json(
        &s,
        ADMIN,
        "/api/v1/indicators",
        &json!({"indicators": items}),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    let rank = |t: &str| tlps.iter().position(|x| *x == t).expect("tlp");
    for (_, clearance, token) in &members {
        let allowed = |t: &str| match t {
            "clear" | "green" => true,
            "red" => false,
            t => rank(t) <= rank(clearance),
        };
        let mut want: Vec<String> = truth
            .iter()
            .filter(|(_, t)| allowed(t))
            .map(|(v, _)| v.clone())
            .collect();
        want.sort();
        let (_, list) = get(&s, token, "/api/v1/indicators?limit=1000").await;
        let mut got = values(&list);
        got.sort();
        assert_eq!(got, want, "listing for clearance {clearance}");
        let all: Vec<String> = truth.iter().map(|(v, _)| v.clone()).collect();
        let (_, look) = post_json(&s, token, "/api/v1/lookup", &json!({"values": all})).await;
        let mut known: Vec<String> = look["results"]
            .as_array()
            .expect("results")
            .iter()
            .filter(|r| r["known"] == true)
            .map(|r| r["canonical"].as_str().expect("canonical").to_string())
            .collect();
        known.sort();
        assert_eq!(known, want, "lookups for clearance {clearance}");
    }
}
