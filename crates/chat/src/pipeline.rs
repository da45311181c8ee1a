//! The understanding pipeline: entities first ([`crate::entities`]), then the deterministic parser
//! ([`Engine::rules`], on the text with object-name typos corrected) and the intent classifier
//! ([`crate::classifier`], on the text with entities replaced by typed placeholders), combined by calibrated
//! confidence:
//!
//! - session business (confirmations, cancellations, answers to the chat's own questions, clearing the history)
//!   is the parser's;
//! - parser and classifier agree → the parser's reading, with arguments it missed filled from the entities;
//! - the classifier is sure of another operation → that operation, its arguments from the entities
//!   ([`crate::slotfill`]); sure it is no operation (out of scope) → not understood;
//! - nobody is sure → the chat asks back, offering the two or three best readings in the user's language.
//!
//! A yes or no confirms or cancels only when the utterance is essentially a yes or a no.

use std::sync::{Arc, OnceLock};

use serde_json::Value;

use crate::classifier::{features, Model};
use crate::engine::{t, ChatAction, Engine, Interpretation, Known, Lang, Session};
use crate::entities::Entities;
use crate::normalize::Token;
use crate::slotfill::{self, Filled};

/// The committed model (`cargo run -p cacheos-chat --bin cacheos-chat-train` makes it).
pub const MODEL_BYTES: &[u8] = include_bytes!("../model/intent.bin");

/// The committed intent model, read once (`None` when the file is empty or unreadable: the parser alone).
pub fn shipped_model() -> Option<Arc<Model>> {
    static M: OnceLock<Option<Arc<Model>>> = OnceLock::new();
    M.get_or_init(|| Model::from_bytes(MODEL_BYTES).ok().map(Arc::new))
        .clone()
}

/// Confidence thresholds (probabilities of the classifier), chosen by `cacheos-chat-train --cv 5 --grid` on the
/// tuning sets (a wrong operation costs four questions back).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// The classifier overrides the parser from this probability on.
    pub sure: f32,
    /// "No operation" is believed from this probability on.
    pub none: f32,
    /// The parser's reading is kept while the classifier gives it at least this.
    pub keep: f32,
    /// A reading is offered in an ask-back from this probability on.
    pub offer: f32,
    /// The classifier overrides the parser only when its best class leads the second by this much.
    pub margin: f32,
    /// Parser and classifier agreeing counts only from this probability of the classifier on.
    pub agree: f32,
}

/// The thresholds in use.
pub const THRESHOLDS: Thresholds = Thresholds {
    sure: 0.7,
    none: 0.35,
    keep: 1.1,
    offer: 0.1,
    margin: 0.0,
    agree: 0.3,
};

/// The factor on a reading whose object kind the request does not name while it names another kind.
pub const KIND_MISMATCH: f32 = 0.2;

/// The factor on a reading that takes no command while the request carries one starting with a known program.
pub const IGNORED_COMMAND: f32 = 0.01;

/// From this probability on, "no operation" or a reading that still needs an argument counts as confident (the
/// model backend is not asked).
pub const CONFIDENT_NONE: f32 = 0.6;

const YES_NO: &[&str] = &[
    "ja",
    "jawohl",
    "jo",
    "jep",
    "jup",
    "jap",
    "japp",
    "nah",
    "halt",
    "leave",
    "klar",
    "sicher",
    "bestaetige",
    "bestaetigt",
    "genau",
    "mach",
    "machs",
    "los",
    "yes",
    "yep",
    "yeah",
    "yup",
    "sure",
    "confirm",
    "confirmed",
    "proceed",
    "go",
    "y",
    "ok",
    "okay",
    "nein",
    "nee",
    "ne",
    "abbruch",
    "abbrechen",
    "stopp",
    "lass",
    "lieber",
    "nicht",
    "no",
    "nope",
    "cancel",
    "stop",
    "dont",
    "never",
    "n",
    "doch",
    "gerne",
    "gern",
    "natuerlich",
    "korrekt",
    "richtig",
    "absolutely",
    "definitely",
    "correct",
    "right",
    "abort",
    "vergiss",
    "forget",
    "mal",
    "es",
    "das",
    "it",
    "that",
    "do",
    "ahead",
    "bitte",
    "please",
    "danke",
    "thanks",
    "weiter",
    "ausfuehren",
    "run",
    "tu",
    "tun",
    "jetzt",
    "now",
    "sein",
    "bleiben",
    "lassen",
    "mind",
    "never",
    "auf",
    "keinen",
    "fall",
    "way",
    "thank",
    "you",
    "alles",
    "gut",
    "fine",
    "good",
    "einverstanden",
    "agreed",
    "bin",
    "i",
    "am",
    "so",
    "sofort",
    "immediately",
    "lieber",
    "doch",
    "not",
    "j",
    "passt",
    "weg",
    "damit",
    "actually",
    "wait",
    "warte",
    "moment",
    "hold",
    "on",
    "delete",
    "remove",
    "loesch",
    "loesche",
    "loeschen",
    "entfern",
    "entferne",
    "entfernen",
    "detach",
    "thats",
    "gemacht",
    "machen",
];

