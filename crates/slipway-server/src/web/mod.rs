//! The web pages of `slipway serve` (docs/web.md): the release matrix, runs with their
//! approvals, the stack graph, drills, drift, the audit log and the DORA metrics, for people
//! who sign in with a name and password (`slipway user add`).
//!
//! - `session`: passwords, sessions and their cookie; a signed-in person acts as the same
//!   [`crate::auth::Caller`] an API token yields, so roles and four eyes are decided by the
//!   API's own code;
//! - `csrf`: the token every form carries and every POST is checked for;
//! - `pages`: the handlers, each reading through the JSON API's own functions (no query of
//!   their own) and rendering HTML;
//! - `svg`: charts and the stack graph as SVG, drawn on the server.
//!
//! Templates (`templates/`, minijinja, HTML auto-escaping on) and assets (`assets/`: one CSS
//! file, one small script for live updates) are compiled into the binary. Every page works
//! without JavaScript. Pages answer with a Content-Security-Policy that allows this server's
//! own script and style only.

use std::sync::OnceLock;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use minijinja::Environment;

use crate::AppState;
use crate::error::ApiError;

mod csrf;
mod pages;
mod session;
mod svg;
pub(crate) mod throttle;

pub use session::{hash_password, verify_password};

/// The pages' routes (outside `/api/v1`).
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::matrix))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/runs", get(pages::runs))
        .route("/runs/{run}", get(pages::run))
        .route("/runs/{run}/events", get(pages::run_events))
        .route("/runs/{run}/approve", post(pages::approve))
        .route("/runs/{run}/reject", post(pages::reject))
        .route("/runs/{run}/stack-runs/{stack_run}/log", get(pages::log))
        .route("/graph", get(pages::graph))
        .route("/drills", get(pages::drills))
        .route("/drift", get(pages::drift))
        .route("/audit", get(pages::audit))
        .route("/dora", get(pages::dora))
        .route("/advise", get(pages::advise))
        .route("/assets/style.css", get(style))
        .route("/assets/live.js", get(script))
        .layer(axum::middleware::map_response(page_headers))
}

const STYLE: &str = include_str!("assets/style.css");
const SCRIPT: &str = include_str!("assets/live.js");

async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// What every answer of the pages carries: the server's own script and style only, never
/// in a frame, never cached when it is a page.
async fn page_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// The templates, parsed once.
fn templates() -> &'static Environment<'static> {
    static TEMPLATES: OnceLock<Environment<'static>> = OnceLock::new();
    TEMPLATES.get_or_init(|| {
        let mut env = Environment::new();
        // `.html` names turn HTML auto-escaping on.
        for (name, source) in [
            ("base.html", include_str!("templates/base.html")),
            ("login.html", include_str!("templates/login.html")),
            ("error.html", include_str!("templates/error.html")),
            ("matrix.html", include_str!("templates/matrix.html")),
            ("runs.html", include_str!("templates/runs.html")),
            ("run.html", include_str!("templates/run.html")),
            ("graph.html", include_str!("templates/graph.html")),
            ("drills.html", include_str!("templates/drills.html")),
            ("drift.html", include_str!("templates/drift.html")),
            ("audit.html", include_str!("templates/audit.html")),
            ("dora.html", include_str!("templates/dora.html")),
            ("advise.html", include_str!("templates/advise.html")),
        ] {
            env.add_template(name, source)
                .expect("the templates compiled into the binary parse");
        }
        env.add_filter("age", pages::age);
        env.add_filter("short", pages::short);
        env.add_filter("millis", pages::millis);
        env
    })
}

/// Renders a page.
fn render(name: &str, context: minijinja::Value) -> Result<Response, WebError> {
    render_with(StatusCode::OK, name, context)
}

fn render_with(
    status: StatusCode,
    name: &str,
    context: minijinja::Value,
) -> Result<Response, WebError> {
    let html = templates()
        .get_template(name)
        .and_then(|t| t.render(context))
        .map_err(|error| WebError::internal(format!("rendering {name}: {error:#}")))?;
    Ok((status, Html(html)).into_response())
}

/// A page request that did not succeed: an error page with the API's words for the person,
/// or a way to the login form.
#[derive(Debug)]
pub(crate) enum WebError {
    /// Not signed in: to the login form, coming back to `next` afterwards.
    Login { next: String },
    /// Refused or failed, as the API would have answered it.
    Page(ApiError),
}

impl WebError {
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self::Page(ApiError::internal(cause))
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::Page(ApiError::forbidden(message))
    }
}

impl From<ApiError> for WebError {
    fn from(error: ApiError) -> Self {
        Self::Page(error)
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        match self {
            Self::Login { next } => {
                let to = format!("/login?next={}", pages::encode_query(&next));
                Redirect::to(&to).into_response()
            }
            Self::Page(error) => {
                if let Some(internal) = &error.internal {
                    tracing::error!(status = %error.status, cause = %internal, "page failed");
                } else {
                    tracing::info!(status = %error.status, message = %error.message, "page refused");
                }
                let context = minijinja::context! {
                    title => error.status.canonical_reason().unwrap_or("Error"),
                    status => error.status.as_u16(),
                    message => error.message,
                };
                match render_with(error.status, "error.html", context) {
                    Ok(response) => response,
                    Err(_) => (error.status, "error").into_response(),
                }
            }
        }
    }
}
