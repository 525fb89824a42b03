//! The redb backend of the event log: one file, `<dir>/events.redb`.
//!
//! Tables: `events` (u64 key → value: the block layout of `log::block`, keyed by the
//! block's first seq; in a log upgraded from format version 1 also its one-record entries, keys
//! `<= v1_last_seq`) and `meta` (&str → u64: `format_version`, `first_seq`, `last_seq`, `bytes`,
//! `v1_last_seq`). Every append and every trim step is one write transaction with
//! `Durability::Immediate`, so the blocks and the meta counters change together and are on disk
//! when the call returns. An append inserts one entry per block (about one per 256 KiB), not one
//! per record. A trim step deletes the entries before its cut and, when the cut goes through a
//! block, inserts that block's kept tail under its new first seq. Quick-repair is enabled on
//! every commit so that reopening after a crash does not walk the whole file. Readers use MVCC
//! read transactions and never wait for the writer.
//!
//! Invariants: the in-memory [`Counters`] equal the meta table as of the last commit; the
//! entries tile `first_seq..=last_seq` (first key = `first_seq`, checked with the last block's
//! end on open); after a failed commit every write is refused (the commit may or may not have
//! reached disk, and writing on could reuse seqs).

use super::block::{self, ReadCollector, TrimPlanner};
use super::{
    Counters, EventLog, FORMAT_VERSION, LogError, LogRecord, LogStats, OLDEST_FORMAT_VERSION,
    Retention, ensure_dir, lock, trim_may_remove,
};
use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
    WriteTransaction,
};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

const K_VERSION: &str = "format_version";
const K_FIRST: &str = "first_seq";
const K_LAST: &str = "last_seq";
const K_BYTES: &str = "bytes";
const K_V1_LAST: &str = "v1_last_seq";

/// The event log stored in a redb database.
pub struct RedbLog {
    path: PathBuf,
    db: Database,
    /// Entries with keys up to here are format-version-1 single records (0: none).
    v1_last: u64,
    /// Serialises append and trim (held across the whole commit); holds the buffer blocks are
    /// encoded in, reused by every append.
    writer: Mutex<Vec<u8>>,
    /// Published counters, updated after each successful commit.
    counters: Mutex<Counters>,
    /// Set when a commit failed: writes are refused from then on.
    poisoned: AtomicBool,
}

impl RedbLog {
    /// Opens (creating if needed) `<dir>/events.redb`; a version-1 log is upgraded in place.
    pub fn open(dir: &Path) -> Result<RedbLog, LogError> {
        ensure_dir(dir)?;
        let path = dir.join("events.redb");
        let db = Database::builder()
            .create(&path)
            .map_err(|e| redb_err(&path, e))?;
        let (counters, v1_last) = init_meta(&path, &db)?;
        tracing::debug!(path = %path.display(), ?counters, v1_last, "opened redb event log");
        Ok(RedbLog {
            path,
            db,
            v1_last,
            writer: Mutex::new(Vec::new()),
            counters: Mutex::new(counters),
            poisoned: AtomicBool::new(false),
        })
    }

    fn err(&self, e: impl Into<redb::Error>) -> LogError {
        redb_err(&self.path, e)
    }

    fn begin_write(&self) -> Result<WriteTransaction, LogError> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(LogError::Poisoned {
                path: self.path.clone(),
            });
        }
        let mut txn = self.db.begin_write().map_err(|e| self.err(e))?;
        txn.set_durability(Durability::Immediate)
            .map_err(|e| self.err(e))?;
        txn.set_quick_repair(true);
        Ok(txn)
    }

    fn commit(&self, txn: WriteTransaction) -> Result<(), LogError> {
        txn.commit().map_err(|e| {
            self.poisoned.store(true, Ordering::Release);
            tracing::error!(path = %self.path.display(), error = %e, "event log commit failed; refusing further writes");
            self.err(e)
        })
    }

    /// One trim commit; returns how many records it removed (0 when done).
    fn trim_step(&self, policy: &Retention, now_ms: i64) -> Result<u64, LogError> {
        let _w = lock(&self.writer);
        let c = *lock(&self.counters);
        if !trim_may_remove(&c, policy) {
            return Ok(0);
        }
        let txn = self.begin_write()?;
        let next = {
            let mut events = txn.open_table(EVENTS).map_err(|e| self.err(e))?;
            let plan = {
                let mut planner = TrimPlanner::new(&self.path, c, policy, now_ms);
                for item in events.range(c.first_seq..).map_err(|e| self.err(e))? {
                    let (k, v) = item.map_err(|e| self.err(e))?;
                    let key = k.value();
                    if !planner.feed(key, v.value(), key <= self.v1_last)? {
                        break;
                    }
                }
                planner.finish()
            };
            if plan.records == 0 {
                return Ok(0);
            }
            for key in &plan.delete {
                events.remove(key).map_err(|e| self.err(e))?;
            }
            if let Some((key, tail)) = &plan.rewrite {
                events
                    .insert(key, tail.as_slice())
                    .map_err(|e| self.err(e))?;
            }
            let next = Counters {
                first_seq: c.first_seq + plan.records,
                last_seq: c.last_seq,
                bytes: c.bytes.saturating_sub(plan.bytes),
            };
            let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
            write_counters(&mut meta, &next).map_err(|e| self.err(e))?;
            next
        };
        self.commit(txn)?;
        *lock(&self.counters) = next;
        Ok(next.first_seq - c.first_seq)
    }
}

