//! `slipway advise` on a generated repository with planted patterns: every pattern is
//! recommended with the right criterion, the clean stacks get nothing, and the reports
//! (terminal, Markdown, JSON, SVG) are snapshotted or parsed.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::common::{run, slipway};

const DAY: i64 = 86_400;

struct Change {
    days_ago: i64,
    author: &'static str,
    files: Vec<(String, String)>,
}

/// Writes `changes` (oldest first) as commits with fixed dates through `git fast-import`,
/// then checks the result out.
fn commit_all(dir: &Path, changes: &[Change]) {
    let git = |args: &[&str]| {
        let status = Command::new("git")
            .current_dir(dir)
            .args(args)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    };
    git(&["init", "-q", "-b", "main"]);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut stream = String::new();
    for (n, change) in changes.iter().enumerate() {
        let when = now - change.days_ago * DAY;
        let who = format!("{0} <{0}>", change.author);
        let message = format!("change {n}");
        let _ = write!(
            stream,
            "commit refs/heads/main\nauthor {who} {when} +0000\ncommitter {who} {when} +0000\ndata {}\n{message}\n",
            message.len()
        );
        for (path, text) in &change.files {
            let _ = write!(
                stream,
                "M 100644 inline {path}\ndata {}\n{text}\n",
                text.len()
            );
        }
    }
    let mut child = Command::new("git")
        .current_dir(dir)
        .args(["fast-import", "--quiet"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stream.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    git(&["reset", "-q", "--hard", "main"]);
}

fn resources(kind: &str, count: usize, tag: &str) -> String {
    (0..count)
        .map(|i| format!("resource \"{kind}\" \"r{i}\" {{}} # {tag}\n"))
        .collect()
}

fn stack_hcl(team: &str, deps: &[&str]) -> String {
    let mut text = format!("stack {{\n  team = \"{team}\"\n}}\n");
    for dep in deps {
        let _ = write!(text, "dependency \"{dep}\" {{\n  path = \"../{dep}\"\n}}\n");
    }
    text
}

/// The planted repository: five patterns and two clean stacks.
fn planted() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let f = |path: &str, text: String| (path.to_owned(), text);
    let mut changes = vec![Change {
        days_ago: 175,
        author: "alice@example.com",
        files: vec![
            f(
                "slipway.hcl",
                r#"project {
  name = "planted"
}
stage "dev" {}
advisor {
  teams = {
    "alice@example.com" = "platform"
    "bob@example.com"   = "shop"
  }
}
"#
                .to_owned(),
            ),
            f("stacks/network/stack.hcl", stack_hcl("platform", &[])),
            f(
                "stacks/network/main.tf",
                resources("aws_vpc", 1, "v0") + &resources("aws_subnet", 2, "v0"),
            ),
            f("stacks/queue/stack.hcl", stack_hcl("shop", &["network"])),
            f("stacks/queue/main.tf", resources("aws_sqs_queue", 2, "v0")),
            f("stacks/shared/stack.hcl", stack_hcl("platform", &[])),
            f("stacks/shared/main.tf", resources("aws_sns_topic", 1, "v0")),
            f("stacks/churn/stack.hcl", stack_hcl("platform", &[])),
            f(
                "stacks/churn/fast.tf",
                resources("aws_lambda_function", 1, "v0"),
            ),
            f(
                "stacks/churn/slow.tf",
                resources("aws_ecs_cluster", 1, "v0"),
            ),
            f(
                "stacks/mixed/stack.hcl",
                stack_hcl("platform", &["network"]),
            ),
            f(
                "stacks/mixed/main.tf",
                resources("aws_iam_role", 2, "v0") + &resources("aws_security_group", 2, "v0"),
            ),
            f("stacks/orders/stack.hcl", stack_hcl("shop", &[])),
            f(
                "stacks/orders/main.tf",
                resources("aws_dynamodb_table", 1, "v0"),
            ),
            f("stacks/billing/stack.hcl", stack_hcl("shop", &["orders"])),
            f(
                "stacks/billing/main.tf",
                resources("aws_sqs_queue", 1, "v0"),
            ),
            f("stacks/big/stack.hcl", stack_hcl("platform", &[])),
            f("stacks/big/main.tf", resources("aws_s3_bucket", 60, "v0")),
        ],
    }];
    // Two teams take turns on `shared`.
    for i in 0..8 {
        changes.push(Change {
            days_ago: 160 - i * 15,
            author: if i % 2 == 0 {
                "alice@example.com"
            } else {
                "bob@example.com"
            },
            files: vec![f(
                "stacks/shared/main.tf",
                resources("aws_sns_topic", 1, &format!("s{i}")),
            )],
        });
    }
    // `churn/fast.tf` changes weekly; `churn/slow.tf` not since the first commit.
    for week in 0..24 {
        changes.push(Change {
            days_ago: 168 - week * 7,
            author: "alice@example.com",
            files: vec![f(
                "stacks/churn/fast.tf",
                resources("aws_lambda_function", 1, &format!("w{week}")),
            )],
        });
    }
    // `orders` and `billing` always change together.
    for i in 0..6 {
        changes.push(Change {
            days_ago: 150 - i * 20,
            author: "bob@example.com",
            files: vec![
                f(
                    "stacks/orders/main.tf",
                    resources("aws_dynamodb_table", 1, &format!("o{i}")),
                ),
                f(
                    "stacks/billing/main.tf",
                    resources("aws_sqs_queue", 1, &format!("o{i}")),
                ),
            ],
        });
    }
    // The clean stacks change now and then, each by its own team.
    for (i, days_ago) in [100, 40].into_iter().enumerate() {
        changes.push(Change {
            days_ago,
            author: "bob@example.com",
            files: vec![f(
                "stacks/queue/main.tf",
                resources("aws_sqs_queue", 2, &format!("q{i}")),
            )],
        });
    }
    changes.push(Change {
        days_ago: 90,
        author: "alice@example.com",
        files: vec![f(
            "stacks/network/main.tf",
            resources("aws_vpc", 1, "n1") + &resources("aws_subnet", 2, "n1"),
        )],
    });
    changes.sort_by_key(|c| -c.days_ago);
    commit_all(dir.path(), &changes);
    dir
}

