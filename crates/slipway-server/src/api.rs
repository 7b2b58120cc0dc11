//! The JSON API under `/api/v1` (docs/server.md lists every route). Every route needs a
//! token; reading needs the viewer role, queueing a run the deployer role, approving and
//! rejecting the approver role at that stage, managing tokens the admin role. Each action,
//! allowed or refused, is in the audit log.
//!
//! Responses are views made here rather than the record's rows: they leave out what a
//! client has no use for and must not see (paths on the server, process ids, token hashes).

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use slipway_runner::pipeline::stages;
use slipway_runner::project::Workspace;
use slipway_store::{
    AuditAction, JobKind, JobStatus, NewAuditEntry, NewJob, NewToken, Role, ServiceRecord as _,
    Store as _, VerificationRecord as _,
};

use crate::AppState;
use crate::auth::{self, Caller};
use crate::error::{ApiError, ApiResult};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/project", get(project))
        .route("/releases", get(releases))
        .route("/runs", get(runs).post(queue_run))
        .route("/runs/{run}", get(run))
        .route("/runs/{run}/events", get(events))
        .route("/runs/{run}/approve", post(approve))
        .route("/runs/{run}/reject", post(reject))
        .route("/runs/{run}/stack-runs/{stack_run}/log", get(log))
        .route("/queue", get(queue))
        .route("/audit", get(audit))
        .route("/drills", get(drills))
        .route("/drift", get(drift))
        .route("/tokens", get(tokens).post(create_token))
        .route("/tokens/{id}", delete(revoke_token))
}

/// The project as the server's working copy last held it.
fn workspace(state: &AppState) -> ApiResult<std::sync::Arc<Workspace>> {
    state
        .project
        .read()
        .ok()
        .and_then(|p| p.clone())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the server has no project loaded; its log says why",
            )
        })
}

/// The repository jobs queued through the API belong to: the one webhooks name (so that
/// runs from either supersede each other), else the project's name.
fn repository(state: &AppState) -> String {
    if let Some(first) = state.config.allowed_repositories.first() {
        return first.clone();
    }
    workspace(state)
        .map(|w| w.project.name.clone())
        .unwrap_or_else(|_| "project".to_owned())
}

