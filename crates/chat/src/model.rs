//! The door for an optional language-model backend. A backend only *proposes*: its reply must be JSON of the schema
//! [`proposal_schema`] generates from the core's operation table (an operation by dotted name with its arguments as
//! the REST API takes them, a question back, or a text answer). The reply is parsed into the same typed
//! [`Operation`] the REST API accepts; an invalid one is sent back once with the validation error, and if the second
//! reply is invalid too the chat asks back instead. The operation is then handled exactly like the rule engine's
//! result — risk class and confirmation from the operation table, validation and authorisation by the core, audit
//! with the utterance (which names backend, model and [`SCHEMA_VERSION`]). The understanding pipeline is asked
//! first; a backend is consulted only for what it is not confident about, and for free-form questions
//! ("erkläre mir …"), which it answers in text. CacheOS ships no active backend: `crates/model` has the
//! OpenAI-compatible and GGUF backends, switched by `model.use`.

use cacheos_core::{OpInfo, Operation};
use serde_json::{json, Value};

use crate::engine::Lang;

/// Version of the proposal schema; audit records of model-proposed operations name it.
pub const SCHEMA_VERSION: u32 = 1;

/// What a backend may propose.
#[derive(Debug, Clone, PartialEq)]
pub enum Proposal {
    /// An operation by dotted name with its arguments as the REST API takes them.
    Operation {
        /// Dotted name, e.g. `system.status`.
        name: String,
        /// Arguments (`null` when the operation has none).
        args: serde_json::Value,
    },
    /// A question back to the person.
    Question(String),
    /// A text answer (free-form questions).
    Answer(String),
}

/// Why a backend could not answer.
#[derive(Debug, thiserror::Error)]
#[error("language model backend failed: {0}")]
pub struct ModelError(pub String);

/// Which backend and model answered, for replies and the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelIdentity {
    /// `openai` or `gguf`.
    pub backend: String,
    /// The model's name.
    pub model: String,
    /// Whether the question leaves the appliance (a non-loopback endpoint).
    pub remote: bool,
    /// The endpoint URL or file, for messages.
    pub target: String,
}

/// One message of a conversation with the model (OpenAI roles: `system`, `user`, `assistant`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: &'static str,
    /// The text.
    pub content: String,
}

/// A request to a backend: the conversation and the JSON schema the reply must follow.
#[derive(Debug, Clone)]
pub struct ModelRequest {
    /// The messages.
    pub messages: Vec<Message>,
    /// The JSON schema of the reply ([`proposal_schema`]).
    pub schema: Value,
    /// Most tokens to generate.
    pub max_tokens: u32,
}

/// A language-model backend: answers a request with text following its schema (the chat validates it).
pub trait ModelBackend: Send + Sync {
    /// The active model, or `None` when no model is in use (then the chat does not ask).
    fn identity(&self) -> Option<ModelIdentity>;
    /// Generates the reply; `on_token` gets each piece as it streams in.
    fn complete(&self, req: &ModelRequest, on_token: &mut dyn FnMut(&str)) -> Result<String, ModelError>;
    /// Stops the generations running now (a Stop button, Ctrl-C); they end with an error saying so.
    fn stop(&self) {}
}

/// The JSON schema of a proposal, generated from the operation table.
pub fn proposal_schema(operations: &[OpInfo]) -> Value {
    let names: Vec<&str> = operations.iter().map(|o| o.name).collect();
    json!({
        "type": "object",
        "oneOf": [
            {
                "type": "object",
                "properties": {
                    "kind": {"const": "operation"},
                    "operation": {"type": "string", "enum": names},
                    "args": {"type": "object"}
                },
                "required": ["kind", "operation", "args"],
                "additionalProperties": false
            },
            {
                "type": "object",
                "properties": {"kind": {"const": "question"}, "text": {"type": "string"}},
                "required": ["kind", "text"],
                "additionalProperties": false
            },
            {
                "type": "object",
                "properties": {"kind": {"const": "answer"}, "text": {"type": "string"}},
                "required": ["kind", "text"],
                "additionalProperties": false
            }
        ]
    })
}

/// The system prompt: what CacheOS is, the operation table (name, summary, risk) and the reply format.
pub fn system_prompt(operations: &[OpInfo], lang: Lang, free_form: bool) -> String {
    let mut s = String::from(
        "You are the language model behind the chat of CacheOS, a Debian appliance that manages virtual drives, \
         systemd-nspawn sandboxes, a knowledge base and licence tools. You never act yourself: you answer with one \
         JSON object and nothing else, of one of three kinds:\n\
         {\"kind\":\"operation\",\"operation\":\"<name>\",\"args\":{...}} to run one operation below, with its \
         arguments as the REST API takes them ({} when it has none);\n\
         {\"kind\":\"question\",\"text\":\"...\"} to ask the person back when the request is unclear;\n\
         {\"kind\":\"answer\",\"text\":\"...\"} to answer a question in words.\nOperations:\n",
    );
    for o in operations {
        s.push_str(&format!("- {}: {} [{:?}]\n", o.name, o.summary, o.risk));
    }
    if free_form {
        s.push_str("The person asks for an explanation: answer with kind \"answer\".\n");
    }
    s.push_str(match lang {
        Lang::De => "Write texts in German.",
        Lang::En => "Write texts in English.",
    });
    s
}

