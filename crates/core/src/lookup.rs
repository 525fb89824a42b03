//! The in-memory indicator index: is this IP, network, domain, URL or hash known-bad, and which
//! threat is it?
//!
//! Layout (compact, fixed-width, allocation-free on the lookup path):
//!
//! - every indicator is one 12-byte record: its value as a fixed-width key — an IPv4 address as
//!   a `u32`, an IPv6 address as an index into a `u128` array, any other text (domains, URLs,
//!   hashes, networks) as an offset into one shared string arena (`Vec<u8>`, length-prefixed) —
//!   plus its port, kind, flags and a `u32` *profile*: the (threat, family, source, confidence,
//!   TLP) combination, interned once in a small table;
//! - ids are not stored when they are the deterministic [`indicator_id`] of kind and value (the
//!   normal case; recomputed when a hit is shown); other ids sit in a side map;
//! - exact values sit in two open-addressing tables (linear probing, load ≤ 4/5, 8-byte slots
//!   holding a 32-bit tag and the record number): IPv4 addresses with the address itself as the
//!   tag (a probe decides without touching a record), everything else with a 32-bit hash tag
//!   checked before the record's key is compared. Records sharing a value are chained in a side
//!   map. Networks sit in a longest-prefix trie behind a bitmap of the /16s they overlap, so most
//!   addresses never walk it. Kinds cannot collide: an IP, a CIDR, a domain, a URL and a hash
//!   never share a canonical spelling.
//!
//! A lookup canonicalises its input ([`crate::indicator`]; plain IPv4 literals and plain
//! lower-case domain names are recognised as already canonical without allocating), then: an IP
//! also matches every listed network containing it; a domain also matches its listed parent
//! domains; a URL also matches its host. Callers holding a typed or canonical value skip the
//! text step ([`IndicatorIndex::lookup_ip`], [`IndicatorIndex::lookup_canonical`]) and fill a
//! reusable `Vec<Hit>`. A [`Hit`] is a view into the index; [`Hit::indicator`] rebuilds the
//! [`IndicatorEntry`]. The index is built off the hot path and swapped in whole by its owner.
//!
//! [`IndicatorIndex::bundled`] loads the C2 lists shipped in `data/kb/maltrail/` (17 families),
//! linking each indicator to the knowledge base's threat of the same family.

use crate::canon::fold_ip;
use crate::import::{Format, parse_reader};
use crate::indicator::{IndicatorError, IndicatorKind, canonicalize, indicator_id};
use crate::threat::KnowledgeBase;
use crate::tlp::Tlp;
use ipnet::IpNet;
use prefix_trie::joint::map::JointPrefixMap;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The hasher of every table here: fast, and seeded per process so that listed values cannot be
/// chosen to collide.
type Hasher = foldhash::quality::RandomState;

/// One known indicator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndicatorEntry {
    /// Deterministic id ([`crate::indicator::indicator_id`]).
    pub id: String,
    /// Kind.
    pub kind: IndicatorKind,
    /// Canonical value.
    pub value: String,
    /// The threat it belongs to, when known to the knowledge base.
    pub threat_id: Option<String>,
    /// The family name as the source gave it.
    pub family: Option<String>,
    /// The port the source listed with it.
    pub port: Option<u16>,
    /// Confidence 0–100 that it is malicious.
    pub confidence: u8,
    /// Sharing label.
    pub tlp: Tlp,
    /// Where it comes from (e.g. `maltrail`).
    pub source: String,
}

/// How a lookup matched an indicator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MatchKind {
    /// The value itself is listed.
    Exact,
    /// A listed network contains the address.
    Network,
    /// A listed parent domain.
    ParentDomain,
    /// The URL's host is listed.
    UrlHost,
}

/// One lookup result: a view of a listed indicator. Serialises as
/// `{"indicator": IndicatorEntry, "matched": MatchKind}`.
#[derive(Clone, Copy)]
pub struct Hit<'a> {
    index: &'a IndicatorIndex,
    record: &'a Record,
    position: u32,
    /// How it matched.
    pub matched: MatchKind,
}

/// The per-indicator record.
#[derive(Debug, Clone, Copy)]
struct Record {
    /// IPv4 address, index into `v6`, or offset into `arena` (by `flags & REPR`).
    value: u32,
    /// Index into `profiles`.
    profile: u32,
    port: u16,
    kind: IndicatorKind,
    flags: u8,
}

const REPR: u8 = 0b11;
const REPR_V4: u8 = 0;
const REPR_V6: u8 = 1;
const REPR_TEXT: u8 = 2;
/// `port` is set.
const HAS_PORT: u8 = 4;
/// The id is `indicator_id(kind, value)` and not stored.
const DERIVED_ID: u8 = 8;
/// A network in the trie (not in the exact table).
const IN_TRIE: u8 = 16;
/// Kept (for its id) but matched by nothing: a `cidr` whose value is not a network (in
/// `unlisted`, not in a table).
const UNLISTED: u8 = 32;

/// What the indicators sharing one profile have in common.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Profile {
    threat_id: Option<Box<str>>,
    family: Option<Box<str>>,
    source: Box<str>,
    confidence: u8,
    tlp: Tlp,
}

/// A value as the exact table keys it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key<'a> {
    V4(u32),
    V6(u128),
    Text(&'a [u8]),
}

