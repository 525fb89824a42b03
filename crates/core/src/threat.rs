//! The threat knowledge base: malware families, how they behave on the wire, and the project's own
//! remediation playbooks (detect / contain / clean / verify, plus a notice for the infected customer).
//!
//! Each threat is one TOML document (`data/kb/threats/<id>.toml`); the bundled set is compiled into
//! the binaries with `include_str!`, so nothing here touches the file system. [`KnowledgeBase::get`]
//! resolves an id, a display name or any alias, ignoring case and separators (`"Cobalt Strike"`,
//! `"cobalt_strike"` and `"CobaltStrike"` all find `cobalt-strike`) and a leading platform tag such
//! as `elf_` or `win.` (`"elf_mirai"` finds `mirai`).

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;

/// What sort of threat a family is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ThreatKind {
    /// A general-purpose botnet.
    Botnet,
    /// Malware built to steal online-banking credentials or tamper with banking sessions.
    BankingTrojan,
    /// Malware whose main job is to install other malware.
    Loader,
    /// A remote access trojan.
    Rat,
    /// A credential / data stealer.
    Infostealer,
    /// Ransomware.
    Ransomware,
    /// A command-and-control / post-exploitation framework.
    C2Framework,
    /// A botnet of routers, cameras and other embedded (mostly Linux) devices.
    IotBotnet,
    /// Anything else.
    Other,
}

impl ThreatKind {
    /// The kebab-case name used in TOML and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ThreatKind::Botnet => "botnet",
            ThreatKind::BankingTrojan => "banking-trojan",
            ThreatKind::Loader => "loader",
            ThreatKind::Rat => "rat",
            ThreatKind::Infostealer => "infostealer",
            ThreatKind::Ransomware => "ransomware",
            ThreatKind::C2Framework => "c2-framework",
            ThreatKind::IotBotnet => "iot-botnet",
            ThreatKind::Other => "other",
        }
    }
}

impl fmt::Display for ThreatKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a family behaves on the network. Empty fields mean "not established", never "none".
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Behaviour {
    /// Protocols used for C2 or exfiltration (`http`, `https`, `tcp`, `dns`, `smtp`, …).
    #[serde(default)]
    pub protocols: Vec<String>,
    /// Ports commonly seen (C2, exfiltration or scanning; see `notes`).
    #[serde(default)]
    pub ports: Vec<u16>,
    /// Characteristic URI paths or fragments of C2 requests.
    #[serde(default)]
    pub uri_patterns: Vec<String>,
    /// Characteristic HTTP `User-Agent` values.
    #[serde(default)]
    pub user_agents: Vec<String>,
    /// Default interval between check-ins, where well established.
    #[serde(default)]
    pub beacon_interval_secs: Option<u32>,
    /// Free-form notes on the traffic.
    #[serde(default)]
    pub notes: String,
}

/// The remediation playbook for one threat, written for an ISP abuse desk or a SOC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Playbook {
    /// What the network owner sees and how to confirm the infection.
    pub detect: Vec<String>,
    /// How to stop the damage spreading while the host is cleaned.
    pub contain: Vec<String>,
    /// How to remove the malware and its persistence.
    pub clean: Vec<String>,
    /// How to confirm the host is clean.
    pub verify: Vec<String>,
    /// A short plain-language notice an ISP can send to an infected subscriber.
    pub customer_notice: String,
}

/// A malware family, botnet or campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Threat {
    /// Stable slug: lower-case `[a-z0-9-]`, e.g. `emotet`, `cobalt-strike`.
    pub id: String,
    /// Display name, e.g. `Cobalt Strike`.
    pub name: String,
    /// Other names the family is known by.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// What sort of threat it is.
    pub kind: ThreatKind,
    /// A short description.
    pub description: String,
    /// Reference URLs.
    #[serde(default)]
    pub references: Vec<String>,
    /// Network behaviour.
    #[serde(default)]
    pub behaviour: Behaviour,
    /// The remediation playbook.
    pub playbook: Playbook,
}