/// Turns a proposed name and arguments into a typed operation, exactly as the REST API would parse them.
pub fn parse_proposal(name: &str, args: &serde_json::Value) -> Result<Operation, String> {
    if Operation::lookup(name).is_none() {
        return Err(format!("unknown operation {name:?}"));
    }
    // `{}` for an operation without arguments, as the schema asks for.
    let no_args = args.is_null() || args.as_object().is_some_and(|m| m.is_empty());
    let doc = if no_args {
        serde_json::json!({ "op": name })
    } else {
        serde_json::json!({ "op": name, "args": args })
    };
    match serde_json::from_value(doc) {
        Ok(op) => Ok(op),
        // An operation with only optional arguments takes `{}` too.
        Err(_) if no_args => serde_json::from_value(json!({"op": name, "args": {}}))
            .map_err(|e| format!("invalid arguments for {name}: {e}")),
        Err(e) => Err(format!("invalid arguments for {name}: {e}")),
    }
}

/// Parses a backend's raw reply into a proposal whose operation (if any) parses like REST input. The error says
/// what was wrong, in words the model can act on.
pub fn parse_reply(raw: &str) -> Result<(Proposal, Option<Operation>), String> {
    let t = raw.trim();
    // Some servers wrap JSON in a Markdown fence.
    let t = t
        .strip_prefix("```json")
        .or_else(|| t.strip_prefix("```"))
        .map(|x| x.trim_end().trim_end_matches("```").trim())
        .unwrap_or(t);
    if t.is_empty() {
        return Err("the reply was empty; answer with one JSON object".into());
    }
    let v: Value = serde_json::from_str(t).map_err(|e| {
        if t.starts_with('{') {
            format!("the reply is not valid JSON ({e})")
        } else {
            "the reply is prose, not JSON; answer with one JSON object".into()
        }
    })?;
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or("");
    let text = || {
        v.get("text")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .ok_or_else(|| format!("kind {kind:?} needs a non-empty \"text\""))
    };
    match kind {
        "operation" => {
            let name = v
                .get("operation")
                .and_then(Value::as_str)
                .ok_or("kind \"operation\" needs \"operation\" (a dotted name from the list)")?;
            let args = v.get("args").cloned().unwrap_or(Value::Null);
            let op = parse_proposal(name, &args)?;
            Ok((
                Proposal::Operation {
                    name: name.into(),
                    args,
                },
                Some(op),
            ))
        }
        "question" => Ok((Proposal::Question(text()?), None)),
        "answer" => Ok((Proposal::Answer(text()?), None)),
        other => Err(format!(
            "\"kind\" is {other:?}; it must be \"operation\", \"question\" or \"answer\""
        )),
    }
}

/// What asking a backend came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Consulted {
    /// A valid operation (parsed like REST input; risk and confirmation still come from the table).
    Operation(Operation),
    /// A question back.
    Question(String),
    /// A text answer.
    Answer(String),
    /// Two invalid replies: the last validation error (the chat asks back).
    Invalid(String),
    /// The backend failed (HTTP error, time-out, stalled stream): the message says how.
    Failed(String),
}

/// Asks `backend` about `text`; validates the reply like REST input, sends an invalid one back once with the
/// error, and gives up after the second. `on_token` gets the attempt (0, or 1 for the retry) and each raw piece.
pub fn consult(
    backend: &dyn ModelBackend,
    text: &str,
    lang: Lang,
    operations: &[OpInfo],
    free_form: bool,
    on_token: &mut dyn FnMut(usize, &str),
) -> Consulted {
    let mut req = ModelRequest {
        messages: vec![
            Message {
                role: "system",
                content: system_prompt(operations, lang, free_form),
            },
            Message {
                role: "user",
                content: text.to_string(),
            },
        ],
        schema: proposal_schema(operations),
        max_tokens: 512,
    };
    let mut last = String::new();
    for attempt in 0..2 {
        let raw = match backend.complete(&req, &mut |p| on_token(attempt, p)) {
            Ok(r) => r,
            Err(e) => return Consulted::Failed(e.0),
        };
        match parse_reply(&raw) {
            Ok((_, Some(op))) => return Consulted::Operation(op),
            Ok((Proposal::Question(q), _)) => return Consulted::Question(q),
            Ok((Proposal::Answer(a), _)) => return Consulted::Answer(a),
            Ok((Proposal::Operation { .. }, None)) => unreachable!("an operation proposal always parses"),
            Err(e) => {
                last = e.clone();
                req.messages.push(Message {
                    role: "assistant",
                    content: raw.chars().take(4000).collect(),
                });
                req.messages.push(Message {
                    role: "user",
                    content: format!("That reply was refused: {e}. Answer again with one valid JSON object."),
                });
            }
        }
    }
    Consulted::Invalid(last)
}