impl<'a> Key<'a> {
    /// The key of a stored value text: an address whose text is its canonical spelling is kept
    /// binary, anything else as text (so the key is a faithful function of the text).
    fn of(text: &'a str) -> Key<'a> {
        if let Ok(a) = text.parse::<Ipv4Addr>()
            && a.to_string() == text
        {
            return Key::V4(u32::from(a));
        }
        if let Ok(a) = text.parse::<Ipv6Addr>()
            && a.to_string() == text
        {
            return Key::V6(u128::from(a));
        }
        Key::Text(text.as_bytes())
    }

    /// The key of a (folded) address.
    fn ip(ip: IpAddr) -> Key<'static> {
        match ip {
            IpAddr::V4(a) => Key::V4(u32::from(a)),
            IpAddr::V6(a) => Key::V6(u128::from(a)),
        }
    }
}

/// Open-addressing table of record numbers: each slot is `tag << 32 | (record + 1)`, 0 = empty.
#[derive(Debug, Default)]
struct Table {
    slots: Vec<u64>,
    len: usize,
}

impl Table {
    /// Load factor at most 4/5.
    fn capacity_for(n: usize) -> usize {
        (n.saturating_mul(5) / 4 + 1).next_power_of_two().max(16)
    }

    /// The record whose slot carries `tag` and satisfies `eq`, probing from `h`.
    fn find(&self, h: u64, tag: u32, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut p = h as usize & mask;
        loop {
            let s = self.slots[p];
            if s == 0 {
                return None;
            }
            let record = (s as u32).wrapping_sub(1);
            if (s >> 32) as u32 == tag && eq(record) {
                return Some(record);
            }
            p = (p + 1) & mask;
        }
    }

    /// Loads the first slot `h` probes (a batch of lookups issues these back to back, so that
    /// their cache misses overlap).
    fn touch(&self, h: u64) -> u64 {
        if self.slots.is_empty() {
            return 0;
        }
        self.slots[h as usize & (self.slots.len() - 1)]
    }

    fn place(slots: &mut [u64], h: u64, tag: u32, record: u32) {
        let mask = slots.len() - 1;
        let mut p = h as usize & mask;
        while slots[p] != 0 {
            p = (p + 1) & mask;
        }
        slots[p] = u64::from(tag) << 32 | (u64::from(record) + 1);
    }

    /// Inserts a new key (the caller checked it is absent); `rehash(tag, record)` gives the
    /// hash of a stored slot when the table grows.
    fn insert(&mut self, h: u64, tag: u32, record: u32, rehash: impl Fn(u32, u32) -> u64) {
        if (self.len + 1) * 5 > self.slots.len() * 4 {
            let want = Table::capacity_for(self.len + 1);
            let old = std::mem::replace(&mut self.slots, vec![0; want]);
            for s in old {
                if s != 0 {
                    let (t, r) = ((s >> 32) as u32, (s as u32).wrapping_sub(1));
                    Table::place(&mut self.slots, rehash(t, r), t, r);
                }
            }
        }
        Table::place(&mut self.slots, h, tag, record);
        self.len += 1;
    }
}

/// The record store: records, string arena, IPv6 addresses, and the hasher that keys them.
#[derive(Debug, Default)]
struct Records {
    records: Vec<Record>,
    arena: Vec<u8>,
    v6: Vec<u128>,
    hasher: Hasher,
}

impl Records {
    fn hash(&self, k: Key<'_>) -> u64 {
        match k {
            Key::V4(a) => self.hasher.hash_one(a),
            Key::V6(a) => self.hasher.hash_one(a),
            Key::Text(t) => self.hasher.hash_one(t),
        }
    }

    /// The text at arena offset `off` (length-prefixed, LEB128).
    fn text(&self, off: u32) -> &[u8] {
        let mut p = off as usize;
        let mut len = 0usize;
        let mut shift = 0u32;
        loop {
            let Some(&b) = self.arena.get(p) else {
                return &[];
            };
            p += 1;
            len |= usize::from(b & 0x7f) << shift;
            if b < 0x80 {
                break;
            }
            shift += 7;
            if shift > 28 {
                return &[];
            }
        }
        self.arena.get(p..p.saturating_add(len)).unwrap_or(&[])
    }

    fn push_text(&mut self, t: &[u8]) -> Option<u32> {
        let off = u32::try_from(self.arena.len()).ok()?;
        let mut n = t.len();
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                self.arena.push(b);
                break;
            }
            self.arena.push(b | 0x80);
        }
        self.arena.extend_from_slice(t);
        Some(off)
    }

    fn key(&self, r: &Record) -> Key<'_> {
        match r.flags & REPR {
            REPR_V4 => Key::V4(r.value),
            REPR_V6 => Key::V6(self.v6.get(r.value as usize).copied().unwrap_or(0)),
            _ => Key::Text(self.text(r.value)),
        }
    }

    fn key_at(&self, i: u32) -> Key<'_> {
        match self.records.get(i as usize) {
            Some(r) => self.key(r),
            None => Key::Text(&[]),
        }
    }

    fn value(&self, r: &Record) -> String {
        match self.key(r) {
            Key::V4(a) => Ipv4Addr::from(a).to_string(),
            Key::V6(a) => Ipv6Addr::from(a).to_string(),
            Key::Text(t) => String::from_utf8_lossy(t).into_owned(),
        }
    }
}

/// The index.
#[derive(Default)]
pub struct IndicatorIndex {
    store: Records,
    /// IPv4 addresses → first record with that address (the slot tag is the address itself:
    /// no record is touched to confirm a match).
    v4: Table,
    /// Other exact values → first record with that value (tag: high half of the hash).
    exact: Table,
    /// Bit per /16 (IPv4, then IPv6 by its first 16 bits) overlapped by a listed network: an
    /// address outside them skips the trie.
    net_filter: Vec<u64>,
    /// Record → next record with the same exact value or network (insertion order).
    next: HashMap<u32, u32, Hasher>,
    /// Networks → first record with that network.
    networks: JointPrefixMap<IpNet, u32>,
    network_count: usize,
    profiles: Vec<Profile>,
    profile_ix: HashMap<Profile, u32, Hasher>,
    /// Values of kind cidr that are not networks → first record (kept for their ids only).
    unlisted: HashMap<Box<str>, u32, Hasher>,
    /// Ids that are not `indicator_id(kind, value)`, both ways.
    odd_ids: HashMap<Box<str>, u32, Hasher>,
    odd_id_of: HashMap<u32, Box<str>, Hasher>,
}

