//! The JSON API under `/api/v1` (docs/server.md; docs/openapi.json is its contract, made
//! from this module by [`openapi_json`]). Every route needs a token; reading needs the viewer
//! role, queueing a run the deployer role, approving and rejecting the approver role at that
//! stage, managing tokens the admin role. Each action, allowed or refused, is in the audit
//! log.
//!
//! Responses are the views of [`views`] rather than the record's rows: they leave out what a
//! client has no use for and must not see (paths on the server, process ids, token hashes).
//! Each handler's `#[utoipa::path]` says what it answers; a route added to [`routes`] is added
//! to [`ApiDoc`] too (tests/openapi.rs fails otherwise).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::json;
use slipway_runner::pipeline::stages;
use slipway_runner::project::Workspace;
use slipway_store::{
    AuditAction, JobKind, JobStatus, NewAuditEntry, NewJob, NewToken, Role, ServiceRecord as _,
    Store as _, VerificationRecord as _,
};
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, ObjectBuilder, Ref, RefOr, ResponseBuilder, Type};

use crate::AppState;
use crate::auth::{self, Caller};
use crate::error::{ApiError, ApiResult};

mod pull_requests;
pub(crate) mod views;

use views::{
    Advice, AdviceNotice, AdviceQuery, After, Approved, AuditEntry, AuditQuery, CreatedToken,
    Decision, Dora, DoraQuery, DriftCheck, Drill, ErrorBody, Job, Limit, Project, QueueRun,
    Rejected, Release, Releases, Revoked, Run, RunDetail, RunEvent, RunStatus, Stack,
    StackReleases, StackRun, Stage, StageRun, Token, TokenRequest, Worker,
};

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
        .route("/runs/{run}/stages/{stage}/report", get(report))
        .route("/pull-requests/{id}/report", get(pull_requests::report))
        .route("/queue", get(queue))
        .route("/workers", get(workers))
        .route("/audit", get(audit))
        .route("/drills", get(drills))
        .route("/drift", get(drift))
        .route("/dora", get(dora))
        .route("/advice", get(advice))
        .route("/tokens", get(tokens).post(create_token))
        .route("/tokens/{id}", delete(revoke_token))
        .route("/openapi.json", get(openapi))
}

/// The API's OpenAPI document: every route of [`routes`], its parameters, bodies and answers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "slipway",
        version = "1",
        description = "The JSON API of `slipway serve` (docs/server.md). Every operation needs an API token \
            (`slipway token create`) sent as `Authorization: Bearer TOKEN`; what a token may do is its role's: \
            viewers read, deployers also queue runs, approvers also approve and reject (at every stage or at \
            their token's stage only), admins also manage tokens. Every action, allowed or refused, is kept \
            in the audit log. An unsuccessful answer is `{\"error\": ...}`, in words meant for the person \
            asking; a failure of the server's own says only that, and its log has the cause. Times are RFC 3339 \
            text in UTC.",
        license(name = "MIT OR Apache-2.0"),
    ),
    paths(
        project,
        releases,
        runs,
        queue_run,
        run,
        events,
        approve,
        reject,
        log,
        report,
        pull_requests::report,
        queue,
        workers,
        audit,
        drills,
        drift,
        dora,
        advice,
        tokens,
        create_token,
        revoke_token,
        openapi,
    ),
    components(responses(BadRequest, Unprocessable, Unauthorized, Forbidden, Internal, NoProject)),
    modifiers(&BearerToken),
    tags(
        (name = "project", description = "The project, and what each stage runs"),
        (name = "runs", description = "Runs through the stages, their events, logs and approvals"),
        (name = "queue", description = "Jobs (runs to start, approved or handed-on runs to resume, scheduled drift checks and drills) and the workers that take them"),
        (name = "audit", description = "The append-only log of every action, allowed or refused"),
        (name = "verification", description = "Drills and drift checks"),
        (name = "tokens", description = "API tokens (admins only)"),
        (name = "meta", description = "This document"),
    ),
)]
pub(crate) struct ApiDoc;

/// The OpenAPI document of the JSON API under `/api/v1`, as pretty JSON with a final newline:
/// what docs/openapi.json holds and `GET /api/v1/openapi.json` answers. The same text for
/// the same code (paths and components in name order, properties in field order).
pub fn openapi_json() -> String {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT
        .get_or_init(|| {
            let mut text = ApiDoc::openapi()
                .to_pretty_json()
                .expect("the OpenAPI document is plain data");
            text.push('\n');
            text
        })
        .clone()
}

