//! What the runner is told instead of reading the process environment. A front end (the
//! CLI, the server, a worker) resolves these once and hands them over as a value, so two runs
//! in one process can act for different people against different stores.

use std::time::Duration;

use slipway_core::config::Env;

use slipway_store::DEFAULT_LEASE;

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
    /// How long a process on another host may stay silent before what it holds (a lock, a
    /// job, a worker's place) counts as abandoned. Every process sharing a record must use
    /// the same.
    pub lease: Duration,
    /// The name this process gives its host in the record (`None`: the kernel's host name).
    pub host: Option<String>,
    /// The labels of the worker this process is (`slipway worker --labels`); a queued run
    /// reaching a stage whose `worker_labels` these lack is handed on to a worker that
    /// carries them. `None` (a person's command) runs every stage.
    pub worker_labels: Option<slipway_core::Labels>,
    /// What engine processes and check commands receive of `environment`.
    pub engine_environment: EngineEnvironment,
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
            lease: DEFAULT_LEASE,
            host: None,
            worker_labels: None,
            engine_environment: EngineEnvironment::Inherit,
        }
    }
}

impl Settings {
    /// Settings from a snapshot of a process environment. The variables slipway reads are
    /// named here and nowhere else: `SLIPWAY_ACTOR` (else `USER`, else `LOGNAME`),
    /// `SLIPWAY_STORE_URL`, `SLIPWAY_ARTIFACTS_URL`, `SLIPWAY_ENGINE`,
    /// `SLIPWAY_LOCK_HEARTBEAT`, `SLIPWAY_LEASE`, `SLIPWAY_HOST`, `SLIPWAY_ENGINE_ENVIRONMENT` and `SLIPWAY_ENGINE_PASS`
    /// ([`EngineEnvironment::from_environment`]; unset, engine processes inherit everything)
    /// and `PATH`.
    pub fn from_environment(environment: Env) -> anyhow::Result<Self> {
        let get = |name: &str| environment.get(name).filter(|v| !v.is_empty()).cloned();
        let duration = |name: &str, unset: &str| -> anyhow::Result<Option<Duration>> {
            get(name)
                .map(|text| {
                    humantime::parse_duration(&text)
                        .ok()
                        .filter(|d| !d.is_zero())
                        .ok_or_else(|| {
                            anyhow::anyhow!(
                                "{name} is `{text}`, which is not a duration\n  help: write it as `30s` or `2m`; unset, {unset}"
                            )
                        })
                })
                .transpose()
        };
        let lease = duration(
            "SLIPWAY_LEASE",
            &format!(
                "a process on another host silent for {} is taken as gone",
                humantime::format_duration(DEFAULT_LEASE)
            ),
        )?;
        // A shorter lease asks for heartbeats in step with it: four in each lease.
        let lock_heartbeat = duration(
            "SLIPWAY_LOCK_HEARTBEAT",
            &format!(
                "locks are renewed every {}",
                humantime::format_duration(HEARTBEAT_EVERY)
            ),
        )?
        .or(lease.map(|lease| (lease / 4).max(Duration::from_millis(250))))
        .unwrap_or(HEARTBEAT_EVERY);
        let lease = lease.unwrap_or(DEFAULT_LEASE);
        if lock_heartbeat >= lease {
            anyhow::bail!(
                "SLIPWAY_LOCK_HEARTBEAT ({}) is not shorter than SLIPWAY_LEASE ({}): every holder would look gone between two heartbeats\n  help: renew at least four times a lease, or unset SLIPWAY_LOCK_HEARTBEAT to have it follow the lease",
                humantime::format_duration(lock_heartbeat),
                humantime::format_duration(lease)
            );
        }
        let engine_environment =
            EngineEnvironment::from_environment(&environment, EngineEnvironment::Inherit)?;
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
            lease,
            host: get("SLIPWAY_HOST"),
            worker_labels: None,
            engine_environment,
            environment,
        })
    }
}