impl EventLog for RedbLog {
    fn append(&self, records: &[(i64, &[u8])]) -> Result<u64, LogError> {
        let mut w = lock(&self.writer);
        let buf: &mut Vec<u8> = &mut w;
        let c = *lock(&self.counters);
        let first = c.last_seq + 1;
        if records.is_empty() {
            return Ok(first);
        }
        let next = c.after_append(records).ok_or_else(|| LogError::Corrupt {
            path: self.path.clone(),
            seq: c.last_seq,
            detail: "sequence or byte counter would overflow".to_string(),
        })?;
        let txn = self.begin_write()?;
        {
            let mut events = txn.open_table(EVENTS).map_err(|e| self.err(e))?;
            for (key, recs) in block::split(first, records) {
                block::encode(&self.path, key, recs, buf)?;
                events
                    .insert(key, buf.as_slice())
                    .map_err(|e| self.err(e))?;
            }
            let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
            write_counters(&mut meta, &next).map_err(|e| self.err(e))?;
        }
        self.commit(txn)?;
        *lock(&self.counters) = next;
        Ok(first)
    }

    fn read_after(&self, after: u64, limit: usize) -> Result<Vec<LogRecord>, LogError> {
        let Some(start) = after.checked_add(1) else {
            return Ok(Vec::new());
        };
        // Published counters are never ahead of a read transaction begun after reading them.
        let c = *lock(&self.counters);
        let start = start.max(c.first_seq);
        if limit == 0 || start > c.last_seq {
            return Ok(Vec::new());
        }
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let events = txn.open_table(EVENTS).map_err(|e| self.err(e))?;
        let mut col = ReadCollector::new(start, limit);
        // The entry holding `start`: the last key <= start (none if trimming raced past it).
        let holder = events
            .range(c.first_seq..=start)
            .map_err(|e| self.err(e))?
            .next_back();
        let from = match holder {
            Some(item) => {
                let (k, v) = item.map_err(|e| self.err(e))?;
                let key = k.value();
                if !col.feed(&self.path, key, v.value(), key <= self.v1_last)? {
                    return Ok(col.finish());
                }
                match col.next_key() {
                    Some(next) => next,
                    None => return Ok(col.finish()),
                }
            }
            None => start,
        };
        for item in events.range(from..).map_err(|e| self.err(e))? {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let key = k.value();
            if !col.feed(&self.path, key, v.value(), key <= self.v1_last)? {
                break;
            }
        }
        Ok(col.finish())
    }

    fn last_seq(&self) -> u64 {
        lock(&self.counters).last_seq
    }

    fn stats(&self) -> LogStats {
        lock(&self.counters).stats()
    }

    fn trim(&self, policy: &Retention, now_ms: i64) -> Result<u64, LogError> {
        let mut removed = 0;
        loop {
            let n = self.trim_step(policy, now_ms)?;
            if n == 0 {
                return Ok(removed);
            }
            removed += n;
        }
    }

    fn backend(&self) -> &'static str {
        "redb"
    }
}

fn redb_err(path: &Path, e: impl Into<redb::Error>) -> LogError {
    LogError::Redb {
        path: path.to_path_buf(),
        source: e.into(),
    }
}

fn write_counters(meta: &mut redb::Table<&str, u64>, c: &Counters) -> Result<(), redb::Error> {
    meta.insert(K_FIRST, c.first_seq)?;
    meta.insert(K_LAST, c.last_seq)?;
    meta.insert(K_BYTES, c.bytes)?;
    Ok(())
}

