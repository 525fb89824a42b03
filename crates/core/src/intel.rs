//! Indicator records: what the feed knows about one indicator over time — its threat, confidence,
//! TLP, first / last seen, valid-until, who reported it — and how it stops being believed.
//!
//! One [`IndicatorRecord`] exists per indicator id ([`crate::indicator::indicator_id`]): the same
//! value contributed twice, by one member or by several, is *merged* into it, each contributor
//! being one [`Source`]. The record's confidence is the highest of its sources', its TLP the
//! least restrictive of its sources' (a value shared as CLEAR by one member is public, whoever
//! else holds it as AMBER; the AMBER source itself stays hidden from those who may not see
//! AMBER — see [`crate::privacy::view_indicator`]).
//!
//! **Expiry and decay.** A record is active until
//! - its `valid_until` passes ([`Status::Expired`]), or
//! - its confidence, decayed with the age since it was last seen ([`DecayPolicy`]: a half-life
//!   per indicator kind), falls below the policy's floor ([`Status::Decayed`]), or
//! - it is withdrawn by its contributors, deleted by an admin or confirmed a false positive.
//!
//! Records from the bundled lists ([`IndicatorRecord::builtin`]) ship with the binary and do not
//! decay. An inactive record is kept (so a later re-contribution reactivates it, and its removal
//! is on record); every transition becomes a [`Change`] that the server appends to its change log
//! and streams, so blocklists downstream shrink as well as grow.

use crate::indicator::{
    IndicatorError, IndicatorKind, canonicalize, canonicalize_as, indicator_id,
};
use crate::tlp::Tlp;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

/// How an anonymous contributor is named to everyone else.
pub const ANONYMOUS_NAME: &str = "anonymous member";

macro_rules! bundled_lists {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/kb/maltrail/", $name, ".txt.gz")) as &[u8])),*]
    };
}

/// The maltrail family lists compiled into the binary (`data/kb/maltrail/`): (family, gzip
/// bytes). Loaded as [`IndicatorRecord::builtin`] records, TLP:CLEAR.
pub const BUNDLED_LISTS: &[(&str, &[u8])] = bundled_lists!(
    "agenttesla",
    "amadey",
    "asyncrat",
    "cobaltstrike",
    "dridex",
    "elf_gafgyt",
    "elf_mirai",
    "emotet",
    "formbook",
    "icedid",
    "lokibot",
    "njrat",
    "qakbot",
    "redline",
    "remcos",
    "trickbot",
    "ursnif",
);

/// Default confidence of a contribution that states none.
pub const DEFAULT_CONFIDENCE: u8 = 70;

/// One reporter of an indicator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// The member's name, or the feed's (`maltrail`, `feodo-csv`, ...).
    pub name: String,
    /// The contributing member's id; `None` for feeds imported by an admin. Internal: never
    /// shown to other members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    /// Contributed anonymously: other members see [`ANONYMOUS_NAME`].
    #[serde(default)]
    pub anonymous: bool,
    /// This source's confidence.
    pub confidence: u8,
    /// This source's TLP.
    pub tlp: Tlp,
    /// When this source first reported it.
    pub first_seen: Timestamp,
    /// When this source last reported it.
    pub last_seen: Timestamp,
}

impl Source {
    /// Whether `other` is the same reporter (same member, or same feed name).
    fn same_reporter(&self, other: &Source) -> bool {
        match (&self.org_id, &other.org_id) {
            (Some(a), Some(b)) => a == b,
            (None, None) => self.name == other.name,
            _ => false,
        }
    }
}

/// Whether a record is believed, and if not, why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Believed; listed, looked up, exported.
    #[default]
    Active,
    /// Its `valid_until` passed.
    Expired,
    /// Its decayed confidence fell below the floor.
    Decayed,
    /// Confirmed a false positive.
    FalsePositive,
    /// Every contributor withdrew it.
    Withdrawn,
    /// Deleted by an admin.
    Deleted,
}

impl Status {
    /// The kebab-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Expired => "expired",
            Status::Decayed => "decayed",
            Status::FalsePositive => "false-positive",
            Status::Withdrawn => "withdrawn",
            Status::Deleted => "deleted",
        }
    }
}

