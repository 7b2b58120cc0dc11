//! The typed plan model: what slipway keeps of a `terraform show -json` plan.
//!
//! Deliberately lossy: attribute values are never kept, only the names of the top-level
//! attributes a change touches, so the model stays small for huge plans and cannot leak
//! sensitive values into reports or policy input.

use serde::{Deserialize, Serialize};

/// What Terraform will do to one resource instance (the `actions` array of a change).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// `["no-op"]`
    NoOp,
    /// `["create"]`
    Create,
    /// `["read"]` (data sources read during apply)
    Read,
    /// `["update"]`
    Update,
    /// `["delete"]`
    Delete,
    /// `["delete","create"]`: replace, destroying the old object first (the default).
    DeleteThenCreate,
    /// `["create","delete"]`: replace under `create_before_destroy`.
    CreateThenDelete,
    /// `["forget"]` (Terraform 1.7+ `removed { lifecycle { destroy = false } }`).
    Forget,
    /// `["create","forget"]`: replace where the old object is forgotten, not destroyed.
    CreateThenForget,
}

impl Action {
    /// Maps a plan's `actions` array to an action; `None` for a combination Terraform does
    /// not write.
    pub fn from_actions<S: AsRef<str>>(actions: &[S]) -> Option<Action> {
        match actions {
            [one] => Self::from_joined(one.as_ref()),
            [first, second] => match (first.as_ref(), second.as_ref()) {
                ("delete", "create") => Some(Action::DeleteThenCreate),
                ("create", "delete") => Some(Action::CreateThenDelete),
                ("create", "forget") => Some(Action::CreateThenForget),
                _ => None,
            },
            _ => None,
        }
    }

    /// Maps an `actions` array joined with commas (`"delete,create"`) to an action.
    pub fn from_joined(joined: &str) -> Option<Action> {
        Some(match joined {
            "no-op" => Action::NoOp,
            "create" => Action::Create,
            "read" => Action::Read,
            "update" => Action::Update,
            "delete" => Action::Delete,
            "delete,create" => Action::DeleteThenCreate,
            "create,delete" => Action::CreateThenDelete,
            "forget" => Action::Forget,
            "create,forget" => Action::CreateThenForget,
            _ => return None,
        })
    }

    /// The `actions` array as Terraform writes it, joined with commas (`"delete,create"`).
    pub fn as_actions_str(self) -> &'static str {
        match self {
            Action::NoOp => "no-op",
            Action::Create => "create",
            Action::Read => "read",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::DeleteThenCreate => "delete,create",
            Action::CreateThenDelete => "create,delete",
            Action::Forget => "forget",
            Action::CreateThenForget => "create,forget",
        }
    }

    /// The kind this action is counted under in a blast radius.
    pub fn kind(self) -> ActionKind {
        match self {
            Action::NoOp => ActionKind::NoOp,
            Action::Create => ActionKind::Create,
            Action::Read => ActionKind::Read,
            Action::Update => ActionKind::Update,
            Action::Delete => ActionKind::Delete,
            Action::DeleteThenCreate | Action::CreateThenDelete | Action::CreateThenForget => {
                ActionKind::Replace
            }
            Action::Forget => ActionKind::Forget,
        }
    }

    /// Whether the existing object is destroyed (deleted, or replaced by destroying it).
    pub fn destroys(self) -> bool {
        matches!(
            self,
            Action::Delete | Action::DeleteThenCreate | Action::CreateThenDelete
        )
    }
}

/// The coarse kind of an action, as counted in reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionKind {
    Create,
    Update,
    Replace,
    Delete,
    Forget,
    Read,
    NoOp,
}

impl ActionKind {
    /// Every kind, in report order.
    pub const ALL: [ActionKind; 7] = [
        ActionKind::Create,
        ActionKind::Update,
        ActionKind::Replace,
        ActionKind::Delete,
        ActionKind::Forget,
        ActionKind::Read,
        ActionKind::NoOp,
    ];

    /// The kind's name in reports and policy input.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Create => "create",
            ActionKind::Update => "update",
            ActionKind::Replace => "replace",
            ActionKind::Delete => "delete",
            ActionKind::Forget => "forget",
            ActionKind::Read => "read",
            ActionKind::NoOp => "no-op",
        }
    }
}

/// Whether a resource is managed or a data source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ResourceMode {
    #[default]
    Managed,
    Data,
}

/// One entry of `resource_changes` (or `resource_drift`), without attribute values.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResourceChange {
    pub address: String,
    /// Set when the resource moved (`moved {}` block or `terraform state mv` in the plan).
    pub previous_address: Option<String>,
    pub module_address: Option<String>,
    pub mode: ResourceMode,
    #[serde(rename = "type")]
    pub resource_type: String,
    pub name: String,
    pub provider_name: Option<String>,
    /// Set for changes to a deposed object left over from a failed create-before-destroy.
    pub deposed: Option<String>,
    pub action: Action,
    pub action_reason: Option<String>,
    /// The object is being imported by this plan (Terraform 1.5+ `import {}` blocks).
    pub importing: bool,
    /// Attribute paths that force replacement, rendered like `tags["env"]` or `ingress[0].cidr`.
    pub replace_paths: Vec<String>,
    /// Top-level attributes whose value differs between before and after, or is unknown
    /// until apply. Empty for creates and deletes.
    pub changed_attributes: Vec<String>,
    /// Top-level attributes marked sensitive before or after; their values are never kept.
    pub sensitive_attributes: Vec<String>,
}

impl ResourceChange {
    /// Whether the plan moves this resource from another address.
    pub fn moved(&self) -> bool {
        self.previous_address
            .as_deref()
            .is_some_and(|previous| previous != self.address)
    }
}

/// One entry of `output_changes`; the value itself is never kept.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutputChange {
    pub name: String,
    pub action: Action,
    pub sensitive: bool,
}

/// A plan read from `terraform show -json` / `tofu show -json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub format_version: String,
    pub terraform_version: Option<String>,
    pub resource_changes: Vec<ResourceChange>,
    /// Changes made outside Terraform, found while refreshing.
    pub resource_drift: Vec<ResourceChange>,
    pub output_changes: Vec<OutputChange>,
}
