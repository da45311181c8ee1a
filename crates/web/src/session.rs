//! Browser sessions: logging in with the web token yields a random session id in an HttpOnly, SameSite=Strict cookie
//! and a per-session CSRF token the UI reads from `GET /api/v1/session` and sends as `X-CSRF-Token`. Sessions live in
//! memory (a daemon restart logs everybody out) and end after an idle period.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{self, Via, SESSION_COOKIE};
use crate::error::{ApiError, ErrorBody};
use crate::AppState;

/// At most this many sessions exist at once; the oldest is dropped to make room.
const MAX_SESSIONS: usize = 1000;

#[derive(Debug)]
struct Session {
    csrf: String,
    last_used: Instant,
}

/// The server-side session store.
#[derive(Debug)]
pub struct Sessions {
    idle: Duration,
    map: Mutex<HashMap<String, Session>>,
}

fn random_hex() -> Result<String, ApiError> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("no randomness for a session id: {e}"),
        )
    })?;
    Ok(raw.iter().map(|b| format!("{b:02x}")).collect())
}

impl Sessions {
    /// An empty store whose sessions end after `idle` without use.
    pub fn new(idle: Duration) -> Self {
        Self {
            idle,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// Makes a session; returns its id and CSRF token.
    pub fn create(&self) -> Result<(String, String), ApiError> {
        let (id, csrf) = (random_hex()?, random_hex()?);
        let now = Instant::now();
        let mut map = self.map.lock().unwrap();
        map.retain(|_, s| now.duration_since(s.last_used) < self.idle);
        if map.len() >= MAX_SESSIONS {
            if let Some(oldest) = map.iter().min_by_key(|(_, s)| s.last_used).map(|(k, _)| k.clone()) {
                map.remove(&oldest);
            }
        }
        map.insert(
            id.clone(),
            Session {
                csrf: csrf.clone(),
                last_used: now,
            },
        );
        Ok((id, csrf))
    }

    /// The CSRF token of a live session, renewing its idle timer; `None` for unknown or expired ids.
    pub fn touch(&self, id: &str) -> Option<String> {
        let now = Instant::now();
        let mut map = self.map.lock().unwrap();
        match map.get_mut(id) {
            Some(s) if now.duration_since(s.last_used) < self.idle => {
                s.last_used = now;
                Some(s.csrf.clone())
            }
            Some(_) => {
                map.remove(id);
                None
            }
            None => None,
        }
    }

    /// Ends a session.
    pub fn remove(&self, id: &str) {
        self.map.lock().unwrap().remove(id);
    }
}

/// The caller's session state, for the UI to decide whether to show the login page.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SessionInfo {
    /// Whether the request was authenticated.
    authenticated: bool,
    /// How: `loopback` (trusted by configuration), `cookie` (a login session) or `bearer`; `null` when not.
    via: Option<&'static str>,
    /// The CSRF token to send as `X-CSRF-Token` on state-changing requests of a cookie session; `null` otherwise.
    csrf_token: Option<String>,
}

/// Login with the web token.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginRequest {
    /// The web token (`cacheosctl web token`).
    token: String,
}

/// Whether this client is authenticated, how, and its CSRF token. Needs no credentials.
#[utoipa::path(get, path = "/api/v1/session", operation_id = "session.get", tag = "web", security(()),
    responses((status = 200, body = SessionInfo), (status = 429, body = ErrorBody)))]
pub(crate) async fn get(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<SessionInfo>, ApiError> {
    // Asking without credentials (every page load of a browser that is not logged in) is no failed attempt:
    // counting it would lock people out of the login by reloading the page.
    let live_cookie = auth::cookie(&headers, SESSION_COOKIE).is_some_and(|id| state.gate.sessions.touch(id).is_some());
    if !state.gate.trusted(peer.ip()) && auth::bearer(&headers).is_none() && !live_cookie {
        return Ok(Json(SessionInfo {
            authenticated: false,
            via: None,
            csrf_token: None,
        }));
    }
    let info = match auth::authenticate(&state.gate, peer.ip(), &Method::GET, &headers) {
        Ok((_, via)) => SessionInfo {
            authenticated: true,
            via: Some(match via {
                Via::Loopback => "loopback",
                Via::Bearer => "bearer",
                Via::Cookie => "cookie",
            }),
            csrf_token: match via {
                Via::Cookie => auth::cookie(&headers, SESSION_COOKIE).and_then(|id| state.gate.sessions.touch(id)),
                _ => None,
            },
        },
        Err(e) if e.status() == StatusCode::UNAUTHORIZED => SessionInfo {
            authenticated: false,
            via: None,
            csrf_token: None,
        },
        Err(e) => return Err(e),
    };
    Ok(Json(info))
}

/// Cookies are `Secure` on a TLS port by configuration, and on every request that came over TLS (issue 19).
fn secure(state: &AppState, transport: Option<Extension<crate::tls::Transport>>) -> bool {
    state.gate.access.secure_cookies || transport.is_some_and(|Extension(t)| t.tls)
}

fn cookie_header(value: &str, max_age: u64, secure: bool) -> Result<HeaderValue, ApiError> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    ))
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))
}

/// Logs in with the web token: sets the session cookie and returns the CSRF token. Failed attempts count towards
/// the same per-address limit as wrong bearer tokens.
#[utoipa::path(post, path = "/api/v1/session", operation_id = "session.login", tag = "web", security(()),
    request_body = LoginRequest, responses((status = 200, body = SessionInfo), (status = 401, body = ErrorBody),
    (status = 403, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub(crate) async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    transport: Option<Extension<crate::tls::Transport>>,
    headers: HeaderMap,
    Json(req): Json<LoginRequest>,
) -> Result<Response, ApiError> {
    auth::check_same_origin(&headers)?;
    state.gate.check_token(peer.ip(), Some(&req.token))?;
    let (id, csrf) = state.gate.sessions.create()?;
    tracing::info!(peer = %peer.ip(), "web login");
    let cookie = cookie_header(&id, state.gate.access.session_idle.as_secs(), secure(&state, transport))?;
    let body = SessionInfo {
        authenticated: true,
        via: Some("cookie"),
        csrf_token: Some(csrf),
    };
    Ok(([(header::SET_COOKIE, cookie)], Json(body)).into_response())
}

/// Logs out: ends the cookie session (which needs its CSRF token) and clears the cookie.
#[utoipa::path(delete, path = "/api/v1/session", operation_id = "session.logout", tag = "web", security(()),
    responses((status = 204), (status = 403, body = ErrorBody)))]
pub(crate) async fn logout(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    transport: Option<Extension<crate::tls::Transport>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    auth::check_same_origin(&headers)?;
    if let Some(id) = auth::cookie(&headers, SESSION_COOKIE) {
        if state.gate.sessions.touch(id).is_some() && !state.gate.trusted(peer.ip()) {
            auth::authenticate(&state.gate, peer.ip(), &Method::DELETE, &headers)?;
        }
        state.gate.sessions.remove(id);
    }
    let cookie = cookie_header("", 0, secure(&state, transport))?;
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response())
}
