//! `cargo xtask bench apply`: examples/webshop applied to a fresh stage by slipway, against
//! the script teams write first (a sequential loop of `terraform init`, `plan`, `apply` and
//! `output` per stack, outputs passed by hand), in the same run on the same sandbox.
//!
//! Two targets: slipway's wall time at most 0.65x the loop's total, and at most 1.0x the
//! loop's critical path, that is, the heaviest chain of stacks through the graph when each
//! stack costs what its init, plan, apply and output took in the loop. Parallel stacks
//! alone bring slipway near the critical path; getting under it takes work off that path
//! (a dependent's `init` done while what it depends on applies). So that one root stack
//! dominates, as in real platforms where the network takes longest, both copies of the
//! webshop get extra network resources (`bench_network.tf`).
//!
//! slipway applies stage `dev` and the loop applies stage `test`, so both run against one
//! moto without their resource names colliding. Each starts from empty state and an empty
//! provider cache. moto loads each AWS service on its first request, which costs seconds:
//! every run warms a fresh moto with one read of each service first, and the two sides take
//! turns going first, so neither pays for the other's cold start.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use slipway_core::graph::StackGraph;
use slipway_sandbox::{Moto, Sandbox, default_dir};

use crate::figure::Figure;
use crate::section;
use crate::support::{copy_tree, slipway_binary, target_dir};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Use this slipway binary instead of building `target/release/slipway`.
    #[arg(long, value_name = "PATH")]
    slipway: Option<PathBuf>,
    /// How many times to run each side (fresh state each time); the median counts.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// How many extra subnets, route tables and associations the network stack gets: the
    /// more, the more it dominates the other root stacks.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u16).range(0..=240))]
    network_subnets: u16,
}

