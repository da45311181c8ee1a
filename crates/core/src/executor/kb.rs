//! The `kb.*` arms of the executor: resolving a source to a directory, starting and cancelling indexing jobs,
//! overlaying `indexing`/`offline` on the stored source states, and hiding drive passages from callers who may not
//! read drives.

use std::path::PathBuf;

use super::{Core, Done, KbDeps, Output};
use crate::auth::Caller;
use crate::error::CoreError;
use crate::kb::{check_relative_path, extractive_answer, KbJob, KbSearchResult, KbSourceState, DOCS_SOURCE};
use crate::operation::Operation;

/// Most passages `kb.search` returns.
pub const MAX_LIMIT: usize = 50;

impl Core {
    fn kb_deps(&self) -> Result<&KbDeps, CoreError> {
        self.kb
            .get()
            .ok_or_else(|| CoreError::FailedPrecondition("the knowledge base is not available in this daemon".into()))
    }

    /// True when `caller` may read drive contents (the privilege of `drive.files`).
    fn may_read_drives(&self, caller: &Caller) -> bool {
        Operation::lookup("drive.files").is_some_and(|info| self.deps.authorizer.authorize(caller, info).is_ok())
    }

    /// Drive names that are attached now (sources of other drives are offline).
    fn attached_drives(&self) -> Vec<String> {
        self.deps.drives.as_deref().map(|d| d.names()).unwrap_or_default()
    }

    /// The directory a source names: the documentation directory, or the first mounted file system of a drive.
    fn kb_root(&self, source: &str) -> Result<PathBuf, CoreError> {
        if source == DOCS_SOURCE {
            return Ok(self.kb_deps()?.docs_dir.clone());
        }
        let drives = self.drive_manager()?;
        let info = match drives.info(source) {
            Ok(i) => i,
            Err(crate::drive::DriveError::NotFound { .. }) => {
                return Err(CoreError::InvalidArgument {
                    field: "source",
                    reason: format!("{source:?} is neither \"docs\" nor an attached drive"),
                })
            }
            Err(e) => return Err(e.into()),
        };
        info.partitions
            .iter()
            .find_map(|p| p.mount_point.clone())
            .ok_or_else(|| CoreError::FailedPrecondition(format!("drive {source} has no mounted file system")))
    }

    pub(super) fn run_kb(&self, caller: &Caller, op: &Operation) -> Result<Output, CoreError> {
        let deps = self.kb_deps()?;
        let kb = deps.jobs.kb();
        let readable = self.may_read_drives(caller);
        let visible = |source: &str| source == DOCS_SOURCE || readable;
        Ok(match op {
            Operation::KbIndex(a) => {
                if let Some(p) = &a.path {
                    check_relative_path(p).map_err(|reason| CoreError::InvalidArgument { field: "path", reason })?;
                }
                let root = self.kb_root(&a.source)?;
                deps.jobs.start(&a.source, root.clone(), a.path.clone())?;
                Output::KbJob(KbJob {
                    source: a.source.clone(),
                    root: root.display().to_string(),
                    state: "started".into(),
                })
            }
            Operation::KbSources => {
                let attached = self.attached_drives();
                let mut sources = kb.sources()?;
                sources.retain(|s| visible(&s.name));
                for s in &mut sources {
                    if deps.jobs.is_running(&s.name) {
                        s.state = KbSourceState::Indexing;
                    } else if s.name != DOCS_SOURCE && !attached.contains(&s.name) {
                        s.state = KbSourceState::Offline;
                    }
                }
                Output::KbSources(sources)
            }
            Operation::KbSearch(a) => {
                // The chat sends an empty query for "the whole utterance".
                let query = if a.query.trim().is_empty() {
                    caller.utterance.clone().unwrap_or_default()
                } else {
                    a.query.clone()
                };
                let limit = a.limit.unwrap_or(5);
                if limit == 0 || limit > MAX_LIMIT {
                    return Err(CoreError::InvalidArgument {
                        field: "limit",
                        reason: format!("{limit} is outside 1..={MAX_LIMIT}"),
                    });
                }
                if !query.chars().any(char::is_alphanumeric) {
                    return Err(CoreError::InvalidArgument {
                        field: "query",
                        reason: "must contain a word".into(),
                    });
                }
                let passages = self.kb_passages(caller, &query, limit)?;
                Output::KbSearch(KbSearchResult { query, passages })
            }
            Operation::KbAsk(a) => {
                // The chat sends an empty question for "the whole utterance".
                let question = if a.question.trim().is_empty() {
                    caller.utterance.clone().unwrap_or_default()
                } else {
                    a.question.clone()
                };
                if !question.chars().any(char::is_alphanumeric) {
                    return Err(CoreError::InvalidArgument {
                        field: "question",
                        reason: "must contain a word".into(),
                    });
                }
                let passages = self.kb_passages(caller, &question, 8)?;
                Output::KbAnswer(extractive_answer(&question, passages))
            }
            Operation::KbRemove(a) => {
                if deps.jobs.is_running(&a.source) {
                    return Err(CoreError::Busy(format!(
                        "knowledge base source {} is being indexed; cancel the job first",
                        a.source
                    )));
                }
                if !visible(&a.source) || !kb.remove(&a.source)? {
                    return Err(CoreError::NotFound {
                        kind: "knowledge base source",
                        name: a.source.clone(),
                    });
                }
                Output::Done(Done {
                    message: format!("knowledge base source {} removed; its files are untouched", a.source),
                })
            }
            Operation::KbCancel(a) => {
                if !deps.jobs.cancel(&a.source) {
                    return Err(CoreError::FailedPrecondition(format!(
                        "no indexing job runs for knowledge base source {}",
                        a.source
                    )));
                }
                Output::Done(Done {
                    message: format!("indexing of {} is being cancelled", a.source),
                })
            }
            _ => unreachable!("run_kb only gets kb.* operations"),
        })
    }

    /// Ranked passages the caller may see, with detached drives' passages marked offline.
    fn kb_passages(&self, caller: &Caller, query: &str, limit: usize) -> Result<Vec<crate::kb::Passage>, CoreError> {
        let kb = self.kb_deps()?.jobs.kb();
        let readable = self.may_read_drives(caller);
        let attached = self.attached_drives();
        // Ask for more when some may be hidden, so the caller still gets `limit` visible ones.
        let want = if readable { limit } else { limit * 4 };
        let mut passages = kb.search(query, want)?;
        passages.retain(|p| p.citation.source == DOCS_SOURCE || readable);
        passages.truncate(limit);
        for p in &mut passages {
            p.offline = p.citation.source != DOCS_SOURCE && !attached.contains(&p.citation.source);
        }
        Ok(passages)
    }
}
