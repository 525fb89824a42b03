//! Enrichment of parsed events: ASN, AS organisation and country of `src_ip` from the geo table,
//! and the threat.
//!
//! The geo table sits behind an [`ArcSwap`]: a lookup is a pointer load and a binary search, never
//! a lock; `threatfeed geo import` (or a reload) swaps a new table in atomically.
//!
//! Threat ids: the event's `family` is resolved in the threat knowledge base (by id, name or
//! alias, in any spelling), so `threat_id` names a documented threat with a playbook, or is empty
//! when the family is unknown to the knowledge base. A check-in without a family is classified
//! by the known indicators: its C2 host name (exact or parent domain), its URL, then its
//! destination address — then by the request-pattern rules ([`RuleSet`]: URI, user agent). The
//! family is then set to the threat's id and `classified_by` records what matched
//! (`indicator:host:<name>`, `indicator:url:<url>`, `indicator:dst_ip:<ip>` or `rule:<id>`).

use arc_swap::ArcSwap;
use std::sync::Arc;
use threatfeed_core::Event;
use threatfeed_core::geo::GeoDb;
use threatfeed_core::lookup::IndicatorIndex;
use threatfeed_core::rules::{Request, RuleSet};
use threatfeed_core::threat::KnowledgeBase;

/// Enriches events in place.
#[derive(Debug)]
pub struct Enricher {
    geo: ArcSwap<GeoDb>,
    kb: Arc<ArcSwap<KnowledgeBase>>,
    indicators: Arc<ArcSwap<IndicatorIndex>>,
    /// Swapped whole when an admin promotes a cluster (`routes::clusters`).
    rules: ArcSwap<RuleSet>,
}

impl Enricher {
    /// An enricher over `geo`, resolving families in `kb` and classifying with `indicators`,
    /// then `rules`.
    pub fn new(
        geo: GeoDb,
        kb: Arc<ArcSwap<KnowledgeBase>>,
        indicators: Arc<ArcSwap<IndicatorIndex>>,
        rules: RuleSet,
    ) -> Enricher {
        Enricher {
            geo: ArcSwap::from_pointee(geo),
            kb,
            indicators,
            rules: ArcSwap::from_pointee(rules),
        }
    }

    /// The request-pattern rules in use.
    pub fn rules(&self) -> Arc<RuleSet> {
        self.rules.load_full()
    }

    /// Replaces the request-pattern rules atomically (ingest never waits).
    pub fn swap_rules(&self, rules: RuleSet) {
        self.rules.store(Arc::new(rules));
    }

    /// Replaces the geo table.
    pub fn swap_geo(&self, geo: GeoDb) {
        self.geo.store(Arc::new(geo));
    }

    /// Fills `asn`, `as_name`, `country`, `threat_id` (and `family` when classified).
    pub fn enrich(&self, events: &mut [Event]) {
        let geo = self.geo.load();
        let kb = self.kb.load();
        let indicators = self.indicators.load();
        let rules = self.rules.load();
        for e in events {
            let info = geo.lookup(e.src_ip);
            e.asn = info.asn;
            e.as_name = info.as_name.map(str::to_string);
            e.country = info.country.map(str::to_string);
            e.threat_id = e
                .family
                .as_deref()
                .and_then(|f| kb.get(f))
                .map(|t| t.id.clone());
            if e.family.is_none() {
                if let Some((threat, matched)) =
                    indicators.classify(e.host.as_deref(), e.url.as_deref(), e.dst_ip)
                {
                    e.family = Some(threat.clone());
                    e.threat_id = Some(threat);
                    e.classified_by = Some(format!("indicator:{matched}"));
                } else if let Some(rule) = rules.classify(&Request::from_event(e)) {
                    let threat = kb
                        .get(&rule.threat)
                        .map_or_else(|| rule.threat.clone(), |t| t.id.clone());
                    e.family = Some(threat.clone());
                    e.threat_id = kb.get(&threat).map(|t| t.id.clone());
                    e.classified_by = Some(format!("rule:{}", rule.id));
                }
            }
            e.playbook = e
                .threat_id
                .as_deref()
                .map(|t| format!("/api/v1/threats/{t}"));
        }
    }
}
