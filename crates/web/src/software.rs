//! Software endpoints (issue 15): search, plan and install (a job; progress as `software-job` events on
//! `/api/v1/events`), job state and cancel, a sandbox's lockfile and removal, exposed ports and services. Each
//! handler builds one operation and returns the core's document.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use cacheos_core::executor::Done;
use cacheos_core::software::expose::{ExposeArgs, SandboxNetworkInfo, ServiceArgs, UnexposeArgs};
use cacheos_core::software::{
    Ecosystem, Lockfile, PackageRequest, SearchResult, SoftwareInstallArgs, SoftwareJob, SoftwareJobRef,
    SoftwareListArgs, SoftwarePlan, SoftwareRemoveArgs, SoftwareSearchArgs,
};
use cacheos_core::{Caller, Operation, Output};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::api::{run, unexpected};
use crate::drives::{Body, OptBody};
use crate::error::{ApiError, ErrorBody};
use crate::AppState;

macro_rules! expect {
    ($out:expr, $variant:ident, $name:literal) => {
        match $out {
            Output::$variant(v) => Ok(Json(v)),
            _ => Err(unexpected($name)),
        }
    };
}

/// Query of `software.search`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct SearchQuery {
    /// A package name or a wish in words.
    q: String,
    /// Only `apt`, `pip` or `npm`.
    ecosystem: Option<Ecosystem>,
}

/// Packages for a name or a wish from Debian, PyPI and npm, with version, size and description.
#[utoipa::path(get, path = "/api/v1/software/search", operation_id = "software.search", tag = "software",
    params(SearchQuery), responses((status = 200, body = SearchResult), (status = 400, body = ErrorBody)))]
pub(crate) async fn search(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<SearchQuery>,
) -> Result<Json<SearchResult>, ApiError> {
    let op = Operation::SoftwareSearch(SoftwareSearchArgs {
        query: q.q,
        ecosystem: q.ecosystem,
    });
    expect!(run(&state, caller, op).await?, SoftwareSearch, "software.search")
}

/// What an install would do (exact versions, sizes, the sandbox, every command); changes nothing.
#[utoipa::path(post, path = "/api/v1/software/plan", operation_id = "software.plan", tag = "software",
    request_body = SoftwareInstallArgs,
    responses((status = 200, body = SoftwarePlan), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn plan(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Body(args): Body<SoftwareInstallArgs>,
) -> Result<Json<SoftwarePlan>, ApiError> {
    expect!(
        run(&state, caller, Operation::SoftwarePlan(args)).await?,
        SoftwarePlan,
        "software.plan"
    )
}

/// Starts an install job inside a sandbox (a new one from the debian template with NAT when none is given); 202 at once.
#[utoipa::path(post, path = "/api/v1/software/install", operation_id = "software.install", tag = "software",
    request_body = SoftwareInstallArgs,
    responses((status = 202, body = SoftwareJob), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn install(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Body(args): Body<SoftwareInstallArgs>,
) -> Result<(StatusCode, Json<SoftwareJob>), ApiError> {
    let out = expect!(
        run(&state, caller, Operation::SoftwareInstall(args)).await?,
        SoftwareJob,
        "software.install"
    )?;
    Ok((StatusCode::ACCEPTED, out))
}

/// An install job's state, step, last output lines, error and URLs.
#[utoipa::path(get, path = "/api/v1/software/jobs/{job}", operation_id = "software.job", tag = "software",
    params(("job" = String, Path, description = "job id (software-N)")),
    responses((status = 200, body = SoftwareJob), (status = 404, body = ErrorBody)))]
pub(crate) async fn job(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(job): Path<String>,
) -> Result<Json<SoftwareJob>, ApiError> {
    expect!(
        run(&state, caller, Operation::SoftwareJob(SoftwareJobRef { job })).await?,
        SoftwareJob,
        "software.job"
    )
}

/// Stops an install job after its current command.
#[utoipa::path(post, path = "/api/v1/software/jobs/{job}/cancel", operation_id = "software.cancel", tag = "software",
    params(("job" = String, Path, description = "job id (software-N)")),
    responses((status = 200, body = Done), (status = 409, body = ErrorBody)))]
pub(crate) async fn cancel(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(job): Path<String>,
) -> Result<Json<Done>, ApiError> {
    expect!(
        run(&state, caller, Operation::SoftwareCancel(SoftwareJobRef { job })).await?,
        Done,
        "software.cancel"
    )
}

