//! redb-backed implementation of [`cacheos_core::Store`], with a schema version and a migration path.
//!
//! Layout (schema version 1):
//! - `meta`: `&str -> u64` (`schema_version`, `audit_next_id`)
//! - `audit`: `u64 id -> JSON bytes` of [`cacheos_core::NewAuditRecord`]
//! - `records`: `(kind, key) -> JSON bytes` (also the metrics history: kinds `metrics.sample|minute|hour`, see
//!   [`cacheos_core::metrics_history`])
//!
//! Opening never overwrites a file it does not understand: a corrupt file or one from a newer schema is reported
//! and left byte-for-byte untouched.

// redb::Error is large; it only travels on the rare failure path inside this crate, so boxing it buys nothing.
#![allow(clippy::result_large_err)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cacheos_core::audit::{AuditFilter, AuditRecord, NewAuditRecord};
use cacheos_core::store::{scan_newest_first, Durability, RecordChange, Store, StoreError, SCHEMA_VERSION};
use redb::{Database, ReadableTableMetadata, TableDefinition};

pub mod writer;
use writer::AuditWriter;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
pub(crate) const RECORDS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("records");

const KEY_VERSION: &str = "schema_version";
const KEY_NEXT_ID: &str = "audit_next_id";

/// A migration from `version` to `version + 1`, run inside one write transaction.
type Migration = fn(&redb::WriteTransaction) -> Result<(), redb::Error>;

/// Migrations indexed by the version they start from. Version 1 is the first; a future version 2 adds
/// `(1, migrate_1_to_2)` here and bumps [`SCHEMA_VERSION`] in the core.
const MIGRATIONS: &[(u32, Migration)] = &[];

/// The durable store.
pub struct RedbStore {
    db: Arc<Database>,
    path: PathBuf,
    max_audit: u64,
    /// Set once the schema is checked; every audit append goes through it.
    writer: Option<AuditWriter>,
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
            db: Arc::new(db),
            path: path.into(),
            max_audit: max_audit.max(1),
            writer: None,
        };
        store.check_schema()?;
        let next_id = store.read(|tx| Ok(tx.open_table(META)?.get(KEY_NEXT_ID)?.map(|g| g.value()).unwrap_or(1)))?;
        store.writer = Some(AuditWriter::start(store.db.clone(), store.max_audit, next_id.max(1))?);
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

    /// Queues the record for the audit writer (see [`writer`]): eventual records return at once, immediate ones
    /// once their group's commit is on stable storage.
    fn append_audit(&self, rec: NewAuditRecord, durability: Durability) -> Result<AuditRecord, StoreError> {
        let bytes = serde_json::to_vec(&rec).map_err(|e| StoreError::backend("encode audit record", e))?;
        let id = self.writer().append(bytes, durability, None)?;
        Ok(AuditRecord { id, record: rec })
    }

    /// Like [`Store::append_audit`], and the intent record goes in the same commit as the audit record.
    fn append_audit_closing(
        &self,
        rec: NewAuditRecord,
        durability: Durability,
        intent: &str,
    ) -> Result<AuditRecord, StoreError> {
        let bytes = serde_json::to_vec(&rec).map_err(|e| StoreError::backend("encode audit record", e))?;
        let id = self.writer().append(bytes, durability, Some(intent))?;
        Ok(AuditRecord { id, record: rec })
    }

    fn query_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        self.writer().wait_written();
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
        self.writer().wait_written();
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

    /// One transaction; an eventual one is committed without fsync (redb `Durability::None`, as the audit writer
    /// does) and becomes durable with the next immediate commit of anyone, or when the store is dropped.
    fn write_records(&self, changes: &[RecordChange], durability: Durability) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut encoded = Vec::with_capacity(changes.len());
        for (kind, key, value) in changes {
            let bytes = value
                .as_ref()
                .map(serde_json::to_vec)
                .transpose()
                .map_err(|e| StoreError::backend("encode record", e))?;
            encoded.push((*kind, key.as_str(), bytes));
        }
        let op = "write records";
        let mut tx = self.db.begin_write().map_err(|e| backend(op)(e.into()))?;
        tx.set_durability(match durability {
            Durability::Immediate => redb::Durability::Immediate,
            Durability::Eventual => redb::Durability::None,
        });
        (|| -> Result<(), redb::Error> {
            let mut t = tx.open_table(RECORDS)?;
            for (kind, key, bytes) in &encoded {
                match bytes {
                    Some(b) => {
                        t.insert((*kind, *key), b.as_slice())?;
                    }
                    None => {
                        t.remove((*kind, *key))?;
                    }
                }
            }
            Ok(())
        })()
        .map_err(backend(op))?;
        tx.commit().map_err(|e| backend(op)(e.into()))?;
        Ok(())
    }
}

