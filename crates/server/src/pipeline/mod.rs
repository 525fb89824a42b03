//! The ingest pipeline after parsing: enrich (geo) → group commit to the durable log → hand the
//! committed events to the fan-out.
//!
//! - [`enrich`] — ASN, AS name, country and threat id from lock-free read-mostly tables;
//! - [`committer`] — the single writer thread that gathers concurrent requests into one log
//!   append (one fsync for many events) and acknowledges only after the commit;
//! - [`dedup`] — the ids of recently committed events: a batch a sensor resends is not logged twice.

pub mod committer;
pub mod dedup;
pub mod enrich;
