//! Which permission domain and which technical capability a resource type belongs to.
//!
//! One documented table of resource type patterns (AWS, Google Cloud, Azure), overridable
//! per project. A pattern is a type prefix (`aws_iam_`); a pattern starting with `*` matches
//! anywhere in the type (`*_iam_` catches `google_storage_bucket_iam_member`). The most
//! specific match wins: a prefix counts by its length, a `*` pattern by where its match
//! ends; so an override `aws_iam_role` beats the default `aws_iam_`.
//! Types no pattern matches are "other" and take part in no recommendation.

use std::collections::BTreeMap;

/// The domain of a type no pattern matches.
pub const OTHER: &str = "other";

/// `(pattern, permission domain, capability)`, the defaults documented in docs/advisor.md.
pub const DEFAULTS: &[(&str, &str, &str)] = &[
    // AWS
    ("aws_iam_", "identity", "identity"),
    ("aws_organizations_", "identity", "identity"),
    ("aws_ssoadmin_", "identity", "identity"),
    ("aws_kms_", "encryption", "secrets"),
    ("aws_acm_", "encryption", "secrets"),
    ("aws_secretsmanager_", "secrets", "secrets"),
    ("aws_ssm_parameter", "secrets", "secrets"),
    ("aws_route53_", "dns", "networking"),
    ("aws_vpc", "network", "networking"),
    ("aws_subnet", "network", "networking"),
    ("aws_route", "network", "networking"),
    ("aws_internet_gateway", "network", "networking"),
    ("aws_nat_gateway", "network", "networking"),
    ("aws_eip", "network", "networking"),
    ("aws_security_group", "network", "networking"),
    ("aws_network_", "network", "networking"),
    ("aws_ec2_transit_gateway", "network", "networking"),
    ("aws_lb", "network", "networking"),
    ("aws_alb", "network", "networking"),
    ("aws_cloudfront_", "network", "networking"),
    ("aws_instance", "compute", "compute"),
    ("aws_launch_template", "compute", "compute"),
    ("aws_autoscaling_", "compute", "compute"),
    ("aws_ecs_", "compute", "compute"),
    ("aws_eks_", "compute", "compute"),
    ("aws_lambda_", "compute", "compute"),
    ("aws_ecr_", "compute", "compute"),
    ("aws_s3_", "data", "storage"),
    ("aws_dynamodb_", "data", "storage"),
    ("aws_db_", "data", "storage"),
    ("aws_rds_", "data", "storage"),
    ("aws_elasticache_", "data", "storage"),
    ("aws_efs_", "data", "storage"),
    ("aws_sqs_", "messaging", "messaging"),
    ("aws_sns_", "messaging", "messaging"),
    ("aws_kinesis_", "messaging", "messaging"),
    ("aws_cloudwatch_", "monitoring", "observability"),
    // Google Cloud
    ("*_iam_", "identity", "identity"),
    ("google_service_account", "identity", "identity"),
    ("google_kms_", "encryption", "secrets"),
    ("google_secret_manager_", "secrets", "secrets"),
    ("google_dns_", "dns", "networking"),
    ("google_compute_network", "network", "networking"),
    ("google_compute_subnetwork", "network", "networking"),
    ("google_compute_firewall", "network", "networking"),
    ("google_compute_router", "network", "networking"),
    ("google_compute_address", "network", "networking"),
    ("google_compute_instance", "compute", "compute"),
    ("google_container_", "compute", "compute"),
    ("google_cloudfunctions", "compute", "compute"),
    ("google_cloud_run_", "compute", "compute"),
    ("google_storage_", "data", "storage"),
    ("google_sql_", "data", "storage"),
    ("google_bigquery_", "data", "storage"),
    ("google_pubsub_", "messaging", "messaging"),
    ("google_monitoring_", "monitoring", "observability"),
    // Azure
    ("azuread_", "identity", "identity"),
    ("azurerm_role_", "identity", "identity"),
    ("azurerm_user_assigned_identity", "identity", "identity"),
    ("azurerm_key_vault", "encryption", "secrets"),
    ("azurerm_dns_", "dns", "networking"),
    ("azurerm_private_dns_", "dns", "networking"),
    ("azurerm_virtual_network", "network", "networking"),
    ("azurerm_subnet", "network", "networking"),
    ("azurerm_network_", "network", "networking"),
    ("azurerm_public_ip", "network", "networking"),
    ("azurerm_lb", "network", "networking"),
    ("azurerm_linux_virtual_machine", "compute", "compute"),
    ("azurerm_windows_virtual_machine", "compute", "compute"),
    ("azurerm_kubernetes_cluster", "compute", "compute"),
    ("azurerm_app_service", "compute", "compute"),
    ("azurerm_function_app", "compute", "compute"),
    ("azurerm_storage_", "data", "storage"),
    ("azurerm_mssql_", "data", "storage"),
    ("azurerm_postgresql_", "data", "storage"),
    ("azurerm_cosmosdb_", "data", "storage"),
    ("azurerm_servicebus_", "messaging", "messaging"),
    ("azurerm_eventhub", "messaging", "messaging"),
    ("azurerm_monitor_", "monitoring", "observability"),
];

