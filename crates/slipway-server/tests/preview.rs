//! Pull request previews (`preview { stage, ttl }`), with real Terraform against moto (the
//! sandbox) and a fake GitHub on loopback that records every request:
//!
//! - an opened pull request gets its instance `pr-N` applied: its queue exists in moto, the
//!   comment lists its outputs, and the instance is on record for `slipway gc`; closing the
//!   pull request destroys it (gone from moto, off the record) and the comment says so;
//! - a preview whose ttl runs out is destroyed by the scheduler without a close event.
//!
//! One stack, so each case costs one apply and one destroy.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, Uri};
use serde_json::{Value, json};
use slipway_server::webhook::github_signature;
use slipway_server::{ForgeAccess, RunnerConfig, Secret, ServerConfig};
use slipway_store::{AnyStore, JobKind, JobStatus, ServiceRecord as _, VerificationRecord as _};

const GITHUB_SECRET: &str = "webhook secret of the preview tests";
const GITHUB_TOKEN: &str = "ghp_previewTestToken0123456789";
const DEPLOY_SECRET: &str = "deploy-secret-of-previews-5c1d";
/// How long anything here may take (a first `init` installs the provider).
const DEADLINE: Duration = Duration::from_secs(300);

fn slipway_hcl(ttl: &str) -> String {
    format!(
        r#"project {{
  name   = "platform"
  engine = "terraform"
}}

generate "provider" {{
  path     = "slipway_provider.tf"
  contents = <<-EOT
    provider "aws" {{
      region                      = "us-east-1"
      skip_credentials_validation = true
      skip_requesting_account_id  = true
      skip_metadata_api_check     = true
      endpoints {{
        ec2 = "${{env("SLIPWAY_SANDBOX_ENDPOINT")}}"
        sqs = "${{env("SLIPWAY_SANDBOX_ENDPOINT")}}"
        sts = "${{env("SLIPWAY_SANDBOX_ENDPOINT")}}"
      }}
    }}
  EOT
}}

credentials "deployer" {{
  from_env = {{
    AWS_ACCESS_KEY_ID     = "DEPLOY_KEY_ID"
    AWS_SECRET_ACCESS_KEY = "DEPLOY_SECRET"
  }}
}}

stage "dev" {{
  variables        = {{ env = instance.name }}
  credentials      = {{ default = "deployer" }}
  plan_credentials = {{ default = "deployer" }}
}}

preview {{
  stage = "dev"
  ttl   = "{ttl}"
}}
"#
    )
}

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

output "token" {{
  value     = "sensitive-output-never-shown"
  sensitive = true
}}
{extra}"#
    )
}

/// A request the fake forge received.
#[derive(Debug, Clone)]
struct Received {
    method: String,
    body: Value,
}

