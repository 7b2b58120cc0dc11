//! The API over real HTTP on loopback, on a server that keeps jobs without running them:
//! who may see and do what, the queue as clients see it, the audit of every action, live
//! events replayed from the record, and the metrics. Runs through the stages under a
//! server are tested with the sandbox (crates/slipway/tests/it/serve.rs).

use serde_json::{Value, json};
use slipway_store::{AuditAction, NewRun, Role, RunStatus, ServiceRecord as _, Store as _};

mod common;
use common::{Server, fixture};

#[test]
fn without_a_token_only_health_answers_and_nothing_is_told() {
    let server = Server::start();
    let (status, text) = server.request("GET", "/healthz", None, &[], None);
    assert_eq!((status, text.as_str()), (200, "ok\n"));
    for path in [
        "/api/v1/project",
        "/api/v1/runs",
        "/api/v1/releases",
        "/api/v1/audit",
        "/metrics",
    ] {
        let (status, text) = server.request("GET", path, None, &[], None);
        assert_eq!(status, 401, "{path}: {text}");
        assert!(
            !text.contains("acme")
                && !text.contains(env!("CARGO_PKG_VERSION"))
                && !text.contains("webshop"),
            "{path} tells nothing: {text}"
        );
        let (status, _) = server.request("GET", path, Some("slw_not-a-token"), &[], None);
        assert_eq!(status, 401, "{path} with a made-up token");
    }
}

#[test]
fn roles_decide_who_queues_and_every_refusal_is_audited() {
    let server = Server::start();
    let viewer = server.token("vic", Role::Viewer, None);
    let deployer = server.token("dee", Role::Deployer, None);
    let prod_approver = server.token("pat", Role::Approver, Some("prod"));

    let (status, runs) = server.json("GET", "/api/v1/runs", Some(&viewer), None);
    assert_eq!((status, runs), (200, json!([])));

    let asked = json!({ "commit": "6113728f27ae82c7b1a177c8d03f9e96e0adf246" });
    let (status, body) = server.json("POST", "/api/v1/runs", Some(&viewer), Some(&asked));
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("needs the deployer role; vic is viewer"),
        "{body}"
    );
    let (status, body) = server.json("POST", "/api/v1/runs", Some(&prod_approver), Some(&asked));
    assert_eq!(
        status, 403,
        "a stage-bound approver is a viewer for the project: {body}"
    );

    let (status, first) = server.json("POST", "/api/v1/runs", Some(&deployer), Some(&asked));
    assert_eq!(status, 202, "{first}");
    assert_eq!(first["requested_by"], "dee");
    let newer = json!({ "commit": "ec26c3e57ca3a959ca5aad62de7213c562f8c821" });
    let (status, second) = server.json("POST", "/api/v1/runs", Some(&deployer), Some(&newer));
    assert_eq!(status, 202, "{second}");
    let (status, bad) = server.json(
        "POST",
        "/api/v1/runs",
        Some(&deployer),
        Some(&json!({ "commit": "main; rm -rf /" })),
    );
    assert_eq!(status, 400, "{bad}");

    // The newer commit's run supersedes the older one, which stays visible as such.
    let (_, queue) = server.json("GET", "/api/v1/queue", Some(&viewer), None);
    let queue = queue.as_array().unwrap();
    assert_eq!(queue.len(), 2, "{queue:?}");
    assert_eq!(queue[0]["id"], second["id"]);
    assert_eq!(queue[0]["status"], "queued");
    assert_eq!(queue[0]["waiting"], "next");
    assert_eq!(queue[1]["status"], "superseded");
    assert_eq!(queue[1]["superseded_by"], second["id"]);
    assert!(queue[0].get("worker").is_none(), "no process details");

    let audit = server
        .runtime
        .block_on(server.store.audit_log(None, 100))
        .unwrap();
    let refused: Vec<&str> = audit
        .iter()
        .filter(|e| e.action == AuditAction::Refused)
        .map(|e| e.actor.as_str())
        .collect();
    assert_eq!(refused, ["vic", "pat"], "{audit:?}");
    let queued = audit
        .iter()
        .filter(|e| e.action == AuditAction::QueueRun)
        .count();
    assert_eq!(queued, 2, "{audit:?}");
}