/// Why a threat document or the knowledge base was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KbError {
    /// A file is not valid TOML or does not match the threat schema.
    #[error("{file}: {message}")]
    Parse {
        /// The file name given to the loader.
        file: String,
        /// The parser's message.
        message: String,
    },
    /// A file's stem does not match the id inside it.
    #[error("{file}: id {id:?} does not match the file name")]
    FileName {
        /// The file name given to the loader.
        file: String,
        /// The id inside the file.
        id: String,
    },
    /// The id is not a valid slug.
    #[error(
        "invalid threat id {0:?} (expected lower-case letters, digits and single '-', e.g. \"cobalt-strike\")"
    )]
    BadSlug(String),
    /// A required field is empty.
    #[error("threat {id:?}: {field} must not be empty")]
    Empty {
        /// The threat's id.
        id: String,
        /// The field, e.g. `playbook.clean`.
        field: String,
    },
    /// A field holds an unusable value.
    #[error("threat {id:?}: invalid {field} {value:?}")]
    BadValue {
        /// The threat's id.
        id: String,
        /// The field, e.g. `references`.
        field: String,
        /// The offending value.
        value: String,
    },
    /// A name or alias of one threat resolves to another threat.
    #[error("threat {id:?}: name or alias {value:?} collides with threat {other:?}")]
    Collision {
        /// The threat being added.
        id: String,
        /// The colliding name or alias.
        value: String,
        /// The threat that already owns it.
        other: String,
    },
    /// Two files define the same id.
    #[error("{file}: duplicate threat id {id:?}")]
    Duplicate {
        /// The file name given to the loader.
        file: String,
        /// The repeated id.
        id: String,
    },
}

/// The threat documents compiled into the binaries: (file name, contents).
const BUNDLED: &[(&str, &str)] = &[
    (
        "agenttesla.toml",
        include_str!("../../../data/kb/threats/agenttesla.toml"),
    ),
    (
        "amadey.toml",
        include_str!("../../../data/kb/threats/amadey.toml"),
    ),
    (
        "asyncrat.toml",
        include_str!("../../../data/kb/threats/asyncrat.toml"),
    ),
    (
        "cobalt-strike.toml",
        include_str!("../../../data/kb/threats/cobalt-strike.toml"),
    ),
    (
        "dridex.toml",
        include_str!("../../../data/kb/threats/dridex.toml"),
    ),
    (
        "emotet.toml",
        include_str!("../../../data/kb/threats/emotet.toml"),
    ),
    (
        "formbook.toml",
        include_str!("../../../data/kb/threats/formbook.toml"),
    ),
    (
        "gafgyt.toml",
        include_str!("../../../data/kb/threats/gafgyt.toml"),
    ),
    (
        "icedid.toml",
        include_str!("../../../data/kb/threats/icedid.toml"),
    ),
    (
        "lokibot.toml",
        include_str!("../../../data/kb/threats/lokibot.toml"),
    ),
    (
        "mirai.toml",
        include_str!("../../../data/kb/threats/mirai.toml"),
    ),
    (
        "njrat.toml",
        include_str!("../../../data/kb/threats/njrat.toml"),
    ),
    (
        "qakbot.toml",
        include_str!("../../../data/kb/threats/qakbot.toml"),
    ),
    (
        "redline.toml",
        include_str!("../../../data/kb/threats/redline.toml"),
    ),
    (
        "remcos.toml",
        include_str!("../../../data/kb/threats/remcos.toml"),
    ),
    (
        "trickbot.toml",
        include_str!("../../../data/kb/threats/trickbot.toml"),
    ),
    (
        "ursnif.toml",
        include_str!("../../../data/kb/threats/ursnif.toml"),
    ),
];

/// Platform tags that may prefix a family name (`elf_mirai`, `win.emotet`) and are ignored by lookup.
const PLATFORM_PREFIXES: &[&str] = &[
    "elf", "win", "osx", "apk", "android", "linux", "macos", "js", "ps1", "py", "jar", "vbs",
];

