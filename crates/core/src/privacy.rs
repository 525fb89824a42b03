//! The privacy and sharing model (PRODUCT.md, "The privacy and sharing model"), enforced here and
//! nowhere else.
//!
//! Rule 1 — infection events are victim data: a member sees an event only if its `src_ip` lies in
//! the member's scope (one of its CIDRs, one of its ASNs, or — for a CERT — one of its countries),
//! or the member is an admin. On top of the scope, the event's TLP must be within the member's
//! clearance; a TLP:RED event names no recipients, so only admins see it.
//!
//! Every output (log listing, live stream, reports) calls [`can_see_event`]. The live fan-out uses
//! [`AudienceIndex`] to find candidate subscribers in time proportional to the matches rather than
//! to all subscribers; the index only narrows candidates and every candidate is confirmed with
//! [`can_see_event`], so the index can never widen what a member sees.
//!
//! Rule 3 — contributors: who reported an indicator is shown only through [`view_indicator`]: a
//! source is listed only if its own TLP is visible to the viewer, an anonymous source is named
//! [`crate::intel::ANONYMOUS_NAME`] to everyone but the contributor itself (admins included), and
//! member ids are never shown.

use crate::event::Event;
use crate::org::{Org, OrgKind, Scope};
use crate::tlp::Tlp;
use ipnet::IpNet;
use prefix_trie::joint::map::JointPrefixMap;
use std::collections::HashMap;
use std::hash::Hash;

/// Who is looking: the parts of a member that decide what it may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    /// The member's id (for audit).
    pub org_id: String,
    /// Its kind (admin sees everything; only a CERT's countries count).
    pub kind: OrgKind,
    /// Its networks.
    pub scope: Scope,
    /// Its TLP clearance.
    pub clearance: Tlp,
}

impl Viewer {
    /// The viewer for a member organisation.
    pub fn from_org(org: &Org) -> Viewer {
        Viewer {
            org_id: org.id.clone(),
            kind: org.kind,
            scope: org.scope.clone(),
            clearance: org.tlp_clearance,
        }
    }

    /// Whether this viewer sees everything.
    pub fn is_admin(&self) -> bool {
        self.kind == OrgKind::Admin
    }
}

/// Whether `event`'s source lies inside `viewer`'s scope (ignoring TLP and admin rights).
fn in_scope(viewer: &Viewer, event: &Event) -> bool {
    let s = &viewer.scope;
    if s.cidrs.iter().any(|n| n.contains(&event.src_ip)) {
        return true;
    }
    if let Some(asn) = event.asn
        && s.asns.contains(&asn)
    {
        return true;
    }
    viewer.kind == OrgKind::Cert
        && event
            .country
            .as_ref()
            .is_some_and(|cc| s.countries.iter().any(|c| c.eq_ignore_ascii_case(cc)))
}

/// THE rule: may `viewer` see infection event `event`?
pub fn can_see_event(viewer: &Viewer, event: &Event) -> bool {
    if viewer.is_admin() {
        return true;
    }
    if event.tlp == Tlp::Red || event.tlp > viewer.clearance {
        return false;
    }
    in_scope(viewer, event)
}

/// Rule 2 — indicators (C2 infrastructure) are shared by TLP: CLEAR and GREEN to every member,
/// AMBER and AMBER+STRICT to members cleared for them, RED only to named recipients (none can be
/// named yet, so only admins).
pub fn can_see_indicator(viewer: &Viewer, tlp: Tlp) -> bool {
    if viewer.is_admin() {
        return true;
    }
    match tlp {
        Tlp::Clear | Tlp::Green => true,
        Tlp::Red => false,
        t => t <= viewer.clearance,
    }
}

/// One reporter of an indicator as a viewer sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SourceView<'a> {
    /// The member's or feed's name, or [`crate::intel::ANONYMOUS_NAME`].
    pub name: &'a str,
    /// Contributed anonymously.
    pub anonymous: bool,
    /// Whether the viewer is this contributor.
    pub yours: bool,
    /// Its confidence.
    pub confidence: u8,
    /// Its TLP.
    pub tlp: Tlp,
    /// First report by this source.
    pub first_seen: jiff::Timestamp,
    /// Latest report by this source.
    pub last_seen: jiff::Timestamp,
}

