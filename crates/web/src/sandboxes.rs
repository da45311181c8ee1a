//! Sandbox endpoints under `/api/v1/sandboxes` and `/api/v1/templates`. Each handler builds a `sandbox.*`
//! operation from the path and body, runs it through the core and returns the core's document. `exec` streams the
//! command's output as NDJSON while the core runs it (and still writes the audit record); `files` streams a file or
//! a directory's tar archive in (PUT) or out (GET).

use std::convert::Infallible;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use cacheos_core::executor::Done;
use cacheos_core::sandbox::ops::{
    Copied, SandboxCopyArgs, SandboxCreateArgs, SandboxExecArgs, SandboxLogs, SandboxLogsArgs, SandboxRef,
    SandboxRemoveArgs, SandboxRunArgs,
};
use cacheos_core::sandbox::{OutputChunk, ReconcileReport, SandboxInfo, Template};
use cacheos_core::{Caller, CoreError, Operation, Output};
use serde::Deserialize;
use tokio::sync::mpsc;
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

fn bad_query(e: QueryRejection) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid-argument", e.body_text())
}

/// Every sandbox with template, state, limits, binds and resource use.
#[utoipa::path(get, path = "/api/v1/sandboxes", operation_id = "sandbox.list", tag = "sandboxes",
    responses((status = 200, body = Vec<SandboxInfo>)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<SandboxInfo>>, ApiError> {
    expect!(
        run(&state, caller, Operation::SandboxList).await?,
        Sandboxes,
        "sandbox.list"
    )
}

/// Creates a sandbox from a template. Drive binds name attached drives; each is bound from its first mount.
#[utoipa::path(post, path = "/api/v1/sandboxes", operation_id = "sandbox.create", tag = "sandboxes",
    request_body = SandboxCreateArgs,
    responses((status = 201, body = SandboxInfo), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub(crate) async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Body(args): Body<SandboxCreateArgs>,
) -> Result<(StatusCode, Json<SandboxInfo>), ApiError> {
    let out = expect!(
        run(&state, caller, Operation::SandboxCreate(args)).await?,
        Sandbox,
        "sandbox.create"
    )?;
    Ok((StatusCode::CREATED, out))
}

/// One sandbox in detail.
#[utoipa::path(get, path = "/api/v1/sandboxes/{name}", operation_id = "sandbox.info", tag = "sandboxes",
    params(("name" = String, Path, description = "sandbox name")),
    responses((status = 200, body = SandboxInfo), (status = 404, body = ErrorBody)))]
pub(crate) async fn info(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<SandboxInfo>, ApiError> {
    expect!(
        run(&state, caller, Operation::SandboxInfo(SandboxRef { name })).await?,
        Sandbox,
        "sandbox.info"
    )
}

/// Query of `sandbox.remove` (the body may say it instead).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct RemoveParams {
    /// Must be true (here or in the body): the sandbox's writable data is deleted.
    confirm: Option<bool>,
}

/// Body of `sandbox.remove`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SandboxRemoveBody)]
pub(crate) struct RemoveBody {
    /// Must be true (here or in the query): the sandbox's writable data is deleted.
    #[serde(default)]
    confirm: bool,
}

