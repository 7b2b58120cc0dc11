//! The forges' REST APIs, the few calls the pull request work makes: post a comment on a
//! pull request (merge request) and update it in place.
//!
//! - GitHub: `POST /repos/{owner}/{repo}/issues/{n}/comments`, then
//!   `PATCH /repos/{owner}/{repo}/issues/comments/{id}`, with `Authorization: Bearer TOKEN`.
//! - GitLab: `POST /projects/{id}/merge_requests/{iid}/notes`, then
//!   `PUT /projects/{id}/merge_requests/{iid}/notes/{note_id}`, with `PRIVATE-TOKEN: TOKEN`
//!   (`{id}` is the project's path, URL-encoded).
//!
//! The token goes in a header only: never in a URL, an error or a log line.

use std::fmt;
use std::time::Duration;

use serde_json::{Value, json};

use crate::webhook::Secret;

/// Where a forge's API is and the token that may comment through it.
#[derive(Clone)]
pub struct ForgeAccess {
    /// The API's base URL (`https://api.github.com`, `https://gitlab.com/api/v4`).
    pub api_url: String,
    pub token: Secret,
}

impl fmt::Debug for ForgeAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForgeAccess")
            .field("api_url", &self.api_url)
            .field("token", &self.token)
            .finish()
    }
}

/// GitHub's API, unless told otherwise.
pub const GITHUB_API: &str = "https://api.github.com";
/// GitLab.com's API, unless told otherwise.
pub const GITLAB_API: &str = "https://gitlab.com/api/v4";

/// Which forge a pull request lives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Forge {
    GitHub,
    GitLab,
}

impl Forge {
    pub fn from_provider(provider: &str) -> Option<Self> {
        match provider {
            "github" => Some(Self::GitHub),
            "gitlab" => Some(Self::GitLab),
            _ => None,
        }
    }
}

/// Why a comment could not be posted or updated (never with the token).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ForgeError {
    #[error("{what}: {source}")]
    Request {
        what: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{what}: the forge answered {status}: {message}")]
    Refused {
        what: String,
        status: u16,
        message: String,
    },
    #[error("{what}: the forge's answer has no comment id")]
    NoId { what: String },
}

/// A client of one forge's API.
pub(crate) struct Client {
    forge: Forge,
    access: ForgeAccess,
    http: reqwest::Client,
}

impl Client {
    pub fn new(forge: Forge, access: ForgeAccess) -> Result<Self, ForgeError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("slipway/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| ForgeError::Request {
                what: "cannot make an HTTP client".to_owned(),
                source,
            })?;
        Ok(Self {
            forge,
            access,
            http,
        })
    }

    /// Posts `body` on pull request `number` of `repository`, or updates comment
    /// `existing` when there is one (posting anew if it was deleted); returns the id of the
    /// comment that holds `body` now.
    pub async fn upsert_comment(
        &self,
        repository: &str,
        number: i64,
        existing: Option<&str>,
        body: &str,
    ) -> Result<String, ForgeError> {
        if let Some(id) = existing {
            match self.update(repository, number, id, body).await {
                Ok(()) => return Ok(id.to_owned()),
                // Deleted by someone: a new one takes its place.
                Err(ForgeError::Refused { status: 404, .. }) => {}
                Err(error) => return Err(error),
            }
        }
        self.post(repository, number, body).await
    }

    fn base(&self) -> &str {
        self.access.api_url.trim_end_matches('/')
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let token = self.access.token.expose();
        match self.forge {
            Forge::GitHub => request
                .bearer_auth(token)
                .header("Accept", "application/vnd.github+json")
                .header("X-GitHub-Api-Version", "2022-11-28"),
            Forge::GitLab => request.header("PRIVATE-TOKEN", token),
        }
    }

    async fn post(&self, repository: &str, number: i64, body: &str) -> Result<String, ForgeError> {
        let (url, what) = match self.forge {
            Forge::GitHub => (
                format!(
                    "{}/repos/{repository}/issues/{number}/comments",
                    self.base()
                ),
                format!("cannot comment on {repository}#{number}"),
            ),
            Forge::GitLab => (
                format!(
                    "{}/projects/{}/merge_requests/{number}/notes",
                    self.base(),
                    encode_path(repository)
                ),
                format!("cannot comment on {repository}!{number}"),
            ),
        };
        let answer = self
            .send(&what, self.http.post(&url).json(&json!({ "body": body })))
            .await?;
        match answer.get("id") {
            Some(Value::Number(id)) => Ok(id.to_string()),
            Some(Value::String(id)) => Ok(id.clone()),
            _ => Err(ForgeError::NoId { what }),
        }
    }

    async fn update(
        &self,
        repository: &str,
        number: i64,
        id: &str,
        body: &str,
    ) -> Result<(), ForgeError> {
        let request = match self.forge {
            Forge::GitHub => self.http.patch(format!(
                "{}/repos/{repository}/issues/comments/{id}",
                self.base()
            )),
            Forge::GitLab => self.http.put(format!(
                "{}/projects/{}/merge_requests/{number}/notes/{id}",
                self.base(),
                encode_path(repository)
            )),
        };
        let what = format!("cannot update comment {id} on {repository} ({number})");
        self.send(&what, request.json(&json!({ "body": body })))
            .await
            .map(|_| ())
    }

    async fn send(
        &self,
        what: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Value, ForgeError> {
        let response =
            self.authorized(request)
                .send()
                .await
                .map_err(|source| ForgeError::Request {
                    what: what.to_owned(),
                    source: source.without_url(),
                })?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            let message = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_default();
            return Err(ForgeError::Refused {
                what: what.to_owned(),
                status: status.as_u16(),
                message: self.redact(&message),
            });
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A forge's message with the token taken out, should it ever echo it.
    fn redact(&self, text: &str) -> String {
        let token = self.access.token.expose();
        if token.is_empty() {
            text.to_owned()
        } else {
            text.replace(token, "***")
        }
    }
}

/// `group/sub/project` as GitLab's API names a project in a path: URL-encoded.
fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for byte in path.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gitlab_project_paths_are_encoded() {
        assert_eq!(
            encode_path("acme/infra/platform"),
            "acme%2Finfra%2Fplatform"
        );
    }

    #[test]
    fn access_never_shows_its_token() {
        let access = ForgeAccess {
            api_url: GITHUB_API.to_owned(),
            token: Secret::new("ghp_secret"),
        };
        assert!(!format!("{access:?}").contains("ghp_secret"));
    }
}
