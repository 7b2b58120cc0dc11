//! The webhook endpoints. Each delivery is verified over its raw body before anything else,
//! then read, then kept in the record (the durable queue), and only then answered `202`:
//! a delivery that could not be kept gets `503`, so the forge delivers it again.
//!
//! | answer | when |
//! | --- | --- |
//! | 202 `queued` | kept; a run will start from it |
//! | 202 `ignored` | kept with the reason (repository not allowed, fork, deletion, ping...) |
//! | 202 `duplicate` | this delivery, or this commit of this repository, was kept before |
//! | 400 | verified, but not the payload its event promises, or no delivery id |
//! | 401 | not signed, wrongly signed, or no secret configured: nothing is read or kept |
//! | 413 | larger than [`crate::MAX_BODY`] |
//! | 503 | the record could not keep it |

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use slipway_store::{DeliveryStatus, Intake, NewDelivery, Store as _};

use crate::AppState;
use crate::webhook::{self, Delivered, PayloadError, Refusal};

/// `POST /webhooks/github`.
pub(crate) async fn github(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let signature = header(&headers, "x-hub-signature-256");
    if let Err(refusal) =
        webhook::verify_github(state.config.github_secret.as_ref(), signature, &body)
    {
        state.metrics.webhook("github", "refused");
        return refused("github", &refusal);
    }
    let event = header(&headers, "x-github-event").unwrap_or_default();
    let Some(id) = header(&headers, "x-github-delivery") else {
        return bad_request("github", "the delivery has no X-GitHub-Delivery id");
    };
    match webhook::parse_github(event, &body) {
        Ok(delivered) => keep(&state, "github", id, delivered).await,
        Err(error) => unreadable("github", &error),
    }
}

/// `POST /webhooks/gitlab`.
pub(crate) async fn gitlab(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let token = header(&headers, "x-gitlab-token");
    if let Err(refusal) = webhook::verify_gitlab(state.config.gitlab_token.as_ref(), token) {
        state.metrics.webhook("gitlab", "refused");
        return refused("gitlab", &refusal);
    }
    let event = header(&headers, "x-gitlab-event").unwrap_or_default();
    let Some(id) = header(&headers, "x-gitlab-event-uuid") else {
        return bad_request("gitlab", "the delivery has no X-Gitlab-Event-UUID id");
    };
    match webhook::parse_gitlab(event, &body) {
        Ok(delivered) => keep(&state, "gitlab", id, delivered).await,
        Err(error) => unreadable("gitlab", &error),
    }
}

/// Decides what to do with a verified delivery and keeps it.
async fn keep(state: &AppState, provider: &str, id: &str, delivered: Delivered) -> Response {
    let config = &state.config;
    let new = match delivered {
        Delivered::Announced(announced) => {
            let delivered_ref = format!("refs/heads/{}", config.branch);
            let reason = if !config
                .allowed_repositories
                .iter()
                .any(|allowed| allowed == &announced.repository)
            {
                Some(format!(
                    "`{}` is not on this server's list of repositories",
                    announced.repository
                ))
            } else if announced.pull.as_ref().is_some_and(|p| p.from_fork) && !config.allow_forks {
                Some("a pull request from a fork (forks are not allowed)".to_owned())
            } else if announced.pull.is_none() && announced.git_ref != delivered_ref {
                Some(format!(
                    "a push to `{}`; this server delivers `{}`",
                    announced.git_ref, config.branch
                ))
            } else {
                None
            };
            NewDelivery {
                id: format!("{provider}:{id}"),
                provider: provider.to_owned(),
                kind: match &announced.pull {
                    Some(pull) if pull.closed => "pull_request_closed",
                    Some(_) => "pull_request",
                    None => "push",
                }
                .to_owned(),
                repository: announced.repository,
                git_ref: announced.git_ref,
                commit: announced.commit,
                pull_number: announced.pull.as_ref().map(|p| p.number),
                base_ref: announced.pull.as_ref().and_then(|p| p.base.clone()),
                status: if reason.is_some() {
                    DeliveryStatus::Ignored
                } else {
                    DeliveryStatus::Queued
                },
                reason,
                actor: announced.actor,
            }
        }
        Delivered::Ignored { repository, reason } => NewDelivery {
            id: format!("{provider}:{id}"),
            provider: provider.to_owned(),
            kind: "other".to_owned(),
            repository,
            git_ref: String::new(),
            commit: String::new(),
            pull_number: None,
            status: DeliveryStatus::Ignored,
            reason: Some(reason),
            actor: String::new(),
            base_ref: None,
        },
    };
    match state.store.record_delivery(&new).await {
        Ok(Intake::Kept(delivery)) => {
            state.metrics.webhook(provider, delivery.status.as_str());
            if delivery.status == DeliveryStatus::Queued {
                state.queued.notify_one();
            }
            tracing::info!(
                delivery = %delivery.id,
                repository = %delivery.repository,
                commit = %delivery.commit,
                status = %delivery.status.as_str(),
                reason = delivery.reason.as_deref().unwrap_or(""),
                "webhook delivery kept"
            );
            (
                StatusCode::ACCEPTED,
                Json(json!({
                    "delivery": delivery.id,
                    "status": delivery.status,
                    "reason": delivery.reason,
                })),
            )
                .into_response()
        }
        Ok(Intake::Duplicate { of }) => {
            state.metrics.webhook(provider, "duplicate");
            tracing::info!(delivery = %new.id, of = %of, "webhook delivery is a duplicate");
            (
                StatusCode::ACCEPTED,
                Json(json!({ "delivery": new.id, "status": "duplicate", "of": of })),
            )
                .into_response()
        }
        Err(error) => {
            state.metrics.webhook(provider, "not_kept");
            tracing::error!(delivery = %new.id, error = %error, "webhook delivery not kept");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "error": "the delivery could not be kept; deliver it again" })),
            )
                .into_response()
        }
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn refused(provider: &str, refusal: &Refusal) -> Response {
    tracing::warn!(provider, refusal = %refusal, "webhook delivery refused");
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({ "error": refusal.to_string() })),
    )
        .into_response()
}

fn unreadable(provider: &str, error: &PayloadError) -> Response {
    bad_request(provider, &error.to_string())
}

fn bad_request(provider: &str, message: &str) -> Response {
    tracing::warn!(provider, message, "webhook delivery unreadable");
    (StatusCode::BAD_REQUEST, Json(json!({ "error": message }))).into_response()
}