/// Stops the sandbox and removes it with its writable data (`confirm` must be true).
#[utoipa::path(delete, path = "/api/v1/sandboxes/{name}", operation_id = "sandbox.remove", tag = "sandboxes",
    params(("name" = String, Path, description = "sandbox name"), RemoveParams), request_body = RemoveBody,
    responses((status = 200, body = Done), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub(crate) async fn remove(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    q: Result<Query<RemoveParams>, QueryRejection>,
    OptBody(b): OptBody<RemoveBody>,
) -> Result<Json<Done>, ApiError> {
    let Query(q) = q.map_err(bad_query)?;
    let op = Operation::SandboxRemove(SandboxRemoveArgs {
        name,
        confirm: b.confirm || q.confirm == Some(true),
    });
    expect!(run(&state, caller, op).await?, Done, "sandbox.remove")
}

/// Starts the sandbox's container.
#[utoipa::path(post, path = "/api/v1/sandboxes/{name}/start", operation_id = "sandbox.start", tag = "sandboxes",
    params(("name" = String, Path, description = "sandbox name")),
    responses((status = 200, body = SandboxInfo), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn start(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<SandboxInfo>, ApiError> {
    let op = Operation::SandboxStart(SandboxRef { name });
    expect!(run(&state, caller, op).await?, Sandbox, "sandbox.start")
}

/// Stops the sandbox's container (an ephemeral sandbox is then removed).
#[utoipa::path(post, path = "/api/v1/sandboxes/{name}/stop", operation_id = "sandbox.stop", tag = "sandboxes",
    params(("name" = String, Path, description = "sandbox name")),
    responses((status = 200, body = SandboxInfo), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn stop(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<SandboxInfo>, ApiError> {
    let op = Operation::SandboxStop(SandboxRef { name });
    expect!(run(&state, caller, op).await?, Sandbox, "sandbox.stop")
}

/// Stops the sandbox when it runs and starts it again.
#[utoipa::path(post, path = "/api/v1/sandboxes/{name}/restart", operation_id = "sandbox.restart", tag = "sandboxes",
    params(("name" = String, Path, description = "sandbox name")),
    responses((status = 200, body = SandboxInfo), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn restart(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<SandboxInfo>, ApiError> {
    let op = Operation::SandboxRestart(SandboxRef { name });
    expect!(run(&state, caller, op).await?, Sandbox, "sandbox.restart")
}

/// Body of `sandbox.exec`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExecBody {
    /// The command; `argv[0]` is looked up in the sandbox's `PATH`.
    #[schema(min_items = 1)]
    argv: Vec<String>,
    /// Kill the command after this many seconds.
    #[serde(default)]
    timeout_secs: Option<u64>,
}

enum Msg {
    Chunk(OutputChunk),
    Done(Box<Result<Output, CoreError>>),
}

fn line(v: serde_json::Value) -> axum::body::Bytes {
    let mut s = v.to_string();
    s.push('\n');
    s.into()
}

fn msg_line(m: Msg) -> axum::body::Bytes {
    let m = match m {
        Msg::Chunk(c) => Ok(c),
        Msg::Done(r) => Err(*r),
    };
    match m {
        Ok(OutputChunk::Stdout(b)) => line(serde_json::json!({
            "stream": "stdout", "data": String::from_utf8_lossy(&b),
        })),
        Ok(OutputChunk::Stderr(b)) => line(serde_json::json!({
            "stream": "stderr", "data": String::from_utf8_lossy(&b),
        })),
        Err(Ok(Output::Exec(x))) if x.timed_out => {
            line(serde_json::json!({"exit_code": x.exit_code, "timed_out": true}))
        }
        Err(Ok(Output::Exec(x))) => line(serde_json::json!({"exit_code": x.exit_code})),
        Err(Ok(_)) => line(serde_json::json!({"error": {"code": "internal", "message": "unexpected result"}})),
        Err(Err(e)) => line(serde_json::json!({"error": {"code": e.code(), "message": e.full_message()}})),
    }
}

/// Runs a command in a running sandbox. The response streams NDJSON: `{"stream":"stdout"|"stderr","data":"..."}`
/// lines as output arrives, then `{"exit_code":N}` (with `"timed_out":true` when the time limit killed it). Errors
/// before the command runs are ordinary error responses; a failure during it ends the stream with `{"error":{...}}`.
#[utoipa::path(post, path = "/api/v1/sandboxes/{name}/exec", operation_id = "sandbox.exec", tag = "sandboxes",
    params(("name" = String, Path, description = "sandbox name")), request_body = ExecBody,
    responses((status = 200, description = "NDJSON output lines, then the exit code", content_type = "application/x-ndjson", body = String),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn exec(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Body(b): Body<ExecBody>,
) -> Result<Response, ApiError> {
    let op = Operation::SandboxExec(SandboxExecArgs {
        name,
        argv: b.argv,
        timeout_secs: b.timeout_secs,
    });
    stream_exec(state, caller, op, "sandbox.exec").await
}

/// Runs a command in a new ephemeral sandbox from a template, removed when the command ends; the response streams
/// NDJSON exactly like `exec`. Binds, limits, network and environment are those of `create`.
#[utoipa::path(post, path = "/api/v1/sandboxes/run", operation_id = "sandbox.run", tag = "sandboxes",
    request_body = SandboxRunArgs,
    responses((status = 200, description = "NDJSON output lines, then the exit code", content_type = "application/x-ndjson", body = String),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn run_ephemeral(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Body(b): Body<SandboxRunArgs>,
) -> Result<Response, ApiError> {
    stream_exec(state, caller, Operation::SandboxRun(b), "sandbox.run").await
}

/// Runs an exec-like operation on a blocking thread and streams its output as NDJSON.
async fn stream_exec(state: AppState, caller: Caller, op: Operation, what: &'static str) -> Result<Response, ApiError> {
    let (tx, mut rx) = mpsc::channel::<Msg>(64);
    let core = state.core.clone();
    tokio::task::spawn_blocking(move || {
        let chunks = tx.clone();
        let mut sink = move |c: OutputChunk| {
            // A client that went away stops receiving; the command still runs to its end and is audited.
            let _ = chunks.blocking_send(Msg::Chunk(c));
        };
        let result = core.execute_streaming(&caller, op, &mut sink);
        let _ = tx.blocking_send(Msg::Done(Box::new(result)));
    });
    let first = rx.recv().await.ok_or_else(|| unexpected(what))?;
    let first = match first {
        Msg::Done(r) => match *r {
            Err(e) => return Err(e.into()),
            ok => Msg::Done(Box::new(ok)),
        },
        chunk => chunk,
    };
    let rest = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
    let body = futures_util::StreamExt::map(
        futures_util::StreamExt::chain(futures_util::stream::iter([first]), rest),
        |m| Ok::<_, Infallible>(msg_line(m)),
    );
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        axum::body::Body::from_stream(body),
    )
        .into_response())
}

/// Query of `sandbox.logs`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct LogsParams {
    /// How many of the last lines; 200 by default.
    lines: Option<usize>,
}

/// The last lines of the sandbox's console output.
#[utoipa::path(get, path = "/api/v1/sandboxes/{name}/logs", operation_id = "sandbox.logs", tag = "sandboxes",
    params(("name" = String, Path, description = "sandbox name"), LogsParams),
    responses((status = 200, body = SandboxLogs), (status = 404, body = ErrorBody)))]
pub(crate) async fn logs(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    q: Result<Query<LogsParams>, QueryRejection>,
) -> Result<Json<SandboxLogs>, ApiError> {
    let Query(q) = q.map_err(bad_query)?;
    let op = Operation::SandboxLogs(SandboxLogsArgs { name, lines: q.lines });
    expect!(run(&state, caller, op).await?, SandboxLogs, "sandbox.logs")
}

/// The templates sandboxes can be created from.
#[utoipa::path(get, path = "/api/v1/templates", operation_id = "sandbox.templates", tag = "sandboxes",
    responses((status = 200, body = Vec<Template>)))]
pub(crate) async fn templates(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<Template>>, ApiError> {
    expect!(
        run(&state, caller, Operation::SandboxTemplates).await?,
        Templates,
        "sandbox.templates"
    )
}

/// Compares sandbox records with the running containers and repairs either side.
#[utoipa::path(post, path = "/api/v1/sandboxes/reconcile", operation_id = "sandbox.reconcile", tag = "sandboxes",
    responses((status = 200, body = ReconcileReport)))]
