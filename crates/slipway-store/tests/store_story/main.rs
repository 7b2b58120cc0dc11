//! The record's behavioural suite: one story ([`story`]), told against SQLite always and
//! against PostgreSQL when its binaries are installed (`scripts/install-postgres.sh`), or
//! required by `SLIPWAY_REQUIRE_POSTGRES`.

mod postgres_server;
mod service;
mod story;
mod users;
mod verification;

use std::io::{BufRead as _, BufReader, Read as _};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use slipway_store::{Backend, EngineProcess, LockOwner, Store as _, open};
use sqlx::{AssertSqlSafe, Connection as _};

use postgres_server::{PgServer, REQUIRE_ENV};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_story() {
    let dir = tempfile::tempdir().expect("temporary folder");
    for name in story::SCENARIOS {
        // A nested path: opening creates the data folder.
        let url = format!("sqlite://{}/{name}/data/slipway.db", dir.path().display());
        if let Err(error) = story::scenario(name, &url).await {
            panic!("sqlite: scenario {name} failed: {error}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_story() {
    let server = match PgServer::start() {
        Ok(Some(server)) => server,
        Ok(None) if std::env::var_os(REQUIRE_ENV).is_some() => {
            panic!(
                "{REQUIRE_ENV} is set but no PostgreSQL binaries were found (run scripts/install-postgres.sh)"
            )
        }
        Ok(None) => {
            eprintln!(
                "skipped: PostgreSQL binaries (initdb, pg_ctl) not found; run \
                 scripts/install-postgres.sh or set {REQUIRE_ENV} to fail instead"
            );
            return;
        }
        Err(error) => panic!("cannot start PostgreSQL: {error}"),
    };
    for name in story::SCENARIOS {
        let admin = server.url("postgres");
        raw_execute(&admin, &format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|error| panic!("creating database {name}: {error}"));
        if let Err(error) = story::scenario(name, &server.url(name)).await {
            panic!("postgres: scenario {name} failed: {error}");
        }
    }
}

#[tokio::test]
async fn unknown_scheme_is_refused_before_connecting() {
    let error = open("mysql://root@127.0.0.1/record").await.unwrap_err();
    insta::assert_snapshot!(error.to_string(), @"unsupported store URL `mysql://root@127.0.0.1/record`: expected `sqlite://PATH` or `postgres://USER@HOST:PORT/DATABASE`");
}

/// Runs one statement outside the store, as someone with direct database access would.
pub async fn raw_execute(url: &str, sql: &str) -> Result<u64, String> {
    let sql = AssertSqlSafe(sql.to_owned());
    let result = match Backend::of_url(url).map_err(|e| e.to_string())? {
        Backend::Sqlite => {
            let mut connection = sqlx::SqliteConnection::connect(url)
                .await
                .map_err(|e| e.to_string())?;
            sqlx::query(sql)
                .execute(&mut connection)
                .await
                .map(|done| done.rows_affected())
        }
        Backend::Postgres => {
            let mut connection = sqlx::PgConnection::connect(url)
                .await
                .map_err(|e| e.to_string())?;
            sqlx::query(sql)
                .execute(&mut connection)
                .await
                .map(|done| done.rows_affected())
        }
    };
    result.map_err(|e| e.to_string())
}

/// Environment that makes [`child_holds_instance`] act; its value is
/// `URL|RUN_ID|STACK_RUN_ID|STACK|INSTANCE`.
const CHILD_ENV: &str = "SLIPWAY_STORE_TEST_CHILD";
const READY: &str = "slipway-store-child-ready";

/// A copy of this test binary holding an instance lock with a stack run marked applying.
pub struct ChildHolder {
    child: Child,
}

impl ChildHolder {
    /// Starts the child and waits until it says it holds the lock.
    pub fn spawn(
        url: &str,
        run_id: i64,
        stack_run_id: i64,
        stack: &str,
        instance: &str,
    ) -> Result<Self, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut child = Command::new(exe)
            .args([
                "child_holds_instance",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(
                CHILD_ENV,
                format!("{url}|{run_id}|{stack_run_id}|{stack}|{instance}"),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawning the child: {e}"))?;
        let stdout = child.stdout.take().ok_or("no child stdout")?;
        let (said, heard) = mpsc::channel();
        std::thread::spawn(move || {
            let ready = BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .any(|line| line.contains(READY));
            let _ = said.send(ready);
        });
        let mut holder = Self { child };
        match heard.recv_timeout(Duration::from_secs(60)) {
            Ok(true) => Ok(holder),
            Ok(false) => {
                let status = holder.child.wait().map_err(|e| e.to_string())?;
                let mut stderr = String::new();
                if let Some(mut pipe) = holder.child.stderr.take() {
                    let _ = pipe.read_to_string(&mut stderr);
                }
                Err(format!(
                    "the child exited ({status}) without taking the lock:\n{stderr}"
                ))
            }
            Err(_) => Err("the child did not take the lock within 60 s".to_owned()),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the child with SIGKILL (no chance to clean up) and reaps it.
    pub fn kill(mut self) -> Result<u32, String> {
        let pid = self.child.id();
        self.child.kill().map_err(|e| e.to_string())?;
        self.child.wait().map_err(|e| e.to_string())?;
        Ok(pid)
    }
}

impl Drop for ChildHolder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Not a test: the body of [`ChildHolder`]'s process. Does nothing unless started by it.
#[tokio::test]
#[ignore = "helper process for the killed_process scenario"]
async fn child_holds_instance() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        eprintln!("{CHILD_ENV} is not set; nothing to hold");
        return;
    };
    let parts: Vec<&str> = spec.split('|').collect();
    let [url, run_id, stack_run_id, stack, instance] = parts[..] else {
        panic!("{CHILD_ENV} must be URL|RUN_ID|STACK_RUN_ID|STACK|INSTANCE, got {spec}");
    };
    let run_id: i64 = run_id.parse().expect("run id");
    let stack_run_id: i64 = stack_run_id.parse().expect("stack run id");
    let store = open(url).await.expect("open the record");
    let owner = LockOwner::current(run_id);
    let lock = store
        .acquire_instance_lock(stack, instance, &owner)
        .await
        .expect("take the lock");
    store
        .mark_applying(stack_run_id, &lock)
        .await
        .expect("mark applying");
    // The "engine": a process of its own that outlives this one when it is killed, as a
    // Terraform does when slipway dies under it (so it is never waited for here).
    #[allow(clippy::zombie_processes)]
    let engine = Command::new("sleep")
        .arg("600")
        .stdin(Stdio::null())
        .spawn()
        .expect("start the engine");
    store
        .record_engine_process(stack_run_id, &EngineProcess::here(engine.id()))
        .await
        .expect("record the engine");
    println!("{READY}");
    // Hold until killed, or until the parent goes away and closes our stdin.
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
}
