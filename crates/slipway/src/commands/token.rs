//! `slipway token`: the API tokens of `slipway serve`, made and revoked by someone who can
//! reach the run record (the server's operator). A token is printed once, on stdout, and
//! only its hash is kept. See docs/server.md.

use anyhow::{Context as _, Result};
use clap::{Args, Subcommand, ValueEnum};
use slipway_store::{AuditAction, NewAuditEntry, NewToken, Role, ServiceRecord as _, Store as _};

use super::ExitStatus;
use crate::project::{Workspace, find_stage};
use crate::record;

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub command: TokenCommand,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a token and print it (once: only its hash is kept).
    ///
    /// Roles, each allowed what the ones before it are: viewer (read), deployer (queue runs),
    /// approver (approve and reject), admin (manage tokens). With --stage the role holds at
    /// that stage only, and the token is a viewer elsewhere.
    Create(CreateArgs),
    /// List tokens: who, which role, where, when made, whether revoked.
    List,
    /// Revoke a token by its id (from `slipway token list`).
    Revoke(RevokeArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Who the token acts as: recorded with everything done with it, and compared with a
    /// commit's author and a run's starter where a stage needs four eyes.
    #[arg(long, value_name = "NAME")]
    pub actor: String,
    /// What the token may do.
    #[arg(long, value_enum)]
    pub role: RoleArg,
    /// Bind the role to one stage.
    #[arg(long, short = 's', value_name = "STAGE")]
    pub stage: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    Viewer,
    Deployer,
    Approver,
    Admin,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Self {
        match role {
            RoleArg::Viewer => Role::Viewer,
            RoleArg::Deployer => Role::Deployer,
            RoleArg::Approver => Role::Approver,
            RoleArg::Admin => Role::Admin,
        }
    }
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The token's id.
    #[arg(value_name = "ID")]
    pub id: i64,
}

pub async fn run(workspace: &Workspace, args: &TokenArgs) -> Result<ExitStatus> {
    let store = record::open(workspace).await?;
    let me = &workspace.settings.actor;
    match &args.command {
        TokenCommand::Create(create) => {
            if let Some(stage) = &create.stage {
                find_stage(workspace, stage)?;
            }
            let secret = slipway_server::new_token().context("cannot make a random token")?;
            let token = store
                .create_token(&NewToken {
                    actor: create.actor.clone(),
                    role: create.role.into(),
                    stage: create.stage.clone(),
                    token_hash: secret.hash,
                    created_by: me.clone(),
                })
                .await?;
            store
                .append_audit(&NewAuditEntry {
                    actor: me.clone(),
                    action: AuditAction::TokenCreate,
                    stage: create.stage.clone(),
                    stack: None,
                    run_id: None,
                    details: serde_json::json!({ "token": token.id, "for": token.actor, "role": token.role }),
                })
                .await?;
            println!("{}", secret.token);
            eprintln!(
                "token {} for {} ({}{}) made; it is shown this once\n  use: curl -H \"Authorization: Bearer $TOKEN\" http://HOST/api/v1/project",
                token.id,
                token.actor,
                token.role,
                token
                    .stage
                    .as_deref()
                    .map(|s| format!(" at stage {s}"))
                    .unwrap_or_default()
            );
        }
        TokenCommand::List => {
            for token in store.tokens().await? {
                println!(
                    "{:>4}  {:<16} {:<9} {:<10} made {} by {}{}",
                    token.id,
                    token.actor,
                    token.role.as_str(),
                    token.stage.as_deref().unwrap_or("all stages"),
                    token.created_at.to_rfc3339(),
                    token.created_by,
                    token
                        .revoked_at
                        .map(|at| format!(", revoked {}", at.to_rfc3339()))
                        .unwrap_or_default()
                );
            }
        }
        TokenCommand::Revoke(revoke) => {
            if !store.revoke_token(revoke.id).await? {
                anyhow::bail!(
                    "there is no live token {}\n  help: `slipway token list` shows them",
                    revoke.id
                );
            }
            store
                .append_audit(&NewAuditEntry {
                    actor: me.clone(),
                    action: AuditAction::TokenRevoke,
                    stage: None,
                    stack: None,
                    run_id: None,
                    details: serde_json::json!({ "token": revoke.id }),
                })
                .await?;
            eprintln!("token {} revoked", revoke.id);
        }
    }
    Ok(ExitStatus::Success)
}