fn advise(dir: &Path, args: &[&str]) -> String {
    let out = run({
        let mut c = slipway(dir, &[]);
        c.arg("advise").args(args);
        c
    });
    assert_eq!(out.code, 0, "advise failed:\n{}", out.stderr);
    out.stdout
}

#[test]
fn planted_patterns_are_recommended_and_clean_stacks_get_nothing() {
    let repo = planted();
    let json: serde_json::Value =
        serde_json::from_str(&advise(repo.path(), &["--format", "json"])).unwrap();
    let mut found: Vec<(String, String)> = json["recommendations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let stacks: Vec<&str> = r["stacks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap())
                .collect();
            (
                stacks.join("+"),
                r["criterion"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            ("big", "blast_radius"),
            ("billing+orders", "coupling"),
            ("churn", "change_frequency"),
            ("mixed", "permission_boundary"),
            ("shared", "team"),
        ]
        .map(|(s, c)| (s.to_owned(), c.to_owned()))
    );
    let churn = &json["recommendations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["criterion"] == "change_frequency")
        .unwrap()["evidence"];
    let evidence = churn.to_string();
    assert!(
        evidence.contains("stacks/churn/fast.tf: 4.2 commits/month (aws_lambda_function.r0)"),
        "{evidence}"
    );
    assert!(
        evidence.contains("stacks/churn/slow.tf: 0.2 commits/month"),
        "{evidence}"
    );

    insta::assert_snapshot!("advise_terminal", advise(repo.path(), &[]));
    insta::assert_snapshot!(
        "advise_markdown",
        advise(repo.path(), &["--format", "markdown"])
    );
    insta::assert_json_snapshot!("advise_json", json);
}

#[test]
fn the_svg_is_well_formed_and_names_every_stack() {
    let repo = planted();
    let svg_path = repo.path().join("stacks.svg");
    advise(repo.path(), &["--svg", svg_path.to_str().unwrap()]);
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    let mut reader = quick_xml::Reader::from_str(&svg);
    let mut texts = Vec::new();
    let mut coupling_edges = 0;
    loop {
        match reader.read_event().expect("well-formed XML") {
            quick_xml::events::Event::Eof => break,
            quick_xml::events::Event::Text(t) => texts.push(t.decode().unwrap().into_owned()),
            quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e)
                if e.name().as_ref() == b"line"
                    && e.try_get_attribute("class")
                        .unwrap()
                        .is_some_and(|a| a.value.as_ref() == b"coupling") =>
            {
                coupling_edges += 1;
            }
            _ => {}
        }
    }
    for stack in [
        "big", "billing", "churn", "mixed", "network", "orders", "queue", "shared",
    ] {
        assert!(
            texts.iter().any(|t| t == stack),
            "the SVG does not name {stack}"
        );
    }
    assert_eq!(coupling_edges, 1, "one strong coupling: orders and billing");
}

