//! The engine binaries the compatibility suite runs against: the sandbox's Terraform 1.0.3,
//! every `terraform` and `tofu` on `PATH`, and the binaries `SLIPWAY_TEST_ENGINES` names
//! (colon-separated paths). Each is asked its version once.

use std::path::{Path, PathBuf};
use std::process::Command;

pub use crate::env::TEST_ENGINES;

/// Below this, an engine predates the plugin cache and lock file rules teams run today:
/// a suite that found nothing newer says so loudly.
pub const MODERN: (u32, u32) = (1, 5);

/// One engine binary and what it says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineBinary {
    pub path: PathBuf,
    /// `terraform` or `tofu`.
    pub kind: &'static str,
    /// `1.11.4`, as `version -json` reports it.
    pub version: String,
}

impl EngineBinary {
    /// Asks `path` for its version; `None` when it is not an engine that answers.
    pub fn probe(path: &Path) -> Option<Self> {
        let output = Command::new(path)
            .args(["version", "-json"])
            .env("CHECKPOINT_DISABLE", "1")
            .output()
            .ok()?;
        let value: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
        let version = value["terraform_version"].as_str()?.to_owned();
        let name = path.file_name()?.to_string_lossy();
        let kind = if name.contains("tofu") || is_tofu(path) {
            "tofu"
        } else {
            "terraform"
        };
        Some(Self {
            path: path.to_path_buf(),
            kind,
            version,
        })
    }

    /// `(major, minor)` of the version.
    pub fn major_minor(&self) -> (u32, u32) {
        major_minor(&self.version)
    }

    /// Whether this engine has the rules of Terraform 1.5 or later (every OpenTofu does).
    pub fn is_modern(&self) -> bool {
        self.kind == "tofu" || self.major_minor() >= MODERN
    }

    /// `terraform 1.11.4`.
    pub fn label(&self) -> String {
        format!("{} {}", self.kind, self.version)
    }
}

fn is_tofu(path: &Path) -> bool {
    Command::new(path)
        .arg("version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).starts_with("OpenTofu"))
}

/// `(major, minor)` of a version string such as `1.11.4` or `1.10.0-beta1`; zeros where
/// unreadable.
pub fn major_minor(version: &str) -> (u32, u32) {
    let mut parts = version
        .trim_start_matches('v')
        .split(['.', '-'])
        .map(|p| p.parse().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// The engines to test: `sandbox` first, then each `terraform`/`tofu` on `path` and each
/// binary in `extra` (the value of [`TEST_ENGINES`]), each binary once.
pub fn discover(sandbox: &Path, path: Option<&str>, extra: Option<&str>) -> Vec<EngineBinary> {
    let mut candidates = vec![sandbox.to_path_buf()];
    for dir in std::env::split_paths(path.unwrap_or_default()) {
        for name in ["terraform", "tofu"] {
            let candidate = dir.join(name);
            if candidate.is_file() {
                candidates.push(candidate);
            }
        }
    }
    candidates.extend(
        extra
            .unwrap_or_default()
            .split(':')
            .filter(|p| !p.is_empty())
            .map(PathBuf::from),
    );
    let mut seen = Vec::new();
    let mut engines = Vec::new();
    for candidate in candidates {
        let canonical = candidate
            .canonicalize()
            .unwrap_or_else(|_| candidate.clone());
        if seen.contains(&canonical) {
            continue;
        }
        seen.push(canonical);
        if let Some(engine) = EngineBinary::probe(&candidate) {
            engines.push(engine);
        }
    }
    engines
}

/// The banner a run prints when it found no engine newer than [`MODERN`].
pub fn no_modern_engine_banner(found: &[EngineBinary]) -> String {
    let found = found
        .iter()
        .map(|e| format!("{} ({})", e.label(), e.path.display()))
        .collect::<Vec<_>>()
        .join(", ");
    let rule = "!".repeat(78);
    format!(
        "{rule}\n!! ENGINE COMPATIBILITY: no Terraform >= {}.{} or OpenTofu was found.\n!! Only these were exercised: {found}.\n!! Put a newer `terraform` or `tofu` on PATH, or name binaries in {TEST_ENGINES}\n!! (colon-separated paths), to test the versions teams run today.\n{rule}",
        MODERN.0, MODERN.1
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_by_major_and_minor() {
        assert_eq!(major_minor("1.0.3"), (1, 0));
        assert_eq!(major_minor("1.11.4"), (1, 11));
        assert_eq!(major_minor("v1.10.0-beta1"), (1, 10));
        assert_eq!(major_minor("junk"), (0, 0));
        let engine = |kind, version: &str| EngineBinary {
            path: PathBuf::from("/x"),
            kind,
            version: version.into(),
        };
        assert!(!engine("terraform", "1.0.3").is_modern());
        assert!(!engine("terraform", "1.4.7").is_modern());
        assert!(engine("terraform", "1.5.0").is_modern());
        assert!(engine("tofu", "1.6.0").is_modern());
        let banner = no_modern_engine_banner(&[engine("terraform", "1.0.3")]);
        assert!(banner.contains("terraform 1.0.3 (/x)"), "{banner}");
        assert!(banner.contains(TEST_ENGINES), "{banner}");
    }

    #[test]
    fn discovery_skips_what_is_not_an_engine_and_lists_each_binary_once() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("terraform");
        std::fs::write(
            &fake,
            "#!/bin/sh\necho '{\"terraform_version\": \"1.9.8\"}'\n",
        )
        .unwrap();
        let other = dir.path().join("tofu");
        std::fs::write(&other, "#!/bin/sh\necho not json\n").unwrap();
        for file in [&fake, &other] {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let path = dir.path().display().to_string();
        let engines = discover(&fake, Some(&path), Some(&format!("{}:", fake.display())));
        assert_eq!(
            engines,
            vec![EngineBinary {
                path: fake.clone(),
                kind: "terraform",
                version: "1.9.8".into()
            }]
        );
    }
}
