//! TEMPORARY STUB (lead): replaced by the load generator.
#[derive(Debug, clap::Args)]
pub struct IngestBenchArgs {}
pub async fn run(_a: IngestBenchArgs) -> anyhow::Result<serde_json::Value> {
    anyhow::bail!("not yet")
}
