//! Text renderings of a [`Report`]: a terminal table (colour only when asked) and Markdown
//! to paste into a pull request. The JSON rendering is [`Report::to_json`].

use std::fmt::Write;

use owo_colors::OwoColorize;

use crate::blast::ActionCounts;
use crate::model::{Action, ActionKind};
use crate::policy::{Severity, Verdict, Violation};
use crate::report::{ChangeSummary, InstanceReport, Report};

const COLUMNS: [ActionKind; 6] = [
    ActionKind::Create,
    ActionKind::Update,
    ActionKind::Replace,
    ActionKind::Delete,
    ActionKind::Forget,
    ActionKind::Read,
];

fn symbol(action: Action) -> &'static str {
    match action {
        Action::Create => "+",
        Action::Update => "~",
        Action::Delete => "-",
        Action::DeleteThenCreate => "-/+",
        Action::CreateThenDelete => "+/-",
        Action::CreateThenForget => "+/.",
        Action::Forget => ".",
        Action::Read => "<=",
        Action::NoOp => "=",
    }
}

fn describe(action: Action) -> &'static str {
    match action {
        Action::DeleteThenCreate => "replace (delete, then create)",
        Action::CreateThenDelete => "replace (create before destroy)",
        Action::CreateThenForget => "replace (create, then forget)",
        Action::NoOp => "no change",
        other => other.kind().as_str(),
    }
}

fn details(change: &ChangeSummary) -> String {
    let mut parts = Vec::new();
    if let Some(from) = &change.previous_address {
        parts.push(format!("moved from {from}"));
    }
    if change.importing {
        parts.push("imported".to_string());
    }
    if !change.replace_paths.is_empty() {
        parts.push(format!("forced by {}", change.replace_paths.join(", ")));
    } else if !change.changed_attributes.is_empty() {
        parts.push(format!("changes {}", change.changed_attributes.join(", ")));
    }
    parts.join("; ")
}

fn counts_line(counts: &ActionCounts) -> String {
    let mut line = COLUMNS
        .iter()
        .map(|kind| format!("{} {}", kind.as_str(), counts.get(*kind)))
        .collect::<Vec<_>>()
        .join("  ");
    let _ = write!(
        line,
        "  no-op {}  (import {}, move {})",
        counts.no_op, counts.import, counts.moves
    );
    line
}

struct Painter {
    color: bool,
}

impl Painter {
    fn action(&self, action: Action, text: &str) -> String {
        if !self.color {
            return text.to_string();
        }
        match action.kind() {
            ActionKind::Create => text.green().to_string(),
            ActionKind::Update => text.yellow().to_string(),
            ActionKind::Replace | ActionKind::Delete => text.red().to_string(),
            _ => text.to_string(),
        }
    }

    fn verdict(&self, verdict: Verdict) -> String {
        let text = verdict.as_str();
        if !self.color {
            return text.to_string();
        }
        match verdict {
            Verdict::Pass => text.green().to_string(),
            Verdict::Warn | Verdict::RequireApproval => text.yellow().to_string(),
            Verdict::Block => text.red().bold().to_string(),
        }
    }

    fn bold(&self, text: &str) -> String {
        if self.color {
            text.bold().to_string()
        } else {
            text.to_string()
        }
    }

    fn risk(&self, text: &str) -> String {
        if self.color {
            text.red().to_string()
        } else {
            text.to_string()
        }
    }
}

fn severity_label(severity: Severity) -> &'static str {
    match severity {
        Severity::Block => "BLOCK",
        Severity::RequireApproval => "APPROVAL",
        Severity::Warn => "WARN",
    }
}

/// The report as a table for a terminal; ANSI colour only when `color` is true.
pub fn render_terminal(report: &Report, color: bool) -> String {
    let paint = Painter { color };
    let mut out = String::new();
    for instance in &report.instances {
        terminal_instance(&mut out, instance, &paint);
        out.push('\n');
    }
    let total = &report.total;
    let _ = writeln!(
        out,
        "{} {} instance(s), score {}, verdict {}",
        paint.bold("total:"),
        total.instances,
        total.score,
        paint.verdict(total.verdict)
    );
    let _ = writeln!(out, "  {}", counts_line(&total.counts));
    let _ = writeln!(
        out,
        "  data-loss risks {}  changed outputs {}  downstream stacks {}  violations {}",
        total.data_loss,
        total.changed_outputs,
        if total.downstream_stacks.is_empty() {
            "0".to_string()
        } else {
            total.downstream_stacks.join(", ")
        },
        total.violations
    );
    out
}