#[test]
fn admins_make_and_revoke_tokens_whose_secret_is_shown_once() {
    let server = Server::start();
    let admin = server.token("ada", Role::Admin, None);
    let deployer = server.token("dee", Role::Deployer, None);
    let asked = json!({ "actor": "ci", "role": "viewer" });
    let (status, _) = server.json("POST", "/api/v1/tokens", Some(&deployer), Some(&asked));
    assert_eq!(status, 403);
    let (status, made) = server.json("POST", "/api/v1/tokens", Some(&admin), Some(&asked));
    assert_eq!(status, 201, "{made}");
    let secret = made["token"].as_str().unwrap().to_owned();
    let (status, _) = server.json("GET", "/api/v1/runs", Some(&secret), None);
    assert_eq!(status, 200, "the new token opens the API");
    let (_, listed) = server.json("GET", "/api/v1/tokens", Some(&admin), None);
    assert!(!listed.to_string().contains(&secret), "{listed}");
    assert!(!listed.to_string().contains("token_hash"), "{listed}");
    let (status, _) = server.json(
        "DELETE",
        &format!("/api/v1/tokens/{}", made["id"]),
        Some(&admin),
        None,
    );
    assert_eq!(status, 200);
    let (status, _) = server.json("GET", "/api/v1/runs", Some(&secret), None);
    assert_eq!(status, 401, "a revoked token opens nothing");
}

#[test]
fn run_events_replay_from_the_record_as_server_sent_events() {
    let server = Server::start();
    let viewer = server.token("vic", Role::Viewer, None);
    let run = server.runtime.block_on(async {
        let run = server
            .store
            .create_run(&NewRun {
                commit: "c1".to_owned(),
                trigger: "push".to_owned(),
                actor: "dana".to_owned(),
            })
            .await
            .unwrap();
        let events: Vec<Value> = (1..=5)
            .map(|n| json!({ "event": if n == 5 { "run_finished" } else { "note" }, "n": n }))
            .collect();
        server
            .store
            .append_run_events(run.id, &events)
            .await
            .unwrap();
        server
            .store
            .finish_run(run.id, RunStatus::Succeeded)
            .await
            .unwrap();
        run
    });
    let path = format!("/api/v1/runs/{}/events", run.id);
    let (status, stream) = server.request(
        "GET",
        &path,
        Some(&viewer),
        &[("Accept", "text/event-stream")],
        None,
    );
    assert_eq!(status, 200);
    let messages = parse_sse(&stream);
    assert_eq!(
        messages
            .iter()
            .map(|(id, kind, data)| (id.as_str(), kind.as_str(), data["n"].as_i64()))
            .collect::<Vec<_>>(),
        vec![
            ("1", "note", Some(1)),
            ("2", "note", Some(2)),
            ("3", "note", Some(3)),
            ("4", "note", Some(4)),
            ("5", "run_finished", Some(5)),
        ]
    );
    // A client that reconnects names the last event it saw and gets the rest.
    let (_, rest) = server.request(
        "GET",
        &path,
        Some(&viewer),
        &[("Accept", "text/event-stream"), ("Last-Event-ID", "3")],
        None,
    );
    let ids: Vec<String> = parse_sse(&rest).into_iter().map(|(id, _, _)| id).collect();
    assert_eq!(ids, ["4", "5"]);
    // Without asking for a stream: the same events as JSON.
    let (_, json) = server.json("GET", &format!("{path}?after=4"), Some(&viewer), None);
    assert_eq!(json[0]["seq"], 5);
    assert_eq!(json.as_array().unwrap().len(), 1);
    let (status, _) = server.json("GET", "/api/v1/runs/999/events", Some(&viewer), None);
    assert_eq!(status, 404);
}

