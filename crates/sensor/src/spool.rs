//! The sensor's on-disk spool: every captured check-in is written here (durably, in group
//! commits) before anything else happens to it, and leaves only after the feed server
//! acknowledged it.
//!
//! The spool is an event log of its own (`threatfeed_store::log`, redb) under `<dir>/log/`,
//! plus `<dir>/spool.json`: the spool's instance id and the highest seq the server has
//! acknowledged (written atomically: temporary file, fsync, rename). So:
//! - a sensor killed with -9 restarts with every check-in it had accepted still queued;
//! - the server stopping only makes the spool grow; the forwarder replays it in order;
//! - each event is sent with the id `<instance>:<seq>`; the server accepts an id once, so a
//!   batch resent after a lost answer is not duplicated.
//!
//! Bounded: above `max_bytes` of queued events, new check-ins are refused (counted in
//! `threatfeed_sinkhole_spool_dropped_total`, and logged — once per episode — at warn level).

use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use threatfeed_core::Event;
use threatfeed_store::log::{EventLog, LogBackend, LogRecord, Retention, open_log};

/// The persisted part of the spool's state.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    /// Random id of this spool (event ids are `<instance>:<seq>`).
    instance: String,
    /// Highest seq the server acknowledged.
    acked: u64,
}

/// The spool.
pub struct Spool {
    dir: PathBuf,
    log: Arc<dyn EventLog>,
    instance: String,
    acked: AtomicU64,
    max_bytes: u64,
    full: AtomicBool,
    /// Wakes the forwarder when something was appended.
    appended: tokio::sync::watch::Sender<u64>,
    /// Serialises appends, state-file writes and trims: a trim keeps the newest
    /// `last_seq - acked` records, which is only right while nothing is appended meanwhile.
    lock: std::sync::Mutex<()>,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("dir", &self.dir)
            .field("instance", &self.instance)
            .field("acked", &self.acked())
            .finish()
    }
}

/// How full the spool is.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SpoolStats {
    /// Events waiting for the server.
    pub pending: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Highest seq written.
    pub last_seq: u64,
    /// Highest seq the server acknowledged.
    pub acked: u64,
}

impl Spool {
    /// Opens (or creates) the spool in `dir`.
    pub fn open(dir: &Path, max_bytes: u64) -> anyhow::Result<Arc<Spool>> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the spool directory {}", dir.display()))?;
        let log = open_log(LogBackend::Redb, &dir.join("log"))
            .with_context(|| format!("opening the spool in {}", dir.display()))?;
        let state_path = dir.join("spool.json");
        let state = match std::fs::read(&state_path) {
            Ok(bytes) => serde_json::from_slice::<State>(&bytes)
                .with_context(|| format!("{}: not a spool state file", state_path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let s = State {
                    instance: uuid::Uuid::new_v4().simple().to_string(),
                    acked: 0,
                };
                write_state(dir, &s)?;
                s
            }
            Err(e) => return Err(e).context(format!("reading {}", state_path.display())),
        };
        let last = log.last_seq();
        let acked = state.acked.min(last);
        let (appended, _) = tokio::sync::watch::channel(last);
        let spool = Spool {
            dir: dir.to_path_buf(),
            log,
            instance: state.instance,
            acked: AtomicU64::new(acked),
            max_bytes,
            full: AtomicBool::new(false),
            appended,
            lock: std::sync::Mutex::new(()),
        };
        spool.trim()?;
        let st = spool.stats();
        metrics::gauge!("threatfeed_sinkhole_spool_pending").set(st.pending as f64);
        metrics::gauge!("threatfeed_sinkhole_spool_bytes").set(st.bytes as f64);
        if st.pending > 0 {
            tracing::info!(
                pending = st.pending,
                "spool holds check-ins not yet acknowledged by the server; they will be sent first"
            );
        }
        Ok(Arc::new(spool))
    }

    /// This spool's instance id.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The id the event at `seq` is sent with.
    pub fn event_id(&self, seq: u64) -> String {
        format!("{}:{seq}", self.instance)
    }

