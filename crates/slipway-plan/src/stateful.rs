//! Which resource types hold data that a delete or replace would lose.

use serde::{Deserialize, Serialize};

use crate::glob::glob_match;

/// Built-in stateful resource types for AWS, Google Cloud and Azure: databases, buckets,
/// tables, volumes, file systems, keys, secrets, DNS zones, caches, streams, registries.
const BUILTIN: &[&str] = &[
    // AWS
    "aws_db_instance",
    "aws_db_cluster_snapshot",
    "aws_db_snapshot",
    "aws_rds_cluster",
    "aws_rds_global_cluster",
    "aws_docdb_cluster",
    "aws_docdb_elastic_cluster",
    "aws_neptune_cluster",
    "aws_redshift_cluster",
    "aws_redshiftserverless_namespace",
    "aws_dynamodb_table",
    "aws_dynamodb_global_table",
    "aws_keyspaces_table",
    "aws_timestreamwrite_table",
    "aws_qldb_ledger",
    "aws_s3_bucket",
    "aws_s3_object",
    "aws_s3_bucket_object",
    "aws_s3control_bucket",
    "aws_glacier_vault",
    "aws_backup_vault",
    "aws_ebs_volume",
    "aws_ebs_snapshot",
    "aws_efs_file_system",
    "aws_fsx_*_file_system",
    "aws_kms_key",
    "aws_kms_external_key",
    "aws_secretsmanager_secret",
    "aws_ssm_parameter",
    "aws_route53_zone",
    "aws_elasticache_cluster",
    "aws_elasticache_replication_group",
    "aws_memorydb_cluster",
    "aws_elasticsearch_domain",
    "aws_opensearch_domain",
    "aws_kinesis_stream",
    "aws_msk_cluster",
    "aws_ecr_repository",
    "aws_cloudwatch_log_group",
    "aws_cognito_user_pool",
    // Google Cloud
    "google_sql_database_instance",
    "google_sql_database",
    "google_alloydb_cluster",
    "google_spanner_instance",
    "google_spanner_database",
    "google_bigtable_instance",
    "google_bigtable_table",
    "google_bigquery_dataset",
    "google_bigquery_table",
    "google_firestore_database",
    "google_storage_bucket",
    "google_storage_bucket_object",
    "google_compute_disk",
    "google_compute_region_disk",
    "google_compute_snapshot",
    "google_filestore_instance",
    "google_kms_key_ring",
    "google_kms_crypto_key",
    "google_secret_manager_secret",
    "google_dns_managed_zone",
    "google_redis_instance",
    "google_memcache_instance",
    "google_artifact_registry_repository",
    "google_pubsub_topic",
    // Azure
    "azurerm_storage_account",
    "azurerm_storage_container",
    "azurerm_storage_blob",
    "azurerm_storage_share",
    "azurerm_storage_table",
    "azurerm_storage_queue",
    "azurerm_mssql_server",
    "azurerm_mssql_database",
    "azurerm_mssql_managed_instance",
    "azurerm_postgresql_server",
    "azurerm_postgresql_database",
    "azurerm_postgresql_flexible_server",
    "azurerm_mysql_server",
    "azurerm_mysql_database",
    "azurerm_mysql_flexible_server",
    "azurerm_mariadb_server",
    "azurerm_cosmosdb_account",
    "azurerm_cosmosdb_*_database",
    "azurerm_cosmosdb_*_container",
    "azurerm_redis_cache",
    "azurerm_managed_disk",
    "azurerm_snapshot",
    "azurerm_netapp_volume",
    "azurerm_key_vault",
    "azurerm_key_vault_key",
    "azurerm_key_vault_secret",
    "azurerm_dns_zone",
    "azurerm_private_dns_zone",
    "azurerm_container_registry",
    "azurerm_log_analytics_workspace",
    "azurerm_recovery_services_vault",
];

/// How configuration changes the built-in list: `replace` (when given) stands instead of
/// it; `extend` adds to whichever list is in force.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StatefulConfig {
    pub extend: Vec<String>,
    pub replace: Option<Vec<String>>,
}

/// The set of stateful resource type patterns in force.
#[derive(Debug, Clone, PartialEq)]
pub struct StatefulTypes {
    patterns: Vec<String>,
}

impl Default for StatefulTypes {
    fn default() -> Self {
        Self::builtin()
    }
}

impl StatefulTypes {
    /// The built-in list for AWS, Google Cloud and Azure.
    pub fn builtin() -> Self {
        Self {
            patterns: BUILTIN.iter().map(|p| (*p).to_string()).collect(),
        }
    }

    /// Exactly these patterns, without the built-in list.
    pub fn replaced(patterns: Vec<String>) -> Self {
        Self { patterns }
    }

    /// Adds patterns to the list.
    pub fn extended(mut self, patterns: impl IntoIterator<Item = String>) -> Self {
        self.patterns.extend(patterns);
        self
    }

    /// The list a configuration asks for.
    pub fn from_config(config: &StatefulConfig) -> Self {
        let base = match &config.replace {
            Some(patterns) => Self::replaced(patterns.clone()),
            None => Self::builtin(),
        };
        base.extended(config.extend.iter().cloned())
    }

    /// Whether resources of this type hold data.
    pub fn is_stateful(&self, resource_type: &str) -> bool {
        self.patterns
            .iter()
            .any(|pattern| glob_match(pattern, resource_type))
    }

    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_extend_and_replace() {
        let builtin = StatefulTypes::builtin();
        assert!(builtin.is_stateful("aws_dynamodb_table"));
        assert!(builtin.is_stateful("aws_fsx_lustre_file_system"));
        assert!(builtin.is_stateful("azurerm_cosmosdb_sql_database"));
        assert!(!builtin.is_stateful("aws_sqs_queue"));

        let extended = StatefulTypes::from_config(&StatefulConfig {
            extend: vec!["aws_sqs_*".into()],
            replace: None,
        });
        assert!(extended.is_stateful("aws_sqs_queue"));
        assert!(extended.is_stateful("aws_s3_bucket"));

        let replaced = StatefulTypes::from_config(&StatefulConfig {
            extend: vec![],
            replace: Some(vec!["custom_store".into()]),
        });
        assert!(replaced.is_stateful("custom_store"));
        assert!(!replaced.is_stateful("aws_s3_bucket"));
    }
}