/// Reduces a name to its lookup key: lower-case ASCII letters and digits only.
fn lookup_key(s: &str) -> String {
    s.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// `Some(rest)` when `s` starts with a platform tag followed by a separator (`elf_mirai` → `mirai`).
fn strip_platform(s: &str) -> Option<&str> {
    let (head, rest) = s.split_once(['_', '.', '-', ' ', '/', ':'])?;
    let head = head.trim();
    PLATFORM_PREFIXES
        .iter()
        .any(|p| head.eq_ignore_ascii_case(p))
        .then_some(rest)
        .filter(|r| !r.trim().is_empty())
}

/// `true` when `s` is a slug: `[a-z0-9]` runs joined by single `-`, not starting or ending with `-`.
pub fn is_valid_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.split('-').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// Checks one threat on its own (everything except collisions with other threats).
pub fn validate(t: &Threat) -> Result<(), KbError> {
    if !is_valid_slug(&t.id) {
        return Err(KbError::BadSlug(t.id.clone()));
    }
    let empty = |field: &str| KbError::Empty {
        id: t.id.clone(),
        field: field.to_owned(),
    };
    let bad = |field: &str, value: &str| KbError::BadValue {
        id: t.id.clone(),
        field: field.to_owned(),
        value: value.to_owned(),
    };
    if lookup_key(&t.name).is_empty() {
        return Err(empty("name"));
    }
    if t.description.trim().is_empty() {
        return Err(empty("description"));
    }
    for alias in &t.aliases {
        if lookup_key(alias).is_empty() {
            return Err(bad("aliases", alias));
        }
    }
    for r in &t.references {
        let ok = (r.starts_with("https://") || r.starts_with("http://"))
            && !r.chars().any(char::is_whitespace);
        if !ok {
            return Err(bad("references", r));
        }
    }
    let p = &t.playbook;
    let sections: [(&str, &Vec<String>); 4] = [
        ("playbook.detect", &p.detect),
        ("playbook.contain", &p.contain),
        ("playbook.clean", &p.clean),
        ("playbook.verify", &p.verify),
    ];
    for (field, items) in sections {
        if items.is_empty() {
            return Err(empty(field));
        }
        if items.iter().any(|s| s.trim().is_empty()) {
            return Err(bad(field, ""));
        }
    }
    if p.customer_notice.trim().is_empty() {
        return Err(empty("playbook.customer_notice"));
    }
    Ok(())
}

/// The set of known threats with a lookup by id, name and alias.
#[derive(Debug, Clone, Default)]
pub struct KnowledgeBase {
    threats: Vec<Threat>,
    /// Lookup key (see [`lookup_key`]) → index into `threats`.
    by_key: HashMap<String, usize>,
}

impl KnowledgeBase {
    /// An empty knowledge base.
    pub fn new() -> Self {
        Self::default()
    }

    /// The threats shipped with threatfeed (`data/kb/threats/*.toml`, compiled in).
    pub fn bundled() -> Result<KnowledgeBase, KbError> {
        Self::from_toml_files(BUNDLED.iter().copied())
    }

    /// Builds a knowledge base from `(file name, TOML text)` pairs, one threat per file. A file
    /// named `<stem>.toml` must hold the threat whose id is `<stem>`. Errors name the file.
    pub fn from_toml_files<'a, I>(files: I) -> Result<KnowledgeBase, KbError>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let mut kb = KnowledgeBase::new();
        for (file, text) in files {
            let t = parse_threat(file, text)?;
            if let Some(stem) = file
                .rsplit(['/', '\\'])
                .next()
                .and_then(|f| f.strip_suffix(".toml"))
                && stem != t.id
            {
                return Err(KbError::FileName {
                    file: file.to_owned(),
                    id: t.id,
                });
            }
            if kb.threats.iter().any(|o| o.id == t.id) {
                return Err(KbError::Duplicate {
                    file: file.to_owned(),
                    id: t.id,
                });
            }
            kb.upsert(t).map_err(|e| KbError::Parse {
                file: file.to_owned(),
                message: e.to_string(),
            })?;
        }
        Ok(kb)
    }

    /// Every threat, in insertion order.
    pub fn threats(&self) -> &[Threat] {
        &self.threats
    }

    /// The number of threats.
    pub fn len(&self) -> usize {
        self.threats.len()
    }

    /// `true` when there are no threats.
    pub fn is_empty(&self) -> bool {
        self.threats.is_empty()
    }

    /// Finds a threat by id, name or alias, ignoring case, separators and a leading platform tag.
    pub fn get(&self, key: &str) -> Option<&Threat> {
        let found = self.by_key.get(&lookup_key(key)).or_else(|| {
            strip_platform(key.trim()).and_then(|rest| self.by_key.get(&lookup_key(rest)))
        });
        found.and_then(|&i| self.threats.get(i))
    }

    /// Adds a threat, or replaces the one with the same id. Rejects an invalid threat and any name
    /// or alias that already belongs to a different threat; on error the knowledge base is unchanged.
    pub fn upsert(&mut self, t: Threat) -> Result<(), KbError> {
        validate(&t)?;
        let slot = self.threats.iter().position(|o| o.id == t.id);
        let index = slot.unwrap_or(self.threats.len());
        let mut added: Vec<String> = Vec::new();
        for value in std::iter::once(&t.id)
            .chain(std::iter::once(&t.name))
            .chain(&t.aliases)
        {
            let key = lookup_key(value);
            if let Some(&other) = self.by_key.get(&key)
                && other != index
            {
                let other = self
                    .threats
                    .get(other)
                    .map(|o| o.id.clone())
                    .unwrap_or_default();
                return Err(KbError::Collision {
                    id: t.id.clone(),
                    value: value.clone(),
                    other,
                });
            }
            added.push(key);
        }
        // Valid: drop the old keys of a replaced threat, then index the new ones.
        if slot.is_some() {
            self.by_key.retain(|_, i| *i != index);
        }
        for key in added {
            self.by_key.insert(key, index);
        }
        match slot {
            Some(i) => self.threats[i] = t,
            None => self.threats.push(t),
        }
        Ok(())
    }
}

