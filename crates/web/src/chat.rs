//! Chat endpoints: interpretation without execution, a streamed chat reply, and session history. All of it goes
//! through the shared [`cacheos_chat::ChatService`], so sessions are the same as on D-Bus and in the CLI.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use cacheos_chat::service::HistoryEntry;
use cacheos_core::{Caller, CoreError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::AppState;

/// A chat message.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChatRequest {
    /// What the person wrote (German or English).
    text: String,
    /// Session id (1-64 letters, digits, `-`, `_`); a new one is made when absent.
    #[serde(default)]
    session: Option<String>,
}

/// An interpretation: nothing was executed.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct InterpretResponse {
    /// Session id.
    session: String,
    /// `{"kind":"operation","operation":<dotted name>,"args":<REST arguments>,"risk":..,"needs_confirmation":..,
    /// "explanation":..}`, or `{"kind":"question","text","options"}`, `{"kind":"chat","chat","reply"}`,
    /// `{"kind":"not-understood","reply","suggestions"}`.
    #[schema(value_type = Object)]
    interpretation: serde_json::Value,
}

fn check_text(text: &str) -> Result<(), ApiError> {
    if text.len() > 4000 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid-argument",
            "invalid text: longer than 4000 bytes",
        ));
    }
    Ok(())
}

/// What the chat would do with a message, without doing it and without changing the session.
#[utoipa::path(post, path = "/api/v1/chat/interpret", operation_id = "chat.interpret", tag = "chat",
    request_body = ChatRequest, responses((status = 200, body = InterpretResponse), (status = 400, body = ErrorBody)))]
pub(crate) async fn interpret(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(req): Json<ChatRequest>,
) -> Result<Json<InterpretResponse>, ApiError> {
    check_text(&req.text)?;
    let chat = state.chat.clone();
    let (session, interpretation) =
        tokio::task::spawn_blocking(move || chat.interpret(&caller.principal, req.session.as_deref(), &req.text))
            .await
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
            .map_err(|e| ApiError::from(CoreError::from(e)))?;
    Ok(Json(InterpretResponse {
        session,
        interpretation,
    }))
}

fn line(v: serde_json::Value) -> Result<Bytes, Infallible> {
    let mut s = v.to_string();
    s.push('\n');
    Ok(Bytes::from(s))
}

/// Sends a message: the reply streams as newline-delimited JSON: first `{"type":"interpretation",..}` (what will
/// be done), then, when an operation ran, `{"type":"result",..}`, then `{"type":"reply","text":..}`.
/// Destructive operations are only planned; a later "ja"/"yes" in the same session runs them.
#[utoipa::path(post, path = "/api/v1/chat", operation_id = "chat.send", tag = "chat", request_body = ChatRequest,
    responses((status = 200, description = "application/x-ndjson stream", content_type = "application/x-ndjson")))]
pub(crate) async fn chat(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(req): Json<ChatRequest>,
) -> Result<Response, ApiError> {
    check_text(&req.text)?;
    let chat = state.chat.clone();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, Infallible>>(4);
    // Validate the session before answering 200.
    let (c, p, s, t) = (
        chat.clone(),
        caller.principal.clone(),
        req.session.clone(),
        req.text.clone(),
    );
    let (session, first) = tokio::task::spawn_blocking(move || c.interpret(&p, s.as_deref(), &t))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
        .map_err(|e| ApiError::from(CoreError::from(e)))?;
    let _ = tx
        .send(line(
            serde_json::json!({"type": "interpretation", "session": session, "interpretation": first}),
        ))
        .await;
    tokio::spawn(async move {
        let r = tokio::task::spawn_blocking(move || chat.chat(&caller.principal, Some(&session), &req.text)).await;
        match r {
            Ok(Ok(reply)) => {
                if let Some(ex) = reply.executed {
                    let _ = tx
                        .send(line(serde_json::json!({"type": "result", "executed": ex})))
                        .await;
                }
                let _ = tx
                    .send(line(
                        serde_json::json!({"type": "reply", "session": reply.session, "text": reply.reply}),
                    ))
                    .await;
            }
            Ok(Err(e)) => {
                let e = CoreError::from(e);
                let _ = tx
                    .send(line(
                        serde_json::json!({"type": "error", "code": e.code(), "message": e.full_message()}),
                    ))
                    .await;
            }
            Err(e) => {
                let _ = tx
                    .send(line(
                        serde_json::json!({"type": "error", "code": "internal", "message": e.to_string()}),
                    ))
                    .await;
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response())
}

/// A session's history, oldest first.
#[utoipa::path(get, path = "/api/v1/chat/{session}/history", operation_id = "chat.history", tag = "chat",
    params(("session" = String, Path, description = "session id")), responses((status = 200, body = Object)))]
pub(crate) async fn history(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(session): Path<String>,
) -> Result<Json<Vec<HistoryEntry>>, ApiError> {
    let chat = state.chat.clone();
    tokio::task::spawn_blocking(move || chat.history(&caller.principal, &session))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
        .map(Json)
        .map_err(|e| ApiError::from(CoreError::from(e)))
}

/// Deletes a session's history.
#[utoipa::path(delete, path = "/api/v1/chat/{session}/history", operation_id = "chat.clear-history", tag = "chat",
    params(("session" = String, Path, description = "session id")), responses((status = 204)))]
pub(crate) async fn delete_history(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(session): Path<String>,
) -> Result<StatusCode, ApiError> {
    let chat = state.chat.clone();
    tokio::task::spawn_blocking(move || chat.clear_history(&caller.principal, &session))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
        .map_err(|e| ApiError::from(CoreError::from(e)))?;
    Ok(StatusCode::NO_CONTENT)
}
