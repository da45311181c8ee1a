//! The chat service: sessions and history (kept in the store), interpretation without side effects, and
//! execution of what was understood through [`Core::execute`] with the utterance and session in the audit log.
//! Shared by every chat front end (REST, D-Bus, `cacheosctl chat`, the console), so sessions and history are one.

use std::sync::{Arc, Mutex};

use cacheos_core::{Caller, Core, CoreError, Frontend, Principal, Store};
use serde::{Deserialize, Serialize};

use crate::engine::{ChatAction, Engine, Interpretation, Known, Lang, Session};
use crate::model::{parse_proposal, ModelBackend, Proposal};
use crate::render;

const HISTORY_KIND: &str = "chat-history";
const SESSION_KIND: &str = "chat-session";
/// Entries kept per session.
pub const HISTORY_LIMIT: usize = 200;

/// One exchange in a session's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// When (ms since the Unix epoch).
    pub time_ms: u64,
    /// What the person wrote.
    pub text: String,
    /// What CacheOS answered.
    pub reply: String,
    /// The operation run, if any.
    pub operation: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct StoredSession {
    owner: Option<Principal>,
    state: Session,
}

/// The answer to one chat message.
#[derive(Debug, Clone, Serialize)]
pub struct ChatReply {
    /// Session id (new when none was given).
    pub session: String,
    /// The interpretation (see [`Interpretation::to_json`]).
    pub interpretation: serde_json::Value,
    /// The operation that ran, with its result or error.
    pub executed: Option<Executed>,
    /// The reply text, in the language of the question.
    pub reply: String,
}

/// An operation the chat ran.
#[derive(Debug, Clone, Serialize)]
pub struct Executed {
    /// Dotted name.
    pub operation: String,
    /// Whether it succeeded.
    pub ok: bool,
    /// The result document (as REST returns it), when it succeeded.
    pub output: Option<serde_json::Value>,
    /// Stable error code, when it failed.
    pub error_code: Option<String>,
    /// Error message, when it failed.
    pub error: Option<String>,
}

/// Why a chat request was refused before interpretation.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// The session belongs to someone else.
    #[error("chat session {0:?} belongs to another user")]
    NotYourSession(String),
    /// A bad session id.
    #[error("invalid session id {0:?}: use 1 to 64 letters, digits, '-' or '_'")]
    BadSession(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] cacheos_core::StoreError),
}

/// Supplies what the engine may refer to (task names, drive names, now).
pub type KnownFn = Box<dyn Fn() -> Known + Send + Sync>;

/// The chat service.
pub struct ChatService {
    core: Arc<Core>,
    store: Arc<dyn Store>,
    engine: Engine,
    known: KnownFn,
    lock: Mutex<()>,
    counter: Mutex<u64>,
    model: Option<Box<dyn ModelBackend>>,
}

