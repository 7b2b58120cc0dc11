//! The blast radius of one stack instance's plan: what it does, what data it could lose,
//! which downstream stacks read what it changes, and one comparable score.
//! The score's formula is documented in docs/blast-radius.md; keep the two in step.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::model::{Action, ActionKind, Plan};
use crate::stateful::StatefulTypes;

/// Which stacks read which outputs, filled by the caller from the stack graph.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StackLinks {
    /// (stack, output) -> the (stack, input) pairs whose inputs read that output.
    pub consumers: BTreeMap<(String, String), Vec<(String, String)>>,
    /// stack -> the stacks that depend on it (consume any of its outputs).
    pub dependents: BTreeMap<String, Vec<String>>,
}

impl StackLinks {
    /// Records that `consumer`'s input `input` reads `stack`'s output `output`, and so that
    /// `consumer` depends on `stack`.
    pub fn link(&mut self, stack: &str, output: &str, consumer: &str, input: &str) {
        self.consumers
            .entry((stack.to_string(), output.to_string()))
            .or_default()
            .push((consumer.to_string(), input.to_string()));
        let dependents = self.dependents.entry(stack.to_string()).or_default();
        if !dependents.iter().any(|d| d == consumer) {
            dependents.push(consumer.to_string());
        }
    }
}

/// Resource changes per action kind, plus the import and move flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionCounts {
    pub create: u64,
    pub update: u64,
    pub replace: u64,
    pub delete: u64,
    pub forget: u64,
    pub read: u64,
    #[serde(rename = "no-op")]
    pub no_op: u64,
    pub import: u64,
    #[serde(rename = "move")]
    pub moves: u64,
}

impl ActionCounts {
    pub fn get(&self, kind: ActionKind) -> u64 {
        match kind {
            ActionKind::Create => self.create,
            ActionKind::Update => self.update,
            ActionKind::Replace => self.replace,
            ActionKind::Delete => self.delete,
            ActionKind::Forget => self.forget,
            ActionKind::Read => self.read,
            ActionKind::NoOp => self.no_op,
        }
    }

    fn slot(&mut self, kind: ActionKind) -> &mut u64 {
        match kind {
            ActionKind::Create => &mut self.create,
            ActionKind::Update => &mut self.update,
            ActionKind::Replace => &mut self.replace,
            ActionKind::Delete => &mut self.delete,
            ActionKind::Forget => &mut self.forget,
            ActionKind::Read => &mut self.read,
            ActionKind::NoOp => &mut self.no_op,
        }
    }

    /// Adds another instance's counts (for run totals).
    pub fn add(&mut self, other: &ActionCounts) {
        for kind in ActionKind::ALL {
            *self.slot(kind) += other.get(kind);
        }
        self.import += other.import;
        self.moves += other.moves;
    }

    /// Changes that alter infrastructure or state (everything but reads and no-ops).
    pub fn changes(&self) -> u64 {
        self.create + self.update + self.replace + self.delete + self.forget
    }
}

/// A delete or replace of a stateful resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataLossRisk {
    pub address: String,
    #[serde(rename = "type")]
    pub resource_type: String,
    pub action: Action,
}

/// An output whose value the plan changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangedOutput {
    pub name: String,
    pub action: Action,
    pub sensitive: bool,
}

/// An input of a downstream stack that reads a changed output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkedInput {
    pub output: String,
    pub input: String,
}

/// A stack reached by the change: directly (depth 1, through `inputs`) or transitively
/// (depth > 1, `through` the stack it depends on).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownstreamStack {
    pub stack: String,
    pub depth: u32,
    pub inputs: Vec<LinkedInput>,
    pub through: Option<String>,
}

/// A resource moved to a new address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Move {
    pub from: String,
    pub to: String,
}

/// A resource changed outside Terraform since the last apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drifted {
    pub address: String,
    pub action: Action,
    pub changed_attributes: Vec<String>,
}