#[test]
fn a_stack_runs_log_follows_its_engine_lines_and_ends_with_it() {
    use slipway_store::NewStackRun;
    let server = Server::start();
    let viewer = server.token("vic", Role::Viewer, None);
    let (run, stack_run) = server.runtime.block_on(async {
        let store = &server.store;
        let run = store
            .create_run(&NewRun {
                commit: "c1".to_owned(),
                trigger: "push".to_owned(),
                actor: "dana".to_owned(),
            })
            .await
            .unwrap();
        let stack_run = store
            .add_stack_run(&NewStackRun {
                run_id: run.id,
                stage: "dev".to_owned(),
                instance: "dev".to_owned(),
                stack: "network".to_owned(),
                artifact_id: None,
            })
            .await
            .unwrap();
        let line = |stack: &str, instance: &str, text: &str| {
            json!({ "event": "engine_output", "stage": "dev", "instance": instance, "stack": stack, "line": text })
        };
        store
            .append_run_events(
                run.id,
                &[
                    json!({ "event": "run_started", "run": run.id, "commit": "c1" }),
                    line("network", "dev", "network: Creating..."),
                    line("app", "dev", "app: Creating..."),
                    line("network", "verify-zero-1", "network in another instance"),
                    line("network", "dev", "Apply complete! Resources: 3 added"),
                    json!({ "event": "stack_finished", "stage": "dev", "instance": "dev", "stack": "network", "elapsed_ms": 5 }),
                    line("app", "dev", "app: still creating"),
                ],
            )
            .await
            .unwrap();
        (run, stack_run)
    });
    // The run is still running: the stream ends with the stack, not with the run.
    let (status, stream) = server.request(
        "GET",
        &format!("/api/v1/runs/{}/stack-runs/{}/log", run.id, stack_run.id),
        Some(&viewer),
        &[("Accept", "text/event-stream")],
        None,
    );
    assert_eq!(status, 200);
    let lines: Vec<(String, Option<String>)> = parse_sse(&stream)
        .into_iter()
        .map(|(_, kind, data)| (kind, data["line"].as_str().map(str::to_owned)))
        .collect();
    assert_eq!(
        lines,
        vec![
            (
                "engine_output".to_owned(),
                Some("network: Creating...".to_owned())
            ),
            (
                "engine_output".to_owned(),
                Some("Apply complete! Resources: 3 added".to_owned())
            ),
            ("stack_finished".to_owned(), None),
        ]
    );
    // Not finished, no log written yet: the plain request says how to follow it.
    let (status, body) = server.json(
        "GET",
        &format!("/api/v1/runs/{}/stack-runs/{}/log", run.id, stack_run.id),
        Some(&viewer),
        None,
    );
    assert_eq!(status, 404);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("text/event-stream"),
        "{body}"
    );
}

#[test]
fn metrics_count_webhook_verdicts_and_the_queue() {
    let server = Server::start();
    let viewer = server.token("vic", Role::Viewer, None);
    let push = fixture("github/push.json");
    let (status, _) = server.github("push", "m-1", &push);
    assert_eq!(status, 202);
    let (status, _) = server.github("push", "m-1", &push);
    assert_eq!(status, 202);
    let (status, _) = server.post(
        "/webhooks/github",
        &[
            ("X-GitHub-Event", "push"),
            ("X-GitHub-Delivery", "m-2"),
            ("X-Hub-Signature-256", "sha256=00"),
        ],
        &push,
    );
    assert_eq!(status, 401);
    let (status, text) = server.request("GET", "/metrics", Some(&viewer), &[], None);
    assert_eq!(status, 200, "{text}");
    for line in [
        "slipway_webhook_deliveries_total{provider=\"github\",verdict=\"queued\"} 1",
        "slipway_webhook_deliveries_total{provider=\"github\",verdict=\"duplicate\"} 1",
        "slipway_webhook_deliveries_total{provider=\"github\",verdict=\"refused\"} 1",
        "slipway_queue_depth 1",
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
    }
    let jobs = server.runtime.block_on(server.store.jobs(10)).unwrap();
    assert_eq!(jobs.len(), 1, "one job for the queued push: {jobs:?}");
    assert_eq!(jobs[0].requested_by, "octocat");
    let (status, ready) = server.request("GET", "/readyz", None, &[], None);
    assert_eq!((status, ready.as_str()), (200, "ready\n"));
}

