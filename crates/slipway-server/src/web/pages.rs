//! The pages' handlers. Each reads through the JSON API's own handler or function (so the
//! same queries, the same views, the same refusals) and renders the answer as HTML; each
//! action is the API's action, called with the signed-in person as its caller.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use minijinja::{Value, context};
use serde::Deserialize;
use slipway_store::{Role, UnixMillis, UserRecord as _};

use super::session::{self, MaybeUser, WebUser};
use super::{WebError, csrf, render, render_with, svg};
use crate::AppState;
use crate::api::{self, views};
use crate::auth;

/// A serialisable value for a template.
fn val<T: serde::Serialize>(value: T) -> Value {
    Value::from(minijinja::value::Serde(value))
}

/// The signed-in person, or the way to the login form (coming back to this page).
fn signed_in(user: MaybeUser, uri: &Uri) -> Result<WebUser, WebError> {
    user.0.ok_or_else(|| WebError::Login {
        next: uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), ToString::to_string),
    })
}

/// What every page's frame shows: who is signed in, the form token, where we are.
fn frame(user: &WebUser, title: &str, active: &str) -> Value {
    context! {
        title => title,
        active => active,
        user => context! {
            name => user.caller.actor.clone(),
            role => user.caller.role.as_str(),
        },
        csrf => user.csrf(),
    }
}

/// A form POSTed by a signed-in person with the right token; otherwise refused (403). A
/// wrong token of a signed-in person is audited as a refusal, as the API audits them.
async fn posted(
    state: &AppState,
    user: MaybeUser,
    sent: Option<&str>,
    what: &str,
    run_id: Option<i64>,
) -> Result<WebUser, WebError> {
    let Some(user) = user.0 else {
        return Err(WebError::forbidden(
            "sign in first: this form needs a session",
        ));
    };
    if !csrf::matches(sent, &user.csrf()) {
        let why = "the form's CSRF token is missing or wrong; reload the page and send it again"
            .to_owned();
        return Err(auth::refuse(state, &user.caller, what, None, run_id, why)
            .await
            .into());
    }
    Ok(user)
}

// ---------------------------------------------------------------------------------------
// Signing in and out.

#[derive(Debug, Deserialize)]
pub(crate) struct Next {
    next: Option<String>,
}

