//! Every environment variable the sandbox reads or hands out, declared in one place.
//!
//! The names in [`contract`] are relied upon by the rest of the workspace (engine, CLI,
//! tests); changing one is a breaking change to `docs/sandbox.md`.

/// Overrides the sandbox cache folder (default: `<workspace root>/.sandbox`).
pub const SANDBOX_DIR: &str = "SLIPWAY_SANDBOX_DIR";
/// Overrides the Python interpreter used to create the sandbox's virtualenv (default: `python3`).
pub const SANDBOX_PYTHON: &str = "SLIPWAY_SANDBOX_PYTHON";
/// Extra engine binaries (colon-separated paths) the engine compatibility suite runs on,
/// besides the sandbox's Terraform and the `terraform`/`tofu` on `PATH`.
pub const TEST_ENGINES: &str = "SLIPWAY_TEST_ENGINES";

/// The environment a running sandbox hands to slipway and Terraform.
pub mod contract {
    /// Absolute path of the real Terraform 1.0.3 binary.
    pub const ENGINE: &str = "SLIPWAY_ENGINE";
    /// Terraform's CLI configuration file; it points provider installation at the mirror.
    pub const TF_CLI_CONFIG_FILE: &str = "TF_CLI_CONFIG_FILE";
    /// Base URL of the AWS emulator, `http://127.0.0.1:PORT`.
    pub const SANDBOX_ENDPOINT: &str = "SLIPWAY_SANDBOX_ENDPOINT";
    /// Dummy credentials and region; moto accepts any key unless IAM enforcement is on.
    pub const AWS_ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
    pub const AWS_SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
    pub const AWS_DEFAULT_REGION: &str = "AWS_DEFAULT_REGION";
    pub const AWS_REGION: &str = "AWS_REGION";
    /// Set to `1`: keeps Terraform from calling HashiCorp's version-check service, since the
    /// sandbox reaches nothing but loopback.
    pub const CHECKPOINT_DISABLE: &str = "CHECKPOINT_DISABLE";
    /// One provider cache in the sandbox folder, shared by every project and test that uses
    /// the sandbox, so the 170 MB provider is unpacked once rather than once per project.
    pub const TF_PLUGIN_CACHE_DIR: &str = "TF_PLUGIN_CACHE_DIR";
}

/// The region every sandbox resource lives in.
pub const REGION: &str = "us-east-1";
/// The access key and secret moto is given.
pub const DUMMY_CREDENTIAL: &str = "test";
