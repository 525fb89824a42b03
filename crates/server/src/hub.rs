//! Live fan-out of committed events to stream subscribers, scoped by the privacy model.
//!
//! Each subscriber registers its [`Viewer`] in an [`AudienceIndex`] (by prefix, ASN, country), so
//! publishing a batch costs time proportional to the subscribers that match, not to all of them.
//! Each subscriber has a bounded queue of batches. A subscriber whose queue is full is never
//! silently dropped: its queue is closed, it is counted as lagged, and its stream goes back to
//! reading the durable log from its last delivered `seq` before re-registering (see
//! `routes::stream`). Ordering and the no-gap/no-duplicate guarantee come from the `seq` cursor.

use crate::telemetry;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use threatfeed_core::{AudienceIndex, Event, Viewer};
use tokio::sync::mpsc;

/// A committed event as fanned out: the event (for scoping), its stored bytes, and its delivered
/// JSON, built once on first use (so events nobody subscribes to cost nothing here).
#[derive(Debug)]
pub struct Committed {
    /// The event, `seq` set.
    pub event: Event,
    /// Its stored form.
    pub stored: Vec<u8>,
    json: std::sync::OnceLock<String>,
}

impl Committed {
    /// A committed event with its stored form.
    pub fn new(event: Event, stored: Vec<u8>) -> Committed {
        Committed {
            event,
            stored,
            json: std::sync::OnceLock::new(),
        }
    }

    /// Its delivered JSON (with `seq`).
    pub fn json(&self) -> &str {
        self.json
            .get_or_init(|| threatfeed_core::event::delivery_json(self.event.seq, &self.stored))
    }
}

/// A batch delivered to one subscriber: the committed events it may see, ascending by seq.
pub type Batch = Vec<Arc<Committed>>;

#[derive(Debug)]
struct Sub {
    tx: mpsc::Sender<Batch>,
    org_id: String,
    /// Highest seq put in its queue.
    queued: u64,
    /// Highest seq its stream has written.
    delivered: Arc<AtomicU64>,
}

#[derive(Debug, Default)]
struct Inner {
    index: AudienceIndex<u64>,
    subs: HashMap<u64, Sub>,
    next_id: u64,
}

/// The subscriber registry.
#[derive(Debug)]
pub struct Hub {
    inner: Mutex<Inner>,
    buffer: usize,
}

/// A live registration; dropping it unregisters.
#[derive(Debug)]
pub struct Subscription {
    id: u64,
    hub: Arc<Hub>,
    /// Batches for this subscriber; `None` from `recv` means it lagged (or the server stops).
    pub rx: mpsc::Receiver<Batch>,
    /// Highest seq delivered to the client (kept up to date by the stream, read for lag metrics).
    pub delivered: Arc<AtomicU64>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.unsubscribe(self.id);
    }
}

impl Hub {
    /// A hub whose subscribers each buffer up to `buffer` batches.
    pub fn new(buffer: usize) -> Hub {
        Hub {
            inner: Mutex::new(Inner::default()),
            buffer: buffer.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the index half-updated in a way that leaks
        // data (entries are removed before re-insertion), so recover from poisoning.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a subscriber with `viewer`'s rights, starting at cursor `from`.
    pub fn subscribe(self: &Arc<Self>, viewer: &Viewer, from: u64) -> Subscription {
        let (tx, rx) = mpsc::channel(self.buffer);
        let delivered = Arc::new(AtomicU64::new(from));
        let mut inner = self.lock();
        inner.next_id += 1;
        let id = inner.next_id;
        inner.index.insert(id, viewer.clone());
        inner.subs.insert(
            id,
            Sub {
                tx,
                org_id: viewer.org_id.clone(),
                queued: from,
                delivered: delivered.clone(),
            },
        );
        telemetry::subscribers(inner.subs.len());
        drop(inner);
        Subscription {
            id,
            hub: self.clone(),
            rx,
            delivered,
        }
    }

    fn unsubscribe(&self, id: u64) {
        let mut inner = self.lock();
        inner.index.remove(id);
        inner.subs.remove(&id);
        telemetry::subscribers(inner.subs.len());
    }

    /// Number of live subscribers.
    pub fn subscriber_count(&self) -> usize {
        self.lock().subs.len()
    }

    /// Largest distance, in seqs, between what was queued for a live subscriber and what its
    /// stream has written (0 when every subscriber is up to date).
    pub fn max_lag(&self) -> u64 {
        let inner = self.lock();
        inner
            .subs
            .values()
            .map(|s| s.queued.saturating_sub(s.delivered.load(Ordering::Relaxed)))
            .max()
            .unwrap_or(0)
    }

    /// Publishes a committed batch (ascending seqs) to every subscriber allowed to see each event.
    pub fn publish(&self, batch: &[Arc<Committed>]) {
        if batch.is_empty() {
            return;
        }
        let mut per_sub: HashMap<u64, Batch> = HashMap::new();
        let mut audience = Vec::new();
        let mut inner = self.lock();
        for c in batch {
            audience.clear();
            inner.index.audience(&c.event, &mut audience);
            for &k in &audience {
                per_sub.entry(k).or_default().push(c.clone());
            }
        }
        let mut delivered = 0u64;
        let mut lagged = Vec::new();
        for (k, events) in per_sub {
            let Some(sub) = inner.subs.get(&k) else {
                continue;
            };
            let n = events.len() as u64;
            match sub.tx.try_send(events) {
                Ok(()) => delivered += n,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    telemetry::subscriber_lagged(&sub.org_id);
                    lagged.push(k);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => lagged.push(k),
            }
        }
        for k in lagged {
            // Dropping the sender closes the queue: the stream drains it, then catches up from the log.
            inner.index.remove(k);
            inner.subs.remove(&k);
        }
        telemetry::subscribers(inner.subs.len());
        drop(inner);
        telemetry::events_delivered(delivered);
    }
}
