//! The live overview behind the public dashboard: aggregates of the last 24 hours, with no
//! address in them.
//!
//! A background thread ([`Overview::spawn`]) tails two logs. The event log: it starts from the
//! newest [`REPLAY_MAX_EVENTS`] events, skips those received more than [`WINDOW_MS`] ago, then
//! follows new commits, polling every [`POLL`]. The indicator change log: it starts from the
//! newest [`REPLAY_MAX_CHANGES`] entries and follows the same way. After a batch (at most every
//! [`RENDER_MIN`], and at least every [`RENDER_EVERY`]) it renders one snapshot — the JSON of
//! `GET /api/v1/overview` and its SSE frame — that handlers serve without touching the
//! aggregates.
//!
//! What is kept, by the server's `received` time:
//!
//! - check-ins per second over the last [`SECONDS`] seconds (a ring of seconds);
//! - check-ins, DNS queries and distinct infected addresses in total, and per country, per
//!   threat and per ASN (with its AS name): check-ins in 24 hour buckets, distinct addresses as
//!   [`WindowDistinct`] — each address's last hour, exact up to a cap, then an estimate from one
//!   HyperLogLog per hour (merged over the window, ±~3 %) and flagged `approximate`;
//! - indicator additions and removals per hour, and the [`RECENT`] most recent changes of
//!   TLP:CLEAR indicators whose value is not an address (no `ipv4`, `ipv6`, `cidr`, nor a URL
//!   whose host is an address). A later change of the same indicator under another TLP drops
//!   its earlier entries.
//!
//! The "last 24 hours" are the current hour bucket and the 23 before it.
//!
//! Events with `observation: "dns-query"` come from resolvers: they count as DNS queries only
//! (not check-ins, not infected addresses, not per country, threat or ASN).
//!
//! Bounded memory: addresses are never stored, only their keyed 64-bit hashes (keys random per
//! process); each distinct set holds at most its cap of exact entries and each dimension
//! (countries, threats, ASNs) at most [`EXACT_PER_DIMENSION`] in all — a set that would grow past
//! either turns approximate (25 hourly registers of 1 KiB); at most [`MAX_COUNTRIES`],
//! [`MAX_THREATS`] and [`MAX_ASNS`] keys are tracked, the tenth with the fewest check-ins in the
//! window evicted when full.
//!
//! Privacy (PRODUCT.md rule 4): the answer holds counts per country, threat and ASN and public
//! indicators; no address of any kind.

use arc_swap::ArcSwap;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hash, RandomState};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use threatfeed_core::Tlp;
use threatfeed_core::indicator::IndicatorKind;
use threatfeed_core::intel::{ChangeOp, StoredChange};
use threatfeed_core::threat::KnowledgeBase;
use threatfeed_store::log::EventLog;
use tokio_util::sync::CancellationToken;

/// The aggregation window.
pub const WINDOW_MS: i64 = 24 * 3600 * 1000;
/// One hour bucket.
pub const HOUR_MS: i64 = 3600 * 1000;
/// Hour buckets in the window.
const HOURS: usize = 24;
/// Seconds of check-ins per second kept.
pub const SECONDS: usize = 300;
/// At most this many of the newest events are replayed at start.
pub const REPLAY_MAX_EVENTS: u64 = 2_000_000;
/// At most this many of the newest indicator changes are replayed at start.
pub const REPLAY_MAX_CHANGES: u64 = 2_000_000;
/// How often the tail polls when caught up.
pub const POLL: Duration = Duration::from_millis(100);
/// A snapshot is rendered at least this often.
pub const RENDER_EVERY: Duration = Duration::from_secs(1);
/// And, after new data, at most this often.
pub const RENDER_MIN: Duration = Duration::from_millis(250);
/// Records read per batch.
const BATCH: usize = 4096;
/// Countries shown.
pub const TOP_COUNTRIES: usize = 50;
/// Threats shown.
pub const TOP_THREATS: usize = 20;
/// ASNs shown.
pub const TOP_ASNS: usize = 20;
/// Recent CLEAR indicator changes shown.
pub const RECENT: usize = 20;
/// Exact distinct addresses in total, then approximate.
pub const EXACT_TOTAL: usize = 1_000_000;
/// Exact distinct addresses per country.
pub const EXACT_PER_COUNTRY: usize = 100_000;
/// Exact distinct addresses per threat.
pub const EXACT_PER_THREAT: usize = 100_000;
/// Exact distinct addresses per ASN.
pub const EXACT_PER_ASN: usize = 10_000;
/// Exact entries per dimension (all its keys together).
pub const EXACT_PER_DIMENSION: usize = 1_000_000;
/// Countries tracked.
pub const MAX_COUNTRIES: usize = 512;
/// Threats tracked.
pub const MAX_THREATS: usize = 512;
/// ASNs tracked.
pub const MAX_ASNS: usize = 2048;
/// Longest label kept (country, threat id, AS name), in bytes.
const MAX_TEXT: usize = 128;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

use threatfeed_core::canon::truncate;

fn iso(ms: i64) -> Value {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| Value::String(t.to_string()))
        .unwrap_or(Value::Null)
}

/// The hour bucket of a time in milliseconds.
pub fn hour_of(ms: i64) -> i64 {
    ms.div_euclid(HOUR_MS)
}

/// The oldest hour bucket inside the window ending in hour `now_hour`.
fn oldest_hour(now_hour: i64) -> i64 {
    now_hour - (HOURS as i64 - 1)
}