/// The measured impact of one stack instance's plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlastRadius {
    pub counts: ActionCounts,
    /// Resource changes per exact `actions` array, joined with commas (`"delete,create"`).
    pub actions: BTreeMap<String, u64>,
    /// Addresses per action kind; no-ops are counted but not listed.
    pub addresses: BTreeMap<ActionKind, Vec<String>>,
    pub imports: Vec<String>,
    pub moves: Vec<Move>,
    pub data_loss: Vec<DataLossRisk>,
    pub changed_outputs: Vec<ChangedOutput>,
    pub downstream: Vec<DownstreamStack>,
    pub drift: Vec<Drifted>,
    pub score: f64,
}

/// Score weights; see docs/blast-radius.md.
pub mod weights {
    pub const CREATE: f64 = 1.0;
    pub const UPDATE: f64 = 2.0;
    pub const REPLACE: f64 = 6.0;
    pub const DELETE: f64 = 5.0;
    pub const FORGET: f64 = 1.0;
    pub const IMPORT: f64 = 1.0;
    pub const MOVE: f64 = 1.0;
    pub const DATA_LOSS: f64 = 20.0;
    pub const CHANGED_OUTPUT: f64 = 2.0;
    pub const DIRECT_DOWNSTREAM: f64 = 10.0;
    pub const TRANSITIVE_DOWNSTREAM: f64 = 5.0;
}

/// Measures `plan`, the plan of an instance of `stack`.
pub fn blast_radius(
    stack: &str,
    plan: &Plan,
    stateful: &StatefulTypes,
    links: &StackLinks,
) -> BlastRadius {
    let mut counts = ActionCounts::default();
    // Counted by action, then named: no string per change.
    let mut per_action: BTreeMap<Action, u64> = BTreeMap::new();
    // Whether each resource type seen destroyed is stateful, matched once per type.
    let mut stateful_types: BTreeMap<&str, bool> = BTreeMap::new();
    let mut addresses: BTreeMap<ActionKind, Vec<String>> = BTreeMap::new();
    let mut imports = Vec::new();
    let mut moves = Vec::new();
    let mut data_loss = Vec::new();
    for change in &plan.resource_changes {
        let kind = change.action.kind();
        *counts.slot(kind) += 1;
        *per_action.entry(change.action).or_default() += 1;
        if kind != ActionKind::NoOp {
            addresses
                .entry(kind)
                .or_default()
                .push(change.address.clone());
        }
        if change.importing {
            counts.import += 1;
            imports.push(change.address.clone());
        }
        if let Some(from) = change.previous_address.as_ref().filter(|_| change.moved()) {
            counts.moves += 1;
            moves.push(Move {
                from: from.clone(),
                to: change.address.clone(),
            });
        }
        let is_stateful = |resource_type: &str| stateful.is_stateful(resource_type);
        if change.action.destroys()
            && *stateful_types
                .entry(&change.resource_type)
                .or_insert_with_key(|resource_type| is_stateful(resource_type))
        {
            data_loss.push(DataLossRisk {
                address: change.address.clone(),
                resource_type: change.resource_type.clone(),
                action: change.action,
            });
        }
    }
    let actions: BTreeMap<String, u64> = per_action
        .into_iter()
        .map(|(action, count)| (action.as_actions_str().to_string(), count))
        .collect();
    let changed_outputs: Vec<ChangedOutput> = plan
        .output_changes
        .iter()
        .filter(|output| !matches!(output.action, Action::NoOp | Action::Read))
        .map(|output| ChangedOutput {
            name: output.name.clone(),
            action: output.action,
            sensitive: output.sensitive,
        })
        .collect();
    let downstream = downstream(stack, &changed_outputs, links);
    let drift = plan
        .resource_drift
        .iter()
        .filter(|change| change.action != Action::NoOp)
        .map(|change| Drifted {
            address: change.address.clone(),
            action: change.action,
            changed_attributes: change.changed_attributes.clone(),
        })
        .collect();
    let score = score(&counts, data_loss.len(), changed_outputs.len(), &downstream);
    BlastRadius {
        counts,
        actions,
        addresses,
        imports,
        moves,
        data_loss,
        changed_outputs,
        downstream,
        drift,
        score,
    }
}

