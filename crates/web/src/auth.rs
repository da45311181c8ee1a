//! Access control: trusted loopback, a bearer token compared in constant time, or a browser session cookie
//! (made by logging in with the token, see `session.rs`) plus a CSRF token on state-changing requests. Failed token
//! attempts are rate-limited per client address, for the bearer header and the login alike.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use cacheos_core::{Caller, Frontend, Principal};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::session::Sessions;
use crate::AppState;

/// Name of the browser session cookie.
pub const SESSION_COOKIE: &str = "cacheos_session";
/// Header carrying the session's CSRF token on state-changing requests made with the session cookie.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Who may use the web port.
#[derive(Debug, Clone)]
pub struct WebAccess {
    /// Loopback clients need no token.
    pub trust_loopback: bool,
    /// The bearer token every other client must present (or log in with).
    pub token: String,
    /// Failed attempts per client address allowed within `failure_window` before further attempts get 429.
    pub max_failures: u32,
    /// Window for counting failures; a locked-out client may retry when it has passed.
    pub failure_window: Duration,
    /// A browser session ends after this long without a request.
    pub session_idle: Duration,
    /// Mark the session cookie `Secure` (set when the port is served over TLS).
    pub secure_cookies: bool,
}

impl WebAccess {
    /// Defaults: loopback trusted, 5 failures per minute, sessions end after 8 idle hours, plain HTTP.
    pub fn new(token: String) -> Self {
        Self {
            trust_loopback: true,
            token,
            max_failures: 5,
            failure_window: Duration::from_secs(60),
            session_idle: Duration::from_secs(8 * 3600),
            secure_cookies: false,
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
    pub(crate) access: WebAccess,
    failures: Mutex<HashMap<IpAddr, Failures>>,
    pub(crate) sessions: Sessions,
}

impl AuthGate {
    /// A gate with no failures recorded and no sessions.
    pub fn new(access: WebAccess) -> Self {
        let sessions = Sessions::new(access.session_idle);
        Self {
            access,
            failures: Mutex::new(HashMap::new()),
            sessions,
        }
    }

    /// Whether `peer` is trusted without credentials (loopback, also IPv4 loopback as an IPv4-mapped address on a
    /// dual-stack `[::]` listener, as the TLS redirect sees it).
    pub fn trusted(&self, peer: IpAddr) -> bool {
        self.access.trust_loopback && peer.to_canonical().is_loopback()
    }

    /// The principal for a request from `peer` with an optional bearer token, or the error to answer with.
    pub fn check(&self, peer: IpAddr, bearer: Option<&str>) -> Result<Principal, ApiError> {
        if self.trusted(peer) {
            return Ok(Principal::Loopback);
        }
        self.check_token(peer, bearer).map(|()| Principal::WebToken)
    }

    /// Compares `token` with the web token, counting failures of `peer` (429 once over the limit, even for the
    /// right token, until the window has passed).
    pub fn check_token(&self, peer: IpAddr, token: Option<&str>) -> Result<(), ApiError> {
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
        let ok = token.is_some_and(|t| bool::from(t.as_bytes().ct_eq(self.access.token.as_bytes())));
        if ok {
            failures.remove(&peer);
            return Ok(());
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
            if token.is_some() {
                "the token is wrong (see `cacheosctl web token`)"
            } else {
                "this client is not on loopback: log in or send `Authorization: Bearer <token>` \
                 (see `cacheosctl web token`)"
            },
        ))
    }
}

pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The value of cookie `name`, if the request carries it.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether a request with this method can change state (and so needs CSRF protection).
pub(crate) fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn forbidden(code: &'static str, message: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, code, message)
}

/// Refuses state-changing requests a browser sent from another site, whatever their credentials: an `Origin`
/// that is not this host, or `Sec-Fetch-Site: cross-site`. Clients that send neither (curl, cacheosctl) pass.
pub(crate) fn check_same_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let authority = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .unwrap_or("");
        if host.is_none_or(|h| !h.eq_ignore_ascii_case(authority)) {
            return Err(forbidden("csrf", "cross-origin request refused"));
        }
    } else if headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site")
    {
        return Err(forbidden("csrf", "cross-site request refused"));
    }
    Ok(())
}

/// Whether a `Host` header may reach a client trusted for being on loopback: IP literals, `localhost` and single
/// label names. A dotted name would let a web site rebind its DNS name to 127.0.0.1 and read the API.
pub(crate) fn loopback_host_ok(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return true;
    };
    let name = if host.starts_with('[') {
        return true; // IPv6 literal
    } else {
        host.rsplit_once(':').map_or(host, |(n, _)| n)
    };
    let name = name.to_ascii_lowercase();
    name.parse::<IpAddr>().is_ok() || name == "localhost" || name.ends_with(".localhost") || !name.contains('.')
}

/// How a request was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    Loopback,
    Bearer,
    Cookie,
}

/// Establishes who sent `headers` from `peer`, checking CSRF for cookie-authenticated state changes.
pub(crate) fn authenticate(
    gate: &AuthGate,
    peer: IpAddr,
    method: &Method,
    headers: &HeaderMap,
) -> Result<(Principal, Via), ApiError> {
    let changing = changes_state(method);
    if changing {
        check_same_origin(headers)?;
    }
    if gate.trusted(peer) {
        if !loopback_host_ok(headers) {
            return Err(forbidden(
                "host-not-allowed",
                "loopback access only under an IP address, localhost or a single-label host name",
            ));
        }
        return Ok((Principal::Loopback, Via::Loopback));
    }
    if let Some(token) = bearer(headers) {
        gate.check_token(peer, Some(token))?;
        return Ok((Principal::WebToken, Via::Bearer));
    }
    if let Some(csrf) = cookie(headers, SESSION_COOKIE).and_then(|id| gate.sessions.touch(id)) {
        if changing {
            let sent = headers.get(CSRF_HEADER).map(|v| v.as_bytes()).unwrap_or(b"");
            if !bool::from(sent.ct_eq(csrf.as_bytes())) {
                return Err(forbidden(
                    "csrf",
                    "missing or wrong X-CSRF-Token header (read it from GET /api/v1/session)",
                ));
            }
        }
        return Ok((Principal::WebToken, Via::Cookie));
    }
    gate.check_token(peer, None)?;
    Err(ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
        "no credentials",
    ))
}

/// Middleware: establishes the [`Caller`] or answers 401/403/429.
pub async fn require_access(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let (principal, _) = authenticate(&state.gate, peer.ip(), req.method(), req.headers())?;
    req.extensions_mut().insert(Caller::new(Frontend::Rest, principal));
    Ok(next.run(req).await)
}
