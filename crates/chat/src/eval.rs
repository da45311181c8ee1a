//! Scoring an engine on a data file: right (operation and the listed arguments), wrong operation proposed (the
//! costly error: an operation other than the expected one, or any operation where none was expected), right
//! operation with wrong arguments, and asked back / not understood.

use crate::dataset::Example;
use crate::engine::{ChatAction, Engine, Interpretation, Known, Session};

/// The label of an interpretation: an operation name, `question`, `not-understood` or `chat:<action>`.
pub fn label(i: &Interpretation) -> (String, serde_json::Value) {
    match i {
        Interpretation::Operation { operation, .. } => (operation.name().to_string(), operation.args_json()),
        Interpretation::Question { .. } => ("question".into(), serde_json::Value::Null),
        Interpretation::NotUnderstood { .. } => ("not-understood".into(), serde_json::Value::Null),
        Interpretation::Chat { action, .. } => {
            let name = match action {
                ChatAction::Help => "help",
                ChatAction::Confirm { .. } => "confirm",
                ChatAction::NothingToConfirm => "nothing-to-confirm",
                ChatAction::Cancel => "cancel",
                ChatAction::NothingToCancel => "nothing-to-cancel",
                ChatAction::ClearHistory => "clear-history",
                ChatAction::ModelAnswer { .. } => "model-answer",
            };
            (format!("chat:{name}"), serde_json::Value::Null)
        }
    }
}

/// Whether the listed arguments match: each listed key has the listed value (`"*"`: present and not null).
/// `strict` also requires every key not listed to be at its default (the utterance table's rule).
pub fn args_match(op: &str, want: &serde_json::Value, got: &serde_json::Value, strict: bool) -> bool {
    let Some(w) = want.as_object() else { return true };
    // `limits: {cpu, memory_max, tasks_max}` is how people write them; the API takes them flattened.
    let mut w = w.clone();
    if let Some(serde_json::Value::Object(l)) = w.remove("limits") {
        w.extend(l);
    }
    let w = &w;
    let listed = w.iter().all(|(k, v)| match got.get(k) {
        // A sub directory of a drive may be written with a leading "/" (relative to the drive's root).
        Some(serde_json::Value::String(g)) if k == "path" && op == "drive.files" => {
            v == "*" || v.as_str().map(|v| v.trim_start_matches('/')) == Some(g.trim_start_matches('/'))
        }
        Some(g) => value_match(v, g),
        None => false,
    });
    if !strict || !listed {
        return listed;
    }
    let at_default = |k: &str| {
        let mut without = got.clone();
        if let Some(m) = without.as_object_mut() {
            m.remove(k);
        }
        let parse = |args: &serde_json::Value| {
            serde_json::from_value::<cacheos_core::Operation>(serde_json::json!({"op": op, "args": args})).ok()
        };
        parse(&without).is_some() && parse(&without) == parse(got)
    };
    got.as_object()
        .is_none_or(|g| g.keys().all(|k| w.contains_key(k) || at_default(k)))
}

/// A wanted value matches: `"*"` any non-null value, numbers by value, objects by their listed keys, arrays
/// element by element.
fn value_match(want: &serde_json::Value, got: &serde_json::Value) -> bool {
    use serde_json::Value as V;
    match (want, got) {
        (V::String(s), g) if s == "*" => !g.is_null(),
        (V::Number(a), V::Number(b)) => a.as_f64() == b.as_f64(),
        (V::Object(a), V::Object(b)) => a.iter().all(|(k, v)| b.get(k).is_some_and(|g| value_match(v, g))),
        (V::Array(a), V::Array(b)) => a.len() == b.len() && a.iter().zip(b).all(|(x, y)| value_match(x, y)),
        (a, b) => a == b,
    }
}

/// The figures of one evaluation.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Requests.
    pub total: usize,
    /// Right.
    pub correct: usize,
    /// A wrong operation proposed.
    pub wrong_op: usize,
    /// The right operation with wrong arguments.
    pub wrong_args: usize,
    /// Asked back or not understood where an operation was expected.
    pub asked: usize,
    /// One line per miss (request, expected, got).
    pub failures: Vec<String>,
}

impl Report {
    /// Percentage of `n`.
    pub fn pct(&self, n: usize) -> f64 {
        100.0 * n as f64 / self.total.max(1) as f64
    }

    /// Adds another report's figures.
    pub fn add(&mut self, o: &Report) {
        self.total += o.total;
        self.correct += o.correct;
        self.wrong_op += o.wrong_op;
        self.wrong_args += o.wrong_args;
        self.asked += o.asked;
        self.failures.extend(o.failures.iter().cloned());
    }

    /// One line: right %, wrong-operation %, wrong-argument %, asked %.
    pub fn summary(&self) -> String {
        format!(
            "{}/{} right ({:.1} %), wrong operation {:.1} %, wrong arguments {:.1} %, asked/not understood {:.1} %",
            self.correct,
            self.total,
            self.pct(self.correct),
            self.pct(self.wrong_op),
            self.pct(self.wrong_args),
            self.pct(self.asked)
        )
    }
}

/// Scores one example's interpretation.
pub fn score(ex: &Example, got: &Interpretation, strict: bool, r: &mut Report) {
    let (name, args) = label(got);
    r.total += 1;
    let is_op = matches!(got, Interpretation::Operation { .. });
    let ok = match ex.expected.as_str() {
        // No operation should be proposed: a question or "not understood" is right.
        // "Nothing to confirm" after a bare yes proposes nothing either.
        "none" => {
            !is_op
                && !matches!(
                    got,
                    Interpretation::Chat {
                        action: crate::engine::ChatAction::Help | crate::engine::ChatAction::ClearHistory,
                        ..
                    } | Interpretation::Chat {
                        action: crate::engine::ChatAction::Confirm { .. } | crate::engine::ChatAction::Cancel,
                        ..
                    }
                )
        }
        "not-understood" if !strict => !is_op,
        e => name == e && args_match(&name, &ex.args, &args, strict),
    };
    if ok {
        r.correct += 1;
        return;
    }
    let expected_op = ex.expected.contains('.') && !ex.expected.starts_with("chat:");
    if is_op && name == ex.expected {
        r.wrong_args += 1;
    } else if is_op {
        r.wrong_op += 1;
    } else if expected_op {
        r.asked += 1;
    } else {
        // A chat action or question where another was expected: not an operation, counted as asked.
        r.asked += 1;
    }
    let exp = if ex.args.is_null() {
        ex.expected.clone()
    } else {
        format!("{} {}", ex.expected, ex.args)
    };
    r.failures.push(format!(
        "{:?}: expected {exp}, got {name} {}",
        ex.text,
        if args.is_null() {
            String::new()
        } else {
            args.to_string()
        }
    ));
}

/// Evaluates `engine` on `examples` in the context `known`, a fresh session per line unless it continues.
pub fn evaluate(engine: &Engine, examples: &[Example], known: &Known, strict: bool) -> Report {
    let mut r = Report::default();
    let mut session = Session::default();
    for ex in examples {
        if !ex.cont {
            session = Session::default();
        }
        let got = engine.interpret(&ex.text, &mut session, known);
        score(ex, &got, strict, &mut r);
    }
    r
}
