//! A scripted repository in a temporary folder: two stacks, three local modules (one
//! reached only through another) and unrelated files, committed with the git CLI at
//! fixed dates so hashes are the same on every run.

use std::path::{Path, PathBuf};
use std::process::Command;

use slipway_artifact::{
    Bundle, BundleInput, DEFAULT_SIZE_CAP, FileSource, RelPath, build_bundle, select,
};

pub struct Repo {
    pub dir: tempfile::TempDir,
    commits: u32,
}

pub fn rel(path: &str) -> RelPath {
    RelPath::new(path).expect("test paths are valid")
}

impl Repo {
    /// The files of the standard fixture, not yet committed.
    /// A git repository with nothing in it yet.
    pub fn empty() -> Repo {
        let repo = Repo {
            dir: tempfile::tempdir().expect("temp dir"),
            commits: 0,
        };
        repo.git(&["init", "--quiet", "--initial-branch=main"]);
        repo
    }

    pub fn new() -> Repo {
        let repo = Repo::empty();
        repo.write("slipway.hcl", "project {\n  name = \"webshop\"\n}\n");
        repo.write("README.md", "webshop infrastructure\n");
        repo.write(".gitignore", ".terraform/\n*.tfstate\n*.tfstate.*\n");
        repo.write(
            "stacks/network/stack.hcl",
            "stack {\n  team = \"platform\"\n}\n",
        );
        repo.write(
            "stacks/network/main.tf",
            "module \"vpc\" {\n  source = \"../../modules/vpc\"\n  cidr   = \"10.0.0.0/16\"\n}\n\n\
             module \"remote\" {\n  source  = \"terraform-aws-modules/vpc/aws\"\n  version = \"5.0.0\"\n}\n",
        );
        repo.write(
            "stacks/network/.terraform.lock.hcl",
            "provider \"registry.terraform.io/hashicorp/aws\" {\n  version = \"3.39.0\"\n}\n",
        );
        repo.write("stacks/app/stack.hcl", "stack {\n  team = \"shop\"\n}\n\ndependency \"network\" {\n  path = \"../network\"\n}\n");
        repo.write(
            "stacks/app/main.tf",
            "module \"service\" {\n  source = \"../../modules/service\"\n}\n",
        );
        repo.write(
            "modules/vpc/main.tf",
            "variable \"cidr\" {}\n\nmodule \"subnets\" {\n  source = \"./subnets\"\n}\n",
        );
        repo.write(
            "modules/vpc/subnets/main.tf",
            "variable \"count_per_az\" {\n  default = 2\n}\n",
        );
        repo.write(
            "modules/service/main.tf",
            "resource \"aws_sqs_queue\" \"jobs\" {}\n",
        );
        repo.write(
            "modules/unused/main.tf",
            "resource \"aws_s3_bucket\" \"logs\" {}\n",
        );
        // Ignored by git and skipped by the working-tree source alike.
        repo.write("stacks/network/.terraform/modules/modules.json", "{}\n");
        repo.write("stacks/network/terraform.tfstate", "{\"version\": 4}\n");
        repo
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, path: &str, content: &str) {
        let full = self.path().join(path);
        std::fs::create_dir_all(full.parent().expect("has parent")).expect("mkdir");
        std::fs::write(full, content).expect("write fixture file");
    }

    pub fn git(&self, args: &[&str]) -> String {
        let output = Command::new("git")
            .arg("-C")
            .arg(self.path())
            .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
            .args(["-c", "commit.gpgsign=false"])
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .output()
            .expect("git runs");
        assert!(
            output.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// Commits everything at a fixed date (one minute per commit) and returns the hash.
    pub fn commit(&mut self, message: &str) -> String {
        self.commits += 1;
        let date = format!("2024-01-01T00:{:02}:00Z", self.commits);
        self.git(&["add", "--all"]);
        let output = Command::new("git")
            .arg("-C")
            .arg(self.path())
            .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
            .args([
                "-c",
                "commit.gpgsign=false",
                "commit",
                "--quiet",
                "-m",
                message,
            ])
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_DATE", &date)
            .output()
            .expect("git runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        self.git(&["rev-parse", "HEAD"])
    }

    pub fn root(&self) -> PathBuf {
        self.path().to_owned()
    }
}

/// Bundles the code of the stack in `stack_dir`, as [`select`] chooses it.
pub fn bundle(source: &dyn FileSource, stack: &str, stack_dir: &str) -> Bundle {
    let selection = select(source, &rel(stack_dir), DEFAULT_SIZE_CAP).expect("files selected");
    build_bundle(
        source,
        &BundleInput {
            stack: stack.to_owned(),
            selection,
            slipway_version: "0.1.0".to_owned(),
        },
    )
    .expect("bundle builds")
}
