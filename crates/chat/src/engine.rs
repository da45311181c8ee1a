//! Intent choice: from concepts and slots to an operation, a question or a chat action, with session context
//! (language, a pending destructive operation awaiting "ja"/"yes") and confirmation rules taken from the core's
//! risk classes.

use std::collections::BTreeSet;

use cacheos_core::audit::{AuditFilter, Outcome};
use cacheos_core::operation::{HistoryArgs, KillTaskArgs};
use cacheos_core::sandbox::ops::SandboxExecArgs;
use cacheos_core::{Frontend, Operation, Risk};
use serde::{Deserialize, Serialize};

use crate::lexicon::{lookup, Concept, WordLang};
use crate::normalize::{tokens, Token};
use crate::objects::{self, Domain, Refs};
use crate::slots;

/// Reply language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// German.
    De,
    /// English.
    En,
}

/// What a conversation remembers between utterances.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// Language of the last utterance that showed one.
    pub lang: Option<Lang>,
    /// A destructive operation shown as a plan, waiting for an explicit yes.
    pub pending: Option<Operation>,
    /// The utterance that planned `pending`, for the audit record of its confirmation.
    #[serde(default)]
    pub pending_utterance: Option<String>,
    /// The options of the last question, for answers like "das zweite" / "the first".
    pub options: Vec<String>,
    /// What the last question was about, so that an answer completes it.
    pub asked: Option<String>,
    /// The command of a `sandbox.exec` whose sandbox was asked for.
    #[serde(default)]
    pub asked_argv: Vec<String>,
    /// The last drive talked about ("häng es aus").
    #[serde(default)]
    pub last_drive: Option<String>,
    /// The last sandbox talked about ("und jetzt starte sie").
    #[serde(default)]
    pub last_sandbox: Option<String>,
    /// Which of the two was talked about last: `drive` or `sandbox`.
    #[serde(default)]
    pub last_kind: Option<String>,
    /// The readings offered by the last question when the chat was not sure (operation name, arguments), in the
    /// order of `options`.
    #[serde(default)]
    pub readings: Vec<(String, serde_json::Value)>,
    /// The arguments found so far of an operation whose missing argument was asked for (`asked` = `slot:OP:ARG`).
    #[serde(default)]
    pub asked_args: Option<serde_json::Value>,
}

/// The chat's own actions (they are not core operations).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum ChatAction {
    /// Say what CacheOS can do.
    Help,
    /// Run the pending destructive operation.
    Confirm {
        /// The operation, as planned.
        operation: Operation,
    },
    /// A yes with nothing pending.
    NothingToConfirm,
    /// Drop the pending operation.
    Cancel,
    /// A no with nothing pending.
    NothingToCancel,
    /// Delete this person's chat history.
    ClearHistory,
    /// A language model's text answer to a free-form question (issue 14); the reply is the answer.
    ModelAnswer {
        /// `openai` or `gguf`.
        backend: String,
        /// The model's name.
        model: String,
        /// Whether the question left the appliance.
        remote: bool,
    },
}

/// The result of interpreting one utterance. Nothing has been executed.
#[derive(Debug, Clone, PartialEq)]
pub enum Interpretation {
    /// A core operation.
    Operation {
        /// The operation.
        operation: Operation,
        /// Its risk class.
        risk: Risk,
        /// Destructive: runs only after an explicit yes in the same session.
        needs_confirmation: bool,
        /// What will be done, in the language of the question.
        explanation: String,
    },
    /// A question back (missing or ambiguous slot).
    Question {
        /// The question.
        text: String,
        /// Possible answers.
        options: Vec<String>,
    },
    /// A chat action.
    Chat {
        /// The action.
        action: ChatAction,
        /// What to say.
        reply: String,
    },
    /// Not understood: never a guess.
    NotUnderstood {
        /// What to say.
        reply: String,
        /// The closest things CacheOS can do, as example utterances.
        suggestions: Vec<String>,
    },
}

