//! Remote state and per-stack credentials, for real: Terraform's S3 backend with DynamoDB
//! locks on moto, and moto enforcing IAM policies (`INITIAL_NO_AUTH_ACTION_COUNT`) so that
//! each stack's own IAM user is a real permission boundary.
//!
//! The project is a copy of `examples/webshop` whose slipway.hcl gains a `state` block,
//! one `credentials` block per stack and stages that assign them. A setup script (boto3 in
//! the sandbox's Python) creates the state bucket, the lock table and one IAM user per
//! credentials set while moto still lets requests through unauthenticated; it makes exactly
//! [`setup_requests`] requests, so enforcement starts right after it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use slipway_sandbox::{Moto, MotoOptions, Sandbox};

use crate::common::{audit_log, example, slipway_process, slipway_run, wait_until};
use crate::interrupt::HoldingProxy;

const BUCKET: &str = "slipway-state";
const TABLE: &str = "slipway-locks";
/// The state objects of dev's stacks, under the keys slipway derives.
const DEV_STATES: [&str; 4] = [
    "webshop/dev/app.tfstate",
    "webshop/dev/data.tfstate",
    "webshop/dev/network.tfstate",
    "webshop/dev/queue.tfstate",
];

/// AWS calls the tests make themselves: setup while moto is open, then everything else with
/// the `admin` user's keys. Prints JSON.
const AWS_HELPER: &str = r#"
import json, os, sys, boto3
from botocore.config import Config
kw = dict(endpoint_url=os.environ["SLIPWAY_SANDBOX_ENDPOINT"], region_name="us-east-1",
          config=Config(retries={"max_attempts": 1, "mode": "standard"}))
command, args = sys.argv[1], sys.argv[2:]
if command == "setup":
    # Exactly 2 + 3 per user requests: moto lets that many through before enforcing IAM.
    spec = json.load(sys.stdin)
    kw.update(aws_access_key_id="test", aws_secret_access_key="test")
    boto3.client("s3", **kw).create_bucket(Bucket=spec["bucket"])
    boto3.client("dynamodb", **kw).create_table(
        TableName=spec["table"], BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}])
    iam = boto3.client("iam", **kw)
    keys = {}
    for user, policy in spec["users"].items():
        iam.create_user(UserName=user)
        iam.put_user_policy(UserName=user, PolicyName="slipway", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=user)["AccessKey"]
        keys[user] = [key["AccessKeyId"], key["SecretAccessKey"]]
    print(json.dumps(keys))
    sys.exit(0)
s3, ddb = boto3.client("s3", **kw), boto3.client("dynamodb", **kw)
if command == "objects":
    listed = s3.list_objects_v2(Bucket=args[0]).get("Contents", [])
    print(json.dumps(sorted(o["Key"] for o in listed)))
elif command == "get":
    body = s3.get_object(Bucket=args[0], Key=args[1])["Body"].read()
    print(json.dumps(body.decode()))
elif command == "locks":
    items = ddb.scan(TableName=args[0])["Items"]
    print(json.dumps({i["LockID"]["S"]: i.get("Info", {}).get("S") for i in items}))
elif command == "put-lock":
    ddb.put_item(TableName=args[0], Item={"LockID": {"S": args[1]}, "Info": {"S": args[2]}})
    print("{}")
elif command == "queues":
    urls = boto3.client("sqs", **kw).list_queues().get("QueueUrls", [])
    print(json.dumps(sorted(u.rsplit("/", 1)[-1] for u in urls)))
"#;

/// The requests the setup makes before IAM enforcement starts.
fn setup_requests(users: usize) -> u32 {
    (2 + 3 * users) as u32
}

fn policy(statements: Value) -> Value {
    json!({ "Version": "2012-10-17", "Statement": statements })
}

/// What every set needs: rights on its stack's own state object and the lock table (moto
/// checks S3 resources; for other services it authorises the action only), and
/// `ec2:DescribeAccountAttributes`, which the AWS provider reads when it starts.
fn baseline_rights(stack: &str) -> Value {
    json!([
        { "Effect": "Allow", "Action": ["ec2:DescribeAccountAttributes"], "Resource": "*" },
        { "Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": format!("arn:aws:s3:::{BUCKET}") },
        {
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject"],
            "Resource": format!("arn:aws:s3:::{BUCKET}/webshop/*/{stack}.tfstate")
        },
        { "Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"], "Resource": "*" }
    ])
}