/// Adds the one security scheme every operation names.
struct BearerToken;

impl utoipa::Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "An API token: `slw_` and 64 hex digits (`slipway token create`; the server keeps only its SHA-256).",
            ))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// An answer carrying [`ErrorBody`], and, where axum refuses the request before a handler
/// runs, axum's plain text.
fn error_response(description: &str, json: bool, text: bool) -> RefOr<utoipa::openapi::Response> {
    let mut response = ResponseBuilder::new().description(description);
    if json {
        response = response.content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(
                    <ErrorBody as utoipa::ToSchema>::name(),
                )))
                .build(),
        );
    }
    if text {
        response = response.content(
            "text/plain",
            ContentBuilder::new()
                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                .build(),
        );
    }
    response.build().into()
}

/// Declares the error answers shared by many operations, as response components.
macro_rules! shared_responses {
    ($($(#[$meta:meta])* $name:ident: $description:literal, json = $json:literal, text = $text:literal;)+) => {
        $(
            $(#[$meta])*
            pub(crate) struct $name;

            impl<'r> utoipa::ToResponse<'r> for $name {
                fn response() -> (&'r str, RefOr<utoipa::openapi::Response>) {
                    (stringify!($name), error_response($description, $json, $text))
                }
            }
        )+
    };
}

shared_responses! {
    /// 400.
    BadRequest: "The request is not one this operation takes: slipway says why as JSON; a path \
        parameter, query or JSON body that does not parse is refused by the HTTP layer in plain text.",
        json = true, text = true;
    /// 422.
    Unprocessable: "The JSON body lacks a field this operation needs, or has one of the wrong type \
        (plain text from the HTTP layer).",
        json = false, text = true;
    /// 401.
    Unauthorized: "No token, or not a live one: send `Authorization: Bearer TOKEN` (`slipway token create`). \
        Nothing else is told.",
        json = true, text = false;
    /// 403.
    Forbidden: "The token's role does not allow it (at that stage), or the stage's rules do not (four eyes); \
        the error says which. The refusal is kept in the audit log.",
        json = true, text = false;
    /// 500.
    Internal: "The server could not do it (the record failed); its log says why.",
        json = true, text = false;
    /// 503.
    NoProject: "The server has no project loaded (its working copy's configuration could not be read); \
        its log says why.",
        json = true, text = false;
}

/// The project as the server's working copy last held it.
pub(crate) fn workspace(state: &AppState) -> ApiResult<std::sync::Arc<Workspace>> {
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

/// A stage a query names, when it names one, must be the project's (404 otherwise).
fn known_stage(workspace: &Workspace, stage: Option<&str>) -> ApiResult<()> {
    match stage {
        Some(stage) if workspace.project.stage(stage).is_none() => Err(ApiError::not_found(
            format!("no stage `{stage}` in the project"),
        )),
        _ => Ok(()),
    }
}

/// The repository jobs queued through the API belong to: the one webhooks name (so that
/// runs from either supersede each other), else the project's name.
pub(crate) fn repository(state: &AppState) -> String {
    if let Some(first) = state.config.allowed_repositories.first() {
        return first.clone();
    }
    workspace(state)
        .map(|w| w.project.name.clone())
        .unwrap_or_else(|_| "project".to_owned())
}

/// The project
///
/// Its stages in delivery order, its stacks and the graph between them, as the server's
/// working copy last held them.
#[utoipa::path(
    get,
    path = "/api/v1/project",
    operation_id = "get_project",
    tag = "project",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The project", body = Project),
        (status = 401, response = Unauthorized),
        (status = 500, response = Internal),
        (status = 503, response = NoProject),
    ),
)]
pub(crate) async fn project(
    State(state): State<AppState>,
    _caller: Caller,
) -> ApiResult<Json<Project>> {
    let workspace = workspace(&state)?;
    let project = &workspace.project;
    Ok(Json(Project {
        name: project.name.clone(),
        branch: state.config.branch.clone(),
        stages: project
            .stages
            .iter()
            .map(|s| Stage {
                name: s.name.clone(),
                approval: s.approval,
                four_eyes: s.four_eyes,
                worker_labels: s.worker_labels.0.clone(),
            })
            .collect(),
        stacks: project
            .stacks
            .iter()
            .map(|s| Stack {
                name: s.name.clone(),
                dir: s.dir.clone(),
                team: s.team.clone(),
                depends_on: s.dependencies.iter().map(|d| d.stack.clone()).collect(),
            })
            .collect(),
    }))
}

/// What each stage runs
///
/// The current release of each stack in each stage: which artifact, of which commit, since
/// when, and whether the stages run different artifacts of it.
#[utoipa::path(
    get,
    path = "/api/v1/releases",
    operation_id = "list_releases",
    tag = "project",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The releases, by stack then stage", body = Releases),
        (status = 401, response = Unauthorized),
        (status = 500, response = Internal),
    ),
)]
pub(crate) async fn releases(
    State(state): State<AppState>,
    _caller: Caller,
) -> ApiResult<Json<Releases>> {
    let stages: Vec<String> = match workspace(&state) {
        Ok(w) => w.project.stages.iter().map(|s| s.name.clone()).collect(),
        Err(_) => Vec::new(),
    };
    let mut matrix: BTreeMap<String, BTreeMap<String, Release>> = BTreeMap::new();
    for release in state.store.current_releases().await? {
        matrix
            .entry(release.stack.clone())
            .or_default()
            .insert(release.stage.clone(), release.into());
    }
    let stacks = matrix
        .into_iter()
        .map(|(stack, by_stage)| StackReleases::new(stack, by_stage))
        .collect();
    Ok(Json(Releases { stages, stacks }))
}

