//! The advisor's report as text: for the terminal and as Markdown. JSON is the
//! [`Report`](crate::model::Report) serialised as it is.
//!
//! Stacks with nothing to say are left out unless every stack is asked for: a report
//! that lists 2,000 healthy stacks hides the three that matter.

use std::fmt::Write as _;

use crate::model::{Report, StackReport};

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
    for stack in shown(report, all) {
        let _ = writeln!(out, "\n{}  ({})", stack.name, stack.dir);
        let _ = writeln!(out, "  {}", summary_line(stack));
        for rec in report.recommendations_for(&stack.name) {
            let _ = writeln!(out, "  [{}] {}", rec.criterion.label(), rec.summary);
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
    if !report.recommendations.is_empty() {
        let _ = writeln!(out, "| stack | criterion | recommendation |");
        let _ = writeln!(out, "| --- | --- | --- |");
        for rec in &report.recommendations {
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                rec.stacks.join(", "),
                rec.criterion.label(),
                rec.summary.replace('|', "\\|")
            );
        }
        let _ = writeln!(out);
    }
    for stack in shown(report, all) {
        let _ = writeln!(out, "### `{}`\n", stack.name);
        let _ = writeln!(out, "{}\n", summary_line(stack));
        for rec in report.recommendations_for(&stack.name) {
            let _ = writeln!(out, "- **{}**: {}", rec.criterion.label(), rec.summary);
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
    let mut parts = vec![plural(stack.resources_declared, "resource")];
    if let Some(deployed) = stack.resources_deployed {
        parts.push(format!("{deployed} deployed"));
    }
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
