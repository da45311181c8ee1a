//! REST handlers. Each parses its input into an [`Operation`], runs it through the core and maps the output.

use std::convert::Infallible;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::{Extension, Json};
use cacheos_core::audit::{AuditFilter, AuditRecord, Outcome};
use cacheos_core::executor::{Done, WebToken};
use cacheos_core::operation::KillTaskArgs;
use cacheos_core::{Caller, Frontend, OpInfo, Operation, Output, SupervisorStatus, SystemStatus};
use futures_util::stream::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::error::{ApiError, ErrorBody};
use crate::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "CacheOS API",
        description = "Every operation of the CacheOS appliance. Operation ids are the stable dotted operation names \
                       used in the audit log, on D-Bus, in the CLI and by the chat engine. Loopback clients need no \
                       credentials (configurable); every other client sends `Authorization: Bearer <token>` \
                       (`cacheosctl web token`)."
    ),
    components(schemas(ErrorBody, cacheos_core::Event, cacheos_core::EventKind)),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags((name = "system"), (name = "supervisor"), (name = "audit"), (name = "web"), (name = "events"), (name = "chat"), (name = "drives"), (name = "kb"), (name = "software"), (name = "models"))
)]
pub(crate) struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Runs an operation on a blocking thread (the core does blocking I/O).
pub(crate) async fn run(state: &AppState, caller: Caller, op: Operation) -> Result<Output, ApiError> {
    let core = state.core.clone();
    tokio::task::spawn_blocking(move || core.execute(&caller, op))
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("operation task failed: {e}"),
            )
        })?
        .map_err(ApiError::from)
}

pub(crate) fn unexpected(op: &str) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        format!("{op} returned an unexpected result"),
    )
}

/// Liveness of the daemon. Needs no credentials.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Health {
    /// Always `ok` when the web port answers.
    status: &'static str,
    /// CacheOS version.
    version: &'static str,
}

pub(crate) async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok",
        version: cacheos_core::VERSION,
    })
}

pub(crate) async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not-found",
        format!("no such endpoint: {}", uri.path()),
    )
}

/// Host name, OS, kernel, uptime, load, CPU, memory, disks and failed units.
#[utoipa::path(get, path = "/api/v1/system/status", operation_id = "system.status", tag = "system",
    responses((status = 200, body = SystemStatus), (status = 401, body = ErrorBody)))]
pub(crate) async fn system_status(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<SystemStatus>, ApiError> {
    match run(&state, caller, Operation::SystemStatus).await? {
        Output::SystemStatus(s) => Ok(Json(s)),
        _ => Err(unexpected("system.status")),
    }
}

/// Query parameters of `system.history`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct HistoryParams {
    /// Only samples taken at or after this time (ms since the Unix epoch).
    since_ms: Option<u64>,
    /// `sample`, `minute` or `hour`; by default the finest that reaches back to `since_ms`.
    resolution: Option<cacheos_core::metrics_history::Resolution>,
}

/// CPU, memory, disk and load samples since `since_ms` (all kept samples of the last hour when absent), oldest
/// first: every sample for the last hour, minute means for the last day, hour means for the last 30 days. New samples arrive as
/// `metrics-sampled` events on `/api/v1/events`.
#[utoipa::path(get, path = "/api/v1/system/history", operation_id = "system.history", tag = "system",
    params(HistoryParams), responses((status = 200, body = Vec<cacheos_core::MetricSample>),
    (status = 400, body = ErrorBody)))]
pub(crate) async fn system_history(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    params: Result<Query<HistoryParams>, QueryRejection>,
) -> Result<Json<Vec<cacheos_core::MetricSample>>, ApiError> {
    let Query(p) = params.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid-argument", e.body_text()))?;
    let op = Operation::SystemHistory(cacheos_core::operation::HistoryArgs {
        since_ms: p.since_ms,
        resolution: p.resolution,
    });
    match run(&state, caller, op).await? {
        Output::SystemHistory(s) => Ok(Json(s)),
        _ => Err(unexpected("system.history")),
    }
}

/// Daemon version, uptime, state and the health of each internal task.
#[utoipa::path(get, path = "/api/v1/supervisor/status", operation_id = "supervisor.status", tag = "supervisor",
    responses((status = 200, body = SupervisorStatus), (status = 401, body = ErrorBody)))]
