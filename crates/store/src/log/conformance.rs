//! The conformance suite every [`EventLog`] backend must pass.
//!
//! A backend invokes [`event_log_conformance_suite!`](crate::event_log_conformance_suite) with a
//! module name and a closure that opens (creating if needed) its log in a given directory:
//!
//! ```ignore
//! threatfeed_store::event_log_conformance_suite!(my_backend_conformance, |dir: &std::path::Path| -> Arc<dyn EventLog> {
//!     Arc::new(MyLog::open(dir).expect("open"))
//! });
//! ```
//!
//! The closure is called again on the same directory to test reopening, after every handle
//! from the previous call was dropped, so it must return a log that reads what the previous one
//! wrote (a network-backed log maps `dir` to a unique stream name and a fixed server). The
//! invoking crate needs `tempfile` as a dev-dependency.
//!
//! The checks live in ordinary functions here (each takes a fresh directory and the opener) so
//! that a failure points at readable code; the macro only generates one `#[test]` per check,
//! plus a hidden child test that the crash check re-runs in a subprocess and kills with SIGKILL.
//! Compiled for this crate's tests and with the `conformance` feature.
//!
//! The block checks (`read_starting_mid_block`, `read_spanning_many_blocks`,
//! `append_larger_than_one_block`, `trim_through_block_then_reopen`) are black-box like the rest:
//! their sizes are chosen so that a backend packing records into blocks of up to 256 KiB (as
//! both of this crate's do, see `log::block`) has to start reads inside a block, cross many
//! block boundaries, split one append and cut a block when trimming. [`reads_v1_fixture`] is not
//! in the macro: it needs a version-1 store of the backend's own, which each backend's tests
//! copy from `crates/store/tests/fixtures/v1/`.

use super::{EventLog, LogRecord, Retention};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Opens a log in a directory (the closure given to the macro).
pub type Opener<'a> = &'a dyn Fn(&Path) -> Arc<dyn EventLog>;

/// Environment variable that makes the crash child run (it names the directory).
pub const CRASH_DIR_VAR: &str = "THREATFEED_LOG_CRASH_DIR";

/// Records per batch in the crash child.
const CRASH_BATCH: u64 = 50;

/// Generates a `#[cfg(test)] mod $name` with one `#[test]` per conformance check, each run on a
/// fresh temporary directory with the opener `$open` (`|dir: &Path| -> Arc<dyn EventLog>`).
#[macro_export]
macro_rules! event_log_conformance_suite {
    ($name:ident, $open:expr) => {
        #[cfg(test)]
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[allow(unused_imports)]
            use ::std::sync::Arc;
            #[allow(unused_imports)]
            use $crate::log::EventLog;
            use $crate::log::conformance as suite;

            fn open(dir: &::std::path::Path) -> ::std::sync::Arc<dyn $crate::log::EventLog> {
                let opener = $open;
                opener(dir)
            }

            fn run(check: fn(&::std::path::Path, suite::Opener<'_>)) {
                let dir = ::tempfile::tempdir().expect("temporary directory");
                check(dir.path(), &open);
            }

            #[test]
            fn seqs_start_at_one_and_are_consecutive() {
                run(suite::seqs_start_at_one_and_are_consecutive);
            }
            #[test]
            fn read_after_paginates() {
                run(suite::read_after_paginates);
            }
            #[test]
            fn data_and_received_ms_round_trip() {
                run(suite::data_and_received_ms_round_trip);
            }
            #[test]
            fn reopen_keeps_records_and_continues_seqs() {
                run(suite::reopen_keeps_records_and_continues_seqs);
            }
            #[test]
            fn trim_by_max_records() {
                run(suite::trim_by_max_records);
            }
            #[test]
            fn trim_by_max_bytes() {
                run(suite::trim_by_max_bytes);
            }
            #[test]
            fn trim_by_max_age() {
                run(suite::trim_by_max_age);
            }
            #[test]
            fn trim_everything_then_reopen_never_reuses_seqs() {
                run(suite::trim_everything_then_reopen_never_reuses_seqs);
            }
            #[test]
            fn stats_agree_with_contents() {
                run(suite::stats_agree_with_contents);
            }
            #[test]
            fn concurrent_readers_see_gapless_prefix() {
                run(suite::concurrent_readers_see_gapless_prefix);
            }
            #[test]
            fn big_batch_in_one_append() {
                run(suite::big_batch_in_one_append);
            }
            #[test]
            fn read_starting_mid_block() {
                run(suite::read_starting_mid_block);
            }
            #[test]
            fn read_spanning_many_blocks() {
                run(suite::read_spanning_many_blocks);
            }
            #[test]
            fn append_larger_than_one_block() {
                run(suite::append_larger_than_one_block);
            }
            #[test]
            fn trim_through_block_then_reopen() {
                run(suite::trim_through_block_then_reopen);
            }
            #[test]
            fn concurrent_readers_while_trimming() {
                run(suite::concurrent_readers_while_trimming);
            }
            #[test]
            fn kill_between_appends_keeps_committed_records() {
                let dir = ::tempfile::tempdir().expect("temporary directory");
                let child = suite::test_name(module_path!(), "crash_child");
                suite::kill_between_appends_keeps_committed_records(dir.path(), &open, &child);
            }
            #[test]
            #[ignore = "child process of kill_between_appends_keeps_committed_records"]
            fn crash_child() {
                suite::crash_child(&open);
            }
        }
    };
}

