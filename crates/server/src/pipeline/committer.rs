//! Group commit: one writer thread owns appends to the event log.
//!
//! Ingest requests send their enriched events here and wait. The thread takes every request that
//! is queued, writes all their events in ONE log append (one commit, one fsync), assigns the
//! consecutive `seq`s, answers each request with its first seq, and only then hands the committed
//! events to the fan-out. Throughput therefore grows with concurrency instead of being bounded by
//! one fsync per event, and an acknowledged event is always durable.
//!
//! Events carrying an `id` already committed (within [`dedup::WINDOW`]) — or twice in one
//! group — are dropped here, in the one thread that orders all appends, and counted as
//! duplicates in the answer: a sensor may resend a batch whose answer it lost.
//!
//! On shutdown a stop message is queued behind the pending requests: everything sent before it
//! is committed and answered before the thread exits.

use crate::hub::{Committed, Hub};
use crate::pipeline::dedup::{self, SeenIds};
use crate::telemetry;
use std::sync::Arc;
use std::time::Instant;
use threatfeed_core::Event;
use threatfeed_store::log::EventLog;
use tokio::sync::{mpsc, oneshot};

/// Largest number of events written in one group commit.
const MAX_GROUP_EVENTS: usize = 200_000;

enum Request {
    Append {
        events: Vec<Event>,
        stored: Vec<Vec<u8>>,
        reply: oneshot::Sender<Result<Appended, String>>,
    },
    Stop,
}

/// What an append came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Seq of the first event logged (meaningless when `logged` is 0).
    pub first_seq: u64,
    /// Events logged.
    pub logged: usize,
    /// Events not logged because their id was already committed.
    pub duplicates: usize,
}

/// Handle to the writer thread.
#[derive(Debug, Clone)]
pub struct Committer {
    tx: mpsc::Sender<Request>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Request::Append { events, .. } => write!(f, "Append({})", events.len()),
            Request::Stop => f.write_str("Stop"),
        }
    }
}

/// Join handles of the writer and fan-out threads.
#[derive(Debug)]
pub struct CommitterThreads {
    writer: std::thread::JoinHandle<()>,
    fanout: std::thread::JoinHandle<()>,
}

impl CommitterThreads {
    /// Waits for both threads to finish (after [`Committer::stop`]).
    pub fn join(self) {
        if self.writer.join().is_err() {
            tracing::error!("log writer thread panicked");
        }
        if self.fanout.join().is_err() {
            tracing::error!("fan-out thread panicked");
        }
    }
}

impl Committer {
    /// Starts the writer thread over `log`, publishing committed events to `hub`.
    pub fn start(
        log: Arc<dyn EventLog>,
        hub: Arc<Hub>,
    ) -> std::io::Result<(Committer, CommitterThreads)> {
        let (tx, rx) = mpsc::channel::<Request>(4096);
        let seen = SeenIds::rebuild(log.as_ref(), dedup::WINDOW);
        let (fan_tx, fan_rx) = std::sync::mpsc::sync_channel::<Vec<Arc<Committed>>>(1024);
        let writer = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || writer_loop(log, rx, fan_tx, seen))?;
        let fanout = std::thread::Builder::new()
            .name("fan-out".into())
            .spawn(move || {
                while let Ok(batch) = fan_rx.recv() {
                    hub.publish(&batch);
                }
            })?;
        Ok((Committer { tx }, CommitterThreads { writer, fanout }))
    }

    /// Appends `events` (whose stored forms are `stored`, same order) durably, except those
    /// whose id was already committed. The events' own `seq` fields are ignored.
    pub async fn append(
        &self,
        events: Vec<Event>,
        stored: Vec<Vec<u8>>,
    ) -> Result<Appended, String> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::Append {
                events,
                stored,
                reply,
            })
            .await
            .map_err(|_| "the log writer has stopped (server shutting down)".to_string())?;
        rx.await
            .map_err(|_| "the log writer stopped before committing".to_string())?
    }

    /// Asks the writer to finish what is queued and stop.
    pub async fn stop(&self) {
        let _ = self.tx.send(Request::Stop).await;
    }
}

/// One queued request: its events, their stored forms, and where to answer.
type Pending = (
    Vec<Event>,
    Vec<Vec<u8>>,
    oneshot::Sender<Result<Appended, String>>,
    usize,
);

