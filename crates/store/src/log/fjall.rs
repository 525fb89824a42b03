//! The fjall backend of the event log: an LSM tree in the directory `<dir>/events.fjall`.
//!
//! Keyspaces: `events` (8-byte big-endian seq → value, the layout of [`super`]: 8-byte
//! big-endian `received_ms` then the data) and `meta` (UTF-8 key → 8-byte big-endian u64:
//! `format_version`, `first_seq`, `last_seq`, `bytes`). Every append and every trim step is one
//! atomic write batch across both keyspaces, journalled and fsync'd (`PersistMode::SyncAll`)
//! before it is applied, so an acknowledged append is on disk and a reader can never see a
//! record that is not. Readers iterate a snapshot, so they never see part of a batch. Reads
//! start at the oldest retained seq, so the tombstones trimming leaves behind (until compaction
//! drops them) are not scanned.
//!
//! Invariants: the in-memory [`Counters`] equal the meta keyspace as of the last commit; after a
//! failed commit every write is refused (fjall poisons itself too).

use super::{
    Counters, EventLog, FORMAT_VERSION, HeadRecord, LogError, LogRecord, LogStats, Retention,
    decode_value, encode_value, ensure_dir, lock, plan_trim, trim_may_remove,
};
use fjall::{Database, Keyspace, KeyspaceCreateOptions, OwnedWriteBatch, PersistMode, Readable};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

const K_VERSION: &str = "format_version";
const K_FIRST: &str = "first_seq";
const K_LAST: &str = "last_seq";
const K_BYTES: &str = "bytes";

/// The event log stored in a fjall database.
pub struct FjallLog {
    path: PathBuf,
    db: Database,
    events: Keyspace,
    meta: Keyspace,
    /// Serialises append and trim (held across the whole batch commit).
    writer: Mutex<()>,
    /// Published counters, updated after each successful commit.
    counters: Mutex<Counters>,
    /// Set when a commit failed: writes are refused from then on.
    poisoned: AtomicBool,
}

impl FjallLog {
    /// Opens (creating if needed) `<dir>/events.fjall`.
    pub fn open(dir: &Path) -> Result<FjallLog, LogError> {
        ensure_dir(dir)?;
        let path = dir.join("events.fjall");
        let err = |e| fjall_err(&path, e);
        let db = Database::builder(&path).open().map_err(err)?;
        let events = db
            .keyspace("events", KeyspaceCreateOptions::default)
            .map_err(err)?;
        let meta = db
            .keyspace("meta", KeyspaceCreateOptions::default)
            .map_err(err)?;
        let log = FjallLog {
            path: path.clone(),
            db,
            events,
            meta,
            writer: Mutex::new(()),
            counters: Mutex::new(Counters::EMPTY),
            poisoned: AtomicBool::new(false),
        };
        let counters = log.init_meta()?;
        *lock(&log.counters) = counters;
        tracing::debug!(path = %path.display(), ?counters, "opened fjall event log");
        Ok(log)
    }

    fn err(&self, e: fjall::Error) -> LogError {
        fjall_err(&self.path, e)
    }

    fn corrupt(&self, seq: u64, detail: String) -> LogError {
        LogError::Corrupt {
            path: self.path.clone(),
            seq,
            detail,
        }
    }

    fn get_meta(&self, key: &str) -> Result<Option<u64>, LogError> {
        match self.meta.get(key).map_err(|e| self.err(e))? {
            None => Ok(None),
            Some(v) => {
                let bytes: [u8; 8] = (*v)
                    .try_into()
                    .map_err(|_| self.corrupt(0, format!("meta {key} is not 8 bytes")))?;
                Ok(Some(u64::from_be_bytes(bytes)))
            }
        }
    }

