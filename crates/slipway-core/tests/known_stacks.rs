//! Loading with known stacks: a project whose unchanged stacks are given by what an earlier
//! load found loads to the same answer as reading every stack again, valid or not.

use std::collections::BTreeMap;

use slipway_core::SourceFile;
use slipway_core::config::{
    Env, KnownStack, Project, ProjectSources, Settled, Stack, StackSources, load, load_with_known,
};
use slipway_core::graph::StackGraph;

const PROJECT: &str = "project {\n  name = \"p\"\n  engine = \"terraform\"\n}\nstage \"dev\" {}\n";

/// A stack folder as `(dir, stack.hcl, main.tf)`.
type Folder = (&'static str, &'static str, &'static str);

fn sources(folders: &[Folder], config: &str) -> ProjectSources {
    ProjectSources {
        config: SourceFile::new("slipway.hcl", config),
        stacks: folders
            .iter()
            .map(|(dir, stack_hcl, main_tf)| StackSources {
                dir: (*dir).into(),
                config: SourceFile::new(format!("{dir}/stack.hcl"), *stack_hcl),
                terraform: vec![SourceFile::new(format!("{dir}/main.tf"), *main_tf)],
            })
            .collect(),
    }
}

fn known(stack: &Stack) -> KnownStack {
    KnownStack {
        name: stack.name.clone(),
        dir: stack.dir.clone(),
        dependencies: stack.dependencies.clone(),
        input_reads: stack
            .inputs
            .iter()
            .flat_map(|input| input.reads.iter().cloned())
            .collect(),
        outputs: stack.declarations.outputs.clone(),
        unreadable_file: stack.declarations.unreadable_files.first().cloned(),
    }
}

/// What a load answers, as far as the stacks and their graph go.
fn answer(loaded: Result<Project, slipway_core::Diagnostics>) -> Option<Vec<String>> {
    let project = loaded.ok()?;
    Some(lines(project.stacks.iter(), &project.graph))
}

/// Each stack with its dependencies, then the graph's order.
fn lines<'a>(stacks: impl Iterator<Item = &'a Stack>, graph: &StackGraph) -> Vec<String> {
    let mut lines: Vec<String> = stacks
        .map(|s| {
            let deps: Vec<String> = s
                .dependencies
                .iter()
                .map(|d| format!("{}={}@{}", d.name, d.stack, d.path))
                .collect();
            format!("{} {} [{}]", s.dir, s.name, deps.join(" "))
        })
        .collect();
    lines.push(format!("order {:?}", graph.topological_order()));
    lines
}

/// Stacks of an earlier load taken as settled.
struct Earlier<'a>(Vec<&'a Stack>);

impl Settled for Earlier<'_> {
    fn name_at(&self, dir: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|s| s.dir == dir)
            .map(|s| s.name.as_str())
    }
    fn has_name(&self, name: &str) -> bool {
        self.0.iter().any(|s| s.name == name)
    }
    fn outputs(&self, name: &str) -> Option<BTreeMap<String, bool>> {
        let stack = self.0.iter().find(|s| s.name == name)?;
        stack
            .declarations
            .is_complete()
            .then(|| stack.declarations.outputs.clone())
    }
}

/// Loads `after` three ways: in full; with the folders `before` holds unchanged given as
/// known stacks from `before`'s load; and with those of them whose dependencies all point
/// at unchanged folders settled instead, cycles then checked on the whole graph as a caller
/// must. All must agree; returns whether it loaded.
fn agree(before: &[Folder], after: &[Folder]) -> bool {
    let env = Env::new();
    let earlier = load(&sources(before, PROJECT), &env).expect("the earlier project loads");
    let unchanged = |folder: &Folder| before.contains(folder);
    let read: Vec<Folder> = after.iter().filter(|f| !unchanged(f)).copied().collect();
    let kept: Vec<&Stack> = earlier
        .stacks
        .iter()
        .filter(|s| after.iter().any(|f| f.0 == s.dir && unchanged(f)))
        .collect();
    let full = answer(load(&sources(after, PROJECT), &env));
    let partial = answer(load_with_known(
        &sources(&read, PROJECT),
        kept.iter().map(|s| known(s)).collect(),
        &(),
        &env,
    ));
    assert_eq!(partial, full, "known: before {before:?}\nafter {after:?}");

    let changed_dir = |dir: &str| !kept.iter().any(|s| s.dir == dir);
    let (known_stacks, settled): (Vec<&Stack>, Vec<&Stack>) = kept.iter().partition(|s| {
        s.dependencies.iter().any(|d| {
            let dir = earlier
                .stacks
                .iter()
                .find(|t| t.name == d.stack)
                .map(|t| t.dir.as_str());
            dir.is_none_or(changed_dir)
        })
    });
    let loaded = load_with_known(
        &sources(&read, PROJECT),
        known_stacks.iter().map(|s| known(s)).collect(),
        &Earlier(settled.clone()),
        &env,
    );
    let with_settled = loaded.ok().and_then(|project| {
        let mut stacks: Vec<&Stack> = project
            .stacks
            .iter()
            .chain(settled.iter().copied())
            .collect();
        stacks.sort_by(|a, b| a.dir.cmp(&b.dir));
        let graph = StackGraph::from_edges(
            stacks
                .iter()
                .map(|s| (s.name.as_str(), s.dependency_stacks().collect())),
        );
        graph
            .cycles()
            .is_empty()
            .then(|| lines(stacks.iter().copied(), &graph))
    });
    assert_eq!(
        with_settled, full,
        "settled: before {before:?}\nafter {after:?}"
    );
    full.is_some()
}