/// The latest runs
///
/// Newest first.
#[utoipa::path(
    get,
    path = "/api/v1/runs",
    operation_id = "list_runs",
    tag = "runs",
    security(("bearer" = [])),
    params(Limit),
    responses(
        (status = 200, description = "The runs, newest first (50 unless `limit` says)", body = Vec<Run>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 500, response = Internal),
    ),
)]
pub(crate) async fn runs(
    State(state): State<AppState>,
    _caller: Caller,
    Query(limit): Query<Limit>,
) -> ApiResult<Json<Vec<Run>>> {
    let runs = state
        .store
        .recent_runs(limit.limit.unwrap_or(50).min(1000))
        .await?;
    let interrupted = state.store.interrupted_stack_runs().await?;
    Ok(Json(
        runs.into_iter()
            .map(|run| {
                let died = interrupted.iter().any(|r| r.run_id == run.id);
                let mut run = Run::from(run);
                if died && run.status == RunStatus::Running {
                    run.status = RunStatus::Interrupted;
                }
                run
            })
            .collect(),
    ))
}

/// A run
///
/// The run with its stage runs, their stack runs (each plan's summary, never where the plan
/// lies) and its approvals.
#[utoipa::path(
    get,
    path = "/api/v1/runs/{run}",
    operation_id = "get_run",
    tag = "runs",
    security(("bearer" = [])),
    params(("run" = i64, Path, description = "The run's number")),
    responses(
        (status = 200, description = "The run", body = RunDetail),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, description = "The run is not on record", body = ErrorBody),
        (status = 500, response = Internal),
    ),
)]
pub(crate) async fn run(
    State(state): State<AppState>,
    _caller: Caller,
    Path(run_id): Path<i64>,
) -> ApiResult<Json<RunDetail>> {
    let store = &state.store;
    let run = store
        .run(run_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("run {run_id} is not on record")))?;
    let stack_runs = store.stack_runs(run_id).await?;
    // Applies that died half-way are still `applying` in the record until a person
    // resolves them; the API says what they are.
    let interrupted: Vec<i64> = store
        .interrupted_stack_runs()
        .await?
        .iter()
        .filter(|r| r.run_id == run_id)
        .map(|r| r.id)
        .collect();
    let stages = store
        .stage_runs(run_id)
        .await?
        .into_iter()
        .map(|stage| {
            let stacks = stack_runs
                .iter()
                .filter(|r| r.stage == stage.stage)
                .map(|r| {
                    if interrupted.contains(&r.id) {
                        StackRun::interrupted(r)
                    } else {
                        StackRun::from(r)
                    }
                })
                .collect();
            StageRun::new(stage, stacks)
        })
        .collect();
    let approvals = store.approvals(run_id).await?;
    let mut run = Run::from(run);
    if !interrupted.is_empty() && run.status == RunStatus::Running {
        run.status = RunStatus::Interrupted;
    }
    Ok(Json(RunDetail {
        run,
        stages,
        approvals: approvals.into_iter().map(Into::into).collect(),
    }))
}

