//! The generated plans the benchmarks measure (`benches/analyze.rs` here, the CLI path's
//! `slipway-runner/benches/plan_stream.rs`) and what they read of a process. Not part of
//! the crate's API.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

/// The `jq` filter computing what [`generate`] returns: the count of each `actions` array,
/// joined with commas.
pub const JQ_FILTER: &str =
    r#"[.resource_changes[].change.actions|join(",")]|group_by(.)|map({(.[0]):length})|add"#;

/// One headline figure of a plan benchmark, as a line `cargo xtask bench plan` collects
/// into its table: `figure`, then name, measured value, target and `met` or `MISSED` (or
/// `context` for a figure reported beside the targets, with none of its own), tab
/// separated.
pub fn figure_line(name: &str, measured: &str, target: &str, met: Option<bool>) -> String {
    let verdict = match met {
        Some(true) => "met",
        Some(false) => "MISSED",
        None => "context",
    };
    format!("figure\t{name}\t{measured}\t{target}\t{verdict}")
}

/// The plan analysis targets, on the generated plan read from a file: at least this many
/// times faster than `jq`...
pub const SPEED_TARGET: f64 = 20.0;
/// ...with a peak memory at most this many times the plan's size, on either path.
pub const MEMORY_TARGET: f64 = 1.0;

/// Whether a path's speed against `jq` is held to [`SPEED_TARGET`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speed {
    /// The reader on the plan file: the speed target is this path's.
    Target,
    /// Reported beside it: the CLI's path, where the engine's pipe is part of the time.
    Context,
}

/// The two figure lines a plan benchmark ends with, for the path it measured (`path`, such
/// as `file`): its speed against `jq` and its peak memory against the plan's size.
pub fn figure_lines(path: &str, speed: Speed, speed_ratio: f64, memory_ratio: f64) -> String {
    let (target, met) = match speed {
        Speed::Target => (
            format!("at least {SPEED_TARGET}x"),
            Some(speed_ratio >= SPEED_TARGET),
        ),
        Speed::Context => (
            format!("context: the {SPEED_TARGET}x target is the file's"),
            None,
        ),
    };
    let speed = figure_line(
        &format!("plan analysis: speed against jq ({path})"),
        &format!("{speed_ratio:.1}x"),
        &target,
        met,
    );
    let memory = figure_line(
        &format!("plan analysis: peak memory ({path})"),
        &format!("{memory_ratio:.2}x the file"),
        &format!("at most {MEMORY_TARGET}x"),
        Some(memory_ratio <= MEMORY_TARGET),
    );
    format!("{speed}\n{memory}")
}

/// This process's peak resident memory (VmHWM), in KiB.
pub fn peak_memory_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A small deterministic generator, so runs are comparable.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

const ACTIONS: [(&str, u64); 8] = [
    (r#"["create"]"#, 35),
    (r#"["update"]"#, 25),
    (r#"["no-op"]"#, 20),
    (r#"["delete"]"#, 6),
    (r#"["delete","create"]"#, 5),
    (r#"["create","delete"]"#, 4),
    (r#"["read"]"#, 3),
    (r#"["forget"]"#, 2),
];

const TYPES: [&str; 6] = [
    "aws_s3_bucket",
    "aws_instance",
    "aws_security_group",
    "kubernetes_manifest",
    "aws_db_instance",
    "aws_iam_role",
];

/// A nested value like a resource's attributes: tags, blocks and, for manifests, a deep
/// Kubernetes-style document.
fn attributes(rng: &mut Lcg, index: usize, resource_type: &str, version: u64) -> String {
    let manifest = if resource_type == "kubernetes_manifest" {
        format!(
            r#","manifest":{{"apiVersion":"apps/v1","kind":"Deployment","metadata":{{"name":"app-{index}","labels":{{"app":"app-{index}","tier":"web"}}}},"spec":{{"replicas":{},"template":{{"spec":{{"containers":[{{"name":"app","image":"registry.example/app:{version}","env":[{{"name":"MODE","value":"prod"}},{{"name":"LEVEL","value":"{}"}}],"resources":{{"limits":{{"cpu":"500m","memory":"256Mi"}}}}}}]}}}}}}}}"#,
            rng.next() % 5 + 1,
            rng.next() % 3
        )
    } else {
        String::new()
    };
    format!(
        r#"{{"id":"id-{index}","arn":"arn:aws:service:eu-west-1:123456789012:{resource_type}/r-{index}","name":"resource-{index}","tags":{{"team":"platform","env":"prod","version":"{version}"}},"ingress":[{{"from_port":443,"to_port":443,"protocol":"tcp","cidr_blocks":["10.0.0.0/8","172.16.0.0/12"]}}],"enabled":true,"size":{}{manifest}}}"#,
        rng.next() % 1000
    )
}

/// Writes a plan of `resources` resource changes with mixed actions and realistic nested
/// values, and returns the per-action counts it contains (as [`JQ_FILTER`] computes them).
pub fn generate(path: &Path, resources: usize) -> std::io::Result<BTreeMap<String, u64>> {
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let mut rng = Lcg(42);
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let total_weight: u64 = ACTIONS.iter().map(|(_, w)| w).sum();
    write!(
        out,
        r#"{{"format_version":"1.2","terraform_version":"1.11.4","planned_values":{{"root_module":{{"resources":[]}}}},"resource_changes":["#
    )?;
    for index in 0..resources {
        let mut pick = rng.next() % total_weight;
        let mut actions = ACTIONS[0].0;
        for (candidate, weight) in ACTIONS {
            if pick < weight {
                actions = candidate;
                break;
            }
            pick -= weight;
        }
        let joined: String = serde_json::from_str::<Vec<String>>(actions)
            .map(|a| a.join(","))
            .unwrap_or_default();
        *counts.entry(joined).or_default() += 1;
        let resource_type = TYPES[(rng.next() % TYPES.len() as u64) as usize];
        let before = if actions == r#"["create"]"# || actions == r#"["read"]"# {
            "null".to_string()
        } else {
            attributes(&mut rng, index, resource_type, 1)
        };
        let after = if actions == r#"["delete"]"# || actions == r#"["forget"]"# {
            "null".to_string()
        } else {
            let version = if actions == r#"["no-op"]"# { 1 } else { 2 };
            attributes(&mut rng, index, resource_type, version)
        };
        let separator = if index == 0 { "" } else { "," };
        write!(
            out,
            r#"{separator}{{"address":"module.m{m}.{resource_type}.r{index}","module_address":"module.m{m}","mode":"managed","type":"{resource_type}","name":"r{index}","provider_name":"registry.terraform.io/hashicorp/aws","change":{{"actions":{actions},"before":{before},"after":{after},"after_unknown":{{"arn":true,"ingress":[{{"cidr_blocks":[false,false]}}]}},"before_sensitive":{{"tags":{{}}}},"after_sensitive":{{"tags":{{}}}}}}}}"#,
            m = index % 50,
        )?;
    }
    write!(
        out,
        r#"],"output_changes":{{}},"prior_state":{{"values":{{"root_module":{{}}}}}},"configuration":{{"root_module":{{}}}}}}"#
    )?;
    out.flush()?;
    Ok(counts)
}
