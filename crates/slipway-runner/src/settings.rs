//! What the runner is told instead of reading the process environment. A front end (the
//! CLI, the server, a worker) resolves these once and hands them over as a value, so two runs
//! in one process can act for different people against different stores.

use slipway_core::config::Env;

/// Settings resolved at the edge, before any work starts.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Who acts: recorded with releases, approvals and audit entries.
    pub actor: String,
    /// The run record's URL, overriding `store { url }` in slipway.hcl.
    pub store_url: Option<String>,
    /// The artifact store's URL, overriding `artifacts { url }` in slipway.hcl.
    pub artifacts_url: Option<String>,
    /// The engine binary named explicitly, overriding the search.
    pub engine: Option<String>,
    /// Where the engine binary is searched for, as `PATH` lists folders.
    pub search_path: Option<String>,
    /// The variables `env()` in configuration and the stages' credentials resolve against.
    pub environment: Env,
}

impl Settings {
    /// Settings from a snapshot of a process environment. The variables slipway reads are
    /// named here and nowhere else: `SLIPWAY_ACTOR` (else `USER`, else `LOGNAME`),
    /// `SLIPWAY_STORE_URL`, `SLIPWAY_ARTIFACTS_URL`, `SLIPWAY_ENGINE` and `PATH`.
    pub fn from_environment(environment: Env) -> Self {
        let get = |name: &str| environment.get(name).filter(|v| !v.is_empty()).cloned();
        Self {
            actor: ["SLIPWAY_ACTOR", "USER", "LOGNAME"]
                .iter()
                .find_map(|name| get(name))
                .unwrap_or_else(|| "unknown".to_owned()),
            store_url: get("SLIPWAY_STORE_URL"),
            artifacts_url: get("SLIPWAY_ARTIFACTS_URL"),
            engine: get("SLIPWAY_ENGINE"),
            search_path: get("PATH"),
            environment,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_actor_is_the_explicit_one_then_the_login_name() {
        let explicit = Settings::from_environment(env(&[("SLIPWAY_ACTOR", "ci"), ("USER", "ann")]));
        assert_eq!(explicit.actor, "ci");
        let login = Settings::from_environment(env(&[("SLIPWAY_ACTOR", ""), ("LOGNAME", "bo")]));
        assert_eq!(login.actor, "bo");
        assert_eq!(Settings::from_environment(Env::new()).actor, "unknown");
    }

    #[test]
    fn empty_overrides_count_as_unset() {
        let settings = Settings::from_environment(env(&[
            ("SLIPWAY_STORE_URL", ""),
            ("SLIPWAY_ARTIFACTS_URL", "s3://bucket/artifacts"),
        ]));
        assert_eq!(settings.store_url, None);
        assert_eq!(
            settings.artifacts_url.as_deref(),
            Some("s3://bucket/artifacts")
        );
    }
}
