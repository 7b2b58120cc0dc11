//! Runs the moto AWS emulator on a free loopback port for as long as a [`Moto`] value lives.
//!
//! Process policy: moto is started with its output in a log file inside a private temporary
//! folder, is ready when `GET /moto-api/data.json` answers, and is killed and reaped on
//! `Drop`. moto holds all state in memory, so every [`Moto`] starts empty.

use std::fs::File;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::install::tail;
use crate::{Inventory, Sandbox, SandboxError, env};

/// How long moto may take to answer its first request.
const READY_DEADLINE: Duration = Duration::from_secs(30);
/// How often readiness is polled.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Another process can take the port between choosing it and moto binding it; try again
/// with a fresh port this many times.
const PORT_ATTEMPTS: usize = 3;
/// Requests to moto are local; a slow answer means moto is stuck.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// How to start moto.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MotoOptions {
    /// Enforce IAM: moto lets this many requests through unauthenticated (enough to create
    /// IAM users, their policies and access keys), then authorises every later request
    /// against the caller's policies (`INITIAL_NO_AUTH_ACTION_COUNT`). `None`: anything goes.
    pub initial_no_auth_action_count: Option<u32>,
}

/// A running moto server. Killed (and waited for) when dropped.
#[derive(Debug)]
pub struct Moto {
    child: Child,
    port: u16,
    log: PathBuf,
    terraform: PathBuf,
    cli_config: PathBuf,
    python: PathBuf,
    agent: ureq::Agent,
    // Holds the log file; removed when moto is dropped.
    _dir: tempfile::TempDir,
}

