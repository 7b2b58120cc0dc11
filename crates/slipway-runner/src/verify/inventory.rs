//! What an instance holds: managed resource types and how many of each, per stack, read from
//! the stack instance's state. Drills compare a rebuilt instance with the stage this way.

use std::collections::BTreeMap;

use anyhow::Result;
use slipway_engine::{Log, Output, StackCredentials, WorkingCopy};

use crate::executor::Executor;

/// Resource type -> number of managed resource instances.
pub type Counts = BTreeMap<String, usize>;

/// The managed resource types and counts in `stack`'s state for the executor's instance
/// (empty when it has no state).
pub async fn resource_counts(executor: &Executor, stack: &str) -> Result<Counts> {
    let state = pull_state(executor, stack).await?;
    Ok(counts_of_state(&state))
}

/// `init` + `state pull` for one stack instance; the bytes stay in memory (state can hold
/// secrets).
pub async fn pull_state(executor: &Executor, stack: &str) -> Result<Vec<u8>> {
    let (working_copy, log, credentials) = initialized(executor, stack, "state").await?;
    let ctx = executor.single_context(&working_copy, &log, &credentials);
    Ok(executor.engine.state_pull(ctx).await?)
}

/// `init` + `output -json` for one stack instance.
pub async fn read_outputs(
    executor: &Executor,
    stack: &str,
) -> Result<(WorkingCopy, BTreeMap<String, Output>)> {
    let (working_copy, log, credentials) = initialized(executor, stack, "outputs").await?;
    let outputs = executor
        .engine
        .output(executor.single_context(&working_copy, &log, &credentials))
        .await?;
    Ok((working_copy, outputs))
}

/// A stack's working copy for the executor's instance, initialised, with a log of its own.
/// The log's name holds the instance: readers of two instances of a stage (a drill's
/// comparison) can share a run folder.
async fn initialized(
    executor: &Executor,
    stack: &str,
    what: &str,
) -> Result<(WorkingCopy, Log, StackCredentials)> {
    let working_copy = executor.prepare(stack).map_err(anyhow::Error::from)?;
    let log = executor.single_log(
        &executor
            .run_dir
            .join(format!("{stack}.{}.{what}.log", executor.instance)),
    )?;
    let credentials = executor.environment.for_stack(stack);
    executor
        .init(
            executor.single_context(&working_copy, &log, &credentials),
            stack,
        )
        .await?;
    Ok((working_copy, log, credentials))
}

/// Counts managed resource instances by type in a state document; anything unreadable
/// (an empty state prints nothing) counts as empty.
pub fn counts_of_state(state: &[u8]) -> Counts {
    let mut counts = Counts::new();
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(state) else {
        return counts;
    };
    for resource in value["resources"].as_array().into_iter().flatten() {
        if resource["mode"] != "managed" {
            continue;
        }
        let Some(kind) = resource["type"].as_str() else {
            continue;
        };
        let instances = resource["instances"].as_array().map_or(0, Vec::len);
        if instances > 0 {
            *counts.entry(kind.to_owned()).or_default() += instances;
        }
    }
    counts
}

/// How one stack's rebuilt instance differs from the stage's: resource types whose counts
/// differ, as `type: stage N, rebuilt M`.
pub fn differences(stage: &Counts, rebuilt: &Counts) -> Vec<String> {
    let mut kinds: Vec<&String> = stage.keys().chain(rebuilt.keys()).collect();
    kinds.sort();
    kinds.dedup();
    kinds
        .into_iter()
        .filter_map(|kind| {
            let (a, b) = (
                stage.get(kind).copied().unwrap_or(0),
                rebuilt.get(kind).copied().unwrap_or(0),
            );
            (a != b).then(|| format!("{kind}: stage {a}, rebuilt {b}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_managed_instances_by_type() {
        let state = br#"{"resources":[
            {"mode":"managed","type":"aws_subnet","name":"private","instances":[{},{}]},
            {"mode":"managed","type":"aws_vpc","name":"main","instances":[{}]},
            {"mode":"data","type":"aws_caller_identity","name":"me","instances":[{}]},
            {"mode":"managed","type":"aws_s3_bucket","name":"gone","instances":[]}
        ]}"#;
        let counts = counts_of_state(state);
        assert_eq!(
            counts,
            Counts::from([("aws_subnet".into(), 2), ("aws_vpc".into(), 1)])
        );
        assert!(counts_of_state(b"").is_empty());
    }

    #[test]
    fn differences_name_the_type_and_both_counts() {
        let stage = Counts::from([("aws_subnet".into(), 2), ("aws_vpc".into(), 1)]);
        let rebuilt = Counts::from([("aws_subnet".into(), 1), ("aws_vpc".into(), 1)]);
        assert_eq!(
            differences(&stage, &rebuilt),
            vec!["aws_subnet: stage 2, rebuilt 1"]
        );
        assert!(differences(&stage, &stage).is_empty());
    }
}