    fn init_meta(&self) -> Result<Counters, LogError> {
        match self.get_meta(K_VERSION)? {
            None => {
                if !self.events.is_empty().map_err(|e| self.err(e))? {
                    return Err(self.corrupt(0, "records present but no format version".into()));
                }
                let mut batch = self.batch();
                batch.insert(&self.meta, K_VERSION, FORMAT_VERSION.to_be_bytes());
                self.put_counters(&mut batch, &Counters::EMPTY);
                batch.commit().map_err(|e| self.err(e))?;
                Ok(Counters::EMPTY)
            }
            Some(FORMAT_VERSION) => {
                let field = |key: &str| -> Result<u64, LogError> {
                    self.get_meta(key)?
                        .ok_or_else(|| self.corrupt(0, format!("meta {key} is missing")))
                };
                let c = Counters {
                    first_seq: field(K_FIRST)?,
                    last_seq: field(K_LAST)?,
                    bytes: field(K_BYTES)?,
                };
                if !c.is_valid() {
                    return Err(self.corrupt(0, format!("inconsistent meta counters {c:?}")));
                }
                // Point lookups only: a scan for the first key could wade through tombstones.
                let has = |seq: u64| {
                    self.events
                        .contains_key(seq.to_be_bytes())
                        .map_err(|e| self.err(e))
                };
                if c.records() > 0 {
                    for seq in [c.first_seq, c.last_seq] {
                        if !has(seq)? {
                            return Err(
                                self.corrupt(seq, "meta counts it but it is missing".into())
                            );
                        }
                    }
                }
                if c.last_seq > 0 && c.first_seq > 1 && has(c.first_seq - 1)? {
                    return Err(self.corrupt(
                        c.first_seq - 1,
                        "present but meta says it was trimmed".into(),
                    ));
                }
                if has(c.last_seq + 1)? {
                    return Err(self.corrupt(c.last_seq + 1, "present beyond last_seq".into()));
                }
                Ok(c)
            }
            Some(found) => Err(LogError::UnsupportedFormat {
                path: self.path.clone(),
                found,
                supported: FORMAT_VERSION,
            }),
        }
    }

    /// A batch journalled with fsync before it is applied.
    fn batch(&self) -> OwnedWriteBatch {
        self.db.batch().durability(Some(PersistMode::SyncAll))
    }

    fn put_counters(&self, batch: &mut OwnedWriteBatch, c: &Counters) {
        batch.insert(&self.meta, K_FIRST, c.first_seq.to_be_bytes());
        batch.insert(&self.meta, K_LAST, c.last_seq.to_be_bytes());
        batch.insert(&self.meta, K_BYTES, c.bytes.to_be_bytes());
    }

    fn check_writable(&self) -> Result<(), LogError> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(LogError::Poisoned {
                path: self.path.clone(),
            });
        }
        Ok(())
    }

    fn commit(&self, batch: OwnedWriteBatch) -> Result<(), LogError> {
        batch.commit().map_err(|e| {
            self.poisoned.store(true, Ordering::Release);
            tracing::error!(path = %self.path.display(), error = %e, "event log commit failed; refusing further writes");
            self.err(e)
        })
    }

    fn decode_key(&self, key: &[u8]) -> Result<u64, LogError> {
        let bytes: [u8; 8] = key
            .try_into()
            .map_err(|_| self.corrupt(0, format!("event key of {} bytes", key.len())))?;
        Ok(u64::from_be_bytes(bytes))
    }

    /// One trim commit; returns how many records it removed (0 when done).
    fn trim_step(&self, policy: &Retention, now_ms: i64) -> Result<u64, LogError> {
        let _w = lock(&self.writer);
        self.check_writable()?;
        let c = *lock(&self.counters);
        if !trim_may_remove(&c, policy) {
            return Ok(0);
        }
        // Only this thread writes, so a snapshot taken now is the current state.
        let snapshot = self.db.snapshot();
        let head = snapshot
            .range(&self.events, c.first_seq.to_be_bytes()..)
            .map(|guard| {
                let (k, v) = guard.into_inner().map_err(|e| self.err(e))?;
                let seq = self.decode_key(&k)?;
                let (received_ms, data) = decode_value(&v).ok_or_else(|| {
                    self.corrupt(seq, "stored value is shorter than its header".into())
                })?;
                Ok(HeadRecord {
                    seq,
                    received_ms,
                    len: data.len() as u64,
                })
            });
        let step = plan_trim(&self.path, &c, policy, now_ms, head)?;
        drop(snapshot);
        if step.records == 0 {
            return Ok(0);
        }
        let next = Counters {
            first_seq: c.first_seq + step.records,
            last_seq: c.last_seq,
            bytes: c.bytes.saturating_sub(step.bytes),
        };
        let mut batch = self.batch();
        for seq in c.first_seq..next.first_seq {
            batch.remove(&self.events, seq.to_be_bytes());
        }
        self.put_counters(&mut batch, &next);
        self.commit(batch)?;
        *lock(&self.counters) = next;
        Ok(step.records)
    }
}

