//! redb-backed implementation of [`cacheos_core::Store`], with a schema version and a migration path.
//!
//! Layout (schema version 1):
//! - `meta`: `&str -> u64` (`schema_version`, `audit_next_id`)
//! - `audit`: `u64 id -> JSON bytes` of [`cacheos_core::NewAuditRecord`]
//! - `records`: `(kind, key) -> JSON bytes`
//!
//! Opening never overwrites a file it does not understand: a corrupt file or one from a newer schema is reported
//! and left byte-for-byte untouched.

// redb::Error is large; it only travels on the rare failure path inside this crate, so boxing it buys nothing.
#![allow(clippy::result_large_err)]

use std::path::{Path, PathBuf};

use cacheos_core::audit::{AuditFilter, AuditRecord, NewAuditRecord};
use cacheos_core::store::{scan_newest_first, Durability, Store, StoreError, SCHEMA_VERSION};
use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
const RECORDS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("records");

const KEY_VERSION: &str = "schema_version";
const KEY_NEXT_ID: &str = "audit_next_id";

/// A migration from `version` to `version + 1`, run inside one write transaction.
type Migration = fn(&redb::WriteTransaction) -> Result<(), redb::Error>;

/// Migrations indexed by the version they start from. Version 1 is the first; a future version 2 adds
/// `(1, migrate_1_to_2)` here and bumps [`SCHEMA_VERSION`] in the core.
const MIGRATIONS: &[(u32, Migration)] = &[];

/// The durable store.
pub struct RedbStore {
    db: Database,
    path: PathBuf,
    max_audit: u64,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore").field("path", &self.path).finish()
    }
}

fn backend(op: &'static str) -> impl FnOnce(redb::Error) -> StoreError {
    move |e| StoreError::backend(op, e)
}

impl RedbStore {
    /// Opens the database at `path`, creating it if it does not exist, and migrating older schemas.
    /// Keeps at most `max_audit` audit records (oldest pruned first).
    pub fn open(path: &Path, max_audit: u64) -> Result<Self, StoreError> {
        let exists = path.exists();
        let db = if exists {
            Database::open(path).map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked { path: path.into() },
                redb::DatabaseError::Storage(redb::StorageError::Io(io))
                    if io.kind() != std::io::ErrorKind::InvalidData =>
                {
                    StoreError::Open {
                        path: path.into(),
                        source: io.into(),
                    }
                }
                other => StoreError::Corrupt {
                    path: path.into(),
                    source: other.into(),
                },
            })?
        } else {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
                    path: path.into(),
                    source: e.into(),
                })?;
            }
            Database::create(path).map_err(|e| StoreError::Open {
                path: path.into(),
                source: e.into(),
            })?
        };
        let store = Self {
            db,
            path: path.into(),
            max_audit: max_audit.max(1),
        };
        store.check_schema()?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn check_schema(&self) -> Result<(), StoreError> {
        let found = self.read_version()?;
        match found {
            None => {
                // A brand-new (empty) database: only initialise it if it has no tables at all, so that a
                // foreign redb file is never adopted.
                let rtx = self.db.begin_read().map_err(|e| backend("read")(e.into()))?;
                let foreign = rtx
                    .list_tables()
                    .map_err(|e| backend("read")(e.into()))?
                    .next()
                    .is_some();
                drop(rtx);
                if foreign {
                    return Err(StoreError::Corrupt {
                        path: self.path.clone(),
                        source: "database has tables but no CacheOS schema version".into(),
                    });
                }
                self.write(Durability::Immediate, "initialise", |tx| {
                    let mut meta = tx.open_table(META)?;
                    meta.insert(KEY_VERSION, SCHEMA_VERSION as u64)?;
                    meta.insert(KEY_NEXT_ID, 1)?;
                    drop(meta);
                    tx.open_table(AUDIT)?;
                    tx.open_table(RECORDS)?;
                    Ok(())
                })?;
                tracing::info!(path = %self.path.display(), version = SCHEMA_VERSION, "created store");
                Ok(())
            }
            Some(v) if v > SCHEMA_VERSION => Err(StoreError::WrongVersion {
                path: self.path.clone(),
                found: v,
                supported: SCHEMA_VERSION,
            }),
            Some(mut v) => {
                while v < SCHEMA_VERSION {
                    let Some((_, m)) = MIGRATIONS.iter().find(|(from, _)| *from == v) else {
                        return Err(StoreError::WrongVersion {
                            path: self.path.clone(),
                            found: v,
                            supported: SCHEMA_VERSION,
                        });
                    };
                    self.write(Durability::Immediate, "migrate", |tx| {
                        m(tx)?;
                        tx.open_table(META)?.insert(KEY_VERSION, (v + 1) as u64)?;
                        Ok(())
                    })?;
                    tracing::info!(from = v, to = v + 1, "migrated store");
                    v += 1;
                }
                Ok(())
            }
        }
    }

    fn read_version(&self) -> Result<Option<u32>, StoreError> {
        let rtx = self.db.begin_read().map_err(|e| backend("read")(e.into()))?;
        let meta = match rtx.open_table(META) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => {
                return Err(StoreError::Corrupt {
                    path: self.path.clone(),
                    source: e.into(),
                })
            }
        };
        let v = meta.get(KEY_VERSION).map_err(|e| backend("read")(e.into()))?;
        Ok(v.map(|g| g.value() as u32))
    }

    fn write<T>(
        &self,
        durability: Durability,
        op: &'static str,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T, redb::Error>,
    ) -> Result<T, StoreError> {
        let mut tx = self.db.begin_write().map_err(|e| backend(op)(e.into()))?;
        tx.set_durability(match durability {
            Durability::Immediate => redb::Durability::Immediate,
            Durability::Eventual => redb::Durability::Eventual,
        });
        let out = f(&tx).map_err(backend(op))?;
        tx.commit().map_err(|e| backend(op)(e.into()))?;
        Ok(out)
    }

    fn read<T>(&self, f: impl FnOnce(&redb::ReadTransaction) -> Result<T, redb::Error>) -> Result<T, StoreError> {
        let tx = self.db.begin_read().map_err(|e| backend("read")(e.into()))?;
        f(&tx).map_err(backend("read"))
    }
}

