//! The member state store: organisations, API tokens and a few named settings, in one redb
//! file, `<dir>/state.redb`.
//!
//! Tables: `orgs` (org id → [`Org`] as JSON), `tokens` (token id → [`TokenRecord`] as JSON),
//! `token_by_hash` (hex SHA-256 of the secret → token id), `meta` (free string settings) and
//! `schema` (`format_version`). Each method is one transaction, committed with
//! `Durability::Immediate` before it returns.
//!
//! Invariants: `token_by_hash` holds exactly one entry per stored token, pointing at it (two
//! tokens never share a hash: [`StateStore::put_token`] refuses it); a revoked token keeps its
//! first revocation time; a file with an unknown `format_version` is refused on open.

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};
use threatfeed_core::org::{Org, TokenRecord};

/// The state file format this build reads and writes.
pub const STATE_FORMAT_VERSION: u64 = 1;

const ORGS: TableDefinition<&str, &str> = TableDefinition::new("orgs");
const TOKENS: TableDefinition<&str, &str> = TableDefinition::new("tokens");
const TOKEN_BY_HASH: TableDefinition<&str, &str> = TableDefinition::new("token_by_hash");
const META: TableDefinition<&str, &str> = TableDefinition::new("meta");
const INDICATORS: TableDefinition<&str, &str> = TableDefinition::new("indicators");
const SCHEMA: TableDefinition<&str, u64> = TableDefinition::new("schema");

/// A failure of the state store. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The directory could not be created.
    #[error("state store {path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// redb reported an error.
    #[error("state store {path}: redb: {source}")]
    Db {
        /// The database file.
        path: PathBuf,
        /// The redb error.
        #[source]
        source: redb::Error,
    },
    /// A stored value is not the JSON of its type, or a value could not be serialised.
    #[error("state store {path}: {what}: {source}")]
    Json {
        /// The database file.
        path: PathBuf,
        /// Which value (e.g. `org org_0123456789abcdef`).
        what: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// The file was written by a build with another format.
    #[error(
        "state store {path}: format version {found} is not supported (this build reads version {supported})"
    )]
    UnsupportedFormat {
        /// The database file.
        path: PathBuf,
        /// Version found.
        found: u64,
        /// Version this build supports.
        supported: u64,
    },
    /// Another token already has this secret hash.
    #[error("state store {path}: token {token} has the same secret hash as token {existing}")]
    HashInUse {
        /// The database file.
        path: PathBuf,
        /// The token being stored.
        token: String,
        /// The token that holds the hash.
        existing: String,
    },
    /// The hash index points at a token that does not exist.
    #[error("state store {path}: corrupt: {detail}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

/// Organisations, tokens and settings, persisted in `<dir>/state.redb`.
pub struct StateStore {
    path: PathBuf,
    db: Database,
}

impl StateStore {
    /// Opens (creating if needed) `<dir>/state.redb`.
    pub fn open(dir: &Path) -> Result<StateStore, StateError> {
        std::fs::create_dir_all(dir).map_err(|source| StateError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join("state.redb");
        let db = Database::create(&path).map_err(|e| db_err(&path, e))?;
        let store = StateStore { path, db };
        store.init()?;
        Ok(store)
    }

    fn err(&self, e: impl Into<redb::Error>) -> StateError {
        db_err(&self.path, e)
    }

    fn init(&self) -> Result<(), StateError> {
        let txn = self.write()?;
        {
            for table in [ORGS, TOKENS, TOKEN_BY_HASH, META, INDICATORS] {
                txn.open_table(table).map_err(|e| self.err(e))?;
            }
            let mut schema = txn.open_table(SCHEMA).map_err(|e| self.err(e))?;
            let found = schema
                .get("format_version")
                .map_err(|e| self.err(e))?
                .map(|g| g.value());
            match found {
                None => {
                    schema
                        .insert("format_version", STATE_FORMAT_VERSION)
                        .map_err(|e| self.err(e))?;
                }
                Some(STATE_FORMAT_VERSION) => {}
                Some(found) => {
                    return Err(StateError::UnsupportedFormat {
                        path: self.path.clone(),
                        found,
                        supported: STATE_FORMAT_VERSION,
                    });
                }
            }
        }
        self.commit(txn)
    }

    fn write(&self) -> Result<WriteTransaction, StateError> {
        let mut txn = self.db.begin_write().map_err(|e| self.err(e))?;
        txn.set_durability(redb::Durability::Immediate)
            .map_err(|e| self.err(e))?;
        Ok(txn)
    }

    fn commit(&self, txn: WriteTransaction) -> Result<(), StateError> {
        txn.commit().map_err(|e| self.err(e))
    }

    fn encode_json<T: Serialize>(&self, what: &str, v: &T) -> Result<String, StateError> {
        serde_json::to_string(v).map_err(|source| StateError::Json {
            path: self.path.clone(),
            what: what.to_string(),
            source,
        })
    }

    fn parse_json<T: DeserializeOwned>(&self, what: &str, s: &str) -> Result<T, StateError> {
        serde_json::from_str(s).map_err(|source| StateError::Json {
            path: self.path.clone(),
            what: what.to_string(),
            source,
        })
    }

    fn get<T: DeserializeOwned>(
        &self,
        table: TableDefinition<&str, &str>,
        key: &str,
        what: &str,
    ) -> Result<Option<T>, StateError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = txn.open_table(table).map_err(|e| self.err(e))?;
        match t.get(key).map_err(|e| self.err(e))? {
            None => Ok(None),
            Some(v) => Ok(Some(self.parse_json(&format!("{what} {key}"), v.value())?)),
        }
    }