/// The libtest name of `test` in module `module_path` (the crate name dropped).
pub fn test_name(module_path: &str, test: &str) -> String {
    match module_path.split_once("::") {
        Some((_, rest)) => format!("{rest}::{test}"),
        None => test.to_string(),
    }
}

fn append(log: &dyn EventLog, records: &[(i64, Vec<u8>)]) -> u64 {
    let refs: Vec<(i64, &[u8])> = records.iter().map(|(t, d)| (*t, d.as_slice())).collect();
    log.append(&refs).expect("append")
}

fn all(log: &dyn EventLog) -> Vec<LogRecord> {
    log.read_after(0, usize::MAX).expect("read everything")
}

fn seqs(records: &[LogRecord]) -> Vec<u64> {
    records.iter().map(|r| r.seq).collect()
}

/// `n` records of `size` bytes each, received at `t0`, `t0 + step`, ...
fn records(n: usize, size: usize, t0: i64, step: i64) -> Vec<(i64, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let t = t0 + step * i as i64;
            let data = (0..size).map(|j| (i + j) as u8).collect();
            (t, data)
        })
        .collect()
}

/// Seqs start at 1 and are consecutive across appends; an empty append writes nothing.
pub fn seqs_start_at_one_and_are_consecutive(dir: &Path, open: Opener<'_>) {
    let log = open(dir);
    assert!(!log.backend().is_empty());
    assert_eq!(log.last_seq(), 0);
    assert_eq!(log.stats().records, 0);
    assert_eq!(log.stats().first_seq, None);
    assert_eq!(log.append(&[]).expect("empty append"), 1);
    assert_eq!(log.last_seq(), 0);
    assert_eq!(append(&*log, &records(3, 10, 100, 1)), 1);
    assert_eq!(append(&*log, &records(2, 10, 200, 1)), 4);
    assert_eq!(append(&*log, &records(1, 10, 300, 1)), 6);
    assert_eq!(log.append(&[]).expect("empty append"), 7);
    assert_eq!(log.last_seq(), 6);
    assert_eq!(seqs(&all(&*log)), (1..=6).collect::<Vec<_>>());
}

/// read_after from the start, the middle, past the end, and with limit 0.
pub fn read_after_paginates(dir: &Path, open: Opener<'_>) {
    let log = open(dir);
    assert!(log.read_after(0, 10).expect("read empty").is_empty());
    append(&*log, &records(10, 8, 0, 1));
    assert_eq!(
        seqs(&log.read_after(0, 100).expect("read")),
        (1..=10).collect::<Vec<_>>()
    );
    assert_eq!(seqs(&log.read_after(0, 3).expect("read")), vec![1, 2, 3]);
    assert_eq!(seqs(&log.read_after(3, 3).expect("read")), vec![4, 5, 6]);
    assert_eq!(seqs(&log.read_after(9, 5).expect("read")), vec![10]);
    assert!(log.read_after(10, 5).expect("read at end").is_empty());
    assert!(log.read_after(1_000, 5).expect("read past end").is_empty());
    assert!(
        log.read_after(u64::MAX, 5)
            .expect("read at u64::MAX")
            .is_empty()
    );
    assert!(log.read_after(0, 0).expect("limit 0").is_empty());
    assert!(log.read_after(5, 0).expect("limit 0").is_empty());
    // Paging through in steps of 3 yields everything once, in order.
    let mut cursor = 0;
    let mut seen = Vec::new();
    loop {
        let page = log.read_after(cursor, 3).expect("page");
        let Some(last) = page.last() else { break };
        cursor = last.seq;
        seen.extend(seqs(&page));
    }
    assert_eq!(seen, (1..=10).collect::<Vec<_>>());
}