/// The object an operation names that does not exist: its kind, the name and the existing names of that kind.
/// Only sandboxes and drives are checked, only when the appliance lists some of that kind (an empty list may mean
/// the caller could not ask), and names made in this conversation count as existing.
fn missing_object(i: &Interpretation, session: &Session, known: &Known) -> Option<(&'static str, String, Vec<String>)> {
    let Interpretation::Operation { operation, .. } = i else {
        return None;
    };
    let op = operation.name();
    let def = slotfill::slots().get(op)?;
    let args = operation.audit_args();
    for (arg, spec) in def {
        let spec = spec.trim_start_matches('^');
        let (kind, names, last): (&'static str, &Vec<String>, &Option<String>) = match spec {
            "sandbox!" => ("sandbox", &known.sandboxes, &session.last_sandbox),
            "drive!" => ("drive", &known.drives, &session.last_drive),
            _ => continue,
        };
        let Some(name) = args.get(arg).and_then(Value::as_str) else {
            continue;
        };
        if names.is_empty() || names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            continue;
        }
        if last.as_deref().is_some_and(|l| l.eq_ignore_ascii_case(name)) {
            continue;
        }
        return Some((kind, name.to_string(), names.clone()));
    }
    None
}

/// Whether the utterance is essentially a yes or a no ("ja", "ja bitte, mach das", "no, cancel it"), not a
/// question or a request that happens to contain such a word ("welche Datenkanäle gibt es").
pub fn essentially_yes_or_no(toks: &[Token]) -> bool {
    !toks.is_empty() && toks.len() <= 8 && toks.iter().all(|t| !t.quoted && YES_NO.contains(&t.norm.as_str()))
}

/// The deterministic parser's reading as a classifier input token (`#rule:<operation>`, `#rule:question:<asked>`,
/// `#rule:none`, `#rule:chat`): the classifier learns from the training data how far to trust the parser per
/// operation, instead of a fixed rule for agreement.
pub fn rule_token(r: &Interpretation, after: &Session) -> String {
    let l = match r {
        Interpretation::Operation { operation, .. } => operation.name().to_string(),
        Interpretation::Question { .. } => format!("question:{}", after.asked.as_deref().unwrap_or("")),
        Interpretation::NotUnderstood { .. } => "none".into(),
        Interpretation::Chat {
            action: ChatAction::Help,
            ..
        } => "chat:help".into(),
        Interpretation::Chat { .. } => "chat".into(),
    };
    format!("#rule:{l}")
}

/// The classifier's input: the placeholder tokens and the parser's reading of the corrected text.
pub fn classifier_tokens(engine: &Engine, ents: &Entities, known: &Known) -> Vec<String> {
    let mut s = Session::default();
    let r = engine.rules(&ents.corrected, &mut s, known);
    let mut toks = ents.placeholders();
    toks.push(rule_token(&r, &s));
    toks
}

impl Engine {
    /// What the pipeline sees of `text`: the entities, the placeholder tokens and the classifier's best classes.
    pub fn explain(&self, text: &str, session: &Session, known: &Known) -> String {
        let ents = Entities::find(text, known, session);
        let mut out = format!(
            "corrected: {}\nplaceholders: {:?}\n",
            ents.corrected,
            ents.placeholders()
        );
        for e in &ents.list {
            out += &format!(
                "  {} {} [{}..{}]{}\n",
                e.kind,
                e.value,
                e.start,
                e.end,
                if e.weak { " weak" } else { "" }
            );
        }
        if let Some(m) = &self.clf {
            for (i, p) in m
                .predict(&features(&classifier_tokens(self, &ents, known)))
                .into_iter()
                .take(4)
            {
                out += &format!("  {:.3} {}\n", p, m.classes[i]);
            }
        }
        let mut s = session.clone();
        out += &format!(
            "rules: {:?}\n",
            crate::eval::label(&self.rules(&ents.corrected, &mut s, known))
        );
        out
    }

    /// Interprets one utterance in the context of `session`, updating the context. Nothing is executed.
    pub fn interpret(&self, text: &str, session: &mut Session, known: &Known) -> Interpretation {
        self.understand(text, session, known).0
    }

