//! The durable event log: an append-only sequence of opaque records, each with a sequence number
//! (`seq`) and the time it was received, behind one trait ([`EventLog`]) with interchangeable
//! backends ([`redb`] and [`fjall`]).
//!
//! Invariants every backend keeps (and the [`conformance`] suite checks):
//! - seqs start at 1, are assigned consecutively by [`EventLog::append`] and are never reused,
//!   not after [`EventLog::trim`], not after a restart: the highest seq ever assigned is persisted
//!   in the same atomic commit as the records;
//! - an append is one atomic, fsync'd commit: after a crash either the whole batch is there or
//!   none of it, so the retained records are always one contiguous range
//!   `first_seq..=last_seq` with no gap (this is what lets [`LogStats::records`] be derived from
//!   the two ends);
//! - trimming only ever removes the oldest records (a prefix of that range), record by record;
//! - readers never wait for the writer for longer than a snapshot takes to open, and never see
//!   a partial batch.
//!
//! On-disk layout (format version 2), shared by both backends: records are packed into
//! *blocks*, runs of consecutive records stored as one key/value entry keyed by the block's
//! first seq (u64, big-endian where the backend orders raw bytes); the value codec is in
//! `log::block`. One append is split into blocks of at most ~256 KiB (or 4096 records), so it
//! costs about one key/value write per 256 KiB instead of one per record, and a read decodes at
//! most one block it does not return from. The entries tile `first_seq..=last_seq` exactly: the
//! first entry's key is `first_seq` (a trim whose cut goes through a block rewrites the kept
//! tail of that block under its new first seq, in the same commit), each next key follows the
//! previous block's last seq, the last block ends at `last_seq`. `read_after(after, ..)` finds
//! the entry holding `after + 1` with a reverse range query for the last key `<= after + 1`
//! (bounded below by `first_seq`) and streams forward from there.
//!
//! A `meta` table holds `format_version`, `first_seq` (oldest retained seq, or `last_seq + 1`
//! when empty), `last_seq`, `bytes` (sum of the retained records' data lengths, headers
//! excluded) and `v1_last_seq`, all updated in the same commit as the records.
//!
//! Format version 1 (one record per key: value = 8-byte big-endian `received_ms` then the data)
//! is still read: opening a version-1 log upgrades it in place, in one commit, by setting
//! `format_version` to 2 and `v1_last_seq` to its `last_seq`; its old entries stay as they are
//! and are decoded as one-record blocks (keys `<= v1_last_seq`), new appends write blocks above
//! them, and trimming removes the old entries in time. Any other version is refused with
//! [`LogError::UnsupportedFormat`].

mod block;
pub mod fjall;
pub mod redb;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

/// The on-disk format version this build writes (blocks of records).
pub const FORMAT_VERSION: u64 = 2;

/// The oldest on-disk format version this build still reads (and upgrades in place on open):
/// version 1, one record per key.
pub const OLDEST_FORMAT_VERSION: u64 = 1;

/// Records one trim commit removes before it stops at the next block boundary, so a large
/// trim does not stall appends for long (deleting a block costs one key, whatever it holds).
pub(crate) const TRIM_CHUNK: u64 = 256 * 1024;

/// One stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// Sequence number, from 1, consecutive, never reused.
    pub seq: u64,
    /// When the record was received (Unix milliseconds).
    pub received_ms: i64,
    /// The record's bytes, as appended.
    pub data: Vec<u8>,
}

/// What the log holds now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LogStats {
    /// Retained records.
    pub records: u64,
    /// Sum of the retained records' data lengths.
    pub bytes: u64,
    /// Seq of the oldest retained record (`None` when empty).
    pub first_seq: Option<u64>,
    /// Highest seq ever assigned (0 if none), retained or not.
    pub last_seq: u64,
}

/// How much of the log to keep; every limit that is set applies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Retention {
    /// Remove records received more than this many seconds before `now`.
    pub max_age_secs: Option<u64>,
    /// Keep at most this many records.
    pub max_records: Option<u64>,
    /// Keep at most this many bytes of record data.
    pub max_bytes: Option<u64>,
}

impl Retention {
    /// True when no limit is set (trimming never removes anything).
    pub fn is_unbounded(&self) -> bool {
        self.max_age_secs.is_none() && self.max_records.is_none() && self.max_bytes.is_none()
    }
}

