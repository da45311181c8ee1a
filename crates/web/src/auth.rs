//! Access control: trusted loopback, otherwise a bearer token compared in constant time, with failed attempts
//! rate-limited per client address.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use cacheos_core::{Caller, Frontend, Principal};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::AppState;

/// Who may use the web port.
#[derive(Debug, Clone)]
pub struct WebAccess {
    /// Loopback clients need no token.
    pub trust_loopback: bool,
    /// The bearer token every other client must present.
    pub token: String,
    /// Failed attempts per client address allowed within `failure_window` before further attempts get 429.
    pub max_failures: u32,
    /// Window for counting failures; a locked-out client may retry when it has passed.
    pub failure_window: Duration,
}

impl WebAccess {
    /// Defaults: loopback trusted, 5 failures per minute.
    pub fn new(token: String) -> Self {
        Self {
            trust_loopback: true,
            token,
            max_failures: 5,
            failure_window: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    first: Instant,
}

/// Decides, per request, who the caller is.
#[derive(Debug)]
pub struct AuthGate {
    access: WebAccess,
    failures: Mutex<HashMap<IpAddr, Failures>>,
}

impl AuthGate {
    /// A gate with no failures recorded.
    pub fn new(access: WebAccess) -> Self {
        Self {
            access,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// The principal for a request from `peer` with an optional bearer token, or the error to answer with.
    pub fn check(&self, peer: IpAddr, bearer: Option<&str>) -> Result<Principal, ApiError> {
        if self.access.trust_loopback && peer.is_loopback() {
            return Ok(Principal::Loopback);
        }
        let now = Instant::now();
        let mut failures = self.failures.lock().unwrap();
        if let Some(f) = failures.get(&peer).copied() {
            let elapsed = now.duration_since(f.first);
            if elapsed >= self.access.failure_window {
                failures.remove(&peer);
            } else if f.count >= self.access.max_failures {
                let left = (self.access.failure_window - elapsed).as_secs().max(1);
                return Err(ApiError::too_many(left));
            }
        }
        let ok = bearer.is_some_and(|t| bool::from(t.as_bytes().ct_eq(self.access.token.as_bytes())));
        if ok {
            failures.remove(&peer);
            return Ok(Principal::WebToken);
        }
        if failures.len() > 10_000 {
            let window = self.access.failure_window;
            failures.retain(|_, f| now.duration_since(f.first) < window);
        }
        let f = failures.entry(peer).or_insert(Failures { count: 0, first: now });
        f.count += 1;
        tracing::warn!(%peer, attempts = f.count, "web request without a valid token");
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            if bearer.is_some() {
                "the bearer token is wrong (see `cacheosctl web token`)"
            } else {
                "this client is not on loopback: send `Authorization: Bearer <token>` (see `cacheosctl web token`)"
            },
        ))
    }
}

fn bearer(req: &Request) -> Option<&str> {
    let v = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Middleware: establishes the [`Caller`] or answers 401/429.
pub async fn require_access(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let principal = state.gate.check(peer.ip(), bearer(&req))?;
    req.extensions_mut().insert(Caller::new(Frontend::Rest, principal));
    Ok(next.run(req).await)
}
