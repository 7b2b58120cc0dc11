//! `slipway serve --workers` and `slipway worker` processes on one PostgreSQL record, with
//! state, artifacts and saved plans in S3 (moto) and nothing else in common: each worker
//! works in a clone of its own. The server runs no job; two workers take the webshop's run to
//! prod's approval gate, each stage's stack applies spread over both as step jobs; drained by
//! SIGTERM, the one that planned prod finishes and exits; the approval is applied by the
//! other, from the plan the first one saved. A stage asking for worker labels is
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
    /// The thread copying stderr into `log`: joined before the last lines are read, since
    /// the process can be reaped before its last lines are copied.
    reader: Option<std::thread::JoinHandle<()>>,
    home: tempfile::TempDir,
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
        let reader = std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                let mut log = kept.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        Self {
            child,
            log,
            reader: Some(reader),
            home,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), signal).unwrap();
    }

    /// SIGKILL to the worker and every engine it started (each in a process group of its
    /// own, working in the worker's clone): what a machine that dies leaves. Processes in
    /// this test's own group (the worker's git calls) are killed one by one.
    fn kill_with_engines(mut self) {
        let work = self.home.path().canonicalize().unwrap().join(".slipway");
        self.signal(Signal::SIGKILL);
        self.child.wait().unwrap();
        let own = nix::unistd::getpgrp().as_raw();
        for group in crate::pipeline_killed::process_groups_working_in(&work) {
            if group != own {
                let _ = nix::sys::signal::killpg(Pid::from_raw(group), Signal::SIGKILL);
            }
        }
        wait_until(
            "the worker's engines are gone",
            Duration::from_secs(30),
            || {
                crate::pipeline_killed::process_groups_working_in(&work)
                    .iter()
                    .all(|g| *g == own)
            },
        );
    }

    /// SIGTERM once: the worker finishes what it runs, takes nothing more and exits 0.
    fn drain(mut self) -> String {
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM).unwrap();
        let status = self.child.wait().unwrap();
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        let log = self.log.lock().unwrap().clone();
        assert!(status.success(), "{status}: {log}");
        assert!(log.contains("slipway worker: stopped"), "{log}");
        log
    }
}

/// What a cluster delivers.
#[derive(Debug, Clone, Copy)]
enum Repository {
    /// The crash fixture: two provider-free stacks, at the cost of Terraform alone.
    Crash,
    /// The webshop example: four stacks on the AWS provider, against moto.
    Webshop,
}

/// The webshop example as a repository, `extra` added to its slipway.hcl. Verification from
/// zero and from latest is the run's own business, tested elsewhere: off here.
fn webshop_repository(extra: &str) -> (tempfile::TempDir, Vec<(String, String)>) {
    use crate::pipeline::git;
    let sandbox = slipway_sandbox::Sandbox::from_env().expect("the sandbox installs");
    let project = crate::common::example("webshop");
    let config = project.path().join("slipway.hcl");
    let text = std::fs::read_to_string(&config).unwrap()
        + extra
        + "\nverify {\n  from_zero   = false\n  from_latest = false\n}\n";
    std::fs::write(&config, text).unwrap();
    git(project.path(), &["init", "-q", "-b", "main"]);
    std::fs::write(project.path().join(".gitignore"), ".slipway/\n").unwrap();
    git(project.path(), &["add", "-A"]);
    git(project.path(), &["commit", "-q", "-m", "webshop"]);
    let env = vec![
        (
            "SLIPWAY_ENGINE".to_owned(),
            sandbox.terraform.display().to_string(),
        ),
        ("SLIPWAY_ACTOR".to_owned(), "operator".to_owned()),
    ];
    (project, env)
}

