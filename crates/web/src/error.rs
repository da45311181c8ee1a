//! JSON errors with a stable code; the one exhaustive mapping from core errors to HTTP statuses.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cacheos_core::diagnose::DiagnoseError;
use cacheos_core::CoreError;
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// A stable code and a message naming what was wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code (`invalid-argument`, `permission-denied`, `not-found`, `unauthenticated`, ...).
    pub code: String,
    /// Human-readable message.
    pub message: String,
}

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    /// An error with an explicit status and code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 429 with `Retry-After`.
    pub fn too_many(seconds: u64) -> Self {
        Self {
            retry_after: Some(seconds),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-attempts",
                format!("too many failed authentication attempts; retry in {seconds} s"),
            )
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        let status = match &e {
            CoreError::InvalidArgument { .. } => StatusCode::BAD_REQUEST,
            CoreError::PermissionDenied { .. } => StatusCode::FORBIDDEN,
            CoreError::NotFound { .. } => StatusCode::NOT_FOUND,
            CoreError::FailedPrecondition(_) | CoreError::AlreadyExists(_) | CoreError::Busy(_) => StatusCode::CONFLICT,
            CoreError::Store(_) | CoreError::Probe(_) | CoreError::Drive(_) | CoreError::Sandbox(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            CoreError::Kb(_) => StatusCode::INTERNAL_SERVER_ERROR,
            // issue 16 (diagnose)
            CoreError::Diagnose(DiagnoseError::UnknownUnit { .. }) => StatusCode::NOT_FOUND,
            CoreError::Diagnose(DiagnoseError::NoSystemd) => StatusCode::CONFLICT,
            CoreError::Diagnose(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, e.code(), e.full_message())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.into(),
                message: self.message,
            },
        };
        let mut resp = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"cacheos\""),
            );
        }
        if let Some(s) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}