/// How much of slipway's environment its engine processes (and the `check` commands, which
/// run beside them) start from, before slipway adds its own engine settings and a stack its
/// credentials. Either way, once the project has `credentials` blocks, the variables they read
/// or provide and the well-known cloud credential variables are taken out
/// (`credentials::stage_environment`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum EngineEnvironment {
    /// All of it: what a person running the CLI in a shell expects.
    #[default]
    Inherit,
    /// Only the variables of `credentials::MINIMAL_ENGINE_ENVIRONMENT` and those `pass`
    /// names, so a process holding its own secrets (a server's database URL, webhook secrets,
    /// API tokens) does not hand them to every provider and `external` data source.
    Minimal {
        /// Variable names, or prefixes ending in `*` (`TF_VAR_*`).
        pass: Vec<String>,
    },
}

impl EngineEnvironment {
    /// Reads `SLIPWAY_ENGINE_ENVIRONMENT` (`inherit` or `minimal`) and `SLIPWAY_ENGINE_PASS`
    /// (comma-separated names or `PREFIX*` patterns passed as well under `minimal`; under
    /// `inherit` everything passes anyway). `unset` is what an unset
    /// `SLIPWAY_ENGINE_ENVIRONMENT` stands for: the CLI keeps `Inherit`, a front end holding
    /// secrets of its own may choose `Minimal`, whose `pass` the variable's names join.
    pub fn from_environment(environment: &Env, unset: EngineEnvironment) -> anyhow::Result<Self> {
        let get = |name: &str| environment.get(name).filter(|v| !v.is_empty());
        let pass = match get("SLIPWAY_ENGINE_PASS") {
            None => Vec::new(),
            Some(text) => parse_pass(text)?,
        };
        let chosen = match get("SLIPWAY_ENGINE_ENVIRONMENT").map(String::as_str) {
            None => unset,
            Some("inherit") => Self::Inherit,
            Some("minimal") => match unset {
                Self::Minimal { pass } => Self::Minimal { pass },
                Self::Inherit => Self::Minimal { pass: Vec::new() },
            },
            Some(text) => anyhow::bail!(
                "SLIPWAY_ENGINE_ENVIRONMENT is `{text}`, which is neither `inherit` nor `minimal`\n  help: `minimal` gives engine processes only a documented set of variables (add more with SLIPWAY_ENGINE_PASS); unset, they inherit slipway's whole environment"
            ),
        };
        Ok(match chosen {
            Self::Inherit => Self::Inherit,
            Self::Minimal { pass: mut own } => {
                own.extend(pass);
                Self::Minimal { pass: own }
            }
        })
    }
}

