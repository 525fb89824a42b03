//! Tests of the exports, each format checked by what consumes it: BIND's `named-checkzone`
//! loads the RPZ, Suricata 7 loads the rules (`suricata -T`) and fires them on a capture written
//! here (`suricata -r`), the OASIS `stix2-validator` checks the bundles, PyMISP loads the MISP
//! event files, the `csv` crate reads the CSV back; list lines are parsed one by one; CIDR
//! aggregation is checked against an independent address-set model (proptest). Plus removals
//! (incremental exports only, never in lists), determinism, stable sids, odd records that must
//! not break any format, and the whole bundled indicator set.

use super::*;
use crate::indicator::{IndicatorKind, canonicalize_as};
use crate::intel::{Contribution, IndicatorRecord, Source, Status};
use crate::threat::KnowledgeBase;
use crate::tlp::Tlp;
use ipnet::IpNet;
use jiff::Timestamp;
use proptest::prelude::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

// ---------------------------------------------------------------------------------------------
// Fixtures

fn ts(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

fn kb() -> KnowledgeBase {
    KnowledgeBase::bundled().expect("bundled knowledge base")
}

/// A record as the indicator store builds it: contribution checked and canonicalised, threat
/// resolved in the knowledge base, one source — then the sources removed, as the callers of
/// `render` pass them.
fn rec(kb: &KnowledgeBase, value: &str, threat: Option<&str>, tlp: Tlp) -> IndicatorRecord {
    let first = ts("2026-05-01T08:00:00.123456Z");
    let last = ts("2026-06-01T12:00:00Z");
    let checked = Contribution {
        value: value.into(),
        threat: threat.map(str::to_string),
        confidence: Some(80),
        tlp: Some(tlp),
        port: Some(443),
        last_seen: Some(last),
        ..Default::default()
    }
    .check()
    .unwrap_or_else(|e| panic!("fixture {value:?}: {e}"));
    let threat_id = threat.and_then(|t| kb.get(t)).map(|t| t.id.clone());
    let source = Source {
        name: "member-a".into(),
        org_id: Some("org_secret".into()),
        anonymous: true,
        confidence: 80,
        tlp,
        first_seen: first,
        last_seen: last,
    };
    let mut r = IndicatorRecord::new(checked, threat_id, source);
    r.sources.clear();
    r
}

fn inactive(mut r: IndicatorRecord, status: Status) -> IndicatorRecord {
    assert!(r.deactivate(status, ts("2026-06-02T00:00:00Z")));
    r
}

const URL_SPECIAL: &str = "http://c2.example.net/gate.php?a=1;b=\"x\"|y\\z,w";
const LONG_LABEL: &str = "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefgh";

fn long_domain() -> String {
    format!("{LONG_LABEL}.{LONG_LABEL}.{LONG_LABEL}.example.com")
}

/// Active records of every kind and shape.
fn active_records(kb: &KnowledgeBase) -> Vec<IndicatorRecord> {
    let mut v = vec![
        rec(kb, "198.51.100.3", Some("emotet"), Tlp::Clear),
        rec(kb, "198.51.100.4", Some("Heodo"), Tlp::Green),
        rec(kb, "203.0.113.0/24", Some("cobalt strike"), Tlp::Amber),
        rec(kb, "203.0.113.77", Some("qakbot"), Tlp::Green),
        rec(kb, "10.0.0.0/25", Some("qakbot"), Tlp::Clear),
        rec(kb, "10.0.0.128/25", Some("qakbot"), Tlp::Clear),
        rec(kb, "10.0.0.7", Some("qakbot"), Tlp::Clear),
        rec(kb, "2001:db8::7", Some("mirai"), Tlp::Green),
        rec(kb, "2001:db8:0:0:1:0:0:1", Some("mirai"), Tlp::Green),
        rec(
            kb,
            "2001:db8:1::/48",
            Some("cobalt-strike"),
            Tlp::AmberStrict,
        ),
        rec(kb, "c2.example.net", Some("emotet"), Tlp::Red),
        rec(kb, "bad_host.example.org", None, Tlp::Clear),
        rec(kb, "bücher.example", Some("qakbot"), Tlp::Green),
        rec(kb, "evil.rpz-ip", None, Tlp::Clear),
        rec(kb, &long_domain(), None, Tlp::Clear),
        rec(kb, URL_SPECIAL, Some("emotet"), Tlp::Green),
        rec(
            kb,
            "https://cdn.example.com:8443/p/a%20b/ü.exe",
            None,
            Tlp::Clear,
        ),
        rec(
            kb,
            "ftp://files.example.com/payload.bin",
            Some("mirai"),
            Tlp::Clear,
        ),
        rec(
            kb,
            "d41d8cd98f00b204e9800998ecf8427e",
            Some("emotet"),
            Tlp::Clear,
        ),
        rec(
            kb,
            "da39a3ee5e6b4b0d3255bfef95601890afd80709",
            Some("qakbot"),
            Tlp::Clear,
        ),
        rec(
            kb,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            None,
            Tlp::Amber,
        ),
    ];
    // A threat id the knowledge base no longer knows.
    let mut retired = rec(kb, "old.example.org", None, Tlp::Clear);
    retired.threat_id = Some("retired-threat".into());
    retired.family = Some("Retired \"family\"; with\nnewline".into());
    v.push(retired);
    v
}

/// Records that are no longer believed (removals).
fn inactive_records(kb: &KnowledgeBase) -> Vec<IndicatorRecord> {
    vec![
        inactive(
            rec(kb, "192.0.2.99", Some("emotet"), Tlp::Clear),
            Status::Expired,
        ),
        inactive(
            rec(kb, "gone.example.com", Some("qakbot"), Tlp::Green),
            Status::Withdrawn,
        ),
        inactive(
            rec(kb, "http://gone.example.com/x", None, Tlp::Clear),
            Status::Decayed,
        ),
        inactive(
            rec(kb, "192.0.2.0/28", Some("mirai"), Tlp::Clear),
            Status::FalsePositive,
        ),
    ]
}

fn full_meta() -> Meta {
    Meta {
        generated: ts("2026-06-03T10:00:00Z"),
        serial: 42,
        since: None,
    }
}

fn incremental_meta() -> Meta {
    Meta {
        generated: ts("2026-06-03T10:00:00Z"),
        serial: 57,
        since: Some(42),
    }
}

fn text(b: &[u8]) -> &str {
    std::str::from_utf8(b).expect("utf-8 output")
}

/// The non-comment, non-empty lines of a list.
fn entries<'a>(out: &'a str, comment: &str) -> Vec<&'a str> {
    out.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with(comment))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// External tools

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "threatfeed-export-{}-{}-{name}",
        std::process::id(),
        uuid::Uuid::new_v4()
    ))
}

fn write_temp(name: &str, bytes: &[u8]) -> PathBuf {
    let p = temp_path(name);
    std::fs::write(&p, bytes).expect("write temp file");
    p
}

/// Runs `program`, panicking with an install hint when it is missing.
fn tool(program: &str, args: &[&str], hint: &str) -> Output {
    match Command::new(program).args(args).output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("`{program}` is not installed ({hint}); run scripts/install-test-deps.sh")
        }
        Err(e) => panic!("cannot run `{program}`: {e}"),
    }
}