/// A failure of the event log. Every message names the file or record involved.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The directory or a file could not be created or read.
    #[error("event log {path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// redb reported an error.
    #[error("event log {path}: redb: {source}")]
    Redb {
        /// The database file.
        path: PathBuf,
        /// The redb error.
        #[source]
        source: ::redb::Error,
    },
    /// fjall reported an error.
    #[error("event log {path}: fjall: {source}")]
    Fjall {
        /// The database directory.
        path: PathBuf,
        /// The fjall error.
        #[source]
        source: ::fjall::Error,
    },
    /// The log was written by a build with another on-disk format.
    #[error(
        "event log {path}: on-disk format version {found} is not supported (this build reads versions {oldest} to {supported}, writes version {supported})",
        oldest = OLDEST_FORMAT_VERSION
    )]
    UnsupportedFormat {
        /// The database.
        path: PathBuf,
        /// Version found in its meta table.
        found: u64,
        /// Newest version this build supports (the one it writes).
        supported: u64,
    },
    /// A record is larger than a block can hold; nothing of the append was written.
    #[error(
        "event log {path}: record for seq {seq} has {len} bytes, more than the {max} a record may have"
    )]
    RecordTooLarge {
        /// The database.
        path: PathBuf,
        /// The seq the record would have had.
        seq: u64,
        /// Its length.
        len: u64,
        /// The largest length allowed.
        max: u64,
    },
    /// Stored data does not have the expected shape.
    #[error("event log {path}: corrupt at seq {seq}: {detail}")]
    Corrupt {
        /// The database.
        path: PathBuf,
        /// The seq involved (0 for the meta table).
        seq: u64,
        /// What is wrong.
        detail: String,
    },
    /// A commit failed earlier; writing on could reuse seqs, so writes are refused.
    #[error(
        "event log {path}: writes refused after a failed commit; restart the process to recover"
    )]
    Poisoned {
        /// The database.
        path: PathBuf,
    },
    /// Any other backend's failure (for backends without a variant of their own).
    #[error("event log {location}: {backend}: {detail}")]
    Backend {
        /// The backend's name.
        backend: &'static str,
        /// Where the log lives (path, URL, stream name).
        location: String,
        /// What went wrong.
        detail: String,
    },
}

/// The durable event log.
///
/// `append` (and `trim`) are meant to be called from one writer thread at a time (they are
/// serialised internally anyway); `read_after`, `last_seq` and `stats` from any number of threads
/// concurrently, without waiting for a commit in progress.
pub trait EventLog: Send + Sync + 'static {
    /// Appends `records` (received_ms, bytes) durably in ONE commit (fsync'd before returning),
    /// assigning consecutive seqs.
    ///
    /// Returns the seq of the first record (the last is first + len - 1). Empty input returns
    /// `Ok(last_seq + 1)` and writes nothing.
    fn append(&self, records: &[(i64, &[u8])]) -> Result<u64, LogError>;
    /// Up to `limit` records with seq > `after`, ascending.
    fn read_after(&self, after: u64, limit: usize) -> Result<Vec<LogRecord>, LogError>;
    /// Highest seq ever assigned (0 if none). Survives trimming and restart: seqs are NEVER
    /// reused.
    fn last_seq(&self) -> u64;
    /// What the log holds now (cheap: kept in memory).
    fn stats(&self) -> LogStats;
    /// Deletes the oldest records beyond the retention policy (age measured against `now_ms`
    /// using `received_ms`); returns how many were removed.
    ///
    /// The head of the log is removed while it breaks any limit: more than `max_records`
    /// records, more than `max_bytes` bytes, or a head record received more than `max_age_secs`
    /// before `now_ms`. Trimming stops at the first record that breaks none, so a record is
    /// never removed while an older one is kept.
    fn trim(&self, policy: &Retention, now_ms: i64) -> Result<u64, LogError>;
    /// Name of the backend ("redb" / "fjall").
    fn backend(&self) -> &'static str;
}

/// The storage engines an [`EventLog`] can be opened with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogBackend {
    /// redb: a copy-on-write B-tree in one file (`events.redb`). The default.
    #[default]
    Redb,
    /// fjall: an LSM tree in a directory (`events.fjall`).
    Fjall,
}

impl LogBackend {
    /// Every backend, in documentation order.
    pub const ALL: [LogBackend; 2] = [LogBackend::Redb, LogBackend::Fjall];

    /// The lower-case name used in configuration and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            LogBackend::Redb => "redb",
            LogBackend::Fjall => "fjall",
        }
    }
}

