//! Captured check-ins → the spool, in group commits.
//!
//! The listeners hand each event to a [`Sink`] (a bounded in-memory queue: `send` never
//! waits, so a slow disk cannot stall the listeners). One writer task takes everything queued —
//! up to `batch_max` events, or what arrived within `flush` of the first — and writes it to the
//! spool in one durable commit. A full queue drops the event, counts it in
//! `threatfeed_sinkhole_dropped_total` and logs it (once per episode).
//!
//! [`Sink::send_durable`] also returns a receiver that resolves once the event is in the spool
//! (`true`) or could not be kept (`false`): the listeners answer a client only then, so a
//! check-in the sinkhole has answered survives a kill -9.

use crate::spool::Spool;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use threatfeed_core::Event;
use tokio::sync::{mpsc, oneshot};

/// Events queued in memory before the writer (beyond it, check-ins are dropped).
const QUEUE: usize = 100_000;

/// Where the listeners put captured events.
#[derive(Debug, Clone)]
pub struct Sink {
    tx: mpsc::Sender<(Event, Option<oneshot::Sender<bool>>)>,
    full: Arc<AtomicBool>,
}

impl Sink {
    /// Queues a captured event (never waits). `false`: the queue is full and the event was
    /// dropped (counted and logged).
    pub fn send(&self, e: Event) -> bool {
        self.queue(e, None)
    }

    /// Queues a captured event; the receiver tells when it is durable (`true`) or was not kept
    /// (`false`). `None`: the queue is full and the event was dropped.
    pub fn send_durable(&self, e: Event) -> Option<oneshot::Receiver<bool>> {
        let (tx, rx) = oneshot::channel();
        self.queue(e, Some(tx)).then_some(rx)
    }

    fn queue(&self, e: Event, done: Option<oneshot::Sender<bool>>) -> bool {
        match self.tx.try_send((e, done)) {
            Ok(()) => {
                if self.full.swap(false, Ordering::Relaxed) {
                    tracing::info!("capture queue has room again");
                }
                true
            }
            Err(_) => {
                metrics::counter!("threatfeed_sinkhole_dropped_total").increment(1);
                if !self.full.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        queue = QUEUE,
                        "capture queue full (the spool cannot keep up): check-ins are dropped"
                    );
                }
                false
            }
        }
    }
}

/// Spawns the spool writer. It ends, after writing everything queued, when every [`Sink`]
/// clone has been dropped.
pub fn start(
    spool: Arc<Spool>,
    batch_max: usize,
    flush: Duration,
) -> (Sink, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<(Event, Option<oneshot::Sender<bool>>)>(QUEUE);
    let batch_max = batch_max.max(1);
    let handle = tokio::spawn(async move {
        let mut batch: Vec<(Event, Option<oneshot::Sender<bool>>)> = Vec::with_capacity(batch_max);
        loop {
            // Wait for the first event of a batch, then gather for up to `flush`.
            let Some(first) = rx.recv().await else {
                break;
            };
            batch.push(first);
            let deadline = tokio::time::Instant::now() + flush;
            while batch.len() < batch_max {
                // Take what is already queued without waiting.
                match rx.try_recv() {
                    Ok(e) => {
                        batch.push(e);
                        continue;
                    }
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                    Err(mpsc::error::TryRecvError::Empty) => {}
                }
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(e)) => batch.push(e),
                    Ok(None) | Err(_) => break,
                }
            }
            let (events, done): (Vec<Event>, Vec<_>) =
                std::mem::take(&mut batch).into_iter().unzip();
            let sp = spool.clone();
            let kept = match tokio::task::spawn_blocking(move || sp.append(&events)).await {
                Ok(Ok(n)) => n > 0,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "cannot write to the spool");
                    false
                }
                Err(e) => {
                    tracing::error!(error = %e, "spool writer failed");
                    false
                }
            };
            for d in done.into_iter().flatten() {
                let _ = d.send(kept);
            }
        }
    });
    (
        Sink {
            tx,
            full: Arc::new(AtomicBool::new(false)),
        },
        handle,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn queued_events_reach_the_spool_before_the_writer_ends() {
        let dir = tempfile::tempdir().expect("tmp");
        let spool = Spool::open(dir.path(), 1 << 30).expect("open");
        let (sink, writer) = start(spool.clone(), 100, Duration::from_millis(5));
        for n in 0..250u32 {
            let e = Event::new(
                std::net::IpAddr::from(n.to_be_bytes()),
                jiff::Timestamp::now(),
                jiff::Timestamp::now(),
            );
            assert!(sink.send(e));
        }
        drop(sink);
        writer.await.expect("writer");
        assert_eq!(spool.stats().pending, 250);
        let recs = spool.pending(1000).expect("pending");
        let first = Event::decode_stored(recs[0].seq, &recs[0].data).expect("event");
        assert_eq!(first.src_ip, std::net::IpAddr::from([0, 0, 0, 0]));
    }
}
