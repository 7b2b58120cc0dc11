//! Loading projects from source text: the happy path and every configuration error, each
//! with its message snapshotted so wording changes are reviewed.

use slipway_core::SourceFile;
use slipway_core::config::{Env, ProjectSources, StackSources, load};

const PROJECT: &str = r#"
project {
  name   = "webshop"
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
  variables = { env = "prod" }
  approval  = true
  generate "provider" {
    path     = "provider.tf"
    contents = "prod ${stage.name}"
  }
}
"#;

fn stack(dir: &str, config: &str, tf: &str) -> StackSources {
    StackSources {
        dir: dir.into(),
        config: SourceFile::new(format!("{dir}/stack.hcl"), config),
        terraform: vec![SourceFile::new(format!("{dir}/main.tf"), tf)],
    }
}

fn network() -> StackSources {
    stack(
        "stacks/network",
        "stack {\n  team = \"platform\"\n  capability = \"networking\"\n}\n",
        "variable \"env\" {}\noutput \"vpc_id\" { value = 1 }\n",
    )
}

fn app(inputs: &str) -> StackSources {
    stack(
        "stacks/app",
        &format!(
            "stack {{\n  team = \"shop\"\n}}\n\ndependency \"network\" {{\n  path = \"../network\"\n}}\n\ninputs = {{\n{inputs}\n}}\n"
        ),
        "variable \"env\" {}\nvariable \"vpc_id\" {}\n",
    )
}

fn env() -> Env {
    Env::from([("ENDPOINT".to_owned(), "http://127.0.0.1:5000".to_owned())])
}

fn errors(sources: ProjectSources) -> String {
    match load(&sources, &env()) {
        Ok(_) => panic!("expected configuration errors"),
        Err(diagnostics) => diagnostics.to_string(),
    }
}

fn project(text: &str, stacks: Vec<StackSources>) -> ProjectSources {
    ProjectSources {
        config: SourceFile::new("slipway.hcl", text),
        stacks,
    }
}

#[test]
fn a_valid_project_loads_with_stages_in_order_and_a_graph() {
    let sources = project(
        PROJECT,
        vec![
            app("  vpc_id = dependency.network.outputs.vpc_id"),
            network(),
        ],
    );
    let project = load(&sources, &env()).expect("valid project");
    assert_eq!(project.stage_names(), vec!["dev", "prod"]);
    assert_eq!(project.graph.topological_order(), vec!["network", "app"]);
    let app = project.stack("app").unwrap();
    assert_eq!(app.team.as_deref(), Some("shop"));
    assert_eq!(
        app.inputs[0].reads,
        vec![("network".to_owned(), "vpc_id".to_owned())]
    );

    let dev = project.stage("dev").unwrap();
    let vars = project.variables(dev, "zero-1a2b").unwrap();
    assert_eq!(vars["env"], serde_json::json!("zero-1a2b"));
    let files = project.generated_files(dev, "dev").unwrap();
    assert_eq!(
        files[0].contents,
        "endpoint = \"http://127.0.0.1:5000\" # ${var.keep}"
    );
    let prod = project.stage("prod").unwrap();
    assert!(prod.approval);
    assert_eq!(
        project.generated_files(prod, "prod").unwrap()[0].contents,
        "prod prod"
    );

    let outputs = std::collections::BTreeMap::from([(
        "network".to_owned(),
        std::collections::BTreeMap::from([("vpc_id".to_owned(), serde_json::json!("vpc-9"))]),
    )]);
    let inputs = project.inputs(app, dev, "dev", &outputs).unwrap();
    assert_eq!(inputs["vpc_id"], serde_json::json!("vpc-9"));
}

#[test]
fn execution_settings_default_and_can_be_set() {
    let defaults = load(&project(PROJECT, vec![network()]), &env()).unwrap();
    assert_eq!(
        defaults.execution,
        slipway_core::config::Execution::default()
    );
    assert!(
        defaults.execution.lock_timeout.is_zero(),
        "fail at once by default"
    );

    let tuned = PROJECT.replace(
        "engine = \"terraform\"",
        "engine = \"terraform\"\n  parallelism = 2\n  step_timeout = \"20m\"\n  interrupt_grace = \"1m\"\n  lock_timeout = \"5m\"",
    );
    let tuned = load(&project(&tuned, vec![network()]), &env()).unwrap();
    let minutes = |n: u64| std::time::Duration::from_secs(60 * n);
    assert_eq!(tuned.execution.parallelism, 2);
    assert_eq!(tuned.execution.step_timeout, minutes(20));
    assert_eq!(tuned.execution.interrupt_grace, minutes(1));
    assert_eq!(tuned.execution.lock_timeout, minutes(5));
}

#[test]
fn invalid_hcl_names_file_line_and_column() {
    insta::assert_snapshot!(errors(project(
        "project {\n  name = \"x\"\n\nstage \"dev\" {}\n",
        vec![]
    )));
}