impl Interpretation {
    /// The JSON of the interpretation API: `kind` plus, for operations, the dotted name and the arguments exactly
    /// as the REST API takes them.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            Interpretation::Operation {
                operation,
                risk,
                needs_confirmation,
                explanation,
            } => json!({
                "kind": "operation",
                "operation": operation.name(),
                "args": operation.audit_args(),
                "risk": risk,
                "needs_confirmation": needs_confirmation,
                "explanation": explanation,
            }),
            Interpretation::Question { text, options } => json!({"kind": "question", "text": text, "options": options}),
            Interpretation::Chat { action, reply } => json!({"kind": "chat", "chat": action, "reply": reply}),
            Interpretation::NotUnderstood { reply, suggestions } => {
                json!({"kind": "not-understood", "reply": reply, "suggestions": suggestions})
            }
        }
    }
}

/// What the engine may refer to: names that exist right now and the current time (the engine itself is pure).
#[derive(Debug, Clone, Default)]
pub struct Known {
    /// Internal task names (from `supervisor.status`).
    pub tasks: Vec<String>,
    /// Now, in ms since the Unix epoch (for "last hour").
    pub now_ms: u64,
    /// Names of the attached drives.
    pub drives: Vec<String>,
    /// File names in the images directory.
    pub images: Vec<String>,
    /// Names of the sandboxes.
    pub sandboxes: Vec<String>,
    /// Names of the sandbox templates.
    pub templates: Vec<String>,
}

/// The language engine. Stateless; the [`Session`] carries context. It holds the trained intent classifier (see
/// [`crate::pipeline`]); [`Engine::rules_only`] is the deterministic parser alone.
#[derive(Clone)]
pub struct Engine {
    pub(crate) clf: Option<std::sync::Arc<crate::classifier::Model>>,
    /// The confidence thresholds of the pipeline.
    pub thresholds: crate::pipeline::Thresholds,
}

impl Default for Engine {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("classes", &self.clf.as_ref().map(|m| m.classes.len()))
            .finish()
    }
}

pub(crate) struct Parsed<'a> {
    pub(crate) toks: Vec<Token>,
    pub(crate) concepts: BTreeSet<Concept>,
    pub(crate) lang: Lang,
    _text: &'a str,
}

const EXAMPLES_DE: &[&str] = &[
    "zeig mir den Systemstatus",
    "wie geht es den Diensten?",
    "zeige das Protokoll der letzten Stunde",
    "zeig den Web-Token",
    "häng das ISO debian.iso ein",
    "starte eine Python-Sandbox mit 1 GB RAM",
    "was kannst du?",
];
const EXAMPLES_EN: &[&str] = &[
    "show the system status",
    "how are the services doing?",
    "show the audit log of the last hour",
    "show the web token",
    "attach debian.iso read-write as work",
    "run uname -a in py",
    "what can you do?",
];

pub(crate) fn t(lang: Lang, de: &str, en: &str) -> String {
    match lang {
        Lang::De => de.to_string(),
        Lang::En => en.to_string(),
    }
}

fn ordinal(toks: &[Token]) -> Option<usize> {
    toks.iter().find_map(|t| {
        Some(match t.norm.as_str() {
            "erste" | "ersten" | "erstes" | "first" | "1" | "1." => 0,
            "zweite" | "zweiten" | "zweites" | "second" | "2" | "2." => 1,
            "dritte" | "dritten" | "drittes" | "third" | "3" | "3." => 2,
            "vierte" | "vierten" | "fourth" | "4" | "4." => 3,
            "letzte" | "letzten" | "last" => usize::MAX,
            _ => return None,
        })
    })
}

impl Engine {
    /// A new engine with the committed intent model.
    pub fn new() -> Self {
        Self {
            clf: crate::pipeline::shipped_model(),
            thresholds: crate::pipeline::THRESHOLDS,
        }
    }

