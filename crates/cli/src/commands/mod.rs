//! The subcommands of the binary, one file each.

pub mod demo;
pub mod export;
pub mod geo;
pub mod import;
pub mod ingest;
pub mod lookup;
pub mod org;
pub mod serve;
pub mod sinkhole;
