//! Data-driven test of the language engine: every line of `utterances.tsv` is an utterance with its expected
//! interpretation. Prints the accuracy and fails below 97 %.

use cacheos_chat::engine::Known;
use cacheos_chat::{ChatAction, Engine, Interpretation, Session};

fn label(i: &Interpretation) -> (String, serde_json::Value) {
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
            };
            (format!("chat:{name}"), serde_json::Value::Null)
        }
    }
}

fn args_match(want: &serde_json::Value, got: &serde_json::Value) -> bool {
    let Some(w) = want.as_object() else { return true };
    w.iter().all(|(k, v)| match got.get(k) {
        Some(g) if v == "*" => !g.is_null(),
        Some(g) => g == v,
        None => false,
    }) && got.as_object().is_none_or(|g| g.keys().all(|k| w.contains_key(k)))
}

#[test]
fn utterance_table() {
    let engine = Engine::new();
    let known = Known {
        tasks: vec!["dbus".into(), "metrics".into(), "web".into()],
        now_ms: 10_000_000_000,
    };
    let table = include_str!("utterances.tsv");
    let mut session = Session::default();
    let (mut total, mut ok) = (0, 0);
    let mut failures = Vec::new();
    for line in table.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let (expected, text) = line.split_once('\t').unwrap_or((line, ""));
        let (cont, expected) = match expected.strip_prefix('+') {
            Some(e) => (true, e),
            None => (false, expected),
        };
        if !cont {
            session = Session::default();
        }
        let (want_name, want_args) = match expected.split_once(' ') {
            Some((n, a)) => (n, serde_json::from_str(a).expect("args JSON")),
            None => (expected, serde_json::Value::Null),
        };
        let got = engine.interpret(text, &mut session, &known);
        let (name, args) = label(&got);
        total += 1;
        if name == want_name && args_match(&want_args, &args) {
            ok += 1;
        } else {
            failures.push(format!("{text:?}: expected {expected}, got {name} {args}"));
        }
    }
    let acc = 100.0 * ok as f64 / total as f64;
    println!("chat table: {ok}/{total} correct ({acc:.1} %)");
    for f in &failures {
        println!("  MISS {f}");
    }
    assert!(
        acc >= 97.0,
        "accuracy {acc:.1} % is below 97 %:\n{}",
        failures.join("\n")
    );
}

#[test]
fn destructive_needs_confirmation_and_reads_do_not() {
    let engine = Engine::new();
    let known = Known {
        tasks: vec!["web".into()],
        now_ms: 0,
    };
    let mut s = Session::default();
    let i = engine.interpret("kill the web task", &mut s, &known);
    let j = i.to_json();
    assert_eq!(j["operation"], "supervisor.kill-task");
    assert_eq!(j["args"], serde_json::json!({"task": "web"}));
    assert_eq!(j["risk"], "destructive");
    assert_eq!(j["needs_confirmation"], true);
    assert!(j["explanation"].as_str().unwrap().contains("yes"));
    assert!(s.pending.is_some());
    let j = engine
        .interpret("zeig mir den Systemstatus", &mut Session::default(), &known)
        .to_json();
    assert_eq!(
        (j["operation"].as_str(), j["needs_confirmation"].as_bool()),
        (Some("system.status"), Some(false))
    );
    assert!(
        j["explanation"].as_str().unwrap().starts_with("Ich zeige"),
        "German question, German reply"
    );
}

#[test]
fn no_panic_and_bounded_time_on_hostile_input() {
    let engine = Engine::new();
    let known = Known::default();
    let inputs = [
        "\"".repeat(10_000),
        "ä".repeat(50_000),
        "status ".repeat(20_000),
        "1,5,5,5 GiB % % 50%% \u{0} \u{202e} 🙂".into(),
        "„unclosed «mixed' quotes\"".into(),
    ];
    for s in inputs {
        let t = std::time::Instant::now();
        let _ = engine.interpret(&s, &mut Session::default(), &known);
        assert!(
            t.elapsed() < std::time::Duration::from_secs(2),
            "slow on input of {} bytes",
            s.len()
        );
    }
}
