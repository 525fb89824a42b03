//! Behaviour learning: what each threat's bots are observed doing, learned continuously from the
//! event log, and the clusters of check-ins no threat claims yet.
//!
//! A background thread ([`Behaviour::spawn`]) replays the log from the start (bounded to the
//! last [`REPLAY_MAX_EVENTS`] events and [`REPLAY_MAX_AGE_MS`] of received time), then follows
//! new commits by polling `read_after` every [`POLL`]. Each event updates, under one mutex:
//!
//! - per threat (`threat_id`): check-ins, first / last seen (the sensor's `time`), protocols,
//!   destination ports, C2 host names, generalised URI patterns ([`generalise_uri`]), user
//!   agents, the ASNs and countries of its infected addresses, the distinct infected addresses in
//!   total and per hour (last [`HOURS`] hour buckets), and the beacon interval
//!   ([`beacon_interval`], per bot = source address + threat, then the median over bots);
//! - check-ins without a threat: clusters keyed by a pattern ([`ClusterKey`]) an admin may
//!   promote to a threat plus a classification rule (`routes::clusters`).
//!
//! Events with `observation: "dns-query"` come from resolvers, not bots: they are counted as
//! `dns_queries` of their threat and nowhere else (no infected-address counts, no beacons, no
//! clusters).
//!
//! Memory is bounded: every ranked list is a [`TopK`] of at most [`TOP_K_CAP`] values
//! (Space-Saving: when full, the smallest is evicted and the newcomer inherits its count, so a
//! count may be over-estimated by at most that smallest count); distinct-address sets are exact
//! up to a cap and then switch to a HyperLogLog estimate (±~2 %, flagged `approximate`); bot and
//! cluster tables are capped and evict their least recently seen tenth when full.
//!
//! ASN and country rankings count **distinct infected addresses** (an address is counted once
//! per threat, when first seen; once the threat's address set has turned approximate, an address
//! is counted when the estimate says it is new, which may under-count).
//!
//! Everything served from here is aggregate: no victim address ever leaves this module.

use crate::app::AppState;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use threatfeed_core::Event;
use threatfeed_core::rules::{Rule, RuleSet, path_and_query};
use threatfeed_store::log::EventLog;
use tokio_util::sync::CancellationToken;

/// At most this many of the newest events are replayed at start.
pub const REPLAY_MAX_EVENTS: u64 = 5_000_000;
/// Events received longer ago than this are skipped on replay.
pub const REPLAY_MAX_AGE_MS: i64 = 7 * 24 * 3600 * 1000;
/// How often the tail polls the log when caught up.
pub const POLL: Duration = Duration::from_millis(200);
/// Records read per batch.
const BATCH: usize = 4096;
/// Values tracked per ranked list.
pub const TOP_K_CAP: usize = 256;
/// Values shown per ranked list.
pub const TOP_SHOWN: usize = 20;
/// Threats tracked.
const MAX_THREATS: usize = 4096;
/// Bots (source address + threat) tracked for beacon intervals.
const MAX_BOTS: usize = 200_000;
/// Arrival times kept per bot.
const BOT_TIMES: usize = 16;
/// Gaps a bot needs to count in a threat's beacon interval.
pub const MIN_GAPS: usize = 3;
/// Hour buckets kept per threat.
pub const HOURS: usize = 48;
/// Exact distinct-address sets per hour bucket hold at most this many, then turn approximate.
const EXACT_IPS_PER_HOUR: usize = 100_000;
/// The exact distinct-address set per threat holds at most this many, then turns approximate.
const EXACT_IPS_TOTAL: usize = 1_000_000;
/// Clusters tracked.
const MAX_CLUSTERS: usize = 10_000;
/// Exact distinct addresses per cluster, then approximate.
const EXACT_IPS_CLUSTER: usize = 10_000;
/// Samples kept per cluster and kind.
const SAMPLES: usize = 5;
/// Longest text kept (host, pattern, user agent), in bytes.
const MAX_TEXT: usize = 256;
/// Member-store metadata key of the promotions (JSON array of [`Promotion`]).
pub const PROMOTED_META: &str = "behaviour/promoted";

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

use threatfeed_core::canon::truncate;

fn iso(ms: i64) -> Value {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| Value::String(t.to_string()))
        .unwrap_or(Value::Null)
}

// ---------------------------------------------------------------------------------------------
// Top-k

/// Counts of at most `cap` values (Space-Saving): when full, a new value evicts the smallest
/// count and starts from it, so counts are upper bounds once more than `cap` values were seen.
#[derive(Debug, Clone)]
pub struct TopK<K> {
    counts: HashMap<K, u64>,
    cap: usize,
}

impl<K: Hash + Eq + Clone + Ord> TopK<K> {
    /// Empty, holding at most `cap` (≥ 1) values.
    pub fn new(cap: usize) -> TopK<K> {
        TopK {
            counts: HashMap::new(),
            cap: cap.max(1),
        }
    }

    /// Counts one occurrence of `key`.
    pub fn add<Q>(&mut self, key: &Q)
    where
        K: Borrow<Q>,
        Q: ToOwned<Owned = K> + Hash + Eq + ?Sized,
    {
        if let Some(c) = self.counts.get_mut(key) {
            *c = c.saturating_add(1);
            return;
        }
        let mut start = 0;
        if self.counts.len() >= self.cap {
            let min = self
                .counts
                .iter()
                .min_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
                .map(|(k, c)| (k.clone(), *c));
            if let Some((k, c)) = min {
                self.counts.remove::<K>(&k);
                start = c;
            }
        }
        self.counts.insert(key.to_owned(), start.saturating_add(1));
    }

