//! Pull requests planned by the server and commented on, against a fake GitHub and a fake
//! GitLab on loopback (axum apps inside the test that record every request), with real
//! Terraform and the AWS provider against moto (the sandbox, docs/sandbox.md).
//!
//! - a GitHub pull request gets one comment with the plan's counts and blast radius; the
//!   next push updates it in place (PATCH), so the pull request still has one comment;
//! - a GitLab merge request gets one note (POST), with GitLab's token header; one into a
//!   release branch is measured from that branch, not from main;
//! - a report longer than a comment may be is cut, with a link to the whole report, which
//!   the API serves;
//! - a pull request that rewrites a `credentials` block's `from_command` and a stack's
//!   `check` to leak the deploy secret is planned with the default branch's settings: the
//!   command never runs, and the secret is nowhere (comment, logs, record, data folder);
//! - the forge tokens never reach the log.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use serde_json::{Value, json};
use slipway_server::webhook::github_signature;
use slipway_server::{ForgeAccess, RunnerConfig, Secret, ServerConfig};
use slipway_store::{
    AnyStore, JobKind, JobStatus, NewToken, PullRequestKey, Role, ServiceRecord as _,
};

const GITHUB_SECRET: &str = "webhook secret of the pull request tests";
const GITLAB_WEBHOOK: &str = "gitlab webhook token of the pull request tests";
const GITHUB_TOKEN: &str = "ghp_pullRequestTestToken0123456789";
const GITLAB_TOKEN: &str = "glpat-pullRequestTestToken0123";
const DEPLOY_SECRET: &str = "deploy-secret-never-to-be-seen-9f3b";
const READER_SECRET: &str = "reader-secret-value-71aa";
/// How long one pull request's job may take (a first `init` installs the provider).
const DEADLINE: Duration = Duration::from_secs(300);

/// Everything the server logged, from every test of this binary.
fn logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let writer = logs.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
            .with_writer(move || LogWriter(writer.clone()))
            .try_init();
        logs
    })
    .clone()
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn log_text() -> String {
    String::from_utf8_lossy(&logs().lock().unwrap()).into_owned()
}

/// A request the fake forge received.
#[derive(Debug, Clone)]
struct Received {
    method: String,
    path: String,
    authorization: Option<String>,
    private_token: Option<String>,
    body: Value,
}

/// A forge's API on loopback: answers comment posts with a new id and updates with the id
/// updated, and keeps what it was sent.
struct FakeForge {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
}

impl FakeForge {
    async fn start() -> Self {
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let app = Router::new().fallback(record).with_state(received.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { addr, received }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

async fn record(
    State(received): State<Arc<Mutex<Vec<Received>>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::Json<Value> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let mut received = received.lock().unwrap();
    received.push(Received {
        method: method.to_string(),
        path: uri.path().to_owned(),
        authorization: header("authorization"),
        private_token: header("private-token"),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    let id = if method == Method::POST {
        1000 + received.len() as u64
    } else {
        uri.path()
            .rsplit('/')
            .next()
            .and_then(|id| id.parse().ok())
            .unwrap_or(0)
    };
    axum::Json(json!({ "id": id }))
}

/// An upstream repository, the server's clone of it, the server and a fake forge.
struct World {
    dir: tempfile::TempDir,
    upstream: PathBuf,
    store: AnyStore,
    store_file: PathBuf,
    addr: SocketAddr,
    forge: FakeForge,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _moto: slipway_sandbox::Moto,
}

const SLIPWAY_HCL: &str = r#"project {
  name   = "platform"
  engine = "terraform"
}

generate "provider" {
  path     = "slipway_provider.tf"
  contents = <<-EOT
    provider "aws" {
      region                      = "us-east-1"
      skip_credentials_validation = true
      skip_requesting_account_id  = true
      skip_metadata_api_check     = true
      endpoints {
        ec2 = "${env("SLIPWAY_SANDBOX_ENDPOINT")}"
        sqs = "${env("SLIPWAY_SANDBOX_ENDPOINT")}"
        sts = "${env("SLIPWAY_SANDBOX_ENDPOINT")}"
      }
    }
  EOT
}

credentials "reader" {
  from_env = {
    AWS_ACCESS_KEY_ID     = "READER_KEY_ID"
    AWS_SECRET_ACCESS_KEY = "READER_SECRET"
  }
}

credentials "deployer" {
  from_env = {
    AWS_ACCESS_KEY_ID     = "DEPLOY_KEY_ID"
    AWS_SECRET_ACCESS_KEY = "DEPLOY_SECRET"
  }
}

stage "dev" {
  variables        = { env = instance.name }
  credentials      = { default = "deployer" }
  plan_credentials = { default = "reader" }
}

stage "prod" {
  variables = { env = instance.name }
  approval  = true
  credentials = { default = "deployer" }
}

pull_requests {
  plan_stage = "dev"
}
"#;

fn queue_tf(extra: &str) -> String {
    format!(
        r#"terraform {{
  required_providers {{
    aws = {{
      source  = "hashicorp/aws"
      version = "3.39.0"
    }}
  }}
}}

variable "env" {{
  type = string
}}

resource "aws_sqs_queue" "orders" {{
  name = "platform-${{var.env}}-orders"
}}

output "queue_url" {{
  value = aws_sqs_queue.orders.id
}}
{extra}"#
    )
}

const QUEUE_STACK: &str = r#"stack {
  team = "shop"
}

check "queue" {
  expect = { queue_url = "orders$" }
}
"#;

const APP_STACK: &str = r#"stack {
  team = "shop"
}