/// Everything known about one indicator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndicatorRecord {
    /// Deterministic id of kind + canonical value.
    pub id: String,
    /// Kind.
    pub kind: IndicatorKind,
    /// Canonical value.
    pub value: String,
    /// The documented threat it belongs to.
    pub threat_id: Option<String>,
    /// The family as its sources named it.
    pub family: Option<String>,
    /// The port given with it.
    pub port: Option<u16>,
    /// Free text from the contributor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Highest confidence of its sources.
    pub confidence: u8,
    /// Least restrictive TLP of its sources.
    pub tlp: Tlp,
    /// First report.
    pub first_seen: Timestamp,
    /// Latest report.
    pub last_seen: Timestamp,
    /// Not believed after this instant.
    pub valid_until: Option<Timestamp>,
    /// Its reporters.
    pub sources: Vec<Source>,
    /// In the lists bundled with the binary (never decays).
    #[serde(default)]
    pub builtin: bool,
    /// Believed or not.
    #[serde(default)]
    pub status: Status,
    /// When `status` last changed.
    #[serde(default)]
    pub status_changed: Option<Timestamp>,
    /// Members that reported it as a false positive (internal).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub false_positive_reports: Vec<String>,
}

/// What a member (or an importer) states about one indicator.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contribution {
    /// The value, in any spelling (defanged, upper case, ...).
    pub value: String,
    /// Its kind; detected from the value when absent.
    #[serde(default, rename = "type")]
    pub kind: Option<IndicatorKind>,
    /// The threat (id, name or alias of the knowledge base, or a family name).
    #[serde(default)]
    pub threat: Option<String>,
    /// Confidence 0–100 ([`DEFAULT_CONFIDENCE`] when absent).
    #[serde(default)]
    pub confidence: Option<u8>,
    /// TLP (the request's default, else CLEAR... set by the caller).
    #[serde(default)]
    pub tlp: Option<Tlp>,
    /// Seen at (now when absent).
    #[serde(default)]
    pub last_seen: Option<Timestamp>,
    /// Not believed after.
    #[serde(default)]
    pub valid_until: Option<Timestamp>,
    /// Port.
    #[serde(default)]
    pub port: Option<u16>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
}

/// Why a contribution was refused. Names the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContributionError {
    /// Not a valid indicator.
    #[error(transparent)]
    Indicator(#[from] IndicatorError),
    /// Confidence above 100.
    #[error("confidence {0} out of range 0-100")]
    Confidence(u8),
    /// Description too long.
    #[error("description of {0} bytes is longer than {max}", max = MAX_DESCRIPTION)]
    Description(usize),
}

/// Longest description kept.
pub const MAX_DESCRIPTION: usize = 4096;

/// A contribution checked and canonicalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// Kind.
    pub kind: IndicatorKind,
    /// Canonical value.
    pub value: String,
    /// Id.
    pub id: String,
    /// The rest, as given.
    pub c: Contribution,
}

impl Contribution {
    /// Canonicalises the value and checks the fields.
    pub fn check(self) -> Result<Checked, ContributionError> {
        let (kind, value) = match self.kind {
            Some(k) => canonicalize_as(k, &self.value)?,
            None => canonicalize(&self.value)?,
        };
        if let Some(c) = self.confidence
            && c > 100
        {
            return Err(ContributionError::Confidence(c));
        }
        if let Some(d) = &self.description
            && d.len() > MAX_DESCRIPTION
        {
            return Err(ContributionError::Description(d.len()));
        }
        Ok(Checked {
            id: indicator_id(kind, &value),
            kind,
            value,
            c: self,
        })
    }
}

/// The result of merging a contribution into the records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MergeOutcome {
    /// A new indicator.
    Added,
    /// Known and active; merged.
    Merged,
    /// Known but inactive; active again.
    Reactivated,
}

impl IndicatorRecord {
    /// A new record from its first source.
    pub fn new(checked: Checked, threat_id: Option<String>, source: Source) -> IndicatorRecord {
        let Checked { kind, value, id, c } = checked;
        IndicatorRecord {
            id,
            kind,
            value,
            threat_id,
            family: c.threat,
            port: c.port,
            description: c.description,
            confidence: source.confidence,
            tlp: source.tlp,
            first_seen: source.first_seen,
            last_seen: source.last_seen,
            valid_until: c.valid_until,
            sources: vec![source],
            builtin: false,
            status: Status::Active,
            status_changed: None,
            false_positive_reports: Vec::new(),
        }
    }

