//! The API's errors. Each carries a message for the client and, apart, what the server's
//! log needs to find the cause: a client never sees a database error or a path, and the log
//! never has to guess what the client was told. The client's part is the body every
//! unsuccessful answer has, [`ErrorBody`]: `{"error": "..."}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::api::views::ErrorBody;

/// An API request that did not succeed.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    /// What the client is told.
    pub message: String,
    /// What the log says, when it differs.
    pub internal: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            internal: None,
        }
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, what)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "a valid API token is required: `Authorization: Bearer TOKEN` (`slipway token create`)",
        )
    }

    /// A failure of the server's own: the client learns that much, the log the cause.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: "the server could not do that; its log says why".to_owned(),
            internal: Some(format!("{cause:#}")),
        }
    }

    /// A refusal from the runner (a run not awaiting approval, a stage that does not
    /// exist...), whose words are meant for the person asking.
    pub fn conflict(cause: &anyhow::Error) -> Self {
        Self {
            status: StatusCode::CONFLICT,
            message: format!("{cause:#}"),
            internal: None,
        }
    }
}

impl From<slipway_store::StoreError> for ApiError {
    fn from(error: slipway_store::StoreError) -> Self {
        Self::internal(error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Some(internal) = &self.internal {
            tracing::error!(status = %self.status, message = %self.message, cause = %internal, "API request failed");
        } else {
            tracing::info!(status = %self.status, message = %self.message, "API request refused");
        }
        (
            self.status,
            Json(ErrorBody {
                error: self.message,
            }),
        )
            .into_response()
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;
