//! What a recovery must rebuild, established quickly. Before `slipway recover` applies a
//! stage's released artifacts again, each stack instance's state is probed: a refresh-only
//! plan, read as it runs ([`Engine::probe_refresh`](slipway_engine::Engine::probe_refresh)),
//! says of each resource in the state whether it still exists. Some providers retry the
//! read of a missing resource for minutes before they accept it is gone (the AWS provider
//! does so for route table associations), so the probe stops as soon as the answers so far
//! decide the stack's case ([`classify`]):
//!
//! - **lost**: nothing answered present, at least one resource answered gone, and every
//!   resource that did not answer depends on one that is gone. Its state is set aside, kept
//!   as a backup file (never deleted), and the stack is applied from empty state, as a drill
//!   rebuilds it;
//! - **partly lost** or **intact**: something still exists; the stack is applied on its own
//!   state, whose refresh finds what is gone, so only that is recreated;
//! - **unknown**: nothing answered either way; applied on its own state, as before.
//!
//! Deciding from the engine's own answers keeps this free of any provider's resource types.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use serde::Serialize;
use slipway_engine::driver::{Answer, Probe};
use slipway_engine::state::{StateInstance, backup_path, emptied_state, state_instances};
use slipway_engine::{StateBackend, StepError};

use crate::events::Step;
use crate::executor::{Executor, Operation, Outcome};
use crate::verify::millis;

/// How long a probe waits for one more refresh to finish before it asks whether what it
/// has is enough to decide. A healthy read answers well within it.
pub const PROBE_QUIET: Duration = Duration::from_secs(2);

/// A stack instance's case, as its probe found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Loss {
    /// Its state holds no resources: there is nothing to look for.
    NoState,
    /// Every resource answered present.
    Intact,
    /// Some resources exist, some are gone (or did not answer).
    Partial,
    /// Everything it held is gone.
    Lost,
    /// The probe could not tell (nothing answered, or the probe failed).
    Unknown,
}

impl Loss {
    /// How the report says it.
    pub fn describe(self) -> &'static str {
        match self {
            Loss::NoState => "no state",
            Loss::Intact => "intact",
            Loss::Partial => "partly lost",
            Loss::Lost => "lost",
            Loss::Unknown => "not established",
        }
    }
}

/// The case of a stack instance from its state's resources and the probe's answers so far.
pub fn classify(instances: &[StateInstance], probe: &Probe) -> Loss {
    if instances.is_empty() {
        return Loss::NoState;
    }
    let answer = |address: &str| probe.answers.get(address).copied();
    let present = instances
        .iter()
        .filter(|i| answer(&i.address) == Some(Answer::Present))
        .count();
    let gone_resources: BTreeSet<&str> = instances
        .iter()
        .filter(|i| answer(&i.address) == Some(Answer::Gone))
        .map(|i| i.resource.as_str())
        .collect();
    if present > 0 {
        let all_present = present == instances.len();
        return if all_present {
            Loss::Intact
        } else {
            Loss::Partial
        };
    }
    if gone_resources.is_empty() {
        return Loss::Unknown;
    }
    // A resource that did not answer is taken as gone only when something it was made from
    // answered gone: a subnet's route table association does not outlive the subnet.
    let unanswered_follow_the_gone = instances
        .iter()
        .filter(|i| answer(&i.address).is_none())
        .all(|i| {
            i.dependencies
                .iter()
                .any(|d| gone_resources.contains(d.as_str()))
        });
    if unanswered_follow_the_gone {
        Loss::Lost
    } else {
        Loss::Unknown
    }
}

/// One stack instance's probe.
#[derive(Debug, Clone, Serialize)]
pub struct StackProbe {
    pub stack: String,
    pub loss: Loss,
    /// Managed resource instances in its state.
    pub resources: usize,
    pub present: usize,
    pub gone: usize,
    /// Resources whose refresh had not answered when the probe stopped.
    pub unanswered: usize,
    pub ms: u64,
    /// How long the probe waited (or, had a read hung, would have waited) for one more
    /// answer before deciding ([`Probe::wait_for_more`]).
    pub wait_for_more_ms: u64,
    /// Where its state was set aside (a lost stack's, before it is rebuilt).
    pub backup: Option<PathBuf>,
    /// Why the probe could not tell, when it could not.
    pub error: Option<String>,
}

impl StackProbe {
    fn new(stack: &str, loss: Loss, started: Instant) -> Self {
        Self {
            stack: stack.to_owned(),
            loss,
            resources: 0,
            present: 0,
            gone: 0,
            unanswered: 0,
            ms: millis(started.elapsed()),
            wait_for_more_ms: 0,
            backup: None,
            error: None,
        }
    }
}

