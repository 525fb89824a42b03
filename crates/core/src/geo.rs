//! IP → ASN, AS name and country enrichment.
//!
//! [`GeoDb`] is an immutable table of sorted, non-overlapping address ranges: one table for
//! ASNs and one for countries, each split by family (`u32` keys for IPv4, `u128` for IPv6).
//! A lookup is two binary searches over plain vectors: no lock, no allocation. IPv4-mapped IPv6
//! addresses (`::ffff:a.b.c.d`) are looked up as IPv4.
//!
//! Memory layout (per range): start key, end key and a value index, in parallel vectors. ASN
//! values index a table of distinct (ASN, name) pairs; AS names are interned into one `String`
//! with end offsets; countries are two-letter codes packed into one `String`, indexed by `u16`.
//!
//! [`GeoBuilder`] imports CSV (`first_ip,last_ip,asn,org` / `first_ip,last_ip,cc`, as published
//! by ip-location-db) and iptoasn.com TSV, plain or gzip. Odd lines are skipped and reported
//! with their line number; one bad line never aborts a file. Where ranges overlap,
//! [`GeoBuilder::build`] resolves deterministically:
//!
//! 1. a row from a later `add_*` call wins over rows from earlier calls (so a corrections file
//!    can be layered over a base file);
//! 2. within one call, the narrower range wins (the most specific, as with longest-prefix match);
//! 3. between equally wide ranges of one call, the later line wins.
//!
//! Adjacent ranges with the same value are merged.
//!
//! # Snapshot format (version 1)
//!
//! A gzip stream whose content is the magic `TFGEOSNP`, a little-endian `u32` version, then
//! (all integers LEB128 varints unless noted):
//!
//! - names: count, each length, then the concatenated UTF-8 bytes;
//! - AS entries: count, each ASN, then each name reference (0 = none, `i + 1` = name `i`);
//! - countries: count, then two ASCII upper-case letters each;
//! - four range tables (ASN v4, ASN v6, country v4, country v6), each: count, then a column of
//!   gaps (start minus previous end minus one; the first start as is), a column of sizes
//!   (`end - start + 1`, wrapping, so 0 stands for the whole IPv6 space), a column of value
//!   indexes. In IPv6 tables gaps and sizes are written as a trailing-zero count byte followed
//!   by the varint of the value shifted right by it.
//!
//! Loading validates everything (order, bounds, indexes, UTF-8) and never panics on bad input.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr};

use flate2::Compression;
use flate2::read::{GzDecoder, MultiGzDecoder};
use flate2::write::GzEncoder;
use serde::Serialize;

/// The snapshot bundled with the product (see `data/geo/README.md`).
static EMBEDDED: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../data/geo/snapshot.tfgeo.gz"
));

/// First bytes of a decompressed snapshot.
const MAGIC: [u8; 8] = *b"TFGEOSNP";
/// The snapshot format version written and read.
const VERSION: u32 = 1;
/// Upper bound on a decompressed snapshot (guards against gzip bombs).
const MAX_SNAPSHOT_BYTES: u64 = 512 << 20;
/// Longest accepted input line; longer lines are skipped.
const MAX_LINE: usize = 64 * 1024;
/// How many skipped lines [`ImportStats::skipped`] lists (all are counted).
const MAX_SKIPPED: usize = 100;
/// "No name" in [`GeoDb::as_name_ids`].
const NO_NAME: u32 = u32::MAX;

/// What the geo table knows about one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GeoInfo<'a> {
    /// Autonomous system number.
    pub asn: Option<u32>,
    /// Autonomous system organisation.
    pub as_name: Option<&'a str>,
    /// ISO 3166-1 alpha-2 country code, upper case.
    pub country: Option<&'a str>,
}

/// Errors loading or building a geo table.
#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    /// A malformed input.
    #[error("{0}")]
    Format(String),
    /// I/O.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Sizes of a [`GeoDb`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct GeoStats {
    /// IPv4 ranges with an ASN.
    pub asn_ranges_v4: usize,
    /// IPv6 ranges with an ASN.
    pub asn_ranges_v6: usize,
    /// IPv4 ranges with a country.
    pub country_ranges_v4: usize,
    /// IPv6 ranges with a country.
    pub country_ranges_v6: usize,
}

/// The outcome of one import call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportStats {
    /// Data rows accepted.
    pub rows: usize,
    /// The first skipped lines, as `line N: reason: value` (at most 100 listed).
    pub skipped: Vec<String>,
    /// How many lines were skipped in all.
    pub skipped_count: usize,
}

impl ImportStats {
    fn skip(&mut self, line: usize, reason: &str, value: &str) {
        self.skipped_count += 1;
        if self.skipped.len() < MAX_SKIPPED {
            let value = clip(value, 80);
            self.skipped.push(if value.is_empty() {
                format!("line {line}: {reason}")
            } else {
                format!("line {line}: {reason}: {value}")
            });
        }
    }
}

/// At most `max` characters of `s`, with an ellipsis when cut.
fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Sorted, non-overlapping inclusive ranges with one value each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Ranges<K, V> {
    starts: Vec<K>,
    ends: Vec<K>,
    values: Vec<V>,
    /// IPv4 only: for each /16, the index of the first range starting at or after it (plus one
    /// final entry), built on first lookup; narrows the binary search to one /16's ranges.
    buckets: Buckets,
}

/// A derived lookup index: built once, ignored by equality.
#[derive(Debug, Clone, Default)]
struct Buckets(std::sync::OnceLock<Vec<u32>>);

impl PartialEq for Buckets {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Buckets {}

impl<V: Copy> Ranges<u32, V> {
    /// [`Ranges::find`] for IPv4, through the per-/16 index.
    fn find_v4(&self, key: u32) -> Option<V> {
        let buckets = self.buckets.0.get_or_init(|| {
            let mut b = Vec::with_capacity((1 << 16) + 1);
            let mut i = 0usize;
            for hi in 0u32..(1 << 16) {
                let base = hi << 16;
                while i < self.starts.len() && self.starts[i] < base {
                    i += 1;
                }
                b.push(i as u32);
            }
            b.push(self.starts.len() as u32);
            b
        });
        let hi = (key >> 16) as usize;
        let (lo, up) = (*buckets.get(hi)? as usize, *buckets.get(hi + 1)? as usize);
        // Ranges starting inside this /16 and at or before the key; else the last one before it.
        let within = self.starts.get(lo..up)?.partition_point(|&s| s <= key);
        let i = (lo + within).checked_sub(1)?;
        if *self.ends.get(i)? >= key {
            self.values.get(i).copied()
        } else {
            None
        }
    }
}

impl<K: Copy + Ord, V: Copy> Ranges<K, V> {
    fn find(&self, key: K) -> Option<V> {
        let i = self.starts.partition_point(|&s| s <= key).checked_sub(1)?;
        if *self.ends.get(i)? >= key {
            self.values.get(i).copied()
        } else {
            None
        }
    }

    fn len(&self) -> usize {
        self.starts.len()
    }

    #[cfg(test)]
    fn heap_bytes(&self) -> usize {
        (self.starts.capacity() + self.ends.capacity()) * std::mem::size_of::<K>()
            + self.values.capacity() * std::mem::size_of::<V>()
    }
}

/// An immutable IP → (ASN, AS name, country) table.
#[derive(Default, Clone, PartialEq, Eq)]
pub struct GeoDb {
    asn_v4: Ranges<u32, u32>,
    asn_v6: Ranges<u128, u32>,
    cc_v4: Ranges<u32, u16>,
    cc_v6: Ranges<u128, u16>,
    /// Per AS entry: the ASN.
    as_numbers: Vec<u32>,
    /// Per AS entry: the name index, or [`NO_NAME`].
    as_name_ids: Vec<u32>,
    /// All names, concatenated.
    names: String,
    /// Per name: its end offset in `names` (its start is the previous end).
    name_ends: Vec<u32>,
    /// Two ASCII upper-case letters per country.
    countries: String,
}

impl fmt::Debug for GeoDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeoDb")
            .field("stats", &self.stats())
            .field("as_entries", &self.as_numbers.len())
            .field("names", &self.name_ends.len())
            .field("countries", &(self.countries.len() / 2))
            .finish()
    }
}

impl GeoDb {
    /// An empty table (every lookup misses).
    pub fn empty() -> GeoDb {
        GeoDb::default()
    }

    /// The snapshot bundled with the product.
    pub fn embedded() -> Result<GeoDb, GeoError> {
        GeoDb::from_snapshot(EMBEDDED)
    }

