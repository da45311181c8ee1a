//! The model endpoints over the router (a recording fake host): list, use (the API key kept, never echoed nor
//! audited), status, unload, stop, privacy channels; and a model's words streamed as NDJSON token lines before the
//! validated reply.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Request, StatusCode};
use cacheos_chat::model::{ModelBackend, ModelError, ModelIdentity, ModelRequest};
use cacheos_core::executor::ModelDeps;
use cacheos_core::model::FakeModels;
use cacheos_core::store::Store;
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::*;

/// A backend that writes one scripted reply in pieces and counts stops.
#[derive(Default)]
struct Scripted {
    pieces: Vec<&'static str>,
    stops: Mutex<u32>,
}

impl ModelBackend for Scripted {
    fn identity(&self) -> Option<ModelIdentity> {
        Some(ModelIdentity {
            backend: "openai".into(),
            model: "mock".into(),
            remote: true,
            target: "http://192.168.1.5:8080".into(),
        })
    }
    fn complete(&self, _req: &ModelRequest, on_token: &mut dyn FnMut(&str)) -> Result<String, ModelError> {
        for p in &self.pieces {
            on_token(p);
        }
        Ok(self.pieces.concat())
    }
    fn stop(&self) {
        *self.stops.lock().unwrap() += 1;
    }
}

fn app(backend: Arc<Scripted>) -> (Router, Arc<cacheos_core::store::MemoryStore>, Arc<FakeModels>) {
    let (core, store) = cacheos_core::testing::core();
    let host = Arc::new(FakeModels::default());
    core.set_models(ModelDeps {
        host: host.clone(),
        models_dir: "/var/lib/cacheos/models".into(),
        web_listen: None,
    });
    let mut access = WebAccess::new("token".into());
    access.trust_loopback = true;
    let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    let chat = Arc::new(
        cacheos_chat::ChatService::new(core.clone(), store.clone(), Box::new(cacheos_chat::Known::default))
            .with_engine(cacheos_chat::Engine::rules_only())
            .with_model(backend),
    );
    (router(core, chat, access).layer(MockConnectInfo(peer)), store, host)
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

#[tokio::test]
async fn model_endpoints_switch_the_host_and_never_show_the_key() {
    let backend = Arc::new(Scripted::default());
    let (app, store, host) = app(backend.clone());
    let (s, b) = call(&app, "GET", "/api/v1/models", None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let v: serde_json::Value = serde_json::from_str(&b).unwrap();
    assert!(v["active"].is_null(), "nothing is active by default");
    let (s, b) = call(
        &app,
        "POST",
        "/api/v1/models/use",
        Some(serde_json::json!({"url": "http://192.168.1.5:8080", "api_key": "sk-secret-1"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(!b.contains("sk-secret-1") && b.contains("\"api_key_set\":true"), "{b}");
    assert_eq!(host.key().as_deref(), Some("sk-secret-1"));
    let audit = serde_json::to_string(&store.query_audit(&Default::default()).unwrap()).unwrap();
    assert!(!audit.contains("sk-secret-1") && audit.contains("model.use"), "{audit}");
    let (s, b) = call(&app, "GET", "/api/v1/privacy/channels", None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(b.contains("model-endpoint") && b.contains("192.168.1.5"), "{b}");
    // Bad input names the field.
    let (s, b) = call(
        &app,
        "POST",
        "/api/v1/models/use",
        Some(serde_json::json!({"url": "ftp://x"})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(b.contains("url"), "{b}");
    let (s, _) = call(&app, "POST", "/api/v1/models/stop", None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(*backend.stops.lock().unwrap(), 1);
    let (s, b) = call(&app, "POST", "/api/v1/models/unload", None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(host.key().is_none());
    let (s, b) = call(&app, "GET", "/api/v1/models/status", None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(b.contains("\"active\":null"), "{b}");
}

#[tokio::test]
async fn a_models_words_stream_as_token_lines_before_the_reply() {
    let backend = Arc::new(Scripted {
        pieces: vec![r#"{"kind":"answer","text":"Ein "#, "Laufwerk", r#" ist eine Datei."}"#],
        ..Default::default()
    });
    let (app, _store, _host) = app(backend);
    let (s, text) = call(
        &app,
        "POST",
        "/api/v1/chat",
        Some(serde_json::json!({"text": "erkläre mir Laufwerke", "session": "m1"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{text}");
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let types: Vec<_> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["token", "token", "token", "interpretation", "reply"], "{text}");
    let words: String = lines[..3].iter().map(|l| l["text"].as_str().unwrap()).collect();
    assert_eq!(words, "Ein Laufwerk ist eine Datei.");
    let reply = lines[4]["text"].as_str().unwrap();
    assert!(reply.starts_with("Ein Laufwerk ist eine Datei."), "{reply}");
    assert!(
        reply.contains("ging an diesen Server"),
        "a remote model says so: {reply}"
    );
    // A bad session is still an HTTP error, not a stream.
    let (s, _) = call(
        &app,
        "POST",
        "/api/v1/chat",
        Some(serde_json::json!({"text": "hallo", "session": "bad session!"})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}
