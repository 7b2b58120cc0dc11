//! `cargo xtask sandbox`: install the sandbox and keep moto running in the foreground,
//! print its environment, or run one command inside it.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::{Context as _, Result};
use slipway_sandbox::{Sandbox, default_dir};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only install the sandbox (if needed) and exit.
    #[arg(long, conflicts_with = "exec")]
    install_only: bool,
    /// Start moto, run the command given after `--` with the sandbox environment, stop moto
    /// and exit with the command's exit code.
    /// Example: `cargo xtask sandbox --exec -- terraform version`.
    #[arg(long, requires = "command")]
    exec: bool,
    /// The command for `--exec`.
    #[arg(last = true, value_name = "CMD", requires = "exec")]
    command: Vec<String>,
    /// Cache folder to install into [default: $SLIPWAY_SANDBOX_DIR, else .sandbox at the
    /// workspace root].
    #[arg(long)]
    dir: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let dir = args.dir.unwrap_or_else(default_dir);
    let sandbox = Sandbox::ensure_installed(&dir)
        .with_context(|| format!("installing the sandbox in {}", dir.display()))?;
    if args.install_only {
        eprintln!("sandbox ready in {}", sandbox.root.display());
        return Ok(ExitCode::SUCCESS);
    }
    let mut moto = sandbox.start_moto().context("starting moto")?;

    if args.exec {
        let (program, rest) = args
            .command
            .split_first()
            .context("--exec needs a command to run after `--`")?;
        let status = Command::new(program)
            .args(rest)
            .envs(moto.env())
            .status()
            .with_context(|| format!("running {program}"))?;
        drop(moto);
        // A command killed by a signal has no code; report it as a failure.
        let code = status.code().unwrap_or(1);
        return Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)));
    }

    for (name, value) in moto.env() {
        println!("export {name}={}", shell_quote(&value));
    }
    eprintln!(
        "\nmoto is running at {} (Terraform {} from {}).\n\
         In another terminal, paste the export lines above, then for example:\n  \
         cd examples/webshop && slipway apply --stage dev\n\
         Press Ctrl-C to stop moto; its state lives in memory and goes with it.",
        moto.endpoint(),
        slipway_sandbox::TERRAFORM_VERSION,
        sandbox.root.display(),
    );
    // Ctrl-C ends this process and, with it, moto (same process group). Until then, watch
    // that moto stays up: a sandbox that died silently would puzzle whoever uses it.
    while moto.is_running() {
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    let log = std::fs::read_to_string(moto.log_path()).unwrap_or_default();
    anyhow::bail!("moto stopped unexpectedly; its log:\n{log}")
}

/// Quotes a value for POSIX shells when it holds anything beyond a safe set of characters.
fn shell_quote(value: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "/._-:=@%+,".contains(c);
    if !value.is_empty() && value.chars().all(safe) {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::shell_quote;

    #[test]
    fn quotes_only_what_needs_it() {
        assert_eq!(
            shell_quote("http://127.0.0.1:4566"),
            "http://127.0.0.1:4566"
        );
        assert_eq!(shell_quote("/a b/terraform"), "'/a b/terraform'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
