//! A compact, sorted inventory of what moto holds, asked through the AWS APIs.
//!
//! Tests use it to confirm through the emulator (not through Terraform's state) that a
//! stack really created or destroyed its resources. `inventory.py` lists resources with
//! boto3 (which comes with moto) and prints JSON; [`Inventory::from_listing`] turns that
//! into the inventory. moto's own `/moto-api/data.json` cannot serve: it keeps every object
//! created since the last reset, deleted ones included.
//!
//! Only resources a stack can make are kept: the default VPC, its per-zone subnets and every
//! VPC's `default` security group, which moto creates by itself, are left out so that an
//! untouched account reads as empty.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::SandboxError;

/// The resources moto holds, each list sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Inventory {
    pub s3_buckets: Vec<String>,
    pub dynamodb_tables: Vec<String>,
    pub sqs_queues: Vec<String>,
    pub vpcs: Vec<Vpc>,
    pub subnets: Vec<Subnet>,
    pub security_groups: Vec<SecurityGroup>,
    pub iam_roles: Vec<String>,
    /// Customer managed policies (not the AWS managed ones moto preloads).
    pub iam_policies: Vec<String>,
    /// Inline role policies, as `role/policy`.
    pub iam_role_policies: Vec<String>,
}

/// A VPC that is not the account's default VPC.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Vpc {
    pub cidr: String,
    pub id: String,
}

/// A subnet that is not one of the default VPC's per-zone subnets.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Subnet {
    pub cidr: String,
    pub vpc_id: String,
    pub id: String,
}

/// A security group other than a VPC's `default` group.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SecurityGroup {
    pub name: String,
    pub vpc_id: String,
    pub id: String,
}

impl Inventory {
    /// Reads the JSON `inventory.py` prints.
    pub fn from_listing(json: &str) -> Result<Inventory, SandboxError> {
        let listing: Listing = serde_json::from_str(json).map_err(SandboxError::Listing)?;
        let mut inventory = Inventory {
            s3_buckets: listing.s3_buckets,
            dynamodb_tables: listing.dynamodb_tables,
            sqs_queues: listing.sqs_queues,
            vpcs: listing
                .vpcs
                .into_iter()
                .filter(|vpc| !vpc.is_default)
                .map(|vpc| Vpc {
                    cidr: vpc.cidr,
                    id: vpc.id,
                })
                .collect(),
            subnets: listing
                .subnets
                .into_iter()
                .filter(|subnet| !subnet.default_for_az)
                .map(|subnet| Subnet {
                    cidr: subnet.cidr,
                    vpc_id: subnet.vpc_id,
                    id: subnet.id,
                })
                .collect(),
            // AWS refuses to create a group named "default": every one is a VPC's own.
            security_groups: listing
                .security_groups
                .into_iter()
                .filter(|group| group.name != "default")
                .collect(),
            iam_roles: listing.iam_roles,
            iam_policies: listing.iam_policies,
            iam_role_policies: listing.iam_role_policies,
        };
        inventory.sort();
        Ok(inventory)
    }

    /// True when moto holds none of the resources this inventory tracks.
    pub fn is_empty(&self) -> bool {
        *self == Inventory::default()
    }

    fn sort(&mut self) {
        self.s3_buckets.sort();
        self.dynamodb_tables.sort();
        self.sqs_queues.sort();
        self.vpcs.sort();
        self.subnets.sort();
        self.security_groups.sort();
        self.iam_roles.sort();
        self.iam_policies.sort();
        self.iam_role_policies.sort();
    }
}

/// One line per resource, `kind  name [details]`; ids are left out so the text is stable
/// across runs (moto makes ids up).
impl fmt::Display for Inventory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for name in &self.s3_buckets {
            writeln!(f, "s3 bucket          {name}")?;
        }
        for name in &self.dynamodb_tables {
            writeln!(f, "dynamodb table     {name}")?;
        }
        for name in &self.sqs_queues {
            writeln!(f, "sqs queue          {name}")?;
        }
        for vpc in &self.vpcs {
            writeln!(f, "vpc                {}", vpc.cidr)?;
        }
        for subnet in &self.subnets {
            writeln!(f, "subnet             {}", subnet.cidr)?;
        }
        for group in &self.security_groups {
            writeln!(f, "security group     {}", group.name)?;
        }
        for name in &self.iam_roles {
            writeln!(f, "iam role           {name}")?;
        }
        for name in &self.iam_policies {
            writeln!(f, "iam policy         {name}")?;
        }
        for name in &self.iam_role_policies {
            writeln!(f, "iam role policy    {name}")?;
        }
        Ok(())
    }
}