fn valid_session(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl ChatService {
    /// A service executing through `core` and keeping sessions in `store`.
    pub fn new(core: Arc<Core>, store: Arc<dyn Store>, known: KnownFn) -> Self {
        Self {
            core,
            store,
            engine: Engine::new(),
            known,
            lock: Mutex::new(()),
            counter: Mutex::default(),
            model: None,
        }
    }

    /// Uses another engine (for example [`Engine::rules_only`], the parser without the classifier).
    pub fn with_engine(mut self, engine: Engine) -> Self {
        self.engine = engine;
        self
    }

    /// Adds a language-model backend, consulted only for what the rule engine did not understand.
    pub fn with_model(mut self, model: Box<dyn ModelBackend>) -> Self {
        self.model = Some(model);
        self
    }

    /// The understanding pipeline first; only where it is not confident (it would ask back between readings or does
    /// not understand), the model backend's proposal, treated exactly like
    /// the engine's own result. An unusable proposal (unknown operation, bad arguments, backend error) leaves the
    /// answer at "not understood": nothing is guessed.
    fn understand(&self, text: &str, state: &mut Session, known: &Known) -> Interpretation {
        let before = state.clone();
        let (interp, confident) = self.engine.understand(text, state, known);
        let Some(model) = &self.model else {
            return interp;
        };
        if confident {
            return interp;
        }
        let lang = state.lang.unwrap_or(Lang::En);
        match model.propose(text, lang, cacheos_core::OPERATIONS) {
            Ok(Some(Proposal::Operation { name, args })) => match parse_proposal(&name, &args) {
                Ok(op) => {
                    // The backend's reading replaces the ask-back: the session forgets the offered readings.
                    *state = Session {
                        lang: state.lang,
                        ..before
                    };
                    self.engine.operation(op, lang, state)
                }
                Err(_) => interp,
            },
            Ok(Some(Proposal::Question(text))) => Interpretation::Question { text, options: vec![] },
            Ok(None) | Err(_) => interp,
        }
    }

    fn new_session_id(&self, now: u64) -> String {
        let mut n = self.counter.lock().unwrap();
        *n += 1;
        format!("s{now:x}-{n}")
    }

    fn load(&self, id: &str, principal: &Principal) -> Result<StoredSession, ChatError> {
        let s: StoredSession = match self.store.get_record(SESSION_KIND, id)? {
            Some(v) => serde_json::from_value(v).unwrap_or_default(),
            None => StoredSession {
                owner: Some(principal.clone()),
                state: Session::default(),
            },
        };
        if s.owner.as_ref().is_some_and(|o| o != principal) {
            return Err(ChatError::NotYourSession(id.into()));
        }
        Ok(s)
    }

    fn session_id(&self, given: Option<&str>, now: u64) -> Result<String, ChatError> {
        match given.filter(|s| !s.is_empty()) {
            Some(s) if valid_session(s) => Ok(s.to_string()),
            Some(s) => Err(ChatError::BadSession(s.to_string())),
            None => Ok(self.new_session_id(now)),
        }
    }

    /// Interprets without executing and without changing the session.
    pub fn interpret(
        &self,
        principal: &Principal,
        session: Option<&str>,
        text: &str,
    ) -> Result<(String, serde_json::Value), ChatError> {
        let known = (self.known)();
        let id = self.session_id(session, known.now_ms)?;
        let mut state = self.load(&id, principal)?.state;
        Ok((id, self.understand(text, &mut state, &known).to_json()))
    }

    /// Interprets and acts: runs read-only and changing operations, parks destructive ones until "yes", runs a
    /// confirmed one, answers chat actions. Records the exchange in the session's history.
    pub fn chat(
        &self,
        frontend_principal: &Principal,
        session: Option<&str>,
        text: &str,
    ) -> Result<ChatReply, ChatError> {
        let _serial = self.lock.lock().unwrap();
        let known = (self.known)();
        let id = self.session_id(session, known.now_ms)?;
        let mut stored = self.load(&id, frontend_principal)?;
        let planned_by = stored.state.pending_utterance.take();
        let interp = self.understand(text, &mut stored.state, &known);
        let lang = stored.state.lang.unwrap_or(Lang::En);
        let utterance = match (&interp, planned_by) {
            // A confirmed operation is recorded with the utterance that planned it and the confirmation.
            (
                Interpretation::Chat {
                    action: ChatAction::Confirm { .. },
                    ..
                },
                Some(plan),
            ) => format!("{plan} → {text}"),
            _ => text.to_string(),
        };
        if stored.state.pending.is_some() {
            stored.state.pending_utterance = Some(text.to_string());
        }
        let caller = Caller {
            frontend: Frontend::Chat,
            principal: frontend_principal.clone(),
            session: Some(id.clone()),
            utterance: Some(utterance),
        };
        let (executed, reply) = match &interp {
            // A terminal or a byte stream cannot travel in a chat message: the interpretation names the operation
            // (a console with a terminal opens the shell itself) and the explanation says how.
            Interpretation::Operation {
                operation:
                    cacheos_core::Operation::SandboxShell(_)
                    | cacheos_core::Operation::SandboxCopyIn(_)
                    | cacheos_core::Operation::SandboxCopyOut(_),
                explanation,
                ..
            } => (None, explanation.clone()),
            Interpretation::Operation {
                operation,
                needs_confirmation: false,
                explanation,
                ..
            } => {
                let (ex, text) = self.run(&caller, operation.clone(), lang);
                (Some(ex), format!("{explanation}\n{text}"))
            }
            Interpretation::Operation { explanation, .. } => (None, explanation.clone()),
            Interpretation::Chat {
                action: ChatAction::Confirm { operation },
                reply,
            } => {
                let (ex, text) = self.run(&caller, operation.clone(), lang);
                (Some(ex), format!("{reply}\n{text}"))
            }
            Interpretation::Chat {
                action: ChatAction::ClearHistory,
                reply,
            } => {
                self.clear_history(frontend_principal, &id)?;
                (None, reply.clone())
            }
            Interpretation::Chat { reply, .. } => (None, reply.clone()),
            Interpretation::Question { text, options } => {
                let mut s = text.clone();
                for (i, o) in options.iter().enumerate() {
                    s.push_str(&format!("\n  {}. {o}", i + 1));
                }
                (None, s)
            }
            Interpretation::NotUnderstood { reply, suggestions } => {
                let mut s = reply.clone();
                for o in suggestions {
                    s.push_str(&format!("\n  - {o}"));
                }
                (None, s)
            }
        };
        self.store
            .put_record(SESSION_KIND, &id, &serde_json::to_value(&stored).unwrap_or_default())?;
        if !matches!(
            interp,
            Interpretation::Chat {
                action: ChatAction::ClearHistory,
                ..
            }
        ) {
            let mut hist = self.history(frontend_principal, &id)?;
            hist.push(HistoryEntry {
                time_ms: known.now_ms,
                text: text.chars().take(2000).collect(),
                reply: reply.clone(),
                operation: executed.as_ref().map(|e| e.operation.clone()),
            });
            let skip = hist.len().saturating_sub(HISTORY_LIMIT);
            let hist: Vec<_> = hist.into_iter().skip(skip).collect();
            self.store
                .put_record(HISTORY_KIND, &id, &serde_json::to_value(&hist).unwrap_or_default())?;
        }
        Ok(ChatReply {
            session: id,
            interpretation: interp.to_json(),
            executed,
            reply,
        })
    }

    /// A session's history, oldest first.
    pub fn history(&self, principal: &Principal, session: &str) -> Result<Vec<HistoryEntry>, ChatError> {
        self.load(session, principal)?;
        Ok(self
            .store
            .get_record(HISTORY_KIND, session)?
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default())
    }

    /// Deletes a session's history (the person's right to forget).
    pub fn clear_history(&self, principal: &Principal, session: &str) -> Result<(), ChatError> {
        self.load(session, principal)?;
        self.store.delete_record(HISTORY_KIND, session)?;
        Ok(())
    }

    /// After an attach: where each file system is mounted and what lies at its top level, read through
    /// `drive.files` (audited with the same utterance) so the reply shows the result, not only the plan.
    fn top_level(&self, caller: &Caller, d: &cacheos_core::drive::DriveInfo, lang: Lang) -> String {
        let mut lines = Vec::new();
        for p in d.partitions.iter().filter(|p| p.mount_point.is_some()).take(4) {
            let volume = p
                .mount_point
                .as_ref()
                .and_then(|m| m.file_name())
                .map(|f| f.to_string_lossy().into_owned());
            let op = cacheos_core::Operation::DriveFiles(cacheos_core::drive::FilesArgs {
                name: d.name.clone(),
                path: String::new(),
                volume,
            });
            match self.core.execute(caller, op) {
                Ok(cacheos_core::Output::Files(l)) => lines.push(render::top_level(&l, lang)),
                Ok(_) => {}
                Err(e) => lines.push(render::error(&e, lang)),
            }
        }
        if lines.is_empty() {
            lines.push(if lang == Lang::De {
                "Es wurde kein Dateisystem eingehängt (siehe oben).".into()
            } else {
                "No file system was mounted (see above).".into()
            });
        }
        lines.join("\n")
    }

    fn run(&self, caller: &Caller, op: cacheos_core::Operation, lang: Lang) -> (Executed, String) {
        let name = op.name().to_string();
        match self.core.execute(caller, op.clone()) {
            Ok(out) => {
                let mut text = render::result(&op, &out, lang);
                if let (cacheos_core::Operation::DriveAttach(_), cacheos_core::Output::Drive(d)) = (&op, &out) {
                    // The mount path and files go before the "next:" line.
                    let (head, next) = match text.rfind('\n') {
                        Some(i) => (text[..i].to_string(), text[i..].to_string()),
                        None => (text.clone(), String::new()),
                    };
                    text = format!("{head}\n{}{next}", self.top_level(caller, d, lang));
                }
                let output = serde_json::to_value(&out).ok();
                (
                    Executed {
                        operation: name,
                        ok: true,
                        output,
                        error_code: None,
                        error: None,
                    },
                    text,
                )
            }
            Err(e) => {
                let mut text = render::error(&e, lang);
                if let Some(r) = render::remedy(&op, &e, lang) {
                    text = format!("{text}\n{r}");
                }
                (
                    Executed {
                        operation: name,
                        ok: false,
                        output: None,
                        error_code: Some(e.code().to_string()),
                        error: Some(e.full_message()),
                    },
                    text,
                )
            }
        }
    }
}

impl From<ChatError> for CoreError {
    fn from(e: ChatError) -> Self {
        match e {
            ChatError::NotYourSession(s) => CoreError::PermissionDenied {
                operation: "chat",
                reason: format!("session {s:?} belongs to another user"),
            },
            ChatError::BadSession(s) => CoreError::InvalidArgument {
                field: "session",
                reason: format!("{s:?}: use 1 to 64 letters, digits, '-' or '_'"),
            },
            ChatError::Store(e) => CoreError::Store(e),
        }
    }
}
