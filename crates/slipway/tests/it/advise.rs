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
