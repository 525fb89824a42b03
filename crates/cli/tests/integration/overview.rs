//! The dashboard and its overview: the embedded page and assets (types, CSP, 404 JSON), the
//! live aggregates matching what was posted (per country and threat, DNS queries apart), no
//! address of any posted event anywhere in the answer (a property over random events), only
//! TLP:CLEAR indicators among the recent changes, the SSE stream, and the access setting
//! `dashboard_public_overview`.

use super::support::*;
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const CSP: &str = "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'";

const FAMILIES: [&str; 6] = ["emotet", "qakbot", "mirai", "trickbot", "icedid", "remcos"];

/// GET without any credentials.
async fn get_anon(s: &Server, path: &str) -> reqwest::Response {
    client().get(s.url(path)).send().await.expect("get")
}

/// A random public IPv4 address (first octets outside private, shared, loopback, link-local,
/// documentation, multicast and reserved space).
fn public_v4(rng: &mut impl Rng) -> String {
    loop {
        let a: u8 = rng.random_range(1..=223);
        if matches!(a, 10 | 100 | 127 | 169 | 172 | 192 | 198 | 203) {
            continue;
        }
        return format!(
            "{a}.{}.{}.{}",
            rng.random::<u8>(),
            rng.random::<u8>(),
            rng.random_range(1..=254u8)
        );
    }
}

/// A random global unicast IPv6 address in allocated RIR space.
fn public_v6(rng: &mut impl Rng) -> String {
    let first = [0x2001u16, 0x2400, 0x2600, 0x2800, 0x2a00, 0x2c0f][rng.random_range(0..6)];
    let second: u16 = if first == 0x2001 {
        rng.random_range(0x0200..0x0fff)
    } else {
        rng.random_range(0..0x0fff)
    };
    let rest: Vec<String> = (0..6)
        .map(|_| format!("{:x}", rng.random::<u16>()))
        .collect();
    format!("{first:x}:{second:x}:{}", rest.join(":"))
}