/// The two maps, defaults plus a project's overrides.
#[derive(Debug, Clone)]
pub struct TypeMap {
    domains: Vec<(String, String)>,
    capabilities: Vec<(String, String)>,
}

impl Default for TypeMap {
    fn default() -> Self {
        Self::new(&BTreeMap::new(), &BTreeMap::new())
    }
}

impl TypeMap {
    /// The defaults, with `domains` and `capabilities` (pattern to name) added on top; an
    /// override with the same pattern as a default replaces it.
    pub fn new(
        domains: &BTreeMap<String, String>,
        capabilities: &BTreeMap<String, String>,
    ) -> Self {
        let merge = |pick: fn(&(&'static str, &'static str, &'static str)) -> &'static str,
                     extra: &BTreeMap<String, String>| {
            let mut map: BTreeMap<String, String> = DEFAULTS
                .iter()
                .map(|row| (row.0.to_owned(), pick(row).to_owned()))
                .collect();
            map.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
            let mut rows: Vec<(String, String)> = map.into_iter().collect();
            // Longest pattern first, so on equal scores the longer pattern wins.
            rows.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
            rows
        };
        Self {
            domains: merge(|r| r.1, domains),
            capabilities: merge(|r| r.2, capabilities),
        }
    }

    /// The permission domain of a resource type.
    pub fn domain(&self, kind: &str) -> &str {
        lookup(&self.domains, kind)
    }

    /// The capability of a resource type.
    pub fn capability(&self, kind: &str) -> &str {
        lookup(&self.capabilities, kind)
    }
}

fn lookup<'a>(rows: &'a [(String, String)], kind: &str) -> &'a str {
    // The most specific pattern wins: a prefix by its length, a `*` pattern by where its
    // match ends, so `*_iam_` beats `google_storage_` for `google_storage_bucket_iam_member`
    // while an override `aws_iam_role` still beats `*_iam_` for `aws_iam_role`.
    let mut best: Option<(usize, &str)> = None;
    for (pattern, name) in rows {
        let score = match pattern.strip_prefix('*') {
            Some(inner) => kind.find(inner).map(|at| at + inner.len()),
            None => kind.starts_with(pattern.as_str()).then_some(pattern.len()),
        };
        if let Some(score) = score {
            if best.is_none_or(|(b, _)| score > b) {
                best = Some((score, name));
            }
        }
    }
    best.map_or(OTHER, |(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_pattern_wins_and_overrides_apply() {
        let map = TypeMap::default();
        assert_eq!(map.domain("aws_iam_role"), "identity");
        assert_eq!(map.domain("aws_vpc_endpoint"), "network");
        assert_eq!(map.domain("google_storage_bucket_iam_member"), "identity");
        assert_eq!(map.domain("google_storage_bucket"), "data");
        assert_eq!(map.capability("aws_route53_zone"), "networking");
        assert_eq!(map.domain("random_pet"), OTHER);
        let custom = TypeMap::new(
            &BTreeMap::from([("aws_iam_role".to_owned(), "workload".to_owned())]),
            &BTreeMap::new(),
        );
        assert_eq!(custom.domain("aws_iam_role"), "workload");
        assert_eq!(custom.domain("aws_iam_user"), "identity");
    }
}
