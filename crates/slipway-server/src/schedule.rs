//! The scheduler: queues the drift checks and drills `schedule` blocks ask for, and the
//! destruction of pull request previews whose time to live ran out (`preview { ttl }`).
//!
//! Each schedule's last time acted on is kept in the record (`schedules`). On every tick, a
//! schedule whose latest time (at or before now) is later than that queues one job and
//! moves its mark there, in one transaction; so times missed while no server ran make one
//! job, not one per time, and two servers on one record queue each time once (the second
//! finds the mark moved). A schedule seen for the first time is marked at now: it waits for
//! its next time rather than running at once.

use std::time::Duration;

use chrono::{DateTime, Utc};
use slipway_core::config::schedule::{Schedule, Scheduled};
use slipway_store::{
    JobKind, JobStatus, NewJob, ServiceRecord as _, UnixMillis, VerificationRecord as _,
};

use crate::AppState;

/// How often schedules are looked at: times fall on whole minutes.
const TICK: Duration = Duration::from_secs(20);

/// What to do about one schedule now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Never marked: mark it at now, queue nothing.
    Baseline(DateTime<Utc>),
    /// Its time `.0` came since the mark: queue one job and mark it there.
    Due(DateTime<Utc>),
    /// Nothing came since the mark.
    Wait,
}

/// What `schedule` says at `now`, marked last at `last`.
pub(crate) fn decide(
    pattern: &croner::Cron,
    last: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Decision {
    let Some(last) = last else {
        return Decision::Baseline(now);
    };
    match pattern.find_previous_occurrence(&now, true) {
        Ok(latest) if latest > last => Decision::Due(latest),
        _ => Decision::Wait,
    }
}

/// Starts the scheduler.
pub(crate) fn start(state: &AppState) -> tokio::task::JoinHandle<()> {
    let state = state.clone();
    tokio::spawn(async move {
        loop {
            tick(&state).await;
            expire_previews(&state).await;
            tokio::select! {
                () = tokio::time::sleep(interval(&state)) => {}
                () = state.stopping.stopped() => return,
            }
        }
    })
}

async fn tick(state: &AppState) {
    let schedules: Vec<Schedule> = match state.project.read().ok().and_then(|p| p.clone()) {
        Some(workspace) => workspace.project.schedules.clone(),
        None => return,
    };
    if schedules.is_empty() {
        return;
    }
    let marks = match state.store.schedule_marks().await {
        Ok(marks) => marks,
        Err(error) => {
            tracing::error!(error = %error, "cannot read the schedules' marks");
            return;
        }
    };
    let now = Utc::now();
    for schedule in &schedules {
        let Ok(pattern) = schedule.pattern() else {
            continue;
        };
        let seen = marks
            .iter()
            .find(|(name, _)| *name == schedule.name)
            .map(|(_, at)| *at);
        let (due, job) = match decide(&pattern, seen.and_then(to_time), now) {
            Decision::Wait => continue,
            Decision::Baseline(at) => (at, None),
            Decision::Due(at) => (at, Some(job_of(state, schedule, at))),
        };
        let queued = job.is_some();
        match state
            .store
            .mark_schedule(&schedule.name, seen, from_time(due), job.as_ref())
            .await
        {
            Ok(true) if queued => {
                tracing::info!(schedule = %schedule.name, run = schedule.run.as_str(), stage = %schedule.stage, due = %due, "scheduled job queued");
                state.queued.notify_one();
            }
            Ok(_) => {}
            Err(error) => {
                tracing::error!(schedule = %schedule.name, error = %error, "cannot queue a scheduled job");
            }
        }
    }
}

/// How long the scheduler sleeps: [`TICK`], or a quarter of a preview's ttl when that is
/// shorter (but not under a quarter of a second), so a preview outlives its ttl by little.
fn interval(state: &AppState) -> Duration {
    let ttl = state
        .project
        .read()
        .ok()
        .and_then(|p| p.clone())
        .and_then(|w| w.project.preview.as_ref().map(|p| p.ttl));
    ttl.map_or(TICK, |ttl| {
        (ttl / 4).clamp(Duration::from_millis(250), TICK)
    })
}

/// Queues a job that destroys each live preview whose ttl passed since it was last applied,
/// while no pull request job is queued or running (one may be applying it again, or be the
/// destroy queued before). The job checks again before destroying: a push in between
/// applies the preview anew and restarts its ttl.
async fn expire_previews(state: &AppState) {
    let Some(ttl) = state
        .project
        .read()
        .ok()
        .and_then(|p| p.clone())
        .and_then(|w| w.project.preview.as_ref().map(|p| p.ttl))
    else {
        return;
    };
    let live = match state.store.live_instances().await {
        Ok(live) => live,
        Err(error) => {
            tracing::error!(error = %error, "cannot read the live instances");
            return;
        }
    };
    let now = UnixMillis::now().0;
    let expired = live.into_iter().filter(|i| {
        i.purpose == crate::pull_request::preview::PURPOSE
            && u128::try_from(now.saturating_sub(i.created_at.0)).unwrap_or_default()
                >= ttl.as_millis()
    });
    // A pull request job queued or running may be applying a preview again (which restarts
    // its ttl): look again once the queue has no pull request work.
    match state.store.jobs(200).await {
        Ok(jobs) => {
            if jobs.iter().any(|j| {
                j.kind == JobKind::PullRequest
                    && matches!(j.status, JobStatus::Queued | JobStatus::Running)
            }) {
                return;
            }
        }
        Err(error) => {
            tracing::error!(error = %error, "cannot read the queue");
            return;
        }
    }
    for instance in expired {
        let git_ref = format!("{}{}", crate::pull_request::TTL_REF_PREFIX, instance.name);
        let number = instance
            .name
            .strip_prefix("pr-")
            .and_then(|n| n.parse::<i64>().ok());
        let pull = match number {
            Some(number) => state
                .store
                .pull_requests_numbered(number)
                .await
                .ok()
                .and_then(|p| p.into_iter().next()),
            None => None,
        };
        let job = NewJob {
            kind: JobKind::PullRequest,
            repository: pull
                .as_ref()
                .map_or_else(|| crate::api::repository(state), |p| p.repository.clone()),
            git_ref,
            commit: pull.map(|p| p.commit).unwrap_or_default(),
            stage: Some(instance.stage.clone()),
            run_id: None,
            stack: None,
            delivery_id: None,
            requested_by: "preview ttl".to_owned(),
            labels: crate::queue::worker_labels_of(state, &instance.stage),
        };
        match state.store.enqueue_job(&job).await {
            Ok(queued) => {
                tracing::info!(job = queued.id, instance = %instance.name, "preview expired: its destruction is queued");
                state.queued.notify_one();
            }
            Err(error) => {
                tracing::error!(instance = %instance.name, error = %error, "cannot queue a preview's destruction");
            }
        }
    }
}

fn job_of(state: &AppState, schedule: &Schedule, due: DateTime<Utc>) -> NewJob {
    NewJob {
        kind: match schedule.run {
            Scheduled::Drift => JobKind::Drift,
            Scheduled::Drill => JobKind::Drill,
        },
        repository: crate::api::repository(state),
        git_ref: format!("schedule/{}@{}", schedule.name, due.to_rfc3339()),
        commit: String::new(),
        stage: Some(schedule.stage.clone()),
        run_id: None,
        stack: None,
        delivery_id: None,
        requested_by: format!("schedule {}", schedule.name),
        labels: crate::queue::worker_labels_of(state, &schedule.stage),
    }
}

fn to_time(at: UnixMillis) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(at.0)
}