dependency "queue" {
  path = "../queue"
}

inputs = {
  queue_url = dependency.queue.outputs.queue_url
}
"#;

fn app_tf() -> String {
    r#"variable "env" {
  type = string
}

variable "queue_url" {
  type = string
}

output "reads" {
  value = var.queue_url
}
"#
    .to_owned()
}

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Ada")
        .env("GIT_AUTHOR_EMAIL", "ada@example.com")
        .env("GIT_COMMITTER_NAME", "Ada")
        .env("GIT_COMMITTER_EMAIL", "ada@example.com")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn write(root: &Path, path: &str, text: &str) {
    let path = root.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

impl World {
    async fn start(public_url: bool) -> Self {
        let _ = logs();
        let sandbox = slipway_sandbox::Sandbox::from_env().expect("the sandbox installs");
        let moto = sandbox.start_moto().expect("moto starts");
        let dir = tempfile::tempdir().unwrap();
        let upstream = dir.path().join("upstream");
        std::fs::create_dir_all(&upstream).unwrap();
        git(&upstream, &["init", "--quiet", "--initial-branch=main"]);
        write(&upstream, "slipway.hcl", SLIPWAY_HCL);
        write(&upstream, ".gitignore", ".slipway/\n");
        write(&upstream, "stacks/queue/stack.hcl", QUEUE_STACK);
        write(&upstream, "stacks/queue/main.tf", &queue_tf(""));
        write(&upstream, "stacks/app/stack.hcl", APP_STACK);
        write(&upstream, "stacks/app/main.tf", &app_tf());
        git(&upstream, &["add", "."]);
        git(&upstream, &["commit", "--quiet", "-m", "the platform"]);
        let checkout = dir.path().join("server");
        git(
            dir.path(),
            &[
                "clone",
                "--quiet",
                upstream.to_str().unwrap(),
                checkout.to_str().unwrap(),
            ],
        );

        let store_file = dir.path().join("record");
        std::fs::create_dir_all(&store_file).unwrap();
        let url = slipway_store::default_url(&store_file);
        let store = slipway_store::open(&url).await.unwrap();
        let forge = FakeForge::start().await;
        let mut environment: std::collections::BTreeMap<String, String> = moto
            .env()
            .into_iter()
            .filter(|(k, _)| !k.starts_with("AWS_"))
            .collect();
        for (name, value) in [
            ("READER_KEY_ID", "reader-key"),
            ("READER_SECRET", READER_SECRET),
            ("DEPLOY_KEY_ID", "deploy-key"),
            ("DEPLOY_SECRET", DEPLOY_SECRET),
            ("PATH", &std::env::var("PATH").unwrap_or_default()),
            ("HOME", &std::env::var("HOME").unwrap_or_default()),
        ] {
            environment.insert(name.to_owned(), value.to_owned());
        }
        let settings = slipway_runner::Settings {
            actor: "slipway-server".to_owned(),
            store_url: Some(url),
            engine: Some(sandbox.terraform.display().to_string()),
            environment,
            engine_environment: slipway_runner::settings::EngineEnvironment::Minimal {
                pass: Vec::new(),
            },
            ..slipway_runner::Settings::default()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let config = ServerConfig {
            github_secret: Some(Secret::new(GITHUB_SECRET)),
            gitlab_token: Some(Secret::new(GITLAB_WEBHOOK)),
            allowed_repositories: vec!["acme/platform".to_owned()],
            runner: Some(RunnerConfig {
                checkout,
                source: Some(upstream.display().to_string()),
                settings,
                poll: None,
            }),
            github_api: Some(ForgeAccess {
                api_url: forge.url(),
                token: Secret::new(GITHUB_TOKEN),
            }),
            gitlab_api: Some(ForgeAccess {
                api_url: format!("{}/api/v4", forge.url()),
                token: Secret::new(GITLAB_TOKEN),
            }),
            public_url: public_url.then(|| format!("http://{addr}")),
            ..ServerConfig::default()
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = store.clone();
        tokio::spawn(async move {
            slipway_server::serve(listener, config, served, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Self {
            dir,
            upstream,
            store,
            store_file,
            addr,
            forge,
            stop: Some(stop),
            _moto: moto,
        }
    }

    /// Commits `files` on branch `branch` of the upstream (made from main when new);
    /// returns the commit.
    fn push(&self, branch: &str, files: &[(&str, String)]) -> String {
        self.push_from(branch, "main", files)
    }

    /// Commits `files` on branch `branch` of the upstream (made from `start` when new);
    /// returns the commit.
    fn push_from(&self, branch: &str, start: &str, files: &[(&str, String)]) -> String {
        let exists = Command::new("git")
            .args(["rev-parse", "--verify", "--quiet", branch])
            .current_dir(&self.upstream)
            .status()
            .unwrap()
            .success();
        if exists {
            git(&self.upstream, &["checkout", "--quiet", branch]);
        } else {
            git(
                &self.upstream,
                &["checkout", "--quiet", "-b", branch, start],
            );
        }
        for (path, text) in files {
            write(&self.upstream, path, text);
        }
        git(&self.upstream, &["add", "."]);
        git(&self.upstream, &["commit", "--quiet", "-m", "a change"]);
        let commit = git(&self.upstream, &["rev-parse", "HEAD"]);
        git(&self.upstream, &["checkout", "--quiet", "main"]);
        commit
    }

    async fn post(&self, path: &str, headers: Vec<(&'static str, String)>, body: Vec<u8>) -> u16 {
        let url = format!("http://{}{path}", self.addr);
        tokio::task::spawn_blocking(move || {
            let mut request = ureq::post(&url).timeout(Duration::from_secs(30));
            for (name, value) in &headers {
                request = request.set(name, value);
            }
            match request.send_bytes(&body) {
                Ok(response) => response.status(),
                Err(ureq::Error::Status(status, _)) => status,
                Err(error) => panic!("POST {url}: {error}"),
            }
        })
        .await
        .unwrap()
    }

    async fn github_pull_request(
        &self,
        delivery: &str,
        action: &str,
        number: i64,
        branch: &str,
        commit: &str,
    ) {
        let body = serde_json::to_vec(&json!({
            "action": action,
            "number": number,
            "pull_request": {
                "head": { "ref": branch, "sha": commit, "repo": { "full_name": "acme/platform", "fork": false } },
                "base": { "ref": "main", "repo": { "full_name": "acme/platform" } },
            },
            "repository": { "full_name": "acme/platform" },
            "sender": { "login": "ada" },
        }))
        .unwrap();
        let signature = github_signature(&Secret::new(GITHUB_SECRET), &body);
        let status = self
            .post(
                "/webhooks/github",
                vec![
                    ("X-GitHub-Event", "pull_request".to_owned()),
                    ("X-GitHub-Delivery", delivery.to_owned()),
                    ("X-Hub-Signature-256", signature),
                    ("Content-Type", "application/json".to_owned()),
                ],
                body,
            )
            .await;
        assert_eq!(status, 202);
    }

    async fn gitlab_merge_request(
        &self,
        delivery: &str,
        iid: i64,
        branch: &str,
        target: &str,
        commit: &str,
    ) {
        let body = serde_json::to_vec(&json!({
            "object_kind": "merge_request",
            "user": { "username": "ada" },
            "project": { "id": 7, "path_with_namespace": "acme/platform" },
            "object_attributes": {
                "iid": iid,
                "action": "open",
                "source_branch": branch,
                "target_branch": target,
                "source_project_id": 7,
                "target_project_id": 7,
                "last_commit": { "id": commit },
            },
        }))
        .unwrap();
        let status = self
            .post(
                "/webhooks/gitlab",
                vec![
                    ("X-Gitlab-Event", "Merge Request Hook".to_owned()),
                    ("X-Gitlab-Event-UUID", delivery.to_owned()),
                    ("X-Gitlab-Token", GITLAB_WEBHOOK.to_owned()),
                    ("Content-Type", "application/json".to_owned()),
                ],
                body,
            )
            .await;
        assert_eq!(status, 202);
    }

    /// Waits for the pull request job of `commit` to end; returns its outcome.
    async fn job_of(&self, commit: &str) -> String {
        let started = Instant::now();
        loop {
            let jobs = self.store.jobs(100).await.unwrap();
            if let Some(job) = jobs
                .iter()
                .find(|j| j.kind == JobKind::PullRequest && j.commit == commit)
            {
                match job.status {
                    JobStatus::Done => return job.outcome.clone().unwrap_or_default(),
                    JobStatus::Failed | JobStatus::Interrupted | JobStatus::Superseded => panic!(
                        "the pull request job ended {}: {:?}\n{}",
                        job.status,
                        job.outcome,
                        log_text()
                    ),
                    _ => {}
                }
            }
            assert!(
                started.elapsed() < DEADLINE,
                "no pull request job of {commit} ended in time: {jobs:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every file of the record and the server's data folder, as text.
    fn everything_kept(&self) -> String {
        let mut all = String::new();
        for root in [
            self.store_file.clone(),
            self.dir.path().join("server/.slipway"),
        ] {
            for path in files_below(&root) {
                if let Ok(bytes) = std::fs::read(&path) {
                    all.push_str(&String::from_utf8_lossy(&bytes));
                }
            }
        }
        all
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn files_below(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                // Provider binaries are large and hold no secrets of ours.
                if path.file_name().is_some_and(|n| n == ".terraform") {
                    continue;
                }
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_github_pull_request_gets_one_comment_updated_in_place_on_every_push() {
    runtime().block_on(async {
        let world = World::start(true).await;
        let first = world.push(
            "more-queues",
            &[(
                "stacks/queue/main.tf",
                queue_tf("resource \"aws_sqs_queue\" \"returns\" {\n  name = \"platform-${var.env}-returns\"\n}\n"),
            )],
        );
        world
            .github_pull_request("pr-1", "opened", 12, "more-queues", &first)
            .await;
        let outcome = world.job_of(&first).await;
        assert!(outcome.contains("comment 1001"), "{outcome}");

        let received = world.forge.received();
        assert_eq!(received.len(), 1, "{received:#?}");
        let posted = &received[0];
        assert_eq!(posted.method, "POST");
        assert_eq!(posted.path, "/repos/acme/platform/issues/12/comments");
        assert_eq!(
            posted.authorization.as_deref(),
            Some(format!("Bearer {GITHUB_TOKEN}").as_str())
        );
        let body = posted.body["body"].as_str().unwrap().to_owned();
        assert!(body.starts_with("### slipway plan"), "{body}");
        assert!(body.contains("against `dev`"), "{body}");
        assert!(body.contains("## Blast radius"), "{body}");
        // Both queues are new to dev; app reads the queue's output: it is downstream.
        assert!(body.contains("| queue | dev | 2 | 0 | 0 | 0 | 0 |"), "{body}");
        assert!(body.contains("aws_sqs_queue.returns"), "{body}");
        assert!(body.contains("**Downstream stacks**"), "{body}");
        assert!(body.contains("app"), "{body}");

        // The next push updates that comment: still one comment on the pull request.
        let second = world.push(
            "more-queues",
            &[(
                "stacks/queue/main.tf",
                queue_tf("resource \"aws_sqs_queue\" \"returns\" {\n  name = \"platform-${var.env}-returns\"\n}\nresource \"aws_sqs_queue\" \"refunds\" {\n  name = \"platform-${var.env}-refunds\"\n}\n"),
            )],
        );
        world
            .github_pull_request("pr-2", "synchronize", 12, "more-queues", &second)
            .await;
        world.job_of(&second).await;
        let received = world.forge.received();
        assert_eq!(received.len(), 2, "{received:#?}");
        let updated = &received[1];
        assert_eq!(updated.method, "PATCH");
        assert_eq!(updated.path, "/repos/acme/platform/issues/comments/1001");
        let body = updated.body["body"].as_str().unwrap();
        assert!(body.contains("| queue | dev | 3 | 0 | 0 | 0 | 0 |"), "{body}");
        assert!(body.contains(&second[..12]), "{body}");
        assert!(
            received.iter().filter(|r| r.method == "POST").count() == 1,
            "one comment: {received:#?}"
        );
        let kept = world
            .store
            .pull_request(&PullRequestKey {
                provider: "github".to_owned(),
                repository: "acme/platform".to_owned(),
                number: 12,
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(kept.comment_id.as_deref(), Some("1001"));
        assert_eq!(kept.commit, second);

        let logs = log_text();
        assert!(!logs.contains(GITHUB_TOKEN), "the token is in the log");
        assert!(!world.everything_kept().contains(GITHUB_TOKEN));
    });
}

/// A merge request into a release branch: what it changes is measured from where it left
/// that branch, so the stack the release branch adds (and main lacks) is not its change.
#[test]
fn a_gitlab_merge_request_gets_a_note() {
    runtime().block_on(async {
        let world = World::start(true).await;
        world.push(
            "release",
            &[
                ("stacks/notes/stack.hcl", "stack {\n  team = \"shop\"\n}\n".to_owned()),
                (
                    "stacks/notes/main.tf",
                    "variable \"env\" {\n  type = string\n}\n\noutput \"notes\" {\n  value = var.env\n}\n".to_owned(),
                ),
            ],
        );
        let commit = world.push_from(
            "bigger-queue",
            "release",
            &[(
                "stacks/queue/main.tf",
                queue_tf("resource \"aws_sqs_queue\" \"dead_letters\" {\n  name = \"platform-${var.env}-dead-letters\"\n}\n"),
            )],
        );
        world
            .gitlab_merge_request("mr-1", 4, "bigger-queue", "release", &commit)
            .await;
        world.job_of(&commit).await;
        let received = world.forge.received();
        assert_eq!(received.len(), 1, "{received:#?}");
        assert_eq!(received[0].method, "POST");
        assert_eq!(
            received[0].path,
            "/api/v4/projects/acme%2Fplatform/merge_requests/4/notes"
        );
        assert_eq!(received[0].private_token.as_deref(), Some(GITLAB_TOKEN));
        assert_eq!(received[0].authorization, None);
        let body = received[0].body["body"].as_str().unwrap();
        assert!(body.contains("| queue | dev | 2 | 0 | 0 | 0 | 0 |"), "{body}");
        assert!(!body.contains("notes"), "{body}");
        assert!(!log_text().contains(GITLAB_TOKEN), "the token is in the log");
    });
}

#[test]
fn a_report_longer_than_a_comment_is_cut_with_a_link_to_the_whole() {
    runtime().block_on(async {
        let world = World::start(true).await;
        // 300 queues with long names: some 80,000 characters of report.
        let long = "q".repeat(200);
        let commit = world.push(
            "many-queues",
            &[(
                "stacks/queue/main.tf",
                queue_tf(&format!(
                    "resource \"aws_sqs_queue\" \"{long}\" {{\n  count = 300\n  name  = \"platform-${{var.env}}-${{count.index}}\"\n}}\n"
                )),
            )],
        );
        world
            .github_pull_request("pr-long", "opened", 31, "many-queues", &commit)
            .await;
        world.job_of(&commit).await;
        let received = world.forge.received();
        assert_eq!(received.len(), 1, "{received:#?}");
        let body = received[0].body["body"].as_str().unwrap();
        assert!(body.len() <= 65_535, "{}", body.len());
        assert!(body.contains("| queue | dev | 301 |"), "the summary is kept");
        let kept = world
            .store
            .pull_request(&PullRequestKey {
                provider: "github".to_owned(),
                repository: "acme/platform".to_owned(),
                number: 31,
            })
            .await
            .unwrap()
            .unwrap();
        let link = format!("http://{}/api/v1/pull-requests/{}/report", world.addr, kept.id);
        assert!(body.contains("This report is cut here"), "{}", &body[body.len() - 300..]);
        assert!(body.trim_end().ends_with(&link), "{}", &body[body.len() - 300..]);
        assert!(kept.report.len() > 65_535, "{}", kept.report.len());

        // The link serves the whole report to a viewer.
        let token = slipway_server::new_token().unwrap();
        world
            .store
            .create_token(&NewToken {
                actor: "vic".to_owned(),
                role: Role::Viewer,
                stage: None,
                token_hash: token.hash.clone(),
                created_by: "test".to_owned(),
            })
            .await
            .unwrap();
        let secret = token.token.clone();
        let whole = tokio::task::spawn_blocking(move || {
            let unauthorized = ureq::get(&link).call();
            assert!(matches!(unauthorized, Err(ureq::Error::Status(401, _))));
            ureq::get(&link)
                .set("Authorization", &format!("Bearer {secret}"))
                .call()
                .unwrap()
                .into_string()
                .unwrap()
        })
        .await
        .unwrap();
        assert_eq!(whole, kept.report);
        assert_eq!(whole.matches(&long).count(), 300);
    });
}

#[test]
fn a_pull_request_that_rewrites_commands_runs_with_the_default_branch_settings() {
    runtime().block_on(async {
        let world = World::start(false).await;
        let leaked = world.dir.path().join("leaked");
        let checked = world.dir.path().join("checked");
        let hostile_config = SLIPWAY_HCL.replace(
            "credentials \"reader\" {\n  from_env = {\n    AWS_ACCESS_KEY_ID     = \"READER_KEY_ID\"\n    AWS_SECRET_ACCESS_KEY = \"READER_SECRET\"\n  }\n}",
            &format!(
                "credentials \"reader\" {{\n  from_command = [\"sh\", \"-c\", \"echo $DEPLOY_SECRET > {}; echo AWS_SECRET_ACCESS_KEY=$DEPLOY_SECRET\"]\n}}",
                leaked.display()
            ),
        );
        assert_ne!(hostile_config, SLIPWAY_HCL, "the test rewrites the credentials");
        let hostile_stack = format!(
            "{QUEUE_STACK}\ncheck \"leak\" {{\n  command = [\"sh\", \"-c\", \"echo $DEPLOY_SECRET > {}\"]\n}}\n",
            checked.display()
        );
        let commit = world.push(
            "innocent",
            &[
                ("slipway.hcl", hostile_config),
                ("stacks/queue/stack.hcl", hostile_stack),
                (
                    "stacks/queue/main.tf",
                    queue_tf("output \"who\" {\n  value = \"planned\"\n}\n"),
                ),
            ],
        );
        world
            .github_pull_request("pr-hostile", "opened", 66, "innocent", &commit)
            .await;
        world.job_of(&commit).await;
        let received = world.forge.received();
        assert_eq!(received.len(), 1, "{received:#?}");
        assert!(!leaked.exists(), "the pull request's from_command ran");
        assert!(!checked.exists(), "the pull request's check ran");
        // The working copy is back where the last delivery left it: what the scheduler and
        // the next jobs read is never the pull request's configuration.
        let server = world.dir.path().join("server");
        assert_eq!(
            git(&server, &["rev-parse", "HEAD"]),
            git(&world.upstream, &["rev-parse", "main"])
        );
        assert_eq!(
            std::fs::read_to_string(server.join("slipway.hcl")).unwrap(),
            SLIPWAY_HCL
        );
        let body = received[0].body["body"].as_str().unwrap().to_owned();
        assert!(body.contains("| queue | dev |"), "planned all the same: {body}");
        assert!(!body.contains(DEPLOY_SECRET), "the secret is in the comment");
        assert!(!log_text().contains(DEPLOY_SECRET), "the secret is in the log");
        let kept = world.everything_kept();
        assert!(
            !kept.contains(DEPLOY_SECRET),
            "the secret is in the record or the data folder"
        );
        // The plan ran with the reader's set, which is redacted wherever it could appear.
        assert!(!kept.contains(READER_SECRET), "the reader's secret is kept");
    });
}