fn decode(bytes: &[u8]) -> Result<serde_json::Value, redb::Error> {
    serde_json::from_slice(bytes).map_err(|e| redb::Error::Corrupted(format!("undecodable record: {e}")))
}

impl Store for RedbStore {
    fn schema_version(&self) -> u32 {
        self.read_version().ok().flatten().unwrap_or(SCHEMA_VERSION)
    }

    fn append_audit(&self, rec: NewAuditRecord, durability: Durability) -> Result<AuditRecord, StoreError> {
        let bytes = serde_json::to_vec(&rec).map_err(|e| StoreError::backend("encode audit record", e))?;
        let max = self.max_audit;
        let id = self.write(durability, "append audit record", |tx| {
            let mut meta = tx.open_table(META)?;
            let id = meta.get(KEY_NEXT_ID)?.map(|g| g.value()).unwrap_or(1);
            meta.insert(KEY_NEXT_ID, id + 1)?;
            drop(meta);
            let mut audit = tx.open_table(AUDIT)?;
            audit.insert(id, bytes.as_slice())?;
            while audit.len()? > max {
                audit.pop_first()?;
            }
            Ok(id)
        })?;
        Ok(AuditRecord { id, record: rec })
    }

    fn query_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        self.read(|tx| {
            let audit = tx.open_table(AUDIT)?;
            let upper = filter.before_id.unwrap_or(u64::MAX);
            let mut recs = Vec::new();
            for entry in audit.range(..upper)?.rev() {
                let (k, v) = entry?;
                let rec: NewAuditRecord = serde_json::from_value(decode(v.value())?)
                    .map_err(|e| redb::Error::Corrupted(format!("audit record {}: {e}", k.value())))?;
                // Ids increase with time, so once we are past `since` nothing older can match.
                if filter.since_ms.is_some_and(|s| rec.time_ms < s) {
                    break;
                }
                recs.push(AuditRecord {
                    id: k.value(),
                    record: rec,
                });
                if recs.len() >= 4 * filter.limit() {
                    let kept = scan_newest_first(recs.iter(), filter);
                    if kept.len() >= filter.limit() {
                        return Ok(kept);
                    }
                }
            }
            Ok(scan_newest_first(recs.iter(), filter))
        })
    }

    fn audit_len(&self) -> Result<u64, StoreError> {
        self.read(|tx| Ok(tx.open_table(AUDIT)?.len()?))
    }

    fn put_record(&self, kind: &str, key: &str, value: &serde_json::Value) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(value).map_err(|e| StoreError::backend("encode record", e))?;
        self.write(Durability::Immediate, "put record", |tx| {
            tx.open_table(RECORDS)?.insert((kind, key), bytes.as_slice())?;
            Ok(())
        })
    }

    fn get_record(&self, kind: &str, key: &str) -> Result<Option<serde_json::Value>, StoreError> {
        self.read(|tx| {
            let t = tx.open_table(RECORDS)?;
            let v = t.get((kind, key))?;
            v.map(|g| decode(g.value())).transpose()
        })
    }

    fn list_records(&self, kind: &str) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        self.read(|tx| {
            let t = tx.open_table(RECORDS)?;
            let mut out = Vec::new();
            for entry in t.range((kind, "")..)? {
                let (k, v) = entry?;
                let (k_kind, k_key) = k.value();
                if k_kind != kind {
                    break;
                }
                out.push((k_key.to_string(), decode(v.value())?));
            }
            Ok(out)
        })
    }

    fn delete_record(&self, kind: &str, key: &str) -> Result<bool, StoreError> {
        self.write(Durability::Immediate, "delete record", |tx| {
            Ok(tx.open_table(RECORDS)?.remove((kind, key))?.is_some())
        })
    }
}

