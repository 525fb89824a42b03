//! STIX 2.1 importer: walks a bundle (`{"type": "bundle", "objects": [...]}`, or a single STIX
//! object) as plain `serde_json::Value`s.
//!
//! Invariants:
//! - Never panics; a document of the wrong shape is one skipped entry at position 0, other skip
//!   positions are the 1-based index of the object in `objects`.
//! - `indicator` objects with `pattern_type` `stix` (or none) are parsed with a small tokenizer
//!   ([`comparisons`]; quotes and `\'` escapes inside values are honoured). Every `=` comparison
//!   with a quoted value on a supported observable becomes an indicator — `ipv4-addr:value`,
//!   `ipv6-addr:value` (addresses or CIDRs), `domain-name:value`, `url:value`,
//!   `file:hashes.MD5`, `file:hashes.'SHA-1'`, `file:hashes.'SHA-256'` (hash names in any case,
//!   quoted with `'` or `"` or not) — whatever `AND`/`OR`/brackets join them. Every other
//!   comparison (other observables, `MATCHES`, `IN`, `!=`, `NOT`, ...) is skipped with a reason.
//!   Other pattern languages (`snort`, `yara`, `sigma`, ...) are skipped whole.
//! - An indicator keeps `valid_from`, `valid_until`, `confidence` (0–100), `description` (else
//!   its `name`) and the most restrictive TLP among its `object_marking_refs`: the official TLP
//!   1.0 and TLP 2.0 marking-definition ids ([`TLP_MARKINGS`]) or `marking-definition` objects of
//!   the bundle that state a TLP level.
//! - Its threat is the `name` of the first `malware` an `indicates` relationship points it to,
//!   else the `threat` argument of [`super::parse`].
//! - `malware` objects that are families (`is_family` true or absent) become threat documents
//!   (name, aliases, description, `external_references` URLs, kind from `malware_types`, else
//!   [`ThreatKind::Other`]). Malware instances (`is_family: false`) and revoked or
//!   `x_mitre_deprecated` objects are counted in [`super::ImportReport::ignored`], not imported.
//! - A `course-of-action` that `mitigates` a malware family adds `"<name>: <description>"` to the
//!   `contain` section of that threat's playbook (a mitigation stops the damage spreading; it is
//!   not a cleaning procedure). Other playbook sections stay empty.
//! - Other object types are counted in [`super::ImportReport::ignored`] by type; they are not
//!   errors. A bundle with no supported indicator is fine.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::{Builder, ImportedIndicator, imported_threat, kind_from_hints, parse_time, show};
use crate::indicator::{IndicatorKind, canonicalize_as};
use crate::threat::ThreatKind;
use crate::tlp::Tlp;

/// The official TLP marking-definition ids: TLP 1.0 (STIX 2.1 specification, section 7.2.1.4)
/// and TLP 2.0 (the OASIS TLP 2.0 marking-definition extension).
pub const TLP_MARKINGS: [(&str, Tlp); 9] = [
    (
        "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9",
        Tlp::Clear,
    ),
    (
        "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da",
        Tlp::Green,
    ),
    (
        "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82",
        Tlp::Amber,
    ),
    (
        "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed",
        Tlp::Red,
    ),
    (
        "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
        Tlp::Clear,
    ),
    (
        "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
        Tlp::Green,
    ),
    (
        "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
        Tlp::Amber,
    ),
    (
        "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
        Tlp::AmberStrict,
    ),
    (
        "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
        Tlp::Red,
    ),
];