impl Moto {
    /// Starts moto from the sandbox's virtualenv and waits until it answers.
    pub(crate) fn start(sandbox: &Sandbox, options: &MotoOptions) -> Result<Moto, SandboxError> {
        // Terraform refuses a plugin cache folder that does not exist.
        let cache = sandbox.root.join("plugin-cache");
        std::fs::create_dir_all(&cache)
            .map_err(|source| SandboxError::io("create", &cache, source))?;
        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            match Self::start_once(sandbox, options)? {
                Ok(moto) => return Ok(moto),
                Err(port_taken) => last_error = Some(port_taken),
            }
        }
        Err(last_error.unwrap_or(SandboxError::MotoStart {
            reason: "no attempt was made".into(),
            log_tail: String::new(),
        }))
    }

    /// The outer error is fatal; the inner one means "the port was taken, try another".
    fn start_once(
        sandbox: &Sandbox,
        options: &MotoOptions,
    ) -> Result<Result<Moto, SandboxError>, SandboxError> {
        let dir = tempfile::Builder::new()
            .prefix("slipway-moto-")
            .tempdir()
            .map_err(|source| SandboxError::io("create", Path::new("temporary folder"), source))?;
        let log = dir.path().join("moto.log");
        let port = free_port()?;
        let log_file =
            File::create(&log).map_err(|source| SandboxError::io("create", &log, source))?;
        let log_err = log_file
            .try_clone()
            .map_err(|source| SandboxError::io("open", &log, source))?;
        let mut command = Command::new(&sandbox.moto_server);
        command.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        // Never inherit enforcement from the caller's environment: only the options decide.
        command.env_remove("INITIAL_NO_AUTH_ACTION_COUNT");
        if let Some(count) = options.initial_no_auth_action_count {
            command.env("INITIAL_NO_AUTH_ACTION_COUNT", count.to_string());
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err)
            .spawn()
            .map_err(|source| SandboxError::io("run", &sandbox.moto_server, source))?;
        let agent = ureq::AgentBuilder::new().timeout(REQUEST_TIMEOUT).build();
        let mut moto = Moto {
            child,
            port,
            log,
            terraform: sandbox.terraform.clone(),
            cli_config: sandbox.cli_config.clone(),
            python: sandbox.python.clone(),
            agent,
            _dir: dir,
        };
        match moto.wait_ready() {
            Ok(()) => Ok(Ok(moto)),
            Err(Readiness::Exited(status)) => {
                let log_tail = moto.log_tail();
                let error = SandboxError::MotoStart {
                    reason: format!("moto_server exited at start ({status}) on port {port}"),
                    log_tail: log_tail.clone(),
                };
                if log_tail.contains("in use") {
                    Ok(Err(error))
                } else {
                    Err(error)
                }
            }
            Err(Readiness::TimedOut) => Err(SandboxError::MotoStart {
                reason: format!(
                    "moto_server did not answer on port {port} within {READY_DEADLINE:?}"
                ),
                log_tail: moto.log_tail(),
            }),
        }
    }

    fn wait_ready(&mut self) -> Result<(), Readiness> {
        let deadline = Instant::now() + READY_DEADLINE;
        let probe = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(2))
            .build();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(Readiness::Exited(status.to_string()));
            }
            let answered = probe.get(&self.data_url()).call().is_ok();
            // A server that answers while our child is dead is someone else's on a reused
            // port: check the child again after the answer.
            if answered {
                if let Ok(Some(status)) = self.child.try_wait() {
                    return Err(Readiness::Exited(status.to_string()));
                }
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Readiness::TimedOut);
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// The loopback port moto listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// moto's base URL, `http://127.0.0.1:PORT`: every AWS service endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The shared provider cache, beside the CLI configuration in the sandbox folder.
    fn plugin_cache(&self) -> std::path::PathBuf {
        self.cli_config.parent().map_or_else(
            || std::path::PathBuf::from("plugin-cache"),
            |root| root.join("plugin-cache"),
        )
    }

    /// The environment slipway and Terraform need to use this sandbox (see `docs/sandbox.md`).
    pub fn env(&self) -> Vec<(String, String)> {
        use env::contract::*;
        [
            (ENGINE, self.terraform.display().to_string()),
            (TF_CLI_CONFIG_FILE, self.cli_config.display().to_string()),
            (SANDBOX_ENDPOINT, self.endpoint()),
            (AWS_ACCESS_KEY_ID, env::DUMMY_CREDENTIAL.to_owned()),
            (AWS_SECRET_ACCESS_KEY, env::DUMMY_CREDENTIAL.to_owned()),
            (AWS_DEFAULT_REGION, env::REGION.to_owned()),
            (AWS_REGION, env::REGION.to_owned()),
            (CHECKPOINT_DISABLE, "1".to_owned()),
            (
                TF_PLUGIN_CACHE_DIR,
                self.plugin_cache().display().to_string(),
            ),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
    }

    /// The Terraform `provider "aws"` block that reaches this moto.
    pub fn provider_block(&self) -> String {
        crate::provider_block(&self.endpoint())
    }

    /// Wipes every resource moto holds (`POST /moto-api/reset`).
    pub fn reset(&self) -> Result<(), SandboxError> {
        let url = format!("{}/moto-api/reset", self.endpoint());
        self.agent
            .post(&url)
            .send_bytes(&[])
            .map_err(|e| SandboxError::http(&url, e))?;
        Ok(())
    }

    /// moto's `GET /moto-api/data.json`: service -> model -> list of records, for every
    /// object created since the last reset, *deleted ones included*. Use [`Moto::inventory`]
    /// to see what exists now.
    pub fn data(&self) -> Result<serde_json::Value, SandboxError> {
        let url = self.data_url();
        let response = self
            .agent
            .get(&url)
            .call()
            .map_err(|e| SandboxError::http(&url, e))?;
        response
            .into_json()
            .map_err(|e| SandboxError::http(&url, format!("unreadable JSON: {e}")))
    }

    /// A compact, sorted inventory of the resources that exist in moto now, listed through
    /// the AWS APIs (about a second: it runs boto3 in the sandbox's Python).
    pub fn inventory(&self) -> Result<Inventory, SandboxError> {
        const SCRIPT: &str = include_str!("inventory.py");
        let output = Command::new(&self.python)
            .args(["-c", SCRIPT])
            .env(env::contract::SANDBOX_ENDPOINT, self.endpoint())
            // boto3 must reach loopback directly, whatever proxy the caller has configured.
            .env("NO_PROXY", "127.0.0.1")
            .env("no_proxy", "127.0.0.1")
            .stdin(Stdio::null())
            .output()
            .map_err(|source| SandboxError::io("run", &self.python, source))?;
        if !output.status.success() {
            return Err(SandboxError::Command {
                what: "listing moto's resources".into(),
                status: output.status.to_string(),
                output_tail: tail(&String::from_utf8_lossy(&output.stderr)),
            });
        }
        Inventory::from_listing(&String::from_utf8_lossy(&output.stdout))
    }

    /// False once the moto process has exited (it should not, until dropped).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The path of moto's log file (deleted with the [`Moto`]).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    fn log_tail(&self) -> String {
        tail(&std::fs::read_to_string(&self.log).unwrap_or_default())
    }

    fn data_url(&self) -> String {
        format!("{}/moto-api/data.json", self.endpoint())
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        // Errors mean the process is already gone; nothing is left to clean up then.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

enum Readiness {
    Exited(String),
    TimedOut,
}

/// A port that was free a moment ago: bind port 0 on loopback, read it, release it.
fn free_port() -> Result<u16, SandboxError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|source| SandboxError::io("bind", Path::new("127.0.0.1:0"), source))?;
    listener
        .local_addr()
        .map(|addr| addr.port())
        .map_err(|source| SandboxError::io("bind", Path::new("127.0.0.1:0"), source))
}
