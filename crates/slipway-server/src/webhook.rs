//! Webhook deliveries: whether they really come from the forge (checked over the raw body,
//! in constant time, before a byte of it is read as JSON), and what they announce. Pure: no
//! I/O, so every refusal is tested here.
//!
//! - GitHub signs the body with HMAC-SHA256 under the webhook's secret and sends
//!   `X-Hub-Signature-256: sha256=<hex>`; the event is `X-GitHub-Event`, the delivery id
//!   `X-GitHub-Delivery`.
//! - GitLab sends the secret token itself in `X-Gitlab-Token`; the event is
//!   `X-Gitlab-Event`, the delivery id `X-Gitlab-Event-UUID`.
//!
//! Which stacks changed is never taken from a payload's file lists: a delivery only names a
//! repository, a ref and a commit, and git answers the rest.

use std::fmt;

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// A webhook secret or token: compared in constant time, never shown.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one header that sends it.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Why a delivery was refused (401): nothing of it is read or kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("this server takes no {0} deliveries: no secret is configured for them")]
    Unconfigured(&'static str),
    #[error("the delivery is not signed")]
    Unsigned,
    #[error("the delivery's signature is malformed")]
    Malformed,
    #[error("the delivery's signature does not match its body")]
    Forged,
}

/// Checks GitHub's `X-Hub-Signature-256` over the raw `body`.
pub fn verify_github(
    secret: Option<&Secret>,
    signature: Option<&str>,
    body: &[u8],
) -> Result<(), Refusal> {
    let secret = secret.ok_or(Refusal::Unconfigured("GitHub"))?;
    let signature = signature.ok_or(Refusal::Unsigned)?;
    let hex = signature
        .strip_prefix("sha256=")
        .ok_or(Refusal::Malformed)?;
    let expected = hex::decode(hex).map_err(|_| Refusal::Malformed)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.0.as_bytes())
        .map_err(|_| Refusal::Unconfigured("GitHub"))?;
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&expected).map_err(|_| Refusal::Forged)
}

/// Checks GitLab's `X-Gitlab-Token` against the configured token.
pub fn verify_gitlab(token: Option<&Secret>, sent: Option<&str>) -> Result<(), Refusal> {
    let token = token.ok_or(Refusal::Unconfigured("GitLab"))?;
    let sent = sent.ok_or(Refusal::Unsigned)?;
    if bool::from(sent.as_bytes().ct_eq(token.0.as_bytes())) {
        Ok(())
    } else {
        Err(Refusal::Forged)
    }
}

/// The signature GitHub would send for `body` under `secret` (for tests and tools that
/// replay deliveries).
pub fn github_signature(secret: &Secret, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.0.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// What a verified delivery is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    /// A commit to run the pipeline for.
    Announced(Announcement),
    /// Kept with the reason, and nothing more.
    Ignored { repository: String, reason: String },
}

/// A commit pushed, or the head of a pull request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    pub repository: String,
    pub git_ref: String,
    pub commit: String,
    /// For a pull request (merge request): its number and whether it comes from a fork.
    pub pull: Option<Pull>,
    /// Who pushed or opened it, as the forge names them (empty when the payload says not).
    pub actor: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pull {
    pub number: i64,
    /// The branch it asks to be merged into (a name, without `refs/heads/`), when the
    /// payload says.
    pub base: Option<String>,
    pub from_fork: bool,
    /// Closed or merged: what is left to do is destroying its preview.
    pub closed: bool,
}

/// A verified body that is not the payload its event promises.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    #[error("the `{event}` payload has no `{field}`")]
    Missing { event: String, field: &'static str },
}