/// One IAM policy per credentials set, along the webshop's stacks (the table in
/// docs/state-and-credentials.md), a read-only `reader` for plans and an `admin` for the
/// test's own look-ups.
fn users() -> BTreeMap<&'static str, Value> {
    let with_state = |stack: &str, own: Value| {
        let mut statements = baseline_rights(stack).as_array().unwrap().clone();
        statements.extend(own.as_array().unwrap().iter().cloned());
        policy(Value::Array(statements))
    };
    BTreeMap::from([
        (
            "network",
            with_state(
                "network",
                json!([{ "Effect": "Allow", "Action": ["ec2:*Vpc*", "ec2:*Subnet*", "ec2:Describe*", "ec2:*Tags"], "Resource": "*" }]),
            ),
        ),
        (
            "data",
            with_state(
                "data",
                json!([
                    { "Effect": "Allow", "Action": ["dynamodb:*"], "Resource": "*" },
                    { "Effect": "Allow", "Action": ["s3:*"], "Resource": ["arn:aws:s3:::webshop-*", "arn:aws:s3:::webshop-*/*"] }
                ]),
            ),
        ),
        (
            "queue",
            with_state(
                "queue",
                json!([{ "Effect": "Allow", "Action": ["sqs:*"], "Resource": "*" }]),
            ),
        ),
        (
            "app",
            with_state(
                "app",
                json!([{ "Effect": "Allow", "Action": ["iam:*Role*", "ec2:*SecurityGroup*", "ec2:Describe*", "ec2:*Tags"], "Resource": "*" }]),
            ),
        ),
        (
            "reader",
            with_state(
                "*",
                json!([{
                    "Effect": "Allow",
                    "Action": ["ec2:Describe*", "dynamodb:Describe*", "dynamodb:List*", "s3:Get*", "s3:List*",
                               "sqs:Get*", "sqs:List*", "iam:Get*", "iam:List*"],
                    "Resource": "*"
                }]),
            ),
        ),
        (
            "admin",
            policy(json!([{ "Effect": "Allow", "Action": "*", "Resource": "*" }])),
        ),
    ])
}

/// moto enforcing IAM, with the state bucket, the lock table and one user per set.
struct Cloud {
    moto: Moto,
    python: PathBuf,
    /// User -> (access key id, secret access key).
    keys: BTreeMap<String, (String, String)>,
}

impl Cloud {
    fn start() -> Cloud {
        let sandbox = Sandbox::from_env().expect("the sandbox installs (see docs/sandbox.md)");
        let users = users();
        let moto = sandbox
            .start_moto_with(&MotoOptions {
                initial_no_auth_action_count: Some(setup_requests(users.len())),
            })
            .expect("moto starts");
        let mut cloud = Cloud {
            moto,
            python: sandbox.python.clone(),
            keys: BTreeMap::new(),
        };
        let spec = json!({ "bucket": BUCKET, "table": TABLE, "users": users });
        let keys: BTreeMap<String, (String, String)> =
            serde_json::from_value(cloud.helper(None, &["setup"], Some(&spec.to_string())))
                .unwrap();
        cloud.keys = keys;
        cloud
    }

    /// Runs the helper as `user` (the setup runs before enforcement, as nobody).
    fn helper(&self, user: Option<&str>, args: &[&str], stdin: Option<&str>) -> Value {
        self.helper_at(&self.moto.endpoint(), user, args, stdin)
    }

