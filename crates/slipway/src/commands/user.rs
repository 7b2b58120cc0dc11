//! `slipway user`: the people who sign in to the web pages of `slipway serve`, added and
//! removed by someone who can reach the run record (the server's operator). A password is
//! read from stdin (`--password-stdin`) or asked for on the terminal, never taken as an
//! argument (it would sit in the shell's history and the process list); only its Argon2id
//! hash is kept. See docs/web.md.

use std::io::{BufRead as _, IsTerminal as _};

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};
use slipway_store::{AuditAction, NewAuditEntry, NewUser, Store as _, UserRecord as _};

use super::ExitStatus;
use super::token::RoleArg;
use crate::project::Workspace;
use crate::record;

/// The shortest password accepted.
const MIN_PASSWORD: usize = 12;

#[derive(Debug, Args)]
pub struct UserArgs {
    #[command(subcommand)]
    pub command: UserCommand,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user of the web pages, with a password and a role.
    ///
    /// Roles, each allowed what the ones before it are: viewer (read), deployer (queue runs),
    /// approver (approve and reject), admin. The name is who the user acts as: recorded with
    /// what they do, and compared with a commit's author where a stage needs four eyes.
    Add(AddArgs),
    /// List users: name, role, when added and by whom.
    List,
    /// Remove a user; their sessions end at once.
    Remove(RemoveArgs),
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The user's name.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// What the user may do.
    #[arg(long, value_enum)]
    pub role: RoleArg,
    /// Read the password from the first line of stdin instead of asking for it.
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// The user's name.
    #[arg(value_name = "NAME")]
    pub name: String,
}

pub async fn run(workspace: &Workspace, args: &UserArgs) -> Result<ExitStatus> {
    let store = record::open(workspace).await?;
    match &args.command {
        UserCommand::Add(add) => {
            let name = add.name.trim();
            if name.is_empty() || name.chars().any(char::is_control) {
                bail!("a user's name must be printable text");
            }
            let password = read_password(add.password_stdin)?;
            if password.chars().count() < MIN_PASSWORD {
                bail!("the password is shorter than {MIN_PASSWORD} characters");
            }
            let hash =
                tokio::task::spawn_blocking(move || slipway_server::web::hash_password(&password))
                    .await
                    .context("the hashing task stopped")?
                    .map_err(anyhow::Error::msg)?;
            let made = store
                .create_user(&NewUser {
                    name: name.to_owned(),
                    role: add.role.into(),
                    password_hash: hash,
                    created_by: workspace.settings.actor.clone(),
                })
                .await?;
            let Some(user) = made else {
                bail!(
                    "there is a user {name} already\n  help: `slipway user remove {name}` first to change their password or role"
                );
            };
            store
                .append_audit(&NewAuditEntry {
                    actor: workspace.settings.actor.clone(),
                    action: AuditAction::UserAdd,
                    stage: None,
                    stack: None,
                    run_id: None,
                    details: serde_json::json!({ "user": user.name, "role": user.role.as_str() }),
                })
                .await?;
            eprintln!(
                "user {} ({}) added; they sign in at the server's / page",
                user.name, user.role
            );
        }
        UserCommand::List => {
            for user in store.users().await? {
                println!(
                    "{:<20} {:<9} added {} by {}",
                    user.name,
                    user.role.as_str(),
                    user.created_at.to_rfc3339(),
                    user.created_by
                );
            }
        }
        UserCommand::Remove(remove) => {
            let name = remove.name.trim();
            if !store.remove_user(name).await? {
                bail!(
                    "there is no user {}\n  help: `slipway user list` shows them",
                    remove.name
                );
            }
            store
                .append_audit(&NewAuditEntry {
                    actor: workspace.settings.actor.clone(),
                    action: AuditAction::UserRemove,
                    stage: None,
                    stack: None,
                    run_id: None,
                    details: serde_json::json!({ "user": name }),
                })
                .await?;
            eprintln!("user {} removed; their sessions ended", remove.name.trim());
        }
    }
    Ok(ExitStatus::Success)
}

/// The password: the first line of stdin with `--password-stdin`, else asked for twice on
/// the terminal without echo.
fn read_password(from_stdin: bool) -> Result<String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from stdin")?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_owned());
    }
    if !std::io::stdin().is_terminal() {
        bail!(
            "no terminal to ask for the password on\n  help: pipe it in with --password-stdin (`printf '%s' \"$PASSWORD\" | slipway user add NAME --role viewer --password-stdin`)"
        );
    }
    let first = rpassword::prompt_password("Password: ").context("cannot read the password")?;
    let second =
        rpassword::prompt_password("The same again: ").context("cannot read the password")?;
    if first != second {
        bail!("the two passwords differ");
    }
    Ok(first)
}
