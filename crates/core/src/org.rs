//! Members (organisations), their kinds and their scopes: who may see which infection events.
//!
//! A [`Scope`] is validated on creation: CIDRs in normal form (host bits cleared), ASNs non-zero,
//! countries as upper-case ISO 3166-1 alpha-2 codes, and countries only on a CERT (PRODUCT.md,
//! privacy rule 1: a CERT sees its country; other members see their own networks).

use crate::tlp::Tlp;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The kind of a member organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrgKind {
    /// An internet service provider or network owner.
    Isp,
    /// A CERT / CSIRT; may hold countries in its scope.
    Cert,
    /// A private company.
    Company,
    /// A government body.
    Government,
    /// An independent researcher.
    Researcher,
    /// A sensor (sinkhole); may ingest events.
    Sensor,
    /// An administrator: sees everything, manages members.
    Admin,
}

impl OrgKind {
    /// Every kind, in documentation order.
    pub const ALL: [OrgKind; 7] = [
        OrgKind::Isp,
        OrgKind::Cert,
        OrgKind::Company,
        OrgKind::Government,
        OrgKind::Researcher,
        OrgKind::Sensor,
        OrgKind::Admin,
    ];

    /// The lower-case name used in JSON and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            OrgKind::Isp => "isp",
            OrgKind::Cert => "cert",
            OrgKind::Company => "company",
            OrgKind::Government => "government",
            OrgKind::Researcher => "researcher",
            OrgKind::Sensor => "sensor",
            OrgKind::Admin => "admin",
        }
    }

    /// Whether tokens of this kind may post events.
    pub fn may_ingest(self) -> bool {
        matches!(self, OrgKind::Sensor | OrgKind::Admin)
    }
}

impl fmt::Display for OrgKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OrgKind {
    type Err = ScopeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OrgKind::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| ScopeError::Kind(s.to_string()))
    }
}

/// The networks a member answers for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// IPv4 and IPv6 networks in normal form.
    #[serde(default)]
    pub cidrs: Vec<IpNet>,
    /// Autonomous system numbers.
    #[serde(default)]
    pub asns: Vec<u32>,
    /// ISO 3166-1 alpha-2 country codes, upper case (CERTs only).
    #[serde(default)]
    pub countries: Vec<String>,
}

/// A scope or member definition that cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    /// A CIDR string that does not parse.
    #[error("invalid cidr {0:?}")]
    Cidr(String),
    /// A CIDR with host bits set.
    #[error("cidr {given} is not in normal form (did you mean {normal}?)")]
    CidrNotNormal {
        /// As given.
        given: String,
        /// Normal form.
        normal: String,
    },
    /// ASN 0 is reserved.
    #[error("invalid asn {0} (must be 1..=4294967295)")]
    Asn(u64),
    /// Not a two-letter code.
    #[error("invalid country code {0:?} (expected ISO 3166-1 alpha-2, e.g. \"NL\")")]
    Country(String),
    /// Countries are a CERT's constituency.
    #[error("scope.countries is only allowed for kind \"cert\", not {0:?}")]
    CountriesNotCert(String),
    /// Unknown member kind.
    #[error(
        "unknown organisation kind {0:?} (expected isp, cert, company, government, researcher, sensor or admin)"
    )]
    Kind(String),
    /// Empty or oversized name.
    #[error("invalid organisation name {0:?} (1 to 200 characters)")]
    Name(String),
}

