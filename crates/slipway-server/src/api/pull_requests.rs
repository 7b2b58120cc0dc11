//! The pull request routes of the API: what the comments on pull requests link to.

use slipway_store::ServiceRecord as _;

use crate::AppState;

/// The whole report of a pull request's latest plan
///
/// What the comment on the pull request shows, whole: the comment is cut where it would be
/// longer than the forge takes, with a link here.
#[utoipa::path(
    get,
    path = "/api/v1/pull-requests/{id}/report",
    operation_id = "pull_request_report",
    tag = "runs",
    security(("bearer" = [])),
    params(
        ("id" = i64, Path, description = "The pull request's id on this server, as the comment's link names it (not the forge's number)"),
    ),
    responses(
        (status = 200, description = "The report, in Markdown", body = String, content_type = "text/markdown"),
        (status = 401, response = super::Unauthorized),
        (status = 404, description = "No pull request on record has this number", body = super::views::ErrorBody),
        (status = 500, response = super::Internal),
    ),
)]
pub(crate) async fn report(
    axum::extract::State(state): axum::extract::State<AppState>,
    _caller: crate::auth::Caller,
    axum::extract::Path(id): axum::extract::Path<i64>,
) -> crate::error::ApiResult<axum::response::Response> {
    use axum::response::IntoResponse as _;
    let kept = state
        .store
        .pull_request_by_id(id)
        .await?
        .ok_or_else(|| crate::error::ApiError::not_found(format!("no pull request {id}")))?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/markdown; charset=utf-8",
        )],
        kept.report,
    )
        .into_response())
}