/// An indicator record as `viewer` may see it (rules 2 and 3), or `None` if it may not.
pub fn view_indicator<'a>(
    viewer: &Viewer,
    record: &'a crate::intel::IndicatorRecord,
) -> Option<(crate::intel::Summary<'a>, Vec<SourceView<'a>>)> {
    if !can_see_indicator(viewer, record.tlp) {
        return None;
    }
    let sources = record
        .sources
        .iter()
        .filter(|s| can_see_indicator(viewer, s.tlp))
        .map(|s| {
            let yours = s.org_id.as_deref() == Some(viewer.org_id.as_str());
            SourceView {
                name: if s.anonymous && !yours {
                    crate::intel::ANONYMOUS_NAME
                } else {
                    &s.name
                },
                anonymous: s.anonymous,
                yours,
                confidence: s.confidence,
                tlp: s.tlp,
                first_seen: s.first_seen,
                last_seen: s.last_seen,
            }
        })
        .collect();
    Some((record.summary(), sources))
}

/// An index from event attributes to the subscribers (keys `K`) that may see the event.
#[derive(Debug)]
pub struct AudienceIndex<K: Copy + Eq + Hash + Ord> {
    viewers: HashMap<K, Viewer>,
    admins: Vec<K>,
    by_prefix: JointPrefixMap<IpNet, Vec<K>>,
    by_asn: HashMap<u32, Vec<K>>,
    by_country: HashMap<String, Vec<K>>,
}

impl<K: Copy + Eq + Hash + Ord> Default for AudienceIndex<K> {
    fn default() -> Self {
        AudienceIndex {
            viewers: HashMap::new(),
            admins: Vec::new(),
            by_prefix: JointPrefixMap::new(),
            by_asn: HashMap::new(),
            by_country: HashMap::new(),
        }
    }
}

impl<K: Copy + Eq + Hash + Ord> AudienceIndex<K> {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of subscribers indexed.
    pub fn len(&self) -> usize {
        self.viewers.len()
    }

    /// True when nobody is subscribed.
    pub fn is_empty(&self) -> bool {
        self.viewers.is_empty()
    }

    /// Adds (or replaces) subscriber `key` with the rights of `viewer`.
    pub fn insert(&mut self, key: K, viewer: Viewer) {
        self.remove(key);
        if viewer.is_admin() {
            self.admins.push(key);
        } else {
            for net in &viewer.scope.cidrs {
                match self.by_prefix.get_mut(net) {
                    Some(v) => v.push(key),
                    None => {
                        self.by_prefix.insert(*net, vec![key]);
                    }
                }
            }
            for asn in &viewer.scope.asns {
                self.by_asn.entry(*asn).or_default().push(key);
            }
            if viewer.kind == OrgKind::Cert {
                for cc in &viewer.scope.countries {
                    self.by_country
                        .entry(cc.to_ascii_uppercase())
                        .or_default()
                        .push(key);
                }
            }
        }
        self.viewers.insert(key, viewer);
    }

    /// Removes subscriber `key`, if present.
    pub fn remove(&mut self, key: K) {
        let Some(viewer) = self.viewers.remove(&key) else {
            return;
        };
        self.admins.retain(|k| *k != key);
        for net in &viewer.scope.cidrs {
            let empty = match self.by_prefix.get_mut(net) {
                Some(v) => {
                    v.retain(|k| *k != key);
                    v.is_empty()
                }
                None => false,
            };
            if empty {
                self.by_prefix.remove(net);
            }
        }
        for asn in &viewer.scope.asns {
            if let Some(v) = self.by_asn.get_mut(asn) {
                v.retain(|k| *k != key);
                if v.is_empty() {
                    self.by_asn.remove(asn);
                }
            }
        }
        for cc in &viewer.scope.countries {
            let cc = cc.to_ascii_uppercase();
            if let Some(v) = self.by_country.get_mut(&cc) {
                v.retain(|k| *k != key);
                if v.is_empty() {
                    self.by_country.remove(&cc);
                }
            }
        }
    }