    /// [`Engine::interpret`], and whether the pipeline is confident: `false` when it asks back between readings or
    /// does not understand without being sure it is out of scope. Only then is an optional model backend asked.
    pub fn understand(&self, text: &str, session: &mut Session, known: &Known) -> (Interpretation, bool) {
        let before = session.clone();
        let (i, sure) = self.understand_inner(text, session, known);
        match missing_object(&i, &before, known) {
            None => (i, sure),
            Some((kind, name, existing)) => {
                // An operation on an object that does not exist is never proposed ("lösch die sandbox prod"): the
                // chat says so and offers the objects of that kind, and the session stays as it was.
                let lang = session.lang.or(before.lang).unwrap_or(Lang::En);
                *session = before;
                session.lang = Some(lang);
                let (de, en) = match kind {
                    "drive" => ("kein Laufwerk", "drive"),
                    _ => ("keine Sandbox", "sandbox"),
                };
                let list = existing.join(", ");
                let text = t(
                    lang,
                    &format!("Es gibt {de} „{name}“. Vorhanden: {list}. Welche meinst du?"),
                    &format!("There is no {en} \"{name}\". There are: {list}. Which one do you mean?"),
                );
                (
                    Interpretation::Question {
                        text,
                        options: existing,
                    },
                    true,
                )
            }
        }
    }

