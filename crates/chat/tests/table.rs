//! Data-driven test of the language engine: every line of `utterances.tsv` is an utterance with its expected
//! interpretation. Prints the accuracy and fails below 97 %.

mod fixture;
use cacheos_chat::engine::Known;
use cacheos_chat::{ChatAction, Engine, Interpretation, Session};
use cacheos_core::Operation;
use fixture::known;

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
                ChatAction::ModelAnswer { .. } => "model-answer",
            };
            (format!("chat:{name}"), serde_json::Value::Null)
        }
    }
}

/// The expected arguments match: every listed key has the listed value (`"*"`: any non-null value), and every
/// key not listed is at its default (dropping it parses to the same operation).
fn args_match(op: &str, want: &serde_json::Value, got: &serde_json::Value) -> bool {
    let Some(w) = want.as_object() else { return true };
    let at_default = |k: &str| {
        let mut without = got.clone();
        if let Some(m) = without.as_object_mut() {
            m.remove(k);
        }
        let parse = |args: &serde_json::Value| {
            serde_json::from_value::<Operation>(serde_json::json!({"op": op, "args": args})).ok()
        };
        parse(&without).is_some() && parse(&without) == parse(got)
    };
    w.iter().all(|(k, v)| match got.get(k) {
        Some(g) if v == "*" => !g.is_null(),
        Some(g) => g == v,
        None => false,
    }) && got
        .as_object()
        .is_none_or(|g| g.keys().all(|k| w.contains_key(k) || at_default(k)))
}

#[test]
fn utterance_table() {
    let engine = Engine::new();
    let known = known();
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
        if name == want_name && args_match(&name, &want_args, &args) {
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
        ..Default::default()
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

#[test]
fn removal_and_commit_carry_confirm_only_after_the_yes() {
    let engine = Engine::new();
    let known = known();
    for (plan, yes, op) in [
        ("lösche die Sandbox py", "ja", "sandbox.remove"),
        ("commit the snapshot of work", "yes", "drive.commit"),
    ] {
        let mut s = Session::default();
        let j = engine.interpret(plan, &mut s, &known).to_json();
        assert_eq!(j["operation"], op);
        assert_eq!(
            (j["needs_confirmation"].as_bool(), &j["args"]["confirm"]),
            (Some(true), &serde_json::json!(false))
        );
        match engine.interpret(yes, &mut s, &known) {
            Interpretation::Chat {
                action: ChatAction::Confirm { operation },
                ..
            } => {
                assert_eq!(operation.name(), op);
                assert_eq!(operation.args_json()["confirm"], true);
            }
            other => panic!("{plan}: expected a confirmation, got {other:?}"),
        }
    }
}

#[test]
fn arbitrary_input_never_panics_and_stays_fast() {
    // A small deterministic fuzzer (xorshift): random mixes of vocabulary, names, numbers, quotes and noise.
    let engine = Engine::new();
    let known = known();
    let pieces = [
        "häng",
        "ein",
        "aus",
        "das",
        "ISO",
        "debian.iso",
        "work",
        "py",
        "starte",
        "sie",
        "run",
        "in",
        "`",
        "\"",
        "'",
        "„",
        "1,5",
        "GiB",
        "50",
        "%",
        "Kerne",
        "half",
        "a",
        "core",
        "mit",
        "Python",
        "Sandbox",
        "lösche",
        "ja",
        "nein",
        "zweite",
        "/",
        "..",
        "-a",
        "Schnappschuss",
        "commit",
        "als",
        "as",
        "ä",
        "ß",
        "\u{0}",
        "🙂",
        "read-write",
        "Netzwerk",
        "ohne",
        "Dateien",
        "auf",
        "verlauf",
        "cpu",
        "999999999999999999999",
        "GB",
        "",
    ];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut session = Session::default();
    for round in 0..1000 {
        let n = (next() % 24) as usize;
        let mut s = String::new();
        for _ in 0..n {
            s.push_str(pieces[(next() % pieces.len() as u64) as usize]);
            if next() % 3 != 0 {
                s.push(' ');
            }
        }
        if round % 50 == 0 {
            s = s.repeat(2000);
        }
        let t = std::time::Instant::now();
        let _ = engine.interpret(&s, &mut session, &known).to_json();
        assert!(
            t.elapsed() < std::time::Duration::from_secs(2),
            "slow on {} bytes",
            s.len()
        );
    }
}
