//! Router tests of the sandbox endpoints over the core's recording sandbox fakes: create, start, streamed exec (NDJSON
//! and its audit record), removal needing confirmation, and error statuses.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Request, StatusCode};
use cacheos_core::audit::AuditFilter;
use cacheos_core::sandbox::fake::FakeSandboxes;
use cacheos_core::store::{MemoryStore, Store};
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::*;

fn app() -> (Router, Arc<MemoryStore>, FakeSandboxes) {
    let (core, store, fakes) = cacheos_core::testing::core_with_sandboxes();
    let access = WebAccess::new("token".into());
    let known = Box::new(|| cacheos_chat::Known {
        tasks: vec![],
        now_ms: 1,
        ..Default::default()
    });
    let chat = Arc::new(cacheos_chat::ChatService::new(core.clone(), store.clone(), known));
    let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    (router(core, chat, access).layer(MockConnectInfo(peer)), store, fakes)
}

async fn call(app: &Router, method: &str, uri: &str, body: Option<serde_json::Value>) -> (StatusCode, String) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json");
    let body = body.map(|b| Body::from(b.to_string())).unwrap_or_else(Body::empty);
    let resp = app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

async fn json(
    app: &Router,
    method: &str,
    uri: &str,
    body: Option<serde_json::Value>,
) -> (StatusCode, serde_json::Value) {
    let (s, text) = call(app, method, uri, body).await;
    (s, serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
}

#[tokio::test]
async fn create_start_exec_streams_ndjson_and_remove_needs_confirm() {
    let (app, store, fakes) = app();
    let (s, t) = json(&app, "GET", "/api/v1/templates", None).await;
    assert_eq!((s, t[0]["name"].as_str()), (StatusCode::OK, Some("bb")));
    let (s, b) = json(
        &app,
        "POST",
        "/api/v1/sandboxes",
        Some(serde_json::json!({"name": "web", "template": "bb", "memory_max": 1u64 << 30})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["limits"]["memory_max"], 1u64 << 30);
    let (s, b) = json(&app, "POST", "/api/v1/sandboxes/web/start", None).await;
    assert_eq!((s, b["state"].as_str()), (StatusCode::OK, Some("running")));

    fakes.script_exec("echo", "hi\n", "", 0);
    let (s, text) = call(
        &app,
        "POST",
        "/api/v1/sandboxes/web/exec",
        Some(serde_json::json!({"argv": ["echo", "hi"]})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(
        lines.contains(&serde_json::json!({"stream": "stdout", "data": "hi\n"})),
        "{text}"
    );
    assert_eq!(lines.last().unwrap(), &serde_json::json!({"exit_code": 0}));
    let (s, text) = call(
        &app,
        "POST",
        "/api/v1/sandboxes/web/exec",
        Some(serde_json::json!({"argv": ["nope"]})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(text.lines().last().unwrap(), r#"{"exit_code":127}"#);
    let recs = store
        .query_audit(&AuditFilter {
            operation: Some("sandbox.exec".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[1].record.args["argv"], serde_json::json!(["echo", "hi"]));

    let (s, b) = json(&app, "DELETE", "/api/v1/sandboxes/web", None).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid-argument"))
    );
    let (s, _) = json(&app, "DELETE", "/api/v1/sandboxes/web?confirm=true", None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = json(&app, "GET", "/api/v1/sandboxes/web", None).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not-found"))
    );
}

#[tokio::test]
async fn exec_errors_before_running_are_plain_error_responses() {
    let (app, _, _) = app();
    let (s, b) = json(
        &app,
        "POST",
        "/api/v1/sandboxes/ghost/exec",
        Some(serde_json::json!({"argv": ["true"]})),
    )
    .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not-found"))
    );
    json(
        &app,
        "POST",
        "/api/v1/sandboxes",
        Some(serde_json::json!({"name": "idle", "template": "bb"})),
    )
    .await;
    let (s, b) = json(
        &app,
        "POST",
        "/api/v1/sandboxes/idle/exec",
        Some(serde_json::json!({"argv": ["true"]})),
    )
    .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("failed-precondition"))
    );
    let (s, b) = json(&app, "GET", "/api/v1/sandboxes", None).await;
    assert_eq!((s, b[0]["name"].as_str()), (StatusCode::OK, Some("idle")));
    let (s, b) = json(&app, "POST", "/api/v1/sandboxes/reconcile", None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
}
