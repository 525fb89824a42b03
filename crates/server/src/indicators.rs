//! The indicator store: every indicator record, its persistence, its change log, and the lookup
//! index built from it.
//!
//! - Records ([`threatfeed_core::intel::IndicatorRecord`]) live in memory in one ordered map
//!   behind a mutex (writers only: contributions, imports, deletions, false-positive reports,
//!   the decay sweep). Records from the bundled lists are rebuilt from the binary at start-up;
//!   every other record — and every bundled one a member touched — is persisted in the member
//!   store (`indicators` table) before the change is acknowledged.
//! - Every change (add, update, remove) is appended durably to the **indicator change log**
//!   (an [`EventLog`] of its own, `<data_dir>/indicator-changes/`), with its own `seq`. It backs
//!   `GET /api/v1/indicators/changes` and the `GET /api/v1/indicators/stream` SSE stream, so a
//!   blocklist downstream can follow additions *and removals* without re-downloading.
//! - After each change the lookup index ([`IndicatorIndex`], active records only) is rebuilt and
//!   swapped in atomically; lookups and classification never wait for a writer.
//! - The sweep ([`IndicatorStore::sweep`], run periodically by the server) applies expiry and
//!   decay ([`DecayPolicy`]) and emits the removals.
//!
//! Contributors' accuracy: each member's count of contributed indicators and of those confirmed
//! false positives is kept in the member store (`contributor/<org id>`).

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use arc_swap::ArcSwap;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use threatfeed_core::import::{Format, parse_reader};
use threatfeed_core::intel::{
    ANONYMOUS_NAME, Change, ChangeOp, Checked, Contribution, DecayPolicy, IndicatorRecord,
    MergeOutcome, Source, Status,
};
use threatfeed_core::lookup::{IndicatorEntry, IndicatorIndex};
use threatfeed_core::threat::KnowledgeBase;
use threatfeed_core::tlp::Tlp;
use threatfeed_store::log::EventLog;
use threatfeed_store::state::StateStore;
use tokio::sync::watch;

/// Who is reporting.
#[derive(Debug, Clone)]
pub struct Reporter {
    /// Shown name (the member's, or the feed's).
    pub name: String,
    /// The member; `None` for a feed imported by an admin.
    pub org_id: Option<String>,
    /// Hide the member from others.
    pub anonymous: bool,
    /// TLP of items that state none.
    pub default_tlp: Tlp,
    /// Confidence of items that state none.
    pub default_confidence: u8,
}

impl Reporter {
    /// The caller itself.
    pub fn member(caller: &Caller, anonymous: bool, default_tlp: Tlp) -> Reporter {
        Reporter {
            name: caller.org.name.clone(),
            org_id: Some(caller.org.id.clone()),
            anonymous,
            default_tlp,
            default_confidence: threatfeed_core::intel::DEFAULT_CONFIDENCE,
        }
    }
}

/// What a contribution did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ContributeReport {
    /// New indicators.
    pub added: usize,
    /// Known ones merged.
    pub merged: usize,
    /// Inactive ones made active again.
    pub reactivated: usize,
    /// Refused items: index in the request and reason naming the value.
    pub rejected: Vec<Rejected>,
    /// Ids of the accepted items, in request order.
    pub ids: Vec<String>,
}

/// One refused item.
#[derive(Debug, Clone, Serialize)]
pub struct Rejected {
    /// Its 0-based index in the request.
    pub index: usize,
    /// Why.
    pub error: String,
}

/// A member's record as a contributor.
#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize)]
pub struct ContributorStats {
    /// Indicators it contributed.
    pub contributed: u64,
    /// Of those, confirmed false positives.
    pub false_positives: u64,
}

impl ContributorStats {
    /// Share of its contributions not found false: 1.0 with no contributions.
    pub fn accuracy(&self) -> f64 {
        if self.contributed == 0 {
            1.0
        } else {
            1.0 - (self.false_positives as f64 / self.contributed as f64).min(1.0)
        }
    }
}

