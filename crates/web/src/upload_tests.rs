//! Router tests of `PUT /api/v1/images/{name}` over a drive manager with plain file access: the body is stored
//! with its SHA-256 and audited as `drive.upload`, a taken name is 409, a body over the limit is 400 and leaves no
//! file, an aborted body leaves no file.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Request, StatusCode};
use cacheos_core::audit::AuditFilter;
use cacheos_core::store::Store;
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::*;

fn app(dir: &std::path::Path, max: u64) -> (Router, Arc<cacheos_core::store::MemoryStore>) {
    let (core, store) = cacheos_core::testing::core_with_drives(dir, max);
    let known = Box::new(|| cacheos_chat::Known {
        tasks: vec![],
        now_ms: 1,
        ..Default::default()
    });
    let chat = Arc::new(cacheos_chat::ChatService::new(core.clone(), store.clone(), known));
    let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    let app = router(core, chat, WebAccess::new("token".into())).layer(MockConnectInfo(peer));
    (app, store)
}

async fn put(app: &Router, uri: &str, body: Body, len: Option<usize>) -> (StatusCode, serde_json::Value) {
    let mut req = Request::builder()
        .method("PUT")
        .uri(uri)
        .header("content-type", "application/octet-stream");
    if let Some(n) = len {
        req = req.header("content-length", n);
    }
    let resp = app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

fn names(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir.join("state/images"))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_streams_the_body_to_the_images_directory_and_is_audited() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().canonicalize().unwrap();
    let (app, store) = app(&dir, 4 << 20);
    // Bigger than axum's default body limit (2 MB), in several chunks.
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = data.chunks(100_000).map(|c| Ok(c.to_vec())).collect();
    let body = Body::from_stream(futures_util::stream::iter(chunks));
    let (s, b) = put(&app, "/api/v1/images/big%20disk.img", body, Some(data.len())).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["name"], "big disk.img");
    assert_eq!(b["size"], 3_000_000);
    assert_eq!(b["sha256"].as_str().unwrap().len(), 64);
    assert!(b["modified_ms"].as_u64().is_some() && b.get("format").is_some(), "{b}");
    assert_eq!(std::fs::read(dir.join("state/images/big disk.img")).unwrap(), data);
    let recs = store
        .query_audit(&AuditFilter {
            operation: Some("drive.upload".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].record.args["name"], "big disk.img");

    // The name is taken: 409, the file is untouched.
    let (s, b) = put(&app, "/api/v1/images/big%20disk.img", Body::from("x"), Some(1)).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("already-exists")),
        "{b}"
    );
    // Over the limit: 400, nothing left.
    let (s, b) = put(&app, "/api/v1/images/huge.img", Body::from(vec![0u8; 5 << 20]), None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(b["error"]["message"].as_str().unwrap().contains("upload limit"), "{b}");
    // Hidden names are refused.
    let (s, _) = put(&app, "/api/v1/images/.x", Body::from("x"), Some(1)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // The client goes away mid-body: nothing left.
    let broken: Vec<Result<Vec<u8>, std::io::Error>> = vec![
        Ok(vec![1u8; 1000]),
        Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "gone")),
    ];
    let (s, _) = put(
        &app,
        "/api/v1/images/cut.img",
        Body::from_stream(futures_util::stream::iter(broken)),
        None,
    )
    .await;
    assert!(s.is_client_error() || s.is_server_error(), "{s}");
    assert_eq!(names(&dir), ["big disk.img"]);
    // The images list shows the upload.
    let req = Request::builder().uri("/api/v1/images").body(Body::empty()).unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let list: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(list[0]["name"], "big disk.img");
}
