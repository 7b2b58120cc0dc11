//! The web pages in a real browser on the real sandbox: `slipway serve` in its own clone of a
//! one-stack project (the webshop's queue through dev and prod, prod with approval), the real
//! Terraform against moto, a signed push webhook, and headless Chromium driven over WebDriver
//! (chromedriver on a loopback port).
//!
//! An approver, added with `slipway user add --password-stdin`, signs in, sees the release
//! matrix, opens the run waiting at prod, reads its blast radius report, approves with a
//! reason and watches the run become delivered; then moto holds prod's queue. Screenshots go
//! to `target/screenshots/sandbox-*.png`.
//!
//! Without `/usr/bin/chromium` and `/usr/bin/chromedriver` (scripts/install-chromium.sh) the
//! test says so loudly and passes, unless `SLIPWAY_REQUIRE_CHROMIUM` is set, when it fails:
//! the same rule as `crates/slipway-server/tests/browser.rs`.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use slipway_server::Secret;
use slipway_server::webhook::github_signature;

use crate::common::{sandbox, slipway, slipway_process};
use crate::pipeline::git;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const REQUIRE_ENV: &str = "SLIPWAY_REQUIRE_CHROMIUM";
const PASSWORD: &str = "ada's sandbox passphrase";
const SECRET: &str = "the sandbox webhook secret";

/// How long a page may take to show what a person clicked for.
const PAGE: Duration = Duration::from_secs(30);
/// How long the real Terraform may take to bring a run to the next gate or its end.
const ENGINE: Duration = Duration::from_secs(600);

