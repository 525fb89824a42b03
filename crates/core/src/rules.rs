//! Request-pattern rules: recognising a family from *how* a bot talks when no known indicator
//! names it — the URI path and query it requests, its user agent, the host it asks for, the port
//! and protocol, or the first bytes it sends on a raw TCP connection.
//!
//! A rule's conditions are ANDed; it needs at least one of `uri`, `user_agent` or `first_bytes`
//! (a host or port alone is an indicator, not a pattern). Rules are tried in order and the first
//! match wins. The bundled rules are in `data/kb/rules.toml` (written for this project from the
//! families' documented default traffic); an operator may load more from a file of the same
//! format. Regexes are compiled once ([`regex`] guarantees linear-time matching, so a hostile
//! request cannot make matching slow).

use regex::Regex;
use regex::bytes::Regex as BytesRegex;
use serde::{Deserialize, Serialize};

/// The bundled rules file.
pub const BUNDLED_RULES: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../data/kb/rules.toml"
));

/// One rule, as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Unique id (recorded on classified events as `rule:<id>`).
    pub id: String,
    /// The threat it identifies (id, name or alias in the knowledge base).
    pub threat: String,
    /// What it recognises, for people.
    #[serde(default)]
    pub description: Option<String>,
    /// Regex over the request's path and query.
    #[serde(default)]
    pub uri: Option<String>,
    /// Regex over the user agent.
    #[serde(default)]
    pub user_agent: Option<String>,
    /// Regex over the host name asked for.
    #[serde(default)]
    pub host: Option<String>,
    /// Bytes regex over the first bytes of a raw TCP session.
    #[serde(default)]
    pub first_bytes: Option<String>,
    /// Destination ports (any when empty).
    #[serde(default)]
    pub dst_ports: Vec<u16>,
    /// Protocol (`http`, `tcp`, `dns`, ...), case-insensitive.
    #[serde(default)]
    pub proto: Option<String>,
}

