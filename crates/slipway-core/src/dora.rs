//! The four DORA metrics of each stage, worked out from what the run record says happened
//! (deployments, failures, rollbacks, recoveries, drift) and when each commit was made.
//!
//! Plain values in, plain values out: the caller reads the record and git, and hands over a
//! [`History`]; times are milliseconds since the Unix epoch. The definitions are in
//! docs/dora.md, and each function below names the one it implements.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

/// What happened, over a window of time.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// The window: from `since` (inclusive) to `until`.
    pub since: i64,
    pub until: i64,
    /// Releases made in the window (a stage starting to run an artifact).
    pub releases: Vec<Released>,
    /// Stage runs that ended in the window, failed or not.
    pub stage_runs: Vec<StageRunEnded>,
    /// Rollbacks and recoveries of a stage, from the audit log.
    pub restorations: Vec<Restoration>,
    /// Drift checks of a stage.
    pub drift_checks: Vec<DriftChecked>,
    /// When each commit was made (the committer's time), for the lead time.
    pub commit_times: BTreeMap<String, i64>,
}

/// One stack's release in one stage.
#[derive(Debug, Clone)]
pub struct Released {
    pub stage: String,
    pub stack: String,
    pub commit: String,
    pub at: i64,
    /// The run that made it; releases of one run in one stage are one deployment.
    pub run: Option<i64>,
}

/// A stage run that ended.
#[derive(Debug, Clone)]
pub struct StageRunEnded {
    pub stage: String,
    pub run: i64,
    pub at: i64,
    /// `false`: it failed, or its run was interrupted while it worked.
    pub succeeded: bool,
}

/// What a person did to bring a stage back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RestorationKind {
    Rollback,
    Recovery,
}

/// A rollback or recovery of a stage.
#[derive(Debug, Clone)]
pub struct Restoration {
    pub stage: String,
    pub at: i64,
    pub kind: RestorationKind,
}

/// One drift check of a stage.
#[derive(Debug, Clone)]
pub struct DriftChecked {
    pub stage: String,
    pub at: i64,
    pub drifted: bool,
}

/// How long after a deployment a failure, rollback or recovery of its stage still counts
/// against it, unless the stage was deployed again before.
pub const DEFAULT_FAILURE_WINDOW_MS: i64 = 24 * 3600 * 1000;

/// The metrics of every stage with anything on record in the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub since: i64,
    pub until: i64,
    pub failure_window_ms: i64,
    pub stages: Vec<StageMetrics>,
}

/// The four metrics of one stage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageMetrics {
    pub stage: String,
    /// Deployments in the window (each run's releases in the stage count once).
    pub deployments: u64,
    /// Deployments per day of the window.
    pub deployments_per_day: f64,
    /// From a commit's time to its first release in the stage, over the commits released.
    pub lead_time: Option<Durations>,
    /// Deployments followed by a failure, rollback or recovery of the stage within the
    /// failure window and before the next deployment.
    pub failed_deployments: u64,
    /// `failed_deployments / deployments`; `None` without deployments.
    pub change_failure_rate: Option<f64>,
    /// From the start of an incident (a failed or interrupted stage run, drift found) to
    /// the stage being good again (a successful deployment; for drift also a clean check).
    pub time_to_restore: Option<Durations>,
    /// Incidents not restored by the end of the window.
    pub open_incidents: u64,
}

/// A set of durations, in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Durations {
    pub count: u64,
    pub median_ms: i64,
    /// The 90th percentile (nearest rank).
    pub p90_ms: i64,
    pub max_ms: i64,
}

impl Durations {
    fn of(mut values: Vec<i64>) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        values.sort_unstable();
        let n = values.len();
        // Nearest rank: the smallest value with at least p of the values at or below it.
        let rank = |p: f64| values[((p * n as f64).ceil() as usize).clamp(1, n) - 1];
        let median = if n % 2 == 1 {
            values[n / 2]
        } else {
            (values[n / 2 - 1] + values[n / 2]) / 2
        };
        Some(Self {
            count: n as u64,
            median_ms: median,
            p90_ms: rank(0.9),
            max_ms: values[n - 1],
        })
    }
}

