//! The webhook intake over real HTTP on loopback: a server on `127.0.0.1:0` with its record in
//! a temporary SQLite file, fed the payload shapes GitHub and GitLab document (tests/fixtures),
//! signed, forged, replayed, malformed and oversized.

use slipway_server::webhook::github_signature;
use slipway_server::{MAX_BODY, Secret};
use slipway_store::DeliveryStatus;

mod common;
use common::{GITHUB_SECRET, GITLAB_TOKEN, Server, fixture};

#[test]
fn a_signed_push_is_kept_queued_once_and_answered_202() {
    let server = Server::start();
    let push = fixture("github/push.json");
    let (status, answer) = server.github("push", "72d3162e-cc78-11e3-81ab-4c9367dc0958", &push);
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["status"], "queued", "{answer}");
    let kept = server.kept();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].repository, "acme/platform");
    assert_eq!(kept[0].commit, "6113728f27ae82c7b1a177c8d03f9e96e0adf246");
    assert_eq!(kept[0].git_ref, "refs/heads/main");
    assert_eq!(kept[0].status, DeliveryStatus::Queued);

    // Redelivered (same id), or the same push delivered under a new id: one is enough.
    for delivery in [
        "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        "0b7a5c6e-redelivery",
    ] {
        let (status, answer) = server.github("push", delivery, &push);
        assert_eq!(status, 202, "{answer}");
        assert_eq!(answer["status"], "duplicate", "{answer}");
        assert_eq!(
            answer["of"], "github:72d3162e-cc78-11e3-81ab-4c9367dc0958",
            "{answer}"
        );
    }
    assert_eq!(server.kept().len(), 1);
}

#[test]
fn unsigned_forged_or_unconfigured_deliveries_get_401_and_nothing_is_kept() {
    let server = Server::start();
    let push = fixture("github/push.json");
    let wrong = github_signature(&Secret::new("not the secret"), &push);
    let cases: [(&str, Vec<(&str, &str)>); 3] = [
        ("unsigned", vec![]),
        ("wrong secret", vec![("X-Hub-Signature-256", &wrong)]),
        ("malformed", vec![("X-Hub-Signature-256", "sha256=zz")]),
    ];
    for (what, mut headers) in cases {
        headers.push(("X-GitHub-Event", "push"));
        headers.push(("X-GitHub-Delivery", "d-1"));
        let (status, answer) = server.post("/webhooks/github", &headers, &push);
        assert_eq!(status, 401, "{what}: {answer}");
        assert!(answer["error"].is_string(), "{what}: {answer}");
        assert!(!answer.to_string().contains(GITHUB_SECRET));
    }
    // A body changed after signing.
    let signature = github_signature(&Secret::new(GITHUB_SECRET), &push);
    let mut tampered = push.clone();
    let at = tampered.len() / 2;
    tampered[at] ^= 1;
    let (status, _) = server.post(
        "/webhooks/github",
        &[
            ("X-GitHub-Event", "push"),
            ("X-GitHub-Delivery", "d-2"),
            ("X-Hub-Signature-256", &signature),
        ],
        &tampered,
    );
    assert_eq!(status, 401);
    // GitLab: no token, a wrong one.
    for token in [None, Some("guess")] {
        let mut headers = vec![
            ("X-Gitlab-Event", "Push Hook"),
            ("X-Gitlab-Event-UUID", "u-1"),
        ];
        if let Some(token) = token {
            headers.push(("X-Gitlab-Token", token));
        }
        let (status, _) = server.post("/webhooks/gitlab", &headers, &fixture("gitlab/push.json"));
        assert_eq!(status, 401, "{token:?}");
    }
    assert!(server.kept().is_empty());
}