/// A run's events
///
/// The run's recorded events as JSON; or, when the client accepts `text/event-stream`, as
/// server-sent events that follow the run live: each event's `seq` is its id and the kind
/// its event name, and its data the event's JSON. A client that reconnects sends
/// `Last-Event-ID` and gets the rest. The stream ends once the run has finished.
#[utoipa::path(
    get,
    path = "/api/v1/runs/{run}/events",
    operation_id = "run_events",
    tag = "runs",
    security(("bearer" = [])),
    params(
        ("run" = i64, Path, description = "The run's number"),
        After,
        ("Last-Event-ID" = Option<i64>, Header, nullable = false, description = "The last event seen (server-sent events): only the ones after it"),
    ),
    responses(
        (status = 200, description = "The events after `after`, oldest first (at most 10000 as JSON)", content(
            (Vec<RunEvent> = "application/json"),
            (String = "text/event-stream"),
        )),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, description = "The run is not on record", body = ErrorBody),
        (status = 500, response = Internal),
    ),
)]
pub(crate) async fn events(
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
    if accepts_event_stream(&headers) {
        return Ok(crate::live::follow(state, run_id, after, None).into_response());
    }
    let events = state.store.run_events(run_id, after, 10_000).await?;
    let events: Vec<RunEvent> = events.into_iter().map(RunEvent::from).collect();
    Ok(Json(events).into_response())
}

/// Approve a stage
///
/// Approves the saved plans of a stage awaiting approval and queues the job that resumes
/// the run. Needs the approver role at that stage; a stage with four eyes refuses the
/// commit's author and whoever started the run.
#[utoipa::path(
    post,
    path = "/api/v1/runs/{run}/approve",
    operation_id = "approve_stage",
    tag = "runs",
    security(("bearer" = [])),
    params(("run" = i64, Path, description = "The run's number")),
    request_body = Decision,
    responses(
        (status = 202, description = "Approved; the job named resumes the run", body = Approved),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "The run is not on record, or the project has no such stage", body = ErrorBody),
        (status = 409, description = "The run's stage is not awaiting approval, or its plans are not what was saved", body = ErrorBody),
        (status = 422, response = Unprocessable),
        (status = 500, response = Internal),
        (status = 503, response = NoProject),
    ),
)]
pub(crate) async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    Path(run_id): Path<i64>,
    Json(decision): Json<Decision>,
) -> ApiResult<(StatusCode, Json<Approved>)> {
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
            stage: None,
            run_id: Some(run_id),
            stack: None,
            delivery_id: None,
            requested_by: caller.actor.clone(),
            labels: stage.worker_labels.clone(),
        })
        .await?;
    state.queued.notify_one();
    Ok((
        StatusCode::ACCEPTED,
        Json(Approved {
            run: run_id,
            stage: approval.stage,
            plans: approval.plans,
            approved_by: caller.actor,
            job: job.id,
        }),
    ))
}

/// Reject a stage
///
/// Ends a run at its stage awaiting approval, without delivering. Needs the approver role
/// at that stage.
#[utoipa::path(
    post,
    path = "/api/v1/runs/{run}/reject",
    operation_id = "reject_stage",
    tag = "runs",
    security(("bearer" = [])),
    params(("run" = i64, Path, description = "The run's number")),
    request_body = Decision,
    responses(
        (status = 200, description = "Rejected: the run ended", body = Rejected),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 409, description = "The runner refused: the run is not awaiting approval at that stage, say; the error says why", body = ErrorBody),
        (status = 422, response = Unprocessable),
        (status = 500, response = Internal),
        (status = 503, response = NoProject),
    ),
)]
pub(crate) async fn reject(
    State(state): State<AppState>,
    caller: Caller,
    Path(run_id): Path<i64>,
    Json(decision): Json<Decision>,
) -> ApiResult<Json<Rejected>> {
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
    Ok(Json(Rejected {
        run: run_id,
        stage,
        rejected_by: caller.actor,
    }))
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

/// Queue a run
///
/// Queues a run of a commit of the delivered branch; it supersedes the run jobs of the
/// branch still queued. Needs the deployer role.
#[utoipa::path(
    post,
    path = "/api/v1/runs",
    operation_id = "queue_run",
    tag = "queue",
    security(("bearer" = [])),
    request_body = QueueRun,
    responses(
        (status = 202, description = "Queued", body = Job),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 422, response = Unprocessable),
        (status = 500, response = Internal),
    ),
)]
async fn queue_run(
    State(state): State<AppState>,
    caller: Caller,
    Json(asked): Json<QueueRun>,
) -> ApiResult<(StatusCode, Json<Job>)> {
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
            stage: None,
            run_id: None,
            stack: None,
            delivery_id: None,
            requested_by: caller.actor.clone(),
            labels: slipway_store::Labels::default(),
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
    Ok((StatusCode::ACCEPTED, Json(job.into())))
}