#[test]
fn unknown_attribute_and_block_suggest_the_right_name() {
    insta::assert_snapshot!(errors(project(
        "project {\n  name = \"x\"\n  engin = \"terraform\"\n}\nstage \"dev\" {\n  variabels = {}\n}\nstages \"x\" {}\n",
        vec![stack(
            "a",
            "stack {\n  teem = \"x\"\n}\ndepends \"b\" {}\n",
            ""
        )],
    )));
}

#[test]
fn dependency_path_with_no_stack() {
    insta::assert_snapshot!(errors(project(
        PROJECT,
        vec![
            network(),
            stack(
                "stacks/app",
                "dependency \"network\" {\n  path = \"../netwrk\"\n}\n",
                ""
            ),
        ],
    )));
}

#[test]
fn dependency_cycle_names_every_stack_on_it() {
    insta::assert_snapshot!(errors(project(
        PROJECT,
        vec![
            stack("a", "dependency \"c\" {\n  path = \"../c\"\n}\n", ""),
            stack("b", "dependency \"a\" {\n  path = \"../a\"\n}\n", ""),
            stack("c", "dependency \"b\" {\n  path = \"../b\"\n}\n", ""),
            stack("d", "", ""),
        ],
    )));
}

#[test]
fn two_stacks_with_the_same_name() {
    insta::assert_snapshot!(errors(project(
        PROJECT,
        vec![stack("aws/network", "", ""), stack("gcp/network", "", "")],
    )));
}

#[test]
fn input_referencing_unknown_dependency_or_output() {
    insta::assert_snapshot!(errors(project(
        PROJECT,
        vec![
            network(),
            app(
                "  vpc_id = dependency.netwrk.outputs.vpc_id\n  env = dependency.network.outputs.subnet_id\n  other = 1"
            ),
        ],
    )));
}

#[test]
fn stage_named_twice_and_no_stages() {
    insta::assert_snapshot!(
        "stage_twice",
        errors(project(
            "project {\n  name = \"x\"\n}\nstage \"dev\" {}\nstage \"dev\" {}\n",
            vec![]
        ))
    );
    insta::assert_snapshot!(
        "no_stages",
        errors(project("project {\n  name = \"x\"\n}\n", vec![]))
    );
}

#[test]
fn missing_environment_variable_is_reported_where_it_is_read() {
    // Listing stacks needs no run environment; generating files for a run does.
    let sources = project(PROJECT, vec![network()]);
    let project = load(&sources, &Env::new()).expect("loads without the run environment");
    let dev = project.stage("dev").unwrap();
    let error = project.generated_files(dev, "dev").unwrap_err().to_string();
    insta::assert_snapshot!(error);
}

#[test]
fn all_errors_in_a_tree_are_reported_in_one_pass() {
    let sources = project(
        "project {\n  name = \"x\"\n  colour = 1\n}\nstage \"dev\" {}\n",
        vec![
            stack("a", "stack {\n  teem = \"x\"\n}\n", ""),
            stack("b", "dependency \"z\" {\n  path = \"../z\"\n}\n", ""),
            stack("c", "stack {", ""),
        ],
    );
    let diagnostics = load(&sources, &env()).unwrap_err();
    let files: Vec<String> = diagnostics
        .iter()
        .map(|d| d.location.path.to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        files,
        vec!["a/stack.hcl", "b/stack.hcl", "c/stack.hcl", "slipway.hcl"]
    );
}

#[test]
fn arbitrary_input_never_panics() {
    // Every prefix of a valid configuration: truncated files must give errors, not panics.
    let text = PROJECT;
    for end in (0..text.len()).filter(|i| text.is_char_boundary(*i)) {
        let sources = project(
            &text[..end],
            vec![
                app("  vpc_id = dependency.network.outputs.vpc_id"),
                network(),
            ],
        );
        let _ = load(&sources, &env());
    }
}

#[test]
fn s3_state_locks_through_a_table_or_a_lock_object() {
    let state = |lines: &str| {
        let text = format!(
            "{PROJECT}\nstate {{\n  backend = \"s3\"\n  bucket  = \"tf-state\"\n  region  = \"us-east-1\"\n{lines}}}\n"
        );
        match load(&project(&text, vec![network()]), &env())
            .unwrap()
            .state
        {
            slipway_core::config::StateConfig::S3(s3) => s3,
            other => panic!("not s3: {other:?}"),
        }
    };
    let native = state("  use_lockfile = true\n");
    assert!(native.use_lockfile);
    assert_eq!(native.dynamodb_table, None);
    let table = state("  dynamodb_table = \"locks\"\n");
    assert!(!table.use_lockfile);
    assert_eq!(table.dynamodb_table.as_deref(), Some("locks"));

    let local = format!("{PROJECT}\nstate {{\n  use_lockfile = true\n}}\n");
    let message = errors(project(&local, vec![network()]));
    assert!(
        message.contains("`use_lockfile` only applies to the s3 backend"),
        "{message}"
    );
}
