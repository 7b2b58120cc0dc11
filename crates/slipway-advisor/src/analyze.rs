//! Measurements and recommendations: a pure function from [`Input`] to [`Report`].
//!
//! Commits are mapped to stacks by folder: a file below a stack's folder belongs to that
//! stack. Files of local modules count for the rates of the stacks that call them, but not
//! for team shares or coupling, because shared code changing is not the stacks changing;
//! and a commit that changes two stacks together with a module both call is the module's
//! change, not coupling. Files of a module more than one stack calls are not a stack's own
//! fast- or slow-changing part either.
//!
//! Resources are counted as instances: from a stage's state where one was read
//! (`existing`), else from the declarations with their `count`/`for_each` worked out from
//! literals and defaults (`declared`); blocks that are never created take part in nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;

use crate::codeowners::owner_team;
use crate::domains::OTHER;
use crate::model::{
    Action, Basis, Coupling, Criterion, FileRate, Input, Recommendation, Report, StackInput,
    StackReport, TeamShare,
};

/// Days in an average month, for "per month" rates.
const DAYS_PER_MONTH: f64 = 30.4375;
/// The team of an author missing from the team map.
pub const UNMAPPED: &str = "unmapped";

pub fn analyze(input: &Input) -> Report {
    let settings = &input.settings;
    let months = (input.window_days / DAYS_PER_MONTH).max(1.0 / DAYS_PER_MONTH);
    let stacks = &input.stacks;
    let by_dir: HashMap<&str, usize> = stacks
        .iter()
        .enumerate()
        .map(|(i, s)| (s.dir.as_str(), i))
        .collect();
    let index_of: HashMap<&str, usize> = stacks
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();

    // Per stack: commits and authors' teams; per file: commits; per pair: commits in common.
    let mut stack_commits = vec![0usize; stacks.len()];
    let mut stack_teams: Vec<BTreeMap<String, usize>> = vec![BTreeMap::new(); stacks.len()];
    let mut file_commits: HashMap<&str, usize> = HashMap::new();
    // Module files (outside the stack's folder) -> the stacks that call them.
    let mut module_users: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, stack) in stacks.iter().enumerate() {
        for file in stack.files.iter().filter(|f| !in_dir(f, &stack.dir)) {
            let users = module_users.entry(file.as_str()).or_default();
            if users.last() != Some(&i) {
                users.push(i);
            }
        }
    }
    // Per pair: commits touching both through their own files, and through a shared module.
    let mut pairs: HashMap<(usize, usize), (usize, usize)> = HashMap::new();
    // Each stack's module files, to tell which of a commit's module files it calls.
    let stack_modules: Vec<HashSet<&str>> = stacks
        .iter()
        .map(|stack| {
            stack
                .files
                .iter()
                .filter(|f| !in_dir(f, &stack.dir))
                .map(String::as_str)
                .collect()
        })
        .collect();
    let mut touched: Vec<usize> = Vec::new();
    let mut modules_touched: Vec<&str> = Vec::new();
    for commit in &input.commits {
        touched.clear();
        modules_touched.clear();
        for file in &commit.files {
            *file_commits.entry(file.as_str()).or_default() += 1;
            if let Some(i) = owning_stack(file, &by_dir) {
                touched.push(i);
            }
            if module_users.contains_key(file.as_str()) {
                modules_touched.push(file.as_str());
            }
        }
        touched.sort_unstable();
        touched.dedup();
        let team = settings
            .teams
            .get(&commit.author)
            .map_or(UNMAPPED, String::as_str);
        for &i in &touched {
            stack_commits[i] += 1;
            *stack_teams[i].entry(team.to_owned()).or_default() += 1;
        }
        if touched.len() <= settings.coupling_max_stacks {
            // Per touched stack: which of the commit's module files it calls.
            let calls: Vec<Vec<bool>> = touched
                .iter()
                .map(|&i| {
                    modules_touched
                        .iter()
                        .map(|f| stack_modules[i].contains(f))
                        .collect()
                })
                .collect();
            for (n, &a) in touched.iter().enumerate() {
                for (m, &b) in touched.iter().enumerate().skip(n + 1) {
                    let pair = pairs.entry((a, b)).or_default();
                    if calls[n].iter().zip(&calls[m]).any(|(x, y)| *x && *y) {
                        pair.1 += 1;
                    } else {
                        pair.0 += 1;
                    }
                }
            }
        }
    }

    // Dependents: reverse edges, then a walk per stack.
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); stacks.len()];
    for (i, stack) in stacks.iter().enumerate() {
        for dep in &stack.dependencies {
            if let Some(&d) = index_of.get(dep.as_str()) {
                dependents[d].push(i);
            }
        }
    }

    let mut reports = Vec::with_capacity(stacks.len());
    let mut recommendations = Vec::new();
    for (i, stack) in stacks.iter().enumerate() {
        let transitive = reach(i, &dependents);
        let commits = stack_commits[i];
        let teams: Vec<TeamShare> = {
            let mut t: Vec<TeamShare> = stack_teams[i]
                .iter()
                .map(|(team, n)| TeamShare {
                    team: team.clone(),
                    commits: *n,
                    share: round(*n as f64 / commits.max(1) as f64),
                })
                .collect();
            t.sort_by(|a, b| b.commits.cmp(&a.commits).then(a.team.cmp(&b.team)));
            t
        };
        let mut code_owners: BTreeSet<String> = BTreeSet::new();
        if !input.codeowners.is_empty() {
            for file in stack.files.iter().filter(|f| in_dir(f, &stack.dir)) {
                let path = format!("{}{file}", input.codeowners_prefix);
                code_owners.extend(input.codeowners.owners(&path).iter().cloned());
            }
        }
        let counted = count_resources(stack);
        // Addresses of the blocks each file creates (blocks never created left out).
        let mut resources_by_file: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for r in stack.resources.iter().filter(|r| counted.creates(r)) {
            let addresses = resources_by_file.entry(r.file.as_str()).or_default();
            let address = r.address();
            if !addresses.contains(&address) {
                addresses.push(address);
            }
        }
        let mut files: Vec<FileRate> = stack
            .files
            .iter()
            .map(|path| {
                let n = file_commits.get(path.as_str()).copied().unwrap_or(0);
                FileRate {
                    path: path.clone(),
                    commits: n,
                    per_month: round(n as f64 / months),
                    resources: resources_by_file.remove(path.as_str()).unwrap_or_default(),
                }
            })
            .collect();
        files.sort_by(|a, b| b.commits.cmp(&a.commits).then(a.path.cmp(&b.path)));
        let mut domains: BTreeMap<String, usize> = BTreeMap::new();
        let mut capabilities: BTreeMap<String, usize> = BTreeMap::new();
        for (kind, n) in &counted.by_type {
            *domains
                .entry(settings.types.domain(kind).to_owned())
                .or_default() += n;
            *capabilities
                .entry(settings.types.capability(kind).to_owned())
                .or_default() += n;
        }
        domains.retain(|_, n| *n > 0);
        capabilities.retain(|_, n| *n > 0);
        let providers: Vec<String> = stack
            .providers
            .iter()
            .map(|(name, alias)| match alias {
                Some(alias) => format!("{name}.{alias}"),
                None => name.clone(),
            })
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let report = StackReport {
            name: stack.name.clone(),
            dir: stack.dir.clone(),
            team: stack.team.clone(),
            resources_declared: stack.resources.len(),
            resources_deployed: stack
                .observed
                .as_ref()
                .filter(|o| o.basis == Basis::Existing)
                .map(|o| o.counts.values().sum()),
            resources: counted.by_type.values().sum(),
            resources_basis: counted.basis,
            resources_stage: stack.observed.as_ref().map(|o| o.stage.clone()),
            resources_by_type: counted.by_type.clone(),
            blocks_not_created: counted.not_created,
            blocks_unknown: counted.unknown,
            dependencies: stack.dependencies.clone(),
            dependents_direct: dependents[i].len(),
            dependents_transitive: transitive,
            commits,
            commits_per_month: round(commits as f64 / months),
            teams,
            code_owners: code_owners.into_iter().collect(),
            files,
            domains,
            capabilities,
            providers,
        };
        let shared_files: BTreeSet<&str> = stack
            .files
            .iter()
            .filter(|f| module_users.get(f.as_str()).is_some_and(|u| u.len() >= 2))
            .map(String::as_str)
            .collect();
        let owner_sets = owner_sets(stack, input);
        recommend_for_stack(
            &report,
            &shared_files,
            &owner_sets,
            input,
            &mut recommendations,
        );
        reports.push(report);
    }

    let mut couplings: Vec<Coupling> = pairs
        .into_iter()
        // A single shared commit is coincidence (or a bulk edit), not coupling.
        .filter(|(_, (both, _))| *both >= 2)
        .map(|((a, b), (both, through))| {
            let either = stack_commits[a] + stack_commits[b] - both - through;
            let ratio = round(both as f64 / either.max(1) as f64);
            Coupling {
                stacks: [stacks[a].name.clone(), stacks[b].name.clone()],
                both,
                through_shared_modules: through,
                either,
                ratio,
                strong: both >= settings.coupling_min_commits && ratio >= settings.coupling,
            }
        })
        .collect();
    couplings.sort_by(|a, b| {
        b.ratio
            .total_cmp(&a.ratio)
            .then(b.both.cmp(&a.both))
            .then(a.stacks.cmp(&b.stacks))
    });
    for coupling in couplings.iter().filter(|c| c.strong) {
        let [a, b] = &coupling.stacks;
        recommendations.push(Recommendation {
            criterion: Criterion::Coupling,
            action: Action::Merge,
            stacks: vec![a.clone(), b.clone()],
            summary: format!(
                "merge `{a}` and `{b}`, or move what ties them into one of them: they change together"
            ),
            evidence: {
                let mut evidence = vec![format!(
                    "{} of the {} commits touching either stack touch both through their own files ({:.0}%; threshold {:.0}% and {} commits)",
                    coupling.both,
                    coupling.either,
                    coupling.ratio * 100.0,
                    settings.coupling * 100.0,
                    settings.coupling_min_commits
                )];
                if coupling.through_shared_modules > 0 {
                    evidence.push(format!(
                        "{} more change a module both call as well and are left out",
                        coupling.through_shared_modules
                    ));
                }
                evidence
            },
            basis: Basis::History,
            stage: None,
        });
    }
    recommendations.sort_by(|a, b| a.stacks.cmp(&b.stacks).then(a.criterion.cmp(&b.criterion)));
    Report {
        window_days: input.window_days,
        commits: input.commits.len(),
        stacks: reports,
        couplings,
        recommendations,
    }
}