/// Parses one threat document; the error names `file`.
pub fn parse_threat(file: &str, text: &str) -> Result<Threat, KbError> {
    toml::from_str::<Threat>(text).map_err(|e| KbError::Parse {
        file: file.to_owned(),
        message: e.to_string().trim_end().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDS: [&str; 17] = [
        "agenttesla",
        "amadey",
        "asyncrat",
        "cobalt-strike",
        "dridex",
        "gafgyt",
        "mirai",
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
    ];

    fn kb() -> KnowledgeBase {
        KnowledgeBase::bundled().expect("bundled knowledge base loads")
    }

    fn sample(id: &str, name: &str, aliases: &[&str]) -> Threat {
        Threat {
            id: id.to_owned(),
            name: name.to_owned(),
            aliases: aliases.iter().map(|s| s.to_string()).collect(),
            kind: ThreatKind::Other,
            description: "test threat".to_owned(),
            references: vec!["https://example.org/".to_owned()],
            behaviour: Behaviour::default(),
            playbook: Playbook {
                detect: vec!["d".to_owned()],
                contain: vec!["c".to_owned()],
                clean: vec!["x".to_owned()],
                verify: vec!["v".to_owned()],
                customer_notice: "n".to_owned(),
            },
        }
    }

    #[test]
    fn threat_bundled_loads_with_all_ids() {
        let kb = kb();
        assert_eq!(kb.len(), IDS.len());
        for id in IDS {
            let t = kb.get(id).unwrap_or_else(|| panic!("{id} missing"));
            assert_eq!(t.id, id);
        }
    }

    #[test]
    fn threat_playbooks_complete() {
        for t in kb().threats() {
            let p = &t.playbook;
            for (name, items) in [
                ("detect", &p.detect),
                ("contain", &p.contain),
                ("clean", &p.clean),
                ("verify", &p.verify),
            ] {
                assert!(
                    (3..=6).contains(&items.len()),
                    "{}: {name} has {} items",
                    t.id,
                    items.len()
                );
            }
            assert!(!p.customer_notice.trim().is_empty(), "{}", t.id);
            assert!(!t.references.is_empty(), "{}: no references", t.id);
        }
    }

    #[test]
    fn threat_get_by_id_name_alias_and_spellings() {
        let kb = kb();
        let id = |k: &str| kb.get(k).map(|t| t.id.as_str());
        assert_eq!(id("emotet"), Some("emotet"));
        assert_eq!(id("EMOTET"), Some("emotet"));
        assert_eq!(id("Heodo"), Some("emotet"));
        assert_eq!(id("geodo"), Some("emotet"));
        assert_eq!(id("Cobalt Strike"), Some("cobalt-strike"));
        assert_eq!(id("cobalt_strike"), Some("cobalt-strike"));
        assert_eq!(id("CobaltStrike"), Some("cobalt-strike"));
        assert_eq!(id("cobaltstrike"), Some("cobalt-strike"));
        assert_eq!(id("elf_mirai"), Some("mirai"));
        assert_eq!(id("ELF.Mirai"), Some("mirai"));
        assert_eq!(id("elf_gafgyt"), Some("gafgyt"));
        assert_eq!(id("Bashlite"), Some("gafgyt"));
        assert_eq!(id("win.emotet"), Some("emotet"));
        assert_eq!(id("Agent Tesla"), Some("agenttesla"));
        assert_eq!(id("QBot"), Some("qakbot"));
        assert_eq!(id("BokBot"), Some("icedid"));
        assert_eq!(id("Gozi"), Some("ursnif"));
        assert_eq!(id("Bladabindi"), Some("njrat"));
        assert_eq!(id("RedLine Stealer"), Some("redline"));
        assert_eq!(id("no-such-family"), None);
        assert_eq!(id(""), None);
        assert_eq!(id("elf_"), None);
    }

    #[test]
    fn threat_upsert_rejects_bad_slug() {
        let mut kb = KnowledgeBase::new();
        for bad in ["Emotet", "cobalt_strike", "-x", "x-", "a--b", "", "é"] {
            let err = kb.upsert(sample(bad, "X", &[])).expect_err(bad);
            assert_eq!(err, KbError::BadSlug(bad.to_owned()));
            assert!(err.to_string().contains(&format!("{bad:?}")));
        }
        assert!(kb.is_empty());
    }

    #[test]
    fn threat_upsert_rejects_alias_collision() {
        let mut kb = kb();
        let err = kb
            .upsert(sample("new-thing", "New Thing", &["fresh", "Geodo"]))
            .expect_err("collision");
        assert_eq!(
            err,
            KbError::Collision {
                id: "new-thing".to_owned(),
                value: "Geodo".to_owned(),
                other: "emotet".to_owned(),
            }
        );
        let msg = err.to_string();
        assert!(
            msg.contains("\"Geodo\"") && msg.contains("\"emotet\""),
            "{msg}"
        );
        // Nothing was half-added.
        assert!(kb.get("new-thing").is_none());
        assert!(kb.get("fresh").is_none());
        assert_eq!(kb.len(), IDS.len());
    }

    #[test]
    fn threat_upsert_validates_and_replaces() {
        let mut kb = KnowledgeBase::new();
        let mut t = sample("x", "X", &["old-name"]);
        t.playbook.clean.clear();
        let err = kb.upsert(t.clone()).expect_err("empty section");
        assert!(err.to_string().contains("playbook.clean"), "{err}");
        t.playbook.clean.push("reinstall".to_owned());
        kb.upsert(t.clone()).expect("valid");
        assert!(kb.get("oldname").is_some());
        t.aliases = vec!["new-name".to_owned()];
        kb.upsert(t).expect("replace");
        assert_eq!(kb.len(), 1);
        assert!(kb.get("old-name").is_none());
        assert_eq!(kb.get("NEW NAME").map(|t| t.id.as_str()), Some("x"));
        let mut bad_ref = sample("y", "Y", &[]);
        bad_ref.references = vec!["not a url".to_owned()];
        assert!(kb.upsert(bad_ref).is_err());
    }

    #[test]
    fn threat_malformed_toml_names_file() {
        let err = KnowledgeBase::from_toml_files([("broken.toml", "id = \"broken\"\nname = ")])
            .expect_err("malformed");
        assert!(matches!(&err, KbError::Parse { file, .. } if file == "broken.toml"));
        assert!(err.to_string().starts_with("broken.toml:"), "{err}");

        // Unknown fields are rejected too, naming the file.
        let (_, good) = BUNDLED[0];
        let text = format!("colour = \"red\"\n{good}");
        let err = KnowledgeBase::from_toml_files([("agenttesla.toml", text.as_str())])
            .expect_err("unknown field");
        assert!(err.to_string().starts_with("agenttesla.toml:"), "{err}");
        assert!(err.to_string().contains("colour"), "{err}");

        // The file name must match the id.
        let err = KnowledgeBase::from_toml_files([("other.toml", good)]).expect_err("name");
        assert!(matches!(err, KbError::FileName { .. }));
    }

    #[test]
    fn threat_kind_serde_kebab_case() {
        let kb = kb();
        let kind = |id: &str| kb.get(id).map(|t| t.kind);
        assert_eq!(kind("cobalt-strike"), Some(ThreatKind::C2Framework));
        assert_eq!(kind("mirai"), Some(ThreatKind::IotBotnet));
        assert_eq!(ThreatKind::BankingTrojan.to_string(), "banking-trojan");
        let json = serde_json::to_string(&ThreatKind::IotBotnet).expect("json");
        assert_eq!(json, "\"iot-botnet\"");
    }
}