    fn helper_at(
        &self,
        endpoint: &str,
        user: Option<&str>,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Value {
        let mut command = Command::new(&self.python);
        command
            .args(["-c", AWS_HELPER])
            .args(args)
            .env("SLIPWAY_SANDBOX_ENDPOINT", endpoint)
            .env("NO_PROXY", "127.0.0.1")
            .env("no_proxy", "127.0.0.1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(user) = user {
            let (id, secret) = &self.keys[user];
            command
                .env("AWS_ACCESS_KEY_ID", id)
                .env("AWS_SECRET_ACCESS_KEY", secret);
        }
        let mut child = command.spawn().unwrap();
        {
            use std::io::Write as _;
            let mut input = child.stdin.take().unwrap();
            input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
        }
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "aws helper {args:?} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    }

    fn admin(&self, args: &[&str]) -> Value {
        self.helper(Some("admin"), args, None)
    }

    fn objects(&self) -> Vec<String> {
        serde_json::from_value(self.admin(&["objects", BUCKET])).unwrap()
    }

    fn state_object(&self, key: &str) -> String {
        self.admin(&["get", BUCKET, key])
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Lock items only: Terraform also keeps a `<bucket>/<key>-md5` digest item per state.
    fn locks(&self) -> BTreeMap<String, Value> {
        let items: BTreeMap<String, Option<String>> =
            serde_json::from_value(self.admin(&["locks", TABLE])).unwrap();
        items
            .into_iter()
            .filter(|(id, _)| !id.ends_with("-md5"))
            .map(|(id, info)| {
                let info = info.and_then(|i| serde_json::from_str(&i).ok());
                (id, info.unwrap_or(Value::Null))
            })
            .collect()
    }

    fn queues(&self) -> Vec<String> {
        serde_json::from_value(self.admin(&["queues"])).unwrap()
    }

    /// Every credential value handed out to a stack's set.
    fn secrets(&self) -> Vec<(String, String)> {
        self.keys
            .iter()
            .filter(|(user, _)| user.as_str() != "admin")
            .flat_map(|(user, (id, secret))| {
                [(user.clone(), id.clone()), (user.clone(), secret.clone())]
            })
            .collect()
    }

    /// slipway's environment: the sandbox's (whose `test` keys must never reach an
    /// engine process), plus each set's source variables.
    fn env(&self) -> Vec<(String, String)> {
        let mut env = self.moto.env();
        for (user, (id, secret)) in &self.keys {
            let upper = user.to_uppercase();
            env.push((format!("{upper}_KEY_ID"), id.clone()));
            env.push((format!("{upper}_SECRET"), secret.clone()));
        }
        env
    }
}

/// The webshop with S3 state and one credentials set per stack:
/// - dev assigns each stack its own set, and the read-only `reader` for planning;
/// - test gives every stack the network's set (the queue must not get anywhere with it);
/// - prod gives every stack the read-only set (nothing can be applied with it).
fn project_with_credentials() -> tempfile::TempDir {
    let project = example("webshop");
    let config_path = project.path().join("slipway.hcl");
    let example_config = std::fs::read_to_string(&config_path).unwrap();
    let head = &example_config[..example_config
        .find("stage \"dev\"")
        .expect("the example has a dev stage")];
    // A refused call is retried (moto's 403 bodies are not in the form the provider's SDK
    // parses); keep the refusals this test provokes quick.
    let head = head.replace(
        "s3_force_path_style         = true\n",
        "s3_force_path_style         = true\n      max_retries                 = 1\n",
    );
    assert!(
        head.contains("max_retries"),
        "the example's provider block changed"
    );
    let credentials: String = ["network", "data", "queue", "app", "reader"]
        .iter()
        .map(|name| {
            let upper = name.to_uppercase();
            format!(
                "credentials \"{name}\" {{\n  from_env = {{\n    AWS_ACCESS_KEY_ID     = \"{upper}_KEY_ID\"\n    AWS_SECRET_ACCESS_KEY = \"{upper}_SECRET\"\n  }}\n}}\n\n"
            )
        })
        .collect();
    let config = format!(
        r#"{head}{state}
{credentials}stage "dev" {{
  variables        = {{ env = "dev" }}
  credentials      = {{ network = "network", data = "data", queue = "queue", app = "app" }}
  plan_credentials = {{ default = "reader" }}
}}

stage "test" {{
  variables        = {{ env = "test" }}
  credentials      = {{ default = "network" }}
  plan_credentials = {{ default = "reader" }}
}}

stage "prod" {{
  variables   = {{ env = "prod" }}
  credentials = {{ default = "reader" }}
}}
"#,
        state = state_block(),
    );
    std::fs::write(&config_path, config).unwrap();
    project
}

fn state_block() -> String {
    format!(
        r#"state {{
  backend                     = "s3"
  bucket                      = "{BUCKET}"
  region                      = "us-east-1"
  dynamodb_table              = "{TABLE}"
  endpoint                    = env("SLIPWAY_SANDBOX_ENDPOINT")
  force_path_style            = true
  skip_credentials_validation = true
}}
"#
    )
}

/// A stand-in engine that records each process's environment, working folder and
/// subcommand, then runs the real Terraform.
fn recording_engine(dir: &Path, real: &str) -> (PathBuf, PathBuf) {
    let dumps = dir.join("engine-environments");
    std::fs::create_dir_all(&dumps).unwrap();
    let script = dir.join("terraform");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nf=\"{}/$$-$(date +%s%N)\"\n{{ echo \"CWD=$PWD\"; echo \"COMMAND=$1\"; env; }} > \"$f\"\nexec \"{real}\" \"$@\"\n",
            dumps.display()
        ),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    (script, dumps)
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    crate::failures::walk(dir)
        .into_iter()
        .filter(|p| p.is_file())
        .collect()
}