/// Where to go after signing in: a path on this server only.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.contains('\\')
                && !path.starts_with("/login") =>
        {
            path.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// Percent-encodes a query parameter's value.
pub(crate) fn encode_query(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The login form, with a fresh token in a cookie of its own.
fn login_page(
    headers: &HeaderMap,
    status: axum::http::StatusCode,
    next: &str,
    name: &str,
    error: Option<&str>,
) -> Result<Response, WebError> {
    let token = session::random_id()?;
    let mut response = render_with(
        status,
        "login.html",
        context! {
            title => "Sign in",
            csrf => token.clone(),
            next => next,
            name => name,
            error => error,
        },
    )?;
    let cookie = session::set_cookie(
        headers,
        session::LOGIN_COOKIE,
        &token,
        "/login",
        std::time::Duration::from_secs(3600),
    );
    response.headers_mut().append(
        header::SET_COOKIE,
        cookie.parse().map_err(WebError::internal)?,
    );
    Ok(response)
}

/// `GET /login`.
pub(crate) async fn login_form(
    user: MaybeUser,
    headers: HeaderMap,
    Query(next): Query<Next>,
) -> Result<Response, WebError> {
    let next = safe_next(next.next.as_deref());
    if user.0.is_some() {
        return Ok(Redirect::to(&next).into_response());
    }
    login_page(&headers, axum::http::StatusCode::OK, &next, "", None)
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    name: String,
    password: String,
    csrf: Option<String>,
    next: Option<String>,
}

/// `POST /login`: a name and password for a session.
pub(crate) async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, WebError> {
    let expected = session::cookie(&headers, session::LOGIN_COOKIE).unwrap_or_default();
    if !csrf::matches(form.csrf.as_deref(), expected) {
        return Err(WebError::forbidden(
            "the login form's token is missing or wrong; reload the login page and sign in again",
        ));
    }
    let next = safe_next(form.next.as_deref());
    let name = form.name.trim().to_owned();
    if let Some(wait) = state.logins.wait(&name, std::time::Instant::now()) {
        tracing::info!(user = %name, "a login was refused: too many wrong passwords");
        let minutes = wait.as_secs().div_ceil(60);
        return login_page(
            &headers,
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            &next,
            &name,
            Some(&format!(
                "Too many wrong passwords for this name. Try again in {minutes} minute{}.",
                if minutes == 1 { "" } else { "s" }
            )),
        );
    }
    let user = state.store.user(&name).await.map_err(WebError::internal)?;
    let Some(user) = user else {
        // The same check against a decoy: the answer takes as long for a name not on record.
        session::check_password(form.password, None).await;
        state.logins.failed(&name, std::time::Instant::now());
        return login_page(
            &headers,
            axum::http::StatusCode::UNAUTHORIZED,
            &next,
            &name,
            Some("That name and password do not match a user."),
        );
    };
    if !session::check_password(form.password, Some(user.password_hash.clone())).await {
        tracing::info!(user = %user.name, "a login was refused: wrong password");
        state.logins.failed(&name, std::time::Instant::now());
        return login_page(
            &headers,
            axum::http::StatusCode::UNAUTHORIZED,
            &next,
            &name,
            Some("That name and password do not match a user."),
        );
    }
    state.logins.succeeded(&name);
    let id = session::random_id()?;
    let length = session::SESSION_LENGTH;
    let ends = UnixMillis(UnixMillis::now().0 + i64::try_from(length.as_millis()).unwrap_or(0));
    state
        .store
        .create_session(&auth::hash_token(&id), user.id, ends)
        .await
        .map_err(WebError::internal)?;
    tracing::info!(user = %user.name, "signed in");
    let mut response = Redirect::to(&next).into_response();
    let cookies = response.headers_mut();
    for cookie in [
        session::set_cookie(&headers, session::COOKIE, &id, "/", length),
        session::set_cookie(
            &headers,
            session::LOGIN_COOKIE,
            "",
            "/login",
            std::time::Duration::ZERO,
        ),
    ] {
        cookies.append(
            header::SET_COOKIE,
            cookie.parse().map_err(WebError::internal)?,
        );
    }
    Ok(response)
}

#[derive(Deserialize)]
pub(crate) struct TokenOnly {
    csrf: Option<String>,
}

/// `POST /logout`: ends the session.
pub(crate) async fn logout(
    State(state): State<AppState>,
    user: MaybeUser,
    headers: HeaderMap,
    Form(form): Form<TokenOnly>,
) -> Result<Response, WebError> {
    let user = posted(&state, user, form.csrf.as_deref(), "signing out", None).await?;
    state
        .store
        .end_session(&user.session_hash())
        .await
        .map_err(WebError::internal)?;
    let mut response = Redirect::to("/login").into_response();
    let cookie = session::set_cookie(
        &headers,
        session::COOKIE,
        "",
        "/",
        std::time::Duration::ZERO,
    );
    response.headers_mut().append(
        header::SET_COOKIE,
        cookie.parse().map_err(WebError::internal)?,
    );
    Ok(response)
}

// ---------------------------------------------------------------------------------------
// The release matrix, runs and approvals.

/// `GET /`: what each stage runs.
pub(crate) async fn matrix(
    State(state): State<AppState>,
    user: MaybeUser,
    uri: Uri,
) -> Result<Response, WebError> {
    let user = signed_in(user, &uri)?;
    let Json(releases) = api::releases(State(state), user.caller.clone()).await?;
    render(
        "matrix.html",
        context! {
            releases => val(&releases),
            ..frame(&user, "Release matrix", "matrix")
        },
    )
}

/// `GET /runs`.
pub(crate) async fn runs(
    State(state): State<AppState>,
    user: MaybeUser,
    uri: Uri,
) -> Result<Response, WebError> {
    let user = signed_in(user, &uri)?;
    let Json(runs) = api::runs(
        State(state),
        user.caller.clone(),
        Query(views::Limit { limit: Some(100) }),
    )
    .await?;
    let runs: Vec<Value> = runs
        .iter()
        .map(|run| {
            let json = serde_json::to_value(run).unwrap_or_default();
            context! {
                took => span(&json["started_at"], &json["finished_at"]),
                ..val(&json)
            }
        })
        .collect();
    render(
        "runs.html",
        context! { runs => runs, ..frame(&user, "Runs", "runs") },
    )
}

/// How long from `started` to `finished` (RFC 3339 texts), for people; `None` without both.
fn span(started: &serde_json::Value, finished: &serde_json::Value) -> Option<String> {
    let at = |v: &serde_json::Value| {
        v.as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    };
    let (started, finished) = (at(started)?, at(finished)?);
    let millis = (finished - started).num_milliseconds().max(0);
    Some(human_millis(millis))
}

fn human_millis(millis: i64) -> String {
    let seconds = millis / 1000;
    match seconds {
        0 => format!("{millis} ms"),
        1..=59 => format!("{seconds} s"),
        60..=3599 => format!("{} min {} s", seconds / 60, seconds % 60),
        _ => format!("{} h {} min", seconds / 3600, (seconds % 3600) / 60),
    }
}

/// `GET /runs/{run}`: the stage-by-stack grid, the live log, and, at a stage awaiting
/// approval, its blast radius report with the approver's buttons.
pub(crate) async fn run(
    State(state): State<AppState>,
    user: MaybeUser,
    uri: Uri,
    Path(run_id): Path<i64>,
) -> Result<Response, WebError> {
    let user = signed_in(user, &uri)?;
    let Json(detail) = api::run(State(state.clone()), user.caller.clone(), Path(run_id)).await?;
    let json = serde_json::to_value(&detail).map_err(WebError::internal)?;
    let running = detail.run.status == views::RunStatus::Running;

    // The grid: one row per stack, one column per stage.
    let stage_names: Vec<String> = detail.stages.iter().map(|s| s.stage.clone()).collect();
    let mut stacks: Vec<String> = Vec::new();
    for stage in &detail.stages {
        for stack in &stage.stacks {
            if !stacks.contains(&stack.stack) {
                stacks.push(stack.stack.clone());
            }
        }
    }
    let stage_json = json["stages"].as_array().cloned().unwrap_or_default();
    let rows: Vec<Value> = stacks
        .iter()
        .map(|stack| {
            let cells: Vec<Value> = stage_json
                .iter()
                .map(|stage| {
                    let found = stage["stacks"]
                        .as_array()
                        .and_then(|runs| runs.iter().find(|r| r["stack"] == stack.as_str()));
                    match found {
                        Some(r) => context! {
                            stage => stage["stage"].as_str(),
                            took => span(&r["started_at"], &r["finished_at"]),
                            ..val(r)
                        },
                        None => Value::from(()),
                    }
                })
                .collect();
            context! { stack => stack, cells => cells }
        })
        .collect();

    // Stages awaiting approval: the report, and whether this person may decide.
    let mut decisions: Vec<Value> = Vec::new();
    for stage in &detail.stages {
        if stage.status != views::StageRunStatus::AwaitingApproval {
            continue;
        }
        let report = match api::saved_report(&state, run_id, &stage.stage).await {
            Ok(report) => Some(report_view(&report)),
            Err(error) if error.status == axum::http::StatusCode::NOT_FOUND => None,
            Err(error) => return Err(error.into()),
        };
        let approved = detail.approvals.iter().find(|a| a.stage == stage.stage);
        decisions.push(context! {
            stage => stage.stage.clone(),
            report => report,
            approved => approved.map(val),
            may_decide => running
                && approved.is_none()
                && user.caller.may(Role::Approver, Some(&stage.stage)),
        });
    }
    let title = format!("Run {run_id}");
    render(
        "run.html",
        context! {
            run => val(&json["run"]),
            took => span(&json["run"]["started_at"], &json["run"]["finished_at"]),
            stages => stage_names,
            stage_runs => val(&json["stages"]),
            rows => rows,
            decisions => decisions,
            approvals => val(&json["approvals"]),
            live => running,
            ..frame(&user, &title, "runs")
        },
    )
}

/// The parts of a blast radius report an approver reads, per stack instance and in total.
fn report_view(report: &slipway_plan::Report) -> Value {
    let json = serde_json::from_str::<serde_json::Value>(&report.to_json()).unwrap_or_default();
    val(&json)
}

/// `GET /runs/{run}/events`: the run's events, as the API answers them (server-sent events
/// for the page's script).
pub(crate) async fn run_events(
    State(state): State<AppState>,
    user: MaybeUser,
    uri: Uri,
    Path(run_id): Path<i64>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let user = signed_in(user, &uri)?;
    Ok(api::events(
        State(state),
        user.caller,
        Path(run_id),
        Query(views::After { after: None }),
        headers,
    )
    .await?)
}

/// `GET /runs/{run}/stack-runs/{stack_run}/log`: a stack run's log, as the API answers it.
pub(crate) async fn log(
    State(state): State<AppState>,
    user: MaybeUser,
    uri: Uri,
    Path(ids): Path<(i64, i64)>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let user = signed_in(user, &uri)?;
    Ok(api::log(State(state), user.caller, Path(ids), headers).await?)
}

#[derive(Deserialize)]
pub(crate) struct DecisionForm {
    stage: String,
    reason: String,
    csrf: Option<String>,
}

/// `POST /runs/{run}/approve`: the API's approval, with its role and four-eyes checks.
pub(crate) async fn approve(
    State(state): State<AppState>,
    user: MaybeUser,
    Path(run_id): Path<i64>,
    Form(form): Form<DecisionForm>,
) -> Result<Response, WebError> {
    let what = "approving a stage's plans";
    let user = posted(&state, user, form.csrf.as_deref(), what, Some(run_id)).await?;
    let _approved = api::approve(
        State(state),
        user.caller,
        Path(run_id),
        Json(views::Decision {
            stage: form.stage,
            reason: form.reason,
        }),
    )
    .await?;
    tracing::info!(run = run_id, "a stage was approved from the web pages");
    Ok(Redirect::to(&format!("/runs/{run_id}")).into_response())
}

/// `POST /runs/{run}/reject`: the API's rejection.
pub(crate) async fn reject(
    State(state): State<AppState>,
    user: MaybeUser,
    Path(run_id): Path<i64>,
    Form(form): Form<DecisionForm>,
) -> Result<Response, WebError> {
    let what = "rejecting a stage's plans";
    let user = posted(&state, user, form.csrf.as_deref(), what, Some(run_id)).await?;
    let _rejected = api::reject(
        State(state),
        user.caller,
        Path(run_id),
        Json(views::Decision {
            stage: form.stage,
            reason: form.reason,
        }),
    )
    .await?;
    Ok(Redirect::to(&format!("/runs/{run_id}")).into_response())
}

// ---------------------------------------------------------------------------------------
// The graph, verification, the audit log and the delivery metrics.

/// `GET /graph`: the stack graph, drawn on the server.
pub(crate) async fn graph(
    State(state): State<AppState>,
    user: MaybeUser,
    uri: Uri,
) -> Result<Response, WebError> {
    let user = signed_in(user, &uri)?;
    let Json(project) = api::project(State(state), user.caller.clone()).await?;
    let picture = svg::graph(&project);
    render(
        "graph.html",
        context! {
            project => val(&project),
            picture => Value::from_safe_string(picture),
            ..frame(&user, "Stack graph", "graph")
        },
    )
}

/// `GET /drills`: recovery times, charted, and every drill.
pub(crate) async fn drills(
    State(state): State<AppState>,
    user: MaybeUser,
    uri: Uri,
) -> Result<Response, WebError> {
    let user = signed_in(user, &uri)?;
    let Json(drills) = api::drills(State(state), user.caller.clone()).await?;
    let json = serde_json::to_value(&drills).map_err(WebError::internal)?;
    // Oldest first, for the trend.
    let mut points: Vec<(String, String, f64)> = drills
        .iter()
        .zip(json.as_array().into_iter().flatten())
        .filter_map(|(drill, json)| {
            let ms = drill.total_ms?;
            Some((
                drill.stage.clone(),
                json["started_at"].as_str().unwrap_or_default().to_owned(),
                ms as f64 / 1000.0,
            ))
        })
        .collect();
    points.sort_by(|a, b| a.1.cmp(&b.1));
    let chart = svg::trend("Recovery time (s)", &points);
    render(
        "drills.html",
        context! {
            drills => val(&json),
            chart => Value::from_safe_string(chart),
            ..frame(&user, "Drills", "drills")
        },
    )
}

/// `GET /drift`: the latest drift checks.
pub(crate) async fn drift(
    State(state): State<AppState>,
    user: MaybeUser,
    uri: Uri,
) -> Result<Response, WebError> {
    let user = signed_in(user, &uri)?;
    let Json(checks) = api::drift(State(state), user.caller.clone()).await?;
    render(
        "drift.html",
        context! {
            checks => val(&checks),
            ..frame(&user, "Drift", "drift")
        },
    )
}

#[derive(Deserialize)]
pub(crate) struct AdvisePage {
    days: Option<u32>,
    stage: Option<String>,
}

/// `GET /advise`: the slicing advisor's report with its picture.
pub(crate) async fn advise(
    State(state): State<AppState>,
    user: MaybeUser,
    uri: Uri,
    Query(page): Query<AdvisePage>,
) -> Result<Response, WebError> {
    let user = signed_in(user, &uri)?;
    // The form sends an empty stage for "the last stage".
    let stage = page.stage.filter(|s| !s.is_empty());
    let stages: Vec<String> = api::workspace(&state)?
        .project
        .stages
        .iter()
        .map(|s| s.name.clone())
        .collect();
    let (notices, report) = api::advise(
        &state,
        views::AdviceQuery {
            days: page.days,
            stage: stage.clone(),
        },
    )
    .await?;
    let picture = slipway_advisor::svg::render(&report);
    render(
        "advise.html",
        context! {
            days => report.window_days.round() as i64,
            stage => stage,
            stages => stages,
            notices => val(&notices),
            report => val(&report),
            picture => Value::from_safe_string(picture),
            ..frame(&user, "Slicing advice", "advise")
        },
    )
}

#[derive(Deserialize)]
pub(crate) struct AuditPage {
    after: Option<i64>,
}

/// `GET /audit`: the audit log, 200 entries a page, oldest first.
pub(crate) async fn audit(
    State(state): State<AppState>,
    user: MaybeUser,
    uri: Uri,
    Query(page): Query<AuditPage>,
) -> Result<Response, WebError> {
    let user = signed_in(user, &uri)?;
    const PAGE: u32 = 200;
    let Json(entries) = api::audit(
        State(state),
        user.caller.clone(),
        Query(views::AuditQuery {
            after: page.after,
            limit: Some(PAGE),
        }),
    )
    .await?;
    let next = (entries.len() == PAGE as usize)
        .then(|| entries.last().map(|e| e.seq))
        .flatten();
    let entries: Vec<Value> = entries
        .iter()
        .map(|entry| {
            context! {
                details => entry.details.to_string(),
                ..val(entry)
            }
        })
        .collect();
    render(
        "audit.html",
        context! {
            entries => entries,
            next => next,
            ..frame(&user, "Audit log", "audit")
        },
    )
}

#[derive(Deserialize)]
pub(crate) struct DoraPage {
    days: Option<u32>,
}

/// `GET /dora`: the four delivery metrics per stage, charted.
pub(crate) async fn dora(
    State(state): State<AppState>,
    user: MaybeUser,
    uri: Uri,
    Query(page): Query<DoraPage>,
) -> Result<Response, WebError> {
    let user = signed_in(user, &uri)?;
    let days = page.days.unwrap_or(30).clamp(1, 3660);
    let Json(dora) = api::dora(
        State(state),
        user.caller.clone(),
        Query(views::DoraQuery {
            stage: None,
            days: Some(days),
            failure_window_hours: None,
        }),
    )
    .await?;
    let bars = |value: &dyn Fn(&views::StageDora) -> f64| -> Vec<(String, f64)> {
        dora.stages
            .iter()
            .map(|s| (s.stage.clone(), value(s)))
            .collect()
    };
    let median = |d: &Option<views::DoraDurations>| {
        d.as_ref().map_or(0.0, |d| d.median_ms as f64 / 3_600_000.0)
    };
    let charts = [
        svg::bars("Deployments per day", &bars(&|s| s.deployments_per_day)),
        svg::bars(
            "Lead time, median (hours)",
            &bars(&|s| median(&s.lead_time)),
        ),
        svg::bars(
            "Change failure rate (%)",
            &bars(&|s| s.change_failure_rate.unwrap_or(0.0) * 100.0),
        ),
        svg::bars(
            "Time to restore, median (hours)",
            &bars(&|s| median(&s.time_to_restore)),
        ),
    ]
    .into_iter()
    .map(Value::from_safe_string)
    .collect::<Vec<_>>();
    let stages: Vec<Value> = dora
        .stages
        .iter()
        .map(|s| {
            context! {
                lead => s.lead_time.as_ref().map(|d| human_millis(d.median_ms)),
                restore => s.time_to_restore.as_ref().map(|d| human_millis(d.median_ms)),
                failure_rate => s.change_failure_rate.map(|r| format!("{:.0} %", r * 100.0)),
                per_day => format!("{:.2}", s.deployments_per_day),
                ..val(s)
            }
        })
        .collect();
    render(
        "dora.html",
        context! {
            days => days,
            stages => stages,
            charts => charts,
            ..frame(&user, "Delivery metrics", "dora")
        },
    )
}

// ---------------------------------------------------------------------------------------
// Template filters.

/// `{{ at | age }}`: how long ago an RFC 3339 time was.
pub(crate) fn age(at: String) -> String {
    let Ok(then) = chrono::DateTime::parse_from_rfc3339(&at) else {
        return at;
    };
    let millis = (chrono::Utc::now() - then.with_timezone(&chrono::Utc))
        .num_milliseconds()
        .max(0);
    let minutes = millis / 60_000;
    match minutes {
        0 => "just now".to_owned(),
        1..=59 => format!("{minutes} min ago"),
        60..=2879 => format!("{} h ago", minutes / 60),
        _ => format!("{} days ago", minutes / 1440),
    }
}

/// `{{ commit | short }}`: the first 8 characters.
pub(crate) fn short(text: String) -> String {
    text.chars().take(8).collect()
}

/// `{{ ms | millis }}`: milliseconds for people.
pub(crate) fn millis(ms: i64) -> String {
    human_millis(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_local_path_is_gone_to_after_signing_in() {
        assert_eq!(safe_next(Some("/runs/3")), "/runs/3");
        assert_eq!(safe_next(Some("//evil.example")), "/");
        assert_eq!(safe_next(Some("https://evil.example")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(Some("/login")), "/");
        assert_eq!(safe_next(None), "/");
        assert_eq!(encode_query("/runs?x=1&y"), "/runs%3Fx%3D1%26y");
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(human_millis(250), "250 ms");
        assert_eq!(human_millis(42_000), "42 s");
        assert_eq!(human_millis(125_000), "2 min 5 s");
        assert_eq!(human_millis(7_500_000), "2 h 5 min");
    }
}
