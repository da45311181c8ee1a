//! Router tests of the diagnosis endpoints over recorded fixtures: a diagnosis with evidence and a plan, an unknown
//! unit (404 naming close ones), the journal with filters, the service list and a restart; `/metrics` behind the
//! access rules.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::*;

fn app(peer: &str) -> (Router, Arc<cacheos_core::diagnose::fake::FakeUnits>) {
    let (core, store, units) = cacheos_core::testing::core_with_diagnostics(&["missing-exec", "start-limit-hit"]);
    let access = WebAccess::new("token".into());
    let known = Box::new(cacheos_chat::Known::default);
    let chat = Arc::new(cacheos_chat::ChatService::new(core.clone(), store, known));
    let peer: SocketAddr = peer.parse().unwrap();
    (router(core, chat, access).layer(MockConnectInfo(peer)), units)
}

async fn call(app: &Router, method: &str, uri: &str) -> (StatusCode, String) {
    let req = Request::builder().method(method).uri(uri).body(Body::empty()).unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn diagnose_journal_services_and_restart_over_rest() {
    let (app, units) = app("127.0.0.1:5000");
    let (st, body) = call(&app, "GET", "/api/v1/diagnose?unit=cacheos-fault-exec").await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let d: serde_json::Value = serde_json::from_str(&body).unwrap();
    let f = &d["findings"][0];
    assert_eq!(f["cause"], "missing-executable");
    assert_eq!(f["subject"], "/usr/bin/cacheos-does-not-exist");
    assert!(f["evidence"][0]["cursor"].as_str().unwrap().starts_with("s="));

    let (st, body) = call(&app, "GET", "/api/v1/diagnose?unit=cacheos-fault-lop").await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{body}");
    assert!(body.contains("did you mean cacheos-fault-loop.service"), "{body}");
    assert!(body.contains("\"code\":\"not-found\""), "{body}");

    let (st, body) = call(&app, "GET", "/api/v1/diagnose?unit=a&drive=b").await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");

    let (st, body) = call(
        &app,
        "GET",
        "/api/v1/journal?unit=cacheos-fault-loop&grep=restart&limit=2",
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let j: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(j["entries"].as_array().unwrap().len(), 2);
    assert_eq!(j["folded"][0]["count"], 2, "{body}");

    let (st, body) = call(&app, "GET", "/api/v1/services").await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v[0]["failed"], true);

    let (st, body) = call(&app, "POST", "/api/v1/services/cacheos-fault-loop/restart").await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(units.restarted(), vec!["cacheos-fault-loop.service"]);

    let (_, body) = call(&app, "GET", "/api/v1/openapi.json").await;
    for id in ["system.diagnose", "journal.query", "service.list", "service.restart"] {
        assert!(
            body.contains(&format!("\"operationId\":\"{id}\"")),
            "{id} missing from OpenAPI"
        );
    }
}

#[tokio::test]
async fn metrics_need_the_token_from_other_machines() {
    let (app, _) = app("192.0.2.7:5000");
    let (st, _) = call(&app, "GET", "/metrics").await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let req = Request::builder()
        .uri("/metrics")
        .header("authorization", "Bearer token")
        .body(Body::empty())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert_eq!(ct, crate::metrics::PROMETHEUS_TEXT);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("# TYPE cacheos_audit_records gauge"), "{text}");
}