    /// Whether it is believed.
    pub fn is_active(&self) -> bool {
        self.status == Status::Active
    }

    /// Merges another report of the same indicator.
    pub fn merge(
        &mut self,
        checked: Checked,
        threat_id: Option<String>,
        source: Source,
        now: Timestamp,
    ) -> MergeOutcome {
        let c = checked.c;
        if threat_id.is_some() {
            self.threat_id = threat_id;
        }
        if c.threat.is_some() {
            self.family = c.threat;
        }
        if c.port.is_some() {
            self.port = c.port;
        }
        if c.description.is_some() {
            self.description = c.description;
        }
        // A new report without an end of validity is believed until it decays.
        self.valid_until = match (self.valid_until, c.valid_until) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ if self.is_active() => self.valid_until.and(c.valid_until),
            _ => c.valid_until,
        };
        match self.sources.iter_mut().find(|s| s.same_reporter(&source)) {
            Some(s) => {
                s.confidence = source.confidence;
                s.tlp = source.tlp;
                s.anonymous = source.anonymous;
                s.name = source.name;
                s.last_seen = s.last_seen.max(source.last_seen);
            }
            None => self.sources.push(source),
        }
        self.recompute();
        if self.is_active() {
            MergeOutcome::Merged
        } else {
            self.status = Status::Active;
            self.status_changed = Some(now);
            self.false_positive_reports.clear();
            MergeOutcome::Reactivated
        }
    }

    /// Recomputes confidence, TLP and first / last seen from the sources.
    pub fn recompute(&mut self) {
        if self.sources.is_empty() {
            return;
        }
        self.confidence = self.sources.iter().map(|s| s.confidence).max().unwrap_or(0);
        self.tlp = self.sources.iter().map(|s| s.tlp).min().unwrap_or_default();
        if let Some(f) = self.sources.iter().map(|s| s.first_seen).min() {
            self.first_seen = f;
        }
        if let Some(l) = self.sources.iter().map(|s| s.last_seen).max() {
            self.last_seen = l;
        }
    }

    /// Sets an inactive status, returning whether it changed.
    pub fn deactivate(&mut self, status: Status, now: Timestamp) -> bool {
        if !self.is_active() || status == Status::Active {
            return false;
        }
        self.status = status;
        self.status_changed = Some(now);
        true
    }

    /// The public summary (no sources, no reporters): what the change log and streams carry.
    pub fn summary(&self) -> Summary<'_> {
        Summary {
            id: &self.id,
            kind: self.kind,
            value: &self.value,
            threat_id: self.threat_id.as_deref(),
            family: self.family.as_deref(),
            port: self.port,
            confidence: self.confidence,
            tlp: self.tlp,
            first_seen: self.first_seen,
            last_seen: self.last_seen,
            valid_until: self.valid_until,
            status: self.status,
        }
    }
}

/// [`IndicatorRecord::summary`].
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Summary<'a> {
    pub id: &'a str,
    #[serde(rename = "type")]
    pub kind: IndicatorKind,
    pub value: &'a str,
    pub threat_id: Option<&'a str>,
    pub family: Option<&'a str>,
    pub port: Option<u16>,
    pub confidence: u8,
    pub tlp: Tlp,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub valid_until: Option<Timestamp>,
    pub status: Status,
}

/// How confidence decays with the age since an indicator was last seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecayPolicy {
    /// Half-life per kind (index = position in [`IndicatorKind::ALL`]); `None` = no decay.
    pub half_life: [Option<SignedDuration>; 8],
    /// A record whose decayed confidence falls below this is deactivated.
    pub min_confidence: u8,
}

impl Default for DecayPolicy {
    /// Addresses are re-assigned and C2 servers move within weeks; domains and networks last
    /// longer; file hashes never change meaning.
    fn default() -> Self {
        let days = |d: i64| Some(SignedDuration::from_hours(24 * d));
        DecayPolicy {
            half_life: [
                days(30), // ipv4
                days(30), // ipv6
                days(90), // cidr
                days(90), // domain
                days(30), // url
                None,     // md5
                None,     // sha1
                None,     // sha256
            ],
            min_confidence: 20,
        }
    }
}

impl DecayPolicy {
    /// The half-life of `kind`.
    pub fn half_life_of(&self, kind: IndicatorKind) -> Option<SignedDuration> {
        let i = IndicatorKind::ALL.iter().position(|k| *k == kind)?;
        self.half_life[i]
    }

