//! Virtual drive endpoints under `/api/v1/drives` and `/api/v1/images`. Each handler builds a `drive.*`
//! operation from the path and body, runs it through the core and returns the core's document. The image upload
//! (`PUT /api/v1/images/{name}`) only bridges the request body to a blocking reader that `drive.upload` consumes
//! in the core (which checks, limits, hashes, stores and audits).

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use cacheos_core::drive::manager::{Created, ReconcileReport};
use cacheos_core::drive::{
    AttachArgs, CommitArgs, CreateArgs, DetachArgs, DriveInfo, DriveRef, FileListing, FilesArgs, ImageFile,
    PersistArgs, UploadArgs, Uploaded,
};
use cacheos_core::executor::Done;
use cacheos_core::{Caller, Operation, Output};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::api::{run, unexpected};
use crate::error::{ApiError, ErrorBody};
use crate::AppState;

/// A JSON body whose rejections are answered in the API's error format (400, `invalid-argument`).
pub(crate) struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(e) => Err(bad_body(e)),
        }
    }
}

fn bad_body(e: JsonRejection) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid-argument",
        format!("invalid request body: {}", e.body_text()),
    )
}

/// An empty or absent body counts as `{}`.
pub(crate) struct OptBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for OptBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid-argument", e.body_text()))?;
        let text = if bytes.iter().all(u8::is_ascii_whitespace) {
            &b"{}"[..]
        } else {
            &bytes[..]
        };
        serde_json::from_slice(text).map(OptBody).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid-argument",
                format!("invalid request body: {e}"),
            )
        })
    }
}

macro_rules! expect {
    ($out:expr, $variant:ident, $name:literal) => {
        match $out {
            Output::$variant(v) => Ok(Json(v)),
            _ => Err(unexpected($name)),
        }
    };
}

/// Every drive with image, format, loop devices, partitions, mounts, usage and users.
#[utoipa::path(get, path = "/api/v1/drives", operation_id = "drive.list", tag = "drives",
    responses((status = 200, body = Vec<DriveInfo>)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<DriveInfo>>, ApiError> {
    expect!(run(&state, caller, Operation::DriveList).await?, Drives, "drive.list")
}

/// Attaches an image read-only (default) or read-write and mounts its file systems below
/// `/run/cacheos/drives/<name>/` with `nosuid,nodev,noexec`.
#[utoipa::path(post, path = "/api/v1/drives", operation_id = "drive.attach", tag = "drives",
    request_body = AttachArgs,
    responses((status = 201, body = DriveInfo), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub(crate) async fn attach(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Body(args): Body<AttachArgs>,
) -> Result<(StatusCode, Json<DriveInfo>), ApiError> {
    let out = expect!(
        run(&state, caller, Operation::DriveAttach(args)).await?,
        Drive,
        "drive.attach"
    )?;
    Ok((StatusCode::CREATED, out))
}

/// One drive in detail.
#[utoipa::path(get, path = "/api/v1/drives/{name}", operation_id = "drive.info", tag = "drives",
    params(("name" = String, Path, description = "drive name")),
    responses((status = 200, body = DriveInfo), (status = 404, body = ErrorBody)))]
pub(crate) async fn info(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<DriveInfo>, ApiError> {
    expect!(
        run(&state, caller, Operation::DriveInfo(DriveRef { name })).await?,
        Drive,
        "drive.info"
    )
}

/// Body of `drive.detach`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DetachBody {
    /// Unmount lazily and detach even when busy (discards an uncommitted snapshot).
    #[serde(default)]
    force: bool,
}