impl Scope {
    /// Builds a scope from raw strings, validating and normalising each entry.
    pub fn parse(
        cidrs: &[String],
        asns: &[u64],
        countries: &[String],
    ) -> Result<Scope, ScopeError> {
        let mut scope = Scope::default();
        for c in cidrs {
            let c = c.trim();
            let net: IpNet = match c.parse::<IpNet>() {
                Ok(n) => n,
                Err(_) => match c.parse::<std::net::IpAddr>() {
                    Ok(ip) => IpNet::from(ip),
                    Err(_) => return Err(ScopeError::Cidr(c.to_string())),
                },
            };
            if net.trunc() != net {
                return Err(ScopeError::CidrNotNormal {
                    given: c.to_string(),
                    normal: net.trunc().to_string(),
                });
            }
            scope.cidrs.push(net);
        }
        for &a in asns {
            if a == 0 || a > u64::from(u32::MAX) {
                return Err(ScopeError::Asn(a));
            }
            scope.asns.push(a as u32);
        }
        for c in countries {
            let c = c.trim();
            if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(ScopeError::Country(c.to_string()));
            }
            scope.countries.push(c.to_ascii_uppercase());
        }
        scope.cidrs.sort();
        scope.cidrs.dedup();
        scope.asns.sort_unstable();
        scope.asns.dedup();
        scope.countries.sort();
        scope.countries.dedup();
        Ok(scope)
    }

    /// Re-validates a scope (e.g. one deserialised from a request body) for a member of `kind`.
    pub fn validated(&self, kind: OrgKind) -> Result<Scope, ScopeError> {
        let cidrs: Vec<String> = self.cidrs.iter().map(|c| c.to_string()).collect();
        let asns: Vec<u64> = self.asns.iter().map(|&a| u64::from(a)).collect();
        let scope = Scope::parse(&cidrs, &asns, &self.countries)?;
        if !scope.countries.is_empty() && kind != OrgKind::Cert {
            return Err(ScopeError::CountriesNotCert(kind.as_str().to_string()));
        }
        Ok(scope)
    }

    /// True when the scope names nothing.
    pub fn is_empty(&self) -> bool {
        self.cidrs.is_empty() && self.asns.is_empty() && self.countries.is_empty()
    }
}

/// A member organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Org {
    /// Stable id (`org_` + 16 hex digits).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Kind.
    pub kind: OrgKind,
    /// Networks it answers for.
    pub scope: Scope,
    /// Most restricted TLP label it may receive.
    pub tlp_clearance: Tlp,
    /// Creation time, RFC 3339.
    pub created: jiff::Timestamp,
}

/// A stored API token: only the SHA-256 of the secret is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Public id of the token (`tok_` + 16 hex digits), used to revoke it.
    pub id: String,
    /// Owning organisation.
    pub org_id: String,
    /// Hex SHA-256 of the secret.
    pub hash: String,
    /// Free-text label.
    #[serde(default)]
    pub label: String,
    /// Creation time.
    pub created: jiff::Timestamp,
    /// Revocation time, when revoked.
    #[serde(default)]
    pub revoked: Option<jiff::Timestamp>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_normalises_and_rejects() {
        let s = Scope::parse(
            &[
                "2001:db8::/32".into(),
                "192.0.2.0/24".into(),
                "198.51.100.7".into(),
            ],
            &[64500],
            &["nl".into()],
        )
        .expect("valid scope");
        assert_eq!(s.countries, vec!["NL"]);
        assert_eq!(s.cidrs.len(), 3);
        assert!(matches!(
            Scope::parse(&["192.0.2.1/24".into()], &[], &[]),
            Err(ScopeError::CidrNotNormal { .. })
        ));
        assert!(matches!(
            Scope::parse(&["nope".into()], &[], &[]),
            Err(ScopeError::Cidr(_))
        ));
        assert!(matches!(
            Scope::parse(&[], &[0], &[]),
            Err(ScopeError::Asn(0))
        ));
        assert!(matches!(
            Scope::parse(&[], &[], &["NLD".into()]),
            Err(ScopeError::Country(_))
        ));
        assert!(matches!(
            s.validated(OrgKind::Isp),
            Err(ScopeError::CountriesNotCert(_))
        ));
        assert!(s.validated(OrgKind::Cert).is_ok());
    }

    #[test]
    fn kinds_round_trip() {
        for k in OrgKind::ALL {
            assert_eq!(k.as_str().parse::<OrgKind>(), Ok(k));
        }
        assert!("bank".parse::<OrgKind>().is_err());
    }
}
