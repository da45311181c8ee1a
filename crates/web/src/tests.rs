//! Router tests without a socket: access control, errors, OpenAPI and the audit trail of REST calls.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Request, StatusCode};
use cacheos_core::audit::AuditFilter;
use cacheos_core::store::Store;
use cacheos_core::Frontend;
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::*;

fn app(trust_loopback: bool, peer: &str) -> (Router, Arc<cacheos_core::store::MemoryStore>) {
    let (core, store) = cacheos_core::testing::core();
    let mut access = WebAccess::new("token".into());
    access.trust_loopback = trust_loopback;
    access.max_failures = 3;
    let peer: SocketAddr = peer.parse().unwrap();
    let known = Box::new(|| cacheos_chat::Known {
        tasks: vec!["web".into()],
        now_ms: 1,
    });
    let chat = Arc::new(cacheos_chat::ChatService::new(core.clone(), store.clone(), known));
    (router(core, chat, access).layer(MockConnectInfo(peer)), store)
}

async fn call(app: &Router, method: &str, uri: &str, token: Option<&str>) -> (StatusCode, serde_json::Value) {
    call_body(app, method, uri, token, None).await
}

async fn call_text(app: &Router, method: &str, uri: &str, body: serde_json::Value) -> (StatusCode, String) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json");
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

async fn call_body(
    app: &Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> (StatusCode, serde_json::Value) {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let body = body.map(|b| Body::from(b.to_string())).unwrap_or_else(Body::empty);
    let resp = app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test]
async fn loopback_reads_status_and_is_audited_as_rest() {
    let (app, store) = app(true, "127.0.0.1:5000");
    let (s, body) = call(&app, "GET", "/api/v1/system/status", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body["hostname"], "testbox");
    let recs = store.query_audit(&AuditFilter::default()).unwrap();
    assert_eq!(recs[0].record.frontend, Frontend::Rest);
    assert_eq!(recs[0].record.operation, "system.status");
}

#[tokio::test]
async fn remote_clients_need_the_token_and_are_rate_limited() {
    let (app, store) = app(true, "192.0.2.7:4000");
    let (s, body) = call(&app, "GET", "/api/v1/system/status", None).await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthenticated"))
    );
    let (s, body) = call(&app, "GET", "/api/v1/system/status", Some("wrong")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(body["error"]["message"].as_str().unwrap().contains("wrong"));
    let (s, _) = call(&app, "GET", "/api/v1/system/status", Some("toke")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // Three failures: now locked out, even with the right token.
    let (s, body) = call(&app, "GET", "/api/v1/system/status", Some("token")).await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("too-many-attempts"))
    );
    assert_eq!(
        store.audit_len().unwrap(),
        0,
        "unauthenticated requests never reach the core"
    );

    let (app, store) = self::app(true, "192.0.2.8:4000");
    let (s, body) = call(&app, "GET", "/api/v1/system/status", Some("token")).await;
    assert_eq!((s, body["hostname"].as_str()), (StatusCode::OK, Some("testbox")));
    let recs = store.query_audit(&AuditFilter::default()).unwrap();
    assert_eq!(recs[0].record.principal, cacheos_core::Principal::WebToken);
}

#[tokio::test]
async fn untrusted_loopback_needs_a_token_and_healthz_is_public() {
    let (app, _) = app(false, "127.0.0.1:5000");
    assert_eq!(
        call(&app, "GET", "/api/v1/supervisor/status", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&app, "GET", "/api/v1/supervisor/status", Some("token")).await.0,
        StatusCode::OK
    );
    let (s, body) = call(&app, "GET", "/healthz", None).await;
    assert_eq!((s, body["status"].as_str()), (StatusCode::OK, Some("ok")));
}

