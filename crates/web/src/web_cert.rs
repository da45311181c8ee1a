//! `GET /api/v1/web/cert` (issue 19): the web port's TLS certificate fingerprint, through the core like every
//! operation.

use axum::extract::State;
use axum::{Extension, Json};
use cacheos_core::web_cert::WebCert;
use cacheos_core::{Caller, Operation, Output};

use crate::api::{run, unexpected};
use crate::error::{ApiError, ErrorBody};
use crate::AppState;

/// The web port's TLS certificate: SHA-256 fingerprint (compare it with what the browser shows), where it is kept,
/// and whether plain HTTP from beyond loopback is redirected.
#[utoipa::path(get, path = "/api/v1/web/cert", operation_id = "web.cert", tag = "web",
    responses((status = 200, body = WebCert), (status = 409, body = ErrorBody)))]
pub(crate) async fn web_cert(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<WebCert>, ApiError> {
    match run(&state, caller, Operation::WebCert).await? {
        Output::WebCert(c) => Ok(Json(c)),
        _ => Err(unexpected("web.cert")),
    }
}
