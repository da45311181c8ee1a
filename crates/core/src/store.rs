//! The store trait: durable audit log and named records. The redb implementation lives in `cacheos-store`;
//! [`MemoryStore`] here serves tests.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use crate::audit::{AuditFilter, AuditRecord, NewAuditRecord};

/// How durable a write must be before it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// On stable storage before returning (fsync).
    Immediate,
    /// Persisted with the next immediate write or clean shutdown; used for audit records of read-only
    /// operations, where losing the last few on a power cut is acceptable and fsync per read is not.
    Eventual,
}

/// Errors of a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file could not be opened or created.
    #[error("cannot open store {path}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The file exists but is not a readable database; it is left untouched.
    #[error("store {path} is corrupt or not a CacheOS database; it was left untouched")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What the database engine said.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The file was written by a newer (or unknown) schema; it is left untouched.
    #[error(
        "store {path} has schema version {found}, this cacheosd supports up to {supported}; it was left untouched"
    )]
    WrongVersion {
        /// The database file.
        path: PathBuf,
        /// Version found in the file.
        found: u32,
        /// Highest version this build understands.
        supported: u32,
    },
    /// Another process holds the database.
    #[error("store {path} is in use by another process")]
    Locked {
        /// The database file.
        path: PathBuf,
    },
    /// A read or write failed.
    #[error("store {operation} failed")]
    Backend {
        /// What was being done.
        operation: &'static str,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl StoreError {
    /// Wraps a backend error.
    pub fn backend(operation: &'static str, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        StoreError::Backend {
            operation,
            source: source.into(),
        }
    }
}

/// Durable state: the audit log and named records (drives, sandboxes, chat sessions, ...), each record a JSON
/// document under a `kind` and a `key`.
pub trait Store: Send + Sync {
    /// The schema version of the open database.
    fn schema_version(&self) -> u32;
    /// Appends an audit record and returns it with its id.
    fn append_audit(&self, rec: NewAuditRecord, durability: Durability) -> Result<AuditRecord, StoreError>;
    /// Records matching `filter`, newest first, at most `filter.limit()`.
    fn query_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError>;
    /// Number of audit records kept.
    fn audit_len(&self) -> Result<u64, StoreError>;
    /// Stores (or replaces) a record.
    fn put_record(&self, kind: &str, key: &str, value: &serde_json::Value) -> Result<(), StoreError>;
    /// Reads a record.
    fn get_record(&self, kind: &str, key: &str) -> Result<Option<serde_json::Value>, StoreError>;
    /// All records of a kind, ordered by key.
    fn list_records(&self, kind: &str) -> Result<Vec<(String, serde_json::Value)>, StoreError>;
    /// Deletes a record; returns whether it existed.
    fn delete_record(&self, kind: &str, key: &str) -> Result<bool, StoreError>;
    /// Appends the audit record of an operation and deletes its intent record (kind [`INTENT_KIND`], key
    /// `intent`). A store that can should do both in one commit, so that after a crash an operation has either its
    /// intent or its audit record, never both and never neither; the default does one after the other.
    fn append_audit_closing(
        &self,
        rec: NewAuditRecord,
        durability: Durability,
        intent: &str,
    ) -> Result<AuditRecord, StoreError> {
        let r = self.append_audit(rec, durability)?;
        self.delete_record(INTENT_KIND, intent)?;
        Ok(r)
    }
    /// Puts (`Some`) and deletes (`None`) records in one transaction, in order. [`Durability::Eventual`] may
    /// skip the fsync (the metrics history writes a sample every few seconds); the default applies them one by one.
    fn write_records(&self, changes: &[RecordChange], durability: Durability) -> Result<(), StoreError> {
        let _ = durability;
        for (kind, key, value) in changes {
            match value {
                Some(v) => self.put_record(kind, key, v)?,
                None => {
                    self.delete_record(kind, key)?;
                }
            }
        }
        Ok(())
    }
}