#[test]
fn since_narrows_the_window() {
    let repo = planted();
    // In the last 30 days only `churn` changed: no team or coupling evidence is left, while
    // the size of `big` needs no history at all.
    let json: serde_json::Value = serde_json::from_str(&advise(
        repo.path(),
        &["--since", "30d", "--format", "json"],
    ))
    .unwrap();
    let criteria: Vec<&str> = json["recommendations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["criterion"].as_str().unwrap())
        .collect();
    assert!(criteria.contains(&"blast_radius"), "{criteria:?}");
    assert!(!criteria.contains(&"team"), "{criteria:?}");
    assert!(!criteria.contains(&"coupling"), "{criteria:?}");
}

/// The JSON report's recommendations as `(stacks joined by +, criterion, basis)`, sorted.
fn recommendations(json: &serde_json::Value) -> Vec<(String, String, String)> {
    let mut found: Vec<(String, String, String)> = json["recommendations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let stacks: Vec<&str> = r["stacks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap())
                .collect();
            (
                stacks.join("+"),
                r["criterion"].as_str().unwrap().to_owned(),
                r["basis"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    found.sort();
    found
}

fn stack_json<'a>(json: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    json["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap()
}

const EXAMPLES: usize = 13;

/// The root module of a public module repository: one VPC and its subnets by default, and
/// 58 optional resources of many kinds (identity, keys, functions, logs, ...) that its
/// variables leave off.
fn shared_module(tag: &str) -> String {
    let mut text = format!(
        "# {tag}\nresource \"aws_vpc\" \"this\" {{\n  count = local.create_vpc ? 1 : 0\n}}\n\
         resource \"aws_subnet\" \"private\" {{\n  count = local.create_vpc ? length(var.private_subnets) : 0\n}}\n"
    );
    let optional = [
        "aws_iam_role",
        "aws_iam_policy",
        "aws_kms_key",
        "aws_lambda_function",
        "aws_cloudwatch_log_group",
        "aws_s3_bucket",
        "aws_sqs_queue",
        "aws_nat_gateway",
        "aws_flow_log",
        "aws_route53_zone",
    ];
    for i in 0..58 {
        let kind = optional[i % optional.len()];
        let _ = write!(
            text,
            "resource \"{kind}\" \"optional_{i}\" {{\n  count = var.enable_{} ? 1 : 0\n}}\n",
            i % optional.len()
        );
    }
    text
}

fn shared_variables() -> String {
    let mut text = String::from(
        "variable \"create_vpc\" {\n  default = true\n}\nvariable \"private_subnets\" {\n  default = []\n}\nlocals {\n  create_vpc = var.create_vpc\n}\n",
    );
    for i in 0..10 {
        let _ = write!(text, "variable \"enable_{i}\" {{\n  default = false\n}}\n");
    }
    text
}

fn example(tag: &str) -> String {
    format!(
        "# {tag}\nprovider \"aws\" {{}}\nmodule \"vpc\" {{\n  source          = \"../../\"\n  private_subnets = [\"10.0.1.0/24\", \"10.0.2.0/24\"]\n}}\n"
    )
}

/// A module repository as it is published: the module at the top, 13 examples calling it as
/// `../../` (the stacks), changed together whenever the module's interface changes, the
/// module itself changed every other week; plus two stacks of their own (`app`, `worker`)
/// that really change together through their own files.
fn module_repository() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let f = |path: &str, text: String| (path.to_owned(), text);
    let mut first = vec![
        f(
            "slipway.hcl",
            "project {\n  name = \"modules\"\n}\nstage \"dev\" {}\n".to_owned(),
        ),
        f("main.tf", shared_module("v0")),
        f("variables.tf", shared_variables()),
        f("stacks/app/stack.hcl", stack_hcl("platform", &[])),
        f("stacks/app/main.tf", resources("aws_s3_bucket", 1, "v0")),
        f("stacks/worker/stack.hcl", stack_hcl("platform", &[])),
        f("stacks/worker/main.tf", resources("aws_sqs_queue", 1, "v0")),
    ];
    for e in 0..EXAMPLES {
        first.push(f(
            &format!("examples/e{e}/stack.hcl"),
            stack_hcl("platform", &[]),
        ));
        first.push(f(&format!("examples/e{e}/main.tf"), example("v0")));
    }
    let mut changes = vec![Change {
        days_ago: 1000,
        author: "alice@example.com",
        files: first,
    }];
    // The module's interface changes: the module and every example in one commit.
    for i in 0..30 {
        let tag = format!("i{i}");
        let mut files = vec![
            f("main.tf", shared_module(&tag)),
            f("variables.tf", shared_variables() + "# " + &tag + "\n"),
        ];
        for e in 0..EXAMPLES {
            files.push(f(&format!("examples/e{e}/main.tf"), example(&tag)));
        }
        changes.push(Change {
            days_ago: 990 - i * 33,
            author: "alice@example.com",
            files,
        });
    }
    // The module alone, every other week and more.
    for i in 0..80 {
        changes.push(Change {
            days_ago: 995 - i * 12,
            author: "bob@example.com",
            files: vec![f("main.tf", shared_module(&format!("m{i}")))],
        });
    }
    // `app` and `worker` change together through their own files.
    for i in 0..6 {
        changes.push(Change {
            days_ago: 500 - i * 30,
            author: "alice@example.com",
            files: vec![
                f(
                    "stacks/app/main.tf",
                    resources("aws_s3_bucket", 1, &format!("a{i}")),
                ),
                f(
                    "stacks/worker/main.tf",
                    resources("aws_sqs_queue", 1, &format!("a{i}")),
                ),
            ],
        });
    }
    changes.sort_by_key(|c| -c.days_ago);
    commit_all(dir.path(), &changes);
    dir
}

/// A recorded state of `app` in `dev`: 55 buckets exist although one block declares them.
fn record_state(dir: &Path) {
    let state_dir = dir.join(".slipway/state/dev/app");
    std::fs::create_dir_all(&state_dir).unwrap();
    let instances: Vec<serde_json::Value> = (0..55)
        .map(|i| serde_json::json!({ "index_key": i, "attributes": {} }))
        .collect();
    let state = serde_json::json!({
        "version": 4,
        "serial": 7,
        "resources": [
            { "mode": "managed", "type": "aws_s3_bucket", "name": "r0", "instances": instances },
            { "mode": "data", "type": "aws_caller_identity", "name": "me", "instances": [{}] }
        ]
    });
    std::fs::write(
        state_dir.join("terraform.tfstate"),
        serde_json::to_vec(&state).unwrap(),
    )
    .unwrap();
}

#[test]
fn a_shared_modules_unused_declarations_and_changes_recommend_nothing() {
    let repo = module_repository();
    record_state(repo.path());
    let json: serde_json::Value =
        serde_json::from_str(&advise(repo.path(), &["--since", "3y", "--format", "json"])).unwrap();
    // Nothing about the examples: the module's optional blocks are never created, and they
    // change together only with the module they call. The positive controls stay: `app` and
    // `worker` change together through their own files, and 55 buckets exist in `app`.
    assert_eq!(
        recommendations(&json),
        [
            ("app", "blast_radius", "existing"),
            ("app+worker", "coupling", "history"),
        ]
        .map(|(s, c, b)| (s.to_owned(), c.to_owned(), b.to_owned()))
    );
    // Instances, not blocks: one VPC and two subnets of 60 declared blocks.
    let e0 = stack_json(&json, "e0");
    assert_eq!(e0["resources_declared"], 60);
    assert_eq!(e0["resources"], 3);
    assert_eq!(e0["resources_basis"], "declared");
    assert_eq!(e0["blocks_not_created"], 58);
    assert_eq!(
        e0["resources_by_type"],
        serde_json::json!({ "aws_subnet": 2, "aws_vpc": 1 })
    );
    // The examples' co-changes are counted as the module's, not as coupling.
    let example_pair = json["couplings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["stacks"][0] == "e0" && c["stacks"][1] == "e1");
    assert!(example_pair.is_none(), "{example_pair:?}");
    // The state that was read is named.
    let app = stack_json(&json, "app");
    assert_eq!(app["resources"], 55);
    assert_eq!(app["resources_basis"], "existing");
    assert_eq!(app["resources_stage"], "dev");
    let blast = json["recommendations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["criterion"] == "blast_radius")
        .unwrap();
    assert_eq!(blast["stage"], "dev");
    assert!(
        blast["evidence"][0]
            .as_str()
            .unwrap()
            .starts_with("55 resources exist in stage `dev`"),
        "{blast}"
    );
    insta::assert_snapshot!(
        "advise_module_repository",
        advise(repo.path(), &["--since", "3y"])
    );
}

#[test]
fn without_state_the_declarations_are_counted_and_said_to_be() {
    let repo = module_repository();
    let out = advise(repo.path(), &["--since", "3y", "--stage", "dev"]);
    assert!(
        out.contains("resources: declarations counted (15 stacks: no state read)"),
        "{out}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&advise(repo.path(), &["--since", "3y", "--format", "json"])).unwrap();
    assert_eq!(
        recommendations(&json),
        [("app+worker", "coupling", "history")].map(|(s, c, b)| (
            s.to_owned(),
            c.to_owned(),
            b.to_owned()
        ))
    );
    let failed = run({
        let mut c = slipway(repo.path(), &[]);
        c.args(["advise", "--stage", "nowhere"]);
        c
    });
    assert_ne!(failed.code, 0);
    assert!(
        failed.stderr.contains("unknown stage `nowhere`"),
        "{}",
        failed.stderr
    );
}

/// 20 stacks that two groups own jointly (`* @org/engineering @org/admins`), and one
/// (`split`) with a file the security team owns alone.
#[test]
fn joint_ownership_is_no_reason_to_split_but_different_owners_are() {
    let dir = tempfile::tempdir().unwrap();
    let f = |path: &str, text: String| (path.to_owned(), text);
    let mut files = vec![
        f(
            "slipway.hcl",
            "project {\n  name = \"owned\"\n}\nstage \"dev\" {}\n".to_owned(),
        ),
        f(
            ".github/CODEOWNERS",
            "* @org/engineering @org/admins\n/stacks/split/iam.tf @org/security\n".to_owned(),
        ),
        f("stacks/split/stack.hcl", stack_hcl("platform", &[])),
        f("stacks/split/main.tf", resources("aws_sqs_queue", 1, "v0")),
        f("stacks/split/iam.tf", resources("aws_iam_role", 1, "v0")),
    ];
    for s in 0..20 {
        files.push(f(
            &format!("stacks/s{s}/stack.hcl"),
            stack_hcl("platform", &[]),
        ));
        files.push(f(
            &format!("stacks/s{s}/main.tf"),
            resources("aws_sqs_queue", 1, "v0"),
        ));
    }
    let changes = vec![Change {
        days_ago: 100,
        author: "alice@example.com",
        files,
    }];
    commit_all(dir.path(), &changes);
    let json: serde_json::Value =
        serde_json::from_str(&advise(dir.path(), &["--format", "json"])).unwrap();
    assert_eq!(
        recommendations(&json),
        [
            ("split", "permission_boundary", "declared"),
            ("split", "team", "ownership"),
        ]
        .map(|(s, c, b)| (s.to_owned(), c.to_owned(), b.to_owned()))
    );
    let team = json["recommendations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["criterion"] == "team")
        .unwrap();
    let evidence = team["evidence"].to_string();
    assert!(
        evidence.contains("security: 1 file (stacks/split/iam.tf)"),
        "{evidence}"
    );
    assert!(
        evidence.contains("admins and engineering: 2 files"),
        "{evidence}"
    );
}

/// Remote state (S3 on the sandbox): `--stage dev` reads what exists through the engine, as
/// `slipway drift` does; without it the declarations are counted and a note says how to read
/// the remote state.
#[test]
fn the_resources_that_exist_are_read_from_a_stages_remote_state() {
    let (sandbox, moto) = crate::common::sandbox();
    let project = crate::common::example("webshop");
    let dir = project.path();
    crate::common::boto3(
        &sandbox,
        &moto,
        "s3",
        "s3",
        "s3.create_bucket(Bucket='advise-state')",
    );
    crate::common::boto3(
        &sandbox,
        &moto,
        "dynamodb",
        "d",
        "d.create_table(TableName='advise-locks', KeySchema=[{'AttributeName': 'LockID', 'KeyType': 'HASH'}], AttributeDefinitions=[{'AttributeName': 'LockID', 'AttributeType': 'S'}], BillingMode='PAY_PER_REQUEST')",
    );
    let config = dir.join("slipway.hcl");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text + r#"
state {
  backend                     = "s3"
  bucket                      = "advise-state"
  region                      = "us-east-1"
  dynamodb_table              = "advise-locks"
  endpoint                    = env("SLIPWAY_SANDBOX_ENDPOINT")
  force_path_style            = true
  skip_credentials_validation = true
}
"#,
    )
    .unwrap();
    let env = moto.env();
    let apply =
        crate::common::slipway_run(dir, &env, &["apply", "--stage", "dev", "--stack", "queue"]);
    assert_eq!(apply.code, 0, "{}", apply.stderr);

    let read = crate::common::slipway_run(
        dir,
        &env,
        &["advise", "--stage", "dev", "--format", "json", "--all"],
    );
    assert_eq!(read.code, 0, "{}", read.stderr);
    let json: serde_json::Value = serde_json::from_str(&read.stdout).unwrap();
    let queue = stack_json(&json, "queue");
    assert_eq!(queue["resources_basis"], "existing", "{queue}");
    assert_eq!(queue["resources_stage"], "dev");
    assert_eq!(
        queue["resources_by_type"],
        serde_json::json!({ "aws_sqs_queue": 1 })
    );
    // Stacks never applied to dev have no state there: their declarations are counted.
    assert_eq!(
        stack_json(&json, "app")["resources_basis"],
        "declared",
        "{}",
        stack_json(&json, "app")
    );

    let default = crate::common::slipway_run(dir, &env, &["advise", "--format", "json"]);
    assert_eq!(default.code, 0, "{}", default.stderr);
    assert!(
        default
            .stderr
            .contains("`--stage prod` reads what exists from the remote state"),
        "{}",
        default.stderr
    );
    let json: serde_json::Value = serde_json::from_str(&default.stdout).unwrap();
    assert_eq!(stack_json(&json, "queue")["resources_basis"], "declared");
}