    fn understand_inner(&self, text: &str, session: &mut Session, known: &Known) -> (Interpretation, bool) {
        let text = crate::normalize::head(text);
        let ents = Entities::find(text, known, session);
        let lang = crate::lang::detect(&ents.toks).or(session.lang).unwrap_or(Lang::En);
        // "ja" to "did you mean …?" with one reading takes it.
        if session.asked.as_deref() == Some("reading")
            && essentially_yes_or_no(&ents.toks)
            && ents.toks.iter().any(|t| {
                crate::lexicon::lookup(&t.norm)
                    .iter()
                    .any(|h| h.concept == crate::lexicon::Concept::Yes && h.distance == 0)
            })
        {
            let first = session.readings.first().cloned();
            session.asked = None;
            session.options.clear();
            session.readings.clear();
            session.lang = Some(lang);
            if let Some(Ok(op)) = first.map(|(n, a)| crate::model::parse_proposal(&n, &a)) {
                return (self.operation(op, lang, session), true);
            }
        }
        let mut rs = session.clone();
        let r = self.rules(&ents.corrected, &mut rs, known);
        let Some(model) = &self.clf else {
            *session = rs;
            let sure = !matches!(r, Interpretation::NotUnderstood { .. });
            return (r, sure);
        };
        let answered = session.asked.is_some() && rs.asked.is_none() && matches!(r, Interpretation::Operation { .. });
        let session_business = matches!(&r, Interpretation::Chat { action, .. } if !matches!(action, ChatAction::Help));
        if answered || session_business {
            *session = rs;
            return (r, true);
        }
        let mut toks = ents.placeholders();
        toks.push(rule_token(&r, &rs));
        let mut pred = model.predict(&features(&toks));
        // A reading that needs an object of a kind the request does not name, while it names one of another kind,
        // is unlikely: its probability drops and the others are renormalised.
        let mut changed = false;
        for (i, p) in pred.iter_mut() {
            let class = &model.classes[*i];
            if slotfill::names_only_other_kinds(class, &ents) {
                *p *= KIND_MISMATCH;
                changed = true;
            }
            if slotfill::ignores_command(class, &ents) {
                *p *= IGNORED_COMMAND;
                changed = true;
            }
        }
        // A time window ("der letzten zwei Stunden", "over the last hour") makes the status a history.
        if ents.first("duration").is_some() {
            let at = |n: &str| pred.iter().position(|(i, _)| model.classes[*i] == n);
            if let (Some(s), Some(h)) = (at("system.status"), at("system.history")) {
                let moved = pred[s].1;
                pred[s].1 = 0.0;
                pred[h].1 += moved;
                changed = true;
            }
        }
        if changed {
            let sum: f32 = pred.iter().map(|x| x.1).sum();
            if sum > 0.0 {
                pred.iter_mut().for_each(|x| x.1 /= sum);
            }
            pred.sort_by(|a, b| b.1.total_cmp(&a.1));
        }
        let name = |i: usize| model.classes[i].as_str();
        let (top, p) = (name(pred[0].0), pred[0].1);
        let lead = p - pred.get(1).map(|x| x.1).unwrap_or(0.0);
        let prob = |n: &str| pred.iter().find(|(i, _)| name(*i) == n).map(|x| x.1).unwrap_or(0.0);
        let r_op: Option<String> = match &r {
            Interpretation::Operation { operation, .. } => Some(operation.name().to_string()),
            Interpretation::Question { .. } => match rs.asked.as_deref() {
                Some("kill-task") => Some("supervisor.kill-task".into()),
                Some(a) if cacheos_core::Operation::lookup(a).is_some() => Some(a.to_string()),
                _ => None,
            },
            Interpretation::Chat {
                action: ChatAction::Help,
                ..
            } => Some("chat:help".into()),
            _ => None,
        };
        let th = self.thresholds;
        // The parser asks for something the entities answer: take the filled reading.
        if matches!(r, Interpretation::Question { .. })
            && top.contains('.')
            && ((r_op.as_deref() == Some(top) && p >= th.agree) || (p >= th.sure && lead >= th.margin))
        {
            let mut s = session.clone();
            s.lang = Some(lang);
            if let Some(i @ Interpretation::Operation { .. }) = self.reading(top, &ents, known, &mut s, lang) {
                *session = s;
                return (i, true);
            }
        }
        if let Some(rop) = &r_op {
            // An operation newer than the trained model (no class for it): the model cannot judge the parser's
            // reading, so it stands until the model is retrained with examples of it.
            let untrained = rop.contains('.') && !model.classes.iter().any(|c| c == rop);
            if untrained || (rop == top && p >= th.agree) || (p < th.sure && prob(rop) >= th.keep) {
                *session = rs;
                return (self.complete(r, &ents, known, session, lang), true);
            }
        }
        session.lang = Some(lang);
        if top == "none" && p >= th.none {
            // Out of scope, or no operation: never a guess. A question the parser asked stays.
            if matches!(
                r,
                Interpretation::Question { .. } | Interpretation::NotUnderstood { .. }
            ) {
                *session = rs;
                return (r, p >= CONFIDENT_NONE);
            }
            return (self.not_understood(text, lang), p >= CONFIDENT_NONE);
        }
        if p >= th.sure && lead >= th.margin {
            let mut s = session.clone();
            if let Some(i) = self.reading(top, &ents, known, &mut s, lang) {
                *session = s;
                // A question for a missing argument of a reading that is only likely: not confident.
                let sure =
                    matches!(i, Interpretation::Operation { .. } | Interpretation::Chat { .. }) || p >= CONFIDENT_NONE;
                return (i, sure);
            }
        }
        // Not sure: offer the best readings.
        let mut readings: Vec<(String, Value, String)> = Vec::new();
        for (i, q) in pred.iter().take(4) {
            let n = name(*i);
            if *q < th.offer || n == "none" || !n.contains('.') {
                continue;
            }
            let mut s = session.clone();
            if let Some(Interpretation::Operation {
                operation, explanation, ..
            }) = self.reading(n, &ents, known, &mut s, lang)
            {
                let label = explanation.split(" Antworte").next().unwrap_or(&explanation);
                let label = label
                    .split(" Answer \"yes\"")
                    .next()
                    .unwrap_or(label)
                    .trim()
                    .to_string();
                readings.push((n.to_string(), operation.args_json(), label));
            }
            if readings.len() == 3 {
                break;
            }
        }
        if readings.is_empty() {
            if matches!(r, Interpretation::Question { .. }) {
                *session = rs;
                return (r, true);
            }
            return (self.not_understood(text, lang), false);
        }
        session.asked = Some("reading".into());
        session.options = readings.iter().map(|r| r.2.clone()).collect();
        session.readings = readings.iter().map(|r| (r.0.clone(), r.1.clone())).collect();
        let q = Interpretation::Question {
            text: if readings.len() == 1 {
                t(
                    lang,
                    "Ich bin nicht sicher. Meintest du das?",
                    "I am not sure. Did you mean this?",
                )
            } else {
                t(
                    lang,
                    "Ich bin nicht sicher, was du meinst. Meintest du eines davon?",
                    "I am not sure what you mean. Did you mean one of these?",
                )
            },
            options: session.options.clone(),
        };
        (q, false)
    }