/// `SLIPWAY_ENGINE_PASS`: names and `PREFIX*` patterns, commas between, blanks ignored.
fn parse_pass(text: &str) -> anyhow::Result<Vec<String>> {
    let mut pass = Vec::new();
    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let name = item.strip_suffix('*').unwrap_or(item);
        if name.is_empty() {
            anyhow::bail!(
                "SLIPWAY_ENGINE_PASS holds `*`, which would pass every variable\n  help: for that, set SLIPWAY_ENGINE_ENVIRONMENT=inherit; else name the variables or their prefixes (`TF_VAR_*`)"
            );
        }
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            anyhow::bail!(
                "SLIPWAY_ENGINE_PASS holds `{item}`, which is neither a variable name nor a prefix ending in `*`\n  help: separate names with commas: `AWS_REGION,TF_VAR_*`"
            );
        }
        pass.push(item.to_owned());
    }
    Ok(pass)
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
    fn a_lease_sets_the_heartbeat_unless_it_is_set_too() {
        let settings = Settings::from_environment(env(&[("SLIPWAY_LEASE", "8s")])).unwrap();
        assert_eq!(settings.lease, Duration::from_secs(8));
        assert_eq!(settings.lock_heartbeat, Duration::from_secs(2));
        let both = Settings::from_environment(env(&[
            ("SLIPWAY_LEASE", "8s"),
            ("SLIPWAY_LOCK_HEARTBEAT", "1s"),
        ]))
        .unwrap();
        assert_eq!(both.lock_heartbeat, Duration::from_secs(1));
        let error = Settings::from_environment(env(&[
            ("SLIPWAY_LEASE", "8s"),
            ("SLIPWAY_LOCK_HEARTBEAT", "10s"),
        ]))
        .unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("SLIPWAY_LOCK_HEARTBEAT (10s) is not shorter than SLIPWAY_LEASE (8s)"),
            "{error}"
        );
        assert_eq!(
            Settings::from_environment(Env::new()).unwrap().lease,
            DEFAULT_LEASE
        );
        let named = Settings::from_environment(env(&[("SLIPWAY_HOST", "worker-7")])).unwrap();
        assert_eq!(named.host.as_deref(), Some("worker-7"));
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

    #[test]
    fn the_engine_environment_is_inherited_unless_minimal_is_asked_for() {
        let read = |pairs: &[(&str, &str)]| {
            Settings::from_environment(env(pairs))
                .map(|settings| settings.engine_environment)
                .map_err(|error| error.to_string())
        };
        assert_eq!(read(&[]), Ok(EngineEnvironment::Inherit));
        assert_eq!(
            read(&[("SLIPWAY_ENGINE_ENVIRONMENT", "inherit")]),
            Ok(EngineEnvironment::Inherit)
        );
        assert_eq!(
            read(&[("SLIPWAY_ENGINE_ENVIRONMENT", "minimal")]),
            Ok(EngineEnvironment::Minimal { pass: vec![] })
        );
        assert_eq!(
            read(&[
                ("SLIPWAY_ENGINE_ENVIRONMENT", "minimal"),
                ("SLIPWAY_ENGINE_PASS", " AWS_REGION, TF_VAR_* ,,"),
            ]),
            Ok(EngineEnvironment::Minimal {
                pass: vec!["AWS_REGION".into(), "TF_VAR_*".into()]
            })
        );
        // Everything passes under inherit anyway.
        assert_eq!(
            read(&[("SLIPWAY_ENGINE_PASS", "AWS_REGION")]),
            Ok(EngineEnvironment::Inherit)
        );

        for bad in ["Minimal", "none", "true"] {
            let error = read(&[("SLIPWAY_ENGINE_ENVIRONMENT", bad)]).unwrap_err();
            assert!(
                error.starts_with(&format!(
                    "SLIPWAY_ENGINE_ENVIRONMENT is `{bad}`, which is neither `inherit` nor `minimal`"
                )),
                "{error}"
            );
        }
        for bad in ["*", "A*B", "A B", "TF_VAR_*,$HOME"] {
            let error = read(&[
                ("SLIPWAY_ENGINE_ENVIRONMENT", "minimal"),
                ("SLIPWAY_ENGINE_PASS", bad),
            ])
            .unwrap_err();
            assert!(error.starts_with("SLIPWAY_ENGINE_PASS holds `"), "{error}");
        }
    }

    #[test]
    fn a_front_end_may_make_minimal_the_default() {
        let server = |pairs: &[(&str, &str)]| {
            EngineEnvironment::from_environment(
                &env(pairs),
                EngineEnvironment::Minimal {
                    pass: vec!["OWN".into()],
                },
            )
            .unwrap()
        };
        assert_eq!(
            server(&[("SLIPWAY_ENGINE_PASS", "TF_VAR_*")]),
            EngineEnvironment::Minimal {
                pass: vec!["OWN".into(), "TF_VAR_*".into()]
            }
        );
        assert_eq!(
            server(&[("SLIPWAY_ENGINE_ENVIRONMENT", "minimal")]),
            EngineEnvironment::Minimal {
                pass: vec!["OWN".into()]
            }
        );
        assert_eq!(
            server(&[("SLIPWAY_ENGINE_ENVIRONMENT", "inherit")]),
            EngineEnvironment::Inherit
        );
    }
}
