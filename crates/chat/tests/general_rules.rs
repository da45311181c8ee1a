//! Pipeline rules that are not vocabulary: an operation on an object that does not exist is never proposed, a
//! time window turns the status into its history, a command that starts with a known program keeps the reading
//! on running it, spelled numbers count as limits, quoted names after "als Laufwerk"/"as" name the drive, and a
//! trailing "aus"/"off" switches persistence off. The requests are written for these tests, not taken from the
//! tuning or held-out sets.

use cacheos_chat::dataset::{appliance_known, parse_tsv};
use cacheos_chat::engine::{Interpretation, Session};
use cacheos_chat::eval::evaluate;
use cacheos_chat::Engine;

#[test]
fn an_operation_on_a_missing_object_is_a_question_naming_the_existing_ones() {
    let engine = Engine::new();
    let known = appliance_known();
    for (text, name, listed) in [
        ("entferne die Sandbox staging", "staging", "web, build"),
        ("stop sandbox archive", "archive", "web, build"),
    ] {
        let mut s = Session::default();
        match engine.interpret(text, &mut s, &known) {
            Interpretation::Question { text: q, options } => {
                assert!(q.contains(name) && q.contains(listed), "{text}: {q}");
                assert!(!options.is_empty(), "{text}");
            }
            other => panic!("{text}: {other:?}"),
        }
        assert!(
            s.pending.is_none() && s.last_sandbox.is_none(),
            "{text}: session touched: {s:?}"
        );
    }
    // A drive that is not attached: asked back, never detached.
    let mut s = Session::default();
    let i = engine.interpret("detach drive backup", &mut s, &known);
    assert!(matches!(i, Interpretation::Question { .. }), "{i:?}");
    // A sandbox made in this conversation counts as existing.
    let mut s = Session {
        last_sandbox: Some("lab".into()),
        ..Session::default()
    };
    let i = engine.interpret("starte lab", &mut s, &known);
    assert!(
        matches!(&i, Interpretation::Operation { operation, .. } if operation.name() == "sandbox.start"),
        "{i:?}"
    );
}

const REQUESTS: &str = "\
system.history {\"since_ms\":\"*\"}\tzeig mir die Auslastung der vergangenen drei Stunden
system.history {\"since_ms\":\"*\"}\tcpu and memory for the past two hours please
sandbox.exec {\"name\":\"web\",\"argv\":[\"ping\",\"-c\",\"2\",\"debian.org\"]}\tping -c 2 debian.org von web aus
sandbox.exec {\"name\":\"build\",\"argv\":[\"df\",\"-h\"]}\tdf -h auf build
sandbox.create {\"name\":\"ci\",\"tasks_max\":30}\tneue sandbox ci mit höchstens dreißig prozessen
sandbox.create {\"name\":\"runner\",\"tasks_max\":20}\tcreate sandbox runner, at most twenty procs
drive.attach {\"path\":\"old.vdi\",\"name\":\"alt\"}\thäng old.vdi als Laufwerk \"alt\" ein
drive.attach {\"path\":\"disk.vmdk\",\"name\":\"vm\"}\tattach disk.vmdk as \"vm\"
drive.persist {\"name\":\"data\",\"persistent\":false}\tautomatisches Einhängen für data aus
drive.files {\"name\":\"data\",\"path\":\"/\"}\tzeig die Dateien im Wurzelverzeichnis von data
drive.create {\"path\":\"big.img\",\"size\":2147483648,\"format\":\"qcow2\"}\tneues qcow2 image big.img mit 2G
";

#[test]
fn windows_commands_numbers_names_and_switches() {
    let engine = Engine::new();
    let r = evaluate(&engine, &parse_tsv(REQUESTS), &appliance_known(), false);
    assert_eq!(r.correct, r.total, "{}: {:#?}", r.summary(), r.failures);
}