/// The queue
///
/// The latest jobs, newest first; each queued one says what it waits behind.
#[utoipa::path(
    get,
    path = "/api/v1/queue",
    operation_id = "list_queue",
    tag = "queue",
    security(("bearer" = [])),
    params(Limit),
    responses(
        (status = 200, description = "The jobs, newest first (100 unless `limit` says)", body = Vec<Job>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 500, response = Internal),
    ),
)]
async fn queue(
    State(state): State<AppState>,
    _caller: Caller,
    Query(limit): Query<Limit>,
) -> ApiResult<Json<Vec<Job>>> {
    let jobs = state
        .store
        .jobs(limit.limit.unwrap_or(100).min(1000))
        .await?;
    let running = jobs
        .iter()
        .find(|j| j.status == JobStatus::Running)
        .map(|r| (r.id, r.run_id));
    let mut queued_ahead: Vec<i64> = Vec::new();
    let mut views: Vec<Job> = Vec::with_capacity(jobs.len());
    // Oldest first, so that each queued job knows the ones ahead of it.
    for job in jobs.into_iter().rev() {
        let queued = job.status == JobStatus::Queued;
        let labelled = !job.labels.is_empty();
        let mut view = Job::from(job);
        if queued && labelled {
            let labels: Vec<String> = view
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            view.waiting = Some(format!("waits for a worker labelled {}", labels.join(",")));
        } else if queued {
            view.waiting = Some(match (queued_ahead.last(), running) {
                (Some(ahead), _) => format!("queued behind job {ahead}"),
                (None, Some((job, Some(run)))) => format!("queued behind run {run} (job {job})"),
                (None, Some((job, None))) => format!("queued behind job {job}"),
                (None, None) => "next".to_owned(),
            });
            queued_ahead.push(view.id);
        }
        views.push(view);
    }
    views.reverse();
    Ok(Json(views))
}

/// Workers
///
/// The processes that take jobs (`slipway worker`s, and servers that run jobs themselves):
/// those running, and those stopped or gone within the last hour, oldest first, each with
/// its labels and the jobs it runs now.
#[utoipa::path(
    get,
    path = "/api/v1/workers",
    operation_id = "list_workers",
    tag = "queue",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The workers, oldest first", body = Vec<Worker>),
        (status = 401, response = Unauthorized),
        (status = 500, response = Internal),
    ),
)]
async fn workers(State(state): State<AppState>, _caller: Caller) -> ApiResult<Json<Vec<Worker>>> {
    let since = slipway_store::UnixMillis(slipway_store::UnixMillis::now().0 - 3_600_000);
    let workers = state.store.workers(since).await?;
    Ok(Json(workers.into_iter().map(Worker::from).collect()))
}

/// The audit log
///
/// Every action asked of slipway, allowed or refused, oldest first, after entry `after`.
#[utoipa::path(
    get,
    path = "/api/v1/audit",
    operation_id = "audit_log",
    tag = "audit",
    security(("bearer" = [])),
    params(AuditQuery),
    responses(
        (status = 200, description = "The entries, oldest first (500 unless `limit` says)", body = Vec<AuditEntry>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 500, response = Internal),
    ),
)]
pub(crate) async fn audit(
    State(state): State<AppState>,
    _caller: Caller,
    Query(query): Query<AuditQuery>,
) -> ApiResult<Json<Vec<AuditEntry>>> {
    let entries = state
        .store
        .audit_log(query.after, query.limit.unwrap_or(500).min(10_000))
        .await?;
    Ok(Json(entries.into_iter().map(AuditEntry::from).collect()))
}

/// The latest drills
///
/// The latest 100 drills of every stage, with their recovery times.
#[utoipa::path(
    get,
    path = "/api/v1/drills",
    operation_id = "list_drills",
    tag = "verification",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The drills", body = Vec<Drill>),
        (status = 401, response = Unauthorized),
        (status = 500, response = Internal),
    ),
)]
pub(crate) async fn drills(
    State(state): State<AppState>,
    _caller: Caller,
) -> ApiResult<Json<Vec<Drill>>> {
    let drills = state.store.drills(None, 100).await?;
    Ok(Json(drills.into_iter().map(Drill::from).collect()))
}

