//! `slipway init`: a walking skeleton in an empty or new repository (a project with a first
//! stage, one stack, a `.gitignore` and CI files), or `--adopt`: `stack.hcl` files for the
//! root modules an existing repository already holds, with dependencies inferred from
//! `terraform_remote_state`.
//!
//! Runs without a project: it is the command that makes one.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use slipway_advisor::adopt::{self, Folder};
use slipway_advisor::code::TfFile;
use slipway_core::config::{PROJECT_FILE, STACK_FILE};

use super::ExitStatus;
use crate::project::walk_sources;
use clap::{Args, ValueEnum};

/// Which cloud the walking skeleton's first stack uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Cloud {
    /// Amazon Web Services (provider `hashicorp/aws`): a VPC.
    Aws,
    /// Google Cloud (provider `hashicorp/google`): a VPC network.
    Gcp,
    /// No provider: a stack with an output only.
    None,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The cloud of the first stack.
    #[arg(long, value_enum, default_value_t = Cloud::Aws, conflicts_with = "adopt")]
    pub cloud: Cloud,
    /// Adopt existing Terraform: write a stack.hcl for every root module found, with
    /// dependencies inferred from `terraform_remote_state`.
    #[arg(long)]
    pub adopt: bool,
    /// Replace files that already exist.
    #[arg(long)]
    pub force: bool,
}

/// A file to write, relative to the target folder.
pub(crate) struct Planned {
    pub path: PathBuf,
    pub contents: String,
}

pub fn run(project_dir: Option<&Path>, args: &InitArgs) -> Result<ExitStatus> {
    let cwd = std::env::current_dir().context("cannot read the current folder")?;
    let root = match project_dir {
        Some(dir) if dir.is_absolute() => dir.to_path_buf(),
        Some(dir) => cwd.join(dir),
        None => cwd,
    };
    std::fs::create_dir_all(&root).with_context(|| format!("cannot create {}", root.display()))?;
    if args.adopt {
        return run_adopt(&root, args.force);
    }
    let name = project_name(&root);
    let files = skeleton(&name, args.cloud);
    write_all(&root, &files, args.force)?;
    if args.cloud == Cloud::Aws {
        eprintln!(
            "next: `slipway stacks`, then `slipway bootstrap --stage dev` (creates the state bucket and lock table named in slipway.hcl) and `slipway apply --stage dev`; add stacks with `slipway new stack NAME`\n  CI: set the secrets the workflow files name (docs/ci.md)"
        );
    } else {
        eprintln!(
            "next: `slipway stacks`, then `slipway apply --stage dev`; add stacks with `slipway new stack NAME`\n  CI: state stays in .slipway/ until the `state` block in slipway.hcl is in use (docs/ci.md)"
        );
    }
    Ok(ExitStatus::Success)
}

/// The project's name: the folder's name, made a valid name.
fn project_name(root: &Path) -> String {
    let raw = root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    if name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        name
    } else {
        format!("project-{name}")
    }
}

/// Writes `files` under `root`; refuses (writing nothing) when one exists and `force` is
/// off, so a half-written skeleton never happens. Lists what it wrote on stdout.
pub(crate) fn write_all(root: &Path, files: &[Planned], force: bool) -> Result<()> {
    if !force {
        let existing: Vec<String> = files
            .iter()
            .filter(|f| root.join(&f.path).exists())
            .map(|f| f.path.display().to_string())
            .collect();
        if !existing.is_empty() {
            bail!(
                "{} already exist{}: {}\n  help: slipway never overwrites a file; move them away, or pass --force to replace them",
                if existing.len() == 1 {
                    "a file"
                } else {
                    "files"
                },
                if existing.len() == 1 { "s" } else { "" },
                existing.join(", ")
            );
        }
    }
    for file in files {
        let path = root.join(&file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, &file.contents)
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("wrote {}", file.path.display());
    }
    Ok(())
}