fn from_time(at: DateTime<Utc>) -> UnixMillis {
    UnixMillis(at.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use std::str::FromStr as _;

    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    #[test]
    fn times_missed_while_down_make_one_job_at_the_latest_time() {
        let nightly = croner::Cron::from_str("0 3 * * *").unwrap();
        // Down from the 1st to the 4th at noon: three nights missed, one job, for the 4th.
        let decision = decide(
            &nightly,
            Some(at("2026-11-01T03:00:00Z")),
            at("2026-11-04T12:00:00Z"),
        );
        assert_eq!(decision, Decision::Due(at("2026-11-04T03:00:00Z")));
        // Marked there, nothing more until the next night.
        assert_eq!(
            decide(
                &nightly,
                Some(at("2026-11-04T03:00:00Z")),
                at("2026-11-04T23:59:00Z")
            ),
            Decision::Wait
        );
        assert_eq!(
            decide(
                &nightly,
                Some(at("2026-11-04T03:00:00Z")),
                at("2026-11-05T03:00:00Z")
            ),
            Decision::Due(at("2026-11-05T03:00:00Z"))
        );
    }

    #[test]
    fn a_new_schedule_waits_for_its_first_time() {
        let hourly = croner::Cron::from_str("0 * * * *").unwrap();
        let now = at("2026-11-04T12:30:00Z");
        assert_eq!(decide(&hourly, None, now), Decision::Baseline(now));
        assert_eq!(decide(&hourly, Some(now), now), Decision::Wait);
        assert_eq!(
            decide(&hourly, Some(now), at("2026-11-04T13:00:00Z")),
            Decision::Due(at("2026-11-04T13:00:00Z"))
        );
    }
}
