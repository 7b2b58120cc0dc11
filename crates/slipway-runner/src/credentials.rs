//! Fetching credential values and composing each engine process's environment.
//!
//! Policy: an engine process starts from slipway's environment, all of it or, under
//! [`EngineEnvironment::Minimal`], only [`MINIMAL_ENGINE_ENVIRONMENT`] and the names the
//! front end passes. When a project defines credentials, no engine process inherits
//! slipway's own cloud credentials or any variable a credentials block reads or provides,
//! whatever is passed; each process receives exactly the set its stage assigns to its stack
//! for what it does (plan or apply). Values are fetched once per run, kept in memory, and
//! redacted from every log.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Stdio;

use anyhow::{Context, Result, anyhow, bail};
use slipway_core::Stage;
use slipway_core::config::{CredentialSource, Credentials, Project, Purpose};
use slipway_engine::StackCredentials;

use crate::settings::EngineEnvironment;

/// Variables through which cloud SDKs and Terraform providers find credentials. They never
/// pass from slipway's environment to an engine process once the project manages
/// credentials itself.
pub const CLOUD_CREDENTIAL_VARIABLES: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "GOOGLE_CREDENTIALS",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GOOGLE_OAUTH_ACCESS_TOKEN",
    "CLOUDSDK_AUTH_ACCESS_TOKEN",
    "ARM_CLIENT_ID",
    "ARM_CLIENT_SECRET",
    "ARM_CLIENT_CERTIFICATE_PASSWORD",
    "ARM_OIDC_TOKEN",
    "ARM_ACCESS_KEY",
    "ARM_SAS_TOKEN",
];

/// What engine processes keep of slipway's environment under
/// [`EngineEnvironment::Minimal`], besides the names the front end passes
/// (`SLIPWAY_ENGINE_PASS`): what a process needs to run on this host at all, to reach the
/// network the way the host does, and to find and log providers as the operator set up.
///
/// - `PATH`, `HOME`, `USER`, `LOGNAME`, `TMPDIR`: `external` programs, `local-exec` commands
///   and `credential_process` helpers are found on `PATH`; the engine, git and ssh read their
///   configuration under `HOME`; providers talk to the engine over sockets in `TMPDIR`. (The
///   files under `HOME` stay readable by every process of the user; this list is about
///   values slipway holds.)
/// - `LANG`, `LC_ALL`, `LC_CTYPE`, `TZ`: text and times as the host reads them.
/// - `SSL_CERT_FILE`, `SSL_CERT_DIR` and the proxy variables in both cases: a host behind a
///   proxy, or trusting a certificate authority of its own, reaches registries and cloud APIs
///   only through them.
/// - `TF_CLI_CONFIG_FILE`, `TF_PLUGIN_CACHE_DIR`, `TF_REGISTRY_DISCOVERY_RETRY`,
///   `TF_REGISTRY_CLIENT_TIMEOUT`: where providers come from (a mirror, a shared cache) and
///   how patiently; `TF_LOG`, `TF_LOG_CORE`, `TF_LOG_PROVIDER`, `TF_LOG_PATH`: debugging a
///   run without changing how it is started.
///
/// Left out on purpose: `TF_VAR_*` (a stack's inputs come from slipway, and values set this
/// way are often secrets), `TF_TOKEN_*` (registry credentials), every cloud credential
/// variable, `TF_ENCRYPTION` (OpenTofu's state keys), `SSH_AUTH_SOCK` (it lends the user's
/// keys; pass it for `git::ssh` module sources), `TF_WORKSPACE`, `TF_DATA_DIR` and
/// `TF_CLI_ARGS*` (slipway decides where state and a working copy's data live and which flags
/// each command gets), `TERM` (engine processes never have a terminal).
/// `TF_IN_AUTOMATION`, `TF_INPUT`, `CHECKPOINT_DISABLE` and the plugin cache are set by
/// slipway for every engine process either way (`slipway_engine::Engine::new`).
pub const MINIMAL_ENGINE_ENVIRONMENT: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "TMPDIR",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "TF_CLI_CONFIG_FILE",
    "TF_PLUGIN_CACHE_DIR",
    "TF_REGISTRY_DISCOVERY_RETRY",
    "TF_REGISTRY_CLIENT_TIMEOUT",
    "TF_LOG",
    "TF_LOG_CORE",
    "TF_LOG_PROVIDER",
    "TF_LOG_PATH",
];