/// Bytes and times come back exactly, including empty and 64 KiB records and extreme times.
pub fn data_and_received_ms_round_trip(dir: &Path, open: Opener<'_>) {
    let log = open(dir);
    let big: Vec<u8> = (0..64 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    let input: Vec<(i64, Vec<u8>)> = vec![
        (1_700_000_000_123, b"{\"ip\":\"192.0.2.1\"}".to_vec()),
        (0, Vec::new()),
        (-1, vec![0]),
        (i64::MIN, vec![0xff; 3]),
        (i64::MAX, big.clone()),
        (42, Vec::new()),
    ];
    let first = append(&*log, &input);
    assert_eq!(first, 1);
    let back = all(&*log);
    assert_eq!(back.len(), input.len());
    for (i, (rec, (t, d))) in back.iter().zip(&input).enumerate() {
        assert_eq!(rec.seq, first + i as u64);
        assert_eq!(rec.received_ms, *t, "received_ms of seq {}", rec.seq);
        assert_eq!(&rec.data, d, "data of seq {}", rec.seq);
    }
    let stats = log.stats();
    assert_eq!(stats.records, input.len() as u64);
    assert_eq!(
        stats.bytes,
        input.iter().map(|(_, d)| d.len() as u64).sum::<u64>()
    );
}

/// Dropping and reopening keeps every record and the stats, and seqs continue.
pub fn reopen_keeps_records_and_continues_seqs(dir: &Path, open: Opener<'_>) {
    let (before, stats) = {
        let log = open(dir);
        append(&*log, &records(5, 20, 1000, 10));
        append(&*log, &records(7, 3, 2000, 10));
        (all(&*log), log.stats())
    };
    let log = open(dir);
    assert_eq!(log.last_seq(), 12);
    assert_eq!(log.stats(), stats);
    assert_eq!(all(&*log), before);
    assert_eq!(append(&*log, &records(2, 5, 3000, 1)), 13);
    drop(log);
    let log = open(dir);
    assert_eq!(log.last_seq(), 14);
    assert_eq!(seqs(&all(&*log)), (1..=14).collect::<Vec<_>>());
}

/// max_records keeps the newest records; later appends continue the seqs, also after reopen.
pub fn trim_by_max_records(dir: &Path, open: Opener<'_>) {
    let log = open(dir);
    append(&*log, &records(10, 10, 0, 1));
    let keep4 = Retention {
        max_records: Some(4),
        ..Retention::default()
    };
    assert_eq!(log.trim(&keep4, 0).expect("trim"), 6);
    assert_eq!(seqs(&all(&*log)), vec![7, 8, 9, 10]);
    let s = log.stats();
    assert_eq!(
        (s.records, s.bytes, s.first_seq, s.last_seq),
        (4, 40, Some(7), 10)
    );
    assert_eq!(log.trim(&keep4, 0).expect("trim again"), 0);
    assert_eq!(
        log.trim(&Retention::default(), i64::MAX)
            .expect("no policy"),
        0
    );
    assert_eq!(seqs(&log.read_after(0, 2).expect("read")), vec![7, 8]);
    assert_eq!(seqs(&log.read_after(8, 10).expect("read")), vec![9, 10]);
    assert_eq!(append(&*log, &records(3, 10, 0, 1)), 11);
    assert_eq!(log.trim(&keep4, 0).expect("trim"), 3);
    assert_eq!(seqs(&all(&*log)), vec![10, 11, 12, 13]);
    drop(log);
    let log = open(dir);
    assert_eq!(seqs(&all(&*log)), vec![10, 11, 12, 13]);
    assert_eq!(log.stats().first_seq, Some(10));
    assert_eq!(append(&*log, &records(1, 10, 0, 1)), 14);
}

/// max_bytes removes the oldest records until the data fits.
pub fn trim_by_max_bytes(dir: &Path, open: Opener<'_>) {
    let log = open(dir);
    append(&*log, &records(10, 100, 0, 1));
    assert_eq!(log.stats().bytes, 1000);
    let policy = Retention {
        max_bytes: Some(350),
        ..Retention::default()
    };
    assert_eq!(log.trim(&policy, 0).expect("trim"), 7);
    assert_eq!(seqs(&all(&*log)), vec![8, 9, 10]);
    assert_eq!(log.stats().bytes, 300);
    // Exactly at the limit: nothing to do.
    let policy = Retention {
        max_bytes: Some(300),
        ..Retention::default()
    };
    assert_eq!(log.trim(&policy, 0).expect("trim"), 0);
    // Empty records weigh nothing, but a zero limit still removes everything with data.
    append(&*log, &records(2, 0, 0, 1));
    let policy = Retention {
        max_bytes: Some(0),
        ..Retention::default()
    };
    assert_eq!(log.trim(&policy, 0).expect("trim"), 3);
    assert_eq!(seqs(&all(&*log)), vec![11, 12]);
    assert_eq!(log.stats().bytes, 0);
    assert_eq!(append(&*log, &records(1, 1, 0, 1)), 13);
}

/// max_age removes records received too long before `now`, oldest first, and stops at the first
/// young enough record.
pub fn trim_by_max_age(dir: &Path, open: Opener<'_>) {
    let log = open(dir);
    // Received at 0, 1000, ..., 9000 ms.
    append(&*log, &records(10, 5, 0, 1000));
    let policy = Retention {
        max_age_secs: Some(5),
        ..Retention::default()
    };
    // At 10 s, a 5 s limit removes what was received before 5 s: 0..=4000.
    assert_eq!(log.trim(&policy, 10_000).expect("trim"), 5);
    assert_eq!(seqs(&all(&*log)), vec![6, 7, 8, 9, 10]);
    assert_eq!(log.trim(&policy, 10_000).expect("again"), 0);
    // Records out of time order: a young record at the head shields older ones behind it.
    append(&*log, &[(20_000, vec![1]), (1, vec![2])]);
    assert_eq!(log.trim(&policy, 24_000).expect("trim"), 5);
    assert_eq!(seqs(&all(&*log)), vec![11, 12]);
    assert_eq!(log.trim(&policy, 30_000).expect("trim"), 2);
    assert!(all(&*log).is_empty());
    assert_eq!(log.stats().records, 0);
    assert_eq!(append(&*log, &records(1, 1, 0, 1)), 13);
    // Limits combine: whichever removes more wins.
    let both = Retention {
        max_age_secs: Some(1),
        max_records: Some(0),
        max_bytes: None,
    };
    assert_eq!(log.trim(&both, 0).expect("trim"), 1);
}

/// Trimming everything keeps last_seq; neither appends nor a reopen reuse seqs.
pub fn trim_everything_then_reopen_never_reuses_seqs(dir: &Path, open: Opener<'_>) {
    let none = Retention {
        max_records: Some(0),
        ..Retention::default()
    };
    {
        let log = open(dir);
        append(&*log, &records(5, 10, 0, 1));
        assert_eq!(log.trim(&none, 0).expect("trim"), 5);
        let s = log.stats();
        assert_eq!(
            (s.records, s.bytes, s.first_seq, s.last_seq),
            (0, 0, None, 5)
        );
        assert!(all(&*log).is_empty());
        assert!(log.read_after(2, 10).expect("read").is_empty());
    }
    {
        let log = open(dir);
        assert_eq!(log.last_seq(), 5);
        assert_eq!(log.stats().records, 0);
        assert_eq!(log.append(&[]).expect("empty"), 6);
        assert_eq!(append(&*log, &records(2, 10, 0, 1)), 6);
        assert_eq!(log.trim(&none, 0).expect("trim"), 2);
    }
    let log = open(dir);
    assert_eq!(log.last_seq(), 7);
    assert_eq!(append(&*log, &records(1, 10, 0, 1)), 8);
    assert_eq!(seqs(&all(&*log)), vec![8]);
}

/// `stats` matches what `read_after` returns through appends and trims.
pub fn stats_agree_with_contents(dir: &Path, open: Opener<'_>) {
    let log = open(dir);
    let check = |log: &dyn EventLog| {
        let recs = all(log);
        let s = log.stats();
        assert_eq!(s.records, recs.len() as u64);
        assert_eq!(
            s.bytes,
            recs.iter().map(|r| r.data.len() as u64).sum::<u64>()
        );
        assert_eq!(s.first_seq, recs.first().map(|r| r.seq));
        assert!(recs.last().is_none_or(|r| r.seq == s.last_seq));
        assert_eq!(s.last_seq, log.last_seq());
    };
    check(&*log);
    for round in 0..5usize {
        append(&*log, &records(20 + round, round * 13, 0, 1));
        check(&*log);
        let policy = Retention {
            max_records: Some(15),
            max_bytes: Some(400),
            max_age_secs: None,
        };
        log.trim(&policy, 0).expect("trim");
        check(&*log);
    }
    drop(log);
    let log = open(dir);
    check(&*log);
}

/// Readers polling while the writer appends see every seq exactly once, in order, no gaps.
pub fn concurrent_readers_see_gapless_prefix(dir: &Path, open: Opener<'_>) {
    const BATCHES: u64 = 60;
    const PER_BATCH: u64 = 25;
    let total = BATCHES * PER_BATCH;
    let log = open(dir);
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let readers: Vec<_> = (0..3)
            .map(|r| {
                let log = &log;
                let done = &done;
                s.spawn(move || {
                    let mut cursor = 0u64;
                    let page = 7 + r * 16;
                    loop {
                        let finished = done.load(Ordering::Acquire);
                        let recs = log.read_after(cursor, page).expect("concurrent read");
                        for rec in &recs {
                            assert_eq!(rec.seq, cursor + 1, "reader {r} saw a gap");
                            assert_eq!(rec.data, rec.seq.to_string().into_bytes());
                            cursor = rec.seq;
                        }
                        if cursor == total {
                            return cursor;
                        }
                        if finished && recs.is_empty() {
                            return cursor;
                        }
                        if recs.is_empty() {
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        for b in 0..BATCHES {
            let first = b * PER_BATCH + 1;
            let batch: Vec<(i64, Vec<u8>)> = (first..first + PER_BATCH)
                .map(|seq| (seq as i64, seq.to_string().into_bytes()))
                .collect();
            assert_eq!(append(&*log, &batch), first);
        }
        done.store(true, Ordering::Release);
        for r in readers {
            assert_eq!(r.join().expect("reader thread"), total);
        }
    });
}

/// A batch of 10k records is one append with consecutive seqs, and can be trimmed away.
pub fn big_batch_in_one_append(dir: &Path, open: Opener<'_>) {
    let log = open(dir);
    append(&*log, &records(3, 10, 0, 1));
    let batch = records(10_000, 64, 1_000, 1);
    assert_eq!(append(&*log, &batch), 4);
    assert_eq!(log.last_seq(), 10_003);
    let s = log.stats();
    assert_eq!((s.records, s.bytes), (10_003, 30 + 640_000));
    let back = log.read_after(3, 20_000).expect("read batch");
    assert_eq!(back.len(), 10_000);
    assert!(back.iter().zip(4..).all(|(r, seq)| r.seq == seq));
    assert_eq!(back[9_999].data, batch[9_999].1);
    let keep = Retention {
        max_records: Some(1),
        ..Retention::default()
    };
    assert_eq!(log.trim(&keep, 0).expect("trim big"), 10_002);
    assert_eq!(seqs(&all(&*log)), vec![10_003]);
    assert_eq!(append(&*log, &records(1, 1, 0, 1)), 10_004);
}

/// Checks that every record of `got` is the input record its seq stands for: `input[i]` has seq
/// `first + i`.
fn assert_records(got: &[LogRecord], first: u64, input: &[(i64, Vec<u8>)]) {
    for rec in got {
        let i = usize::try_from(rec.seq - first).expect("index");
        let (t, d) = &input[i];
        assert_eq!(rec.received_ms, *t, "received_ms of seq {}", rec.seq);
        assert!(rec.data == *d, "data of seq {} differs", rec.seq);
    }
}

/// Reads starting at every position of a block (and across into the next append) return
/// exactly the records after the cursor.
pub fn read_starting_mid_block(dir: &Path, open: Opener<'_>) {
    let log = open(dir);
    let mut input = records(100, 50, 0, 1);
    assert_eq!(append(&*log, &input), 1);
    for after in 0..100u64 {
        let got = log.read_after(after, 5).expect("read");
        let want: Vec<u64> = (after + 1..=(after + 5).min(100)).collect();
        assert_eq!(seqs(&got), want, "read_after({after}, 5)");
        assert_records(&got, 1, &input);
    }
    let more = records(100, 70, 1000, 1);
    assert_eq!(append(&*log, &more), 101);
    input.extend(more);
    let got = log.read_after(97, 6).expect("read across appends");
    assert_eq!(seqs(&got), (98..=103).collect::<Vec<_>>());
    assert_records(&got, 1, &input);
    assert_eq!(seqs(&log.read_after(150, 1).expect("read")), vec![151]);
    assert_eq!(seqs(&log.read_after(199, 10).expect("read")), vec![200]);
    assert!(log.read_after(200, 10).expect("read at end").is_empty());
    drop(log);
    let log = open(dir);
    let got = log.read_after(42, 100).expect("read after reopen");
    assert_eq!(seqs(&got), (43..=142).collect::<Vec<_>>());
    assert_records(&got, 1, &input);
}

/// One read streams across many blocks (appends) and returns every record once, in order.
pub fn read_spanning_many_blocks(dir: &Path, open: Opener<'_>) {
    let log = open(dir);
    let mut input = Vec::new();
    for b in 0..40usize {
        let batch = records(25, b * 7, b as i64 * 100, 1);
        assert_eq!(append(&*log, &batch), input.len() as u64 + 1);
        input.extend(batch);
    }
    let got = all(&*log);
    assert_eq!(seqs(&got), (1..=1000).collect::<Vec<_>>());
    assert_records(&got, 1, &input);
    let got = log.read_after(13, 500).expect("read");
    assert_eq!(seqs(&got), (14..=513).collect::<Vec<_>>());
    assert_records(&got, 1, &input);
    let mut cursor = 0;
    let mut seen = Vec::new();
    loop {
        let page = log.read_after(cursor, 37).expect("page");
        let Some(last) = page.last() else { break };
        cursor = last.seq;
        assert_records(&page, 1, &input);
        seen.extend(seqs(&page));
    }
    assert_eq!(seen, (1..=1000).collect::<Vec<_>>());
    drop(log);
    let log = open(dir);
    let got = log.read_after(990, 100).expect("read after reopen");
    assert_eq!(seqs(&got), (991..=1000).collect::<Vec<_>>());
    assert_records(&got, 1, &input);
}

/// An append of several MiB (more than any one block) is stored and read back exactly,
/// including a record larger than a block and empty records, also after reopening.
pub fn append_larger_than_one_block(dir: &Path, open: Opener<'_>) {
    let log = open(dir);
    append(&*log, &records(2, 10, 0, 1));
    let mut batch = records(2500, 1000, 10_000, 3);
    batch[700].1 = (0..600 * 1024).map(|i| (i % 253) as u8).collect();
    batch[701].1 = Vec::new();
    batch[2499].1 = Vec::new();
    assert_eq!(append(&*log, &batch), 3);
    assert_eq!(log.last_seq(), 2502);
    let bytes: u64 = 20 + batch.iter().map(|(_, d)| d.len() as u64).sum::<u64>();
    let s = log.stats();
    assert_eq!((s.records, s.bytes), (2502, bytes));
    let check = |log: &dyn EventLog| {
        let got = log.read_after(2, 2500).expect("read the batch");
        assert_eq!(seqs(&got), (3..=2502).collect::<Vec<_>>());
        assert_records(&got, 3, &batch);
        for after in (2..2502)
            .step_by(97)
            .chain([700, 701, 702, 703, 2500, 2501])
        {
            let got = log.read_after(after, 3).expect("read");
            let want: Vec<u64> = (after + 1..=(after + 3).min(2502)).collect();
            assert_eq!(seqs(&got), want, "read_after({after}, 3)");
            assert_records(&got, 3, &batch);
        }
    };
    check(&*log);
    drop(log);
    let log = open(dir);
    assert_eq!(log.last_seq(), 2502);
    assert_eq!(log.stats().bytes, bytes);
    check(&*log);
    assert_eq!(append(&*log, &records(1, 5, 0, 1)), 2503);
    assert_eq!(
        seqs(&log.read_after(2501, 5).expect("read")),
        vec![2502, 2503]
    );
}

/// Trims whose cut goes through a block (by count, age and bytes) keep exactly the records
/// after the cut, with exact stats, across reopens; seqs continue.
pub fn trim_through_block_then_reopen(dir: &Path, open: Opener<'_>) {
    // One append of 1000 records of 300 bytes, received at 0, 1, ..., 999 ms.
    let input = records(1000, 300, 0, 1);
    let check = |log: &dyn EventLog, first: u64| {
        let got = all(log);
        assert_eq!(seqs(&got), (first..=1000).collect::<Vec<_>>());
        assert_records(&got, 1, &input);
        let s = log.stats();
        let n = 1001 - first;
        assert_eq!(
            (s.records, s.bytes, s.first_seq, s.last_seq),
            (n, n * 300, Some(first), 1000)
        );
        assert_eq!(seqs(&log.read_after(0, 1).expect("read")), vec![first]);
        assert_eq!(
            seqs(&log.read_after(first + 50, 3).expect("read")),
            (first + 51..=first + 53).collect::<Vec<_>>()
        );
    };
    {
        let log = open(dir);
        assert_eq!(append(&*log, &input), 1);
        let keep = Retention {
            max_records: Some(700),
            ..Retention::default()
        };
        assert_eq!(log.trim(&keep, 0).expect("trim by count"), 300);
        check(&*log, 301);
    }
    {
        let log = open(dir);
        check(&*log, 301);
        // At 1.4 s a 1 s limit removes what was received before 400 ms: seqs up to 400.
        let age = Retention {
            max_age_secs: Some(1),
            ..Retention::default()
        };
        assert_eq!(log.trim(&age, 1_400).expect("trim by age"), 100);
        check(&*log, 401);
        let size = Retention {
            max_bytes: Some(550 * 300 + 299),
            ..Retention::default()
        };
        assert_eq!(log.trim(&size, 0).expect("trim by bytes"), 50);
        check(&*log, 451);
    }
    let log = open(dir);
    check(&*log, 451);
    let keep = Retention {
        max_records: Some(549),
        ..Retention::default()
    };
    assert_eq!(log.trim(&keep, 0).expect("trim one more"), 1);
    check(&*log, 452);
    assert_eq!(append(&*log, &records(1, 7, 0, 1)), 1001);
    let none = Retention {
        max_records: Some(0),
        ..Retention::default()
    };
    assert_eq!(log.trim(&none, 0).expect("trim all"), 550);
    drop(log);
    let log = open(dir);
    let s = log.stats();
    assert_eq!(
        (s.records, s.bytes, s.first_seq, s.last_seq),
        (0, 0, None, 1001)
    );
    assert!(all(&*log).is_empty());
    assert_eq!(append(&*log, &records(1, 7, 0, 1)), 1002);
    assert_eq!(seqs(&all(&*log)), vec![1002]);
}

/// Readers polling while the writer appends and trims (cutting through blocks) always get
/// ascending, gapless runs of correct records after their cursor.
pub fn concurrent_readers_while_trimming(dir: &Path, open: Opener<'_>) {
    const BATCHES: u64 = 120;
    const PER_BATCH: u64 = 50;
    let total = BATCHES * PER_BATCH;
    let keep = Retention {
        max_records: Some(120),
        ..Retention::default()
    };
    let log = open(dir);
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let readers: Vec<_> = (0..2)
            .map(|r| {
                let log = &log;
                let done = &done;
                s.spawn(move || {
                    let mut cursor = 0u64;
                    loop {
                        let finished = done.load(Ordering::Acquire);
                        let recs = log.read_after(cursor, 30 + r * 45).expect("read");
                        if let Some(first) = recs.first() {
                            assert!(first.seq > cursor, "reader {r} went backwards");
                        }
                        for (i, rec) in recs.iter().enumerate() {
                            if i > 0 {
                                assert_eq!(rec.seq, recs[i - 1].seq + 1, "reader {r} saw a gap");
                            }
                            assert_eq!(rec.data, rec.seq.to_string().into_bytes());
                            assert_eq!(rec.received_ms, rec.seq as i64);
                            cursor = rec.seq;
                        }
                        if cursor == total || (finished && recs.is_empty()) {
                            return cursor;
                        }
                        if recs.is_empty() {
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        for b in 0..BATCHES {
            let first = b * PER_BATCH + 1;
            let batch: Vec<(i64, Vec<u8>)> = (first..first + PER_BATCH)
                .map(|seq| (seq as i64, seq.to_string().into_bytes()))
                .collect();
            assert_eq!(append(&*log, &batch), first);
            log.trim(&keep, 0).expect("trim");
        }
        done.store(true, Ordering::Release);
        for r in readers {
            assert_eq!(r.join().expect("reader thread"), total);
        }
    });
    let got = all(&*log);
    assert_eq!(seqs(&got), (total - 119..=total).collect::<Vec<_>>());
}

/// A log written by format version 1 (the fixture in `crates/store/tests/fixtures/v1/`, copied
/// to `dir` by the caller) opens, reads exactly, takes appends (as blocks after its one-record
/// entries), trims through both kinds of entries, and reopens.
///
/// The fixture holds seqs 5..=13 (1..=4 trimmed): seq 5..=10 received at
/// `1_700_000_000_000 + seq * 1000` with data `v1-record-<seq>`, then `(i64::MIN, "")`,
/// `(-1, 3000 bytes i % 251)`, `(42, "last v1 record")`.
pub fn reads_v1_fixture(dir: &Path, open: Opener<'_>) {
    let mut input: Vec<(i64, Vec<u8>)> = (1..=10u64)
        .map(|s| {
            (
                1_700_000_000_000 + s as i64 * 1000,
                format!("v1-record-{s}").into_bytes(),
            )
        })
        .collect();
    input.push((i64::MIN, Vec::new()));
    input.push((-1, (0..3000u32).map(|i| (i % 251) as u8).collect()));
    input.push((42, b"last v1 record".to_vec()));
    let v1_bytes: u64 = input[4..].iter().map(|(_, d)| d.len() as u64).sum();
    {
        let log = open(dir);
        let s = log.stats();
        assert_eq!(
            (s.records, s.bytes, s.first_seq, s.last_seq),
            (9, v1_bytes, Some(5), 13)
        );
        let got = all(&*log);
        assert_eq!(seqs(&got), (5..=13).collect::<Vec<_>>());
        assert_records(&got, 1, &input);
        assert_eq!(seqs(&log.read_after(7, 2).expect("read")), vec![8, 9]);
    }
    // Reopen (now upgraded) and append blocks after the version-1 entries.
    let log = open(dir);
    assert_eq!(log.last_seq(), 13);
    let batch = records(1000, 600, 5_000, 1);
    assert_eq!(append(&*log, &batch), 14);
    input.extend(batch);
    let got = log.read_after(11, 5).expect("read across the upgrade");
    assert_eq!(seqs(&got), (12..=16).collect::<Vec<_>>());
    assert_records(&got, 1, &input);
    // Trim some version-1 entries only, then through them into a block.
    let keep = |n| Retention {
        max_records: Some(n),
        ..Retention::default()
    };
    assert_eq!(log.trim(&keep(1005), 0).expect("trim"), 4);
    assert_eq!(log.stats().first_seq, Some(9));
    drop(log);
    let log = open(dir);
    let got = all(&*log);
    assert_eq!(seqs(&got), (9..=1013).collect::<Vec<_>>());
    assert_records(&got, 1, &input);
    assert_eq!(log.trim(&keep(900), 0).expect("trim"), 105);
    drop(log);
    let log = open(dir);
    let got = all(&*log);
    assert_eq!(seqs(&got), (114..=1013).collect::<Vec<_>>());
    assert_records(&got, 1, &input);
    assert_eq!(log.stats().bytes, 900 * 600);
    assert_eq!(append(&*log, &records(1, 1, 0, 1)), 1014);
}

/// Copies the directory tree `from` into `to` (created), for fixtures that opening modifies.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create fixture copy");
    for entry in std::fs::read_dir(from).expect("read fixture dir") {
        let entry = entry.expect("fixture entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy fixture file");
        }
    }
}

/// SIGKILLs a child process that appends batches in a loop; reopening yields every
/// acknowledged record, whole batches only, and no gap.
pub fn kill_between_appends_keeps_committed_records(dir: &Path, open: Opener<'_>, child: &str) {
    let exe = std::env::current_exe().expect("test executable");
    let mut proc = Command::new(exe)
        .args([
            child,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_DIR_VAR, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn crash child");
    let stdout = proc.stdout.take().expect("child stdout");
    let mut acked = 0u64;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("child output");
        if let Some(n) = line.strip_prefix("acked ") {
            acked = n.trim().parse().expect("acked seq");
            if acked >= 40 * CRASH_BATCH {
                break;
            }
        }
    }
    proc.kill().expect("kill child");
    proc.wait().expect("reap child");
    assert!(acked > 0, "the crash child acknowledged nothing");

    let log = open(dir);
    let last = log.last_seq();
    assert!(
        last >= acked,
        "acknowledged {acked} but only {last} survived"
    );
    assert_eq!(
        last % CRASH_BATCH,
        0,
        "a partial batch survived: last seq {last}"
    );
    let recs = all(&*log);
    assert_eq!(recs.len() as u64, last);
    for (rec, seq) in recs.iter().zip(1..) {
        assert_eq!(rec.seq, seq);
        assert_eq!(rec.data, seq.to_string().into_bytes());
    }
    assert_eq!(log.stats().records, last);
    let next = append(&*log, &[(0, b"after".to_vec())]);
    assert_eq!(next, last + 1);
}

/// The child of the crash check: appends batches forever, printing each acknowledged last seq.
/// Does nothing unless [`CRASH_DIR_VAR`] is set.
pub fn crash_child(open: Opener<'_>) {
    let Some(dir) = std::env::var_os(CRASH_DIR_VAR) else {
        return;
    };
    let log = open(Path::new(&dir));
    let mut out = std::io::stdout();
    for _ in 0..1_000_000 {
        let first = log.last_seq() + 1;
        let batch: Vec<(i64, Vec<u8>)> = (first..first + CRASH_BATCH)
            .map(|seq| (seq as i64, seq.to_string().into_bytes()))
            .collect();
        assert_eq!(append(&*log, &batch), first);
        writeln!(out, "acked {}", first + CRASH_BATCH - 1).expect("write to parent");
        out.flush().expect("flush to parent");
    }
}