impl std::fmt::Debug for IndicatorIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndicatorIndex")
            .field("indicators", &self.len())
            .field("networks", &self.network_count)
            .field("profiles", &self.profiles.len())
            .field("memory_bytes", &self.memory_bytes())
            .finish()
    }
}

impl std::fmt::Debug for Hit<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hit")
            .field("indicator", &self.indicator())
            .field("matched", &self.matched)
            .finish()
    }
}

impl<'a> Hit<'a> {
    fn profile(&self) -> Option<&'a Profile> {
        self.index.profiles.get(self.record.profile as usize)
    }

    /// The indicator, rebuilt (allocates; the accessors below do not).
    pub fn indicator(&self) -> IndicatorEntry {
        self.index.materialize(self.position, self.record)
    }

    /// Position of the indicator in the index (insertion order).
    pub fn position(&self) -> usize {
        self.position as usize
    }

    /// Kind of the indicator.
    pub fn kind(&self) -> IndicatorKind {
        self.record.kind
    }

    /// The threat it belongs to.
    pub fn threat_id(&self) -> Option<&'a str> {
        self.profile().and_then(|p| p.threat_id.as_deref())
    }

    /// The family name as the source gave it.
    pub fn family(&self) -> Option<&'a str> {
        self.profile().and_then(|p| p.family.as_deref())
    }

    /// Where it comes from.
    pub fn source(&self) -> &'a str {
        self.profile().map_or("", |p| &p.source)
    }

    /// Sharing label.
    pub fn tlp(&self) -> Tlp {
        self.profile().map_or(Tlp::Red, |p| p.tlp)
    }

    /// Confidence 0–100.
    pub fn confidence(&self) -> u8 {
        self.profile().map_or(0, |p| p.confidence)
    }

    /// The listed port.
    pub fn port(&self) -> Option<u16> {
        (self.record.flags & HAS_PORT != 0).then_some(self.record.port)
    }
}

impl Serialize for Hit<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Out {
            indicator: IndicatorEntry,
            matched: MatchKind,
        }
        Out {
            indicator: self.indicator(),
            matched: self.matched,
        }
        .serialize(s)
    }
}

/// What loading one bundled list did.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// The list.
    pub list: String,
    /// Indicators added.
    pub indicators: usize,
    /// Lines skipped.
    pub skipped: usize,
    /// The threat the list was linked to.
    pub threat_id: Option<String>,
}

/// True when `id` is [`indicator_id`]`(kind, value)` (computed without allocating).
fn id_is_derived(id: &str, kind: IndicatorKind, value: &str) -> bool {
    let Some(hex_part) = id.strip_prefix("ind_") else {
        return false;
    };
    if hex_part.len() != 32 {
        return false;
    }
    let mut h = Sha256::new();
    h.update(kind.as_str().as_bytes());
    h.update(b":");
    h.update(value.as_bytes());
    let digest = h.finalize();
    let mut buf = [0u8; 32];
    hex::encode_to_slice(&digest[..16], &mut buf).is_ok() && buf == hex_part.as_bytes()
}

/// True when `s` is a domain name already in canonical form (lower-case ASCII letters, digits,
/// `-`, `_`, at least two labels of 1–63 bytes, no IDNA label, not an address), i.e. when
/// [`canonicalize`] would return it unchanged as a domain.
fn plain_domain(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 253
        && b.contains(&b'.')
        && b.iter().all(|&c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'_' || c == b'.'
        })
        && !s.contains("xn--")
        && s.split('.').all(|l| !l.is_empty() && l.len() <= 63)
        && s.parse::<Ipv4Addr>().is_err()
}

/// [`canonicalize`], borrowing `raw` when it is already canonical (a plain IPv4 literal or a
/// plain domain name): same answer, no allocation in the common case.
fn canonicalize_fast(raw: &str) -> Result<(IndicatorKind, Cow<'_, str>), IndicatorError> {
    // The standard parser is strict (four decimal octets, no leading zeros, no spaces), so a
    // literal it accepts is spelled canonically.
    if raw.parse::<Ipv4Addr>().is_ok() {
        return Ok((IndicatorKind::Ipv4, Cow::Borrowed(raw)));
    }
    if plain_domain(raw) {
        return Ok((IndicatorKind::Domain, Cow::Borrowed(raw)));
    }
    canonicalize(raw).map(|(k, v)| (k, Cow::Owned(v)))
}