/// Whether the variable `name` of slipway's environment reaches engine processes, before the
/// credentials rule takes its share out.
pub fn passes(engine_environment: &EngineEnvironment, name: &str) -> bool {
    match engine_environment {
        EngineEnvironment::Inherit => true,
        EngineEnvironment::Minimal { pass } => {
            MINIMAL_ENGINE_ENVIRONMENT.contains(&name)
                || pass.iter().any(|pattern| match pattern.strip_suffix('*') {
                    Some(prefix) => name.starts_with(prefix),
                    None => name == pattern,
                })
        }
    }
}

/// The environments of one stage's engine processes.
#[derive(Debug, Default)]
pub struct StageEnvironment {
    /// What every engine process starts from.
    pub base: Vec<(String, String)>,
    /// Each stack's own credentials.
    pub stacks: BTreeMap<String, StackCredentials>,
    /// Every credential value in play, for redaction.
    pub secrets: Vec<String>,
}

impl StageEnvironment {
    pub fn for_stack(&self, stack: &str) -> StackCredentials {
        self.stacks.get(stack).cloned().unwrap_or_default()
    }
}

/// Fetches the credentials `stage` assigns to `stacks` (from all of `process_env`) and
/// chooses the base every engine process starts from.
pub fn stage_environment(
    project: &Project,
    stage: &Stage,
    stacks: &BTreeSet<String>,
    root: &Path,
    process_env: &BTreeMap<String, String>,
    engine_environment: &EngineEnvironment,
) -> Result<StageEnvironment> {
    let passed = || {
        process_env
            .iter()
            .filter(|(k, _)| passes(engine_environment, k))
    };
    if project.credentials.is_empty() {
        return Ok(StageEnvironment {
            base: passed().map(|(k, v)| (k.clone(), v.clone())).collect(),
            ..StageEnvironment::default()
        });
    }
    let mut fetched: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut fetch = |name: &str| -> Result<Vec<(String, String)>> {
        if let Some(values) = fetched.get(name) {
            return Ok(values.clone().into_iter().collect());
        }
        let set = project
            .credentials(name)
            .ok_or_else(|| anyhow!("credentials `{name}` are not defined"))?;
        let values = fetch_values(set, root, process_env)?;
        fetched.insert(name.to_owned(), values.clone());
        Ok(values.into_iter().collect())
    };
    let mut per_stack = BTreeMap::new();
    for stack in stacks {
        let plan = match stage.credentials.for_stack(stack, Purpose::Plan) {
            Some(name) => fetch(name)?,
            None => Vec::new(),
        };
        let apply = match stage.credentials.for_stack(stack, Purpose::Apply) {
            Some(name) => fetch(name)?,
            None => Vec::new(),
        };
        per_stack.insert(stack.clone(), StackCredentials { plan, apply });
    }
    let mut withheld: BTreeSet<String> = CLOUD_CREDENTIAL_VARIABLES
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    for set in &project.credentials {
        withheld.extend(set.provided_names().map(str::to_owned));
        withheld.extend(set.source_names().map(str::to_owned));
    }
    for values in fetched.values() {
        withheld.extend(values.keys().cloned());
    }
    let base = passed()
        .filter(|(k, _)| !withheld.contains(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let secrets = fetched.values().flat_map(|v| v.values().cloned()).collect();
    Ok(StageEnvironment {
        base,
        stacks: per_stack,
        secrets,
    })
}

/// Reads one credentials set's values from its sources, later sources overriding earlier.
/// Errors name the set and the source, never a value.
pub fn fetch_values(
    set: &Credentials,
    root: &Path,
    process_env: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>> {
    let mut values = BTreeMap::new();
    for source in &set.sources {
        match source {
            CredentialSource::Env(map) => {
                for (target, source_name) in map {
                    let value = process_env.get(source_name).filter(|v| !v.is_empty()).ok_or_else(|| {
                        anyhow!(
                            "credentials `{}` read `{source_name}` from slipway's environment, but it is not set\n  help: export {source_name} before running slipway",
                            set.name
                        )
                    })?;
                    values.insert(target.clone(), value.clone());
                }
            }
            CredentialSource::File(path) => {
                let path = root.join(path);
                let text = std::fs::read_to_string(&path).with_context(|| {
                    format!("credentials `{}`: cannot read {}", set.name, path.display())
                })?;
                values.extend(parse_values(&text).map_err(|problem| {
                    anyhow!("credentials `{}`: {} {problem}", set.name, path.display())
                })?);
            }
            CredentialSource::Command(argv) => {
                let (program, args) = argv.split_first().ok_or_else(|| anyhow!("empty command"))?;
                let output = std::process::Command::new(program)
                    .args(args)
                    .current_dir(root)
                    .stdin(Stdio::null())
                    .stderr(Stdio::null())
                    .output()
                    .with_context(|| {
                        format!("credentials `{}`: cannot run `{program}`", set.name)
                    })?;
                if !output.status.success() {
                    bail!(
                        "credentials `{}`: `{program}` failed ({})",
                        set.name,
                        output.status
                    );
                }
                let text = String::from_utf8_lossy(&output.stdout);
                values.extend(parse_values(&text).map_err(|problem| {
                    anyhow!(
                        "credentials `{}`: the output of `{program}` {problem}",
                        set.name
                    )
                })?);
            }
        }
    }
    Ok(values)
}

/// A JSON object of strings, or `NAME=VALUE` lines.
fn parse_values(text: &str) -> Result<BTreeMap<String, String>, &'static str> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        let map: BTreeMap<String, serde_json::Value> =
            serde_json::from_str(trimmed).map_err(|_| "is not a JSON object of strings")?;
        return map
            .into_iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => Ok((k, s)),
                _ => Err("is not a JSON object of strings"),
            })
            .collect();
    }
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| {
            let line = line.strip_prefix("export ").unwrap_or(line);
            line.split_once('=')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().trim_matches('"').to_owned()))
                .ok_or("holds a line that is not NAME=VALUE")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_core::SourceFile;
    use slipway_core::config::{ProjectSources, StackSources, load};

    fn project() -> Project {
        let config = r#"
project { name = "p" }
credentials "network" {
  from_env = { AWS_ACCESS_KEY_ID = "NET_KEY", AWS_SECRET_ACCESS_KEY = "NET_SECRET" }
}
credentials "app" {
  from_env = { AWS_ACCESS_KEY_ID = "APP_KEY", AWS_SECRET_ACCESS_KEY = "APP_SECRET" }
}
credentials "reader" {
  from_env = { AWS_ACCESS_KEY_ID = "READ_KEY", AWS_SECRET_ACCESS_KEY = "READ_SECRET" }
}
stage "dev" {
  credentials      = { network = "network", default = "app" }
  plan_credentials = { default = "reader" }
}
"#;
        let stack = |dir: &str| StackSources {
            dir: dir.into(),
            config: SourceFile::new(format!("{dir}/stack.hcl"), ""),
            terraform: vec![],
        };
        load(
            &ProjectSources {
                config: SourceFile::new("slipway.hcl", config),
                stacks: vec![stack("network"), stack("app")],
            },
            &BTreeMap::new(),
        )
        .unwrap()
    }

    fn env() -> BTreeMap<String, String> {
        [
            ("NET_KEY", "net-key-id"),
            ("NET_SECRET", "net-secret-value"),
            ("APP_KEY", "app-key-id"),
            ("APP_SECRET", "app-secret-value"),
            ("READ_KEY", "read-key-id"),
            ("READ_SECRET", "read-secret-value"),
            ("AWS_SECRET_ACCESS_KEY", "slipways-own-secret"),
            ("PATH", "/usr/bin"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    #[test]
    fn each_stack_gets_only_its_own_credentials_and_nothing_leaks_through_the_base() {
        let project = project();
        let stage = project.stage("dev").unwrap();
        let stacks = BTreeSet::from(["network".to_owned(), "app".to_owned()]);
        let environment = stage_environment(
            &project,
            stage,
            &stacks,
            Path::new("."),
            &env(),
            &EngineEnvironment::Inherit,
        )
        .unwrap();

        let base: BTreeMap<_, _> = environment.base.iter().cloned().collect();
        assert_eq!(
            base.keys().collect::<Vec<_>>(),
            vec!["PATH"],
            "no credential passes through"
        );

        let network = environment.for_stack("network");
        let app = environment.for_stack("app");
        let all = |c: &StackCredentials| {
            c.plan
                .iter()
                .chain(&c.apply)
                .map(|(_, v)| v.clone())
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert!(
            network
                .apply
                .contains(&("AWS_SECRET_ACCESS_KEY".into(), "net-secret-value".into()))
        );
        assert!(!all(&network).contains("app-secret-value"));
        assert!(
            app.apply
                .contains(&("AWS_SECRET_ACCESS_KEY".into(), "app-secret-value".into()))
        );
        assert!(!all(&app).contains("net-secret-value"));
        assert!(
            app.plan
                .contains(&("AWS_ACCESS_KEY_ID".into(), "read-key-id".into())),
            "plan uses the read-only set"
        );
        assert!(
            !all(&network).contains("slipways-own-secret")
                && !all(&app).contains("slipways-own-secret")
        );
        assert!(environment.secrets.contains(&"net-secret-value".to_owned()));
    }

    /// What a server's environment holds besides what engines need.
    fn server_env() -> BTreeMap<String, String> {
        [
            ("PATH", "/usr/bin"),
            ("HOME", "/home/slipway"),
            ("TF_LOG", "debug"),
            ("TF_CLI_CONFIG_FILE", "/etc/terraformrc"),
            ("TF_VAR_region", "eu-west-1"),
            ("TF_TOKEN_app_terraform_io", "registry-token"),
            ("TF_WORKSPACE", "other"),
            ("TOOL_HOME", "/opt/tool"),
            ("TOOL_HOME_EXTRA", "/opt/extra"),
            ("SLIPWAY_GITHUB_WEBHOOK_SECRET", "webhook-secret"),
            ("SLIPWAY_GITLAB_WEBHOOK_TOKEN", "gitlab-token"),
            (
                "SLIPWAY_STORE_URL",
                "postgres://slipway:db-password@db/slipway",
            ),
            ("DATABASE_URL", "postgres://app:db-password@db/app"),
            ("AWS_SECRET_ACCESS_KEY", "slipways-own-secret"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    fn names(base: &[(String, String)]) -> Vec<&str> {
        let mut names: Vec<&str> = base.iter().map(|(k, _)| k.as_str()).collect();
        names.sort_unstable();
        names
    }

    fn minimal(pass: &[&str]) -> EngineEnvironment {
        EngineEnvironment::Minimal {
            pass: pass.iter().map(|p| (*p).to_owned()).collect(),
        }
    }

    fn no_credentials() -> Project {
        load(
            &ProjectSources {
                config: SourceFile::new(
                    "slipway.hcl",
                    "project { name = \"p\" }\nstage \"dev\" {}\n",
                ),
                stacks: vec![],
            },
            &BTreeMap::new(),
        )
        .unwrap()
    }

    #[test]
    fn without_credentials_inherit_passes_everything_and_minimal_only_the_documented_set() {
        let project = no_credentials();
        let stage = project.stage("dev").unwrap();
        let base = |engine_environment: &EngineEnvironment| {
            stage_environment(
                &project,
                stage,
                &BTreeSet::new(),
                Path::new("."),
                &server_env(),
                engine_environment,
            )
            .unwrap()
            .base
        };

        let inherited = base(&EngineEnvironment::Inherit);
        assert_eq!(
            names(&inherited),
            server_env().keys().map(String::as_str).collect::<Vec<_>>()
        );

        let minimal = base(&minimal(&[]));
        assert_eq!(
            names(&minimal),
            ["HOME", "PATH", "TF_CLI_CONFIG_FILE", "TF_LOG"]
        );
        let text = format!("{minimal:?}");
        for secret in [
            "webhook-secret",
            "gitlab-token",
            "db-password",
            "registry-token",
            "slipways-own-secret",
        ] {
            assert!(!text.contains(secret), "{secret} passed: {text}");
        }
    }

    #[test]
    fn minimal_passes_named_variables_and_prefixes_and_nothing_else() {
        let project = no_credentials();
        let stage = project.stage("dev").unwrap();
        let environment = stage_environment(
            &project,
            stage,
            &BTreeSet::new(),
            Path::new("."),
            &server_env(),
            &minimal(&["TOOL_HOME", "TF_VAR_*", "NOT_SET"]),
        )
        .unwrap();
        assert_eq!(
            names(&environment.base),
            [
                "HOME",
                "PATH",
                "TF_CLI_CONFIG_FILE",
                "TF_LOG",
                "TF_VAR_region",
                "TOOL_HOME"
            ],
            "a name is exact (TOOL_HOME_EXTRA stays out), a `*` makes a prefix"
        );
        assert!(passes(&minimal(&["TF_VAR_*"]), "TF_VAR_"));
        assert!(!passes(&minimal(&["TF_VAR_*"]), "TF_VARS"));
        assert!(!passes(&minimal(&[]), "SLIPWAY_STORE_URL"));
        assert!(passes(&EngineEnvironment::Inherit, "SLIPWAY_STORE_URL"));
    }

    #[test]
    fn under_minimal_credentials_still_arrive_and_withheld_variables_stay_out_even_when_passed() {
        let project = project();
        let stage = project.stage("dev").unwrap();
        let stacks = BTreeSet::from(["network".to_owned(), "app".to_owned()]);
        let mut env = env();
        env.extend(server_env());
        env.insert("AWS_REGION".to_owned(), "eu-west-1".to_owned());
        let environment = stage_environment(
            &project,
            stage,
            &stacks,
            Path::new("."),
            &env,
            // Passing every AWS_ variable does not reach past the credentials rule.
            &minimal(&["AWS_*", "NET_*"]),
        )
        .unwrap();
        assert_eq!(
            names(&environment.base),
            ["AWS_REGION", "HOME", "PATH", "TF_CLI_CONFIG_FILE", "TF_LOG"]
        );
        assert!(
            environment
                .for_stack("network")
                .apply
                .contains(&("AWS_SECRET_ACCESS_KEY".into(), "net-secret-value".into()))
        );
        assert!(
            environment
                .for_stack("app")
                .plan
                .contains(&("AWS_ACCESS_KEY_ID".into(), "read-key-id".into()))
        );
        assert!(environment.secrets.contains(&"app-secret-value".to_owned()));
    }

    #[test]
    fn a_missing_source_variable_is_named_without_any_value() {
        let project = project();
        let stage = project.stage("dev").unwrap();
        let mut env = env();
        env.remove("APP_SECRET");
        let stacks = BTreeSet::from(["app".to_owned()]);
        let error = stage_environment(
            &project,
            stage,
            &stacks,
            Path::new("."),
            &env,
            &EngineEnvironment::Inherit,
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("`APP_SECRET`"), "{error}");
        assert!(!error.contains("app-key-id"), "{error}");
    }

    #[test]
    fn values_parse_from_json_or_lines() {
        assert_eq!(
            parse_values("{\"A\": \"1\"}").unwrap(),
            BTreeMap::from([("A".to_owned(), "1".to_owned())])
        );
        assert_eq!(
            parse_values("# c\nexport A=1\nB = \"2\"\n").unwrap(),
            BTreeMap::from([
                ("A".to_owned(), "1".to_owned()),
                ("B".to_owned(), "2".to_owned())
            ])
        );
        assert!(parse_values("{\"A\": 1}").is_err());
        assert!(parse_values("garbage").is_err());
    }
}
