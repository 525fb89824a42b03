//! The `threatfeed` binary: one executable for the server, its administration, ingestion from
//! files, the geo table, and the benchmarks. `threatfeed --help` lists every subcommand.

mod bench;
mod client;
mod commands;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// mimalloc: the ingest path allocates and frees many short-lived buffers across threads; the
/// system allocator returned large ones to the kernel and paid for zeroed pages again each time.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// threatfeed — an open, self-hostable, real-time cyber threat feed.
#[derive(Debug, Parser)]
#[command(
    name = "threatfeed",
    version,
    about = "threatfeed — an open, self-hostable, real-time cyber threat feed",
    long_about = None
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the feed server (embedded store; no set-up needed).
    Serve(commands::serve::ServeArgs),
    /// Manage member organisations on a running server (admin token).
    #[command(subcommand)]
    Org(commands::org::OrgCommand),
    /// Issue, list and revoke API tokens on a running server (admin token).
    #[command(subcommand)]
    Token(commands::org::TokenCommand),
    /// Stream event files (NDJSON, JSON arrays, CTIP; .gz accepted) to a running server.
    Ingest(commands::ingest::IngestArgs),
    /// Import indicator files (maltrail, FireHOL, Feodo CSV, plain, MISP, STIX) into a running server.
    Import(commands::import::ImportArgs),
    /// Export what the token may see as a blocklist, RPZ zone, Suricata rules, STIX, CSV, JSON or MISP feed.
    Export(commands::export::ExportArgs),
    /// Run a sinkhole sensor: HTTP / raw TCP / DNS capture, on-disk spool, forwarding to a server.
    Sinkhole(threatfeed_sensor::sinkhole::SinkholeArgs),
    /// Simulate bot populations talking HTTP / TCP / DNS to a sinkhole.
    Simulate(threatfeed_sensor::simulate::SimulateArgs),
    /// Ask a running server whether IPs, networks, domains, URLs or hashes are known-bad.
    Lookup(commands::lookup::LookupArgs),
    /// The IP → ASN / country table: import a newer snapshot, look addresses up.
    #[command(subcommand)]
    Geo(commands::geo::GeoCommand),
    /// Benchmarks that print their figures as JSON.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(a) => commands::serve::run(a).await,
            Command::Org(c) => commands::org::run_org(c).await,
            Command::Token(c) => commands::org::run_token(c).await,
            Command::Ingest(a) => commands::ingest::run(a).await,
            Command::Geo(c) => commands::geo::run(c).await,
            Command::Lookup(a) => commands::lookup::run(a).await,
            Command::Import(a) => commands::import::run(a).await,
            Command::Export(a) => commands::export::run(a).await,
            Command::Sinkhole(a) => commands::sinkhole::run(a).await,
            Command::Simulate(a) => threatfeed_sensor::simulate::run(a).await,
            Command::Bench(c) => bench::run(c).await,
        }
    });
    // Everything durable is done when `block_on` returns (the server commits what is queued
    // before `serve` returns); background work still running — e.g. loading the bundled lists
    // at start, which is idempotent and resumes on the next start — must not hold up the exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