    /// Loads a snapshot written by [`GeoDb::to_snapshot`].
    pub fn from_snapshot(bytes: &[u8]) -> Result<GeoDb, GeoError> {
        let mut body = Vec::new();
        GzDecoder::new(bytes)
            .take(MAX_SNAPSHOT_BYTES + 1)
            .read_to_end(&mut body)
            .map_err(|e| GeoError::Format(format!("snapshot: not a valid gzip stream: {e}")))?;
        if body.len() as u64 > MAX_SNAPSHOT_BYTES {
            return Err(GeoError::Format(format!(
                "snapshot: decompresses to more than {MAX_SNAPSHOT_BYTES} bytes"
            )));
        }
        decode(&body)
    }

    /// Serialises to the compressed snapshot format.
    pub fn to_snapshot(&self) -> Vec<u8> {
        let body = self.encode();
        let mut enc = GzEncoder::new(Vec::with_capacity(body.len() / 3), Compression::best());
        // Writing into a Vec cannot fail.
        enc.write_all(&body)
            .and_then(|()| enc.finish())
            .unwrap_or_default()
    }

    /// Looks up one address.
    pub fn lookup(&self, ip: IpAddr) -> GeoInfo<'_> {
        let (entry, cc) = match ip.to_canonical() {
            IpAddr::V4(a) => {
                let k = u32::from(a);
                (self.asn_v4.find_v4(k), self.cc_v4.find_v4(k))
            }
            IpAddr::V6(a) => {
                let k = u128::from(a);
                (self.asn_v6.find(k), self.cc_v6.find(k))
            }
        };
        let mut info = GeoInfo::default();
        if let Some(e) = entry.and_then(|e| usize::try_from(e).ok()) {
            info.asn = self.as_numbers.get(e).copied();
            info.as_name = self.as_name_ids.get(e).and_then(|&n| self.name(n));
        }
        if let Some(c) = cc {
            let i = usize::from(c) * 2;
            info.country = self.countries.get(i..i + 2);
        }
        info
    }

    /// Table sizes.
    pub fn stats(&self) -> GeoStats {
        GeoStats {
            asn_ranges_v4: self.asn_v4.len(),
            asn_ranges_v6: self.asn_v6.len(),
            country_ranges_v4: self.cc_v4.len(),
            country_ranges_v6: self.cc_v6.len(),
        }
    }

    fn name(&self, id: u32) -> Option<&str> {
        if id == NO_NAME {
            return None;
        }
        let i = usize::try_from(id).ok()?;
        let end = *self.name_ends.get(i)? as usize;
        let start = match i.checked_sub(1) {
            Some(p) => *self.name_ends.get(p)? as usize,
            None => 0,
        };
        self.names.get(start..end)
    }

    /// Bytes held on the heap (capacity, not length).
    #[cfg(test)]
    fn heap_bytes(&self) -> usize {
        self.asn_v4.heap_bytes()
            + self.asn_v6.heap_bytes()
            + self.cc_v4.heap_bytes()
            + self.cc_v6.heap_bytes()
            + (self.as_numbers.capacity() + self.as_name_ids.capacity() + self.name_ends.capacity())
                * 4
            + self.names.capacity()
            + self.countries.capacity()
    }

    /// The uncompressed snapshot body.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            self.names.len() + 16 * (self.asn_v4.len() + self.cc_v4.len()) + 1024,
        );
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());

        put_varint(&mut out, self.name_ends.len() as u128);
        let mut prev = 0u32;
        for &end in &self.name_ends {
            put_varint(&mut out, u128::from(end.saturating_sub(prev)));
            prev = end;
        }
        out.extend_from_slice(self.names.as_bytes());

        put_varint(&mut out, self.as_numbers.len() as u128);
        for &asn in &self.as_numbers {
            put_varint(&mut out, u128::from(asn));
        }
        for &n in &self.as_name_ids {
            put_varint(&mut out, if n == NO_NAME { 0 } else { u128::from(n) + 1 });
        }

        put_varint(&mut out, (self.countries.len() / 2) as u128);
        out.extend_from_slice(self.countries.as_bytes());

        put_table(&mut out, &self.asn_v4, false);
        put_table(&mut out, &self.asn_v6, true);
        put_table(&mut out, &self.cc_v4, false);
        put_table(&mut out, &self.cc_v6, true);
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Snapshot encoding

fn put_varint(out: &mut Vec<u8>, mut v: u128) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// A trailing-zero count then the shifted varint: compact for IPv6 prefixes.
fn put_wide(out: &mut Vec<u8>, v: u128) {
    let tz = if v == 0 { 0 } else { v.trailing_zeros() };
    out.push(tz as u8);
    put_varint(out, v >> tz);
}

fn put_num(out: &mut Vec<u8>, v: u128, wide: bool) {
    if wide {
        put_wide(out, v);
    } else {
        put_varint(out, v);
    }
}

fn put_table<K: Copy + Into<u128>, V: Copy + Into<u128>>(
    out: &mut Vec<u8>,
    t: &Ranges<K, V>,
    wide: bool,
) {
    put_varint(out, t.starts.len() as u128);
    let mut next: u128 = 0;
    for (&s, &e) in t.starts.iter().zip(&t.ends) {
        let (s, e): (u128, u128) = (s.into(), e.into());
        put_num(out, s.wrapping_sub(next), wide);
        next = e.wrapping_add(1);
    }
    for (&s, &e) in t.starts.iter().zip(&t.ends) {
        let (s, e): (u128, u128) = (s.into(), e.into());
        put_num(out, e.wrapping_sub(s).wrapping_add(1), wide);
    }
    for &v in &t.values {
        put_varint(out, v.into());
    }
}

/// A position in the decompressed snapshot, for error messages.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn err(&self, what: &str) -> GeoError {
        GeoError::Format(format!("snapshot: at byte {}: {what}", self.pos))
    }

    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn bytes(&mut self, n: usize, what: &str) -> Result<&'a [u8], GeoError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| self.err(&format!("truncated {what}")))?;
        let b = self.buf.get(self.pos..end).ok_or_else(|| self.err(what))?;
        self.pos = end;
        Ok(b)
    }

    fn byte(&mut self, what: &str) -> Result<u8, GeoError> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or_else(|| self.err(&format!("truncated {what}")))?;
        self.pos += 1;
        Ok(b)
    }

    fn varint(&mut self, what: &str) -> Result<u128, GeoError> {
        let start = self.pos;
        let mut v: u128 = 0;
        let mut shift = 0u32;
        loop {
            let b = self.byte(what)?;
            let bits = u128::from(b & 0x7f);
            if shift >= 128 || (shift > 0 && bits >> (128 - shift) != 0) {
                self.pos = start;
                return Err(self.err(&format!("{what} overflows")));
            }
            v |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
            shift += 7;
        }
    }

    fn wide(&mut self, what: &str) -> Result<u128, GeoError> {
        let tz = u32::from(self.byte(what)?);
        let v = self.varint(what)?;
        if tz >= 128 || (tz > 0 && v.leading_zeros() < tz) {
            return Err(self.err(&format!("{what} overflows")));
        }
        Ok(v << tz)
    }

    fn num(&mut self, wide: bool, what: &str) -> Result<u128, GeoError> {
        if wide {
            self.wide(what)
        } else {
            self.varint(what)
        }
    }

    fn small<T: TryFrom<u128>>(&mut self, what: &str) -> Result<T, GeoError> {
        let v = self.varint(what)?;
        T::try_from(v).map_err(|_| self.err(&format!("{what} out of range: {v}")))
    }

    /// A count of items that take at least `min_bytes` each (bounded by what is left).
    fn count(&mut self, min_bytes: usize, what: &str) -> Result<usize, GeoError> {
        let n: usize = self.small(what)?;
        if n.saturating_mul(min_bytes) > self.remaining() {
            return Err(self.err(&format!("{what} {n} exceeds the remaining data")));
        }
        Ok(n)
    }
}