#[tokio::test]
async fn errors_are_json_with_stable_codes() {
    let (app, _) = app(true, "127.0.0.1:5000");
    let (s, body) = call(&app, "GET", "/api/v1/audit?limit=0", None).await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid-argument"))
    );
    assert!(body["error"]["message"].as_str().unwrap().contains("limit"), "{body}");
    let (s, body) = call(&app, "GET", "/api/v1/audit?outcome=maybe", None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(body["error"]["message"].as_str().unwrap().contains("outcome"), "{body}");
    let (s, body) = call(&app, "GET", "/api/v1/audit?colour=red", None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(body["error"]["message"].as_str().unwrap().contains("colour"), "{body}");
    let (s, body) = call(&app, "POST", "/api/v1/supervisor/tasks/nope/kill", None).await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not-found"))
    );
    let (s, body) = call(&app, "GET", "/api/v1/nothing", None).await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not-found"))
    );
}

#[tokio::test]
async fn audit_filters_work_over_rest() {
    let (app, _) = app(true, "127.0.0.1:5000");
    call(&app, "GET", "/api/v1/system/status", None).await;
    call(&app, "POST", "/api/v1/supervisor/tasks/web/kill", None).await;
    let (s, body) = call(
        &app,
        "GET",
        "/api/v1/audit?operation=supervisor.&frontend=rest&outcome=ok",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let ops: Vec<_> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["operation"].as_str().unwrap())
        .collect();
    assert_eq!(ops, vec!["supervisor.kill-task"]);
}

#[test]
fn openapi_is_generated_with_dotted_operation_ids() {
    let doc = serde_json::to_value(openapi()).unwrap();
    let mut ids = vec![];
    for (_, item) in doc["paths"].as_object().unwrap() {
        for (_, op) in item.as_object().unwrap() {
            if let Some(id) = op.get("operationId") {
                ids.push(id.as_str().unwrap().to_string());
            }
        }
    }
    for info in cacheos_core::OPERATIONS {
        assert!(
            ids.contains(&info.name.to_string()),
            "{} missing from OpenAPI: {ids:?}",
            info.name
        );
    }
    assert!(doc["components"]["schemas"]["SystemStatus"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

#[tokio::test]
async fn chat_interprets_streams_replies_and_keeps_history() {
    let (app, store) = app(true, "127.0.0.1:5000");
    let (s, body) = call_body(
        &app,
        "POST",
        "/api/v1/chat/interpret",
        None,
        Some(serde_json::json!({"text": "kill the web task", "session": "w1"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body["session"], "w1");
    assert_eq!(body["interpretation"]["operation"], "supervisor.kill-task");
    assert_eq!(body["interpretation"]["args"], serde_json::json!({"task": "web"}));
    assert_eq!(body["interpretation"]["needs_confirmation"], true);
    assert_eq!(store.audit_len().unwrap(), 0, "interpretation executes nothing");

    let (s, text) = call_text(
        &app,
        "POST",
        "/api/v1/chat",
        serde_json::json!({"text": "zeige systemstatus", "session": "w1"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let types: Vec<_> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
    assert_eq!(types, vec!["interpretation", "result", "reply"]);
    assert_eq!(lines[1]["executed"]["output"]["hostname"], "testbox");
    assert!(lines[2]["text"].as_str().unwrap().contains("testbox"));
    let recs = store.query_audit(&AuditFilter::default()).unwrap();
    assert_eq!(recs[0].record.frontend, Frontend::Chat);
    assert_eq!(recs[0].record.utterance.as_deref(), Some("zeige systemstatus"));

    let (s, hist) = call(&app, "GET", "/api/v1/chat/w1/history", None).await;
    assert_eq!((s, hist.as_array().unwrap().len()), (StatusCode::OK, 1));
    let (s, _) = call(&app, "DELETE", "/api/v1/chat/w1/history", None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, hist) = call(&app, "GET", "/api/v1/chat/w1/history", None).await;
    assert!(hist.as_array().unwrap().is_empty());
    let (s, body) = call_body(
        &app,
        "POST",
        "/api/v1/chat/interpret",
        None,
        Some(serde_json::json!({"text": "x", "session": "no good"})),
    )
    .await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid-argument"))
    );
}