// ---------------------------------------------------------------------------------------------
// Rings of counters

/// Counts per time slot (`N` slots, slot = time mod N); a slot is reset when a newer time
/// claims it, and an older time than the slot holds is dropped (it left the window).
#[derive(Debug, Clone)]
pub struct Ring<const N: usize> {
    slots: Box<[(i64, u64); N]>,
}

impl<const N: usize> Default for Ring<N> {
    fn default() -> Self {
        Ring {
            slots: Box::new([(i64::MIN, 0); N]),
        }
    }
}

impl<const N: usize> Ring<N> {
    /// Adds `n` at time `t` (in slot units).
    pub fn add(&mut self, t: i64, n: u64) {
        let i = t.rem_euclid(N as i64) as usize;
        if let Some(slot) = self.slots.get_mut(i) {
            if slot.0 < t {
                *slot = (t, 0);
            }
            if slot.0 == t {
                slot.1 = slot.1.saturating_add(n);
            }
        }
    }

    /// The count at time `t` (0 if that slot holds another time).
    pub fn get(&self, t: i64) -> u64 {
        let i = t.rem_euclid(N as i64) as usize;
        match self.slots.get(i) {
            Some((at, n)) if *at == t => *n,
            _ => 0,
        }
    }

    /// The sum over times `from..=to`.
    pub fn sum(&self, from: i64, to: i64) -> u64 {
        self.slots
            .iter()
            .filter(|(t, _)| *t >= from && *t <= to)
            .map(|(_, n)| *n)
            .sum()
    }
}

/// Counts per hour over the window.
pub type HourRing = Ring<HOURS>;
/// Counts per second.
pub type SecondRing = Ring<SECONDS>;

// ---------------------------------------------------------------------------------------------
// Distinct counting over the window

const HLL_P: u32 = 10;
const HLL_M: usize = 1 << HLL_P;

fn hll_insert(regs: &mut [u8], h: u64) {
    let idx = (h >> (64 - HLL_P)) as usize;
    let rank = ((h << HLL_P).leading_zeros().min(64 - HLL_P) + 1) as u8;
    if let Some(r) = regs.get_mut(idx)
        && *r < rank
    {
        *r = rank;
    }
}

fn hll_estimate(regs: &[u8]) -> u64 {
    let m = HLL_M as f64;
    let alpha = 0.7213 / (1.0 + 1.079 / m);
    let mut sum = 0.0;
    let mut zeros = 0usize;
    for &r in regs {
        sum += 2f64.powi(-i32::from(r));
        if r == 0 {
            zeros += 1;
        }
    }
    let e = alpha * m * m / sum;
    let e = if e <= 2.5 * m && zeros > 0 {
        m * (m / zeros as f64).ln()
    } else {
        e
    };
    e.round().max(0.0) as u64
}

/// Distinct values (64-bit hashes) seen in the window: exact (each hash's last hour) up to a
/// cap, then one HyperLogLog per hour, merged when counted.
#[derive(Debug, Clone)]
pub struct WindowDistinct {
    exact: HashMap<u64, i64>,
    /// Hourly registers, oldest hour first; `Some` once approximate.
    approx: Option<VecDeque<(i64, Box<[u8]>)>>,
    cap: usize,
}

fn ring_insert(ring: &mut VecDeque<(i64, Box<[u8]>)>, h: u64, hour: i64) {
    let pos = ring.iter().rposition(|(t, _)| *t <= hour);
    match pos {
        Some(i) if ring.get(i).is_some_and(|(t, _)| *t == hour) => {
            if let Some((_, regs)) = ring.get_mut(i) {
                hll_insert(regs, h);
            }
        }
        _ => {
            let at = pos.map_or(0, |i| i + 1);
            let mut regs = vec![0u8; HLL_M].into_boxed_slice();
            hll_insert(&mut regs, h);
            ring.insert(at, (hour, regs));
            while ring.len() > HOURS + 1 {
                ring.pop_front();
            }
        }
    }
}

impl WindowDistinct {
    /// Exact up to `cap` values.
    pub fn new(cap: usize) -> WindowDistinct {
        WindowDistinct {
            exact: HashMap::new(),
            approx: None,
            cap: cap.max(1),
        }
    }

    /// Adds hash `h` seen in `hour`. `room`: whether the caller's budget allows one more exact
    /// entry. Returns the change in exact entries (+1, 0, or minus those dropped on turning
    /// approximate).
    pub fn insert(&mut self, h: u64, hour: i64, room: bool) -> isize {
        if let Some(ring) = &mut self.approx {
            ring_insert(ring, h, hour);
            return 0;
        }
        if let Some(last) = self.exact.get_mut(&h) {
            if *last < hour {
                *last = hour;
            }
            return 0;
        }
        if room && self.exact.len() < self.cap {
            self.exact.insert(h, hour);
            return 1;
        }
        let dropped = self.exact.len() as isize;
        let mut ring = VecDeque::new();
        for (&x, &t) in &self.exact {
            ring_insert(&mut ring, x, t);
        }
        ring_insert(&mut ring, h, hour);
        self.exact = HashMap::new();
        self.approx = Some(ring);
        -dropped
    }