/// The webshop's stacks in the order a hand-written loop applies them, with the inputs
/// each takes from earlier stacks' outputs (input, stack, output).
/// (input, stack, output): an input of one stack taken from another's output.
type Wire = (&'static str, &'static str, &'static str);

const LOOP: &[(&str, &[Wire])] = &[
    ("network", &[]),
    ("data", &[]),
    ("queue", &[]),
    (
        "app",
        &[
            ("vpc_id", "network", "vpc_id"),
            ("table_arn", "data", "table_arn"),
            ("queue_arn", "queue", "queue_arn"),
        ],
    ),
];

pub fn run(args: Args) -> Result<Vec<Figure>> {
    let sandbox = Sandbox::ensure_installed(&default_dir()).context("installing the sandbox")?;
    let slipway = slipway_binary(args.slipway.as_deref(), &target_dir())?;
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/webshop");
    let mut slipway_times = Vec::new();
    let mut loop_times = Vec::new();
    let mut stack_times: BTreeMap<String, f64> = BTreeMap::new();
    let mut loop_stack_times: BTreeMap<String, f64> = BTreeMap::new();
    let mut slipway_busy = Vec::new();
    let mut loop_busy = Vec::new();
    for run in 1..=args.runs.max(1) {
        let moto = sandbox.start_moto().context("starting moto")?;
        moto.inventory().context("warming moto up")?;
        let work = tempfile::tempdir()?;
        for side in ["slipway", "loop"] {
            copy_tree(&example, &work.path().join(side))?;
            std::fs::write(
                work.path()
                    .join(side)
                    .join("stacks/network/bench_network.tf"),
                dominant_network(usize::from(args.network_subnets)),
            )?;
        }
        for side in if run % 2 == 1 { [0, 1] } else { [1, 0] } {
            if side == 0 {
                section(&format!("run {run}: slipway apply --stage dev"));
                let cpu = MachineCpu::now();
                let (elapsed, per_stack) =
                    time_slipway(&slipway, &work.path().join("slipway"), &moto)?;
                let busy = cpu.busy_core_seconds(elapsed);
                eprintln!(
                    "slipway: {:.1}s, {}",
                    elapsed.as_secs_f64(),
                    describe_busy(busy, elapsed)
                );
                slipway_times.push(elapsed);
                slipway_busy.extend(busy);
                stack_times = per_stack;
            } else {
                section(&format!("run {run}: sequential terraform loop, stage test"));
                let cpu = MachineCpu::now();
                let (elapsed, per_stack) = time_loop(&sandbox, &work.path().join("loop"), &moto)?;
                let busy = cpu.busy_core_seconds(elapsed);
                eprintln!(
                    "loop: {:.1}s, {}",
                    elapsed.as_secs_f64(),
                    describe_busy(busy, elapsed)
                );
                loop_times.push(elapsed);
                loop_busy.extend(busy);
                loop_stack_times = per_stack;
            }
        }
    }
    let slipway = median(&mut slipway_times);
    let baseline = median(&mut loop_times);
    let ratio = slipway.as_secs_f64() / baseline.as_secs_f64();

    let graph = StackGraph::from_edges(LOOP.iter().map(|(stack, inputs)| {
        (
            *stack,
            inputs.iter().map(|(_, from, _)| *from).collect::<Vec<_>>(),
        )
    }));
    let (path, critical) = graph.critical_path(|s| loop_stack_times.get(s).copied().unwrap_or(0.0));
    let to_path = slipway.as_secs_f64() / critical;
    let per_stack = |times: &BTreeMap<String, f64>| {
        times
            .iter()
            .map(|(s, t)| format!("{s} {t:.1}s"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    section("result");
    println!(
        "sequential loop (init/plan/apply/output per stack): {:.1}s ({})",
        baseline.as_secs_f64(),
        per_stack(&loop_stack_times)
    );
    println!("its critical path: {} = {critical:.1}s", path.join(" -> "));
    println!(
        "slipway apply --stage dev:                          {:.1}s ({})",
        slipway.as_secs_f64(),
        per_stack(&stack_times)
    );
    println!(
        "slipway / loop: {ratio:.2}x (target: at most 0.65x) {}",
        if ratio <= 0.65 { "ok" } else { "OVER TARGET" }
    );
    println!(
        "slipway / critical path: {to_path:.2}x (target: at most 1.00x) {}",
        if to_path <= 1.0 { "ok" } else { "OVER TARGET" }
    );
    // However the loop's commands are scheduled, the machine must do their work: on N cores
    // that takes at least (busy core-seconds) / N, whatever the critical path says.
    let cores = cores();
    let floor = median_f64(&mut loop_busy).map(|busy| busy / cores as f64);
    if let (Some(floor), Some(slipway_busy)) = (floor, median_f64(&mut slipway_busy)) {
        println!(
            "the loop kept the machine busy for {:.1} core-seconds: on {cores} cores no schedule of its work ends before {floor:.1}s ({:.2}x its critical path); slipway's run used {slipway_busy:.1} core-seconds",
            floor * cores as f64,
            floor / critical
        );
    }
    let mut figures = vec![
        Figure::new(
            "apply: slipway / sequential loop (webshop, sandbox)",
            format!("{ratio:.2}x"),
            "at most 0.65x",
            ratio <= 0.65,
        ),
        Figure::new(
            "apply: slipway / the loop's critical path",
            format!("{to_path:.2}x"),
            "at most 1.00x",
            to_path <= 1.0,
        ),
    ];
    if let Some(floor) = floor {
        figures.push(Figure {
            name: format!("apply: the loop's work on {cores} cores / its critical path"),
            measured: format!("{:.2}x", floor / critical),
            target: "context: the least any schedule can reach".to_owned(),
            met: None,
        });
    }
    Ok(figures)
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

fn median_f64(values: &mut [f64]) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}

fn describe_busy(busy: Option<f64>, elapsed: Duration) -> String {
    match busy {
        Some(busy) => format!(
            "the machine busy for {busy:.1} core-seconds ({:.0}% of its {} cores)",
            100.0 * busy / (elapsed.as_secs_f64() * cores() as f64),
            cores()
        ),
        None => "the machine's load unknown (no /proc/stat)".to_owned(),
    }
}

/// The machine's CPU time so far, from the first line of `/proc/stat` (Linux): whatever
/// runs during a side counts, its engine processes and moto alike.
struct MachineCpu(Option<(u64, u64)>);

impl MachineCpu {
    fn now() -> Self {
        Self(read_proc_stat())
    }

    /// Core-seconds spent busy since `self` over `elapsed` of wall time: the busy share of
    /// the jiffies that passed on all cores, times the cores' total time.
    fn busy_core_seconds(&self, elapsed: Duration) -> Option<f64> {
        let (busy_before, total_before) = self.0?;
        let (busy_after, total_after) = read_proc_stat()?;
        let total = total_after.checked_sub(total_before).filter(|t| *t > 0)?;
        let busy = busy_after.saturating_sub(busy_before);
        Some(busy as f64 / total as f64 * elapsed.as_secs_f64() * cores() as f64)
    }
}

/// (busy, total) jiffies on all cores; idle and waiting for I/O count as not busy.
fn read_proc_stat() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    parse_cpu_line(stat.lines().next()?)
}

fn parse_cpu_line(line: &str) -> Option<(u64, u64)> {
    let mut fields = line.split_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    let times: Vec<u64> = fields.map(|f| f.parse().ok()).collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice, already in user]
    let total: u64 = times.iter().take(8).sum();
    let idle = times.get(3)? + times.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// Extra resources for the network stack: route tables, subnets and their associations,
/// so the network is the root stack that takes longest, as on real platforms.
/// `subnets` of each (the VPC is a /16; the extra /24s start at 10.0.10.0).
fn dominant_network(subnets: usize) -> String {
    format!(
        r#"
resource "aws_subnet" "bench" {{
  count             = {subnets}
  vpc_id            = aws_vpc.main.id
  cidr_block        = "10.0.${{10 + count.index}}.0/24"
  availability_zone = "us-east-1a"
}}

resource "aws_route_table" "bench" {{
  count  = {subnets}
  vpc_id = aws_vpc.main.id
}}

resource "aws_route_table_association" "bench" {{
  count          = {subnets}
  subnet_id      = aws_subnet.bench[count.index].id
  route_table_id = aws_route_table.bench[count.index].id
}}
"#
    )
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn time_slipway(
    slipway: &Path,
    project: &Path,
    moto: &Moto,
) -> Result<(Duration, BTreeMap<String, f64>)> {
    let started = Instant::now();
    let output = Command::new(slipway)
        .args(["apply", "--stage", "dev"])
        .current_dir(project)
        .envs(moto.env())
        // A throwaway project with local state, also on a CI runner.
        .env_remove("CI")
        .stdin(Stdio::null())
        .output()
        .context("running slipway")?;
    let elapsed = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(output.status.success(), "slipway apply failed:\n{stderr}");
    // "+ dev/network: applied (13.2s)"
    let per_stack = stderr
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("+ dev/")?;
            let (stack, rest) = rest.split_once(": applied (")?;
            let secs = rest.strip_suffix("s)")?.parse().ok()?;
            Some((stack.to_owned(), secs))
        })
        .collect();
    Ok((elapsed, per_stack))
}

/// What a first CI script does: for each stack in order, write the provider file and the
/// variables, then init, plan, apply and read outputs for the next stack.
/// Returns the loop's wall time and each stack's share of it.
fn time_loop(
    sandbox: &Sandbox,
    project: &Path,
    moto: &Moto,
) -> Result<(Duration, BTreeMap<String, f64>)> {
    let provider = moto.provider_block();
    let started = Instant::now();
    let mut per_stack = BTreeMap::new();
    let mut outputs: BTreeMap<&str, serde_json::Value> = BTreeMap::new();
    for (stack, inputs) in LOOP {
        let stack_started = Instant::now();
        let dir = project.join("stacks").join(stack);
        std::fs::write(dir.join("provider.tf"), &provider)?;
        let mut vars = serde_json::Map::new();
        vars.insert("env".into(), "test".into());
        for (input, from, output) in *inputs {
            let value = outputs
                .get(from)
                .and_then(|o| o.get(output))
                .and_then(|o| o.get("value"))
                .cloned()
                .with_context(|| format!("{from} has no output {output}"))?;
            vars.insert((*input).into(), value);
        }
        std::fs::write(
            dir.join("terraform.tfvars.json"),
            serde_json::to_vec(&vars)?,
        )?;
        let terraform = |args: &[&str]| -> Result<Vec<u8>> {
            let out = Command::new(&sandbox.terraform)
                .args(args)
                .current_dir(&dir)
                .envs(moto.env())
                .stdin(Stdio::null())
                .output()
                .context("running terraform")?;
            if !out.status.success() {
                bail!(
                    "terraform {args:?} in {stack} failed:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            Ok(out.stdout)
        };
        terraform(&["init", "-input=false", "-no-color"])?;
        terraform(&["plan", "-input=false", "-no-color", "-out=tfplan"])?;
        terraform(&["apply", "-input=false", "-no-color", "tfplan"])?;
        let json = terraform(&["output", "-json"])?;
        outputs.insert(stack, serde_json::from_slice(&json)?);
        per_stack.insert((*stack).to_owned(), stack_started.elapsed().as_secs_f64());
    }
    Ok((started.elapsed(), per_stack))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dominant_network_has_as_many_of_each_as_asked() {
        let code = dominant_network(40);
        assert_eq!(code.matches("= 40\n").count(), 3, "{code}");
        assert!(
            code.contains(r#""10.0.${10 + count.index}.0/24""#),
            "{code}"
        );
    }

    #[test]
    fn busy_time_leaves_out_idle_and_io_wait() {
        let line = "cpu  100 5 50 800 40 3 2 0 7 0";
        assert_eq!(parse_cpu_line(line), Some((160, 1000)));
        assert_eq!(parse_cpu_line("cpu0 1 2 3 4"), None);
        assert_eq!(parse_cpu_line("cpu  1 x 3 4"), None);
    }
}
