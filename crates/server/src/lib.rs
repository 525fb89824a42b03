//! threatfeed server: the HTTP API over the data path.
//!
//! Request → [`auth`] → [`routes`] → (ingest) parse → [`pipeline::enrich`] →
//! [`pipeline::committer`] (group commit to the durable log) → [`hub`] (scoped fan-out) →
//! [`routes::stream`] (SSE). Reads (`GET /api/v1/events`, reports) scan the log through the one
//! privacy check in `threatfeed_core::privacy`.
//!
//! [`app`] wires it together; [`config`] is the validated configuration; [`error`] is the one
//! error table; [`telemetry`] names every metric; [`behaviour`] learns each threat's observed
//! behaviour and the clusters of unclassified check-ins from the log; [`overview`] keeps the
//! address-free aggregates of the last 24 hours behind the public dashboard.

pub mod app;
pub mod auth;
pub mod behaviour;
pub mod config;
pub mod error;
pub mod hub;
pub mod indicators;
pub mod overview;
pub mod pipeline;
pub mod ratelimit;
pub mod routes;
pub mod telemetry;

pub use app::{AppState, Server};
pub use config::{Config, RawConfig};