impl RedbStore {
    /// Makes every eventual-durability write durable (an empty immediate commit). Called at shutdown.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.write(Durability::Immediate, "flush", |_| Ok(()))
    }

    /// Writes a schema version directly; for tests of version handling only.
    #[doc(hidden)]
    pub fn force_schema_version_for_tests(&self, v: u32) -> Result<(), StoreError> {
        self.write(Durability::Immediate, "set version", |tx| {
            tx.open_table(META)?.insert(KEY_VERSION, v as u64)?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redb_store_conforms() {
        let dir = tempfile::tempdir().unwrap();
        let s = RedbStore::open(&dir.path().join("s.redb"), 1000).unwrap();
        cacheos_core::store::conformance::run(&s);
        assert_eq!(s.schema_version(), SCHEMA_VERSION);
    }

    #[test]
    fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.redb");
        {
            let s = RedbStore::open(&p, 1000).unwrap();
            cacheos_core::store::conformance::run(&s);
            s.flush().unwrap();
        }
        let s = RedbStore::open(&p, 1000).unwrap();
        assert_eq!(s.audit_len().unwrap(), 3);
        assert_eq!(s.list_records("sandbox").unwrap().len(), 1);
        // Ids are never reused after reopening.
        let r = s
            .append_audit(
                s.query_audit(&AuditFilter::default()).unwrap()[0].record.clone(),
                Durability::Immediate,
            )
            .unwrap();
        assert_eq!(r.id, 4);
    }

    #[test]
    fn corrupt_file_is_reported_and_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.redb");
        let garbage: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&p, &garbage).unwrap();
        let err = RedbStore::open(&p, 10).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
        assert!(err.to_string().contains(&p.display().to_string()), "{err}");
        assert_eq!(std::fs::read(&p).unwrap(), garbage, "file must not be touched");
    }

    #[test]
    fn newer_schema_is_refused_and_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.redb");
        {
            let s = RedbStore::open(&p, 10).unwrap();
            s.force_schema_version_for_tests(SCHEMA_VERSION + 1).unwrap();
        }
        let before = std::fs::read(&p).unwrap();
        let err = RedbStore::open(&p, 10).unwrap_err();
        assert!(
            matches!(err, StoreError::WrongVersion { found, supported, .. } if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION),
            "{err:?}"
        );
        assert!(err.to_string().contains("schema version 2"), "{err}");
        assert_eq!(std::fs::read(&p).unwrap(), before);
    }

    #[test]
    fn foreign_redb_file_is_not_adopted() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.redb");
        {
            let db = Database::create(&p).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(TableDefinition::<u64, u64>::new("other"))
                .unwrap()
                .insert(1, 2)
                .unwrap();
            tx.commit().unwrap();
        }
        let err = RedbStore::open(&p, 10).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    }

    #[test]
    fn audit_is_pruned_to_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let s = RedbStore::open(&dir.path().join("s.redb"), 3).unwrap();
        cacheos_core::store::conformance::run(&s);
        let rec = s.query_audit(&AuditFilter::default()).unwrap()[0].record.clone();
        for _ in 0..5 {
            s.append_audit(rec.clone(), Durability::Eventual).unwrap();
        }
        assert_eq!(s.audit_len().unwrap(), 3);
        let ids: Vec<_> = s
            .query_audit(&AuditFilter::default())
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, vec![8, 7, 6]);
    }

    #[test]
    fn second_open_reports_locked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.redb");
        let _a = RedbStore::open(&p, 10).unwrap();
        let err = RedbStore::open(&p, 10).unwrap_err();
        assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
    }
}