    /// Forgets what was last seen before hour `oldest`; returns the change in exact entries.
    /// Once no approximate hour is left, counting is exact again.
    pub fn prune(&mut self, oldest: i64) -> isize {
        if let Some(ring) = &mut self.approx {
            while ring.front().is_some_and(|(t, _)| *t < oldest) {
                ring.pop_front();
            }
            if ring.is_empty() {
                self.approx = None;
            }
            return 0;
        }
        let before = self.exact.len();
        self.exact.retain(|_, t| *t >= oldest);
        if self.exact.capacity() > 2 * self.exact.len() + 64 {
            self.exact.shrink_to_fit();
        }
        -((before - self.exact.len()) as isize)
    }

    /// Distinct values last seen in hour `oldest` or later (estimated when approximate).
    pub fn count(&self, oldest: i64) -> u64 {
        match &self.approx {
            None => self.exact.values().filter(|t| **t >= oldest).count() as u64,
            Some(ring) => {
                let mut merged = vec![0u8; HLL_M];
                let mut any = false;
                for (_, regs) in ring.iter().filter(|(t, _)| *t >= oldest) {
                    any = true;
                    for (m, r) in merged.iter_mut().zip(regs.iter()) {
                        *m = (*m).max(*r);
                    }
                }
                if any { hll_estimate(&merged) } else { 0 }
            }
        }
    }

    /// Exact entries held.
    pub fn exact_len(&self) -> usize {
        self.exact.len()
    }

    /// True once over a cap (until the approximate hours leave the window).
    pub fn is_approximate(&self) -> bool {
        self.approx.is_some()
    }
}

// ---------------------------------------------------------------------------------------------
// One dimension: countries, threats or ASNs

#[derive(Debug, Clone)]
struct KeyStats {
    checkins: HourRing,
    ips: WindowDistinct,
    label: Option<String>,
}

/// Per-key check-ins and distinct addresses, bounded in keys and exact entries.
#[derive(Debug, Clone)]
pub struct Dim<K> {
    map: HashMap<K, KeyStats>,
    max_keys: usize,
    cap: usize,
    budget: usize,
    exact: usize,
}

/// One row of a dimension: key, label, check-ins, distinct addresses, approximate.
pub type Row<K> = (K, Option<String>, u64, u64, bool);

impl<K: Hash + Eq + Clone + Ord> Dim<K> {
    /// At most `max_keys` keys, `cap` exact addresses per key, `budget` in all.
    pub fn new(max_keys: usize, cap: usize, budget: usize) -> Dim<K> {
        Dim {
            map: HashMap::new(),
            max_keys: max_keys.max(1),
            cap,
            budget,
            exact: 0,
        }
    }

    fn apply(&mut self, delta: isize) {
        self.exact = self.exact.saturating_add_signed(delta);
    }

    /// Counts a check-in of address hash `h` under `key` in `hour`.
    pub fn observe(&mut self, key: &K, label: Option<&str>, h: u64, hour: i64) {
        if !self.map.contains_key(key) && self.map.len() >= self.max_keys {
            self.evict(hour);
        }
        let room = self.exact < self.budget;
        let cap = self.cap;
        let s = self.map.entry(key.clone()).or_insert_with(|| KeyStats {
            checkins: HourRing::default(),
            ips: WindowDistinct::new(cap),
            label: None,
        });
        s.checkins.add(hour, 1);
        if let Some(l) = label
            && s.label.as_deref() != Some(l)
        {
            s.label = Some(truncate(l, MAX_TEXT).to_string());
        }
        let d = s.ips.insert(h, hour, room);
        self.apply(d);
    }

    /// Removes the tenth of the keys with the fewest check-ins in the window ending at `hour`.
    fn evict(&mut self, hour: i64) {
        let from = oldest_hour(hour);
        let mut v: Vec<(u64, K)> = self
            .map
            .iter()
            .map(|(k, s)| (s.checkins.sum(from, hour), k.clone()))
            .collect();
        let n = (v.len() / 10).max(1).min(v.len());
        if n == 0 {
            return;
        }
        if n < v.len() {
            v.select_nth_unstable(n - 1);
        }
        for (_, k) in v.into_iter().take(n) {
            if let Some(s) = self.map.remove(&k) {
                self.exact = self.exact.saturating_sub(s.ips.exact_len());
            }
        }
    }

    /// Forgets what left the window ending at `hour`; drops keys with nothing left.
    pub fn prune(&mut self, hour: i64) {
        let from = oldest_hour(hour);
        self.map.retain(|_, s| {
            s.ips.prune(from);
            s.checkins.sum(from, i64::MAX) > 0
        });
        self.exact = self.map.values().map(|s| s.ips.exact_len()).sum();
    }

    /// Every key with check-ins in the window ending at `hour`.
    pub fn rows(&self, hour: i64) -> Vec<Row<K>> {
        let from = oldest_hour(hour);
        self.map
            .iter()
            .map(|(k, s)| {
                (
                    k.clone(),
                    s.label.clone(),
                    s.checkins.sum(from, hour),
                    s.ips.count(from),
                    s.ips.is_approximate(),
                )
            })
            .filter(|r| r.2 > 0)
            .collect()
    }

    /// Keys tracked.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Exact entries held by all keys.
    pub fn exact_entries(&self) -> usize {
        self.exact
    }
}

// ---------------------------------------------------------------------------------------------
// The aggregates