fn decode(body: &[u8]) -> Result<GeoDb, GeoError> {
    let mut c = Cursor { buf: body, pos: 0 };
    if c.bytes(MAGIC.len(), "magic").ok() != Some(&MAGIC[..]) {
        return Err(GeoError::Format(
            "snapshot: bad magic (not a threatfeed geo snapshot)".to_string(),
        ));
    }
    let version = c.bytes(4, "version")?;
    let version = u32::from_le_bytes([version[0], version[1], version[2], version[3]]);
    if version != VERSION {
        return Err(c.err(&format!(
            "unsupported snapshot version {version} (this build reads {VERSION})"
        )));
    }

    let n_names = c.count(1, "name count")?;
    let mut name_ends = Vec::with_capacity(n_names);
    let mut total: usize = 0;
    for _ in 0..n_names {
        let len: usize = c.small("name length")?;
        total = total
            .checked_add(len)
            .filter(|&t| t <= c.remaining() && u32::try_from(t).is_ok())
            .ok_or_else(|| c.err("name lengths exceed the remaining data"))?;
        name_ends.push(total as u32);
    }
    let name_bytes = c.bytes(total, "names")?;
    let mut names = String::with_capacity(total);
    let mut prev = 0usize;
    for &end in &name_ends {
        let b = name_bytes.get(prev..end as usize).unwrap_or_default();
        match std::str::from_utf8(b) {
            Ok(s) => names.push_str(s),
            Err(_) => return Err(c.err(&format!("name at offset {prev} is not UTF-8"))),
        }
        prev = end as usize;
    }

    let n_as = c.count(2, "AS entry count")?;
    let mut as_numbers = Vec::with_capacity(n_as);
    for _ in 0..n_as {
        as_numbers.push(c.small::<u32>("ASN")?);
    }
    let mut as_name_ids = Vec::with_capacity(n_as);
    for _ in 0..n_as {
        let r: u32 = c.small("name reference")?;
        as_name_ids.push(match r {
            0 => NO_NAME,
            r if (r as usize) <= n_names => r - 1,
            r => return Err(c.err(&format!("name reference {r} beyond {n_names} names"))),
        });
    }

    let n_cc = c.count(2, "country count")?;
    if n_cc > usize::from(u16::MAX) {
        return Err(c.err(&format!("too many countries: {n_cc}")));
    }
    let cc = c.bytes(n_cc * 2, "countries")?;
    if let Some(bad) = cc.iter().position(|b| !b.is_ascii_uppercase()) {
        return Err(c.err(&format!("country code byte {bad} is not A-Z")));
    }
    let countries =
        String::from_utf8(cc.to_vec()).map_err(|_| c.err("country codes are not ASCII"))?;

    let asn_v4 = get_table(&mut c, false, n_as, "ASN v4 table")?;
    let asn_v6 = get_table(&mut c, true, n_as, "ASN v6 table")?;
    let cc_v4 = get_table(&mut c, false, n_cc, "country v4 table")?;
    let cc_v6 = get_table(&mut c, true, n_cc, "country v6 table")?;
    if c.remaining() != 0 {
        return Err(c.err(&format!("{} trailing bytes", c.remaining())));
    }
    Ok(GeoDb {
        asn_v4,
        asn_v6,
        cc_v4,
        cc_v6,
        as_numbers,
        as_name_ids,
        names,
        name_ends,
        countries,
    })
}

fn get_table<K, V>(
    c: &mut Cursor<'_>,
    wide: bool,
    n_values: usize,
    what: &str,
) -> Result<Ranges<K, V>, GeoError>
where
    K: Copy + Ord + Into<u128> + TryFrom<u128>,
    V: Copy + TryFrom<u128>,
{
    let n = c.count(3, &format!("{what} count"))?;
    let max_key: u128 = if wide {
        u128::MAX
    } else {
        u128::from(u32::MAX)
    };
    let mut gaps = Vec::with_capacity(n);
    for _ in 0..n {
        gaps.push(c.num(wide, what)?);
    }
    let mut starts = Vec::with_capacity(n);
    let mut ends = Vec::with_capacity(n);
    // The smallest key the next range may start at; None once the space is used up.
    let mut next: Option<u128> = Some(0);
    for (i, gap) in gaps.into_iter().enumerate() {
        let size = c.num(wide, what)?;
        let start = next
            .and_then(|n| n.checked_add(gap))
            .filter(|&s| s <= max_key)
            .ok_or_else(|| {
                c.err(&format!(
                    "{what}: range {i} starts beyond the address space"
                ))
            })?;
        let end = if size == 0 {
            // Wrapped size: the whole 128-bit space, which only a range at 0 can have.
            Some(u128::MAX).filter(|_| start == 0)
        } else {
            start.checked_add(size - 1)
        }
        .filter(|&e| e <= max_key)
        .ok_or_else(|| c.err(&format!("{what}: range {i} ends beyond the address space")))?;
        let (Ok(s), Ok(e)) = (K::try_from(start), K::try_from(end)) else {
            return Err(c.err(&format!("{what}: range {i} out of range")));
        };
        starts.push(s);
        ends.push(e);
        next = end.checked_add(1);
    }
    let mut values = Vec::with_capacity(n);
    for _ in 0..n {
        let v = c.varint(what)?;
        let ok = usize::try_from(v).is_ok_and(|v| v < n_values);
        match V::try_from(v) {
            Ok(x) if ok => values.push(x),
            _ => {
                return Err(c.err(&format!("{what}: value {v} beyond {n_values} entries")));
            }
        }
    }
    Ok(Ranges {
        starts,
        ends,
        values,
        buckets: Buckets::default(),
    })
}

// ---------------------------------------------------------------------------------------------
// Building

/// Table indexes in [`GeoBuilder::rows`].
const ASN_V4: usize = 0;
const ASN_V6: usize = 1;
const CC_V4: usize = 2;
const CC_V6: usize = 3;

/// One imported range.
#[derive(Debug, Clone, Copy)]
struct Row {
    start: u128,
    end: u128,
    /// Which `add_*` call it came from.
    batch: u32,
    /// Its position among all imported rows.
    seq: u64,
    /// Builder AS entry or country index.
    value: u32,
}

/// A line that was not imported.
struct Skip {
    reason: &'static str,
    value: String,
}

fn skip(reason: &'static str, value: impl Into<String>) -> Skip {
    Skip {
        reason,
        value: value.into(),
    }
}

/// Builds a [`GeoDb`] from CSV / TSV range files.
#[derive(Debug, Default)]
pub struct GeoBuilder {
    rows: [Vec<Row>; 4],
    batches: u32,
    seq: u64,
    names: Vec<String>,
    name_ids: HashMap<String, u32>,
    /// (ASN, name index) pairs.
    as_entries: Vec<(u32, Option<u32>)>,
    as_ids: HashMap<(u32, Option<u32>), u32>,
    countries: Vec<[u8; 2]>,
    cc_ids: HashMap<[u8; 2], u32>,
}