pub(crate) async fn reconcile(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<ReconcileReport>, ApiError> {
    expect!(
        run(&state, caller, Operation::SandboxReconcile).await?,
        SandboxReconciled,
        "sandbox.reconcile"
    )
}

/// Query of `sandbox.copy-in` and `sandbox.copy-out`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct FileParams {
    /// Absolute path inside the sandbox.
    #[param(pattern = "^/")]
    path: String,
    /// The body is (or the answer is) a tar archive of the directory `path`.
    #[serde(default)]
    archive: bool,
}

/// Writes the request body as the file `path` inside the running sandbox (owned by its root, mode 0644), or with
/// `archive=true` unpacks the body as a tar archive into the directory `path` with the sandbox's own tar.
#[utoipa::path(put, path = "/api/v1/sandboxes/{name}/files", operation_id = "sandbox.copy-in", tag = "sandboxes",
    params(("name" = String, Path, description = "sandbox name"), FileParams),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "the file or tar archive"),
    responses((status = 200, body = Copied), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub(crate) async fn copy_in(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    query: Result<Query<FileParams>, QueryRejection>,
    body: axum::body::Body,
) -> Result<Json<Copied>, ApiError> {
    let Query(q) = query.map_err(bad_query)?;
    let stream = futures_util::TryStreamExt::map_err(body.into_data_stream(), std::io::Error::other);
    let mut reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream));
    let core = state.core.clone();
    let op = Operation::SandboxCopyIn(SandboxCopyArgs {
        name,
        path: q.path,
        archive: q.archive,
    });
    let out = tokio::task::spawn_blocking(move || core.execute_with_input(&caller, op, &mut reader))
        .await
        .map_err(|_| unexpected("sandbox.copy-in"))??;
    expect!(out, Copied, "sandbox.copy-in")
}