impl IndicatorIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty index with room for `n` indicators.
    pub fn with_capacity(n: usize) -> Self {
        let mut ix = Self::default();
        ix.reserve(n);
        ix
    }

    /// Makes room for `additional` more indicators (avoids rehashing while building).
    pub fn reserve(&mut self, additional: usize) {
        self.store.records.reserve(additional);
    }

    /// The first record listing exact value `key`.
    fn find_head(&self, key: Key<'_>) -> Option<u32> {
        let store = &self.store;
        match key {
            Key::V4(a) => self.v4.find(store.hash(key), a, |_| true),
            _ => {
                let h = store.hash(key);
                self.exact
                    .find(h, (h >> 32) as u32, |i| store.key_at(i) == key)
            }
        }
    }

    /// Lists `record` as the first record of exact value `key` (known to be absent).
    fn insert_head(&mut self, key: Key<'_>, record: u32) {
        let store = &self.store;
        let h = store.hash(key);
        match key {
            Key::V4(a) => self.v4.insert(h, a, record, |t, _| store.hash(Key::V4(t))),
            _ => self.exact.insert(h, (h >> 32) as u32, record, |_, r| {
                store.hash(store.key_at(r))
            }),
        }
    }

    /// Whether the network filter lets `ip` through to the trie.
    fn maybe_in_network(&self, ip: IpAddr) -> bool {
        let bit = match ip {
            IpAddr::V4(a) => (u32::from(a) >> 16) as usize,
            IpAddr::V6(a) => 0x1_0000 + (u128::from(a) >> 112) as usize,
        };
        self.net_filter
            .get(bit / 64)
            .is_some_and(|w| w & (1 << (bit % 64)) != 0)
    }

    /// Marks the /16s `net` overlaps in the network filter.
    fn filter_network(&mut self, net: &IpNet) {
        if self.net_filter.is_empty() {
            self.net_filter = vec![0; 2 * 0x1_0000 / 64];
        }
        let (base, first, len) = match net.trunc() {
            IpNet::V4(n) => (
                0usize,
                (u32::from(n.network()) >> 16) as usize,
                n.prefix_len(),
            ),
            IpNet::V6(n) => (
                0x1_0000,
                (u128::from(n.network()) >> 112) as usize,
                n.prefix_len(),
            ),
        };
        let count = if len >= 16 { 1 } else { 1usize << (16 - len) };
        for bit in base + first..base + first + count {
            if let Some(w) = self.net_filter.get_mut(bit / 64) {
                *w |= 1 << (bit % 64);
            }
        }
    }

    /// Number of indicators.
    pub fn len(&self) -> usize {
        self.store.records.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.store.records.is_empty()
    }

    /// An estimate of the heap memory the index holds, in bytes.
    pub fn memory_bytes(&self) -> usize {
        let map_entry = |k: usize| k + 1;
        let profiles: usize = self
            .profiles
            .iter()
            .map(|p| {
                2 * (std::mem::size_of::<Profile>()
                    + p.threat_id.as_ref().map_or(0, |s| s.len())
                    + p.family.as_ref().map_or(0, |s| s.len())
                    + p.source.len())
            })
            .sum();
        let odd: usize = self.odd_ids.keys().map(|k| 2 * k.len() + 48).sum();
        self.store.records.capacity() * std::mem::size_of::<Record>()
            + self.store.arena.capacity()
            + self.store.v6.capacity() * 16
            + self.exact.slots.capacity() * 8
            + self.v4.slots.capacity() * 8
            + self.net_filter.capacity() * 8
            + self.next.capacity() * map_entry(8)
            + self.network_count * 64
            + profiles
            + odd
    }

    /// Every indicator, rebuilt, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = IndicatorEntry> + '_ {
        self.store
            .records
            .iter()
            .enumerate()
            .map(|(i, r)| self.materialize(i as u32, r))
    }

    fn materialize(&self, position: u32, r: &Record) -> IndicatorEntry {
        let value = self.store.value(r);
        let id = if r.flags & DERIVED_ID != 0 {
            indicator_id(r.kind, &value)
        } else {
            self.odd_id_of
                .get(&position)
                .map(|s| s.to_string())
                .unwrap_or_default()
        };
        let p = self.profiles.get(r.profile as usize);
        IndicatorEntry {
            id,
            kind: r.kind,
            value,
            threat_id: p.and_then(|p| p.threat_id.as_deref().map(str::to_string)),
            family: p.and_then(|p| p.family.as_deref().map(str::to_string)),
            port: (r.flags & HAS_PORT != 0).then_some(r.port),
            confidence: p.map_or(0, |p| p.confidence),
            tlp: p.map_or(Tlp::Red, |p| p.tlp),
            source: p.map(|p| p.source.to_string()).unwrap_or_default(),
        }
    }

    fn intern_profile(&mut self, p: Profile) -> u32 {
        // Consecutive indicators usually share their profile: compare with the last one first.
        if let Some(last) = self.profiles.len().checked_sub(1)
            && self.profiles.get(last) == Some(&p)
        {
            return last as u32;
        }
        if let Some(&i) = self.profile_ix.get(&p) {
            return i;
        }
        let i = self.profiles.len() as u32;
        self.profiles.push(p.clone());
        self.profile_ix.insert(p, i);
        i
    }

    /// The chain of records starting at `head`.
    fn chain(&self, head: u32) -> impl Iterator<Item = u32> + '_ {
        std::iter::successors(Some(head), |i| self.next.get(i).copied())
    }

    fn append_chain(&mut self, head: u32, record: u32) {
        let tail = self.chain(head).last().unwrap_or(head);
        self.next.insert(tail, record);
    }

    /// Adds an indicator; returns false (and keeps the first) when its id is already present.
    pub fn insert(&mut self, e: IndicatorEntry) -> bool {
        let Ok(position) = u32::try_from(self.store.records.len()) else {
            return false;
        };
        if position == u32::MAX || self.odd_ids.contains_key(e.id.as_str()) {
            return false;
        }
        let IndicatorEntry {
            id,
            kind,
            value,
            threat_id,
            family,
            port,
            confidence,
            tlp,
            source,
        } = e;
        let derived = id_is_derived(&id, kind, &value);
        let net = match kind {
            IndicatorKind::Cidr => Some(value.parse::<IpNet>().ok()),
            _ => None,
        };
        // Networks (and values of kind cidr that are not networks) keep their text; other values
        // are keyed by `Key::of`.
        let key = match net {
            Some(_) => Key::Text(value.as_bytes()),
            None => Key::of(&value),
        };
        let mut flags = if derived { DERIVED_ID } else { 0 };
        let head = match net {
            Some(Some(n)) => {
                flags |= IN_TRIE;
                self.networks.get(&n).copied()
            }
            Some(None) => {
                flags |= UNLISTED;
                self.unlisted.get(value.as_str()).copied()
            }
            None => self.find_head(key),
        };
        // A derived id is present exactly when a record of the same kind and value with a derived
        // id is: it would be on this chain.
        if derived
            && let Some(h) = head
            && self.chain(h).any(|i| {
                self.store.records.get(i as usize).is_some_and(|r| {
                    r.kind == kind && r.flags & DERIVED_ID != 0 && self.store.key(r) == key
                })
            })
        {
            return false;
        }
        // The value: binary when the text is an address spelled canonically, else in the arena.
        let stored = match key {
            Key::V4(a) => a,
            Key::V6(a) => {
                let Ok(i) = u32::try_from(self.store.v6.len()) else {
                    return false;
                };
                self.store.v6.push(a);
                flags |= REPR_V6;
                i
            }
            Key::Text(t) => {
                let Some(off) = self.store.push_text(t) else {
                    return false;
                };
                flags |= REPR_TEXT;
                off
            }
        };
        if port.is_some() {
            flags |= HAS_PORT;
        }
        match (net, head) {
            (_, Some(h)) => self.append_chain(h, position),
            (Some(Some(n)), None) => {
                self.networks.insert(n, position);
                self.filter_network(&n);
                self.network_count += 1;
            }
            (Some(None), None) => {
                self.unlisted.insert(value.as_str().into(), position);
            }
            (None, None) => self.insert_head(key, position),
        }
        if !derived {
            let id: Box<str> = id.into_boxed_str();
            self.odd_ids.insert(id.clone(), position);
            self.odd_id_of.insert(position, id);
        }
        let profile = self.intern_profile(Profile {
            threat_id: threat_id.map(String::into_boxed_str),
            family: family.map(String::into_boxed_str),
            source: source.into_boxed_str(),
            confidence,
            tlp,
        });
        self.store.records.push(Record {
            value: stored,
            profile,
            port: port.unwrap_or(0),
            kind,
            flags,
        });
        true
    }

    /// The bundled C2 lists, linked to `kb`'s threats.
    pub fn bundled(kb: &KnowledgeBase) -> (IndicatorIndex, Vec<LoadReport>) {
        let mut index = IndicatorIndex::new();
        let mut reports = Vec::new();
        for (family, gz) in crate::intel::BUNDLED_LISTS {
            let threat_id = kb.get(family).map(|t| t.id.clone());
            let reader = flate2::read::GzDecoder::new(*gz);
            let (indicators, skipped) =
                match parse_reader(Some(Format::Maltrail), reader, Some(family)) {
                    Ok(r) => (r.indicators, r.skipped_count),
                    Err(_) => (Vec::new(), 0),
                };
            index.reserve(indicators.len());
            let mut added = 0;
            for ind in indicators {
                let e = IndicatorEntry {
                    id: ind.id,
                    kind: ind.kind,
                    value: ind.value,
                    threat_id: threat_id.clone(),
                    family: Some((*family).to_string()),
                    port: ind.port,
                    confidence: 80,
                    tlp: Tlp::Clear,
                    source: "maltrail".to_string(),
                };
                if index.insert(e) {
                    added += 1;
                }
            }
            reports.push(LoadReport {
                list: (*family).to_string(),
                indicators: added,
                skipped,
                threat_id,
            });
        }
        (index, reports)
    }

    fn push_chain<'a>(&'a self, head: u32, matched: MatchKind, out: &mut Vec<Hit<'a>>) {
        let mut i = head;
        loop {
            // Taking the reference reads nothing: a hit touches its record only when asked.
            if let Some(record) = self.store.records.get(i as usize) {
                out.push(Hit {
                    index: self,
                    record,
                    position: i,
                    matched,
                });
            }
            if self.next.is_empty() {
                return;
            }
            match self.next.get(&i) {
                Some(&n) => i = n,
                None => return,
            }
        }
    }

    fn push_exact<'a>(&'a self, key: Key<'_>, matched: MatchKind, out: &mut Vec<Hit<'a>>) {
        if let Some(head) = self.find_head(key) {
            self.push_chain(head, matched, out);
        }
    }

    fn push_networks<'a>(&'a self, net: &IpNet, out: &mut Vec<Hit<'a>>) {
        if self.network_count == 0 {
            return;
        }
        for &head in self.networks.cover_values(net) {
            self.push_chain(head, MatchKind::Network, out);
        }
    }

    fn push_domain<'a>(&'a self, domain: &str, out: &mut Vec<Hit<'a>>) {
        self.push_exact(Key::Text(domain.as_bytes()), MatchKind::Exact, out);
        let mut rest = domain;
        while let Some((_, parent)) = rest.split_once('.') {
            if !parent.contains('.') {
                break;
            }
            self.push_exact(Key::Text(parent.as_bytes()), MatchKind::ParentDomain, out);
            rest = parent;
        }
    }

    /// Every indicator matching the address `ip` (exact, then the listed networks containing
    /// it), appended to `out`. No text, no allocation beyond `out`'s growth. IPv4-mapped IPv6
    /// is folded to IPv4, as [`canonicalize`] does.
    pub fn lookup_ip<'a>(&'a self, ip: IpAddr, out: &mut Vec<Hit<'a>>) {
        let ip = fold_ip(ip);
        self.push_exact(Key::ip(ip), MatchKind::Exact, out);
        if self.maybe_in_network(ip) {
            self.push_networks(&IpNet::from(ip), out);
        }
    }

    /// True when the address `ip` matches anything (exact or network); no allocation, and for
    /// an IPv4 address one probe of the address table (no record is read).
    pub fn contains_ip(&self, ip: IpAddr) -> bool {
        let ip = fold_ip(ip);
        let key = Key::ip(ip);
        self.contains_folded(ip, self.store.hash(key))
    }

    /// [`IndicatorIndex::contains_ip`] of a folded address whose key hashes to `h`.
    fn contains_folded(&self, ip: IpAddr, h: u64) -> bool {
        let exact = match ip {
            IpAddr::V4(a) => self.v4.find(h, u32::from(a), |_| true).is_some(),
            IpAddr::V6(_) => self.find_head(Key::ip(ip)).is_some(),
        };
        exact
            || (self.maybe_in_network(ip)
                && self
                    .networks
                    .cover_values(&IpNet::from(ip))
                    .next()
                    .is_some())
    }

    /// For each address of `ips`, whether it matches anything: appends
    /// `contains_ip(ips[i])` to `out`. Looks blocks of addresses up together: the first slot of
    /// every address of a block is loaded before any is examined, so their cache misses overlap.
    pub fn contains_ips(&self, ips: &[IpAddr], out: &mut Vec<bool>) {
        const BLOCK: usize = 16;
        let mut hashes = [0u64; BLOCK];
        out.reserve(ips.len());
        for block in ips.chunks(BLOCK) {
            let mut touched = 0u64;
            for (h, ip) in hashes.iter_mut().zip(block) {
                let ip = fold_ip(*ip);
                *h = self.store.hash(Key::ip(ip));
                if ip.is_ipv4() {
                    touched ^= self.v4.touch(*h);
                }
            }
            std::hint::black_box(touched);
            for (h, ip) in hashes.iter().zip(block) {
                out.push(self.contains_folded(fold_ip(*ip), *h));
            }
        }
    }

    /// Every indicator matching `value`, which is already canonical for `kind` (as
    /// [`canonicalize`] returns it), appended to `out`, most specific first. Skips
    /// canonicalisation; allocates nothing beyond `out`'s growth (a URL whose host is not plain
    /// is the exception: its host is canonicalised).
    pub fn lookup_canonical<'a>(
        &'a self,
        kind: IndicatorKind,
        value: &str,
        out: &mut Vec<Hit<'a>>,
    ) {
        match kind {
            IndicatorKind::Ipv4 | IndicatorKind::Ipv6 => {
                if let Ok(ip) = value.parse::<IpAddr>() {
                    self.lookup_ip(ip, out);
                }
            }
            IndicatorKind::Cidr => {
                if let Ok(net) = value.parse::<IpNet>() {
                    self.push_networks(&net, out);
                }
            }
            IndicatorKind::Domain => self.push_domain(value, out),
            IndicatorKind::Url => {
                self.push_exact(Key::Text(value.as_bytes()), MatchKind::Exact, out);
                if let Some(host) = url_host(value) {
                    let before = out.len();
                    if let Ok(ip) = host.parse::<IpAddr>() {
                        self.lookup_ip(ip, out);
                    } else if plain_domain(host) {
                        self.push_domain(host, out);
                    } else if let Ok((hk, hv)) = canonicalize(host) {
                        match hk {
                            IndicatorKind::Domain => self.push_domain(&hv, out),
                            IndicatorKind::Ipv4 | IndicatorKind::Ipv6 => {
                                if let Ok(ip) = hv.parse::<IpAddr>() {
                                    self.lookup_ip(ip, out);
                                }
                            }
                            _ => {}
                        }
                    }
                    for h in out.iter_mut().skip(before) {
                        h.matched = MatchKind::UrlHost;
                    }
                }
            }
            IndicatorKind::Md5 | IndicatorKind::Sha1 | IndicatorKind::Sha256 => {
                self.push_exact(Key::Text(value.as_bytes()), MatchKind::Exact, out);
            }
        }
    }

    /// [`IndicatorIndex::lookup`] into a caller's (reusable) vector: canonicalises `raw`,
    /// appends the hits to `out`, returns the canonical kind and value.
    pub fn lookup_into<'a>(
        &'a self,
        raw: &str,
        out: &mut Vec<Hit<'a>>,
    ) -> Result<(IndicatorKind, String), IndicatorError> {
        let (kind, value) = canonicalize_fast(raw)?;
        self.lookup_canonical(kind, &value, out);
        Ok((kind, value.into_owned()))
    }

    /// Every indicator matching `raw` (any kind, auto-detected): its canonical kind and value,
    /// and the hits, most specific first.
    pub fn lookup(
        &self,
        raw: &str,
    ) -> Result<(IndicatorKind, String, Vec<Hit<'_>>), IndicatorError> {
        let mut out = Vec::new();
        let (kind, value) = self.lookup_into(raw, &mut out)?;
        Ok((kind, value, out))
    }

    /// The threat a check-in talks to, from its C2 host name (exact or parent domain), its URL,
    /// or its destination address: `(threat id, what matched)`. Allocates only for the answer
    /// (and to canonicalise a host or URL that is not already canonical).
    pub fn classify(
        &self,
        host: Option<&str>,
        url: Option<&str>,
        dst_ip: Option<IpAddr>,
    ) -> Option<(String, String)> {
        if self.is_empty() {
            return None;
        }
        let mut hits = Vec::new();
        let first = |hits: &[Hit<'_>]| hits.iter().find_map(|h| h.threat_id()).map(str::to_string);
        if let Some(h) = host
            && let Ok((kind, v)) = canonicalize_fast(h)
        {
            self.lookup_canonical(kind, &v, &mut hits);
            if let Some(t) = first(&hits) {
                return Some((t, format!("host:{v}")));
            }
            hits.clear();
        }
        if let Some(u) = url
            && let Ok((IndicatorKind::Url, v)) = canonicalize_fast(u)
        {
            self.lookup_canonical(IndicatorKind::Url, &v, &mut hits);
            if let Some(t) = first(&hits) {
                return Some((t, format!("url:{v}")));
            }
            hits.clear();
        }
        if let Some(ip) = dst_ip {
            self.lookup_ip(ip, &mut hits);
            if let Some(t) = first(&hits) {
                return Some((t, format!("dst_ip:{}", fold_ip(ip))));
            }
        }
        None
    }
}