fn skeleton(name: &str, cloud: Cloud) -> Vec<Planned> {
    let stack = match cloud {
        Cloud::Aws | Cloud::Gcp => "network",
        Cloud::None => "hello",
    };
    let mut files = vec![
        Planned {
            path: PROJECT_FILE.into(),
            contents: project_file(name, cloud),
        },
        Planned {
            path: format!("stacks/{stack}/{STACK_FILE}").into(),
            contents: STACK_HCL.to_owned(),
        },
        Planned {
            path: format!("stacks/{stack}/main.tf").into(),
            contents: main_tf(name, cloud),
        },
        Planned {
            path: ".gitignore".into(),
            contents: GITIGNORE.to_owned(),
        },
        Planned {
            path: ".github/workflows/slipway.yml".into(),
            contents: GITHUB_WORKFLOW.to_owned(),
        },
        Planned {
            path: ".gitlab-ci.yml".into(),
            contents: GITLAB_CI.to_owned(),
        },
    ];
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files
}

fn project_file(name: &str, cloud: Cloud) -> String {
    let mut text = format!(
        r#"# The project: its stages in pipeline order, and what every stack's working copy gets.
# See docs/configuration.md.

project {{
  name   = "{name}"
  engine = "terraform" # or "tofu"
}}
"#
    );
    let provider = match cloud {
        Cloud::Aws => Some(
            r#"provider "aws" {
      region = "us-east-1"
    }"#,
        ),
        Cloud::Gcp => Some(
            r#"provider "google" {
      project = "my-project-id" # your Google Cloud project
      region  = "europe-west1"
    }"#,
        ),
        Cloud::None => None,
    };
    if let Some(provider) = provider {
        let _ = write!(
            text,
            r#"
# The provider configuration, written into every stack's working copy before `init`, so
# stacks stay free of account details. A stage can replace it with its own
# `generate "provider"` block.
generate "provider" {{
  path     = "slipway_provider.tf"
  contents = <<-EOT
    {provider}
  EOT
}}
"#
        );
    }
    text.push_str(&shared_settings(name, cloud));
    text.push_str(
        r#"
# The walking skeleton's first stage. Every commit flows through the stages in the order
# they are written here.
stage "dev" {
  variables = { env = "dev" }
}

# The next stages, once dev works end to end:
#
# stage "test" {
#   variables = { env = "test" }
# }
#
# stage "prod" {
#   variables = { env = "prod" }
#   approval  = true
# }
"#,
    );
    text
}

/// Remote state, the shared record and the artifact store: what makes the skeleton work on
/// CI runners, each job of which starts from a fresh clone.
fn shared_settings(name: &str, cloud: Cloud) -> String {
    let state = format!(
        r#"state {{
  backend        = "s3"
  bucket         = "{name}-terraform-state" # bucket names are global: make it yours
  region         = "us-east-1"
  dynamodb_table = "{name}-terraform-locks"
}}"#
    );
    let state = match cloud {
        Cloud::Aws => format!(
            r#"
# State in S3 with a DynamoDB lock table, so every CI job (and every laptop) works on the
# same state. `slipway bootstrap --stage dev` creates both once (the bucket versioned).
{state}
"#
        ),
        // Only Terraform's S3 backend is supported for now: without it, slipway keeps state
        // in the data folder, and refuses to apply in CI (CI=true) where it would be lost.
        Cloud::Gcp | Cloud::None => format!(
            r#"
# State in S3 with a DynamoDB lock table (the one remote backend slipway supports so far).
# Until this block is in use, state stays in .slipway/ and slipway refuses to apply in CI,
# where each job starts from a fresh clone. `slipway bootstrap --stage dev` creates both.
{}
"#,
            state
                .lines()
                .map(|l| format!("# {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        ),
    };
    format!(
        r#"{state}
# The run record (runs, releases, approvals, the audit log), shared by every CI job: a
# PostgreSQL URL from the CI secret SLIPWAY_STORE_URL. Unset (as on a laptop): an SQLite
# file in .slipway/.
store {{
  url = env("SLIPWAY_STORE_URL", "")
}}

# Where artifacts, and plans waiting for an approval, are kept: `s3://BUCKET/PREFIX` from
# the CI secret SLIPWAY_ARTIFACTS_URL (`slipway bootstrap` creates the bucket). Unset:
# .slipway/artifacts.
artifacts {{
  url = env("SLIPWAY_ARTIFACTS_URL", "")
}}
"#
    )
}

const STACK_HCL: &str = r#"# A stack: this folder is a Terraform root module with one state per stage.
# Add `team` and `capability` so `slipway advise` and `slipway stacks` can tell who owns it.
stack {
  # team       = "platform"
  # capability = "networking"
}
"#;

fn main_tf(project: &str, cloud: Cloud) -> String {
    let variable = r#"variable "env" {
  description = "The stage this instance belongs to (from the stage's variables)."
  type        = string
}
"#;
    match cloud {
        Cloud::Aws => format!(
            r#"terraform {{
  required_providers {{
    aws = {{
      source  = "hashicorp/aws"
      version = ">= 3.39"
    }}
  }}
}}

{variable}
resource "aws_vpc" "main" {{
  cidr_block = "10.0.0.0/16"
  tags = {{
    Name    = "{project}-${{var.env}}"
    project = "{project}"
    env     = var.env
  }}
}}

output "vpc_id" {{
  value = aws_vpc.main.id
}}
"#
        ),
        Cloud::Gcp => format!(
            r#"terraform {{
  required_providers {{
    google = {{
      source = "hashicorp/google"
    }}
  }}
}}

