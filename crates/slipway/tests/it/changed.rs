//! `slipway changed` on scripted git histories: module changes, renames, deletions,
//! dependents, configuration changes, and bases that cannot be found.

use std::path::Path;
use std::process::Command;

use tempfile::TempDir;

use crate::common::{run, slipway};

/// A repository built commit by commit, with fixed identities and dates so commit ids are
/// the same on every machine.
pub(crate) struct History {
    dir: TempDir,
    commits: u32,
}

impl History {
    pub(crate) fn new() -> Self {
        let history = Self {
            dir: tempfile::tempdir().unwrap(),
            commits: 0,
        };
        history.git(&["init", "-q", "-b", "main"]);
        history
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn git(&self, args: &[&str]) -> String {
        git_in(self.path(), args, self.commits)
    }

    pub(crate) fn write(&self, path: &str, text: &str) -> &Self {
        let target = self.path().join(path);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(target, text).unwrap();
        self
    }

    pub(crate) fn remove(&self, path: &str) -> &Self {
        self.git(&["rm", "-q", "-r", path]);
        self
    }

    pub(crate) fn rename(&self, from: &str, to: &str) -> &Self {
        self.git(&["mv", from, to]);
        self
    }

    /// Changes `modules/base`, which `app` uses through `modules/service` and `data`
    /// directly (see [`webshop`]).
    pub(crate) fn change_base_module(&self) -> &Self {
        self.write(
            "modules/base/main.tf",
            "variable \"size\" {\n  default = 2\n}\n",
        )
    }

    /// Commits everything and returns the commit id.
    pub(crate) fn commit(&mut self, message: &str) -> String {
        self.commits += 1;
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", message]);
        self.git(&["rev-parse", "HEAD"]).trim().to_owned()
    }

    fn changed(&self, args: &[&str]) -> crate::common::Output {
        let mut cmd = slipway(self.path(), &[]);
        cmd.arg("changed").args(args);
        run(cmd)
    }

    fn changed_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.changed(&all);
        assert_eq!(out.code, 0, "{}", out.stderr);
        serde_json::from_str(&out.stdout).unwrap()
    }
}