/// Record kind of the intent the executor writes (immediately durable) before an operation that changes something
/// runs; its audit record replaces it. Intents found at start belong to operations a crash interrupted
/// (`Core::settle_interrupted`).
pub const INTENT_KIND: &str = "op-intent";

/// One change of [`Store::write_records`]: kind, key, the new value or `None` to delete.
pub type RecordChange = (&'static str, String, Option<serde_json::Value>);

/// The schema version this build writes. Bump it with a migration in `cacheos-store`.
pub const SCHEMA_VERSION: u32 = 1;

/// An in-memory store with the same behaviour as the durable one, for tests.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<MemoryInner>,
    max_audit: Option<u64>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    next_id: u64,
    audit: BTreeMap<u64, AuditRecord>,
    records: BTreeMap<(String, String), serde_json::Value>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
    /// An empty store that keeps at most `max` audit records.
    pub fn with_audit_limit(max: u64) -> Self {
        Self {
            max_audit: Some(max),
            ..Self::default()
        }
    }
}

/// Shared query logic: newest first, filtered, limited.
pub fn scan_newest_first<'a>(records: impl Iterator<Item = &'a AuditRecord>, filter: &AuditFilter) -> Vec<AuditRecord> {
    records
        .filter(|r| filter.matches(r))
        .take(filter.limit())
        .cloned()
        .collect()
}

impl Store for MemoryStore {
    fn schema_version(&self) -> u32 {
        SCHEMA_VERSION
    }

    fn append_audit(&self, rec: NewAuditRecord, _d: Durability) -> Result<AuditRecord, StoreError> {
        let mut g = self.inner.lock().unwrap();
        g.next_id += 1;
        let r = AuditRecord {
            id: g.next_id,
            record: rec,
        };
        g.audit.insert(r.id, r.clone());
        if let Some(max) = self.max_audit {
            while g.audit.len() as u64 > max {
                g.audit.pop_first();
            }
        }
        Ok(r)
    }

    fn query_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        let g = self.inner.lock().unwrap();
        Ok(scan_newest_first(g.audit.values().rev(), filter))
    }

    fn audit_len(&self) -> Result<u64, StoreError> {
        Ok(self.inner.lock().unwrap().audit.len() as u64)
    }

    fn put_record(&self, kind: &str, key: &str, value: &serde_json::Value) -> Result<(), StoreError> {
        self.inner
            .lock()
            .unwrap()
            .records
            .insert((kind.into(), key.into()), value.clone());
        Ok(())
    }

    fn get_record(&self, kind: &str, key: &str) -> Result<Option<serde_json::Value>, StoreError> {
        Ok(self
            .inner
            .lock()
            .unwrap()
            .records
            .get(&(kind.to_string(), key.to_string()))
            .cloned())
    }

    fn list_records(&self, kind: &str) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        Ok(self
            .inner
            .lock()
            .unwrap()
            .records
            .iter()
            .filter(|((k, _), _)| k == kind)
            .map(|((_, key), v)| (key.clone(), v.clone()))
            .collect())
    }

    fn delete_record(&self, kind: &str, key: &str) -> Result<bool, StoreError> {
        Ok(self
            .inner
            .lock()
            .unwrap()
            .records
            .remove(&(kind.to_string(), key.to_string()))
            .is_some())
    }
}

/// A conformance suite every [`Store`] implementation must pass; called from each implementation's tests.
pub mod conformance {
    use super::*;
    use crate::audit::Outcome;
    use crate::auth::{Frontend, Principal};

    fn rec(time_ms: u64, frontend: Frontend, op: &str, outcome: Outcome) -> NewAuditRecord {
        NewAuditRecord {
            time_ms,
            frontend,
            principal: Principal::Uid { uid: 1000 },
            operation: op.into(),
            args: serde_json::json!({"x": time_ms}),
            outcome,
            error_code: None,
            error: None,
            duration_us: 7,
            session: None,
            utterance: None,
        }
    }