/// Polls the overview (with `token`, or none) until `done` holds.
async fn overview_until(s: &Server, token: Option<&str>, done: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..150 {
        let mut req = client().get(s.url("/api/v1/overview"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.expect("overview");
        assert_eq!(r.status(), StatusCode::OK);
        let v: Value = r.json().await.expect("json");
        if done(&v) {
            return v;
        }
        last = v;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the overview never got there: {last}");
}

#[tokio::test]
async fn dashboard_assets_and_public_overview_match_posted_events_without_addresses() {
    let s = Server::start();

    // The page and its assets: public, typed, under a strict policy.
    let r = get_anon(&s, "/").await;
    assert_eq!(r.status(), StatusCode::OK);
    let h = r.headers().clone();
    assert!(
        h["content-type"]
            .to_str()
            .expect("ct")
            .starts_with("text/html"),
        "{h:?}"
    );
    assert_eq!(h["content-security-policy"], CSP);
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["cache-control"], "no-cache");
    assert!(
        r.text()
            .await
            .expect("html")
            .to_ascii_lowercase()
            .contains("<html")
    );
    let r = get_anon(&s, "/assets/app.js").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .expect("ct")
            .starts_with("text/javascript")
    );
    assert_eq!(r.headers()["content-security-policy"], CSP);
    let r = get_anon(&s, "/assets/app.css").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .expect("ct")
            .starts_with("text/css")
    );
    for missing in ["/assets/nope.js", "/assets/../Cargo.toml", "/assets/a/b.js"] {
        let r = get_anon(&s, missing).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{missing}");
        let v: Value = r.json().await.expect("json error");
        assert_eq!(v["error"]["code"], "not_found", "{missing}: {v}");
    }

    // The stream delivers a snapshot at once, without a token.
    let mut sse = Sse::open(&s, "", "/api/v1/overview/stream", None).await;
    let m = sse
        .next(Duration::from_secs(3))
        .await
        .expect("an overview within 3 s");
    assert_eq!(m.event.as_deref(), Some("overview"));
    let first: Value = serde_json::from_str(&m.data).expect("json");
    assert!(first["totals"].is_object(), "{first}");
    assert_eq!(
        first["checkins_per_sec"].as_array().map(Vec::len),
        Some(300)
    );

    // A few hundred random events: random public v4 / v6 sources (so random countries),
    // random families, some DNS queries from resolvers.
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x0bad_5eed);
    let mut lines = Vec::new();
    let mut posted_ips = BTreeSet::new();
    for n in 0..400u64 {
        let ip = if rng.random_bool(0.3) {
            public_v6(&mut rng)
        } else {
            public_v4(&mut rng)
        };
        // Some bots check in more than once.
        let ip = if n > 10 && rng.random_bool(0.2) {
            posted_ips
                .iter()
                .nth(rng.random_range(0..posted_ips.len()))
                .cloned()
                .unwrap_or(ip)
        } else {
            ip
        };
        posted_ips.insert(ip.clone());
        let mut e = ev(&ip, FAMILIES[rng.random_range(0..FAMILIES.len())], n);
        if rng.random_bool(0.1) {
            e["observation"] = json!("dns-query");
            e["proto"] = json!("dns");
        }
        lines.push(e);
    }
    let (st, v) = post_events(&s, ADMIN, &lines).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["accepted"].as_u64(), Some(lines.len() as u64), "{v}");
    let last = v["last_seq"].as_u64().expect("last_seq");

    // What the server made of them (countries from its geo table).
    let events = all_events(&s, ADMIN).await;
    assert_eq!(events.len(), lines.len());
    let mut checkins = 0u64;
    let mut dns = 0u64;
    let mut ips = BTreeSet::new();
    let mut by_country: BTreeMap<String, (u64, BTreeSet<String>)> = BTreeMap::new();
    let mut by_threat: BTreeMap<String, (u64, BTreeSet<String>)> = BTreeMap::new();
    for e in &events {
        let ip = e["src_ip"].as_str().expect("src_ip").to_string();
        posted_ips.insert(ip.clone());
        if e["observation"] == "dns-query" {
            dns += 1;
            continue;
        }
        checkins += 1;
        ips.insert(ip.clone());
        if let Some(cc) = e["country"].as_str() {
            let c = by_country.entry(cc.to_ascii_uppercase()).or_default();
            c.0 += 1;
            c.1.insert(ip.clone());
        }
        if let Some(t) = e["threat_id"].as_str() {
            let c = by_threat.entry(t.to_string()).or_default();
            c.0 += 1;
            c.1.insert(ip.clone());
        }
    }
    assert!(
        by_country.len() >= 5,
        "random sources in several countries: {by_country:?}"
    );
    assert_eq!(by_threat.len(), FAMILIES.len());

    let o = overview_until(&s, None, |v| v["last_seq"].as_u64() >= Some(last)).await;
    assert_eq!(o["totals"]["checkins_24h"], checkins, "{o}");
    assert_eq!(o["totals"]["dns_queries_24h"], dns, "{o}");
    assert_eq!(o["totals"]["infected_ips_24h"], ips.len() as u64, "{o}");
    let per_sec: u64 = o["checkins_per_sec"]
        .as_array()
        .expect("per sec")
        .iter()
        .filter_map(|p| p["n"].as_u64())
        .sum();
    assert_eq!(per_sec, checkins, "all received within the last 300 s");
    let countries = o["countries"].as_array().expect("countries");
    assert_eq!(countries.len(), by_country.len().min(50));
    for c in countries {
        let cc = c["country"].as_str().expect("country");
        let (n, set) = &by_country[cc];
        assert_eq!(c["checkins"], *n, "{cc}: {c}");
        assert_eq!(c["infected_ips"], set.len() as u64, "{cc}: {c}");
        assert_eq!(c["approximate"], false);
    }
    let threats = o["threats"].as_array().expect("threats");
    assert_eq!(threats.len(), by_threat.len());
    for t in threats {
        let id = t["threat_id"].as_str().expect("threat_id");
        let (n, set) = &by_threat[id];
        assert_eq!(t["checkins"], *n, "{id}: {t}");
        assert_eq!(t["infected_ips"], set.len() as u64, "{id}: {t}");
        assert!(t["name"].as_str().is_some_and(|n| !n.is_empty()), "{t}");
    }
    // Threats by check-ins, ASNs by distinct addresses, largest first.
    let counts: Vec<u64> = threats
        .iter()
        .filter_map(|t| t["checkins"].as_u64())
        .collect();
    assert!(counts.windows(2).all(|w| w[0] >= w[1]), "{counts:?}");
    let asns = o["asns"].as_array().expect("asns");
    assert!(!asns.is_empty() && asns.len() <= 20);
    let counts: Vec<u64> = asns
        .iter()
        .filter_map(|a| a["infected_ips"].as_u64())
        .collect();
    assert!(counts.windows(2).all(|w| w[0] >= w[1]), "{counts:?}");

    // Not one address of any posted event, in the answer or in the stream.
    let text = o.to_string();
    for ip in &posted_ips {
        assert!(!text.contains(ip.as_str()), "{ip} leaked into the overview");
    }
    let mut streamed = String::new();
    while let Some(m) = sse.next(Duration::from_secs(3)).await {
        let v: Value = serde_json::from_str(&m.data).expect("json");
        if v["last_seq"].as_u64() >= Some(last) {
            streamed = m.data;
            break;
        }
    }
    assert!(!streamed.is_empty(), "the stream caught up");
    for ip in &posted_ips {
        assert!(
            !streamed.contains(ip.as_str()),
            "{ip} leaked into the stream"
        );
    }

    // The sensors' health (admin only): the one sensor of these events, its counts.
    let (st, v) = get(&s, ADMIN, "/api/v1/sensors").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let sensors = v["sensors"].as_array().expect("sensors");
    assert_eq!(sensors.len(), 1, "{v}");
    assert_eq!(sensors[0]["sensor"], "test");
    assert_eq!(sensors[0]["checkins_24h"].as_u64(), Some(checkins), "{v}");
    assert_eq!(sensors[0]["dns_queries_24h"].as_u64(), Some(dns), "{v}");
    assert!(
        sensors[0]["idle_secs"].as_u64().is_some_and(|s| s < 120),
        "{v}"
    );
    let (_, member) = create_org(&s, "An ISP", "isp", json!({"asns": [64500]})).await;
    let (st, _) = get(&s, &member, "/api/v1/sensors").await;
    assert_eq!(st, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn closed_overview_needs_a_token_and_shows_only_clear_indicators() {
    let s = Server::start_with(
        Some("default_kb = false\ndashboard_public_overview = false\n"),
        &[],
    );
    // The page stays public; the data does not.
    assert_eq!(get_anon(&s, "/").await.status(), StatusCode::OK);
    for path in ["/api/v1/overview", "/api/v1/overview/stream"] {
        let r = get_anon(&s, path).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
        let v: Value = r.json().await.expect("json");
        assert_eq!(v["error"]["code"], "unauthorized", "{v}");
        let (st, _) = get(&s, "tf_not_a_token", path).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{path}");
    }
    let (_, member) = create_org(&s, "Some ISP", "isp", json!({"asns": [64500]})).await;
    let (st, v) = get(&s, &member, "/api/v1/overview").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let mut sse = Sse::open(&s, &member, "/api/v1/overview/stream", None).await;
    let m = sse
        .next(Duration::from_secs(3))
        .await
        .expect("an overview within 3 s");
    assert_eq!(m.event.as_deref(), Some("overview"));

    // An AMBER and a CLEAR indicator (and a CLEAR address, which is never shown either).
    let (st, v) = post_json(
        &s,
        ADMIN,
        "/api/v1/indicators",
        &json!({"indicators": [
            {"value": "amber-c2.example.net", "type": "domain", "tlp": "amber"},
            {"value": "clear-c2.example.org", "type": "domain", "tlp": "clear"},
            {"value": "45.61.136.7", "type": "ipv4", "tlp": "clear"},
        ]}),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["added"], 3, "{v}");
    let o = overview_until(&s, Some(ADMIN), |v| {
        v["indicators"]["recent"]
            .as_array()
            .is_some_and(|r| r.iter().any(|i| i["value"] == "clear-c2.example.org"))
    })
    .await;
    let recent = o["indicators"]["recent"].as_array().expect("recent");
    assert_eq!(recent.len(), 1, "{o}");
    assert_eq!(recent[0]["type"], "domain");
    assert_eq!(recent[0]["op"], "add");
    assert!(recent[0]["time"].is_string());
    assert_eq!(o["indicators"]["added_24h"], 3);
    assert_eq!(o["indicators"]["active"], 3);
    let text = o.to_string();
    assert!(!text.contains("amber-c2"), "{text}");
    assert!(!text.contains("45.61.136.7"), "{text}");
}
