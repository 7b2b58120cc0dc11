//! The blast radius in the CLI: turns the project's configuration (stage policy, stateful
//! resource list, stack graph) into `slipway-plan`'s inputs, reads the Rego modules from
//! disk, measures one planned stack instance, and decides whether its apply may go ahead.
//!
//! The measuring itself is `slipway-plan`'s; this module only wires it to the project.

use std::path::Path;

use anyhow::{Context, Result};
use slipway_core::Stage;
use slipway_core::config::{OnViolation, Project, StagePolicy, StatefulResources};
use slipway_plan::{
    InstanceReport, Plan, Policy, PolicyConfig, Severity, StackLinks, StatefulConfig,
    StatefulTypes, Verdict, analyze_instance, parse_plan, read_plan,
};

/// Everything needed to measure the plans of one stage's stack instances, built once per
/// executor.
#[derive(Debug)]
pub struct Analysis {
    stateful: StatefulTypes,
    links: StackLinks,
    /// The stage's policy; an error (a Rego module missing or invalid) is kept so that an
    /// infallible constructor can report it where the policy is first needed.
    policy: Result<Option<Policy>, String>,
}

impl Analysis {
    /// The analysis for `stage` of the project at `root`.
    pub fn new(root: &Path, project: &Project, stage: &Stage) -> Self {
        Self {
            stateful: stateful_types(&project.stateful_resources),
            links: stack_links(project),
            policy: load_policy(root, &stage.name, stage.policy.as_ref())
                .map_err(|error| format!("{error:#}")),
        }
    }

    /// Fails when the stage's policy cannot be used, so a command can stop before any stack
    /// runs.
    pub fn check(&self) -> Result<()> {
        self.policy
            .as_ref()
            .map(|_| ())
            .map_err(|error| anyhow::anyhow!("{error}"))
    }

    /// Whether the stage has a policy to check plans against.
    pub fn has_policy(&self) -> bool {
        matches!(self.policy, Ok(Some(_)))
    }

    /// Measures one instance's plan (the bytes of `show -json`) and checks it against the
    /// stage's policy.
    pub fn analyze(&self, stack: &str, instance: &str, plan_json: &[u8]) -> Result<InstanceReport> {
        let plan = parse_plan(plan_json).context("cannot read the plan's JSON")?;
        self.analyze_plan(stack, instance, &plan)
    }

    /// [`Self::analyze`] for a plan already read, e.g. streamed from `show -json` by
    /// [`read_plan_output`].
    pub fn analyze_plan(&self, stack: &str, instance: &str, plan: &Plan) -> Result<InstanceReport> {
        let policy = self
            .policy
            .as_ref()
            .map_err(|error| anyhow::anyhow!("{error}"))?;
        analyze_instance(
            stack,
            instance,
            plan,
            &self.stateful,
            &self.links,
            policy.as_ref(),
        )
        .with_context(|| format!("cannot evaluate the policy of `{instance}`"))
    }
}

/// Reads a plan as `show -json` writes it, from the engine's pipe in bounded memory (what
/// [`slipway_engine::Engine::show_json_with`] hands its reader).
pub fn read_plan_output(pipe: &mut dyn std::io::Read) -> Result<Plan> {
    read_plan(pipe).context("cannot read the plan's JSON")
}

/// The stateful resource types the project's `stateful_resources` block asks for.
pub fn stateful_types(config: &StatefulResources) -> StatefulTypes {
    StatefulTypes::from_config(&StatefulConfig {
        extend: config.extend.clone(),
        replace: config.replace.clone(),
    })
}

/// Which stacks read which outputs, from every stack's `inputs`.
pub fn stack_links(project: &Project) -> StackLinks {
    let mut links = StackLinks::default();
    for consumer in &project.stacks {
        for input in &consumer.inputs {
            for (dependency, output) in &input.reads {
                if let Some(upstream) = consumer.dependencies.iter().find(|d| &d.name == dependency)
                {
                    links.link(&upstream.stack, output, &consumer.name, &input.name);
                }
            }
        }
    }
    links
}