/// Filters of the listing.
#[derive(Debug, Default, Clone)]
pub struct ListFilter {
    /// Only this kind.
    pub kind: Option<threatfeed_core::indicator::IndicatorKind>,
    /// Only this threat (its id, resolved by the caller).
    pub threat: Option<String>,
    /// Last seen at or after.
    pub since: Option<Timestamp>,
    /// Effective confidence at least.
    pub min_confidence: Option<u8>,
    /// `Some(true)` active only, `Some(false)` inactive only, `None` both.
    pub active: Option<bool>,
    /// Ids after this one.
    pub after: Option<String>,
    /// Page size.
    pub limit: usize,
}

/// Settings of the store.
#[derive(Debug, Clone)]
pub struct IndicatorSettings {
    /// Decay.
    pub decay: DecayPolicy,
    /// Distinct members whose false-positive reports deactivate an indicator.
    pub false_positive_reports: usize,
}

impl Default for IndicatorSettings {
    fn default() -> Self {
        IndicatorSettings {
            decay: DecayPolicy::default(),
            false_positive_reports: 2,
        }
    }
}

/// See the module documentation.
pub struct IndicatorStore {
    records: Mutex<BTreeMap<String, IndicatorRecord>>,
    /// Change-log seqs of each indicator, oldest first (its versions), and the record id of
    /// each STIX indicator id.
    history: std::sync::RwLock<History>,
    state: Arc<StateStore>,
    changes: Arc<dyn EventLog>,
    head: watch::Sender<u64>,
    index: Arc<ArcSwap<IndicatorIndex>>,
    kb: Arc<ArcSwap<KnowledgeBase>>,
    settings: IndicatorSettings,
}

impl std::fmt::Debug for IndicatorStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndicatorStore").finish_non_exhaustive()
    }
}

const STATS_PREFIX: &str = "contributor/";

fn store_err(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(format!("indicator store: {e}"))
}

impl IndicatorStore {
    /// Opens the store over persisted records; `index` receives the lookup index.
    pub fn open(
        state: Arc<StateStore>,
        changes: Arc<dyn EventLog>,
        index: Arc<ArcSwap<IndicatorIndex>>,
        kb: Arc<ArcSwap<KnowledgeBase>>,
        settings: IndicatorSettings,
    ) -> anyhow::Result<IndicatorStore> {
        let stored: Vec<IndicatorRecord> = state.indicators()?;
        let records: BTreeMap<String, IndicatorRecord> =
            stored.into_iter().map(|r| (r.id.clone(), r)).collect();
        let (head, _) = watch::channel(changes.last_seq());
        let history = read_history(changes.as_ref())?;
        let store = IndicatorStore {
            records: Mutex::new(records),
            history: std::sync::RwLock::new(history),
            state,
            changes,
            head,
            index,
            kb,
            settings,
        };
        store.rebuild(&store.lock());
        Ok(store)
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, IndicatorRecord>> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The change log.
    pub fn changes(&self) -> &Arc<dyn EventLog> {
        &self.changes
    }

    /// Notified with the change log's last seq after every append.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.head.subscribe()
    }

    /// The decay policy.
    pub fn decay(&self) -> &DecayPolicy {
        &self.settings.decay
    }

    /// Number of records, and of active ones.
    pub fn counts(&self) -> (usize, usize) {
        let g = self.lock();
        (g.len(), g.values().filter(|r| r.is_active()).count())
    }

    /// The change-log seqs of indicator `id` (its versions), oldest first.
    pub fn versions(&self, id: &str) -> Vec<u64> {
        self.history
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .seqs
            .get(id)
            .cloned()
            .unwrap_or_default()
    }

    /// The change-log seqs of the first and the last version of record `id`.
    pub fn version_bounds(&self, id: &str) -> Option<(u64, u64)> {
        let h = self.history.read().unwrap_or_else(|p| p.into_inner());
        let v = h.seqs.get(id)?;
        Some((*v.first()?, *v.last()?))
    }

