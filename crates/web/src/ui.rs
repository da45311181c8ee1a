//! The web UI: the app shell for every page route and the assets built from `crates/web/ui` (committed under
//! `ui/dist/`, embedded here), plus the security headers every response of the web port carries.
//!
//! The shell references assets as `/ui/<file>?v=<content hash>` (written by `ui/build.mjs`), so assets are cached
//! for a year as immutable and the shell is revalidated on every load. Assets go out gzip-compressed to clients that
//! accept it (compressed once, when the router is built).

use std::io::Write;
use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// The app shell (the same document for every page; the client routes by path).
const SHELL: &str = include_str!("../ui/dist/index.html");

/// Embedded assets: name, content type, bytes.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../ui/dist/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../ui/dist/app.css"),
    ),
    ("icon.svg", "image/svg+xml", include_bytes!("../ui/dist/icon.svg")),
];

/// The gzip form of each of [`ASSETS`], in the same order.
static GZIPPED: LazyLock<Vec<Vec<u8>>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|(_, _, bytes)| {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            // Writing to a Vec cannot fail.
            let _ = gz.write_all(bytes);
            gz.finish().unwrap_or_default()
        })
        .collect()
});

/// Compresses the assets now rather than on the first request.
pub(crate) fn prepare() {
    LazyLock::force(&GZIPPED);
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|enc| {
            let mut parts = enc.split(';').map(str::trim);
            parts.next().is_some_and(|e| e.eq_ignore_ascii_case("gzip")) && !parts.any(|p| p.replace(' ', "") == "q=0")
        })
}

/// Paths that answer with the app shell.
pub const PAGES: &[&str] = &[
    "/",
    "/chat",
    "/drives",
    "/sandboxes",
    "/system",
    "/logs",
    "/audit",
    "/login",
];

/// The Content-Security-Policy of every response: nothing but this origin, no inline code or styles, no framing.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                       connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
                       form-action 'self'; frame-ancestors 'none'";

/// `GET` of a page route.
pub(crate) async fn shell() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        SHELL,
    )
        .into_response()
}

/// `GET /ui/{file}`.
pub(crate) async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().position(|(name, _, _)| *name == file) {
        Some(i) => {
            let (_, ctype, bytes) = ASSETS[i];
            let common = [
                (header::CONTENT_TYPE, ctype),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
                (header::VARY, "accept-encoding"),
            ];
            if accepts_gzip(&headers) {
                (common, [(header::CONTENT_ENCODING, "gzip")], GZIPPED[i].clone()).into_response()
            } else {
                (common, bytes).into_response()
            }
        }
        None => ApiError::new(StatusCode::NOT_FOUND, "not-found", format!("no such asset: {file}")).into_response(),
    }
}

/// Adds the security headers to a response (every response of the port, API included).
pub(crate) async fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    h.insert("cross-origin-resource-policy", HeaderValue::from_static("same-origin"));
    resp
}
