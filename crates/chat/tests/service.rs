//! The chat service over a real core (memory store, fake supervisor): execution, audit with the utterance,
//! confirmation of destructive operations, sessions, history.

use std::sync::Arc;

use cacheos_chat::{ChatService, Known};
use cacheos_core::audit::AuditFilter;
use cacheos_core::store::Store;
use cacheos_core::{Frontend, Principal};

fn service() -> (ChatService, Arc<cacheos_core::store::MemoryStore>) {
    let (core, store) = cacheos_core::testing::core();
    let known = Box::new(|| Known {
        tasks: vec!["web".into()],
        now_ms: 1_000_000,
        ..Default::default()
    });
    (ChatService::new(core, store.clone(), known), store)
}

const ALICE: Principal = Principal::Uid { uid: 1000 };

#[test]
fn reads_run_at_once_and_are_audited_with_the_utterance() {
    let (svc, store) = service();
    let r = svc.chat(&ALICE, Some("s1"), "zeig mir den Systemstatus").unwrap();
    assert_eq!(r.session, "s1");
    let ex = r.executed.unwrap();
    assert!(ex.ok);
    assert_eq!(ex.operation, "system.status");
    assert_eq!(ex.output.unwrap()["hostname"], "testbox");
    assert!(
        r.reply.starts_with("Ich zeige den Systemstatus.") && r.reply.contains("testbox"),
        "{}",
        r.reply
    );
    let rec = &store.query_audit(&AuditFilter::default()).unwrap()[0].record;
    assert_eq!(rec.frontend, Frontend::Chat);
    assert_eq!(rec.utterance.as_deref(), Some("zeig mir den Systemstatus"));
    assert_eq!(rec.session.as_deref(), Some("s1"));
}

#[test]
fn destructive_runs_only_after_yes_in_the_same_session() {
    let (svc, store) = service();
    let r = svc.chat(&ALICE, Some("s2"), "beende die Aufgabe web").unwrap();
    assert!(r.executed.is_none());
    assert_eq!(r.interpretation["needs_confirmation"], true);
    assert_eq!(store.audit_len().unwrap(), 0, "nothing ran yet");
    // A yes in another session confirms nothing.
    let other = svc.chat(&ALICE, Some("s3"), "ja").unwrap();
    assert!(other.executed.is_none());
    assert_eq!(other.interpretation["chat"]["action"], "nothing-to-confirm");
    let r = svc.chat(&ALICE, Some("s2"), "ja").unwrap();
    let ex = r.executed.unwrap();
    assert_eq!((ex.operation.as_str(), ex.ok), ("supervisor.kill-task", true));
    let rec = &store.query_audit(&AuditFilter::default()).unwrap()[0].record;
    assert_eq!(rec.utterance.as_deref(), Some("beende die Aufgabe web → ja"));
    // Cancelled plans never run.
    svc.chat(&ALICE, Some("s2"), "beende die Aufgabe web").unwrap();
    let r = svc.chat(&ALICE, Some("s2"), "nein").unwrap();
    assert_eq!(r.interpretation["chat"]["action"], "cancel");
    assert_eq!(store.audit_len().unwrap(), 1);
}

#[test]
fn interpret_changes_nothing_and_sessions_are_private() {
    let (svc, store) = service();
    let (id, j) = svc.interpret(&ALICE, Some("s4"), "kill the web task").unwrap();
    assert_eq!(
        (id.as_str(), j["operation"].as_str()),
        ("s4", Some("supervisor.kill-task"))
    );
    let r = svc.chat(&ALICE, Some("s4"), "yes").unwrap();
    assert_eq!(
        r.interpretation["chat"]["action"], "nothing-to-confirm",
        "interpret must not plan anything"
    );
    assert_eq!(store.audit_len().unwrap(), 0);
    let e = svc
        .chat(&Principal::Uid { uid: 4242 }, Some("s4"), "status")
        .unwrap_err();
    assert!(e.to_string().contains("another user"), "{e}");
    assert!(svc.chat(&ALICE, Some("bad id!"), "status").is_err());
    let fresh = svc.chat(&ALICE, None, "help").unwrap();
    assert!(!fresh.session.is_empty());
}

#[test]
fn history_is_kept_and_can_be_deleted() {
    let (svc, _) = service();
    svc.chat(&ALICE, Some("h"), "status").unwrap();
    svc.chat(&ALICE, Some("h"), "was kannst du?").unwrap();
    let h = svc.history(&ALICE, "h").unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(h[0].operation.as_deref(), Some("system.status"));
    assert!(h[1].reply.contains("Ich kann"));
    svc.chat(&ALICE, Some("h"), "lösche meinen Verlauf").unwrap();
    assert!(svc.history(&ALICE, "h").unwrap().is_empty());
}

/// A scripted backend for this test only (the real ones are in crates/model).
struct Scripted(std::sync::Mutex<u32>);

impl cacheos_chat::ModelBackend for Scripted {
    fn identity(&self) -> Option<cacheos_chat::model::ModelIdentity> {
        Some(cacheos_chat::model::ModelIdentity {
            backend: "openai".into(),
            model: "scripted".into(),
            remote: true,
            target: "http://192.168.1.5:8080".into(),
        })
    }