/// Resource instances of one stack, from the state read or else the declarations.
struct Counted {
    basis: Basis,
    by_type: BTreeMap<String, usize>,
    not_created: usize,
    unknown: usize,
}

impl Counted {
    /// Whether a block takes part: it is created (by its count), or its type exists.
    fn creates(&self, block: &crate::code::ResourceBlock) -> bool {
        match self.basis {
            Basis::Existing | Basis::Planned => self.by_type.contains_key(&block.kind),
            _ => block.instances != Some(0),
        }
    }
}

fn count_resources(stack: &StackInput) -> Counted {
    let not_created = stack
        .resources
        .iter()
        .filter(|r| r.instances == Some(0))
        .count();
    let unknown = stack
        .resources
        .iter()
        .filter(|r| r.instances.is_none())
        .count();
    if let Some(observed) = &stack.observed {
        return Counted {
            basis: observed.basis,
            by_type: observed
                .counts
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(k, n)| (k.clone(), *n))
                .collect(),
            not_created,
            unknown,
        };
    }
    let mut by_type: BTreeMap<String, usize> = BTreeMap::new();
    for r in &stack.resources {
        let n = r.instances.unwrap_or(1);
        if n > 0 {
            *by_type.entry(r.kind.clone()).or_default() += n;
        }
    }
    Counted {
        basis: Basis::Declared,
        by_type,
        not_created,
        unknown,
    }
}