#[test]
fn local_state_migrates_to_s3_under_derived_keys_and_replans_empty() {
    // No IAM enforcement here: the sandbox's own keys reach Terraform.
    let sandbox = Sandbox::from_env().expect("the sandbox installs (see docs/sandbox.md)");
    let moto = sandbox.start_moto().expect("moto starts");
    let project = example("webshop");
    let env = moto.env();
    let apply = slipway_run(project.path(), &env, &["apply", "--stage", "dev"]);
    assert_eq!(apply.code, 0, "{}", apply.stderr);

    let cloud = Cloud {
        python: sandbox.python.clone(),
        keys: BTreeMap::from([("admin".to_owned(), ("test".to_owned(), "test".to_owned()))]),
        moto,
    };
    // The bucket and the lock table, as an operator would create them (step 1 of the docs).
    let spec = json!({ "bucket": BUCKET, "table": TABLE, "users": {} });
    cloud.helper(None, &["setup"], Some(&spec.to_string()));
    let config_path = project.path().join("slipway.hcl");
    let config = std::fs::read_to_string(&config_path).unwrap();
    std::fs::write(&config_path, format!("{config}\n{}", state_block())).unwrap();

    let migrate = slipway_run(project.path(), &env, &["state", "migrate"]);
    assert_eq!(migrate.code, 0, "{}", migrate.stderr);
    assert!(
        migrate.stderr.contains("4 instances migrated"),
        "{}",
        migrate.stderr
    );
    assert_eq!(cloud.objects(), DEV_STATES);
    // Every resource came along: a plan against the remote state has nothing to do.
    let plan = slipway_run(project.path(), &env, &["plan", "--stage", "dev"]);
    assert_eq!(
        plan.code, 0,
        "a plan after migration must be empty:\n{}",
        plan.stderr
    );
    assert!(cloud.locks().is_empty(), "{:?}", cloud.locks());
    let audit = audit_log(project.path());
    let migrated: Vec<_> = audit
        .iter()
        .filter(|e| e.action == slipway_store::AuditAction::StateMigrate)
        .filter_map(|e| e.stack.clone())
        .collect();
    assert_eq!(migrated.len(), 4, "{audit:?}");
}

/// Reads one recorded engine environment: (working folder, subcommand, variables).
fn read_dump(path: &Path) -> (String, String, BTreeMap<String, String>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut cwd = String::new();
    let mut command = String::new();
    let mut vars = BTreeMap::new();
    for line in text.lines() {
        if let Some(value) = line.strip_prefix("CWD=") {
            if cwd.is_empty() {
                cwd = value.to_owned();
                continue;
            }
        }
        if let Some(value) = line.strip_prefix("COMMAND=") {
            if command.is_empty() {
                command = value.to_owned();
                continue;
            }
        }
        if let Some((key, value)) = line.split_once('=') {
            vars.insert(key.to_owned(), value.to_owned());
        }
    }
    (cwd, command, vars)
}

