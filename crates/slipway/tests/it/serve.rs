//! `slipway serve` as a user starts it: in a project, on loopback, with the webhook secret in
//! its environment; stopped by SIGTERM after finishing what it was doing.

use std::io::{BufRead as _, BufReader};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use slipway_server::Secret;
use slipway_server::webhook::github_signature;
use slipway_store::{DeliveryStatus, Store as _};

use crate::common::{fixture, slipway_process, with_record};

#[test]
fn serve_keeps_a_signed_push_and_stops_on_sigterm() {
    let project = fixture("chain");
    let dir = project.path();
    let secret = "a webhook secret";
    let mut server = slipway_process(dir, &[])
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--allow-repo",
            "acme/platform",
        ])
        .env("SLIPWAY_GITHUB_WEBHOOK_SECRET", secret)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(server.stderr.take().unwrap());
    let mut line = String::new();
    let address = loop {
        line.clear();
        assert_ne!(stderr.read_line(&mut line).unwrap(), 0, "serve ended early");
        if let Some(rest) = line
            .trim()
            .strip_prefix("slipway serve: listening on http://")
        {
            break rest.to_owned();
        }
    };
    assert!(address.starts_with("127.0.0.1:"), "{address}");

    let body = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../slipway-server/tests/fixtures/github/push.json"),
    )
    .unwrap();
    let response = ureq::post(&format!("http://{address}/webhooks/github"))
        .timeout(Duration::from_secs(30))
        .set("X-GitHub-Event", "push")
        .set("X-GitHub-Delivery", "cli-1")
        .set(
            "X-Hub-Signature-256",
            &github_signature(&Secret::new(secret), &body),
        )
        .send_bytes(&body)
        .unwrap();
    assert_eq!(response.status(), 202);

    kill(Pid::from_raw(server.id() as i32), Signal::SIGTERM).unwrap();
    let status = server.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert!(status.success(), "{status}: {rest}");
    assert!(rest.contains("slipway serve: stopped"), "{rest}");
    assert!(
        !rest.contains(secret),
        "the secret never reaches the log: {rest}"
    );

    let kept = with_record(
        dir,
        |store| async move { store.deliveries(10).await.unwrap() },
    );
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0].id, "github:cli-1");
    assert_eq!(kept[0].status, DeliveryStatus::Queued);
}