/// The owners of each of the stack's own files, grouped: owner teams -> files.
fn owner_sets(stack: &StackInput, input: &Input) -> BTreeMap<Vec<String>, Vec<String>> {
    let mut sets: BTreeMap<Vec<String>, Vec<String>> = BTreeMap::new();
    if input.codeowners.is_empty() {
        return sets;
    }
    for file in stack.files.iter().filter(|f| in_dir(f, &stack.dir)) {
        let path = format!("{}{file}", input.codeowners_prefix);
        let owners: BTreeSet<String> = input
            .codeowners
            .owners(&path)
            .iter()
            .map(|o| owner_team(o).to_owned())
            .collect();
        sets.entry(owners.into_iter().collect())
            .or_default()
            .push(file.clone());
    }
    sets
}

fn recommend_for_stack(
    report: &StackReport,
    shared_files: &BTreeSet<&str>,
    owner_sets: &BTreeMap<Vec<String>, Vec<String>>,
    input: &Input,
    out: &mut Vec<Recommendation>,
) {
    let settings = &input.settings;
    let name = &report.name;
    let resources_basis = report.resources_basis;
    let resources_stage = report.resources_stage.clone();
    let mut push = |criterion, action, basis: Basis, summary: String, evidence: Vec<String>| {
        let stage = match basis {
            Basis::Existing | Basis::Planned => resources_stage.clone(),
            _ => None,
        };
        out.push(Recommendation {
            criterion,
            action,
            stacks: vec![name.clone()],
            summary,
            evidence,
            basis,
            stage,
        });
    };
    // "N resources exist in stage `S` (" or "N resource instances counted ... (M blocks; ";
    // the caller closes the parenthesis.
    let resources_phrase = |n: usize| match resources_basis {
        Basis::Existing => format!(
            "{n} resources exist in stage `{}` (",
            report.resources_stage.as_deref().unwrap_or("?")
        ),
        Basis::Planned => format!(
            "{n} resources planned in stage `{}` (",
            report.resources_stage.as_deref().unwrap_or("?")
        ),
        _ => {
            let mut text = format!(
                "{n} resource instances counted from declarations ({} blocks",
                report.resources_declared
            );
            if report.blocks_not_created > 0 {
                let _ = write!(
                    text,
                    "; {} never created by their count/for_each",
                    report.blocks_not_created
                );
            }
            if report.blocks_unknown > 0 {
                let _ = write!(
                    text,
                    "; {} counted as one: count/for_each not known before apply",
                    report.blocks_unknown
                );
            }
            text + "; "
        }
    };

    // Team: two or more (mapped) teams each make a real share of the commits.
    let teams: Vec<&TeamShare> = report
        .teams
        .iter()
        .filter(|t| {
            t.team != UNMAPPED
                && t.commits >= settings.team_min_commits
                && t.share >= settings.team_share
        })
        .collect();
    if teams.len() >= 2 {
        push(
            Criterion::Team,
            Action::Split,
            Basis::History,
            format!(
                "split `{name}` along team lines: {} teams change it",
                teams.len()
            ),
            teams
                .iter()
                .map(|t| {
                    format!(
                        "team {} made {} of {} commits ({:.0}%)",
                        t.team,
                        t.commits,
                        report.commits,
                        t.share * 100.0
                    )
                })
                .collect(),
        );
    }
    // Ownership: parts of the stack owned by different owners. Files that share one set of
    // owners (several teams owning everything jointly) are no reason to split.
    let owned: Vec<(&Vec<String>, &Vec<String>)> =
        owner_sets.iter().filter(|(o, _)| !o.is_empty()).collect();
    let disjoint = owned.iter().enumerate().any(|(n, (a, _))| {
        owned[n + 1..]
            .iter()
            .any(|(b, _)| a.iter().all(|team| !b.contains(team)))
    });
    if disjoint && teams.len() < 2 {
        push(
            Criterion::Team,
            Action::Split,
            Basis::Ownership,
            format!(
                "split `{name}` along ownership: CODEOWNERS gives its files to {} different owners",
                owned.len()
            ),
            owned
                .iter()
                .map(|(owners, files)| {
                    format!(
                        "{}: {} ({})",
                        owners.join(" and "),
                        plural_files(files.len()),
                        files
                            .iter()
                            .take(3)
                            .map(String::as_str)
                            .collect::<Vec<_>>()
                            .join(", ")
                            + if files.len() > 3 { ", ..." } else { "" }
                    )
                })
                .collect(),
        );
    }

    // Change frequency: a file creating resources changes far more often than another. Files
    // of a module other stacks call too are not this stack's part to split out.
    let with_resources: Vec<&FileRate> = report
        .files
        .iter()
        .filter(|f| !f.resources.is_empty() && !shared_files.contains(f.path.as_str()))
        .collect();
    let hot: Vec<&&FileRate> = with_resources
        .iter()
        .filter(|f| f.per_month >= settings.hot_per_month)
        .collect();
    if let Some(hottest) = hot.first() {
        let cold: Vec<&&FileRate> = with_resources
            .iter()
            .filter(|f| f.per_month * settings.hot_ratio <= hottest.per_month)
            .collect();
        if !cold.is_empty() {
            let mut evidence: Vec<String> = hot
                .iter()
                .filter(|f| f.per_month >= cold[0].per_month * settings.hot_ratio)
                .map(|f| {
                    format!(
                        "{}: {:.1} commits/month ({})",
                        f.path,
                        f.per_month,
                        f.resources.join(", ")
                    )
                })
                .collect();
            evidence.extend(cold.iter().map(|f| {
                format!(
                    "{}: {:.1} commits/month ({})",
                    f.path,
                    f.per_month,
                    f.resources.join(", ")
                )
            }));
            push(
                Criterion::ChangeFrequency,
                Action::Split,
                Basis::History,
                format!(
                    "split the fast-changing part out of `{name}`: {} changes {:.0}x as often as {}",
                    hottest.path,
                    hottest.per_month / cold[0].per_month.max(1.0 / 12.0),
                    cold[0].path
                ),
                evidence,
            );
        }
    }

    // Permission boundary: a privileged domain beside any other domain.
    let known: Vec<(&String, &usize)> =
        report.domains.iter().filter(|(d, _)| *d != OTHER).collect();
    let privileged: Vec<&str> = known
        .iter()
        .map(|(d, _)| d.as_str())
        .filter(|d| settings.privileged_domains.iter().any(|p| p == d))
        .collect();
    if !privileged.is_empty() && known.len() >= 2 {
        push(
            Criterion::PermissionBoundary,
            Action::Split,
            resources_basis,
            format!(
                "split `{name}` so that its {} resources get credentials of their own",
                privileged.join(" and ")
            ),
            vec![format!(
                "resources by permission domain ({}): {}",
                resources_basis.label(),
                known
                    .iter()
                    .map(|(d, n)| format!("{d} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )],
        );
    }

    // Capability: two or more capabilities, each with a real share of the resources.
    let capabilities: Vec<(&String, &usize)> = report
        .capabilities
        .iter()
        .filter(|(c, n)| *c != OTHER && **n >= settings.capability_min_resources)
        .collect();
    if capabilities.len() >= 2 {
        push(
            Criterion::Capability,
            Action::Split,
            resources_basis,
            format!(
                "split `{name}` by capability: it delivers {}",
                capabilities
                    .iter()
                    .map(|(c, _)| c.as_str())
                    .collect::<Vec<_>>()
                    .join(" and ")
            ),
            vec![format!(
                "resources by capability ({}): {} (threshold {} each)",
                resources_basis.label(),
                capabilities
                    .iter()
                    .map(|(c, n)| format!("{c} {n}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                settings.capability_min_resources
            )],
        );
    }

    // Blast radius: size (instances, not blocks) or reach.
    let mut evidence = Vec::new();
    let mut basis = Basis::Declared;
    if report.resources >= settings.max_resources {
        basis = resources_basis;
        evidence.push(format!(
            "{}threshold {})",
            resources_phrase(report.resources),
            settings.max_resources
        ));
    }
    if report.dependents_transitive >= settings.max_dependents {
        evidence.push(format!(
            "{} stacks depend on it ({} directly; threshold {})",
            report.dependents_transitive, report.dependents_direct, settings.max_dependents
        ));
    }
    if !evidence.is_empty() {
        push(
            Criterion::BlastRadius,
            Action::Reduce,
            basis,
            format!("`{name}` has a large blast radius: one change reaches a lot"),
            evidence,
        );
    }
}

fn plural_files(n: usize) -> String {
    if n == 1 {
        "1 file".to_owned()
    } else {
        format!("{n} files")
    }
}

/// The stack whose folder holds `file`: the nearest enclosing stack folder.
fn owning_stack(file: &str, by_dir: &HashMap<&str, usize>) -> Option<usize> {
    let mut dir = file;
    while let Some((parent, _)) = dir.rsplit_once('/') {
        if let Some(&i) = by_dir.get(parent) {
            return Some(i);
        }
        dir = parent;
    }
    by_dir.get("").copied()
}

fn in_dir(file: &str, dir: &str) -> bool {
    dir.is_empty()
        || file
            .strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// How many stacks can be reached from `start` along `edges`.
fn reach(start: usize, edges: &[Vec<usize>]) -> usize {
    let mut seen = vec![false; edges.len()];
    let mut todo = vec![start];
    let mut count = 0;
    seen[start] = true;
    while let Some(i) = todo.pop() {
        for &next in &edges[i] {
            if !seen[next] {
                seen[next] = true;
                count += 1;
                todo.push(next);
            }
        }
    }
    count
}

fn round(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::code::ResourceBlock;
    use crate::codeowners::CodeOwners;
    use crate::model::{Commit, Observed, Settings};

    fn block(kind: &str, name: &str, file: &str, instances: Option<usize>) -> ResourceBlock {
        ResourceBlock {
            kind: kind.into(),
            name: name.into(),
            file: file.into(),
            line: 1,
            module: String::new(),
            instances,
        }
    }

    fn stack(name: &str, files: &[&str], resources: Vec<ResourceBlock>) -> StackInput {
        StackInput {
            name: name.into(),
            dir: format!("stacks/{name}"),
            files: files.iter().map(|f| (*f).to_owned()).collect(),
            resources,
            ..StackInput::default()
        }
    }

    fn commit(n: usize, files: &[&str]) -> Commit {
        Commit {
            id: format!("c{n}"),
            author: "a@example.com".into(),
            time: n as i64,
            files: files.iter().map(|f| (*f).to_owned()).collect(),
        }
    }

    fn input(stacks: Vec<StackInput>, commits: Vec<Commit>, codeowners: &str) -> Input {
        Input {
            stacks,
            commits,
            codeowners: CodeOwners::parse(codeowners),
            codeowners_prefix: String::new(),
            window_days: 180.0,
            settings: Settings::default(),
        }
    }

    fn criteria(report: &Report) -> Vec<(String, Criterion, Basis)> {
        report
            .recommendations
            .iter()
            .map(|r| (r.stacks.join("+"), r.criterion, r.basis))
            .collect()
    }

    #[test]
    fn changes_through_a_module_both_call_are_not_coupling() {
        let a = stack("a", &["stacks/a/main.tf", "modules/m/main.tf"], vec![]);
        let b = stack("b", &["stacks/b/main.tf", "modules/m/main.tf"], vec![]);
        let through_module: Vec<Commit> = (0..6)
            .map(|n| {
                commit(
                    n,
                    &["stacks/a/main.tf", "stacks/b/main.tf", "modules/m/main.tf"],
                )
            })
            .collect();
        let report = analyze(&input(vec![a.clone(), b.clone()], through_module, ""));
        assert!(report.recommendations.is_empty(), "{report:?}");
        let own: Vec<Commit> = (0..6)
            .map(|n| commit(n, &["stacks/a/main.tf", "stacks/b/main.tf"]))
            .collect();
        let report = analyze(&input(vec![a, b], own, ""));
        assert_eq!(
            criteria(&report),
            [("a+b".into(), Criterion::Coupling, Basis::History)]
        );
    }

    #[test]
    fn joint_owners_are_one_owner_and_different_owners_split() {
        let files = ["stacks/a/main.tf", "stacks/a/iam.tf"];
        let joint = analyze(&input(
            vec![stack("a", &files, vec![])],
            vec![],
            "* @org/engineering @org/admins\n",
        ));
        assert!(joint.recommendations.is_empty(), "{joint:?}");
        // Overlapping owner sets (admins own both parts) are still one owner.
        let overlapping = analyze(&input(
            vec![stack("a", &files, vec![])],
            vec![],
            "* @org/engineering @org/admins\n/stacks/a/iam.tf @org/admins\n",
        ));
        assert!(overlapping.recommendations.is_empty(), "{overlapping:?}");
        let different = analyze(&input(
            vec![stack("a", &files, vec![])],
            vec![],
            "* @org/engineering @org/admins\n/stacks/a/iam.tf @org/security\n",
        ));
        assert_eq!(
            criteria(&different),
            [("a".into(), Criterion::Team, Basis::Ownership)]
        );
    }

    #[test]
    fn instances_count_not_blocks_and_existing_state_wins() {
        let mut resources: Vec<ResourceBlock> = (0..70)
            .map(|i| {
                block(
                    "aws_iam_role",
                    &format!("r{i}"),
                    "stacks/a/main.tf",
                    Some(0),
                )
            })
            .collect();
        resources.push(block("aws_vpc", "this", "stacks/a/main.tf", Some(1)));
        let declared = analyze(&input(
            vec![stack("a", &["stacks/a/main.tf"], resources.clone())],
            vec![],
            "",
        ));
        assert!(declared.recommendations.is_empty(), "{declared:?}");
        assert_eq!(declared.stacks[0].resources, 1);
        assert_eq!(declared.stacks[0].blocks_not_created, 70);

        let mut existing = stack("a", &["stacks/a/main.tf"], resources);
        existing.observed = Some(Observed {
            basis: Basis::Existing,
            stage: "prod".into(),
            counts: BTreeMap::from([("aws_s3_bucket".into(), 60)]),
        });
        let report = analyze(&input(vec![existing], vec![], ""));
        assert_eq!(
            criteria(&report),
            [("a".into(), Criterion::BlastRadius, Basis::Existing)]
        );
        assert_eq!(report.recommendations[0].stage.as_deref(), Some("prod"));
        assert_eq!(
            report.recommendations[0].evidence,
            ["60 resources exist in stage `prod` (threshold 50)"]
        );
    }
}