    /// The record id of a STIX indicator id this server issued.
    pub fn record_id_for_stix(&self, stix_id: &str) -> Option<String> {
        let u = stix_uuid(stix_id)?;
        {
            let h = self.history.read().unwrap_or_else(|p| p.into_inner());
            if let Some(m) = &h.by_stix {
                return m.get(&u).map(|id| id.to_string());
            }
        }
        let mut h = self.history.write().unwrap_or_else(|p| p.into_inner());
        h.index_stix_ids();
        h.by_stix
            .as_ref()
            .and_then(|m| m.get(&u))
            .map(|id| id.to_string())
    }

    /// Adds the lists bundled with the binary (records already stored take precedence). Bundled
    /// indicators not yet in the change log are logged as additions (once per data directory),
    /// so that the change log replays the whole set for downstream consumers.
    pub fn load_bundled(&self) -> usize {
        let kb = self.kb.load_full();
        let now = Timestamp::now();
        let mut added = 0;
        let mut g = self.lock();
        for (family, gz) in threatfeed_core::intel::BUNDLED_LISTS {
            let threat_id = kb.get(family).map(|t| t.id.clone());
            let report = match parse_reader(
                Some(Format::Maltrail),
                flate2::read::GzDecoder::new(*gz),
                Some(family),
            ) {
                Ok(r) => r,
                Err(err) => {
                    tracing::error!(%err, family, "bundled list unreadable");
                    continue;
                }
            };
            for ind in report.indicators {
                if g.contains_key(&ind.id) {
                    continue;
                }
                let source = Source {
                    name: "maltrail".into(),
                    org_id: None,
                    anonymous: false,
                    confidence: 80,
                    tlp: Tlp::Clear,
                    first_seen: now,
                    last_seen: now,
                };
                let checked = Checked {
                    kind: ind.kind,
                    value: ind.value,
                    id: ind.id.clone(),
                    c: Contribution {
                        threat: Some((*family).to_string()),
                        port: ind.port,
                        ..Default::default()
                    },
                };
                let mut r = IndicatorRecord::new(checked, threat_id.clone(), source);
                r.builtin = true;
                g.insert(ind.id, r);
                added += 1;
            }
        }
        let unlogged: Vec<(ChangeOp, String)> = {
            let h = self.history.read().unwrap_or_else(|p| p.into_inner());
            g.values()
                .filter(|r| r.builtin && !h.seqs.contains_key(r.id.as_str()))
                .map(|r| (ChangeOp::Add, r.id.clone()))
                .collect()
        };
        for chunk in unlogged.chunks(20_000) {
            if let Err(err) = self.append_changes(&g, chunk, now) {
                tracing::error!(%err, "logging the bundled indicators failed");
                break;
            }
        }
        self.head.send_replace(self.changes.last_seq());
        self.rebuild(&g);
        added
    }

    /// Rebuilds the lookup index from the active records and swaps it in.
    fn rebuild(&self, g: &BTreeMap<String, IndicatorRecord>) {
        let mut index = IndicatorIndex::new();
        for r in g.values().filter(|r| r.is_active()) {
            // The name shown with a hit: a source at the record's own (widest) TLP, so the name
            // is as visible as the hit itself; anonymous sources stay anonymous.
            let source = r
                .sources
                .iter()
                .find(|s| s.tlp == r.tlp)
                .map(|s| {
                    if s.anonymous {
                        ANONYMOUS_NAME.to_string()
                    } else {
                        s.name.clone()
                    }
                })
                .unwrap_or_default();
            index.insert(IndicatorEntry {
                id: r.id.clone(),
                kind: r.kind,
                value: r.value.clone(),
                threat_id: r.threat_id.clone(),
                family: r.family.clone(),
                port: r.port,
                confidence: r.confidence,
                tlp: r.tlp,
                source,
            });
        }
        self.index.store(Arc::new(index));
    }

