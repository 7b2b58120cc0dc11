//! Ephemeral instances: a copy of a stage's stacks with a unique name (`drill-3f9a`), its
//! own state, and that name passed to the stacks as `instance.name`, so its resources do not
//! collide with the long-lived instance's. Each is on record from before anything is built
//! until every stack is destroyed, so a run that dies leaves a leftover `slipway gc` finds.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use slipway_core::Stage;
use slipway_store::{AnyStore, NewInstance, VerificationRecord as _};

use crate::executor::CodeSource;
use crate::executor::{Executor, Operation, Outcome, StackResult};
use crate::project::Workspace;
use crate::stage_executor::{ExecutorOptions, executor_for};
use crate::verify::inventory;

/// A unique-enough name: `<purpose>-<4 hex digits>`, from the seed (a run id), the time and
/// the process. Short, because stacks put it into resource names with length limits.
pub fn ephemeral_name(purpose: &str, seed: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(seed.as_bytes());
    hash.update(format!("{:?}", std::time::SystemTime::now()).as_bytes());
    hash.update(std::process::id().to_le_bytes());
    let digest = hash.finalize();
    format!("{purpose}-{:02x}{:02x}", digest[0], digest[1])
}

/// Records a new ephemeral instance of `stage` for `purpose` and returns its name; a name
/// already on record is drawn again.
pub async fn create(
    store: &AnyStore,
    stage: &Stage,
    purpose: &str,
    run_id: Option<i64>,
) -> Result<String> {
    let mut last = None;
    for attempt in 0..5 {
        let name = ephemeral_name(purpose, &format!("{}:{attempt}", stage.name));
        let recorded = store
            .record_instance(&NewInstance {
                name: name.clone(),
                purpose: purpose.to_owned(),
                stage: stage.name.clone(),
                run_id,
            })
            .await;
        match recorded {
            Ok(_) => return Ok(name),
            Err(error) => last = Some(error),
        }
    }
    Err(last.map_or_else(
        || anyhow::anyhow!("cannot record the ephemeral instance"),
        |e| anyhow::Error::new(e).context("cannot record the ephemeral instance"),
    ))
}

/// An executor for `instance` of `stage`: the stage's variables (with `instance.name` set to
/// the instance), credentials and generated files, code from `code`, and no blast radius
/// policy, since an ephemeral instance holds nothing anyone depends on.
pub fn executor(
    workspace: &Workspace,
    stage: &Stage,
    instance: &str,
    stacks: &BTreeSet<String>,
    options: &ExecutorOptions,
    code: CodeSource,
) -> Result<Arc<Executor>> {
    let mut unpoliced = stage.clone();
    unpoliced.policy = None;
    let executor = executor_for(workspace, &unpoliced, stacks, options)?;
    let mut executor = Arc::try_unwrap(executor)
        .map_err(|_| anyhow::anyhow!("internal error: the executor is shared too early"))?;
    executor.instance = instance.to_owned();
    executor.code = code;
    executor.events = executor.events.for_instance(instance);
    Ok(Arc::new(executor))
}

/// How a teardown went.
#[derive(Debug)]
pub struct Teardown {
    pub results: Vec<StackResult>,
    pub elapsed: Duration,
}

impl Teardown {
    pub fn succeeded(&self) -> bool {
        self.results.iter().all(|r| !r.outcome.is_failure())
    }

    /// The stacks that were not destroyed, with why.
    pub fn failures(&self) -> Vec<String> {
        self.results
            .iter()
            .filter(|r| r.outcome.is_failure())
            .map(|r| match &r.outcome {
                Outcome::Failed { error } => format!("{}: {error}", r.stack),
                other => format!("{}: {other:?}", r.stack),
            })
            .collect()
    }
}

/// Destroys every stack of `instance` that holds resources, dependents first, and marks the
/// instance destroyed on record once nothing is left. A fresh executor (and so a fresh
/// interrupt) is used: the teardown must run even after Ctrl-C stopped the build.
pub async fn teardown(
    workspace: &Workspace,
    store: &AnyStore,
    stage: &Stage,
    instance: &str,
    code: CodeSource,
    options: &ExecutorOptions,
) -> Result<Teardown> {
    let started = Instant::now();
    let all: BTreeSet<String> = workspace
        .project
        .stacks
        .iter()
        .map(|s| s.name.clone())
        .collect();
    let executor = executor(workspace, stage, instance, &all, options, code)?;
    let mut holding = BTreeSet::new();
    for stack in &all {
        let counts = inventory::resource_counts(&executor, stack)
            .await
            .with_context(|| format!("cannot read the state of `{stack}` in `{instance}`"))?;
        if counts.values().sum::<usize>() > 0 {
            holding.insert(stack.clone());
        }
    }
    let mut results = Vec::new();
    if !holding.is_empty() {
        // Dependents' inputs come from their dependencies' outputs: read them all while
        // everything still exists, then destroy in reverse dependency order.
        let read = executor.walk(&holding, Operation::ReadOutputs).await;
        results.extend(read.into_iter().filter(|r| r.outcome.is_failure()));
        if results.is_empty() {
            results = executor.walk(&holding, Operation::Destroy).await;
        }
    }
    let teardown = Teardown {
        results,
        elapsed: started.elapsed(),
    };
    if teardown.succeeded() {
        store
            .instance_destroyed(instance)
            .await
            .context("cannot record that the instance was destroyed")?;
    }
    Ok(teardown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_purpose_and_four_hex_digits() {
        let name = ephemeral_name("drill", "run-1");
        let (purpose, suffix) = name.split_once('-').unwrap();
        assert_eq!(purpose, "drill");
        assert_eq!(suffix.len(), 4);
        assert!(suffix.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn names_differ_between_seeds() {
        let names: BTreeSet<String> = (0..20)
            .map(|i| ephemeral_name("zero", &format!("run-{i}")))
            .collect();
        // 20 draws from 65536: a collision here means the seed is ignored.
        assert!(names.len() >= 19, "{names:?}");
    }
}
