//! Fuzzing harnesses: what the `project_config` and `stack_config` fuzz targets (`fuzz/`)
//! and the regression test over their crashing inputs (`tests/fuzz_regressions.rs`) run.
//! Not part of the crate's API.
//!
//! Each harness builds a small project around the fuzzer's bytes, loads it, and on success
//! does what a run does with the project next: the stages' variables and generated files,
//! every stack's inputs and the graph renderings. Errors are expected; a panic is a bug.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::config::{Env, Project, ProjectSources, StackSources, load};
use crate::source::SourceFile;

/// Splits a `stack_config` input into the stack's `stack.hcl` and its `main.tf`.
pub const STACK_SEPARATOR: u8 = 0;

/// A valid `slipway.hcl`, the project around a fuzzed stack.
pub const PROJECT_HCL: &str = r#"project {
  name   = "fuzz"
  engine = "terraform"
}

generate "provider" {
  path     = "provider.tf"
  contents = "endpoint = \"${env("ENDPOINT")}\" # $${var.keep}"
}

stage "dev" {
  variables = { env = instance.name }
}

stage "prod" {
  variables = { env = "prod", project = project.name }
  approval  = true
  generate "provider" {
    path     = "provider.tf"
    contents = "prod ${stage.name}"
  }
}
"#;

/// The `main.tf` of a fuzzed stack whose input has no [`STACK_SEPARATOR`].
pub const STACK_TF: &str = r#"variable "env" {}
variable "vpc_id" {}
variable "table_arn" {}
variable "queue_arn" {}

output "id" {
  value = "app"
}
"#;

/// The folder of the stack the `stack_config` input describes.
const FUZZED_STACK: &str = "stacks/app";

/// The environment `env()` sees.
fn env() -> Env {
    Env::from([
        ("ENDPOINT".to_owned(), "http://127.0.0.1:5000".to_owned()),
        ("REGION".to_owned(), "eu-west-1".to_owned()),
    ])
}

fn stack(dir: &str, config: &str, terraform: &str) -> StackSources {
    StackSources {
        dir: PathBuf::from(dir),
        config: SourceFile::new(format!("{dir}/stack.hcl"), config),
        terraform: vec![SourceFile::new(format!("{dir}/main.tf"), terraform)],
    }
}

/// Valid stacks the fuzzed one may depend on (the webshop's `network`, `data`, `queue`).
fn upstream_stacks() -> Vec<StackSources> {
    vec![
        stack(
            "stacks/network",
            "stack {\n  team       = \"platform\"\n  capability = \"networking\"\n}\n",
            "variable \"env\" {}\noutput \"vpc_id\" {\n  value = \"vpc-1\"\n}\n",
        ),
        stack(
            "stacks/data",
            "stack {\n  team = \"shop\"\n}\n",
            "variable \"env\" {}\noutput \"table_arn\" {\n  value = \"arn\"\n}\n",
        ),
        stack(
            "stacks/queue",
            "stack {\n  team = \"shop\"\n}\n\ncheck \"queue\" {\n  expect = { queue_arn = \"^arn:aws:sqs:\" }\n}\n",
            "output \"queue_arn\" {\n  value = \"arn\"\n}\noutput \"queue_url\" {\n  value = \"url\"\n}\n",
        ),
    ]
}

/// `project_config`: the input is `slipway.hcl`, with a small valid project of stacks.
pub fn project_config(data: &[u8]) {
    let mut stacks = upstream_stacks();
    stacks.push(stack(
        FUZZED_STACK,
        "stack {\n  team = \"shop\"\n}\n\ndependency \"network\" {\n  path = \"../network\"\n}\n\ninputs = {\n  vpc_id = dependency.network.outputs.vpc_id\n}\n",
        STACK_TF,
    ));
    run(&ProjectSources {
        config: SourceFile::new("slipway.hcl", String::from_utf8_lossy(data)),
        stacks,
    });
}

/// `stack_config`: the input is one stack's `stack.hcl`, and after a [`STACK_SEPARATOR`]
/// byte its `main.tf`, in a valid project.
pub fn stack_config(data: &[u8]) {
    let (config, terraform) = match data.iter().position(|b| *b == STACK_SEPARATOR) {
        Some(at) => (&data[..at], String::from_utf8_lossy(&data[at + 1..])),
        None => (data, STACK_TF.into()),
    };
    let mut stacks = upstream_stacks();
    stacks.push(stack(
        FUZZED_STACK,
        &String::from_utf8_lossy(config),
        &terraform,
    ));
    run(&ProjectSources {
        config: SourceFile::new("slipway.hcl", PROJECT_HCL),
        stacks,
    });
}

/// Loads the project and uses it as a run would; diagnostics are rendered as they are shown.
fn run(sources: &ProjectSources) {
    match load(sources, &env()) {
        Ok(project) => use_project(&project),
        Err(diagnostics) => {
            let _ = diagnostics.to_string();
        }
    }
}

fn use_project(project: &Project) {
    for stage in &project.stages {
        for instance in [stage.name.as_str(), "drill-3f9a"] {
            let _ = project.variables(stage, instance);
            let _ = project.generated_files(stage, instance);
            for stack in &project.stacks {
                // Every output the stack reads, as a string: what a dependency's apply hands on.
                let mut outputs: BTreeMap<String, BTreeMap<String, serde_json::Value>> =
                    BTreeMap::new();
                for input in &stack.inputs {
                    for (dependency, output) in &input.reads {
                        outputs
                            .entry(dependency.clone())
                            .or_default()
                            .insert(output.clone(), serde_json::Value::from("value"));
                    }
                }
                let _ = project.inputs(stack, stage, instance, &outputs);
            }
        }
    }
    let _ = crate::render::mermaid(&project.stacks, &project.graph);
    let _ = crate::render::dot(&project.stacks, &project.graph);
    let _ = project.graph.topological_order();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixed_parts_are_a_valid_project() {
        let mut stacks = upstream_stacks();
        stacks.push(stack(
            FUZZED_STACK,
            "stack {}\ndependency \"network\" {\n  path = \"../network\"\n}\ninputs = {\n  vpc_id = dependency.network.outputs.vpc_id\n}\n",
            STACK_TF,
        ));
        let sources = ProjectSources {
            config: SourceFile::new("slipway.hcl", PROJECT_HCL),
            stacks,
        };
        let project = load(&sources, &env()).unwrap_or_else(|d| panic!("{d}"));
        assert_eq!(project.stacks.len(), 4);
        assert_eq!(project.stages.len(), 2);
        project_config(PROJECT_HCL.as_bytes());
        stack_config(b"stack {}\0variable \"env\" {}\n");
    }
}