async fn record(
    State(received): State<Arc<Mutex<Vec<Received>>>>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> axum::Json<Value> {
    let mut received = received.lock().unwrap();
    received.push(Received {
        method: method.to_string(),
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

struct World {
    _dir: tempfile::TempDir,
    upstream: PathBuf,
    store: AnyStore,
    addr: SocketAddr,
    comments: Arc<Mutex<Vec<Received>>>,
    moto: slipway_sandbox::Moto,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl World {
    async fn start(ttl: &str) -> Self {
        let sandbox = slipway_sandbox::Sandbox::from_env().expect("the sandbox installs");
        let moto = sandbox.start_moto().expect("moto starts");
        let dir = tempfile::tempdir().unwrap();
        let upstream = dir.path().join("upstream");
        std::fs::create_dir_all(&upstream).unwrap();
        git(&upstream, &["init", "--quiet", "--initial-branch=main"]);
        write(&upstream, "slipway.hcl", &slipway_hcl(ttl));
        write(&upstream, ".gitignore", ".slipway/\n");
        write(
            &upstream,
            "stacks/queue/stack.hcl",
            "stack {\n  team = \"shop\"\n}\n",
        );
        write(&upstream, "stacks/queue/main.tf", &queue_tf(""));
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
        let store_dir = dir.path().join("record");
        std::fs::create_dir_all(&store_dir).unwrap();
        let url = slipway_store::default_url(&store_dir);
        let store = slipway_store::open(&url).await.unwrap();

        let comments: Arc<Mutex<Vec<Received>>> = Arc::default();
        let forge = Router::new().fallback(record).with_state(comments.clone());
        let forge_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let forge_addr = forge_listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(forge_listener, forge).await.unwrap();
        });

        let mut environment: std::collections::BTreeMap<String, String> = moto
            .env()
            .into_iter()
            .filter(|(k, _)| !k.starts_with("AWS_"))
            .collect();
        for (name, value) in [
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
            allowed_repositories: vec!["acme/platform".to_owned()],
            runner: Some(RunnerConfig {
                checkout,
                source: Some(upstream.display().to_string()),
                settings,
                poll: None,
            }),
            github_api: Some(ForgeAccess {
                api_url: format!("http://{forge_addr}"),
                token: Secret::new(GITHUB_TOKEN),
            }),
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
            _dir: dir,
            upstream,
            store,
            addr,
            comments,
            moto,
            stop: Some(stop),
        }
    }

    /// Commits a change to the queue stack on a new branch; returns the commit.
    fn push(&self, branch: &str) -> String {
        git(
            &self.upstream,
            &["checkout", "--quiet", "-b", branch, "main"],
        );
        write(
            &self.upstream,
            "stacks/queue/main.tf",
            &queue_tf("output \"team\" {\n  value = \"shop\"\n}\n"),
        );
        git(&self.upstream, &["add", "."]);
        git(&self.upstream, &["commit", "--quiet", "-m", "a change"]);
        let commit = git(&self.upstream, &["rev-parse", "HEAD"]);
        git(&self.upstream, &["checkout", "--quiet", "main"]);
        commit
    }

    async fn pull_request(&self, delivery: &str, action: &str, number: i64, commit: &str) {
        let body = serde_json::to_vec(&json!({
            "action": action,
            "number": number,
            "pull_request": {
                "head": { "ref": "feature", "sha": commit, "repo": { "full_name": "acme/platform", "fork": false } },
                "base": { "ref": "main", "repo": { "full_name": "acme/platform" } },
            },
            "repository": { "full_name": "acme/platform" },
            "sender": { "login": "ada" },
        }))
        .unwrap();
        let signature = github_signature(&Secret::new(GITHUB_SECRET), &body);
        let url = format!("http://{}/webhooks/github", self.addr);
        let delivery = delivery.to_owned();
        let status = tokio::task::spawn_blocking(move || {
            match ureq::post(&url)
                .timeout(Duration::from_secs(30))
                .set("X-GitHub-Event", "pull_request")
                .set("X-GitHub-Delivery", &delivery)
                .set("X-Hub-Signature-256", &signature)
                .set("Content-Type", "application/json")
                .send_bytes(&body)
            {
                Ok(response) => response.status(),
                Err(ureq::Error::Status(status, _)) => status,
                Err(error) => panic!("POST {url}: {error}"),
            }
        })
        .await
        .unwrap();
        assert_eq!(status, 202);
    }

    /// Waits until `count` pull request jobs have ended; returns their outcomes, oldest first.
    async fn jobs_done(&self, count: usize) -> Vec<String> {
        let started = Instant::now();
        loop {
            let jobs = self.store.jobs(100).await.unwrap();
            let mut ended: Vec<_> = jobs
                .iter()
                .filter(|j| j.kind == JobKind::PullRequest)
                .filter(|j| !matches!(j.status, JobStatus::Queued | JobStatus::Running))
                .collect();
            ended.sort_by_key(|j| j.id);
            if let Some(bad) = ended.iter().find(|j| j.status != JobStatus::Done) {
                panic!("a pull request job ended {}: {:?}", bad.status, bad.outcome);
            }
            if ended.len() >= count {
                return ended
                    .iter()
                    .map(|j| j.outcome.clone().unwrap_or_default())
                    .collect();
            }
            assert!(
                started.elapsed() < DEADLINE,
                "{count} pull request job(s) did not end in time: {jobs:#?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The queues moto holds now.
    fn queues(&self) -> Vec<String> {
        self.moto.inventory().expect("moto lists").sqs_queues
    }

    /// The comment's latest text.
    fn comment(&self) -> String {
        let received = self.comments.lock().unwrap();
        received
            .last()
            .and_then(|r| r.body["body"].as_str())
            .unwrap_or_default()
            .to_owned()
    }

    fn methods(&self) -> Vec<String> {
        let received = self.comments.lock().unwrap();
        received.iter().map(|r| r.method.clone()).collect()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_pull_request_gets_a_preview_that_closing_destroys() {
    runtime().block_on(async {
        let world = World::start("1h").await;
        let head = world.push("feature");
        world.pull_request("p-1", "opened", 41, &head).await;
        let outcomes = world.jobs_done(1).await;
        assert!(
            outcomes[0].contains("preview pr-41 applied"),
            "{outcomes:?}"
        );

        let queues = world.queues();
        assert!(
            queues.iter().any(|q| q.contains("platform-pr-41-orders")),
            "the preview's queue exists: {queues:?}"
        );
        let comment = world.comment();
        assert!(comment.contains("#### Preview `pr-41`"), "{comment}");
        assert!(
            comment.contains("| `queue` | `queue_url` |")
                && comment.contains("platform-pr-41-orders"),
            "the outputs are listed: {comment}"
        );
        assert!(
            comment.contains("| `queue` | `team` | `shop` |"),
            "{comment}"
        );
        assert!(
            !comment.contains("sensitive-output-never-shown"),
            "{comment}"
        );
        assert!(
            comment.contains("1 sensitive output(s) are not shown"),
            "{comment}"
        );
        assert!(!comment.contains(DEPLOY_SECRET));
        let live = world.store.live_instances().await.unwrap();
        assert_eq!(
            live.iter()
                .map(|i| (i.name.as_str(), i.purpose.as_str(), i.stage.as_str()))
                .collect::<Vec<_>>(),
            [("pr-41", "preview", "dev")],
            "on record, so `slipway gc` sees a leftover"
        );

        world.pull_request("p-2", "closed", 41, &head).await;
        let outcomes = world.jobs_done(2).await;
        assert!(
            outcomes[1].contains("preview pr-41 destroyed: the pull request was closed"),
            "{outcomes:?}"
        );
        let queues = world.queues();
        assert!(
            !queues.iter().any(|q| q.contains("pr-41")),
            "the preview's queue is gone: {queues:?}"
        );
        let comment = world.comment();
        assert!(
            comment.contains("#### Preview `pr-41`")
                && comment.contains("Destroyed: the pull request was closed."),
            "{comment}"
        );
        assert!(!comment.contains("| `queue` | `queue_url` |"), "{comment}");
        assert_eq!(world.methods(), ["POST", "PATCH"], "one comment, updated");
        assert!(world.store.live_instances().await.unwrap().is_empty());
    });
}

#[test]
fn a_preview_whose_ttl_runs_out_is_destroyed_without_a_close() {
    runtime().block_on(async {
        let world = World::start("2s").await;
        let head = world.push("feature");
        world.pull_request("p-1", "opened", 42, &head).await;
        let outcomes = world.jobs_done(1).await;
        assert!(
            outcomes[0].contains("preview pr-42 applied"),
            "{outcomes:?}"
        );
        let applied = world.comment();
        assert!(applied.contains("platform-pr-42-orders"), "{applied}");

        // The scheduler notices the ttl and queues the destroy: no close event is sent.
        let outcomes = world.jobs_done(2).await;
        assert!(
            outcomes[1].contains("preview pr-42 destroyed: its time to live ran out"),
            "{outcomes:?}"
        );
        let queues = world.queues();
        assert!(
            !queues.iter().any(|q| q.contains("pr-42")),
            "the preview's queue is gone: {queues:?}"
        );
        assert!(
            world
                .comment()
                .contains("Destroyed: its time to live ran out."),
            "{}",
            world.comment()
        );
        assert!(world.store.live_instances().await.unwrap().is_empty());
    });
}