/// The fields of a stored event the overview reads (the rest is skipped by the decoder).
#[derive(Debug, Clone, Deserialize)]
pub struct EventFields {
    /// Source address (hashed, never kept).
    pub src_ip: IpAddr,
    /// Country.
    #[serde(default)]
    pub country: Option<String>,
    /// ASN.
    #[serde(default)]
    pub asn: Option<u32>,
    /// AS name.
    #[serde(default)]
    pub as_name: Option<String>,
    /// Threat.
    #[serde(default)]
    pub threat_id: Option<String>,
    /// `dns-query` for resolvers.
    #[serde(default)]
    pub observation: Option<String>,
    /// The sensor that saw it.
    #[serde(default)]
    pub sensor: Option<String>,
}

/// Sensors tracked at most (the least recently heard from is forgotten first).
pub const MAX_SENSORS: usize = 1024;

/// What one sensor sent in the window.
#[derive(Debug, Clone, Default)]
struct SensorStats {
    last_ms: i64,
    checkins: HourRing,
    dns: HourRing,
}

/// A recent change of a TLP:CLEAR indicator.
#[derive(Debug, Clone, PartialEq)]
struct Recent {
    id: String,
    kind: &'static str,
    value: String,
    threat_id: Option<String>,
    op: &'static str,
    time: jiff::Timestamp,
}

/// Whether an indicator's value is, or is hosted at, an address (never shown).
fn names_an_address(kind: IndicatorKind, value: &str) -> bool {
    match kind {
        IndicatorKind::Ipv4 | IndicatorKind::Ipv6 | IndicatorKind::Cidr => true,
        IndicatorKind::Url => {
            let rest = value.split_once("://").map_or(value, |(_, r)| r);
            let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            let host = if let Some(v6) = host.strip_prefix('[') {
                v6.split(']').next().unwrap_or("")
            } else {
                host.rsplit_once(':').map_or(host, |(h, _)| h)
            };
            host.parse::<IpAddr>().is_ok() || host.parse::<std::net::Ipv4Addr>().is_ok()
        }
        _ => false,
    }
}

/// Everything counted, under the overview's mutex.
#[derive(Debug)]
pub struct Aggregates {
    hasher: RandomState,
    seconds: SecondRing,
    checkins: HourRing,
    dns: HourRing,
    ips: WindowDistinct,
    countries: Dim<String>,
    threats: Dim<String>,
    asns: Dim<u32>,
    added: HourRing,
    removed: HourRing,
    recent: VecDeque<Recent>,
    sensors: std::collections::HashMap<String, SensorStats>,
    pruned_hour: i64,
    /// The last event seq folded in.
    pub last_seq: u64,
    /// The last indicator change seq folded in.
    pub change_seq: u64,
}

impl Default for Aggregates {
    fn default() -> Self {
        Aggregates::new()
    }
}

impl Aggregates {
    /// Empty.
    pub fn new() -> Aggregates {
        Aggregates {
            hasher: RandomState::new(),
            seconds: SecondRing::default(),
            checkins: HourRing::default(),
            dns: HourRing::default(),
            ips: WindowDistinct::new(EXACT_TOTAL),
            countries: Dim::new(MAX_COUNTRIES, EXACT_PER_COUNTRY, EXACT_PER_DIMENSION),
            threats: Dim::new(MAX_THREATS, EXACT_PER_THREAT, EXACT_PER_DIMENSION),
            asns: Dim::new(MAX_ASNS, EXACT_PER_ASN, EXACT_PER_DIMENSION),
            added: HourRing::default(),
            removed: HourRing::default(),
            recent: VecDeque::with_capacity(RECENT + 1),
            sensors: std::collections::HashMap::new(),
            pruned_hour: i64::MIN,
            last_seq: 0,
            change_seq: 0,
        }
    }

    fn prune_to(&mut self, hour: i64) {
        if hour <= self.pruned_hour {
            return;
        }
        self.pruned_hour = hour;
        let from = oldest_hour(hour);
        self.ips.prune(from);
        self.countries.prune(hour);
        self.threats.prune(hour);
        self.asns.prune(hour);
    }

    /// Per sensor (by the events' `sensor` name): when it was last heard from and what it sent
    /// in the window; most recently heard from first.
    pub fn sensors(&self, now_ms: i64) -> Vec<Value> {
        let hour = hour_of(now_ms);
        let from = oldest_hour(hour);
        let mut rows: Vec<(&String, &SensorStats)> = self.sensors.iter().collect();
        rows.sort_by(|a, b| b.1.last_ms.cmp(&a.1.last_ms).then(a.0.cmp(b.0)));
        rows.into_iter()
            .map(|(name, s)| {
                json!({
                    "sensor": name,
                    "last_event": iso(s.last_ms),
                    "idle_secs": (now_ms - s.last_ms).max(0) / 1000,
                    "checkins_24h": s.checkins.sum(from, hour),
                    "dns_queries_24h": s.dns.sum(from, hour),
                })
            })
            .collect()
    }

