//! Server configuration: a TOML file (every key optional, unknown keys refused), then environment
//! and command-line overrides applied by the binary, validated into [`Config`].
//!
//! `config.example.toml` at the repository root documents every key with its default and is
//! parsed by a test.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use threatfeed_store::log::{LogBackend, Retention};

/// The raw file, as written by the operator.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Address to listen on.
    pub listen: Option<String>,
    /// Data directory.
    pub data_dir: Option<PathBuf>,
    /// `redb` or `fjall`.
    pub log_backend: Option<String>,
    /// Request limits.
    #[serde(default)]
    pub limits: RawLimits,
    /// Log retention.
    #[serde(default)]
    pub retention: RawRetention,
    /// Live stream tuning.
    #[serde(default)]
    pub stream: RawStream,
    /// Geo snapshot override.
    #[serde(default)]
    pub geo: RawGeo,
    /// Load the bundled threat knowledge base and C2 indicator lists (default true).
    pub default_kb: Option<bool>,
    /// Indicator expiry, decay and false-positive handling.
    #[serde(default)]
    pub indicators: RawIndicators,
    /// A request-pattern rules file (format of `data/kb/rules.toml`), used after the bundled
    /// rules.
    pub rules_file: Option<PathBuf>,
    /// Whether `/api/v1/overview` and its stream (address-free aggregates) need no token
    /// (default true); false: any valid token.
    pub dashboard_public_overview: Option<bool>,
}

/// `[indicators]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIndicators {
    /// How often expiry and decay are applied, seconds.
    pub sweep_secs: Option<u64>,
    /// An indicator whose decayed confidence falls below this is removed.
    pub min_confidence: Option<u8>,
    /// Distinct members whose false-positive reports remove an indicator.
    pub false_positive_reports: Option<usize>,
    /// Half-life of confidence per indicator type (`"30d"`, `"12h"`, `"90s"`, `"off"`).
    #[serde(default)]
    pub half_life: std::collections::BTreeMap<String, String>,
}

/// `[limits]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// Largest request body accepted (bytes, as sent — compressed if gzip).
    pub max_body_bytes: Option<usize>,
    /// Largest body after gzip decompression.
    pub max_decompressed_bytes: Option<usize>,
    /// Most records per ingest request.
    pub max_batch_records: Option<usize>,
    /// Events per second one organisation may ingest (token bucket; burst = one second's worth).
    pub ingest_events_per_sec: Option<u64>,
    /// Most events per `GET /api/v1/events` page.
    pub max_page: Option<usize>,
}

/// `[retention]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetention {
    /// Drop events older than this many days.
    pub max_age_days: Option<u64>,
    /// Keep at most this many events.
    pub max_events: Option<u64>,
    /// Keep at most this many bytes of events.
    pub max_bytes: Option<u64>,
    /// How often to apply retention, seconds.
    pub interval_secs: Option<u64>,
}

/// `[stream]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStream {
    /// SSE keep-alive comment interval, seconds.
    pub keepalive_secs: Option<u64>,
    /// Committed batches buffered per subscriber before it is switched to catch-up from the log.
    pub subscriber_buffer: Option<usize>,
}

/// `[geo]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGeo {
    /// A snapshot file (written by `threatfeed geo import`) used instead of the bundled one.
    pub snapshot: Option<PathBuf>,
}

/// Validated limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// See [`RawLimits::max_body_bytes`].
    pub max_body_bytes: usize,
    /// See [`RawLimits::max_decompressed_bytes`].
    pub max_decompressed_bytes: usize,
    /// See [`RawLimits::max_batch_records`].
    pub max_batch_records: usize,
    /// See [`RawLimits::ingest_events_per_sec`].
    pub ingest_events_per_sec: u64,
    /// See [`RawLimits::max_page`].
    pub max_page: usize,
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address.
    pub listen: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Event log backend.
    pub log_backend: LogBackend,
    /// Limits.
    pub limits: Limits,
    /// Retention policy.
    pub retention: Retention,
    /// Retention interval.
    pub retention_interval_secs: u64,
    /// Keep-alive interval.
    pub keepalive_secs: u64,
    /// Per-subscriber buffer (batches).
    pub subscriber_buffer: usize,
    /// Geo snapshot override.
    pub geo_snapshot: Option<PathBuf>,
    /// Whether the bundled knowledge base and indicator lists are loaded.
    pub default_kb: bool,
    /// Indicator store settings.
    pub indicators: crate::indicators::IndicatorSettings,
    /// Sweep interval for expiry and decay, seconds.
    pub indicator_sweep_secs: u64,
    /// Extra request-pattern rules.
    pub rules_file: Option<PathBuf>,
    /// Whether the dashboard's overview is served without a token.
    pub dashboard_public_overview: bool,
}

