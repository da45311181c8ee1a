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
use redb::{Database, ReadableTableMetadata, TableDefinition};

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

/// Audit records waiting for a group commit.
#[derive(Debug, Default)]
struct AuditQueue {
    /// Next id to hand out.
    next_id: u64,
    /// Records not yet handed to a writer: (id, JSON, needs immediate durability).
    pending: Vec<(u64, Vec<u8>, bool)>,
    /// Every id up to this one has been written (or failed, see `failed`).
    done_upto: u64,
    /// A writer is committing a batch.
    writing: bool,
    /// Ids whose batch failed, with the error.
    failed: std::collections::HashMap<u64, String>,
}

/// The durable store.
pub struct RedbStore {
    db: Database,
    path: PathBuf,
    max_audit: u64,
    audit_queue: std::sync::Mutex<AuditQueue>,
    audit_done: std::sync::Condvar,
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
        let mut store = Self {
            db,
            path: path.into(),
            max_audit: max_audit.max(1),
            audit_queue: Default::default(),
            audit_done: Default::default(),
        };
        store.check_schema()?;
        let next_id = store.read(|tx| Ok(tx.open_table(META)?.get(KEY_NEXT_ID)?.map(|g| g.value()).unwrap_or(1)))?;
        let q = store.audit_queue.get_mut().unwrap();
        q.next_id = next_id;
        q.done_upto = next_id - 1;
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

    /// Group commit: concurrent appends queue their record; one caller at a time writes everything queued in one
    /// transaction (immediate if any record asks for it) while the others wait for it, so N concurrent operations
    /// cost one commit instead of N. Every caller returns only once its own record is written.
    fn append_audit(&self, rec: NewAuditRecord, durability: Durability) -> Result<AuditRecord, StoreError> {
        let bytes = serde_json::to_vec(&rec).map_err(|e| StoreError::backend("encode audit record", e))?;
        let mut q = self.audit_queue.lock().unwrap();
        let id = q.next_id;
        q.next_id += 1;
        q.pending.push((id, bytes, durability == Durability::Immediate));
        loop {
            if q.done_upto >= id {
                return match q.failed.remove(&id) {
                    None => Ok(AuditRecord { id, record: rec }),
                    Some(e) => Err(StoreError::backend("append audit record", e)),
                };
            }
            if q.writing {
                q = self.audit_done.wait(q).unwrap();
                continue;
            }
            q.writing = true;
            let batch = std::mem::take(&mut q.pending);
            drop(q);
            let result = self.write_audit_batch(&batch);
            q = self.audit_queue.lock().unwrap();
            q.writing = false;
            if let Some((hi, _, _)) = batch.last() {
                q.done_upto = q.done_upto.max(*hi);
            }
            if let Err(e) = result {
                let msg = e.to_string();
                for (bid, _, _) in &batch {
                    q.failed.insert(*bid, msg.clone());
                }
            }
            self.audit_done.notify_all();
        }
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
    fn write_audit_batch(&self, batch: &[(u64, Vec<u8>, bool)]) -> Result<(), StoreError> {
        let Some((hi, _, _)) = batch.last() else { return Ok(()) };
        let immediate = batch.iter().any(|(_, _, i)| *i);
        // Checking the table length costs a scan of its metadata; do it when an id crosses a multiple of 128,
        // so the log holds at most `max_audit + 128` records.
        let prune = batch.iter().any(|(id, _, _)| id % 128 == 0);
        let max = self.max_audit;
        let durability = if immediate {
            Durability::Immediate
        } else {
            Durability::Eventual
        };
        self.write(durability, "append audit records", |tx| {
            tx.open_table(META)?.insert(KEY_NEXT_ID, hi + 1)?;
            let mut audit = tx.open_table(AUDIT)?;
            for (id, bytes, _) in batch {
                audit.insert(*id, bytes.as_slice())?;
            }
            if prune {
                let len = audit.len()?;
                for _ in max..len {
                    audit.pop_first()?;
                }
            }
            Ok(())
        })
    }

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
        for _ in 0..125 {
            s.append_audit(rec.clone(), Durability::Eventual).unwrap();
        }
        // Id 128 was the last append: pruning ran and kept the newest three.
        assert_eq!(s.audit_len().unwrap(), 3);
        let ids: Vec<_> = s
            .query_audit(&AuditFilter::default())
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, vec![128, 127, 126]);
        s.append_audit(rec.clone(), Durability::Eventual).unwrap();
        assert_eq!(
            s.audit_len().unwrap(),
            4,
            "between multiples of 128 the log may exceed the limit"
        );
    }

    #[test]
    fn concurrent_appends_get_distinct_ids_and_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let s = std::sync::Arc::new(RedbStore::open(&dir.path().join("s.redb"), 100_000).unwrap());
        cacheos_core::store::conformance::run(s.as_ref());
        let rec = s.query_audit(&AuditFilter::default()).unwrap()[0].record.clone();
        let threads: Vec<_> = (0..16)
            .map(|t| {
                let (s, rec) = (s.clone(), rec.clone());
                std::thread::spawn(move || {
                    (0..50)
                        .map(|i| {
                            let d = if (t + i) % 5 == 0 {
                                Durability::Immediate
                            } else {
                                Durability::Eventual
                            };
                            s.append_audit(rec.clone(), d).unwrap().id
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut ids: Vec<u64> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 800);
        assert_eq!(s.audit_len().unwrap(), 803);
        drop(s);
        let s = RedbStore::open(&dir.path().join("s.redb"), 100_000).unwrap();
        assert_eq!(s.audit_len().unwrap(), 803, "every record is there after reopening");
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