    /// Counts one event received at `received_ms`.
    pub fn observe_event(&mut self, received_ms: i64, e: &EventFields) {
        let hour = hour_of(received_ms);
        self.prune_to(hour);
        if let Some(name) = e.sensor.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            let name = truncate(name, MAX_TEXT);
            if !self.sensors.contains_key(name) && self.sensors.len() >= MAX_SENSORS {
                let oldest = self
                    .sensors
                    .iter()
                    .min_by_key(|(_, s)| s.last_ms)
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    self.sensors.remove(&k);
                }
            }
            let st = self.sensors.entry(name.to_string()).or_default();
            st.last_ms = st.last_ms.max(received_ms);
            if e.observation.as_deref() == Some("dns-query") {
                st.dns.add(hour, 1);
            } else {
                st.checkins.add(hour, 1);
            }
        }
        if e.observation.as_deref() == Some("dns-query") {
            self.dns.add(hour, 1);
            return;
        }
        self.seconds.add(received_ms.div_euclid(1000), 1);
        self.checkins.add(hour, 1);
        let h = self.hasher.hash_one(e.src_ip);
        self.ips.insert(h, hour, true);
        if let Some(cc) = e
            .country
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
        {
            let cc = truncate(cc, MAX_TEXT).to_ascii_uppercase();
            self.countries.observe(&cc, None, h, hour);
        }
        if let Some(t) = e.threat_id.as_deref().filter(|t| !t.is_empty()) {
            self.threats
                .observe(&truncate(t, MAX_TEXT).to_string(), None, h, hour);
        }
        if let Some(asn) = e.asn {
            self.asns.observe(&asn, e.as_name.as_deref(), h, hour);
        }
    }

    /// Counts one indicator change logged at `received_ms`.
    pub fn observe_change(&mut self, received_ms: i64, c: &StoredChange) {
        let hour = hour_of(received_ms);
        match c.op {
            ChangeOp::Add => self.added.add(hour, 1),
            ChangeOp::Remove => self.removed.add(hour, 1),
            ChangeOp::Update => {}
        }
        let i = &c.indicator;
        if i.tlp != Tlp::Clear {
            // Whatever was public about it before is not shown any more.
            self.recent.retain(|r| r.id != i.id);
            return;
        }
        if names_an_address(i.kind, &i.value) {
            return;
        }
        self.recent.push_back(Recent {
            id: i.id.clone(),
            kind: i.kind.as_str(),
            value: truncate(&i.value, 2048).to_string(),
            threat_id: i.threat_id.clone(),
            op: c.op.as_str(),
            time: c.time,
        });
        while self.recent.len() > RECENT {
            self.recent.pop_front();
        }
    }

    /// The overview JSON at `now_ms`; `kb` names the threats, `active` is the number of active
    /// indicators.
    pub fn render(&self, now_ms: i64, kb: &KnowledgeBase, active: usize) -> Value {
        let hour = hour_of(now_ms);
        let from = oldest_hour(hour);
        let now_s = now_ms.div_euclid(1000);
        let per_sec: Vec<Value> = (now_s - SECONDS as i64 + 1..=now_s)
            .map(|t| json!({"t": t, "n": self.seconds.get(t)}))
            .collect();

        let mut countries = self.countries.rows(hour);
        countries.sort_by(|a, b| b.2.cmp(&a.2).then(b.3.cmp(&a.3)).then(a.0.cmp(&b.0)));
        countries.truncate(TOP_COUNTRIES);
        let countries: Vec<Value> = countries
            .into_iter()
            .map(|(cc, _, n, ips, approx)| {
                json!({"country": cc, "checkins": n, "infected_ips": ips, "approximate": approx})
            })
            .collect();

        let mut threats = self.threats.rows(hour);
        threats.sort_by(|a, b| b.2.cmp(&a.2).then(b.3.cmp(&a.3)).then(a.0.cmp(&b.0)));
        threats.truncate(TOP_THREATS);
        let threats: Vec<Value> = threats
            .into_iter()
            .map(|(id, _, n, ips, approx)| {
                let name = kb.get(&id).map_or_else(|| id.clone(), |t| t.name.clone());
                json!({"threat_id": id, "name": name, "checkins": n, "infected_ips": ips,
                       "approximate": approx})
            })
            .collect();

        let mut asns = self.asns.rows(hour);
        asns.sort_by(|a, b| b.3.cmp(&a.3).then(b.2.cmp(&a.2)).then(a.0.cmp(&b.0)));
        asns.truncate(TOP_ASNS);
        let asns: Vec<Value> = asns
            .into_iter()
            .map(|(asn, name, _, ips, approx)| {
                json!({"asn": asn, "as_name": name, "infected_ips": ips, "approximate": approx})
            })
            .collect();

        let recent: Vec<Value> = self
            .recent
            .iter()
            .rev()
            .map(|r| {
                json!({"type": r.kind, "value": r.value, "threat_id": r.threat_id, "op": r.op,
                       "time": r.time.to_string()})
            })
            .collect();

        json!({
            "as_of": iso(now_ms),
            "last_seq": self.last_seq,
            "window_secs": WINDOW_MS / 1000,
            "checkins_per_sec": per_sec,
            "totals": {
                "checkins_24h": self.checkins.sum(from, hour),
                "infected_ips_24h": self.ips.count(from),
                "infected_ips_approximate": self.ips.is_approximate(),
                "dns_queries_24h": self.dns.sum(from, hour),
            },
            "countries": countries,
            "threats": threats,
            "asns": asns,
            "indicators": {
                "active": active,
                "added_24h": self.added.sum(from, hour),
                "removed_24h": self.removed.sum(from, hour),
                "recent": recent,
            },
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The shared handle and its thread

/// One rendered snapshot.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The JSON answer.
    pub json: Bytes,
    /// The same as one SSE message (`event: overview`).
    pub sse: Bytes,
}

impl Snapshot {
    fn of(v: &Value) -> Snapshot {
        let json = v.to_string();
        let mut sse = String::with_capacity(json.len() + 32);
        sse.push_str("event: overview\ndata: ");
        sse.push_str(&json);
        sse.push_str("\n\n");
        Snapshot {
            json: Bytes::from(json),
            sse: Bytes::from(sse),
        }
    }
}

/// The overview shared by its thread and the routes.
#[derive(Debug)]
pub struct Overview {
    agg: Mutex<Aggregates>,
    snapshot: ArcSwap<Snapshot>,
}

impl Default for Overview {
    fn default() -> Self {
        Overview::new()
    }
}

/// What the tail thread reads.
pub struct Sources {
    /// The event log.
    pub log: Arc<dyn EventLog>,
    /// The indicator change log.
    pub changes: Arc<dyn EventLog>,
    /// The indicator store (active count).
    pub intel: Arc<crate::indicators::IndicatorStore>,
    /// The knowledge base (threat names).
    pub kb: Arc<ArcSwap<KnowledgeBase>>,
}

impl Overview {
    /// Empty; the first snapshot has no data.
    pub fn new() -> Overview {
        let agg = Aggregates::new();
        let first = agg.render(
            jiff::Timestamp::now().as_millisecond(),
            &KnowledgeBase::new(),
            0,
        );
        Overview {
            agg: Mutex::new(agg),
            snapshot: ArcSwap::from_pointee(Snapshot::of(&first)),
        }
    }

    /// The latest snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Runs `f` over the aggregates (briefly: the tail waits meanwhile).
    pub fn with<R>(&self, f: impl FnOnce(&mut Aggregates) -> R) -> R {
        f(&mut lock(&self.agg))
    }

    /// Renders a snapshot now.
    pub fn render(&self, kb: &KnowledgeBase, active: usize) {
        let now_ms = jiff::Timestamp::now().as_millisecond();
        let v = {
            let mut a = lock(&self.agg);
            // Forget what left the window even while no event arrives.
            a.prune_to(hour_of(now_ms));
            a.render(now_ms, kb, active)
        };
        self.snapshot.store(Arc::new(Snapshot::of(&v)));
    }

    /// Starts the tail thread: replay, then follow until `stop`.
    pub fn spawn(
        self: &Arc<Self>,
        sources: Sources,
        stop: CancellationToken,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        let me = self.clone();
        std::thread::Builder::new()
            .name("overview".into())
            .spawn(move || me.run(&sources, &stop))
    }

    /// Reads one batch of events after `cursor`; Ok(records read).
    fn events_batch(&self, log: &dyn EventLog, cursor: &mut u64) -> std::io::Result<usize> {
        let recs = log
            .read_after(*cursor, BATCH)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        if recs.is_empty() {
            return Ok(0);
        }
        let cutoff = jiff::Timestamp::now().as_millisecond() - WINDOW_MS;
        let mut fields = Vec::with_capacity(recs.len());
        for r in &recs {
            *cursor = (*cursor).max(r.seq);
            if r.received_ms < cutoff {
                continue;
            }
            match serde_json::from_slice::<EventFields>(&r.data) {
                Ok(f) => fields.push((r.received_ms, f)),
                Err(err) => {
                    tracing::warn!(seq = r.seq, %err, "overview: undecodable event skipped")
                }
            }
        }
        let mut a = lock(&self.agg);
        for (ms, f) in &fields {
            a.observe_event(*ms, f);
        }
        a.last_seq = a.last_seq.max(*cursor);
        Ok(recs.len())
    }

    /// Reads one batch of indicator changes after `cursor`; Ok(records read).
    fn changes_batch(&self, log: &dyn EventLog, cursor: &mut u64) -> std::io::Result<usize> {
        let recs = log
            .read_after(*cursor, BATCH)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        if recs.is_empty() {
            return Ok(0);
        }
        let mut changes = Vec::with_capacity(recs.len());
        for r in &recs {
            *cursor = (*cursor).max(r.seq);
            if let Ok(c) = serde_json::from_slice::<StoredChange>(&r.data) {
                changes.push((r.received_ms, c));
            }
        }
        let mut a = lock(&self.agg);
        for (ms, c) in &changes {
            a.observe_change(*ms, c);
        }
        a.change_seq = a.change_seq.max(*cursor);
        Ok(recs.len())
    }

    fn run(&self, src: &Sources, stop: &CancellationToken) {
        let mut events = src.log.last_seq().saturating_sub(REPLAY_MAX_EVENTS);
        let mut changes = src.changes.last_seq().saturating_sub(REPLAY_MAX_CHANGES);
        let mut rendered = Instant::now();
        let mut dirty = true;
        while !stop.is_cancelled() {
            let mut read = 0;
            let mut failed = false;
            match self.events_batch(src.log.as_ref(), &mut events) {
                Ok(n) => read += n,
                Err(err) => {
                    tracing::warn!(%err, "overview: reading the event log failed; retrying");
                    failed = true;
                }
            }
            match self.changes_batch(src.changes.as_ref(), &mut changes) {
                Ok(n) => read += n,
                Err(err) => {
                    tracing::warn!(%err, "overview: reading the indicator change log failed; retrying");
                    failed = true;
                }
            }
            dirty |= read > 0;
            let since = rendered.elapsed();
            if since >= RENDER_EVERY || (dirty && since >= RENDER_MIN) {
                let active = src.intel.counts().1;
                self.render(&src.kb.load(), active);
                rendered = Instant::now();
                dirty = false;
            }
            if failed {
                std::thread::sleep(Duration::from_secs(1));
            } else if read == 0 {
                std::thread::sleep(POLL);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_780_000_000_000;

    fn fields(ip: &str, cc: &str, asn: u32, threat: &str) -> EventFields {
        EventFields {
            src_ip: ip.parse().expect("ip"),
            country: Some(cc.into()),
            asn: Some(asn),
            as_name: Some(format!("AS-{asn}")),
            threat_id: Some(threat.into()),
            observation: None,
            sensor: Some(format!("sensor-{}", asn % 2)),
        }
    }

    #[test]
    fn sensors_report_their_last_event_and_window_counts() {
        let mut a = Aggregates::new();
        a.observe_event(T0, &fields("192.0.2.1", "NL", 1, "emotet"));
        a.observe_event(T0 + 5_000, &fields("192.0.2.2", "NL", 3, "emotet"));
        let mut dns = fields("192.0.2.3", "NL", 2, "emotet");
        dns.observation = Some("dns-query".into());
        a.observe_event(T0 + 1_000, &dns);
        let rows = a.sensors(T0 + 10_000);
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0]["sensor"], "sensor-1",
            "most recently heard from first"
        );
        assert_eq!(rows[0]["checkins_24h"], 2);
        assert_eq!(rows[0]["idle_secs"], 5);
        assert_eq!(rows[1]["sensor"], "sensor-0");
        assert_eq!(rows[1]["dns_queries_24h"], 1);
        assert_eq!(rows[1]["checkins_24h"], 0);
        // A day later the counts have left the window; the last event stays known.
        let later = a.sensors(T0 + WINDOW_MS + HOUR_MS);
        assert_eq!(later[0]["checkins_24h"], 0);
        assert!(later[0]["last_event"].is_string());
    }

    #[test]
    fn rings_roll_and_forget() {
        let mut r = HourRing::default();
        r.add(100, 2);
        r.add(101, 3);
        assert_eq!(r.sum(100, 101), 5);
        // 24 hours later slot 100 is reused and reset.
        r.add(124, 1);
        assert_eq!(r.get(100), 0);
        assert_eq!(r.get(124), 1);
        assert_eq!(r.sum(101, 124), 4);
        // Something older than what its slot holds is dropped.
        r.add(100, 7);
        assert_eq!(r.get(124), 1);
        assert_eq!(r.get(100), 0);
        let mut s = SecondRing::default();
        for t in 0..1000 {
            s.add(t, 1);
        }
        assert_eq!(s.sum(0, 999), SECONDS as u64);
        assert_eq!(s.get(999), 1);
        assert_eq!(s.get(699), 0);
    }

    #[test]
    fn window_distinct_is_exact_then_approximate_and_forgets() {
        let hasher = RandomState::new();
        let mut d = WindowDistinct::new(1000);
        let mut exact = 0isize;
        for i in 0..500u32 {
            exact += d.insert(hasher.hash_one(i), 10, true);
            exact += d.insert(hasher.hash_one(i), 11, true);
        }
        assert_eq!(exact, 500);
        assert_eq!(d.count(oldest_hour(11)), 500);
        assert!(!d.is_approximate());
        // Past the cap: approximate, within a few percent.
        for i in 500..20_000u32 {
            exact += d.insert(hasher.hash_one(i), 12, true);
        }
        assert!(d.is_approximate());
        assert_eq!(exact, 0);
        assert_eq!(d.exact_len(), 0);
        let n = d.count(oldest_hour(12)) as f64;
        assert!((n - 20_000.0).abs() / 20_000.0 < 0.1, "{n}");
        // A full day later, everything has left the window: exact (and empty) again.
        d.prune(oldest_hour(12 + 24));
        assert!(!d.is_approximate());
        assert_eq!(d.count(oldest_hour(36)), 0);
        // Exact entries leave the window by their last hour.
        let mut e = WindowDistinct::new(10);
        e.insert(1, 0, true);
        e.insert(2, 0, true);
        e.insert(2, 20, true);
        assert_eq!(e.count(oldest_hour(23)), 2);
        assert_eq!(e.count(oldest_hour(24)), 1);
        assert_eq!(e.prune(oldest_hour(24)), -1);
        // No room in the budget: approximate at once.
        let mut f = WindowDistinct::new(10);
        assert_eq!(f.insert(1, 0, false), 0);
        assert!(f.is_approximate());
        assert_eq!(f.count(0), 1);
    }

    #[test]
    fn dimensions_stay_within_their_bounds() {
        let hasher = RandomState::new();
        let mut d: Dim<u32> = Dim::new(20, 50, 300);
        for k in 0..100u32 {
            for i in 0..(k % 7 + 1) * 10 {
                d.observe(&k, Some("name"), hasher.hash_one((k, i)), 5);
            }
            assert!(d.len() <= 20);
        }
        // Budget and per-key caps hold.
        assert!(d.exact_entries() <= 300, "{}", d.exact_entries());
        let rows = d.rows(5);
        assert!(rows.iter().any(|r| r.4), "some key turned approximate");
        for r in &rows {
            assert_eq!(r.1.as_deref(), Some("name"));
            if !r.4 {
                assert_eq!(r.2, r.3, "one check-in per address");
            }
        }
        // A day later nothing is left.
        d.prune(5 + 24);
        assert!(d.is_empty());
        assert_eq!(d.exact_entries(), 0);
    }

    #[test]
    fn aggregates_count_per_key_without_addresses_and_dns_apart() {
        let mut a = Aggregates::new();
        let now = T0;
        for i in 0..10 {
            a.observe_event(
                now - 1000,
                &fields(&format!("198.51.100.{i}"), "nl", 64500, "emotet"),
            );
        }
        for _ in 0..3 {
            a.observe_event(now, &fields("2001:db8::7", "DE", 64501, "qakbot"));
        }
        let mut dns = fields("203.0.113.53", "FR", 64502, "emotet");
        dns.observation = Some("dns-query".into());
        a.observe_event(now, &dns);
        // Older than the window: not counted in the window.
        a.observe_event(
            now - WINDOW_MS - HOUR_MS,
            &fields("192.0.2.1", "US", 1, "x"),
        );
        let v = a.render(now, &KnowledgeBase::new(), 7);
        assert_eq!(v["totals"]["checkins_24h"], 13);
        assert_eq!(v["totals"]["infected_ips_24h"], 11);
        assert_eq!(v["totals"]["dns_queries_24h"], 1);
        assert_eq!(v["countries"][0]["country"], "NL");
        assert_eq!(v["countries"][0]["checkins"], 10);
        assert_eq!(v["countries"][1]["country"], "DE");
        assert_eq!(v["countries"][1]["infected_ips"], 1);
        assert_eq!(v["countries"].as_array().map(Vec::len), Some(2));
        assert_eq!(v["threats"][0]["threat_id"], "emotet");
        assert_eq!(v["threats"][0]["infected_ips"], 10);
        assert_eq!(v["asns"][0]["asn"], 64500);
        assert_eq!(v["asns"][0]["as_name"], "AS-64500");
        assert_eq!(v["indicators"]["active"], 7);
        let per_sec = v["checkins_per_sec"].as_array().expect("array");
        assert_eq!(per_sec.len(), SECONDS);
        assert_eq!(per_sec[SECONDS - 1]["n"], 3);
        assert_eq!(per_sec[SECONDS - 2]["n"], 10);
        assert_eq!(per_sec[SECONDS - 1]["t"], now / 1000);
        let text = v.to_string();
        for ip in ["198.51.100", "2001:db8", "203.0.113", "192.0.2"] {
            assert!(!text.contains(ip), "{ip} in {text}");
        }
    }

    fn change(op: &str, kind: &str, value: &str, tlp: &str, id: &str) -> StoredChange {
        serde_json::from_value(json!({
            "op": op, "time": "2026-06-01T12:00:00Z",
            "indicator": {"id": id, "type": kind, "value": value, "threat_id": "emotet",
                "family": null, "port": null, "confidence": 80, "tlp": tlp,
                "first_seen": "2026-06-01T12:00:00Z", "last_seen": "2026-06-01T12:00:00Z",
                "valid_until": null, "status": "active"}
        }))
        .expect("change")
    }

    #[test]
    fn only_clear_indicators_without_addresses_are_recent() {
        let mut a = Aggregates::new();
        a.observe_change(T0, &change("add", "domain", "clear.example", "clear", "a"));
        a.observe_change(T0, &change("add", "domain", "amber.example", "amber", "b"));
        a.observe_change(T0, &change("add", "ipv4", "192.0.2.66", "clear", "c"));
        a.observe_change(
            T0,
            &change("add", "url", "http://192.0.2.67:8080/x", "clear", "d"),
        );
        a.observe_change(
            T0,
            &change("add", "url", "http://[2001:db8::5]/x", "clear", "d6"),
        );
        a.observe_change(
            T0,
            &change("add", "url", "http://ok.example/gate", "clear", "e"),
        );
        a.observe_change(
            T0,
            &change("remove", "domain", "gone.example", "clear", "f"),
        );
        // Then "f" turns AMBER: its earlier entries go.
        a.observe_change(
            T0,
            &change("update", "domain", "gone.example", "amber", "f"),
        );
        let v = a.render(T0, &KnowledgeBase::new(), 0);
        let recent = v["indicators"]["recent"].as_array().expect("recent");
        let values: Vec<&str> = recent.iter().filter_map(|r| r["value"].as_str()).collect();
        assert_eq!(values, ["http://ok.example/gate", "clear.example"]);
        assert_eq!(recent[1]["type"], "domain");
        assert_eq!(recent[1]["op"], "add");
        assert_eq!(recent[1]["threat_id"], "emotet");
        assert_eq!(v["indicators"]["added_24h"], 6);
        assert_eq!(v["indicators"]["removed_24h"], 1);
        let text = v.to_string();
        assert!(
            !text.contains("192.0.2")
                && !text.contains("2001:db8")
                && !text.contains("amber.example")
        );
        for i in 0..50 {
            a.observe_change(
                T0,
                &change(
                    "add",
                    "domain",
                    &format!("d{i}.example"),
                    "clear",
                    &format!("x{i}"),
                ),
            );
        }
        let v = a.render(T0, &KnowledgeBase::new(), 0);
        assert_eq!(
            v["indicators"]["recent"].as_array().map(Vec::len),
            Some(RECENT)
        );
        assert_eq!(v["indicators"]["recent"][0]["value"], "d49.example");
    }
}
