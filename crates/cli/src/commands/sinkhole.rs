//! `threatfeed sinkhole`: runs the sinkhole sensor (`threatfeed_sensor::sinkhole`) until
//! SIGINT / SIGTERM. Prints one JSON line on stdout with the bound addresses (useful with port
//! 0), logs to stderr.

use threatfeed_sensor::sinkhole::{SinkholeArgs, start};

/// Runs `sinkhole`.
pub async fn run(args: SinkholeArgs) -> anyhow::Result<()> {
    crate::commands::serve::init_tracing("text");
    let cfg = args.load()?;
    let sensor = cfg.sensor.clone();
    let stop = crate::commands::serve::stop_signal()?;
    let running = start(cfg).await?;
    let tcp: Vec<serde_json::Value> = running
        .tcp_addrs()
        .into_iter()
        .map(|(proto, a)| serde_json::json!({"proto": proto, "addr": a}))
        .collect();
    println!(
        "{}",
        serde_json::json!({
            "sensor": sensor,
            "http": running.http_addrs(),
            "tcp": tcp,
            "dns": running.dns_addrs(),
            "metrics": running.metrics_addr(),
        })
    );
    tracing::info!(sensor, "sinkhole running");
    stop.await;
    tracing::info!("sinkhole: shutting down (spooled check-ins are kept)");
    running.shutdown().await
}