fn score(
    counts: &ActionCounts,
    data_loss: usize,
    changed_outputs: usize,
    downstream: &[DownstreamStack],
) -> f64 {
    use weights::*;
    let direct = downstream.iter().filter(|d| d.depth == 1).count();
    let transitive = downstream.len() - direct;
    // u64 -> f64 is exact below 2^53 resource changes.
    CREATE * counts.create as f64
        + UPDATE * counts.update as f64
        + REPLACE * counts.replace as f64
        + DELETE * counts.delete as f64
        + FORGET * counts.forget as f64
        + IMPORT * counts.import as f64
        + MOVE * counts.moves as f64
        + DATA_LOSS * data_loss as f64
        + CHANGED_OUTPUT * changed_outputs as f64
        + DIRECT_DOWNSTREAM * direct as f64
        + TRANSITIVE_DOWNSTREAM * transitive as f64
}

/// The stacks whose inputs read a changed output, then their dependents, breadth first so
/// each stack gets its shortest depth.
fn downstream(
    stack: &str,
    changed_outputs: &[ChangedOutput],
    links: &StackLinks,
) -> Vec<DownstreamStack> {
    let mut found: BTreeMap<String, DownstreamStack> = BTreeMap::new();
    for output in changed_outputs {
        let key = (stack.to_string(), output.name.clone());
        for (consumer, input) in links.consumers.get(&key).into_iter().flatten() {
            if consumer == stack {
                continue;
            }
            found
                .entry(consumer.clone())
                .or_insert_with(|| DownstreamStack {
                    stack: consumer.clone(),
                    depth: 1,
                    inputs: Vec::new(),
                    through: None,
                })
                .inputs
                .push(LinkedInput {
                    output: output.name.clone(),
                    input: input.clone(),
                });
        }
    }
    let mut queue: VecDeque<(String, u32)> = found.keys().map(|s| (s.clone(), 1)).collect();
    let mut seen: BTreeSet<String> = found.keys().cloned().collect();
    seen.insert(stack.to_string());
    while let Some((current, depth)) = queue.pop_front() {
        for dependent in links.dependents.get(&current).into_iter().flatten() {
            if seen.insert(dependent.clone()) {
                found.insert(
                    dependent.clone(),
                    DownstreamStack {
                        stack: dependent.clone(),
                        depth: depth + 1,
                        inputs: Vec::new(),
                        through: Some(current.clone()),
                    },
                );
                queue.push_back((dependent.clone(), depth + 1));
            }
        }
    }
    let mut downstream: Vec<DownstreamStack> = found.into_values().collect();
    downstream.sort_by(|a, b| a.depth.cmp(&b.depth).then_with(|| a.stack.cmp(&b.stack)));
    downstream
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::OutputChange;

    fn plan_with_outputs(outputs: &[(&str, Action)]) -> Plan {
        Plan {
            format_version: "1.2".into(),
            terraform_version: None,
            resource_changes: Vec::new(),
            resource_drift: Vec::new(),
            output_changes: outputs
                .iter()
                .map(|(name, action)| OutputChange {
                    name: (*name).into(),
                    action: *action,
                    sensitive: false,
                })
                .collect(),
        }
    }

    #[test]
    fn downstream_is_transitive_and_cycle_safe() {
        let mut links = StackLinks::default();
        links.link("network", "vpc_id", "cluster", "vpc_id");
        links.link("network", "vpc_id", "database", "vpc_id");
        links.link("network", "zone_id", "dns", "zone_id");
        links.link("cluster", "endpoint", "apps", "cluster_endpoint");
        links.link("apps", "url", "network", "apps_url");
        let plan = plan_with_outputs(&[("vpc_id", Action::Update), ("zone_id", Action::NoOp)]);
        let radius = blast_radius("network", &plan, &StatefulTypes::builtin(), &links);
        let reached: Vec<(&str, u32, Option<&str>)> = radius
            .downstream
            .iter()
            .map(|d| (d.stack.as_str(), d.depth, d.through.as_deref()))
            .collect();
        assert_eq!(
            reached,
            vec![
                ("cluster", 1, None),
                ("database", 1, None),
                ("apps", 2, Some("cluster"))
            ]
        );
        // 1 changed output, 2 direct and 1 transitive stacks.
        assert_eq!(radius.score, 2.0 + 20.0 + 5.0);
    }
}