/// The thresholds of a stage's `policy` block, in `slipway-plan`'s terms.
pub fn policy_config(policy: &StagePolicy) -> PolicyConfig {
    PolicyConfig {
        max_deletes: policy.max_deletes,
        max_replaces: policy.max_replaces,
        max_score: policy.max_score,
        deny_stateful_deletes: policy.deny_stateful_deletes,
        protected_addresses: policy.protected_addresses.clone(),
        protected_types: policy.protected_types.clone(),
        on_violation: match policy.on_violation {
            OnViolation::Block => slipway_plan::OnViolation::Block,
            OnViolation::Approval => slipway_plan::OnViolation::RequireApproval,
        },
    }
}

/// A stage's policy with its Rego modules read from the project root; `None` when the stage
/// has no `policy` block.
pub fn load_policy(
    root: &Path,
    stage: &str,
    policy: Option<&StagePolicy>,
) -> Result<Option<Policy>> {
    let Some(policy) = policy else {
        return Ok(None);
    };
    let mut modules = Vec::with_capacity(policy.rego.len());
    for relative in &policy.rego {
        let path = root.join(relative);
        let source = std::fs::read_to_string(&path).map_err(|error| {
            anyhow::anyhow!(
                "cannot read Rego module `{relative}` of stage `{stage}` ({}): {error}\n  help: `rego` paths in a stage's `policy` block are relative to the folder of slipway.hcl; create the file or fix the path",
                path.display()
            )
        })?;
        modules.push((relative.clone(), source));
    }
    let loaded = Policy::new(policy_config(policy), &modules).map_err(|error| {
        anyhow::anyhow!(
            "the policy of stage `{stage}` does not load: {error}\n  help: modules are Rego v1 in `package slipway`, with `deny contains msg if {{ ... }}` and `warn contains msg if {{ ... }}` rules"
        )
    })?;
    Ok(Some(loaded))
}

/// What the policy says about applying one planned instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// Apply; with warnings to show first.
    Proceed { warnings: Vec<String> },
    /// The change needs an approval the caller does not have.
    NeedsApproval { message: String },
    /// The change is refused.
    Refused { message: String },
}

/// Whether an apply of the instance `report` describes may go ahead. `approved` is true when
/// the plan being applied was approved (the pipeline applies only approved plans).
pub fn apply_gate(stage: &str, report: &InstanceReport, approved: bool) -> Gate {
    let lines = |severities: &[Severity]| -> Vec<String> {
        report
            .violations
            .iter()
            .filter(|v| severities.contains(&v.severity))
            .map(|v| format!("{} [{}]", v.message, v.rule))
            .collect()
    };
    let warnings = lines(&[Severity::Warn]);
    let who = format!("{stage}/{}", report.stack);
    match report.verdict {
        Verdict::Pass | Verdict::Warn => Gate::Proceed { warnings },
        Verdict::RequireApproval if approved => Gate::Proceed { warnings },
        Verdict::RequireApproval => Gate::NeedsApproval {
            message: format!(
                "stage `{stage}` requires an approval for this change of {who}:\n{}\n    help: deliver it through the pipeline (`slipway run`), where the plan can be approved, or change it to stay within the stage's policy",
                bullet(&lines(&[Severity::RequireApproval]))
            ),
        },
        Verdict::Block => Gate::Refused {
            message: format!(
                "the policy of stage `{stage}` blocks this change of {who}:\n{}\n    help: change the code so the plan stays within the stage's `policy` block in slipway.hcl, or change the policy",
                bullet(&lines(&[Severity::Block, Severity::RequireApproval]))
            ),
        },
    }
}

