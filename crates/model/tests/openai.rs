//! The OpenAI-compatible backend against a scripted mock server (plain `std::net`): good answers, prose instead of
//! JSON, invalid JSON, wrong operation names, HTTP 500, time-outs and a stalled stream, through `model.use` and the
//! chat service. Nothing invalid is ever executed; each case gives a clear message. The mock is plain `std::net`
//! rather than axum: the cases need byte-level control (a stream cut before `[DONE]`, one piece then silence), which
//! a raw socket gives directly, and it keeps axum out of this crate's test build.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cacheos_chat::service::ChatEvent;
use cacheos_chat::{ChatService, Engine, Known};
use cacheos_core::auth::{Caller, Frontend, Principal};
use cacheos_core::executor::ModelDeps;
use cacheos_core::model::ModelUseArgs;
use cacheos_core::{Operation, Output, Store};
use cacheos_model::{ModelManager, Timeouts};

#[derive(Clone)]
enum Reply {
    /// Streams these pieces as SSE deltas, then `[DONE]`.
    Sse(Vec<&'static str>),
    /// A plain HTTP status with a body.
    Status(u16, &'static str),
    /// Waits this long before answering (a time-out).
    Sleep(u64),
    /// Sends these pieces, then nothing (a stalled stream).
    Stall(Vec<&'static str>),
    /// Sends these pieces, then closes without `[DONE]`.
    Cut(Vec<&'static str>),
    /// One whole JSON completion (a server that ignores `stream`).
    Whole(&'static str),
}

#[derive(Default)]
struct Script {
    replies: Vec<Reply>,
    requests: Vec<(String, String, String)>,
}

struct Mock {
    url: String,
    script: Arc<Mutex<Script>>,
}

impl Mock {
    fn start() -> Mock {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let script = Arc::new(Mutex::new(Script::default()));
        let s = script.clone();
        std::thread::spawn(move || {
            for c in l.incoming().flatten() {
                let s = s.clone();
                std::thread::spawn(move || serve(c, s));
            }
        });
        Mock { url, script }
    }

    fn then(&self, r: Reply) -> &Self {
        self.script.lock().unwrap().replies.push(r);
        self
    }

    fn chat_requests(&self) -> Vec<(String, String)> {
        self.script
            .lock()
            .unwrap()
            .requests
            .iter()
            .filter(|r| r.0.contains("chat/completions"))
            .map(|r| (r.1.clone(), r.2.clone()))
            .collect()
    }
}

fn serve(c: TcpStream, s: Arc<Mutex<Script>>) {
    let mut r = BufReader::new(c.try_clone().unwrap());
    let mut w = c;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let mut len = 0usize;
        let mut headers = String::new();
        loop {
            let mut h = String::new();
            r.read_line(&mut h).unwrap();
            if h.trim().is_empty() {
                break;
            }
            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
            headers.push_str(&h);
        }
        let mut body = vec![0u8; len];
        r.read_exact(&mut body).unwrap();
        let body = String::from_utf8_lossy(&body).into_owned();
        s.lock().unwrap().requests.push((path.clone(), headers, body));
        if path.ends_with("/models") {
            let b = r#"{"object":"list","data":[{"id":"mock-7b","object":"model"},{"id":"other"}]}"#;
            let _ = write!(
                w,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
                b.len()
            );
            continue;
        }
        let reply = {
            let mut s = s.lock().unwrap();
            if s.replies.is_empty() {
                Reply::Status(500, "script exhausted")
            } else {
                s.replies.remove(0)
            }
        };
        let sse_head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\r\n";
        let event = |p: &str| format!("data: {}\n\n", serde_json::json!({"choices":[{"delta":{"content":p}}]}));
        match reply {
            Reply::Sse(pieces) => {
                let _ = w.write_all(sse_head.as_bytes());
                for p in pieces {
                    let _ = w.write_all(event(p).as_bytes());
                    let _ = w.flush();
                }
                let _ = w.write_all(b"data: [DONE]\n\n");
                return;
            }
            Reply::Status(code, b) => {
                let _ = write!(
                    w,
                    "HTTP/1.1 {code} Oops\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{b}",
                    b.len()
                );
            }
            Reply::Sleep(ms) => {
                std::thread::sleep(Duration::from_millis(ms));
                return;
            }
            Reply::Cut(pieces) => {
                let _ = w.write_all(sse_head.as_bytes());
                for p in pieces {
                    let _ = w.write_all(event(p).as_bytes());
                }
                return;
            }
            Reply::Whole(text) => {
                let b = serde_json::json!({"choices":[{"message":{"role":"assistant","content":text}}],
                    "usage":{"completion_tokens":7}})
                .to_string();
                let _ = write!(
                    w,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
                    b.len()
                );
            }
            Reply::Stall(pieces) => {
                let _ = w.write_all(sse_head.as_bytes());
                for p in pieces {
                    let _ = w.write_all(event(p).as_bytes());
                }
                let _ = w.flush();
                std::thread::sleep(Duration::from_secs(5));
                return;
            }
        }
    }
}

fn root() -> Caller {
    Caller::new(Frontend::Cli, Principal::Uid { uid: 0 })
}

const ALICE: Principal = Principal::Uid { uid: 0 };

struct Setup {
    core: Arc<cacheos_core::Core>,
    store: Arc<cacheos_core::store::MemoryStore>,
    chat: ChatService,
    mock: Mock,
    state: tempfile::TempDir,
    mgr: Arc<ModelManager>,
}

fn setup(key: Option<&str>) -> Setup {
    let mock = Mock::start();
    let state = tempfile::tempdir().unwrap();
    let (core, store) = cacheos_core::testing::core();
    let mgr = Arc::new(
        ModelManager::new(&state.path().join("models"), state.path()).with_timeouts(Timeouts {
            connect: Duration::from_secs(2),
            first_token: Duration::from_millis(700),
            stall: Duration::from_millis(500),
            total: Duration::from_secs(10),
        }),
    );
    core.set_models(ModelDeps {
        host: mgr.clone(),
        models_dir: state.path().join("models"),
        web_listen: None,
    });
    let out = core
        .execute(
            &root(),
            Operation::ModelUse(ModelUseArgs {
                url: Some(mock.url.clone()),
                api_key: key.map(String::from),
                ..Default::default()
            }),
        )
        .unwrap();
    let Output::ModelStatus(st) = out else { panic!() };
    assert_eq!(
        st.active.unwrap().model.as_deref(),
        Some("mock-7b"),
        "the first served model"
    );
    let chat = ChatService::new(core.clone(), store.clone(), Box::new(Known::default))
        .with_engine(Engine::rules_only())
        .with_model(mgr.clone());
    Setup {
        mgr,
        core,
        store,
        chat,
        mock,
        state,
    }
}

const STATUS_JSON: [&str; 4] = [
    r#"{"kind":"opera"#,
    r#"tion","operation":"system"#,
    r#".status","args""#,
    ":{}}",
];

#[test]
fn a_good_streamed_answer_runs_the_operation_and_the_request_is_constrained() {
    let s = setup(Some("sk-test-123"));
    s.mock.then(Reply::Sse(STATUS_JSON.to_vec()));
    let n = s.store.audit_len().unwrap();
    let r = s.chat.chat(&ALICE, Some("a"), "qqq www").unwrap();
    let ex = r.executed.expect("executed");
    assert_eq!((ex.operation.as_str(), ex.ok), ("system.status", true));
    assert!(r.reply.contains("mock-7b"), "{}", r.reply);
    assert_eq!(s.store.audit_len().unwrap(), n + 1);
    let rec = &s.store.query_audit(&Default::default()).unwrap()[0];
    let u = rec.record.utterance.clone().unwrap();
    assert!(u.contains("openai model mock-7b") && u.contains("schema 1"), "{u}");
    let reqs = s.mock.chat_requests();
    assert_eq!(reqs.len(), 1);
    let (headers, body) = &reqs[0];
    assert!(headers
        .to_ascii_lowercase()
        .contains("authorization: bearer sk-test-123"));
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["response_format"]["type"], "json_schema");
    assert_eq!(v["stream"], true);
    assert!(v.get("tool_choice").is_none() && v.get("tools").is_none());
    assert!(
        v["response_format"]["json_schema"]["schema"]["oneOf"][0]["properties"]["operation"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == "model.use")
    );
    // The key is kept in a file of mode 0600 and never shown.
    use std::os::unix::fs::PermissionsExt;
    let key = s.state.path().join(cacheos_model::KEY_FILE);
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    let st = serde_json::to_string(&s.core.execute(&root(), Operation::ModelStatus).unwrap()).unwrap();
    assert!(
        !st.contains("sk-test-123") && st.contains("\"api_key_set\":true"),
        "{st}"
    );
    let audit = serde_json::to_string(&s.store.query_audit(&Default::default()).unwrap()).unwrap();
    assert!(!audit.contains("sk-test-123"));
    // Unload forgets it.
    s.core.execute(&root(), Operation::ModelUnload).unwrap();
    assert!(!key.exists());
}

fn refused(s: &Setup, text: &str) -> cacheos_chat::ChatReply {
    let n = s.store.audit_len().unwrap();
    let r = s.chat.chat(&ALICE, Some("b"), text).unwrap();
    assert!(r.executed.is_none(), "{r:?}");
    assert_eq!(s.store.audit_len().unwrap(), n, "nothing was executed");
    r
}

#[test]
fn prose_twice_becomes_a_question() {
    let s = setup(None);
    s.mock
        .then(Reply::Sse(vec!["Sure, ", "I will show the status."]))
        .then(Reply::Sse(vec!["Here it is!"]));
    let r = refused(&s, "qqq www");
    assert_eq!(r.interpretation["kind"], "question");
    assert!(r.reply.contains("prose"), "{}", r.reply);
    let reqs = s.mock.chat_requests();
    assert_eq!(reqs.len(), 2, "one retry");
    assert!(
        reqs[1].1.contains("That reply was refused"),
        "the retry names the error"
    );
}

#[test]
fn invalid_json_then_a_valid_reply_runs() {
    let s = setup(None);
    s.mock
        .then(Reply::Sse(vec![r#"{"kind":"operation","operation":"#]))
        .then(Reply::Sse(STATUS_JSON.to_vec()));
    let r = s.chat.chat(&ALICE, Some("c"), "qqq www").unwrap();
    assert_eq!(r.executed.unwrap().operation, "system.status");
    assert!(s.mock.chat_requests()[1].1.contains("not valid JSON"));
}

#[test]
fn wrong_operation_names_and_bad_arguments_are_never_run() {
    let s = setup(None);
    s.mock
        .then(Reply::Sse(vec![
            r#"{"kind":"operation","operation":"system.reboot","args":{}}"#,
        ]))
        .then(Reply::Sse(vec![
            r#"{"kind":"operation","operation":"sandbox.remove","args":{"nam":"x"}}"#,
        ]));
    let r = refused(&s, "qqq www");
    assert_eq!(r.interpretation["kind"], "question");
    assert!(r.reply.contains("invalid arguments for sandbox.remove"), "{}", r.reply);
    assert!(s.mock.chat_requests()[1].1.contains("unknown operation"));
}

#[test]
fn a_destructive_proposal_waits_for_yes() {
    let s = setup(None);
    s.mock.then(Reply::Sse(vec![
        r#"{"kind":"operation","operation":"supervisor.kill-task","args":{"task":"web"}}"#,
    ]));
    let r = refused(&s, "qqq www");
    assert_eq!(
        r.interpretation["needs_confirmation"], true,
        "risk comes from the table"
    );
}

#[test]
fn http_500_timeouts_and_stalled_streams_say_what_happened() {
    let s = setup(None);
    s.mock.then(Reply::Status(500, "model crashed"));
    let r = refused(&s, "qqq www");
    assert!(
        r.reply.contains("HTTP 500") && r.reply.contains("model crashed"),
        "{}",
        r.reply
    );

    s.mock.then(Reply::Sleep(2000));
    let t = std::time::Instant::now();
    let r = refused(&s, "qqq www");
    assert!(r.reply.contains("did not answer in time"), "{}", r.reply);
    assert!(t.elapsed() < Duration::from_millis(1900), "the read time-out ends it");

    s.mock.then(Reply::Stall(vec![r#"{"kind":"#]));
    let r = refused(&s, "qqq www");
    assert!(r.reply.contains("stalled"), "{}", r.reply);
    let Output::ModelStatus(st) = s.core.execute(&root(), Operation::ModelStatus).unwrap() else {
        panic!()
    };
    assert!(st.last_error.unwrap().contains("stalled"));
}

#[test]
fn free_form_questions_get_a_text_answer_and_model_test_times_it() {
    let s = setup(None);
    s.mock.then(Reply::Sse(vec![
        r#"{"kind":"answer","#,
        r#""text":"Ein Laufwerk ist eine Abbilddatei."}"#,
    ]));
    let r = s.chat.chat(&ALICE, Some("d"), "erkläre mir Laufwerke").unwrap();
    assert!(r.executed.is_none());
    assert!(r.reply.contains("Ein Laufwerk ist eine Abbilddatei."), "{}", r.reply);
    s.mock
        .then(Reply::Sse(vec!["A ", "virtual ", "drive ", "is ", "an ", "image."]));
    let Output::ModelTest(t) = s.core.execute(&root(), Operation::ModelTest).unwrap() else {
        panic!()
    };
    assert_eq!(t.tokens, 6);
    assert_eq!(t.text, "A virtual drive is an image.");
    let body = &s.mock.chat_requests()[1].1;
    assert!(!body.contains("response_format"), "the test prompt is free text");
}

#[test]
fn model_use_checks_the_server_and_the_model_name() {
    let s = setup(None);
    let e = s
        .core
        .execute(
            &root(),
            Operation::ModelUse(ModelUseArgs {
                url: Some(s.mock.url.clone()),
                model: Some("gpt-9".into()),
                ..Default::default()
            }),
        )
        .unwrap_err();
    assert!(e.to_string().contains("serves: mock-7b, other"), "{e}");
    let e = s
        .core
        .execute(
            &root(),
            Operation::ModelUse(ModelUseArgs {
                url: Some("http://127.0.0.1:1".into()),
                ..Default::default()
            }),
        )
        .unwrap_err();
    assert!(e.to_string().contains("could not be reached"), "{e}");
    // The failed switch left the previous choice active.
    let Output::ModelStatus(st) = s.core.execute(&root(), Operation::ModelStatus).unwrap() else {
        panic!()
    };
    assert_eq!(st.active.unwrap().target, s.mock.url);
    let Output::Privacy(p) = s.core.execute(&root(), Operation::PrivacyChannels).unwrap() else {
        panic!()
    };
    assert!(p
        .channels
        .iter()
        .any(|c| c.kind == "model-endpoint" && c.name == s.mock.url));
}

#[test]
fn a_stream_cut_before_done_is_not_used_and_a_whole_completion_is() {
    let s = setup(None);
    // A complete-looking JSON object without the stream's end is not trusted.
    s.mock.then(Reply::Cut(STATUS_JSON.to_vec()));
    let r = refused(&s, "qqq www");
    assert!(r.reply.contains("ended before [DONE]"), "{}", r.reply);
    // A server that ignores `stream` answers one document; that is read too.
    s.mock.then(Reply::Whole(
        r#"{"kind":"operation","operation":"system.status","args":{}}"#,
    ));
    let r = s.chat.chat(&ALICE, Some("e"), "qqq www").unwrap();
    assert_eq!(r.executed.unwrap().operation, "system.status");
}

#[test]
fn a_running_generation_stops_at_once() {
    let s = setup(None);
    // The server thinks for 3 s; the stop after 0.2 s ends the wait before the 0.7 s first-token time-out.
    s.mock.then(Reply::Sleep(3000));
    let mgr = s.mgr.clone();
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        mgr.stop();
    });
    let t = std::time::Instant::now();
    let r = refused(&s, "qqq www");
    stopper.join().unwrap();
    assert!(
        t.elapsed() < Duration::from_millis(650),
        "stopped before the first-token time-out"
    );
    assert!(r.reply.contains("stopped"), "{}", r.reply);
    // The next request runs normally.
    s.mock.then(Reply::Sse(STATUS_JSON.to_vec()));
    let r = s.chat.chat(&ALICE, Some("f"), "qqq www").unwrap();
    assert_eq!(r.executed.unwrap().operation, "system.status");
}

#[test]
fn answers_stream_word_by_word_before_the_validated_reply() {
    let s = setup(None);
    s.mock.then(Reply::Sse(vec![
        r#"{"kind":"answer","#,
        r#""text":"Ein "#,
        "Laufwerk",
        r#" ist eine Datei."}"#,
    ]));
    let mut events = vec![];
    let r = s
        .chat
        .chat_streaming(&ALICE, Some("g"), "erkläre mir Laufwerke", &mut |e| events.push(e))
        .unwrap();
    let tokens: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            ChatEvent::Token(t) => Some(t.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(tokens, ["Ein ", "Laufwerk", " ist eine Datei."]);
    assert!(
        matches!(events.last(), Some(ChatEvent::Interpretation { .. })),
        "the interpretation follows the words"
    );
    assert!(r.reply.contains("Ein Laufwerk ist eine Datei."), "{}", r.reply);
    // An operation proposal streams nothing: its result follows.
    s.mock.then(Reply::Sse(STATUS_JSON.to_vec()));
    let mut n = 0;
    s.chat
        .chat_streaming(&ALICE, Some("h"), "qqq www", &mut |e| {
            if matches!(e, ChatEvent::Token(_)) {
                n += 1
            }
        })
        .unwrap();
    assert_eq!(n, 0);
}
