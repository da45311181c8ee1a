//! The knowledge base: operation arguments and results, the narrow [`KnowledgeBase`] trait the index sits behind,
//! and [`KbJobs`], which runs indexing as a cancellable background job that publishes progress events.
//!
//! The core knows no search engine: `cacheos-kb` implements the trait with tantivy and cacheosd wires it in. Sources
//! are named: `docs` is the appliance's own documentation, every other name is an attached drive (optionally a path
//! below its first mounted file system). A source whose drive is detached is reported `offline`, never deleted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::event::{EventBus, EventKind};

/// The source name of the appliance's own documentation.
pub const DOCS_SOURCE: &str = "docs";

/// Arguments of `kb.index`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KbIndexArgs {
    /// `docs`, or the name of an attached drive.
    pub source: String,
    /// A relative path below the drive's mounted file system; the whole file system when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// Arguments naming a source (`kb.remove`, `kb.cancel`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KbSourceRef {
    /// Source name (`docs` or a drive name).
    pub source: String,
}

/// Arguments of `kb.search`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KbSearchArgs {
    /// Words to look for, in German or English.
    pub query: String,
    /// At most this many passages (1..=50, default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// Arguments of `kb.ask`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KbAskArgs {
    /// The question, in German or English.
    pub question: String,
}

/// The state of a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum KbSourceState {
    /// Indexed and searchable.
    Ready,
    /// An indexing job runs.
    Indexing,
    /// The drive is detached: its passages are kept but marked offline.
    Offline,
    /// The last job was cancelled; what was indexed until then stays.
    Cancelled,
    /// The last job failed; the message is in `error`.
    Failed,
}

/// A source as `kb.sources` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct KbSource {
    /// `docs` or the drive name.
    pub name: String,
    /// The directory that was indexed, as seen by the appliance.
    pub root: String,
    /// The path below the drive, when one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Documents indexed.
    pub documents: u64,
    /// Passages (chunks) indexed.
    pub chunks: u64,
    /// Bytes of text read from the documents.
    pub bytes: u64,
    /// Files skipped (binary, unreadable, no text, symbolic links, vanished).
    pub skipped: u64,
    /// When the last job ended (ms since the Unix epoch); 0 before the first.
    pub updated_ms: u64,
    /// State.
    pub state: KbSourceState,
    /// The last job's error, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Where a passage is: exact enough to open the file at that place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Citation {
    /// Source name.
    pub source: String,
    /// File path relative to the source's root.
    pub path: String,
    /// The heading (Markdown/HTML heading, man page section) the passage is under, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heading: Option<String>,
    /// The PDF page, for PDFs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<u32>,
    /// First line (1-based) of the passage in the file (in the page's text for PDFs).
    pub line_start: u32,
    /// Last line (inclusive).
    pub line_end: u32,
}

/// A ranked passage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Passage {
    /// Where it is.
    pub citation: Citation,
    /// The passage's text.
    pub text: String,
    /// BM25 score (higher is better; comparable within one query only).
    pub score: f32,
    /// Share (0..=1) of the query's content words found in the passage.
    pub coverage: f32,
    /// True when the source's drive is detached.
    #[serde(default)]
    pub offline: bool,
}

/// The result of `kb.search`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct KbSearchResult {
    /// The query as given.
    pub query: String,
    /// Passages, best first.
    pub passages: Vec<Passage>,
}

/// The result of `kb.ask`: without a model, the best passages quoted with numbered citations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct KbAnswer {
    /// The question as given.
    pub question: String,
    /// False when nothing relevant was found (then `passages` is empty).
    pub found: bool,
    /// The quoted passages; the citation number of `passages[i]` is `i + 1`.
    pub passages: Vec<Passage>,
}

/// The result of `kb.index`: the job was started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct KbJob {
    /// Source name.
    pub source: String,
    /// The directory being indexed.
    pub root: String,
    /// `started`.
    pub state: String,
}

/// Progress of an indexing job, published as `kb-index` events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IndexProgress {
    /// Files looked at so far.
    pub files_done: u64,
    /// Files found (grows while the walk goes on).
    pub files_total: u64,
    /// Bytes of text read so far.
    pub bytes_done: u64,
}

/// What an indexing run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IndexReport {
    /// Files (re)indexed in this run.
    pub indexed: u64,
    /// Files unchanged since the last run (size, mtime or hash).
    pub unchanged: u64,
    /// Files that disappeared since the last run, whose passages were removed.
    pub removed: u64,
    /// Files skipped (binary, unreadable, no text, symbolic links, vanished while indexing).
    pub skipped: u64,
    /// Bytes of text read.
    pub bytes: u64,
    /// True when the run was cancelled (what was indexed until then stays).
    pub cancelled: bool,
}