/// The commit `dir`'s HEAD names.
pub(crate) fn git_head(dir: &std::path::Path) -> String {
    let output = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(dir)
        .output()
        .unwrap();
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// An API token made with `slipway token create` in `dir`.
pub(crate) fn make_token(
    dir: &std::path::Path,
    env: &[(String, String)],
    actor: &str,
    role: &str,
    stage: Option<&str>,
) -> String {
    let mut args = vec!["token", "create", "--actor", actor, "--role", role];
    if let Some(stage) = stage {
        args.extend(["--stage", stage]);
    }
    crate::common::slipway_ok_with(dir, env, &args)
        .stdout
        .trim()
        .to_owned()
}

/// A running `slipway serve`, its log collected as it is written (so the pipe never fills).
pub(crate) struct Served {
    pub(crate) child: std::process::Child,
    address: String,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Served {
    pub(crate) fn start(dir: &std::path::Path, env: &[(String, String)], args: &[&str]) -> Self {
        let mut child = slipway_process(dir, env)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (found, address) = std::sync::mpsc::channel();
        let kept = std::sync::Arc::clone(&log);
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("slipway serve: listening on http://") {
                    let _ = found.send(rest.to_owned());
                }
                let mut log = kept.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let address = address
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("serve did not start: {}", log.lock().unwrap()));
        Self {
            child,
            address,
            log,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub(crate) fn api(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let request = ureq::request(method, &self.url(path))
            .timeout(Duration::from_secs(120))
            .set("Authorization", &format!("Bearer {token}"));
        let sent = match body {
            Some(body) => request.send_json(body),
            None => request.call(),
        };
        let response = match sent {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(error) => panic!("{method} {path}: {error}"),
        };
        let status = response.status();
        let text = response.into_string().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        )
    }

    /// Follows a run's server-sent events from after `after` until an event of kind
    /// `until`; returns `(seq, event)` of every one read.
    pub(crate) fn follow(
        &self,
        run: i64,
        token: &str,
        after: i64,
        until: &str,
    ) -> Vec<(i64, serde_json::Value)> {
        let response = ureq::get(&self.url(&format!("/api/v1/runs/{run}/events")))
            .timeout(Duration::from_secs(900))
            .set("Authorization", &format!("Bearer {token}"))
            .set("Accept", "text/event-stream")
            .set("Last-Event-ID", &after.to_string())
            .call()
            .unwrap();
        let mut seen = Vec::new();
        let mut id = 0;
        for line in BufReader::new(response.into_reader()).lines() {
            let line = line.unwrap();
            if let Some(v) = line.strip_prefix("id:") {
                id = v.trim().parse().unwrap();
            } else if let Some(v) = line.strip_prefix("data:") {
                let event: serde_json::Value = serde_json::from_str(v.trim()).unwrap();
                let done = event["event"] == until;
                seen.push((id, event));
                if done {
                    return seen;
                }
            }
        }
        panic!("the stream ended before `{until}`: {seen:?}");
    }

    /// Approves `stage` of `run` through the API with `token`; the server answers 202.
    pub(crate) fn approve(&self, run: i64, token: &str, stage: &str, reason: &str) {
        let (status, approved) = self.api(
            "POST",
            &format!("/api/v1/runs/{run}/approve"),
            token,
            Some(serde_json::json!({ "stage": stage, "reason": reason })),
        );
        assert_eq!(status, 202, "{approved}");
    }

    pub(crate) fn stop(mut self) -> String {
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM).unwrap();
        let status = self.child.wait().unwrap();
        let log = self.log.lock().unwrap().clone();
        assert!(status.success(), "{status}: {log}");
        log
    }
}

/// The walk-through on the sandbox: a signed push of a new commit runs the webshop
/// through dev and test to prod's approval gate in the server; people with the wrong role,
/// the commit's author and the person who pushed cannot approve prod (four eyes); another
/// approver can, through the API; the run completes and every stage runs the same
/// artifacts. The run's events are followed live over server-sent events throughout.
#[test]
fn a_signed_push_runs_the_webshop_to_approval_and_an_approver_finishes_it_over_the_api() {
    use crate::common::sandbox;
    use crate::pipeline::git;

    let (_sandbox, moto) = sandbox();
    // Upstream: the webshop with four eyes on prod; verification is the run's own business
    // and tested elsewhere, so it is off here to keep the test to the service.
    let upstream = crate::common::example("webshop");
    let config = upstream.path().join("slipway.hcl");
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replace(
        "  approval  = true\n",
        "  approval  = true\n  four_eyes = true\n",
    ) + "\nverify {\n  from_zero   = false\n  from_latest = false\n}\n";
    assert!(text.contains("four_eyes"));
    std::fs::write(&config, text).unwrap();
    git(upstream.path(), &["init", "-q", "-b", "main"]);
    std::fs::write(upstream.path().join(".gitignore"), ".slipway/\n").unwrap();
    git(upstream.path(), &["add", "-A"]);
    git(upstream.path(), &["commit", "-q", "-m", "webshop"]);
    let head = git_head(upstream.path());

    // The server's own clone.
    let home = tempfile::tempdir().unwrap();
    let checkout = home.path().join("server");
    let cloned = std::process::Command::new("git")
        .args(["clone", "-q"])
        .arg(upstream.path())
        .arg(&checkout)
        .status()
        .unwrap();
    assert!(cloned.success());

    let mut env = moto.env();
    env.push(("SLIPWAY_ACTOR".to_owned(), "operator".to_owned()));
    let token = |actor: &str, role: &str, stage: Option<&str>| {
        make_token(&checkout, &env, actor, role, stage)
    };
    let viewer = token("vic", "viewer", None);
    let deployer = token("dee", "deployer", None);
    let author = token("test", "approver", None);
    let pusher = token("dana", "approver", None);
    let approver = token("erin", "approver", Some("prod"));

    let secret = "the webhook secret";
    // Every engine the server starts is recorded: none may see the server's secrets.
    let engine = crate::common::recording_engine_wrapper(home.path(), &_sandbox.terraform);
    let mut served_env = env.clone();
    served_env.retain(|(name, _)| name != "SLIPWAY_ENGINE");
    served_env.extend(
        [
            ("SLIPWAY_ENGINE", engine.binary.to_str().unwrap()),
            ("SLIPWAY_GITHUB_WEBHOOK_SECRET", secret),
            // The sandbox's provider reads its credentials from the environment.
            ("SLIPWAY_ENGINE_PASS", "AWS_*"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let server = Served::start(
        &checkout,
        &served_env,
        &["--allow-repo", "acme/webshop", "--poll", "0"],
    );

    let push = serde_json::json!({
        "ref": "refs/heads/main",
        "before": "0000000000000000000000000000000000000000",
        "after": head,
        "created": true,
        "deleted": false,
        "forced": false,
        "repository": { "id": 1, "name": "webshop", "full_name": "acme/webshop", "default_branch": "main" },
        "pusher": { "name": "dana", "email": "dana@example.com" },
        "sender": { "login": "dana", "id": 2, "type": "User" },
        "head_commit": { "id": head, "message": "webshop" },
    })
    .to_string();
    let response = ureq::post(&server.url("/webhooks/github"))
        .set("X-GitHub-Event", "push")
        .set("X-GitHub-Delivery", "e2e-1")
        .set(
            "X-Hub-Signature-256",
            &github_signature(&Secret::new(secret), push.as_bytes()),
        )
        .send_string(&push)
        .unwrap();
    assert_eq!(response.status(), 202);

    // The job names its run once it started it.
    let mut run = 0;
    crate::common::wait_until(
        "the pushed commit's run starts",
        Duration::from_secs(300),
        || {
            let (_, queue) = server.api("GET", "/api/v1/queue", &viewer, None);
            run = queue[0]["run_id"].as_i64().unwrap_or(0);
            run > 0
        },
    );
    let first = server.follow(run, &viewer, 0, "awaiting_approval");
    let kinds: Vec<&str> = first
        .iter()
        .filter_map(|(_, e)| e["event"].as_str())
        .collect();
    assert!(
        kinds.contains(&"run_started") && kinds.contains(&"stack_finished"),
        "{kinds:?}"
    );
    let seqs: Vec<i64> = first.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as i64).collect::<Vec<_>>(),
        "in order, none missing"
    );
    let (_, detail) = server.api("GET", &format!("/api/v1/runs/{run}"), &viewer, None);
    let prod = detail["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == "prod")
        .unwrap();
    assert_eq!(prod["status"], "awaiting_approval", "{detail}");
    assert!(
        !detail.to_string().contains(".tfplan")
            && !detail.to_string().contains(home.path().to_str().unwrap()),
        "no server paths: {detail}"
    );

    // What the approver reads first: the saved plans' blast radius.
    let report = ureq::get(&server.url(&format!("/api/v1/runs/{run}/stages/prod/report")))
        .set("Authorization", &format!("Bearer {viewer}"))
        .call()
        .unwrap()
        .into_json::<serde_json::Value>()
        .unwrap();
    assert_eq!(report["schema"], "slipway.blast-radius/v1", "{report}");
    let reported: Vec<&str> = report["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["stack"].as_str().unwrap())
        .collect();
    assert!(
        reported.contains(&"network") && reported.contains(&"queue"),
        "{reported:?}"
    );
    assert!(
        report["instances"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["instance"] == "prod")
    );
    let markdown = ureq::get(&server.url(&format!(
        "/api/v1/runs/{run}/stages/prod/report?format=markdown"
    )))
    .set("Authorization", &format!("Bearer {viewer}"))
    .call()
    .unwrap()
    .into_string()
    .unwrap();
    assert!(
        markdown.contains("network") && markdown.contains('|'),
        "{markdown}"
    );

    let approve = |token: &str| {
        server.api(
            "POST",
            &format!("/api/v1/runs/{run}/approve"),
            token,
            Some(serde_json::json!({ "stage": "prod", "reason": "reviewed the plan" })),
        )
    };
    for (who, refused_for) in [
        (&viewer, "needs the approver role"),
        (&deployer, "needs the approver role"),
        (&author, "test wrote commit"),
        (&pusher, "dana started run"),
    ] {
        let (status, body) = approve(who);
        assert_eq!(status, 403, "{body}");
        assert!(
            body["error"].as_str().unwrap().contains(refused_for),
            "{body}"
        );
    }
    let (status, approved) = approve(&approver);
    assert_eq!(status, 202, "{approved}");
    assert_eq!(approved["approved_by"], "erin");
    let last = first.last().unwrap().0;
    let rest = server.follow(run, &viewer, last, "run_finished");
    assert_eq!(
        rest.first().unwrap().0,
        last + 1,
        "continues where it stopped"
    );
    assert_eq!(rest.last().unwrap().1["delivered"], true, "{rest:?}");

    // A stack's log, as its engine printed it (the server keeps the lines as events).
    let (_, detail) = server.api("GET", &format!("/api/v1/runs/{run}"), &viewer, None);
    let network = detail["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == "prod")
        .and_then(|s| {
            s["stacks"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["stack"] == "network")
        })
        .unwrap()
        .clone();
    let lines = ureq::get(&server.url(&format!(
        "/api/v1/runs/{run}/stack-runs/{}/log",
        network["id"]
    )))
    .set("Authorization", &format!("Bearer {viewer}"))
    .set("Accept", "text/event-stream")
    .call()
    .unwrap()
    .into_string()
    .unwrap();
    assert!(lines.contains("event: engine_output"), "{lines}");
    assert!(
        lines.trim_end().ends_with('}') && lines.contains("event: stack_finished"),
        "{lines}"
    );

    let (_, matrix) = server.api("GET", "/api/v1/releases", &viewer, None);
    let stacks = matrix["stacks"].as_array().unwrap();
    assert_eq!(stacks.len(), 4, "{matrix}");
    for stack in stacks {
        let releases = stack["releases"].as_object().unwrap();
        assert_eq!(releases.len(), 3, "{stack}");
        assert_eq!(stack["stages_differ"], false, "{stack}");
        assert!(
            releases.values().all(|r| r["commit"] == head.as_str()),
            "{stack}"
        );
    }

    // One delivery per stage, the commit's lead time measured from git, nothing failed.
    let (_, dora) = server.api("GET", "/api/v1/dora?days=1", &viewer, None);
    let stages: Vec<&str> = dora["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["dev", "prod", "test"], "{dora}");
    for stage in dora["stages"].as_array().unwrap() {
        assert_eq!(stage["deployments"], 1, "{dora}");
        assert_eq!(stage["lead_time"]["count"], 1, "{dora}");
        assert!(
            stage["lead_time"]["median_ms"].as_i64().unwrap() >= 0,
            "{dora}"
        );
        assert_eq!(stage["change_failure_rate"], 0.0, "{dora}");
        assert_eq!(stage["open_incidents"], 0, "{dora}");
    }

    let (_, audit) = server.api("GET", "/api/v1/audit", &viewer, None);
    let entries = audit.as_array().unwrap();
    let refused: Vec<&str> = entries
        .iter()
        .filter(|e| e["action"] == "refused")
        .map(|e| e["actor"].as_str().unwrap())
        .collect();
    assert_eq!(refused, ["vic", "dee", "test", "dana"], "{audit}");
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "approve" && e["actor"] == "erin"),
        "{audit}"
    );
    let (status, _) = server.api("GET", "/api/v1/metrics", &viewer, None);
    assert_eq!(status, 404, "metrics live at /metrics");
    let metrics = ureq::get(&server.url("/metrics"))
        .set("Authorization", &format!("Bearer {viewer}"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(
        metrics.contains("slipway_jobs_ended_total{status=\"done\"} 2"),
        "{metrics}"
    );

    let log = server.stop();
    assert!(!log.contains(secret), "the secret never reaches the log");
    let calls = engine.calls();
    assert!(
        calls.iter().any(|c| c.args.starts_with("apply")),
        "engines ran through the wrapper"
    );
    for call in &calls {
        assert!(
            !call.raw.contains(secret),
            "{}: the webhook secret reached an engine",
            call.args
        );
        assert!(
            !call.env.contains_key("SLIPWAY_GITHUB_WEBHOOK_SECRET")
                && !call.env.contains_key("SLIPWAY_ACTOR"),
            "{}: {:?}",
            call.args,
            call.env.keys()
        );
        assert!(
            call.env.contains_key("AWS_ACCESS_KEY_ID"),
            "what was passed arrives"
        );
    }
    for token in [&viewer, &deployer, &author, &pusher, &approver] {
        assert!(!log.contains(token.as_str()), "no token in the log");
    }
}

/// The provider-free `crash` fixture as a committed repository, with `extra` appended to its
/// slipway.hcl, and the environment that runs it on the sandbox's engine.
pub(crate) fn provider_free_repository(extra: &str) -> (tempfile::TempDir, Vec<(String, String)>) {
    use crate::pipeline::git;
    let sandbox = slipway_sandbox::Sandbox::from_env().expect("the sandbox installs");
    let project = fixture("crash");
    let config = project.path().join("slipway.hcl");
    let text = std::fs::read_to_string(&config).unwrap() + extra;
    std::fs::write(&config, text).unwrap();
    git(project.path(), &["init", "-q", "-b", "main"]);
    std::fs::write(project.path().join(".gitignore"), ".slipway/\n").unwrap();
    git(project.path(), &["add", "-A"]);
    git(project.path(), &["commit", "-q", "-m", "crash fixture"]);
    let env = vec![
        (
            "SLIPWAY_ENGINE".to_owned(),
            sandbox.terraform.display().to_string(),
        ),
        ("SLIPWAY_ACTOR".to_owned(), "operator".to_owned()),
    ];
    (project, env)
}

/// A schedule whose times passed while no server ran queues one job when one starts, not
/// one per time missed: a drift check of dev, whose result is recorded.
#[test]
fn a_schedule_missed_while_down_runs_once_when_the_server_starts() {
    use slipway_store::{
        JobKind, JobStatus, ServiceRecord as _, UnixMillis, VerificationRecord as _,
    };
    // Once a year: nothing else falls due while the test runs.
    let (project, env) = provider_free_repository(
        "\nschedule \"yearly-drift\" {\n  cron  = \"0 0 1 1 *\"\n  run   = \"drift\"\n  stage = \"dev\"\n}\n",
    );
    let dir = project.path();
    crate::common::slipway_ok_with(dir, &env, &["deploy", "--stage", "dev"]);
    // Last acted on three years ago: three times missed.
    let three_years = 3 * 366 * 24 * 3600 * 1000;
    with_record(dir, |store| async move {
        let long_ago = UnixMillis(UnixMillis::now().0 - three_years);
        assert!(
            store
                .mark_schedule("yearly-drift", None, long_ago, None)
                .await
                .unwrap()
        );
    });
    let server = Served::start(dir, &env, &["--poll", "0"]);
    crate::common::wait_until(
        "the scheduled drift check ends",
        Duration::from_secs(300),
        || {
            with_record(dir, |store| async move { store.jobs(10).await.unwrap() })
                .iter()
                .any(|job| matches!(job.status, JobStatus::Done | JobStatus::Failed))
        },
    );
    let log = server.stop();
    let jobs = with_record(dir, |store| async move { store.jobs(10).await.unwrap() });
    assert_eq!(
        jobs.len(),
        1,
        "one job for three missed times: {jobs:?}\n{log}"
    );
    let job = &jobs[0];
    assert_eq!(
        (job.kind, job.status),
        (JobKind::Drift, JobStatus::Done),
        "{job:?}\n{log}"
    );
    assert_eq!(job.stage.as_deref(), Some("dev"));
    assert!(
        job.outcome
            .as_deref()
            .is_some_and(|o| o.contains("of dev: in sync")),
        "{job:?}"
    );
    let (checks, marks) = with_record(dir, |store| async move {
        (
            store.drift_checks(Some("dev"), 10).await.unwrap(),
            store.schedule_marks().await.unwrap(),
        )
    });
    assert_eq!(checks.len(), 1, "{checks:?}");
    assert_eq!(checks[0].drifted, 0);
    // Marked at the latest 1 January, 00:00 UTC.
    let mark = marks[0].1.to_rfc3339();
    assert!(mark.contains("-01-01T00:00:00"), "{mark}");
}

/// `kill -9` of the server while a run waits for approval loses nothing: after a restart it
/// still waits, is approved through the API and completes.
#[test]
fn a_server_killed_while_a_run_awaits_approval_picks_it_up_after_a_restart() {
    let (project, env) = provider_free_repository("");
    let dir = project.path();
    let viewer = make_token(dir, &env, "vic", "viewer", None);
    let approver = make_token(dir, &env, "erin", "approver", Some("prod"));
    let deployer = make_token(dir, &env, "dee", "deployer", None);
    let head = git_head(dir);

    let mut server = Served::start(dir, &env, &["--poll", "0"]);
    let (status, job) = server.api(
        "POST",
        "/api/v1/runs",
        &deployer,
        Some(serde_json::json!({ "commit": head })),
    );
    assert_eq!(status, 202, "{job}");
    let mut run = 0;
    crate::common::wait_until("the queued run starts", Duration::from_secs(120), || {
        let (_, queue) = server.api("GET", "/api/v1/queue", &viewer, None);
        run = queue[0]["run_id"].as_i64().unwrap_or(0);
        run > 0
    });
    let seen = server.follow(run, &viewer, 0, "awaiting_approval");
    crate::common::wait_until("the job ends at the gate", Duration::from_secs(60), || {
        let (_, queue) = server.api("GET", "/api/v1/queue", &viewer, None);
        queue[0]["status"] == "done"
    });

    // kill -9: no drain, no goodbye.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let server = Served::start(dir, &env, &["--poll", "0"]);
    let (_, detail) = server.api("GET", &format!("/api/v1/runs/{run}"), &viewer, None);
    assert_eq!(detail["run"]["status"], "running", "{detail}");
    let prod = detail["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == "prod")
        .unwrap()
        .clone();
    assert_eq!(prod["status"], "awaiting_approval", "still waits: {detail}");
    server.approve(run, &approver, "prod", "after the restart");
    let rest = server.follow(run, &viewer, seen.last().unwrap().0, "run_finished");
    assert_eq!(rest.last().unwrap().1["delivered"], true, "{rest:?}");
    // The job is marked done just after its run's last event.
    let mut queue = serde_json::Value::Null;
    crate::common::wait_until("the resume job ends", Duration::from_secs(60), || {
        queue = server.api("GET", "/api/v1/queue", &viewer, None).1;
        queue.as_array().is_some_and(|jobs| {
            jobs.iter()
                .all(|j| j["status"] != "running" && j["status"] != "queued")
        })
    });
    let statuses: Vec<&str> = queue
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["status"].as_str().unwrap())
        .collect();
    // The resume ran after the restart; the first job had ended at the gate.
    assert_eq!(statuses, ["done", "done"], "{queue}");
    server.stop();
}

/// Pushes whose webhook never arrives are found by polling the source: a server started with
/// `--repo URL` clones it, fetches from it and queues the branch's new head, once.
#[test]
fn a_server_of_a_repository_url_polls_it_for_pushes_no_webhook_announced() {
    use crate::pipeline::git;
    use slipway_store::ServiceRecord as _;
    let (upstream, env) = provider_free_repository("");
    // Started in an empty folder with `--repo`: the server clones what it serves.
    let home = tempfile::tempdir().unwrap();
    let url = format!("file://{}", upstream.path().display());
    let server = Served::start(home.path(), &env, &["--repo", &url, "--poll", "1s"]);
    let checkout = home.path().join(".slipway/checkout");
    assert!(
        checkout.join("slipway.hcl").exists(),
        "cloned into the data folder"
    );
    let polled = |commit: String| {
        let checkout = checkout.clone();
        move || {
            with_record(
                &checkout,
                |store| async move { store.jobs(20).await.unwrap() },
            )
            .iter()
            .any(|j| j.commit == commit && j.requested_by == "poll")
        }
    };
    crate::common::wait_until(
        "the branch's head is queued",
        Duration::from_secs(120),
        polled(git_head(upstream.path())),
    );
    // A push nobody announces.
    let main_tf = upstream.path().join("stacks/app/main.tf");
    let text = std::fs::read_to_string(&main_tf).unwrap();
    std::fs::write(&main_tf, text + "\n# a change pushed without a webhook\n").unwrap();
    git(upstream.path(), &["commit", "-q", "-am", "unannounced"]);
    crate::common::wait_until(
        "the pushed commit is queued",
        Duration::from_secs(300),
        polled(git_head(upstream.path())),
    );
    server.stop();
    let jobs = with_record(
        &checkout,
        |store| async move { store.jobs(20).await.unwrap() },
    );
    let polled_jobs: Vec<&str> = jobs
        .iter()
        .filter(|j| j.requested_by == "poll")
        .map(|j| j.commit.as_str())
        .collect();
    assert_eq!(
        polled_jobs.len(),
        2,
        "each commit once, however often polled: {jobs:?}"
    );
}

/// SIGTERM while a run is working: the engine steps get the interrupt, the server stops
/// (exit 0) without starting the job queued behind, and the record says the job was
/// interrupted and the other is still queued for the next server.
#[test]
fn sigterm_mid_run_interrupts_the_job_and_starts_nothing_new() {
    use slipway_store::{JobStatus, ServiceRecord as _};
    let (project, env) = provider_free_repository("");
    let dir = project.path();
    let viewer = make_token(dir, &env, "vic", "viewer", None);
    let deployer = make_token(dir, &env, "dee", "deployer", None);
    let first = git_head(dir);
    crate::pipeline::git(dir, &["commit", "-q", "--allow-empty", "-m", "second"]);
    let second = git_head(dir);
    crate::pipeline::git(dir, &["checkout", "-q", "--detach", &first]);

    let server = Served::start(dir, &env, &["--poll", "0"]);
    let queue = |commit: &str| {
        let (status, job) = server.api(
            "POST",
            "/api/v1/runs",
            &deployer,
            Some(serde_json::json!({ "commit": commit })),
        );
        assert_eq!(status, 202, "{job}");
        job["id"].as_i64().unwrap()
    };
    let running = queue(&first);
    let mut run = 0;
    crate::common::wait_until("the first run starts", Duration::from_secs(120), || {
        let (_, job) = server.api("GET", "/api/v1/queue", &viewer, None);
        run = job[0]["run_id"].as_i64().unwrap_or(0);
        run > 0
    });
    // Queued on a different branch than nothing: the second commit waits behind the first.
    let waiting = queue(&second);
    server.follow(run, &viewer, 0, "step_started");
    // A client still following the run does not hold the server up.
    let watcher = {
        let url = server.url(&format!("/api/v1/runs/{run}/events"));
        let viewer = viewer.clone();
        let (connected, watching) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let response = ureq::get(&url)
                .set("Authorization", &format!("Bearer {viewer}"))
                .set("Accept", "text/event-stream")
                .call()
                .unwrap();
            let mut lines = BufReader::new(response.into_reader()).lines();
            let first = lines.next();
            connected.send(()).unwrap();
            usize::from(first.is_some()) + lines.count()
        });
        watching.recv_timeout(Duration::from_secs(60)).unwrap();
        thread
    };
    let log = server.stop();
    assert!(
        watcher.join().unwrap() > 0,
        "the watcher saw events, then the end"
    );
    assert!(log.contains("slipway serve: stopped"), "{log}");
    let jobs = with_record(dir, |store| async move { store.jobs(10).await.unwrap() });
    let status = |id: i64| jobs.iter().find(|j| j.id == id).unwrap().status;
    assert_eq!(
        status(waiting),
        JobStatus::Queued,
        "nothing new started: {jobs:?}"
    );
    assert!(
        matches!(status(running), JobStatus::Interrupted | JobStatus::Done),
        "{jobs:?}"
    );

    // The next server picks up what was queued, and leaves the interrupted job alone.
    let server = Served::start(dir, &env, &["--poll", "0"]);
    crate::common::wait_until(
        "the queued job runs after the restart",
        Duration::from_secs(300),
        || {
            let jobs = with_record(dir, |store| async move { store.jobs(10).await.unwrap() });
            jobs.iter()
                .any(|j| j.id == waiting && matches!(j.status, JobStatus::Done | JobStatus::Failed))
        },
    );
    let log = server.stop();
    let jobs = with_record(dir, |store| async move { store.jobs(10).await.unwrap() });
    let job = |id: i64| jobs.iter().find(|j| j.id == id).unwrap();
    assert_eq!(job(waiting).status, JobStatus::Done, "{jobs:?}\n{log}");
    assert!(job(waiting).run_id.is_some(), "{jobs:?}");
    assert_eq!(job(running).status, status(running), "not re-run: {jobs:?}");
}

/// `kill -9` of the server mid-apply, and of the engine it left, as a dying machine (the
/// provider's request is held, so the apply is in flight for sure). After a restart the job
/// is interrupted and never re-run, and the API reports the run and its stack run
/// interrupted with the command that resolves it, as `slipway status` does.
#[test]
fn a_server_killed_mid_apply_reports_the_run_interrupted_after_a_restart() {
    use crate::interrupt::HoldingProxy;
    use crate::pipeline_killed::process_groups_working_in;

    let (_sandbox, moto) = crate::common::sandbox();
    // Verification is tested elsewhere: the first apply is dev's.
    let project = crate::queue_project::queue_repository_with(
        "\nverify {\n  from_zero   = false\n  from_latest = false\n}\n",
    );
    let dir = project.path();
    let mut env = moto.env();
    env.push(("SLIPWAY_ACTOR".to_owned(), "operator".to_owned()));
    let viewer = make_token(dir, &env, "vic", "viewer", None);
    let deployer = make_token(dir, &env, "dee", "deployer", None);
    let proxy = HoldingProxy::start(moto.port(), "Action=CreateQueue");
    let mut served_env = proxy.env(&env);
    served_env.push(("SLIPWAY_ENGINE_PASS".to_owned(), "AWS_*".to_owned()));

    let mut server = Served::start(dir, &served_env, &["--poll", "0"]);
    let (status, job) = server.api(
        "POST",
        "/api/v1/runs",
        &deployer,
        Some(serde_json::json!({ "commit": git_head(dir) })),
    );
    assert_eq!(status, 202, "{job}");
    proxy
        .held
        .recv_timeout(Duration::from_secs(300))
        .expect("dev's apply reaches CreateQueue");
    let (_, queue) = server.api("GET", "/api/v1/queue", &viewer, None);
    let run = queue[0]["run_id"].as_i64().expect("the job names its run");

    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let work = dir.canonicalize().unwrap().join(".slipway/work");
    for group in process_groups_working_in(&work) {
        let _ = nix::sys::signal::killpg(Pid::from_raw(group), Signal::SIGKILL);
    }
    crate::common::wait_until(
        "the orphaned engine is gone",
        Duration::from_secs(30),
        || process_groups_working_in(&work).is_empty(),
    );

    let server = Served::start(dir, &served_env, &["--poll", "0"]);
    let (_, queue) = server.api("GET", "/api/v1/queue", &viewer, None);
    let statuses: Vec<&str> = queue
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["interrupted"], "not re-run: {queue}");
    let (_, detail) = server.api("GET", &format!("/api/v1/runs/{run}"), &viewer, None);
    assert_eq!(detail["run"]["status"], "interrupted", "{detail}");
    let dev = detail["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == "dev")
        .unwrap_or_else(|| panic!("dev ran: {detail}"));
    let stack = &dev["stacks"][0];
    assert_eq!(
        (&stack["stack"], &stack["status"]),
        (
            &serde_json::json!("queue"),
            &serde_json::json!("interrupted")
        ),
        "{detail}"
    );
    let id = stack["id"].as_i64().unwrap();
    assert_eq!(
        stack["resolve"],
        format!("slipway resolve-interrupted {id} --note \"what you checked\""),
        "{detail}"
    );
    let (_, runs) = server.api("GET", "/api/v1/runs", &viewer, None);
    assert_eq!(runs[0]["status"], "interrupted", "{runs}");
    let log = server.stop();
    assert!(
        log.contains("marked interrupted"),
        "the restart says what it found: {log}"
    );
    let status = crate::common::slipway_ok_with(dir, &env, &["status"]);
    assert!(
        status.stderr.contains("interrupted: dev/queue"),
        "{}",
        status.stderr
    );
}