    /// Runs every check against `store`, which must be empty.
    pub fn run(store: &dyn Store) {
        assert_eq!(store.audit_len().unwrap(), 0);
        let a = store
            .append_audit(
                rec(1000, Frontend::Dbus, "system.status", Outcome::Ok),
                Durability::Immediate,
            )
            .unwrap();
        let b = store
            .append_audit(
                rec(2000, Frontend::Rest, "audit.query", Outcome::Error),
                Durability::Eventual,
            )
            .unwrap();
        let c = store
            .append_audit(
                rec(3000, Frontend::Cli, "system.status", Outcome::Denied),
                Durability::Immediate,
            )
            .unwrap();
        assert!(a.id < b.id && b.id < c.id, "ids increase");
        assert_eq!(store.audit_len().unwrap(), 3);

        let all = store.query_audit(&AuditFilter::default()).unwrap();
        assert_eq!(all.iter().map(|r| r.id).collect::<Vec<_>>(), vec![c.id, b.id, a.id]);
        assert_eq!(all[2], a, "round trip keeps every field");

        let q = |f: AuditFilter| store.query_audit(&f).unwrap().iter().map(|r| r.id).collect::<Vec<_>>();
        assert_eq!(
            q(AuditFilter {
                since_ms: Some(2000),
                ..Default::default()
            }),
            vec![c.id, b.id]
        );
        assert_eq!(
            q(AuditFilter {
                until_ms: Some(2000),
                ..Default::default()
            }),
            vec![a.id]
        );
        assert_eq!(
            q(AuditFilter {
                frontend: Some(Frontend::Rest),
                ..Default::default()
            }),
            vec![b.id]
        );
        assert_eq!(
            q(AuditFilter {
                operation: Some("system.status".into()),
                ..Default::default()
            }),
            vec![c.id, a.id]
        );
        assert_eq!(
            q(AuditFilter {
                operation: Some("audit.".into()),
                ..Default::default()
            }),
            vec![b.id]
        );
        assert_eq!(
            q(AuditFilter {
                outcome: Some(Outcome::Denied),
                ..Default::default()
            }),
            vec![c.id]
        );
        assert_eq!(
            q(AuditFilter {
                limit: Some(1),
                ..Default::default()
            }),
            vec![c.id]
        );
        assert_eq!(
            q(AuditFilter {
                before_id: Some(c.id),
                limit: Some(1),
                ..Default::default()
            }),
            vec![b.id]
        );

        assert_eq!(store.get_record("drive", "a").unwrap(), None);
        store.put_record("drive", "b", &serde_json::json!({"n": 2})).unwrap();
        store.put_record("drive", "a", &serde_json::json!({"n": 1})).unwrap();
        store.put_record("sandbox", "a", &serde_json::json!({"n": 3})).unwrap();
        assert_eq!(
            store.get_record("drive", "a").unwrap(),
            Some(serde_json::json!({"n": 1}))
        );
        let keys: Vec<_> = store
            .list_records("drive")
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, vec!["a", "b"]);
        assert!(store.delete_record("drive", "a").unwrap());
        assert!(!store.delete_record("drive", "a").unwrap());
        assert_eq!(store.list_records("drive").unwrap().len(), 1);
        assert_eq!(store.list_records("sandbox").unwrap().len(), 1);

        // An operation's audit record replaces its intent.
        store
            .put_record(INTENT_KIND, "i1", &serde_json::json!({"op": 1}))
            .unwrap();
        store
            .put_record(INTENT_KIND, "i2", &serde_json::json!({"op": 2}))
            .unwrap();
        let d = store
            .append_audit_closing(
                rec(4000, Frontend::Cli, "drive.attach", Outcome::Ok),
                Durability::Immediate,
                "i1",
            )
            .unwrap();
        assert!(d.id > c.id);
        assert_eq!(store.query_audit(&AuditFilter::default()).unwrap()[0], d);
        let left: Vec<_> = store
            .list_records(INTENT_KIND)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(left, vec!["i2"]);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn memory_store_conforms() {
        super::conformance::run(&super::MemoryStore::new());
    }
}