    /// Appends to `out` every subscriber that may see `event`, each once, in key order.
    pub fn audience(&self, event: &Event, out: &mut Vec<K>) {
        let start = out.len();
        out.extend_from_slice(&self.admins);
        let host = IpNet::from(event.src_ip);
        for v in self.by_prefix.cover_values(&host) {
            out.extend_from_slice(v);
        }
        if let Some(asn) = event.asn
            && let Some(v) = self.by_asn.get(&asn)
        {
            out.extend_from_slice(v);
        }
        if let Some(cc) = &event.country
            && let Some(v) = self.by_country.get(cc.as_str())
        {
            out.extend_from_slice(v);
        }
        let tail = &mut out[start..];
        tail.sort_unstable();
        let mut kept = start;
        for i in start..out.len() {
            let k = out[i];
            if kept > start && out[kept - 1] == k {
                continue;
            }
            let visible = self
                .viewers
                .get(&k)
                .is_some_and(|v| can_see_event(v, event));
            if visible {
                out[kept] = k;
                kept += 1;
            }
        }
        out.truncate(kept);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    const COUNTRIES: [&str; 4] = ["NL", "DE", "FR", "US"];

    fn arb_ip() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            // A small v4 space so that random scopes and events meet often.
            (0u32..(1 << 12))
                .prop_map(|n| IpAddr::V4(Ipv4Addr::from(0x0a00_0000u32 | (n << 4) | (n & 0xf)))),
            (0u16..64, 0u16..4)
                .prop_map(|(a, b)| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, a, b, 0, 0, 0, 1))),
        ]
    }

    fn arb_tlp() -> impl Strategy<Value = Tlp> {
        prop::sample::select(Tlp::ALL.to_vec())
    }

    fn arb_net() -> impl Strategy<Value = IpNet> {
        (arb_ip(), 0u8..=128).prop_map(|(ip, len)| {
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let len = if ip.is_ipv4() {
                8 + len % (max - 7)
            } else {
                32 + len % (max - 31)
            };
            IpNet::new(ip, len)
                .map(|n| n.trunc())
                .unwrap_or_else(|_| IpNet::from(ip))
        })
    }

    fn arb_viewer() -> impl Strategy<Value = Viewer> {
        (
            prop::sample::select(OrgKind::ALL.to_vec()),
            prop::collection::vec(arb_net(), 0..4),
            prop::collection::vec(1u32..20, 0..3),
            prop::collection::vec(prop::sample::select(COUNTRIES.to_vec()), 0..2),
            arb_tlp(),
        )
            .prop_map(|(kind, cidrs, asns, countries, clearance)| Viewer {
                org_id: "org".into(),
                kind,
                scope: Scope {
                    cidrs,
                    asns,
                    countries: countries.into_iter().map(String::from).collect(),
                },
                clearance,
            })
    }

    fn arb_event() -> impl Strategy<Value = Event> {
        (
            arb_ip(),
            prop::option::of(1u32..20),
            prop::option::of(prop::sample::select(COUNTRIES.to_vec())),
            arb_tlp(),
        )
            .prop_map(|(ip, asn, country, tlp)| {
                let t = jiff::Timestamp::UNIX_EPOCH;
                let mut e = Event::new(ip, t, t);
                e.asn = asn;
                e.country = country.map(String::from);
                e.tlp = tlp;
                e
            })
    }

    /// The model, written independently of the implementation.
    fn oracle(v: &Viewer, e: &Event) -> bool {
        if v.kind == OrgKind::Admin {
            return true;
        }
        let tlp_ok = e.tlp != Tlp::Red && e.tlp <= v.clearance;
        let mine = v.scope.cidrs.iter().any(|n| n.contains(&e.src_ip))
            || e.asn.is_some_and(|a| v.scope.asns.contains(&a))
            || (v.kind == OrgKind::Cert
                && e.country
                    .as_ref()
                    .is_some_and(|c| v.scope.countries.contains(c)));
        tlp_ok && mine
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn nobody_sees_an_event_outside_its_scope(v in arb_viewer(), e in arb_event()) {
            prop_assert_eq!(can_see_event(&v, &e), oracle(&v, &e));
        }

        #[test]
        fn admin_sees_everything(mut v in arb_viewer(), e in arb_event()) {
            v.kind = OrgKind::Admin;
            prop_assert!(can_see_event(&v, &e));
        }

        #[test]
        fn a_cert_sees_its_country(mut v in arb_viewer(), mut e in arb_event(), c in prop::sample::select(COUNTRIES.to_vec())) {
            v.kind = OrgKind::Cert;
            v.scope.countries = vec![c.to_string()];
            e.country = Some(c.to_string());
            e.tlp = Tlp::Green;
            v.clearance = Tlp::Amber;
            prop_assert!(can_see_event(&v, &e));
            // ... and an ISP with the same "countries" does not, unless the event is in its networks.
            v.kind = OrgKind::Isp;
            prop_assert_eq!(can_see_event(&v, &e), oracle(&v, &e));
        }

        #[test]
        fn the_fan_out_index_delivers_exactly_the_visible(
            viewers in prop::collection::vec(arb_viewer(), 0..12),
            events in prop::collection::vec(arb_event(), 1..30),
            remove in prop::collection::vec(0usize..12, 0..4),
        ) {
            let mut index = AudienceIndex::new();
            for (k, v) in viewers.iter().enumerate() {
                index.insert(k, v.clone());
            }
            let removed: BTreeSet<usize> = remove.into_iter().filter(|k| *k < viewers.len()).collect();
            for k in &removed {
                index.remove(*k);
            }
            for e in &events {
                let mut got = Vec::new();
                index.audience(e, &mut got);
                let want: Vec<usize> = viewers
                    .iter()
                    .enumerate()
                    .filter(|(k, v)| !removed.contains(k) && oracle(v, e))
                    .map(|(k, _)| k)
                    .collect();
                prop_assert_eq!(got, want);
            }
        }

        #[test]
        fn indicators_are_shared_by_tlp_only(v in arb_viewer(), tlp in arb_tlp()) {
            let expected = v.kind == OrgKind::Admin
                || matches!(tlp, Tlp::Clear | Tlp::Green)
                || (tlp != Tlp::Red && tlp <= v.clearance);
            prop_assert_eq!(can_see_indicator(&v, tlp), expected);
            // RED names recipients; none can be named yet, so only admins see it.
            if tlp == Tlp::Red {
                prop_assert_eq!(can_see_indicator(&v, tlp), v.kind == OrgKind::Admin);
            }
        }

        #[test]
        fn an_indicator_view_never_leaks_a_contributor(
            v in arb_viewer(),
            viewer_org in 0usize..4,
            sources in prop::collection::vec((0usize..4, any::<bool>(), arb_tlp(), 0u8..=100), 1..5),
        ) {
            let mut v = v;
            v.org_id = format!("org_{viewer_org}");
            let t = jiff::Timestamp::UNIX_EPOCH;
            let checked = crate::intel::Contribution { value: "192.0.2.1".into(), ..Default::default() }
                .check()
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let mk = |(o, anon, tlp, conf): (usize, bool, Tlp, u8)| crate::intel::Source {
                name: format!("Member Number {o}"),
                org_id: Some(format!("org_{o}")),
                anonymous: anon,
                confidence: conf,
                tlp,
                first_seen: t,
                last_seen: t,
            };
            let mut r = crate::intel::IndicatorRecord::new(checked.clone(), None, mk(sources[0]));
            for s in &sources[1..] {
                r.merge(checked.clone(), None, mk(*s), t);
            }
            let view = view_indicator(&v, &r);
            // Rule 2: visible exactly when its (widest) TLP is.
            prop_assert_eq!(view.is_some(), can_see_indicator(&v, r.tlp));
            if let Some((summary, views)) = view {
                let json = serde_json::to_string(&(summary, &views)).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert!(!json.contains("org_"), "member ids are never shown: {}", json);
                for (o, anon, tlp, _) in &r.sources.iter().map(|s| {
                    let o: usize = s.org_id.as_deref().and_then(|x| x.strip_prefix("org_")).and_then(|x| x.parse().ok()).unwrap_or(99);
                    (o, s.anonymous, s.tlp, s.confidence)
                }).collect::<Vec<_>>() {
                    let name = format!("Member Number {o}");
                    let hidden = (*anon && *o != viewer_org) || !can_see_indicator(&v, *tlp);
                    if hidden {
                        prop_assert!(!json.contains(&name), "{} leaked to {:?}: {}", name, v.org_id, json);
                    }
                }
                // Every listed source is one the viewer may see.
                for s in &views {
                    prop_assert!(can_see_indicator(&v, s.tlp));
                }
            }
        }
    }
}
