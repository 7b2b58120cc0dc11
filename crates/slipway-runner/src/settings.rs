//! What the runner is told instead of reading the process environment. A front end (the
//! CLI, the server, a worker) resolves these once and hands them over as a value, so two runs
//! in one process can act for different people against different stores.

use std::time::Duration;

use slipway_core::config::Env;

use crate::locks::HEARTBEAT_EVERY;

/// Settings resolved at the edge, before any work starts.
#[derive(Debug, Clone)]
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
    /// How often a run renews the instance locks it holds (and so how soon it notices one
    /// taken from it).
    pub lock_heartbeat: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            actor: String::new(),
            store_url: None,
            artifacts_url: None,
            engine: None,
            search_path: None,
            environment: Env::new(),
            lock_heartbeat: HEARTBEAT_EVERY,
        }
    }
}

impl Settings {
    /// Settings from a snapshot of a process environment. The variables slipway reads are
    /// named here and nowhere else: `SLIPWAY_ACTOR` (else `USER`, else `LOGNAME`),
    /// `SLIPWAY_STORE_URL`, `SLIPWAY_ARTIFACTS_URL`, `SLIPWAY_ENGINE`,
    /// `SLIPWAY_LOCK_HEARTBEAT` and `PATH`.
    pub fn from_environment(environment: Env) -> anyhow::Result<Self> {
        let get = |name: &str| environment.get(name).filter(|v| !v.is_empty()).cloned();
        let lock_heartbeat = match get("SLIPWAY_LOCK_HEARTBEAT") {
            None => HEARTBEAT_EVERY,
            Some(text) => humantime::parse_duration(&text)
                .ok()
                .filter(|every| !every.is_zero())
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "SLIPWAY_LOCK_HEARTBEAT is `{text}`, which is not a duration\n  help: write it as `30s` or `2m`; unset, locks are renewed every {}",
                        humantime::format_duration(HEARTBEAT_EVERY)
                    )
                })?,
        };
        Ok(Self {
            actor: ["SLIPWAY_ACTOR", "USER", "LOGNAME"]
                .iter()
                .find_map(|name| get(name))
                .unwrap_or_else(|| "unknown".to_owned()),
            store_url: get("SLIPWAY_STORE_URL"),
            artifacts_url: get("SLIPWAY_ARTIFACTS_URL"),
            engine: get("SLIPWAY_ENGINE"),
            search_path: get("PATH"),
            lock_heartbeat,
            environment,
        })
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
        let explicit =
            Settings::from_environment(env(&[("SLIPWAY_ACTOR", "ci"), ("USER", "ann")])).unwrap();
        assert_eq!(explicit.actor, "ci");
        let login =
            Settings::from_environment(env(&[("SLIPWAY_ACTOR", ""), ("LOGNAME", "bo")])).unwrap();
        assert_eq!(login.actor, "bo");
        assert_eq!(
            Settings::from_environment(Env::new()).unwrap().actor,
            "unknown"
        );
    }

    #[test]
    fn empty_overrides_count_as_unset() {
        let settings = Settings::from_environment(env(&[
            ("SLIPWAY_STORE_URL", ""),
            ("SLIPWAY_ARTIFACTS_URL", "s3://bucket/artifacts"),
        ]))
        .unwrap();
        assert_eq!(settings.store_url, None);
        assert_eq!(
            settings.artifacts_url.as_deref(),
            Some("s3://bucket/artifacts")
        );
    }

    #[test]
    fn the_lock_heartbeat_is_a_duration_or_a_clear_error() {
        assert_eq!(
            Settings::from_environment(Env::new())
                .unwrap()
                .lock_heartbeat,
            HEARTBEAT_EVERY
        );
        let quick = Settings::from_environment(env(&[("SLIPWAY_LOCK_HEARTBEAT", "1s")])).unwrap();
        assert_eq!(quick.lock_heartbeat, Duration::from_secs(1));
        for bad in ["soon", "0s"] {
            let error =
                Settings::from_environment(env(&[("SLIPWAY_LOCK_HEARTBEAT", bad)])).unwrap_err();
            assert!(
                error.to_string().starts_with(&format!(
                    "SLIPWAY_LOCK_HEARTBEAT is `{bad}`, which is not a duration"
                )),
                "{error}"
            );
        }
    }
}