/// Errors of the knowledge base.
#[derive(Debug, thiserror::Error)]
pub enum KbError {
    /// The source is not indexed.
    #[error("knowledge base source {0:?} is not indexed")]
    UnknownSource(String),
    /// The root to index cannot be opened.
    #[error("cannot open {path} for indexing")]
    Root {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The index failed.
    #[error("knowledge base index failed: {0}")]
    Index(String),
    /// Reading or writing the knowledge base's own files failed.
    #[error("knowledge base file {path} failed")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The index behind `kb.*`. Implementations must be safe to call from several threads; `index` runs on a job
/// thread while `search` keeps answering.
pub trait KnowledgeBase: Send + Sync {
    /// Indexes every readable file strictly below `root` (no symbolic links followed) as source `name`,
    /// skipping unchanged files and removing passages of files that are gone. Calls `progress` now and then and
    /// stops early (keeping what was indexed) when `cancel` becomes true.
    fn index(
        &self,
        name: &str,
        root: &Path,
        path: Option<&str>,
        progress: &mut dyn FnMut(IndexProgress),
        cancel: &AtomicBool,
    ) -> Result<IndexReport, KbError>;
    /// The indexed sources with their figures (state `ready`, `cancelled` or `failed`; the caller overlays
    /// `indexing` and `offline`).
    fn sources(&self) -> Result<Vec<KbSource>, KbError>;
    /// Records that a job for `name` ended with `state` (and an error message when it failed).
    fn mark(&self, name: &str, root: &Path, state: KbSourceState, error: Option<String>) -> Result<(), KbError>;
    /// The best passages for `query` over all sources, best first.
    fn search(&self, query: &str, limit: usize) -> Result<Vec<Passage>, KbError>;
    /// Removes a source and its passages; false when it was not indexed.
    fn remove(&self, name: &str) -> Result<bool, KbError>;
}

/// How relevant the best passage must be for `kb.ask` to answer: the share of the question's content words it
/// contains. Below it, `kb.ask` says nothing relevant was found. Chosen on the evaluation set
/// (`crates/kb/eval`: 0.45 keeps 96 % of "nothing found" right and answers 69 % of the answerable questions).
pub const ASK_MIN_COVERAGE: f32 = 0.45;

/// Builds the extractive answer from ranked passages: the passages that cover enough of the question, at most
/// three, and none when the best one does not.
pub fn extractive_answer(question: &str, passages: Vec<Passage>) -> KbAnswer {
    let best = passages.first().map(|p| p.coverage).unwrap_or(0.0);
    let found = best >= ASK_MIN_COVERAGE;
    let passages = if found {
        passages
            .into_iter()
            .filter(|p| p.coverage >= ASK_MIN_COVERAGE.max(best * 0.6))
            .take(3)
            .collect()
    } else {
        Vec::new()
    };
    KbAnswer {
        question: question.to_string(),
        found: found && !passages.is_empty(),
        passages,
    }
}

/// Runs indexing jobs: at most one per source, each on its own thread, cancellable, publishing `kb-index` events.
pub struct KbJobs {
    kb: Arc<dyn KnowledgeBase>,
    events: EventBus,
    running: Arc<Mutex<HashMap<String, Arc<AtomicBool>>>>,
}

impl KbJobs {
    /// Jobs over this index, publishing on `events`.
    pub fn new(kb: Arc<dyn KnowledgeBase>, events: EventBus) -> Self {
        Self {
            kb,
            events,
            running: Arc::default(),
        }
    }

    /// The index.
    pub fn kb(&self) -> &Arc<dyn KnowledgeBase> {
        &self.kb
    }

    /// True while a job for `name` runs.
    pub fn is_running(&self, name: &str) -> bool {
        self.running.lock().unwrap().contains_key(name)
    }

    /// Starts a job indexing `root` as `name`; refused while one for `name` runs. The returned handle joins it.
    pub fn start(
        &self,
        name: &str,
        root: PathBuf,
        path: Option<String>,
    ) -> Result<std::thread::JoinHandle<()>, crate::CoreError> {
        let cancel = Arc::new(AtomicBool::new(false));
        {
            let mut running = self.running.lock().unwrap();
            if running.contains_key(name) {
                return Err(crate::CoreError::Busy(format!(
                    "knowledge base source {name} is being indexed already"
                )));
            }
            running.insert(name.to_string(), cancel.clone());
        }
        let (kb, events, running, job) = (
            self.kb.clone(),
            self.events.clone(),
            self.running.clone(),
            name.to_string(),
        );
        events.publish(EventKind::KbIndex {
            source: job.clone(),
            phase: KbPhase::Started,
            progress: IndexProgress {
                files_done: 0,
                files_total: 0,
                bytes_done: 0,
            },
            detail: Some(root.display().to_string()),
        });
        let spawned = std::thread::Builder::new()
            .name(format!("kb-index-{name}"))
            .spawn(move || {
                let name = job;
                let mut last = std::time::Instant::now();
                let mut progress = |p: IndexProgress| {
                    if last.elapsed() >= std::time::Duration::from_millis(250) {
                        last = std::time::Instant::now();
                        events.publish(EventKind::KbIndex {
                            source: name.clone(),
                            phase: KbPhase::Progress,
                            progress: p,
                            detail: None,
                        });
                    }
                };
                let result = kb.index(&name, &root, path.as_deref(), &mut progress, &cancel);
                let (phase, state, detail, error, report) = match result {
                    Ok(r) if r.cancelled => (KbPhase::Cancelled, KbSourceState::Cancelled, None, None, r),
                    Ok(r) => (
                        KbPhase::Finished,
                        KbSourceState::Ready,
                        Some(format!(
                            "{} indexed, {} unchanged, {} removed, {} skipped",
                            r.indexed, r.unchanged, r.removed, r.skipped
                        )),
                        None,
                        r,
                    ),
                    Err(e) => {
                        let msg = crate::error::chain(&e);
                        (
                            KbPhase::Failed,
                            KbSourceState::Failed,
                            Some(msg.clone()),
                            Some(msg),
                            IndexReport::default(),
                        )
                    }
                };
                if let Err(e) = kb.mark(&name, &root, state, error) {
                    tracing::warn!(source = %name, error = %e, "knowledge base state not recorded");
                }
                running.lock().unwrap().remove(&name);
                events.publish(EventKind::KbIndex {
                    source: name.clone(),
                    phase,
                    progress: IndexProgress {
                        files_done: report.indexed + report.unchanged + report.skipped,
                        files_total: report.indexed + report.unchanged + report.skipped,
                        bytes_done: report.bytes,
                    },
                    detail,
                });
            });
        match spawned {
            Ok(h) => Ok(h),
            Err(e) => {
                self.running.lock().unwrap().remove(name);
                Err(crate::CoreError::FailedPrecondition(format!(
                    "cannot start the indexing job: {e}"
                )))
            }
        }
    }

    /// Asks the job for `name` to stop; false when none runs.
    pub fn cancel(&self, name: &str) -> bool {
        match self.running.lock().unwrap().get(name) {
            Some(flag) => {
                flag.store(true, Ordering::SeqCst);
                true
            }
            None => false,
        }
    }
}

/// The phase of an indexing job in a `kb-index` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum KbPhase {
    Started,
    Progress,
    Finished,
    Cancelled,
    Failed,
}

/// Checks a path below a drive: relative, no `..`, no NUL.
pub fn check_relative_path(path: &str) -> Result<(), String> {
    let p = Path::new(path);
    if p.is_absolute() {
        return Err(format!("{path:?} must be relative to the drive"));
    }
    if path.contains('\0') {
        return Err("must not contain NUL".into());
    }
    if p.components()
        .any(|c| !matches!(c, std::path::Component::Normal(_) | std::path::Component::CurDir))
    {
        return Err(format!("{path:?} must stay below the drive (no ..)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passage(coverage: f32) -> Passage {
        Passage {
            citation: Citation {
                source: "docs".into(),
                path: "a.md".into(),
                heading: None,
                page: None,
                line_start: 1,
                line_end: 2,
            },
            text: "t".into(),
            score: 1.0,
            coverage,
            offline: false,
        }
    }

    #[test]
    fn answer_says_nothing_found_below_the_coverage_threshold() {
        let a = extractive_answer("q", vec![passage(0.3), passage(0.2)]);
        assert!(!a.found);
        assert!(a.passages.is_empty());
        let a = extractive_answer(
            "q",
            vec![passage(1.0), passage(0.8), passage(0.3), passage(0.9), passage(0.9)],
        );
        assert!(a.found);
        assert_eq!(a.passages.len(), 3);
        assert!(a.passages.iter().all(|p| p.coverage >= 0.6));
        assert!(!extractive_answer("q", vec![]).found);
    }

    #[test]
    fn relative_paths_stay_below() {
        assert!(check_relative_path("docs/a").is_ok());
        assert!(check_relative_path("./a").is_ok());
        assert!(check_relative_path("/etc").is_err());
        assert!(check_relative_path("a/../../etc").is_err());
    }
}