/// The host part of a canonical URL.
fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split_once(']').map(|(h, _)| h);
    }
    Some(authority.rsplit_once(':').map_or(authority, |(h, _)| h))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: IndicatorKind, value: &str, threat: &str) -> IndicatorEntry {
        IndicatorEntry {
            id: indicator_id(kind, value),
            kind,
            value: value.to_string(),
            threat_id: Some(threat.to_string()),
            family: None,
            port: None,
            confidence: 80,
            tlp: Tlp::Clear,
            source: "test".into(),
        }
    }

    #[test]
    fn ips_networks_parents_and_url_hosts_match() {
        let mut ix = IndicatorIndex::new();
        assert!(ix.insert(entry(IndicatorKind::Ipv4, "192.0.2.7", "emotet")));
        assert!(
            !ix.insert(entry(IndicatorKind::Ipv4, "192.0.2.7", "emotet")),
            "dedup by id"
        );
        ix.insert(entry(IndicatorKind::Cidr, "198.51.100.0/24", "qakbot"));
        ix.insert(entry(IndicatorKind::Domain, "evil.example", "trickbot"));
        ix.insert(entry(
            IndicatorKind::Url,
            "http://shop.example/gate.php",
            "icedid",
        ));
        let kinds = |v: &str| -> Vec<(String, MatchKind)> {
            ix.lookup(v)
                .expect("valid")
                .2
                .iter()
                .map(|h| (h.threat_id().unwrap_or_default().to_string(), h.matched))
                .collect()
        };
        assert_eq!(
            kinds("192.0.2.7"),
            vec![("emotet".into(), MatchKind::Exact)]
        );
        assert_eq!(
            kinds("::ffff:192.0.2.7"),
            vec![("emotet".into(), MatchKind::Exact)]
        );
        assert_eq!(
            kinds("198.51.100.9"),
            vec![("qakbot".into(), MatchKind::Network)]
        );
        assert_eq!(
            kinds("a.b.EVIL.example."),
            vec![("trickbot".into(), MatchKind::ParentDomain)]
        );
        assert_eq!(
            kinds("hxxp://evil[.]example/x"),
            vec![("trickbot".into(), MatchKind::UrlHost)]
        );
        assert_eq!(
            kinds("HTTP://shop.example:80/gate.php"),
            vec![("icedid".into(), MatchKind::Exact)]
        );
        assert!(kinds("203.0.113.1").is_empty());
        assert!(
            ix.lookup("example").is_err(),
            "a single label is not a domain"
        );
        assert_eq!(
            ix.classify(Some("x.evil.example"), None, None),
            Some(("trickbot".into(), "host:x.evil.example".into()))
        );
        assert_eq!(
            ix.classify(None, None, "198.51.100.200".parse().ok()),
            Some(("qakbot".into(), "dst_ip:198.51.100.200".into()))
        );
        assert_eq!(
            ix.classify(Some("benign.example"), None, "203.0.113.1".parse().ok()),
            None
        );
    }

    #[test]
    fn the_bundled_lists_load_and_link_to_threats() {
        let kb = KnowledgeBase::bundled().expect("kb");
        let (ix, reports) = IndicatorIndex::bundled(&kb);
        assert_eq!(reports.len(), 17);
        assert!(ix.len() > 100_000, "{} indicators", ix.len());
        for r in &reports {
            assert!(r.indicators > 100, "{r:?}");
            assert!(
                r.threat_id.is_some(),
                "every bundled list has a documented threat: {r:?}"
            );
        }
        // A real line of the emotet list resolves to Emotet.
        let text = {
            use std::io::Read;
            let gz = crate::intel::BUNDLED_LISTS
                .iter()
                .find(|(f, _)| *f == "emotet")
                .expect("emotet")
                .1;
            let mut s = String::new();
            flate2::read::GzDecoder::new(gz)
                .read_to_string(&mut s)
                .expect("gunzip");
            s
        };
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#') && !l.contains('/') && !l.contains(':'))
            .expect("a plain line");
        let (_, _, hits) = ix.lookup(line).expect("lookup");
        assert!(
            hits.iter().any(|h| h.threat_id() == Some("emotet")
                && h.indicator().threat_id.as_deref() == Some("emotet")),
            "{line}"
        );
    }

    #[test]
    fn entries_round_trip_and_ids_dedup() {
        let mut ix = IndicatorIndex::with_capacity(4);
        let mut entries = vec![
            entry(IndicatorKind::Ipv4, "192.0.2.7", "emotet"),
            entry(IndicatorKind::Ipv6, "2001:db8::1", "qakbot"),
            entry(IndicatorKind::Cidr, "2001:db8:1::/48", "qakbot"),
            entry(IndicatorKind::Domain, "evil.example", "trickbot"),
            entry(IndicatorKind::Sha256, &"ab".repeat(32), "icedid"),
            entry(
                IndicatorKind::Url,
                &format!("http://long.example/{}", "x".repeat(300)),
                "icedid",
            ),
        ];
        entries[0].port = Some(8080);
        entries[1].family = Some("QakBot".into());
        entries[2].tlp = Tlp::Amber;
        entries[3].confidence = 55;
        entries[3].threat_id = None;
        // An id that is not derived from the value, and a second one on the same value.
        let mut odd = entry(IndicatorKind::Domain, "evil.example", "other");
        odd.id = "custom-1".into();
        entries.push(odd.clone());
        let mut odd2 = odd.clone();
        odd2.id = "custom-2".into();
        entries.push(odd2);
        // A network value that does not parse: kept, never matched.
        let mut bad = entry(IndicatorKind::Cidr, "not-a-net/8", "emotet");
        bad.id = indicator_id(IndicatorKind::Cidr, "not-a-net/8");
        entries.push(bad);
        for e in &entries {
            assert!(ix.insert(e.clone()), "{e:?}");
        }
        assert!(!ix.insert(odd), "an odd id is deduplicated too");
        assert!(!ix.insert(entries[8].clone()), "so is an unlisted value");
        assert!(!ix.insert(entries[4].clone()));
        assert_eq!(ix.len(), entries.len());
        assert_eq!(ix.iter().collect::<Vec<_>>(), entries);
        assert!(ix.memory_bytes() > 0);

        let (_, _, hits) = ix.lookup("x.evil.example").expect("valid");
        let threats: Vec<Option<&str>> = hits.iter().map(|h| h.threat_id()).collect();
        assert_eq!(
            threats,
            vec![None, Some("other"), Some("other")],
            "insertion order"
        );
        assert_eq!(hits[0].indicator(), entries[3]);
        assert_eq!(hits[0].confidence(), 55);
        let (_, _, hits) = ix.lookup("2001:db8:1::5").expect("valid");
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].matched, MatchKind::Network);
        assert_eq!(hits[0].tlp(), Tlp::Amber);
        assert_eq!(
            ix.lookup("2001:DB8::1").expect("valid").2[0].family(),
            Some("QakBot")
        );
        assert_eq!(
            ix.lookup("192.0.2.7").expect("valid").2[0].port(),
            Some(8080)
        );
        assert_eq!(ix.lookup(&"AB".repeat(32)).expect("valid").2.len(), 1);
        assert!(
            ix.lookup("not-a-net/8").is_err() || ix.lookup("not-a-net/8").expect("ok").2.is_empty()
        );

        // JSON of a hit: {"indicator": {...}, "matched": ...}.
        let (_, _, hits) = ix.lookup("192.0.2.7").expect("valid");
        let v = serde_json::to_value(hits[0]).expect("json");
        assert_eq!(
            v,
            serde_json::json!({"indicator": serde_json::to_value(&entries[0]).expect("json"), "matched": "exact"})
        );
    }

    #[test]
    fn typed_and_string_lookups_agree() {
        let mut ix = IndicatorIndex::new();
        for i in 0..2000u32 {
            let ip = Ipv4Addr::from(0x0a00_0000 + i * 7).to_string();
            ix.insert(entry(IndicatorKind::Ipv4, &ip, "emotet"));
        }
        ix.insert(entry(IndicatorKind::Cidr, "172.16.0.0/12", "qakbot"));
        ix.insert(entry(IndicatorKind::Ipv4, "192.0.2.1", "redline"));
        let ips: Vec<IpAddr> = (0..20_000u32)
            .map(|i| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)))
            .chain(
                ["172.20.1.1", "::ffff:192.0.2.1", "2001:db8::9"]
                    .iter()
                    .filter_map(|s| s.parse().ok()),
            )
            .collect();
        let mut flags = Vec::new();
        ix.contains_ips(&ips, &mut flags);
        let mut hits = Vec::new();
        for (ip, flag) in ips.iter().zip(&flags) {
            hits.clear();
            ix.lookup_ip(*ip, &mut hits);
            let by_text = ix.lookup(&ip.to_string()).expect("valid").2;
            assert_eq!(hits.len(), by_text.len(), "{ip}");
            assert_eq!(*flag, !hits.is_empty(), "{ip}");
            assert_eq!(ix.contains_ip(*ip), !hits.is_empty(), "{ip}");
        }
        assert_eq!(flags.iter().filter(|f| **f).count(), 2000 + 2);
    }

    #[test]
    fn the_fast_canonical_forms_agree_with_canonicalize() {
        for s in [
            "192.0.2.7",
            "10.0.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "01.2.3.4",
            "1.2.3",
            "1.2.3.4.5",
            " 1.2.3.4",
            "evil.example",
            "a.b.c.example",
            "EVIL.example",
            "evil.example.",
            "xn--bcher-kva.de",
            "a..b",
            "single",
            "a_b.example",
            "-x.example",
            "1.2.3.example",
            "evil[.]example",
            "d41d8cd98f00b204e9800998ecf8427e",
            "x.d41d8cd98f00b204e9800998ecf8427e",
            "http://evil.example/",
            "evil.example/x",
            "evil.example:80",
            "",
        ] {
            let fast = canonicalize_fast(s).map(|(k, v)| (k, v.into_owned()));
            assert_eq!(fast, canonicalize(s), "{s:?}");
        }
        let long = format!("{}.example", "a".repeat(64));
        assert_eq!(
            canonicalize_fast(&long).map(|(k, v)| (k, v.into_owned())),
            canonicalize(&long)
        );
        for (k, v) in [
            (IndicatorKind::Ipv4, "192.0.2.7"),
            (IndicatorKind::Url, "http://evil.example/gate.php"),
            (IndicatorKind::Md5, "d41d8cd98f00b204e9800998ecf8427e"),
        ] {
            assert!(id_is_derived(&indicator_id(k, v), k, v));
            assert!(!id_is_derived(&indicator_id(k, v), k, "other"));
        }
    }
}
