//! The stored-value codec of the event log, shared by both backends: records are packed into
//! *blocks* (format version 2), and the one-record values of format version 1 are still read.
//!
//! A block is a run of consecutive records `first..=last` stored as ONE key/value entry, keyed by
//! `first` (u64; big-endian where the backend orders raw bytes). Its value:
//!
//! ```text
//! count        u32 big-endian, >= 1: the block holds seqs first..=first+count-1
//! count times:
//!   received_ms  i64 big-endian two's complement
//!   len          u32 big-endian
//!   data         len bytes
//! ```
//!
//! and nothing after the last record (trailing bytes, a short value or a count of 0 are
//! reported as corruption, never skipped).
//!
//! [`split`] cuts one append into blocks greedily: a block takes records while its encoded size
//! stays within [`BLOCK_MAX_BYTES`] (just under 256 KiB) and it holds at most
//! [`BLOCK_MAX_RECORDS`]; a record larger than that gets a block of its own. So a read of one
//! record never decodes more than about 256 KiB, and an append of n records of ~530 bytes is
//! about n / 480 key/value writes. Blocks are never merged across appends: an append of 100
//! records is one block of 100.
//!
//! A *legacy* (format version 1) entry holds one record: key = its seq, value = `received_ms`
//! (i64 big-endian) then the data. A store upgraded from version 1 keeps them as they are; its
//! meta `v1_last_seq` is the last seq written by version 1, and an entry is legacy exactly when
//! its key is `<= v1_last_seq` (every block written after the upgrade starts above it). Both
//! kinds decode to the same [`Block`] iterator, so readers and trimming do not care which is
//! which.
//!
//! Entry invariants both backends keep (and check while reading and trimming): the keys of the
//! stored entries are the first seqs of consecutive blocks that tile `first_seq..=last_seq`
//! exactly: the first entry's key is `first_seq`, each next key is the previous block's last
//! seq + 1, and the last block ends at `last_seq`.
//!
//! Also here, so both backends share them: [`ReadCollector`] (what `read_after` keeps of the
//! entries it visits) and [`TrimPlanner`] (which entries one trim commit deletes, and the
//! re-keyed tail of a block the cut goes through).

use super::{Counters, LogError, LogRecord, Retention, TRIM_CHUNK, age_cutoff};
use std::path::Path;

/// Most bytes an encoded block holds, unless one record alone is larger: just under 256 KiB, so
/// that a full block and redb's 16 bytes of leaf overhead fit one 256 KiB page (a block of
/// exactly 256 KiB would take a 512 KiB page, half of it written for nothing).
pub(crate) const BLOCK_MAX_BYTES: usize = 256 * 1024 - 64;

/// Most records a block holds (bounds the work of finding one record in a block of tiny ones).
pub(crate) const BLOCK_MAX_RECORDS: usize = 4096;

/// Bytes of the block header (the record count).
const COUNT_LEN: usize = 4;

/// Bytes of a record's header inside a block (`received_ms` and length).
const RECORD_HEADER_LEN: usize = 12;

/// Bytes of a legacy value's header (`received_ms`).
const LEGACY_HEADER_LEN: usize = 8;

/// Largest record data a block can hold (its length is a u32).
pub(crate) const MAX_RECORD_LEN: usize = u32::MAX as usize;

/// Splits an append whose first record gets seq `first` into blocks: yields each block's first
/// seq and its records, ascending.
pub(crate) fn split<'r, 'd>(
    first: u64,
    records: &'r [(i64, &'d [u8])],
) -> impl Iterator<Item = (u64, &'r [(i64, &'d [u8])])> {
    let mut rest = records;
    let mut seq = first;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut size = COUNT_LEN;
        let mut n = 0;
        for (_, data) in rest {
            let rec = RECORD_HEADER_LEN.saturating_add(data.len());
            if n > 0 && (n == BLOCK_MAX_RECORDS || size.saturating_add(rec) > BLOCK_MAX_BYTES) {
                break;
            }
            size = size.saturating_add(rec);
            n += 1;
        }
        let (block, tail) = rest.split_at(n);
        rest = tail;
        let key = seq;
        seq = seq.saturating_add(n as u64);
        Some((key, block))
    })
}