/// The latest drift checks
///
/// The latest 100 drift checks of every stage.
#[utoipa::path(
    get,
    path = "/api/v1/drift",
    operation_id = "list_drift_checks",
    tag = "verification",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The drift checks", body = Vec<DriftCheck>),
        (status = 401, response = Unauthorized),
        (status = 500, response = Internal),
    ),
)]
pub(crate) async fn drift(
    State(state): State<AppState>,
    _caller: Caller,
) -> ApiResult<Json<Vec<DriftCheck>>> {
    let checks = state.store.drift_checks(None, 100).await?;
    Ok(Json(checks.into_iter().map(DriftCheck::from).collect()))
}

/// The delivery metrics
///
/// The four DORA metrics of each stage over the last `days` days, from the record and the
/// working copy's git history: deployment frequency, lead time for changes, change failure
/// rate and time to restore (definitions in docs/dora.md).
#[utoipa::path(
    get,
    path = "/api/v1/dora",
    operation_id = "dora",
    tag = "project",
    security(("bearer" = [])),
    params(DoraQuery),
    responses(
        (status = 200, description = "The metrics per stage", body = Dora),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, description = "No such stage", body = ErrorBody),
        (status = 500, response = Internal),
        (status = 503, response = NoProject),
    ),
)]
pub(crate) async fn dora(
    State(state): State<AppState>,
    _caller: Caller,
    Query(query): Query<DoraQuery>,
) -> ApiResult<Json<Dora>> {
    let workspace = workspace(&state)?;
    known_stage(&workspace, query.stage.as_deref())?;
    let until = slipway_store::UnixMillis::now();
    let days = i64::from(query.days.unwrap_or(30).clamp(1, 3660));
    let window = slipway_runner::dora::Window {
        since: slipway_store::UnixMillis(until.0 - days * 86_400_000),
        until,
        stage: query.stage.clone(),
        failure_window_ms: i64::from(query.failure_window_hours.unwrap_or(24)) * 3_600_000,
    };
    let report = slipway_runner::dora::report(&workspace, &state.store, &window)
        .await
        .map_err(|error| ApiError::internal(format!("{error:#}")))?;
    Ok(Json(report.into()))
}

/// The slicing advisor's report
///
/// How the project's stacks are cut, measured against the seed's slicing criteria (teams,
/// change frequency, permission boundaries, capabilities, size, coupling), with each
/// recommendation's evidence and the kind of evidence it rests on. Reads the server's
/// working copy: its code, its git history over the window, CODEOWNERS, and what exists in
/// a stage's state.
#[utoipa::path(
    get,
    path = "/api/v1/advice",
    operation_id = "advice",
    tag = "project",
    security(("bearer" = [])),
    params(AdviceQuery),
    responses(
        (status = 200, description = "The report, and how its input was read", body = Advice),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, description = "No such stage", body = ErrorBody),
        (status = 500, response = Internal),
        (status = 503, response = NoProject),
    ),
)]
pub(crate) async fn advice(
    State(state): State<AppState>,
    _caller: Caller,
    Query(query): Query<AdviceQuery>,
) -> ApiResult<Json<Advice>> {
    let (notices, report) = advise(&state, query).await?;
    let report =
        serde_json::to_value(&report).map_err(|error| ApiError::internal(format!("{error}")))?;
    Ok(Json(Advice { notices, report }))
}

/// The advisor's report on the server's working copy, and how its input was read: what
/// both the API and the advice page show.
pub(crate) async fn advise(
    state: &AppState,
    query: AdviceQuery,
) -> ApiResult<(Vec<AdviceNotice>, slipway_advisor::Report)> {
    let workspace = workspace(state)?;
    known_stage(&workspace, query.stage.as_deref())?;
    let request = slipway_runner::advise::AdviseRequest {
        window_days: query.days.map(|d| f64::from(d.clamp(1, 3660))),
        stage: query.stage,
        now: slipway_store::UnixMillis::now().0 / 1000,
    };
    // Reading the code and the history blocks; keep it off the runtime's workers.
    let runtime = tokio::runtime::Handle::current();
    let advised = tokio::task::spawn_blocking(move || {
        runtime.block_on(async {
            let gathered = slipway_runner::advise::gather(&workspace, &request).await?;
            let report = slipway_advisor::analyze(&gathered.input);
            anyhow::Ok((gathered.notices, report))
        })
    })
    .await
    .map_err(|error| ApiError::internal(format!("{error}")))?;
    let (notices, report) = advised.map_err(|error| ApiError::internal(format!("{error:#}")))?;
    Ok((
        notices.into_iter().map(AdviceNotice::from).collect(),
        report,
    ))
}