#[test]
fn each_stack_applies_with_its_own_credentials_and_no_value_leaks() {
    let cloud = Cloud::start();
    let project = project_with_credentials();
    let outside = tempfile::tempdir().unwrap();
    let mut env = cloud.env();
    let real = env
        .iter()
        .find(|(k, _)| k == "SLIPWAY_ENGINE")
        .map(|(_, v)| v.clone())
        .unwrap();
    let (engine, dumps) = recording_engine(outside.path(), &real);
    for (key, value) in &mut env {
        if key == "SLIPWAY_ENGINE" {
            *value = engine.display().to_string();
        }
    }
    let mut outputs = Vec::new();

    // dev: every stack with its own user; plans with the reader.
    let apply = slipway_run(project.path(), &env, &["apply", "--stage", "dev"]);
    assert_eq!(apply.code, 0, "apply failed:\n{}", apply.stderr);
    assert!(
        apply.stderr.contains("dev: 4 of 4 stacks applied"),
        "{}",
        apply.stderr
    );
    outputs.push(apply);
    assert_eq!(
        cloud.objects(),
        DEV_STATES,
        "one state object per stack under the derived keys"
    );
    assert!(cloud.locks().is_empty(), "locks left: {:?}", cloud.locks());
    assert_eq!(cloud.queues(), ["webshop-dev-orders"]);

    // Each engine process ran with its stack's set for what it did, and no other value.
    let key_of = |user: &str| cloud.keys[user].0.clone();
    let mut applies = Vec::new();
    for dump in files_under(&dumps) {
        let (cwd, command, vars) = read_dump(&dump);
        let Some(stack) = cwd
            .split("/.slipway/work/dev/")
            .nth(1)
            .map(|rest| rest.split('/').next().unwrap().to_owned())
        else {
            continue;
        };
        let expected = if matches!(command.as_str(), "apply" | "destroy") {
            applies.push(stack.clone());
            stack.clone()
        } else {
            "reader".to_owned()
        };
        assert_eq!(
            vars.get("AWS_ACCESS_KEY_ID"),
            Some(&key_of(&expected)),
            "`{command}` of {stack} runs with the {expected} set"
        );
        let text = std::fs::read_to_string(&dump).unwrap();
        for (user, value) in cloud.secrets() {
            if user != stack && user != "reader" {
                let holders: Vec<&String> = vars
                    .iter()
                    .filter(|(_, v)| v.contains(&value))
                    .map(|(k, _)| k)
                    .collect();
                assert!(
                    !text.contains(&value),
                    "`{command}` of {stack} saw a value of the {user} set in {holders:?}"
                );
            }
        }
        let own: Vec<&String> = vars
            .iter()
            // slipway's own credentials are moto's `test` keys; other variables (a test
            // runner's, say) may hold the word too.
            .filter(|(k, v)| k.starts_with("AWS_") && *v == "test")
            .map(|(k, _)| k)
            .collect();
        assert!(
            own.is_empty(),
            "slipway's own keys never reach `{command}` of {stack}: {own:?}"
        );
    }
    applies.sort();
    assert_eq!(applies, ["app", "data", "network", "queue"]);

    // test: the queue gets the network's set, which has no SQS rights; it does not borrow.
    let wrong = slipway_run(
        project.path(),
        &env,
        &["apply", "--stage", "test", "--stack", "queue"],
    );
    assert_eq!(wrong.code, 1, "{}", wrong.stderr);
    outputs.push(wrong);
    // prod: a plan-only set cannot change anything.
    let read_only = slipway_run(
        project.path(),
        &env,
        &["apply", "--stage", "prod", "--stack", "queue"],
    );
    assert_eq!(read_only.code, 1, "{}", read_only.stderr);
    outputs.push(read_only);
    assert_eq!(
        cloud.queues(),
        ["webshop-dev-orders"],
        "nothing was created"
    );
    // The cloud refused each: test's set may not even read the queue's state object, and
    // the reader may read it but not create the queue (moto's SQS refusal is a 403 whose
    // body the provider cannot read, so its message names only the status).
    for (stage, refused) in [
        ("test", "Error loading state: AccessDenied"),
        ("prod", "Error creating SQS queue: : \n\tstatus code: 403"),
    ] {
        let logs: String = files_under(&project.path().join(".slipway/runs"))
            .iter()
            .filter(|p| p.to_string_lossy().contains(&format!("/{stage}/")))
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .collect();
        assert!(
            logs.contains(refused),
            "{stage}: the cloud refuses the queue's apply ({refused}):\n{logs}"
        );
    }

    // No credential value in any terminal output, log, report or record.
    let mut places: Vec<(String, String)> = outputs
        .iter()
        .map(|o| ("terminal".to_owned(), format!("{}{}", o.stdout, o.stderr)))
        .collect();
    for file in files_under(project.path()) {
        if file.to_string_lossy().contains("/.terraform/") {
            continue;
        }
        let bytes = std::fs::read(&file).unwrap();
        places.push((
            file.display().to_string(),
            String::from_utf8_lossy(&bytes).into_owned(),
        ));
    }
    for (user, value) in cloud.secrets() {
        for (place, text) in &places {
            assert!(
                !text.contains(&value),
                "a value of the {user} set appears in {place}"
            );
        }
    }
}