/// Encodes `records` as one block into `buf` (cleared first). `first` is the block's first seq,
/// for the error about a record too large to store.
pub(crate) fn encode(
    path: &Path,
    first: u64,
    records: &[(i64, &[u8])],
    buf: &mut Vec<u8>,
) -> Result<(), LogError> {
    let count = u32::try_from(records.len()).map_err(|_| LogError::Corrupt {
        path: path.to_path_buf(),
        seq: first,
        detail: format!(
            "a block of {} records does not fit its u32 count",
            records.len()
        ),
    })?;
    let size = records.iter().fold(COUNT_LEN, |acc, (_, d)| {
        acc.saturating_add(RECORD_HEADER_LEN)
            .saturating_add(d.len())
    });
    buf.clear();
    buf.reserve(size);
    buf.extend_from_slice(&count.to_be_bytes());
    for (seq, (received_ms, data)) in (first..).zip(records) {
        let len = u32::try_from(data.len()).map_err(|_| LogError::RecordTooLarge {
            path: path.to_path_buf(),
            seq,
            len: data.len() as u64,
            max: MAX_RECORD_LEN as u64,
        })?;
        buf.extend_from_slice(&received_ms.to_be_bytes());
        buf.extend_from_slice(&len.to_be_bytes());
        buf.extend_from_slice(data);
    }
    Ok(())
}

/// Encodes one record as a legacy (format version 1) value: only for the tests that build a
/// version-1 store.
#[cfg(test)]
pub(crate) fn encode_legacy(received_ms: i64, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(LEGACY_HEADER_LEN + data.len());
    v.extend_from_slice(&received_ms.to_be_bytes());
    v.extend_from_slice(data);
    v
}

/// One record decoded from a stored entry, borrowing its data from the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rec<'a> {
    pub seq: u64,
    pub received_ms: i64,
    pub data: &'a [u8],
    /// Where the record's header starts in the value (a block's tail from here on is the
    /// records from this one to the end).
    pub offset: usize,
}

/// The records of one stored entry (a block, or a legacy one-record value), in seq order.
///
/// Iterating checks the layout as it goes: a malformed record yields one `Err` and ends the
/// iteration.
pub(crate) struct Block<'a> {
    path: &'a Path,
    value: &'a [u8],
    /// Where the next record's header starts.
    pos: usize,
    next_seq: u64,
    /// Seq of the last record.
    last: u64,
    /// Records not yet yielded.
    left: u32,
    count: u32,
    legacy: bool,
}

/// Decodes the entry stored at `key`; `legacy` says it is a format version 1 value (its key is
/// `<= v1_last_seq`).
pub(crate) fn decode<'a>(
    path: &'a Path,
    key: u64,
    value: &'a [u8],
    legacy: bool,
) -> Result<Block<'a>, LogError> {
    let corrupt = |detail: String| LogError::Corrupt {
        path: path.to_path_buf(),
        seq: key,
        detail,
    };
    if key == 0 {
        return Err(corrupt("an entry is stored at seq 0".into()));
    }
    let (count, pos) = if legacy {
        if value.len() < LEGACY_HEADER_LEN {
            return Err(corrupt(format!(
                "version-1 value of {} bytes is shorter than its {LEGACY_HEADER_LEN}-byte header",
                value.len()
            )));
        }
        (1, 0)
    } else {
        let Some((head, _)) = value.split_first_chunk::<COUNT_LEN>() else {
            return Err(corrupt(format!(
                "block of {} bytes is shorter than its {COUNT_LEN}-byte header",
                value.len()
            )));
        };
        let count = u32::from_be_bytes(*head);
        if count == 0 {
            return Err(corrupt("block holds no records".into()));
        }
        (count, COUNT_LEN)
    };
    let Some(last) = key.checked_add(u64::from(count) - 1) else {
        return Err(corrupt(format!(
            "block of {count} records overflows u64 seqs"
        )));
    };
    Ok(Block {
        path,
        value,
        pos,
        next_seq: key,
        last,
        left: count,
        count,
        legacy,
    })
}