    /// Highest acknowledged seq.
    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::Acquire)
    }

    /// Counts.
    pub fn stats(&self) -> SpoolStats {
        let s = self.log.stats();
        SpoolStats {
            pending: s.last_seq.saturating_sub(self.acked()),
            bytes: s.bytes,
            last_seq: s.last_seq,
            acked: self.acked(),
        }
    }

    /// Notified with the last seq after every append.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.appended.subscribe()
    }

    /// Writes `events` durably in one commit; returns how many were kept. When the spool holds
    /// `max_bytes` or more, nothing is kept (the caller counts them as dropped).
    pub fn append(&self, events: &[Event]) -> anyhow::Result<usize> {
        if events.is_empty() {
            return Ok(0);
        }
        let bytes = self.log.stats().bytes;
        if bytes >= self.max_bytes {
            metrics::counter!("threatfeed_sinkhole_spool_dropped_total")
                .increment(events.len() as u64);
            if !self.full.swap(true, Ordering::AcqRel) {
                tracing::warn!(
                    bytes,
                    max_bytes = self.max_bytes,
                    "spool full: new check-ins are dropped until the server catches up"
                );
            }
            return Ok(0);
        }
        if self.full.swap(false, Ordering::AcqRel) {
            tracing::info!("spool has room again: recording check-ins");
        }
        let encoded: Vec<(i64, Vec<u8>)> = events
            .iter()
            .map(|e| {
                // The id is given when sending (from the seq), never stored.
                let mut e = e.clone();
                e.id = None;
                (e.time.as_millisecond(), e.encode_stored())
            })
            .collect();
        let refs: Vec<(i64, &[u8])> = encoded.iter().map(|(t, d)| (*t, d.as_slice())).collect();
        let first = {
            let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
            self.log.append(&refs).context("writing to the spool")?
        };
        let last = first + refs.len() as u64 - 1;
        self.appended.send_replace(last);
        metrics::counter!("threatfeed_sinkhole_spooled_total").increment(refs.len() as u64);
        let st = self.stats();
        metrics::gauge!("threatfeed_sinkhole_spool_pending").set(st.pending as f64);
        metrics::gauge!("threatfeed_sinkhole_spool_bytes").set(st.bytes as f64);
        Ok(refs.len())
    }

    /// Up to `limit` unacknowledged events, oldest first.
    pub fn pending(&self, limit: usize) -> anyhow::Result<Vec<LogRecord>> {
        self.log
            .read_after(self.acked(), limit)
            .context("reading the spool")
    }

    /// Records that the server acknowledged everything up to `seq` (persisted before the
    /// events are removed).
    pub fn ack(&self, seq: u64) -> anyhow::Result<()> {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let seq = seq.min(self.log.last_seq());
        if seq <= self.acked() {
            return Ok(());
        }
        write_state(
            &self.dir,
            &State {
                instance: self.instance.clone(),
                acked: seq,
            },
        )?;
        self.acked.store(seq, Ordering::Release);
        self.trim()?;
        let st = self.stats();
        metrics::gauge!("threatfeed_sinkhole_spool_pending").set(st.pending as f64);
        metrics::gauge!("threatfeed_sinkhole_spool_bytes").set(st.bytes as f64);
        Ok(())
    }

    /// Removes acknowledged events (the caller holds `lock`, or nothing else runs yet).
    fn trim(&self) -> anyhow::Result<()> {
        let keep = self.log.last_seq().saturating_sub(self.acked());
        let policy = Retention {
            max_records: Some(keep),
            ..Default::default()
        };
        // A trim commit removes a bounded chunk: repeat until nothing more goes.
        while self.log.trim(&policy, 0).context("trimming the spool")? > 0 {}
        Ok(())
    }
}

fn write_state(dir: &Path, s: &State) -> anyhow::Result<()> {
    let path = dir.join("spool.json");
    let tmp = dir.join("spool.json.tmp");
    let bytes = serde_json::to_vec(s)?;
    {
        use std::io::Write;
        let mut f =
            std::fs::File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
        f.write_all(&bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &path).with_context(|| format!("replacing {}", path.display()))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(n: u8) -> Event {
        let mut e = Event::new(
            std::net::IpAddr::from([192, 0, 2, n]),
            jiff::Timestamp::now(),
            jiff::Timestamp::now(),
        );
        e.proto = Some("http".into());
        e
    }

    #[test]
    fn acknowledged_events_leave_and_the_rest_survive_a_reopen() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = Spool::open(dir.path(), 1 << 30).expect("open");
        assert_eq!(s.append(&[ev(1), ev(2), ev(3)]).expect("append"), 3);
        let p = s.pending(10).expect("pending");
        assert_eq!(p.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
        s.ack(2).expect("ack");
        let instance = s.instance().to_string();
        drop(s);
        let s = Spool::open(dir.path(), 1 << 30).expect("reopen");
        assert_eq!(s.instance(), instance, "the instance id is kept");
        let p = s.pending(10).expect("pending");
        assert_eq!(p.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![3]);
        assert_eq!(s.stats().pending, 1);
        assert_eq!(s.event_id(3), format!("{instance}:3"));
        // New events continue the seqs.
        s.append(&[ev(4)]).expect("append");
        assert_eq!(s.stats().last_seq, 4);
    }

    #[test]
    fn acknowledging_while_appending_never_removes_an_unacknowledged_event() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = Spool::open(dir.path(), 1 << 30).expect("open");
        let writer = {
            let s = s.clone();
            std::thread::spawn(move || {
                for _ in 0..200 {
                    s.append(&[ev(1), ev(2)]).expect("append");
                }
            })
        };
        // Acknowledge whatever is there, repeatedly, while the writer appends.
        let mut seen = Vec::new();
        while seen.len() < 400 {
            let p = s.pending(64).expect("pending");
            if let Some(last) = p.last().map(|r| r.seq) {
                seen.extend(p.iter().map(|r| r.seq));
                s.ack(last).expect("ack");
            }
            if writer.is_finished() && s.stats().pending == 0 {
                break;
            }
        }
        writer.join().expect("writer");
        assert_eq!(
            seen,
            (1..=400).collect::<Vec<u64>>(),
            "every event read once, in order"
        );
    }

    #[test]
    fn a_full_spool_refuses_new_events_until_acknowledgements_free_it() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = Spool::open(dir.path(), 1).expect("open");
        assert_eq!(s.append(&[ev(1)]).expect("append"), 1, "empty: room");
        assert_eq!(
            s.append(&[ev(2)]).expect("append"),
            0,
            "over max_bytes: refused"
        );
        s.ack(1).expect("ack");
        assert_eq!(s.append(&[ev(3)]).expect("append"), 1, "room again");
    }
}