    /// The `n` largest counts, largest first (ties by value).
    pub fn top(&self, n: usize) -> Vec<(K, u64)> {
        let mut v: Vec<(K, u64)> = self.counts.iter().map(|(k, c)| (k.clone(), *c)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v.truncate(n);
        v
    }

    /// Values tracked.
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    /// True when nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }
}

// ---------------------------------------------------------------------------------------------
// Distinct counting

const HLL_P: u32 = 12;
const HLL_M: usize = 1 << HLL_P;

/// HyperLogLog with 4,096 registers (standard error ≈ 1.6 %).
#[derive(Debug, Clone)]
struct Hll {
    regs: Vec<u8>,
}

impl Hll {
    fn new() -> Hll {
        Hll {
            regs: vec![0; HLL_M],
        }
    }

    /// Adds; true when a register rose (the value is probably new).
    fn insert(&mut self, ip: &IpAddr) -> bool {
        // The default hasher created with `new` has fixed keys: deterministic within a build.
        let mut h = std::hash::DefaultHasher::new();
        ip.hash(&mut h);
        let x = h.finish();
        let idx = (x >> (64 - HLL_P)) as usize;
        let rest = x << HLL_P;
        let rank = (rest.leading_zeros().min(64 - HLL_P) + 1) as u8;
        match self.regs.get_mut(idx) {
            Some(r) if *r < rank => {
                *r = rank;
                true
            }
            _ => false,
        }
    }

    fn estimate(&self) -> u64 {
        let m = HLL_M as f64;
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let mut sum = 0.0;
        let mut zeros = 0usize;
        for &r in &self.regs {
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
}

/// Distinct addresses: exact up to a cap, then a HyperLogLog estimate.
#[derive(Debug, Clone)]
pub struct Distinct {
    exact: Option<HashSet<IpAddr>>,
    approx: Option<Box<Hll>>,
    cap: usize,
}

impl Distinct {
    /// Exact up to `cap` addresses.
    pub fn new(cap: usize) -> Distinct {
        Distinct {
            exact: Some(HashSet::new()),
            approx: None,
            cap: cap.max(1),
        }
    }

    /// Adds `ip`; true when it is new (exactly, or by the estimate once approximate).
    pub fn insert(&mut self, ip: IpAddr) -> bool {
        if let Some(set) = &mut self.exact {
            if set.len() < self.cap || set.contains(&ip) {
                return set.insert(ip);
            }
            let mut hll = Hll::new();
            for x in set.iter() {
                hll.insert(x);
            }
            self.exact = None;
            let new = hll.insert(&ip);
            self.approx = Some(Box::new(hll));
            return new;
        }
        match &mut self.approx {
            Some(h) => h.insert(&ip),
            None => false,
        }
    }

    /// How many distinct addresses (estimated when [`Distinct::is_approximate`]).
    pub fn count(&self) -> u64 {
        match (&self.exact, &self.approx) {
            (Some(set), _) => set.len() as u64,
            (None, Some(h)) => h.estimate(),
            (None, None) => 0,
        }
    }

    /// True once over the cap.
    pub fn is_approximate(&self) -> bool {
        self.exact.is_none()
    }
}

// ---------------------------------------------------------------------------------------------
// URI generalisation

fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn token_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'+' | b'=' | b'%')
}

/// A base64 / random-looking token of at least 16 characters.
fn is_random_token(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 16 || !b.iter().all(|c| token_char(*c)) {
        return false;
    }
    let digit = b.iter().any(u8::is_ascii_digit);
    let upper = b.iter().any(u8::is_ascii_uppercase);
    let lower = b.iter().any(u8::is_ascii_lowercase);
    let class = |c: u8| {
        if c.is_ascii_digit() {
            0
        } else if c.is_ascii_uppercase() {
            1
        } else if c.is_ascii_lowercase() {
            2
        } else {
            3
        }
    };
    let transitions = b.windows(2).filter(|w| class(w[0]) != class(w[1])).count();
    (digit && (upper || lower)) || (upper && lower && transitions * 3 >= b.len())
}

fn generalise_part(p: &str) -> Option<&'static str> {
    if p.is_empty() {
        None
    } else if p.bytes().all(|c| c.is_ascii_digit()) {
        Some("{n}")
    } else if is_uuid(p) {
        Some("{uuid}")
    } else if p.len() >= 8 && p.bytes().all(|c| c.is_ascii_hexdigit()) {
        Some("{hex}")
    } else if is_random_token(p) {
        Some("{id}")
    } else {
        None
    }
}

fn generalise_segment(seg: &str, out: &mut String) {
    if let Some(g) = generalise_part(seg) {
        out.push_str(g);
        return;
    }
    for (i, part) in seg.split('.').enumerate() {
        if i > 0 {
            out.push('.');
        }
        match generalise_part(part) {
            Some(g) => out.push_str(g),
            None => out.push_str(part),
        }
    }
}

fn split_uri(url: &str) -> (&str, Option<&str>) {
    let pq = path_and_query(url.trim());
    let pq = pq.split('#').next().unwrap_or(pq);
    match pq.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (pq, None),
    }
}

/// The generalised path of a URL (or of a path): numbers → `{n}`, hex of 8 or more → `{hex}`,
/// random-looking tokens of 16 or more → `{id}`, UUIDs → `{uuid}`; segments and dot-separated
/// parts are generalised one by one (`/bins/123.php` → `/bins/{n}.php`). At most 32 segments
/// and [`MAX_TEXT`] bytes.
pub fn generalise_path(url: &str) -> String {
    let (path, _) = split_uri(url);
    let mut out = String::with_capacity(path.len().min(MAX_TEXT));
    if !path.starts_with('/') {
        out.push('/');
    }
    for (i, seg) in path.split('/').take(32).enumerate() {
        if i > 0 {
            out.push('/');
        }
        generalise_segment(seg, &mut out);
        if out.len() > MAX_TEXT {
            break;
        }
    }
    truncate(&out, MAX_TEXT).to_string()
}