fn describe(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `named-checkzone ZONE FILE`: asserts it loads, returns the serial it reports.
fn named_checkzone(zone: &str, file: &Path) -> u64 {
    let f = file.to_string_lossy().to_string();
    let o = tool(
        "named-checkzone",
        &["-k", "fail", "-i", "local", zone, &f],
        "Debian package bind9-utils",
    );
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        o.status.success() && out.contains("OK"),
        "named-checkzone {zone} {f}: {}",
        describe(&o)
    );
    let serial = out
        .split("loaded serial ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok());
    serial.unwrap_or_else(|| panic!("no serial in named-checkzone output: {out}"))
}

/// Copy of `stix::tests::run_validator`: the OASIS validator as a command or a Python module.
fn run_validator(args: &[&str]) -> Option<Output> {
    if let Ok(out) = Command::new("stix2_validator").args(args).output() {
        return Some(out);
    }
    let out = Command::new("python3")
        .args(["-m", "stix2validator"])
        .args(args)
        .output()
        .ok()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("No module named") {
        return None;
    }
    Some(out)
}

/// The bundle passes `stix2-validator --strict --enforce-refs` (103 uuid-check and 302
/// extref-hashes disabled, as in `stix::tests`).
fn assert_stix_valid(bundle: &[u8]) {
    let path = write_temp("bundle.json", bundle);
    let file = path.to_string_lossy().to_string();
    let Some(out) = run_validator(&["--strict", "--enforce-refs", "--disable", "103,302", &file])
    else {
        panic!(
            "the OASIS STIX validator is not installed: run scripts/install-test-deps.sh \
             (pip install stix2-validator)"
        );
    };
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let ok = out.status.success()
        && stdout.contains("STIX JSON: Valid")
        && !stdout.contains("[X]")
        && !stdout.contains("[!]");
    assert!(ok, "stix2-validator on {file}: {}", describe(&out));
    let _ = std::fs::remove_file(&path);
}

/// `suricata -T` loads the rules file without any error or warning; returns the number of
/// rules it reports loaded.
fn suricata_loads(rules: &[u8]) -> usize {
    let dir = temp_path("suricata");
    std::fs::create_dir_all(&dir).expect("log dir");
    let file = dir.join("threatfeed.rules");
    std::fs::write(&file, rules).expect("write rules");
    let f = file.to_string_lossy().to_string();
    let d = dir.to_string_lossy().to_string();
    let mut args = vec!["-T", "--strict-rule-keywords=all", "-S", &f, "-l", &d];
    if Path::new("/etc/suricata/suricata.yaml").exists() {
        args.extend(["-c", "/etc/suricata/suricata.yaml"]);
    }
    let o = tool(
        "suricata",
        &args,
        "Debian package suricata, from bookworm-backports on Debian 12",
    );
    let log = std::fs::read_to_string(dir.join("suricata.log")).unwrap_or_default();
    assert!(
        o.status.success(),
        "suricata -T {f}: {}\nlog:\n{log}",
        describe(&o)
    );
    let bad: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("Error") || l.contains("Warning"))
        .collect();
    assert!(
        bad.is_empty(),
        "suricata complained about {f}:\n{}",
        bad.join("\n")
    );
    let loaded = log
        .split(" rules successfully loaded, ")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no rule count in suricata.log:\n{log}"));
    assert!(
        log.contains("successfully loaded, 0 rules failed"),
        "some rules failed:\n{log}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    loaded
}

// ---------------------------------------------------------------------------------------------
// Format

#[test]
fn format_names_parse_back_and_unknown_names_are_explained() {
    let mut names = HashSet::new();
    let mut files = HashSet::new();
    for f in Format::ALL {
        assert_eq!(f.name().parse::<Format>(), Ok(f));
        assert_eq!(f.name().to_uppercase().parse::<Format>(), Ok(f));
        assert_eq!(format!(" {f} ").parse::<Format>(), Ok(f));
        assert!(names.insert(f.name()));
        assert!(files.insert(f.file_name()));
        assert!(!f.content_type().is_empty());
        assert_eq!(
            f.supports_since(),
            matches!(f, Format::Stix | Format::Csv | Format::Json)
        );
    }
    assert_eq!(names.len(), 11);
    let e = "stix3".parse::<Format>().expect_err("unknown");
    let msg = e.to_string();
    assert!(msg.contains("stix3"), "{msg}");
    for f in Format::ALL {
        assert!(msg.contains(f.name()), "{msg} lacks {f}");
    }
    assert_eq!(
        Format::Stix.content_type(),
        "application/stix+json;version=2.1"
    );
    assert_eq!(Format::Misp.file_name(), "manifest.json");
    assert_eq!(Format::Rpz.file_name(), "threatfeed.rpz");
    assert_eq!(Format::Suricata.file_name(), "threatfeed-suricata.rules");
}

// ---------------------------------------------------------------------------------------------
// JSON and CSV

#[test]
fn json_full_export_lists_active_records_with_playbooks() {
    let kb = kb();
    let recs = active_records(&kb);
    let out = render(Format::Json, &recs, &kb, &full_meta());
    let v: Value = serde_json::from_slice(&out).expect("json");
    assert_eq!(v["generated"], "2026-06-03T10:00:00Z");
    assert_eq!(v["serial"], 42);
    assert_eq!(v["since"], Value::Null);
    let list = v["indicators"].as_array().expect("indicators");
    assert_eq!(v["count"], list.len());
    assert_eq!(list.len(), recs.len());
    let ids: BTreeSet<&str> = list.iter().filter_map(|i| i["id"].as_str()).collect();
    assert_eq!(ids, recs.iter().map(|r| r.id.as_str()).collect());
    for i in list {
        assert_eq!(i["active"], true);
        assert_eq!(i["status"], "active");
        assert!(i.get("sources").is_none(), "no sources: {i}");
        match i["threat_id"].as_str() {
            Some(t) => assert_eq!(i["playbook"], format!("/api/v1/threats/{t}")),
            None => assert!(i.get("playbook").is_none(), "{i}"),
        }
    }
    let emotet = list
        .iter()
        .find(|i| i["value"] == "198.51.100.4")
        .expect("listed");
    assert_eq!(emotet["type"], "ipv4");
    assert_eq!(emotet["threat_id"], "emotet");
    assert_eq!(emotet["family"], "Heodo");
    assert_eq!(emotet["port"], 443);
    assert_eq!(emotet["confidence"], 80);
    assert_eq!(emotet["tlp"], "green");
    assert_eq!(emotet["last_seen"], "2026-06-01T12:00:00Z");
    assert_eq!(emotet["valid_until"], Value::Null);

    // Inactive records passed to a full export are left out.
    let mut both = recs.clone();
    both.extend(inactive_records(&kb));
    assert_eq!(render(Format::Json, &both, &kb, &full_meta()), out);
}

#[test]
fn json_incremental_export_carries_removals() {
    let kb = kb();
    let mut recs = vec![rec(&kb, "198.51.100.3", Some("emotet"), Tlp::Clear)];
    recs.extend(inactive_records(&kb));
    let v: Value = serde_json::from_slice(&render(Format::Json, &recs, &kb, &incremental_meta()))
        .expect("json");
    assert_eq!(v["since"], 42);
    assert_eq!(v["serial"], 57);
    assert_eq!(v["count"], 5);
    let by_value: BTreeMap<&str, &Value> = v["indicators"]
        .as_array()
        .expect("list")
        .iter()
        .map(|i| (i["value"].as_str().unwrap_or_default(), i))
        .collect();
    assert_eq!(by_value["198.51.100.3"]["active"], true);
    for (value, status) in [
        ("192.0.2.99", "expired"),
        ("gone.example.com", "withdrawn"),
        ("http://gone.example.com/x", "decayed"),
        ("192.0.2.0/28", "false-positive"),
    ] {
        assert_eq!(by_value[value]["active"], false, "{value}");
        assert_eq!(by_value[value]["status"], status, "{value}");
    }
}

#[test]
fn csv_reads_back_one_row_per_record() {
    let kb = kb();
    let mut recs = active_records(&kb);
    recs.extend(inactive_records(&kb));
    for (meta, expected) in [
        (full_meta(), recs.iter().filter(|r| r.is_active()).count()),
        (incremental_meta(), recs.len()),
    ] {
        let out = render(Format::Csv, &recs, &kb, &meta);
        let mut rd = csv::Reader::from_reader(out.as_slice());
        let header: Vec<String> = rd
            .headers()
            .expect("header")
            .iter()
            .map(str::to_string)
            .collect();
        assert_eq!(
            header.join(","),
            "id,type,value,threat_id,family,port,confidence,tlp,first_seen,last_seen,valid_until,status"
        );
        let rows: Vec<csv::StringRecord> = rd.records().map(|r| r.expect("row")).collect();
        assert_eq!(rows.len(), expected);
        for row in &rows {
            assert_eq!(row.len(), 12);
            let r = recs
                .iter()
                .find(|r| r.id == row[0])
                .unwrap_or_else(|| panic!("unknown id {}", &row[0]));
            assert_eq!(&row[1], r.kind.as_str());
            assert_eq!(&row[2], r.value, "values survive quoting");
            assert_eq!(&row[3], r.threat_id.as_deref().unwrap_or(""));
            assert_eq!(&row[4], r.family.as_deref().unwrap_or(""));
            assert_eq!(&row[5], "443");
            assert_eq!(&row[7], r.tlp.as_str());
            assert_eq!(&row[11], r.status.as_str());
            if meta.since.is_none() {
                assert_eq!(&row[11], "active");
            }
        }
        let statuses: BTreeSet<&str> = rows.iter().map(|r| r.get(11).unwrap_or("")).collect();
        if meta.since.is_some() {
            assert!(statuses.contains("expired") && statuses.contains("withdrawn"));
        }
        assert!(rows.iter().any(|r| &r[2] == URL_SPECIAL));
    }
}

// ---------------------------------------------------------------------------------------------
// STIX

fn stix_objects(out: &[u8]) -> Vec<Value> {
    let v: Value = serde_json::from_slice(out).expect("json");
    assert_eq!(v["type"], "bundle");
    v["objects"].as_array().expect("objects").clone()
}

#[test]
fn stix_full_bundle_passes_the_oasis_validator() {
    let kb = kb();
    let recs = active_records(&kb);
    let out = render(Format::Stix, &recs, &kb, &full_meta());
    let objects = stix_objects(&out);
    let count = |ty: &str| objects.iter().filter(|o| o["type"] == ty).count();
    assert_eq!(count("indicator"), recs.len());
    assert_eq!(count("identity"), 1);
    // emotet, cobalt-strike, qakbot, mirai: malware + course-of-action each.
    assert_eq!(count("malware"), 4);
    assert_eq!(count("course-of-action"), 4);
    // Every TLP used, and CLEAR (identity, malware).
    assert_eq!(count("marking-definition"), 5);
    assert!(objects.iter().all(|o| o.get("revoked").is_none()));
    assert_stix_valid(&out);
}

#[test]
fn stix_incremental_bundle_revokes_removals_and_passes_the_validator() {
    let kb = kb();
    let mut recs = vec![rec(&kb, "198.51.100.3", Some("emotet"), Tlp::Clear)];
    recs.extend(inactive_records(&kb));
    let out = render(Format::Stix, &recs, &kb, &incremental_meta());
    let objects = stix_objects(&out);
    let indicators: Vec<&Value> = objects
        .iter()
        .filter(|o| o["type"] == "indicator")
        .collect();
    assert_eq!(indicators.len(), 5);
    let revoked = indicators.iter().filter(|o| o["revoked"] == true).count();
    assert_eq!(revoked, 4, "the four removals are revoked");
    assert_stix_valid(&out);
    // The same export has the same bundle id; another export another one.
    let again: Value =
        serde_json::from_slice(&render(Format::Stix, &recs, &kb, &incremental_meta()))
            .expect("json");
    let first: Value = serde_json::from_slice(&out).expect("json");
    assert_eq!(first["id"], again["id"]);
    let other: Value =
        serde_json::from_slice(&render(Format::Stix, &recs, &kb, &full_meta())).expect("json");
    assert_ne!(first["id"], other["id"]);
    // A full export leaves the removals out altogether.
    let full = stix_objects(&render(Format::Stix, &recs, &kb, &full_meta()));
    assert_eq!(full.iter().filter(|o| o["type"] == "indicator").count(), 1);
}

// ---------------------------------------------------------------------------------------------
// Lists

#[test]
fn ip_list_has_one_address_per_line_sorted_unique_active_only() {
    let kb = kb();
    let mut recs = active_records(&kb);
    recs.push(rec(&kb, "198.51.100.3", Some("qakbot"), Tlp::Clear)); // a duplicate value
    recs.extend(inactive_records(&kb));
    for meta in [full_meta(), incremental_meta()] {
        let out = render(Format::Ip, &recs, &kb, &meta);
        let out = text(&out);
        assert!(out.starts_with("# threatfeed ip list"), "{out}");
        assert_eq!(out.lines().filter(|l| l.starts_with('#')).count(), 1);
        let ips: Vec<IpAddr> = entries(out, "#")
            .iter()
            .map(|l| {
                l.parse()
                    .unwrap_or_else(|_| panic!("not an address: {l:?}"))
            })
            .collect();
        let mut sorted = ips.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(ips, sorted, "sorted and unique");
        let want: Vec<IpAddr> = [
            "10.0.0.7",
            "198.51.100.3",
            "198.51.100.4",
            "203.0.113.77",
            "2001:db8::7",
            "2001:db8::1:0:0:1",
        ]
        .iter()
        .map(|s| s.parse().expect("ip"))
        .collect::<BTreeSet<IpAddr>>()
        .into_iter()
        .collect();
        assert_eq!(ips, want);
        assert!(out.contains(&format!(", {} entries", want.len())));
    }
}

#[test]
fn domain_url_and_hosts_lists_hold_valid_active_entries_only() {
    let kb = kb();
    let mut recs = active_records(&kb);
    recs.extend(inactive_records(&kb));
    let meta = incremental_meta();

    let domains = render(Format::Domain, &recs, &kb, &meta);
    let domains: Vec<&str> = entries(text(&domains), "#");
    for d in &domains {
        let (k, canonical) = canonicalize_as(IndicatorKind::Domain, d).expect("a domain");
        assert_eq!((k, canonical.as_str()), (IndicatorKind::Domain, *d));
    }
    let want: BTreeSet<String> = [
        "bad_host.example.org",
        "c2.example.net",
        "evil.rpz-ip",
        "old.example.org",
        "xn--bcher-kva.example",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([long_domain()])
    .collect();
    assert_eq!(
        domains
            .iter()
            .map(|s| s.to_string())
            .collect::<BTreeSet<_>>(),
        want
    );
    assert_eq!(domains.len(), want.len());

    let urls = render(Format::Url, &recs, &kb, &meta);
    let urls: Vec<&str> = entries(text(&urls), "#");
    for u in &urls {
        let (k, canonical) = canonicalize_as(IndicatorKind::Url, u).expect("a url");
        assert_eq!((k, canonical.as_str()), (IndicatorKind::Url, *u));
    }
    assert_eq!(urls.len(), 3);
    assert!(urls.contains(&URL_SPECIAL));
    assert!(!urls.iter().any(|u| u.contains("gone.example.com")));

    let hosts = render(Format::Hosts, &recs, &kb, &meta);
    let hosts = text(&hosts);
    assert!(hosts.starts_with('#'));
    let lines = entries(hosts, "#");
    assert_eq!(lines.len(), want.len());
    for l in lines {
        let mut f = l.split_whitespace();
        assert_eq!(f.next(), Some("0.0.0.0"), "{l}");
        let d = f.next().expect("a name");
        assert!(want.contains(d), "{d}");
        assert_eq!(f.next(), None, "{l}");
    }
}

#[test]
fn cidr_list_aggregates_to_the_minimal_cover() {
    let kb = kb();
    let mut recs = active_records(&kb);
    recs.extend(inactive_records(&kb));
    let out = render(Format::Cidr, &recs, &kb, &incremental_meta());
    let nets: Vec<&str> = entries(text(&out), "#");
    // 10.0.0.0/25 + 10.0.0.128/25 + 10.0.0.7 → 10.0.0.0/24; 203.0.113.77 inside 203.0.113.0/24;
    // 2001:db8::7 and 2001:db8::1:0:0:1 stay /128; inactive 192.0.2.0/28 and 192.0.2.99 absent.
    assert_eq!(
        nets,
        vec![
            "10.0.0.0/24",
            "198.51.100.3/32",
            "198.51.100.4/32",
            "203.0.113.0/24",
            "2001:db8::7/128",
            "2001:db8::1:0:0:1/128",
            "2001:db8:1::/48",
        ]
    );
    for n in &nets {
        assert!(n.contains('/'), "always address/length: {n}");
    }
}

fn v4(n: u32) -> IpAddr {
    IpAddr::from(n.to_be_bytes())
}

fn v4_bits(ip: IpAddr) -> u32 {
    match ip {
        IpAddr::V4(a) => u32::from(a),
        IpAddr::V6(_) => panic!("IPv4 expected"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random addresses and networks inside 10.0.0.0/23: the output covers exactly the input
    /// addresses, its blocks are disjoint, and no two are halves of one larger block (so no
    /// smaller list exists).
    #[test]
    fn cidr_output_covers_exactly_the_input_minimally(
        inputs in proptest::collection::vec((0u32..512, 23u8..=32), 0..24)
    ) {
        let empty = KnowledgeBase::new();
        let base = u32::from(std::net::Ipv4Addr::new(10, 0, 0, 0));
        let mut want: BTreeSet<u32> = BTreeSet::new();
        let mut recs = Vec::new();
        for (off, len) in inputs {
            let net = IpNet::new(v4(base + off), len).expect("net").trunc();
            let value = if len == 32 { net.addr().to_string() } else { net.to_string() };
            recs.push(rec(&empty, &value, None, Tlp::Clear));
            let first = v4_bits(net.network());
            let size = 1u32 << (32 - u32::from(len));
            want.extend(first..first + size);
        }
        let out = render(Format::Cidr, &recs, &empty, &full_meta());
        let nets: Vec<IpNet> = entries(text(&out), "#")
            .iter()
            .map(|l| l.parse::<IpNet>().expect("a CIDR block"))
            .collect();
        let mut got: BTreeSet<u32> = BTreeSet::new();
        let mut total = 0u64;
        for n in &nets {
            prop_assert_eq!(*n, n.trunc(), "host bits cleared");
            let first = v4_bits(n.network());
            let size = 1u64 << (32 - u32::from(n.prefix_len()));
            total += size;
            got.extend((0..size).map(|i| first + i as u32));
        }
        prop_assert_eq!(&got, &want, "exactly the input addresses");
        prop_assert_eq!(total, got.len() as u64, "blocks are disjoint");
        let set: HashSet<IpNet> = nets.iter().copied().collect();
        for n in &nets {
            if let Some(parent) = n.supernet() {
                let halves: Vec<IpNet> = parent.subnets(n.prefix_len()).expect("halves").collect();
                prop_assert!(
                    !halves.iter().all(|h| set.contains(h)),
                    "{} and its sibling should have been merged into {}", n, parent
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// RPZ

#[test]
fn rpz_ip_triggers_have_bind_canonical_names() {
    let t = |s: &str| rpz::ip_trigger(s.parse::<IpNet>().expect("net"));
    assert_eq!(t("1.2.3.4/32").as_deref(), Some("32.4.3.2.1.rpz-ip"));
    assert_eq!(t("192.0.2.0/24").as_deref(), Some("24.0.2.0.192.rpz-ip"));
    assert_eq!(t("192.0.2.77/24").as_deref(), Some("24.0.2.0.192.rpz-ip"));
    assert_eq!(
        t("2001:db8::1/128").as_deref(),
        Some("128.1.zz.db8.2001.rpz-ip")
    );
    // BIND's ip2name: equal zero runs → the one nearer the start of the address.
    assert_eq!(
        t("2001:db8:0:0:1:0:0:1/128").as_deref(),
        Some("128.1.0.0.1.zz.db8.2001.rpz-ip")
    );
    assert_eq!(
        t("2001:2:3::1/128").as_deref(),
        Some("128.1.zz.3.2.2001.rpz-ip")
    );
    assert_eq!(
        t("2001:db8:1::/48").as_deref(),
        Some("48.zz.1.db8.2001.rpz-ip")
    );
    // A single zero group is not compressed.
    assert_eq!(
        t("2001:db8:0:1:1:1:1:1/128").as_deref(),
        Some("128.1.1.1.1.1.0.db8.2001.rpz-ip")
    );
    assert_eq!(t("::/8").as_deref(), Some("8.zz.rpz-ip"));
    assert_eq!(
        t("::ffff:192.0.2.1/128").as_deref(),
        Some("32.1.2.0.192.rpz-ip")
    );
    assert_eq!(t("0.0.0.0/0"), None);
    assert_eq!(t("::/0"), None);
    assert_eq!(t("::ffff:0:0/96"), None);
}

#[test]
fn rpz_zone_loads_in_named_checkzone_under_any_name_with_the_serial() {
    let kb = kb();
    let mut recs = active_records(&kb);
    recs.extend(inactive_records(&kb));
    let mut meta = full_meta();
    meta.serial = (1u64 << 32) + 5;
    let out = render(Format::Rpz, &recs, &kb, &meta);
    let zone = text(&out);
    let path = write_temp("zone.rpz", &out);
    assert_eq!(
        named_checkzone("rpz.threatfeed.", &path),
        5,
        "serial mod 2^32"
    );
    assert_eq!(named_checkzone("policy.resolver.example.org.", &path), 5);
    meta.serial = 42;
    let out42 = render(Format::Rpz, &recs, &kb, &meta);
    let path42 = write_temp("zone42.rpz", &out42);
    assert_eq!(named_checkzone("rpz.threatfeed.", &path42), 42);

    let owners: Vec<&str> = zone
        .lines()
        .filter(|l| l.contains(" CNAME ."))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for must in [
        "c2.example.net",
        "*.c2.example.net",
        "bad_host.example.org",
        "*.xn--bcher-kva.example",
        "old.example.org",
        "32.3.100.51.198.rpz-ip",
        "24.0.113.0.203.rpz-ip",
        "25.0.0.0.10.rpz-ip",
        "25.128.0.0.10.rpz-ip",
        "128.7.zz.db8.2001.rpz-ip",
        "128.1.0.0.1.zz.db8.2001.rpz-ip",
        "48.zz.1.db8.2001.rpz-ip",
    ] {
        assert!(owners.contains(&must), "{must} missing:\n{zone}");
    }
    for never in [
        "evil.rpz-ip",
        "*.evil.rpz-ip",
        "gone.example.com",
        "32.99.2.0.192.rpz-ip",
        "28.0.2.0.192.rpz-ip",
    ] {
        assert!(!owners.contains(&never), "{never} must not be listed");
    }
    assert!(!zone.contains(LONG_LABEL), "too long for every zone name");
    assert!(!zone.contains("://"), "no URLs");
    assert!(
        !zone.contains("d41d8cd98f00b204e9800998ecf8427e"),
        "no hashes"
    );
    // One line per trigger (two per domain), every entry relative.
    assert!(owners.iter().all(|o| !o.ends_with('.')));
    assert_eq!(owners.len(), 10 + 2 * 4);
    assert!(zone.contains("$TTL 300"));
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(&path42);
}

// ---------------------------------------------------------------------------------------------
// Suricata

fn rule_lines(out: &str) -> Vec<&str> {
    entries(out, "#")
}

fn sid_of(rule: &str) -> u64 {
    rule.split("sid:")
        .nth(1)
        .and_then(|s| s.split(';').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no sid in {rule}"))
}

#[test]
fn suricata_rules_load_in_suricata_with_unique_sids() {
    let kb = kb();
    let mut recs = active_records(&kb);
    recs.extend(inactive_records(&kb));
    let out = render(Format::Suricata, &recs, &kb, &full_meta());
    let rules_text = text(&out);
    let rules = rule_lines(rules_text);
    // 10 addresses / networks, 6 domains, 2 http(s) URLs; no ftp URL, no hash, no removal.
    assert_eq!(rules.len(), 18, "{rules_text}");
    assert_eq!(suricata_loads(&out), 18);
    let sids: Vec<u64> = rules.iter().map(|r| sid_of(r)).collect();
    assert_eq!(
        sids.iter().collect::<HashSet<_>>().len(),
        sids.len(),
        "unique sids"
    );
    for (r, s) in rules.iter().zip(&sids) {
        assert!((1_000_000_000..2_000_000_000).contains(s), "{r}");
        assert!(r.starts_with("alert "), "{r}");
        assert!(r.contains("classtype:trojan-activity; sid:"), "{r}");
        assert!(r.contains("rev:1; metadata:threat "), "{r}");
        assert!(r.ends_with(";)"), "{r}");
    }
    assert!(!rules_text.contains("gone.example.com"));
    assert!(!rules_text.contains("192.0.2.99"));
    assert!(!rules_text.contains("ftp://"));
    assert!(!rules_text.contains("d41d8cd98f00b204e9800998ecf8427e"));
    let find = |needle: &str| {
        rules
            .iter()
            .find(|r| r.contains(needle))
            .copied()
            .unwrap_or_else(|| panic!("no rule with {needle}:\n{rules_text}"))
    };
    let r = find("-> [2001:db8:1::/48] any");
    assert!(
        r.contains("metadata:threat cobalt-strike, tlp amber_strict, confidence 80;"),
        "{r}"
    );
    let r = find("dns.query");
    assert!(
        r.starts_with("alert dns $HOME_NET any -> any any (msg:\"threatfeed C2 "),
        "{r}"
    );
    let r = find("content:\".c2.example.net\"");
    assert!(
        r.contains("dns.query; dotprefix; content:\".c2.example.net\"; nocase; endswith;"),
        "{r}"
    );
    let r = find("gate.php");
    assert!(
        r.contains(
            "http.host; content:\"c2.example.net\"; startswith; endswith; \
             http.uri.raw; content:\"/gate.php?a=1|3B|b=|22|x|22 7C|y|5C|z,w\"; startswith; \
             endswith;"
        ),
        "{r}"
    );
    assert!(
        r.contains(
            r#"msg:"threatfeed C2 emotet http://c2.example.net/gate.php?a=1\;b=\"x\"|y\\z,w";"#
        ),
        "{r}"
    );
    let r = find("cdn.example.com");
    assert!(
        r.contains("http.uri.raw; content:\"/p/a%20b/|C3 BC|.exe\"; startswith; endswith;"),
        "{r}"
    );
    let r = find("old.example.org");
    assert!(r.contains("metadata:threat retired-threat,"), "{r}");
    assert!(
        r.contains(r#"msg:"threatfeed C2 Retired \"family\"\; with newline old.example.org";"#),
        "{r}"
    );
}

#[test]
fn suricata_sids_are_stable_across_exports_and_collisions_probe_in_id_order() {
    let kb = kb();
    let recs = active_records(&kb);
    let full = render(Format::Suricata, &recs, &kb, &full_meta());
    let half = render(Format::Suricata, &recs[..recs.len() / 2], &kb, &full_meta());
    let full_rules: HashSet<&str> = rule_lines(text(&full)).into_iter().collect();
    let half_rules = rule_lines(text(&half));
    assert!(!half_rules.is_empty());
    for r in half_rules {
        assert!(full_rules.contains(r), "rule changed between exports: {r}");
    }

    // Two ids whose preferred sids collide (a birthday search over the 10^9 range).
    let mut seen: std::collections::HashMap<u64, String> = std::collections::HashMap::new();
    let (a, b) = (0u64..)
        .find_map(|i| {
            let id = format!("ind_{i:032x}");
            let sid = suricata::preferred_sid(&id);
            seen.insert(sid, id.clone()).map(|prev| (prev, id))
        })
        .expect("a collision");
    let (first, second) = if a < b { (a, b) } else { (b, a) };
    let sid = suricata::preferred_sid(&first);
    let mut r1 = rec(&kb, "198.51.100.10", Some("emotet"), Tlp::Clear);
    r1.id = second.clone();
    let mut r2 = rec(&kb, "198.51.100.11", Some("emotet"), Tlp::Clear);
    r2.id = first.clone();
    let out = render(Format::Suricata, &[r1, r2], &kb, &full_meta());
    let rules = rule_lines(text(&out));
    let sid_for = |ip: &str| sid_of(rules.iter().find(|r| r.contains(ip)).expect("rule"));
    assert_eq!(
        sid_for("198.51.100.11]"),
        sid,
        "the smaller id keeps its sid"
    );
    let next = if sid + 1 == 2_000_000_000 {
        1_000_000_000
    } else {
        sid + 1
    };
    assert_eq!(
        sid_for("198.51.100.10]"),
        next,
        "the larger id probes to the next one"
    );
    assert_eq!(suricata_loads(&out), 2);
}

// ---------------------------------------------------------------------------------------------
// MISP

/// Loads every event file with PyMISP: per file (uuid, attribute count, md5 hashes of the
/// attribute values as PyMISP computes them for a feed's hashes.csv, event tags).
fn pymisp_load(files: &[PathBuf]) -> Vec<(String, usize, Vec<String>, Vec<String>)> {
    let script = "import sys\n\
        from pymisp import MISPEvent\n\
        for p in sys.argv[1:]:\n\
        \x20   e = MISPEvent()\n\
        \x20   e.load_file(p)\n\
        \x20   h = sorted(e.attributes_hashes('md5'))\n\
        \x20   t = sorted(x.name for x in e.tags)\n\
        \x20   print(e.uuid, len(e.attributes), ','.join(h), ','.join(t))\n";
    let mut args: Vec<String> = vec!["-c".into(), script.into()];
    args.extend(files.iter().map(|p| p.to_string_lossy().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = tool("python3", &args, "python3 with pymisp");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        !stderr.contains("No module named 'pymisp'"),
        "pymisp is not installed: run scripts/install-test-deps.sh (pip install pymisp)"
    );
    assert!(o.status.success(), "pymisp: {}", describe(&o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            assert_eq!(f.len(), 4, "{l}");
            let split = |s: &str| -> Vec<String> {
                s.split(',')
                    .filter(|x| !x.is_empty())
                    .map(str::to_string)
                    .collect()
            };
            (
                f[0].to_string(),
                f[1].parse().expect("count"),
                split(f[2]),
                split(f[3]),
            )
        })
        .collect()
}

#[test]
fn misp_feed_loads_in_pymisp_and_matches_its_manifest_and_hashes() {
    let kb = kb();
    let mut recs = active_records(&kb);
    recs.extend(inactive_records(&kb));
    let meta = full_meta();
    let manifest: BTreeMap<String, Value> =
        serde_json::from_slice(&render(Format::Misp, &recs, &kb, &meta)).expect("manifest");
    let expected: BTreeMap<String, (usize, &str)> = [
        (misp::event_uuid(Some("emotet")), (5, "tlp:red")),
        (
            misp::event_uuid(Some("cobalt-strike")),
            (2, "tlp:amber+strict"),
        ),
        (misp::event_uuid(Some("qakbot")), (6, "tlp:green")),
        (misp::event_uuid(Some("mirai")), (3, "tlp:green")),
        (misp::event_uuid(Some("retired-threat")), (1, "tlp:clear")),
        (misp::event_uuid(None), (5, "tlp:amber")),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        manifest.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "one event per threat with active indicators, plus the unattributed one"
    );
    let emotet = &manifest[&misp::event_uuid(Some("emotet"))];
    assert_eq!(emotet["info"], "threatfeed: Emotet indicators");
    assert_eq!(emotet["Orgc"]["name"], "threatfeed");
    assert_eq!(emotet["Orgc"]["uuid"], misp::ORG_UUID);
    assert_eq!(emotet["analysis"], "2");
    assert_eq!(emotet["threat_level_id"], "2");
    assert_eq!(emotet["date"], "2026-05-01");
    assert_eq!(emotet["timestamp"], meta.generated.as_second().to_string());
    assert_eq!(emotet["published"], true);
    assert_eq!(
        manifest[&misp::event_uuid(None)]["info"],
        misp::UNATTRIBUTED_INFO
    );

    let mut files = Vec::new();
    for (uuid, entry) in &manifest {
        let body = misp::event(uuid, &recs, &kb, &meta).expect("listed event");
        let v: Value = serde_json::from_slice(&body).expect("event json");
        assert_eq!(v["Event"]["uuid"], uuid.as_str());
        assert_eq!(v["Event"]["info"], entry["info"]);
        assert_eq!(v["Event"]["Tag"], entry["Tag"]);
        for a in v["Event"]["Attribute"].as_array().expect("attributes") {
            assert_eq!(a["to_ids"], true);
            assert!(
                a["Tag"][0]["name"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("tlp:"))
            );
            let ty = a["type"].as_str().unwrap_or_default();
            let category = if ["md5", "sha1", "sha256"].contains(&ty) {
                "Payload delivery"
            } else {
                "Network activity"
            };
            assert_eq!(a["category"], category, "{a}");
            assert!(
                !a["value"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("gone.example")
            );
        }
        files.push(write_temp(&format!("{uuid}.json"), &body));
    }
    let loaded = pymisp_load(&files);
    assert_eq!(loaded.len(), expected.len());

    let hashes = misp::hashes_csv(&recs, &kb, &meta);
    let mut by_event: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text(&hashes).lines() {
        let (h, uuid) = line.split_once(',').expect("md5,uuid");
        assert_eq!(h.len(), 32, "{line}");
        by_event
            .entry(uuid.to_string())
            .or_default()
            .push(h.to_string());
    }
    for (uuid, count, md5s, tags) in loaded {
        let (want, tlp) = expected[&uuid];
        assert_eq!(count, want, "attributes of event {uuid}");
        assert_eq!(tags, vec![tlp.to_string()], "event {uuid}");
        let mut ours = by_event.remove(&uuid).unwrap_or_default();
        ours.sort();
        assert_eq!(
            ours, md5s,
            "hashes.csv of {uuid} = PyMISP's attribute hashes"
        );
    }
    assert!(
        by_event.is_empty(),
        "hashes of unknown events: {by_event:?}"
    );
    for f in files {
        let _ = std::fs::remove_file(f);
    }

    // Unknown, malformed and suffixed uuids.
    assert!(misp::event(&misp::event_uuid(Some("dridex")), &recs, &kb, &meta).is_none());
    assert!(misp::event("not-a-uuid", &recs, &kb, &meta).is_none());
    let e = misp::event_uuid(Some("emotet"));
    assert!(misp::event(&format!("{e}.json"), &recs, &kb, &meta).is_some());
    assert!(misp::event(&e.to_uppercase(), &recs, &kb, &meta).is_some());
}

// ---------------------------------------------------------------------------------------------
// Every format

#[test]
fn every_format_is_deterministic_and_independent_of_input_order() {
    let kb = kb();
    let mut recs = active_records(&kb);
    recs.extend(inactive_records(&kb));
    let mut reversed = recs.clone();
    reversed.reverse();
    for meta in [full_meta(), incremental_meta()] {
        for f in Format::ALL {
            let a = render(f, &recs, &kb, &meta);
            assert!(!a.is_empty(), "{f}");
            assert_eq!(a, render(f, &recs, &kb, &meta), "{f} twice");
            assert_eq!(a, render(f, &reversed, &kb, &meta), "{f} reversed input");
        }
        assert_eq!(
            misp::hashes_csv(&recs, &kb, &meta),
            misp::hashes_csv(&reversed, &kb, &meta)
        );
        let e = misp::event_uuid(Some("qakbot"));
        assert_eq!(
            misp::event(&e, &recs, &kb, &meta),
            misp::event(&e, &reversed, &kb, &meta)
        );
    }
}

#[test]
fn list_formats_never_carry_removals() {
    let kb = kb();
    let recs = inactive_records(&kb);
    for meta in [full_meta(), incremental_meta()] {
        for f in [
            Format::Ip,
            Format::Cidr,
            Format::Domain,
            Format::Url,
            Format::Hosts,
            Format::Rpz,
            Format::Suricata,
        ] {
            let out = render(f, &recs, &kb, &meta);
            let out = text(&out);
            let comment = if f == Format::Rpz { ";" } else { "#" };
            let lines: Vec<&str> = entries(out, comment)
                .into_iter()
                .filter(|l| !l.starts_with('$') && !l.starts_with("@ "))
                .collect();
            assert!(lines.is_empty(), "{f} lists removals: {lines:?}");
        }
        let manifest: BTreeMap<String, Value> =
            serde_json::from_slice(&render(Format::Misp, &recs, &kb, &meta)).expect("json");
        assert!(manifest.is_empty());
        assert!(misp::hashes_csv(&recs, &kb, &meta).is_empty());
    }
}

/// Records no canonicalisation would produce (read back from an old store, say): no format
/// panics, list lines stay valid, the zone and the rules still load.
#[test]
fn odd_records_never_break_a_format() {
    let kb = kb();
    let base = rec(&kb, "198.51.100.200", Some("emotet"), Tlp::Clear);
    let odd = |kind: IndicatorKind, value: &str| {
        let mut r = base.clone();
        r.kind = kind;
        r.value = value.into();
        r.id = crate::indicator::indicator_id(kind, value);
        r.family = Some("bad\"family;\r\n|\u{7}".into());
        r.threat_id = Some("Not A Slug; x".into());
        r
    };
    let mut recs = vec![
        odd(
            IndicatorKind::Domain,
            "evil.example\n*.injected CNAME rpz-passthru.",
        ),
        odd(IndicatorKind::Domain, "a b.example"),
        odd(IndicatorKind::Domain, ""),
        odd(IndicatorKind::Domain, "single"),
        odd(IndicatorKind::Domain, "x.rpz-nsdname"),
        odd(IndicatorKind::Domain, &"a".repeat(300)),
        odd(IndicatorKind::Domain, "evil\u{e9}.example"),
        odd(IndicatorKind::Ipv4, "999.1.1.1"),
        odd(IndicatorKind::Ipv4, "1.2.3.4\n5.6.7.8"),
        odd(IndicatorKind::Cidr, "10.0.0.0/99"),
        odd(IndicatorKind::Cidr, "0.0.0.0/0"),
        odd(IndicatorKind::Cidr, "::/0"),
        odd(IndicatorKind::Url, "http://x.example/a\nb"),
        odd(IndicatorKind::Url, "javascript:alert(1)"),
        odd(IndicatorKind::Url, "http://[::1/x"),
        odd(IndicatorKind::Url, "http://user:pw@[2001:db8::5]:8080/p;q"),
        odd(IndicatorKind::Url, "http:///nohost"),
        odd(IndicatorKind::Md5, "zz"),
    ];
    recs.push(base);
    for meta in [full_meta(), incremental_meta()] {
        for f in Format::ALL {
            let out = render(f, &recs, &kb, &meta);
            assert!(!out.is_empty(), "{f}");
        }
    }
    let meta = full_meta();

    let ips = render(Format::Ip, &recs, &kb, &meta);
    for l in entries(text(&ips), "#") {
        l.parse::<IpAddr>()
            .unwrap_or_else(|_| panic!("bad ip line {l:?}"));
    }
    let cidr = render(Format::Cidr, &recs, &kb, &meta);
    for l in entries(text(&cidr), "#") {
        l.parse::<IpNet>()
            .unwrap_or_else(|_| panic!("bad cidr line {l:?}"));
    }
    for f in [Format::Domain, Format::Hosts] {
        let out = render(f, &recs, &kb, &meta);
        for l in entries(text(&out), "#") {
            let d = l.strip_prefix("0.0.0.0 ").unwrap_or(l);
            canonicalize_as(IndicatorKind::Domain, d)
                .unwrap_or_else(|e| panic!("bad {f} line {l:?}: {e}"));
            assert!(!d.contains(' '), "{l:?}");
        }
    }
    let urls = render(Format::Url, &recs, &kb, &meta);
    for l in entries(text(&urls), "#") {
        assert!(!l.contains(char::is_whitespace), "{l:?}");
        canonicalize_as(IndicatorKind::Url, l).unwrap_or_else(|e| panic!("bad url {l:?}: {e}"));
    }

    let zone = render(Format::Rpz, &recs, &kb, &meta);
    assert!(!text(&zone).contains("injected"));
    let path = write_temp("odd.rpz", &zone);
    named_checkzone("rpz.threatfeed.", &path);
    let _ = std::fs::remove_file(&path);

    let rules = render(Format::Suricata, &recs, &kb, &meta);
    let n = rule_lines(text(&rules)).len();
    assert_eq!(suricata_loads(&rules), n);

    let v: Value = serde_json::from_slice(&render(Format::Json, &recs, &kb, &meta)).expect("json");
    assert_eq!(v["count"], recs.len());
    let csv_out = render(Format::Csv, &recs, &kb, &meta);
    let rows = csv::Reader::from_reader(csv_out.as_slice())
        .records()
        .count();
    assert_eq!(rows, recs.len());
    serde_json::from_slice::<Value>(&render(Format::Stix, &recs, &kb, &meta)).expect("stix json");
    serde_json::from_slice::<Value>(&render(Format::Misp, &recs, &kb, &meta)).expect("manifest");
}

// ---------------------------------------------------------------------------------------------
// Suricata, on traffic: a capture written here (Ethernet / IPv4 / UDP, TCP), replayed with
// `suricata -r`, the alerts read from eve.json.

/// A pcap file being written (microsecond timestamps, Ethernet).
struct Pcap {
    bytes: Vec<u8>,
    t: u32,
}

fn checksum(chunks: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    let mut odd: Option<u8> = None;
    for c in chunks {
        for &b in *c {
            match odd.take() {
                Some(hi) => sum += u32::from(u16::from_be_bytes([hi, b])),
                None => odd = Some(b),
            }
        }
    }
    if let Some(hi) = odd {
        sum += u32::from(u16::from_be_bytes([hi, 0]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

impl Pcap {
    fn new() -> Self {
        let mut bytes = Vec::new();
        bytes.extend(0xa1b2_c3d4u32.to_le_bytes());
        bytes.extend(2u16.to_le_bytes());
        bytes.extend(4u16.to_le_bytes());
        bytes.extend([0u8; 8]);
        bytes.extend(65535u32.to_le_bytes());
        bytes.extend(1u32.to_le_bytes());
        Pcap {
            bytes,
            t: 1_780_000_000,
        }
    }

    fn ipv4(&mut self, src: [u8; 4], dst: [u8; 4], proto: u8, l4: &[u8]) {
        let mut ip = vec![0x45, 0];
        let total = u16::try_from(20 + l4.len()).expect("packet size");
        ip.extend(total.to_be_bytes());
        ip.extend([0, 1, 0x40, 0, 64, proto, 0, 0]);
        ip.extend(src);
        ip.extend(dst);
        let c = checksum(&[&ip]);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        let mut frame = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00];
        frame.extend(ip);
        frame.extend(l4);
        self.t += 1;
        let len = u32::try_from(frame.len()).expect("frame size");
        self.bytes.extend(self.t.to_le_bytes());
        self.bytes.extend(0u32.to_le_bytes());
        self.bytes.extend(len.to_le_bytes());
        self.bytes.extend(len.to_le_bytes());
        self.bytes.extend(frame);
    }

    fn udp(&mut self, src: ([u8; 4], u16), dst: ([u8; 4], u16), payload: &[u8]) {
        let len = u16::try_from(8 + payload.len()).expect("udp size");
        let mut u = Vec::new();
        u.extend(src.1.to_be_bytes());
        u.extend(dst.1.to_be_bytes());
        u.extend(len.to_be_bytes());
        u.extend([0, 0]);
        u.extend(payload);
        let pseudo = [&src.0[..], &dst.0[..], &[0, 17], &len.to_be_bytes()[..]].concat();
        let c = checksum(&[&pseudo, &u]);
        u[6..8].copy_from_slice(&c.to_be_bytes());
        self.ipv4(src.0, dst.0, 17, &u);
    }

    fn tcp(
        &mut self,
        src: ([u8; 4], u16),
        dst: ([u8; 4], u16),
        seq: u32,
        ack: u32,
        flags: u8,
        payload: &[u8],
    ) {
        let mut t = Vec::new();
        t.extend(src.1.to_be_bytes());
        t.extend(dst.1.to_be_bytes());
        t.extend(seq.to_be_bytes());
        t.extend(ack.to_be_bytes());
        t.extend([5 << 4, flags]);
        t.extend(65535u16.to_be_bytes());
        t.extend([0, 0, 0, 0]);
        t.extend(payload);
        let len = u16::try_from(t.len()).expect("tcp size");
        let pseudo = [&src.0[..], &dst.0[..], &[0, 6], &len.to_be_bytes()[..]].concat();
        let c = checksum(&[&pseudo, &t]);
        t[16..18].copy_from_slice(&c.to_be_bytes());
        self.ipv4(src.0, dst.0, 6, &t);
    }

    /// A DNS A query for `name` from `client:port`.
    fn dns_query(&mut self, client: [u8; 4], port: u16, name: &str) {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.split('.') {
            q.push(u8::try_from(label.len()).expect("label"));
            q.extend(label.as_bytes());
        }
        q.extend([0, 0, 1, 0, 1]);
        self.udp((client, port), ([192, 0, 2, 53], 53), &q);
    }

    /// A complete HTTP/1.1 exchange: handshake, `request`, a 200 answer, close.
    fn http(&mut self, client: [u8; 4], port: u16, server: [u8; 4], request: &[u8]) {
        const SYN: u8 = 0x02;
        const ACK: u8 = 0x10;
        const PSH: u8 = 0x08;
        const FIN: u8 = 0x01;
        let c = (client, port);
        let s = (server, 80);
        let (mut cs, mut ss) = (1000u32, 5000u32);
        self.tcp(c, s, cs, 0, SYN, b"");
        self.tcp(s, c, ss, cs + 1, SYN | ACK, b"");
        cs += 1;
        ss += 1;
        self.tcp(c, s, cs, ss, ACK, b"");
        self.tcp(c, s, cs, ss, PSH | ACK, request);
        cs += u32::try_from(request.len()).expect("request size");
        let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
        self.tcp(s, c, ss, cs, PSH | ACK, answer);
        ss += u32::try_from(answer.len()).expect("answer size");
        self.tcp(c, s, cs, ss, FIN | ACK, b"");
        self.tcp(s, c, ss, cs + 1, FIN | ACK, b"");
        self.tcp(c, s, cs + 1, ss + 1, ACK, b"");
    }
}

/// Replays `pcap` through Suricata with `rules`; the alerts as (signature id, client port).
fn suricata_alerts(rules: &[u8], pcap: &Pcap) -> BTreeSet<(u64, u64)> {
    let dir = temp_path("suricata-pcap");
    std::fs::create_dir_all(&dir).expect("log dir");
    let rules_file = dir.join("threatfeed.rules");
    let pcap_file = dir.join("traffic.pcap");
    std::fs::write(&rules_file, rules).expect("write rules");
    std::fs::write(&pcap_file, &pcap.bytes).expect("write pcap");
    let (r, p, d) = (
        rules_file.to_string_lossy().to_string(),
        pcap_file.to_string_lossy().to_string(),
        dir.to_string_lossy().to_string(),
    );
    let mut args = vec![
        "-r",
        &p,
        "-S",
        &r,
        "-l",
        &d,
        "-k",
        "none",
        "--runmode",
        "single",
    ];
    if Path::new("/etc/suricata/suricata.yaml").exists() {
        args.extend(["-c", "/etc/suricata/suricata.yaml"]);
    }
    let o = tool("suricata", &args, "Debian package suricata");
    assert!(o.status.success(), "suricata -r: {}", describe(&o));
    let eve = std::fs::read_to_string(dir.join("eve.json")).expect("eve.json");
    let alerts = eve
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["event_type"] == "alert")
        .map(|v| {
            let sid = v["alert"]["signature_id"].as_u64().unwrap_or(0);
            let (sp, dp) = (
                v["src_port"].as_u64().unwrap_or(0),
                v["dest_port"].as_u64().unwrap_or(0),
            );
            // The client's port, whichever way the alerting packet went.
            (sid, if sp >= 1024 { sp } else { dp })
        })
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    alerts
}

#[test]
fn suricata_rules_fire_on_matching_traffic_only() {
    let kb = kb();
    let recs = vec![
        rec(&kb, "198.51.100.3", Some("emotet"), Tlp::Clear),
        rec(&kb, "203.0.113.0/24", Some("cobalt-strike"), Tlp::Clear),
        rec(&kb, "c2.example.net", Some("emotet"), Tlp::Clear),
        rec(
            &kb,
            "http://c2.example.net/gate.php?a=1;b=\"x\"|y",
            Some("emotet"),
            Tlp::Clear,
        ),
        rec(&kb, "http://dl.example.com/p/a%20b.exe", None, Tlp::Clear),
        rec(
            &kb,
            "http://198.51.100.77/panel/gate.php",
            Some("qakbot"),
            Tlp::Clear,
        ),
    ];
    let out = render(Format::Suricata, &recs, &kb, &full_meta());
    let rules = rule_lines(text(&out));
    let sid = |needle: &str| sid_of(rules.iter().find(|r| r.contains(needle)).expect("rule"));
    let (ip, net, domain, url, pct, by_ip) = (
        sid("[198.51.100.3]"),
        sid("[203.0.113.0/24]"),
        sid("dns.query"),
        sid("gate.php?a=1"),
        sid("a%20b.exe"),
        sid("/panel/gate.php"),
    );

    let me = [192, 168, 1, 10];
    let mut p = Pcap::new();
    p.dns_query(me, 40001, "c2.example.net");
    p.dns_query(me, 40002, "www.C2.example.net");
    p.dns_query(me, 40003, "notc2.example.net");
    p.dns_query(me, 40004, "c2.example.net.evil.org");
    p.udp((me, 40005), ([198, 51, 100, 3], 8080), b"beacon");
    p.udp((me, 40006), ([203, 0, 113, 200], 8080), b"beacon");
    p.udp((me, 40007), ([198, 51, 100, 9], 8080), b"beacon");
    let get = |target: &str, host: &str| {
        format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: t\r\n\r\n").into_bytes()
    };
    let web = [192, 0, 2, 80];
    p.http(
        me,
        40010,
        web,
        &get("/gate.php?a=1;b=\"x\"|y", "c2.example.net"),
    );
    p.http(
        me,
        40011,
        web,
        &get("/gate.php?a=1;b=\"x\"|yz", "c2.example.net"),
    );
    p.http(
        me,
        40012,
        web,
        &get("/gate.php?a=1;b=\"x\"|y", "other.example.net"),
    );
    p.http(me, 40013, web, &get("/p/a%20b.exe", "dl.example.com"));
    p.http(
        me,
        40014,
        web,
        &get("/gate.php?a=1;b=\"x\"|y", "c2.example.net:8080"),
    );
    // Through a proxy (absolute-form request target).
    let proxy = [192, 168, 1, 1];
    p.http(
        me,
        40015,
        proxy,
        &get(
            "http://c2.example.net/gate.php?a=1;b=\"x\"|y",
            "c2.example.net",
        ),
    );
    p.http(me, 40016, web, &get("/p/a%20b.exe?", "dl.example.com"));
    p.http(me, 40017, web, &get("/p/a b.exe", "dl.example.com"));
    p.http(
        me,
        40018,
        [198, 51, 100, 77],
        &get("/panel/gate.php", "198.51.100.77"),
    );
    p.http(
        me,
        40019,
        [198, 51, 100, 78],
        &get("/panel/gate.php", "198.51.100.77"),
    );

    let alerts = suricata_alerts(&out, &p);
    let want: BTreeSet<(u64, u64)> = [
        (domain, 40001),
        (domain, 40002),
        (ip, 40005),
        (net, 40006),
        (url, 40010),
        (pct, 40013),
        (url, 40014),
        (url, 40015),
        (by_ip, 40018),
    ]
    .into_iter()
    .collect();
    let ours: BTreeSet<(u64, u64)> = alerts
        .into_iter()
        .filter(|(s, _)| [ip, net, domain, url, pct, by_ip].contains(s))
        .collect();
    assert_eq!(ours, want, "rules:\n{}", text(&out));
}

// ---------------------------------------------------------------------------------------------
// The bundled lists

/// The maltrail lists bundled with the binary, as the server's indicator store loads them.
fn bundled_records(kb: &KnowledgeBase) -> Vec<IndicatorRecord> {
    let now = ts("2026-06-01T00:00:00Z");
    let mut out = Vec::new();
    for (family, gz) in crate::intel::BUNDLED_LISTS {
        let report = crate::import::parse_reader(
            Some(crate::import::Format::Maltrail),
            flate2::read::GzDecoder::new(*gz),
            Some(family),
        )
        .expect("bundled list");
        for ind in report.indicators {
            let checked = crate::intel::Checked {
                kind: ind.kind,
                value: ind.value,
                id: ind.id,
                c: Contribution {
                    threat: Some((*family).to_string()),
                    port: ind.port,
                    ..Default::default()
                },
            };
            let source = Source {
                name: "maltrail".into(),
                org_id: None,
                anonymous: false,
                confidence: 80,
                tlp: Tlp::Clear,
                first_seen: now,
                last_seen: now,
            };
            let mut r = IndicatorRecord::new(checked, kb.get(family).map(|t| t.id.clone()), source);
            r.builtin = true;
            r.sources.clear();
            out.push(r);
        }
    }
    out
}

/// Every bundled indicator exported: the zone loads in named-checkzone, the rules have unique
/// sids and load in Suricata (a sample: see below), every list line parses.
#[test]
fn the_bundled_lists_export_to_loadable_zone_and_rules() {
    let kb = kb();
    let recs = bundled_records(&kb);
    assert!(recs.len() > 100_000, "{} bundled records", recs.len());
    let meta = full_meta();

    let zone = render(Format::Rpz, &recs, &kb, &meta);
    let path = write_temp("bundled.rpz", &zone);
    assert_eq!(named_checkzone("rpz.threatfeed.", &path), 42);
    let _ = std::fs::remove_file(&path);

    let rules = render(Format::Suricata, &recs, &kb, &meta);
    let lines = rule_lines(text(&rules));
    assert!(lines.len() > 100_000, "{} rules", lines.len());
    let sids: HashSet<u64> = lines.iter().map(|r| sid_of(r)).collect();
    assert_eq!(sids.len(), lines.len(), "unique sids");
    // Suricata takes ~30 s to load all of them here: every URL rule (the most escaping), one
    // in eight of the others.
    let sample: Vec<&str> = lines
        .iter()
        .enumerate()
        .filter(|(i, r)| r.starts_with("alert http ") || i % 8 == 0)
        .map(|(_, r)| *r)
        .collect();
    let sample_file = format!("{}\n", sample.join("\n"));
    assert_eq!(suricata_loads(sample_file.as_bytes()), sample.len());

    for f in [
        Format::Ip,
        Format::Cidr,
        Format::Domain,
        Format::Url,
        Format::Hosts,
    ] {
        let out = render(f, &recs, &kb, &meta);
        for l in entries(text(&out), "#") {
            let ok = match f {
                Format::Ip => l.parse::<IpAddr>().is_ok(),
                Format::Cidr => l.parse::<IpNet>().is_ok(),
                Format::Domain => canonicalize_as(IndicatorKind::Domain, l).is_ok(),
                Format::Url => canonicalize_as(IndicatorKind::Url, l).is_ok(),
                _ => l
                    .strip_prefix("0.0.0.0 ")
                    .is_some_and(|d| canonicalize_as(IndicatorKind::Domain, d).is_ok()),
            };
            assert!(ok, "bad {f} line {l:?}");
        }
    }
}