/// Probes every stack of `stacks` in the executor's instance, in parallel (up to the
/// executor's parallelism). The outputs of the stacks others depend on are read from their
/// state first, since the stacks' variables are written from them.
pub async fn probe_instance(
    executor: &Arc<Executor>,
    stacks: &BTreeSet<String>,
) -> BTreeMap<String, StackProbe> {
    let project = &executor.project;
    let dependencies: BTreeSet<String> = stacks
        .iter()
        .filter(|s| {
            project
                .graph
                .dependents(s)
                .iter()
                .any(|d| stacks.contains(*d))
        })
        .cloned()
        .collect();
    if !dependencies.is_empty() {
        // A failed read leaves its dependents' inputs unknown: their probe says so.
        let _ = executor.walk(&dependencies, Operation::ReadOutputs).await;
    }
    let limit = Arc::new(tokio::sync::Semaphore::new(executor.parallelism.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for stack in stacks {
        let executor = Arc::clone(executor);
        let limit = Arc::clone(&limit);
        let stack = stack.clone();
        tasks.spawn(async move {
            let _turn = limit.acquire_owned().await;
            let started = Instant::now();
            match probe_stack(&executor, &stack, started).await {
                Ok(probe) => probe,
                Err(error) => {
                    let mut probe = StackProbe::new(&stack, Loss::Unknown, started);
                    probe.error = Some(format!("{error:#}"));
                    probe
                }
            }
        });
    }
    let mut probes = BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        if let Ok(probe) = joined {
            probes.insert(probe.stack.clone(), probe);
        }
    }
    probes
}

async fn probe_stack(executor: &Executor, name: &str, started: Instant) -> Result<StackProbe> {
    let stack = executor
        .project
        .stack(name)
        .with_context(|| format!("unknown stack `{name}`"))?;
    let log = executor.single_log(
        &executor
            .run_dir
            .join(format!("{name}.{}.probe.log", executor.instance)),
    )?;
    let state = read_state(executor, name, &log).await?;
    let instances = state_instances(&state);
    if instances.is_empty() {
        return Ok(StackProbe::new(name, Loss::NoState, started));
    }
    let working_copy = executor.prepare(name).map_err(anyhow::Error::from)?;
    if let Some(Outcome::InputsUnknown { reason }) = executor
        .write_inputs(stack, &working_copy, Operation::Plan, &log)
        .map_err(anyhow::Error::from)?
    {
        let mut probe = StackProbe::new(name, Loss::Unknown, started);
        probe.resources = instances.len();
        probe.error = Some(reason);
        return Ok(probe);
    }
    let credentials = executor.environment.for_stack(name);
    let ctx = executor.single_context(&working_copy, &log, &credentials);
    executor.events.step(name, Step::Init);
    executor.init(ctx, name).await?;
    executor.events.step(name, Step::Refresh);
    let decided = {
        let instances = instances.clone();
        move |probe: &Probe| matches!(classify(&instances, probe), Loss::Lost | Loss::Partial)
    };
    let answers = executor
        .engine
        .probe_refresh(ctx, PROBE_QUIET, decided)
        .await?;
    let loss = classify(&instances, &answers);
    let count = |wanted: Answer| {
        instances
            .iter()
            .filter(|i| answers.answers.get(&i.address) == Some(&wanted))
            .count()
    };
    let mut probe = StackProbe::new(name, loss, started);
    probe.resources = instances.len();
    probe.present = count(Answer::Present);
    probe.gone = count(Answer::Gone);
    probe.unanswered = probe.resources - probe.present - probe.gone;
    probe.wait_for_more_ms = millis(answers.wait_for_more(PROBE_QUIET));
    executor.events.ended(
        name,
        true,
        format!(
            "? {}/{name}: {} ({} of {} gone{})",
            executor.instance,
            loss.describe(),
            probe.gone,
            probe.resources,
            if probe.unanswered > 0 {
                format!(", {} not answering", probe.unanswered)
            } else {
                String::new()
            }
        ),
    );
    Ok(probe)
}

/// A stack instance's state document: the file itself with local state, else `state pull`.
async fn read_state(executor: &Executor, name: &str, log: &slipway_engine::Log) -> Result<Vec<u8>> {
    if let StateBackend::Local { .. } = executor.backend {
        let path = StateBackend::local_state_path(&executor.data_dir, &executor.instance, name);
        return match std::fs::read(&path) {
            Ok(bytes) => Ok(bytes),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(error) => Err(error).with_context(|| format!("cannot read {}", path.display())),
        };
    }
    let working_copy = executor.prepare(name).map_err(anyhow::Error::from)?;
    let credentials = executor.environment.for_stack(name);
    let ctx = executor.single_context(&working_copy, log, &credentials);
    executor.init(ctx, name).await?;
    Ok(executor.engine.state_pull(ctx).await?)
}

/// Sets a lost stack instance's state aside: the state is copied to a backup file under
/// the data folder ([`backup_path`]: `<data>/state-backups/<instance>/<stack>/<stamp>.tfstate`,
/// readable by its owner only) and replaced by an empty state of the same lineage, so the
/// next apply builds the stack from zero. Returns the backup's path. The backup is never
/// deleted by slipway: `terraform state push` of it puts the old state back.
pub async fn set_aside(executor: &Executor, name: &str, stamp: &str) -> Result<PathBuf> {
    let log = executor.single_log(
        &executor
            .run_dir
            .join(format!("{name}.{}.set-aside.log", executor.instance)),
    )?;
    let state = read_state(executor, name, &log).await?;
    let emptied = emptied_state(&state)
        .with_context(|| format!("the state of `{name}` is not a version 4 state"))?;
    // Never over an earlier backup, even one taken in the same second.
    let mut backup = backup_path(&executor.data_dir, &executor.instance, name, stamp);
    let mut attempt = 1;
    while backup.exists() {
        attempt += 1;
        backup = backup_path(
            &executor.data_dir,
            &executor.instance,
            name,
            &format!("{stamp}-{attempt}"),
        );
    }
    write_private(&backup, &state)?;
    log.line(&format!(
        "== slipway: state set aside in {} ==",
        backup.display()
    ));
    if let StateBackend::Local { .. } = executor.backend {
        let path = StateBackend::local_state_path(&executor.data_dir, &executor.instance, name);
        let next = path.with_extension("tfstate.slipway-next");
        write_private(&next, &emptied)?;
        std::fs::rename(&next, &path)
            .with_context(|| format!("cannot replace {}", path.display()))?;
        return Ok(backup);
    }
    let working_copy = executor.prepare(name).map_err(anyhow::Error::from)?;
    let emptied_file = working_copy.stack_dir.join("slipway-emptied.tfstate");
    write_private(&emptied_file, &emptied)?;
    let credentials = executor.environment.for_stack(name);
    let ctx = executor.single_context(&working_copy, &log, &credentials);
    executor.events.step(name, Step::StatePush);
    let pushed = executor.engine.state_push(ctx, &emptied_file).await;
    let _ = std::fs::remove_file(&emptied_file);
    pushed.map_err(|error: StepError| anyhow::Error::from(error))?;
    Ok(backup)
}

/// Writes `bytes` to `path` (its folder made first), readable by its owner only: state can
/// hold secrets.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// A stamp for backup names: UTC, to the second, no characters a file name minds.
pub fn stamp(now: std::time::SystemTime) -> String {
    humantime::format_rfc3339_seconds(now)
        .to_string()
        .replace(['-', ':'], "")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(address: &str, resource: &str, dependencies: &[&str]) -> StateInstance {
        StateInstance {
            address: address.to_owned(),
            resource: resource.to_owned(),
            dependencies: dependencies.iter().map(|d| (*d).to_owned()).collect(),
        }
    }

    /// A VPC, a subnet, a route table and the association between them.
    fn network() -> Vec<StateInstance> {
        vec![
            instance("aws_vpc.main", "aws_vpc.main", &[]),
            instance("aws_subnet.a", "aws_subnet.a", &["aws_vpc.main"]),
            instance(
                "aws_route_table.rt",
                "aws_route_table.rt",
                &["aws_vpc.main"],
            ),
            instance(
                "aws_route_table_association.a[\"x\"]",
                "aws_route_table_association.a",
                &["aws_subnet.a", "aws_route_table.rt"],
            ),
        ]
    }

    fn probe(answers: &[(&str, Answer)], complete: bool) -> Probe {
        Probe {
            answers: answers
                .iter()
                .map(|(a, answer)| ((*a).to_owned(), *answer))
                .collect(),
            pending: BTreeSet::new(),
            complete,
            slowest_answer: std::time::Duration::ZERO,
        }
    }

    #[test]
    fn a_stack_whose_answers_are_all_gone_is_lost_even_before_the_slow_ones_answer() {
        use Answer::Gone;
        let answers = probe(
            &[
                ("aws_vpc.main", Gone),
                ("aws_subnet.a", Gone),
                ("aws_route_table.rt", Gone),
            ],
            false,
        );
        assert_eq!(classify(&network(), &answers), Loss::Lost);
    }

    #[test]
    fn anything_present_means_the_stack_is_applied_on_its_state() {
        use Answer::{Gone, Present};
        let all_present = probe(
            &[
                ("aws_vpc.main", Present),
                ("aws_subnet.a", Present),
                ("aws_route_table.rt", Present),
                ("aws_route_table_association.a[\"x\"]", Present),
            ],
            true,
        );
        assert_eq!(classify(&network(), &all_present), Loss::Intact);
        let one_gone = probe(
            &[
                ("aws_vpc.main", Present),
                ("aws_subnet.a", Gone),
                ("aws_route_table.rt", Present),
            ],
            false,
        );
        assert_eq!(classify(&network(), &one_gone), Loss::Partial);
    }

    #[test]
    fn silence_is_not_taken_for_loss() {
        use Answer::Gone;
        // Nothing answered at all.
        assert_eq!(classify(&network(), &probe(&[], false)), Loss::Unknown);
        // The route table is gone, but the subnet, which nothing gone was made from, did not
        // answer: it may still exist.
        let answers = probe(
            &[("aws_vpc.main", Gone), ("aws_route_table.rt", Gone)],
            false,
        );
        let mut independent = network();
        independent[1].dependencies.clear();
        assert_eq!(classify(&independent, &answers), Loss::Unknown);
        assert_eq!(classify(&[], &answers), Loss::NoState);
    }

    #[test]
    fn stamps_are_file_name_friendly() {
        let at = std::time::UNIX_EPOCH + Duration::from_secs(1_796_166_000);
        assert_eq!(stamp(at), "20261201T230000Z");
    }
}
