//! `plan -refresh-only`: what changed in the real infrastructure since the state was last
//! written, without proposing any change of the code. Drift detection is built on it, and
//! so is recovery's probe of what still exists ([`Engine::probe_refresh`]).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::io::{BufRead as _, BufReader};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Access, Engine, PlanOutcome, StepContext};
use crate::child::{Consume, Interrupt, StepError};

/// The file a refresh-only plan is saved to, beside (never over) the working copy's own
/// plan: an approved plan waiting there must not be replaced by a drift check.
pub const REFRESH_PLAN_FILE: &str = "slipway-refresh.tfplan";

impl Engine {
    /// `plan -refresh-only -detailed-exitcode -out`: `has_changes` is true when the real
    /// infrastructure no longer matches the state (read `resource_drift` from `show -json`
    /// for what changed).
    pub async fn plan_refresh_only(&self, ctx: StepContext<'_>) -> Result<PlanOutcome, StepError> {
        let plan_file = ctx.working_copy.stack_dir.join(REFRESH_PLAN_FILE);
        let mut args: Vec<OsString> = vec![
            "plan".into(),
            "-refresh-only".into(),
            "-input=false".into(),
            "-no-color".into(),
            "-detailed-exitcode".into(),
            format!("-out={}", plan_file.display()).into(),
        ];
        args.extend(self.lock_timeout_arg());
        let finished = self
            .run(ctx, "plan -refresh-only", args, false, Access::Read)
            .await?;
        match finished.code {
            Some(0) => Ok(PlanOutcome {
                has_changes: false,
                plan_file,
                summary: None,
            }),
            Some(2) => Ok(PlanOutcome {
                has_changes: true,
                plan_file,
                summary: None,
            }),
            _ => Err(Self::failure(ctx, "plan -refresh-only", &finished)),
        }
    }
}

/// What a probe's refresh of one resource instance found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// The refresh read it back: it exists.
    Present,
    /// The refresh found nothing: it no longer exists.
    Gone,
}

/// What a refresh probe learnt, resource instance by resource instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Probe {
    /// Resource instance address -> what its refresh found.
    pub answers: BTreeMap<String, Answer>,
    /// Refreshes started and not finished when the probe ended.
    pub pending: BTreeSet<String>,
    /// Whether the engine finished every refresh (rather than being stopped early).
    pub complete: bool,
    /// The longest a refresh took from its start to its answer.
    pub slowest_answer: Duration,
}

impl Probe {
    /// Reads one line of the engine's machine-readable UI (`-json`, Terraform 0.15.3+ and
    /// OpenTofu): `refresh_start` and `refresh_complete` hooks. A completed refresh that
    /// names no id found nothing. Returns the hook read and the resource instance it names.
    fn read_line(&mut self, line: &str) -> Option<(Hook, String)> {
        let value = serde_json::from_str::<serde_json::Value>(line).ok()?;
        let address = value["hook"]["resource"]["addr"].as_str()?.to_owned();
        match value["type"].as_str() {
            Some("refresh_start") => {
                self.pending.insert(address.clone());
                Some((Hook::Started, address))
            }
            Some("refresh_complete") => {
                self.pending.remove(&address);
                let found = value["hook"]["id_value"]
                    .as_str()
                    .is_some_and(|id| !id.is_empty());
                self.answers.insert(
                    address.clone(),
                    if found { Answer::Present } else { Answer::Gone },
                );
                Some((Hook::Completed, address))
            }
            _ => None,
        }
    }
}

/// A refresh hook of the engine's machine-readable UI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hook {
    Started,
    Completed,
}

/// The least a probe waits for one more refresh, however quickly the others answered.
const LEAST_QUIET: Duration = Duration::from_secs(1);

/// How many times the slowest answer so far a probe waits for one more.
const QUIET_PER_SLOWEST_ANSWER: u32 = 4;

/// A probe as it runs: what it learnt, and when each refresh still waiting started.
#[derive(Debug, Default)]
struct Running {
    probe: Probe,
    started: BTreeMap<String, Instant>,
}