    /// Sets the half-life of `kind`.
    pub fn set_half_life(&mut self, kind: IndicatorKind, h: Option<SignedDuration>) {
        if let Some(i) = IndicatorKind::ALL.iter().position(|k| *k == kind) {
            self.half_life[i] = h;
        }
    }

    /// Confidence of `r` at `now`: `confidence × 0.5^(age / half-life)`.
    pub fn effective_confidence(&self, r: &IndicatorRecord, now: Timestamp) -> u8 {
        if r.builtin {
            return r.confidence;
        }
        let Some(h) = self.half_life_of(r.kind) else {
            return r.confidence;
        };
        let age = now.duration_since(r.last_seen).as_secs_f64();
        let h = h.as_secs_f64();
        if age <= 0.0 || h <= 0.0 {
            return r.confidence;
        }
        let c = f64::from(r.confidence) * 0.5f64.powf(age / h);
        c.floor().clamp(0.0, 100.0) as u8
    }

    /// The status `r` should move to at `now`, if it is active and no longer believed.
    pub fn evaluate(&self, r: &IndicatorRecord, now: Timestamp) -> Option<Status> {
        if !r.is_active() {
            return None;
        }
        if let Some(v) = r.valid_until
            && v <= now
        {
            return Some(Status::Expired);
        }
        if self.effective_confidence(r, now) < self.min_confidence {
            return Some(Status::Decayed);
        }
        None
    }
}

/// What happened to an indicator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeOp {
    /// New, or active again.
    Add,
    /// Still active; fields changed.
    Update,
    /// No longer active.
    Remove,
}

impl ChangeOp {
    /// The lower-case name (the SSE event name).
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeOp::Add => "add",
            ChangeOp::Update => "update",
            ChangeOp::Remove => "remove",
        }
    }
}

/// One entry of the indicator change log.
#[derive(Debug, Clone, Serialize)]
pub struct Change<'a> {
    /// What happened.
    pub op: ChangeOp,
    /// When.
    pub time: Timestamp,
    /// The indicator after the change.
    pub indicator: Summary<'a>,
}

/// A change log entry read back.
#[derive(Debug, Clone, Deserialize)]
pub struct StoredChange {
    /// What happened.
    pub op: ChangeOp,
    /// When.
    pub time: Timestamp,
    /// The indicator after the change.
    pub indicator: ChangedIndicator,
}

/// The indicator of a [`StoredChange`] (the fields of [`Summary`]).
#[derive(Debug, Clone, Deserialize)]
pub struct ChangedIndicator {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: IndicatorKind,
    pub value: String,
    pub threat_id: Option<String>,
    pub family: Option<String>,
    pub port: Option<u16>,
    pub confidence: u8,
    pub tlp: Tlp,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub valid_until: Option<Timestamp>,
    pub status: Status,
}

impl StoredChange {
    /// The indicator as a record (without its sources, which the change log never holds),
    /// its status as of this change.
    pub fn to_record(&self) -> IndicatorRecord {
        let i = &self.indicator;
        IndicatorRecord {
            id: i.id.clone(),
            kind: i.kind,
            value: i.value.clone(),
            threat_id: i.threat_id.clone(),
            family: i.family.clone(),
            port: i.port,
            description: None,
            confidence: i.confidence,
            tlp: i.tlp,
            first_seen: i.first_seen,
            last_seen: i.last_seen,
            valid_until: i.valid_until,
            sources: Vec::new(),
            builtin: false,
            status: i.status,
            status_changed: (i.status != Status::Active).then_some(self.time),
            false_positive_reports: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).expect("ts")
    }

    fn src(org: Option<&str>, name: &str, conf: u8, tlp: Tlp, at: i64) -> Source {
        Source {
            name: name.into(),
            org_id: org.map(str::to_string),
            anonymous: false,
            confidence: conf,
            tlp,
            first_seen: ts(at),
            last_seen: ts(at),
        }
    }

    fn contribution(v: &str) -> Checked {
        Contribution {
            value: v.into(),
            ..Default::default()
        }
        .check()
        .expect("valid")
    }

