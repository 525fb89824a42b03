//! `/api/v1/threats`: the bundled knowledge base, lookups by id / name / alias, admin edits that
//! survive a restart.

use super::support::*;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn members_read_playbooks_and_admins_edit_them() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("d");
    let mut s = Server::start_in(&dir, None, &[], true);
    let (_, isp) = create_org(&s, "ISP", "isp", json!({"asns": [64500]})).await;
    let (st, v) = get(&s, &isp, "/api/v1/threats").await;
    assert_eq!(st, StatusCode::OK);
    let ids: Vec<&str> = v["threats"]
        .as_array()
        .expect("threats")
        .iter()
        .map(|t| t["id"].as_str().expect("id"))
        .collect();
    for id in [
        "emotet",
        "qakbot",
        "mirai",
        "cobalt-strike",
        "trickbot",
        "icedid",
    ] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }
    assert_eq!(ids.len(), 17);
    // By id, name or alias, any case.
    for key in ["emotet", "Emotet", "EMOTET"] {
        let (st, t) = get(&s, &isp, &format!("/api/v1/threats/{key}")).await;
        assert_eq!(st, StatusCode::OK, "{key}");
        assert_eq!(t["id"], "emotet");
        for section in ["detect", "contain", "clean", "verify"] {
            assert!(
                !t["playbook"][section].as_array().expect(section).is_empty(),
                "{section}"
            );
        }
        assert!(
            t["playbook"]["customer_notice"]
                .as_str()
                .expect("notice")
                .len()
                > 50
        );
    }
    let (st, t) = get(&s, &isp, "/api/v1/threats/Cobalt%20Strike").await;
    assert_eq!(
        (st, t["id"].as_str()),
        (StatusCode::OK, Some("cobalt-strike"))
    );
    let (st, v) = get(&s, &isp, "/api/v1/threats/nosuchthing").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert!(
        v["error"]["message"]
            .as_str()
            .expect("m")
            .contains("nosuchthing")
    );

    // Members may not edit; admins may, and the edit survives a restart.
    let (_, mut emotet) = get(&s, ADMIN, "/api/v1/threats/emotet").await;
    emotet["description"] = json!("Edited by the CERT on duty.");
    let put = |token: String, body: serde_json::Value, base: String, path: &'static str| async move {
        client()
            .put(format!("{base}{path}"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("put")
            .status()
    };
    assert_eq!(
        put(
            isp.clone(),
            emotet.clone(),
            s.base.clone(),
            "/api/v1/threats/emotet"
        )
        .await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        put(
            ADMIN.to_string(),
            emotet.clone(),
            s.base.clone(),
            "/api/v1/threats/emotet"
        )
        .await,
        StatusCode::OK
    );
    assert_eq!(
        put(
            ADMIN.to_string(),
            emotet.clone(),
            s.base.clone(),
            "/api/v1/threats/qakbot"
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    s.terminate();
    let s2 = Server::start_in(&dir, None, &[], true);
    let (_, t) = get(&s2, ADMIN, "/api/v1/threats/emotet").await;
    assert_eq!(t["description"], "Edited by the CERT on duty.");
}

#[tokio::test]
async fn check_ins_are_linked_to_the_documented_threat() {
    let s = Server::start();
    let lines = vec![
        json!({"src_ip": "192.0.2.1", "family": "Cobalt Strike"}),
        json!({"src_ip": "192.0.2.2", "family": "elf_mirai"}),
        json!({"src_ip": "192.0.2.3", "family": "Geodo"}),
        json!({"src_ip": "192.0.2.4", "family": "never-heard-of-it"}),
    ];
    assert!(post_events(&s, ADMIN, &lines).await.0.is_success());
    let evs = all_events(&s, ADMIN).await;
    let ids: Vec<serde_json::Value> = evs.iter().map(|e| e["threat_id"].clone()).collect();
    assert_eq!(
        ids,
        vec![
            json!("cobalt-strike"),
            json!("mirai"),
            json!("emotet"),
            serde_json::Value::Null
        ]
    );
    // The family as reported is kept.
    assert_eq!(evs[0]["family"], "cobalt strike");
}

#[tokio::test]
async fn no_default_kb_starts_empty() {
    let s = Server::start_with(Some("default_kb = false\n"), &[]);
    let (_, v) = get(&s, ADMIN, "/api/v1/threats").await;
    assert_eq!(v["threats"], json!([]));
    let (_, h) = get(&s, ADMIN, "/healthz").await;
    assert_eq!(h["indicators"], 0);
    assert_eq!(h["threats"], 0);
}