pub(crate) async fn supervisor_status(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<SupervisorStatus>, ApiError> {
    match run(&state, caller, Operation::SupervisorStatus).await? {
        Output::SupervisorStatus(s) => Ok(Json(s)),
        _ => Err(unexpected("supervisor.status")),
    }
}

/// Aborts an internal task so the supervisor restarts it (fault injection; only when enabled).
#[utoipa::path(post, path = "/api/v1/supervisor/tasks/{task}/kill", operation_id = "supervisor.kill-task",
    tag = "supervisor", params(("task" = String, Path, description = "task name")),
    responses((status = 200, body = Done), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn supervisor_kill_task(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(task): Path<String>,
) -> Result<Json<Done>, ApiError> {
    match run(&state, caller, Operation::SupervisorKillTask(KillTaskArgs { task })).await? {
        Output::Done(d) => Ok(Json(d)),
        _ => Err(unexpected("supervisor.kill-task")),
    }
}

/// Query parameters of `audit.query` (all optional).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditParams {
    /// Only records at or after this time (ms since the Unix epoch).
    since_ms: Option<u64>,
    /// Only records before this time (ms since the Unix epoch).
    until_ms: Option<u64>,
    /// Only records from this front end: dbus, rest, cli, chat, internal.
    frontend: Option<Frontend>,
    /// Only this operation (a dotted name), or every operation with a prefix ending in `.`.
    operation: Option<String>,
    /// Only this outcome: ok, error, denied.
    outcome: Option<Outcome>,
    /// Only records with a smaller id (paging).
    before_id: Option<u64>,
    /// At most this many records (1..=10000, default 100).
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<u32>,
}

/// Audit log entries, newest first.
#[utoipa::path(get, path = "/api/v1/audit", operation_id = "audit.query", tag = "audit", params(AuditParams),
    responses((status = 200, body = Vec<AuditRecord>), (status = 400, body = ErrorBody)))]
pub(crate) async fn audit_query(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    params: Result<Query<AuditParams>, QueryRejection>,
) -> Result<Json<Vec<AuditRecord>>, ApiError> {
    let Query(p) = params.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid-argument", e.body_text()))?;
    let filter = AuditFilter {
        since_ms: p.since_ms,
        until_ms: p.until_ms,
        frontend: p.frontend,
        operation: p.operation,
        outcome: p.outcome,
        before_id: p.before_id,
        limit: p.limit,
    };
    match run(&state, caller, Operation::AuditQuery(filter)).await? {
        Output::Audit(a) => Ok(Json(a)),
        _ => Err(unexpected("audit.query")),
    }
}

/// The bearer token for web clients other than loopback (operators only).
#[utoipa::path(get, path = "/api/v1/web/token", operation_id = "web.token", tag = "web",
    responses((status = 200, body = WebToken), (status = 403, body = ErrorBody)))]
pub(crate) async fn web_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<WebToken>, ApiError> {
    match run(&state, caller, Operation::WebToken).await? {
        Output::WebToken(t) => Ok(Json(t)),
        _ => Err(unexpected("web.token")),
    }
}

/// Every operation the core knows: dotted name, summary, risk class and privilege. Static; not audited.
#[utoipa::path(get, path = "/api/v1/operations", operation_id = "operations.list", tag = "system",
    responses((status = 200, body = Vec<OpInfo>)))]
pub(crate) async fn operations() -> Json<&'static [OpInfo]> {
    Json(cacheos_core::OPERATIONS)
}

/// Server-sent events: every core event as JSON; the SSE event name is the event's `type`.
#[utoipa::path(get, path = "/api/v1/events", operation_id = "events.stream", tag = "events",
    responses((status = 200, description = "text/event-stream of Event objects", body = cacheos_core::Event,
        content_type = "text/event-stream")))]
pub(crate) async fn events(State(state): State<AppState>) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let rx = state.core.events().subscribe();
    let stream = rx.map(|ev| {
        let e = SseEvent::default().event(ev.kind.type_name()).id(ev.seq.to_string());
        Ok(e.json_data(&ev)
            .unwrap_or_else(|_| SseEvent::default().comment("unencodable event")))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