impl GeoBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// `first_ip,last_ip,asn,org` CSV (v4 or v6 mixed OK), plain or gzip (detect gzip by magic
    /// bytes 1f 8b). `org` may be quoted (`"a, ""b"""`); an unquoted `org` takes the rest of the
    /// line; a missing or empty `org` gives an ASN without a name. `asn` may carry an `AS` prefix.
    pub fn add_asn_csv<R: Read>(&mut self, r: R) -> Result<ImportStats, GeoError> {
        self.import(r, |b, line, batch, staged| {
            let f = split_csv(line, 4)?;
            if f.len() < 3 {
                return Err(skip("expected first_ip,last_ip,asn,org", line));
            }
            let (start, end, v6) = parse_range(&f[0], &f[1], false)?;
            let asn = parse_asn(&f[2])?;
            if asn == 0 {
                return Err(skip("ASN 0 is reserved", &*f[2]));
            }
            let org = f.get(3).map(|s| s.trim()).filter(|s| !s.is_empty());
            let value = b.intern_as(asn, org)?;
            b.stage(
                staged,
                if v6 { ASN_V6 } else { ASN_V4 },
                start,
                end,
                batch,
                value,
            );
            Ok(())
        })
    }

    /// `first_ip,last_ip,cc` CSV, plain or gzip. `ZZ` (unknown) rows are accepted and ignored.
    pub fn add_country_csv<R: Read>(&mut self, r: R) -> Result<ImportStats, GeoError> {
        self.import(r, |b, line, batch, staged| {
            let f = split_csv(line, 3)?;
            if f.len() < 3 {
                return Err(skip("expected first_ip,last_ip,cc", line));
            }
            let (start, end, v6) = parse_range(&f[0], &f[1], false)?;
            if let Some(cc) = parse_country(&f[2])? {
                let value = b.intern_country(cc);
                b.stage(
                    staged,
                    if v6 { CC_V6 } else { CC_V4 },
                    start,
                    end,
                    batch,
                    value,
                );
            }
            Ok(())
        })
    }

    /// iptoasn.com TSV: `range_start\trange_end\tAS_number\tcountry_code\tAS_description`
    /// (ASN 0 / "Not routed" / country "None" mean unknown: skip that part), plain or gzip.
    /// Feeds both ASN and country tables. Addresses may also be decimal `u32` (the
    /// `ip2asn-v4-u32` variant).
    pub fn add_iptoasn_tsv<R: Read>(&mut self, r: R) -> Result<ImportStats, GeoError> {
        self.import(r, |b, line, batch, staged| {
            let f: Vec<&str> = line.splitn(5, '\t').map(str::trim).collect();
            if f.len() < 4 {
                return Err(skip(
                    "expected range_start, range_end, AS_number, country_code, AS_description",
                    line,
                ));
            }
            let (start, end, v6) = parse_range(f[0], f[1], true)?;
            let asn = parse_asn(f[2])?;
            let cc = match f[3] {
                "None" | "Unknown" | "" | "-" | "--" => None,
                s => parse_country(s)?,
            };
            let name = f
                .get(4)
                .copied()
                .filter(|s| !s.is_empty() && *s != "Not routed" && *s != "None");
            if asn != 0 {
                let value = b.intern_as(asn, name)?;
                b.stage(
                    staged,
                    if v6 { ASN_V6 } else { ASN_V4 },
                    start,
                    end,
                    batch,
                    value,
                );
            }
            if let Some(cc) = cc {
                let value = b.intern_country(cc);
                b.stage(
                    staged,
                    if v6 { CC_V6 } else { CC_V4 },
                    start,
                    end,
                    batch,
                    value,
                );
            }
            Ok(())
        })
    }

    /// Sorts, resolves overlaps (a later import wins over an earlier one; within one import the
    /// narrower range wins, then the later line), merges adjacent equal ranges and interns names.
    pub fn build(self) -> GeoDb {
        let GeoBuilder {
            rows: [asn4, asn6, cc4, cc6],
            names,
            as_entries,
            countries,
            ..
        } = self;
        let asn4 = resolve(asn4);
        let asn6 = resolve(asn6);
        let cc4 = resolve(cc4);
        let cc6 = resolve(cc6);

        // AS entries in use, ordered by (ASN, name); names in order of first use.
        let name_of = |e: &(u32, Option<u32>)| {
            e.1.and_then(|n| names.get(n as usize))
                .map_or("", String::as_str)
        };
        let mut used: Vec<u32> = asn4.iter().chain(&asn6).map(|r| r.2).collect();
        used.sort_unstable();
        used.dedup();
        used.sort_by(|&a, &b| {
            let (ea, eb) = (&as_entries[a as usize], &as_entries[b as usize]);
            (ea.0, name_of(ea)).cmp(&(eb.0, name_of(eb)))
        });
        let mut as_remap = vec![0u32; as_entries.len()];
        let mut as_numbers = Vec::with_capacity(used.len());
        let mut as_name_ids = Vec::with_capacity(used.len());
        let mut name_remap: HashMap<u32, u32> = HashMap::new();
        let mut all_names = String::new();
        let mut name_ends = Vec::new();
        for (new, &old) in used.iter().enumerate() {
            as_remap[old as usize] = new as u32;
            let (asn, name) = as_entries[old as usize];
            as_numbers.push(asn);
            let id = match name.and_then(|n| names.get(n as usize).map(|s| (n, s))) {
                None => NO_NAME,
                Some((n, s)) => *name_remap.entry(n).or_insert_with(|| {
                    all_names.push_str(s);
                    name_ends.push(all_names.len() as u32);
                    (name_ends.len() - 1) as u32
                }),
            };
            as_name_ids.push(id);
        }

        // Countries in use, alphabetical.
        let mut cc_used: Vec<u32> = cc4.iter().chain(&cc6).map(|r| r.2).collect();
        cc_used.sort_unstable_by_key(|&i| countries[i as usize]);
        cc_used.dedup();
        let mut cc_remap = vec![0u16; countries.len()];
        let mut cc_str = String::with_capacity(cc_used.len() * 2);
        for (new, &old) in cc_used.iter().enumerate() {
            cc_remap[old as usize] = new as u16;
            let [a, b] = countries[old as usize];
            cc_str.push(char::from(a));
            cc_str.push(char::from(b));
        }

        GeoDb {
            asn_v4: to_ranges(&asn4, |v| as_remap[v as usize]),
            asn_v6: to_ranges(&asn6, |v| as_remap[v as usize]),
            cc_v4: to_ranges(&cc4, |v| cc_remap[v as usize]),
            cc_v6: to_ranges(&cc6, |v| cc_remap[v as usize]),
            as_numbers,
            as_name_ids,
            names: all_names,
            name_ends,
            countries: cc_str,
        }
    }

    /// Runs `row` over every data line of `r`; rows are kept only if the whole file reads.
    fn import<R: Read>(
        &mut self,
        r: R,
        mut row: impl FnMut(&mut Self, &str, u32, &mut [Vec<Row>; 4]) -> Result<(), Skip>,
    ) -> Result<ImportStats, GeoError> {
        self.batches = self.batches.saturating_add(1);
        let batch = self.batches;
        let mut staged: [Vec<Row>; 4] = Default::default();
        let mut stats = ImportStats::default();
        for_each_line(r, |n, line| {
            let line = match line {
                Ok(l) => l.trim(),
                Err(s) => return stats.skip(n, s.reason, &s.value),
            };
            if line.is_empty() {
                stats.skip(n, "blank line", "");
            } else if line.starts_with('#') {
                stats.skip(n, "comment", line);
            } else {
                match row(self, line, batch, &mut staged) {
                    Ok(()) => stats.rows += 1,
                    Err(s) => stats.skip(n, s.reason, &s.value),
                }
            }
        })?;
        for (table, rows) in self.rows.iter_mut().zip(staged) {
            table.extend(rows);
        }
        Ok(stats)
    }

    fn stage(
        &mut self,
        staged: &mut [Vec<Row>; 4],
        table: usize,
        start: u128,
        end: u128,
        batch: u32,
        value: u32,
    ) {
        self.seq += 1;
        if let Some(t) = staged.get_mut(table) {
            t.push(Row {
                start,
                end,
                batch,
                seq: self.seq,
                value,
            });
        }
    }

    fn intern_as(&mut self, asn: u32, name: Option<&str>) -> Result<u32, Skip> {
        let name = match name {
            None => None,
            Some(s) => Some(match self.name_ids.get(s) {
                Some(&id) => id,
                None => {
                    let id = u32::try_from(self.names.len())
                        .map_err(|_| skip("too many distinct AS names", s))?;
                    self.names.push(s.to_string());
                    self.name_ids.insert(s.to_string(), id);
                    id
                }
            }),
        };
        if let Some(&id) = self.as_ids.get(&(asn, name)) {
            return Ok(id);
        }
        let id = u32::try_from(self.as_entries.len())
            .map_err(|_| skip("too many distinct AS entries", asn.to_string()))?;
        self.as_entries.push((asn, name));
        self.as_ids.insert((asn, name), id);
        Ok(id)
    }

    fn intern_country(&mut self, cc: [u8; 2]) -> u32 {
        // At most 26 × 26 codes, so the index always fits.
        *self.cc_ids.entry(cc).or_insert_with(|| {
            self.countries.push(cc);
            (self.countries.len() - 1) as u32
        })
    }
}

fn to_ranges<K: TryFrom<u128>, V>(
    rows: &[(u128, u128, u32)],
    value: impl Fn(u32) -> V,
) -> Ranges<K, V> {
    let mut t = Ranges {
        starts: Vec::with_capacity(rows.len()),
        ends: Vec::with_capacity(rows.len()),
        values: Vec::with_capacity(rows.len()),
        buckets: Buckets::default(),
    };
    for &(s, e, v) in rows {
        // Keys were parsed from addresses of this family, so they always fit.
        if let (Ok(s), Ok(e)) = (K::try_from(s), K::try_from(e)) {
            t.starts.push(s);
            t.ends.push(e);
            t.values.push(value(v));
        }
    }
    t
}

/// A row in the sweep of [`resolve`]; the greatest is the one that applies.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Active {
    batch: u32,
    narrow: Reverse<u128>,
    seq: u64,
    end: u128,
    value: u32,
}

