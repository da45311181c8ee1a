//! End-to-end test of the language models through a real `cacheosd --dev` on a private bus (CACHEOS_INTEGRATION=1)
//! and a scripted OpenAI-compatible server on 127.0.0.1: nothing is active at first; `cacheosctl model use` with a
//! key file switches to the server (the key kept with mode 0600, never shown); the chat's free-form answer streams
//! through D-Bus signals (ChatToken, in order) to `cacheosctl chat`; REST lists the endpoint in the privacy channels; `model unload`
//! switches it off and forgets the key.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;

use common::*;

/// Serves `GET /v1/models` and answers every chat completion with a streamed German answer.
fn mock_server() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut r = BufReader::new(c.try_clone().unwrap());
                let mut w = c;
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                let mut len = 0;
                loop {
                    let mut h = String::new();
                    r.read_line(&mut h).unwrap();
                    if h.trim().is_empty() {
                        break;
                    }
                    if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0; len];
                r.read_exact(&mut body).unwrap();
                if line.contains("/v1/models") {
                    let b = r#"{"object":"list","data":[{"id":"mock-1b"}]}"#;
                    let _ = write!(
                        w,
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}",
                        b.len()
                    );
                    return;
                }
                let _ = w.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n");
                for p in [
                    r#"{"kind":"answer","text":"Ein Laufwerk "#,
                    "ist eine ",
                    r#"Abbilddatei."}"#,
                ] {
                    let ev = serde_json::json!({"choices":[{"delta":{"content":p}}]});
                    let _ = write!(w, "data: {ev}\n\n");
                    let _ = w.flush();
                }
                let _ = w.write_all(b"data: [DONE]\n\n");
            });
        }
    });
    url
}

#[test]
fn a_model_server_is_used_from_the_cli_streams_its_answer_and_is_listed_as_a_channel() {
    if !enabled("a_model_server_is_used_from_the_cli_streams_its_answer_and_is_listed_as_a_channel") {
        return;
    }
    let bus = TestBus::session();
    let state = bus.dir.path().join("state");
    let d = Daemon::start(&bus.address, &state);
    let url = mock_server();

    let out = d.ctl(&["model", "status"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("no model in use"));

    let key = bus.dir.path().join("key");
    std::fs::write(&key, "sk-e2e-secret\n").unwrap();
    let out = d.ctl(&["model", "use", "--url", &url, "--api-key-file", key.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("mock-1b") && text.contains("API key: set"), "{text}");
    assert!(!text.contains("sk-e2e-secret"));
    let kept = state.join("model-api-key");
    assert_eq!(std::fs::metadata(&kept).unwrap().permissions().mode() & 0o777, 0o600);

    let out = d.ctl(&["chat", "--session", "m1", "erkläre mir Laufwerke"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        text.matches("Ein Laufwerk ist eine Abbilddatei.").count(),
        1,
        "streamed once, not repeated by the reply: {text}"
    );
    assert!(text.contains("mock-1b"), "the reply names the model: {text}");

    // Over D-Bus the words arrive as ChatToken signals, in order, before the method's reply.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _in_runtime = rt.enter();
    let (tokens, reply) = rt.block_on(async {
        use futures_util::StreamExt;
        let conn = zbus::connection::Builder::address(bus.address.as_str())
            .unwrap()
            .build()
            .await
            .unwrap();
        let p = cacheos_dbus::client::ManagerProxy::new(&conn).await.unwrap();
        let mut sigs = p.receive_chat_token().await.unwrap();
        let reply = p.chat("erkläre mir Laufwerke", "m2").await.unwrap();
        let mut tokens = vec![];
        while let Ok(Some(s)) = tokio::time::timeout(std::time::Duration::from_secs(2), sigs.next()).await {
            let a = s.args().unwrap();
            tokens.push((a.seq, a.text.clone()));
            if tokens.len() == 3 {
                break;
            }
        }
        (tokens, reply)
    });
    assert_eq!(
        tokens,
        [
            (1, "Ein Laufwerk ".to_string()),
            (2, "ist eine ".to_string()),
            (3, "Abbilddatei.".to_string())
        ]
    );
    let reply: serde_json::Value = serde_json::from_str(&reply).unwrap();
    assert!(reply["reply"]
        .as_str()
        .unwrap()
        .starts_with("Ein Laufwerk ist eine Abbilddatei."));

    let p = d.get("/api/v1/privacy/channels");
    assert!(
        p["channels"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["kind"] == "model-endpoint" && c["name"] == url.as_str()),
        "{p}"
    );
    let audit = serde_json::to_string(&d.get("/api/v1/audit?limit=100")).unwrap();
    assert!(!audit.contains("sk-e2e-secret"), "{audit}");

    let out = d.ctl(&["model", "unload"]);
    assert!(out.status.success());
    assert!(!kept.exists(), "the key is forgotten");
    let out = d.ctl(&["model", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["active"].is_null(), "{v}");
}