fn git_in(dir: &Path, args: &[&str], tick: u32) -> String {
    let date = format!("2024-01-01T00:{:02}:00Z", tick % 60);
    let output = Command::new("git")
        .current_dir(dir)
        .args([
            "-c",
            "user.name=Slipway Test",
            "-c",
            "user.email=test@example.com",
            "-c",
            "commit.gpgsign=false",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .env("GIT_AUTHOR_DATE", &date)
        .env("GIT_COMMITTER_DATE", &date)
        .env("GIT_AUTHOR_NAME", "Slipway Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Slipway Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// network <- app <- edge; data and old stand alone. app uses modules/service, which uses
/// modules/base; data uses modules/base directly.
pub(crate) fn webshop() -> (History, String) {
    let mut h = History::new();
    h.write(
        "slipway.hcl",
        "project {\n  name   = \"shop\"\n  engine = \"terraform\"\n}\n\nstage \"dev\" {}\nstage \"prod\" {}\n",
    )
    .write("README.md", "# shop\n")
    .write("stacks/network/stack.hcl", "stack {\n  team = \"platform\"\n}\n")
    .write(
        "stacks/network/main.tf",
        "output \"vpc_id\" {\n  value = \"vpc-1\"\n}\n",
    )
    .write(
        "stacks/app/stack.hcl",
        "dependency \"network\" {\n  path = \"../network\"\n}\n\ninputs = {\n  vpc_id = dependency.network.outputs.vpc_id\n}\n",
    )
    .write(
        "stacks/app/main.tf",
        "variable \"vpc_id\" {}\n\nmodule \"service\" {\n  source = \"../../modules/service\"\n}\n\noutput \"url\" {\n  value = \"http://app\"\n}\n",
    )
    .write(
        "stacks/edge/stack.hcl",
        "dependency \"app\" {\n  path = \"../app\"\n}\n\ninputs = {\n  url = dependency.app.outputs.url\n}\n",
    )
    .write("stacks/edge/main.tf", "variable \"url\" {}\n")
    .write("stacks/data/stack.hcl", "stack {\n  team = \"data\"\n}\n")
    .write(
        "stacks/data/main.tf",
        "module \"base\" {\n  source = \"../../modules/base\"\n}\n",
    )
    .write("stacks/old/stack.hcl", "stack {\n  name = \"legacy\"\n}\n")
    .write("stacks/old/main.tf", "output \"x\" {\n  value = 1\n}\n")
    .write(
        "modules/service/main.tf",
        "module \"base\" {\n  source = \"../base\"\n}\n",
    )
    .write("modules/base/main.tf", "variable \"size\" {\n  default = 1\n}\n");
    let first = h.commit("webshop");
    (h, first)
}

fn names(list: &serde_json::Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect()
}

fn normalize(text: &str) -> String {
    regex_lite::Regex::new(r"\b[0-9a-f]{12,40}\b")
        .unwrap()
        .replace_all(text, "[COMMIT]")
        .into_owned()
}

#[test]
fn module_change_affects_the_stacks_using_it_transitively_and_lists_dependents() {
    let (mut h, base) = webshop();
    h.change_base_module();
    h.commit("bigger base");
    let out = h.changed(&["--base", &base]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    insta::assert_snapshot!(normalize(&out.stdout));

    let json = h.changed_json(&["--base", &base]);
    assert_eq!(names(&json["affected"]), ["app", "data"]);
    assert_eq!(names(&json["dependents"]), ["edge"]);
    assert_eq!(json["dependents"][0]["via"], serde_json::json!(["app"]));
    assert_eq!(
        json["affected"][0]["reasons"][0],
        serde_json::json!({
            "kind": "module",
            "module_dir": "modules/base",
            "change": {"path": "modules/base/main.tf", "status": "modified"}
        })
    );
    assert_eq!(
        json["stacks_to_run"],
        serde_json::json!(["app", "data", "edge"])
    );
}

#[test]
fn change_outside_stacks_and_modules_affects_nothing() {
    let (mut h, base) = webshop();
    h.write("README.md", "# shop, now documented\n");
    h.commit("docs");
    let json = h.changed_json(&["--base", &base]);
    assert!(json["affected"].as_array().unwrap().is_empty());
    assert!(json["all_changed_because"].is_null());
}

#[test]
fn stack_hcl_change_is_a_stack_configuration_change() {
    let (mut h, base) = webshop();
    h.write(
        "stacks/data/stack.hcl",
        "stack {\n  team = \"storage\"\n}\n",
    );
    h.commit("data moves team");
    let json = h.changed_json(&["--base", &base]);
    assert_eq!(names(&json["affected"]), ["data"]);
    assert_eq!(
        json["affected"][0]["reasons"][0]["kind"], "stack_config",
        "{json:#}"
    );
    assert!(json["dependents"].as_array().unwrap().is_empty());
}

#[test]
fn file_renamed_inside_a_stack_affects_it_and_its_dependents() {
    let (mut h, base) = webshop();
    h.rename("stacks/network/main.tf", "stacks/network/outputs.tf");
    h.commit("rename");
    let json = h.changed_json(&["--base", &base]);
    assert_eq!(names(&json["affected"]), ["network"]);
    assert_eq!(
        json["affected"][0]["reasons"][0]["change"],
        serde_json::json!({
            "path": "stacks/network/outputs.tf",
            "status": "renamed",
            "from": "stacks/network/main.tf"
        })
    );
    assert_eq!(names(&json["dependents"]), ["app", "edge"]);
    assert_eq!(json["dependents"][1]["via"], serde_json::json!(["app"]));
}

#[test]
fn renamed_and_deleted_stacks_are_reported_and_deleted_ones_never_run() {
    let (mut h, base) = webshop();
    h.rename("stacks/data", "stacks/storage");
    h.remove("stacks/old");
    h.commit("rename data, drop old");
    let out = h.changed(&["--base", &base]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    insta::assert_snapshot!(normalize(&out.stdout));

    let json = h.changed_json(&["--base", &base]);
    assert_eq!(
        json["renamed_stacks"],
        serde_json::json!([{
            "name": "storage", "dir": "stacks/storage",
            "from_name": "data", "from_dir": "stacks/data"
        }])
    );
    assert_eq!(
        json["deleted_stacks"],
        serde_json::json!([{"name": "legacy", "dir": "stacks/old"}])
    );
    assert_eq!(json["stacks_to_run"], serde_json::json!(["storage"]));
}

#[test]
fn slipway_hcl_change_affects_every_stack_and_says_so() {
    let (mut h, base) = webshop();
    h.write(
        "slipway.hcl",
        "project {\n  name   = \"shop\"\n  engine = \"terraform\"\n}\n\nstage \"dev\" {}\nstage \"test\" {}\nstage \"prod\" {}\n",
    );
    h.commit("add a test stage");
    let json = h.changed_json(&["--base", &base]);
    assert_eq!(
        names(&json["affected"]),
        ["data", "legacy", "network", "app", "edge"]
    );
    assert!(
        json["all_changed_because"]
            .as_str()
            .unwrap()
            .starts_with("slipway.hcl changed")
    );
}

#[test]
fn without_a_base_every_stack_counts_as_changed_because_nothing_was_released() {
    let (h, _) = webshop();
    let out = h.changed(&[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    insta::assert_snapshot!(normalize(&out.stdout));
}

#[test]
fn a_record_that_cannot_be_read_is_an_error_not_nothing_released() {
    let (h, _) = webshop();
    // A record file that is not a database: reading it as "nothing released" would count
    // every stack as changed and redeploy them all.
    std::fs::create_dir_all(h.path().join(".slipway")).unwrap();
    std::fs::write(h.path().join(".slipway/slipway.db"), "not a database\n").unwrap();
    let out = h.changed(&[]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert!(
        out.stderr
            .contains("cannot read the record to find what was last released to dev"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("`--base REV`"), "{}", out.stderr);
    // Naming the base needs no record.
    let out = h.changed(&["--base", "HEAD"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[test]
fn unknown_base_counts_every_stack_as_changed_with_the_reason() {
    let (h, _) = webshop();
    let json = h.changed_json(&["--base", "no-such-branch"]);
    assert_eq!(json["affected"].as_array().unwrap().len(), 5);
    assert!(json["base"].is_null());
    let because = json["all_changed_because"].as_str().unwrap();
    assert!(
        because.contains("no-such-branch") && because.contains("force-push"),
        "{because}"
    );
}

#[test]
fn shallow_clone_without_the_base_counts_every_stack_as_changed() {
    let (mut h, base) = webshop();
    h.write("stacks/edge/main.tf", "variable \"url\" {}\n# edited\n");
    h.commit("edit edge");
    let clone = tempfile::tempdir().unwrap();
    let url = format!("file://{}", h.path().display());
    git_in(
        clone.path(),
        &["clone", "-q", "--depth", "1", &url, "shop"],
        0,
    );
    let mut cmd = slipway(&clone.path().join("shop"), &[]);
    cmd.args(["changed", "--json", "--base", &base]);
    let out = run(cmd);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(json["affected"].as_array().unwrap().len(), 5);
    let because = json["all_changed_because"].as_str().unwrap();
    assert!(because.contains("shallow"), "{because}");

    // The full history has the base, and there only edge changed.
    let full = h.changed_json(&["--base", &base]);
    assert_eq!(names(&full["affected"]), ["edge"]);
}

#[test]
fn head_is_read_from_git_not_from_the_working_tree() {
    let (mut h, base) = webshop();
    h.write("stacks/app/main.tf", "variable \"vpc_id\" {}\n\nmodule \"service\" {\n  source = \"../../modules/service\"\n}\n\noutput \"url\" {\n  value = \"http://app2\"\n}\n");
    let second = h.commit("app url");
    // Uncommitted edits and a broken working tree change nothing about committed history.
    h.write(
        "stacks/network/main.tf",
        "output \"vpc_id\" {\n  value = \"vpc-2\"\n}\n",
    );
    let json = h.changed_json(&["--base", &base, "--head", &second]);
    assert_eq!(names(&json["affected"]), ["app"]);
    assert_eq!(json["head"]["commit"], second);
}

#[test]
fn project_below_the_repository_top_folder_sees_paths_relative_to_it() {
    let mut h = History::new();
    let (shop, _) = webshop();
    for entry in [
        "slipway.hcl",
        "stacks/network/stack.hcl",
        "stacks/network/main.tf",
    ] {
        let text = std::fs::read_to_string(shop.path().join(entry)).unwrap();
        h.write(&format!("infra/{entry}"), &text);
    }
    h.write("stacks/network/main.tf", "# not the project\n");
    let base = h.commit("infra in a folder");
    h.write(
        "infra/stacks/network/main.tf",
        "output \"vpc_id\" {\n  value = \"vpc-9\"\n}\n",
    );
    h.write("stacks/network/main.tf", "# still not the project\n");
    h.commit("network edit");
    let mut cmd = slipway(&h.path().join("infra"), &[]);
    cmd.args(["changed", "--json", "--base", &base]);
    let out = run(cmd);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(names(&json["affected"]), ["network"]);
    assert_eq!(
        json["affected"][0]["reasons"][0]["change"]["path"],
        "stacks/network/main.tf"
    );
}

#[test]
fn unknown_head_is_an_error() {
    let (h, _) = webshop();
    let out = h.changed(&["--head", "nope"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("`nope` is not a commit"),
        "{}",
        out.stderr
    );
}