/// Imports a STIX bundle (see the module documentation).
pub(super) fn parse_bundle(b: &mut Builder, v: &Value, threat: Option<&str>) {
    let single;
    let objects: &[Value] = match v.get("type").and_then(Value::as_str) {
        Some("bundle") => match v.get("objects") {
            None => &[],
            Some(Value::Array(a)) => a,
            Some(other) => {
                b.skip(0, format!("bundle objects is not a list: {}", show(other)));
                return;
            }
        },
        Some(_) => {
            single = [v.clone()];
            &single
        }
        None => {
            b.skip(0, format!("not a STIX bundle: {}", show(v)));
            return;
        }
    };

    // Pass 1: index what other objects refer to.
    let mut markings: HashMap<&str, Tlp> = TLP_MARKINGS.iter().copied().collect();
    let mut malware_names: HashMap<&str, &str> = HashMap::new();
    let mut typed: Vec<(usize, &str, &Map<String, Value>)> = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        let Some((ty, obj)) = o
            .as_object()
            .and_then(|m| m.get("type").and_then(Value::as_str).map(|t| (t, m)))
        else {
            b.skip(i + 1, format!("not a STIX object: {}", show(o)));
            continue;
        };
        let id = obj.get("id").and_then(Value::as_str).unwrap_or("");
        match ty {
            "marking-definition" => {
                if let Some(t) = marking_tlp(obj) {
                    markings.insert(id, t);
                }
            }
            "malware" => {
                if let Some(name) = obj.get("name").and_then(Value::as_str) {
                    malware_names.insert(id, name.trim());
                }
            }
            _ => {}
        }
        typed.push((i + 1, ty, obj));
    }
    let by_id: HashMap<&str, &Map<String, Value>> = typed
        .iter()
        .filter_map(|(_, _, o)| o.get("id").and_then(Value::as_str).map(|id| (id, *o)))
        .collect();

    // Relationships.
    let mut indicates: HashMap<&str, &str> = HashMap::new(); // indicator id → malware name
    let mut mitigates: Vec<(&str, &str)> = Vec::new(); // (course-of-action id, malware id)
    for (_, ty, o) in &typed {
        if *ty != "relationship" {
            continue;
        }
        let rel = o.get("relationship_type").and_then(Value::as_str);
        let src = o.get("source_ref").and_then(Value::as_str).unwrap_or("");
        let dst = o.get("target_ref").and_then(Value::as_str).unwrap_or("");
        match rel {
            Some("indicates") if src.starts_with("indicator--") => {
                if let Some(name) = malware_names.get(dst).filter(|n| !n.is_empty()) {
                    indicates.entry(src).or_insert(name);
                } else {
                    b.ignore("relationship");
                }
            }
            Some("mitigates")
                if src.starts_with("course-of-action--") && dst.starts_with("malware--") =>
            {
                mitigates.push((src, dst));
            }
            _ => b.ignore("relationship"),
        }
    }

    // Malware families → threats.
    let mut threat_of_malware: HashMap<&str, usize> = HashMap::new();
    for (n, ty, o) in &typed {
        if *ty != "malware" {
            continue;
        }
        if o.get("revoked").and_then(Value::as_bool) == Some(true) {
            b.ignore("malware (revoked)");
            continue;
        }
        if o.get("x_mitre_deprecated").and_then(Value::as_bool) == Some(true) {
            b.ignore("malware (deprecated)");
            continue;
        }
        if o.get("is_family").and_then(Value::as_bool) == Some(false) {
            b.ignore("malware (instance)");
            continue;
        }
        let id = o.get("id").and_then(Value::as_str).unwrap_or("");
        let name = o.get("name").and_then(Value::as_str).unwrap_or("");
        let mut aliases = strings(o.get("aliases"));
        aliases.extend(strings(o.get("x_mitre_aliases")));
        let refs: Vec<&str> = o
            .get("external_references")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|r| r.get("url").and_then(Value::as_str))
            .collect();
        let kind = kind_from_hints(strings(o.get("malware_types")), ThreatKind::Other);
        let description = o.get("description").and_then(Value::as_str).unwrap_or("");
        match imported_threat(name, kind, description, aliases, refs) {
            Ok(t) => {
                let tid = t.id.clone();
                let pos = if b.push_threat(t) {
                    Some(b.report.threats.len() - 1)
                } else {
                    // A duplicate id: course-of-action text goes to the threat kept.
                    b.report.threats.iter().position(|x| x.id == tid)
                };
                if let Some(pos) = pos {
                    threat_of_malware.insert(id, pos);
                }
            }
            Err(why) => b.skip(*n, format!("malware {id}: {why}")),
        }
    }
    for (coa, malware) in mitigates {
        let (Some(&pos), Some(c)) = (threat_of_malware.get(malware), by_id.get(coa)) else {
            b.ignore("relationship");
            continue;
        };
        let name = c.get("name").and_then(Value::as_str).unwrap_or("").trim();
        let desc = c
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim();
        let text = match (name.is_empty(), desc.is_empty()) {
            (false, false) => format!("{name}: {desc}"),
            (false, true) => name.to_string(),
            (true, false) => desc.to_string(),
            (true, true) => continue,
        };
        if let Some(t) = b.report.threats.get_mut(pos)
            && !t.playbook.contain.contains(&text)
        {
            t.playbook.contain.push(text);
        }
    }

    // Indicators, and counts of everything else.
    for (n, ty, o) in &typed {
        match *ty {
            "indicator" => indicator(b, *n, o, &markings, &indicates, threat),
            "malware" | "relationship" | "marking-definition" | "course-of-action" => {}
            other => b.ignore(other),
        }
    }
}

/// The TLP level a `marking-definition` object states, if any.
fn marking_tlp(o: &Map<String, Value>) -> Option<Tlp> {
    if o.get("definition_type").and_then(Value::as_str) == Some("tlp")
        && let Some(t) = o
            .get("definition")
            .and_then(|d| d.get("tlp"))
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
    {
        return Some(t);
    }
    if let Some(t) = o
        .get("extensions")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|e| e.values())
        .find_map(|e| e.get("tlp_2_0").and_then(Value::as_str))
        .and_then(|s| s.parse().ok())
    {
        return Some(t);
    }
    o.get("name")
        .and_then(Value::as_str)
        .filter(|n| n.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("tlp:")))
        .and_then(|n| n.parse().ok())
}

