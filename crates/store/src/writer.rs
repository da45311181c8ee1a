//! The audit writer: one thread takes every queued audit record and writes them in one redb transaction (group
//! commit).
//!
//! - An append is given its id under the queue lock, so ids are strictly increasing in the order the records were
//!   queued, and batches are written in that order by the one writer thread.
//! - A record that asks for [`Durability::Immediate`] (anything that changed the system, failed or was denied)
//!   makes its whole batch an immediate (fsync'd) commit, and its append returns only once that commit is done.
//! - A record with [`Durability::Eventual`] (a successful read-only operation) returns as soon as it is queued. Its
//!   batch is committed without fsync (redb `Durability::None`; on Linux redb's `Eventual` fsyncs like
//!   `Immediate`), and becomes durable with the next immediate commit: the next changing operation's, the writer's
//!   own after [`FLUSH_INTERVAL`] of idleness, [`AuditWriter::flush`] (SIGTERM) or dropping the store.
//! - Queries wait until everything queued before them is committed, so a client reads its own records.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cacheos_core::store::{Durability, StoreError};
use redb::{Database, ReadableTableMetadata};

use cacheos_core::store::INTENT_KIND;

use crate::{AUDIT, KEY_NEXT_ID, META, RECORDS};

/// How long eventual records may stay without an fsync while the writer is idle.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(500);

/// A queued record: id, JSON, whether it needs immediate durability, the intent record it replaces (deleted in the
/// same commit, so after a crash an operation has its intent or its audit record, never both).
type Queued = (u64, Vec<u8>, bool, Option<String>);

#[derive(Debug, Default)]
struct State {
    /// Next id to hand out.
    next_id: u64,
    /// Records not yet taken by the writer, in id order.
    pending: Vec<Queued>,
    /// Every id up to this one is committed (visible to readers) or failed.
    written_upto: u64,
    /// Every id up to this one is on stable storage.
    durable_upto: u64,
    /// Immediate ids whose batch failed, with the error, for their waiting appender.
    failed: HashMap<u64, String>,
    /// Eventual records lost because their batch failed (they were already acknowledged; logged).
    lost: u64,
    /// Set when the store is dropped: write what is queued, fsync, exit.
    shutdown: bool,
}

struct Shared {
    db: Arc<Database>,
    max_audit: u64,
    state: Mutex<State>,
    /// The writer waits here for work.
    work: Condvar,
    /// Appenders, queries and flushes wait here for the writer.
    progress: Condvar,
}

