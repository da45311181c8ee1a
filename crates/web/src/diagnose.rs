//! REST endpoints of the diagnosis operations: `system.diagnose`, `journal.query`, `service.list`,
//! `service.restart`.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use cacheos_core::diagnose::{DiagnoseArgs, Diagnosis, JournalPage, JournalQuery, ServiceInfo, ServiceRef};
use cacheos_core::{Caller, Operation, Output};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::api::{run, unexpected};
use crate::error::{ApiError, ErrorBody};
use crate::AppState;

fn bad_query(e: QueryRejection) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid-argument", e.body_text())
}

/// What to diagnose: at most one of them; none means everything.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct DiagnoseParams {
    /// A systemd unit (`nginx` means `nginx.service`).
    unit: Option<String>,
    /// A sandbox.
    sandbox: Option<String>,
    /// A virtual drive.
    drive: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/diagnose", operation_id = "system.diagnose", tag = "system",
    params(DiagnoseParams), responses((status = 200, body = Diagnosis), (status = 400, body = ErrorBody),
    (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn diagnose(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    params: Result<Query<DiagnoseParams>, QueryRejection>,
) -> Result<Json<Diagnosis>, ApiError> {
    let Query(p) = params.map_err(bad_query)?;
    let op = Operation::SystemDiagnose(DiagnoseArgs {
        unit: p.unit,
        sandbox: p.sandbox,
        drive: p.drive,
    });
    match run(&state, caller, op).await? {
        Output::Diagnosis(d) => Ok(Json(d)),
        _ => Err(unexpected("system.diagnose")),
    }
}

/// Journal filters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct JournalParams {
    /// Entries about this unit.
    unit: Option<String>,
    /// Entries about this sandbox's unit.
    sandbox: Option<String>,
    /// This priority or more urgent (0..=7).
    #[param(minimum = 0, maximum = 7)]
    priority: Option<u8>,
    /// At or after (ms since the Unix epoch).
    since_ms: Option<u64>,
    /// Before (ms since the Unix epoch).
    until_ms: Option<u64>,
    /// Text the message contains (case-insensitive).
    grep: Option<String>,
    /// At most this many, the newest (1..=10000, default 200).
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/journal", operation_id = "journal.query", tag = "system",
    params(JournalParams), responses((status = 200, body = JournalPage), (status = 400, body = ErrorBody),
    (status = 404, body = ErrorBody)))]
pub(crate) async fn journal(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    params: Result<Query<JournalParams>, QueryRejection>,
) -> Result<Json<JournalPage>, ApiError> {
    let Query(p) = params.map_err(bad_query)?;
    let op = Operation::JournalQuery(JournalQuery {
        unit: p.unit,
        sandbox: p.sandbox,
        priority: p.priority,
        since_ms: p.since_ms,
        until_ms: p.until_ms,
        grep: p.grep,
        limit: p.limit,
    });
    match run(&state, caller, op).await? {
        Output::Journal(j) => Ok(Json(j)),
        _ => Err(unexpected("journal.query")),
    }
}

#[utoipa::path(get, path = "/api/v1/services", operation_id = "service.list", tag = "system",
    responses((status = 200, body = Vec<ServiceInfo>), (status = 409, body = ErrorBody)))]
pub(crate) async fn services(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<ServiceInfo>>, ApiError> {
    match run(&state, caller, Operation::ServiceList).await? {
        Output::Services(v) => Ok(Json(v)),
        _ => Err(unexpected("service.list")),
    }
}

#[utoipa::path(post, path = "/api/v1/services/{unit}/restart", operation_id = "service.restart", tag = "system",
    params(("unit" = String, Path, description = "unit name (`nginx` means `nginx.service`)")),
    responses((status = 200, body = ServiceInfo), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn restart(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(unit): Path<String>,
) -> Result<Json<ServiceInfo>, ApiError> {
    match run(&state, caller, Operation::ServiceRestart(ServiceRef { unit })).await? {
        Output::Service(s) => Ok(Json(s)),
        _ => Err(unexpected("service.restart")),
    }
}
