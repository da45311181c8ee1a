//! Sandbox operations in the chat front end: German and English explanations (the removal plan says what is lost
//! and needs a yes) and renderings of sandbox results.

use cacheos_chat::engine::{Engine, Interpretation, Lang, Session};
use cacheos_chat::render;
use cacheos_core::sandbox::ops::{ExecResult, SandboxExecArgs, SandboxRemoveArgs};
use cacheos_core::{Operation, Output};

#[test]
fn sandbox_removal_is_a_plan_in_both_languages_and_needs_confirmation() {
    let engine = Engine::new();
    let op = Operation::SandboxRemove(SandboxRemoveArgs {
        name: "web".into(),
        confirm: true,
    });
    let mut session = Session::default();
    let Interpretation::Operation {
        needs_confirmation,
        explanation,
        ..
    } = engine.operation(op.clone(), Lang::De, &mut session)
    else {
        panic!("not an operation")
    };
    assert!(needs_confirmation);
    assert!(
        explanation.starts_with("Plan: Sandbox web stoppen und löschen"),
        "{explanation}"
    );
    assert_eq!(session.pending, Some(op.clone()));
    let en = render::explain_sandbox(&op, Lang::En);
    assert!(en.contains("its writable data is lost"), "{en}");
    let exec = Operation::SandboxExec(SandboxExecArgs {
        name: "web".into(),
        argv: vec!["echo".into(), "hi".into()],
        timeout_secs: None,
    });
    assert_eq!(
        render::explain_sandbox(&exec, Lang::De),
        "Ich führe „echo hi“ in Sandbox web aus (sandbox.exec)."
    );
}

#[test]
fn exec_results_render_output_and_exit_code() {
    let out = Output::Exec(ExecResult {
        exit_code: 3,
        timed_out: false,
        stdout: "hi\n".into(),
        stderr: String::new(),
    });
    assert_eq!(render::output(&out, Lang::En), "hi\nexit code 3");
    assert_eq!(render::output(&out, Lang::De), "hi\nExit-Code 3");
    assert!(render::output(&Output::Sandboxes(vec![]), Lang::De).starts_with("Keine Sandboxen"));
}