    /// Persists `changed` records, appends their changes, rebuilds the index.
    fn commit(
        &self,
        g: &BTreeMap<String, IndicatorRecord>,
        changed: &[(ChangeOp, String)],
        now: Timestamp,
    ) -> ApiResult<()> {
        if changed.is_empty() {
            return Ok(());
        }
        let recs: Vec<&IndicatorRecord> = changed.iter().filter_map(|(_, id)| g.get(id)).collect();
        let rows: Vec<(&str, &IndicatorRecord)> =
            recs.iter().map(|r| (r.id.as_str(), *r)).collect();
        self.state.put_indicators(&rows).map_err(store_err)?;
        self.append_changes(g, changed, now)?;
        self.head.send_replace(self.changes.last_seq());
        self.rebuild(g);
        Ok(())
    }

    /// Appends one change entry per id (one commit) and records the seqs in the history.
    fn append_changes(
        &self,
        g: &BTreeMap<String, IndicatorRecord>,
        changed: &[(ChangeOp, String)],
        now: Timestamp,
    ) -> ApiResult<()> {
        let mut entries = Vec::with_capacity(changed.len());
        let mut ids = Vec::with_capacity(changed.len());
        for (op, id) in changed {
            if let Some(r) = g.get(id) {
                let c = Change {
                    op: *op,
                    time: now,
                    indicator: r.summary(),
                };
                entries.push(serde_json::to_vec(&c).map_err(store_err)?);
                ids.push(id);
            }
        }
        let ms = now.as_millisecond();
        let batch: Vec<(i64, &[u8])> = entries.iter().map(|e| (ms, e.as_slice())).collect();
        let first = self.changes.append(&batch).map_err(store_err)?;
        let mut h = self.history.write().unwrap_or_else(|p| p.into_inner());
        for (i, id) in ids.into_iter().enumerate() {
            h.add(id, first + i as u64);
        }
        Ok(())
    }

    fn bump_stats(&self, org_id: &str, contributed: u64, false_positives: u64) -> ApiResult<()> {
        let mut s = self.stats(org_id);
        s.contributed += contributed;
        s.false_positives += false_positives;
        let json = serde_json::to_string(&s).map_err(store_err)?;
        self.state
            .set_meta(&format!("{STATS_PREFIX}{org_id}"), &json)
            .map_err(store_err)
    }

