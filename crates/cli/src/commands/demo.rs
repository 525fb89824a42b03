//! `threatfeed serve --demo`: the feed server plus, in the same process, a sinkhole sensor and
//! a bot simulator feeding it, so a newcomer sees a live, classified feed at once.
//!
//! Once the server answers, the demo registers a `sensor` member (its token is kept in
//! `<data-dir>/demo-sensor.token` and reused), starts a sinkhole on ephemeral loopback ports
//! (HTTP, raw TCP, DNS; spool in `<data-dir>/demo-spool`), authoritative for the top-level
//! domains of the bundled C2 lists (so every simulated C2 name resolves to it), and a simulator
//! with bots of every documented family drawn from real networks, beacons compressed to
//! seconds. On shutdown the simulator stops first, the sinkhole drains its spool, then the
//! server stops.

use anyhow::Context;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;
use threatfeed_sensor::config::{DnsConfig, HttpConfig, SinkholeConfig, TcpConfig};
use threatfeed_sensor::simulate::{SimConfig, simulate};

/// The running demo.
pub struct Demo {
    sinkhole: threatfeed_sensor::sinkhole::Running,
    simulator: tokio::task::JoinHandle<()>,
}

impl Demo {
    /// Stops the simulator, then the sinkhole (which forwards what it still holds).
    pub async fn shutdown(self) {
        self.simulator.abort();
        let _ = self.simulator.await;
        if let Err(e) = self.sinkhole.shutdown().await {
            tracing::warn!(error = %e, "demo sinkhole shutdown");
        }
    }
}

/// The admin token of the data directory.
fn admin_token(data_dir: &Path, created: Option<&str>) -> anyhow::Result<String> {
    if let Some(t) = created {
        return Ok(t.to_string());
    }
    if let Ok(t) = std::env::var("THREATFEED_ADMIN_TOKEN")
        && !t.trim().is_empty()
    {
        return Ok(t.trim().to_string());
    }
    let p = data_dir.join("admin.token");
    Ok(std::fs::read_to_string(&p)
        .with_context(|| format!("reading {}", p.display()))?
        .trim()
        .to_string())
}

/// A sensor token for the demo sinkhole: the one kept from an earlier demo if the server still
/// accepts it, else a new `sensor` member.
async fn sensor_token(base: &str, admin: &str, data_dir: &Path) -> anyhow::Result<String> {
    let client = reqwest::Client::new();
    let path = data_dir.join("demo-sensor.token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        let t = t.trim().to_string();
        let ok = client
            .get(format!("{base}/api/v1/me"))
            .bearer_auth(&t)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ok {
            return Ok(t);
        }
    }
    // The server may still be starting: retry for a while.
    let mut last = String::new();
    for _ in 0..100 {
        match client
            .post(format!("{base}/api/v1/orgs"))
            .bearer_auth(admin)
            .json(&json!({"name": "demo sinkhole", "kind": "sensor", "scope": {}}))
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => {
                let v: serde_json::Value = r.json().await?;
                let t = v["token"]
                    .as_str()
                    .context("the server answered without a token")?
                    .to_string();
                std::fs::write(&path, &t).with_context(|| format!("writing {}", path.display()))?;
                return Ok(t);
            }
            Ok(r) => last = format!("{}: {}", r.status(), r.text().await.unwrap_or_default()),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("cannot register the demo sensor: {last}")
}

/// Starts the demo against the server at `base`.
pub async fn start(
    base: String,
    data_dir: PathBuf,
    created_admin: Option<String>,
) -> anyhow::Result<Demo> {
    let admin = admin_token(&data_dir, created_admin.as_deref())?;
    let token = sensor_token(&base, &admin, &data_dir).await?;
    let zones = tokio::task::spawn_blocking(threatfeed_sensor::simulate::c2_zones).await?;
    let any = "127.0.0.1:0".parse().context("address")?;
    let cfg = SinkholeConfig {
        sensor: "demo-sinkhole".into(),
        server: base.clone(),
        token,
        spool_dir: data_dir.join("demo-spool"),
        http: Some(HttpConfig {
            listen: vec![any],
            ..Default::default()
        }),
        tcp: vec![TcpConfig {
            listen: vec![any],
            ..Default::default()
        }],
        dns: Some(DnsConfig {
            listen: vec![any],
            zones,
            answer_v4: vec![std::net::Ipv4Addr::LOCALHOST],
            ..Default::default()
        }),
        metrics_listen: None,
        ..Default::default()
    };
    cfg.validate()?;
    let sinkhole = threatfeed_sensor::sinkhole::start(cfg).await?;
    let sim = SimConfig {
        http: sinkhole.http_addrs().first().copied(),
        tcp: sinkhole.tcp_addrs().into_iter().map(|(_, a)| a).collect(),
        dns: sinkhole.dns_addrs().first().copied(),
        bots: 500,
        rate: 200.0,
        duration: Duration::from_secs(365 * 86_400),
        beacon_scale: 0.05,
        seed: rand::random(),
        ..Default::default()
    };
    tracing::info!(
        http = ?sim.http,
        dns = ?sim.dns,
        bots = sim.bots,
        "demo: sinkhole and bot simulator running"
    );
    println!(
        "demo: a sinkhole (http {:?}, dns {:?}) and {} simulated bots are feeding the server",
        sim.http, sim.dns, sim.bots
    );
    let simulator = tokio::spawn(async move {
        if let Err(e) = simulate(sim).await {
            tracing::warn!(error = %e, "demo simulator stopped");
        }
    });
    Ok(Demo {
        sinkhole,
        simulator,
    })
}