/// `(id, event, data)` of each message of a server-sent event stream.
fn parse_sse(stream: &str) -> Vec<(String, String, Value)> {
    stream
        .split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .filter_map(|block| {
            let mut id = String::new();
            let mut kind = String::new();
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("event:") {
                    kind = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim());
                }
            }
            (!data.is_empty()).then(|| (id, kind, serde_json::from_str(&data).unwrap()))
        })
        .collect()
}

/// A project whose `app` stack declares four queues (over the `max_resources` of 3 its
/// advisor block sets) in a git repository with one commit, and a `network` stack below it.
fn advised_project(root: &std::path::Path) {
    let files = [
        (
            "slipway.hcl",
            "project {\n  name = \"shop\"\n}\n\nstage \"dev\" {}\n\nstage \"prod\" {}\n\n\
             advisor {\n  max_resources = 3\n}\n",
        ),
        (
            "stacks/network/stack.hcl",
            "stack {\n  team = \"platform\"\n}\n",
        ),
        (
            "stacks/network/main.tf",
            "output \"vpc\" { value = \"vpc-1\" }\n",
        ),
        (
            "stacks/app/stack.hcl",
            "stack {\n  team = \"shop\"\n}\n\ndependency \"network\" {\n  path = \"../network\"\n}\n",
        ),
        (
            "stacks/app/main.tf",
            "variable \"queues\" {\n  default = 4\n}\n\nresource \"aws_sqs_queue\" \"q\" {\n  count = var.queues\n}\n",
        ),
    ];
    for (path, text) in files {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let git = |args: &[&str]| {
        let status = std::process::Command::new("git")
            .args(args)
            .current_dir(root)
            .env("GIT_AUTHOR_NAME", "Ada")
            .env("GIT_AUTHOR_EMAIL", "ada@example.com")
            .env("GIT_COMMITTER_NAME", "Ada")
            .env("GIT_COMMITTER_EMAIL", "ada@example.com")
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    };
    git(&["init", "-q", "-b", "main"]);
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "two stacks"]);
}

#[test]
fn advice_is_the_advisors_report_on_the_servers_working_copy() {
    let server = Server::start_with(|dir, config| {
        let checkout = dir.join("checkout");
        advised_project(&checkout);
        slipway_server::ServerConfig {
            runner: Some(slipway_server::RunnerConfig {
                checkout,
                source: None,
                settings: slipway_runner::Settings {
                    actor: "slipway-server".to_owned(),
                    store_url: Some(slipway_store::default_url(&dir.join("data"))),
                    ..slipway_runner::Settings::default()
                },
                poll: None,
            }),
            ..config
        }
    });
    let viewer = server.token("vic", Role::Viewer, None);

    let (status, text) = server.request("GET", "/api/v1/advice?days=30", Some(&viewer), &[], None);
    assert_eq!(status, 200, "{text}");
    let advice: Value = serde_json::from_str(&text).unwrap();
    let report = &advice["report"];
    assert_eq!(report["window_days"], json!(30.0), "{advice:#}");
    assert_eq!(report["commits"], json!(1), "{advice:#}");
    let stacks: Vec<&str> = report["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(stacks, ["app", "network"], "{advice:#}");
    // Nothing was applied, so the four queues are counted from the code, and the report
    // says so.
    let app = &report["stacks"][0];
    assert_eq!(
        (app["resources"].as_u64(), app["resources_basis"].as_str()),
        (Some(4), Some("declared"))
    );
    let recommendations = report["recommendations"].as_array().unwrap();
    assert!(
        recommendations.iter().any(|r| r["stacks"] == json!(["app"])
            && r["criterion"] == json!("blast_radius")
            && r["basis"] == json!("declared")),
        "{advice:#}"
    );
    assert!(
        recommendations
            .iter()
            .all(|r| r["stacks"] != json!(["network"])),
        "{advice:#}"
    );

    let (status, text) = server.request(
        "GET",
        "/api/v1/advice?stage=staging",
        Some(&viewer),
        &[],
        None,
    );
    assert_eq!(status, 404, "{text}");
    assert!(text.contains("no stage `staging`"), "{text}");
    let (status, _) = server.request("GET", "/api/v1/advice", None, &[], None);
    assert_eq!(status, 401);
}
