//! End-to-end test of the knowledge base through a real `cacheosd --dev` (CACHEOS_INTEGRATION=1; no root): the
//! daemon indexes the user guide (copied to `<state>/doc`, the dev-mode docs directory) as source `docs` at start,
//! REST `kb.ask` answers a German how-to question with a citation into the networking chapter, `cacheosctl kb`
//! searches and asks, the chat answers with numbered sources, a question about nothing in the documents is answered
//! with "nothing found", and a restart reuses the index without reading unchanged files again.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

fn docs_ready(d: &Daemon) -> Value {
    wait_until("the docs source to be indexed", Duration::from_secs(60), || {
        let v = d.get("/api/v1/kb/sources");
        let s = v.as_array()?.iter().find(|s| s["name"] == "docs")?.clone();
        (s["state"] == "ready" && s["documents"].as_u64()? >= 20).then_some(s)
    })
}

#[test]
fn the_guide_is_indexed_at_start_and_answers_cite_it() {
    if !enabled("the_guide_is_indexed_at_start_and_answers_cite_it") {
        return;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let bus = TestBus::session();
    let state = bus.dir.path().join("state");
    copy_tree(&repo.join("docs/guide"), &state.join("doc/guide"));
    copy_tree(&repo.join("docs/man"), &state.join("doc/man"));
    let mut d = Daemon::start_with(&bus.address, &state, &[]);
    let src = docs_ready(&d);
    assert!(
        src["chunks"].as_u64().unwrap() > src["documents"].as_u64().unwrap(),
        "{src}"
    );

    let ans: Value = ureq::post(&d.url("/api/v1/kb/ask"))
        .send_json(json!({"question": "wie gebe ich einer Sandbox Internet?"}))
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(ans["found"], true, "{ans}");
    let c = &ans["passages"][0]["citation"];
    assert_eq!(c["source"], "docs");
    // The networking chapter or the troubleshooting entry about it, in either language, under its heading.
    let path = c["path"].as_str().unwrap();
    assert!(
        [
            "guide/de/netzwerk.md",
            "guide/en/networking.md",
            "guide/de/fehlersuche.md",
            "guide/en/troubleshooting.md"
        ]
        .contains(&path),
        "{ans}"
    );
    assert!(
        c["heading"].as_str().unwrap().to_lowercase().contains("internet"),
        "{ans}"
    );
    let cited: Vec<&str> = ans["passages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["citation"]["path"].as_str())
        .collect();
    assert!(
        cited
            .iter()
            .any(|p| p.contains("netzwerk.md") || p.contains("networking.md")),
        "{ans}"
    );
    assert!(c["line_start"].as_u64().unwrap() >= 1 && c["line_end"].as_u64() >= c["line_start"].as_u64());

    let none: Value = ureq::post(&d.url("/api/v1/kb/ask"))
        .send_json(json!({"question": "Wer hat die Fußballweltmeisterschaft 1954 gewonnen?"}))
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(none["found"], false, "{none}");

    let out = d.ctl(&["kb", "search", "--json", "snapshot", "discard"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v["passages"][0]["citation"]["path"]
            .as_str()
            .unwrap()
            .contains("snapshots.md"),
        "{v}"
    );
    let out = d.ctl(&["kb", "ask", "how", "do", "I", "leave", "the", "chat", "console?"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("[1] docs:guide/en/chat.md"), "{text}");

    // The chat routes a how-to question to kb.ask and renders numbered sources.
    let body = ureq::post(&d.url("/api/v1/chat"))
        .send_json(json!({"text": "wie gebe ich einer Sandbox Internet?", "session": "kb-e2e"}))
        .unwrap()
        .into_string()
        .unwrap();
    let reply = body
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["type"] == "reply")
        .map(|v| v["text"].as_str().unwrap_or("").to_string())
        .unwrap_or_default();
    assert!(reply.contains("Quellen:") && reply.contains("[1] guide/"), "{body}");

    // A restart reuses the index: nothing is read again, the figures stay.
    d.stop();
    let d = Daemon::start_with(&bus.address, &state, &[]);
    let again = docs_ready(&d);
    assert_eq!(again["documents"], src["documents"]);
    assert_eq!(again["chunks"], src["chunks"]);
    let audit = d.get("/api/v1/audit?operation=kb.");
    assert!(
        audit.as_array().unwrap().iter().any(|r| r["operation"] == "kb.index"),
        "{audit}"
    );
}
