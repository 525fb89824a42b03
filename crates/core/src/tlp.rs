//! Traffic Light Protocol 2.0 (FIRST TLP v2.0) labels carried by every event and indicator.
//!
//! The labels are totally ordered by how restricted they are:
//! `CLEAR < GREEN < AMBER < AMBER+STRICT < RED`. A member's *clearance* is the most restricted label
//! it may receive; what RED means for each kind of object is decided in [`crate::privacy`].

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A TLP 2.0 label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Tlp {
    /// TLP:CLEAR — may be shared with anyone.
    Clear,
    /// TLP:GREEN — the community (every member).
    Green,
    /// TLP:AMBER — members cleared for it and their clients (the default for infection events).
    #[default]
    Amber,
    /// TLP:AMBER+STRICT — the recipient organisation only.
    AmberStrict,
    /// TLP:RED — the named recipients only.
    Red,
}

impl Tlp {
    /// Every label, least restricted first.
    pub const ALL: [Tlp; 5] = [
        Tlp::Clear,
        Tlp::Green,
        Tlp::Amber,
        Tlp::AmberStrict,
        Tlp::Red,
    ];

    /// The canonical lower-case name used in JSON: `clear`, `green`, `amber`, `amber+strict`, `red`.
    pub fn as_str(self) -> &'static str {
        match self {
            Tlp::Clear => "clear",
            Tlp::Green => "green",
            Tlp::Amber => "amber",
            Tlp::AmberStrict => "amber+strict",
            Tlp::Red => "red",
        }
    }
}

impl fmt::Display for Tlp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for a string that is not a TLP label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown tlp label {0:?} (expected clear, green, amber, amber+strict or red)")]
pub struct TlpParseError(pub String);

impl FromStr for Tlp {
    type Err = TlpParseError;

    /// Accepts the canonical names case-insensitively, with or without a `TLP:` prefix, and
    /// `white` (TLP 1.0's name for CLEAR).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let t = t
            .strip_prefix("TLP:")
            .or_else(|| t.strip_prefix("tlp:"))
            .or_else(|| t.strip_prefix("Tlp:"))
            .unwrap_or(t);
        match t.to_ascii_lowercase().replace(['_', ' '], "+").as_str() {
            "clear" | "white" => Ok(Tlp::Clear),
            "green" => Ok(Tlp::Green),
            "amber" => Ok(Tlp::Amber),
            "amber+strict" => Ok(Tlp::AmberStrict),
            "red" => Ok(Tlp::Red),
            _ => Err(TlpParseError(s.to_string())),
        }
    }
}

impl Serialize for Tlp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Tlp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_spelling() {
        assert_eq!("TLP:AMBER+STRICT".parse::<Tlp>(), Ok(Tlp::AmberStrict));
        assert_eq!("white".parse::<Tlp>(), Ok(Tlp::Clear));
        assert_eq!("Green".parse::<Tlp>(), Ok(Tlp::Green));
        assert!("purple".parse::<Tlp>().is_err());
        for t in Tlp::ALL {
            assert_eq!(t.as_str().parse::<Tlp>(), Ok(t));
        }
    }

    #[test]
    fn ordered_by_restriction() {
        assert!(Tlp::Clear < Tlp::Green && Tlp::Green < Tlp::Amber);
        assert!(Tlp::Amber < Tlp::AmberStrict && Tlp::AmberStrict < Tlp::Red);
    }
}