/// Parses a duration such as `30d`, `12h`, `15m`, `90s`; `off` is `None`.
pub fn parse_duration(s: &str) -> Option<Option<jiff::SignedDuration>> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("off") {
        return Some(None);
    }
    let split = t.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = t.split_at(split);
    let n: i64 = n.parse().ok()?;
    let secs = match unit.trim() {
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        "d" => n.checked_mul(86_400)?,
        _ => return None,
    };
    if secs <= 0 {
        return None;
    }
    Some(Some(jiff::SignedDuration::from_secs(secs)))
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Cannot read the file.
    #[error("cannot read config file {path}: {err}")]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        err: std::io::Error,
    },
    /// Not valid TOML or unknown key.
    #[error("invalid config file {path}: {err}")]
    Parse {
        /// File.
        path: PathBuf,
        /// Cause.
        err: toml::de::Error,
    },
    /// A value out of range.
    #[error("invalid config value {key} = {value:?}: {why}")]
    Value {
        /// Key.
        key: &'static str,
        /// Value.
        value: String,
        /// Why.
        why: &'static str,
    },
}

/// Defaults, documented in `config.example.toml` and the README.
pub mod defaults {
    /// `listen`.
    pub const LISTEN: &str = "127.0.0.1:8080";
    /// `data_dir`.
    pub const DATA_DIR: &str = "./threatfeed-data";
    /// `limits.max_body_bytes`: 16 MiB.
    pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
    /// `limits.max_decompressed_bytes`: 128 MiB.
    pub const MAX_DECOMPRESSED_BYTES: usize = 128 * 1024 * 1024;
    /// `limits.max_batch_records`.
    pub const MAX_BATCH_RECORDS: usize = 100_000;
    /// `limits.ingest_events_per_sec` per organisation.
    pub const INGEST_EVENTS_PER_SEC: u64 = 2_000_000;
    /// `limits.max_page`.
    pub const MAX_PAGE: usize = 10_000;
    /// `retention.max_age_days`.
    pub const MAX_AGE_DAYS: u64 = 30;
    /// `retention.interval_secs`.
    pub const RETENTION_INTERVAL_SECS: u64 = 60;
    /// `stream.keepalive_secs`.
    pub const KEEPALIVE_SECS: u64 = 15;
    /// `stream.subscriber_buffer`.
    pub const SUBSCRIBER_BUFFER: usize = 1024;
    /// `indicators.sweep_secs`.
    pub const INDICATOR_SWEEP_SECS: u64 = 60;
}

