//! The web pages in a real browser: headless Chromium driven over WebDriver (chromedriver,
//! started here on a loopback port), against a server on `127.0.0.1:0` whose record holds a
//! project's releases and two runs waiting for prod's approval with saved plans and their
//! blast radius reports (written to the record as the runner writes them, without Terraform).
//!
//! A viewer signs in and sees the report but no buttons; an approver signs in, sees the
//! release matrix, opens the run, reads the report, approves with a reason and sees the
//! stage approved; forged POSTs (no session, no or a wrong CSRF token, a viewer's) are refused
//! with 403 and change nothing. A screenshot of each page goes to `target/screenshots/`.
//!
//! Without `/usr/bin/chromium` and `/usr/bin/chromedriver` (scripts/install-chromium.sh) the
//! test says so loudly and passes, unless `SLIPWAY_REQUIRE_CHROMIUM` is set (as `cargo xtask
//! test` sets it), when it fails.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use slipway_server::{RunnerConfig, ServerConfig};
use slipway_store::{
    AnyStore, Artifact, NewRelease, NewRun, NewStackRun, NewUser, Role, StackRunOutcome,
    StackRunStatus, StageRunStatus, Store as _, UnixMillis, UserRecord as _,
};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const REQUIRE_ENV: &str = "SLIPWAY_REQUIRE_CHROMIUM";
const APPROVER_PASSWORD: &str = "ada's long passphrase";
const VIEWER_PASSWORD: &str = "vic's long passphrase";

/// How long any one thing may take to appear.
const DEADLINE: Duration = Duration::from_secs(30);

#[test]
fn people_sign_in_read_the_blast_radius_and_approve_in_a_browser() {
    if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
        if std::env::var_os(REQUIRE_ENV).is_some() {
            panic!(
                "{REQUIRE_ENV} is set but {CHROMIUM} or {CHROMEDRIVER} is missing (run scripts/install-chromium.sh)"
            );
        }
        eprintln!(
            "\n\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
             SKIPPED: the browser tests need {CHROMIUM} and {CHROMEDRIVER}.\n\
             Run scripts/install-chromium.sh, or set {REQUIRE_ENV}=1 to fail instead.\n\
             !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
        );
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let world = runtime.block_on(World::start(dir.path()));
    let driver = Driver::start();
    let result = runtime.block_on(story(&world, &driver));
    runtime.block_on(world.stop());
    drop(driver);
    result.unwrap();
}

/// The server, its record, and the runs in it.
struct World {
    addr: SocketAddr,
    store: AnyStore,
    /// The run the approver approves in the browser.
    run: i64,
    /// The run forged requests try to approve: it must stay waiting.
    other: i64,
    stop: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<()>,
}