/// Creates the tables and meta of a new log, or checks those of an existing one (upgrading a
/// version-1 log in place), and returns its counters and `v1_last_seq`.
fn init_meta(path: &Path, db: &Database) -> Result<(Counters, u64), LogError> {
    let err = |e: redb::Error| redb_err(path, e);
    let corrupt = |seq: u64, detail: String| LogError::Corrupt {
        path: path.to_path_buf(),
        seq,
        detail,
    };
    let txn = db.begin_write().map_err(|e| err(e.into()))?;
    let result = {
        let events = txn.open_table(EVENTS).map_err(|e| err(e.into()))?;
        let mut meta = txn.open_table(META).map_err(|e| err(e.into()))?;
        let get = |meta: &redb::Table<&str, u64>, key: &str| -> Result<Option<u64>, LogError> {
            Ok(meta.get(key).map_err(|e| err(e.into()))?.map(|g| g.value()))
        };
        let version = get(&meta, K_VERSION)?;
        match version {
            None => {
                if !events.is_empty().map_err(|e| err(e.into()))? {
                    return Err(corrupt(0, "records present but no format version".into()));
                }
                meta.insert(K_VERSION, FORMAT_VERSION)
                    .map_err(|e| err(e.into()))?;
                meta.insert(K_V1_LAST, 0).map_err(|e| err(e.into()))?;
                write_counters(&mut meta, &Counters::EMPTY).map_err(err)?;
                (Counters::EMPTY, 0)
            }
            Some(found @ (OLDEST_FORMAT_VERSION | FORMAT_VERSION)) => {
                let field = |key: &str| -> Result<u64, LogError> {
                    get(&meta, key)?.ok_or_else(|| corrupt(0, format!("meta {key} is missing")))
                };
                let c = Counters {
                    first_seq: field(K_FIRST)?,
                    last_seq: field(K_LAST)?,
                    bytes: field(K_BYTES)?,
                };
                if !c.is_valid() {
                    return Err(corrupt(0, format!("inconsistent meta counters {c:?}")));
                }
                // A version-1 log: every entry is a single record, up to last_seq.
                let v1_last = if found == FORMAT_VERSION {
                    field(K_V1_LAST)?
                } else {
                    c.last_seq
                };
                if v1_last > c.last_seq {
                    return Err(corrupt(
                        v1_last,
                        format!("meta v1_last_seq is beyond last_seq {}", c.last_seq),
                    ));
                }
                let first = events.first().map_err(|e| err(e.into()))?;
                let last = events.last().map_err(|e| err(e.into()))?;
                let ends = match first.zip(last) {
                    None => None,
                    Some(((f, _), (l, v))) => {
                        let (f, l) = (f.value(), l.value());
                        let block = block::decode(path, l, v.value(), l <= v1_last)?;
                        Some((f, block.last_seq()))
                    }
                };
                let expected = (c.records() > 0).then_some((c.first_seq, c.last_seq));
                if ends != expected {
                    return Err(corrupt(
                        c.first_seq,
                        format!("records span {ends:?} but meta says {expected:?}"),
                    ));
                }
                if found != FORMAT_VERSION {
                    meta.insert(K_VERSION, FORMAT_VERSION)
                        .map_err(|e| err(e.into()))?;
                    meta.insert(K_V1_LAST, v1_last).map_err(|e| err(e.into()))?;
                    tracing::info!(path = %path.display(), from = found, to = FORMAT_VERSION, v1_last, "upgraded event log format in place; version-1 records are kept and still read");
                }
                (c, v1_last)
            }
            Some(found) => {
                return Err(LogError::UnsupportedFormat {
                    path: path.to_path_buf(),
                    found,
                    supported: FORMAT_VERSION,
                });
            }
        }
    };
    txn.commit().map_err(|e| err(e.into()))?;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::event_log_conformance_suite!(
        redb_conformance,
        |dir: &std::path::Path| -> std::sync::Arc<dyn EventLog> {
            std::sync::Arc::new(RedbLog::open(dir).expect("open redb log"))
        }
    );

    #[test]
    fn refuses_unknown_format_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        drop(RedbLog::open(dir.path()).expect("create"));
        {
            let db = Database::create(dir.path().join("events.redb")).expect("open raw");
            let txn = db.begin_write().expect("txn");
            txn.open_table(META)
                .expect("meta")
                .insert(K_VERSION, 99)
                .expect("insert");
            txn.commit().expect("commit");
        }
        let err = match RedbLog::open(dir.path()) {
            Err(e) => e,
            Ok(_) => panic!("opened a log of an unknown format"),
        };
        assert!(matches!(
            err,
            LogError::UnsupportedFormat {
                found: 99,
                supported: FORMAT_VERSION,
                ..
            }
        ));
        assert!(err.to_string().contains("events.redb"), "{err}");
        assert!(
            err.to_string()
                .contains("version 99 is not supported (this build reads versions 1 to 2"),
            "{err}"
        );
    }

    /// A log written by the format-version-1 build opens, is upgraded in place (meta says 2,
    /// `v1_last_seq` 13) and passes the version-1 checks.
    #[test]
    fn reads_and_upgrades_v1_fixture() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1/redb");
        crate::log::conformance::copy_dir(&fixture, dir.path());
        let meta = |dir: &Path| {
            let db = Database::create(dir.join("events.redb")).expect("open raw");
            let txn = db.begin_read().expect("txn");
            let meta = txn.open_table(META).expect("meta");
            let get = |k| meta.get(k).expect("get").map(|v| v.value());
            (get(K_VERSION), get(K_V1_LAST))
        };
        assert_eq!(meta(dir.path()), (Some(1), None));
        drop(RedbLog::open(dir.path()).expect("open v1"));
        assert_eq!(meta(dir.path()), (Some(FORMAT_VERSION), Some(13)));
        crate::log::conformance::reads_v1_fixture(dir.path(), &|d: &Path| {
            std::sync::Arc::new(RedbLog::open(d).expect("open upgraded log"))
        });
        assert_eq!(meta(dir.path()), (Some(FORMAT_VERSION), Some(13)));
    }
}