/// Reads a GitHub payload of event `event`.
pub fn parse_github(event: &str, body: &[u8]) -> Result<Delivered, PayloadError> {
    let json = parse_json(body)?;
    let field = Fields { event, json: &json };
    match event {
        "push" => {
            let repository = field.text("/repository/full_name", "repository.full_name")?;
            let commit = field.text("/after", "after")?;
            if json["deleted"] == true || is_zero(&commit) {
                return Ok(ignored(repository, "a branch or tag was deleted"));
            }
            Ok(Delivered::Announced(Announcement {
                repository,
                git_ref: field.text("/ref", "ref")?,
                commit,
                pull: None,
                actor: first_text(&json, &["/pusher/name", "/sender/login"]),
            }))
        }
        "pull_request" => {
            let repository = field.text("/repository/full_name", "repository.full_name")?;
            let action = field.text("/action", "action")?;
            let closed = action == "closed";
            if !closed && !matches!(action.as_str(), "opened" | "synchronize" | "reopened") {
                return Ok(ignored(
                    repository,
                    &format!("pull request action `{action}` starts nothing"),
                ));
            }
            let head_repo = json.pointer("/pull_request/head/repo/full_name");
            let base_repo = json.pointer("/pull_request/base/repo/full_name");
            // A fork that was deleted has no head repository at all: still a fork.
            let from_fork = head_repo.is_none_or(|head| Some(head) != base_repo)
                || json.pointer("/pull_request/head/repo/fork") == Some(&Value::Bool(true));
            Ok(Delivered::Announced(Announcement {
                repository,
                git_ref: field.text("/pull_request/head/ref", "pull_request.head.ref")?,
                commit: field.text("/pull_request/head/sha", "pull_request.head.sha")?,
                pull: Some(Pull {
                    number: field.number("/number", "number")?,
                    base: first_text_opt(&json, &["/pull_request/base/ref"]),
                    from_fork,
                    closed,
                }),
                actor: first_text(&json, &["/sender/login"]),
            }))
        }
        other => Ok(ignored(
            json.pointer("/repository/full_name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            &format!("`{other}` events start nothing"),
        )),
    }
}

/// Reads a GitLab payload of event `event` (`X-Gitlab-Event`).
pub fn parse_gitlab(event: &str, body: &[u8]) -> Result<Delivered, PayloadError> {
    let json = parse_json(body)?;
    let field = Fields { event, json: &json };
    let repository = || {
        field.text(
            "/project/path_with_namespace",
            "project.path_with_namespace",
        )
    };
    match event {
        "Push Hook" => {
            let repository = repository()?;
            let commit = field.text("/after", "after")?;
            if is_zero(&commit) {
                return Ok(ignored(repository, "a branch was deleted"));
            }
            Ok(Delivered::Announced(Announcement {
                repository,
                git_ref: field.text("/ref", "ref")?,
                commit,
                pull: None,
                actor: first_text(&json, &["/user_username", "/user_name"]),
            }))
        }
        "Merge Request Hook" => {
            let repository = repository()?;
            let action = field.text("/object_attributes/action", "object_attributes.action")?;
            let closed = matches!(action.as_str(), "close" | "merge");
            if !closed && !matches!(action.as_str(), "open" | "update" | "reopen") {
                return Ok(ignored(
                    repository,
                    &format!("merge request action `{action}` starts nothing"),
                ));
            }
            let source = json.pointer("/object_attributes/source_project_id");
            let target = json.pointer("/object_attributes/target_project_id");
            Ok(Delivered::Announced(Announcement {
                repository,
                git_ref: field.text(
                    "/object_attributes/source_branch",
                    "object_attributes.source_branch",
                )?,
                commit: field.text(
                    "/object_attributes/last_commit/id",
                    "object_attributes.last_commit.id",
                )?,
                pull: Some(Pull {
                    number: field.number("/object_attributes/iid", "object_attributes.iid")?,
                    base: first_text_opt(&json, &["/object_attributes/target_branch"]),
                    from_fork: source.is_none() || source != target,
                    closed,
                }),
                actor: first_text(&json, &["/user/username", "/user/name"]),
            }))
        }
        other => Ok(ignored(
            repository().unwrap_or_default(),
            &format!("`{other}` events start nothing"),
        )),
    }
}

/// The first of `pointers` that holds non-empty text, if any does.
fn first_text_opt(json: &Value, pointers: &[&str]) -> Option<String> {
    Some(first_text(json, pointers)).filter(|text| !text.is_empty())
}

/// The first of `pointers` that holds non-empty text.
fn first_text(json: &Value, pointers: &[&str]) -> String {
    pointers
        .iter()
        .find_map(|p| {
            json.pointer(p)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_default()
        .to_owned()
}

fn parse_json(body: &[u8]) -> Result<Value, PayloadError> {
    serde_json::from_slice(body).map_err(|e| PayloadError::NotJson(e.to_string()))
}

fn ignored(repository: String, reason: &str) -> Delivered {
    Delivered::Ignored {
        repository,
        reason: reason.to_owned(),
    }
}

/// Git's all-zero object id: the "after" of a deletion.
fn is_zero(commit: &str) -> bool {
    !commit.is_empty() && commit.bytes().all(|b| b == b'0')
}

struct Fields<'a> {
    event: &'a str,
    json: &'a Value,
}

impl Fields<'_> {
    fn missing(&self, field: &'static str) -> PayloadError {
        PayloadError::Missing {
            event: self.event.to_owned(),
            field,
        }
    }

    fn text(&self, pointer: &str, field: &'static str) -> Result<String, PayloadError> {
        self.json
            .pointer(pointer)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| self.missing(field))
    }

    fn number(&self, pointer: &str, field: &'static str) -> Result<i64, PayloadError> {
        self.json
            .pointer(pointer)
            .and_then(Value::as_i64)
            .ok_or_else(|| self.missing(field))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(path: &str) -> Vec<u8> {
        std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures")
                .join(path),
        )
        .unwrap()
    }

    #[test]
    fn a_github_signature_is_checked_over_the_raw_body() {
        let secret = Secret::new("It's a Secret to Everybody");
        // The example of GitHub's documentation ("Validating webhook deliveries").
        let body = b"Hello, World!";
        let signature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(github_signature(&secret, body), signature);
        assert_eq!(verify_github(Some(&secret), Some(signature), body), Ok(()));
        assert_eq!(
            verify_github(Some(&secret), Some(signature), b"Hello, World?"),
            Err(Refusal::Forged)
        );
        let other = Secret::new("another secret");
        assert_eq!(
            verify_github(Some(&other), Some(signature), body),
            Err(Refusal::Forged)
        );
        assert_eq!(
            verify_github(Some(&secret), None, body),
            Err(Refusal::Unsigned)
        );
        for malformed in [
            "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
            "sha1=757107ea",
            "sha256=not-hex",
        ] {
            assert_eq!(
                verify_github(Some(&secret), Some(malformed), body),
                Err(Refusal::Malformed),
                "{malformed}"
            );
        }
        assert_eq!(
            verify_github(None, Some(signature), body),
            Err(Refusal::Unconfigured("GitHub"))
        );
        assert_eq!(format!("{secret:?}"), "Secret(***)");
    }

    #[test]
    fn a_gitlab_token_must_be_the_configured_one() {
        let token = Secret::new("s3cr3t");
        assert_eq!(verify_gitlab(Some(&token), Some("s3cr3t")), Ok(()));
        assert_eq!(
            verify_gitlab(Some(&token), Some("s3cr3T")),
            Err(Refusal::Forged)
        );
        assert_eq!(verify_gitlab(Some(&token), Some("")), Err(Refusal::Forged));
        assert_eq!(verify_gitlab(Some(&token), None), Err(Refusal::Unsigned));
        assert_eq!(
            verify_gitlab(None, Some("s3cr3t")),
            Err(Refusal::Unconfigured("GitLab"))
        );
    }

    #[test]
    fn github_pushes_and_pull_requests_name_a_repository_ref_and_commit() {
        assert_eq!(
            parse_github("push", &fixture("github/push.json")),
            Ok(Delivered::Announced(Announcement {
                repository: "acme/platform".to_owned(),
                git_ref: "refs/heads/main".to_owned(),
                commit: "6113728f27ae82c7b1a177c8d03f9e96e0adf246".to_owned(),
                pull: None,
                actor: "octocat".to_owned(),
            }))
        );
        let Ok(Delivered::Announced(pull)) =
            parse_github("pull_request", &fixture("github/pull_request_fork.json"))
        else {
            panic!("a pull request announces its head");
        };
        assert_eq!(pull.commit, "ec26c3e57ca3a959ca5aad62de7213c562f8c821");
        assert_eq!(
            pull.pull,
            Some(Pull {
                number: 2,
                base: Some("main".to_owned()),
                from_fork: true,
                closed: false,
            })
        );
        assert!(matches!(
            parse_github("ping", br#"{"zen":"Keep it logically awesome.","repository":{"full_name":"acme/platform"}}"#),
            Ok(Delivered::Ignored { ref reason, .. }) if reason == "`ping` events start nothing"
        ));
        let deleted = br#"{"ref":"refs/heads/old","after":"0000000000000000000000000000000000000000","deleted":true,"repository":{"full_name":"acme/platform"}}"#;
        assert!(matches!(
            parse_github("push", deleted),
            Ok(Delivered::Ignored { .. })
        ));
    }

    #[test]
    fn gitlab_pushes_and_merge_requests_name_a_repository_ref_and_commit() {
        assert_eq!(
            parse_gitlab("Push Hook", &fixture("gitlab/push.json")),
            Ok(Delivered::Announced(Announcement {
                repository: "acme/platform".to_owned(),
                git_ref: "refs/heads/main".to_owned(),
                commit: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7".to_owned(),
                pull: None,
                actor: "jsmith".to_owned(),
            }))
        );
        let Ok(Delivered::Announced(merge)) =
            parse_gitlab("Merge Request Hook", &fixture("gitlab/merge_request.json"))
        else {
            panic!("a merge request announces its last commit");
        };
        assert_eq!(merge.commit, "da1560886d4f094c3e6c9ef40349f7d38b5d27d7");
        assert_eq!(merge.actor, "root");
        assert_eq!(
            merge.pull,
            Some(Pull {
                number: 1,
                base: Some("main".to_owned()),
                from_fork: false,
                closed: false,
            })
        );
        let closed = String::from_utf8(fixture("gitlab/merge_request.json"))
            .unwrap()
            .replacen("\"action\": \"open\"", "\"action\": \"merge\"", 1);
        assert!(
            closed.contains("\"merge\""),
            "the fixture's action is `open`"
        );
        let Ok(Delivered::Announced(merged)) =
            parse_gitlab("Merge Request Hook", closed.as_bytes())
        else {
            panic!("a merged merge request announces it");
        };
        assert!(merged.pull.is_some_and(|p| p.closed));
    }

    #[test]
    fn a_closed_pull_request_is_announced_as_closed() {
        let body = br#"{"action":"closed","number":5,"pull_request":{"head":{"ref":"feature","sha":"abc","repo":{"full_name":"acme/platform","fork":false}},"base":{"repo":{"full_name":"acme/platform"}}},"repository":{"full_name":"acme/platform"}}"#;
        let Ok(Delivered::Announced(closed)) = parse_github("pull_request", body) else {
            panic!("a closed pull request announces it");
        };
        assert_eq!(
            closed.pull,
            Some(Pull {
                number: 5,
                base: None,
                from_fork: false,
                closed: true,
            })
        );
        let labeled = String::from_utf8_lossy(body).replace("closed", "labeled");
        assert!(matches!(
            parse_github("pull_request", labeled.as_bytes()),
            Ok(Delivered::Ignored { .. })
        ));
    }

    #[test]
    fn a_payload_that_is_not_what_its_event_promises_is_an_error() {
        assert!(matches!(
            parse_github("push", b"{not json"),
            Err(PayloadError::NotJson(_))
        ));
        assert_eq!(
            parse_github("push", br#"{"ref":"refs/heads/main"}"#),
            Err(PayloadError::Missing {
                event: "push".to_owned(),
                field: "repository.full_name"
            })
        );
        assert_eq!(
            parse_gitlab("Push Hook", br#"{"project":{"path_with_namespace":"a/b"}}"#),
            Err(PayloadError::Missing {
                event: "Push Hook".to_owned(),
                field: "after"
            })
        );
    }
}
