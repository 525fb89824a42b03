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
    if let Some(asn) = event.asn {
        if s.asns.contains(&asn) {
            return true;
        }
    }
    if viewer.kind == OrgKind::Cert {
        if let Some(cc) = &event.country {
            if s.countries.iter().any(|c| c.eq_ignore_ascii_case(cc)) {
                return true;
            }
        }
    }
    false
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
                    self.by_country.entry(cc.to_ascii_uppercase()).or_default().push(key);
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
        if let Some(asn) = event.asn {
            if let Some(v) = self.by_asn.get(&asn) {
                out.extend_from_slice(v);
            }
        }
        if let Some(cc) = &event.country {
            if let Some(v) = self.by_country.get(cc.as_str()) {
                out.extend_from_slice(v);
            }
        }
        let tail = &mut out[start..];
        tail.sort_unstable();
        let mut kept = start;
        for i in start..out.len() {
            let k = out[i];
            if kept > start && out[kept - 1] == k {
                continue;
            }
            let visible = self.viewers.get(&k).is_some_and(|v| can_see_event(v, event));
            if visible {
                out[kept] = k;
                kept += 1;
            }
        }
        out.truncate(kept);
    }
}
