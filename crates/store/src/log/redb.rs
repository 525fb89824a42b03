//! The redb backend of the event log: one file, `<dir>/events.redb`.
//!
//! Tables: `events` (u64 seq → value, the layout of [`super`]: 8-byte big-endian `received_ms`
//! then the data) and `meta` (&str → u64: `format_version`, `first_seq`, `last_seq`, `bytes`).
//! Every append and every trim step is one write transaction with `Durability::Immediate`, so
//! the records and the meta counters change together and are on disk when the call returns.
//! Quick-repair is enabled on every commit so that reopening after a crash does not walk the
//! whole file. Readers use MVCC read transactions and never wait for the writer.
//!
//! Invariants: the in-memory [`Counters`] equal the meta table as of the last commit; after a
//! failed commit every write is refused (the commit may or may not have reached disk, and
//! writing on could reuse seqs).

use super::{
    Counters, EventLog, FORMAT_VERSION, HeadRecord, LogError, LogRecord, LogStats, Retention,
    decode_value, encode_value, ensure_dir, lock, plan_trim, trim_may_remove,
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

/// The event log stored in a redb database.
pub struct RedbLog {
    path: PathBuf,
    db: Database,
    /// Serialises append and trim (held across the whole write transaction).
    writer: Mutex<()>,
    /// Published counters, updated after each successful commit.
    counters: Mutex<Counters>,
    /// Set when a commit failed: writes are refused from then on.
    poisoned: AtomicBool,
}

impl RedbLog {
    /// Opens (creating if needed) `<dir>/events.redb`.
    pub fn open(dir: &Path) -> Result<RedbLog, LogError> {
        ensure_dir(dir)?;
        let path = dir.join("events.redb");
        let db = Database::builder()
            .create(&path)
            .map_err(|e| redb_err(&path, e))?;
        let counters = init_meta(&path, &db)?;
        tracing::debug!(path = %path.display(), ?counters, "opened redb event log");
        Ok(RedbLog {
            path,
            db,
            writer: Mutex::new(()),
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
            let step = {
                let range = events.range(c.first_seq..).map_err(|e| self.err(e))?;
                let head = range.map(|item| {
                    let (k, v) = item.map_err(|e| self.err(e))?;
                    let seq = k.value();
                    let (received_ms, data) =
                        decode_value(v.value()).ok_or_else(|| truncated(&self.path, seq))?;
                    Ok(HeadRecord {
                        seq,
                        received_ms,
                        len: data.len() as u64,
                    })
                });
                plan_trim(&self.path, &c, policy, now_ms, head)?
            };
            if step.records == 0 {
                return Ok(0);
            }
            let end = c.first_seq + step.records;
            events
                .retain_in(c.first_seq..end, |_, _| false)
                .map_err(|e| self.err(e))?;
            let next = Counters {
                first_seq: end,
                last_seq: c.last_seq,
                bytes: c.bytes.saturating_sub(step.bytes),
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
        let _w = lock(&self.writer);
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
            let mut buf = Vec::new();
            for (seq, (received_ms, data)) in (first..).zip(records) {
                encode_value(&mut buf, *received_ms, data);
                events
                    .insert(seq, buf.as_slice())
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
        if limit == 0 {
            return Ok(Vec::new());
        }
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let events = txn.open_table(EVENTS).map_err(|e| self.err(e))?;
        let mut out = Vec::with_capacity(limit.min(1024));
        for item in events.range(start..).map_err(|e| self.err(e))?.take(limit) {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let seq = k.value();
            let (received_ms, data) =
                decode_value(v.value()).ok_or_else(|| truncated(&self.path, seq))?;
            out.push(LogRecord {
                seq,
                received_ms,
                data: data.to_vec(),
            });
        }
        Ok(out)
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

fn truncated(path: &Path, seq: u64) -> LogError {
    LogError::Corrupt {
        path: path.to_path_buf(),
        seq,
        detail: "stored value is shorter than its 8-byte header".to_string(),
    }
}

fn write_counters(meta: &mut redb::Table<&str, u64>, c: &Counters) -> Result<(), redb::Error> {
    meta.insert(K_FIRST, c.first_seq)?;
    meta.insert(K_LAST, c.last_seq)?;
    meta.insert(K_BYTES, c.bytes)?;
    Ok(())
}

/// Creates the tables and meta of a new log, or checks those of an existing one, and returns
/// its counters.
fn init_meta(path: &Path, db: &Database) -> Result<Counters, LogError> {
    let err = |e: redb::Error| redb_err(path, e);
    let corrupt = |seq: u64, detail: String| LogError::Corrupt {
        path: path.to_path_buf(),
        seq,
        detail,
    };
    let txn = db.begin_write().map_err(|e| err(e.into()))?;
    let counters = {
        let events = txn.open_table(EVENTS).map_err(|e| err(e.into()))?;
        let mut meta = txn.open_table(META).map_err(|e| err(e.into()))?;
        let get = |meta: &redb::Table<&str, u64>, key: &str| -> Result<Option<u64>, LogError> {
            Ok(meta.get(key).map_err(|e| err(e.into()))?.map(|g| g.value()))
        };
        match get(&meta, K_VERSION)? {
            None => {
                if !events.is_empty().map_err(|e| err(e.into()))? {
                    return Err(corrupt(0, "records present but no format version".into()));
                }
                meta.insert(K_VERSION, FORMAT_VERSION)
                    .map_err(|e| err(e.into()))?;
                write_counters(&mut meta, &Counters::EMPTY).map_err(err)?;
                Counters::EMPTY
            }
            Some(FORMAT_VERSION) => {
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
                let first = events.first().map_err(|e| err(e.into()))?;
                let last = events.last().map_err(|e| err(e.into()))?;
                let ends = first.zip(last).map(|(f, l)| (f.0.value(), l.0.value()));
                let expected = (c.records() > 0).then_some((c.first_seq, c.last_seq));
                if ends != expected {
                    return Err(corrupt(
                        c.first_seq,
                        format!("records span {ends:?} but meta says {expected:?}"),
                    ));
                }
                c
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
    Ok(counters)
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
    }
}