fn bullet(lines: &[String]) -> String {
    lines
        .iter()
        .map(|line| format!("    - {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_plan::{Severity, Violation};

    fn report(violations: Vec<Violation>) -> InstanceReport {
        let plan = parse_plan(br#"{"format_version":"1.2","resource_changes":[]}"#).unwrap();
        let mut report = analyze_instance(
            "data",
            "prod",
            &plan,
            &StatefulTypes::builtin(),
            &StackLinks::default(),
            None,
        )
        .unwrap();
        report.verdict = Verdict::of(&violations);
        report.violations = violations;
        report
    }

    fn violation(rule: &str, severity: Severity) -> Violation {
        Violation {
            rule: rule.into(),
            message: format!("{rule} broken"),
            severity,
        }
    }

    #[test]
    fn gate_follows_the_verdict() {
        assert_eq!(
            apply_gate("prod", &report(vec![]), false),
            Gate::Proceed { warnings: vec![] }
        );
        assert_eq!(
            apply_gate(
                "prod",
                &report(vec![violation("slipway.warn", Severity::Warn)]),
                false
            ),
            Gate::Proceed {
                warnings: vec!["slipway.warn broken [slipway.warn]".into()]
            }
        );
        let approval = report(vec![violation("max_deletes", Severity::RequireApproval)]);
        assert!(matches!(
            apply_gate("prod", &approval, false),
            Gate::NeedsApproval { message } if message.contains("max_deletes broken [max_deletes]")
                && message.contains("slipway run")
        ));
        assert!(matches!(
            apply_gate("prod", &approval, true),
            Gate::Proceed { .. }
        ));
        let block = report(vec![violation("deny_stateful_deletes", Severity::Block)]);
        assert!(matches!(
            apply_gate("prod", &block, true),
            Gate::Refused { message } if message.contains("blocks this change of prod/data")
                && message.contains("[deny_stateful_deletes]")
        ));
    }

    #[test]
    fn links_follow_inputs_to_the_stacks_they_read() {
        use slipway_core::SourceFile;
        use slipway_core::config::{ProjectSources, StackSources, load};
        let stack = |dir: &str, config: &str| StackSources {
            dir: dir.into(),
            config: SourceFile::new(format!("{dir}/stack.hcl"), config),
            terraform: vec![SourceFile::new(
                format!("{dir}/main.tf"),
                "variable \"vpc\" {}\noutput \"vpc_id\" { value = 1 }\n",
            )],
        };
        let project = load(
            &ProjectSources {
                config: SourceFile::new("slipway.hcl", "project { name = \"p\" }\nstage \"dev\" {}\n"),
                stacks: vec![
                    stack("network", ""),
                    stack(
                        "app",
                        "dependency \"net\" {\n  path = \"../network\"\n}\ninputs = {\n  vpc = dependency.net.outputs.vpc_id\n}\n",
                    ),
                ],
            },
            &std::collections::BTreeMap::new(),
        )
        .unwrap();
        let links = stack_links(&project);
        assert_eq!(
            links.consumers[&("network".to_owned(), "vpc_id".to_owned())],
            vec![("app".to_owned(), "vpc".to_owned())]
        );
        assert_eq!(links.dependents["network"], vec!["app".to_owned()]);
    }

    #[test]
    fn a_missing_rego_module_is_named() {
        let dir = std::env::temp_dir();
        let policy = StagePolicy {
            max_deletes: None,
            max_replaces: None,
            max_score: None,
            deny_stateful_deletes: false,
            protected_addresses: vec![],
            protected_types: vec![],
            rego: vec!["policies/missing-for-this-test.rego".into()],
            on_violation: OnViolation::Block,
            location: slipway_core::Location::file(Path::new("slipway.hcl")),
        };
        let error = load_policy(&dir, "prod", Some(&policy)).unwrap_err();
        let text = format!("{error:#}");
        assert!(
            text.contains("policies/missing-for-this-test.rego"),
            "{text}"
        );
        assert!(text.contains("help:"), "{text}");
    }
}

/// The streaming adapter: `show -json` from an engine process piped into the reader.
#[cfg(test)]
mod streaming_tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;
    use std::time::Duration;

    use slipway_engine::{Engine, Interrupt, Log, StackCredentials, StepContext, WorkingCopy};
    use slipway_plan::StatefulTypes;

    use super::*;

    /// An "engine" that runs `script` (after `#!/bin/sh`); `show -json -no-color PLAN`
    /// hands it the plan file as `$4`.
    fn fake_engine(dir: &Path, script: &str) -> Engine {
        let binary = dir.join("fake-terraform");
        std::fs::write(&binary, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
        Engine::new(
            binary,
            dir,
            Vec::new(),
            Duration::from_secs(60),
            Duration::from_secs(5),
        )
    }

    fn analysis() -> Analysis {
        Analysis {
            stateful: StatefulTypes::builtin(),
            links: StackLinks::default(),
            policy: Ok(None),
        }
    }

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../slipway-plan/tests/fixtures")
            .join(name)
    }

    /// A plan far larger than a pipe's buffer, so it can only be read as it is written.
    fn big_plan(path: &Path) {
        let mut text = String::from(r#"{"format_version":"1.2","resource_changes":["#);
        for index in 0..3000 {
            if index > 0 {
                text.push(',');
            }
            text.push_str(&format!(
                r#"{{"address":"aws_s3_bucket.b{index}","mode":"managed","type":"aws_s3_bucket","name":"b{index}","change":{{"actions":["{}"],"before":{{"id":"b{index}","tags":{{"v":"1"}}}},"after":{{"id":"b{index}","tags":{{"v":"2"}}}},"after_unknown":{{}},"before_sensitive":{{}},"after_sensitive":{{"tags":{{}}}}}}}}"#,
                if index % 3 == 0 { "update" } else { "delete" }
            ));
        }
        text.push_str(r#"],"output_changes":{}}"#);
        std::fs::write(path, text).unwrap();
    }

    async fn show(engine: &Engine, dir: &Path, plan_file: &Path) -> anyhow::Result<Plan> {
        let working_copy = WorkingCopy::in_place(dir);
        let log = Log::create(&dir.join("show.log")).unwrap();
        let credentials = StackCredentials::default();
        let interrupt = Interrupt::never();
        let ctx = StepContext::quiet(&working_copy, &log, &interrupt, &credentials);
        let plan = engine
            .show_json_with(ctx, plan_file, read_plan_output)
            .await??;
        Ok(plan)
    }

    #[tokio::test]
    async fn show_json_is_streamed_into_the_reader_and_reports_as_if_buffered() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.json");
        big_plan(&big);
        // `cat` writes the plan as `show -json` would, in pipe-sized pieces.
        let engine = fake_engine(
            dir.path(),
            r#"[ "$1 $2" = "show -json" ] || exit 9; exec cat "$4""#,
        );
        let analysis = analysis();
        for plan_file in [
            fixture("replace.tf1.11.json"),
            fixture("sensitive.tf1.11.json"),
            fixture("update.tf1.0.json"),
            big.clone(),
        ] {
            let streamed = show(&engine, dir.path(), &plan_file).await.unwrap();
            let bytes = std::fs::read(&plan_file).unwrap();
            assert_eq!(
                streamed,
                parse_plan(&bytes).unwrap(),
                "{}",
                plan_file.display()
            );
            let from_stream = analysis.analyze_plan("app", "dev", &streamed).unwrap();
            let buffered = analysis.analyze("app", "dev", &bytes).unwrap();
            assert_eq!(from_stream, buffered, "{}", plan_file.display());
        }
        let streamed = show(&engine, dir.path(), &big).await.unwrap();
        assert_eq!(streamed.resource_changes.len(), 3000);
        // The JSON never reaches the step's log.
        let log = std::fs::read_to_string(dir.path().join("show.log")).unwrap();
        assert!(!log.contains("aws_s3_bucket.b1"), "{log}");
    }

    #[tokio::test]
    async fn a_failing_show_is_the_engines_error_not_a_json_one() {
        let dir = tempfile::tempdir().unwrap();
        let engine = fake_engine(
            dir.path(),
            r#"printf '{"format_version":"1.2","resource_chan'; echo 'Error: Failed to read the given file as a state or plan file' >&2; exit 1"#,
        );
        let error = show(&engine, dir.path(), &dir.path().join("missing.tfplan"))
            .await
            .unwrap_err();
        let message = format!("{error:#}");
        assert!(message.contains("`show` failed (exit code 1)"), "{message}");
        assert!(
            message.contains("Failed to read the given file as a state or plan file"),
            "{message}"
        );
        assert!(!message.contains("JSON"), "{message}");
    }

    #[tokio::test]
    async fn malformed_output_of_a_successful_show_is_a_clear_json_error() {
        let dir = tempfile::tempdir().unwrap();
        let engine = fake_engine(
            dir.path(),
            r#"printf '{"format_version":"1.2","resource_changes":[{]}'"#,
        );
        let error = show(&engine, dir.path(), &dir.path().join("p.tfplan"))
            .await
            .unwrap_err();
        let message = format!("{error:#}");
        assert!(message.contains("cannot read the plan's JSON"), "{message}");
        assert!(message.contains("malformed plan JSON at byte"), "{message}");
    }
}
