//! Authentication: API tokens → the calling member.
//!
//! Tokens are 32 random bytes shown once as `tf_` + 64 hex digits; only their SHA-256 is stored.
//! A request presents one as `Authorization: Bearer <token>` (or HTTP Basic with the token as
//! password, for TAXII clients). The in-memory table maps token hashes to members; it is rebuilt
//! from the state store after every change and swapped in atomically, so a request never takes a
//! lock. The hash found in the table is compared to the presented one in constant time.
//!
//! Missing or unknown token → 401; the member's rights are checked by each route (403).

use crate::error::ApiError;
use crate::telemetry;
use arc_swap::ArcSwap;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use subtle::ConstantTimeEq;
use threatfeed_core::{Org, OrgKind, TokenRecord, Viewer};
use threatfeed_store::state::StateStore;

/// The authenticated member behind a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The member.
    pub org: Arc<Org>,
    /// Its rights, for the privacy model.
    pub viewer: Arc<Viewer>,
    /// The token used.
    pub token_id: String,
}

impl Caller {
    /// Whether the caller is an admin.
    pub fn is_admin(&self) -> bool {
        self.org.kind == OrgKind::Admin
    }

    /// Refuses non-admins with 403.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "this route needs an admin token; organisation {:?} is of kind {}",
                self.org.name, self.org.kind
            )))
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    hash: [u8; 32],
    caller: Caller,
}

/// The in-memory directory: members by id and active tokens by hash.
#[derive(Debug, Clone, Default)]
struct Directory {
    orgs: HashMap<String, Arc<Org>>,
    by_hash: HashMap<[u8; 32], Entry>,
}

/// The token table.
#[derive(Debug, Default)]
pub struct Auth {
    dir: ArcSwap<Directory>,
    /// Token id and org id of the `THREATFEED_ADMIN_TOKEN`, which is valid without being stored.
    env_admin: ArcSwap<Option<([u8; 32], String)>>,
    /// Serialises updates (readers never wait).
    write: std::sync::Mutex<()>,
}

/// Hashes a presented token.
pub fn hash_token(secret: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(secret.as_bytes());
    h.finalize().into()
}

/// Creates a new random token: `(secret, hex sha-256)`.
pub fn new_token() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = format!("tf_{}", hex::encode(bytes));
    let hash = hex::encode(hash_token(&secret));
    (secret, hash)
}

/// A fresh random id with a prefix (`org_…`, `tok_…`).
pub fn new_id(prefix: &str) -> String {
    let mut bytes = [0u8; 8];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}_{}", hex::encode(bytes))
}

fn entry_for(t: &TokenRecord, org: &Arc<Org>) -> Option<Entry> {
    let mut hash = [0u8; 32];
    if hex::decode_to_slice(&t.hash, &mut hash).is_err() {
        tracing::warn!(token_id = %t.id, "stored token hash is not hex; ignoring it");
        return None;
    }
    let caller = Caller {
        viewer: Arc::new(Viewer::from_org(org)),
        org: org.clone(),
        token_id: t.id.clone(),
    };
    Some(Entry { hash, caller })
}

impl Auth {
    /// Declares the admin token given by the environment (valid for `admin_org_id`).
    pub fn set_env_admin(&self, secret: &str, admin_org_id: &str) {
        self.env_admin.store(Arc::new(Some((
            hash_token(secret),
            admin_org_id.to_string(),
        ))));
    }

    fn update(&self, f: impl FnOnce(&mut Directory)) {
        let _guard = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let mut dir = Directory::clone(&self.dir.load());
        f(&mut dir);
        self.dir.store(Arc::new(dir));
    }

    /// Rebuilds the directory from the state store (at start-up).
    pub fn reload(&self, state: &StateStore) -> Result<(), ApiError> {
        let orgs: HashMap<String, Arc<Org>> = state
            .orgs()
            .map_err(|e| ApiError::internal("loading organisations", e))?
            .into_iter()
            .map(|o| (o.id.clone(), Arc::new(o)))
            .collect();
        let mut by_hash = HashMap::new();
        for t in state
            .tokens()
            .map_err(|e| ApiError::internal("loading tokens", e))?
        {
            if t.revoked.is_some() {
                continue;
            }
            if let Some(e) = orgs.get(&t.org_id).and_then(|org| entry_for(&t, org)) {
                by_hash.insert(e.hash, e);
            }
        }
        if let Some((hash, org_id)) = self.env_admin.load().as_ref().clone()
            && let Some(org) = orgs.get(&org_id)
        {
            let caller = Caller {
                viewer: Arc::new(Viewer::from_org(org)),
                org: org.clone(),
                token_id: "tok_env".to_string(),
            };
            by_hash.insert(hash, Entry { hash, caller });
        }
        self.update(|d| *d = Directory { orgs, by_hash });
        Ok(())
    }