/// Strings of a JSON value that is a string or a list of strings.
fn strings(v: Option<&Value>) -> Vec<&str> {
    match v {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn indicator(
    b: &mut Builder,
    n: usize,
    o: &Map<String, Value>,
    markings: &HashMap<&str, Tlp>,
    indicates: &HashMap<&str, &str>,
    threat: Option<&str>,
) {
    let id = o.get("id").and_then(Value::as_str).unwrap_or("?");
    if o.get("revoked").and_then(Value::as_bool) == Some(true) {
        b.ignore("indicator (revoked)");
        return;
    }
    let pattern_type = o
        .get("pattern_type")
        .and_then(Value::as_str)
        .unwrap_or("stix");
    if pattern_type != "stix" {
        b.skip(
            n,
            format!("indicator {id}: pattern_type {pattern_type:?} is not supported"),
        );
        return;
    }
    let Some(pattern) = o.get("pattern").and_then(Value::as_str) else {
        b.skip(n, format!("indicator {id} has no pattern"));
        return;
    };
    let comps = match comparisons(pattern) {
        Ok(c) => c,
        Err(why) => {
            b.skip(
                n,
                format!("indicator {id}: invalid pattern {pattern:?}: {why}"),
            );
            return;
        }
    };
    let tlp = strings(o.get("object_marking_refs"))
        .into_iter()
        .filter_map(|r| markings.get(r).copied())
        .max();
    let confidence = o
        .get("confidence")
        .and_then(Value::as_u64)
        .filter(|c| *c <= 100)
        .and_then(|c| u8::try_from(c).ok());
    let time = |k: &str| o.get(k).and_then(Value::as_str).and_then(parse_time);
    let description = ["description", "name"].iter().find_map(|k| {
        o.get(*k)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    });
    let threat = indicates
        .get(id)
        .map(|s| s.to_string())
        .or_else(|| threat.map(str::to_string));
    for c in comps {
        let supported = observable_kind(&c.path);
        let (Some((want, family)), "=", false, Some(value)) =
            (supported, c.op.as_str(), c.negated, c.value.as_deref())
        else {
            let not = if c.negated { "NOT " } else { "" };
            let what = if supported.is_some() {
                "unsupported comparison"
            } else {
                "unsupported observable in"
            };
            b.skip(
                n,
                format!(
                    "indicator {id}: {what} {} {not}{} {}",
                    c.path_text, c.op, c.value_text
                ),
            );
            continue;
        };
        match canonicalize_as(want, value) {
            Ok((kind, canonical)) if family.is_none_or(|f| ip_family_ok(f, kind, &canonical)) => {
                let mut ind = ImportedIndicator::new(kind, canonical, None, threat.clone());
                ind.tlp = tlp;
                ind.confidence = confidence;
                ind.valid_from = time("valid_from");
                ind.valid_until = time("valid_until");
                ind.description = description.clone();
                b.push(ind);
            }
            Ok(_) => b.skip(
                n,
                format!(
                    "indicator {id}: {} {value:?} is of the wrong IP family",
                    c.path_text
                ),
            ),
            Err(e) => b.skip(n, format!("indicator {id}: {e}")),
        }
    }
}

/// `true` when a canonical address or network is of the IP family the observable names.
fn ip_family_ok(v6: bool, kind: IndicatorKind, canonical: &str) -> bool {
    match kind {
        IndicatorKind::Ipv4 => !v6,
        IndicatorKind::Ipv6 => v6,
        IndicatorKind::Cidr => canonical.contains(':') == v6,
        _ => false,
    }
}

/// The indicator kind to canonicalise a supported observable path as, with the IP family
/// (`Some(true)` for IPv6) the value must have.
fn observable_kind(path: &str) -> Option<(IndicatorKind, Option<bool>)> {
    let (object, prop) = path.split_once(':')?;
    let object = object.to_ascii_lowercase();
    match (object.as_str(), prop) {
        ("ipv4-addr", "value") => Some((IndicatorKind::Cidr, Some(false))),
        ("ipv6-addr", "value") => Some((IndicatorKind::Cidr, Some(true))),
        ("domain-name", "value") => Some((IndicatorKind::Domain, None)),
        ("url", "value") => Some((IndicatorKind::Url, None)),
        ("file", p) => {
            let hash = p.strip_prefix("hashes.")?;
            let key: String = hash
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .map(|c| c.to_ascii_lowercase())
                .collect();
            match key.as_str() {
                "md5" => Some((IndicatorKind::Md5, None)),
                "sha1" => Some((IndicatorKind::Sha1, None)),
                "sha256" => Some((IndicatorKind::Sha256, None)),
                _ => None,
            }
        }
        _ => None,
    }
}

/// One comparison expression of a STIX pattern: `path [NOT] op value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comparison {
    /// The object path with quotes removed from its segments: `file:hashes.SHA-256`.
    pub path: String,
    /// The object path as written.
    pub path_text: String,
    /// The operator: `=`, `!=`, `<`, `<=`, `>`, `>=`, or an upper-cased word (`MATCHES`,
    /// `LIKE`, `IN`, `ISSUBSET`, `ISSUPERSET`).
    pub op: String,
    /// `NOT` before the operator.
    pub negated: bool,
    /// The value when it is a plain quoted string (escapes resolved).
    pub value: Option<String>,
    /// The value as a short text for messages.
    pub value_text: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Open(char),
    Close(char),
    Comma,
    /// An object path (`type:prop...`): (unquoted, as written).
    Path(String, String),
    /// A quoted string; the char is the type prefix (`h`, `b`, `t`) or `'` for a plain string.
    Str(char, String),
    Num(String),
    Word(String),
    Op(&'static str),
}

/// Reads a `'...'` string starting at `cs[i] == '\''`; returns the value and the index after it.
fn lex_string(cs: &[char], mut i: usize) -> Result<(String, usize), String> {
    let mut s = String::new();
    i += 1;
    loop {
        match cs.get(i) {
            None => return Err("unterminated string".to_string()),
            Some('\\') => match cs.get(i + 1) {
                Some(c) => {
                    s.push(*c);
                    i += 2;
                }
                None => return Err("unterminated string".to_string()),
            },
            Some('\'') => return Ok((s, i + 1)),
            Some(c) => {
                s.push(*c);
                i += 1;
            }
        }
    }
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

fn lex(pattern: &str) -> Result<Vec<Tok>, String> {
    let cs: Vec<char> = pattern.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while let Some(&c) = cs.get(i) {
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        match c {
            '[' | '(' => {
                toks.push(Tok::Open(c));
                i += 1;
            }
            ']' | ')' => {
                toks.push(Tok::Close(c));
                i += 1;
            }
            ',' => {
                toks.push(Tok::Comma);
                i += 1;
            }
            '\'' => {
                let (s, next) = lex_string(&cs, i)?;
                toks.push(Tok::Str('\'', s));
                i = next;
            }
            '=' => {
                toks.push(Tok::Op("="));
                i += 1;
            }
            '!' if cs.get(i + 1) == Some(&'=') => {
                toks.push(Tok::Op("!="));
                i += 2;
            }
            '<' | '>' => {
                let eq = cs.get(i + 1) == Some(&'=');
                toks.push(Tok::Op(match (c, eq) {
                    ('<', true) => "<=",
                    ('<', false) => "<",
                    (_, true) => ">=",
                    (_, false) => ">",
                }));
                i += if eq { 2 } else { 1 };
            }
            c if c.is_ascii_digit()
                || ((c == '-' || c == '+') && cs.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                let start = i;
                i += 1;
                while cs.get(i).is_some_and(|c| c.is_ascii_digit() || *c == '.') {
                    i += 1;
                }
                toks.push(Tok::Num(cs[start..i].iter().collect()));
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = i;
                while cs.get(i).is_some_and(|c| is_word_char(*c)) {
                    i += 1;
                }
                let word: String = cs[start..i].iter().collect();
                if cs.get(i) == Some(&':') {
                    let (path, text, next) = lex_path(&cs, start, i)?;
                    toks.push(Tok::Path(path, text));
                    i = next;
                } else if word.len() == 1
                    && matches!(word.as_str(), "h" | "b" | "t")
                    && cs.get(i) == Some(&'\'')
                {
                    let (s, next) = lex_string(&cs, i)?;
                    toks.push(Tok::Str(word.chars().next().unwrap_or('\''), s));
                    i = next;
                } else {
                    toks.push(Tok::Word(word.to_ascii_uppercase()));
                }
            }
            other => return Err(format!("unexpected character {other:?}")),
        }
    }
    Ok(toks)
}

/// Reads the object path starting at `start` whose type ends at `colon`; returns (unquoted path,
/// path as written, index after it).
fn lex_path(cs: &[char], start: usize, colon: usize) -> Result<(String, String, usize), String> {
    let mut path: String = cs[start..=colon].iter().collect();
    let mut i = colon + 1;
    loop {
        match cs.get(i) {
            Some(&c) if is_word_char(c) || c == '.' => {
                path.push(c);
                i += 1;
            }
            // A list index: `[*]`, `[0]`.
            Some('[') => {
                let close = cs[i..]
                    .iter()
                    .position(|c| *c == ']')
                    .ok_or("unclosed '[' in object path")?;
                path.extend(&cs[i..=i + close]);
                i += close + 1;
            }
            // A quoted path segment: `hashes.'SHA-256'` / `hashes."SHA-256"`.
            Some(&q) if (q == '\'' || q == '"') && path.ends_with('.') => {
                let close = cs[i + 1..]
                    .iter()
                    .position(|c| *c == q)
                    .ok_or("unterminated quoted path segment")?;
                path.extend(&cs[i + 1..i + 1 + close]);
                i += close + 2;
            }
            _ => break,
        }
    }
    let text: String = cs[start..i].iter().collect();
    if path.ends_with(':') {
        return Err(format!("empty property in object path {text:?}"));
    }
    Ok((path, text, i))
}

fn tok_text(t: &Tok) -> String {
    match t {
        Tok::Open(c) | Tok::Close(c) => c.to_string(),
        Tok::Comma => ",".to_string(),
        Tok::Path(_, text) => text.clone(),
        Tok::Str('\'', s) => format!("'{s}'"),
        Tok::Str(p, s) => format!("{p}'{s}'"),
        Tok::Num(s) | Tok::Word(s) => s.clone(),
        Tok::Op(o) => (*o).to_string(),
    }
}

/// Every comparison expression in a STIX pattern, in order, whatever joins them. `Err` for a
/// pattern that does not tokenize, has unbalanced brackets, or holds no comparison.
pub fn comparisons(pattern: &str) -> Result<Vec<Comparison>, String> {
    let toks = lex(pattern)?;
    let mut depth: Vec<char> = Vec::new();
    for t in &toks {
        match t {
            Tok::Open(c) => depth.push(*c),
            Tok::Close(c) => {
                let want = if *c == ']' { '[' } else { '(' };
                if depth.pop() != Some(want) {
                    return Err(format!("unbalanced {c:?}"));
                }
            }
            _ => {}
        }
    }
    if !depth.is_empty() {
        return Err("unclosed bracket".to_string());
    }
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(t) = toks.get(i) {
        let Tok::Path(path, path_text) = t else {
            i += 1;
            continue;
        };
        let mut j = i + 1;
        let negated = matches!(toks.get(j), Some(Tok::Word(w)) if w == "NOT");
        if negated {
            j += 1;
        }
        let op = match toks.get(j) {
            Some(Tok::Op(o)) => (*o).to_string(),
            Some(Tok::Word(w)) => w.clone(),
            _ => return Err(format!("no operator after {path_text}")),
        };
        j += 1;
        let (value, value_text) = match toks.get(j) {
            Some(Tok::Str('\'', s)) => {
                j += 1;
                (Some(s.clone()), format!("{s:?}"))
            }
            Some(Tok::Open('(')) => {
                // A set: `IN ('a', 'b')`.
                let start = j;
                while toks.get(j).is_some_and(|t| *t != Tok::Close(')')) {
                    j += 1;
                }
                j += 1;
                let text: Vec<String> = toks[start..j.min(toks.len())]
                    .iter()
                    .map(tok_text)
                    .collect();
                (None, text.join(" "))
            }
            Some(t @ (Tok::Str(..) | Tok::Num(_) | Tok::Word(_))) => {
                j += 1;
                (None, tok_text(t))
            }
            _ => return Err(format!("no value after {path_text} {op}")),
        };
        let value_text = if value_text.chars().count() > 120 {
            value_text.chars().take(117).chain("...".chars()).collect()
        } else {
            value_text
        };
        out.push(Comparison {
            path: path.clone(),
            path_text: path_text.clone(),
            op,
            negated,
            value,
            value_text,
        });
        i = j;
    }
    if out.is_empty() {
        return Err("no comparison".to_string());
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::super::fixtures::{MITRE, OASIS, find, text};
    use super::super::{Format, detect, parse, validate_imported};
    use super::*;
    use std::collections::HashSet;

    fn values(r: &super::super::ImportReport) -> Vec<(IndicatorKind, &str)> {
        r.indicators
            .iter()
            .map(|i| (i.kind, i.value.as_str()))
            .collect()
    }

    #[test]
    fn stix_oasis_examples_parse() {
        let mut measured = Vec::new();
        for f in OASIS {
            let body = text(f);
            assert_eq!(detect(&body), Format::Stix, "{}", f.0);
            let r = parse(Format::Stix, &body, None);
            assert!(
                r.skipped.iter().all(|(n, _)| *n > 0),
                "{}: {:?}",
                f.0,
                r.skipped
            );
            for t in &r.threats {
                assert_eq!(validate_imported(t), Ok(()), "{}", f.0);
            }
            // Independently: every indicator object gives an indicator or a skip.
            let v: Value = serde_json::from_str(&body).unwrap();
            let objects = v["objects"]
                .as_array()
                .cloned()
                .unwrap_or_else(|| vec![v.clone()]);
            let with_indicator: HashSet<usize> = r.skipped.iter().map(|(n, _)| *n).collect();
            let indicator_objects = objects.iter().filter(|o| o["type"] == "indicator").count();
            assert!(
                r.indicators.len() + r.duplicates + with_indicator.len() >= indicator_objects,
                "{}",
                f.0
            );
            let short = f.0.rsplit('/').next().unwrap();
            measured.push((
                short,
                r.indicators.len(),
                r.threats.len(),
                r.skipped_count,
                r.duplicates,
            ));
            eprintln!(
                "{}: {} indicators, {} threats, {} skipped, {} duplicates, ignored {:?}",
                f.0,
                r.indicators.len(),
                r.threats.len(),
                r.skipped_count,
                r.duplicates,
                r.ignored
            );
        }
        // (file, indicators, threats, skipped, duplicates)
        assert_eq!(
            measured,
            [
                ("indicator-for-c2-ip-address.json", 1, 0, 0, 0),
                ("indicator-to-campaign-relationship.json", 1, 0, 0, 0),
                ("indicators-for-C2-with-COA.json", 2, 1, 0, 0),
                ("infrastructure.json", 0, 2, 0, 0),
                ("interop-objectmarking-test.json", 0, 0, 0, 0),
                ("malicious-email-indicator-with-attachment.json", 0, 0, 2, 0),
                ("apt1.json", 10, 1, 4, 0),
                ("poisonivy.json", 42, 24, 3, 22),
            ]
        );
    }

    #[test]
    fn stix_c2_ip_address() {
        let r = parse(
            Format::Stix,
            &find(&OASIS, "indicator-for-c2-ip-address.json"),
            Some("fallback"),
        );
        assert_eq!(values(&r), [(IndicatorKind::Ipv4, "10.0.0.0")]);
        let i = &r.indicators[0];
        assert_eq!(i.valid_from, Some("2014-05-08T09:00:00Z".parse().unwrap()));
        assert_eq!(i.valid_until, None);
        assert_eq!(
            i.description.as_deref(),
            Some("Test description C2 channel.")
        );
        assert_eq!(i.threat.as_deref(), Some("fallback"));
        assert_eq!((i.tlp, i.confidence), (None, None));
        assert!(r.threats.is_empty() && r.skipped.is_empty());
    }

    #[test]
    fn stix_indicators_with_course_of_action() {
        let r = parse(
            Format::Stix,
            &find(&OASIS, "indicators-for-C2-with-COA.json"),
            Some("fallback"),
        );
        assert_eq!(
            values(&r),
            [
                (IndicatorKind::Ipv4, "10.0.0.0"),
                (
                    IndicatorKind::Sha256,
                    "ef537f25c895bfa782526529a9b63d97aa631564d5d789c2b765448c8635fb6c"
                )
            ]
        );
        assert!(
            r.indicators
                .iter()
                .all(|i| i.threat.as_deref() == Some("Poison Ivy"))
        );
        assert_eq!(r.threats.len(), 1);
        let t = &r.threats[0];
        assert_eq!((t.id.as_str(), t.kind), ("poison-ivy", ThreatKind::Rat));
        assert_eq!(t.description, "variant");
        assert_eq!(
            t.playbook.contain,
            [
                "Add TCP port 80 Filter Rule to the existing Block UDP 1434 Filter: This is how to \
              add a filter rule to block inbound access to TCP port 80 to the existing UDP 1434 \
              filter ..."
            ]
        );
        assert!(t.playbook.clean.is_empty());
        assert_eq!(validate_imported(t), Ok(()));
        assert_eq!(r.ignored.get("identity"), Some(&1));
        assert!(r.skipped.is_empty());
    }

    #[test]
    fn stix_threat_reports() {
        let r = parse(Format::Stix, &find(&OASIS, "apt1.json"), None);
        let kinds: Vec<IndicatorKind> = r.indicators.iter().map(|i| i.kind).collect();
        use IndicatorKind::*;
        assert_eq!(
            kinds,
            [
                Cidr, Cidr, Cidr, Cidr, Domain, Domain, Domain, Md5, Md5, Md5
            ]
        );
        assert_eq!(r.indicators[0].value, "223.166.0.0/15");
        // Two x509 comparisons in each of two indicators.
        assert_eq!(r.skipped_count, 4, "{:?}", r.skipped);
        assert!(
            r.skipped
                .iter()
                .all(|(_, w)| w.contains("x509-certificate:"))
        );
        // Only AURIGA is a family; the five instances are counted.
        let names: Vec<&str> = r.threats.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["AURIGA"]);
        assert_eq!(r.ignored.get("malware (instance)"), Some(&5));
        assert_eq!(r.ignored.get("threat-actor"), Some(&5));

        let r = parse(Format::Stix, &find(&OASIS, "poisonivy.json"), None);
        assert!(
            r.skipped
                .iter()
                .any(|(_, w)| w.contains("domain autuo.xicp.net"))
        );
        assert!(r.skipped.iter().any(|(_, w)| w.contains("file:name")));
        assert!(
            r.indicators
                .iter()
                .any(|i| i.value == "www.webserver.dynssl.com")
        );
        assert!(r.duplicates > 0);
        assert_eq!(r.threats.len(), 24);
        // Two indicators indicate no malware (one only a campaign).
        let threat_of = |v: &str| {
            let i = r.indicators.iter().find(|i| i.value == v).unwrap();
            i.threat.as_deref()
        };
        assert_eq!(threat_of("www.webserver.freetcp.com"), None);
        assert_eq!(threat_of("60.10.1.115"), None);
        assert!(threat_of("www.webserver.dynssl.com").is_some());

        let r = parse(
            Format::Stix,
            &find(&OASIS, "malicious-email-indicator-with-attachment.json"),
            None,
        );
        assert!(r.indicators.is_empty());
        assert_eq!(r.skipped_count, 2);
        assert!(
            r.skipped.iter().all(|(_, w)| w.contains("MATCHES")),
            "{:?}",
            r.skipped
        );
    }

    #[test]
    fn stix_mitre_attack_bundles() {
        let mut measured = Vec::new();
        for f in MITRE {
            let body = text(f);
            assert_eq!(detect(&body), Format::Stix);
            let r = parse(Format::Stix, &body, None);
            let v: Value = serde_json::from_str(&body).unwrap();
            let families = v["objects"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|o| {
                    o["type"] == "malware"
                        && o["revoked"] != true
                        && o["x_mitre_deprecated"] != true
                        && o["is_family"] != false
                })
                .count();
            assert_eq!(r.threats.len() + r.duplicates, families, "{}", f.0);
            assert!(r.indicators.is_empty() && r.skipped.is_empty(), "{}", f.0);
            for t in &r.threats {
                assert_eq!(validate_imported(t), Ok(()));
                assert!(
                    t.references
                        .iter()
                        .any(|u| u.starts_with("https://attack.mitre.org/"))
                );
            }
            measured.push((
                f.0,
                r.threats.len(),
                r.ignored.get("attack-pattern").copied(),
            ));
        }
        assert_eq!(
            measured,
            [
                ("stix/mitre-attack/ics-attack-18.1.json.gz", 23, Some(95)),
                (
                    "stix/mitre-attack/mobile-attack-17.1.json.gz",
                    116,
                    Some(188)
                ),
            ]
        );
        let r = parse(Format::Stix, &text(MITRE[0]), None);
        let ekans = r.threats.iter().find(|t| t.id == "ekans").unwrap();
        assert_eq!(ekans.aliases, ["SNAKEHOSE"]);
    }

    #[test]
    fn stix_tlp_markings_and_fields() {
        let doc = serde_json::json!({"type": "bundle", "objects": [
            {"type": "marking-definition", "id": "marking-definition--custom-1",
             "definition_type": "tlp", "definition": {"tlp": "green"}},
            {"type": "indicator", "id": "indicator--1", "pattern": "[domain-name:value = 'a.example']",
             "object_marking_refs": ["marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9"],
             "confidence": 85, "valid_from": "2024-01-01T00:00:00Z", "valid_until": "2024-02-01T00:00:00Z",
             "name": "only a name"},
            {"type": "indicator", "id": "indicator--2", "pattern": "[domain-name:value = 'b.example']",
             "object_marking_refs": ["marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da",
                                     "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003"],
             "confidence": 300},
            {"type": "indicator", "id": "indicator--3", "pattern": "[domain-name:value = 'c.example']",
             "object_marking_refs": ["marking-definition--custom-1"]},
            {"type": "indicator", "id": "indicator--4", "pattern": "[domain-name:value = 'd.example']",
             "object_marking_refs": ["marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed"]},
            {"type": "indicator", "id": "indicator--5", "pattern": "[domain-name:value = 'e.example']",
             "object_marking_refs": ["marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487"]},
            {"type": "indicator", "id": "indicator--6", "pattern_type": "yara", "pattern": "rule x {}"},
            {"type": "indicator", "id": "indicator--7", "pattern": "[domain-name:value = 'f.example'"},
            {"type": "indicator", "id": "indicator--8"},
            "not an object",
            {"type": "indicator", "id": "indicator--9", "pattern": "[ipv4-addr:value = '2001:db8::1']"},
            {"type": "indicator", "id": "indicator--10", "revoked": true, "pattern": "[url:value = 'http://x.example/']"},
        ]})
        .to_string();
        let r = parse(Format::Stix, &doc, None);
        let tlps: Vec<Option<Tlp>> = r.indicators.iter().map(|i| i.tlp).collect();
        assert_eq!(
            tlps,
            [
                Some(Tlp::Clear),
                Some(Tlp::AmberStrict),
                Some(Tlp::Green),
                Some(Tlp::Red),
                Some(Tlp::Clear)
            ]
        );
        let a = &r.indicators[0];
        assert_eq!(a.confidence, Some(85));
        assert_eq!(a.valid_until, Some("2024-02-01T00:00:00Z".parse().unwrap()));
        assert_eq!(a.description.as_deref(), Some("only a name"));
        assert_eq!(r.indicators[1].confidence, None);
        let mut skipped = r.skipped.clone();
        skipped.sort();
        let lines: Vec<usize> = skipped.iter().map(|(n, _)| *n).collect();
        assert_eq!(lines, [7, 8, 9, 10, 11], "{:?}", r.skipped);
        assert!(skipped[0].1.contains("\"yara\""));
        assert!(skipped[3].1.contains("not a STIX object"));
        assert!(skipped[4].1.contains("wrong IP family"));
        assert_eq!(r.ignored.get("indicator (revoked)"), Some(&1));
        for bad in [
            "{}",
            "[]",
            "{\"type\": \"bundle\", \"objects\": 4}",
            "{\"type\": 3}",
        ] {
            let r = parse(Format::Stix, bad, None);
            assert_eq!(
                r.skipped.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
                [0],
                "{bad}"
            );
        }
        let r = parse(Format::Stix, "{\"type\": \"bundle\"}", None);
        assert_eq!(r, Default::default());
    }

    fn eq_values(pattern: &str) -> Vec<(String, String)> {
        comparisons(pattern)
            .unwrap()
            .into_iter()
            .map(|c| (c.path, c.value.unwrap_or_default()))
            .collect()
    }

    #[test]
    fn stix_pattern_tokenizer() {
        let p = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(
            eq_values(
                "[file:hashes.'SHA-256' = 'aa' OR file:hashes.\"SHA-1\" = 'bb'] AND [file:hashes.MD5 = 'cc']"
            ),
            [
                p("file:hashes.SHA-256", "aa"),
                p("file:hashes.SHA-1", "bb"),
                p("file:hashes.MD5", "cc")
            ]
        );
        assert_eq!(
            eq_values(r"[url:value = 'http://x.example/it\'s]here' AND url:value='b\\c']"),
            [
                p("url:value", "http://x.example/it's]here"),
                p("url:value", r"b\c")
            ]
        );
        let c = comparisons(
            "([ipv4-addr:value = '1.2.3.4'] FOLLOWEDBY [network-traffic:dst_ref.value NOT = '5.6.7.8']) \
             WITHIN 300 SECONDS REPEATS 2 TIMES START t'2016-06-01T00:00:00Z' STOP t'2016-07-01T00:00:00Z'",
        )
        .unwrap();
        assert_eq!(c.len(), 2);
        assert!(c[1].negated && c[1].op == "=");
        let c = comparisons("[email-message:body_multipart[*].body_raw_ref.name MATCHES '^x\\.exe$' AND domain-name:value IN ('a.example', 'b.example') AND ipv4-addr:value != '1.1.1.1']").unwrap();
        let ops: Vec<&str> = c.iter().map(|c| c.op.as_str()).collect();
        assert_eq!(ops, ["MATCHES", "IN", "!="]);
        assert_eq!(
            c[0].path,
            "email-message:body_multipart[*].body_raw_ref.name"
        );
        assert!(c[1].value.is_none() && c[1].value_text.contains("a.example"));
        for bad in [
            "",
            "[",
            "]",
            "[ipv4-addr:value = '1.2.3.4'",
            "[ipv4-addr:value = '1.2.3.4)]",
            "[x:y = 'unterminated]",
            "[ipv4-addr:value]",
            "[ipv4-addr:value =]",
            "[a:b = 'c'] @",
            "[file:hashes.'SHA-256 = 'x']",
        ] {
            assert!(comparisons(bad).is_err(), "{bad}");
        }
        // Supported observables, whatever the case of hash names and object types.
        assert_eq!(
            observable_kind("file:hashes.sha256"),
            Some((IndicatorKind::Sha256, None))
        );
        assert_eq!(
            observable_kind("file:hashes.SHA-1"),
            Some((IndicatorKind::Sha1, None))
        );
        assert_eq!(
            observable_kind("IPv4-Addr:value"),
            Some((IndicatorKind::Cidr, Some(false)))
        );
        assert_eq!(observable_kind("file:hashes.SHA-512"), None);
        assert_eq!(observable_kind("file:name"), None);
        assert_eq!(observable_kind("email-addr:value"), None);
    }

    #[test]
    fn stix_truncations_never_panic() {
        let body = find(&OASIS, "indicators-for-C2-with-COA.json");
        for end in 0..body.len() {
            if body.is_char_boundary(end) {
                let _ = parse(Format::Stix, &body[..end], None);
                let _ = comparisons(&body[..end]);
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn pattern_tokenizer_never_panics(s in "[\\[\\]()'\"\\\\ a-zA-Z0-9:.=!<>*,_-]{0,80}") {
            let _ = comparisons(&s);
            let doc = serde_json::json!({"type": "bundle", "objects": [
                {"type": "indicator", "id": "indicator--1", "pattern": s}]}).to_string();
            let r = parse(Format::Stix, &doc, None);
            proptest::prop_assert!(r.skipped.iter().all(|(n, _)| *n == 1));
        }
    }
}
