//! The door for an optional language-model backend. A backend only *proposes*: its proposal is parsed into the
//! same typed [`Operation`] the REST API accepts (dotted name + arguments), then handled exactly like the rule
//! engine's result — risk class, confirmation of destructive operations, validation and authorisation by the
//! core, audit with the utterance. The rule engine is asked first; a backend is consulted only for what it did
//! not understand. CacheOS ships no backend; one is plugged in with [`crate::ChatService::with_model`].

use cacheos_core::{OpInfo, Operation};

use crate::engine::Lang;

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
}

/// Why a backend could not answer.
#[derive(Debug, thiserror::Error)]
#[error("language model backend failed: {0}")]
pub struct ModelError(pub String);

/// A language-model backend.
pub trait ModelBackend: Send + Sync {
    /// Proposes what to do with `text`. `operations` is the core's table of operations (name, summary, risk) the
    /// backend may choose from. `Ok(None)`: the backend has no idea either.
    fn propose(&self, text: &str, lang: Lang, operations: &[OpInfo]) -> Result<Option<Proposal>, ModelError>;
}

/// Turns a proposed name and arguments into a typed operation, exactly as the REST API would parse them.
pub fn parse_proposal(name: &str, args: &serde_json::Value) -> Result<Operation, String> {
    if Operation::lookup(name).is_none() {
        return Err(format!("unknown operation {name:?}"));
    }
    let doc = if args.is_null() {
        serde_json::json!({ "op": name })
    } else {
        serde_json::json!({ "op": name, "args": args })
    };
    serde_json::from_value(doc).map_err(|e| format!("invalid arguments for {name}: {e}"))
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
        let op = parse_proposal("supervisor.kill-task", &serde_json::json!({"task": "web"})).unwrap();
        assert_eq!(op.name(), "supervisor.kill-task");
        assert!(parse_proposal("rm.everything", &serde_json::Value::Null)
            .unwrap_err()
            .contains("unknown operation"));
        assert!(parse_proposal("supervisor.kill-task", &serde_json::json!({"tsk": 1}))
            .unwrap_err()
            .contains("invalid arguments"));
    }
}