impl<'a> Block<'a> {
    /// Records in the entry.
    pub fn record_count(&self) -> u32 {
        self.count
    }

    /// Seq of the entry's last record.
    pub fn last_seq(&self) -> u64 {
        self.last
    }

    fn corrupt(&mut self, detail: String) -> Option<Result<Rec<'a>, LogError>> {
        self.left = 0;
        self.pos = self.value.len();
        Some(Err(LogError::Corrupt {
            path: self.path.to_path_buf(),
            seq: self.next_seq,
            detail,
        }))
    }
}

impl<'a> Iterator for Block<'a> {
    type Item = Result<Rec<'a>, LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = &self.value[self.pos..];
        if self.left == 0 {
            if rest.is_empty() {
                return None;
            }
            let n = rest.len();
            return self.corrupt(format!("{n} bytes after the block's last record"));
        }
        let offset = self.pos;
        let header = if self.legacy {
            LEGACY_HEADER_LEN
        } else {
            RECORD_HEADER_LEN
        };
        let Some((ms, after)) = rest.split_first_chunk::<8>() else {
            return self.corrupt(format!(
                "record header cut short ({} bytes left, {} records missing)",
                rest.len(),
                self.left
            ));
        };
        let data = if self.legacy {
            after
        } else {
            let Some((len, body)) = after.split_first_chunk::<4>() else {
                return self.corrupt(format!(
                    "record header cut short ({} bytes left, {} records missing)",
                    rest.len(),
                    self.left
                ));
            };
            let len = u32::from_be_bytes(*len) as usize;
            let Some(data) = body.get(..len) else {
                return self.corrupt(format!(
                    "record of {len} bytes cut short ({} bytes left)",
                    body.len()
                ));
            };
            data
        };
        let received_ms = i64::from_be_bytes(*ms);
        self.pos += header + data.len();
        let seq = self.next_seq;
        self.left -= 1;
        self.next_seq = self.next_seq.saturating_add(1);
        Some(Ok(Rec {
            seq,
            received_ms,
            data,
            offset,
        }))
    }
}

/// Collects what one `read_after` returns from the entries it visits in key order: the records
/// with seq >= `start`, at most `limit`.
pub(crate) struct ReadCollector {
    start: u64,
    limit: usize,
    /// Key the next entry must have (the previous block's last seq + 1).
    expect: Option<u64>,
    out: Vec<LogRecord>,
}

impl ReadCollector {
    pub fn new(start: u64, limit: usize) -> ReadCollector {
        ReadCollector {
            start,
            limit,
            expect: None,
            out: Vec::with_capacity(limit.min(1024)),
        }
    }

    /// The key of the entry that should follow the ones fed so far (`None` before the first,
    /// or after a block ending at `u64::MAX`).
    pub fn next_key(&self) -> Option<u64> {
        self.expect
    }

    /// Takes the records of the next entry; returns whether more entries are wanted.
    pub fn feed(
        &mut self,
        path: &Path,
        key: u64,
        value: &[u8],
        legacy: bool,
    ) -> Result<bool, LogError> {
        if let Some(expect) = self.expect
            && key != expect
        {
            return Err(gap(path, expect, key));
        }
        let block = decode(path, key, value, legacy)?;
        self.expect = block.last_seq().checked_add(1);
        if block.last_seq() < self.start {
            return Ok(true);
        }
        for rec in block {
            let rec = rec?;
            if rec.seq < self.start {
                continue;
            }
            self.out.push(LogRecord {
                seq: rec.seq,
                received_ms: rec.received_ms,
                data: rec.data.to_vec(),
            });
            if self.out.len() >= self.limit {
                return Ok(false);
            }
        }
        Ok(self.expect.is_some())
    }