/// The queue and its writer thread.
pub(crate) struct AuditWriter {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl AuditWriter {
    /// Starts the writer; `next_id` is the first id to hand out.
    pub(crate) fn start(db: Arc<Database>, max_audit: u64, next_id: u64) -> Result<Self, StoreError> {
        let shared = Arc::new(Shared {
            db,
            max_audit,
            state: Mutex::new(State {
                next_id,
                written_upto: next_id - 1,
                durable_upto: next_id - 1,
                ..State::default()
            }),
            work: Condvar::new(),
            progress: Condvar::new(),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || s.run())
            .map_err(|e| StoreError::backend("start audit writer", e))?;
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    /// Queues a record and returns its id: at once for eventual durability, after its fsync'd commit for
    /// immediate durability.
    pub(crate) fn append(
        &self,
        bytes: Vec<u8>,
        durability: Durability,
        intent: Option<&str>,
    ) -> Result<u64, StoreError> {
        let immediate = durability == Durability::Immediate;
        let mut st = self.shared.state.lock().unwrap();
        let id = st.next_id;
        st.next_id += 1;
        st.pending.push((id, bytes, immediate, intent.map(str::to_owned)));
        self.shared.work.notify_one();
        if !immediate {
            return Ok(id);
        }
        loop {
            if let Some(e) = st.failed.remove(&id) {
                return Err(StoreError::backend("append audit record", e));
            }
            if st.durable_upto >= id {
                return Ok(id);
            }
            st = self.shared.progress.wait(st).unwrap();
        }
    }

    /// Waits until every record queued before this call is committed (visible to readers).
    pub(crate) fn wait_written(&self) {
        let mut st = self.shared.state.lock().unwrap();
        let target = st.next_id - 1;
        while st.written_upto < target {
            st = self.shared.progress.wait(st).unwrap();
        }
    }

    /// Makes every record queued before this call durable: waits for the writer to commit them, then commits
    /// immediately (which also persists earlier non-durable commits).
    pub(crate) fn flush(&self) -> Result<(), StoreError> {
        let target = {
            let mut st = self.shared.state.lock().unwrap();
            let target = st.next_id - 1;
            while st.written_upto < target {
                st = self.shared.progress.wait(st).unwrap();
            }
            target
        };
        self.shared.commit(&[], true)?;
        let mut st = self.shared.state.lock().unwrap();
        st.durable_upto = st.durable_upto.max(target);
        self.shared.progress.notify_all();
        Ok(())
    }

    /// Eventual records lost to failed writes since the store was opened.
    pub(crate) fn lost(&self) -> u64 {
        self.shared.state.lock().unwrap().lost
    }
}

impl Drop for AuditWriter {
    fn drop(&mut self) {
        self.shared.state.lock().unwrap().shutdown = true;
        self.shared.work.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Shared {
    fn run(&self) {
        let mut last_durable = Instant::now();
        loop {
            let mut st = self.state.lock().unwrap();
            loop {
                if !st.pending.is_empty() || st.shutdown {
                    break;
                }
                if st.written_upto > st.durable_upto {
                    let left = FLUSH_INTERVAL.saturating_sub(last_durable.elapsed());
                    if left.is_zero() {
                        break;
                    }
                    st = self.work.wait_timeout(st, left).unwrap().0;
                } else {
                    st = self.work.wait(st).unwrap();
                }
            }
            if st.shutdown && st.pending.is_empty() && st.written_upto == st.durable_upto {
                return;
            }
            let batch = std::mem::take(&mut st.pending);
            let idle_flush = st.written_upto > st.durable_upto && last_durable.elapsed() >= FLUSH_INTERVAL;
            let immediate = st.shutdown || idle_flush || batch.iter().any(|(_, _, i, _)| *i);
            let upto = batch.last().map_or(st.written_upto, |(hi, _, _, _)| *hi);
            drop(st);

            let result = self.commit(&batch, immediate);

            let mut st = self.state.lock().unwrap();
            st.written_upto = st.written_upto.max(upto);
            match result {
                Ok(()) => {
                    if immediate {
                        st.durable_upto = st.durable_upto.max(upto);
                        last_durable = Instant::now();
                    }
                }
                Err(e) => {
                    let msg = e.to_string();
                    tracing::error!(error = %msg, records = batch.len(), "audit records could not be written");
                    for (id, _, imm, _) in &batch {
                        if *imm {
                            st.failed.insert(*id, msg.clone());
                        } else {
                            st.lost += 1;
                        }
                    }
                    // Try the flush again later, not in a spin; at shutdown, give up.
                    last_durable = Instant::now();
                    if st.shutdown {
                        st.durable_upto = st.written_upto;
                    }
                }
            }
            self.progress.notify_all();
        }
    }

    /// Writes `batch` (possibly empty) in one transaction.
    fn commit(&self, batch: &[Queued], immediate: bool) -> Result<(), StoreError> {
        let op = "append audit records";
        let mut tx = self.db.begin_write().map_err(|e| StoreError::backend(op, e))?;
        tx.set_durability(if immediate {
            redb::Durability::Immediate
        } else {
            redb::Durability::None
        });
        let r: Result<(), redb::Error> = (|| {
            if let Some((hi, _, _, _)) = batch.last() {
                tx.open_table(META)?.insert(KEY_NEXT_ID, hi + 1)?;
                let mut audit = tx.open_table(AUDIT)?;
                for (id, bytes, _, _) in batch {
                    audit.insert(*id, bytes.as_slice())?;
                }
                let intents: Vec<&str> = batch.iter().filter_map(|(_, _, _, i)| i.as_deref()).collect();
                if !intents.is_empty() {
                    let mut records = tx.open_table(RECORDS)?;
                    for key in intents {
                        records.remove((INTENT_KIND, key))?;
                    }
                }
                // Checking the table length costs a scan of its metadata; do it when an id crosses a multiple of
                // 128, so the log holds at most `max_audit + 128` records.
                if batch.iter().any(|(id, _, _, _)| id % 128 == 0) {
                    let len = audit.len()?;
                    for _ in self.max_audit..len {
                        audit.pop_first()?;
                    }
                }
            }
            Ok(())
        })();
        r.map_err(|e| StoreError::backend(op, e))?;
        tx.commit().map_err(|e| StoreError::backend(op, e))
    }
}