#[test]
fn malformed_oversized_and_unwanted_deliveries_are_answered_and_explained() {
    let server = Server::start();
    // Signed, but not JSON: 400, nothing kept.
    let (status, answer) = server.github("push", "m-1", b"{\"ref\": ");
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .starts_with("the body is not JSON")
    );
    // Larger than the cap: refused before it is read.
    let huge = vec![b' '; MAX_BODY + 1];
    let (status, _) = server.github("push", "m-2", &huge);
    assert_eq!(status, 413);
    // Kept as ignored, with the reason: another repository, a fork, a ping.
    let other = String::from_utf8(fixture("github/push.json"))
        .unwrap()
        .replace("acme/platform", "acme/website");
    let (_, answer) = server.github("push", "m-3", other.as_bytes());
    assert_eq!(answer["status"], "ignored", "{answer}");
    assert_eq!(
        answer["reason"],
        "`acme/website` is not on this server's list of repositories"
    );
    let (_, answer) = server.github(
        "pull_request",
        "m-4",
        &fixture("github/pull_request_fork.json"),
    );
    assert_eq!(answer["status"], "ignored", "{answer}");
    assert_eq!(
        answer["reason"],
        "a pull request from a fork (forks are not allowed)"
    );
    let (_, answer) = server.github(
        "ping",
        "m-5",
        br#"{"zen":"Design for failure.","hook_id":1,"repository":{"full_name":"acme/platform"}}"#,
    );
    assert_eq!(answer["status"], "ignored", "{answer}");
    let kept = server.kept();
    assert_eq!(kept.len(), 3, "{kept:?}");
    assert!(kept.iter().all(|d| d.status == DeliveryStatus::Ignored));
    // GitLab's push and merge request, with the token: queued.
    for (event, file, id) in [
        ("Push Hook", "gitlab/push.json", "u-1"),
        ("Merge Request Hook", "gitlab/merge_request.json", "u-2"),
    ] {
        let (status, answer) = server.post(
            "/webhooks/gitlab",
            &[
                ("X-Gitlab-Event", event),
                ("X-Gitlab-Event-UUID", id),
                ("X-Gitlab-Token", GITLAB_TOKEN),
            ],
            &fixture(file),
        );
        assert_eq!(
            (status, answer["status"].as_str()),
            (202, Some("queued")),
            "{answer}"
        );
    }
    // Health says nothing about the service.
    let health = ureq::get(&server.url("/healthz")).call().unwrap();
    assert_eq!(health.into_string().unwrap(), "ok\n");
}

/// 10,000 forged or replayed deliveries from 20 clients at once: none is kept, none starts
/// anything, and every one is answered.
#[test]
fn a_flood_of_forged_and_replayed_deliveries_keeps_nothing_new() {
    let server = Server::start();
    let push = fixture("github/push.json");
    let (status, _) = server.github("push", "original", &push);
    assert_eq!(status, 202);
    let before = server.kept();
    let signature = github_signature(&Secret::new(GITHUB_SECRET), &push);
    let forged = github_signature(&Secret::new("guessed"), &push);
    let answered: Vec<(u16, u16)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..20)
            .map(|worker| {
                let (server, push, signature, forged) = (&server, &push, &signature, &forged);
                scope.spawn(move || {
                    let (mut refused, mut duplicates) = (0u16, 0u16);
                    for i in 0..500 {
                        let delivery = format!("flood-{worker}-{i}");
                        let (status, answer) = if i % 2 == 0 {
                            server.post(
                                "/webhooks/github",
                                &[
                                    ("X-GitHub-Event", "push"),
                                    ("X-GitHub-Delivery", &delivery),
                                    ("X-Hub-Signature-256", forged),
                                ],
                                push,
                            )
                        } else {
                            // A captured delivery replayed: the right signature, the same push.
                            server.post(
                                "/webhooks/github",
                                &[
                                    ("X-GitHub-Event", "push"),
                                    ("X-GitHub-Delivery", "original"),
                                    ("X-Hub-Signature-256", signature),
                                ],
                                push,
                            )
                        };
                        match status {
                            401 => refused += 1,
                            202 if answer["status"] == "duplicate" => duplicates += 1,
                            other => panic!("unexpected {other}: {answer}"),
                        }
                    }
                    (refused, duplicates)
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let refused: u32 = answered.iter().map(|(r, _)| u32::from(*r)).sum();
    let duplicates: u32 = answered.iter().map(|(_, d)| u32::from(*d)).sum();
    assert_eq!((refused, duplicates), (5_000, 5_000));
    assert_eq!(server.kept(), before, "nothing new was kept");
}
