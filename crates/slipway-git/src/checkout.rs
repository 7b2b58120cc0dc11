//! The working copy a server delivers from: fetched from where the team pushes, and moved
//! to the commit a job names. Only the server's own working copy is ever moved; a person's
//! is never touched.

use crate::error::GitError;
use crate::repo::{Repo, failed};

/// Who made a commit, as git records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Author {
    pub name: String,
    pub email: String,
}

impl Repo {
    /// Fetches every branch of `source` (a URL or path) into `refs/remotes/slipway-source/`,
    /// so that any commit pushed there can be checked out.
    pub fn fetch_from(&self, source: &str) -> Result<(), GitError> {
        let output = self.run([
            "-c",
            "advice.detachedHead=false",
            "fetch",
            "--quiet",
            "--no-tags",
            "--prune",
            source,
            "+refs/heads/*:refs/remotes/slipway-source/*",
        ])?;
        if !output.status.success() {
            return Err(failed("git fetch", &output));
        }
        Ok(())
    }

    /// Fetches the head of pull request (merge request) `number` as the forge keeps it in
    /// the repository the request targets: `refs/pull/N/head` on GitHub,
    /// `refs/merge-requests/N/head` on GitLab. A head pushed to a fork exists there and in
    /// no branch of `source`. Fails when `source` has neither.
    pub fn fetch_pull_request_head(&self, source: &str, number: u64) -> Result<(), GitError> {
        let mut last = None;
        for forge_ref in [
            format!("refs/pull/{number}/head"),
            format!("refs/merge-requests/{number}/head"),
        ] {
            let refspec = format!("+{forge_ref}:refs/remotes/slipway-source/{forge_ref}");
            let output = self.run(["fetch", "--quiet", "--no-tags", source, refspec.as_str()])?;
            if output.status.success() {
                return Ok(());
            }
            last = Some(failed("git fetch", &output));
        }
        Err(last.unwrap_or_else(|| GitError::BadOutput {
            command: "git fetch".into(),
            detail: "no ref was tried".into(),
        }))
    }

    /// Moves the working copy to `commit` (detached). Refuses when tracked files were
    /// changed by hand (git's own check), rather than losing those changes.
    pub fn check_out(&self, commit: &str) -> Result<(), GitError> {
        let output = self.run([
            "-c",
            "advice.detachedHead=false",
            "checkout",
            "--quiet",
            "--detach",
            commit,
        ])?;
        if !output.status.success() {
            return Err(failed("git checkout --detach", &output));
        }
        Ok(())
    }

    /// Whether no tracked file differs from the checked-out commit (untracked files, such
    /// as slipway's own data folder, do not count).
    pub fn is_clean(&self) -> Result<bool, GitError> {
        let output = self.run(["status", "--porcelain", "--untracked-files=no"])?;
        if !output.status.success() {
            return Err(failed("git status --porcelain", &output));
        }
        Ok(output.stdout.iter().all(u8::is_ascii_whitespace))
    }

    /// The author of `commit`.
    pub fn author(&self, commit: &str) -> Result<Author, GitError> {
        let output = self.run(["show", "-s", "--format=%an%x00%ae", commit, "--"])?;
        if !output.status.success() {
            return Err(failed("git show -s", &output));
        }
        let text = String::from_utf8_lossy(&output.stdout);
        let (name, email) =
            text.trim_end()
                .split_once('\0')
                .ok_or_else(|| GitError::BadOutput {
                    command: "git show -s --format=%an%x00%ae".into(),
                    detail: text.trim().to_owned(),
                })?;
        Ok(Author {
            name: name.to_owned(),
            email: email.to_owned(),
        })
    }
}
