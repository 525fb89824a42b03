//! Enrichment of parsed events: ASN, AS organisation and country of `src_ip` from the geo table,
//! and the threat id.
//!
//! The geo table sits behind an [`ArcSwap`]: a lookup is a pointer load and a binary search, never
//! a lock; `threatfeed geo import` (or a reload) swaps a new table in atomically.
//!
//! Threat ids: until the knowledge base lands, a threat is identified by its family's slug
//! (lower-case, `[a-z0-9-]`), so `threat_id` is set whenever a family is known.

use arc_swap::ArcSwap;
use std::sync::Arc;
use threatfeed_core::Event;
use threatfeed_core::geo::GeoDb;

/// Enriches events in place.
#[derive(Debug)]
pub struct Enricher {
    geo: ArcSwap<GeoDb>,
}

impl Enricher {
    /// An enricher over `geo`.
    pub fn new(geo: GeoDb) -> Enricher {
        Enricher {
            geo: ArcSwap::from_pointee(geo),
        }
    }

    /// Replaces the geo table.
    pub fn swap_geo(&self, geo: GeoDb) {
        self.geo.store(Arc::new(geo));
    }

    /// The current geo table.
    pub fn geo(&self) -> Arc<GeoDb> {
        self.geo.load_full()
    }

    /// Fills `asn`, `as_name`, `country`, `threat_id` of each event.
    pub fn enrich(&self, events: &mut [Event]) {
        let geo = self.geo.load();
        for e in events {
            let info = geo.lookup(e.src_ip);
            e.asn = info.asn;
            e.as_name = info.as_name.map(str::to_string);
            e.country = info.country.map(str::to_string);
            e.threat_id = e
                .family
                .as_deref()
                .map(threat_slug)
                .filter(|s| !s.is_empty());
        }
    }
}

/// The id of a family's threat: lower-case, runs of other characters folded to `-`.
pub fn threat_slug(family: &str) -> String {
    let mut out = String::with_capacity(family.len());
    for c in family.trim().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert_eq!(threat_slug("Cobalt Strike"), "cobalt-strike");
        assert_eq!(threat_slug(" emotet "), "emotet");
        assert_eq!(threat_slug("!!"), "");
    }
}
