//! IP → ASN, AS name and country enrichment (STUB: being written; API is fixed).

use std::net::IpAddr;

/// What the geo table knows about one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GeoInfo<'a> {
    /// Autonomous system number.
    pub asn: Option<u32>,
    /// Autonomous system organisation.
    pub as_name: Option<&'a str>,
    /// ISO 3166-1 alpha-2 country code, upper case.
    pub country: Option<&'a str>,
}

/// Errors loading or building a geo table.
#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    /// A malformed input.
    #[error("{0}")]
    Format(String),
    /// I/O.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// An immutable IP → (ASN, AS name, country) table.
#[derive(Debug, Default)]
pub struct GeoDb {}

impl GeoDb {
    /// An empty table (every lookup misses).
    pub fn empty() -> GeoDb {
        GeoDb {}
    }
    /// The snapshot bundled with the product.
    pub fn embedded() -> Result<GeoDb, GeoError> {
        Ok(GeoDb {})
    }
    /// Loads a snapshot written by [`GeoDb::to_snapshot`].
    pub fn from_snapshot(_bytes: &[u8]) -> Result<GeoDb, GeoError> {
        Ok(GeoDb {})
    }
    /// Serialises to the compressed snapshot format.
    pub fn to_snapshot(&self) -> Vec<u8> {
        Vec::new()
    }
    /// Looks up one address.
    pub fn lookup(&self, _ip: IpAddr) -> GeoInfo<'_> {
        GeoInfo::default()
    }
}