    fn all<T: DeserializeOwned>(
        &self,
        table: TableDefinition<&str, &str>,
        what: &str,
    ) -> Result<Vec<T>, StateError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = txn.open_table(table).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for item in t.iter().map_err(|e| self.err(e))? {
            let (k, v) = item.map_err(|e| self.err(e))?;
            out.push(self.parse_json(&format!("{what} {}", k.value()), v.value())?);
        }
        Ok(out)
    }

    /// Inserts or replaces an organisation (by id).
    pub fn put_org(&self, org: &Org) -> Result<(), StateError> {
        let json = self.encode_json(&format!("org {}", org.id), org)?;
        let txn = self.write()?;
        txn.open_table(ORGS)
            .map_err(|e| self.err(e))?
            .insert(org.id.as_str(), json.as_str())
            .map_err(|e| self.err(e))?;
        self.commit(txn)
    }

    /// Every organisation, by id.
    pub fn orgs(&self) -> Result<Vec<Org>, StateError> {
        self.all(ORGS, "org")
    }

    /// The organisation `id`, if stored.
    pub fn org(&self, id: &str) -> Result<Option<Org>, StateError> {
        self.get(ORGS, id, "org")
    }

    /// Inserts or replaces a token (by id) and indexes it by hash. Refuses a hash that another
    /// token already has.
    pub fn put_token(&self, t: &TokenRecord) -> Result<(), StateError> {
        let json = self.encode_json(&format!("token {}", t.id), t)?;
        let txn = self.write()?;
        {
            let mut tokens = txn.open_table(TOKENS).map_err(|e| self.err(e))?;
            let mut by_hash = txn.open_table(TOKEN_BY_HASH).map_err(|e| self.err(e))?;
            let owner = by_hash
                .get(t.hash.as_str())
                .map_err(|e| self.err(e))?
                .map(|g| g.value().to_string());
            if let Some(existing) = owner.filter(|o| *o != t.id) {
                return Err(StateError::HashInUse {
                    path: self.path.clone(),
                    token: t.id.clone(),
                    existing,
                });
            }
            let old = tokens
                .insert(t.id.as_str(), json.as_str())
                .map_err(|e| self.err(e))?
                .map(|g| g.value().to_string());
            if let Some(old) = old {
                let old: TokenRecord = self.parse_json(&format!("token {}", t.id), &old)?;
                if old.hash != t.hash {
                    by_hash.remove(old.hash.as_str()).map_err(|e| self.err(e))?;
                }
            }
            by_hash
                .insert(t.hash.as_str(), t.id.as_str())
                .map_err(|e| self.err(e))?;
        }
        self.commit(txn)
    }

    /// Every token, by id (revoked ones included).
    pub fn tokens(&self) -> Result<Vec<TokenRecord>, StateError> {
        self.all(TOKENS, "token")
    }

    /// The token whose secret hashes to `hash` (hex SHA-256), revoked or not.
    pub fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>, StateError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let by_hash = txn.open_table(TOKEN_BY_HASH).map_err(|e| self.err(e))?;
        let Some(id) = by_hash.get(hash).map_err(|e| self.err(e))? else {
            return Ok(None);
        };
        let id = id.value();
        let tokens = txn.open_table(TOKENS).map_err(|e| self.err(e))?;
        let Some(json) = tokens.get(id).map_err(|e| self.err(e))? else {
            return Err(StateError::Corrupt {
                path: self.path.clone(),
                detail: format!("hash index points at missing token {id}"),
            });
        };
        Ok(Some(self.parse_json(&format!("token {id}"), json.value())?))
    }

    /// Marks token `id` revoked at `at` (an already revoked token keeps its first time).
    /// Returns the updated record, or `None` if no token has that id.
    pub fn revoke_token(
        &self,
        id: &str,
        at: jiff::Timestamp,
    ) -> Result<Option<TokenRecord>, StateError> {
        let txn = self.write()?;
        let rec = {
            let mut tokens = txn.open_table(TOKENS).map_err(|e| self.err(e))?;
            let current = tokens
                .get(id)
                .map_err(|e| self.err(e))?
                .map(|g| g.value().to_string());
            let Some(current) = current else {
                return Ok(None);
            };
            let mut rec: TokenRecord = self.parse_json(&format!("token {id}"), &current)?;
            if rec.revoked.is_none() {
                rec.revoked = Some(at);
                let json = self.encode_json(&format!("token {id}"), &rec)?;
                tokens.insert(id, json.as_str()).map_err(|e| self.err(e))?;
            }
            rec
        };
        self.commit(txn)?;
        Ok(Some(rec))
    }

    /// Inserts or replaces indicator records (id, JSON) in one commit.
    pub fn put_indicators<T: Serialize>(&self, records: &[(&str, &T)]) -> Result<(), StateError> {
        if records.is_empty() {
            return Ok(());
        }
        let txn = self.write()?;
        {
            let mut t = txn.open_table(INDICATORS).map_err(|e| self.err(e))?;
            for (id, r) in records {
                let json = self.encode_json(&format!("indicator {id}"), r)?;
                t.insert(*id, json.as_str()).map_err(|e| self.err(e))?;
            }
        }
        self.commit(txn)
    }

    /// Every stored indicator record, by id.
    pub fn indicators<T: DeserializeOwned>(&self) -> Result<Vec<T>, StateError> {
        self.all(INDICATORS, "indicator")
    }

    /// The setting `key`, if set.
    pub fn get_meta(&self, key: &str) -> Result<Option<String>, StateError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let meta = txn.open_table(META).map_err(|e| self.err(e))?;
        Ok(meta
            .get(key)
            .map_err(|e| self.err(e))?
            .map(|g| g.value().to_string()))
    }

    /// Sets several settings in one commit.
    pub fn set_meta_many(&self, items: &[(String, String)]) -> Result<(), StateError> {
        let txn = self.write()?;
        {
            let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
            for (k, v) in items {
                meta.insert(k.as_str(), v.as_str())
                    .map_err(|e| self.err(e))?;
            }
        }
        self.commit(txn)
    }

    /// Sets the setting `key` to `v`.
    pub fn set_meta(&self, key: &str, v: &str) -> Result<(), StateError> {
        let txn = self.write()?;
        txn.open_table(META)
            .map_err(|e| self.err(e))?
            .insert(key, v)
            .map_err(|e| self.err(e))?;
        self.commit(txn)
    }
}