    pub fn finish(self) -> Vec<LogRecord> {
        self.out
    }
}

fn gap(path: &Path, expect: u64, key: u64) -> LogError {
    LogError::Corrupt {
        path: path.to_path_buf(),
        seq: expect,
        detail: format!("expected the entry starting at this seq, found one starting at {key}"),
    }
}

/// What one trim commit does.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct TrimPlan {
    /// Oldest records removed.
    pub records: u64,
    /// Their data bytes.
    pub bytes: u64,
    /// Keys of the entries to delete: every entry before the cut, including the one the cut
    /// goes through.
    pub delete: Vec<u64>,
    /// When the cut goes through a block: its kept tail, to store at this key (the new
    /// `first_seq`).
    pub rewrite: Option<(u64, Vec<u8>)>,
}

/// Plans one trim commit: fed the entries from `first_seq` upwards, finds where the retention
/// policy stops removing (record by record: the head goes while it breaks a limit), at most
/// about [`TRIM_CHUNK`] records on (the chunk is only ended between entries, so it never cuts a
/// block by itself).
pub(crate) struct TrimPlanner<'p> {
    path: &'p Path,
    c: Counters,
    policy: Retention,
    cutoff: Option<i64>,
    plan: TrimPlan,
    done: bool,
}

impl<'p> TrimPlanner<'p> {
    pub fn new(path: &'p Path, c: Counters, policy: &Retention, now_ms: i64) -> TrimPlanner<'p> {
        TrimPlanner {
            path,
            c,
            policy: *policy,
            cutoff: age_cutoff(policy, now_ms),
            plan: TrimPlan::default(),
            done: false,
        }
    }

    /// Takes the next entry; returns whether more entries are wanted.
    pub fn feed(&mut self, key: u64, value: &[u8], legacy: bool) -> Result<bool, LogError> {
        if self.done || self.plan.records >= TRIM_CHUNK {
            self.done = true;
            return Ok(false);
        }
        let expected = self.c.first_seq + self.plan.records;
        if key != expected {
            return Err(gap(self.path, expected, key));
        }
        let block = decode(self.path, key, value, legacy)?;
        if block.last_seq() > self.c.last_seq {
            return Err(LogError::Corrupt {
                path: self.path.to_path_buf(),
                seq: key,
                detail: format!(
                    "block ends at seq {} beyond last_seq {}",
                    block.last_seq(),
                    self.c.last_seq
                ),
            });
        }
        let count = block.record_count();
        for (taken, rec) in (0u32..).zip(block) {
            let rec = rec?;
            let records_left = self.c.records() - self.plan.records;
            let bytes_left = self.c.bytes.saturating_sub(self.plan.bytes);
            let must_go = self.policy.max_records.is_some_and(|m| records_left > m)
                || self.policy.max_bytes.is_some_and(|m| bytes_left > m)
                || self.cutoff.is_some_and(|cut| rec.received_ms < cut);
            if !must_go {
                self.done = true;
                if taken > 0 {
                    // The cut goes through this block: keep its tail, re-keyed.
                    let mut tail = Vec::with_capacity(COUNT_LEN + value.len() - rec.offset);
                    tail.extend_from_slice(&(count - taken).to_be_bytes());
                    tail.extend_from_slice(&value[rec.offset..]);
                    self.plan.delete.push(key);
                    self.plan.rewrite = Some((rec.seq, tail));
                }
                return Ok(false);
            }
            self.plan.records += 1;
            self.plan.bytes += rec.data.len() as u64;
        }
        self.plan.delete.push(key);
        Ok(true)
    }

    pub fn finish(self) -> TrimPlan {
        self.plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("test.log")
    }

    fn recs(n: usize, size: usize) -> Vec<(i64, Vec<u8>)> {
        (0..n)
            .map(|i| (i as i64 - 3, vec![i as u8; size]))
            .collect()
    }

    fn refs(r: &[(i64, Vec<u8>)]) -> Vec<(i64, &[u8])> {
        r.iter().map(|(t, d)| (*t, d.as_slice())).collect()
    }

    fn decode_all(key: u64, value: &[u8], legacy: bool) -> Vec<(u64, i64, Vec<u8>)> {
        decode(p(), key, value, legacy)
            .expect("decode")
            .map(|r| {
                let r = r.expect("record");
                (r.seq, r.received_ms, r.data.to_vec())
            })
            .collect()
    }

    #[test]
    fn block_round_trips() {
        let input = vec![
            (i64::MIN, b"".to_vec()),
            (-1, b"x".to_vec()),
            (i64::MAX, vec![7; 1000]),
        ];
        let mut buf = Vec::new();
        encode(p(), 10, &refs(&input), &mut buf).expect("encode");
        assert_eq!(buf.len(), 4 + 3 * 12 + 1001);
        let block = decode(p(), 10, &buf, false).expect("decode");
        assert_eq!((block.record_count(), block.last_seq()), (3, 12));
        let back = decode_all(10, &buf, false);
        let expected: Vec<_> = (10..)
            .zip(&input)
            .map(|(s, (t, d))| (s, *t, d.clone()))
            .collect();
        assert_eq!(back, expected);
    }

    #[test]
    fn legacy_value_decodes_as_one_record() {
        let v = encode_legacy(-5, b"old");
        let block = decode(p(), 7, &v, true).expect("decode");
        assert_eq!((block.record_count(), block.last_seq()), (1, 7));
        assert_eq!(decode_all(7, &v, true), vec![(7, -5, b"old".to_vec())]);
        assert_eq!(
            decode_all(7, &encode_legacy(1, b""), true),
            vec![(7, 1, vec![])]
        );
        assert!(decode(p(), 7, &[1, 2, 3], true).is_err());
    }

    #[test]
    fn malformed_blocks_are_errors() {
        let mut buf = Vec::new();
        encode(p(), 1, &refs(&recs(3, 10)), &mut buf).expect("encode");
        assert!(decode(p(), 1, &buf[..3], false).is_err(), "short header");
        assert!(decode(p(), 1, &[0, 0, 0, 0], false).is_err(), "count 0");
        assert!(decode(p(), 0, &buf, false).is_err(), "key 0");
        assert!(decode(p(), u64::MAX, &buf, false).is_err(), "seq overflow");
        let errors = |v: &[u8]| {
            decode(p(), 1, v, false)
                .expect("header")
                .filter(Result::is_err)
                .count()
        };
        assert_eq!(errors(&buf), 0);
        for cut in [5, 4 + 12, 4 + 22, buf.len() - 1] {
            assert_eq!(errors(&buf[..cut]), 1, "cut at {cut}");
        }
        let mut longer = buf.clone();
        longer.push(0);
        assert_eq!(errors(&longer), 1, "trailing byte");
        let mut more = buf.clone();
        more[3] = 4;
        assert_eq!(errors(&more), 1, "count too high");
    }

    #[test]
    fn split_respects_limits() {
        // 530-byte records: a block takes as many as fit 256 KiB.
        let r = recs(2000, 530);
        let r = refs(&r);
        let blocks: Vec<_> = split(5, &r).collect();
        let per = (BLOCK_MAX_BYTES - COUNT_LEN) / (RECORD_HEADER_LEN + 530);
        assert_eq!(blocks[0].1.len(), per);
        assert_eq!(blocks.len(), 2000usize.div_ceil(per));
        let mut seq = 5;
        for (key, b) in &blocks {
            assert_eq!(*key, seq);
            seq += b.len() as u64;
            let mut buf = Vec::new();
            encode(p(), *key, b, &mut buf).expect("encode");
            assert!(buf.len() <= BLOCK_MAX_BYTES);
        }
        assert_eq!(seq, 2005);
        // Tiny records: the record limit applies.
        let r = recs(10_000, 0);
        let sizes: Vec<usize> = split(1, &refs(&r)).map(|(_, b)| b.len()).collect();
        assert_eq!(sizes, vec![4096, 4096, 1808]);
        // A record larger than a block gets one of its own.
        let r = vec![
            (0, vec![1; 10]),
            (0, vec![2; BLOCK_MAX_BYTES + 1]),
            (0, vec![3; 10]),
        ];
        let sizes: Vec<usize> = split(1, &refs(&r)).map(|(_, b)| b.len()).collect();
        assert_eq!(sizes, vec![1, 1, 1]);
        assert_eq!(split(1, &[]).count(), 0);
    }

    #[test]
    fn collector_starts_mid_block_and_stops_at_limit() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        encode(p(), 1, &refs(&recs(5, 3)), &mut a).expect("encode");
        encode(p(), 6, &refs(&recs(5, 3)), &mut b).expect("encode");
        let mut col = ReadCollector::new(4, 4);
        assert!(col.feed(p(), 1, &a, false).expect("feed"));
        assert_eq!(col.next_key(), Some(6));
        assert!(!col.feed(p(), 6, &b, false).expect("feed"));
        let seqs: Vec<u64> = col.finish().iter().map(|r| r.seq).collect();
        assert_eq!(seqs, vec![4, 5, 6, 7]);
        // A gap between entries is corruption.
        let mut col = ReadCollector::new(1, 100);
        assert!(col.feed(p(), 1, &a, false).expect("feed"));
        assert!(col.feed(p(), 7, &b, false).is_err());
    }