    #[test]
    fn ten_spellings_are_one_indicator() {
        let spellings = [
            "evil.example",
            "EVIL.example",
            "evil.example.",
            "evil[.]example",
            " Evil.Example ",
            "evil(.)example",
            "EVIL[.]EXAMPLE.",
            "evil.EXAMPLE",
            "eViL.eXaMpLe",
            "evil[.]example ",
        ];
        let ids: std::collections::HashSet<String> =
            spellings.iter().map(|s| contribution(s).id).collect();
        assert_eq!(ids.len(), 1, "{ids:?}");
    }

    #[test]
    fn merging_keeps_the_strongest_confidence_and_the_widest_tlp() {
        let mut r = IndicatorRecord::new(
            contribution("192.0.2.1"),
            None,
            src(Some("org_a"), "A", 40, Tlp::Amber, 0),
        );
        let out = r.merge(
            contribution("192.0.2.1"),
            Some("emotet".into()),
            src(Some("org_b"), "B", 90, Tlp::Green, 10),
            ts(10),
        );
        assert_eq!(out, MergeOutcome::Merged);
        assert_eq!(r.confidence, 90);
        assert_eq!(r.tlp, Tlp::Green);
        assert_eq!(r.sources.len(), 2);
        assert_eq!(r.last_seen, ts(10));
        assert_eq!(r.first_seen, ts(0));
        // The same member again updates its source instead of adding one.
        r.merge(
            contribution("192.0.2.1"),
            None,
            src(Some("org_a"), "A", 50, Tlp::Amber, 20),
            ts(20),
        );
        assert_eq!(r.sources.len(), 2);
        assert_eq!(r.threat_id.as_deref(), Some("emotet"));
    }

    #[test]
    fn decay_halves_confidence_per_half_life_and_deactivates_below_the_floor() {
        let mut p = DecayPolicy::default();
        p.set_half_life(IndicatorKind::Ipv4, Some(SignedDuration::from_secs(100)));
        let r = IndicatorRecord::new(
            contribution("192.0.2.1"),
            None,
            src(None, "feed", 80, Tlp::Clear, 0),
        );
        assert_eq!(p.effective_confidence(&r, ts(0)), 80);
        assert_eq!(p.effective_confidence(&r, ts(100)), 40);
        assert_eq!(p.effective_confidence(&r, ts(200)), 20);
        assert_eq!(p.evaluate(&r, ts(200)), None);
        assert_eq!(p.evaluate(&r, ts(201)), Some(Status::Decayed));
        let mut b = r.clone();
        b.builtin = true;
        assert_eq!(
            p.evaluate(&b, ts(10_000)),
            None,
            "bundled lists never decay"
        );
        let h = IndicatorRecord::new(
            contribution("d41d8cd98f00b204e9800998ecf8427e"),
            None,
            src(None, "feed", 80, Tlp::Clear, 0),
        );
        assert_eq!(
            p.evaluate(&h, ts(1_000_000_000)),
            None,
            "hashes never decay"
        );
    }

    #[test]
    fn expiry_and_reactivation() {
        let p = DecayPolicy::default();
        let mut c = contribution("evil.example");
        c.c.valid_until = Some(ts(50));
        let mut r = IndicatorRecord::new(c, None, src(None, "feed", 80, Tlp::Clear, 0));
        assert_eq!(p.evaluate(&r, ts(49)), None);
        assert_eq!(p.evaluate(&r, ts(50)), Some(Status::Expired));
        assert!(r.deactivate(Status::Expired, ts(50)));
        assert!(!r.deactivate(Status::Decayed, ts(51)), "already inactive");
        let out = r.merge(
            contribution("evil.example"),
            None,
            src(None, "feed", 80, Tlp::Clear, 60),
            ts(60),
        );
        assert_eq!(out, MergeOutcome::Reactivated);
        assert!(r.is_active());
        assert_eq!(r.valid_until, None, "the new report set no end");
        assert_eq!(p.evaluate(&r, ts(61)), None);
    }

    #[test]
    fn bad_contributions_name_the_value() {
        let e = Contribution {
            value: "not an indicator!".into(),
            ..Default::default()
        }
        .check()
        .expect_err("invalid");
        assert!(e.to_string().contains("not an indicator!"), "{e}");
        let e = Contribution {
            value: "192.0.2.1".into(),
            confidence: Some(101),
            ..Default::default()
        }
        .check()
        .expect_err("range");
        assert!(e.to_string().contains("101"), "{e}");
    }
}