/// Why a rules file cannot be used. Names the rule and the offending value.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    /// Not valid TOML or an unknown key.
    #[error("invalid rules file: {0}")]
    Toml(#[from] toml::de::Error),
    /// A regex that does not compile.
    #[error("rule {rule:?}: invalid {field} regex {pattern:?}: {err}")]
    Regex {
        /// The rule.
        rule: String,
        /// Which field.
        field: &'static str,
        /// The regex.
        pattern: String,
        /// The compiler's message.
        err: String,
    },
    /// A rule without any pattern.
    #[error("rule {0:?} has none of uri, user_agent, first_bytes")]
    NoPattern(String),
    /// Two rules with one id.
    #[error("rule id {0:?} is used twice")]
    Duplicate(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    rule: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct Compiled {
    rule: Rule,
    uri: Option<Regex>,
    user_agent: Option<Regex>,
    host: Option<Regex>,
    first_bytes: Option<BytesRegex>,
}

/// What a check-in looked like, for matching.
#[derive(Debug, Clone, Copy, Default)]
pub struct Request<'a> {
    /// Path and query (`/gate.php?id=1`).
    pub uri: Option<&'a str>,
    /// User agent.
    pub user_agent: Option<&'a str>,
    /// Host name.
    pub host: Option<&'a str>,
    /// First bytes of a raw session.
    pub first_bytes: Option<&'a [u8]>,
    /// Destination port.
    pub dst_port: Option<u16>,
    /// Protocol.
    pub proto: Option<&'a str>,
}

impl<'a> Request<'a> {
    /// The request parts of an event's fields: the path and query are taken from `url`.
    pub fn from_event(e: &'a crate::Event) -> Request<'a> {
        Request {
            uri: e.url.as_deref().map(path_and_query),
            user_agent: e.user_agent.as_deref(),
            host: e.host.as_deref(),
            first_bytes: None,
            dst_port: e.dst_port,
            proto: e.proto.as_deref(),
        }
    }
}

/// The path and query of a URL (`http://h:1/p?q#f` → `/p?q`); a text without a scheme is
/// taken as a path already.
pub fn path_and_query(url: &str) -> &str {
    let Some((_, rest)) = url.split_once("://") else {
        return url;
    };
    let start = rest.find(['/', '?']).unwrap_or(rest.len());
    let pq = &rest[start..];
    let pq = pq.split('#').next().unwrap_or(pq);
    if pq.is_empty() { "/" } else { pq }
}

/// A compiled, ordered set of rules.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    rules: Vec<Compiled>,
}

fn compile<T>(
    rule: &Rule,
    field: &'static str,
    pattern: &Option<String>,
    f: impl Fn(&str) -> Result<T, regex::Error>,
) -> Result<Option<T>, RuleError> {
    match pattern {
        None => Ok(None),
        Some(p) => f(p).map(Some).map_err(|e| RuleError::Regex {
            rule: rule.id.clone(),
            field,
            pattern: p.clone(),
            err: e.to_string(),
        }),
    }
}

impl RuleSet {
    /// No rules.
    pub fn new() -> RuleSet {
        RuleSet::default()
    }

    /// The bundled rules.
    pub fn bundled() -> Result<RuleSet, RuleError> {
        RuleSet::from_toml(BUNDLED_RULES)
    }

    /// Parses and compiles a rules file.
    pub fn from_toml(text: &str) -> Result<RuleSet, RuleError> {
        let file: RulesFile = toml::from_str(text)?;
        let mut set = RuleSet::new();
        for r in file.rule {
            set.push(r)?;
        }
        Ok(set)
    }

    /// Appends one rule.
    pub fn push(&mut self, rule: Rule) -> Result<(), RuleError> {
        if rule.uri.is_none() && rule.user_agent.is_none() && rule.first_bytes.is_none() {
            return Err(RuleError::NoPattern(rule.id));
        }
        if self.rules.iter().any(|c| c.rule.id == rule.id) {
            return Err(RuleError::Duplicate(rule.id));
        }
        let c = Compiled {
            uri: compile(&rule, "uri", &rule.uri, Regex::new)?,
            user_agent: compile(&rule, "user_agent", &rule.user_agent, Regex::new)?,
            host: compile(&rule, "host", &rule.host, Regex::new)?,
            first_bytes: compile(&rule, "first_bytes", &rule.first_bytes, BytesRegex::new)?,
            rule,
        };
        self.rules.push(c);
        Ok(())
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rules, in order.
    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().map(|c| &c.rule)
    }

    /// The first rule matching `req`.
    pub fn classify(&self, req: &Request<'_>) -> Option<&Rule> {
        fn text(re: &Option<Regex>, v: Option<&str>) -> bool {
            match re {
                None => true,
                Some(re) => v.is_some_and(|v| re.is_match(v)),
            }
        }
        self.rules
            .iter()
            .find(|c| {
                let r = &c.rule;
                (r.dst_ports.is_empty() || req.dst_port.is_some_and(|p| r.dst_ports.contains(&p)))
                    && r.proto
                        .as_deref()
                        .is_none_or(|p| req.proto.is_some_and(|q| q.eq_ignore_ascii_case(p)))
                    && text(&c.uri, req.uri)
                    && text(&c.user_agent, req.user_agent)
                    && text(&c.host, req.host)
                    && match &c.first_bytes {
                        None => true,
                        Some(re) => req.first_bytes.is_some_and(|b| re.is_match(b)),
                    }
            })
            .map(|c| &c.rule)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::threat::KnowledgeBase;

    fn http(uri: &str) -> Request<'_> {
        Request {
            uri: Some(uri),
            proto: Some("http"),
            ..Default::default()
        }
    }

    fn hit<'a>(set: &'a RuleSet, req: &Request<'_>) -> Option<&'a str> {
        set.classify(req).map(|r| r.threat.as_str())
    }

    #[test]
    fn bundled_rules_compile_and_name_documented_threats() {
        let set = RuleSet::bundled().expect("bundled rules");
        assert!(set.len() >= 10, "{}", set.len());
        let kb = KnowledgeBase::bundled().expect("kb");
        for r in set.rules() {
            assert!(
                kb.get(&r.threat).is_some(),
                "rule {} names unknown threat {}",
                r.id,
                r.threat
            );
        }
    }

    #[test]
    fn families_are_recognised_by_their_traffic() {
        let set = RuleSet::bundled().expect("rules");
        assert_eq!(hit(&set, &http("/fre.php")), Some("lokibot"));
        assert_eq!(hit(&set, &http("/panel/five/fre.php")), Some("lokibot"));
        let ua = Request {
            uri: Some("/x"),
            user_agent: Some("Mozilla/4.08 (Charon; Inferno)"),
            ..Default::default()
        };
        assert_eq!(hit(&set, &ua), Some("lokibot"));
        assert_eq!(hit(&set, &http("/t4")), Some("qakbot"));
        assert_eq!(
            hit(
                &set,
                &http("/zev4/DESKTOP-7H3QK_W10019041.0A1B2C3D4E5F60718293A4B5C6D7E8F9/5/kjHbd/")
            ),
            Some("trickbot")
        );
        assert_eq!(
            hit(&set, &http("/images/aB3d_2FkQ9x_2BpLm7/Qz8r_2FT.avi")),
            Some("ursnif")
        );
        assert_eq!(
            hit(&set, &http("/photo.png?id=0123456789abcdef0123456789")),
            Some("icedid")
        );
        assert_eq!(
            hit(&set, &http("/ns3/?Rb=Zm9vYmFyYmF6cXV4MTIzNDU2&Lh=abc")),
            Some("formbook")
        );
        assert_eq!(hit(&set, &http("/Gd85kkjf/index.php")), Some("amadey"));
        assert_eq!(hit(&set, &http("/dpixel")), Some("cobaltstrike"));
        assert_eq!(hit(&set, &http("/bins/mirai.arm7")), Some("elf_mirai"));
        assert_eq!(hit(&set, &http("/bins.sh")), Some("elf_gafgyt"));
        let nj = Request {
            first_bytes: Some(b"127\x00ll|'|'|SGFjS2VkXzA|'|'|DESKTOP"),
            proto: Some("tcp"),
            ..Default::default()
        };
        assert_eq!(hit(&set, &nj), Some("njrat"));
        // Ordinary traffic matches nothing.
        for benign in [
            "/",
            "/index.html",
            "/wp-login.php",
            "/images/logo.png",
            "/api/v1/status",
        ] {
            assert_eq!(hit(&set, &http(benign)), None, "{benign}");
        }
        assert_eq!(hit(&set, &Request::default()), None);
    }

    #[test]
    fn conditions_are_anded_and_bad_rules_are_refused_by_name() {
        let set = RuleSet::from_toml(
            "[[rule]]\nid = \"x\"\nthreat = \"emotet\"\nuri = \"^/gate\"\ndst_ports = [8080]\nproto = \"HTTP\"\n",
        )
        .expect("rules");
        let mut req = http("/gate.php");
        assert_eq!(hit(&set, &req), None, "wrong port");
        req.dst_port = Some(8080);
        assert_eq!(hit(&set, &req), Some("emotet"));
        let e = RuleSet::from_toml("[[rule]]\nid = \"bad\"\nthreat = \"t\"\nuri = \"(\"\n")
            .expect_err("bad regex");
        assert!(
            e.to_string().contains("bad") && e.to_string().contains("\"(\""),
            "{e}"
        );
        let e = RuleSet::from_toml("[[rule]]\nid = \"p\"\nthreat = \"t\"\ndst_ports = [80]\n")
            .expect_err("no pattern");
        assert!(e.to_string().contains("\"p\""), "{e}");
        assert!(
            RuleSet::from_toml("[[rule]]\nid = \"p\"\nthreat = \"t\"\nuri = \"x\"\nurl = \"y\"\n")
                .is_err()
        );
    }

    #[test]
    fn path_and_query_of_urls() {
        assert_eq!(
            path_and_query("http://h.example:8080/a/b?c=1#f"),
            "/a/b?c=1"
        );
        assert_eq!(path_and_query("http://h.example"), "/");
        assert_eq!(path_and_query("http://h.example?x=1"), "?x=1");
        assert_eq!(path_and_query("/already/a/path"), "/already/a/path");
    }
}