/// Flattens possibly overlapping rows into sorted, disjoint `(start, end, value)` ranges,
/// merging adjacent ranges with equal values.
fn resolve(mut rows: Vec<Row>) -> Vec<(u128, u128, u32)> {
    rows.sort_unstable_by_key(|r| (r.start, r.seq));
    let mut out: Vec<(u128, u128, u32)> = Vec::with_capacity(rows.len());
    let Some(first) = rows.first() else {
        return out;
    };
    let mut heap: BinaryHeap<Active> = BinaryHeap::new();
    let mut next = 0usize;
    let mut cur = first.start;
    loop {
        while let Some(r) = rows.get(next).filter(|r| r.start <= cur) {
            heap.push(Active {
                batch: r.batch,
                narrow: Reverse(r.end - r.start),
                seq: r.seq,
                end: r.end,
                value: r.value,
            });
            next += 1;
        }
        while heap.peek().is_some_and(|a| a.end < cur) {
            heap.pop();
        }
        let Some(top) = heap.peek() else {
            match rows.get(next) {
                Some(r) => {
                    cur = r.start;
                    continue;
                }
                None => break,
            }
        };
        // The top applies until it ends or another row starts (which may outrank it).
        let mut seg_end = top.end;
        if let Some(r) = rows.get(next) {
            // r.start > cur, so this cannot underflow.
            seg_end = seg_end.min(r.start - 1);
        }
        match out.last_mut() {
            Some(last) if last.2 == top.value && last.1.checked_add(1) == Some(cur) => {
                last.1 = seg_end;
            }
            _ => out.push((cur, seg_end, top.value)),
        }
        match seg_end.checked_add(1) {
            Some(c) => cur = c,
            None => break,
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Text parsing

/// Calls `f` with each line (1-based number, text without the line break) of `r`, which may be
/// gzip-compressed. Lines that are too long or not UTF-8 are passed as errors.
fn for_each_line<R: Read>(
    mut r: R,
    mut f: impl FnMut(usize, Result<&str, Skip>),
) -> Result<(), GeoError> {
    let mut magic = [0u8; 2];
    let mut got = 0;
    while got < magic.len() {
        match r.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(GeoError::Io(e)),
        }
    }
    let head = magic.get(..got).unwrap_or_default();
    let input = head.chain(r);
    if head == [0x1f, 0x8b] {
        lines(BufReader::new(MultiGzDecoder::new(input)), &mut f)
    } else {
        lines(BufReader::new(input), &mut f)
    }
}

fn lines<B: BufRead>(
    mut r: B,
    f: &mut impl FnMut(usize, Result<&str, Skip>),
) -> Result<(), GeoError> {
    let mut buf = Vec::with_capacity(256);
    let mut n = 0usize;
    let io_err = |n: usize, e: io::Error| {
        GeoError::Io(io::Error::new(e.kind(), format!("reading line {n}: {e}")))
    };
    loop {
        buf.clear();
        let got = (&mut r)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| io_err(n + 1, e))?;
        if got == 0 {
            return Ok(());
        }
        n += 1;
        if buf.len() > MAX_LINE && buf.last() != Some(&b'\n') {
            // Discard the rest of the line.
            loop {
                let avail = r.fill_buf().map_err(|e| io_err(n, e))?;
                if avail.is_empty() {
                    break;
                }
                match avail.iter().position(|&b| b == b'\n') {
                    Some(p) => {
                        r.consume(p + 1);
                        break;
                    }
                    None => {
                        let l = avail.len();
                        r.consume(l);
                    }
                }
            }
            let start = String::from_utf8_lossy(buf.get(..40).unwrap_or_default()).into_owned();
            f(n, Err(skip("line longer than 64 KiB", start)));
            continue;
        }
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        let text = if n == 1 {
            buf.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&buf)
        } else {
            &buf[..]
        };
        match std::str::from_utf8(text) {
            Ok(s) => f(n, Ok(s)),
            Err(_) => f(n, Err(skip("not UTF-8", String::from_utf8_lossy(text)))),
        }
    }
}

/// Splits a CSV record (RFC 4180 quoting: `"…"`, with `""` for a quote inside) into at most
/// `max` fields; the last one takes the rest of the line. Unquoted fields are trimmed.
fn split_csv(line: &str, max: usize) -> Result<Vec<String>, Skip> {
    let mut out = Vec::with_capacity(max);
    let mut rest = line;
    loop {
        rest = rest.trim_start();
        let last = out.len() + 1 >= max;
        if let Some(mut s) = rest.strip_prefix('"') {
            let mut field = String::new();
            loop {
                let Some(q) = s.find('"') else {
                    return Err(skip("unterminated quoted field", line));
                };
                field.push_str(&s[..q]);
                s = &s[q + 1..];
                match s.strip_prefix('"') {
                    Some(t) => {
                        field.push('"');
                        s = t;
                    }
                    None => break,
                }
            }
            out.push(field);
            let s = s.trim_start();
            if s.is_empty() {
                return Ok(out);
            }
            match s.strip_prefix(',') {
                Some(t) if !last => rest = t,
                _ => return Err(skip("text after a quoted field", line)),
            }
        } else if last {
            out.push(rest.trim().to_string());
            return Ok(out);
        } else {
            match rest.find(',') {
                Some(i) => {
                    out.push(rest[..i].trim().to_string());
                    rest = &rest[i + 1..];
                }
                None => {
                    out.push(rest.trim().to_string());
                    return Ok(out);
                }
            }
        }
    }
}

/// Parses an address; with `allow_int`, a decimal `u32` is an IPv4 address.
fn parse_addr(s: &str, allow_int: bool) -> Option<IpAddr> {
    let s = s.trim();
    if allow_int && !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<u32>().ok().map(|v| IpAddr::V4(Ipv4Addr::from(v)));
    }
    s.parse().ok()
}

/// `(start, end, is_v6)` of an inclusive range; IPv4-mapped IPv6 ranges become IPv4.
fn parse_range(a: &str, b: &str, allow_int: bool) -> Result<(u128, u128, bool), Skip> {
    let first = parse_addr(a, allow_int).ok_or_else(|| skip("bad first IP", a))?;
    let last = parse_addr(b, allow_int).ok_or_else(|| skip("bad last IP", b))?;
    let (first, last) = match (first, last) {
        (IpAddr::V6(x), IpAddr::V6(y)) => match (x.to_ipv4_mapped(), y.to_ipv4_mapped()) {
            (Some(x), Some(y)) => (IpAddr::V4(x), IpAddr::V4(y)),
            _ => (first, last),
        },
        _ => (first, last),
    };
    let (s, e, v6) = match (first, last) {
        (IpAddr::V4(x), IpAddr::V4(y)) => {
            (u128::from(u32::from(x)), u128::from(u32::from(y)), false)
        }
        (IpAddr::V6(x), IpAddr::V6(y)) => (u128::from(x), u128::from(y), true),
        _ => return Err(skip("mixed address families", format!("{a} - {b}"))),
    };
    if e < s {
        return Err(skip("last IP before first IP", format!("{a} - {b}")));
    }
    Ok((s, e, v6))
}

fn parse_asn(s: &str) -> Result<u32, Skip> {
    let t = s.trim();
    let digits = t
        .strip_prefix("AS")
        .or_else(|| t.strip_prefix("as"))
        .unwrap_or(t);
    digits.parse().map_err(|_| skip("bad ASN", s))
}

