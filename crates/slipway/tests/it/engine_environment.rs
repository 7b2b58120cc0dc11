//! What engine processes receive of slipway's environment under
//! `SLIPWAY_ENGINE_ENVIRONMENT=minimal`, seen by the real engine behind a recording wrapper.

use slipway_sandbox::Sandbox;

use crate::common::{fixture, recording_engine_wrapper, slipway_ok_with};

#[test]
fn a_minimal_engine_environment_keeps_slipways_secrets_from_every_engine_process() {
    let sandbox = Sandbox::from_env().expect("the sandbox installs (see docs/sandbox.md)");
    let project = fixture("crash");
    let outside = tempfile::tempdir().unwrap();
    let engine = recording_engine_wrapper(outside.path(), &sandbox.terraform);
    // What a server holds: none of it is the engine's business.
    let secrets = [
        ("SLIPWAY_GITHUB_WEBHOOK_SECRET", "whsec-never-in-an-engine"),
        (
            "DATABASE_URL",
            "postgres://slipway:db-never-in-an-engine@db/slipway",
        ),
        ("TF_TOKEN_registry_example_com", "token-never-in-an-engine"),
    ];
    let mut env: Vec<(String, String)> = [
        ("SLIPWAY_ENGINE", engine.binary.to_str().unwrap()),
        ("SLIPWAY_ENGINE_ENVIRONMENT", "minimal"),
        ("SLIPWAY_ENGINE_PASS", "SLIPWAY_TEST_TOOL_*"),
        ("SLIPWAY_TEST_TOOL_HOME", "/opt/tool"),
        ("SLIPWAY_ACTOR", "tester"),
    ]
    .into_iter()
    .chain(secrets)
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    env.push(("PATH".to_owned(), std::env::var("PATH").unwrap()));
    // The record's URL, as a server is given it (here the project's own SQLite record).
    let store_url = slipway_store::default_url(&project.path().join(".slipway"));
    env.push(("SLIPWAY_STORE_URL".to_owned(), store_url.clone()));

    let apply = slipway_ok_with(project.path(), &env, &["apply", "--stage", "dev"]);
    assert!(
        apply.stderr.contains("dev: 2 of 2 stacks applied"),
        "{}",
        apply.stderr
    );

    let calls = engine.calls();
    let applies = calls
        .iter()
        .filter(|call| call.args.starts_with("apply"))
        .count();
    assert_eq!(
        applies, 2,
        "both stacks applied through the wrapper: {calls:#?}"
    );
    for call in &calls {
        let env = &call.env;
        assert_eq!(
            env.get("PATH"),
            std::env::var("PATH").ok().as_ref(),
            "{call:#?}"
        );
        assert_eq!(
            env.get("SLIPWAY_TEST_TOOL_HOME").map(String::as_str),
            Some("/opt/tool"),
            "a passed prefix reaches `{}`",
            call.args
        );
        // What slipway sets for every engine process, minimal or not.
        for (name, value) in [
            ("TF_IN_AUTOMATION", "1"),
            ("TF_INPUT", "0"),
            ("CHECKPOINT_DISABLE", "1"),
        ] {
            assert_eq!(env.get(name).map(String::as_str), Some(value), "{call:#?}");
        }
        assert!(env.contains_key("TF_PLUGIN_CACHE_DIR"), "{call:#?}");
        for (name, value) in secrets {
            assert!(
                !call.raw.contains(name) && !call.raw.contains(value),
                "`{}` saw {name}",
                call.args
            );
        }
        assert!(
            !call.raw.contains(&store_url),
            "`{}` saw the store URL",
            call.args
        );
        assert!(
            !env.keys()
                .any(|k| k.starts_with("SLIPWAY_") && k != "SLIPWAY_TEST_TOOL_HOME"),
            "slipway's own settings stay with slipway: {:?}",
            env.keys()
        );
    }
}