    /// Activates a stored token.
    pub fn put_token(&self, t: &TokenRecord) {
        self.update(|d| {
            if let Some(e) = d.orgs.get(&t.org_id).and_then(|org| entry_for(t, org)) {
                d.by_hash.insert(e.hash, e);
            }
        });
    }

    /// Deactivates a token by id.
    pub fn revoke_token(&self, token_id: &str) {
        self.update(|d| d.by_hash.retain(|_, e| e.caller.token_id != token_id));
    }

    /// Adds a new member unless one with the same name (case-insensitive) exists; returns
    /// whether it was added. Check and insert are one step, so two racing creates cannot both win.
    pub fn add_org_if_new_name(&self, org: &Org) -> bool {
        let mut added = false;
        self.update(|d| {
            if !d
                .orgs
                .values()
                .any(|o| o.name.eq_ignore_ascii_case(&org.name))
            {
                d.orgs.insert(org.id.clone(), Arc::new(org.clone()));
                added = true;
            }
        });
        added
    }

    /// Forgets a member (used to undo [`Auth::add_org_if_new_name`] when storing fails).
    pub fn remove_org(&self, org_id: &str) {
        self.update(|d| {
            d.orgs.remove(org_id);
            d.by_hash.retain(|_, e| e.caller.org.id != org_id);
        });
    }

    /// Authenticates a request's headers.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let Some(value) = headers.get(AUTHORIZATION) else {
            telemetry::auth_failed("missing");
            return Err(ApiError::Unauthorized(
                "missing Authorization header (expected: Bearer <token>)".into(),
            ));
        };
        let Ok(value) = value.to_str() else {
            telemetry::auth_failed("malformed");
            return Err(ApiError::Unauthorized(
                "malformed Authorization header".into(),
            ));
        };
        let secret = parse_authorization(value).ok_or_else(|| {
            telemetry::auth_failed("malformed");
            ApiError::Unauthorized(
                "malformed Authorization header (expected: Bearer <token> or Basic with the token as password)"
                    .into(),
            )
        })?;
        self.authenticate_secret(&secret)
    }

    /// Authenticates a bare token.
    pub fn authenticate_secret(&self, secret: &str) -> Result<Caller, ApiError> {
        let presented = hash_token(secret.trim());
        let dir = self.dir.load();
        match dir.by_hash.get(&presented) {
            Some(entry) if bool::from(entry.hash.ct_eq(&presented)) => Ok(entry.caller.clone()),
            _ => {
                telemetry::auth_failed("unknown");
                Err(ApiError::Unauthorized("invalid or revoked token".into()))
            }
        }
    }
}

/// Extracts the secret from `Bearer <t>` or `Basic base64(user:t)`.
fn parse_authorization(value: &str) -> Option<String> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        (!rest.is_empty()).then(|| rest.to_string())
    } else if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64_decode(rest)?;
        let text = String::from_utf8(decoded).ok()?;
        let (_, password) = text.split_once(':')?;
        (!password.is_empty()).then(|| password.to_string())
    } else {
        None
    }
}

/// Standard base64 (RFC 4648 §4) decoding, padding optional.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0u32;
    for &c in s.trim_end_matches('=').as_bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_schemes() {
        assert_eq!(parse_authorization("Bearer abc").as_deref(), Some("abc"));
        assert_eq!(parse_authorization("bearer  abc ").as_deref(), Some("abc"));
        // "user:tf_x" in base64
        assert_eq!(
            parse_authorization("Basic dXNlcjp0Zl94").as_deref(),
            Some("tf_x")
        );
        assert_eq!(parse_authorization("Basic !!!"), None);
        assert_eq!(parse_authorization("Token abc"), None);
        assert_eq!(parse_authorization("Bearer"), None);
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let (a, ha) = new_token();
        let (b, _) = new_token();
        assert_ne!(a, b);
        assert!(a.starts_with("tf_") && a.len() == 67);
        assert_eq!(ha, hex::encode(hash_token(&a)));
    }
}
