//! `slipway serve` as a user starts it: in a project, on loopback, with the webhook secret in
//! its environment; stopped by SIGTERM after finishing what it was doing.

use std::io::{BufRead as _, BufReader};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use slipway_server::Secret;
use slipway_server::webhook::github_signature;
use slipway_store::{DeliveryStatus, Store as _};

use crate::common::{fixture, slipway_process, with_record};

#[test]
fn serve_keeps_a_signed_push_and_stops_on_sigterm() {
    let project = fixture("chain");
    let dir = project.path();
    let secret = "a webhook secret";
    let mut server = slipway_process(dir, &[])
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--allow-repo",
            "acme/platform",
        ])
        .env("SLIPWAY_GITHUB_WEBHOOK_SECRET", secret)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(server.stderr.take().unwrap());
    let mut line = String::new();
    let address = loop {
        line.clear();
        assert_ne!(stderr.read_line(&mut line).unwrap(), 0, "serve ended early");
        if let Some(rest) = line
            .trim()
            .strip_prefix("slipway serve: listening on http://")
        {
            break rest.to_owned();
        }
    };
    assert!(address.starts_with("127.0.0.1:"), "{address}");

    let body = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../slipway-server/tests/fixtures/github/push.json"),
    )
    .unwrap();
    let response = ureq::post(&format!("http://{address}/webhooks/github"))
        .timeout(Duration::from_secs(30))
        .set("X-GitHub-Event", "push")
        .set("X-GitHub-Delivery", "cli-1")
        .set(
            "X-Hub-Signature-256",
            &github_signature(&Secret::new(secret), &body),
        )
        .send_bytes(&body)
        .unwrap();
    assert_eq!(response.status(), 202);

    kill(Pid::from_raw(server.id() as i32), Signal::SIGTERM).unwrap();
    let status = server.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert!(status.success(), "{status}: {rest}");
    assert!(rest.contains("slipway serve: stopped"), "{rest}");
    assert!(
        !rest.contains(secret),
        "the secret never reaches the log: {rest}"
    );

    let kept = with_record(
        dir,
        |store| async move { store.deliveries(10).await.unwrap() },
    );
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0].id, "github:cli-1");
    assert_eq!(kept[0].status, DeliveryStatus::Queued);
}