/// What CacheOS installed in a sandbox (its lockfile).
#[utoipa::path(get, path = "/api/v1/sandboxes/{name}/software", operation_id = "software.list", tag = "software",
    params(("name" = String, Path, description = "sandbox name")),
    responses((status = 200, body = Lockfile), (status = 404, body = ErrorBody)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(sandbox): Path<String>,
) -> Result<Json<Lockfile>, ApiError> {
    expect!(
        run(&state, caller, Operation::SoftwareList(SoftwareListArgs { sandbox })).await?,
        SoftwareLock,
        "software.list"
    )
}

/// Body of `software.remove`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SoftwareRemoveBody)]
pub(crate) struct RemoveBody {
    /// Packages to remove; each must be one CacheOS installed there.
    #[schema(min_items = 1)]
    packages: Vec<PackageRequest>,
}

/// Removes packages CacheOS installed from a sandbox; returns the lockfile after it.
#[utoipa::path(post, path = "/api/v1/sandboxes/{name}/software/remove", operation_id = "software.remove", tag = "software",
    params(("name" = String, Path, description = "sandbox name")), request_body = RemoveBody,
    responses((status = 200, body = Lockfile), (status = 400, body = ErrorBody)))]
pub(crate) async fn remove(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(sandbox): Path<String>,
    Body(b): Body<RemoveBody>,
) -> Result<Json<Lockfile>, ApiError> {
    let op = Operation::SoftwareRemove(SoftwareRemoveArgs {
        sandbox,
        packages: b.packages,
    });
    expect!(run(&state, caller, op).await?, SoftwareLock, "software.remove")
}

/// Body of `sandbox.expose`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExposeBody {
    /// The port on the appliance; the same port when absent.
    #[serde(default)]
    host_port: Option<u16>,
}

/// Makes a port of a NAT sandbox reachable on the appliance's address.
#[utoipa::path(put, path = "/api/v1/sandboxes/{name}/ports/{port}", operation_id = "sandbox.expose", tag = "software",
    params(("name" = String, Path, description = "sandbox name"), ("port" = u16, Path, description = "port inside the sandbox", minimum = 1, maximum = 65535)),
    request_body(content = ExposeBody, description = "optional"),
    responses((status = 200, body = SandboxNetworkInfo), (status = 400, body = ErrorBody)))]
pub(crate) async fn expose(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((name, port)): Path<(String, u16)>,
    OptBody(b): OptBody<ExposeBody>,
) -> Result<Json<SandboxNetworkInfo>, ApiError> {
    let op = Operation::SandboxExpose(ExposeArgs {
        name,
        port,
        host_port: b.host_port,
    });
    expect!(run(&state, caller, op).await?, SandboxNetwork, "sandbox.expose")
}

/// Stops forwarding a port of a sandbox.
#[utoipa::path(delete, path = "/api/v1/sandboxes/{name}/ports/{port}", operation_id = "sandbox.unexpose", tag = "software",
    params(("name" = String, Path, description = "sandbox name"), ("port" = u16, Path, description = "port inside the sandbox", minimum = 1, maximum = 65535)),
    responses((status = 200, body = SandboxNetworkInfo), (status = 400, body = ErrorBody)))]
pub(crate) async fn unexpose(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((name, port)): Path<(String, u16)>,
) -> Result<Json<SandboxNetworkInfo>, ApiError> {
    let op = Operation::SandboxUnexpose(UnexposeArgs { name, port });
    expect!(run(&state, caller, op).await?, SandboxNetwork, "sandbox.unexpose")
}

/// Body of `sandbox.service`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServiceBody {
    /// argv; empty removes the service.
    command: Vec<String>,
}

/// Keeps a command running in a sandbox (restarted on failure, started with the sandbox); an empty command removes it.
#[utoipa::path(put, path = "/api/v1/sandboxes/{name}/services/{service}", operation_id = "sandbox.service", tag = "software",
    params(("name" = String, Path, description = "sandbox name"), ("service" = String, Path, description = "service name", pattern = "^[a-z][a-z0-9-]{0,31}$")),
    request_body = ServiceBody,
    responses((status = 200, body = SandboxNetworkInfo), (status = 400, body = ErrorBody)))]
pub(crate) async fn service(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((name, service)): Path<(String, String)>,
    Body(b): Body<ServiceBody>,
) -> Result<Json<SandboxNetworkInfo>, ApiError> {
    let op = Operation::SandboxService(ServiceArgs {
        name,
        command: b.command,
        service: Some(service),
    });
    expect!(run(&state, caller, op).await?, SandboxNetwork, "sandbox.service")
}