    /// The interpretation of `op` with its arguments from the entities: the operation, or a question for a
    /// missing required argument. `None` when the arguments do not make a valid operation.
    fn reading(
        &self,
        op: &str,
        ents: &Entities,
        known: &Known,
        session: &mut Session,
        lang: Lang,
    ) -> Option<Interpretation> {
        match op {
            "chat:help" => {
                return Some(Interpretation::Chat {
                    action: ChatAction::Help,
                    reply: self.help(lang),
                })
            }
            "chat:clear-history" => {
                // Deleting the history needs a word for it ("Verlauf", "history"), whatever the classifier thinks.
                let history = ents.toks.iter().any(|t| {
                    crate::lexicon::lookup(&t.norm)
                        .iter()
                        .any(|h| h.concept == crate::lexicon::Concept::History && h.distance == 0)
                });
                if !history {
                    return None;
                }
                return Some(Interpretation::Chat {
                    action: ChatAction::ClearHistory,
                    reply: t(lang, "Ich lösche deinen Chatverlauf.", "Deleting your chat history."),
                });
            }
            _ => {}
        }
        cacheos_core::Operation::lookup(op)?;
        let args = match slotfill::fill(op, ents, known, session) {
            None => Value::Null,
            Some(Filled::Args(a)) => a,
            Some(Filled::Missing { arg, kind, partial }) => {
                return Some(self.ask_slot(op, &arg, &kind, partial, known, session, lang))
            }
        };
        let operation = crate::model::parse_proposal(op, &args)
            .or_else(|_| crate::model::parse_proposal(op, &Value::Null))
            .ok()?;
        Some(self.operation(operation, lang, session))
    }

    #[allow(clippy::too_many_arguments)]
    fn ask_slot(
        &self,
        op: &str,
        arg: &str,
        kind: &str,
        partial: Value,
        known: &Known,
        session: &mut Session,
        lang: Lang,
    ) -> Interpretation {
        let (de, en, options): (String, String, Vec<String>) = match kind {
            "sandbox" => (
                "Welche Sandbox meinst du?".into(),
                "Which sandbox do you mean?".into(),
                known.sandboxes.clone(),
            ),
            "drive" => (
                "Welches Laufwerk meinst du?".into(),
                "Which drive do you mean?".into(),
                known.drives.clone(),
            ),
            "image" => (
                "Welches Abbild meinst du?".into(),
                "Which image do you mean?".into(),
                known.images.clone(),
            ),
            "task" => (
                "Welche interne Aufgabe meinst du?".into(),
                "Which internal task do you mean?".into(),
                known.tasks.clone(),
            ),
            "template" => (
                "Welche Vorlage?".into(),
                "Which template?".into(),
                known.templates.clone(),
            ),
            "command" => (
                "Welchen Befehl soll ich ausführen?".into(),
                "Which command should I run?".into(),
                vec![],
            ),
            "size" => (
                "Wie groß soll es werden?".into(),
                "How large should it be?".into(),
                vec!["1 GB".into(), "10 GB".into()],
            ),
            _ => (
                format!("Mir fehlt noch: {arg}."),
                format!("I still need: {arg}."),
                vec![],
            ),
        };
        session.asked = Some(format!("slot:{op}:{arg}"));
        session.asked_args = Some(partial);
        session.options = options.clone();
        Interpretation::Question {
            text: t(lang, &de, &en),
            options,
        }
    }

    /// The parser's operation with arguments it left empty filled from the entities (a name after "namens", a
    /// file system, network, a time window …).
    fn complete(
        &self,
        r: Interpretation,
        ents: &Entities,
        known: &Known,
        session: &mut Session,
        lang: Lang,
    ) -> Interpretation {
        let Interpretation::Operation { operation, .. } = &r else {
            return r;
        };
        let op = operation.name();
        let Some(Filled::Args(filled)) = slotfill::fill(op, ents, known, session) else {
            return r;
        };
        let mut args = operation.args_json();
        let Some(m) = args.as_object_mut() else {
            return r;
        };
        let mut changed = false;
        for (k, v) in filled.as_object().into_iter().flatten() {
            let empty = match m.get(k) {
                None | Some(Value::Null) => true,
                Some(Value::Bool(false)) => v == &Value::Bool(true),
                Some(Value::String(s)) => s.is_empty(),
                Some(Value::Array(a)) => a.is_empty(),
                _ => false,
            };
            let named = k == "name"
                && op == "sandbox.create"
                && (ents.first("name").is_some() || ents.first("quoted").is_some() || ents.first("newname").is_some())
                && m.get(k) != Some(v);
            let over = slotfill::overrides(op, k);
            if (over || ((empty || named) && !v.is_null() && v != &Value::Bool(false))) && m.get(k) != Some(v) {
                m.insert(k.clone(), v.clone());
                changed = true;
            }
        }
        if !changed {
            return r;
        }
        match crate::model::parse_proposal(op, &args) {
            Ok(o) => self.operation(o, lang, session),
            Err(_) => r,
        }
    }
}