/// The crash fixture's (or the webshop's) repository, with state in S3 and DynamoDB locks, artifacts and saved
/// plans in S3, and the record at `record`: what every worker reaches, and nothing else.
/// Buckets and the lock table are named after `name`.
fn shared_everything(
    record: &str,
    moto: &slipway_sandbox::Moto,
    name: &str,
    repository: Repository,
) -> (tempfile::TempDir, Vec<(String, String)>) {
    let repository = match repository {
        Repository::Crash => provider_free_repository,
        Repository::Webshop => webshop_repository,
    };
    let (upstream, mut env) = repository(&format!(
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

/// The jobs on record, step jobs included, newest first.
fn all_jobs(url: &str) -> Vec<slipway_store::Job> {
    let url = url.to_owned();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async move {
            let store = slipway_store::open(&url).await.unwrap();
            let jobs = store.jobs(200).await.unwrap();
            store.close().await;
            jobs
        })
}

/// The jobs on record other than step jobs (runs, resumes...), newest first.
fn jobs(url: &str) -> Vec<slipway_store::Job> {
    all_jobs(url)
        .into_iter()
        .filter(|j| j.kind != JobKind::Step)
        .collect()
}

/// The step jobs of `stage` on record, newest first.
fn step_jobs(url: &str, stage: &str) -> Vec<slipway_store::Job> {
    all_jobs(url)
        .into_iter()
        .filter(|j| j.kind == JobKind::Step && j.stage.as_deref() == Some(stage))
        .collect()
}

/// A `serve --workers` on a throwaway PostgreSQL record, with state, artifacts and saved
/// plans in S3 (moto), its repository's head queued; what each test starts from.
struct Cluster {
    postgres: crate::postgres_server::PgServer,
    record: String,
    _sandbox: slipway_sandbox::Sandbox,
    moto: slipway_sandbox::Moto,
    upstream: tempfile::TempDir,
    env: Vec<(String, String)>,
    repo: String,
    viewer: String,
    approver: String,
    head: String,
    server: Served,
    _server_home: tempfile::TempDir,
}

impl Cluster {
    /// Buckets and the lock table are named after `name`; `extra_env` reaches every
    /// process; `change` edits the repository before its head is committed and delivered.
    /// `None` (the test skips) without PostgreSQL.
    fn start(
        name: &str,
        extra_env: &[(&str, &str)],
        change: impl FnOnce(&std::path::Path),
    ) -> Option<Self> {
        Self::start_on(Repository::Crash, name, extra_env, change)
    }

    /// [`Cluster::start`] on `repository`.
    fn start_on(
        repository: Repository,
        name: &str,
        extra_env: &[(&str, &str)],
        change: impl FnOnce(&std::path::Path),
    ) -> Option<Self> {
        let postgres = postgres()?;
        let record = postgres.url("postgres");
        let (sandbox, moto) = crate::common::sandbox();
        let (upstream, mut env) = shared_everything(&record, &moto, name, repository);
        env.extend(
            extra_env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        change(upstream.path());
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
        Some(Self {
            postgres,
            record,
            _sandbox: sandbox,
            moto,
            upstream,
            env,
            repo,
            viewer,
            approver,
            head,
            server,
            _server_home: server_home,
        })
    }
}

/// A second root stack beside `base`, which `app` also waits for: a stage has two stacks to
/// apply at once, then one.
fn add_second_root(upstream: &std::path::Path) {
    let stacks = upstream.join("stacks");
    std::fs::create_dir_all(stacks.join("edge")).unwrap();
    for file in ["main.tf", "stack.hcl"] {
        std::fs::copy(
            stacks.join("base").join(file),
            stacks.join("edge").join(file),
        )
        .unwrap();
    }
    let app = stacks.join("app").join("stack.hcl");
    let text = std::fs::read_to_string(&app).unwrap();
    std::fs::write(
        &app,
        text + "\ndependency \"edge\" {\n  path = \"../edge\"\n}\n",
    )
    .unwrap();
    crate::pipeline::git(upstream, &["add", "-A"]);
    crate::pipeline::git(upstream, &["commit", "-q", "-m", "a second root stack"]);
}

/// The webshop through every stage on two workers: one takes the run, and each stage's
/// applies are spread over both as step jobs; the plans for prod's approval are saved by the
/// worker that took the run. Drained, it leaves; the other resumes the run and applies the
/// plans the first one saved.
#[test]
fn workers_run_the_servers_jobs_and_another_worker_applies_the_approved_plan() {
    let Some(cluster) = Cluster::start_on(Repository::Webshop, "workers", &[], |_| {}) else {
        return;
    };
    let Cluster {
        record,
        env,
        repo,
        viewer,
        approver,
        server,
        ..
    } = cluster;
    let queued = jobs(&record);
    assert_eq!(queued[0].status, JobStatus::Queued, "{queued:?}");

    let one = Worker::start(&env, &repo);
    let two = Worker::start(&env, &repo);
    let mut run = 0;
    wait_until(
        "the workers take the run to prod's gate",
        Duration::from_secs(300),
        || {
            let jobs = jobs(&record);
            run = jobs[0].run_id.unwrap_or(0);
            jobs[0].status == JobStatus::Done
        },
    );
    let ran = jobs(&record);
    assert_eq!(ran.len(), 1, "{ran:?}");
    let delivering = ran[0].worker.as_ref().map(|w| w.pid);
    assert!(
        delivering == Some(one.pid()) || delivering == Some(two.pid()),
        "a worker ran it, not the server: {ran:?}"
    );
    assert!(
        ran[0]
            .outcome
            .as_deref()
            .is_some_and(|o| o.contains("awaits approval at stage prod")),
        "{ran:?}"
    );
    // Every stack of dev and test was applied by a step job of its own, and the steps were
    // spread over both workers.
    let mut by = std::collections::BTreeSet::new();
    for stage in ["dev", "test"] {
        let steps = step_jobs(&record, stage);
        let mut stacks: Vec<&str> = steps.iter().filter_map(|j| j.stack.as_deref()).collect();
        stacks.sort_unstable();
        assert_eq!(stacks, ["app", "data", "network", "queue"], "{steps:?}");
        for step in &steps {
            assert_eq!(
                (step.status, step.run_id),
                (JobStatus::Done, Some(run)),
                "{steps:?}"
            );
            by.extend(step.worker.as_ref().map(|w| w.pid));
        }
    }
    assert_eq!(
        by,
        [one.pid(), two.pid()].into_iter().collect(),
        "the steps ran on both workers"
    );
    let (_, detail) = server.api("GET", &format!("/api/v1/runs/{run}"), &viewer, None);
    assert_eq!(detail["run"]["status"], "running", "{detail}");
    for stage in detail["stages"].as_array().unwrap() {
        if stage["stage"] != "prod" {
            assert_eq!(stage["status"], "succeeded", "{detail}");
        }
    }
    // Prod is planned, also by step jobs, for the approval.
    let planned = step_jobs(&record, "prod");
    assert!(!planned.is_empty());
    for step in &planned {
        assert!(
            step.outcome
                .as_deref()
                .is_some_and(|o| o.ends_with(": planned")),
            "{planned:?}"
        );
    }
    let (first, second) = if delivering == Some(one.pid()) {
        (one, two)
    } else {
        (two, one)
    };
    first.drain();

    // Only the second worker is left to resume the run: it applies the plans the first one
    // saved, fetched from the shared store into its own clone's data folder.
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
        all_jobs(&record)
            .iter()
            .all(|j| !matches!(j.status, JobStatus::Queued | JobStatus::Running))
    });
    let resumed = jobs(&record);
    let resume = resumed
        .iter()
        .find(|j| j.kind == JobKind::Resume)
        .expect("a resume job");
    assert_eq!(resume.status, JobStatus::Done, "{resumed:?}");
    let prod_steps: Vec<slipway_store::Job> = step_jobs(&record, "prod")
        .into_iter()
        .filter(|j| {
            j.outcome
                .as_deref()
                .is_some_and(|o| o.ends_with(": applied"))
        })
        .collect();
    assert_eq!(prod_steps.len(), 4, "{prod_steps:?}");
    for job in std::iter::once(resume).chain(&prod_steps) {
        assert_eq!(
            job.worker.as_ref().map(|w| w.pid),
            Some(second.pid()),
            "{resumed:?} {prod_steps:?}"
        );
    }
    second.drain();

    // Both workers' folders are gone: the servers serve a stack's log from the copy in the
    // artifact store.
    let detail = run_detail(&server, &viewer, run);
    let dev_app = detail["stages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["stage"] == "dev")
        .flat_map(|s| s["stacks"].as_array().unwrap().iter())
        .find(|r| r["stack"] == "app")
        .unwrap_or_else(|| panic!("dev's app ran: {detail}"))
        .clone();
    let log = ureq::get(&server.url(&format!(
        "/api/v1/runs/{run}/stack-runs/{}/log",
        dev_app["id"]
    )))
    .set("Authorization", &format!("Bearer {viewer}"))
    .call()
    .unwrap_or_else(|e| panic!("the log of a worker's stack run is served: {e}"))
    .into_string()
    .unwrap();
    assert!(log.contains("Apply complete"), "{log}");
    server.stop();
}

/// Prod asks for workers labelled `tier=prod`. An unlabelled worker takes the run through
/// dev and test and leaves it at prod; the run's resume waits in the queue, saying for whom,
/// until a labelled worker starts: it plans prod, and applies it once approved. The list of
/// workers shows both, with their labels, and then both stopped.
#[test]
fn a_stage_asking_for_labels_waits_for_a_worker_carrying_them() {
    let labelled = |upstream: &std::path::Path| {
        let config = upstream.join("slipway.hcl");
        let text = std::fs::read_to_string(&config).unwrap();
        let labelled = text.replace(
            "  approval  = true\n}",
            "  approval  = true\n  worker_labels = { tier = \"prod\" }\n}",
        );
        assert_ne!(text, labelled, "the fixture's prod stage changed shape");
        std::fs::write(&config, labelled).unwrap();
        crate::pipeline::git(
            upstream,
            &["commit", "-q", "-am", "prod runs on prod workers"],
        );
    };
    let Some(cluster) = Cluster::start("labels", &[], labelled) else {
        return;
    };
    let Cluster {
        record,
        env,
        repo,
        viewer,
        approver,
        server,
        ..
    } = cluster;

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
    let prod_steps = step_jobs(&record, "prod");
    let applied = prod_steps
        .iter()
        .filter(|j| {
            j.outcome
                .as_deref()
                .is_some_and(|o| o.ends_with(": applied"))
        })
        .count();
    assert_eq!(applied, 2, "base and app applied as steps: {prod_steps:?}");
    for job in all
        .iter()
        .filter(|j| j.kind == JobKind::Resume)
        .chain(&prod_steps)
    {
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

/// The record's run `id` as `GET /api/v1/runs/{id}` shows it.
fn run_detail(server: &Served, token: &str, run: i64) -> serde_json::Value {
    server
        .api("GET", &format!("/api/v1/runs/{run}"), token, None)
        .1
}

/// Commits a change to the app stack of `upstream`; returns the new head.
fn push_app_change(upstream: &std::path::Path, note: &str) -> String {
    let main_tf = upstream.join("stacks/app/main.tf");
    let text = std::fs::read_to_string(&main_tf).unwrap();
    std::fs::write(&main_tf, format!("{text}\n# {note}\n")).unwrap();
    crate::pipeline::git(upstream, &["commit", "-q", "-am", note]);
    git_head(upstream)
}

/// A worker killed (with its engine) while dev's app is mid-apply: the server marks its job
/// interrupted and never runs that commit again; the next run, on another worker, is
/// refused at that instance, naming the interrupted apply and `resolve-interrupted`; once a
/// person resolved it, the Terraform state lock the engine left in DynamoDB is reported with
/// `slipway unlock`; once unlocked, the next commit goes through.
#[test]
fn a_worker_killed_mid_apply_leaves_the_instance_to_a_person() {
    let Some(cluster) = Cluster::start("killed", &[], |_| {}) else {
        return;
    };
    let Cluster {
        record,
        moto,
        upstream,
        env,
        repo,
        viewer,
        head,
        server,
        ..
    } = cluster;

    // Dev's app state is written once its resources exist: held there, the apply is
    // mid-way for sure when the machine dies.
    let proxy = crate::interrupt::HoldingProxy::start(
        moto.port(),
        "PUT /killed-state/crash/dev/app.tfstate",
    );
    let doomed = Worker::start(&proxy.env(&env), &repo);
    proxy
        .held
        .recv_timeout(Duration::from_secs(300))
        .expect("dev's app apply writes its state");
    let doomed_pid = doomed.pid();
    doomed.kill_with_engines();
    wait_until(
        "the server marks the job interrupted",
        Duration::from_secs(60),
        || jobs(&record)[0].status == JobStatus::Interrupted,
    );
    let killed = jobs(&record);
    assert_eq!(killed.len(), 1, "{killed:?}");
    assert_eq!(
        killed[0].worker.as_ref().map(|w| w.pid),
        Some(doomed_pid),
        "{killed:?}"
    );
    assert!(
        killed[0]
            .outcome
            .as_deref()
            .is_some_and(|o| o.contains("stopped")),
        "{killed:?}"
    );
    let killed_run = killed[0].run_id.expect("the run was started");

    // Another worker: the interrupted commit is never run again by itself; the next
    // commit's run stops at the instance the dead worker left.
    let survivor = Worker::start(&env, &repo);
    let second = push_app_change(upstream.path(), "after the crash");
    wait_until(
        "the next commit's run ends",
        Duration::from_secs(300),
        || {
            jobs(&record)
                .iter()
                .any(|j| j.commit == second && j.status == JobStatus::Done)
        },
    );
    let all = jobs(&record);
    assert_eq!(
        all.iter().filter(|j| j.commit == head).count(),
        1,
        "the interrupted commit was queued again: {all:?}"
    );
    let refused = all.iter().find(|j| j.commit == second).unwrap();
    assert!(
        refused
            .outcome
            .as_deref()
            .is_some_and(|o| o.contains("failed at stage dev")),
        "{all:?}"
    );
    let refused_run = refused.run_id.unwrap();
    let (_, events) = server.api(
        "GET",
        &format!("/api/v1/runs/{refused_run}/events"),
        &viewer,
        None,
    );
    let text = events.to_string();
    assert!(
        text.contains("interrupted_run_found") && text.contains("is locked by run"),
        "the dead worker's apply and lock are named: {text}"
    );
    // Its stack runs stay open, shown interrupted, each with the command that resolves it.
    let detail = run_detail(&server, &viewer, killed_run);
    let open: Vec<serde_json::Value> = detail["stages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["stacks"].as_array().unwrap().iter())
        .filter(|r| r["status"] == "interrupted")
        .cloned()
        .collect();
    assert!(
        open.iter().any(|r| r["stack"] == "app"),
        "the killed apply is interrupted: {detail}"
    );

    // A person resolves them; the engine's own state lock then shows, with the way out.
    for stack_run in &open {
        let resolve = stack_run["resolve"].as_str().unwrap();
        assert!(
            resolve.starts_with("slipway resolve-interrupted "),
            "{resolve}"
        );
        let resolved = crate::common::slipway_ok_with(
            upstream.path(),
            &env,
            &[
                "resolve-interrupted",
                &stack_run["id"].to_string(),
                "--note",
                "worker machine died; state checked",
            ],
        );
        assert!(
            resolved.stderr.contains("freed the stale lock on dev/"),
            "{}",
            resolved.stderr
        );
    }
    let third = push_app_change(upstream.path(), "after resolving");
    wait_until(
        "the third commit's run ends",
        Duration::from_secs(300),
        || {
            jobs(&record)
                .iter()
                .any(|j| j.commit == third && j.status == JobStatus::Done)
        },
    );
    let locked_run = jobs(&record)
        .iter()
        .find(|j| j.commit == third)
        .and_then(|j| j.run_id)
        .unwrap();
    let (_, events) = server.api(
        "GET",
        &format!("/api/v1/runs/{locked_run}/events"),
        &viewer,
        None,
    );
    let text = events.to_string();
    let hint = "slipway unlock --stage dev --stack app ";
    let at = text
        .find(hint)
        .unwrap_or_else(|| panic!("the state lock is reported with the command: {text}"));
    let lock_id: String = text[at + hint.len()..]
        .chars()
        .take_while(|c| c.is_ascii_hexdigit() || *c == '-')
        .collect();
    assert!(!lock_id.is_empty(), "{text}");
    crate::common::slipway_ok_with(
        upstream.path(),
        &env,
        &["unlock", "--stage", "dev", "--stack", "app", &lock_id],
    );
    let fourth = push_app_change(upstream.path(), "after unlocking");
    wait_until(
        "the fourth commit's run ends",
        Duration::from_secs(300),
        || {
            jobs(&record)
                .iter()
                .any(|j| j.commit == fourth && j.status == JobStatus::Done)
        },
    );
    let converged = jobs(&record);
    let converged = converged.iter().find(|j| j.commit == fourth).unwrap();
    assert!(
        converged
            .outcome
            .as_deref()
            .is_some_and(|o| o.contains("awaits approval at stage prod")),
        "{converged:?}"
    );
    survivor.drain();
    server.stop();
    drop(proxy);
}

/// A worker paused (SIGSTOP) past its lease while it takes up an approved run, then
/// resumed (SIGCONT): the server marked its job interrupted meanwhile, and the worker,
/// finding the job no longer its own, applies nothing and releases nothing.
/// The worker delivering a run outlives a worker it spread a step to: killed mid-apply,
/// that step's job ends interrupted, never retried; the delivering worker finishes its own
/// step, fails the stage there, skips what depends on the lost stack (no step is queued for
/// it), and leaves the lost stack run to a person.
#[test]
fn a_step_worker_killed_mid_apply_fails_the_stage_and_is_not_retried() {
    let Some(cluster) = Cluster::start("stepkill", &[], add_second_root) else {
        return;
    };
    let Cluster {
        record,
        moto,
        env,
        repo,
        viewer,
        server,
        ..
    } = cluster;
    // Each worker's first write of a dev state is held: the delivering worker's own step
    // stays mid-apply, so the other root's step waits for the second worker, which is
    // killed while its apply is held.
    let needle = "PUT /stepkill-state/crash/dev/";
    let delivering_proxy = crate::interrupt::HoldingProxy::start(moto.port(), needle);
    let delivering = Worker::start(&delivering_proxy.env(&env), &repo);
    delivering_proxy
        .held
        .recv_timeout(Duration::from_secs(300))
        .expect("the delivering worker's own step writes its state");
    let doomed_proxy = crate::interrupt::HoldingProxy::start(moto.port(), needle);
    let doomed = Worker::start(&doomed_proxy.env(&env), &repo);
    doomed_proxy
        .held
        .recv_timeout(Duration::from_secs(120))
        .expect("the second worker takes the other step and writes its state");
    let steps = step_jobs(&record, "dev");
    let on = |pid: u32| -> Vec<String> {
        steps
            .iter()
            .filter(|j| j.worker.as_ref().map(|w| w.pid) == Some(pid))
            .filter_map(|j| j.stack.clone())
            .collect()
    };
    let (own, lost) = (on(delivering.pid()), on(doomed.pid()));
    assert_eq!((own.len(), lost.len()), (1, 1), "{steps:?}");
    let lost = lost[0].clone();
    let doomed_pid = doomed.pid();
    doomed.kill_with_engines();
    delivering_proxy.release.send(()).unwrap();

    wait_until(
        "the delivering worker ends the run",
        Duration::from_secs(180),
        || jobs(&record)[0].status == JobStatus::Done,
    );
    let run_job = jobs(&record)[0].clone();
    assert!(
        run_job
            .outcome
            .as_deref()
            .is_some_and(|o| o.contains("failed at stage dev")),
        "{run_job:?}"
    );
    let steps = step_jobs(&record, "dev");
    let lost_steps: Vec<&slipway_store::Job> = steps
        .iter()
        .filter(|j| j.stack.as_deref() == Some(lost.as_str()))
        .collect();
    assert_eq!(
        lost_steps.len(),
        1,
        "the lost step was queued again: {steps:?}"
    );
    assert_eq!(
        (
            lost_steps[0].status,
            lost_steps[0].worker.as_ref().map(|w| w.pid)
        ),
        (JobStatus::Interrupted, Some(doomed_pid)),
        "{steps:?}"
    );
    assert!(
        steps.iter().all(|j| j.stack.as_deref() != Some("app")),
        "app depends on the lost stack: not queued: {steps:?}"
    );
    let detail = run_detail(&server, &viewer, run_job.run_id.unwrap());
    let dev: std::collections::BTreeMap<String, String> = detail["stages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["stage"] == "dev")
        .flat_map(|s| s["stacks"].as_array().unwrap().iter())
        .map(|r| {
            (
                r["stack"].as_str().unwrap().to_owned(),
                r["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(dev[&own[0]], "succeeded", "{detail}");
    assert_eq!(dev[&lost], "interrupted", "left to a person: {detail}");
    assert_eq!(dev["app"], "skipped", "{detail}");
    delivering.drain();
    server.stop();
    drop(doomed_proxy);
}

#[test]
fn a_worker_paused_past_its_lease_changes_nothing_when_it_resumes() {
    // Every process on the record judges silence by the same short lease.
    let Some(cluster) = Cluster::start("paused", &[("SLIPWAY_LEASE", "3s")], |_| {}) else {
        return;
    };
    let Cluster {
        record,
        moto,
        env,
        repo,
        viewer,
        approver,
        server,
        ..
    } = cluster;
    let planner = Worker::start(&env, &repo);
    wait_until(
        "the run reaches prod's gate",
        Duration::from_secs(300),
        || jobs(&record)[0].status == JobStatus::Done,
    );
    let run = jobs(&record)[0].run_id.unwrap();
    planner.drain();

    // The second worker names its host apart (as a machine of its own would be), so it is
    // judged by its lease; its fetch of the saved plans is held, and it is paused there.
    let proxy =
        crate::interrupt::HoldingProxy::start(moto.port(), "/paused-artifacts/slipway/plans/");
    let mut paused_env = env.clone();
    paused_env.push(("SLIPWAY_HOST".to_owned(), "paused-host".to_owned()));
    // Its own heartbeat is slow, so that what stops it once resumed is the check of its
    // claim on the job right before the apply, not a heartbeat that happens to come first.
    paused_env.retain(|(key, _)| key != "SLIPWAY_LEASE");
    paused_env.push(("SLIPWAY_LEASE".to_owned(), "1h".to_owned()));
    paused_env.push(("SLIPWAY_LOCK_HEARTBEAT".to_owned(), "20m".to_owned()));
    for (key, value) in &mut paused_env {
        if key == "AWS_ENDPOINT_URL" {
            *value = format!("http://127.0.0.1:{}", proxy.port);
        }
    }
    let paused = Worker::start(&paused_env, &repo);
    server.approve(run, &approver, "prod", "reviewed");
    proxy
        .held
        .recv_timeout(Duration::from_secs(120))
        .expect("the worker fetches the saved plans");
    paused.signal(Signal::SIGSTOP);
    wait_until(
        "the server marks the silent worker's job interrupted",
        Duration::from_secs(60),
        || jobs(&record)[0].status == JobStatus::Interrupted,
    );
    let taken = jobs(&record)[0].clone();
    assert_eq!(taken.kind, JobKind::Resume, "{taken:?}");
    let why = taken.outcome.clone().unwrap_or_default();
    assert!(
        why.contains("paused-host") && why.contains("no heartbeat"),
        "{why}"
    );

    paused.signal(Signal::SIGCONT);
    proxy.release.send(()).unwrap();
    wait_until(
        "the resumed worker gives the job up",
        Duration::from_secs(120),
        || {
            paused
                .log()
                .contains("no longer this process's: its end is left as recorded")
        },
    );
    let log = paused.log();
    assert!(
        log.contains(
            "no longer this process's (its lease ran out): nothing more is applied or released"
        ),
        "{log}"
    );
    // Nothing changed on record: the job keeps the server's verdict, prod has no release,
    // and no prod stack ran an apply.
    let after = jobs(&record);
    let job = after.iter().find(|j| j.id == taken.id).unwrap();
    assert_eq!(
        (job.status, &job.outcome),
        (JobStatus::Interrupted, &taken.outcome),
        "{after:?}"
    );
    let (_, releases) = server.api("GET", "/api/v1/releases", &viewer, None);
    for stack in releases["stacks"].as_array().unwrap() {
        assert!(
            stack["releases"].get("prod").is_none(),
            "nothing was released to prod: {releases}"
        );
    }
    let detail = run_detail(&server, &viewer, run);
    let prod = detail["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == "prod")
        .unwrap();
    for stack in prod["stacks"].as_array().unwrap() {
        assert!(
            !matches!(stack["status"].as_str(), Some("applying" | "succeeded")),
            "{detail}"
        );
    }
    assert_ne!(detail["run"]["status"], "succeeded", "{detail}");
    paused.drain();
    server.stop();
}

/// PostgreSQL restarted (a fast shutdown: every connection cut) while a worker's apply is
/// in flight: the worker and the server reconnect, the run reaches prod's gate, and every
/// event of it is on record.
#[test]
fn postgres_restarting_mid_run_loses_nothing() {
    // Heartbeats every two seconds: some of them meet the restart.
    let Some(cluster) = Cluster::start("restart", &[("SLIPWAY_LEASE", "8s")], |_| {}) else {
        return;
    };
    let Cluster {
        postgres,
        record,
        moto,
        env,
        repo,
        viewer,
        server,
        ..
    } = cluster;
    let proxy = crate::interrupt::HoldingProxy::start(
        moto.port(),
        "PUT /restart-state/crash/dev/app.tfstate",
    );
    let worker = Worker::start(&proxy.env(&env), &repo);
    proxy
        .held
        .recv_timeout(Duration::from_secs(300))
        .expect("dev's app apply writes its state");
    let restarted = slipway_store::UnixMillis::now();
    postgres.restart().unwrap();
    proxy.release.send(()).unwrap();

    wait_until(
        "the run reaches prod's gate",
        Duration::from_secs(300),
        || {
            matches!(
                jobs(&record)[0].status,
                JobStatus::Done | JobStatus::Failed | JobStatus::Interrupted
            )
        },
    );
    let job = jobs(&record)[0].clone();
    assert_eq!(job.status, JobStatus::Done, "{job:?}\n{}", worker.log());
    assert!(
        job.outcome
            .as_deref()
            .is_some_and(|o| o.contains("awaits approval at stage prod")),
        "{job:?}"
    );
    let run = job.run_id.unwrap();
    let (status, events) = server.api("GET", &format!("/api/v1/runs/{run}/events"), &viewer, None);
    assert_eq!(status, 200, "the server reconnected: {events}");
    let finished: Vec<(String, String)> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["event"])
        .filter(|e| e["event"] == "stack_finished")
        .map(|e| {
            (
                e["stage"].as_str().unwrap_or_default().to_owned(),
                e["stack"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    for stage in ["dev", "test", "prod"] {
        for stack in ["base", "app"] {
            assert!(
                finished.contains(&(stage.to_owned(), stack.to_owned())),
                "{stage}/{stack} finished on record: {finished:?}\n{events}"
            );
        }
    }
    assert!(events.to_string().contains("awaiting_approval"), "{events}");
    // The worker's place in the list is renewed after the restart too.
    wait_until(
        "the worker's heartbeat after the restart",
        Duration::from_secs(60),
        || {
            let (_, workers) = server.api("GET", "/api/v1/workers", &viewer, None);
            workers.as_array().is_some_and(|all| {
                all.iter().any(|w| {
                    w["state"] == "idle"
                        && w["heartbeat_at"]
                            .as_str()
                            .is_some_and(|at| at > restarted.to_rfc3339().as_str())
                })
            })
        },
    );
    worker.drain();
    server.stop();
}