/// `GET /project`: stages, stacks and the graph between them.
async fn project(State(state): State<AppState>, _caller: Caller) -> ApiResult<Json<Value>> {
    let workspace = workspace(&state)?;
    let project = &workspace.project;
    Ok(Json(json!({
        "name": project.name,
        "branch": state.config.branch,
        "stages": project.stages.iter().map(|s| json!({
            "name": s.name,
            "approval": s.approval,
            "four_eyes": s.four_eyes,
        })).collect::<Vec<_>>(),
        "stacks": project.stacks.iter().map(|s| json!({
            "name": s.name,
            "dir": s.dir,
            "team": s.team,
            "depends_on": s.dependencies.iter().map(|d| &d.stack).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })))
}

/// `GET /releases`: which artifact of each stack each stage runs.
async fn releases(State(state): State<AppState>, _caller: Caller) -> ApiResult<Json<Value>> {
    let stages: Vec<String> = match workspace(&state) {
        Ok(w) => w.project.stages.iter().map(|s| s.name.clone()).collect(),
        Err(_) => Vec::new(),
    };
    let mut matrix: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
    for release in state.store.current_releases().await? {
        matrix.entry(release.stack.clone()).or_default().insert(
            release.stage.clone(),
            json!({
                "artifact": release.artifact_id,
                "commit": release.commit,
                "released_at": release.released_at,
                "released_by": release.released_by,
                "run": release.run_id,
            }),
        );
    }
    let stacks: Vec<Value> = matrix
        .into_iter()
        .map(|(stack, by_stage)| {
            let artifacts: std::collections::BTreeSet<&str> = by_stage
                .values()
                .filter_map(|r| r["artifact"].as_str())
                .collect();
            json!({
                "stack": stack,
                "stages_differ": artifacts.len() > 1,
                "releases": by_stage,
            })
        })
        .collect();
    Ok(Json(json!({ "stages": stages, "stacks": stacks })))
}

#[derive(Debug, Deserialize)]
struct Limit {
    limit: Option<u32>,
}

/// `GET /runs`: the latest runs, newest first.
async fn runs(
    State(state): State<AppState>,
    _caller: Caller,
    Query(limit): Query<Limit>,
) -> ApiResult<Json<Value>> {
    let runs = state
        .store
        .recent_runs(limit.limit.unwrap_or(50).min(1000))
        .await?;
    Ok(Json(json!(runs)))
}

/// `GET /runs/{run}`: a run with its stage runs, stack runs and approvals.
async fn run(
    State(state): State<AppState>,
    _caller: Caller,
    Path(run_id): Path<i64>,
) -> ApiResult<Json<Value>> {
    let store = &state.store;
    let run = store
        .run(run_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("run {run_id} is not on record")))?;
    let stack_runs = store.stack_runs(run_id).await?;
    let stages: Vec<Value> = store
        .stage_runs(run_id)
        .await?
        .into_iter()
        .map(|stage| {
            let stacks: Vec<Value> = stack_runs
                .iter()
                .filter(|r| r.stage == stage.stage)
                .map(|r| {
                    let plan: Value = r
                        .plan_summary
                        .as_deref()
                        .and_then(|p| serde_json::from_str(p).ok())
                        .unwrap_or(Value::Null);
                    json!({
                        "id": r.id,
                        "stack": r.stack,
                        "instance": r.instance,
                        "artifact": r.artifact_id,
                        "status": r.status,
                        "started_at": r.started_at,
                        "finished_at": r.finished_at,
                        "plan": plan_view(&plan),
                        "failure_reason": r.failure_reason,
                        "has_log": r.log_path.is_some(),
                    })
                })
                .collect();
            json!({
                "stage": stage.stage,
                "status": stage.status,
                "started_at": stage.started_at,
                "finished_at": stage.finished_at,
                "stacks": stacks,
            })
        })
        .collect();
    let approvals = store.approvals(run_id).await?;
    Ok(Json(json!({
        "run": run,
        "stages": stages,
        "approvals": approvals,
    })))
}

/// What a client sees of a saved plan's summary: the counts, the hash an approval names,
/// the blast radius; never where the plan file lies on the server.
fn plan_view(plan: &Value) -> Value {
    match plan {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "plan_file" | "plan_key" | "path" | "key"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[derive(Debug, Deserialize)]
struct After {
    after: Option<i64>,
}

/// `GET /runs/{run}/events`: the run's recorded events as JSON, or, when the client accepts
/// `text/event-stream`, as server-sent events that follow the run live.
async fn events(
    State(state): State<AppState>,
    _caller: Caller,
    Path(run_id): Path<i64>,
    Query(after): Query<After>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    if state.store.run(run_id).await?.is_none() {
        return Err(ApiError::not_found(format!(
            "run {run_id} is not on record"
        )));
    }
    let last_seen = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    let after = last_seen.or(after.after).unwrap_or(0);
    let streaming = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    if streaming {
        return Ok(crate::live::follow(state, run_id, after).into_response());
    }
    let events = state.store.run_events(run_id, after, 10_000).await?;
    Ok(Json(json!(events)).into_response())
}

#[derive(Debug, Deserialize)]
struct Decision {
    stage: String,
    reason: String,
}

/// `POST /runs/{run}/approve`: approves a stage's saved plans and queues the resume.
async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    Path(run_id): Path<i64>,
    Json(decision): Json<Decision>,
) -> ApiResult<Response> {
    let what = "approving a stage's plans";
    let workspace = decided_stage(&state, &caller, run_id, &decision, what).await?;
    let stage = workspace
        .project
        .stage(&decision.stage)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("no stage `{}`", decision.stage)))?;
    let run = state
        .store
        .run(run_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("run {run_id} is not on record")))?;
    if stage.four_eyes {
        if let Some(why) = same_person(&workspace, &caller, &run) {
            let why = format!(
                "stage {} needs four eyes: {why}; another approver must approve it",
                stage.name
            );
            return Err(
                auth::refuse(&state, &caller, what, Some(&stage.name), Some(run_id), why).await,
            );
        }
    }
    let approval = stages::approve(&workspace, run_id, &decision.stage, &decision.reason)
        .await
        .map_err(|e| ApiError::conflict(&e))?;
    let job = state
        .store
        .enqueue_job(&NewJob {
            kind: JobKind::Resume,
            repository: repository(&state),
            git_ref: format!("refs/heads/{}", state.config.branch),
            commit: run.commit.clone(),
            run_id: Some(run_id),
            delivery_id: None,
            requested_by: caller.actor.clone(),
        })
        .await?;
    state.queued.notify_one();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "run": run_id,
            "stage": approval.stage,
            "plans": approval.plans,
            "approved_by": caller.actor,
            "job": job.id,
        })),
    )
        .into_response())
}

