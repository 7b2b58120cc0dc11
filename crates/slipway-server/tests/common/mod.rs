//! A server on `127.0.0.1:0` with its record in a temporary SQLite file, and requests to
//! it, shared by the tests of the intake and of the API.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use slipway_server::webhook::github_signature;
use slipway_server::{Secret, ServerConfig};
use slipway_store::{AnyStore, Store as _};

pub const GITHUB_SECRET: &str = "It's a Secret to Everybody";
pub const GITLAB_TOKEN: &str = "gitlab-s3cr3t";

/// A running server, stopped when dropped.
pub struct Server {
    pub addr: SocketAddr,
    pub store: AnyStore,
    pub runtime: tokio::runtime::Runtime,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Server {
    pub fn start() -> Self {
        Self::start_with(|_, config| config)
    }

    /// A server whose configuration `configure` finishes, given a folder of its own.
    pub fn start_with(
        configure: impl FnOnce(&std::path::Path, ServerConfig) -> ServerConfig,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let url = slipway_store::default_url(dir.path());
        let (store, listener) = runtime.block_on(async {
            (
                slipway_store::open(&url).await.unwrap(),
                tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
            )
        });
        let addr = listener.local_addr().unwrap();
        let config = ServerConfig {
            github_secret: Some(Secret::new(GITHUB_SECRET)),
            gitlab_token: Some(Secret::new(GITLAB_TOKEN)),
            allowed_repositories: vec!["acme/platform".to_owned()],
            ..ServerConfig::default()
        };
        let config = configure(dir.path(), config);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = store.clone();
        runtime.spawn(async move {
            slipway_server::serve(listener, config, served, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Self {
            addr,
            store,
            runtime,
            stop: Some(stop),
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn post(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, Value) {
        let mut request = ureq::post(&self.url(path)).timeout(Duration::from_secs(60));
        for (name, value) in headers {
            request = request.set(name, value);
        }
        let response = match request.send_bytes(body) {
            Ok(response) => response,
            Err(ureq::Error::Status(_, response)) => response,
            Err(error) => panic!("POST {path}: {error}"),
        };
        let status = response.status();
        let text = response.into_string().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub fn github(&self, event: &str, delivery: &str, body: &[u8]) -> (u16, Value) {
        let signature = github_signature(&Secret::new(GITHUB_SECRET), body);
        self.post(
            "/webhooks/github",
            &[
                ("X-GitHub-Event", event),
                ("X-GitHub-Delivery", delivery),
                ("X-Hub-Signature-256", &signature),
                ("Content-Type", "application/json"),
            ],
            body,
        )
    }

    pub fn kept(&self) -> Vec<slipway_store::Delivery> {
        self.runtime
            .block_on(self.store.deliveries(100_000))
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(path),
    )
    .unwrap()
}

impl Server {
    /// A request with `token` as its bearer, if any; the status and the body as text.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> (u16, String) {
        let mut request = ureq::request(method, &self.url(path)).timeout(Duration::from_secs(60));
        if let Some(token) = token {
            request = request.set("Authorization", &format!("Bearer {token}"));
        }
        for (name, value) in headers {
            request = request.set(name, value);
        }
        let sent = match body {
            Some(body) => request.send_json(body.clone()),
            None => request.call(),
        };
        let response = match sent {
            Ok(response) => response,
            Err(ureq::Error::Status(_, response)) => response,
            Err(error) => panic!("{method} {path}: {error}"),
        };
        let status = response.status();
        (status, response.into_string().unwrap_or_default())
    }

    /// A JSON request; the status and the body as JSON (null when it is not).
    pub fn json(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let (status, text) = self.request(method, path, token, &[], body);
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Makes a token in the record, as `slipway token create` does; returns the secret.
    pub fn token(&self, actor: &str, role: slipway_store::Role, stage: Option<&str>) -> String {
        use slipway_store::ServiceRecord as _;
        let secret = slipway_server::new_token().unwrap();
        self.runtime
            .block_on(self.store.create_token(&slipway_store::NewToken {
                actor: actor.to_owned(),
                role,
                stage: stage.map(str::to_owned),
                token_hash: secret.hash.clone(),
                created_by: "test".to_owned(),
            }))
            .unwrap();
        secret.token
    }
}
