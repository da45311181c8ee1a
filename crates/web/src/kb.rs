//! Knowledge base endpoints under `/api/v1/kb` (issue 17): index a source as a background job (progress as
//! `kb-index` events on `/api/v1/events`), list sources, search, ask, remove and cancel. Each handler builds one
//! `kb.*` operation and returns the core's document.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use cacheos_core::executor::Done;
use cacheos_core::kb::{KbAnswer, KbAskArgs, KbIndexArgs, KbJob, KbSearchArgs, KbSearchResult, KbSource, KbSourceRef};
use cacheos_core::{Caller, Operation, Output};
use serde::Deserialize;
use utoipa::IntoParams;

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

/// Starts indexing `docs` or an attached drive (optionally a path below it) in the background; 202 at once.
#[utoipa::path(post, path = "/api/v1/kb/sources", operation_id = "kb.index", tag = "kb",
    request_body = KbIndexArgs,
    responses((status = 202, body = KbJob), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn index(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Body(args): Body<KbIndexArgs>,
) -> Result<(StatusCode, Json<KbJob>), ApiError> {
    let out = expect!(run(&state, caller, Operation::KbIndex(args)).await?, KbJob, "kb.index")?;
    Ok((StatusCode::ACCEPTED, out))
}

/// The indexed sources with documents, passages, size, last update and state.
#[utoipa::path(get, path = "/api/v1/kb/sources", operation_id = "kb.sources", tag = "kb",
    responses((status = 200, body = Vec<KbSource>)))]
pub(crate) async fn sources(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<KbSource>>, ApiError> {
    expect!(
        run(&state, caller, Operation::KbSources).await?,
        KbSources,
        "kb.sources"
    )
}

/// Forgets a source and its passages (the files stay).
#[utoipa::path(delete, path = "/api/v1/kb/sources/{source}", operation_id = "kb.remove", tag = "kb",
    params(("source" = String, Path, description = "source name")),
    responses((status = 200, body = Done), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn remove(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(source): Path<String>,
) -> Result<Json<Done>, ApiError> {
    expect!(
        run(&state, caller, Operation::KbRemove(KbSourceRef { source })).await?,
        Done,
        "kb.remove"
    )
}

/// Stops a running indexing job.
#[utoipa::path(post, path = "/api/v1/kb/sources/{source}/cancel", operation_id = "kb.cancel", tag = "kb",
    params(("source" = String, Path, description = "source name")),
    responses((status = 200, body = Done), (status = 409, body = ErrorBody)))]
pub(crate) async fn cancel(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(source): Path<String>,
) -> Result<Json<Done>, ApiError> {
    expect!(
        run(&state, caller, Operation::KbCancel(KbSourceRef { source })).await?,
        Done,
        "kb.cancel"
    )
}

/// Query of `kb.search`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct SearchQuery {
    /// Words to look for.
    q: String,
    /// At most this many passages (1..=50, default 5).
    #[param(minimum = 1, maximum = 50)]
    limit: Option<usize>,
}

/// Ranked passages, each with its citation (file, heading or page, line range).
#[utoipa::path(get, path = "/api/v1/kb/search", operation_id = "kb.search", tag = "kb", params(SearchQuery),
    responses((status = 200, body = KbSearchResult), (status = 400, body = ErrorBody)))]
pub(crate) async fn search(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<SearchQuery>,
) -> Result<Json<KbSearchResult>, ApiError> {
    let op = Operation::KbSearch(KbSearchArgs {
        query: q.q,
        limit: q.limit,
    });
    expect!(run(&state, caller, op).await?, KbSearch, "kb.search")
}

/// An extractive answer: the best passages quoted with numbered citations, or `found: false`.
#[utoipa::path(post, path = "/api/v1/kb/ask", operation_id = "kb.ask", tag = "kb", request_body = KbAskArgs,
    responses((status = 200, body = KbAnswer), (status = 400, body = ErrorBody)))]
pub(crate) async fn ask(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Body(args): Body<KbAskArgs>,
) -> Result<Json<KbAnswer>, ApiError> {
    expect!(run(&state, caller, Operation::KbAsk(args)).await?, KbAnswer, "kb.ask")
}
