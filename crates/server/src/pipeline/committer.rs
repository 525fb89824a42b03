//! Group commit: one writer thread owns appends to the event log.
//!
//! Ingest requests send their enriched events here and wait. The thread takes every request that
//! is queued, writes all their events in ONE log append (one commit, one fsync), assigns the
//! consecutive `seq`s, answers each request with its first seq, and only then hands the committed
//! events to the fan-out. Throughput therefore grows with concurrency instead of being bounded by
//! one fsync per event, and an acknowledged event is always durable.
//!
//! On shutdown a stop message is queued behind the pending requests: everything sent before it
//! is committed and answered before the thread exits.

use crate::hub::{Committed, Hub};
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
        reply: oneshot::Sender<Result<u64, String>>,
    },
    Stop,
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
        let (fan_tx, fan_rx) = std::sync::mpsc::sync_channel::<Vec<Arc<Committed>>>(1024);
        let writer = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || writer_loop(log, rx, fan_tx))?;
        let fanout = std::thread::Builder::new()
            .name("fan-out".into())
            .spawn(move || {
                while let Ok(batch) = fan_rx.recv() {
                    hub.publish(&batch);
                }
            })?;
        Ok((Committer { tx }, CommitterThreads { writer, fanout }))
    }

    /// Appends `events` (whose stored forms are `stored`, same order) durably; returns the seq of
    /// the first. The events' own `seq` fields are ignored.
    pub async fn append(&self, events: Vec<Event>, stored: Vec<Vec<u8>>) -> Result<u64, String> {
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
    oneshot::Sender<Result<u64, String>>,
);

fn writer_loop(
    log: Arc<dyn EventLog>,
    mut rx: mpsc::Receiver<Request>,
    fan_tx: std::sync::mpsc::SyncSender<Vec<Arc<Committed>>>,
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
                    group.push((events, stored, reply));
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
        let started = Instant::now();
        let records: Vec<(i64, &[u8])> = group
            .iter()
            .flat_map(|(events, stored, _)| {
                events
                    .iter()
                    .zip(stored.iter())
                    .map(|(e, s)| (e.received.as_millisecond(), s.as_slice()))
            })
            .collect();
        let result = log.append(&records);
        drop(records);
        match result {
            Ok(first_seq) => {
                telemetry::group_commit(n, started.elapsed().as_secs_f64());
                let stats = log.stats();
                telemetry::log_size(stats.records, stats.bytes, stats.last_seq);
                let mut seq = first_seq;
                let mut committed = Vec::with_capacity(n);
                for (events, stored, reply) in group {
                    let _ = reply.send(Ok(seq));
                    for (mut e, s) in events.into_iter().zip(stored) {
                        e.seq = seq;
                        committed.push(Arc::new(Committed::new(e, s)));
                        seq += 1;
                    }
                }
                if fan_tx.send(committed).is_err() {
                    tracing::error!(
                        "fan-out thread is gone; live subscribers will catch up from the log"
                    );
                }
            }
            Err(err) => {
                tracing::error!(%err, events = n, "log append failed; the batch is not acknowledged");
                let msg = format!("event log append failed: {err}");
                for (_, _, reply) in group {
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
