//! CODEOWNERS files (GitHub and GitLab syntax): who owns a path.
//!
//! Each rule is a gitignore-style pattern followed by owners; the last matching rule wins.
//! GitLab's `[Section]` headers (optionally `^[Section]`, `[Section][2]`, or with default
//! owners after them) are accepted and their default owners apply to rules without owners.

/// A parsed CODEOWNERS file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CodeOwners {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    pattern: String,
    owners: Vec<String>,
}

impl CodeOwners {
    pub fn parse(text: &str) -> Self {
        let mut rules = Vec::new();
        let mut section_owners: Vec<String> = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let header = line.strip_prefix('^').unwrap_or(line);
            if header.starts_with('[') {
                // `[Section][2] @owner`: default owners follow the last `]`.
                section_owners = header
                    .rsplit_once(']')
                    .map(|(_, rest)| owners_of(rest))
                    .unwrap_or_default();
                continue;
            }
            let mut parts = line.split_whitespace();
            let Some(pattern) = parts.next() else {
                continue;
            };
            let mut owners: Vec<String> = parts
                .take_while(|p| !p.starts_with('#'))
                .map(str::to_owned)
                .collect();
            if owners.is_empty() {
                owners = section_owners.clone();
            }
            rules.push(Rule {
                pattern: pattern.replace("\\ ", " "),
                owners,
            });
        }
        Self { rules }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The owners of `path` (relative to the repository's top, `/` separators).
    pub fn owners(&self, path: &str) -> &[String] {
        self.rules
            .iter()
            .rev()
            .find(|rule| matches(&rule.pattern, path))
            .map_or(&[], |rule| rule.owners.as_slice())
    }
}

fn owners_of(text: &str) -> Vec<String> {
    text.split_whitespace()
        .take_while(|p| !p.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// gitignore-style matching: a pattern with a `/` (other than a trailing one) is anchored
/// at the top; otherwise it matches at any depth. A pattern matching a folder matches
/// everything below it.
fn matches(pattern: &str, path: &str) -> bool {
    let dir_only = pattern.ends_with('/');
    let trimmed = pattern.trim_end_matches('/');
    let anchored = trimmed.contains('/');
    let trimmed = trimmed.trim_start_matches('/');
    let segments: Vec<&str> = path.split('/').collect();
    let starts: Vec<usize> = if anchored {
        vec![0]
    } else {
        (0..segments.len()).collect()
    };
    let pattern_segments: Vec<&str> = trimmed.split('/').collect();
    for start in starts {
        // The pattern may match the whole rest of the path, or a folder prefix of it.
        for end in (start + 1)..=segments.len() {
            if dir_only && end == segments.len() {
                continue;
            }
            if match_segments(&pattern_segments, &segments[start..end]) {
                return true;
            }
        }
    }
    false
}

fn match_segments(pattern: &[&str], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((&"**", rest)) => (0..=path.len()).any(|skip| match_segments(rest, &path[skip..])),
        Some((first, rest)) => match path.split_first() {
            Some((segment, path_rest)) => glob(first, segment) && match_segments(rest, path_rest),
            None => false,
        },
    }
}

/// `*` and `?` within one path segment.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// The team an owner names: `@org/team` is `team`, `@user` is `user`, an email stays.
pub fn owner_team(owner: &str) -> &str {
    let owner = owner.trim_start_matches('@');
    owner.rsplit('/').next().unwrap_or(owner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_matching_rule_wins() {
        let owners = CodeOwners::parse(
            "# comment\n* @org/platform\nstacks/app/ @org/app-team\n*.md @docs\n/stacks/app/iam.tf @org/security\n",
        );
        assert_eq!(owners.owners("stacks/network/main.tf"), ["@org/platform"]);
        assert_eq!(owners.owners("stacks/app/main.tf"), ["@org/app-team"]);
        assert_eq!(owners.owners("stacks/app/iam.tf"), ["@org/security"]);
        assert_eq!(owners.owners("stacks/app/README.md"), ["@docs"]);
    }

    #[test]
    fn gitlab_sections_and_globs() {
        let owners = CodeOwners::parse(
            "[Infra] @org/infra\nstacks/**/network.tf\n^[Data][2] @org/data\n*.sql\n",
        );
        assert_eq!(owners.owners("stacks/a/b/network.tf"), ["@org/infra"]);
        assert_eq!(owners.owners("db/x.sql"), ["@org/data"]);
        assert!(owners.owners("other.tf").is_empty());
        assert_eq!(owner_team("@org/infra"), "infra");
        assert_eq!(owner_team("a@b.c"), "a@b.c");
    }
}
