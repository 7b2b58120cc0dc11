//! Benchmark: slipway's plan analysis against `jq` on a generated 100,000-resource plan.
//!
//! Generates a plan JSON with mixed actions and realistic nested values into a temporary
//! file, then times, in the same run, (a) slipway reading and measuring it in a child
//! process (this binary re-executed with `--child PATH`, so its peak memory, VmHWM, is its
//! own) and (b) `jq` computing the same per-action counts. Both counts must agree.
//! Targets: at least 5x faster than jq; peak memory under twice the file's size.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use slipway_plan::{StackLinks, StatefulTypes, blast_radius, read_plan_file};

const RESOURCES: usize = 100_000;
const RUNS: usize = 3;
const JQ_FILTER: &str =
    r#"[.resource_changes[].change.actions|join(",")]|group_by(.)|map({(.[0]):length})|add"#;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--child") {
        return match args.get(at + 1) {
            Some(path) => child(Path::new(path)),
            None => {
                eprintln!("--child needs a plan path");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(at) = args.iter().position(|a| a == "--generate") {
        // Writes the plan only, for profiling the child by hand.
        return match args.get(at + 1).map(|path| generate(Path::new(path))) {
            Some(Ok(_)) => ExitCode::SUCCESS,
            _ => ExitCode::FAILURE,
        };
    }
    match parent() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("benchmark failed: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The measured work: read the plan and compute its blast radius, then report the
/// per-action counts and this process's peak resident memory.
fn child(path: &Path) -> ExitCode {
    let plan = match read_plan_file(path) {
        Ok(plan) => plan,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    let radius = blast_radius(
        "bench",
        &plan,
        &StatefulTypes::builtin(),
        &StackLinks::default(),
    );
    let peak_kib = peak_memory_kib().unwrap_or(0);
    let counts = serde_json::to_string(&radius.actions).unwrap_or_default();
    println!("{counts}");
    println!("{peak_kib}");
    ExitCode::SUCCESS
}

fn peak_memory_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn parent() -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path().join("plan.json");
    let started = Instant::now();
    let expected = generate(&path).map_err(|e| format!("generating the plan: {e}"))?;
    let size = std::fs::metadata(&path).map_err(|e| e.to_string())?.len();
    println!(
        "generated {RESOURCES} resource changes, {:.1} MB, in {:.2?}",
        size as f64 / 1e6,
        started.elapsed()
    );

    // Best of a few runs each, alternating, so load from other processes on the machine
    // skews neither side more than the other.
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut slipway_time = Duration::MAX;
    let mut jq_time = Duration::MAX;
    let mut slipway_counts = BTreeMap::new();
    let mut jq_counts = BTreeMap::new();
    let mut peak_kib: u64 = 0;
    for _ in 0..RUNS {
        let (output, elapsed) = timed(Command::new(&exe).arg("--child").arg(&path))?;
        slipway_time = slipway_time.min(elapsed);
        let mut lines = output.lines();
        slipway_counts =
            serde_json::from_str(lines.next().unwrap_or_default()).map_err(|e| e.to_string())?;
        let peak: u64 = lines
            .next()
            .and_then(|l| l.trim().parse().ok())
            .ok_or("child reported no peak memory")?;
        peak_kib = peak_kib.max(peak);

        let (jq_output, elapsed) = timed(Command::new("jq").arg("-c").arg(JQ_FILTER).arg(&path))?;
        jq_time = jq_time.min(elapsed);
        jq_counts = serde_json::from_str(jq_output.trim()).map_err(|e| e.to_string())?;
    }

    if slipway_counts != jq_counts || slipway_counts != expected {
        return Err(format!(
            "counts disagree:\n  slipway   {slipway_counts:?}\n  jq        {jq_counts:?}\n  generated {expected:?}"
        ));
    }
    let ratio = jq_time.as_secs_f64() / slipway_time.as_secs_f64();
    let peak = peak_kib * 1024;
    let memory_ratio = peak as f64 / size as f64;
    println!("counts agree: {slipway_counts:?}");
    println!(
        "best of {RUNS}: slipway {slipway_time:.2?}, jq {jq_time:.2?}:  slipway is {ratio:.1}x faster (target >= 5x)"
    );
    println!(
        "slipway peak memory (VmHWM): {:.1} MB = {memory_ratio:.2}x the file's {:.1} MB (target < 2x)",
        peak as f64 / 1e6,
        size as f64 / 1e6
    );
    println!(
        "targets: speed {}, memory {}",
        if ratio >= 5.0 { "met" } else { "MISSED" },
        if memory_ratio < 2.0 { "met" } else { "MISSED" }
    );
    Ok(())
}

fn timed(command: &mut Command) -> Result<(String, Duration), String> {
    let started = Instant::now();
    let output = command.output().map_err(|e| format!("{command:?}: {e}"))?;
    let elapsed = started.elapsed();
    if !output.status.success() {
        return Err(format!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok((
        String::from_utf8_lossy(&output.stdout).into_owned(),
        elapsed,
    ))
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

/// Writes the plan and returns the per-action counts it contains.
fn generate(path: &Path) -> std::io::Result<BTreeMap<String, u64>> {
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let mut rng = Lcg(42);
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let total_weight: u64 = ACTIONS.iter().map(|(_, w)| w).sum();
    write!(
        out,
        r#"{{"format_version":"1.2","terraform_version":"1.11.4","planned_values":{{"root_module":{{"resources":[]}}}},"resource_changes":["#
    )?;
    for index in 0..RESOURCES {
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
