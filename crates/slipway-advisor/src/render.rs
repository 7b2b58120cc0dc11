//! The advisor's report as text: for the terminal and as Markdown. JSON is the
//! [`Report`](crate::model::Report) serialised as it is.
//!
//! Stacks with nothing to say are left out unless every stack is asked for: a report
//! that lists 2,000 healthy stacks hides the three that matter.

use std::fmt::Write as _;

use crate::model::{Basis, Recommendation, Report, StackReport};

/// Plain text for a terminal.
pub fn terminal(report: &Report, all: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} stacks, {} commits over {} days, {} recommendation{}",
        report.stacks.len(),
        report.commits,
        report.window_days.round(),
        report.recommendations.len(),
        if report.recommendations.len() == 1 {
            ""
        } else {
            "s"
        }
    );
    let _ = writeln!(out, "{}", sources_line(report));
    for stack in shown(report, all) {
        let _ = writeln!(out, "\n{}  ({})", stack.name, stack.dir);
        let _ = writeln!(out, "  {}", summary_line(stack));
        for rec in report.recommendations_for(&stack.name) {
            let _ = writeln!(
                out,
                "  [{} · {}] {}",
                rec.criterion.label(),
                basis(rec),
                rec.summary
            );
            for line in &rec.evidence {
                let _ = writeln!(out, "      {line}");
            }
        }
    }
    if report.recommendations.is_empty() {
        let _ = writeln!(
            out,
            "\nnothing to recommend: the stacks look well sliced by every criterion"
        );
    }
    out
}

/// Markdown for a pull request, an issue or a wiki page.
pub fn markdown(report: &Report, all: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## Stack-slicing advice\n");
    let _ = writeln!(
        out,
        "{} stacks, {} commits over {} days, {} recommendation{}.\n",
        report.stacks.len(),
        report.commits,
        report.window_days.round(),
        report.recommendations.len(),
        if report.recommendations.len() == 1 {
            ""
        } else {
            "s"
        }
    );
    let _ = writeln!(out, "{}\n", sources_line(report));
    if !report.recommendations.is_empty() {
        let _ = writeln!(out, "| stack | criterion | evidence | recommendation |");
        let _ = writeln!(out, "| --- | --- | --- | --- |");
        for rec in &report.recommendations {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                rec.stacks.join(", "),
                rec.criterion.label(),
                basis(rec),
                rec.summary.replace('|', "\\|")
            );
        }
        let _ = writeln!(out);
    }
    for stack in shown(report, all) {
        let _ = writeln!(out, "### `{}`\n", stack.name);
        let _ = writeln!(out, "{}\n", summary_line(stack));
        for rec in report.recommendations_for(&stack.name) {
            let _ = writeln!(
                out,
                "- **{}** ({}): {}",
                rec.criterion.label(),
                basis(rec),
                rec.summary
            );
            for line in &rec.evidence {
                let _ = writeln!(out, "  - {line}");
            }
        }
        let _ = writeln!(out);
    }
    out
}

fn shown(report: &Report, all: bool) -> impl Iterator<Item = &StackReport> {
    report
        .stacks
        .iter()
        .filter(move |s| all || report.recommendations_for(&s.name).next().is_some())
}

fn summary_line(stack: &StackReport) -> String {
    let mut parts = vec![match (stack.resources_basis, &stack.resources_stage) {
        (Basis::Existing, Some(stage)) => {
            format!(
                "{} existing in {stage}",
                plural(stack.resources, "resource")
            )
        }
        (Basis::Planned, Some(stage)) => {
            format!("{} planned in {stage}", plural(stack.resources, "resource"))
        }
        _ => format!(
            "{} counted from {}",
            plural(stack.resources, "resource"),
            plural(stack.resources_declared, "declared block")
        ),
    }];
    parts.push(format!(
        "{} ({} direct)",
        plural(stack.dependents_transitive, "dependent"),
        stack.dependents_direct
    ));
    parts.push(format!(
        "{} ({:.1}/month)",
        plural(stack.commits, "commit"),
        stack.commits_per_month
    ));
    if !stack.teams.is_empty() {
        parts.push(format!(
            "teams {}",
            stack
                .teams
                .iter()
                .map(|t| format!("{} {:.0}%", t.team, t.share * 100.0))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if !stack.domains.is_empty() {
        parts.push(format!(
            "domains {}",
            stack
                .domains
                .iter()
                .map(|(d, n)| format!("{d} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    parts.join(" · ")
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// The kind of evidence a recommendation rests on, with the stage it read.
fn basis(rec: &Recommendation) -> String {
    match &rec.stage {
        Some(stage) => format!("{} in {stage}", rec.basis.label()),
        None => rec.basis.label().to_owned(),
    }
}

/// Where the resource counts come from: which stage's state, or the declarations.
fn sources_line(report: &Report) -> String {
    let mut stages: std::collections::BTreeMap<(Basis, &str), usize> = Default::default();
    let mut declared = 0;
    for stack in &report.stacks {
        match (&stack.resources_stage, stack.resources_basis) {
            (Some(stage), basis @ (Basis::Existing | Basis::Planned)) => {
                *stages.entry((basis, stage.as_str())).or_default() += 1;
            }
            _ => declared += 1,
        }
    }
    let mut parts: Vec<String> = stages
        .iter()
        .map(|((basis, stage), n)| {
            let read = if *basis == Basis::Existing {
                "state"
            } else {
                "plan"
            };
            format!(
                "{} from the {read} of stage {stage} ({})",
                if *basis == Basis::Existing {
                    "existing"
                } else {
                    "planned"
                },
                plural(*n, "stack")
            )
        })
        .collect();
    if declared > 0 {
        parts.push(format!(
            "declarations counted ({}: no state read)",
            plural(declared, "stack")
        ));
    }
    format!("resources: {}", parts.join("; "))
}
