//! Admin bootstrap, tokens, 401 / 403.

use super::support::*;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn first_start_creates_a_0600_admin_token_printed_once() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("d");
    let mut s = Server::start_in(&dir, None, &[], false);
    let path = dir.join("admin.token");
    let token = std::fs::read_to_string(&path)
        .expect("admin.token")
        .trim()
        .to_string();
    assert!(token.starts_with("tf_"));
    assert!(
        s.printed.iter().any(|l| l.contains(&token)),
        "token printed: {:?}",
        s.printed
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let (st, me) = get(&s, &token, "/api/v1/me").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(me["kind"], "admin");
    s.terminate();
    // Second start: the same token still works and is not printed again.
    let s2 = Server::start_in(&dir, None, &[], false);
    assert!(!s2.printed.iter().any(|l| l.contains(&token)));
    assert_eq!(get(&s2, &token, "/api/v1/me").await.0, StatusCode::OK);
    drop(s);
}

#[tokio::test]
async fn missing_bad_and_revoked_tokens_are_refused_with_json_errors() {
    let s = Server::start();
    let r = client()
        .get(s.url("/api/v1/orgs"))
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let v: serde_json::Value = r.json().await.expect("json error body");
    assert_eq!(v["error"]["code"], "unauthorized");
    let (st, v) = get(&s, "tf_nope", "/api/v1/orgs").await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(v["error"]["code"], "unauthorized");

    let (org_id, isp) = create_org(&s, "ISP One", "isp", json!({"cidrs": ["192.0.2.0/24"]})).await;
    // Valid but not allowed: 403.
    let (st, v) = get(&s, &isp, "/api/v1/orgs").await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    let (st, _) = post_events(&s, &isp, &[ev("192.0.2.1", "emotet", 1)]).await;
    assert_eq!(st, StatusCode::FORBIDDEN);

    // A second token, then revoke it.
    let (st, t) = post_json(
        &s,
        ADMIN,
        &format!("/api/v1/orgs/{org_id}/tokens"),
        &json!({"label": "soc"}),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{t}");
    let second = t["token"].as_str().expect("token").to_string();
    assert_eq!(get(&s, &second, "/api/v1/me").await.0, StatusCode::OK);
    let tid = t["token_id"].as_str().expect("id");
    let r = client()
        .delete(s.url(&format!("/api/v1/tokens/{tid}")))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("del");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        get(&s, &second, "/api/v1/me").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get(&s, &isp, "/api/v1/me").await.0,
        StatusCode::OK,
        "other token unaffected"
    );

    // Tokens are stored hashed: the secret never appears in the data directory's files.
    for entry in std::fs::read_dir(&s.dir).expect("dir") {
        let p = entry.expect("entry").path();
        if p.is_file() {
            let bytes = std::fs::read(&p).expect("read");
            let hay = String::from_utf8_lossy(&bytes);
            assert!(!hay.contains(&second), "secret found in {}", p.display());
        }
    }
    // HTTP Basic with the token as password.
    let r = client()
        .get(s.url("/api/v1/me"))
        .basic_auth("any", Some(&isp))
        .send()
        .await
        .expect("basic");
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn org_creation_validates_scopes() {
    let s = Server::start();
    for (body, needle) in [
        (json!({"name": "x", "kind": "bank"}), "bank"),
        (
            json!({"name": "x", "kind": "isp", "scope": {"cidrs": ["192.0.2.1/24"]}}),
            "192.0.2.1/24",
        ),
        (
            json!({"name": "x", "kind": "isp", "scope": {"cidrs": ["nonsense"]}}),
            "nonsense",
        ),
        (
            json!({"name": "x", "kind": "isp", "scope": {"countries": ["NL"]}}),
            "cert",
        ),
        (
            json!({"name": "x", "kind": "cert", "scope": {"countries": ["NLD"]}}),
            "NLD",
        ),
        (json!({"name": "", "kind": "isp"}), "name"),
        (
            json!({"name": "x", "kind": "isp", "tlp_clearance": "purple"}),
            "purple",
        ),
    ] {
        let (st, v) = post_json(&s, ADMIN, "/api/v1/orgs", &body).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body} -> {v}");
        let msg = v["error"]["message"].as_str().expect("message");
        assert!(msg.contains(needle), "{msg:?} should name {needle:?}");
    }
    let (st, v) = post_json(
        &s,
        ADMIN,
        "/api/v1/orgs",
        &json!({"name": "x", "kind": "isp", "scoop": {}}),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    create_org(&s, "dup", "isp", json!({})).await;
    let (st, _) = post_json(
        &s,
        ADMIN,
        "/api/v1/orgs",
        &json!({"name": "dup", "kind": "isp"}),
    )
    .await;
    assert_eq!(st, StatusCode::CONFLICT);
    let (st, v) = get(&s, ADMIN, "/api/v1/orgs").await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        v["orgs"]
            .as_array()
            .expect("orgs")
            .iter()
            .any(|o| o["name"] == "dup")
    );
}
