//! `slipway serve --workers` and `slipway worker` processes on one PostgreSQL record, with
//! state, artifacts and saved plans in S3 (moto) and nothing else in common: each worker
//! works in a clone of its own. The server runs no job; a worker takes the run to prod's
//! approval gate; drained by SIGTERM, it finishes and exits; the approval is applied by a
//! second worker, from the plan the first one saved. A stage asking for worker labels is
//! left by an unlabelled worker to one carrying them.

use std::io::{BufRead as _, BufReader};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use slipway_store::{JobKind, JobStatus, ServiceRecord as _};

use crate::ci_jobs::postgres;
use crate::common::{slipway_process, wait_until};
use crate::serve::{Served, git_head, make_token, provider_free_repository};

/// A running `slipway worker`, its log collected as it is written.
struct Worker {
    child: std::process::Child,
    log: std::sync::Arc<std::sync::Mutex<String>>,
    _home: tempfile::TempDir,
}

impl Worker {
    fn start(env: &[(String, String)], repo: &str) -> Self {
        Self::start_with(env, repo, &[])
    }

    fn start_with(env: &[(String, String)], repo: &str, args: &[&str]) -> Self {
        let home = tempfile::tempdir().unwrap();
        let mut child = slipway_process(home.path(), env)
            .args(["worker", "--repo", repo])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let kept = std::sync::Arc::clone(&log);
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                let mut log = kept.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        Self {
            child,
            log,
            _home: home,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM once: the worker finishes what it runs, takes nothing more and exits 0.
    fn drain(mut self) -> String {
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM).unwrap();
        let status = self.child.wait().unwrap();
        let log = self.log.lock().unwrap().clone();
        assert!(status.success(), "{status}: {log}");
        assert!(log.contains("slipway worker: stopped"), "{log}");
        log
    }
}

/// The crash fixture's repository, with state in S3 and DynamoDB locks, artifacts and saved
/// plans in S3, and the record at `record`: what every worker reaches, and nothing else.
/// Buckets and the lock table are named after `name`.
fn shared_everything(
    record: &str,
    moto: &slipway_sandbox::Moto,
    name: &str,
) -> (tempfile::TempDir, Vec<(String, String)>) {
    let (upstream, mut env) = provider_free_repository(&format!(
        "\nstate {{\n  backend                     = \"s3\"\n  bucket                      = \"{name}-state\"\n  region                      = \"us-east-1\"\n  dynamodb_table              = \"{name}-locks\"\n  endpoint                    = env(\"SLIPWAY_SANDBOX_ENDPOINT\")\n  force_path_style            = true\n  skip_credentials_validation = true\n}}\n",
    ));
    env.extend(moto.env());
    env.extend(
        [
            ("SLIPWAY_STORE_URL", record.to_owned()),
            (
                "SLIPWAY_ARTIFACTS_URL",
                format!("s3://{name}-artifacts/slipway"),
            ),
            ("AWS_ENDPOINT_URL", moto.endpoint()),
            ("AWS_ALLOW_HTTP", "true".to_owned()),
            // The sandbox's credentials and settings reach the engine as they are.
            ("SLIPWAY_ENGINE_ENVIRONMENT", "inherit".to_owned()),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    (upstream, env)
}

/// The jobs on record, newest first.
fn jobs(url: &str) -> Vec<slipway_store::Job> {
    let url = url.to_owned();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async move {
            let store = slipway_store::open(&url).await.unwrap();
            let jobs = store.jobs(20).await.unwrap();
            store.close().await;
            jobs
        })
}

#[test]
fn workers_run_the_servers_jobs_and_another_worker_applies_the_approved_plan() {
    let Some(postgres) = postgres() else {
        return;
    };
    let record = postgres.url("postgres");
    let (_sandbox, moto) = crate::common::sandbox();
    let (upstream, env) = shared_everything(&record, &moto, "workers");
    crate::common::slipway_ok_with(upstream.path(), &env, &["bootstrap", "--stage", "dev"]);
    let repo = format!("file://{}", upstream.path().display());
    let viewer = make_token(upstream.path(), &env, "vic", "viewer", None);
    let approver = make_token(upstream.path(), &env, "erin", "approver", Some("prod"));
    let head = git_head(upstream.path());

    // The server queues the polled head and runs nothing itself.
    let server_home = tempfile::tempdir().unwrap();
    let server = Served::start(
        server_home.path(),
        &env,
        &["--repo", &repo, "--poll", "1s", "--workers"],
    );
    wait_until("the head is queued", Duration::from_secs(120), || {
        jobs(&record).iter().any(|j| j.commit == head)
    });
    let queued = jobs(&record);
    assert_eq!(queued[0].status, JobStatus::Queued, "{queued:?}");

    let first = Worker::start(&env, &repo);
    let mut run = 0;
    wait_until(
        "the first worker takes the run to prod's gate",
        Duration::from_secs(300),
        || {
            let jobs = jobs(&record);
            run = jobs[0].run_id.unwrap_or(0);
            jobs[0].status == JobStatus::Done
        },
    );
    let ran = jobs(&record);
    assert_eq!(ran.len(), 1, "{ran:?}");
    assert_eq!(
        ran[0].worker.as_ref().map(|w| w.pid),
        Some(first.pid()),
        "the worker ran it, not the server: {ran:?}"
    );
    assert!(
        ran[0]
            .outcome
            .as_deref()
            .is_some_and(|o| o.contains("awaits approval at stage prod")),
        "{ran:?}"
    );
    let (_, detail) = server.api("GET", &format!("/api/v1/runs/{run}"), &viewer, None);
    assert_eq!(detail["run"]["status"], "running", "{detail}");
    first.drain();

    // Only the second worker is left to resume the run: it applies the plan the first one
    // saved, fetched from the shared store into its own clone's data folder.
    let second = Worker::start(&env, &repo);
    server.approve(run, &approver, "prod", "reviewed");
    let events = server.follow(run, &viewer, 0, "run_finished");
    assert_eq!(events.last().unwrap().1["delivered"], true, "{events:?}");
    assert!(
        events
            .iter()
            .any(|(_, e)| e["event"] == "saved_plan_fetched"),
        "the second worker fetched the saved plans: {events:?}"
    );
    wait_until("the resume job ends", Duration::from_secs(60), || {
        jobs(&record)
            .iter()
            .all(|j| !matches!(j.status, JobStatus::Queued | JobStatus::Running))
    });
    let resumed = jobs(&record);
    let resume = resumed
        .iter()
        .find(|j| j.kind == JobKind::Resume)
        .expect("a resume job");
    assert_eq!(resume.status, JobStatus::Done, "{resumed:?}");
    assert_eq!(
        resume.worker.as_ref().map(|w| w.pid),
        Some(second.pid()),
        "{resumed:?}"
    );
    second.drain();
    server.stop();
}

/// Prod asks for workers labelled `tier=prod`. An unlabelled worker takes the run through
/// dev and test and leaves it at prod; the run's resume waits in the queue, saying for whom,
/// until a labelled worker starts: it plans prod, and applies it once approved. The list of
/// workers shows both, with their labels, and then both stopped.
#[test]
fn a_stage_asking_for_labels_waits_for_a_worker_carrying_them() {
    let Some(postgres) = postgres() else {
        return;
    };
    let record = postgres.url("postgres");
    let (_sandbox, moto) = crate::common::sandbox();
    let (upstream, env) = shared_everything(&record, &moto, "labels");
    let config = upstream.path().join("slipway.hcl");
    let text = std::fs::read_to_string(&config).unwrap();
    let labelled = text.replace(
        "  approval  = true\n}",
        "  approval  = true\n  worker_labels = { tier = \"prod\" }\n}",
    );
    assert_ne!(text, labelled, "the fixture's prod stage changed shape");
    std::fs::write(&config, labelled).unwrap();
    crate::pipeline::git(
        upstream.path(),
        &["commit", "-q", "-am", "prod runs on prod workers"],
    );
    crate::common::slipway_ok_with(upstream.path(), &env, &["bootstrap", "--stage", "dev"]);
    let repo = format!("file://{}", upstream.path().display());
    let viewer = make_token(upstream.path(), &env, "vic", "viewer", None);
    let approver = make_token(upstream.path(), &env, "erin", "approver", Some("prod"));
    let head = git_head(upstream.path());
    let server_home = tempfile::tempdir().unwrap();
    let server = Served::start(
        server_home.path(),
        &env,
        &["--repo", &repo, "--poll", "1s", "--workers"],
    );
    wait_until("the head is queued", Duration::from_secs(120), || {
        jobs(&record).iter().any(|j| j.commit == head)
    });

    let plain = Worker::start(&env, &repo);
    wait_until(
        "the unlabelled worker leaves the run at prod",
        Duration::from_secs(300),
        || jobs(&record).iter().any(|j| j.kind == JobKind::Resume),
    );
    let queued = jobs(&record);
    let run_job = queued.iter().find(|j| j.kind == JobKind::Run).unwrap();
    let resume = queued.iter().find(|j| j.kind == JobKind::Resume).unwrap();
    assert_eq!(run_job.worker.as_ref().map(|w| w.pid), Some(plain.pid()));
    assert!(
        run_job
            .outcome
            .as_deref()
            .is_some_and(|o| o.contains("waits at stage prod for a worker labelled tier=prod")),
        "{queued:?}"
    );
    assert_eq!(
        (resume.status, resume.labels.to_string(), resume.run_id),
        (JobStatus::Queued, "tier=prod".to_owned(), run_job.run_id),
        "{queued:?}"
    );
    let run = run_job.run_id.unwrap();
    let (_, listed) = server.api("GET", "/api/v1/queue", &viewer, None);
    let waiting = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["id"] == resume.id)
        .unwrap();
    assert_eq!(
        waiting["waiting"], "waits for a worker labelled tier=prod",
        "{listed}"
    );
    let (_, detail) = server.api("GET", &format!("/api/v1/runs/{run}"), &viewer, None);
    let stages: Vec<(String, String)> = detail["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["stage"].as_str().unwrap().to_owned(),
                s["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        stages.contains(&("test".to_owned(), "succeeded".to_owned()))
            && stages.contains(&("prod".to_owned(), "pending".to_owned())),
        "{detail}"
    );

    // The unlabelled worker stays idle beside the waiting job; a prod worker takes it.
    let prod = Worker::start_with(&env, &repo, &["--labels", "tier=prod"]);
    wait_until(
        "the prod worker plans prod",
        Duration::from_secs(300),
        || {
            jobs(&record)
                .iter()
                .any(|j| j.id == resume.id && j.status == JobStatus::Done)
        },
    );
    let planned = jobs(&record);
    let planned = planned.iter().find(|j| j.id == resume.id).unwrap();
    assert_eq!(planned.worker.as_ref().map(|w| w.pid), Some(prod.pid()));
    assert!(
        planned
            .outcome
            .as_deref()
            .is_some_and(|o| o.contains("awaits approval at stage prod")),
        "{planned:?}"
    );
    // The API names workers by their labels and jobs, never by process.
    let (_, workers) = server.api("GET", "/api/v1/workers", &viewer, None);
    let labelled = |labels: serde_json::Value| {
        let found: Vec<serde_json::Value> = workers
            .as_array()
            .unwrap()
            .iter()
            .filter(|w| w["labels"] == labels)
            .cloned()
            .collect();
        assert_eq!(found.len(), 1, "one worker labelled {labels}: {workers}");
        found[0].clone()
    };
    assert_eq!(
        labelled(serde_json::json!({}))["state"],
        "idle",
        "{workers}"
    );
    assert_eq!(
        labelled(serde_json::json!({ "tier": "prod" }))["max_jobs"],
        1,
        "{workers}"
    );

    server.approve(run, &approver, "prod", "reviewed");
    let events = server.follow(run, &viewer, 0, "run_finished");
    assert_eq!(events.last().unwrap().1["delivered"], true, "{events:?}");
    wait_until("the approved resume ends", Duration::from_secs(60), || {
        jobs(&record)
            .iter()
            .all(|j| !matches!(j.status, JobStatus::Queued | JobStatus::Running))
    });
    let all = jobs(&record);
    for job in all.iter().filter(|j| j.kind == JobKind::Resume) {
        assert_eq!(job.labels.to_string(), "tier=prod", "{all:?}");
        assert_eq!(
            job.worker.as_ref().map(|w| w.pid),
            Some(prod.pid()),
            "prod's work ran on the prod worker only: {all:?}"
        );
    }
    plain.drain();
    prod.drain();
    let (_, workers) = server.api("GET", "/api/v1/workers", &viewer, None);
    let states: Vec<&serde_json::Value> = workers
        .as_array()
        .unwrap()
        .iter()
        .map(|w| &w["state"])
        .collect();
    assert_eq!(states, ["stopped", "stopped"], "{workers}");
    server.stop();
}

/// Workers on local state would each apply on a state of their own: refused, with the way
/// out.
#[test]
fn a_worker_refuses_a_project_whose_state_is_on_local_disk() {
    let (project, env) = provider_free_repository("");
    let out = crate::common::slipway_run(project.path(), &env, &["worker"]);
    assert_ne!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("keeps state on local disk")
            && out
                .stderr
                .contains("help: give the project a `state` block"),
        "{}",
        out.stderr
    );
}

/// Two servers on one PostgreSQL record, polling the same repository: each commit is
/// queued once, whichever server polls first.
#[test]
fn two_servers_on_one_record_queue_each_commit_once() {
    let Some(postgres) = postgres() else {
        return;
    };
    let record = postgres.url("postgres");
    let (upstream, mut env) = provider_free_repository("");
    env.push(("SLIPWAY_STORE_URL".to_owned(), record.clone()));
    let repo = format!("file://{}", upstream.path().display());
    let homes = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let servers: Vec<Served> = homes
        .iter()
        .map(|home| {
            Served::start(
                home.path(),
                &env,
                &["--repo", &repo, "--poll", "1s", "--workers"],
            )
        })
        .collect();
    let queued = |commit: String| {
        let record = record.clone();
        move || jobs(&record).iter().any(|j| j.commit == commit)
    };
    wait_until(
        "the head is queued",
        Duration::from_secs(120),
        queued(git_head(upstream.path())),
    );
    let main_tf = upstream.path().join("stacks/app/main.tf");
    let text = std::fs::read_to_string(&main_tf).unwrap();
    std::fs::write(&main_tf, text + "\n# pushed while two servers poll\n").unwrap();
    crate::pipeline::git(upstream.path(), &["commit", "-q", "-am", "a second commit"]);
    let second = git_head(upstream.path());
    wait_until(
        "the new head is queued",
        Duration::from_secs(120),
        queued(second.clone()),
    );
    for server in servers {
        server.stop();
    }
    let all = jobs(&record);
    let mut commits: Vec<&str> = all.iter().map(|j| j.commit.as_str()).collect();
    commits.sort_unstable();
    let before = commits.len();
    commits.dedup();
    assert_eq!(before, commits.len(), "a commit queued twice: {all:?}");
    assert!(commits.contains(&second.as_str()), "{all:?}");
    assert!(
        all.iter()
            .all(|j| j.status == JobStatus::Queued || j.status == JobStatus::Superseded),
        "servers with --workers run nothing: {all:?}"
    );
}