impl fmt::Display for LogBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A backend name that is not one of [`LogBackend::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event log backend {0:?} (expected redb or fjall)")]
pub struct UnknownBackend(pub String);

impl FromStr for LogBackend {
    type Err = UnknownBackend;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LogBackend::ALL
            .into_iter()
            .find(|b| b.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownBackend(s.to_string()))
    }
}

/// Opens (creating if needed) the event log of kind `kind` under `dir`
/// (`<dir>/events.redb` or `<dir>/events.fjall`).
pub fn open_log(kind: LogBackend, dir: &Path) -> Result<Arc<dyn EventLog>, LogError> {
    Ok(match kind {
        LogBackend::Redb => Arc::new(redb::RedbLog::open(dir)?),
        LogBackend::Fjall => Arc::new(fjall::FjallLog::open(dir)?),
    })
}

/// Creates `dir` (and parents) if missing.
pub(crate) fn ensure_dir(dir: &Path) -> Result<(), LogError> {
    std::fs::create_dir_all(dir).map_err(|source| LogError::Io {
        path: dir.to_path_buf(),
        source,
    })
}

/// Bookkeeping kept in memory and mirrored in the meta table.
///
/// Invariant: `1 <= first_seq <= last_seq + 1`; the retained records are exactly
/// `first_seq..=last_seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counters {
    pub first_seq: u64,
    pub last_seq: u64,
    pub bytes: u64,
}

impl Counters {
    /// The counters of a new, empty log.
    pub const EMPTY: Counters = Counters {
        first_seq: 1,
        last_seq: 0,
        bytes: 0,
    };

    /// Retained records.
    pub fn records(&self) -> u64 {
        (self.last_seq + 1).saturating_sub(self.first_seq)
    }

    /// Whether the invariant holds.
    pub fn is_valid(&self) -> bool {
        self.first_seq >= 1 && self.first_seq <= self.last_seq.saturating_add(1)
    }

    pub fn stats(&self) -> LogStats {
        let records = self.records();
        LogStats {
            records,
            bytes: self.bytes,
            first_seq: (records > 0).then_some(self.first_seq),
            last_seq: self.last_seq,
        }
    }

    /// The counters after appending `records`, or `None` on seq overflow.
    pub fn after_append(&self, records: &[(i64, &[u8])]) -> Option<Counters> {
        let n = u64::try_from(records.len()).ok()?;
        let added: u64 = records.iter().map(|(_, d)| d.len() as u64).sum();
        Some(Counters {
            first_seq: self.first_seq,
            last_seq: self.last_seq.checked_add(n)?,
            bytes: self.bytes.checked_add(added)?,
        })
    }
}

/// The absolute cut-off time of a max-age policy: records received before it are too old.
pub(crate) fn age_cutoff(policy: &Retention, now_ms: i64) -> Option<i64> {
    policy.max_age_secs.map(|secs| {
        let age_ms = i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        now_ms.saturating_sub(age_ms)
    })
}

/// Whether trimming could remove anything without looking at a record: a record or byte limit
/// is exceeded, or an age limit is set (then the head must be looked at).
pub(crate) fn trim_may_remove(c: &Counters, policy: &Retention) -> bool {
    if c.records() == 0 {
        return false;
    }
    policy.max_records.is_some_and(|m| c.records() > m)
        || policy.max_bytes.is_some_and(|m| c.bytes > m)
        || policy.max_age_secs.is_some()
}

/// Locks a mutex, ignoring poisoning: the data behind our mutexes is plain counters that a
/// panicking holder cannot leave half-updated.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_names_round_trip() {
        for b in LogBackend::ALL {
            assert_eq!(b.as_str().parse::<LogBackend>(), Ok(b));
            assert_eq!(
                serde_json::to_string(&b).expect("serialise"),
                format!("\"{b}\"")
            );
        }
        assert_eq!(" FJALL ".parse::<LogBackend>(), Ok(LogBackend::Fjall));
        assert!("nats".parse::<LogBackend>().is_err());
    }

    #[test]
    fn age_cutoff_saturates() {
        let p = Retention {
            max_age_secs: Some(u64::MAX),
            ..Retention::default()
        };
        assert_eq!(age_cutoff(&p, 0), Some(-i64::MAX));
        let p = Retention {
            max_age_secs: Some(5),
            ..Retention::default()
        };
        assert_eq!(age_cutoff(&p, 10_000), Some(5_000));
        assert_eq!(age_cutoff(&Retention::default(), 10_000), None);
    }
}