    #[test]
    fn planner_rewrites_the_tail_of_a_cut_block() {
        let input = recs(10, 4);
        let mut a = Vec::new();
        encode(p(), 1, &refs(&input[..6]), &mut a).expect("encode");
        let mut b = Vec::new();
        encode(p(), 7, &refs(&input[6..]), &mut b).expect("encode");
        let c = Counters {
            first_seq: 1,
            last_seq: 10,
            bytes: 40,
        };
        let keep = |n| Retention {
            max_records: Some(n),
            ..Retention::default()
        };
        // Cut at seq 9: block 1 goes, block 7 keeps 9..=10 under key 9.
        let mut planner = TrimPlanner::new(p(), c, &keep(2), 0);
        assert!(planner.feed(1, &a, false).expect("feed"));
        assert!(!planner.feed(7, &b, false).expect("feed"));
        let plan = planner.finish();
        assert_eq!((plan.records, plan.bytes), (8, 32));
        assert_eq!(plan.delete, vec![1, 7]);
        let (key, tail) = plan.rewrite.expect("rewrite");
        assert_eq!(key, 9);
        let expected: Vec<_> = (9..)
            .zip(&input[8..])
            .map(|(s, (t, d))| (s, *t, d.clone()))
            .collect();
        assert_eq!(decode_all(9, &tail, false), expected);
        // Cut at a block boundary: no rewrite.
        let mut planner = TrimPlanner::new(p(), c, &keep(4), 0);
        assert!(planner.feed(1, &a, false).expect("feed"));
        assert!(!planner.feed(7, &b, false).expect("feed"));
        let plan = planner.finish();
        assert_eq!(
            (plan.records, plan.delete, plan.rewrite),
            (6, vec![1], None)
        );
        // Nothing to remove.
        let mut planner = TrimPlanner::new(p(), c, &keep(10), 0);
        assert!(!planner.feed(1, &a, false).expect("feed"));
        assert_eq!(planner.finish(), TrimPlan::default());
        // The first entry must be first_seq.
        let mut planner = TrimPlanner::new(p(), c, &keep(2), 0);
        assert!(planner.feed(7, &b, false).is_err());
    }
}