fn terminal_instance(out: &mut String, instance: &InstanceReport, paint: &Painter) {
    let radius = &instance.blast_radius;
    let _ = writeln!(
        out,
        "{}  score {}  verdict {}",
        paint.bold(&format!("{} @ {}", instance.stack, instance.instance)),
        radius.score,
        paint.verdict(instance.verdict)
    );
    let _ = writeln!(out, "  {}", counts_line(&radius.counts));
    let width = instance
        .changes
        .iter()
        .map(|c| c.address.chars().count())
        .max()
        .unwrap_or(0);
    for change in &instance.changes {
        let detail = details(change);
        let line = format!(
            "{:>3} {:<width$}  {}{}",
            symbol(change.action),
            change.address,
            describe(change.action),
            if detail.is_empty() {
                String::new()
            } else {
                format!(": {detail}")
            },
        );
        let _ = writeln!(out, "  {}", paint.action(change.action, line.trim_end()));
    }
    if !radius.data_loss.is_empty() {
        let _ = writeln!(out, "  {}", paint.risk("data-loss risk:"));
        for risk in &radius.data_loss {
            let _ = writeln!(
                out,
                "    ! {} ({}, {})",
                risk.address,
                risk.resource_type,
                describe(risk.action)
            );
        }
    }
    if !radius.changed_outputs.is_empty() {
        let outputs: Vec<String> = radius
            .changed_outputs
            .iter()
            .map(|o| {
                let sensitive = if o.sensitive { ", sensitive" } else { "" };
                format!("{} ({}{sensitive})", o.name, o.action.kind().as_str())
            })
            .collect();
        let _ = writeln!(out, "  changed outputs: {}", outputs.join(", "));
    }
    if !radius.downstream.is_empty() {
        let stacks: Vec<String> = radius
            .downstream
            .iter()
            .map(|d| match &d.through {
                Some(through) => format!("{} (via {through})", d.stack),
                None => {
                    let inputs: Vec<String> = d
                        .inputs
                        .iter()
                        .map(|i| format!("{} -> {}", i.output, i.input))
                        .collect();
                    format!("{} ({})", d.stack, inputs.join(", "))
                }
            })
            .collect();
        let _ = writeln!(out, "  downstream stacks: {}", stacks.join(", "));
    }
    if !radius.drift.is_empty() {
        let _ = writeln!(out, "  drift (changed outside Terraform):");
        for drifted in &radius.drift {
            let attributes = if drifted.changed_attributes.is_empty() {
                String::new()
            } else {
                format!(": {}", drifted.changed_attributes.join(", "))
            };
            let _ = writeln!(
                out,
                "    {} {}{attributes}",
                drifted.address,
                describe(drifted.action)
            );
        }
    }
    if !instance.violations.is_empty() {
        let _ = writeln!(out, "  policy:");
        for violation in &instance.violations {
            let _ = writeln!(out, "    {}", terminal_violation(violation, paint));
        }
    }
}

fn terminal_violation(violation: &Violation, paint: &Painter) -> String {
    let label = severity_label(violation.severity);
    let label = if paint.color {
        match violation.severity {
            Severity::Block => label.red().bold().to_string(),
            _ => label.yellow().to_string(),
        }
    } else {
        label.to_string()
    };
    format!("{label} {}: {}", violation.rule, violation.message)
}

/// Escapes text for a Markdown table cell or line.
fn md(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '|' | '*' | '_' | '`' | '<' | '>' | '[' | ']' | '\\' => {
                escaped.push('\\');
                escaped.push(c);
            }
            '\n' | '\r' => escaped.push(' '),
            other => escaped.push(other),
        }
    }
    escaped
}

/// Inline code; backticks inside (never in Terraform addresses) fall back to escaping.
fn code(text: &str) -> String {
    if text.contains('`') {
        md(text)
    } else {
        format!("`{}`", text.replace('|', "\\|"))
    }
}

