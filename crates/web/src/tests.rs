//! Router tests without a socket: access control, login sessions and CSRF, the UI's assets and headers, errors,
//! OpenAPI and the audit trail of REST calls.

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
    app_with(trust_loopback, peer, false)
}

fn app_with(trust_loopback: bool, peer: &str, secure: bool) -> (Router, Arc<cacheos_core::store::MemoryStore>) {
    let (core, store) = cacheos_core::testing::core();
    let mut access = WebAccess::new("token".into());
    access.trust_loopback = trust_loopback;
    access.max_failures = 3;
    access.secure_cookies = secure;
    let peer: SocketAddr = peer.parse().unwrap();
    let known = Box::new(|| cacheos_chat::Known {
        tasks: vec!["web".into()],
        now_ms: 1,
        ..Default::default()
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
    // sandbox.shell hands over a pseudo-terminal, which D-Bus passes as a file descriptor; HTTP has no such thing
    // (a WebSocket relay would be the REST form; the chat cannot open shells either).
    for info in cacheos_core::OPERATIONS.iter().filter(|i| i.name != "sandbox.shell") {
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

/// A request with arbitrary headers; returns status, response headers and the JSON body (or Null).
async fn send(
    app: &Router,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Option<serde_json::Value>,
) -> (StatusCode, axum::http::HeaderMap, serde_json::Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let body = body.map(|b| Body::from(b.to_string())).unwrap_or_else(Body::empty);
    let resp = app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        headers,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

async fn login(app: &Router) -> (String, String) {
    let (s, h, body) = send(
        app,
        "POST",
        "/api/v1/session",
        &[],
        Some(serde_json::json!({"token": "token"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let cookie = h["set-cookie"].to_str().unwrap().to_string();
    let pair = cookie.split(';').next().unwrap().to_string();
    (pair, body["csrf_token"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn login_sets_a_strict_http_only_cookie_that_authenticates() {
    let (app, store) = app(true, "192.0.2.9:4000");
    let (s, _, body) = send(&app, "GET", "/api/v1/session", &[], None).await;
    assert_eq!((s, &body["authenticated"]), (StatusCode::OK, &serde_json::json!(false)));

    let (s, h, body) = send(
        &app,
        "POST",
        "/api/v1/session",
        &[],
        Some(serde_json::json!({"token": "token"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let cookie = h["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("cacheos_session="), "{cookie}");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="] {
        assert!(cookie.contains(attr), "{attr} missing in {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: no Secure flag: {cookie}");
    let id = cookie.split(';').next().unwrap().split_once('=').unwrap().1;
    assert_eq!(id.len(), 64, "256 random bits, hex");
    let csrf = body["csrf_token"].as_str().unwrap();
    assert_eq!(csrf.len(), 64);
    assert_ne!(csrf, id);
    assert_eq!(body["via"], "cookie");

    let pair = cookie.split(';').next().unwrap();
    let (s, _, body) = send(&app, "GET", "/api/v1/system/status", &[("cookie", pair)], None).await;
    assert_eq!((s, body["hostname"].as_str()), (StatusCode::OK, Some("testbox")));
    let recs = store.query_audit(&AuditFilter::default()).unwrap();
    assert_eq!(recs[0].record.principal, cacheos_core::Principal::WebToken);
    let (_, _, body) = send(&app, "GET", "/api/v1/session", &[("cookie", pair)], None).await;
    assert_eq!(body["authenticated"], true);
    assert_eq!(body["via"], "cookie");
    assert_eq!(body["csrf_token"].as_str(), Some(csrf));

    // A made-up session id is no credential.
    let fake = format!("cacheos_session={}", "0".repeat(64));
    let (s, _, _) = send(&app, "GET", "/api/v1/system/status", &[("cookie", &fake)], None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    let (app, _) = app_with(true, "192.0.2.9:4000", true);
    let (s, h, _) = send(
        &app,
        "POST",
        "/api/v1/session",
        &[],
        Some(serde_json::json!({"token": "token"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(h["set-cookie"].to_str().unwrap().contains("; Secure"));
}

#[tokio::test]
async fn login_failures_are_rate_limited_like_bearer_tokens() {
    let (app, _) = app(true, "192.0.2.10:4000");
    for _ in 0..2 {
        let (s, h, body) = send(
            &app,
            "POST",
            "/api/v1/session",
            &[],
            Some(serde_json::json!({"token": "guess"})),
        )
        .await;
        assert_eq!(
            (s, body["error"]["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("unauthenticated"))
        );
        assert!(h.get("set-cookie").is_none());
    }
    // The third failure is a wrong bearer token: both count towards the same limit.
    assert_eq!(
        call(&app, "GET", "/api/v1/system/status", Some("guess")).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (s, h, body) = send(
        &app,
        "POST",
        "/api/v1/session",
        &[],
        Some(serde_json::json!({"token": "token"})),
    )
    .await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("too-many-attempts"))
    );
    assert!(h.get("retry-after").is_some());
}

#[tokio::test]
async fn cookie_sessions_need_the_csrf_token_to_change_state() {
    let (app, store) = app(true, "192.0.2.11:4000");
    let (cookie, csrf) = login(&app).await;
    let kill = "/api/v1/supervisor/tasks/web/kill";
    let (s, _, body) = send(&app, "POST", kill, &[("cookie", &cookie)], None).await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("csrf"))
    );
    let (s, _, _) = send(
        &app,
        "POST",
        kill,
        &[("cookie", &cookie), ("x-csrf-token", &"f".repeat(64))],
        None,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(store.audit_len().unwrap(), 0, "refused requests never reach the core");
    let (s, _, _) = send(
        &app,
        "POST",
        kill,
        &[("cookie", &cookie), ("x-csrf-token", &csrf)],
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    // Chat is state-changing too.
    let (s, _, _) = send(
        &app,
        "POST",
        "/api/v1/chat/interpret",
        &[("cookie", &cookie)],
        Some(serde_json::json!({"text": "status"})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Reads need no CSRF token; bearer clients never do.
    let (s, _, _) = send(&app, "GET", "/api/v1/audit", &[("cookie", &cookie)], None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = send(&app, "POST", kill, &[("authorization", "Bearer token")], None).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn logout_needs_csrf_and_ends_the_session() {
    let (app, _) = app(true, "192.0.2.12:4000");
    let (cookie, csrf) = login(&app).await;
    let (s, _, _) = send(&app, "DELETE", "/api/v1/session", &[("cookie", &cookie)], None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, h, _) = send(
        &app,
        "DELETE",
        "/api/v1/session",
        &[("cookie", &cookie), ("x-csrf-token", &csrf)],
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert!(h["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    let (s, _, _) = send(&app, "GET", "/api/v1/system/status", &[("cookie", &cookie)], None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

#[test]
fn idle_sessions_expire() {
    let sessions = crate::session::Sessions::new(std::time::Duration::ZERO);
    let (id, _) = sessions.create().unwrap();
    assert_eq!(sessions.touch(&id), None);
    let sessions = crate::session::Sessions::new(std::time::Duration::from_secs(60));
    let (id, csrf) = sessions.create().unwrap();
    assert_eq!(sessions.touch(&id), Some(csrf));
    sessions.remove(&id);
    assert_eq!(sessions.touch(&id), None);
}

#[tokio::test]
async fn cross_origin_state_changes_are_refused_even_on_loopback() {
    let (app, store) = app(true, "127.0.0.1:5000");
    let kill = "/api/v1/supervisor/tasks/web/kill";
    let host = ("host", "127.0.0.1:8080");
    let (s, _, body) = send(&app, "POST", kill, &[host, ("origin", "http://evil.example")], None).await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("csrf"))
    );
    let (s, _, _) = send(&app, "POST", kill, &[host, ("sec-fetch-site", "cross-site")], None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _, _) = send(
        &app,
        "POST",
        "/api/v1/session",
        &[host, ("origin", "http://evil.example")],
        Some(serde_json::json!({"token": "token"})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "no login CSRF either");
    assert_eq!(store.audit_len().unwrap(), 0);
    let (s, _, _) = send(&app, "POST", kill, &[host, ("origin", "http://127.0.0.1:8080")], None).await;
    assert_eq!(s, StatusCode::OK);
    // Cross-origin reads are harmless to the server (the browser keeps the answer from the other site).
    let (s, _, _) = send(
        &app,
        "GET",
        "/api/v1/audit",
        &[host, ("origin", "http://evil.example")],
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn trusted_loopback_refuses_dns_rebinding_host_names() {
    let (app, _) = app(true, "127.0.0.1:5000");
    let (s, _, body) = send(
        &app,
        "GET",
        "/api/v1/audit",
        &[("host", "rebind.evil.example:8080")],
        None,
    )
    .await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("host-not-allowed"))
    );
    for host in [
        "localhost:8080",
        "127.0.0.1:8080",
        "[::1]:8080",
        "cacheos",
        "cacheos.localhost",
    ] {
        let (s, _, _) = send(&app, "GET", "/api/v1/audit", &[("host", host)], None).await;
        assert_eq!(s, StatusCode::OK, "{host}");
    }
}

#[tokio::test]
async fn pages_serve_the_shell_with_strict_headers_and_its_assets_exist() {
    let (app, _) = app(false, "192.0.2.13:4000");
    let mut shell = String::new();
    for page in crate::ui::PAGES {
        let resp = app
            .clone()
            .oneshot(Request::get(*page).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{page} needs no credentials");
        let h = resp.headers();
        assert_eq!(h["content-type"], "text/html; charset=utf-8");
        assert_eq!(h["cache-control"], "no-cache");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"));
        assert!(!csp.contains("unsafe"), "{csp}");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["referrer-policy"], "no-referrer");
        shell = String::from_utf8(resp.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    }
    assert!(!shell.contains("<script>") && !shell.contains("<style") && !shell.contains("style="));
    assert!(
        !shell.contains("http://") && !shell.contains("https://"),
        "no external references"
    );
    let assets: Vec<&str> = shell.split('"').filter(|s| s.starts_with("/ui/")).collect();
    assert_eq!(assets.len(), 3, "{shell}");
    for a in assets {
        let resp = app
            .clone()
            .oneshot(Request::get(a).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{a}");
        let ctype = resp.headers()["content-type"].to_str().unwrap().to_string();
        let expected = if a.contains(".js") {
            "text/javascript"
        } else if a.contains(".css") {
            "text/css"
        } else {
            "image/svg+xml"
        };
        assert!(ctype.starts_with(expected), "{a}: {ctype}");
        assert!(resp.headers()["cache-control"].to_str().unwrap().contains("immutable"));
    }
    let (s, body) = call(&app, "GET", "/ui/nothing.js", None).await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not-found"))
    );
    // API responses carry the headers too.
    let (_, h, _) = send(&app, "GET", "/healthz", &[], None).await;
    assert_eq!(h["x-content-type-options"], "nosniff");
}

#[test]
fn session_endpoints_are_in_the_openapi_document() {
    let doc = serde_json::to_value(openapi()).unwrap();
    let s = &doc["paths"]["/api/v1/session"];
    assert_eq!(s["get"]["operationId"], "session.get");
    assert_eq!(s["post"]["operationId"], "session.login");
    assert_eq!(s["delete"]["operationId"], "session.logout");
}

#[tokio::test]
async fn system_history_returns_the_kept_samples_and_is_audited() {
    let (core, store, metrics) = cacheos_core::testing::core_with_metrics();
    let known = Box::new(|| cacheos_chat::Known {
        tasks: vec![],
        now_ms: 1,
        ..Default::default()
    });
    let chat = Arc::new(cacheos_chat::ChatService::new(core.clone(), store.clone(), known));
    let app = router(core, chat, WebAccess::new("token".into()))
        .layer(MockConnectInfo("127.0.0.1:5000".parse::<SocketAddr>().unwrap()));
    let (s, body) = call(&app, "GET", "/api/v1/system/history", None).await;
    assert_eq!((s, body), (StatusCode::OK, serde_json::json!([])));
    for t in [1000, 2000, 3000] {
        metrics.push(cacheos_core::MetricSample {
            time_ms: t,
            cpu_percent: Some(12.5),
            ..Default::default()
        });
    }
    let (s, body) = call(&app, "GET", "/api/v1/system/history?since_ms=2000", None).await;
    assert_eq!(s, StatusCode::OK);
    let times: Vec<_> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["time_ms"].as_u64().unwrap())
        .collect();
    assert_eq!(times, vec![2000, 3000]);
    assert_eq!(body[0]["cpu_percent"], 12.5);
    let (s, body) = call(&app, "GET", "/api/v1/system/history?since_ms=soon", None).await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid-argument"))
    );
    let recs = store.query_audit(&AuditFilter::default()).unwrap();
    assert_eq!(recs[0].record.operation, "system.history");
}

#[tokio::test]
async fn assets_are_gzipped_for_clients_that_accept_it() {
    use std::io::Read;
    let (app, _) = app(true, "127.0.0.1:5000");
    let get = |enc: Option<&'static str>| {
        let app = app.clone();
        async move {
            let mut req = Request::get("/ui/app.js");
            if let Some(e) = enc {
                req = req.header("accept-encoding", e);
            }
            let resp = app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
            let h = resp.headers().clone();
            (h, resp.into_body().collect().await.unwrap().to_bytes().to_vec())
        }
    };
    let (h, plain) = get(None).await;
    assert!(h.get("content-encoding").is_none());
    assert_eq!(h["vary"], "accept-encoding");
    let (h, gz) = get(Some("gzip, deflate, br")).await;
    assert_eq!(h["content-encoding"], "gzip");
    assert!(gz.len() * 2 < plain.len(), "{} vs {}", gz.len(), plain.len());
    let mut back = Vec::new();
    flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut back).unwrap();
    assert_eq!(back, plain);
    let (h, _) = get(Some("gzip;q=0, br")).await;
    assert!(h.get("content-encoding").is_none());
}

#[tokio::test]
async fn asking_for_the_session_state_is_no_failed_attempt() {
    let (app, _) = app(true, "192.0.2.14:4000");
    for _ in 0..5 {
        let (s, _, body) = send(&app, "GET", "/api/v1/session", &[], None).await;
        assert_eq!((s, &body["authenticated"]), (StatusCode::OK, &serde_json::json!(false)));
        let stale = format!("cacheos_session={}", "1".repeat(64));
        let (s, _, body) = send(&app, "GET", "/api/v1/session", &[("cookie", &stale)], None).await;
        assert_eq!((s, &body["authenticated"]), (StatusCode::OK, &serde_json::json!(false)));
    }
    login(&app).await;
    // A wrong bearer token asking for the state does count.
    for _ in 0..3 {
        send(
            &app,
            "GET",
            "/api/v1/session",
            &[("authorization", "Bearer nope")],
            None,
        )
        .await;
    }
    let (s, _, _) = send(
        &app,
        "GET",
        "/api/v1/session",
        &[("authorization", "Bearer token")],
        None,
    )
    .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
}

/// Found by tests/fuzz/openapi (schemathesis, issue 19): the documented response shapes match what is answered.
#[test]
fn openapi_documents_null_audit_args_and_the_chat_history_array() {
    let doc = serde_json::to_value(openapi()).unwrap();
    let args = &doc["components"]["schemas"]["NewAuditRecord"]["properties"]["args"];
    let t = args["type"].clone();
    assert!(
        t == serde_json::json!(["object", "null"]) || args["nullable"] == true,
        "audit args must admit null: {args}"
    );
    let h = &doc["paths"]["/api/v1/chat/{session}/history"]["get"]["responses"]["200"]["content"]["application/json"]
        ["schema"];
    assert_eq!(h["type"], "array", "{h}");
}