/// [`generalise_path`] plus the query's keys (generalised like path parts, in order, without
/// repeats, at most 16), each with `=*`: `/gate.php?id=7&n=9` → `/gate.php?id=*&n=*`.
pub fn generalise_uri(url: &str) -> String {
    let mut out = generalise_path(url);
    let (_, query) = split_uri(url);
    if let Some(q) = query {
        let mut keys: Vec<String> = Vec::new();
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let k = pair.split('=').next().unwrap_or("");
            let k = match generalise_part(k) {
                Some(g) => g.to_string(),
                None => truncate(k, 64).to_string(),
            };
            if !keys.contains(&k) {
                keys.push(k);
            }
            if keys.len() >= 16 {
                break;
            }
        }
        if !keys.is_empty() {
            out.push('?');
            let rendered: Vec<String> = keys.iter().map(|k| format!("{k}=*")).collect();
            out.push_str(&rendered.join("&"));
        }
    }
    truncate(&out, MAX_TEXT).to_string()
}

fn escape_regex(s: &str, out: &mut String) {
    for c in s.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
}

/// An anchored regex over a request's path and query matching the paths a generalised path
/// ([`generalise_path`]) stands for.
pub fn path_regex(generalised: &str) -> String {
    const PLACEHOLDERS: [(&str, &str); 4] = [
        ("{n}", "[0-9]+"),
        (
            "{uuid}",
            "[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}",
        ),
        ("{hex}", "[0-9A-Fa-f]{8,}"),
        ("{id}", "[A-Za-z0-9_+=%-]{16,}"),
    ];
    let mut out = String::from("^");
    let mut rest = generalised;
    'outer: while !rest.is_empty() {
        for (ph, re) in PLACEHOLDERS {
            if let Some(r) = rest.strip_prefix(ph) {
                out.push_str(re);
                rest = r;
                continue 'outer;
            }
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            escape_regex(c.encode_utf8(&mut [0; 4]), &mut out);
        }
        rest = chars.as_str();
    }
    out.push_str("(?:\\?|$)");
    out
}

/// The registrable domain of a host name, approximately (no public-suffix list): the last two
/// labels, or three when the second-level label is a common second-level suffix under a
/// two-letter country code (`co.uk`, `com.au`, ...). Addresses are returned unchanged.
pub fn registrable_domain(host: &str) -> String {
    let h = host.trim().trim_end_matches('.').to_ascii_lowercase();
    if h.parse::<IpAddr>().is_ok() {
        return h;
    }
    let labels: Vec<&str> = h.split('.').filter(|l| !l.is_empty()).collect();
    let n = labels.len();
    if n <= 2 {
        return labels.join(".");
    }
    let (sld, tld) = (labels[n - 2], labels[n - 1]);
    const SECOND: [&str; 10] = [
        "co", "com", "net", "org", "gov", "ac", "edu", "or", "ne", "go",
    ];
    let take = if tld.len() == 2 && SECOND.contains(&sld) {
        3
    } else {
        2
    };
    truncate(&labels[n - take..].join("."), MAX_TEXT).to_string()
}

// ---------------------------------------------------------------------------------------------
// Beacon interval

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// One bot's beacon interval from its arrival times (milliseconds, any order): the median of
/// the inter-arrival gaps, after dropping repeats under 1 s when the median is longer than that,
/// dropping gaps over 10× the median (the bot was away), and folding gaps of about k× the
/// median (missed beats) back to one interval. Returns (seconds, gaps used).
pub fn beacon_interval(times_ms: &[i64]) -> Option<(f64, usize)> {
    let mut t = times_ms.to_vec();
    t.sort_unstable();
    let mut gaps: Vec<f64> = t
        .windows(2)
        .map(|w| (w[1].saturating_sub(w[0])) as f64 / 1000.0)
        .filter(|g| *g > 0.0)
        .collect();
    let mut m = median(&mut gaps)?;
    if m >= 1.0 {
        gaps.retain(|g| *g >= 1.0);
        m = median(&mut gaps)?;
    }
    gaps.retain(|g| *g <= 10.0 * m);
    m = median(&mut gaps)?;
    for g in gaps.iter_mut() {
        let k = (*g / m).round();
        if k >= 2.0 && ((*g / k) - m).abs() <= 0.2 * m {
            *g /= k;
        }
    }
    let m = median(&mut gaps)?;
    Some((m, gaps.len()))
}

#[derive(Debug)]
struct Bot {
    times: VecDeque<i64>,
    touched: u64,
}

