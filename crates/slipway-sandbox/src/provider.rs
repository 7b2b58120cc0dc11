//! The Terraform `provider "aws"` block that points AWS provider 3.39 at moto.
//!
//! Provider 3.39 reads no endpoint environment variables, so this block has to be written
//! into a stack's working copy. The same settings appear in `examples/webshop/slipway.hcl`
//! as a `generate` block; keep the two alike.

use std::fmt::Write as _;

use crate::env;

/// The AWS services the block routes to moto. Every name is a valid `endpoints` key of
/// provider 3.39 (the crate's integration test proves it by running `terraform apply`).
pub const PROVIDER_SERVICES: &[&str] = &[
    "apigateway",
    "cloudformation",
    "cloudwatch",
    "cloudwatchevents",
    "cloudwatchlogs",
    "dynamodb",
    "ec2",
    "ecr",
    "elb",
    "iam",
    "kinesis",
    "kms",
    "lambda",
    "rds",
    "route53",
    "s3",
    "secretsmanager",
    "sns",
    "sqs",
    "ssm",
    "stepfunctions",
    "sts",
];

/// Renders the provider block for a moto listening at `endpoint` (`http://127.0.0.1:PORT`).
pub fn provider_block(endpoint: &str) -> String {
    let endpoint = format!("{endpoint:?}");
    let credential = format!("{:?}", env::DUMMY_CREDENTIAL);
    let mut block = format!(
        r#"provider "aws" {{
  region                      = "{region}"
  access_key                  = {credential}
  secret_key                  = {credential}
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  s3_force_path_style         = true

  endpoints {{
"#,
        region = env::REGION,
    );
    let width = PROVIDER_SERVICES.iter().map(|s| s.len()).max().unwrap_or(0);
    for service in PROVIDER_SERVICES {
        // Writing to a String cannot fail.
        let _ = writeln!(block, "    {service:<width$} = {endpoint}");
    }
    block.push_str("  }\n}\n");
    block
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_every_service_to_the_endpoint() {
        insta::assert_snapshot!(provider_block("http://127.0.0.1:4566"));
    }
}
