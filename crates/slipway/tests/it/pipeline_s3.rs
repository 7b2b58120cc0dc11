//! Artifacts in S3 (`artifacts { url = "s3://..." }` in slipway.hcl) on the sandbox: deploy
//! and promote put and read them in the bucket moto serves, `slipway status` shows the same
//! artifact in both stages, and bytes changed in the bucket are refused before any engine
//! command runs.

use std::process::Command;

use serde_json::Value;
use slipway_sandbox::{Moto, Sandbox};

use crate::common::{run, sandbox, slipway};
use crate::pipeline::ids;
use crate::queue_project::{queue_repository_with, scrub};

const BUCKET: &str = "webshop-artifacts";

/// Runs a boto3 S3 script against moto in the sandbox's Python; returns its stdout.
fn s3(sandbox: &Sandbox, moto: &Moto, body: &str) -> String {
    let script = format!(
        "import boto3\ns3 = boto3.client('s3', endpoint_url='{}', region_name='us-east-1', aws_access_key_id='test', aws_secret_access_key='test')\n{body}",
        moto.endpoint()
    );
    let output = Command::new(&sandbox.python)
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
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
    let ok = |args: &[&str]| {
        let output = run({
            let mut c = slipway(dir, &env(&moto));
            c.args(args).env("SLIPWAY_ACTOR", "tester");
            c
        });
        assert_eq!(output.code, 0, "slipway {args:?}\n{}", output.stderr);
        output
    };

    ok(&["deploy", "--stage", "dev"]);
    ok(&["promote", "--from", "dev", "--to", "prod"]);
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
    assert_eq!(keys, key, "the bucket holds exactly the queue's artifact");
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
    let refused = run({
        let mut c = slipway(dir, &env(&moto));
        c.args(["promote", "--from", "dev", "--to", "prod"]);
        c
    });
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    insta::assert_snapshot!("tampered_artifact", scrub(&refused.stderr, dir));
    let runs_after = std::fs::read_dir(dir.join(".slipway/runs"))
        .unwrap()
        .count();
    assert_eq!(runs_before, runs_after, "no engine command ran");
}