/// Whether `text` asks for an explanation in words ("erkläre mir …", "explain …", "was bedeutet …").
pub fn is_free_form(text: &str) -> bool {
    let t = text.trim().to_lowercase();
    [
        "erkläre",
        "erklär ",
        "erklaere",
        "was bedeutet",
        "warum ist",
        "explain",
        "what does",
        "what is the difference",
        "tell me about",
    ]
    .iter()
    .any(|p| t.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proposals_parse_like_rest_or_are_refused() {
        assert_eq!(
            parse_proposal("system.status", &serde_json::Value::Null).unwrap(),
            Operation::SystemStatus
        );
        assert_eq!(
            parse_proposal("system.status", &json!({})).unwrap(),
            Operation::SystemStatus
        );
        let op = parse_proposal("supervisor.kill-task", &serde_json::json!({"task": "web"})).unwrap();
        assert_eq!(op.name(), "supervisor.kill-task");
        assert!(parse_proposal("rm.everything", &serde_json::Value::Null)
            .unwrap_err()
            .contains("unknown operation"));
        assert!(parse_proposal("supervisor.kill-task", &serde_json::json!({"tsk": 1}))
            .unwrap_err()
            .contains("invalid arguments"));
        assert_eq!(parse_proposal("model.list", &json!({})).unwrap(), Operation::ModelList);
    }

    #[test]
    fn replies_are_checked() {
        let (p, op) = parse_reply(r#"{"kind":"operation","operation":"system.status","args":{}}"#).unwrap();
        assert!(matches!(p, Proposal::Operation { .. }));
        assert_eq!(op, Some(Operation::SystemStatus));
        assert!(parse_reply("Sure! Here is the status.").unwrap_err().contains("prose"));
        assert!(parse_reply(r#"{"kind":"operation","#)
            .unwrap_err()
            .contains("not valid JSON"));
        assert!(parse_reply(r#"{"kind":"operation","operation":"rm.rf","args":{}}"#)
            .unwrap_err()
            .contains("unknown operation"));
        assert!(parse_reply(r#"{"kind":"shout","text":"x"}"#)
            .unwrap_err()
            .contains("must be"));
        assert!(parse_reply(r#"{"kind":"answer","text":" "}"#)
            .unwrap_err()
            .contains("non-empty"));
        let (p, _) = parse_reply("```json\n{\"kind\":\"answer\",\"text\":\"Hallo\"}\n```").unwrap();
        assert_eq!(p, Proposal::Answer("Hallo".into()));
    }

    #[test]
    fn the_schema_lists_every_operation() {
        let s = proposal_schema(cacheos_core::OPERATIONS);
        let names = s["oneOf"][0]["properties"]["operation"]["enum"].as_array().unwrap();
        assert_eq!(names.len(), cacheos_core::OPERATIONS.len());
        assert!(!s.to_string().contains("tool_choice"));
    }

    struct Replies(
        std::sync::Mutex<Vec<Result<String, ModelError>>>,
        std::sync::Mutex<usize>,
    );

    impl ModelBackend for Replies {
        fn identity(&self) -> Option<ModelIdentity> {
            None
        }
        fn complete(&self, req: &ModelRequest, _t: &mut dyn FnMut(&str)) -> Result<String, ModelError> {
            *self.1.lock().unwrap() = req.messages.len();
            self.0.lock().unwrap().remove(0)
        }
    }

    #[test]
    fn one_retry_with_the_error_then_invalid() {
        let b = Replies(
            std::sync::Mutex::new(vec![
                Ok("prose".into()),
                Ok(r#"{"kind":"operation","operation":"system.status","args":{}}"#.into()),
            ]),
            Default::default(),
        );
        assert_eq!(
            consult(&b, "x", Lang::En, cacheos_core::OPERATIONS, false, &mut |_, _| {}),
            Consulted::Operation(Operation::SystemStatus)
        );
        assert_eq!(
            *b.1.lock().unwrap(),
            4,
            "the retry carries the refused reply and the error"
        );
        let b = Replies(
            std::sync::Mutex::new(vec![Ok("prose".into()), Ok("{bad".into()), Ok("unused".into())]),
            Default::default(),
        );
        match consult(&b, "x", Lang::En, cacheos_core::OPERATIONS, false, &mut |_, _| {}) {
            Consulted::Invalid(e) => assert!(e.contains("not valid JSON"), "{e}"),
            c => panic!("{c:?}"),
        }
        let b = Replies(
            std::sync::Mutex::new(vec![Err(ModelError("HTTP 500".into()))]),
            Default::default(),
        );
        assert_eq!(
            consult(&b, "x", Lang::En, cacheos_core::OPERATIONS, false, &mut |_, _| {}),
            Consulted::Failed("HTTP 500".into())
        );
    }
}