/// Works out the metrics of each stage in `history` (only `stage` when given).
pub fn report(history: &History, stage: Option<&str>, failure_window_ms: i64) -> Report {
    let mut stages: BTreeSet<&str> = BTreeSet::new();
    stages.extend(history.releases.iter().map(|r| r.stage.as_str()));
    stages.extend(history.stage_runs.iter().map(|r| r.stage.as_str()));
    stages.extend(history.restorations.iter().map(|r| r.stage.as_str()));
    stages.extend(history.drift_checks.iter().map(|r| r.stage.as_str()));
    if let Some(only) = stage {
        stages.retain(|s| *s == only);
        stages.insert(only);
    }
    Report {
        since: history.since,
        until: history.until,
        failure_window_ms,
        stages: stages
            .into_iter()
            .map(|s| stage_metrics(history, s, failure_window_ms))
            .collect(),
    }
}

fn stage_metrics(history: &History, stage: &str, failure_window_ms: i64) -> StageMetrics {
    let deployments = deployments(history, stage);
    let days = (history.until - history.since).max(1) as f64 / 86_400_000.0;
    let failed = failed_deployments(history, stage, &deployments, failure_window_ms);
    let (restores, open) = restores(history, stage, &deployments);
    StageMetrics {
        stage: stage.to_owned(),
        deployments: deployments.len() as u64,
        deployments_per_day: deployments.len() as f64 / days,
        lead_time: Durations::of(lead_times(history, stage)),
        failed_deployments: failed,
        change_failure_rate: (!deployments.is_empty())
            .then(|| failed as f64 / deployments.len() as f64),
        time_to_restore: Durations::of(restores),
        open_incidents: open,
    }
}

/// Deployment frequency: the times of the stage's deployments, oldest first. A run's
/// releases in the stage are one deployment (at its first release); a release without a
/// run (a manual promote or rollback) is one of its own.
fn deployments(history: &History, stage: &str) -> Vec<i64> {
    let mut by_run: BTreeMap<i64, i64> = BTreeMap::new();
    let mut times = Vec::new();
    for release in history.releases.iter().filter(|r| r.stage == stage) {
        match release.run {
            Some(run) => {
                let at = by_run.entry(run).or_insert(release.at);
                *at = (*at).min(release.at);
            }
            None => times.push(release.at),
        }
    }
    times.extend(by_run.into_values());
    times.sort_unstable();
    times
}

/// Lead time for changes: for each commit released to the stage in the window, from the
/// commit's time to its first release there. Commits whose time is unknown are left out.
fn lead_times(history: &History, stage: &str) -> Vec<i64> {
    let mut first: BTreeMap<&str, i64> = BTreeMap::new();
    for release in history.releases.iter().filter(|r| r.stage == stage) {
        let at = first.entry(release.commit.as_str()).or_insert(release.at);
        *at = (*at).min(release.at);
    }
    first
        .into_iter()
        .filter_map(|(commit, released)| {
            let made = history.commit_times.get(commit)?;
            Some((released - made).max(0))
        })
        .collect()
}

/// Change failure rate's numerator: deployments after which, within the failure window
/// and before the stage's next deployment, a stage run of the stage failed, or the stage
/// was rolled back or recovered.
fn failed_deployments(
    history: &History,
    stage: &str,
    deployments: &[i64],
    failure_window_ms: i64,
) -> u64 {
    let failures: Vec<i64> = history
        .stage_runs
        .iter()
        .filter(|r| r.stage == stage && !r.succeeded)
        .map(|r| r.at)
        .chain(
            history
                .restorations
                .iter()
                .filter(|r| r.stage == stage)
                .map(|r| r.at),
        )
        .collect();
    deployments
        .iter()
        .enumerate()
        .filter(|(i, at)| {
            let next = deployments.get(i + 1).copied().unwrap_or(i64::MAX);
            let end = next.min(at.saturating_add(failure_window_ms));
            failures.iter().any(|f| *f > **at && *f <= end)
        })
        .count() as u64
}

