//! The walking skeleton as CI runs it: each job a fresh clone of one repository, with
//! `CI=true`, state in S3 and DynamoDB (moto), the record on PostgreSQL and artifacts (and
//! plans waiting for approval) in S3. The second job sees the first job's releases, plans no
//! change and approves and resumes the run the first job left waiting. Without shared
//! state, record and artifacts, the commands that change a stage refuse to run in CI.

use std::path::Path;

use serde_json::Value;
use slipway_sandbox::{Moto, Sandbox};

use crate::common::{Output, boto3, sandbox, slipway_ok_with, slipway_run};
use crate::pipeline::git;
use crate::postgres_server::{PgServer, REQUIRE_ENV};

const ARTIFACTS: &str = "shop-artifacts";

/// Makes the `slipway.hcl` that `slipway init --cloud aws` wrote reach the sandbox, as a
/// user would point it at their account: the provider configuration replaced by the
/// sandbox's, and the `state` block given moto's endpoint.
pub fn point_at_sandbox(dir: &Path, moto: &Moto) {
    let path = dir.join("slipway.hcl");
    let config = std::fs::read_to_string(&path).unwrap();
    let start = config
        .find("\ngenerate \"provider\" {")
        .expect("a provider block")
        + 1;
    let end = start + config[start..].find("\n}\n").unwrap() + 3;
    let sandbox_block = format!(
        "generate \"provider\" {{\n  path     = \"slipway_provider.tf\"\n  contents = <<-EOT\n{}\n  EOT\n}}\n",
        moto.provider_block()
    );
    let config = format!("{}{sandbox_block}{}", &config[..start], &config[end..]);
    assert!(config.contains("\nstate {\n"), "{config}");
    let config = config.replacen(
        "\nstate {\n",
        "\nstate {\n  endpoint                    = env(\"SLIPWAY_SANDBOX_ENDPOINT\")\n  force_path_style            = true\n  skip_credentials_validation = true\n",
        1,
    );
    std::fs::write(&path, config).unwrap();
}

/// A throwaway PostgreSQL server; `None` (the test skips) when it is not installed.
pub(crate) fn postgres() -> Option<PgServer> {
    match PgServer::start() {
        Ok(Some(server)) => Some(server),
        Ok(None) if std::env::var_os(REQUIRE_ENV).is_some() => panic!(
            "{REQUIRE_ENV} is set but no PostgreSQL binaries were found (run scripts/install-postgres.sh)"
        ),
        Ok(None) => {
            eprintln!(
                "skipped: PostgreSQL binaries not found; run scripts/install-postgres.sh or set {REQUIRE_ENV} to fail instead"
            );
            None
        }
        Err(error) => panic!("cannot start PostgreSQL: {error}"),
    }
}