impl RawConfig {
    /// Reads and parses a TOML file.
    pub fn from_file(path: &Path) -> Result<RawConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|err| ConfigError::Read {
            path: path.to_path_buf(),
            err,
        })?;
        RawConfig::from_toml(&text).map_err(|err| ConfigError::Parse {
            path: path.to_path_buf(),
            err,
        })
    }

    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<RawConfig, toml::de::Error> {
        toml::from_str(text)
    }

    /// Validates into a [`Config`], applying defaults.
    pub fn validate(self) -> Result<Config, ConfigError> {
        let listen_s = self.listen.unwrap_or_else(|| defaults::LISTEN.to_string());
        let listen = listen_s
            .parse::<SocketAddr>()
            .map_err(|_| ConfigError::Value {
                key: "listen",
                value: listen_s.clone(),
                why: "expected ADDRESS:PORT, e.g. 127.0.0.1:8080 or [::1]:8080",
            })?;
        let backend_s = self.log_backend.unwrap_or_else(|| "redb".to_string());
        let log_backend = backend_s
            .parse::<LogBackend>()
            .map_err(|_| ConfigError::Value {
                key: "log_backend",
                value: backend_s.clone(),
                why: "expected redb or fjall",
            })?;
        let positive =
            |key: &'static str, v: Option<usize>, d: usize| -> Result<usize, ConfigError> {
                match v {
                    Some(0) => Err(ConfigError::Value {
                        key,
                        value: "0".into(),
                        why: "must be at least 1",
                    }),
                    Some(n) => Ok(n),
                    None => Ok(d),
                }
            };
        let l = self.limits;
        let limits = Limits {
            max_body_bytes: positive(
                "limits.max_body_bytes",
                l.max_body_bytes,
                defaults::MAX_BODY_BYTES,
            )?,
            max_decompressed_bytes: positive(
                "limits.max_decompressed_bytes",
                l.max_decompressed_bytes,
                defaults::MAX_DECOMPRESSED_BYTES,
            )?,
            max_batch_records: positive(
                "limits.max_batch_records",
                l.max_batch_records,
                defaults::MAX_BATCH_RECORDS,
            )?,
            ingest_events_per_sec: positive(
                "limits.ingest_events_per_sec",
                l.ingest_events_per_sec.map(|v| v as usize),
                defaults::INGEST_EVENTS_PER_SEC as usize,
            )? as u64,
            max_page: positive("limits.max_page", l.max_page, defaults::MAX_PAGE)?,
        };
        let r = self.retention;
        let retention = Retention {
            max_age_secs: match r.max_age_days {
                Some(0) => None,
                Some(d) => Some(d.saturating_mul(86_400)),
                None => Some(defaults::MAX_AGE_DAYS * 86_400),
            },
            max_records: r.max_events.filter(|&n| n > 0),
            max_bytes: r.max_bytes.filter(|&n| n > 0),
        };
        let ri = self.indicators;
        let mut indicators = crate::indicators::IndicatorSettings::default();
        if let Some(m) = ri.min_confidence {
            if m > 100 {
                return Err(ConfigError::Value {
                    key: "indicators.min_confidence",
                    value: m.to_string(),
                    why: "must be 0-100",
                });
            }
            indicators.decay.min_confidence = m;
        }
        indicators.false_positive_reports = positive(
            "indicators.false_positive_reports",
            ri.false_positive_reports,
            indicators.false_positive_reports,
        )?;
        for (kind, d) in &ri.half_life {
            let k = kind
                .parse::<threatfeed_core::indicator::IndicatorKind>()
                .map_err(|_| ConfigError::Value {
                    key: "indicators.half_life",
                    value: kind.clone(),
                    why: "unknown indicator type (ipv4, ipv6, cidr, domain, url, md5, sha1, sha256)",
                })?;
            let h = parse_duration(d).ok_or_else(|| ConfigError::Value {
                key: "indicators.half_life",
                value: d.clone(),
                why: "expected a duration like 30d, 12h, 15m, 90s, or off",
            })?;
            indicators.decay.set_half_life(k, h);
        }
        Ok(Config {
            rules_file: self.rules_file,
            indicators,
            indicator_sweep_secs: positive(
                "indicators.sweep_secs",
                ri.sweep_secs.map(|v| v as usize),
                defaults::INDICATOR_SWEEP_SECS as usize,
            )? as u64,
            listen,
            data_dir: self
                .data_dir
                .unwrap_or_else(|| PathBuf::from(defaults::DATA_DIR)),
            log_backend,
            limits,
            retention,
            retention_interval_secs: positive(
                "retention.interval_secs",
                r.interval_secs.map(|v| v as usize),
                defaults::RETENTION_INTERVAL_SECS as usize,
            )? as u64,
            keepalive_secs: positive(
                "stream.keepalive_secs",
                self.stream.keepalive_secs.map(|v| v as usize),
                defaults::KEEPALIVE_SECS as usize,
            )? as u64,
            subscriber_buffer: positive(
                "stream.subscriber_buffer",
                self.stream.subscriber_buffer,
                defaults::SUBSCRIBER_BUFFER,
            )?,
            geo_snapshot: self.geo.snapshot,
            default_kb: self.default_kb.unwrap_or(true),
            dashboard_public_overview: self.dashboard_public_overview.unwrap_or(true),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses_and_validates() {
        let text = include_str!("../../../config.example.toml");
        let raw = RawConfig::from_toml(text).expect("config.example.toml parses");
        let cfg = raw.validate().expect("config.example.toml validates");
        assert_eq!(cfg.listen.to_string(), defaults::LISTEN);
        assert_eq!(cfg.limits.max_body_bytes, defaults::MAX_BODY_BYTES);
        assert_eq!(
            cfg.retention.max_age_secs,
            Some(defaults::MAX_AGE_DAYS * 86_400)
        );
        assert!(cfg.dashboard_public_overview);
        let closed = RawConfig::from_toml("dashboard_public_overview = false")
            .expect("toml")
            .validate()
            .expect("valid");
        assert!(!closed.dashboard_public_overview);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        assert!(RawConfig::from_toml("listne = \"x\"").is_err());
        let e = RawConfig::from_toml("listen = \"localhost\"")
            .expect("toml")
            .validate();
        assert!(e.expect_err("bad listen").to_string().contains("localhost"));
        let e = RawConfig::from_toml("[limits]\nmax_body_bytes = 0")
            .expect("toml")
            .validate();
        assert!(e.is_err());
        let e = RawConfig::from_toml("log_backend = \"sqlite\"")
            .expect("toml")
            .validate();
        assert!(e.expect_err("bad backend").to_string().contains("sqlite"));
        let e = RawConfig::from_toml("[indicators.half_life]\nipv4 = \"3 weeks\"")
            .expect("toml")
            .validate();
        assert!(e.expect_err("bad duration").to_string().contains("3 weeks"));
        let cfg = RawConfig::from_toml("[indicators.half_life]\nurl = \"12h\"\nmd5 = \"off\"")
            .expect("toml")
            .validate()
            .expect("valid");
        assert_eq!(
            cfg.indicators
                .decay
                .half_life_of(threatfeed_core::indicator::IndicatorKind::Url),
            Some(jiff::SignedDuration::from_hours(12))
        );
    }
}