/// Time to restore: an incident starts with a failed (or interrupted) stage run of the
/// stage, or a drift check that found drift, and ends at the stage's next deployment or
/// successful stage run (a drift incident also at the next clean drift check). Incidents
/// overlapping one another are one, from the first start. Returns the durations of the
/// incidents restored in the window and how many are still open.
fn restores(history: &History, stage: &str, deployments: &[i64]) -> (Vec<i64>, u64) {
    #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    enum Happened {
        // At equal times, what restores comes after what breaks: an incident is never
        // restored by something that happened at its own instant before it.
        Breaks,
        Drift,
        Restores,
        Clean,
    }
    let mut timeline: Vec<(i64, Happened)> = Vec::new();
    for run in history.stage_runs.iter().filter(|r| r.stage == stage) {
        timeline.push((
            run.at,
            if run.succeeded {
                Happened::Restores
            } else {
                Happened::Breaks
            },
        ));
    }
    timeline.extend(deployments.iter().map(|at| (*at, Happened::Restores)));
    for check in history.drift_checks.iter().filter(|c| c.stage == stage) {
        timeline.push((
            check.at,
            if check.drifted {
                Happened::Drift
            } else {
                Happened::Clean
            },
        ));
    }
    timeline.sort_unstable();
    let mut restored = Vec::new();
    // The open incident's start, and whether only drift opened it.
    let mut open: Option<(i64, bool)> = None;
    for (at, what) in timeline {
        match (what, open) {
            (Happened::Breaks, None) => open = Some((at, false)),
            (Happened::Breaks, Some((start, _))) => open = Some((start, false)),
            (Happened::Drift, None) => open = Some((at, true)),
            (Happened::Restores, Some((start, _))) => {
                restored.push(at - start);
                open = None;
            }
            (Happened::Clean, Some((start, true))) => {
                restored.push(at - start);
                open = None;
            }
            _ => {}
        }
    }
    (restored, u64::from(open.is_some()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3600 * 1000;
    const DAY: i64 = 24 * H;

    fn release(stage: &str, stack: &str, commit: &str, at: i64, run: Option<i64>) -> Released {
        Released {
            stage: stage.into(),
            stack: stack.into(),
            commit: commit.into(),
            at,
            run,
        }
    }

    fn ended(stage: &str, run: i64, at: i64, succeeded: bool) -> StageRunEnded {
        StageRunEnded {
            stage: stage.into(),
            run,
            at,
            succeeded,
        }
    }

    /// A week of prod, worked out by hand below.
    fn week() -> History {
        History {
            since: 0,
            until: 7 * DAY,
            releases: vec![
                // Run 1 (commit a, made at 0): two stacks released at 2h and 3h: one
                // deployment, lead time 2h.
                release("prod", "network", "a", 2 * H, Some(1)),
                release("prod", "app", "a", 3 * H, Some(1)),
                // Run 2 (commit b, made at 1d): released at 1d+5h: lead time 5h. A stage run
                // of prod fails at 1d+10h: deployment 2 failed.
                release("prod", "app", "b", DAY + 5 * H, Some(2)),
                // A manual rollback to a at 1d+12h: a deployment of its own (commit a
                // already released: no new lead time) and it counts against deployment 2,
                // which already failed.
                release("prod", "app", "a", DAY + 12 * H, None),
                // Run 4 (commit c, made at 3d): released at 3d+1h: lead time 1h.
                release("prod", "app", "c", 3 * DAY + H, Some(4)),
                // dev, for contrast: never in prod's figures.
                release("dev", "app", "c", 3 * DAY, Some(4)),
            ],
            stage_runs: vec![
                ended("prod", 1, 3 * H, true),
                ended("prod", 2, DAY + 5 * H, true),
                ended("prod", 3, DAY + 10 * H, false),
                ended("prod", 4, 3 * DAY + H, true),
                ended("dev", 4, 3 * DAY, true),
            ],
            restorations: vec![Restoration {
                stage: "prod".into(),
                at: DAY + 12 * H,
                kind: RestorationKind::Rollback,
            }],
            drift_checks: vec![
                // Drift found at 5d, clean again at 5d+30m: restored in 30 minutes.
                DriftChecked {
                    stage: "prod".into(),
                    at: 5 * DAY,
                    drifted: true,
                },
                DriftChecked {
                    stage: "prod".into(),
                    at: 5 * DAY + H / 2,
                    drifted: false,
                },
                // Drift found at 6d, never fixed: open.
                DriftChecked {
                    stage: "prod".into(),
                    at: 6 * DAY,
                    drifted: true,
                },
            ],
            commit_times: [("a", 0), ("b", DAY), ("c", 3 * DAY)]
                .into_iter()
                .map(|(c, t)| (c.to_owned(), t))
                .collect(),
        }
    }

    #[test]
    fn a_scripted_week_gives_the_hand_computed_figures() {
        let report = report(&week(), Some("prod"), DEFAULT_FAILURE_WINDOW_MS);
        assert_eq!(report.stages.len(), 1);
        let prod = &report.stages[0];
        // Deployments at 2h (run 1), 1d+5h (run 2), 1d+12h (rollback), 3d+1h (run 4).
        assert_eq!(prod.deployments, 4);
        assert!((prod.deployments_per_day - 4.0 / 7.0).abs() < 1e-9);
        // Lead times: a 2h, b 5h, c 1h.
        assert_eq!(
            prod.lead_time,
            Some(Durations {
                count: 3,
                median_ms: 2 * H,
                p90_ms: 5 * H,
                max_ms: 5 * H
            })
        );
        // Deployment 2 (1d+5h) is followed by the failure at 1d+10h: one of four.
        assert_eq!(prod.failed_deployments, 1);
        assert_eq!(prod.change_failure_rate, Some(0.25));
        // Incidents: the failure at 1d+10h, restored by the rollback's deployment at
        // 1d+12h (2h); the drift at 5d, clean at 5d+30m (30m); the drift at 6d, open.
        assert_eq!(
            prod.time_to_restore,
            Some(Durations {
                count: 2,
                median_ms: (2 * H + H / 2) / 2,
                p90_ms: 2 * H,
                max_ms: 2 * H
            })
        );
        assert_eq!(prod.open_incidents, 1);
    }

    #[test]
    fn every_stage_on_record_is_reported_and_dev_is_its_own() {
        let report = report(&week(), None, DEFAULT_FAILURE_WINDOW_MS);
        let names: Vec<&str> = report.stages.iter().map(|s| s.stage.as_str()).collect();
        assert_eq!(names, ["dev", "prod"]);
        let dev = &report.stages[0];
        assert_eq!(dev.deployments, 1);
        assert_eq!(dev.lead_time.as_ref().unwrap().median_ms, 0);
        assert_eq!(dev.change_failure_rate, Some(0.0));
        assert_eq!(dev.time_to_restore, None);
    }

    #[test]
    fn a_failure_after_the_window_or_the_next_deployment_counts_against_nothing() {
        let mut history = week();
        // Shrink the failure window under the 5h between deployment 2 and the failure.
        let report = super::report(&history, Some("prod"), 4 * H);
        assert_eq!(report.stages[0].failed_deployments, 0);
        // A failure after the next deployment counts against that one only.
        history
            .stage_runs
            .push(ended("prod", 5, 3 * DAY + 2 * H, false));
        let report = super::report(&history, Some("prod"), DEFAULT_FAILURE_WINDOW_MS);
        assert_eq!(report.stages[0].failed_deployments, 2);
    }

    #[test]
    fn a_stage_with_nothing_on_record_has_no_figures() {
        let report = report(&History::default(), Some("test"), DEFAULT_FAILURE_WINDOW_MS);
        let test = &report.stages[0];
        assert_eq!(test.deployments, 0);
        assert_eq!(test.lead_time, None);
        assert_eq!(test.change_failure_rate, None);
        assert_eq!(test.time_to_restore, None);
        assert_eq!(test.open_incidents, 0);
    }

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let d = Durations::of((1..=10).collect()).unwrap();
        assert_eq!((d.median_ms, d.p90_ms, d.max_ms), (5, 9, 10));
        let d = Durations::of(vec![7]).unwrap();
        assert_eq!((d.median_ms, d.p90_ms), (7, 7));
    }
}