    /// A member's contributor record.
    pub fn stats(&self, org_id: &str) -> ContributorStats {
        self.state
            .get_meta(&format!("{STATS_PREFIX}{org_id}"))
            .ok()
            .flatten()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    /// Merges `items` reported by `who`. Invalid items are rejected one by one; the rest are
    /// durable (stored and logged) when this returns.
    pub fn contribute(
        &self,
        who: &Reporter,
        items: Vec<Contribution>,
        now: Timestamp,
    ) -> ApiResult<ContributeReport> {
        let kb = self.kb.load_full();
        let mut report = ContributeReport::default();
        let mut changed: Vec<(ChangeOp, String)> = Vec::new();
        let mut g = self.lock();
        let mut new_for_member = 0u64;
        for (index, item) in items.into_iter().enumerate() {
            let checked = match item.check() {
                Ok(c) => c,
                Err(e) => {
                    report.rejected.push(Rejected {
                        index,
                        error: e.to_string(),
                    });
                    continue;
                }
            };
            let threat_id = checked
                .c
                .threat
                .as_deref()
                .and_then(|t| kb.get(t))
                .map(|t| t.id.clone());
            let seen = checked.c.last_seen.unwrap_or(now).min(now);
            let source = Source {
                name: who.name.clone(),
                org_id: who.org_id.clone(),
                anonymous: who.anonymous,
                confidence: checked.c.confidence.unwrap_or(who.default_confidence),
                tlp: checked.c.tlp.unwrap_or(who.default_tlp),
                first_seen: seen,
                last_seen: seen,
            };
            let id = checked.id.clone();
            report.ids.push(id.clone());
            match g.get_mut(&id) {
                None => {
                    g.insert(id.clone(), IndicatorRecord::new(checked, threat_id, source));
                    report.added += 1;
                    new_for_member += 1;
                    changed.push((ChangeOp::Add, id));
                }
                Some(r) => {
                    let had_member = who
                        .org_id
                        .as_deref()
                        .is_some_and(|o| r.sources.iter().any(|s| s.org_id.as_deref() == Some(o)));
                    if !had_member {
                        new_for_member += 1;
                    }
                    match r.merge(checked, threat_id, source, now) {
                        MergeOutcome::Reactivated => {
                            report.reactivated += 1;
                            changed.push((ChangeOp::Add, id));
                        }
                        _ => {
                            report.merged += 1;
                            changed.push((ChangeOp::Update, id));
                        }
                    }
                }
            }
        }
        dedup_changes(&mut changed);
        self.commit(&g, &changed, now)?;
        drop(g);
        if let Some(org) = &who.org_id
            && new_for_member > 0
        {
            self.bump_stats(org, new_for_member, 0)?;
        }
        Ok(report)
    }

    /// One record as `caller` may see it.
    pub fn get(&self, caller: &Caller, id: &str, now: Timestamp) -> Option<serde_json::Value> {
        let g = self.lock();
        g.get(id).and_then(|r| self.view(caller, r, now))
    }

    fn view(
        &self,
        caller: &Caller,
        r: &IndicatorRecord,
        now: Timestamp,
    ) -> Option<serde_json::Value> {
        let (summary, sources) = threatfeed_core::privacy::view_indicator(&caller.viewer, r)?;
        let mut v = serde_json::to_value(summary).ok()?;
        if let Some(o) = v.as_object_mut() {
            o.insert(
                "effective_confidence".into(),
                self.settings.decay.effective_confidence(r, now).into(),
            );
            o.insert("builtin".into(), r.builtin.into());
            if let Some(d) = &r.description {
                o.insert("description".into(), d.clone().into());
            }
            o.insert("sources".into(), serde_json::to_value(sources).ok()?);
            if let Some(t) = r.status_changed {
                o.insert("status_changed".into(), t.to_string().into());
            }
        }
        Some(v)
    }

    /// For exports: the records `viewer` may see (TLP) — active ones, or with `since` every one
    /// changed after that change-log seq (removed ones included, with their status) — and the
    /// change log's head at that moment (the next `since`).
    pub fn snapshot(
        &self,
        viewer: &threatfeed_core::Viewer,
        since: Option<u64>,
    ) -> (Vec<IndicatorRecord>, u64) {
        let g = self.lock();
        let head = self.changes.last_seq();
        let h = self.history.read().unwrap_or_else(|p| p.into_inner());
        let out = g
            .values()
            .filter(|r| threatfeed_core::privacy::can_see_indicator(viewer, r.tlp))
            .filter(|r| match since {
                None => r.is_active(),
                Some(s) => h
                    .seqs
                    .get(r.id.as_str())
                    .and_then(|v| v.last())
                    .is_some_and(|last| *last > s),
            })
            .map(|r| {
                let mut r = r.clone();
                // Exports never carry who reported what.
                r.sources.clear();
                r.false_positive_reports.clear();
                r
            })
            .collect();
        (out, head)
    }

    /// A page of the records `caller` may see, filtered; and the cursor of the next page.
    pub fn list(
        &self,
        caller: &Caller,
        f: &ListFilter,
        now: Timestamp,
    ) -> (Vec<serde_json::Value>, Option<String>) {
        use std::ops::Bound;
        let g = self.lock();
        let start = match &f.after {
            Some(a) => Bound::Excluded(a.clone()),
            None => Bound::Unbounded,
        };
        let mut out = Vec::new();
        let mut last = None;
        for (id, r) in g.range((start, Bound::Unbounded)) {
            if out.len() >= f.limit {
                return (out, last);
            }
            if f.kind.is_some_and(|k| k != r.kind)
                || f.active.is_some_and(|a| a != r.is_active())
                || f.since.is_some_and(|s| r.last_seen < s)
                || f.threat.as_deref().is_some_and(|t| {
                    r.threat_id.as_deref() != Some(t)
                        && !r
                            .family
                            .as_deref()
                            .is_some_and(|fam| fam.eq_ignore_ascii_case(t))
                })
                || f.min_confidence
                    .is_some_and(|m| self.settings.decay.effective_confidence(r, now) < m)
            {
                continue;
            }
            if let Some(v) = self.view(caller, r, now) {
                out.push(v);
                last = Some(id.clone());
            }
        }
        (out, None)
    }

    /// `DELETE`: an admin deletes the indicator; a member withdraws its own report (the
    /// indicator goes when no source is left). Returns the new status.
    pub fn delete(&self, caller: &Caller, id: &str, now: Timestamp) -> ApiResult<Status> {
        let mut g = self.lock();
        let Some(r) = g.get_mut(id) else {
            return Err(ApiError::NotFound(format!("no indicator {id:?}")));
        };
        if !threatfeed_core::privacy::can_see_indicator(&caller.viewer, r.tlp) {
            return Err(ApiError::NotFound(format!("no indicator {id:?}")));
        }
        let op = if caller.is_admin() {
            if !r.deactivate(Status::Deleted, now) {
                return Ok(r.status);
            }
            ChangeOp::Remove
        } else {
            let before = r.sources.len();
            r.sources
                .retain(|s| s.org_id.as_deref() != Some(caller.org.id.as_str()));
            if r.sources.len() == before {
                return Err(ApiError::Forbidden(format!(
                    "indicator {id:?} has no report of yours to withdraw (report a false positive instead)"
                )));
            }
            if r.sources.is_empty() {
                r.deactivate(Status::Withdrawn, now);
                ChangeOp::Remove
            } else {
                r.recompute();
                ChangeOp::Update
            }
        };
        let status = r.status;
        self.commit(&g, &[(op, id.to_string())], now)?;
        Ok(status)
    }

    /// A false-positive report. An admin's report, the sole contributor's, or reports by the
    /// configured number of distinct members confirm it: the indicator is removed and every
    /// member that contributed it has one more false positive on record.
    pub fn report_false_positive(
        &self,
        caller: &Caller,
        id: &str,
        now: Timestamp,
    ) -> ApiResult<(Status, usize)> {
        let mut g = self.lock();
        let Some(r) = g.get_mut(id) else {
            return Err(ApiError::NotFound(format!("no indicator {id:?}")));
        };
        if !threatfeed_core::privacy::can_see_indicator(&caller.viewer, r.tlp) {
            return Err(ApiError::NotFound(format!("no indicator {id:?}")));
        }
        if !r.is_active() {
            return Ok((r.status, r.false_positive_reports.len()));
        }
        let me = caller.org.id.clone();
        if !r.false_positive_reports.contains(&me) {
            r.false_positive_reports.push(me.clone());
        }
        let sole = r.sources.len() == 1 && r.sources[0].org_id.as_deref() == Some(me.as_str());
        let confirmed = caller.is_admin()
            || sole
            || r.false_positive_reports.len() >= self.settings.false_positive_reports;
        let reports = r.false_positive_reports.len();
        let contributors: Vec<String> = r.sources.iter().filter_map(|s| s.org_id.clone()).collect();
        let op = if confirmed {
            r.deactivate(Status::FalsePositive, now);
            ChangeOp::Remove
        } else {
            ChangeOp::Update
        };
        let status = r.status;
        if confirmed {
            self.commit(&g, &[(op, id.to_string())], now)?;
        } else {
            // Not a change anyone downstream sees: persist only.
            let r: &IndicatorRecord = r;
            self.state.put_indicators(&[(id, r)]).map_err(store_err)?;
        }
        drop(g);
        if confirmed {
            for org in contributors {
                self.bump_stats(&org, 0, 1)?;
            }
        }
        Ok((status, reports))
    }

    /// Applies expiry and decay at `now`; returns how many indicators were removed.
    pub fn sweep(&self, now: Timestamp) -> ApiResult<usize> {
        let mut g = self.lock();
        let mut changed = Vec::new();
        for r in g.values_mut() {
            if let Some(status) = self.settings.decay.evaluate(r, now)
                && r.deactivate(status, now)
            {
                changed.push((ChangeOp::Remove, r.id.clone()));
            }
        }
        let n = changed.len();
        self.commit(&g, &changed, now)?;
        Ok(n)
    }
}

/// Which change-log seqs belong to which indicator, and which record each STIX id names.
#[derive(Debug, Default)]
pub struct History {
    seqs: HashMap<Box<str>, Vec<u64>, foldhash::fast::RandomState>,
    /// STIX indicator id (its UUID) → record id; built on first use (a TAXII request by object
    /// id), not at start: deriving 10 M UUIDv5s would lengthen every restart.
    by_stix: Option<HashMap<u128, Box<str>, foldhash::fast::RandomState>>,
}

/// The UUID of a STIX id (`indicator--<uuid>`).
fn stix_uuid(stix_id: &str) -> Option<u128> {
    let (_, u) = stix_id.split_once("--")?;
    uuid::Uuid::parse_str(u).ok().map(|u| u.as_u128())
}

impl History {
    fn add(&mut self, id: &str, seq: u64) {
        match self.seqs.get_mut(id) {
            Some(v) => v.push(seq),
            None => {
                self.seqs.insert(id.into(), vec![seq]);
                if let Some(m) = &mut self.by_stix
                    && let Some(u) = stix_uuid(&threatfeed_core::stix::sdo::indicator_stix_id(id))
                {
                    m.insert(u, id.into());
                }
            }
        }
    }

