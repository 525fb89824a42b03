//! Idempotent ingest: the ids of recently committed events, so that an event a sensor sends
//! again — because it never got the answer for a batch the server had committed — is
//! recognised and not logged twice.
//!
//! Only events that carry an `id` are considered. The window is the last [`WINDOW`] ids
//! committed (a 64-bit hash of each, ~24 bytes per id): far more than a sensor resends after an
//! outage (one batch). It is rebuilt from the tail of the log at start, so a server restart —
//! including after kill -9 — still recognises the ids of the last events it committed.

use std::collections::{HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use threatfeed_store::log::EventLog;

/// Ids remembered.
pub const WINDOW: usize = 1_000_000;

/// The ids of recently committed events (as hashes).
#[derive(Debug, Default)]
pub struct SeenIds {
    set: HashSet<u64>,
    order: VecDeque<u64>,
    cap: usize,
}

fn hash(id: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut h);
    h.finish()
}

/// The `id` of a stored event, found without parsing the record: `"id":"…"` at the top level,
/// which the serialiser writes before `details` (the only field that may hold nested keys).
pub fn stored_id(data: &[u8]) -> Option<&str> {
    const KEY: &[u8] = br#","id":""#;
    let at = data.windows(KEY.len()).position(|w| w == KEY)?;
    const DETAILS: &[u8] = br#","details":"#;
    if data[..at].windows(DETAILS.len()).any(|w| w == DETAILS) {
        return None;
    }
    let rest = &data[at + KEY.len()..];
    let end = rest.iter().position(|&b| b == b'"')?;
    std::str::from_utf8(&rest[..end]).ok()
}

impl SeenIds {
    /// An empty window of `cap` ids.
    pub fn new(cap: usize) -> SeenIds {
        SeenIds {
            set: HashSet::with_capacity(cap.min(1 << 20)),
            order: VecDeque::with_capacity(cap.min(1 << 20)),
            cap: cap.max(1),
        }
    }

    /// The window over the last `cap` records of `log`.
    pub fn rebuild(log: &dyn EventLog, cap: usize) -> SeenIds {
        let mut seen = SeenIds::new(cap);
        let last = log.last_seq();
        let mut cursor = last.saturating_sub(cap as u64);
        while cursor < last {
            let Ok(recs) = log.read_after(cursor, 8192) else {
                break;
            };
            let Some(end) = recs.last().map(|r| r.seq) else {
                break;
            };
            for r in &recs {
                if let Some(id) = stored_id(&r.data) {
                    seen.insert(id);
                }
            }
            cursor = end;
        }
        seen
    }

    /// Whether `id` was committed recently.
    pub fn contains(&self, id: &str) -> bool {
        self.set.contains(&hash(id))
    }

    /// Remembers `id` (forgetting the oldest beyond the window).
    pub fn insert(&mut self, id: &str) {
        let h = hash(id);
        if self.set.insert(h) {
            self.order.push_back(h);
            if self.order.len() > self.cap
                && let Some(old) = self.order.pop_front()
            {
                self.set.remove(&old);
            }
        }
    }

    /// Forgets `id` (its commit failed).
    pub fn remove(&mut self, id: &str) {
        let h = hash(id);
        if self.set.remove(&h)
            && let Some(pos) = self.order.iter().rposition(|x| *x == h)
        {
            self.order.remove(pos);
        }
    }

    /// Ids remembered.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use threatfeed_core::Event;

    #[test]
    fn the_id_of_a_stored_event_is_found_and_details_are_not_mistaken_for_it() {
        let mut e = Event::new(
            "192.0.2.1".parse().expect("ip"),
            jiff::Timestamp::now(),
            jiff::Timestamp::now(),
        );
        e.threat_id = Some("emotet".into());
        e.details = Some(serde_json::json!({"id": "nested"}));
        assert_eq!(stored_id(&e.encode_stored()), None);
        e.id = Some("abc:7".into());
        assert_eq!(stored_id(&e.encode_stored()), Some("abc:7"));
    }

    #[test]
    fn the_window_forgets_the_oldest() {
        let mut s = SeenIds::new(2);
        s.insert("a");
        s.insert("b");
        s.insert("a");
        assert_eq!(s.len(), 2);
        s.insert("c");
        assert!(!s.contains("a") && s.contains("b") && s.contains("c"));
    }
}