impl Bot {
    fn add(&mut self, ms: i64) {
        let pos = self.times.partition_point(|&x| x < ms);
        if self.times.get(pos) == Some(&ms) {
            return;
        }
        self.times.insert(pos, ms);
        while self.times.len() > BOT_TIMES {
            self.times.pop_front();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Per-threat aggregates

#[derive(Debug)]
struct ThreatAgg {
    idx: u32,
    checkins: u64,
    dns_queries: u64,
    first_ms: Option<i64>,
    last_ms: Option<i64>,
    protocols: TopK<String>,
    ports: TopK<u16>,
    hosts: TopK<String>,
    uris: TopK<String>,
    uas: TopK<String>,
    asns: TopK<u32>,
    countries: TopK<String>,
    ips: Distinct,
    hours: BTreeMap<i64, Distinct>,
}

impl ThreatAgg {
    fn new(idx: u32) -> ThreatAgg {
        ThreatAgg {
            idx,
            checkins: 0,
            dns_queries: 0,
            first_ms: None,
            last_ms: None,
            protocols: TopK::new(TOP_K_CAP),
            ports: TopK::new(TOP_K_CAP),
            hosts: TopK::new(TOP_K_CAP),
            uris: TopK::new(TOP_K_CAP),
            uas: TopK::new(TOP_K_CAP),
            asns: TopK::new(TOP_K_CAP),
            countries: TopK::new(TOP_K_CAP),
            ips: Distinct::new(EXACT_IPS_TOTAL),
            hours: BTreeMap::new(),
        }
    }

    fn add_hour(&mut self, ms: i64, ip: IpAddr) {
        let hour = ms.div_euclid(3_600_000);
        let newest = self.hours.keys().next_back().copied().unwrap_or(hour);
        if hour <= newest - HOURS as i64 {
            return;
        }
        self.hours
            .entry(hour)
            .or_insert_with(|| Distinct::new(EXACT_IPS_PER_HOUR))
            .insert(ip);
        while self.hours.len() > HOURS {
            self.hours.pop_first();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Clusters

/// What groups check-ins without a threat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClusterKind {
    /// Protocol + destination port + generalised URI path.
    Uri,
    /// The user agent (when the path says nothing: no URL or just `/`).
    UserAgent,
    /// The registrable domain of the host asked for (no URL, no user agent).
    Domain,
}

/// The pattern a cluster's check-ins share.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ClusterKey {
    /// Which pattern.
    pub kind: ClusterKind,
    /// Protocol (`uri` clusters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proto: Option<String>,
    /// Destination port (`uri` clusters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_port: Option<u16>,
    /// Generalised path (`uri` clusters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// User agent (`user_agent` clusters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Registrable domain (`domain` clusters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
}

impl ClusterKey {
    /// The key of an unclassified check-in, if it has any pattern.
    pub fn of(e: &Event) -> Option<ClusterKey> {
        let empty = ClusterKey {
            kind: ClusterKind::Uri,
            proto: None,
            dst_port: None,
            path: None,
            user_agent: None,
            domain: None,
        };
        if let Some(url) = e.url.as_deref().filter(|u| !u.trim().is_empty()) {
            let path = generalise_path(url);
            if path != "/" {
                return Some(ClusterKey {
                    proto: e
                        .proto
                        .as_deref()
                        .map(|p| truncate(p, 32).to_ascii_lowercase()),
                    dst_port: e.dst_port,
                    path: Some(path),
                    ..empty
                });
            }
        }
        if let Some(ua) = e.user_agent.as_deref().filter(|u| !u.trim().is_empty()) {
            return Some(ClusterKey {
                kind: ClusterKind::UserAgent,
                user_agent: Some(truncate(ua, MAX_TEXT).to_string()),
                ..empty
            });
        }
        if let Some(h) = e.host.as_deref().filter(|h| !h.trim().is_empty()) {
            let d = registrable_domain(h);
            if !d.is_empty() {
                return Some(ClusterKey {
                    kind: ClusterKind::Domain,
                    domain: Some(d),
                    ..empty
                });
            }
        }
        None
    }

    /// Stable id: the first 16 hex digits of SHA-256 over the key's parts.
    pub fn id(&self) -> String {
        let kind = match self.kind {
            ClusterKind::Uri => "uri",
            ClusterKind::UserAgent => "user_agent",
            ClusterKind::Domain => "domain",
        };
        let mut h = Sha256::new();
        for part in [
            kind,
            self.proto.as_deref().unwrap_or(""),
            &self.dst_port.map(|p| p.to_string()).unwrap_or_default(),
            self.path.as_deref().unwrap_or(""),
            self.user_agent.as_deref().unwrap_or(""),
            self.domain.as_deref().unwrap_or(""),
        ] {
            h.update(part.as_bytes());
            h.update([0u8]);
        }
        let d = h.finalize();
        hex::encode(&d[..8])
    }

    /// The request-pattern rule recognising this key's check-ins as `threat` (`uri` and
    /// `user_agent` keys; a domain is promoted as an indicator instead).
    pub fn rule(&self, threat: &str) -> Option<Rule> {
        let id = format!("cluster-{}", self.id());
        let base = Rule {
            id,
            threat: threat.to_string(),
            description: Some(format!(
                "promoted from an unclassified cluster ({})",
                self.describe()
            )),
            uri: None,
            user_agent: None,
            host: None,
            first_bytes: None,
            dst_ports: Vec::new(),
            proto: None,
        };
        match self.kind {
            ClusterKind::Uri => Some(Rule {
                uri: Some(path_regex(self.path.as_deref().unwrap_or("/"))),
                dst_ports: self.dst_port.into_iter().collect(),
                proto: self.proto.clone(),
                ..base
            }),
            ClusterKind::UserAgent => {
                let mut re = String::from("^");
                escape_regex(self.user_agent.as_deref().unwrap_or(""), &mut re);
                re.push('$');
                Some(Rule {
                    user_agent: Some(re),
                    ..base
                })
            }
            ClusterKind::Domain => None,
        }
    }

    /// For people: `http/80 /gate.php`, `user agent "X"`, `domain example.net`.
    pub fn describe(&self) -> String {
        match self.kind {
            ClusterKind::Uri => format!(
                "{}/{} {}",
                self.proto.as_deref().unwrap_or("any"),
                self.dst_port
                    .map_or_else(|| "any".to_string(), |p| p.to_string()),
                self.path.as_deref().unwrap_or("")
            ),
            ClusterKind::UserAgent => {
                format!("user agent {:?}", self.user_agent.as_deref().unwrap_or(""))
            }
            ClusterKind::Domain => format!("domain {}", self.domain.as_deref().unwrap_or("")),
        }
    }
}

#[derive(Debug)]
struct Cluster {
    key: ClusterKey,
    checkins: u64,
    ips: Distinct,
    first_ms: i64,
    last_ms: i64,
    hosts: Vec<String>,
    paths: Vec<String>,
    uas: Vec<String>,
    touched: u64,
}

fn sample(v: &mut Vec<String>, s: Option<&str>) {
    if let Some(s) = s.filter(|s| !s.is_empty())
        && v.len() < SAMPLES
        && !v.iter().any(|x| x == s)
    {
        v.push(truncate(s, MAX_TEXT).to_string());
    }
}

// ---------------------------------------------------------------------------------------------
// The learner

/// The aggregates, updated event by event.
#[derive(Debug, Default)]
pub struct Learner {
    threats: HashMap<String, ThreatAgg>,
    bots: HashMap<(u32, IpAddr), Bot>,
    clusters: HashMap<String, Cluster>,
    promoted: HashSet<String>,
    clock: u64,
    cursor: u64,
    dropped: u64,
}

impl Learner {
    /// Empty.
    pub fn new() -> Learner {
        Learner::default()
    }

    /// The seq of the last event seen.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// Adds one event.
    pub fn observe(&mut self, e: &Event) {
        self.clock += 1;
        self.cursor = self.cursor.max(e.seq);
        let dns = e.observation.as_deref() == Some("dns-query");
        let Some(tid) = e.threat_id.as_deref().filter(|t| !t.is_empty()) else {
            if !dns {
                self.cluster(e);
            }
            return;
        };
        if !self.threats.contains_key(tid) {
            if self.threats.len() >= MAX_THREATS {
                self.dropped += 1;
                return;
            }
            let idx = u32::try_from(self.threats.len()).unwrap_or(u32::MAX);
            self.threats
                .insert(truncate(tid, 128).to_string(), ThreatAgg::new(idx));
        }
        let Some(agg) = self.threats.get_mut(truncate(tid, 128)) else {
            return;
        };
        if dns {
            agg.dns_queries += 1;
            return;
        }
        let ms = e.time.as_millisecond();
        agg.checkins += 1;
        agg.first_ms = Some(agg.first_ms.map_or(ms, |f| f.min(ms)));
        agg.last_ms = Some(agg.last_ms.map_or(ms, |l| l.max(ms)));
        if let Some(p) = e.proto.as_deref().filter(|p| !p.is_empty()) {
            agg.protocols.add(&truncate(p, 32).to_ascii_lowercase());
        }
        if let Some(p) = e.dst_port {
            agg.ports.add(&p);
        }
        if let Some(h) = e.host.as_deref().filter(|h| !h.is_empty()) {
            agg.hosts.add(truncate(h, MAX_TEXT));
        }
        if let Some(u) = e.url.as_deref().filter(|u| !u.trim().is_empty()) {
            agg.uris.add(generalise_uri(u).as_str());
        }
        if let Some(ua) = e.user_agent.as_deref().filter(|u| !u.is_empty()) {
            agg.uas.add(truncate(ua, MAX_TEXT));
        }
        if agg.ips.insert(e.src_ip) {
            if let Some(a) = e.asn {
                agg.asns.add(&a);
            }
            if let Some(c) = e.country.as_deref().filter(|c| !c.is_empty()) {
                agg.countries.add(truncate(c, 8));
            }
        }
        agg.add_hour(ms, e.src_ip);
        let idx = agg.idx;
        if self.bots.len() >= MAX_BOTS && !self.bots.contains_key(&(idx, e.src_ip)) {
            evict_oldest(&mut self.bots, |b| b.touched);
        }
        let bot = self.bots.entry((idx, e.src_ip)).or_insert_with(|| Bot {
            times: VecDeque::new(),
            touched: 0,
        });
        bot.touched = self.clock;
        bot.add(ms);
    }

    fn cluster(&mut self, e: &Event) {
        let Some(key) = ClusterKey::of(e) else {
            return;
        };
        let id = key.id();
        if self.promoted.contains(&id) {
            return;
        }
        if self.clusters.len() >= MAX_CLUSTERS && !self.clusters.contains_key(&id) {
            evict_oldest(&mut self.clusters, |c| c.touched);
        }
        let ms = e.time.as_millisecond();
        let c = self.clusters.entry(id).or_insert_with(|| Cluster {
            key,
            checkins: 0,
            ips: Distinct::new(EXACT_IPS_CLUSTER),
            first_ms: ms,
            last_ms: ms,
            hosts: Vec::new(),
            paths: Vec::new(),
            uas: Vec::new(),
            touched: 0,
        });
        c.touched = self.clock;
        c.checkins += 1;
        c.ips.insert(e.src_ip);
        c.first_ms = c.first_ms.min(ms);
        c.last_ms = c.last_ms.max(ms);
        sample(&mut c.hosts, e.host.as_deref());
        let path = e.url.as_deref().map(|u| split_uri(u).0);
        sample(&mut c.paths, path);
        sample(&mut c.uas, e.user_agent.as_deref());
    }

    /// Marks a cluster promoted: dropped now, and never formed again.
    pub fn mark_promoted(&mut self, id: &str) {
        self.clusters.remove(id);
        self.promoted.insert(id.to_string());
    }

    /// The key of a listed cluster.
    pub fn cluster_key(&self, id: &str) -> Option<ClusterKey> {
        self.clusters.get(id).map(|c| c.key.clone())
    }

    /// True when `id` was promoted.
    pub fn is_promoted(&self, id: &str) -> bool {
        self.promoted.contains(id)
    }

    /// The clusters, most check-ins first, at most `limit` (no addresses).
    pub fn clusters_json(&self, limit: usize) -> Value {
        let mut cs: Vec<(&String, &Cluster)> = self.clusters.iter().collect();
        cs.sort_by(|a, b| b.1.checkins.cmp(&a.1.checkins).then_with(|| a.0.cmp(b.0)));
        let total = cs.len();
        let items: Vec<Value> = cs
            .into_iter()
            .take(limit)
            .map(|(id, c)| {
                json!({
                    "id": id,
                    "key": c.key,
                    "pattern": c.key.describe(),
                    "checkins": c.checkins,
                    "distinct_ips": c.ips.count(),
                    "distinct_ips_approximate": c.ips.is_approximate(),
                    "first_seen": iso(c.first_ms),
                    "last_seen": iso(c.last_ms),
                    "sample_hosts": c.hosts,
                    "sample_paths": c.paths,
                    "sample_user_agents": c.uas,
                    "promote": format!("/api/v1/clusters/{id}/promote"),
                })
            })
            .collect();
        json!({ "as_of_seq": self.cursor, "count": total, "clusters": items })
    }

    /// The observed behaviour of `threat_id` (aggregates only; zeros when nothing was seen).
    pub fn observed_json(&self, threat_id: &str) -> Value {
        let Some(a) = self.threats.get(threat_id) else {
            return json!({
                "as_of_seq": self.cursor, "checkins": 0, "first_seen": null, "last_seen": null,
                "protocols": [], "ports": [], "c2_hosts": [], "uri_patterns": [],
                "user_agents": [], "beacon_interval_secs": {"median": null, "bots": 0},
                "infected_ips": {"total": 0, "approximate": false, "per_hour": []},
                "top_asns": [], "top_countries": [], "dns_queries": 0,
            });
        };
        let mut medians: Vec<f64> = self
            .bots
            .iter()
            .filter(|((idx, _), _)| *idx == a.idx)
            .filter_map(|(_, b)| {
                let times: Vec<i64> = b.times.iter().copied().collect();
                beacon_interval(&times).filter(|(_, n)| *n >= MIN_GAPS)
            })
            .map(|(m, _)| m)
            .collect();
        let bots = medians.len();
        let beacon = median(&mut medians).map(|m| (m * 10.0).round() / 10.0);
        let list = |name: &str, items: Vec<(Value, u64)>, count: &str| -> Vec<Value> {
            items
                .into_iter()
                .map(|(v, c)| {
                    let mut o = serde_json::Map::new();
                    o.insert(name.to_string(), v);
                    o.insert(count.to_string(), c.into());
                    Value::Object(o)
                })
                .collect()
        };
        let s = |t: &TopK<String>| -> Vec<(Value, u64)> {
            t.top(TOP_SHOWN)
                .into_iter()
                .map(|(k, c)| (Value::String(k), c))
                .collect()
        };
        let per_hour: Vec<Value> = a
            .hours
            .iter()
            .map(|(h, d)| json!({"hour": iso(h.saturating_mul(3_600_000)), "ips": d.count(), "approximate": d.is_approximate()}))
            .collect();
        json!({
            "as_of_seq": self.cursor,
            "checkins": a.checkins,
            "first_seen": a.first_ms.map_or(Value::Null, iso),
            "last_seen": a.last_ms.map_or(Value::Null, iso),
            "protocols": list("name", s(&a.protocols), "count"),
            "ports": list("port", a.ports.top(TOP_SHOWN).into_iter().map(|(k, c)| (k.into(), c)).collect(), "count"),
            "c2_hosts": list("host", s(&a.hosts), "count"),
            "uri_patterns": list("pattern", s(&a.uris), "count"),
            "user_agents": list("user_agent", s(&a.uas), "count"),
            "beacon_interval_secs": {"median": beacon, "bots": bots},
            "infected_ips": {
                "total": a.ips.count(),
                "approximate": a.ips.is_approximate(),
                "per_hour": per_hour,
            },
            "top_asns": list("asn", a.asns.top(TOP_SHOWN).into_iter().map(|(k, c)| (k.into(), c)).collect(), "ips"),
            "top_countries": list("country", s(&a.countries), "ips"),
            "dns_queries": a.dns_queries,
        })
    }
}

/// Removes the least recently touched tenth of `map`.
fn evict_oldest<K: Hash + Eq, V>(map: &mut HashMap<K, V>, touched: impl Fn(&V) -> u64) {
    let mut ts: Vec<u64> = map.values().map(&touched).collect();
    if ts.is_empty() {
        return;
    }
    let k = (ts.len() / 10).max(1) - 1;
    let (_, cut, _) = ts.select_nth_unstable(k);
    let cut = *cut;
    map.retain(|_, v| touched(v) > cut);
}

// ---------------------------------------------------------------------------------------------
// Promotions and the shared handle

/// One promoted cluster, as persisted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Promotion {
    /// The cluster's id.
    pub cluster: String,
    /// Its key.
    pub key: ClusterKey,
    /// The threat it was promoted to.
    pub threat: String,
    /// The rule added (uri / user-agent clusters).
    #[serde(default)]
    pub rule: Option<Rule>,
    /// The domain indicator contributed (domain clusters).
    #[serde(default)]
    pub indicator: Option<String>,
    /// When.
    pub at: jiff::Timestamp,
}

/// The stored promotions.
pub fn load_promotions(
    store: &threatfeed_store::state::StateStore,
) -> anyhow::Result<Vec<Promotion>> {
    Ok(match store.get_meta(PROMOTED_META)? {
        Some(text) => serde_json::from_str(&text)?,
        None => Vec::new(),
    })
}

/// `rules` followed by the rules of stored promotions (a rule that no longer compiles, or whose
/// id is taken, is skipped with a warning).
pub fn with_promoted_rules(mut rules: RuleSet, promotions: &[Promotion]) -> RuleSet {
    for p in promotions {
        if let Some(r) = &p.rule
            && let Err(err) = rules.push(r.clone())
        {
            tracing::warn!(cluster = %p.cluster, %err, "promoted rule refused");
        }
    }
    rules
}

/// The learner shared by the tail thread and the routes.
#[derive(Debug, Default)]
pub struct Behaviour {
    learner: Mutex<Learner>,
    /// Serialises promotions.
    pub promote_lock: tokio::sync::Mutex<()>,
}

impl Behaviour {
    /// Empty; `promotions` are never listed as clusters.
    pub fn new(promotions: &[Promotion]) -> Behaviour {
        let b = Behaviour::default();
        {
            let mut l = lock(&b.learner);
            for p in promotions {
                l.mark_promoted(&p.cluster);
            }
        }
        b
    }

    /// Runs `f` over the learner (briefly: the tail waits meanwhile).
    pub fn with<R>(&self, f: impl FnOnce(&mut Learner) -> R) -> R {
        f(&mut lock(&self.learner))
    }

    /// Starts the tail thread over `log`: replay, then follow until `stop`.
    pub fn spawn(
        self: &Arc<Self>,
        log: Arc<dyn EventLog>,
        stop: CancellationToken,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        let me = self.clone();
        std::thread::Builder::new()
            .name("behaviour".into())
            .spawn(move || me.run(log.as_ref(), &stop))
    }

    fn run(&self, log: &dyn EventLog, stop: &CancellationToken) {
        let mut cursor = log.last_seq().saturating_sub(REPLAY_MAX_EVENTS);
        let cutoff = jiff::Timestamp::now()
            .as_millisecond()
            .saturating_sub(REPLAY_MAX_AGE_MS);
        while !stop.is_cancelled() {
            match log.read_after(cursor, BATCH) {
                Ok(recs) if recs.is_empty() => std::thread::sleep(POLL),
                Ok(recs) => {
                    let mut events = Vec::with_capacity(recs.len());
                    for r in &recs {
                        cursor = cursor.max(r.seq);
                        if r.received_ms < cutoff {
                            continue;
                        }
                        match Event::decode_stored(r.seq, &r.data) {
                            Ok(e) => events.push(e),
                            Err(err) => {
                                tracing::warn!(seq = r.seq, %err, "behaviour: undecodable event skipped")
                            }
                        }
                    }
                    let mut l = lock(&self.learner);
                    for e in &events {
                        l.observe(e);
                    }
                    l.cursor = l.cursor.max(cursor);
                }
                Err(err) => {
                    tracing::warn!(%err, "behaviour: reading the event log failed; retrying");
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
    }
}

/// The observed behaviour of a threat, for the routes.
pub fn observed(state: &AppState, threat_id: &str) -> Value {
    state.behaviour.with(|l| l.observed_json(threat_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_are_generalised() {
        assert_eq!(
            generalise_uri("http://c2.example/gate.php?n=12"),
            "/gate.php?n=*"
        );
        assert_eq!(
            generalise_path("http://c2.example/bots/12345/x"),
            "/bots/{n}/x"
        );
        assert_eq!(generalise_path("/a/deadbeef0123/b"), "/a/{hex}/b");
        assert_eq!(
            generalise_path("/u/550e8400-e29b-41d4-a716-446655440000"),
            "/u/{uuid}"
        );
        assert_eq!(
            generalise_path("/images/aB3d_2FkQ9x_2BpLm7/Qz8r_2FT.avi"),
            "/images/{id}/Qz8r_2FT.avi"
        );
        assert_eq!(
            generalise_path("/p/ZmxhZ3MxMjM0NTY3ODk=.jpg"),
            "/p/{id}.jpg"
        );
        assert_eq!(generalise_path("/bins/123.php"), "/bins/{n}.php");
        assert_eq!(generalise_path("/bins/mirai.arm7"), "/bins/mirai.arm7");
        assert_eq!(generalise_path("/fre.php"), "/fre.php");
        assert_eq!(generalise_path("/index.html"), "/index.html");
        assert_eq!(generalise_path("http://h.example"), "/");
        assert_eq!(generalise_path(""), "/");
        assert_eq!(generalise_uri("/x?a=1&b=2&a=3#frag"), "/x?a=*&b=*");
        // Words are not tokens.
        assert_eq!(
            generalise_path("/administrator/components"),
            "/administrator/components"
        );
        // Bounded, and never panics on odd input.
        let long = format!("/{}", "é/".repeat(1000));
        assert!(generalise_uri(&long).len() <= MAX_TEXT);
        for s in ["?", "//", "/%", "http://", "::", "/a?&&=", "/\u{0}"] {
            let _ = generalise_uri(s);
        }
    }

    #[test]
    fn path_regexes_match_what_they_generalise() {
        let set_for = |path: &str| {
            let mut set = RuleSet::new();
            set.push(Rule {
                id: "t".into(),
                threat: "x".into(),
                description: None,
                uri: Some(path_regex(path)),
                user_agent: None,
                host: None,
                first_bytes: None,
                dst_ports: vec![],
                proto: None,
            })
            .expect("compiles");
            set
        };
        let m = |set: &RuleSet, uri: &str| {
            set.classify(&threatfeed_core::rules::Request {
                uri: Some(uri),
                ..Default::default()
            })
            .is_some()
        };
        let url = "http://c2.example/api/7/deadbeef99/gate.php?id=5";
        let g = generalise_path(url);
        let set = set_for(&g);
        assert!(m(&set, path_and_query(url)));
        assert!(m(&set, "/api/123/0011223344556677/gate.php"));
        assert!(!m(&set, "/api/x/deadbeef99/gate.php"));
        assert!(!m(&set, "/api/7/deadbeef99/gate.phpx"));
        // Regex metacharacters in paths are literal.
        let set = set_for("/a+b(c)[d]{e}^$|*.?\\-~#&");
        assert!(m(&set, "/a+b(c)[d]{e}^$|*.?\\-~#&"));
    }

    #[test]
    fn top_k_keeps_heavy_hitters_within_its_cap() {
        // Space-Saving keeps every value seen more than (all counted) / cap times.
        let mut t: TopK<String> = TopK::new(16);
        for _ in 0..50 {
            t.add("heavy");
        }
        for i in 0..200 {
            t.add(format!("noise{i}").as_str());
        }
        // A late heavy hitter still makes it in.
        for _ in 0..80 {
            t.add("late");
        }
        assert!(t.len() <= 16);
        let top = t.top(2);
        assert_eq!(top[0].0, "late");
        assert_eq!(top[1].0, "heavy");
        assert!(top[1].1 >= 50);
        let mut p: TopK<u16> = TopK::new(8);
        p.add(&80);
        p.add(&443);
        p.add(&80);
        assert_eq!(p.top(5), vec![(80, 2), (443, 1)]);
    }

    /// Deterministic jitter in [-1, 1].
    fn jitter(i: u64) -> f64 {
        let x = i
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407)
            >> 33;
        (x % 2001) as f64 / 1000.0 - 1.0
    }

    #[test]
    fn beacon_interval_survives_jitter_missing_beats_and_repeats() {
        let base = 1_780_000_000_000i64;
        let mut t = Vec::new();
        let mut now = base;
        for i in 0..16u64 {
            now += (60_000.0 * (1.0 + 0.1 * jitter(i))) as i64;
            if i % 4 == 3 {
                continue; // a missed beat
            }
            t.push(now);
            if i == 5 {
                t.push(now + 300); // a retry 0.3 s later
            }
        }
        t.push(now + 3_600_000); // back after an hour
        let (m, gaps) = beacon_interval(&t).expect("interval");
        assert!((m - 60.0).abs() <= 6.0, "{m}");
        assert!(gaps >= MIN_GAPS);
        // Out of order and exact duplicates.
        let mut r = t.clone();
        r.reverse();
        r.extend_from_slice(&t[..3]);
        let (m2, _) = beacon_interval(&r).expect("interval");
        assert!((m2 - 60.0).abs() <= 6.0, "{m2}");
        // Sub-second beacons keep their short gaps.
        let fast: Vec<i64> = (0..10).map(|i| base + i * 500).collect();
        let (m3, _) = beacon_interval(&fast).expect("interval");
        assert!((m3 - 0.5).abs() < 1e-9, "{m3}");
        assert_eq!(beacon_interval(&[base]), None);
        assert_eq!(beacon_interval(&[]), None);
        assert_eq!(beacon_interval(&[base, base]), None);
    }

    #[test]
    fn distinct_turns_approximate_past_its_cap() {
        let mut d = Distinct::new(100);
        for i in 0..5000u32 {
            d.insert(IpAddr::from(i.to_be_bytes()));
        }
        assert!(d.is_approximate());
        let n = d.count() as f64;
        assert!((n - 5000.0).abs() / 5000.0 < 0.08, "{n}");
        let mut e = Distinct::new(100);
        assert!(e.insert("192.0.2.1".parse().expect("ip")));
        assert!(!e.insert("192.0.2.1".parse().expect("ip")));
        assert_eq!(e.count(), 1);
    }

    #[test]
    fn registrable_domains() {
        assert_eq!(registrable_domain("a.b.c2.example.net."), "example.net");
        assert_eq!(registrable_domain("x.evil.co.uk"), "evil.co.uk");
        assert_eq!(registrable_domain("localhost"), "localhost");
        assert_eq!(registrable_domain("192.0.2.1"), "192.0.2.1");
        assert_eq!(registrable_domain("..."), "");
    }

    fn event(ip: &str, secs: i64) -> Event {
        let t = jiff::Timestamp::from_second(secs).expect("ts");
        let mut e = Event::new(ip.parse().expect("ip"), t, t);
        e.proto = Some("http".into());
        e.dst_port = Some(8080);
        e.host = Some("c2.bad.example".into());
        e.url = Some(format!("http://c2.bad.example/b/{secs}/in.php?id={secs}"));
        e.user_agent = Some("Bot/1.0".into());
        e.asn = Some(64500);
        e.country = Some("NL".into());
        e
    }

    #[test]
    fn learner_aggregates_per_threat_without_addresses() {
        let mut l = Learner::new();
        let start = 1_780_000_000i64;
        for b in 0..5 {
            let ip = format!("198.51.100.{}", b + 10);
            let mut t = start + b * 7;
            for i in 0..12u64 {
                t += (120.0 * (1.0 + 0.1 * jitter(i + b as u64 * 31))) as i64;
                let mut e = event(&ip, t);
                e.threat_id = Some("demo".into());
                l.observe(&e);
            }
        }
        let mut dns = event("203.0.113.53", start);
        dns.threat_id = Some("demo".into());
        dns.observation = Some("dns-query".into());
        l.observe(&dns);
        let v = l.observed_json("demo");
        assert_eq!(v["checkins"], 60);
        assert_eq!(v["dns_queries"], 1);
        assert_eq!(v["infected_ips"]["total"], 5);
        assert_eq!(v["beacon_interval_secs"]["bots"], 5);
        let m = v["beacon_interval_secs"]["median"]
            .as_f64()
            .expect("median");
        assert!((m - 120.0).abs() <= 12.0, "{m}");
        assert_eq!(v["uri_patterns"][0]["pattern"], "/b/{n}/in.php?id=*");
        assert_eq!(v["ports"][0]["port"], 8080);
        assert_eq!(v["protocols"][0]["name"], "http");
        assert_eq!(v["top_asns"][0]["ips"], 5);
        let text = v.to_string();
        assert!(
            !text.contains("198.51.100") && !text.contains("203.0.113"),
            "{text}"
        );
        assert_eq!(l.observed_json("none")["checkins"], 0);
    }

    #[test]
    fn unclassified_check_ins_cluster_and_promote() {
        let mut l = Learner::new();
        for i in 0..6 {
            let e = event(&format!("192.0.2.{i}"), 1_780_000_000 + i * 60);
            l.observe(&e);
        }
        let v = l.clusters_json(10);
        assert_eq!(v["count"], 1);
        let c = &v["clusters"][0];
        assert_eq!(c["checkins"], 6);
        assert_eq!(c["distinct_ips"], 6);
        assert_eq!(c["key"]["path"], "/b/{n}/in.php");
        assert!(!v.to_string().contains("192.0.2."));
        let id = c["id"].as_str().expect("id").to_string();
        let key = l.cluster_key(&id).expect("key");
        assert_eq!(key.id(), id);
        let rule = key.rule("demo").expect("rule");
        let mut set = RuleSet::new();
        set.push(rule).expect("compiles");
        let e = event("192.0.2.99", 1_780_009_999);
        let req = threatfeed_core::rules::Request::from_event(&e);
        assert_eq!(set.classify(&req).map(|r| r.threat.as_str()), Some("demo"));
        l.mark_promoted(&id);
        l.observe(&e);
        assert_eq!(l.clusters_json(10)["count"], 0);
        // User-agent and domain keys.
        let mut ua = event("192.0.2.1", 1);
        ua.url = Some("/".into());
        ua.user_agent = Some("Weird (Agent) 1.0+".into());
        let k = ClusterKey::of(&ua).expect("key");
        assert_eq!(k.kind, ClusterKind::UserAgent);
        let mut set = RuleSet::new();
        set.push(k.rule("demo").expect("rule")).expect("compiles");
        assert!(
            set.classify(&threatfeed_core::rules::Request::from_event(&ua))
                .is_some()
        );
        let mut d = event("192.0.2.1", 1);
        d.url = None;
        d.user_agent = None;
        let k = ClusterKey::of(&d).expect("key");
        assert_eq!(k.domain.as_deref(), Some("bad.example"));
        assert!(k.rule("demo").is_none());
    }
}