/// What `inventory.py` prints: every resource, moto's own defaults included and flagged.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Listing {
    s3_buckets: Vec<String>,
    dynamodb_tables: Vec<String>,
    sqs_queues: Vec<String>,
    vpcs: Vec<ListedVpc>,
    subnets: Vec<ListedSubnet>,
    security_groups: Vec<SecurityGroup>,
    iam_roles: Vec<String>,
    iam_policies: Vec<String>,
    iam_role_policies: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct ListedVpc {
    id: String,
    cidr: String,
    is_default: bool,
}

#[derive(Debug, Deserialize)]
struct ListedSubnet {
    id: String,
    vpc_id: String,
    cidr: String,
    default_for_az: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `inventory.py`'s output saved from moto 5.2 with the webshop example's dev stage
    /// applied, plus one customer managed policy.
    const FIXTURE: &str = include_str!("../tests/fixtures/moto-listing.json");

    fn fixture() -> Inventory {
        Inventory::from_listing(FIXTURE).expect("fixture parses")
    }

    #[test]
    fn reads_every_tracked_kind() {
        insta::assert_snapshot!(fixture().to_string());
    }

    #[test]
    fn leaves_out_what_moto_creates_by_itself() {
        let inventory = fixture();
        assert!(inventory.vpcs.iter().all(|v| v.cidr != "172.31.0.0/16"));
        assert!(
            inventory
                .subnets
                .iter()
                .all(|s| !s.cidr.starts_with("172.31."))
        );
        assert!(
            inventory
                .security_groups
                .iter()
                .all(|g| g.name != "default")
        );
    }

    #[test]
    fn subnets_and_groups_point_at_their_vpc() {
        let inventory = fixture();
        let [vpc] = inventory.vpcs.as_slice() else {
            panic!("expected one VPC: {inventory:?}");
        };
        assert_eq!(inventory.subnets.len(), 2);
        assert!(inventory.subnets.iter().all(|s| s.vpc_id == vpc.id));
        assert!(inventory.security_groups.iter().all(|g| g.vpc_id == vpc.id));
    }

    #[test]
    fn an_account_holding_only_defaults_is_empty() {
        let listing = serde_json::json!({
            "s3_buckets": [], "dynamodb_tables": [], "sqs_queues": [],
            "vpcs": [{"id": "vpc-1", "cidr": "172.31.0.0/16", "is_default": true}],
            "subnets": [{"id": "subnet-1", "vpc_id": "vpc-1", "cidr": "172.31.0.0/20", "default_for_az": true}],
            "security_groups": [{"id": "sg-1", "name": "default", "vpc_id": "vpc-1"}],
            "iam_roles": [], "iam_policies": [], "iam_role_policies": []
        });
        let inventory = Inventory::from_listing(&listing.to_string()).expect("parses");
        assert!(inventory.is_empty(), "{inventory:?}");
        assert_eq!(inventory.to_string(), "");
    }

    #[test]
    fn lists_are_sorted() {
        let listing = serde_json::json!({
            "s3_buckets": [], "dynamodb_tables": [], "sqs_queues": ["b", "a", "c"],
            "vpcs": [], "subnets": [], "security_groups": [],
            "iam_roles": [], "iam_policies": [], "iam_role_policies": []
        });
        let inventory = Inventory::from_listing(&listing.to_string()).expect("parses");
        assert_eq!(inventory.sqs_queues, ["a", "b", "c"]);
        assert!(!inventory.is_empty());
    }

    #[test]
    fn a_listing_of_another_shape_is_an_error() {
        for text in ["", "{}", "[]", r#"{"s3_buckets": "not a list"}"#] {
            let error = Inventory::from_listing(text).expect_err(text);
            assert!(matches!(error, SandboxError::Listing(_)), "{text}: {error}");
        }
    }
}
