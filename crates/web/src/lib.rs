//! The web port: REST under `/api/v1`, `/healthz`, the generated OpenAPI document, server-sent events, browser
//! sessions (login, CSRF) and the embedded web UI.
//!
//! Handlers are thin: parse, call [`cacheos_core::Core::execute`] on a blocking thread, map the result.
//! [`router`] builds everything without a socket so tests drive it with `tower::ServiceExt::oneshot`.

mod api;
mod auth;
mod chat;
mod diagnose;
mod drives;
mod error;
mod kb;
mod license;
pub mod metrics;
mod models;
mod sandboxes;
mod session;
mod software;
mod ui;
// issue 19 (trust)
pub mod tls;
mod web_cert;

use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use cacheos_chat::ChatService;
use cacheos_core::Core;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

pub use auth::{AuthGate, WebAccess};
pub use error::ApiError;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    core: Arc<Core>,
    chat: Arc<ChatService>,
    gate: Arc<AuthGate>,
}

/// The complete router. Serve it with `into_make_service_with_connect_info::<SocketAddr>()`: access control needs
/// the peer address.
pub fn router(core: Arc<Core>, chat: Arc<ChatService>, access: WebAccess) -> Router {
    let state = AppState {
        core,
        chat,
        gate: Arc::new(AuthGate::new(access)),
    };
    let (api, doc) = api_router().split_for_parts();
    let (sessions, sessions_doc) = session_router().split_for_parts();
    let doc = Arc::new(documented(doc, sessions_doc));
    let protected = api
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { axum::Json(doc.as_ref().clone()) }
            }),
        )
        // issue 16 (diagnose): the Prometheus exposition, behind the same access rules.
        .route("/metrics", get(metrics::scrape))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_access,
        ))
        .layer(axum::middleware::map_response(error::json_rejections));
    let sessions = sessions.layer(axum::middleware::map_response(error::json_rejections));
    ui::prepare();
    let mut pages = Router::new();
    for page in ui::PAGES {
        pages = pages.route(page, get(ui::shell));
    }
    Router::new()
        .route("/healthz", get(api::healthz))
        .merge(sessions)
        .route("/ui/{file}", get(ui::asset))
        .merge(pages)
        .merge(protected)
        .fallback(api::not_found)
        .layer(axum::middleware::map_response(ui::security_headers))
        .with_state(state)
}

/// The OpenAPI document, generated from the handlers and the core's types.
pub fn openapi() -> utoipa::openapi::OpenApi {
    documented(api_router().split_for_parts().1, session_router().split_for_parts().1)
}

/// The API's and the session endpoints' documents as one, with the answers given before a handler runs.
fn documented(mut api: utoipa::openapi::OpenApi, mut sessions: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    document_access_errors(&mut api, true);
    document_access_errors(&mut sessions, false);
    api.merge(sessions);
    api
}

/// The answers every protected operation can give before its handler runs, documented once for all (issue 19:
/// schemathesis found them undocumented): 401 without a valid token, 429 after too many failed attempts, 403 for
/// a changing request from a foreign origin; 400 when the query string or body does not parse, 404/409 from the
/// core for operations that name something, 415 for a body of the wrong content type, 422 for JSON of the wrong
/// shape. Each has the JSON error body. The session operations authenticate themselves
/// (`protected` false): only the parse errors are added there.
fn document_access_errors(doc: &mut utoipa::openapi::OpenApi, protected: bool) {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    let error = |what: &str| {
        ResponseBuilder::new()
            .description(what)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build()
    };
    for item in doc.paths.paths.values_mut() {
        let ops = [
            (&mut item.get, false),
            (&mut item.delete, true),
            (&mut item.post, true),
            (&mut item.put, true),
            (&mut item.patch, true),
        ];
        for (op, changes) in ops {
            let Some(op) = op.as_mut() else { continue };
            let responses = &mut op.responses.responses;
            let mut add = |code: &str, what: &str| {
                responses.entry(code.to_owned()).or_insert_with(|| error(what).into());
            };
            if protected {
                add(
                    "401",
                    "no valid token (a client beyond loopback, or loopback not trusted)",
                );
                add("429", "too many failed authentication attempts from this address");
            }
            if changes && protected {
                add("403", "a changing request from a foreign origin");
            }
            let has_input = op.parameters.as_ref().is_some_and(|p| !p.is_empty()) || op.request_body.is_some();
            if has_input {
                add(
                    "400",
                    "the query string, path or body does not parse, or an argument is invalid",
                );
            }
            if has_input && protected {
                // Every core operation may name a missing thing or a state that forbids it.
                add("404", "a named thing does not exist");
                add("409", "the current state does not allow it");
            }
            if op.request_body.is_some() {
                add("415", "the body is not of the documented content type");
                add("422", "the body is JSON of the wrong shape");
            }
        }
    }
}

/// Login, logout and session state: outside the access middleware (they authenticate themselves).
fn session_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(utoipa_axum::routes!(session::get, session::login, session::logout))
}

fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(api::ApiDoc::openapi())
        .routes(utoipa_axum::routes!(api::system_status))
        .routes(utoipa_axum::routes!(api::system_history))
        .routes(utoipa_axum::routes!(api::supervisor_status))
        .routes(utoipa_axum::routes!(api::supervisor_kill_task))
        .routes(utoipa_axum::routes!(api::audit_query))
        .routes(utoipa_axum::routes!(api::web_token))
        .routes(utoipa_axum::routes!(api::operations))
        .routes(utoipa_axum::routes!(api::events))
        .routes(utoipa_axum::routes!(chat::interpret))
        .routes(utoipa_axum::routes!(chat::chat))
        .routes(utoipa_axum::routes!(chat::history, chat::delete_history))
        .routes(utoipa_axum::routes!(drives::list, drives::attach))
        .routes(utoipa_axum::routes!(drives::info))
        .routes(utoipa_axum::routes!(drives::detach))
        .routes(utoipa_axum::routes!(drives::snapshot))
        .routes(utoipa_axum::routes!(drives::discard))
        .routes(utoipa_axum::routes!(drives::commit))
        .routes(utoipa_axum::routes!(drives::persist))
        .routes(utoipa_axum::routes!(drives::files))
        .routes(utoipa_axum::routes!(drives::create))
        .routes(utoipa_axum::routes!(drives::reconcile))
        .routes(utoipa_axum::routes!(drives::images))
        // The upload streams to disk with its own limit ([drives] max_upload_bytes, enforced by the core).
        .routes(utoipa_axum::router::UtoipaMethodRouterExt::layer(
            utoipa_axum::routes!(drives::upload),
            axum::extract::DefaultBodyLimit::disable(),
        ))
        .routes(utoipa_axum::routes!(sandboxes::list, sandboxes::create))
        .routes(utoipa_axum::routes!(sandboxes::info, sandboxes::remove))
        .routes(utoipa_axum::routes!(sandboxes::start))
        .routes(utoipa_axum::routes!(sandboxes::stop))
        .routes(utoipa_axum::routes!(sandboxes::restart))
        .routes(utoipa_axum::routes!(sandboxes::exec))
        .routes(utoipa_axum::routes!(sandboxes::run_ephemeral))
        .routes(utoipa_axum::routes!(sandboxes::logs))
        .routes(utoipa_axum::router::UtoipaMethodRouterExt::layer(
            utoipa_axum::routes!(sandboxes::copy_in, sandboxes::copy_out),
            axum::extract::DefaultBodyLimit::disable(),
        ))
        .routes(utoipa_axum::routes!(sandboxes::templates))
        .routes(utoipa_axum::routes!(sandboxes::reconcile))
        // issue 17 (kb)
        .routes(utoipa_axum::routes!(kb::index, kb::sources))
        .routes(utoipa_axum::routes!(kb::remove))
        .routes(utoipa_axum::routes!(kb::cancel))
        .routes(utoipa_axum::routes!(kb::search))
        .routes(utoipa_axum::routes!(kb::ask))
        // issue 18 (licences)
        .routes(utoipa_axum::routes!(license::scan))
        .routes(utoipa_axum::routes!(license::cancel))
        .routes(utoipa_axum::routes!(license::sbom))
        .routes(utoipa_axum::routes!(license::notice))
        .routes(utoipa_axum::routes!(license::proof_create))
        .routes(utoipa_axum::routes!(license::proof_verify))
        .routes(utoipa_axum::routes!(license::disclosure))
        // issue 16 (diagnose)
        .routes(utoipa_axum::routes!(diagnose::diagnose))
        .routes(utoipa_axum::routes!(diagnose::journal))
        .routes(utoipa_axum::routes!(diagnose::services))
        .routes(utoipa_axum::routes!(diagnose::restart))
        // issue 15 (software)
        .routes(utoipa_axum::routes!(software::search))
        .routes(utoipa_axum::routes!(software::plan))
        .routes(utoipa_axum::routes!(software::install))
        .routes(utoipa_axum::routes!(software::job))
        .routes(utoipa_axum::routes!(software::cancel))
        .routes(utoipa_axum::routes!(software::list))
        .routes(utoipa_axum::routes!(software::remove))
        .routes(utoipa_axum::routes!(software::expose, software::unexpose))
        .routes(utoipa_axum::routes!(software::service))
        // issue 14 (models)
        .routes(utoipa_axum::routes!(models::list))
        .routes(utoipa_axum::routes!(models::use_model))
        .routes(utoipa_axum::routes!(models::status))
        .routes(utoipa_axum::routes!(models::unload))
        .routes(utoipa_axum::routes!(models::test))
        .routes(utoipa_axum::routes!(models::stop))
        .routes(utoipa_axum::routes!(models::privacy))
        // issue 19 (trust)
        .routes(utoipa_axum::routes!(web_cert::web_cert))
}

#[cfg(test)]
mod diagnose_tests;
#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod sandbox_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tls_tests;
#[cfg(test)]
mod upload_tests;