/// `POST /runs/{run}/reject`: ends a run at its stage awaiting approval.
async fn reject(
    State(state): State<AppState>,
    caller: Caller,
    Path(run_id): Path<i64>,
    Json(decision): Json<Decision>,
) -> ApiResult<Json<Value>> {
    let workspace = decided_stage(
        &state,
        &caller,
        run_id,
        &decision,
        "rejecting a stage's plans",
    )
    .await?;
    let stage = stages::reject(&workspace, run_id, &decision.stage, &decision.reason)
        .await
        .map_err(|e| ApiError::conflict(&e))?;
    Ok(Json(
        json!({ "run": run_id, "stage": stage, "rejected_by": caller.actor }),
    ))
}

/// Checks a decision's reason and the caller's role at its stage; returns the workspace
/// acting as the caller.
async fn decided_stage(
    state: &AppState,
    caller: &Caller,
    run_id: i64,
    decision: &Decision,
    what: &str,
) -> ApiResult<Workspace> {
    if decision.reason.trim().is_empty() {
        return Err(ApiError::bad_request(
            "say why in `reason`: it is kept in the audit log",
        ));
    }
    auth::require(
        state,
        caller,
        Role::Approver,
        Some(&decision.stage),
        what,
        Some(run_id),
    )
    .await?;
    let mut acting = (*workspace(state)?).clone();
    acting.settings.actor.clone_from(&caller.actor);
    Ok(acting)
}

/// Why `caller` counts as the author of the run's commit or the person who started it.
fn same_person(workspace: &Workspace, caller: &Caller, run: &slipway_store::Run) -> Option<String> {
    let me = caller.actor.to_lowercase();
    if run.actor.to_lowercase() == me {
        return Some(format!("{} started run {}", caller.actor, run.id));
    }
    let author = slipway_git::Repo::open(&workspace.root)
        .and_then(|repo| repo.author(&run.commit))
        .ok()?;
    let email = author.email.to_lowercase();
    let local = email.split('@').next().unwrap_or_default().to_owned();
    [author.name.to_lowercase(), email, local]
        .contains(&me)
        .then(|| {
            format!(
                "{} wrote commit {}",
                caller.actor,
                slipway_runner::pipeline::short_commit(&run.commit)
            )
        })
}

#[derive(Debug, Deserialize)]
struct QueueRun {
    /// The commit to deliver (its full hash).
    commit: String,
}

/// `POST /runs`: queues a run of a commit of the delivered branch.
async fn queue_run(
    State(state): State<AppState>,
    caller: Caller,
    Json(asked): Json<QueueRun>,
) -> ApiResult<Response> {
    auth::require(
        &state,
        &caller,
        Role::Deployer,
        None,
        "queueing a run",
        None,
    )
    .await?;
    let commit = asked.commit.trim();
    if commit.len() < 7 || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::bad_request(
            "`commit` must be a commit hash (hex digits)",
        ));
    }
    let job = state
        .store
        .enqueue_job(&NewJob {
            kind: JobKind::Run,
            repository: repository(&state),
            git_ref: format!("refs/heads/{}", state.config.branch),
            commit: commit.to_owned(),
            run_id: None,
            delivery_id: None,
            requested_by: caller.actor.clone(),
        })
        .await?;
    state
        .store
        .append_audit(&NewAuditEntry {
            actor: caller.actor.clone(),
            action: AuditAction::QueueRun,
            stage: None,
            stack: None,
            run_id: None,
            details: json!({ "job": job.id, "commit": commit }),
        })
        .await?;
    state.queued.notify_one();
    Ok((StatusCode::ACCEPTED, Json(json!(job))).into_response())
}

/// `GET /queue`: the latest jobs, newest first; each queued one says what it waits behind.
async fn queue(
    State(state): State<AppState>,
    _caller: Caller,
    Query(limit): Query<Limit>,
) -> ApiResult<Json<Value>> {
    let jobs = state
        .store
        .jobs(limit.limit.unwrap_or(100).min(1000))
        .await?;
    let running = jobs.iter().find(|j| j.status == JobStatus::Running);
    let mut queued_ahead: Vec<i64> = Vec::new();
    let mut views: Vec<Value> = Vec::new();
    // Oldest first, so that each queued job knows the ones ahead of it.
    for job in jobs.iter().rev() {
        let mut view = json!(job);
        if let Some(fields) = view.as_object_mut() {
            fields.remove("worker");
            if job.status == JobStatus::Queued {
                let behind = match (queued_ahead.last(), running) {
                    (Some(ahead), _) => format!("queued behind job {ahead}"),
                    (None, Some(r)) => match r.run_id {
                        Some(run) => format!("queued behind run {run} (job {})", r.id),
                        None => format!("queued behind job {}", r.id),
                    },
                    (None, None) => "next".to_owned(),
                };
                fields.insert("waiting".to_owned(), json!(behind));
                queued_ahead.push(job.id);
            }
        }
        views.push(view);
    }
    views.reverse();
    Ok(Json(json!(views)))
}