impl World {
    async fn start(dir: &Path) -> Self {
        let project = dir.join("project");
        write_project(&project);
        let url = slipway_store::default_url(&dir.join("data"));
        let store = slipway_store::open(&url).await.unwrap();
        for (name, role, password) in [
            ("ada", Role::Approver, APPROVER_PASSWORD),
            ("vic", Role::Viewer, VIEWER_PASSWORD),
        ] {
            store
                .create_user(&NewUser {
                    name: name.to_owned(),
                    role,
                    password_hash: slipway_server::web::hash_password(password).unwrap(),
                    created_by: "test".to_owned(),
                })
                .await
                .unwrap()
                .unwrap();
        }
        let (run, other) = record_runs(&store).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let settings = slipway_runner::Settings {
            actor: "slipway-server".to_owned(),
            store_url: Some(url),
            ..slipway_runner::Settings::default()
        };
        let config = ServerConfig {
            runner: Some(RunnerConfig {
                checkout: project,
                source: None,
                settings,
                poll: None,
            }),
            ..ServerConfig::default()
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(slipway_server::serve(
            listener,
            config,
            store.clone(),
            async {
                let _ = stopped.await;
            },
        ));
        let served = tokio::spawn(async move {
            served.await.unwrap().unwrap();
        });
        Self {
            addr,
            store,
            run,
            other,
            stop,
            served,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(DEADLINE, self.served).await;
    }
}

/// A project of three stacks (network <- database <- app) through dev, test and prod, prod
/// with approval and four eyes.
fn write_project(root: &Path) {
    let files = [
        (
            "slipway.hcl",
            "project {\n  name = \"shop\"\n}\n\nstage \"dev\" {}\n\nstage \"test\" {}\n\n\
             stage \"prod\" {\n  approval  = true\n  four_eyes = true\n}\n",
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
            "stacks/database/stack.hcl",
            "dependency \"network\" {\n  path = \"../network\"\n}\n",
        ),
        (
            "stacks/database/main.tf",
            "output \"url\" { value = \"db\" }\n",
        ),
        (
            "stacks/app/stack.hcl",
            "dependency \"database\" {\n  path = \"../database\"\n}\n",
        ),
        ("stacks/app/main.tf", "output \"url\" { value = \"app\" }\n"),
    ];
    for (path, text) in files {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

/// The blast radius report a plan that replaces a DynamoDB table gets, as the runner keeps
/// it in the stack run's plan summary.
fn plan_summary(stack: &str) -> String {
    let plan = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../slipway-plan/tests/fixtures/replace.tf1.11.json"),
    )
    .unwrap();
    let plan = slipway_plan::parse_plan(&plan).unwrap();
    // The app reads the queue's ARN, which the plan changes.
    let mut links = slipway_plan::StackLinks::default();
    links.consumers.insert(
        (stack.to_owned(), "queue_arn".to_owned()),
        vec![("app".to_owned(), "events_queue".to_owned())],
    );
    links
        .dependents
        .insert(stack.to_owned(), vec!["app".to_owned()]);
    let report = slipway_plan::report::analyze_instance(
        stack,
        "prod",
        &plan,
        &slipway_plan::StatefulTypes::builtin(),
        &links,
        None,
    )
    .unwrap();
    serde_json::json!({
        "counts": {"add": 1, "change": 0, "destroy": 1},
        "sha256": "ab".repeat(32),
        "report": report,
    })
    .to_string()
}

/// Releases of every stack in dev and test (test behind dev for one stack), and two runs
/// that delivered dev and test and wait at prod with a saved plan for `database`.
async fn record_runs(store: &AnyStore) -> (i64, i64) {
    let old = "1111111111111111111111111111111111111111";
    let new = "2222222222222222222222222222222222222222";
    for stack in ["network", "database", "app"] {
        for commit in [old, new] {
            store
                .record_artifact(&Artifact {
                    id: format!("{stack}-{}", &commit[..4]),
                    stack: stack.to_owned(),
                    commit: commit.to_owned(),
                    created_at: UnixMillis::now(),
                    size: 1,
                    manifest: "{}".to_owned(),
                })
                .await
                .unwrap();
        }
    }
    let mut runs = Vec::new();
    for _ in 0..2 {
        let run = store
            .create_run(&NewRun {
                commit: new.to_owned(),
                trigger: "push".to_owned(),
                actor: "carol".to_owned(),
            })
            .await
            .unwrap();
        for stage in ["dev", "test"] {
            let stage_run = store.start_stage_run(run.id, stage).await.unwrap();
            for stack in ["network", "database", "app"] {
                let stack_run = store
                    .add_stack_run(&NewStackRun {
                        run_id: run.id,
                        stage: stage.to_owned(),
                        instance: stage.to_owned(),
                        stack: stack.to_owned(),
                        artifact_id: Some(format!("{stack}-2222")),
                    })
                    .await
                    .unwrap();
                store
                    .finish_stack_run(
                        stack_run.id,
                        &StackRunOutcome {
                            status: StackRunStatus::Succeeded,
                            plan_summary: None,
                            log_path: None,
                            failure_reason: None,
                        },
                    )
                    .await
                    .unwrap();
                // The app in test stays on the old commit: the stages differ.
                let commit = if stage == "test" && stack == "app" {
                    old
                } else {
                    new
                };
                store
                    .record_release(&NewRelease {
                        stage: stage.to_owned(),
                        stack: stack.to_owned(),
                        artifact_id: format!("{stack}-{}", &commit[..4]),
                        commit: commit.to_owned(),
                        released_by: "carol".to_owned(),
                        run_id: Some(run.id),
                        fence: None,
                    })
                    .await
                    .unwrap();
            }
            store
                .set_stage_run_status(stage_run.id, StageRunStatus::Succeeded)
                .await
                .unwrap();
        }
        let prod = store.start_stage_run(run.id, "prod").await.unwrap();
        let saved = store
            .add_stack_run(&NewStackRun {
                run_id: run.id,
                stage: "prod".to_owned(),
                instance: "prod".to_owned(),
                stack: "database".to_owned(),
                artifact_id: Some("database-2222".to_owned()),
            })
            .await
            .unwrap();
        store
            .record_plan(saved.id, &plan_summary("database"))
            .await
            .unwrap();
        store
            .set_stage_run_status(prod.id, StageRunStatus::AwaitingApproval)
            .await
            .unwrap();
        runs.push(run.id);
    }
    (runs[0], runs[1])
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
        let started = Instant::now();
        loop {
            let ready = ureq::get(&driver.url())
                .timeout(Duration::from_secs(2))
                .call()
                .ok()
                .and_then(|r| r.into_json::<serde_json::Value>().ok())
                .is_some_and(|status| status["value"]["ready"] == true);
            if ready {
                return driver;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "chromedriver did not answer on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/status", self.port)
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

type Outcome = Result<(), String>;

fn screenshots() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
        PathBuf::from,
    );
    let dir = target.join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shoot(browser: &Client, name: &str) -> Outcome {
    let png = browser.screenshot().await.map_err(|e| e.to_string())?;
    if !png.starts_with(b"\x89PNG") {
        return Err(format!("the screenshot of {name} is not a PNG"));
    }
    std::fs::write(screenshots().join(format!("{name}.png")), png).map_err(|e| e.to_string())
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
        .map_err(|e| format!("scrolling to {css}: {e}"))
}

/// Waits until the page's text has `text` in it.
async fn wait_for_text(browser: &Client, text: &str) -> Result<String, String> {
    let started = Instant::now();
    loop {
        // A page being replaced by the next one can lose its body between the two calls:
        // that is "not yet", not a failure.
        let body = match browser.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if body.contains(text) {
            return Ok(body);
        }
        if started.elapsed() > DEADLINE {
            return Err(format!("the page never said {text:?}; it says:\n{body}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn sign_in(browser: &Client, world: &World, name: &str, password: &str) -> Outcome {
    let e = |e: fantoccini::error::CmdError| e.to_string();
    browser.goto(&world.url("/")).await.map_err(e)?;
    // Not signed in: the login form.
    let url = browser.current_url().await.map_err(e)?;
    if url.path() != "/login" {
        return Err(format!("not sent to the login form but to {url}"));
    }
    browser
        .find(Locator::Css("#name"))
        .await
        .map_err(e)?
        .send_keys(name)
        .await
        .map_err(e)?;
    browser
        .find(Locator::Css("#password"))
        .await
        .map_err(e)?
        .send_keys(password)
        .await
        .map_err(e)?;
    shoot(browser, &format!("login-{name}")).await?;
    browser
        .find(Locator::Css("#sign-in"))
        .await
        .map_err(e)?
        .click()
        .await
        .map_err(e)?;
    wait_for_text(browser, "Release matrix").await.map(|_| ())
}

async fn sign_out(browser: &Client) -> Outcome {
    let e = |e: fantoccini::error::CmdError| e.to_string();
    browser
        .find(Locator::XPath("//button[normalize-space()='Sign out']"))
        .await
        .map_err(e)?
        .click()
        .await
        .map_err(e)?;
    wait_for_text(browser, "Sign in to slipway")
        .await
        .map(|_| ())
}

async fn story(world: &World, driver: &Driver) -> Outcome {
    let browser = driver.browser().await;
    let told = told_in_browser(world, &browser).await;
    let _ = browser.close().await;
    told?;
    forged_posts_are_refused(world).await?;
    guessing_is_held_up(world)
}

/// Five wrong passwords for a name, and even the right one is refused for a while; other
/// names sign in as before.
fn guessing_is_held_up(world: &World) -> Outcome {
    for n in 0..5 {
        match session_of(world, "vic", "a guess") {
            Err(error) if error.ends_with("answered 401") => {}
            other => return Err(format!("guess {n}: {other:?}")),
        }
    }
    match session_of(world, "vic", VIEWER_PASSWORD) {
        Err(error) if error.ends_with("answered 429") => {}
        other => return Err(format!("the right password after five guesses: {other:?}")),
    }
    session_of(world, "ada", APPROVER_PASSWORD).map(drop)
}

async fn told_in_browser(world: &World, browser: &Client) -> Outcome {
    let e = |e: fantoccini::error::CmdError| e.to_string();
    let run_page = format!("/runs/{}", world.run);

    // A wrong password is refused.
    browser.goto(&world.url("/login")).await.map_err(e)?;
    browser
        .find(Locator::Css("#name"))
        .await
        .map_err(e)?
        .send_keys("ada")
        .await
        .map_err(e)?;
    browser
        .find(Locator::Css("#password"))
        .await
        .map_err(e)?
        .send_keys("not the password")
        .await
        .map_err(e)?;
    browser
        .find(Locator::Css("#sign-in"))
        .await
        .map_err(e)?
        .click()
        .await
        .map_err(e)?;
    wait_for_text(browser, "do not match a user").await?;

    // A viewer reads the report and sees no buttons.
    sign_in(browser, world, "vic", VIEWER_PASSWORD).await?;
    browser.goto(&world.url(&run_page)).await.map_err(e)?;
    let page = wait_for_text(browser, "prod awaits approval").await?;
    if !page.contains("Only an approver of prod") {
        return Err(format!("the viewer is not told why: {page}"));
    }
    for id in ["#approve-prod", "#reject-prod"] {
        if !browser
            .find_all(Locator::Css(id))
            .await
            .map_err(e)?
            .is_empty()
        {
            return Err(format!("a viewer sees {id}"));
        }
    }
    shoot(browser, "run-as-viewer").await?;
    sign_out(browser).await?;

    // The approver: the release matrix.
    sign_in(browser, world, "ada", APPROVER_PASSWORD).await?;
    let matrix = browser
        .find(Locator::Css("#matrix"))
        .await
        .map_err(e)?
        .text()
        .await
        .map_err(e)?;
    for expected in [
        "network",
        "database",
        "app",
        "stages differ",
        "22222222",
        "11111111",
    ] {
        if !matrix.contains(expected) {
            return Err(format!("the matrix lacks {expected:?}: {matrix}"));
        }
    }
    shoot(browser, "matrix").await?;

    // The runs, and the run awaiting approval.
    browser.goto(&world.url("/runs")).await.map_err(e)?;
    wait_for_text(browser, &format!("Run {}", world.run)).await?;
    shoot(browser, "runs").await?;
    browser
        .find(Locator::LinkText(&format!("Run {}", world.run)))
        .await
        .map_err(e)?
        .click()
        .await
        .map_err(e)?;
    wait_for_text(browser, "prod awaits approval").await?;
    let report = browser
        .find(Locator::Css("#report-prod"))
        .await
        .map_err(e)?
        .text()
        .await
        .map_err(e)?;
    for expected in [
        "Blast radius report",
        "Policy verdict",
        "Data-loss risks",
        "aws_dynamodb_table.orders",
        "Downstream reach",
        "queue_arn",
        "events_queue",
    ] {
        if !report.contains(expected) {
            return Err(format!("the report lacks {expected:?}: {report}"));
        }
    }
    let status = browser
        .find(Locator::Css("[data-stage-status='prod']"))
        .await
        .map_err(e)?
        .text()
        .await
        .map_err(e)?;
    if status != "awaiting approval" {
        return Err(format!("prod is {status:?} before the approval"));
    }
    // The page's script follows the run over server-sent events, with the session's cookie.
    wait_for_text(browser, "Following this run live.").await?;
    scroll_to(browser, "#approve-prod").await?;
    shoot(browser, "run-awaiting-approval").await?;

    // Approve with a reason: the button, reached from the keyboard's field.
    browser
        .find(Locator::Css("#approve-reason-prod"))
        .await
        .map_err(e)?
        .send_keys("The table's replacement was announced; backups checked.")
        .await
        .map_err(e)?;
    browser
        .find(Locator::Css("#approve-prod"))
        .await
        .map_err(e)?
        .click()
        .await
        .map_err(e)?;
    let page = wait_for_text(browser, "Approved by ada").await?;
    if !page.contains("backups checked") {
        return Err(format!("the approval's reason is not shown: {page}"));
    }
    if !browser
        .find_all(Locator::Css("#approve-prod"))
        .await
        .map_err(e)?
        .is_empty()
    {
        return Err("the approve button is still there after approving".to_owned());
    }
    scroll_to(browser, "#approved-prod").await?;
    shoot(browser, "run-approved").await?;
    let approvals = world
        .store
        .approvals(world.run)
        .await
        .map_err(|e| e.to_string())?;
    if approvals.len() != 1 || approvals[0].actor != "ada" || approvals[0].stage != "prod" {
        return Err(format!("the record's approvals: {approvals:?}"));
    }

    // The other pages answer and show what the record holds.
    for (path, name, expected) in [
        ("/audit", "audit", "approve"),
        ("/dora", "dora", "Open incidents"),
        ("/graph", "graph", "Stack graph of shop"),
        ("/drills", "drills", "No drills on record"),
        ("/drift", "drift", "No drift checks on record"),
        ("/advise", "advise", "Every stack's measurements"),
    ] {
        browser.goto(&world.url(path)).await.map_err(e)?;
        wait_for_text(browser, expected).await?;
        shoot(browser, name).await?;
    }
    browser.goto(&world.url("/graph")).await.map_err(e)?;
    let graph = browser.source().await.map_err(e)?;
    if !graph.contains("<svg") || graph.matches("class=\"edge\"").count() != 2 {
        return Err(format!("the graph is not two edges of SVG: {graph}"));
    }
    // The advice page draws the advisor's picture and measures every stack; the project
    // is no git repository, and the page says it read no history.
    browser.goto(&world.url("/advise")).await.map_err(e)?;
    let advice = browser.source().await.map_err(e)?;
    for expected in [
        "<svg",
        "not a git repository",
        "<th scope=\"row\">database</th>",
    ] {
        if !advice.contains(expected) {
            return Err(format!("the advice page lacks {expected}: {advice}"));
        }
    }

    // At phone width the pages still fit: nothing wider than the window but the tables'
    // own scrolling boxes.
    browser.set_window_size(390, 844).await.map_err(e)?;
    browser.goto(&world.url(&run_page)).await.map_err(e)?;
    wait_for_text(browser, "Approved by ada").await?;
    let overflow = browser
        .execute(
            "return document.documentElement.scrollWidth > window.innerWidth + 1;",
            vec![],
        )
        .await
        .map_err(e)?;
    if overflow != serde_json::Value::Bool(false) {
        return Err("the run page is wider than a phone".to_owned());
    }
    shoot(browser, "run-phone").await?;
    sign_out(browser).await
}

/// A session made over plain HTTP, as a script would: the cookie and the page's CSRF token.
fn session_of(world: &World, name: &str, password: &str) -> Result<String, String> {
    let agent = ureq::AgentBuilder::new().redirects(0).build();
    let login = agent
        .get(&world.url("/login"))
        .call()
        .map_err(|e| e.to_string())?;
    let cookie = set_cookie(&login, "slipway_login")?;
    let token = hidden_csrf(&login.into_string().map_err(|e| e.to_string())?)?;
    let signed = agent
        .post(&world.url("/login"))
        .set("Cookie", &format!("slipway_login={cookie}"))
        .send_form(&[
            ("name", name),
            ("password", password),
            ("csrf", &token),
            ("next", "/"),
        ]);
    let signed = match signed {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(error) => return Err(error.to_string()),
    };
    if signed.status() != 303 {
        return Err(format!("signing in as {name} answered {}", signed.status()));
    }
    Ok(format!(
        "slipway_session={}",
        set_cookie(&signed, "slipway_session")?
    ))
}

fn set_cookie(response: &ureq::Response, name: &str) -> Result<String, String> {
    let all = response.all("set-cookie");
    let found = all
        .iter()
        .find_map(|c| c.strip_prefix(&format!("{name}=")))
        .ok_or_else(|| format!("no {name} cookie in {all:?}"))?;
    if !found.contains("HttpOnly")
        || !found.contains("SameSite=Strict")
        || !found.contains("Path=/")
    {
        return Err(format!("the {name} cookie lacks its attributes: {found}"));
    }
    if found.contains("Secure") {
        return Err(format!(
            "plain http on loopback gets no Secure cookie: {found}"
        ));
    }
    Ok(found.split(';').next().unwrap_or_default().to_owned())
}

fn hidden_csrf(html: &str) -> Result<String, String> {
    let at = html
        .find("name=\"csrf\" value=\"")
        .ok_or("no CSRF field on the page")?;
    let rest = &html[at + "name=\"csrf\" value=\"".len()..];
    Ok(rest[..rest.find('"').ok_or("an unterminated field")?].to_owned())
}

fn post_form(world: &World, path: &str, cookie: Option<&str>, form: &[(&str, &str)]) -> u16 {
    let mut request = ureq::AgentBuilder::new()
        .redirects(0)
        .build()
        .post(&world.url(path))
        .timeout(DEADLINE);
    if let Some(cookie) = cookie {
        request = request.set("Cookie", cookie);
    }
    match request.send_form(form) {
        Ok(response) => response.status(),
        Err(ureq::Error::Status(status, _)) => status,
        Err(error) => panic!("POST {path}: {error}"),
    }
}

fn page(world: &World, path: &str, cookie: &str) -> Result<String, String> {
    ureq::get(&world.url(path))
        .set("Cookie", cookie)
        .timeout(DEADLINE)
        .call()
        .map_err(|e| e.to_string())?
        .into_string()
        .map_err(|e| e.to_string())
}

/// A forged POST: what is wrong with it, its cookie, its form.
type Forged<'a> = (&'a str, Option<&'a str>, Vec<(&'a str, &'a str)>);

async fn forged_posts_are_refused(world: &World) -> Outcome {
    let approve = format!("/runs/{}/approve", world.other);
    let reason = ("reason", "forged");
    let stage = ("stage", "prod");
    let ada = session_of(world, "ada", APPROVER_PASSWORD)?;
    let vic = session_of(world, "vic", VIEWER_PASSWORD)?;
    let ada_token = hidden_csrf(&page(world, &format!("/runs/{}", world.other), &ada)?)?;
    let vic_token = hidden_csrf(&page(world, &format!("/runs/{}", world.other), &vic)?)?;
    let wrong = "0".repeat(64);
    let forged: [Forged; 5] = [
        (
            "no session",
            None,
            vec![stage, reason, ("csrf", &ada_token)],
        ),
        ("no CSRF token", Some(&ada), vec![stage, reason]),
        (
            "a wrong CSRF token",
            Some(&ada),
            vec![stage, reason, ("csrf", &wrong)],
        ),
        (
            "another session's CSRF token",
            Some(&ada),
            vec![stage, reason, ("csrf", &vic_token)],
        ),
        (
            "a viewer with the right token",
            Some(&vic),
            vec![stage, reason, ("csrf", &vic_token)],
        ),
    ];
    for (what, cookie, form) in &forged {
        let status = post_form(world, &approve, *cookie, form);
        if status != 403 {
            return Err(format!("a POST with {what} answered {status}, not 403"));
        }
    }
    // A logout without the token is refused too, and the session lives on.
    if post_form(world, "/logout", Some(&ada), &[]) != 403 {
        return Err("a logout without a CSRF token was not refused".to_owned());
    }
    page(world, "/runs", &ada)?;
    // A login without the login form's token.
    if post_form(
        world,
        "/login",
        None,
        &[("name", "ada"), ("password", APPROVER_PASSWORD)],
    ) != 403
    {
        return Err("a login without the form's token was not refused".to_owned());
    }
    let approvals = world
        .store
        .approvals(world.other)
        .await
        .map_err(|e| e.to_string())?;
    if !approvals.is_empty() {
        return Err(format!("a forged POST approved: {approvals:?}"));
    }
    let audit = world
        .store
        .audit_log(None, 1000)
        .await
        .map_err(|e| e.to_string())?;
    let refused = audit
        .iter()
        .filter(|entry| entry.action == slipway_store::AuditAction::Refused)
        .count();
    if refused < 4 {
        return Err(format!(
            "the refusals of signed-in people are not all audited: {audit:?}"
        ));
    }
    // The right token of the approver's own session works.
    let status = post_form(
        world,
        &format!("/runs/{}/reject", world.other),
        Some(&ada),
        &[stage, ("reason", "not this one"), ("csrf", &ada_token)],
    );
    if status != 303 {
        return Err(format!("the approver's own rejection answered {status}"));
    }
    // Signing out ends the session in the record.
    if post_form(world, "/logout", Some(&ada), &[("csrf", &ada_token)]) != 303 {
        return Err("signing out failed".to_owned());
    }
    let after = ureq::AgentBuilder::new()
        .redirects(0)
        .build()
        .get(&world.url("/runs"))
        .set("Cookie", &ada)
        .call()
        .map_err(|e| e.to_string())?;
    if after.status() != 303 {
        return Err(format!(
            "an ended session still opens pages: {}",
            after.status()
        ));
    }
    Ok(())
}