{variable}
resource "google_compute_network" "main" {{
  name                    = "{project}-${{var.env}}"
  auto_create_subnetworks = false
}}

output "network_id" {{
  value = google_compute_network.main.id
}}
"#
        ),
        Cloud::None => format!(
            r#"{variable}
output "greeting" {{
  value = "hello from {project} in ${{var.env}}"
}}
"#
        ),
    }
}

const GITIGNORE: &str = r#"# slipway's data folder: local state, logs, working copies, the run record.
.slipway/
# Terraform's own working files. Keep .terraform.lock.hcl committed: artifacts include it.
.terraform/
*.tfstate
*.tfstate.*
*.tfplan
crash.log
"#;

const GITHUB_WORKFLOW: &str = r#"# slipway's pipeline on GitHub Actions: a plan report on every pull request, the pipeline
# (every affected stack through every stage) on the main branch, and approvals of a run
# waiting at a stage with `approval = true` (Actions > slipway > Run workflow).
#
# Every job starts from a fresh clone, so what slipway keeps must live outside the runner
# (slipway refuses to apply in CI otherwise). Repository secrets:
#   SLIPWAY_STORE_URL      the shared run record: postgres://USER:PASSWORD@HOST:5432/DATABASE
#   SLIPWAY_ARTIFACTS_URL  artifacts and plans waiting for approval: s3://BUCKET/slipway
#   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
#                          for the state bucket, the lock table, the artifact bucket and your
#                          stacks (or drop them below and add a step with
#                          aws-actions/configure-aws-credentials, for short-lived OIDC ones)
# The state bucket and lock table are named in slipway.hcl (`state` block).
name: slipway

on:
  pull_request:
  push:
    branches: [main]
  workflow_dispatch:
    inputs:
      run:
        description: "The slipway run waiting for approval (its number)"
        required: true
      stage:
        description: "The stage to approve"
        default: prod
      reason:
        description: "Why it may be applied (kept in the audit log)"
        required: true

env:
  SLIPWAY_STORE_URL: ${{ secrets.SLIPWAY_STORE_URL }}
  SLIPWAY_ARTIFACTS_URL: ${{ secrets.SLIPWAY_ARTIFACTS_URL }}
  AWS_ACCESS_KEY_ID: ${{ secrets.AWS_ACCESS_KEY_ID }}
  AWS_SECRET_ACCESS_KEY: ${{ secrets.AWS_SECRET_ACCESS_KEY }}
  AWS_REGION: us-east-1