/// The report as Markdown for a pull request comment.
pub fn render_markdown(report: &Report) -> String {
    let mut out = String::new();
    let total = &report.total;
    let _ = writeln!(out, "## Blast radius\n");
    let _ = writeln!(
        out,
        "**Verdict: {}** · score {} · {} instance(s) · {} data-loss risk(s)\n",
        total.verdict.as_str(),
        total.score,
        total.instances,
        total.data_loss
    );
    let _ = writeln!(
        out,
        "| stack | instance | create | update | replace | delete | forget | data-loss risks | downstream stacks | score | verdict |"
    );
    let _ = writeln!(out, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|---|");
    for instance in &report.instances {
        let radius = &instance.blast_radius;
        let c = &radius.counts;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            md(&instance.stack),
            md(&instance.instance),
            c.create,
            c.update,
            c.replace,
            c.delete,
            c.forget,
            radius.data_loss.len(),
            radius.downstream.len(),
            radius.score,
            instance.verdict.as_str()
        );
    }
    let c = &total.counts;
    let _ = writeln!(
        out,
        "| **total** | | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
        c.create,
        c.update,
        c.replace,
        c.delete,
        c.forget,
        total.data_loss,
        total.downstream_stacks.len(),
        total.score,
        total.verdict.as_str()
    );
    for instance in &report.instances {
        markdown_instance(&mut out, instance);
    }
    out
}

fn markdown_instance(out: &mut String, instance: &InstanceReport) {
    let radius = &instance.blast_radius;
    let _ = writeln!(
        out,
        "\n### {} @ {}\n",
        md(&instance.stack),
        md(&instance.instance)
    );
    if instance.changes.is_empty() {
        let _ = writeln!(out, "No resource changes.");
    } else {
        let _ = writeln!(out, "| action | address | details |");
        let _ = writeln!(out, "|---|---|---|");
        for change in &instance.changes {
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                describe(change.action),
                code(&change.address),
                md(&details(change))
            );
        }
    }
    if !radius.data_loss.is_empty() {
        let _ = writeln!(out, "\n**Data-loss risk**\n");
        for risk in &radius.data_loss {
            let _ = writeln!(
                out,
                "- {} ({}, {})",
                code(&risk.address),
                code(&risk.resource_type),
                describe(risk.action)
            );
        }
    }
    if !radius.changed_outputs.is_empty() {
        let outputs: Vec<String> = radius
            .changed_outputs
            .iter()
            .map(|o| {
                let sensitive = if o.sensitive { ", sensitive" } else { "" };
                format!(
                    "{} ({}{sensitive})",
                    code(&o.name),
                    o.action.kind().as_str()
                )
            })
            .collect();
        let _ = writeln!(out, "\n**Changed outputs**: {}", outputs.join(", "));
    }
    if !radius.downstream.is_empty() {
        let _ = writeln!(out, "\n**Downstream stacks**\n");
        for d in &radius.downstream {
            match &d.through {
                Some(through) => {
                    let _ = writeln!(out, "- {} (via {})", md(&d.stack), md(through));
                }
                None => {
                    let inputs: Vec<String> = d
                        .inputs
                        .iter()
                        .map(|i| format!("{} → {}", code(&i.output), code(&i.input)))
                        .collect();
                    let _ = writeln!(out, "- {}: {}", md(&d.stack), inputs.join(", "));
                }
            }
        }
    }
    if !radius.drift.is_empty() {
        let _ = writeln!(out, "\n**Drift** (changed outside Terraform)\n");
        for drifted in &radius.drift {
            let attributes: Vec<String> =
                drifted.changed_attributes.iter().map(|a| code(a)).collect();
            let _ = writeln!(
                out,
                "- {} {}{}",
                code(&drifted.address),
                describe(drifted.action),
                if attributes.is_empty() {
                    String::new()
                } else {
                    format!(": {}", attributes.join(", "))
                }
            );
        }
    }
    if !instance.violations.is_empty() {
        let _ = writeln!(out, "\n**Policy**\n");
        for violation in &instance.violations {
            let _ = writeln!(
                out,
                "- **{}** {}: {}",
                severity_label(violation.severity),
                code(&violation.rule),
                md(&violation.message)
            );
        }
    }
}