/// The command that applies dev's queue.
const APPLY_QUEUE: &[&str] = &["apply", "--stage", "dev", "--stack", "queue"];

/// The queue's lock item, as Terraform's S3 backend names it.
fn queue_lock_id(stage: &str) -> String {
    format!("{BUCKET}/webshop/{stage}/queue.tfstate")
}

#[test]
fn a_concurrent_apply_of_the_same_instance_fails_naming_the_holder_and_unlock_releases_a_lock() {
    let cloud = Cloud::start();
    let env = cloud.env();
    let first = project_with_credentials();
    let second = project_with_credentials();
    let key = "webshop/dev/queue.tfstate";

    let apply = slipway_run(first.path(), &env, APPLY_QUEUE);
    assert_eq!(apply.code, 0, "{}", apply.stderr);
    let before = cloud.state_object(key);

    // The first checkout changes the queue; the cloud's answer is held, so its apply holds
    // the lock for as long as the test wants.
    let (proxy, holder) = hold_queue_apply(&cloud, first.path(), 90);

    let locks = cloud.locks();
    let lock = &locks[&queue_lock_id("dev")];
    assert_eq!(lock["Operation"], "OperationTypeApply", "{locks:?}");
    let lock_id = lock["ID"].as_str().unwrap().to_owned();
    let who = lock["Who"].as_str().unwrap().to_owned();

    // Another checkout applies the same instance meanwhile: refused, holder named.
    let concurrent = slipway_run(second.path(), &env, APPLY_QUEUE);
    assert_eq!(concurrent.code, 1, "{}", concurrent.stderr);
    assert!(
        concurrent.stderr.contains("could not take the state lock")
            && concurrent.stderr.contains(&who)
            && concurrent.stderr.contains(&lock_id),
        "{}",
        concurrent.stderr
    );
    assert_eq!(
        cloud.state_object(key),
        before,
        "the refused apply wrote nothing"
    );

    proxy.release.send(()).unwrap();
    let finished = holder.wait_with_output().unwrap();
    assert_eq!(
        finished.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&finished.stderr)
    );
    assert!(
        cloud.locks().is_empty(),
        "released after apply: {:?}",
        cloud.locks()
    );
    let state = |text: &str| -> Value { serde_json::from_str(text).unwrap() };
    let (old, new) = (state(&before), state(&cloud.state_object(key)));
    assert_eq!(old["lineage"], new["lineage"]);
    assert_eq!(
        new["serial"].as_u64(),
        old["serial"].as_u64().map(|s| s + 1)
    );
    assert!(
        new.to_string()
            .contains("\"visibility_timeout_seconds\":90")
    );

    // With `lock_timeout` set, an apply that meets the lock waits for it instead: it goes
    // ahead once the holder is done, and what it applies is planned after the wait.
    let (proxy, holder) = hold_queue_apply(&cloud, first.path(), 120);
    let config = second.path().join("slipway.hcl");
    let patient = std::fs::read_to_string(&config).unwrap().replacen(
        "engine = \"terraform\"",
        "engine = \"terraform\"\n  lock_timeout = \"5m\"",
        1,
    );
    std::fs::write(&config, patient).unwrap();
    let runs = second.path().join(".slipway/runs");
    let earlier = logs_under(&runs);
    let mut waiter = slipway_process(second.path(), &env)
        .args(APPLY_QUEUE)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Terraform says it is acquiring the lock once that has taken a while: it is waiting.
    let mut gave_up = false;
    wait_until(
        "the second apply waits for the lock",
        Duration::from_secs(300),
        || {
            gave_up = waiter.try_wait().unwrap().is_some();
            gave_up
                || logs_under(&runs)
                    .iter()
                    .filter(|log| !earlier.contains(log))
                    .any(|log| {
                        std::fs::read_to_string(log)
                            .is_ok_and(|t| t.contains("Acquiring state lock"))
                    })
        },
    );
    assert!(
        !gave_up,
        "the second apply did not wait for the lock: {}",
        String::from_utf8_lossy(&waiter.wait_with_output().unwrap().stderr)
    );
    proxy.release.send(()).unwrap();
    let finished = holder.wait_with_output().unwrap();
    assert_eq!(
        finished.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&finished.stderr)
    );
    let waited = waiter.wait_with_output().unwrap();
    assert_eq!(
        waited.status.code(),
        Some(0),
        "the waiting apply went ahead: {}",
        String::from_utf8_lossy(&waited.stderr)
    );
    let after = state(&cloud.state_object(key));
    assert_eq!(
        after["serial"].as_u64(),
        new["serial"].as_u64().map(|s| s + 2),
        "both applies wrote, one after the other"
    );
    assert!(
        after
            .to_string()
            .contains("\"visibility_timeout_seconds\":60"),
        "the second apply planned after the first had applied"
    );
    assert!(cloud.locks().is_empty(), "{:?}", cloud.locks());

    // A lock left by a process that is gone: apply stops and says how to release it.
    let before = cloud.state_object(key);
    let planted_id = "3f2b9c1e-0000-4000-8000-00000000beef";
    let info = json!({
        "ID": planted_id,
        "Operation": "OperationTypeApply",
        "Info": "",
        "Who": "alice@ci-7",
        "Version": "1.0.3",
        "Created": "2026-11-29T10:00:00Z",
        "Path": queue_lock_id("dev"),
    });
    cloud.admin(&["put-lock", TABLE, &queue_lock_id("dev"), &info.to_string()]);
    let stopped = slipway_run(first.path(), &env, APPLY_QUEUE);
    assert_eq!(stopped.code, 1, "{}", stopped.stderr);
    assert!(
        stopped.stderr.contains("alice@ci-7")
            && stopped.stderr.contains(&format!(
                "slipway unlock --stage dev --stack queue {planted_id}"
            )),
        "{}",
        stopped.stderr
    );
    assert_eq!(cloud.state_object(key), before);

    let unlock = slipway_run(
        first.path(),
        &env,
        &["unlock", "--stage", "dev", "--stack", "queue", planted_id],
    );
    assert_eq!(unlock.code, 0, "{}", unlock.stderr);
    assert!(cloud.locks().is_empty(), "{:?}", cloud.locks());
    let audit = audit_log(first.path());
    let entry = audit
        .iter()
        .find(|e| e.action == slipway_store::AuditAction::Unlock)
        .unwrap_or_else(|| panic!("the unlock is in the audit log: {audit:?}"));
    assert_eq!(entry.stage.as_deref(), Some("dev"));
    assert_eq!(entry.stack.as_deref(), Some("queue"));
    assert_eq!(entry.details["engine_lock_id"], planted_id);

    let again = slipway_run(first.path(), &env, APPLY_QUEUE);
    assert_eq!(again.code, 0, "{}", again.stderr);
}