#[test]
fn an_approver_approves_prod_in_a_browser_and_the_sandbox_gets_prods_queue() {
    if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
        if std::env::var_os(REQUIRE_ENV).is_some() {
            panic!(
                "{REQUIRE_ENV} is set but {CHROMIUM} or {CHROMEDRIVER} is missing (run scripts/install-chromium.sh)"
            );
        }
        eprintln!(
            "\n\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
             SKIPPED: the browser test on the sandbox needs {CHROMIUM} and {CHROMEDRIVER}.\n\
             Run scripts/install-chromium.sh, or set {REQUIRE_ENV}=1 to fail instead.\n\
             !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
        );
        return;
    }
    let (_sandbox, moto) = sandbox();
    // Upstream: the one-stack project, verification off (tested elsewhere) to keep it short.
    let upstream = crate::queue_project::queue_repository_with(
        "\nverify {\n  from_zero   = false\n  from_latest = false\n}\n",
    );
    let head = git_head(upstream.path());
    // The server's own clone, as docs/server.md asks.
    let home = tempfile::tempdir().unwrap();
    let checkout = home.path().join("server");
    git(
        home.path(),
        &[
            "clone",
            "-q",
            upstream.path().to_str().unwrap(),
            checkout.to_str().unwrap(),
        ],
    );

    let mut env = moto.env();
    env.push(("SLIPWAY_ACTOR".to_owned(), "operator".to_owned()));
    slipway(&checkout, &env)
        .args([
            "user",
            "add",
            "ada",
            "--role",
            "approver",
            "--password-stdin",
        ])
        .write_stdin(format!("{PASSWORD}\n"))
        .assert()
        .success();
    let mut served_env = env.clone();
    served_env.extend(
        [
            ("SLIPWAY_GITHUB_WEBHOOK_SECRET", SECRET),
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
    let driver = Driver::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let told = runtime.block_on(async {
        let browser = driver.browser().await;
        let told = story(&server, &browser, &head).await;
        let _ = browser.close().await;
        told
    });
    drop(driver);
    let (status, log) = server.stop();
    if let Err(error) = told {
        panic!("{error}\n\nthe server's log:\n{log}");
    }
    assert!(status.success(), "serve ended {status} on SIGTERM: {log}");
    assert!(
        !log.contains(PASSWORD),
        "the password never reaches the log"
    );
    assert!(!log.contains(SECRET), "the secret never reaches the log");

    let queues = moto.inventory().unwrap().sqs_queues;
    assert!(
        queues.iter().any(|q| q == "webshop-prod-orders"),
        "prod's queue is in the sandbox: {queues:?}"
    );
    assert!(
        queues.iter().any(|q| q == "webshop-dev-orders"),
        "dev's too: {queues:?}"
    );
}

type Outcome<T = ()> = Result<T, String>;

fn e(error: fantoccini::error::CmdError) -> String {
    error.to_string()
}

async fn story(server: &Served, browser: &Client, head: &str) -> Outcome {
    // Signing in: sent to the form, then back to the release matrix, empty so far.
    browser.goto(&server.url("/")).await.map_err(e)?;
    let url = browser.current_url().await.map_err(e)?;
    if url.path() != "/login" {
        return Err(format!("not sent to the login form but to {url}"));
    }
    type_into(browser, "#name", "ada").await?;
    type_into(browser, "#password", PASSWORD).await?;
    shoot(browser, "sandbox-login").await?;
    click(browser, "#sign-in").await?;
    wait_for_text(browser, "Nothing has been released yet.", PAGE).await?;

    // The forge announces the push.
    push(server, head)?;

    // The run appears among the runs; the page is read again until it does.
    let link = poll_for(
        browser,
        &server.url("/runs"),
        "#runs tbody a",
        ENGINE,
        |link| link.starts_with("Run "),
    )
    .await?;
    let run: i64 = link["Run ".len()..]
        .parse()
        .map_err(|_| format!("not a run's link: {link:?}"))?;
    shoot(browser, "sandbox-runs").await?;
    let run_page = server.url(&format!("/runs/{run}"));

    // Dev delivered, prod waiting: the release matrix says so.
    poll_page(browser, &run_page, "prod awaits approval", ENGINE).await?;
    browser.goto(&server.url("/")).await.map_err(e)?;
    let matrix = text_of(browser, "#matrix").await?;
    for expected in ["queue", &head[..8], "not released"] {
        if !matrix.contains(expected) {
            return Err(format!("the matrix lacks {expected:?}: {matrix}"));
        }
    }
    shoot(browser, "sandbox-matrix-before").await?;

    // The run, through the matrix's link to it.
    browser
        .find(Locator::LinkText(&format!("run {run}")))
        .await
        .map_err(e)?
        .click()
        .await
        .map_err(e)?;
    wait_for_text(browser, "prod awaits approval", PAGE).await?;
    for (stage, expected) in [("dev", "succeeded"), ("prod", "awaiting approval")] {
        let status = text_of(browser, &format!("[data-stage-status='{stage}']")).await?;
        if status != expected {
            return Err(format!("{stage} is {status:?}, not {expected:?}"));
        }
    }
    let report = text_of(browser, "#report-prod").await?;
    for expected in [
        "Blast radius report",
        "Policy verdict",
        "queue in prod",
        "aws_sqs_queue.orders",
        "create",
    ] {
        if !report.contains(expected) {
            return Err(format!("the report lacks {expected:?}: {report}"));
        }
    }
    let create = text_of(browser, "#report-prod .totals div:first-child dd").await?;
    if create != "1" {
        return Err(format!("the report creates {create:?} resources, not 1"));
    }
    scroll_to(browser, "#report-prod").await?;
    shoot(browser, "sandbox-report").await?;

    // Approve with a reason.
    type_into(
        browser,
        "#approve-reason-prod",
        "A new queue only; nothing to lose.",
    )
    .await?;
    scroll_to(browser, "#approve-prod").await?;
    shoot(browser, "sandbox-approving").await?;
    click(browser, "#approve-prod").await?;
    wait_for_text(browser, "Approved by ada", PAGE).await?;

    // The run carries on in the server: the page, read again, says when it is delivered.
    let status = poll_for(browser, &run_page, "#run-status", ENGINE, |status| {
        !status.is_empty() && status != "running"
    })
    .await?;
    let delivered = body(browser).await;
    if status != "succeeded" {
        return Err(format!("the run ended {status:?}: {delivered}"));
    }
    let prod = text_of(browser, "[data-stage-status='prod']").await?;
    if prod != "succeeded" {
        return Err(format!("prod is {prod:?} at the end: {delivered}"));
    }
    if !delivered.contains("A new queue only") {
        return Err(format!(
            "the approval's reason is not on the page: {delivered}"
        ));
    }
    shoot(browser, "sandbox-run-delivered").await?;

    // Both stages run the pushed commit.
    browser.goto(&server.url("/")).await.map_err(e)?;
    let matrix = text_of(browser, "#matrix").await?;
    if matrix.contains("not released") || matrix.matches(&head[..8]).count() != 2 {
        return Err(format!("not every stage runs {head}: {matrix}"));
    }
    shoot(browser, "sandbox-matrix-after").await?;

    // The audit log names the approver.
    browser.goto(&server.url("/audit")).await.map_err(e)?;
    let audit = wait_for_text(browser, "approve", PAGE).await?;
    if !audit.contains("ada") {
        return Err(format!("the audit log does not name ada: {audit}"));
    }
    Ok(())
}

/// A signed GitHub push of `head` to main.
fn push(server: &Served, head: &str) -> Outcome {
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
        "head_commit": { "id": head, "message": "queue" },
    })
    .to_string();
    let response = ureq::post(&server.url("/webhooks/github"))
        .timeout(PAGE)
        .set("X-GitHub-Event", "push")
        .set("X-GitHub-Delivery", "browser-1")
        .set(
            "X-Hub-Signature-256",
            &github_signature(&Secret::new(SECRET), push.as_bytes()),
        )
        .send_string(&push)
        .map_err(|e| e.to_string())?;
    if response.status() != 202 {
        return Err(format!("the push was answered {}", response.status()));
    }
    Ok(())
}

