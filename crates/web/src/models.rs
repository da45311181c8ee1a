//! Language-model endpoints (issue 14): `model.list|use|status|unload|test`, stopping a running generation, and
//! `privacy.channels`. Each handler builds one operation and returns the core's document; an API key given to
//! `model.use` is kept by the daemon (mode 0600) and never returned.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use cacheos_core::model::{ModelList, ModelStatus, ModelTestResult, ModelUseArgs, PrivacyReport};
use cacheos_core::{Caller, Operation, Output};

use crate::api::{run, unexpected};
use crate::drives::Body;
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

/// The backends, the GGUF files found (in /var/lib/cacheos/models and on attached drives) and the active model.
#[utoipa::path(get, path = "/api/v1/models", operation_id = "model.list", tag = "models",
    responses((status = 200, body = ModelList)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<ModelList>, ApiError> {
    expect!(
        run(&state, caller, Operation::ModelList).await?,
        ModelList,
        "model.list"
    )
}

/// Uses a GGUF file (`path`, or `drive` with `file`) or an OpenAI-compatible endpoint (`url`, `model`, `api_key`).
#[utoipa::path(post, path = "/api/v1/models/use", operation_id = "model.use", tag = "models",
    request_body = ModelUseArgs,
    responses((status = 200, body = ModelStatus), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn use_model(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Body(args): Body<ModelUseArgs>,
) -> Result<Json<ModelStatus>, ApiError> {
    expect!(
        run(&state, caller, Operation::ModelUse(args)).await?,
        ModelStatus,
        "model.use"
    )
}

/// The active model: loaded, memory, last tokens/s, whether questions leave the appliance.
#[utoipa::path(get, path = "/api/v1/models/status", operation_id = "model.status", tag = "models",
    responses((status = 200, body = ModelStatus)))]
pub(crate) async fn status(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<ModelStatus>, ApiError> {
    expect!(
        run(&state, caller, Operation::ModelStatus).await?,
        ModelStatus,
        "model.status"
    )
}

/// Switches the model off and forgets the API key.
#[utoipa::path(post, path = "/api/v1/models/unload", operation_id = "model.unload", tag = "models",
    responses((status = 200, body = ModelStatus)))]
pub(crate) async fn unload(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<ModelStatus>, ApiError> {
    expect!(
        run(&state, caller, Operation::ModelUnload).await?,
        ModelStatus,
        "model.unload"
    )
}

/// A fixed prompt: time to first token and tokens/s.
#[utoipa::path(post, path = "/api/v1/models/test", operation_id = "model.test", tag = "models",
    responses((status = 200, body = ModelTestResult), (status = 409, body = ErrorBody)))]
pub(crate) async fn test(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<ModelTestResult>, ApiError> {
    expect!(
        run(&state, caller, Operation::ModelTest).await?,
        ModelTest,
        "model.test"
    )
}

/// Stops the generations running now (the chat's Stop button); a chat waiting for one answers that it was stopped.
#[utoipa::path(post, path = "/api/v1/models/stop", operation_id = "model.stop-generation", tag = "models",
    responses((status = 204)))]
pub(crate) async fn stop(State(state): State<AppState>, Extension(_caller): Extension<Caller>) -> StatusCode {
    state.chat.stop_model();
    StatusCode::NO_CONTENT
}

/// Every part of CacheOS that can send data off the appliance, with its state and the operation that switches it.
#[utoipa::path(get, path = "/api/v1/privacy/channels", operation_id = "privacy.channels", tag = "models",
    responses((status = 200, body = PrivacyReport)))]
pub(crate) async fn privacy(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<PrivacyReport>, ApiError> {
    expect!(
        run(&state, caller, Operation::PrivacyChannels).await?,
        Privacy,
        "privacy.channels"
    )
}