impl EventLog for FjallLog {
    fn append(&self, records: &[(i64, &[u8])]) -> Result<u64, LogError> {
        let _w = lock(&self.writer);
        let c = *lock(&self.counters);
        let first = c.last_seq + 1;
        if records.is_empty() {
            return Ok(first);
        }
        self.check_writable()?;
        let next = c.after_append(records).ok_or_else(|| {
            self.corrupt(c.last_seq, "sequence or byte counter would overflow".into())
        })?;
        let mut batch = self.batch();
        let mut buf = Vec::new();
        for (seq, (received_ms, data)) in (first..).zip(records) {
            encode_value(&mut buf, *received_ms, data);
            batch.insert(&self.events, seq.to_be_bytes(), buf.as_slice());
        }
        self.put_counters(&mut batch, &next);
        self.commit(batch)?;
        *lock(&self.counters) = next;
        Ok(first)
    }

    fn read_after(&self, after: u64, limit: usize) -> Result<Vec<LogRecord>, LogError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let Some(start) = after.checked_add(1) else {
            return Ok(Vec::new());
        };
        // Skip what trimming removed: a published first_seq is never ahead of a snapshot taken
        // after reading it.
        let start = start.max(lock(&self.counters).first_seq);
        let snapshot = self.db.snapshot();
        let mut out = Vec::with_capacity(limit.min(1024));
        for guard in snapshot
            .range(&self.events, start.to_be_bytes()..)
            .take(limit)
        {
            let (k, v) = guard.into_inner().map_err(|e| self.err(e))?;
            let seq = self.decode_key(&k)?;
            let (received_ms, data) = decode_value(&v).ok_or_else(|| {
                self.corrupt(seq, "stored value is shorter than its header".into())
            })?;
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
        "fjall"
    }
}

fn fjall_err(path: &Path, e: fjall::Error) -> LogError {
    LogError::Fjall {
        path: path.to_path_buf(),
        source: e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::event_log_conformance_suite!(
        fjall_conformance,
        |dir: &std::path::Path| -> std::sync::Arc<dyn EventLog> {
            std::sync::Arc::new(FjallLog::open(dir).expect("open fjall log"))
        }
    );

    #[test]
    fn refuses_unknown_format_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        drop(FjallLog::open(dir.path()).expect("create"));
        {
            let db = Database::builder(dir.path().join("events.fjall"))
                .open()
                .expect("open raw");
            let meta = db
                .keyspace("meta", KeyspaceCreateOptions::default)
                .expect("meta");
            meta.insert(K_VERSION, 7u64.to_be_bytes()).expect("insert");
            db.persist(PersistMode::SyncAll).expect("persist");
        }
        let err = match FjallLog::open(dir.path()) {
            Err(e) => e,
            Ok(_) => panic!("opened a log of an unknown format"),
        };
        assert!(matches!(
            err,
            LogError::UnsupportedFormat {
                found: 7,
                supported: FORMAT_VERSION,
                ..
            }
        ));
        assert!(err.to_string().contains("events.fjall"), "{err}");
    }
}