/// Drops the events of `events` / `stored` whose id is in `seen`, remembering the others' ids;
/// returns how many were dropped.
fn drop_duplicates(
    events: &mut Vec<Event>,
    stored: &mut Vec<Vec<u8>>,
    seen: &mut SeenIds,
) -> usize {
    if events.iter().all(|e| e.id.is_none()) {
        return 0;
    }
    let before = events.len();
    let mut keep = Vec::with_capacity(before);
    for e in events.iter() {
        match &e.id {
            Some(id) if seen.contains(id) => keep.push(false),
            Some(id) => {
                seen.insert(id);
                keep.push(true);
            }
            None => keep.push(true),
        }
    }
    let mut k = keep.iter();
    events.retain(|_| k.next().copied().unwrap_or(true));
    let mut k = keep.iter();
    stored.retain(|_| k.next().copied().unwrap_or(true));
    before - events.len()
}

fn writer_loop(
    log: Arc<dyn EventLog>,
    mut rx: mpsc::Receiver<Request>,
    fan_tx: std::sync::mpsc::SyncSender<Vec<Arc<Committed>>>,
    mut seen: SeenIds,
) {
    let mut stop = false;
    while !stop {
        let Some(first) = rx.blocking_recv() else {
            break;
        };
        let mut group: Vec<Pending> = Vec::new();
        let mut n = 0usize;
        let take = |req: Request, group: &mut Vec<_>, n: &mut usize| -> bool {
            match req {
                Request::Append {
                    events,
                    stored,
                    reply,
                } => {
                    *n += events.len();
                    group.push((events, stored, reply, 0));
                    true
                }
                Request::Stop => false,
            }
        };
        if !take(first, &mut group, &mut n) {
            stop = true;
        }
        while !stop && n < MAX_GROUP_EVENTS {
            match rx.try_recv() {
                Ok(req) => {
                    if !take(req, &mut group, &mut n) {
                        stop = true;
                    }
                }
                Err(_) => break,
            }
        }
        if group.is_empty() {
            continue;
        }
        // Ids remembered in this group are forgotten again if the append fails.
        let seen_before = seen.len();
        for (events, stored, _, dups) in &mut group {
            *dups = drop_duplicates(events, stored, &mut seen);
        }
        let n: usize = group.iter().map(|(e, ..)| e.len()).sum();
        let started = Instant::now();
        let records: Vec<(i64, &[u8])> = group
            .iter()
            .flat_map(|(events, stored, ..)| {
                events
                    .iter()
                    .zip(stored.iter())
                    .map(|(e, s)| (e.received.as_millisecond(), s.as_slice()))
            })
            .collect();
        let result = if records.is_empty() {
            Ok(log.last_seq() + 1)
        } else {
            log.append(&records)
        };
        drop(records);
        match result {
            Ok(first_seq) => {
                telemetry::group_commit(n, started.elapsed().as_secs_f64());
                let stats = log.stats();
                telemetry::log_size(stats.records, stats.bytes, stats.last_seq);
                let mut seq = first_seq;
                let mut committed = Vec::with_capacity(n);
                for (events, stored, reply, duplicates) in group {
                    let _ = reply.send(Ok(Appended {
                        first_seq: seq,
                        logged: events.len(),
                        duplicates,
                    }));
                    for (mut e, s) in events.into_iter().zip(stored) {
                        e.seq = seq;
                        committed.push(Arc::new(Committed::new(e, s)));
                        seq += 1;
                    }
                }
                if !committed.is_empty() && fan_tx.send(committed).is_err() {
                    tracing::error!(
                        "fan-out thread is gone; live subscribers will catch up from the log"
                    );
                }
            }
            Err(err) => {
                tracing::error!(%err, events = n, "log append failed; the batch is not acknowledged");
                let msg = format!("event log append failed: {err}");
                if seen.len() != seen_before {
                    // Forget this group's ids: the sensor will resend them.
                    for (events, ..) in &group {
                        for e in events {
                            if let Some(id) = &e.id {
                                seen.remove(id);
                            }
                        }
                    }
                }
                for (_, _, reply, _) in group {
                    let _ = reply.send(Err(msg.clone()));
                }
            }
        }
    }
    // Refuse anything still queued after a stop: those requests were never acknowledged.
    rx.close();
    while let Ok(req) = rx.try_recv() {
        if let Request::Append { reply, .. } = req {
            let _ = reply.send(Err(
                "server shutting down; batch not accepted, retry".to_string()
            ));
        }
    }
}