/// Unmounts the drive and releases its loop devices and export. Refused (409) while busy unless `force`.
#[utoipa::path(post, path = "/api/v1/drives/{name}/detach", operation_id = "drive.detach", tag = "drives",
    params(("name" = String, Path, description = "drive name")), request_body = DetachBody,
    responses((status = 200, body = Done), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn detach(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    OptBody(b): OptBody<DetachBody>,
) -> Result<Json<Done>, ApiError> {
    let op = Operation::DriveDetach(DetachArgs { name, force: b.force });
    expect!(run(&state, caller, op).await?, Done, "drive.detach")
}

/// Puts a writable qcow2 layer over the drive; the image is untouched until a commit.
#[utoipa::path(post, path = "/api/v1/drives/{name}/snapshot", operation_id = "drive.snapshot", tag = "drives",
    params(("name" = String, Path, description = "drive name")),
    responses((status = 200, body = DriveInfo), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn snapshot(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<DriveInfo>, ApiError> {
    expect!(
        run(&state, caller, Operation::DriveSnapshot(DriveRef { name })).await?,
        Drive,
        "drive.snapshot"
    )
}

/// Throws the snapshot away and attaches the unchanged image again.
#[utoipa::path(post, path = "/api/v1/drives/{name}/discard", operation_id = "drive.discard", tag = "drives",
    params(("name" = String, Path, description = "drive name")),
    responses((status = 200, body = DriveInfo), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn discard(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<DriveInfo>, ApiError> {
    expect!(
        run(&state, caller, Operation::DriveDiscard(DriveRef { name })).await?,
        Drive,
        "drive.discard"
    )
}

/// Body of `drive.commit`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CommitBody {
    /// Must be true: the image is overwritten.
    #[serde(default)]
    confirm: bool,
}

/// Writes the snapshot into the image (read-write drives only; `confirm` must be true).
#[utoipa::path(post, path = "/api/v1/drives/{name}/commit", operation_id = "drive.commit", tag = "drives",
    params(("name" = String, Path, description = "drive name")), request_body = CommitBody,
    responses((status = 200, body = DriveInfo), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn commit(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    OptBody(b): OptBody<CommitBody>,
) -> Result<Json<DriveInfo>, ApiError> {
    let op = Operation::DriveCommit(CommitArgs {
        name,
        confirm: b.confirm,
    });
    expect!(run(&state, caller, op).await?, Drive, "drive.commit")
}

/// Body of `drive.persist`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PersistBody {
    /// Attach again at boot (default true).
    #[serde(default = "yes")]
    persistent: bool,
}

fn yes() -> bool {
    true
}

/// Marks the drive to be attached again at boot, or not.
#[utoipa::path(post, path = "/api/v1/drives/{name}/persist", operation_id = "drive.persist", tag = "drives",
    params(("name" = String, Path, description = "drive name")), request_body = PersistBody,
    responses((status = 200, body = DriveInfo), (status = 404, body = ErrorBody)))]
pub(crate) async fn persist(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    OptBody(b): OptBody<PersistBody>,
) -> Result<Json<DriveInfo>, ApiError> {
    let op = Operation::DrivePersist(PersistArgs {
        name,
        persistent: b.persistent,
    });
    expect!(run(&state, caller, op).await?, Drive, "drive.persist")
}

/// Query of `drive.files`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct FilesParams {
    /// Directory relative to the mount point; empty for the top level.
    #[serde(default)]
    path: String,
    /// Which mounted file system (its directory name); default the first.
    volume: Option<String>,
}

/// A directory listing of a mounted drive (symlinks are shown, never followed).
#[utoipa::path(get, path = "/api/v1/drives/{name}/files", operation_id = "drive.files", tag = "drives",
    params(("name" = String, Path, description = "drive name"), FilesParams),
    responses((status = 200, body = FileListing), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn files(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    q: Result<Query<FilesParams>, QueryRejection>,
) -> Result<Json<FileListing>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid-argument", e.body_text()))?;
    let op = Operation::DriveFiles(FilesArgs {
        name,
        path: q.path,
        volume: q.volume,
    });
    expect!(run(&state, caller, op).await?, Files, "drive.files")
}

/// Creates a blank raw or qcow2 image (never overwriting), optionally with a file system, optionally attached.
#[utoipa::path(post, path = "/api/v1/drives/create", operation_id = "drive.create", tag = "drives",
    request_body = CreateArgs,
    responses((status = 201, body = Created), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Body(args): Body<CreateArgs>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    let out = expect!(
        run(&state, caller, Operation::DriveCreate(args)).await?,
        Created,
        "drive.create"
    )?;
    Ok((StatusCode::CREATED, out))
}

/// Compares drive records with the kernel and repairs either side (also run at every start).
#[utoipa::path(post, path = "/api/v1/drives/reconcile", operation_id = "drive.reconcile", tag = "drives",
    responses((status = 200, body = ReconcileReport)))]
pub(crate) async fn reconcile(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<ReconcileReport>, ApiError> {
    expect!(
        run(&state, caller, Operation::DriveReconcile).await?,
        Reconciled,
        "drive.reconcile"
    )
}

/// Image files in the images directory, with their format and the drive they are attached as.
#[utoipa::path(get, path = "/api/v1/images", operation_id = "drive.images", tag = "drives",
    responses((status = 200, body = Vec<ImageFile>)))]
pub(crate) async fn images(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<ImageFile>>, ApiError> {
    expect!(
        run(&state, caller, Operation::DriveImages).await?,
        Images,
        "drive.images"
    )
}

/// Stores the request body (the raw file, any content type) as `<images_dir>/<name>`, streamed to disk, and
/// answers with its size and SHA-256. The name must be a plain file name not starting with `.` and not yet taken
/// (409 otherwise); bodies over `[drives] max_upload_bytes` are refused (400) and, like an interrupted upload,
/// leave no file behind.
#[utoipa::path(put, path = "/api/v1/images/{name}", operation_id = "drive.upload", tag = "drives",
    params(("name" = String, Path, description = "file name in the images directory")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "the file's bytes"),
    responses((status = 201, body = Uploaded), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub(crate) async fn upload(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> Result<(StatusCode, Json<Uploaded>), ApiError> {
    let size = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let stream = futures_util::TryStreamExt::map_err(body.into_data_stream(), std::io::Error::other);
    let mut reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream));
    let core = state.core.clone();
    let op = Operation::DriveUpload(UploadArgs { name, size });
    let out = tokio::task::spawn_blocking(move || core.execute_with_input(&caller, op, &mut reader))
        .await
        .map_err(|_| unexpected("drive.upload"))??;
    let out = expect!(out, Uploaded, "drive.upload")?;
    Ok((StatusCode::CREATED, out))
}