const NETWORK: Folder = (
    "stacks/network",
    "stack {}\n",
    "output \"vpc_id\" {\n  value = 1\n}\n",
);
const APP: Folder = (
    "stacks/app",
    "stack {}\ndependency \"net\" {\n  path = \"../network\"\n}\ninputs = {\n  vpc_id = dependency.net.outputs.vpc_id\n}\n",
    "variable \"vpc_id\" {}\n",
);
const DNS: Folder = (
    "stacks/dns",
    "stack {}\ndependency \"app\" {\n  path = \"../app\"\n}\n",
    "",
);

#[test]
fn unchanged_stacks_given_as_known_load_as_a_full_read_does() {
    let base = [NETWORK, APP, DNS];
    // Nothing changed, and a change that keeps every name and edge.
    assert!(agree(&base, &base));
    let app_code = (
        APP.0,
        APP.1,
        "variable \"vpc_id\" {}\nvariable \"more\" {\n  default = 1\n}\n",
    );
    assert!(agree(&base, &[NETWORK, app_code, DNS]));
    // The network renamed: the app, unchanged, now depends on `core`.
    let renamed = (NETWORK.0, "stack {\n  name = \"core\"\n}\n", NETWORK.2);
    assert!(agree(&base, &[renamed, APP, DNS]));
    // A new stack depending on an unchanged one.
    let cache = (
        "stacks/cache",
        "stack {}\ndependency \"net\" {\n  path = \"../network\"\n}\ninputs = {\n  vpc_id = dependency.net.outputs.vpc_id\n}\n",
        "variable \"vpc_id\" {}\n",
    );
    assert!(agree(&base, &[NETWORK, APP, cache, DNS]));
}

#[test]
fn problems_known_stacks_take_part_in_are_still_found() {
    let base = [NETWORK, APP, DNS];
    // The network drops the output the unchanged app reads.
    let no_output = (NETWORK.0, NETWORK.1, "output \"other\" {\n  value = 1\n}\n");
    assert!(!agree(&base, &[no_output, APP, DNS]));
    // A changed stack reads an output an unchanged one does not declare.
    let reads_missing = (
        APP.0,
        "stack {}\ndependency \"net\" {\n  path = \"../network\"\n}\ninputs = {\n  vpc_id = dependency.net.outputs.subnet\n}\n",
        APP.2,
    );
    assert!(!agree(&base, &[NETWORK, reads_missing, DNS]));
    // The app, which the unchanged dns depends on, is gone.
    assert!(!agree(&base, &[NETWORK, DNS]));
    // A cycle through two unchanged stacks.
    let cycle = (
        NETWORK.0,
        "stack {}\ndependency \"dns\" {\n  path = \"../dns\"\n}\n",
        NETWORK.2,
    );
    assert!(!agree(&base, &[cycle, APP, DNS]));
    // A new stack taking an unchanged stack's name.
    let twin = ("stacks/twin", "stack {\n  name = \"app\"\n}\n", "");
    assert!(!agree(&base, &[NETWORK, APP, DNS, twin]));
}

#[test]
fn stages_may_only_name_stacks_that_exist_known_or_read() {
    let config = format!(
        "{PROJECT}credentials \"ops\" {{\n  from_env = {{ A = \"B\" }}\n}}\nstage \"prod\" {{\n  credentials = {{ dns = \"ops\" }}\n}}\n"
    );
    let env = Env::new();
    let earlier = load(&sources(&[NETWORK, APP, DNS], &config), &env).expect("the project loads");
    let dns = earlier.stacks.iter().find(|s| s.name == "dns").map(known);
    let with_dns = load_with_known(
        &sources(&[NETWORK, APP], &config),
        dns.into_iter().collect(),
        &(),
        &env,
    );
    assert!(with_dns.is_ok());
    let settled_dns = Earlier(earlier.stacks.iter().filter(|s| s.name == "dns").collect());
    let with_settled_dns = load_with_known(
        &sources(&[NETWORK, APP], &config),
        Vec::new(),
        &settled_dns,
        &env,
    );
    assert!(with_settled_dns.is_ok());
    let without_dns = load_with_known(&sources(&[NETWORK, APP], &config), Vec::new(), &(), &env);
    assert!(without_dns.is_err());
}