impl Running {
    /// [`Probe::read_line`], timing each refresh from its start to its answer; `true` for an
    /// answer.
    fn read_line(&mut self, line: &str, now: Instant) -> bool {
        match self.probe.read_line(line) {
            Some((Hook::Started, address)) => {
                self.started.insert(address, now);
                false
            }
            Some((Hook::Completed, address)) => {
                if let Some(started) = self.started.remove(&address) {
                    self.probe.slowest_answer = self.probe.slowest_answer.max(now - started);
                }
                true
            }
            None => false,
        }
    }
}

impl Probe {
    /// How long a probe waits for one more answer before it asks whether what was answered
    /// is enough: a read that takes several times longer than every one that answered is
    /// not coming; never less than [`LEAST_QUIET`], never more than `quiet`.
    pub fn wait_for_more(&self, quiet: Duration) -> Duration {
        (self.slowest_answer * QUIET_PER_SLOWEST_ANSWER).clamp(LEAST_QUIET.min(quiet), quiet)
    }
}

/// How long a stopped probe is given to exit before it is killed: none, since it writes
/// neither state nor a plan, and a provider busy retrying a read does not stop early.
const PROBE_GRACE: Duration = Duration::ZERO;

impl Engine {
    /// A refresh probe: `plan -refresh-only -json -lock=false` (it writes neither state nor
    /// a plan, so it takes no lock and may be stopped at any time), read as it runs. Some
    /// providers retry the read of a missing resource for minutes before they accept it is
    /// gone; each time no refresh has finished for a while (four times the slowest answer so
    /// far, at least a second, at most `quiet`), `settled` is asked whether what was answered
    /// so far is enough, and if so the probe is stopped and hands back what it learnt
    /// (`complete` false). The caller's interrupt still stops it as an interruption.
    pub async fn probe_refresh<F>(
        &self,
        ctx: StepContext<'_>,
        quiet: Duration,
        settled: F,
    ) -> Result<Probe, StepError>
    where
        F: Fn(&Probe) -> bool + Send + Sync,
    {
        const STEP: &str = "plan -refresh-only (probe)";
        let args: Vec<OsString> = vec![
            "plan".into(),
            "-refresh-only".into(),
            "-json".into(),
            "-lock=false".into(),
            "-input=false".into(),
            "-no-color".into(),
        ];
        let shared = Arc::new(Mutex::new(Running::default()));
        let (tick, mut ticks) = tokio::sync::watch::channel(());
        let consume: Consume = {
            let shared = Arc::clone(&shared);
            let log = ctx.log.clone();
            Box::new(move |pipe| {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    // The UI's own words go to the log, as a plain plan's would.
                    if let Ok(value) = serde_json::from_str::<serde_json::Value>(&line)
                        && let Some(message) = value["@message"].as_str()
                    {
                        log.line(message);
                    }
                    let now = Instant::now();
                    let read = shared
                        .lock()
                        .is_ok_and(|mut running| running.read_line(&line, now));
                    if read {
                        let _ = tick.send(());
                    }
                }
            })
        };
        let (stop, stopped) = Interrupt::channel();
        let either = ctx.interrupt.or(&stopped);
        let probe_ctx = StepContext {
            interrupt: &either,
            ..ctx
        };
        let mut engine = self.clone();
        engine.interrupt_grace = PROBE_GRACE;
        let run = engine.run_step(
            probe_ctx,
            STEP,
            args,
            false,
            Some(consume),
            Access::Read,
            &[],
        );
        tokio::pin!(run);
        let mut ticking = true;
        let mut stopped_early = false;
        let result = loop {
            let wait = shared
                .lock()
                .map_or(quiet, |running| running.probe.wait_for_more(quiet));
            tokio::select! {
                result = &mut run => break result,
                changed = ticks.changed(), if ticking => ticking = changed.is_ok(),
                () = tokio::time::sleep(wait), if !stopped_early => {
                    let snapshot = shared.lock().map(|r| r.probe.clone()).unwrap_or_default();
                    if !snapshot.pending.is_empty() && settled(&snapshot) {
                        ctx.log.line(&format!(
                            "== slipway: no refresh finished for {:.1}s; {} answered, {} still waiting: enough to decide, stopping the probe ==",
                            wait.as_secs_f64(),
                            snapshot.answers.len(),
                            snapshot.pending.len()
                        ));
                        stopped_early = true;
                        stop.fire();
                    }
                }
            }
        };
        let mut probe = shared.lock().map(|r| r.probe.clone()).unwrap_or_default();
        match result {
            Ok(finished) if finished.code == Some(0) => {
                probe.complete = true;
                probe.pending.clear();
                Ok(probe)
            }
            Ok(finished) => Err(Self::failure(ctx, STEP, &finished)),
            Err(StepError::Interrupted { .. }) if stopped_early && !ctx.interrupt.is_set() => {
                Ok(probe)
            }
            Err(error) => Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_reads_which_refreshes_found_their_resource() {
        let mut probe = Probe::default();
        let lines = [
            r#"{"@message":"Terraform 1.0.3","type":"version"}"#,
            r#"{"type":"refresh_start","hook":{"resource":{"addr":"aws_vpc.main"},"id_key":"id","id_value":"vpc-1"}}"#,
            r#"{"type":"refresh_start","hook":{"resource":{"addr":"aws_sqs_queue.q"},"id_key":"id","id_value":"https://q"}}"#,
            r#"{"type":"refresh_start","hook":{"resource":{"addr":"aws_route_table_association.a[\"x\"]"},"id_key":"id","id_value":"rtbassoc-1"}}"#,
            r#"{"type":"refresh_complete","hook":{"resource":{"addr":"aws_vpc.main"},"id_key":"id","id_value":"vpc-1"}}"#,
            r#"{"type":"refresh_complete","hook":{"resource":{"addr":"aws_sqs_queue.q"}}}"#,
            "not json",
        ];
        let read: Vec<bool> = lines.iter().map(|l| probe.read_line(l).is_some()).collect();
        assert_eq!(read, [false, true, true, true, true, true, false]);
        assert_eq!(probe.answers["aws_vpc.main"], Answer::Present);
        assert_eq!(probe.answers["aws_sqs_queue.q"], Answer::Gone);
        assert_eq!(
            probe.pending,
            BTreeSet::from(["aws_route_table_association.a[\"x\"]".to_owned()])
        );
        assert!(!probe.complete);
    }

    #[test]
    fn a_probe_waits_for_one_more_answer_four_times_as_long_as_the_slowest_took() {
        let start = |addr: &str| {
            format!(
                r#"{{"type":"refresh_start","hook":{{"resource":{{"addr":"{addr}"}},"id_value":"x"}}}}"#
            )
        };
        let done = |addr: &str| {
            format!(r#"{{"type":"refresh_complete","hook":{{"resource":{{"addr":"{addr}"}}}}}}"#)
        };
        let quiet = Duration::from_secs(2);
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut running = Running::default();
        assert_eq!(
            running.probe.wait_for_more(quiet),
            LEAST_QUIET,
            "nothing answered yet"
        );
        assert!(!running.read_line(&start("a.one"), ms(0)));
        assert!(!running.read_line(&start("a.two"), ms(10)));
        assert!(!running.read_line(&start("a.three"), ms(20)));
        assert!(running.read_line(&done("a.one"), ms(100)));
        assert_eq!(
            running.probe.wait_for_more(quiet),
            LEAST_QUIET,
            "fast answers: the floor"
        );
        assert!(running.read_line(&done("a.two"), ms(310)));
        assert_eq!(running.probe.slowest_answer, Duration::from_millis(300));
        assert_eq!(
            running.probe.wait_for_more(quiet),
            Duration::from_millis(1200)
        );
        assert!(running.read_line(&done("a.three"), ms(920)));
        assert_eq!(
            running.probe.wait_for_more(quiet),
            quiet,
            "never more than asked"
        );
        assert_eq!(
            running.probe.wait_for_more(Duration::from_millis(500)),
            Duration::from_millis(500),
            "never more than asked, even under the floor"
        );
        assert!(running.probe.pending.is_empty());
    }
}
