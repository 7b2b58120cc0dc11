//! Artifacts in S3 (`artifacts { url = "s3://..." }` in slipway.hcl) on the sandbox: deploy
//! and promote put and read them in the bucket moto serves, `slipway status` shows the same
//! artifact in both stages, and bytes changed in the bucket are refused before any engine
//! command runs.

use serde_json::Value;
use slipway_sandbox::{Moto, Sandbox};

use crate::common::{boto3, sandbox, slipway_ok_with, slipway_run};
use crate::pipeline::{as_tester, ids};
use crate::queue_project::{queue_repository_with, scrub};

const BUCKET: &str = "webshop-artifacts";

/// Promotes dev's artifacts to prod, approved.
const PROMOTE: &[&str] = &[
    "promote",
    "--from",
    "dev",
    "--to",
    "prod",
    "--approve",
    "tested",
];

/// Runs a boto3 S3 script (the client is `s3`) against moto; returns its stdout.
fn s3(sandbox: &Sandbox, moto: &Moto, body: &str) -> String {
    boto3(sandbox, moto, "s3", "s3", body)
}

/// The sandbox's environment plus where the artifact store's S3 client finds moto.
fn env(moto: &Moto) -> Vec<(String, String)> {
    let mut env = moto.env();
    env.push(("AWS_ENDPOINT_URL".into(), moto.endpoint()));
    env.push(("AWS_ALLOW_HTTP".into(), "true".into()));
    env
}

#[test]
fn deploy_and_promote_keep_artifacts_in_s3_and_refuse_changed_bytes() {
    let (sandbox, moto) = sandbox();
    let project = queue_repository_with(&format!(
        "\nartifacts {{\n  url = \"s3://{BUCKET}/slipway\"\n}}\n"
    ));
    let dir = project.path();
    s3(
        &sandbox,
        &moto,
        &format!("s3.create_bucket(Bucket='{BUCKET}')"),
    );
    let tester = as_tester(env(&moto));
    let ok = |args: &[&str]| slipway_ok_with(dir, &tester, args);

    ok(&["deploy", "--stage", "dev"]);
    ok(PROMOTE);
    let status: Value = serde_json::from_str(&ok(&["status", "--json"]).stdout).unwrap();
    let queue = ids(&status, "queue");
    assert_eq!(queue.len(), 2, "{status}");
    assert_eq!(
        queue[0].1, queue[1].1,
        "prod runs dev's artifact: {queue:?}"
    );
    let hex = queue[0].1.strip_prefix("sha256:").unwrap().to_owned();
    let key = format!("slipway/sha256/{}/{}.tar.zst", &hex[..2], &hex[2..]);
    let keys = s3(
        &sandbox,
        &moto,
        &format!(
            "print('\\n'.join(o['Key'] for o in s3.list_objects_v2(Bucket='{BUCKET}').get('Contents', [])))"
        ),
    );
    // Beside it, a copy of each applied stack run's log, for servers on other machines.
    let (logs, artifacts): (Vec<&str>, Vec<&str>) =
        keys.lines().partition(|k| k.starts_with("slipway/logs/"));
    assert_eq!(
        artifacts,
        [key.as_str()],
        "the bucket holds exactly the queue's artifact"
    );
    assert_eq!(logs.len(), 2, "dev's and prod's apply logs: {keys}");
    assert!(
        logs.iter().any(|k| k.contains("/dev/")) && logs.iter().any(|k| k.contains("/prod/")),
        "{keys}"
    );
    assert!(
        !dir.join(".slipway/artifacts").exists(),
        "nothing went to the local store"
    );
    insta::assert_snapshot!("status_terminal", scrub(&ok(&["status"]).stdout, dir));

    // Someone changes the bytes in the bucket: promoting them again is refused, and no
    // engine command runs.
    s3(
        &sandbox,
        &moto,
        &format!(
            "b = s3.get_object(Bucket='{BUCKET}', Key='{key}')['Body'].read()\ns3.put_object(Bucket='{BUCKET}', Key='{key}', Body=b[:-1] + bytes([b[-1] ^ 0xff]))"
        ),
    );
    let runs_before = std::fs::read_dir(dir.join(".slipway/runs"))
        .unwrap()
        .count();
    let refused = slipway_run(dir, &env(&moto), PROMOTE);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    insta::assert_snapshot!("tampered_artifact", scrub(&refused.stderr, dir));
    let runs_after = std::fs::read_dir(dir.join(".slipway/runs"))
        .unwrap()
        .count();
    assert_eq!(runs_before, runs_after, "no engine command ran");
}
