//! The stack graph as text for other tools: Mermaid (renders in GitHub and GitLab Markdown)
//! and Graphviz DOT.

use std::fmt::Write;

use crate::config::Stack;
use crate::graph::StackGraph;

/// Mermaid `flowchart`, dependencies pointing at their dependents.
pub fn mermaid(stacks: &[Stack], graph: &StackGraph) -> String {
    let mut out = String::from("flowchart LR\n");
    for name in graph.topological_order() {
        let label = label(stacks, name, "<br/>");
        let _ = writeln!(
            out,
            "    {}[\"{}\"]",
            mermaid_id(name),
            label.replace('"', "#quot;")
        );
    }
    for (from, to) in graph.edges() {
        let _ = writeln!(out, "    {} --> {}", mermaid_id(from), mermaid_id(to));
    }
    out
}

/// Graphviz DOT digraph, dependencies pointing at their dependents.
pub fn dot(stacks: &[Stack], graph: &StackGraph) -> String {
    let mut out = String::from("digraph stacks {\n    rankdir=LR;\n    node [shape=box];\n");
    for name in graph.topological_order() {
        let label = label(stacks, name, "\\n");
        let _ = writeln!(
            out,
            "    {} [label={}];",
            dot_quote(name),
            dot_quote(&label)
        );
    }
    for (from, to) in graph.edges() {
        let _ = writeln!(out, "    {} -> {};", dot_quote(from), dot_quote(to));
    }
    out.push_str("}\n");
    out
}

fn label(stacks: &[Stack], name: &str, line_break: &str) -> String {
    match stacks.iter().find(|s| s.name == name) {
        Some(Stack {
            capability: Some(capability),
            ..
        }) => format!("{name}{line_break}{capability}"),
        _ => name.to_owned(),
    }
}

fn mermaid_id(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

fn dot_quote(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\\\""))
}