fn git_head(dir: &Path) -> String {
    let output = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(dir)
        .output()
        .unwrap();
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// A running `slipway serve`, its log collected as it is written (so the pipe never fills).
struct Served {
    child: Child,
    address: String,
    log: Arc<Mutex<String>>,
}

impl Served {
    fn start(dir: &Path, env: &[(String, String)], args: &[&str]) -> Self {
        let mut child = slipway_process(dir, env)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let log = Arc::new(Mutex::new(String::new()));
        let (found, address) = std::sync::mpsc::channel();
        let kept = Arc::clone(&log);
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

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// SIGTERM; how it ended, and its log.
    fn stop(mut self) -> (std::process::ExitStatus, String) {
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM).unwrap();
        let status = self.child.wait().unwrap();
        let log = self.log.lock().unwrap().clone();
        (status, log)
    }
}

impl Drop for Served {
    /// A test that panics before [`Served::stop`] leaves no server behind.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// chromedriver on a loopback port, stopped when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let driver = Self { child, port };
        crate::common::wait_until("chromedriver answers on its port", PAGE, || {
            ureq::get(&format!("http://127.0.0.1:{port}/status"))
                .timeout(Duration::from_secs(2))
                .call()
                .ok()
                .and_then(|r| r.into_json::<serde_json::Value>().ok())
                .is_some_and(|status| status["value"]["ready"] == true)
        });
        driver
    }

    async fn browser(&self) -> Client {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            serde_json::json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--window-size=1280,1100",
                ],
            }),
        );
        ClientBuilder::rustls()
            .unwrap()
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a chromium session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn screenshots() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| crate::common::repo_root().join("target"), PathBuf::from);
    let dir = target.join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shoot(browser: &Client, name: &str) -> Outcome {
    let png = browser.screenshot().await.map_err(e)?;
    if !png.starts_with(b"\x89PNG") {
        return Err(format!("the screenshot of {name} is not a PNG"));
    }
    std::fs::write(screenshots().join(format!("{name}.png")), png).map_err(|e| e.to_string())
}

async fn type_into(browser: &Client, css: &str, text: &str) -> Outcome {
    browser
        .find(Locator::Css(css))
        .await
        .map_err(e)?
        .send_keys(text)
        .await
        .map_err(e)
}

async fn click(browser: &Client, css: &str) -> Outcome {
    browser
        .find(Locator::Css(css))
        .await
        .map_err(e)?
        .click()
        .await
        .map_err(e)
}

async fn text_of(browser: &Client, css: &str) -> Outcome<String> {
    browser
        .find(Locator::Css(css))
        .await
        .map_err(|error| format!("{css}: {error}"))?
        .text()
        .await
        .map_err(e)
}

/// Scrolls the element `css` names into the middle of the window.
async fn scroll_to(browser: &Client, css: &str) -> Outcome {
    browser
        .execute(
            "document.querySelector(arguments[0]).scrollIntoView({block: 'center'});",
            vec![serde_json::Value::String(css.to_owned())],
        )
        .await
        .map(|_| ())
        .map_err(|error| format!("scrolling to {css}: {error}"))
}

/// The page's text, or nothing while a page is being replaced by the next one.
async fn body(browser: &Client) -> String {
    match browser.find(Locator::Css("body")).await {
        Ok(body) => body.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Waits until the page on screen says `text` (the page's own script may write it).
async fn wait_for_text(browser: &Client, text: &str, deadline: Duration) -> Outcome<String> {
    let started = Instant::now();
    loop {
        let body = body(browser).await;
        if body.contains(text) {
            return Ok(body);
        }
        if started.elapsed() > deadline {
            return Err(format!("the page never said {text:?}; it says:\n{body}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Loads `url` again and again until it says `text`: what someone waiting on the server
/// does with the reload button.
async fn poll_page(browser: &Client, url: &str, text: &str, deadline: Duration) -> Outcome<String> {
    poll_for(browser, url, "body", deadline, |page| page.contains(text))
        .await
        .map_err(|error| format!("waiting for {text:?}: {error}"))
}

/// Loads `url` again and again until the text of the element `css` names satisfies `done`;
/// returns that text.
async fn poll_for(
    browser: &Client,
    url: &str,
    css: &str,
    deadline: Duration,
    done: impl Fn(&str) -> bool,
) -> Outcome<String> {
    let started = Instant::now();
    loop {
        browser.goto(url).await.map_err(e)?;
        let text = match browser.find(Locator::Css(css)).await {
            Ok(found) => found.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if done(&text) {
            return Ok(text);
        }
        if started.elapsed() > deadline {
            return Err(format!(
                "{url} did not get there in {deadline:?}; it says:\n{}",
                body(browser).await
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