fn db_err(path: &Path, e: impl Into<redb::Error>) -> StateError {
    StateError::Db {
        path: path.to_path_buf(),
        source: e.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use threatfeed_core::org::{OrgKind, Scope};
    use threatfeed_core::tlp::Tlp;

    fn ts(s: &str) -> jiff::Timestamp {
        s.parse().expect("timestamp")
    }

    fn org(id: &str, name: &str) -> Org {
        Org {
            id: id.to_string(),
            name: name.to_string(),
            kind: OrgKind::Isp,
            scope: Scope::parse(&["192.0.2.0/24".into()], &[64500], &[]).expect("scope"),
            tlp_clearance: Tlp::Amber,
            created: ts("2025-01-02T03:04:05Z"),
        }
    }

    fn token(id: &str, org_id: &str, hash: &str) -> TokenRecord {
        TokenRecord {
            id: id.to_string(),
            org_id: org_id.to_string(),
            hash: hash.to_string(),
            label: "sensor".to_string(),
            created: ts("2025-01-02T03:04:05Z"),
            revoked: None,
        }
    }

    #[test]
    fn orgs_and_tokens_persist_across_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let s = StateStore::open(dir.path()).expect("open");
            assert!(s.orgs().expect("orgs").is_empty());
            assert_eq!(s.org("org_1").expect("org"), None);
            s.put_org(&org("org_b", "Beta")).expect("put");
            s.put_org(&org("org_a", "Alpha")).expect("put");
            s.put_org(&org("org_b", "Beta Renamed")).expect("replace");
            s.put_token(&token("tok_1", "org_a", "h1")).expect("token");
            s.put_token(&token("tok_2", "org_b", "h2")).expect("token");
            s.set_meta("bootstrap", "done").expect("meta");
            s.set_meta("bootstrap", "done twice").expect("meta");
        }
        let s = StateStore::open(dir.path()).expect("reopen");
        let orgs = s.orgs().expect("orgs");
        assert_eq!(orgs.len(), 2);
        assert_eq!(orgs[0], org("org_a", "Alpha"));
        assert_eq!(
            s.org("org_b").expect("org"),
            Some(org("org_b", "Beta Renamed"))
        );
        assert_eq!(s.tokens().expect("tokens").len(), 2);
        assert_eq!(
            s.get_meta("bootstrap").expect("meta").as_deref(),
            Some("done twice")
        );
        assert_eq!(s.get_meta("missing").expect("meta"), None);
    }

    #[test]
    fn token_lookup_by_hash_follows_replacement() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = StateStore::open(dir.path()).expect("open");
        s.put_token(&token("tok_1", "org_a", "aaaa"))
            .expect("token");
        assert_eq!(
            s.token_by_hash("aaaa").expect("lookup").map(|t| t.id),
            Some("tok_1".to_string())
        );
        assert_eq!(s.token_by_hash("bbbb").expect("lookup"), None);
        // Re-keying a token moves its index entry.
        s.put_token(&token("tok_1", "org_a", "bbbb"))
            .expect("rekey");
        assert_eq!(s.token_by_hash("aaaa").expect("lookup"), None);
        assert_eq!(
            s.token_by_hash("bbbb").expect("lookup").map(|t| t.id),
            Some("tok_1".to_string())
        );
        // Another token with the same hash is refused, and nothing changes.
        let err = s
            .put_token(&token("tok_2", "org_a", "bbbb"))
            .expect_err("duplicate hash");
        assert!(matches!(err, StateError::HashInUse { .. }), "{err}");
        assert_eq!(s.tokens().expect("tokens").len(), 1);
    }

    #[test]
    fn revoke_sets_time_once_and_persists() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let s = StateStore::open(dir.path()).expect("open");
            s.put_token(&token("tok_1", "org_a", "h1")).expect("token");
            assert_eq!(
                s.revoke_token("tok_missing", ts("2025-02-01T00:00:00Z"))
                    .expect("revoke unknown"),
                None
            );
            let r = s
                .revoke_token("tok_1", ts("2025-02-01T00:00:00Z"))
                .expect("revoke")
                .expect("known token");
            assert_eq!(r.revoked, Some(ts("2025-02-01T00:00:00Z")));
            let again = s
                .revoke_token("tok_1", ts("2025-03-01T00:00:00Z"))
                .expect("revoke again")
                .expect("known token");
            assert_eq!(again.revoked, Some(ts("2025-02-01T00:00:00Z")));
        }
        let s = StateStore::open(dir.path()).expect("reopen");
        let t = s.token_by_hash("h1").expect("lookup").expect("present");
        assert_eq!(t.revoked, Some(ts("2025-02-01T00:00:00Z")));
    }

    #[test]
    fn refuses_unknown_format_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        drop(StateStore::open(dir.path()).expect("create"));
        {
            let db = Database::create(dir.path().join("state.redb")).expect("raw");
            let txn = db.begin_write().expect("txn");
            txn.open_table(SCHEMA)
                .expect("schema")
                .insert("format_version", 2)
                .expect("insert");
            txn.commit().expect("commit");
        }
        let err = match StateStore::open(dir.path()) {
            Err(e) => e,
            Ok(_) => panic!("opened a state file of an unknown format"),
        };
        assert!(
            matches!(err, StateError::UnsupportedFormat { found: 2, .. }),
            "{err}"
        );
    }
}