/// How the report is written.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ReportFormat {
    /// `json` (schema `slipway.blast-radius/v1`, docs/report-schema.md; the default) or
    /// `markdown` (to paste into a pull request or a ticket).
    format: Option<String>,
}

/// The blast radius report of a stage's saved plans
///
/// What an approver reads before approving: actions, data-loss risks, downstream reach and
/// the policy verdict, over every stack whose plan, saved for approval, changes something.
#[utoipa::path(
    get,
    path = "/api/v1/runs/{run}/stages/{stage}/report",
    operation_id = "stage_report",
    tag = "runs",
    security(("bearer" = [])),
    params(
        ("run" = i64, Path, description = "The run's number"),
        ("stage" = String, Path, description = "The stage whose saved plans are reported"),
        ReportFormat,
    ),
    responses(
        (status = 200, description = "The report, as JSON or Markdown", body = Object, content_type = "application/json"),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, description = "The run has no plans saved at that stage", body = ErrorBody),
        (status = 500, response = Internal),
    ),
)]
async fn report(
    State(state): State<AppState>,
    _caller: Caller,
    Path((run_id, stage)): Path<(i64, String)>,
    Query(format): Query<ReportFormat>,
) -> ApiResult<Response> {
    let markdown = match format.format.as_deref() {
        None | Some("json") => false,
        Some("markdown") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "`format` is `{other}`: ask for `json` or `markdown`"
            )));
        }
    };
    let report = saved_report(&state, run_id, &stage).await?;
    Ok(if markdown {
        (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/markdown; charset=utf-8",
            )],
            slipway_plan::render_markdown(&report),
        )
            .into_response()
    } else {
        (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            report.to_json(),
        )
            .into_response()
    })
}

/// The blast radius report of the plans run `run_id` saved at `stage` (what `report`
/// answers, and what the web pages show an approver).
pub(crate) async fn saved_report(
    state: &AppState,
    run_id: i64,
    stage: &str,
) -> ApiResult<slipway_plan::Report> {
    let saved: Vec<slipway_store::StackRun> = state
        .store
        .stack_runs(run_id)
        .await?
        .into_iter()
        .filter(|r| r.stage == stage)
        .collect();
    let instances: Vec<slipway_plan::InstanceReport> = saved
        .iter()
        .filter_map(|r| r.plan_summary.as_deref())
        .filter_map(|summary| serde_json::from_str::<serde_json::Value>(summary).ok())
        .filter_map(|mut summary| summary.get_mut("report").map(serde_json::Value::take))
        .filter_map(|report| serde_json::from_value(report).ok())
        .collect();
    if saved.is_empty() || instances.is_empty() {
        return Err(ApiError::not_found(format!(
            "run {run_id} has no plans with changes saved at stage {stage}"
        )));
    }
    Ok(slipway_plan::Report::new(instances))
}

/// Whether the client asked for server-sent events.
fn accepts_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"))
}