jobs:
  plan:
    if: github.event_name == 'pull_request'
    runs-on: ubuntu-latest
    permissions:
      contents: read
      pull-requests: write
    steps:
      - uses: actions/checkout@v4
        with:
          fetch-depth: 0 # change detection compares commits
      - uses: hashicorp/setup-terraform@v3
        with:
          terraform_wrapper: false
      - name: Install slipway
        run: cargo install --locked slipway
      - name: Plan
        # Exit code 2 means "changes pending", which is what a pull request is for.
        run: slipway plan --stage dev --format markdown > plan.md || test $? -eq 2
      - name: Report
        env:
          GH_TOKEN: ${{ github.token }}
        run: |
          cat plan.md >> "$GITHUB_STEP_SUMMARY"
          gh pr comment "${{ github.event.pull_request.number }}" --body-file plan.md

  run:
    if: github.event_name == 'push'
    runs-on: ubuntu-latest
    # One pipeline run at a time: stages are long-lived and shared.
    concurrency: slipway-main
    steps:
      - uses: actions/checkout@v4
        with:
          fetch-depth: 0
      - uses: hashicorp/setup-terraform@v3
        with:
          terraform_wrapper: false
      - name: Install slipway
        run: cargo install --locked slipway
      - name: Create the state bucket, lock table and artifact bucket (once; then a no-op)
        run: slipway bootstrap --stage dev
      - name: Run the pipeline
        run: slipway run

  approve:
    if: github.event_name == 'workflow_dispatch'
    runs-on: ubuntu-latest
    concurrency: slipway-main
    # Protect this environment with required reviewers to say who may approve.
    environment: slipway-approvals
    steps:
      - uses: actions/checkout@v4
        with:
          fetch-depth: 0
      - uses: hashicorp/setup-terraform@v3
        with:
          terraform_wrapper: false
      - name: Install slipway
        run: cargo install --locked slipway
      - name: Approve and resume
        env:
          RUN: ${{ inputs.run }}
          STAGE: ${{ inputs.stage }}
          REASON: ${{ inputs.reason }}
          SLIPWAY_ACTOR: ${{ github.actor }}
        run: |
          slipway approve "$RUN" --stage "$STAGE" --reason "$REASON"
          slipway resume "$RUN"
"#;

const GITLAB_CI: &str = r#"# slipway's pipeline on GitLab CI: a plan report on every merge request, the pipeline
# (every affected stack through every stage) on the default branch, and approvals of a run
# waiting at a stage with `approval = true` (Build > Pipelines > Run pipeline, with the
# variables SLIPWAY_APPROVE_RUN, SLIPWAY_APPROVE_STAGE and SLIPWAY_APPROVE_REASON).
#
# Every job starts from a fresh clone, so what slipway keeps must live outside the runner
# (slipway refuses to apply in CI otherwise). CI/CD variables (masked, protected):
#   SLIPWAY_STORE_URL      the shared run record: postgres://USER:PASSWORD@HOST:5432/DATABASE
#   SLIPWAY_ARTIFACTS_URL  artifacts and plans waiting for approval: s3://BUCKET/slipway
#   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
#                          for the state bucket, the lock table, the artifact bucket and your
#                          stacks
# slipway reads them from the job's environment; the state bucket and lock table are named
# in slipway.hcl (`state` block).
stages:
  - plan
  - deliver

variables:
  GIT_DEPTH: "0" # change detection compares commits
  AWS_REGION: us-east-1

default:
  before_script:
    - cargo install --locked slipway

plan:
  stage: plan
  rules:
    - if: $CI_PIPELINE_SOURCE == "merge_request_event"
  script:
    # Exit code 2 means "changes pending", which is what a merge request is for.
    - slipway plan --stage dev --format markdown > plan.md || test $? -eq 2
  artifacts:
    paths:
      - plan.md

run:
  stage: deliver
  rules:
    - if: $CI_PIPELINE_SOURCE == "web"
      when: never
    - if: $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH
  # One pipeline run at a time: stages are long-lived and shared.
  resource_group: slipway
  script:
    # Creates the state bucket, lock table and artifact bucket once; then a no-op.
    - slipway bootstrap --stage dev
    - slipway run

approve:
  stage: deliver
  rules:
    - if: $CI_PIPELINE_SOURCE == "web" && $SLIPWAY_APPROVE_RUN
  resource_group: slipway
  variables:
    SLIPWAY_ACTOR: $GITLAB_USER_LOGIN
  script:
    - slipway approve "$SLIPWAY_APPROVE_RUN" --stage "${SLIPWAY_APPROVE_STAGE:-prod}" --reason "$SLIPWAY_APPROVE_REASON"
    - slipway resume "$SLIPWAY_APPROVE_RUN"
"#;