impl RedbStore {
    fn writer(&self) -> &AuditWriter {
        self.writer
            .as_ref()
            .expect("the audit writer starts when the store is opened")
    }

    /// Makes every audit record appended so far durable (the writer commits what is queued, then one immediate
    /// commit). Called at shutdown (SIGTERM); dropping the store does the same.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.writer().flush()
    }

    /// Acknowledged eventual-durability audit records whose write failed since the store was opened.
    pub fn lost_audit_records(&self) -> u64 {
        self.writer().lost()
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
        assert_eq!(s.audit_len().unwrap(), 4);
        assert_eq!(s.list_records("sandbox").unwrap().len(), 1);
        // The intent closed with its audit record stays gone; the open one is still there.
        let intents: Vec<_> = s.list_records(cacheos_core::store::INTENT_KIND).unwrap();
        assert_eq!(intents.into_iter().map(|(k, _)| k).collect::<Vec<_>>(), ["i2"]);
        // Ids are never reused after reopening.
        let r = s
            .append_audit(
                s.query_audit(&AuditFilter::default()).unwrap()[0].record.clone(),
                Durability::Immediate,
            )
            .unwrap();
        assert_eq!(r.id, 5);
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
        for _ in 0..124 {
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
        assert_eq!(s.audit_len().unwrap(), 804);
        drop(s);
        let s = RedbStore::open(&dir.path().join("s.redb"), 100_000).unwrap();
        assert_eq!(s.audit_len().unwrap(), 804, "every record is there after reopening");
    }

    fn sample() -> NewAuditRecord {
        cacheos_core::audit::NewAuditRecord {
            time_ms: 1,
            frontend: cacheos_core::auth::Frontend::Rest,
            principal: cacheos_core::auth::Principal::Uid { uid: 0 },
            operation: "system.status".into(),
            args: serde_json::json!({}),
            outcome: cacheos_core::audit::Outcome::Ok,
            error_code: None,
            error: None,
            duration_us: 1,
            session: None,
            utterance: None,
        }
    }

    #[test]
    fn eventual_appends_do_not_wait_for_the_writer_but_immediate_ones_do() {
        let dir = tempfile::tempdir().unwrap();
        let s = std::sync::Arc::new(RedbStore::open(&dir.path().join("s.redb"), 1000).unwrap());
        let rec = sample();
        // Hold redb's single write transaction: the writer cannot commit anything meanwhile.
        let blocker = s.db.begin_write().unwrap();
        let t = std::time::Instant::now();
        let ids: Vec<u64> = (0..50)
            .map(|_| s.append_audit(rec.clone(), Durability::Eventual).unwrap().id)
            .collect();
        assert!(
            t.elapsed() < std::time::Duration::from_millis(500),
            "eventual appends waited {:?}",
            t.elapsed()
        );
        assert_eq!(ids, (1..=50).collect::<Vec<_>>(), "ids strictly increase from 1");
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let (s2, rec2) = (s.clone(), rec.clone());
        std::thread::spawn(move || {
            done_tx
                .send(s2.append_audit(rec2, Durability::Immediate).unwrap().id)
                .unwrap()
        });
        assert!(
            done_rx.recv_timeout(std::time::Duration::from_millis(300)).is_err(),
            "an immediate append returned before its commit"
        );
        drop(blocker);
        assert_eq!(done_rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap(), 51);
        assert_eq!(s.audit_len().unwrap(), 51, "queries see every queued record");
        let newest = s.query_audit(&AuditFilter::default()).unwrap();
        assert_eq!(newest[0].id, 51);
        assert_eq!(newest[50].id, 1);
    }

    #[test]
    fn queries_see_records_queued_before_them() {
        let dir = tempfile::tempdir().unwrap();
        let s = RedbStore::open(&dir.path().join("s.redb"), 100_000).unwrap();
        let rec = sample();
        for i in 1..=300u64 {
            let r = s.append_audit(rec.clone(), Durability::Eventual).unwrap();
            assert_eq!(r.id, i);
            if i % 37 == 0 {
                assert_eq!(s.audit_len().unwrap(), i);
            }
        }
        assert_eq!(s.query_audit(&AuditFilter::default()).unwrap()[0].id, 300);
    }

    #[test]
    fn dropping_the_store_persists_queued_eventual_records() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.redb");
        {
            let s = RedbStore::open(&p, 100_000).unwrap();
            let rec = sample();
            for _ in 0..500 {
                s.append_audit(rec.clone(), Durability::Eventual).unwrap();
            }
        }
        let s = RedbStore::open(&p, 100_000).unwrap();
        assert_eq!(s.audit_len().unwrap(), 500);
        let r = s.append_audit(sample(), Durability::Eventual).unwrap();
        assert_eq!(r.id, 501, "ids continue after reopening");
    }

    /// Child half of the crash tests: appends as `CACHEOS_STORE_CRASH_MODE` says, prints the acknowledged ids,
    /// then aborts the process (no destructor, no flush), as a power cut or SIGKILL would.
    #[test]
    fn crash_child() {
        let (Ok(path), Ok(mode)) = (
            std::env::var("CACHEOS_STORE_CRASH_PATH"),
            std::env::var("CACHEOS_STORE_CRASH_MODE"),
        ) else {
            return;
        };
        let s = RedbStore::open(Path::new(&path), 100_000).unwrap();
        let rec = sample();
        let mut last = 0;
        for i in 0..400u64 {
            let d = if mode == "immediate" && i % 40 == 39 {
                Durability::Immediate
            } else {
                Durability::Eventual
            };
            last = s.append_audit(rec.clone(), d).unwrap().id;
            if d == Durability::Immediate {
                println!("durable-upto {last}");
            }
        }
        if mode == "idle" {
            std::thread::sleep(writer::FLUSH_INTERVAL * 3);
            println!("durable-upto {last}");
        }
        use std::io::Write;
        std::io::stdout().flush().unwrap();
        std::process::abort();
    }

    fn crash(mode: &str) -> (u64, u64) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.redb");
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "tests::crash_child", "--nocapture", "--test-threads=1"])
            .env("CACHEOS_STORE_CRASH_PATH", &p)
            .env("CACHEOS_STORE_CRASH_MODE", mode)
            .output()
            .unwrap();
        assert!(!out.status.success(), "the child must abort");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let acked = stdout
            .lines()
            .filter_map(|l| l.split_once("durable-upto ").map(|(_, n)| n))
            .map(|n| n.trim().parse::<u64>().unwrap())
            .max()
            .unwrap_or_else(|| {
                panic!(
                    "child printed no ids: {stdout} {}",
                    String::from_utf8_lossy(&out.stderr)
                )
            });
        let s = RedbStore::open(&p, 100_000).unwrap();
        let ids: Vec<u64> = s
            .query_audit(&AuditFilter {
                limit: Some(10_000),
                ..Default::default()
            })
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        let n = ids.len() as u64;
        assert_eq!(ids, (1..=n).rev().collect::<Vec<_>>(), "records are a gap-free prefix");
        let next = s.append_audit(sample(), Durability::Immediate).unwrap().id;
        assert!(next > n, "ids are not reused after a crash");
        (acked, n)
    }

    #[test]
    fn immediate_records_survive_a_crash_with_everything_before_them() {
        let (acked, kept) = crash("immediate");
        assert_eq!(acked, 400, "the last append was immediate");
        assert!(kept >= acked, "acknowledged immediate record {acked} lost: {kept} kept");
    }

    #[test]
    fn eventual_records_are_durable_after_the_flush_interval() {
        let (acked, kept) = crash("idle");
        assert!(
            kept >= acked,
            "eventual records older than the flush interval lost: {kept} of {acked} kept"
        );
    }

    fn metric(time_ms: u64) -> cacheos_core::MetricSample {
        cacheos_core::MetricSample {
            time_ms,
            cpu_percent: Some((time_ms % 97) as f64),
            memory_used_bytes: 1 << 30,
            memory_total_bytes: 4 << 30,
            load_one: 0.5,
            disk_used_bytes: 10 << 30,
            disk_total_bytes: 100 << 30,
            ..Default::default()
        }
    }

    #[test]
    fn the_metrics_history_survives_a_restart_at_every_resolution() {
        use cacheos_core::metrics_history::Resolution;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let t0 = 1_700_000_000_000u64;
        let before: Vec<_> = {
            let store = Arc::new(RedbStore::open(&path, 100).unwrap());
            let h = cacheos_core::MetricsHistory::persistent(store.clone(), 5).unwrap();
            // Three hours at one sample every 5 s.
            for i in 0..3 * 720 {
                h.try_push(metric(t0 + i * 5000)).unwrap();
            }
            Resolution::ALL.iter().map(|r| h.query(None, Some(*r))).collect()
        };
        assert_eq!(before[0].len(), 721);
        assert!(before[1].len() > 170 && before[2].len() == 4, "{}", before[2].len());
        let store = Arc::new(RedbStore::open(&path, 100).unwrap());
        let h = cacheos_core::MetricsHistory::persistent(store.clone(), 5).unwrap();
        let after: Vec<_> = Resolution::ALL.iter().map(|r| h.query(None, Some(*r))).collect();
        for (b, a) in before.iter().zip(&after) {
            assert_eq!(b.len(), a.len());
            for (x, y) in b.iter().zip(a) {
                // JSON keeps f64 to the last digit or two; compare the rest exactly.
                assert!(
                    (x.cpu_percent.unwrap() - y.cpu_percent.unwrap()).abs() < 1e-9,
                    "{x:?} {y:?}"
                );
                assert_eq!(
                    (x.time_ms, x.memory_used_bytes, x.disk_used_bytes),
                    (y.time_ms, y.memory_used_bytes, y.disk_used_bytes)
                );
            }
        }
        // The next sample continues the open minute rather than starting a history of its own.
        h.try_push(metric(t0 + 3 * 720 * 5000)).unwrap();
        assert_eq!(h.query(None, Some(Resolution::Sample)).len(), 721);
    }

    #[test]
    fn the_metrics_history_keeps_the_file_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let store = Arc::new(RedbStore::open(&path, 100).unwrap());
        // Small tiers so that the test runs many times around each ring quickly.
        let tiers = cacheos_core::metrics_history::default_tiers(5)
            .map(|mut t| {
                t.keep_ms /= 60;
                t.step_ms /= 60;
                t.capacity = (t.capacity / 60).max(2);
                t
            })
            .to_vec();
        let h = cacheos_core::MetricsHistory::with_tiers(store.clone(), tiers).unwrap();
        let mut sizes = Vec::new();
        for i in 0..8_000u64 {
            h.try_push(metric(1_000_000 + i * 100)).unwrap();
            if i % 2000 == 1999 {
                store.flush().unwrap();
                sizes.push(std::fs::metadata(&path).unwrap().len());
            }
        }
        let total: usize = cacheos_core::metrics_history::Resolution::ALL
            .iter()
            .map(|r| store.list_records(r.kind()).unwrap().len())
            .sum();
        let bound: usize = h.lens().iter().map(|(_, n)| n).sum();
        assert_eq!(total, bound);
        // Once the rings are full the file stops growing (redb reuses the freed pages).
        assert!(sizes[3] <= sizes[1] + (64 << 10), "{sizes:?}");
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
