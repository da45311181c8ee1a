//! The chat service: sessions and history (kept in the store), interpretation without side effects, and
//! execution of what was understood through [`Core::execute`] with the utterance and session in the audit log.
//! Shared by every chat front end (REST, D-Bus, `cacheosctl chat`, the console), so sessions and history are one.

use std::sync::{Arc, Mutex};

use cacheos_core::{Caller, Core, CoreError, Frontend, Principal, Store};
use serde::{Deserialize, Serialize};

use crate::engine::{ChatAction, Engine, Interpretation, Known, Lang, Session};
use crate::model::{consult, is_free_form, Consulted, ModelBackend, ModelIdentity, SCHEMA_VERSION};
use crate::render;
use crate::stream::TextStream;

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

/// What [`ChatService::chat_streaming`] hands out while it works.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatEvent {
    /// Words of a language model's answer or question as it writes them (a preview: the reply is the validated
    /// whole).
    Token(String),
    /// What will be done, before it runs.
    Interpretation {
        /// The session id.
        session: String,
        /// As [`ChatReply::interpretation`].
        interpretation: serde_json::Value,
    },
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
    model: Option<Arc<dyn ModelBackend>>,
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

    /// Adds a language-model backend, consulted (while it has an active model) only for what the pipeline is not
    /// confident about and for free-form questions.
    pub fn with_model(mut self, model: Arc<dyn ModelBackend>) -> Self {
        self.model = Some(model);
        self
    }

    /// Stops the language-model generations running now (a Stop button, Ctrl-C); the chats waiting for them
    /// answer that the model was stopped. Nothing without a backend.
    pub fn stop_model(&self) {
        if let Some(m) = &self.model {
            m.stop();
        }
    }

    /// The understanding pipeline first; only where it is not confident (it would ask back between readings or does
    /// not understand), or for a free-form question ("erkläre mir …"), the model backend's proposal, validated like
    /// REST input (one retry with the error, then a question back) and treated exactly like the engine's own
    /// result. Also returns which model read it (for the reply and the audit record).
    fn understand(
        &self,
        text: &str,
        state: &mut Session,
        known: &Known,
        on_event: &mut dyn FnMut(ChatEvent),
    ) -> (Interpretation, Option<ModelIdentity>) {
        let before = state.clone();
        let (interp, confident) = self.engine.understand(text, state, known);
        let Some(model) = &self.model else {
            return (interp, None);
        };
        let free_form = is_free_form(text);
        if confident && !free_form {
            return (interp, None);
        }
        let Some(id) = model.identity() else {
            return (interp, None);
        };
        let lang = state.lang.unwrap_or(Lang::En);
        // The words of an answer or question stream out while the model writes (a retry starts afresh).
        let mut words = (0, TextStream::default());
        let consulted = consult(
            model.as_ref(),
            text,
            lang,
            cacheos_core::OPERATIONS,
            free_form,
            &mut |attempt, piece| {
                if attempt != words.0 {
                    words = (attempt, TextStream::default());
                }
                let t = words.1.feed(piece);
                if !t.is_empty() {
                    on_event(ChatEvent::Token(t));
                }
            },
        );
        let de = lang == Lang::De;
        let interp = match consulted {
            Consulted::Operation(op) => {
                // The backend's reading replaces the ask-back: the session forgets the offered readings.
                *state = Session {
                    lang: state.lang,
                    ..before
                };
                self.engine.operation(op, lang, state)
            }
            Consulted::Question(text) => Interpretation::Question { text, options: vec![] },
            Consulted::Answer(reply) => Interpretation::Chat {
                action: ChatAction::ModelAnswer {
                    backend: id.backend.clone(),
                    model: id.model.clone(),
                    remote: id.remote,
                },
                reply,
            },
            Consulted::Invalid(e) => Interpretation::Question {
                text: if de {
                    format!(
                        "Das Sprachmodell {} hat zweimal ungültig geantwortet ({e}). Was genau soll ich tun?",
                        id.model
                    )
                } else {
                    format!(
                        "The language model {} answered invalidly twice ({e}). What exactly shall I do?",
                        id.model
                    )
                },
                options: vec![],
            },
            Consulted::Failed(e) => match interp {
                Interpretation::NotUnderstood { reply, suggestions } => Interpretation::NotUnderstood {
                    reply: format!(
                        "{reply} {}",
                        if de {
                            format!("(Das Sprachmodell {} an {} antwortete nicht: {e})", id.model, id.target)
                        } else {
                            format!("(The language model {} at {} did not answer: {e})", id.model, id.target)
                        }
                    ),
                    suggestions,
                },
                other => other,
            },
        };
        (interp, Some(id))
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
        Ok((id, self.understand(text, &mut state, &known, &mut |_| {}).0.to_json()))
    }

    /// Interprets and acts: runs read-only and changing operations, parks destructive ones until "yes", runs a
    /// confirmed one, answers chat actions. Records the exchange in the session's history.
    pub fn chat(
        &self,
        frontend_principal: &Principal,
        session: Option<&str>,
        text: &str,
    ) -> Result<ChatReply, ChatError> {
        self.chat_streaming(frontend_principal, session, text, &mut |_| {})
    }

    /// [`ChatService::chat`], handing out a language model's words as it writes them and the interpretation before
    /// anything runs.
    pub fn chat_streaming(
        &self,
        frontend_principal: &Principal,
        session: Option<&str>,
        text: &str,
        on_event: &mut dyn FnMut(ChatEvent),
    ) -> Result<ChatReply, ChatError> {
        let serial = self.lock.lock().unwrap();
        let known = (self.known)();
        let id = self.session_id(session, known.now_ms)?;
        let mut stored = self.load(&id, frontend_principal)?;
        let planned_by = stored.state.pending_utterance.take();
        let (interp, read_by) = self.understand(text, &mut stored.state, &known, on_event);
        on_event(ChatEvent::Interpretation {
            session: id.clone(),
            interpretation: interp.to_json(),
        });
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
        // A model-proposed operation's audit record names backend, model and schema version.
        let utterance = match &read_by {
            Some(m) => format!(
                "{utterance} [read by {} model {} at {}, proposal schema {SCHEMA_VERSION}]",
                m.backend, m.model, m.target
            ),
            None => utterance,
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
            // issue 15 (software): an install is planned first (exact versions, sizes, the sandbox), and the plan
            // itself is what "ja" confirms.
            Interpretation::Operation {
                operation: cacheos_core::Operation::SoftwareInstall(a),
                ..
            } => match self
                .core
                .execute(&caller, cacheos_core::Operation::SoftwarePlan(a.clone()))
            {
                Ok(cacheos_core::Output::SoftwarePlan(p)) => {
                    stored.state.pending = Some(cacheos_core::Operation::SoftwareInstall(p.to_args()));
                    (None, crate::render_software::plan(&p, lang))
                }
                Ok(_) => (None, String::new()),
                Err(e) => {
                    stored.state.pending = None;
                    stored.state.pending_utterance = None;
                    let mut text = render::error(&e, lang);
                    if let Some(r) = render::remedy(&cacheos_core::Operation::SoftwareInstall(a.clone()), &e, lang) {
                        text = format!("{text}\n{r}");
                    }
                    (None, text)
                }
            },
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
        let reply = match &read_by {
            Some(m) => format!(
                "{reply}\n{}",
                crate::render_model::provenance(&m.backend, &m.model, m.remote, lang)
            ),
            None => reply,
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
        // issue 15 (software): a confirmed install is followed until it ends (its steps, then the address), with
        // the other sessions free meanwhile; the history entry gets the final reply.
        let (executed, reply) = self.follow_software_job(serial, frontend_principal, &id, executed, reply, lang);
        Ok(ChatReply {
            session: id,
            interpretation: interp.to_json(),
            executed,
            reply,
        })
    }

    /// After a confirmed `software.install`: waits for the job without holding the chat lock, then renders its end
    /// and puts that reply into the session's last history entry.
    fn follow_software_job(
        &self,
        serial: std::sync::MutexGuard<'_, ()>,
        principal: &Principal,
        session: &str,
        executed: Option<Executed>,
        reply: String,
        lang: Lang,
    ) -> (Option<Executed>, String) {
        let job = executed
            .as_ref()
            .filter(|e| e.ok && e.operation == "software.install")
            .and_then(|e| e.output.as_ref())
            .and_then(|o| serde_json::from_value::<cacheos_core::software::SoftwareJob>(o.clone()).ok());
        let (Some(job), Some(sw), Some(mut ex)) = (job, self.core.software(), executed.clone()) else {
            return (executed, reply);
        };
        drop(serial);
        let done = sw.wait(&job.job, std::time::Duration::from_secs(1800)).unwrap_or(job);
        let text = crate::render_software::job(&done, lang);
        let reply = match reply.split_once('\n') {
            Some((head, _)) => format!("{head}\n{text}"),
            None => text,
        };
        ex.output = serde_json::to_value(&done).ok();
        let _serial = self.lock.lock().unwrap();
        if let Ok(mut hist) = self.history(principal, session) {
            if let Some(last) = hist.last_mut() {
                last.reply = reply.clone();
            }
            let _ = self
                .store
                .put_record(HISTORY_KIND, session, &serde_json::to_value(&hist).unwrap_or_default());
        }
        (Some(ex), reply)
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
