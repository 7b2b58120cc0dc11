//! Measurements and recommendations: a pure function from [`Input`] to [`Report`].
//!
//! Commits are mapped to stacks by folder: a file below a stack's folder belongs to that
//! stack. Files of local modules count for the rates of the stacks that call them, but not
//! for team shares or coupling, because shared code changing is not the stacks changing.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::codeowners::owner_team;
use crate::domains::OTHER;
use crate::model::{
    Action, Coupling, Criterion, FileRate, Input, Recommendation, Report, StackReport, TeamShare,
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
    let mut pairs: HashMap<(usize, usize), usize> = HashMap::new();
    let mut touched: Vec<usize> = Vec::new();
    for commit in &input.commits {
        touched.clear();
        for file in &commit.files {
            *file_commits.entry(file.as_str()).or_default() += 1;
            if let Some(i) = owning_stack(file, &by_dir) {
                touched.push(i);
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
            for (n, &a) in touched.iter().enumerate() {
                for &b in &touched[n + 1..] {
                    *pairs.entry((a, b)).or_default() += 1;
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
        let mut resources_by_file: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for r in &stack.resources {
            resources_by_file
                .entry(r.file.as_str())
                .or_default()
                .push(r.address());
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
        for r in &stack.resources {
            *domains
                .entry(settings.types.domain(&r.kind).to_owned())
                .or_default() += 1;
            *capabilities
                .entry(settings.types.capability(&r.kind).to_owned())
                .or_default() += 1;
        }
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
            resources_deployed: stack.deployed,
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
        recommend_for_stack(&report, input, &mut recommendations);
        reports.push(report);
    }

    let mut couplings: Vec<Coupling> = pairs
        .into_iter()
        // A single shared commit is coincidence (or a bulk edit), not coupling.
        .filter(|(_, both)| *both >= 2)
        .map(|((a, b), both)| {
            let either = stack_commits[a] + stack_commits[b] - both;
            let ratio = round(both as f64 / either.max(1) as f64);
            Coupling {
                stacks: [stacks[a].name.clone(), stacks[b].name.clone()],
                both,
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
            evidence: vec![format!(
                "{} of the {} commits touching either stack touch both ({:.0}%; threshold {:.0}% and {} commits)",
                coupling.both,
                coupling.either,
                coupling.ratio * 100.0,
                settings.coupling * 100.0,
                settings.coupling_min_commits
            )],
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

fn recommend_for_stack(report: &StackReport, input: &Input, out: &mut Vec<Recommendation>) {
    let settings = &input.settings;
    let name = &report.name;
    let mut push = |criterion, action, summary: String, evidence: Vec<String>| {
        out.push(Recommendation {
            criterion,
            action,
            stacks: vec![name.clone()],
            summary,
            evidence,
        });
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
    let owner_teams: BTreeSet<&str> = report.code_owners.iter().map(|o| owner_team(o)).collect();
    if owner_teams.len() >= 2 && teams.len() < 2 {
        push(
            Criterion::Team,
            Action::Split,
            format!(
                "split `{name}` along ownership: CODEOWNERS gives its files to {} owners",
                owner_teams.len()
            ),
            vec![format!("owners: {}", report.code_owners.join(", "))],
        );
    }

    // Change frequency: a file declaring resources changes far more often than another.
    let with_resources: Vec<&FileRate> = report
        .files
        .iter()
        .filter(|f| !f.resources.is_empty())
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
            format!(
                "split `{name}` so that its {} resources get credentials of their own",
                privileged.join(" and ")
            ),
            vec![format!(
                "resources by permission domain: {}",
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
            format!(
                "split `{name}` by capability: it delivers {}",
                capabilities
                    .iter()
                    .map(|(c, _)| c.as_str())
                    .collect::<Vec<_>>()
                    .join(" and ")
            ),
            vec![format!(
                "resources by capability: {} (threshold {} each)",
                capabilities
                    .iter()
                    .map(|(c, n)| format!("{c} {n}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                settings.capability_min_resources
            )],
        );
    }

    // Blast radius: size or reach.
    let size = report
        .resources_deployed
        .unwrap_or(0)
        .max(report.resources_declared);
    let mut evidence = Vec::new();
    if size >= settings.max_resources {
        evidence.push(format!(
            "{} resources declared{} (threshold {})",
            report.resources_declared,
            report
                .resources_deployed
                .map(|d| format!(", {d} deployed"))
                .unwrap_or_default(),
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
            format!("`{name}` has a large blast radius: one change reaches a lot"),
            evidence,
        );
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