    /// Builds the STIX id map if it is not built yet.
    fn index_stix_ids(&mut self) {
        if self.by_stix.is_some() {
            return;
        }
        let mut m = HashMap::with_capacity_and_hasher(self.seqs.len(), Default::default());
        for id in self.seqs.keys() {
            if let Some(u) = stix_uuid(&threatfeed_core::stix::sdo::indicator_stix_id(id)) {
                m.insert(u, id.clone());
            }
        }
        self.by_stix = Some(m);
    }
}

/// The record id of a change-log entry. Entries are written by [`Change`]'s serialiser, so the
/// id follows `"indicator":{"id":"` (found without parsing the rest); anything else is parsed.
fn change_record_id(data: &[u8]) -> Option<String> {
    const KEY: &[u8] = br#""indicator":{"id":""#;
    if let Some(at) = data.windows(KEY.len()).position(|w| w == KEY) {
        let rest = &data[at + KEY.len()..];
        if let Some(end) = rest.iter().position(|&b| b == b'"' || b == b'\\')
            && rest.get(end) == Some(&b'"')
            && let Ok(id) = std::str::from_utf8(&rest[..end])
        {
            return Some(id.to_string());
        }
    }
    #[derive(Deserialize)]
    struct Head {
        indicator: HeadId,
    }
    #[derive(Deserialize)]
    struct HeadId {
        id: String,
    }
    serde_json::from_slice::<Head>(data)
        .ok()
        .map(|h| h.indicator.id)
}

/// Reads the history from the change log.
fn read_history(log: &dyn EventLog) -> anyhow::Result<History> {
    let mut h = History::default();
    h.seqs
        .reserve(usize::try_from(log.stats().records).unwrap_or(0));
    let mut cursor = 0;
    loop {
        let recs = log.read_after(cursor, 8192)?;
        let Some(last) = recs.last() else {
            break;
        };
        cursor = last.seq;
        for r in recs {
            if let Some(id) = change_record_id(&r.data) {
                h.add(&id, r.seq);
            }
        }
    }
    Ok(h)
}

/// Keeps one change per id (the first op for an add, else the last).
fn dedup_changes(changed: &mut Vec<(ChangeOp, String)>) {
    let mut seen = std::collections::HashSet::new();
    changed.retain(|(_, id)| seen.insert(id.clone()));
}
