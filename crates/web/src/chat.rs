//! Chat endpoints: interpretation without execution, a streamed chat reply, and session history. All of it goes
//! through the shared [`cacheos_chat::ChatService`], so sessions are the same as on D-Bus and in the CLI.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use cacheos_chat::service::{ChatEvent, HistoryEntry};
use cacheos_core::{Caller, CoreError};
use futures_util::StreamExt;
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

/// Sends a message: the reply streams as newline-delimited JSON: while a language model writes an answer or a
/// question, `{"type":"token","text":..}` pieces (a preview); then `{"type":"interpretation",..}` (what will be
/// done), then, when an operation ran, `{"type":"result",..}`, then `{"type":"reply","text":..}` (the validated
/// whole). Destructive operations are only planned; a later "ja"/"yes" in the same session runs them.
/// `POST /api/v1/models/stop` stops a model that is still writing.
#[utoipa::path(post, path = "/api/v1/chat", operation_id = "chat.send", tag = "chat", request_body = ChatRequest,
    responses((status = 200, description = "application/x-ndjson stream", content_type = "application/x-ndjson")))]
pub(crate) async fn chat(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(req): Json<ChatRequest>,
) -> Result<Response, ApiError> {
    check_text(&req.text)?;
    let chat = state.chat.clone();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Result<serde_json::Value, CoreError>>();
    // One run of the chat: its events become lines as they happen; the session is understood once (a model is
    // asked at most once per message, plus its one retry).
    tokio::task::spawn_blocking(move || {
        let events = tx.clone();
        let r = chat.chat_streaming(&caller.principal, req.session.as_deref(), &req.text, &mut |ev| {
            let _ = events.send(Ok(match ev {
                ChatEvent::Token(text) => serde_json::json!({"type": "token", "text": text}),
                ChatEvent::Interpretation {
                    session,
                    interpretation,
                } => serde_json::json!(
                    {"type": "interpretation", "session": session, "interpretation": interpretation}
                ),
            }));
        });
        match r {
            Ok(reply) => {
                if let Some(ex) = reply.executed {
                    let _ = tx.send(Ok(serde_json::json!({"type": "result", "executed": ex})));
                }
                let _ = tx.send(Ok(
                    serde_json::json!({"type": "reply", "session": reply.session, "text": reply.reply}),
                ));
            }
            Err(e) => {
                let _ = tx.send(Err(CoreError::from(e)));
            }
        }
    });
    // An error before the first line (a bad or foreign session) is an HTTP error; later ones are lines.
    let first = match rx.recv().await {
        Some(Ok(v)) => v,
        Some(Err(e)) => return Err(ApiError::from(e)),
        None => {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the chat ended without a reply",
            ))
        }
    };
    let rest = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|x| {
            let v = x.unwrap_or_else(
                |e| serde_json::json!({"type": "error", "code": e.code(), "message": e.full_message()}),
            );
            (line(v), rx)
        })
    });
    let stream = futures_util::stream::once(async move { line(first) }).chain(rest);
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response())
}

/// A session's history, oldest first.
#[utoipa::path(get, path = "/api/v1/chat/{session}/history", operation_id = "chat.history", tag = "chat",
    params(("session" = String, Path, description = "session id")), responses((status = 200, body = [Object])))]
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