#[derive(Debug, Deserialize)]
struct AuditQuery {
    after: Option<i64>,
    limit: Option<u32>,
}

/// `GET /audit`: the audit log, oldest first, after entry `after`.
async fn audit(
    State(state): State<AppState>,
    _caller: Caller,
    Query(query): Query<AuditQuery>,
) -> ApiResult<Json<Value>> {
    let entries = state
        .store
        .audit_log(query.after, query.limit.unwrap_or(500).min(10_000))
        .await?;
    Ok(Json(json!(entries)))
}

/// `GET /drills`: the latest drills with their recovery times.
async fn drills(State(state): State<AppState>, _caller: Caller) -> ApiResult<Json<Value>> {
    Ok(Json(json!(state.store.drills(None, 100).await?)))
}

/// `GET /drift`: the latest drift checks.
async fn drift(State(state): State<AppState>, _caller: Caller) -> ApiResult<Json<Value>> {
    Ok(Json(json!(state.store.drift_checks(None, 100).await?)))
}

/// `GET /runs/{run}/stack-runs/{stack_run}/log`: a stack run's log, redacted as written.
async fn log(
    State(state): State<AppState>,
    _caller: Caller,
    Path((run_id, stack_run_id)): Path<(i64, i64)>,
) -> ApiResult<Response> {
    let stack_run = state
        .store
        .stack_run(stack_run_id)
        .await?
        .filter(|r| r.run_id == run_id)
        .ok_or_else(|| {
            ApiError::not_found(format!("run {run_id} has no stack run {stack_run_id}"))
        })?;
    let path = stack_run
        .log_path
        .ok_or_else(|| ApiError::not_found(format!("stack run {stack_run_id} has no log")))?;
    let text = tokio::fs::read_to_string(&path)
        .await
        .map_err(|error| ApiError {
            internal: Some(format!("cannot read {path}: {error}")),
            ..ApiError::not_found(format!("the log of stack run {stack_run_id} is gone"))
        })?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
struct TokenRequest {
    actor: String,
    role: Role,
    stage: Option<String>,
}

/// `GET /tokens`: every token (never the secrets, which are not kept).
async fn tokens(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    auth::require(&state, &caller, Role::Admin, None, "listing tokens", None).await?;
    Ok(Json(json!(state.store.tokens().await?)))
}

/// `POST /tokens`: makes a token; the response is the only place it is ever shown.
async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    Json(asked): Json<TokenRequest>,
) -> ApiResult<Response> {
    auth::require(&state, &caller, Role::Admin, None, "making a token", None).await?;
    if asked.actor.trim().is_empty() {
        return Err(ApiError::bad_request("`actor` names who the token acts as"));
    }
    let secret = auth::new_token().map_err(ApiError::internal)?;
    let token = state
        .store
        .create_token(&NewToken {
            actor: asked.actor.trim().to_owned(),
            role: asked.role,
            stage: asked.stage.clone(),
            token_hash: secret.hash.clone(),
            created_by: caller.actor.clone(),
        })
        .await?;
    state
        .store
        .append_audit(&NewAuditEntry {
            actor: caller.actor.clone(),
            action: AuditAction::TokenCreate,
            stage: asked.stage,
            stack: None,
            run_id: None,
            details: json!({ "token": token.id, "for": token.actor, "role": token.role }),
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "token": secret.token, "id": token.id, "actor": token.actor, "role": token.role, "stage": token.stage })),
    )
        .into_response())
}

/// `DELETE /tokens/{id}`.
async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    auth::require(&state, &caller, Role::Admin, None, "revoking a token", None).await?;
    if !state.store.revoke_token(id).await? {
        return Err(ApiError::not_found(format!("no live token {id}")));
    }
    state
        .store
        .append_audit(&NewAuditEntry {
            actor: caller.actor.clone(),
            action: AuditAction::TokenRevoke,
            stage: None,
            stack: None,
            run_id: None,
            details: json!({ "token": id }),
        })
        .await?;
    Ok(Json(json!({ "revoked": id })))
}