fn run_adopt(root: &Path, force: bool) -> Result<ExitStatus> {
    let folders = read_folders(root)?;
    let adoption = adopt::adopt(&folders);
    if adoption.stacks.is_empty() {
        bail!(
            "no root modules found below {}\n  help: adoption looks for folders whose .tf files configure a `provider` or a `terraform {{ backend }}`; use `slipway init` for a new project",
            root.display()
        );
    }
    let by_dir: std::collections::BTreeMap<&str, &str> = adoption
        .stacks
        .iter()
        .map(|s| (s.dir.as_str(), s.name.as_str()))
        .collect();
    let mut files = Vec::new();
    if !root.join(PROJECT_FILE).exists() {
        files.push(Planned {
            path: PROJECT_FILE.into(),
            contents: project_file(&project_name(root), Cloud::None),
        });
    }
    for stack in adoption.stacks.iter().filter(|s| !s.existing) {
        let mut text = String::from(
            "# Adopted by `slipway init --adopt`. Add `team` and `capability`.\nstack {\n",
        );
        if stack.needs_name {
            let _ = writeln!(text, "  name = \"{}\"", stack.name);
        }
        text.push_str("}\n");
        for dep in &stack.dependencies {
            let _ = write!(
                text,
                "\n# Inferred: this stack reads {0}'s state through terraform_remote_state.\ndependency \"{0}\" {{\n  path = \"{1}\"\n}}\n",
                by_dir.get(dep.as_str()).copied().unwrap_or(dep),
                relative(&stack.dir, dep)
            );
        }
        let dir = Path::new(&stack.dir);
        files.push(Planned {
            path: dir.join(STACK_FILE),
            contents: text,
        });
    }
    write_all(root, &files, force)?;
    for stack in adoption.stacks.iter().filter(|s| s.existing) {
        eprintln!("kept {}/{STACK_FILE}: it already exists", stack.dir);
    }
    if !adoption.unresolved.is_empty() {
        eprintln!("could not infer:");
        for line in &adoption.unresolved {
            eprintln!("  - {line}");
        }
    }
    eprintln!("next: `slipway stacks` shows the stacks and their dependencies");
    Ok(ExitStatus::Success)
}

/// The path from folder `from` to folder `to`, both relative to the root.
pub(crate) fn relative(from: &str, to: &str) -> String {
    let from: Vec<&str> = from.split('/').filter(|p| !p.is_empty()).collect();
    let to: Vec<&str> = to.split('/').filter(|p| !p.is_empty()).collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<&str> = vec![".."; from.len() - common];
    parts.extend(&to[common..]);
    if parts.first() != Some(&"..") {
        parts.insert(0, ".");
    }
    parts.join("/")
}

/// Every folder below `root` holding `.tf` files, skipping `.git`, `.terraform` and
/// slipway's data folder.
fn read_folders(root: &Path) -> Result<Vec<Folder>> {
    let mut folders: std::collections::BTreeMap<String, Folder> = Default::default();
    for entry in walk_sources(root) {
        let entry = entry.with_context(|| format!("cannot walk {}", root.display()))?;
        if !entry.file_type().is_file() || entry.path().extension().is_none_or(|e| e != "tf") {
            continue;
        }
        let dir = entry.path().parent().unwrap_or(root);
        let rel_dir = slash(dir.strip_prefix(root).unwrap_or(dir));
        let rel_file = slash(entry.path().strip_prefix(root).unwrap_or(entry.path()));
        let text = std::fs::read_to_string(entry.path())
            .with_context(|| format!("cannot read {}", entry.path().display()))?;
        folders
            .entry(rel_dir.clone())
            .or_insert_with(|| Folder {
                has_stack_file: dir.join(STACK_FILE).is_file(),
                dir: rel_dir,
                files: Vec::new(),
            })
            .files
            .push(TfFile::new(rel_file, text));
    }
    Ok(folders.into_values().collect())
}

/// A relative path with `/` separators.
pub(crate) fn slash(path: &Path) -> String {
    path.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_between_stack_folders() {
        assert_eq!(relative("stacks/app", "stacks/network"), "../network");
        assert_eq!(relative("app", "infra/network"), "../infra/network");
        assert_eq!(relative("", "network"), "./network");
    }

    #[test]
    fn project_names_are_valid_names() {
        assert_eq!(project_name(Path::new("/x/My Shop")), "my-shop");
        assert_eq!(project_name(Path::new("/x/1st")), "project-1st");
    }
}