    /// The deterministic parser alone (no classifier): the engine as it was before the classifier.
    pub fn rules_only() -> Self {
        Self {
            clf: None,
            thresholds: crate::pipeline::THRESHOLDS,
        }
    }

    /// An engine with a given intent model (training, cross-validation).
    pub fn with_model(model: crate::classifier::Model) -> Self {
        Self {
            clf: Some(std::sync::Arc::new(model)),
            thresholds: crate::pipeline::THRESHOLDS,
        }
    }

    fn parse<'a>(&self, text: &'a str, session: &Session) -> Parsed<'a> {
        let toks = tokens(text);
        let mut concepts = BTreeSet::new();
        let (mut de, mut en) = (0, 0);
        for tk in toks.iter().filter(|t| !t.quoted) {
            for h in lookup(&tk.norm) {
                concepts.insert(h.concept);
                match h.lang {
                    WordLang::De => de += 1,
                    WordLang::En => en += 1,
                    WordLang::Both => {}
                }
            }
            // Umlauts are a German signal by themselves.
            if tk.raw.chars().any(|c| "äöüßÄÖÜ".contains(c)) {
                de += 2;
            }
        }
        let _ = (de, en);
        let lang = crate::lang::detect(&toks).or(session.lang).unwrap_or(Lang::En);
        Parsed {
            toks,
            concepts,
            lang,
            _text: text,
        }
    }

    /// The deterministic parser: interprets one utterance in the context of `session`, updating the context.
    pub fn rules(&self, text: &str, session: &mut Session, known: &Known) -> Interpretation {
        let p = self.parse(text, session);
        let lang = p.lang;
        session.lang = Some(lang);
        let has = |c: Concept| p.concepts.contains(&c);
        let names_task = p.toks.iter().any(|t| known.tasks.contains(&t.norm));
        let refs = Refs::find(&p, text, known, session);
        let named_object = has(Concept::Sandbox) || has(Concept::Drive) || has(Concept::Image);
        let dom = if (names_task || has(Concept::Supervisor)) && !named_object {
            None
        } else {
            objects::domain(&p, &refs, session)
        };
        let kill_topic = has(Concept::Kill) && (has(Concept::Supervisor) || names_task);
        let topic = dom.is_some()
            || has(Concept::Audit)
            || has(Concept::Token)
            || has(Concept::Certificate)
            || kill_topic
            || has(Concept::Supervisor)
            || has(Concept::System)
            || has(Concept::Status)
            || has(Concept::Resource);

        // Answers to our own question ("welche Aufgabe?" -> "die zweite" / "metrics").
        if let Some(asked) = session.asked.clone() {
            let pick = ordinal(&p.toks)
                .and_then(|i| {
                    if i == usize::MAX {
                        session.options.last().cloned()
                    } else {
                        session.options.get(i).cloned()
                    }
                })
                .or_else(|| {
                    p.toks
                        .iter()
                        .find(|t| session.options.contains(&t.norm))
                        .map(|t| t.norm.clone())
                });
            if let Some(choice) = pick {
                let readings = std::mem::take(&mut session.readings);
                let at = session.options.iter().position(|o| *o == choice);
                session.asked = None;
                session.options.clear();
                if asked == "reading" {
                    if let Some(Ok(op)) = at
                        .and_then(|i| readings.get(i))
                        .map(|(name, args)| crate::model::parse_proposal(name, args))
                    {
                        return self.operation(op, lang, session);
                    }
                }
                if let Some((op, arg)) = asked.strip_prefix("slot:").and_then(|r| r.split_once(':')) {
                    let mut args = session.asked_args.take().unwrap_or_else(|| serde_json::json!({}));
                    if let Some(m) = args.as_object_mut() {
                        m.insert(arg.to_string(), serde_json::json!(choice));
                    }
                    if let Ok(op) = crate::model::parse_proposal(op, &args) {
                        return self.operation(op, lang, session);
                    }
                }
                if asked == "kill-task" {
                    return self.operation(
                        Operation::SupervisorKillTask(KillTaskArgs { task: choice }),
                        lang,
                        session,
                    );
                }
                if asked == "sandbox.exec" {
                    let argv = std::mem::take(&mut session.asked_argv);
                    let op = Operation::SandboxExec(SandboxExecArgs {
                        name: choice,
                        argv,
                        timeout_secs: None,
                    });
                    return self.operation(op, lang, session);
                }
                if asked.starts_with("sandbox.") {
                    return self.operation(objects::sandbox_op(&asked, choice), lang, session);
                }
                if asked.starts_with("drive.") {
                    return self.operation(objects::drive_op(&asked, choice), lang, session);
                }
            }
            if !topic {
                session.asked = None;
                session.options.clear();
            }
        }

        // Chat actions.
        let exact = |c: Concept| {
            p.toks
                .iter()
                .any(|t| lookup(&t.norm).iter().any(|h| h.concept == c && h.distance == 0))
        };
        if exact(Concept::Delete) && exact(Concept::History) {
            return Interpretation::Chat {
                action: ChatAction::ClearHistory,
                reply: t(lang, "Ich lösche deinen Chatverlauf.", "Deleting your chat history."),
            };
        }
        let bare = crate::pipeline::essentially_yes_or_no(&p.toks);
        // "yes, delete it" names its topic only through the pending operation: still a bare yes.
        let topic = topic && !(bare && session.pending.is_some());
        if !topic && bare && has(Concept::Yes) && !has(Concept::No) {
            return match session.pending.take() {
                Some(operation) => Interpretation::Chat {
                    reply: t(
                        lang,
                        &format!("Bestätigt: {}.", operation.name()),
                        &format!("Confirmed: {}.", operation.name()),
                    ),
                    action: ChatAction::Confirm {
                        operation: objects::confirmed(operation),
                    },
                },
                None => Interpretation::Chat {
                    action: ChatAction::NothingToConfirm,
                    reply: t(lang, "Es gibt nichts zu bestätigen.", "There is nothing to confirm."),
                },
            };
        }
        if !topic && bare && (has(Concept::No) || has(Concept::Kill)) {
            return match session.pending.take() {
                Some(op) => Interpretation::Chat {
                    action: ChatAction::Cancel,
                    reply: t(
                        lang,
                        &format!("Abgebrochen: {} wird nicht ausgeführt.", op.name()),
                        &format!("Cancelled: {} will not run.", op.name()),
                    ),
                },
                None => Interpretation::Chat {
                    action: ChatAction::NothingToCancel,
                    reply: t(
                        lang,
                        "Es ist nichts offen, das ich abbrechen könnte.",
                        "There is nothing pending to cancel.",
                    ),
                },
            };
        }
        if !topic && has(Concept::Help) {
            return Interpretation::Chat {
                action: ChatAction::Help,
                reply: self.help(lang),
            };
        }

        // Operations, most specific topic first.
        match dom {
            Some(Domain::Sandbox) => return self.sandbox_intent(&p, &refs, known, session),
            Some(Domain::Drive) => return self.drive_intent(&p, &refs, known, session),
            None => {}
        }
        if kill_topic {
            let task = p
                .toks
                .iter()
                .find(|t| known.tasks.contains(&t.norm))
                .map(|t| t.norm.clone());
            return match task {
                Some(task) => self.operation(Operation::SupervisorKillTask(KillTaskArgs { task }), lang, session),
                None => {
                    session.asked = Some("kill-task".into());
                    session.options = known.tasks.clone();
                    Interpretation::Question {
                        text: t(
                            lang,
                            "Welche interne Aufgabe soll ich abbrechen?",
                            "Which internal task should I abort?",
                        ),
                        options: known.tasks.clone(),
                    }
                }
            };
        }
        if has(Concept::Audit)
            || ((has(Concept::Failed) || has(Concept::Denied)) && !has(Concept::Supervisor) && !has(Concept::System))
        {
            let mut f = AuditFilter::default();
            if let Some(w) = slots::window_ms(&p.toks) {
                f.since_ms = Some(known.now_ms.saturating_sub(w));
            }
            if has(Concept::Denied) {
                f.outcome = Some(Outcome::Denied);
            } else if has(Concept::Failed) {
                f.outcome = Some(Outcome::Error);
            }
            // "web" is the web front end unless a sandbox of that name is meant ("who stopped web?").
            let web_sandbox = known.sandboxes.iter().any(|s| s == "web");
            let toks = &p.toks;
            f.frontend = toks.iter().enumerate().find_map(|(i, t)| match t.norm.as_str() {
                "rest" => Some(Frontend::Rest),
                "web"
                    if !web_sandbox
                        || toks.get(i + 1).is_some_and(|n| {
                            matches!(
                                n.norm.as_str(),
                                "ui" | "oberflaeche" | "interface" | "seite" | "page" | "frontend" | "api"
                            )
                        }) =>
                {
                    Some(Frontend::Rest)
                }
                "dbus" | "d-bus" => Some(Frontend::Dbus),
                "cli" | "cacheosctl" | "kommandozeile" | "commandline" => Some(Frontend::Cli),
                "chat" => Some(Frontend::Chat),
                _ => None,
            });
            return self.operation(Operation::AuditQuery(f), lang, session);
        }
        // issue 19: "zeig das Zertifikat", "TLS fingerprint" (before the token: "certificate key" asks for the cert).
        if has(Concept::Certificate) {
            return self.operation(Operation::WebCert, lang, session);
        }
        if has(Concept::Token) {
            return self.operation(Operation::WebToken, lang, session);
        }
        if has(Concept::Supervisor) {
            return self.operation(Operation::SupervisorStatus, lang, session);
        }
        if has(Concept::History) && (has(Concept::System) || has(Concept::Resource)) {
            let since_ms = slots::window_ms(&p.toks).map(|w| known.now_ms.saturating_sub(w));
            return self.operation(
                Operation::SystemHistory(HistoryArgs {
                    since_ms,
                    ..Default::default()
                }),
                lang,
                session,
            );
        }
        if has(Concept::System)
            || has(Concept::Status)
            || has(Concept::Resource)
            || (has(Concept::Failed) && has(Concept::System))
        {
            return self.operation(Operation::SystemStatus, lang, session);
        }
        // Only a verb ("zeig mal", "show me"): ask what. A verb with words we do not know ("wie wird das Wetter"):
        // not understood, never a guess.
        let unknown_words = p
            .toks
            .iter()
            .any(|t| t.quoted || (t.norm.len() >= 3 && lookup(&t.norm).is_empty()));
        if has(Concept::Show) && !unknown_words {
            return Interpretation::Question {
                text: t(lang, "Was soll ich zeigen?", "What should I show?"),
                options: match lang {
                    Lang::De => vec!["Systemstatus".into(), "Dienste".into(), "Protokoll".into()],
                    Lang::En => vec!["system status".into(), "services".into(), "audit log".into()],
                },
            };
        }
        self.not_understood(text, lang)
    }

    /// Wraps an operation with its risk class and explanation; destructive ones are parked in the session.
    pub fn operation(&self, operation: Operation, lang: Lang, session: &mut Session) -> Interpretation {
        // issue 18 (licences): a disclosure is drafted in the language it was asked in.
        let operation = match operation {
            Operation::DisclosureDraft(mut a) if a.language.is_none() => {
                a.language = Some(match lang {
                    Lang::De => cacheos_core::license::Language::De,
                    Lang::En => cacheos_core::license::Language::En,
                });
                Operation::DisclosureDraft(a)
            }
            op => op,
        };
        let risk = operation.risk();
        let needs_confirmation = risk == Risk::Destructive;
        let mut explanation = match &operation {
            Operation::SystemStatus => t(lang, "Ich zeige den Systemstatus.", "Showing the system status."),
            Operation::SupervisorStatus => t(
                lang,
                "Ich zeige cacheosd und seine internen Aufgaben.",
                "Showing cacheosd and its internal tasks.",
            ),
            Operation::AuditQuery(f) => {
                let mut s = t(lang, "Ich zeige das Audit-Protokoll", "Showing the audit log");
                if f.outcome == Some(Outcome::Error) {
                    s += &t(lang, " (nur Fehlgeschlagenes)", " (failures only)");
                }
                if f.outcome == Some(Outcome::Denied) {
                    s += &t(lang, " (nur Verweigertes)", " (denied only)");
                }
                if let Some(fe) = f.frontend {
                    s += &t(lang, &format!(" von {fe}"), &format!(" from {fe}"));
                }
                if f.since_ms.is_some() {
                    s += &t(lang, " im gewählten Zeitraum", " for the chosen period");
                }
                s + "."
            }
            Operation::SystemHistory(_) => t(
                lang,
                "Ich zeige den Verlauf von CPU, Speicher, Datenträger und Last.",
                "Showing the CPU, memory, disk and load history.",
            ),
            Operation::WebToken => t(
                lang,
                "Ich zeige den Web-Token für Zugriffe von anderen Rechnern.",
                "Showing the web token for access from other machines.",
            ),
            op @ (Operation::DriveList
            | Operation::DriveInfo(_)
            | Operation::DriveImages
            | Operation::DriveFiles(_)
            | Operation::DriveAttach(_)
            | Operation::DriveDetach(_)
            | Operation::DriveCreate(_)
            | Operation::DriveUpload(_)
            | Operation::DriveSnapshot(_)
            | Operation::DriveDiscard(_)
            | Operation::DriveCommit(_)
            | Operation::DrivePersist(_)
            | Operation::DriveReconcile) => crate::render::explain_drive(op, lang),
            op @ (Operation::SandboxList
            | Operation::SandboxInfo(_)
            | Operation::SandboxTemplates
            | Operation::SandboxCreate(_)
            | Operation::SandboxStart(_)
            | Operation::SandboxStop(_)
            | Operation::SandboxRestart(_)
            | Operation::SandboxRemove(_)
            | Operation::SandboxExec(_)
            | Operation::SandboxLogs(_)
            | Operation::SandboxReconcile) => crate::render::explain_sandbox(op, lang),
            Operation::SandboxRun(a) => t(
                lang,
                &format!(
                    "Ich starte eine Wegwerf-Sandbox aus {}, führe `{}` darin aus und entferne sie danach (sandbox.run).",
                    a.template,
                    a.argv.join(" ")
                ),
                &format!(
                    "Running `{}` in a throw-away sandbox from {}, removed afterwards (sandbox.run).",
                    a.argv.join(" "),
                    a.template
                ),
            ),
            // These carry a terminal or a byte stream, which a chat message cannot: the reply names the command.
            Operation::SandboxShell(a) => t(
                lang,
                &format!(
                    "Eine Shell braucht ein Terminal: `cacheosctl sandbox shell {}`.",
                    a.name
                ),
                &format!("A shell needs a terminal: `cacheosctl sandbox shell {}`.", a.name),
            ),
            Operation::SandboxCopyIn(a) | Operation::SandboxCopyOut(a) => t(
                lang,
                &format!(
                    "Dateien kopiert `cacheosctl sandbox copy-in|copy-out {} …` ({}).",
                    a.name, a.path
                ),
                &format!(
                    "Files are copied with `cacheosctl sandbox copy-in|copy-out {} …` ({}).",
                    a.name, a.path
                ),
            ),
            Operation::SupervisorKillTask(a) => t(
                lang,
                &format!(
                    "Plan: die interne Aufgabe „{}“ abbrechen (supervisor.kill-task); cacheosd startet sie neu.",
                    a.task
                ),
                &format!(
                    "Plan: abort the internal task \"{}\" (supervisor.kill-task); cacheosd restarts it.",
                    a.task
                ),
            ),
            // issue 17 (kb)
            op @ (Operation::KbIndex(_)
            | Operation::KbSources
            | Operation::KbSearch(_)
            | Operation::KbAsk(_)
            | Operation::KbRemove(_)
            | Operation::KbCancel(_)) => crate::render_kb::explain(op, lang),
            // issue 18 (licences)
            op @ (Operation::LicenseScan(_)
            | Operation::LicenseCancel(_)
            | Operation::SbomCreate(_)
            | Operation::NoticeCreate(_)
            | Operation::ProofCreate(_)
            | Operation::ProofVerify(_)
            | Operation::DisclosureDraft(_)) => crate::render_license::explain(op, lang),
            // issue 16 (diagnose)
            op @ (Operation::SystemDiagnose(_)
            | Operation::JournalQuery(_)
            | Operation::ServiceList
            | Operation::ServiceRestart(_)) => crate::render_diagnose::explain(op, lang),
            // issue 15 (software)
            op @ (Operation::SoftwareSearch(_)
            | Operation::SoftwarePlan(_)
            | Operation::SoftwareInstall(_)
            | Operation::SoftwareList(_)
            | Operation::SoftwareRemove(_)
            | Operation::SoftwareJob(_)
            | Operation::SoftwareCancel(_)
            | Operation::SandboxExpose(_)
            | Operation::SandboxUnexpose(_)
            | Operation::SandboxService(_)) => crate::render_software::explain(op, lang),
            // issue 14 (models)
            op @ (Operation::ModelList
            | Operation::ModelUse(_)
            | Operation::ModelStatus
            | Operation::ModelUnload
            | Operation::ModelTest
            | Operation::PrivacyChannels) => crate::render_model::explain(op, lang),
            // issue 19 (trust)
            Operation::WebCert => crate::render_trust::explain_cert(lang),
        };
        objects::remember(&operation, session);
        if needs_confirmation {
            explanation += &t(
                lang,
                " Antworte mit „ja“ zum Ausführen oder „nein“ zum Abbrechen.",
                " Answer \"yes\" to run it or \"no\" to cancel.",
            );
            session.pending = Some(operation.clone());
        }
        Interpretation::Operation {
            operation,
            risk,
            needs_confirmation,
            explanation,
        }
    }

    pub(crate) fn help(&self, lang: Lang) -> String {
        let ex = match lang {
            Lang::De => EXAMPLES_DE,
            Lang::En => EXAMPLES_EN,
        };
        let head = t(lang, "Ich kann zum Beispiel:", "I can for example:");
        let mut s = head;
        for e in ex {
            s.push_str("\n  - ");
            s.push_str(e);
        }
        s
    }

    pub(crate) fn not_understood(&self, text: &str, lang: Lang) -> Interpretation {
        let ex = match lang {
            Lang::De => EXAMPLES_DE,
            Lang::En => EXAMPLES_EN,
        };
        let folded = crate::normalize::fold(&text.chars().take(200).collect::<String>());
        let mut ranked: Vec<(f64, &str)> = ex
            .iter()
            .map(|e| (strsim::normalized_levenshtein(&folded, &crate::normalize::fold(e)), *e))
            .collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
        Interpretation::NotUnderstood {
            reply: t(
                lang,
                "Das habe ich nicht verstanden. Meintest du vielleicht:",
                "I did not understand that. Did you mean:",
            ),
            suggestions: ranked.into_iter().take(3).map(|(_, e)| e.to_string()).collect(),
        }
    }
}