/// A two-letter code, upper-cased; `Ok(None)` for `ZZ` (unknown).
fn parse_country(s: &str) -> Result<Option<[u8; 2]>, Skip> {
    match s.trim().as_bytes() {
        [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
            let cc = [a.to_ascii_uppercase(), b.to_ascii_uppercase()];
            Ok(Some(cc).filter(|c| c != b"ZZ"))
        }
        _ => Err(skip("bad country code", s)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;
    use std::sync::OnceLock;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    fn embedded() -> &'static GeoDb {
        static DB: OnceLock<GeoDb> = OnceLock::new();
        DB.get_or_init(|| GeoDb::embedded().expect("embedded snapshot loads"))
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
        e.write_all(data).expect("gzip");
        e.finish().expect("gzip")
    }

    fn sample(name: &str) -> &'static [u8] {
        match name {
            "asn4" => include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../testdata/geo/asn-ipv4.head2000.csv.gz"
            )),
            "asn6" => include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../testdata/geo/asn-ipv6.head2000.csv.gz"
            )),
            "cc4" => include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../testdata/geo/asn-country-ipv4.head2000.csv.gz"
            )),
            "cc6" => include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../testdata/geo/asn-country-ipv6.head2000.csv.gz"
            )),
            _ => include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../testdata/geo/iptoasn-sample.tsv"
            )),
        }
    }

    fn sample_db() -> GeoDb {
        let mut b = GeoBuilder::new();
        for (kind, name) in [
            ("asn", "asn4"),
            ("asn", "asn6"),
            ("cc", "cc4"),
            ("cc", "cc6"),
        ] {
            let s = if kind == "asn" {
                b.add_asn_csv(sample(name))
            } else {
                b.add_country_csv(sample(name))
            }
            .expect("sample imports");
            assert_eq!(s.rows, 2000, "{name}");
            assert_eq!(s.skipped_count, 0, "{name}: {:?}", s.skipped);
        }
        b.build()
    }

    #[test]
    fn geo_types_are_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<GeoDb>();
        check::<GeoBuilder>();
    }

    #[test]
    fn geo_embedded_known_addresses() {
        let db = embedded();
        let st = db.stats();
        assert!(st.asn_ranges_v4 > 400_000, "{st:?}");
        assert!(st.asn_ranges_v6 > 100_000, "{st:?}");
        assert!(st.country_ranges_v4 > 140_000, "{st:?}");
        assert!(st.country_ranges_v6 > 60_000, "{st:?}");

        let g = db.lookup(ip("1.1.1.1"));
        assert_eq!(g.asn, Some(13335));
        assert_eq!(g.as_name, Some("Cloudflare, Inc."));
        assert_eq!(g.country, Some("AU"));

        let g = db.lookup(ip("8.8.8.8"));
        assert_eq!((g.asn, g.as_name), (Some(15169), Some("Google LLC")));
        assert!(g.country.is_some());

        let g = db.lookup(ip("2001:4860:4860::8888"));
        assert_eq!(g.asn, Some(15169));
        assert_eq!(g.as_name, Some("Google LLC"));
        assert_eq!(g.country, Some("US"));

        for private in ["10.0.0.1", "192.168.1.1", "127.0.0.1", "::1", "fe80::1"] {
            assert_eq!(db.lookup(ip(private)), GeoInfo::default(), "{private}");
        }
        // Quoted names with doubled quotes survive.
        assert_eq!(db.lookup(ip("2.26.200.1")).as_name, Some("LLC \"SPUTNIK\""));
    }

    #[test]
    fn geo_ipv4_mapped_is_looked_up_as_ipv4() {
        let db = embedded();
        let mapped = IpAddr::V6(Ipv4Addr::new(1, 1, 1, 1).to_ipv6_mapped());
        assert_eq!(db.lookup(mapped), db.lookup(ip("1.1.1.1")));
        assert_eq!(db.lookup(mapped).asn, Some(13335));
    }

    #[test]
    fn geo_range_edges() {
        let db = embedded();
        // 1.0.0.0,1.0.0.255,13335 then nothing until 1.0.4.0.
        assert_eq!(db.lookup(ip("1.0.0.0")).asn, Some(13335));
        assert_eq!(db.lookup(ip("1.0.0.255")).asn, Some(13335));
        assert_eq!(db.lookup(ip("1.0.1.0")).asn, None);
        assert_eq!(db.lookup(ip("0.255.255.255")).asn, None);
        assert_eq!(db.lookup(ip("1.0.4.0")).asn, Some(38803));
        // Last IPv4 row: 223.255.254.0-223.255.254.255.
        assert_eq!(db.lookup(ip("223.255.254.255")).asn, Some(55415));
        assert_eq!(db.lookup(ip("223.255.255.0")).asn, None);
        assert_eq!(db.lookup(ip("255.255.255.255")), GeoInfo::default());
        assert_eq!(db.lookup(ip("0.0.0.0")), GeoInfo::default());
        // The one overlap in the source (AS749 214.95.0.0-215.0.255.255 over AS721
        // 215.0.0.0-215.1.3.255): the narrower range wins.
        assert_eq!(db.lookup(ip("214.255.255.255")).asn, Some(749));
        assert_eq!(db.lookup(ip("215.0.0.0")).asn, Some(721));
        assert_eq!(db.lookup(ip("215.1.3.255")).asn, Some(721));
        // IPv6: 2001:4860::/32 is US; 2001:4861:: is not in the country data.
        assert_eq!(db.lookup(ip("2001:4860::")).country, Some("US"));
        assert_eq!(
            db.lookup(ip("2001:4860:ffff:ffff:ffff:ffff:ffff:ffff"))
                .country,
            Some("US")
        );
        assert_eq!(db.lookup(ip("2001:4860:4805::")).asn, Some(43515));
        assert_eq!(
            db.lookup(ip("2001:4860:4804:ffff:ffff:ffff:ffff:ffff")).asn,
            Some(15169)
        );
        assert_eq!(
            db.lookup(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
            GeoInfo::default()
        );
        assert_eq!(
            db.lookup(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")),
            GeoInfo::default()
        );
    }

    #[test]
    fn geo_edges_on_small_table() {
        let mut b = GeoBuilder::new();
        let csv = "10.0.0.0,10.0.0.255,64500,Test\n10.0.2.0,10.0.2.0,64501,One\n\
                   ::,::ff,64502,Low\nffff::,ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff,64503,High\n";
        b.add_asn_csv(csv.as_bytes()).expect("import");
        let db = b.build();
        for (a, want) in [
            ("9.255.255.255", None),
            ("10.0.0.0", Some(64500)),
            ("10.0.0.255", Some(64500)),
            ("10.0.1.0", None),
            ("10.0.1.255", None),
            ("10.0.2.0", Some(64501)),
            ("10.0.2.1", None),
            ("::", Some(64502)),
            ("::ff", Some(64502)),
            ("::100", None),
            ("fffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff", None),
            ("ffff::", Some(64503)),
            ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(64503)),
        ] {
            assert_eq!(db.lookup(ip(a)).asn, want, "{a}");
        }
        let back = GeoDb::from_snapshot(&db.to_snapshot()).expect("round trip");
        assert_eq!(back, db);
    }

    #[test]
    fn geo_whole_space_ranges_round_trip() {
        let mut b = GeoBuilder::new();
        b.add_country_csv(
            "::,ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff,EU\n0.0.0.0,255.255.255.255,AQ".as_bytes(),
        )
        .expect("import");
        let db = b.build();
        assert_eq!(db.lookup(ip("1234::5")).country, Some("EU"));
        assert_eq!(db.lookup(ip("255.255.255.255")).country, Some("AQ"));
        let back = GeoDb::from_snapshot(&db.to_snapshot()).expect("round trip");
        assert_eq!(back, db);
        assert_eq!(back.lookup(ip("ffff::1")).country, Some("EU"));
    }

    #[test]
    fn geo_snapshot_round_trip_embedded() {
        // The full table through the (uncompressed) encoding; gzip at its best level is slow in
        // debug builds, so the compressed round trip runs on the sample table below.
        let db = embedded();
        let body = db.encode();
        let back = decode(&body).expect("round trip");
        assert_eq!(&back, db);
        assert_eq!(back.encode(), body, "deterministic");
        assert_eq!(
            GeoDb::from_snapshot(&GeoDb::empty().to_snapshot()).expect("empty"),
            GeoDb::empty()
        );
        println!(
            "geo: {:?}, body {} bytes, embedded {} bytes, heap ≈ {} bytes",
            db.stats(),
            body.len(),
            EMBEDDED.len(),
            db.heap_bytes()
        );
    }

    #[test]
    fn geo_snapshot_round_trip_sample() {
        let db = sample_db();
        let bytes = db.to_snapshot();
        let back = GeoDb::from_snapshot(&bytes).expect("round trip");
        assert_eq!(back, db);
        assert_eq!(back.to_snapshot(), bytes, "deterministic");
    }

    #[test]
    fn geo_corrupt_snapshots_are_errors() {
        // The gzip layer: garbage, wrong magic or version, cut streams.
        let big = sample_db().to_snapshot();
        assert!(GeoDb::from_snapshot(&[]).is_err());
        assert!(GeoDb::from_snapshot(b"hello world").is_err());
        assert!(GeoDb::from_snapshot(&gz(b"TFGEOSNX\x01\0\0\0")).is_err());
        assert!(GeoDb::from_snapshot(&gz(b"TFGEOSNP\x02\0\0\0\0\0\0\0\0\0\0")).is_err());
        for cut in (0..big.len())
            .step_by(big.len() / 20)
            .chain([big.len() - 9, big.len() - 1])
        {
            assert!(GeoDb::from_snapshot(&big[..cut]).is_err(), "cut at {cut}");
        }

        // The content: every truncation and many single-byte changes of a small table.
        let mut b = GeoBuilder::new();
        b.add_iptoasn_tsv(sample("iptoasn")).expect("import");
        let db = b.build();
        let body = db.encode();
        assert_eq!(decode(&body).expect("good"), db);
        for cut in 0..body.len() {
            assert!(decode(&body[..cut]).is_err(), "body cut at {cut}");
        }
        let mut still_ok = 0;
        for pos in 12..body.len() {
            for flip in [0x01u8, 0x02, 0x40, 0x80, 0xff] {
                let mut b = body.clone();
                b[pos] ^= flip;
                // Either an error or a consistent table: never a panic.
                if let Ok(d) = decode(&b) {
                    still_ok += 1;
                    for a in [
                        "1.0.0.1",
                        "1.1.1.1",
                        "9.9.9.9",
                        "2001:200::1",
                        "2c0f:fff0::1",
                    ] {
                        let _ = d.lookup(ip(a));
                    }
                }
            }
        }
        assert!(still_ok < (body.len() - 12) * 5);
        let mut trailing = body.clone();
        trailing.push(0);
        let e = GeoDb::from_snapshot(&gz(&trailing)).expect_err("trailing bytes");
        assert!(e.to_string().contains("trailing"), "{e}");
    }

    #[test]
    fn geo_snapshot_error_names_position() {
        let e = GeoDb::from_snapshot(&gz(b"TFGEOSNP\x01\0\0\0\x05")).expect_err("truncated");
        let msg = e.to_string();
        assert!(msg.contains("at byte"), "{msg}");
        assert!(matches!(e, GeoError::Format(_)));
    }

    #[test]
    fn geo_csv_quoted_org() {
        let csv = concat!(
            "1.2.3.0,1.2.3.255,64500,\"Example, Inc.\"\n",
            "1.2.4.0,1.2.4.255,64501,\"LLC \"\"SPUTNIK\"\"\"\n",
            "1.2.5.0,1.2.5.255,AS64502,Unquoted, with comma\n",
            "1.2.6.0,1.2.6.255,64503,\n",
            "1.2.7.0 , 1.2.7.255 ,64504, \"Spaced\" \r\n",
        );
        let mut b = GeoBuilder::new();
        let s = b.add_asn_csv(csv.as_bytes()).expect("import");
        assert_eq!(s.rows, 5, "{:?}", s.skipped);
        let db = b.build();
        let g = db.lookup(ip("1.2.3.4"));
        assert_eq!((g.asn, g.as_name), (Some(64500), Some("Example, Inc.")));
        assert_eq!(db.lookup(ip("1.2.4.4")).as_name, Some("LLC \"SPUTNIK\""));
        assert_eq!(
            db.lookup(ip("1.2.5.4")).as_name,
            Some("Unquoted, with comma")
        );
        assert_eq!(db.lookup(ip("1.2.5.4")).asn, Some(64502));
        let g = db.lookup(ip("1.2.6.4"));
        assert_eq!((g.asn, g.as_name), (Some(64503), None));
        assert_eq!(db.lookup(ip("1.2.7.4")).as_name, Some("Spaced"));
    }

    #[test]
    fn geo_bad_lines_are_reported_with_line_numbers() {
        let csv = concat!(
            "first_ip,last_ip,asn,org\n",           // 1 header
            "# a comment\n",                        // 2
            "\n",                                   // 3
            "1.0.0.0,1.0.0.255,13335,Cloudflare\n", // 4 ok
            "1.0.0.x,1.0.0.255,1,X\n",              // 5 bad first
            "2.0.0.9,2.0.0.1,1,X\n",                // 6 last < first
            "2.0.0.0,2001::1,1,X\n",                // 7 mixed
            "3.0.0.0,3.0.0.255,ASX,X\n",            // 8 bad asn
            "4.0.0.0,4.0.0.255,1,\"open\n",         // 9 unterminated quote
            "5.0.0.0,5.0.0.255\n",                  // 10 too few fields
            "6.0.0.0,6.0.0.255,0,Zero\n",           // 11 ASN 0
            "7.0.0.0,7.0.0.255,7,Seven\n",          // 12 ok
        );
        let mut b = GeoBuilder::new();
        let s = b.add_asn_csv(csv.as_bytes()).expect("import");
        assert_eq!(s.rows, 2);
        assert_eq!(s.skipped_count, 10);
        assert_eq!(s.skipped.len(), 10);
        let expect = [
            "line 1: bad first IP: first_ip",
            "line 2: comment: # a comment",
            "line 3: blank line",
            "line 5: bad first IP: 1.0.0.x",
            "line 6: last IP before first IP: 2.0.0.9 - 2.0.0.1",
            "line 7: mixed address families: 2.0.0.0 - 2001::1",
            "line 8: bad ASN: ASX",
            "line 9: unterminated quoted field",
            "line 10: expected first_ip,last_ip,asn,org",
            "line 11: ASN 0 is reserved: 0",
        ];
        for (got, want) in s.skipped.iter().zip(expect) {
            assert!(got.starts_with(want), "{got:?} vs {want:?}");
        }
        let db = b.build();
        assert_eq!(db.lookup(ip("7.0.0.1")).asn, Some(7));
        assert_eq!(db.lookup(ip("2.0.0.5")).asn, None);

        let mut b = GeoBuilder::new();
        let s = b
            .add_country_csv(
                "1.0.0.0,1.0.0.255,AUS\n1.0.1.0,1.0.1.255,au\n1.0.2.0,1.0.2.255,ZZ\n".as_bytes(),
            )
            .expect("import");
        assert_eq!(s.rows, 2);
        assert_eq!(s.skipped, vec!["line 1: bad country code: AUS".to_string()]);
        let db = b.build();
        assert_eq!(db.lookup(ip("1.0.1.1")).country, Some("AU"));
        assert_eq!(db.lookup(ip("1.0.2.1")).country, None);
    }

    #[test]
    fn geo_skipped_list_is_capped_but_counted() {
        let mut text = String::new();
        for i in 0..250 {
            text.push_str(&format!("bogus line {i}\n"));
        }
        text.push_str("9.9.9.0,9.9.9.255,19281,Quad9\n");
        text.push_str(&"x".repeat(MAX_LINE + 10));
        text.push('\n');
        text.push_str("9.9.10.0,9.9.10.255,19281,Quad9\n");
        let mut b = GeoBuilder::new();
        let s = b.add_asn_csv(text.as_bytes()).expect("import");
        assert_eq!(s.rows, 2);
        assert_eq!(s.skipped_count, 251);
        assert_eq!(s.skipped.len(), MAX_SKIPPED);
        assert!(s.skipped[0].starts_with("line 1: "));
        let db = b.build();
        // The two rows are adjacent with the same value: merged.
        assert_eq!(db.stats().asn_ranges_v4, 1);
        assert_eq!(db.lookup(ip("9.9.10.255")).asn, Some(19281));
    }

    #[test]
    fn geo_non_utf8_and_bad_gzip() {
        let mut b = GeoBuilder::new();
        let s = b
            .add_asn_csv(&b"1.0.0.0,1.0.0.255,1,Caf\xe9\n1.0.1.0,1.0.1.255,2,Ok\n"[..])
            .expect("import");
        assert_eq!(s.rows, 1);
        assert!(
            s.skipped[0].starts_with("line 1: not UTF-8"),
            "{:?}",
            s.skipped
        );
        // A gzip stream cut short is an I/O error naming the line, and adds nothing.
        let data = gz(b"1.0.0.0,1.0.0.255,1,A\n1.0.1.0,1.0.1.255,2,B\n");
        let mut b = GeoBuilder::new();
        let e = b
            .add_asn_csv(&data[..data.len() - 6])
            .expect_err("truncated gzip");
        assert!(matches!(e, GeoError::Io(_)), "{e}");
        assert!(e.to_string().contains("line"), "{e}");
        assert_eq!(b.build().stats(), GeoStats::default());
    }

    #[test]
    fn geo_overlaps_resolve_deterministically() {
        let mut b = GeoBuilder::new();
        // Within one import: the narrower range wins, whatever the order.
        b.add_asn_csv(
            "10.0.1.0,10.0.1.255,2,Narrow\n10.0.0.0,10.0.255.255,1,Wide\n10.0.3.0,10.0.3.255,3,Narrow3\n"
                .as_bytes(),
        )
        .expect("import");
        let db = b.build();
        let asn = |db: &GeoDb, a: &str| db.lookup(ip(a)).asn;
        assert_eq!(asn(&db, "10.0.0.255"), Some(1));
        assert_eq!(asn(&db, "10.0.1.0"), Some(2));
        assert_eq!(asn(&db, "10.0.1.255"), Some(2));
        assert_eq!(asn(&db, "10.0.2.0"), Some(1));
        assert_eq!(asn(&db, "10.0.3.7"), Some(3));
        assert_eq!(asn(&db, "10.0.255.255"), Some(1));
        assert_eq!(asn(&db, "10.1.0.0"), None);
        assert_eq!(db.stats().asn_ranges_v4, 5);

        // A later import wins even when wider.
        let mut b = GeoBuilder::new();
        b.add_asn_csv("10.0.1.0,10.0.1.255,2,Narrow\n".as_bytes())
            .expect("import");
        b.add_asn_csv("10.0.0.0,10.0.255.255,1,Wide\n".as_bytes())
            .expect("import");
        let db = b.build();
        assert_eq!(asn(&db, "10.0.1.1"), Some(1));
        assert_eq!(db.stats().asn_ranges_v4, 1);
        // Unused entries are dropped.
        assert_eq!(db.as_numbers, vec![1]);

        // Equal width in one import: the later line wins.
        let mut b = GeoBuilder::new();
        b.add_asn_csv("10.0.0.0,10.0.0.255,1,A\n10.0.0.0,10.0.0.255,2,B\n".as_bytes())
            .expect("import");
        assert_eq!(asn(&b.build(), "10.0.0.1"), Some(2));
    }

    #[test]
    fn geo_iptoasn_tsv() {
        let mut b = GeoBuilder::new();
        let s = b.add_iptoasn_tsv(sample("iptoasn")).expect("import");
        assert_eq!(s.skipped_count, 0, "{:?}", s.skipped);
        assert!(s.rows >= 20);
        let db = b.build();
        let g = db.lookup(ip("1.1.1.1"));
        assert_eq!(g.asn, Some(13335));
        assert_eq!(g.as_name, Some("Cloudflare, Inc."));
        assert_eq!(g.country, Some("AU"));
        assert_eq!(db.lookup(ip("2.26.200.1")).as_name, Some("LLC \"SPUTNIK\""));
        // ASN 0 / Not routed: country only, or nothing.
        let g = db.lookup(ip("1.0.1.1"));
        assert_eq!((g.asn, g.as_name), (None, None));
        assert_eq!(g.country, Some("CN"));
        assert_eq!(db.lookup(ip("2001:4860:4801::8888")).asn, Some(15169));
        assert_eq!(db.lookup(ip("2001:4860:4805::1")).asn, Some(43515));
        // "None" country: ASN only.
        let g = db.lookup(ip("2001::1"));
        assert_eq!((g.asn, g.country), (Some(6939), None));
        assert_eq!(db.lookup(ip("240.0.0.1")), GeoInfo::default());

        // Decimal v4 addresses, "None" country, gzip input, bad lines.
        let tsv = "16777216\t16777471\t13335\tNone\tCLOUDFLARENET\n\
                   1.0.4.0\t1.0.7.255\t38803\tAU\n\
                   bad\n1.0.8.0\t1.0.8.9\t0\tNone\tNot routed\n";
        let mut b = GeoBuilder::new();
        let s = b.add_iptoasn_tsv(&gz(tsv.as_bytes())[..]).expect("import");
        assert_eq!(s.rows, 3);
        assert_eq!(s.skipped_count, 1);
        assert!(
            s.skipped[0].starts_with("line 3: expected"),
            "{:?}",
            s.skipped
        );
        let db = b.build();
        let g = db.lookup(ip("1.0.0.1"));
        assert_eq!((g.asn, g.country), (Some(13335), None));
        let g = db.lookup(ip("1.0.5.1"));
        assert_eq!(
            (g.asn, g.as_name, g.country),
            (Some(38803), None, Some("AU"))
        );
        assert_eq!(db.lookup(ip("1.0.8.1")), GeoInfo::default());
    }

    #[test]
    fn geo_sample_import_agrees_with_embedded() {
        let db = sample_db();
        let full = embedded();
        let mut checked = 0;
        let check = |a: IpAddr| {
            let (s, f) = (db.lookup(a), full.lookup(a));
            if s.asn.is_some() {
                assert_eq!((s.asn, s.as_name), (f.asn, f.as_name), "{a}");
            }
            if s.country.is_some() {
                assert_eq!(s.country, f.country, "{a}");
            }
        };
        for t in [
            &db.asn_v4.starts,
            &db.asn_v4.ends,
            &db.cc_v4.starts,
            &db.cc_v4.ends,
        ] {
            for &k in t {
                check(IpAddr::V4(Ipv4Addr::from(k)));
                checked += 1;
            }
        }
        for t in [
            &db.asn_v6.starts,
            &db.asn_v6.ends,
            &db.cc_v6.starts,
            &db.cc_v6.ends,
        ] {
            for &k in t {
                check(IpAddr::V6(Ipv6Addr::from(k)));
                checked += 1;
            }
        }
        assert!(checked > 10_000);
    }

    #[test]
    fn geo_plain_and_gzip_inputs_agree() {
        let mut plain = Vec::new();
        MultiGzDecoder::new(sample("asn4"))
            .read_to_end(&mut plain)
            .expect("gunzip");
        let mut a = GeoBuilder::new();
        a.add_asn_csv(&plain[..]).expect("plain");
        let mut b = GeoBuilder::new();
        b.add_asn_csv(sample("asn4")).expect("gzip");
        assert_eq!(a.build(), b.build());
    }

    #[test]
    fn geo_split_csv_cases() {
        let f = |s: &str, n| split_csv(s, n).map_err(|e| e.reason);
        assert_eq!(f("a,b,c", 3), Ok(vec!["a".into(), "b".into(), "c".into()]));
        assert_eq!(
            f("a,b,c,d", 3),
            Ok(vec!["a".into(), "b".into(), "c,d".into()])
        );
        assert_eq!(
            f("a,\"b,\"\"x\"\"\",c", 3),
            Ok(vec!["a".into(), "b,\"x\"".into(), "c".into()])
        );
        assert_eq!(f("a,b,", 3), Ok(vec!["a".into(), "b".into(), "".into()]));
        assert_eq!(f("\"\"", 3), Ok(vec!["".into()]));
        assert!(f("\"a\"b,c", 3).is_err());
        assert!(f("a,\"b", 3).is_err());
    }

    #[test]
    fn geo_mapped_ranges_are_imported_as_ipv4() {
        let mut b = GeoBuilder::new();
        b.add_country_csv("::ffff:1.2.3.0,::ffff:1.2.3.255,NL\n".as_bytes())
            .expect("import");
        let db = b.build();
        assert_eq!(db.stats().country_ranges_v4, 1);
        assert_eq!(db.lookup(ip("1.2.3.4")).country, Some("NL"));
    }

    proptest::proptest! {
        #[test]
        fn geo_arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = GeoDb::from_snapshot(&bytes);
            let mut body = MAGIC.to_vec();
            body.extend_from_slice(&VERSION.to_le_bytes());
            body.extend_from_slice(&bytes);
            let _ = GeoDb::from_snapshot(&gz(&body));
            let _ = GeoBuilder::new().add_asn_csv(&bytes[..]);
            let _ = GeoBuilder::new().add_iptoasn_tsv(&bytes[..]);
        }
    }

    #[test]
    fn the_v4_index_agrees_with_plain_binary_search() {
        let db = embedded();
        let mut x: u32 = 0x9e37_79b9;
        let mut keys: Vec<u32> = vec![0, 1, u32::MAX, 0x0101_0101, 0x0808_0808];
        for i in 0..db.asn_v4.starts.len().min(5000) {
            keys.push(db.asn_v4.starts[i]);
            keys.push(db.asn_v4.ends[i]);
            keys.push(db.asn_v4.ends[i].wrapping_add(1));
        }
        for _ in 0..200_000 {
            // xorshift32
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            keys.push(x);
        }
        for k in keys {
            assert_eq!(db.asn_v4.find_v4(k), db.asn_v4.find(k), "asn {k:#x}");
            assert_eq!(db.cc_v4.find_v4(k), db.cc_v4.find(k), "cc {k:#x}");
        }
    }
}