/// A `Write` that hands what is written to the response body.
struct ChannelWriter(mpsc::Sender<Result<Vec<u8>, std::io::Error>>);

impl std::io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Ok(buf.to_vec()))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Streams the file `path` of the running sandbox (or with `archive=true` the directory `path` as a tar archive).
/// Errors before the first byte are ordinary error responses; a failure later cuts the body short.
#[utoipa::path(get, path = "/api/v1/sandboxes/{name}/files", operation_id = "sandbox.copy-out", tag = "sandboxes",
    params(("name" = String, Path, description = "sandbox name"), FileParams),
    responses((status = 200, description = "the file, or a tar archive", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn copy_out(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    query: Result<Query<FileParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(bad_query)?;
    let content_type = if q.archive {
        "application/x-tar"
    } else {
        "application/octet-stream"
    };
    let op = Operation::SandboxCopyOut(SandboxCopyArgs {
        name,
        path: q.path,
        archive: q.archive,
    });
    let (tx, mut rx) = mpsc::channel::<Result<Vec<u8>, std::io::Error>>(16);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let core = state.core.clone();
    tokio::task::spawn_blocking(move || {
        let mut writer = ChannelWriter(tx.clone());
        let result = core.execute_with_output(&caller, op, &mut writer);
        if let Err(e) = &result {
            let _ = tx.blocking_send(Err(std::io::Error::other(e.full_message())));
        }
        let _ = done_tx.send(result);
    });
    // The first chunk, or the end: an error before any byte is an error response.
    let first = match rx.recv().await {
        Some(Ok(bytes)) => bytes,
        Some(Err(_)) | None => match done_rx.await {
            Ok(Err(e)) => return Err(e.into()),
            Ok(Ok(_)) => Vec::new(),
            Err(_) => return Err(unexpected("sandbox.copy-out")),
        },
    };
    let rest = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
    let body = futures_util::StreamExt::chain(futures_util::stream::iter([Ok(first)]), rest);
    Ok((
        [(header::CONTENT_TYPE, content_type)],
        axum::body::Body::from_stream(body),
    )
        .into_response())
}