/// Starts an apply of `project`'s queue that changes its visibility timeout to `seconds`,
/// and returns once the cloud's answer to that change is held: the apply holds the state
/// lock until the proxy releases it.
fn hold_queue_apply(
    cloud: &Cloud,
    project: &Path,
    seconds: u32,
) -> (HoldingProxy, std::process::Child) {
    let main_tf = project.join("stacks/queue/main.tf");
    let code = std::fs::read_to_string(&main_tf).unwrap();
    let changed = regex_lite::Regex::new(r"visibility_timeout_seconds = \d+")
        .unwrap()
        .replace(&code, format!("visibility_timeout_seconds = {seconds}"))
        .into_owned();
    assert_ne!(
        code, changed,
        "the queue's visibility timeout is in main.tf"
    );
    std::fs::write(&main_tf, changed).unwrap();
    let proxy = HoldingProxy::start(cloud.moto.port(), "Action=SetQueueAttributes");
    let holder = slipway_process(project, &proxy.env(&cloud.env()))
        .args(APPLY_QUEUE)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    proxy
        .held
        .recv_timeout(Duration::from_secs(300))
        .expect("the apply reaches SetQueueAttributes");
    (proxy, holder)
}

/// Every file below `dir` whose name ends in `.log`.
fn logs_under(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file() && e.path().extension().is_some_and(|x| x == "log"))
        .map(|e| e.into_path())
        .collect()
}
