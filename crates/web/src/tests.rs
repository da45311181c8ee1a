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
    (router(core, access).layer(MockConnectInfo(peer)), store)
}

async fn call(app: &Router, method: &str, uri: &str, token: Option<&str>) -> (StatusCode, serde_json::Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = app.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
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
