//! threatfeed storage: everything that lives on disk.
//!
//! - [`log`] — the durable event log: an append-only, fsync'd, group-committed sequence of
//!   records with gapless, never-reused seqs, behind the [`EventLog`] trait, with a redb and a
//!   fjall backend that pass one conformance suite, and retention ([`Retention`]) by age, count
//!   and size;
//! - [`state`] — the member state store (organisations, API tokens, settings) in redb;
//! - [`bench`] — the store benchmark behind `threatfeed bench store`.
//!
//! Every on-disk format carries a version number, and a file with an unknown version is refused
//! with an error naming it rather than misread. The event log writes format version 2 (records
//! packed into blocks of up to ~256 KiB, one key/value entry each) and still reads version 1 (one
//! record per entry), upgrading such a log in place when it is opened.

pub mod bench;
pub mod log;
pub mod state;

pub use bench::{StoreBenchResult, bench_backends};
pub use log::{
    EventLog, LogBackend, LogError, LogRecord, LogStats, Retention, UnknownBackend, open_log,
};
pub use state::{StateError, StateStore};