/// A stack run's log
///
/// The Terraform log of one stack run, redacted as it was written; or, when the client
/// accepts `text/event-stream`, the engine's lines as it prints them (`engine_output`
/// events, redacted), ending with the stack's `stack_finished`.
#[utoipa::path(
    get,
    path = "/api/v1/runs/{run}/stack-runs/{stack_run}/log",
    operation_id = "stack_run_log",
    tag = "runs",
    security(("bearer" = [])),
    params(
        ("run" = i64, Path, description = "The run's number"),
        ("stack_run" = i64, Path, description = "The stack run's `id` in the run's answer"),
    ),
    responses(
        (status = 200, description = "The log, or its lines live", content(
            (String = "text/plain"),
            (String = "text/event-stream"),
        )),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, description = "The run has no such stack run, it has no log yet, or its log is gone", body = ErrorBody),
        (status = 500, response = Internal),
    ),
)]
pub(crate) async fn log(
    State(state): State<AppState>,
    _caller: Caller,
    Path((run_id, stack_run_id)): Path<(i64, i64)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let stack_run = state
        .store
        .stack_run(stack_run_id)
        .await?
        .filter(|r| r.run_id == run_id)
        .ok_or_else(|| {
            ApiError::not_found(format!("run {run_id} has no stack run {stack_run_id}"))
        })?;
    if accepts_event_stream(&headers) {
        let only = crate::live::StackLines {
            stage: stack_run.stage.clone(),
            instance: stack_run.instance.clone(),
            stack: stack_run.stack.clone(),
        };
        return Ok(crate::live::follow(state, run_id, 0, Some(only)).into_response());
    }
    let path = stack_run.log_path.ok_or_else(|| {
        ApiError::not_found(format!(
            "stack run {stack_run_id} has no log yet; follow it live with `Accept: text/event-stream`"
        ))
    })?;
    let text = match tokio::fs::read_to_string(&path).await {
        Ok(text) => text,
        // Written on a worker's machine: its copy is in the artifact store.
        Err(error) => kept_log(&state, run_id, &stack_run.stage, stack_run_id)
            .await
            .ok_or_else(|| ApiError {
                internal: Some(format!("cannot read {path}: {error}")),
                ..ApiError::not_found(format!("the log of stack run {stack_run_id} is gone"))
            })?,
    };
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// A stack run's log as the process that ran it copied it into the (S3) artifact store.
async fn kept_log(state: &AppState, run_id: i64, stage: &str, stack_run_id: i64) -> Option<String> {
    let workspace = workspace(state).ok()?;
    let artifacts = slipway_runner::pipeline::artifacts::open(&workspace).ok()?;
    let key = slipway_runner::pipeline::deliver::log_key(run_id, stage, stack_run_id);
    match artifacts.get_file(&key).await {
        Ok(bytes) => bytes.map(|b| String::from_utf8_lossy(&b).into_owned()),
        Err(error) => {
            tracing::warn!(key = %key, error = %error, "cannot read a stack run's log from the artifact store");
            None
        }
    }
}

/// The tokens
///
/// Every token, live or revoked; never a secret, which is not kept. Needs the admin role.
#[utoipa::path(
    get,
    path = "/api/v1/tokens",
    operation_id = "list_tokens",
    tag = "tokens",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The tokens", body = Vec<Token>),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 500, response = Internal),
    ),
)]
async fn tokens(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Vec<Token>>> {
    auth::require(&state, &caller, Role::Admin, None, "listing tokens", None).await?;
    let tokens = state.store.tokens().await?;
    Ok(Json(tokens.into_iter().map(Token::from).collect()))
}

/// Make a token
///
/// Makes a token acting as `actor` with `role`, at every stage or at `stage` only. The
/// answer is the only place its secret is ever shown. Needs the admin role.
#[utoipa::path(
    post,
    path = "/api/v1/tokens",
    operation_id = "create_token",
    tag = "tokens",
    security(("bearer" = [])),
    request_body = TokenRequest,
    responses(
        (status = 201, description = "Made", body = CreatedToken),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 422, response = Unprocessable),
        (status = 500, response = Internal),
    ),
)]
async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    Json(asked): Json<TokenRequest>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    auth::require(&state, &caller, Role::Admin, None, "making a token", None).await?;
    if asked.actor.trim().is_empty() {
        return Err(ApiError::bad_request("`actor` names who the token acts as"));
    }
    let secret = auth::new_token().map_err(ApiError::internal)?;
    let token = state
        .store
        .create_token(&NewToken {
            actor: asked.actor.trim().to_owned(),
            role: asked.role.into(),
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
        Json(CreatedToken {
            token: secret.token,
            id: token.id,
            actor: token.actor,
            role: token.role.into(),
            stage: token.stage,
        }),
    ))
}

/// Revoke a token
///
/// From now on the token opens nothing; it stays listed, with when it was revoked. Needs
/// the admin role.
#[utoipa::path(
    delete,
    path = "/api/v1/tokens/{id}",
    operation_id = "revoke_token",
    tag = "tokens",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The token's id")),
    responses(
        (status = 200, description = "Revoked", body = Revoked),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No live token has that id", body = ErrorBody),
        (status = 500, response = Internal),
    ),
)]
async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<Json<Revoked>> {
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
    Ok(Json(Revoked { revoked: id }))
}

/// This document
///
/// The API's OpenAPI document, as docs/openapi.json holds it.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    operation_id = "openapi_document",
    tag = "meta",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The OpenAPI 3.1 document", body = Object),
        (status = 401, response = Unauthorized),
        (status = 500, response = Internal),
    ),
)]
async fn openapi(_caller: Caller) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        openapi_json(),
    )
        .into_response()
}
