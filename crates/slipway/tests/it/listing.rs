//! `slipway stacks` and `slipway graph` on the webshop example.

use crate::common::{example, slipway_run};

#[test]
fn stacks_lists_in_dependency_order_with_team_capability_path_and_dependencies() {
    let project = example("webshop");
    let out = slipway_run(project.path(), &[], &["stacks"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    insta::assert_snapshot!(out.stdout);
}

#[test]
fn stacks_json_is_machine_readable() {
    let project = example("webshop");
    let out = slipway_run(project.path(), &[], &["stacks", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let rows: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let names: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.last(), Some(&"app"), "app depends on the others");
    let app = &rows.as_array().unwrap()[3];
    assert_eq!(
        app["dependencies"],
        serde_json::json!(["data", "network", "queue"])
    );
    assert_eq!(app["path"], "stacks/app");
}

#[test]
fn graph_prints_mermaid_and_dot() {
    let project = example("webshop");
    let mermaid = slipway_run(project.path(), &[], &["graph"]);
    assert_eq!(mermaid.code, 0);
    insta::assert_snapshot!("graph_mermaid", mermaid.stdout);
    let dot = slipway_run(project.path(), &[], &["graph", "--format", "dot"]);
    assert_eq!(dot.code, 0);
    insta::assert_snapshot!("graph_dot", dot.stdout);
}

#[test]
fn works_from_a_stack_folder_below_the_project() {
    let project = example("webshop");
    let out = slipway_run(&project.path().join("stacks/app"), &[], &["stacks"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("network"));
}