/// What a CI job's environment holds: `CI=true`, the secrets the workflow passes, and the
/// sandbox's settings.
fn job_env(moto: &Moto, record: &str) -> Vec<(String, String)> {
    let mut env = moto.env();
    env.extend(
        [
            ("CI", "true".to_owned()),
            ("SLIPWAY_STORE_URL", record.to_owned()),
            ("SLIPWAY_ARTIFACTS_URL", format!("s3://{ARTIFACTS}/slipway")),
            // Where the artifact store's S3 client finds moto.
            ("AWS_ENDPOINT_URL", moto.endpoint()),
            ("AWS_ALLOW_HTTP", "true".to_owned()),
            ("SLIPWAY_ACTOR", "ci".to_owned()),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    env
}

/// The repository a team pushes: `slipway init --cloud aws` with the prod stage (approval
/// required) enabled, pointed at the sandbox, committed.
fn origin(root: &Path, moto: &Moto) -> std::path::PathBuf {
    let origin = root.join("shop");
    std::fs::create_dir_all(&origin).unwrap();
    slipway_ok_with(&origin, &[], &["init", "--cloud", "aws"]);
    point_at_sandbox(&origin, moto);
    let path = origin.join("slipway.hcl");
    let config = std::fs::read_to_string(&path).unwrap();
    let commented =
        "# stage \"prod\" {\n#   variables = { env = \"prod\" }\n#   approval  = true\n# }\n";
    assert!(config.contains(commented), "{config}");
    std::fs::write(
        &path,
        config.replace(commented, &commented.replace("# ", "")),
    )
    .unwrap();
    git(&origin, &["init", "-q", "-b", "main"]);
    git(&origin, &["add", "-A"]);
    git(&origin, &["commit", "-q", "-m", "walking skeleton"]);
    origin
}

/// A fresh clone of `origin`, as a CI runner checks it out.
fn clone(origin: &Path, root: &Path, name: &str) -> std::path::PathBuf {
    let url = format!("file://{}", origin.display());
    git(root, &["clone", "-q", &url, name]);
    root.join(name)
}

fn ok(dir: &Path, env: &[(String, String)], args: &[&str]) -> Output {
    slipway_ok_with(dir, env, args)
}

fn s3(sandbox: &Sandbox, moto: &Moto, body: &str) -> String {
    boto3(sandbox, moto, "s3", "s3", body)
}

#[test]
fn a_second_job_in_a_fresh_clone_sees_releases_plans_no_change_and_resumes_an_approval() {
    let Some(server) = postgres() else { return };
    let (sandbox, moto) = sandbox();
    let root = tempfile::tempdir().unwrap();
    let origin = origin(root.path(), &moto);
    let env = job_env(&moto, &server.url("postgres"));

    // Job 1: bootstrap (which also makes the artifact bucket), then the pipeline: dev is
    // applied, prod is planned and waits for approval.
    let job1 = clone(&origin, root.path(), "job-1");
    let bootstrap = ok(&job1, &env, &["bootstrap", "--stage", "dev"]);
    insta::assert_snapshot!("bootstrap_first", bootstrap.stdout);
    let run = ok(&job1, &env, &["run"]);
    assert!(
        run.stderr
            .contains("run 1 is awaiting approval at stage prod"),
        "{}",
        run.stderr
    );
    let plans = s3(
        &sandbox,
        &moto,
        &format!(
            "print('\\n'.join(o['Key'] for o in s3.list_objects_v2(Bucket='{ARTIFACTS}', Prefix='slipway/plans/').get('Contents', [])))"
        ),
    );
    assert_eq!(plans, "slipway/plans/run-1/prod/network.tfplan");
    std::fs::remove_dir_all(root.path().join("job-1")).unwrap();

    // Job 2, on another runner: a fresh clone with nothing in its data folder.
    let job2 = clone(&origin, root.path(), "job-2");
    assert!(!job2.join(".slipway").exists());
    let again = ok(&job2, &env, &["bootstrap", "--stage", "dev"]);
    insta::assert_snapshot!("bootstrap_again", again.stdout);
    // It sees job 1's release to dev: nothing changed since.
    let changed: Value =
        serde_json::from_str(&ok(&job2, &env, &["changed", "--json"]).stdout).unwrap();
    let head = changed["head"]["commit"].as_str().unwrap();
    assert_eq!(changed["base"]["commit"], head, "{changed}");
    assert_eq!(changed["all_changed_because"], Value::Null, "{changed}");
    assert_eq!(changed["affected"], serde_json::json!([]), "{changed}");
    // dev's state is shared: a plan finds nothing to do (exit 0, not 2).
    ok(&job2, &env, &["plan", "--stage", "dev"]);
    // The run job 1 left waiting is approved and resumed here, from the plan job 1 saved.
    ok(
        &job2,
        &env,
        &["approve", "1", "--stage", "prod", "--reason", "reviewed"],
    );
    let resumed = ok(&job2, &env, &["resume", "1"]);
    assert!(
        resumed
            .stderr
            .contains("fetched the saved plan of `network` from s3://shop-artifacts/slipway"),
        "{}",
        resumed.stderr
    );
    assert!(
        resumed.stderr.contains("run 1 delivered to every stage"),
        "{}",
        resumed.stderr
    );
    let status: Value =
        serde_json::from_str(&ok(&job2, &env, &["status", "--json"]).stdout).unwrap();
    let network = &status["stacks"][0];
    assert_eq!(network["stack"], "network", "{status}");
    assert_eq!(
        network["stages"]["dev"]["artifact_id"], network["stages"]["prod"]["artifact_id"],
        "{status}"
    );
    let vpcs = moto.inventory().unwrap().vpcs;
    assert_eq!(vpcs.len(), 2, "dev and prod, nothing twice: {vpcs:?}");

    // A third job on the same commit has nothing to deliver.
    let job3 = clone(&origin, root.path(), "job-3");
    let nothing = ok(&job3, &env, &["run"]);
    assert!(
        nothing.stderr.contains("nothing to deliver"),
        "{}",
        nothing.stderr
    );
    // Nothing of it stayed on the runners: state, record and artifacts are shared.
    for job in [&job2, &job3] {
        for local in [
            "state/dev/network/terraform.tfstate",
            "state/prod/network/terraform.tfstate",
            "slipway.db",
            "artifacts",
        ] {
            assert!(
                !job.join(".slipway").join(local).exists(),
                "{} holds {local}",
                job.display()
            );
        }
    }
}

#[test]
fn commands_that_change_a_stage_refuse_local_state_in_ci() {
    let (_sandbox, moto) = sandbox();
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("shop");
    std::fs::create_dir_all(&dir).unwrap();
    slipway_ok_with(&dir, &[], &["init", "--cloud", "none"]);
    let mut env = moto.env();
    env.push(("CI".to_owned(), "true".to_owned()));
    let commands: [&[&str]; 4] = [
        &["apply", "--stage", "dev"],
        &["deploy", "--stage", "dev"],
        &["promote", "--from", "dev", "--to", "dev"],
        &["run"],
    ];
    for args in commands {
        let refused = slipway_run(&dir, &env, args);
        assert_eq!(refused.code, 1, "{args:?}: {}", refused.stderr);
        assert!(
            refused.stderr.starts_with(&format!(
                "error: `slipway {}` refuses to run in CI",
                args[0]
            )),
            "{}",
            refused.stderr
        );
        assert!(
            !dir.join(".slipway/runs").exists(),
            "{args:?} ran something"
        );
    }
    let refused = slipway_run(&dir, &env, &["apply", "--stage", "dev"]);
    insta::assert_snapshot!("refused_in_ci", refused.stderr);

    // Shared state, record and artifacts named: only what is still local is listed.
    let shared = slipway_run(
        &dir,
        &[
            env.clone(),
            vec![(
                "SLIPWAY_ARTIFACTS_URL".to_owned(),
                format!("s3://{ARTIFACTS}"),
            )],
        ]
        .concat(),
        &["run"],
    );
    assert_eq!(shared.code, 1, "{}", shared.stderr);
    assert!(
        !shared.stderr.contains("artifacts and saved plans are kept"),
        "{}",
        shared.stderr
    );
    assert!(
        shared.stderr.contains("state is local"),
        "{}",
        shared.stderr
    );

    // Outside CI, and in CI when asked for, local state is fine.
    let allowed = slipway_ok_with(
        &dir,
        &env,
        &["apply", "--stage", "dev", "--allow-local-state"],
    );
    assert!(
        allowed.stderr.contains("dev: 1 of 1 stack applied"),
        "{}",
        allowed.stderr
    );
    slipway_ok_with(&dir, &moto.env(), &["apply", "--stage", "dev"]);
}