    fn complete(
        &self,
        req: &cacheos_chat::model::ModelRequest,
        _on_token: &mut dyn FnMut(&str),
    ) -> Result<String, cacheos_chat::ModelError> {
        *self.0.lock().unwrap() += 1;
        assert!(
            req.messages[0].content.contains("system.status"),
            "the backend sees the operation table"
        );
        let text = req.messages[1].content.as_str();
        Ok(match text {
            "qqq www" => r#"{"kind":"operation","operation":"system.status","args":{}}"#.into(),
            "reboot the world" => {
                r#"{"kind":"operation","operation":"supervisor.kill-task","args":{"task":"web"}}"#.into()
            }
            "nonsense op" => r#"{"kind":"operation","operation":"rm.rf","args":{}}"#.into(),
            "erkläre mir Sandboxen" => r#"{"kind":"answer","text":"Eine Sandbox ist ein Container."}"#.into(),
            _ => "I do not know.".into(),
        })
    }
}

#[test]
fn model_proposals_go_through_the_same_rules() {
    let (core, store) = cacheos_core::testing::core();
    let known = Box::new(|| Known {
        tasks: vec!["web".into()],
        now_ms: 1,
        ..Default::default()
    });
    // The parser alone, so that which phrases leave the pipeline unsure does not depend on the trained model.
    let svc = ChatService::new(core, store.clone(), known)
        .with_engine(cacheos_chat::Engine::rules_only())
        .with_model(std::sync::Arc::new(Scripted(Default::default())));
    // The rule engine answers what it understands; the model is not asked.
    let r = svc.chat(&ALICE, Some("m"), "status").unwrap();
    assert_eq!(r.executed.unwrap().operation, "system.status");
    // A read proposed by the model runs and is audited like any other.
    let r = svc.chat(&ALICE, Some("m"), "qqq www").unwrap();
    assert!(
        r.executed.as_ref().is_some_and(|e| e.ok),
        "{} {}",
        r.reply,
        r.interpretation
    );
    // A destructive proposal is only planned.
    let r = svc.chat(&ALICE, Some("m"), "reboot the world").unwrap();
    assert!(r.executed.is_none());
    assert_eq!(r.interpretation["needs_confirmation"], true);
    assert_eq!(store.audit_len().unwrap(), 2);
    // A model-read operation's audit record names backend, model and schema version; the reply says who read it.
    let rec = &store.query_audit(&Default::default()).unwrap()[0];
    let u = rec.record.utterance.as_deref().unwrap();
    assert!(
        u.contains("openai model scripted") && u.contains("proposal schema 1"),
        "{u}"
    );
    // An invalid proposal is never executed: retried once, then a question back.
    let r = svc.chat(&ALICE, Some("m2"), "nonsense op").unwrap();
    assert_eq!(r.interpretation["kind"], "question", "{}", r.reply);
    assert!(r.reply.contains("unknown operation"), "{}", r.reply);
    assert!(r.executed.is_none());
    assert_eq!(store.audit_len().unwrap(), 2);
    // A free-form question gets the model's text, marked as coming from the remote server.
    let r = svc.chat(&ALICE, Some("m3"), "erkläre mir Sandboxen").unwrap();
    assert!(r.reply.contains("Eine Sandbox ist ein Container."), "{}", r.reply);
    assert!(r.reply.contains("ging an diesen Server"), "{}", r.reply);
}

#[test]
fn a_sandbox_conversation_creates_starts_runs_and_removes_only_after_yes() {
    let (core, store, _fakes) = cacheos_core::testing::core_with_sandboxes();
    let c = core.clone();
    let known = Box::new(move || Known {
        sandboxes: c
            .sandboxes()
            .map(|s| s.list().unwrap().into_iter().map(|i| i.name).collect())
            .unwrap_or_default(),
        templates: vec!["bb".into()],
        ..Default::default()
    });
    let svc = ChatService::new(core, store.clone(), known);
    let step = |text: &str| {
        let r = svc.chat(&ALICE, Some("sb"), text).unwrap();
        let ex = r.executed.clone();
        (r, ex)
    };
    let (_, ex) = step("erstelle eine Sandbox aus der Vorlage bb namens lab");
    let ex = ex.unwrap();
    assert_eq!(
        (ex.operation.as_str(), ex.ok),
        ("sandbox.create", true),
        "{:?}",
        ex.error
    );
    let (_, ex) = step("und jetzt starte sie");
    let ex = ex.unwrap();
    assert_eq!(
        (ex.operation.as_str(), ex.ok),
        ("sandbox.start", true),
        "{:?}",
        ex.error
    );
    let (r, ex) = step("run uname -a in lab");
    assert_eq!(r.interpretation["args"]["argv"], serde_json::json!(["uname", "-a"]));
    assert_eq!(ex.unwrap().operation, "sandbox.exec");
    let (r, ex) = step("lösche sie");
    assert!(ex.is_none(), "removal waits for a yes");
    assert_eq!(
        r.interpretation["args"],
        serde_json::json!({"name": "lab", "confirm": false})
    );
    let (_, ex) = step("ja");
    let ex = ex.unwrap();
    assert_eq!(
        (ex.operation.as_str(), ex.ok),
        ("sandbox.remove", true),
        "{:?}",
        ex.error
    );
    let rec = &store.query_audit(&AuditFilter::default()).unwrap()[0].record;
    assert_eq!(rec.utterance.as_deref(), Some("lösche sie → ja"));
}
