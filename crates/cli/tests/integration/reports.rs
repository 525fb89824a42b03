//! `GET /api/v1/reports/infections`: the abuse desk's per-IP view, JSON and CSV, scoped.

use super::support::*;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn an_isp_gets_one_row_per_infected_ip_in_its_networks() {
    let s = Server::start();
    let (_, isp) = create_org(&s, "ISP", "isp", json!({"asns": [15169]})).await;
    let now = jiff::Timestamp::now();
    let t = |mins: i64| (now - jiff::SignedDuration::from_mins(mins)).to_string();
    let lines = vec![
        json!({"src_ip": "8.8.8.8", "family": "emotet", "time": t(50)}),
        json!({"src_ip": "8.8.8.8", "family": "qakbot", "time": t(10)}),
        json!({"src_ip": "8.8.8.8", "family": "emotet", "time": t(30)}),
        json!({"src_ip": "8.8.4.4", "family": "mirai", "time": t(5)}),
        json!({"src_ip": "8.8.4.4", "family": "mirai", "time": t(60 * 48)}), // older than 24h
        json!({"src_ip": "1.1.1.1", "family": "emotet", "time": t(5)}),      // not this ISP's
    ];
    assert!(post_events(&s, ADMIN, &lines).await.0.is_success());
    let (st, v) = get(&s, &isp, "/api/v1/reports/infections").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let rows = v["infections"].as_array().expect("rows");
    assert_eq!(rows.len(), 2, "{v}");
    assert_eq!(rows[0]["ip"], "8.8.8.8");
    assert_eq!(rows[0]["count"], 3);
    assert_eq!(rows[0]["families"], json!(["emotet", "qakbot"]));
    assert_eq!(rows[0]["asn"], 15169);
    assert_eq!(rows[0]["country"], "US");
    assert_eq!(rows[0]["first_seen"], lines[0]["time"]);
    assert_eq!(rows[0]["last_seen"], lines[1]["time"]);
    assert_eq!(rows[1]["ip"], "8.8.4.4");
    assert_eq!(rows[1]["count"], 1);
    // A wider window includes the old check-in.
    let (_, v) = get(&s, &isp, "/api/v1/reports/infections?since=7d").await;
    assert_eq!(v["infections"][1]["count"], 2);
    // CSV.
    let r = client()
        .get(s.url("/api/v1/reports/infections?format=csv"))
        .bearer_auth(&isp)
        .send()
        .await
        .expect("csv");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .expect("ct")
            .starts_with("text/csv")
    );
    let text = r.text().await.expect("text");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "ip,asn,as_name,country,families,threat_ids,first_seen,last_seen,count"
    );
    assert_eq!(lines.len(), 3);
    assert!(lines[1].starts_with("8.8.8.8,15169,"));
    assert!(lines[1].ends_with(",3"));
    let (st, v) = get(&s, &isp, "/api/v1/reports/infections?since=tomorrow").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(
        v["error"]["message"]
            .as_str()
            .expect("m")
            .contains("tomorrow")
    );
}
