//! `slipway bootstrap --stage S`: creates what the project's remote state and artifact store
//! need before the first run: the state bucket (with versioning), the DynamoDB lock table
//! and the artifact bucket. Idempotent: what exists is left as it is and said so.
//!
//! Requests are signed with the stage's default apply credentials when the project defines
//! credentials, else with slipway's own `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`
//! (and `AWS_SESSION_TOKEN`).

use anyhow::{Context, Result, bail};
use clap::Args;
use slipway_core::config::{Purpose, S3State, StateConfig};

use super::ExitStatus;
use crate::aws::{self, Client, Service};
use crate::pipeline::artifacts;
use crate::project::{Workspace, find_stage};

#[derive(Debug, Args)]
pub struct BootstrapArgs {
    /// The stage whose credentials create the resources (its `default` apply credentials,
    /// when the project defines credentials).
    #[arg(long, short = 's', value_name = "STAGE")]
    pub stage: String,
}

/// What bootstrap found or did to one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Done {
    Created,
    Existed,
    Enabled,
}

impl Done {
    fn word(self) -> &'static str {
        match self {
            Done::Created => "created",
            Done::Existed => "exists ",
            Done::Enabled => "enabled",
        }
    }
}

pub async fn run(workspace: &Workspace, args: &BootstrapArgs) -> Result<ExitStatus> {
    let project = &workspace.project;
    let stage = find_stage(workspace, &args.stage)?;
    let process_env = &workspace.settings.environment;
    let artifacts_url = artifacts::store_url(workspace)?;
    let artifact_bucket = artifacts_url
        .strip_prefix("s3://")
        .map(|rest| rest.split('/').next().unwrap_or_default().to_owned());
    let state = match &project.state {
        StateConfig::S3(state) => Some(state),
        StateConfig::Local => None,
    };
    if state.is_none() && artifact_bucket.is_none() {
        eprintln!(
            "nothing to create: state is local and artifacts are kept in {artifacts_url}\n  help: add a `state {{ backend = \"s3\" ... }}` block and an `artifacts {{ url = \"s3://...\" }}` block to slipway.hcl (docs/ci.md)"
        );
        return Ok(ExitStatus::Success);
    }
    let values = match stage.credentials.for_stack("default", Purpose::Apply) {
        Some(name) => {
            let set = project
                .credentials(name)
                .with_context(|| format!("credentials `{name}` are not defined"))?;
            crate::credentials::fetch_values(set, &workspace.root, process_env)?
        }
        None => process_env.clone(),
    };
    let credentials = match (
        values.get("AWS_ACCESS_KEY_ID"),
        values.get("AWS_SECRET_ACCESS_KEY"),
    ) {
        (Some(id), Some(secret)) if !id.is_empty() && !secret.is_empty() => aws::Credentials {
            access_key_id: id.clone(),
            secret_access_key: secret.clone(),
            session_token: values
                .get("AWS_SESSION_TOKEN")
                .filter(|t| !t.is_empty())
                .cloned(),
        },
        _ => bail!(
            "no AWS credentials to create the state and artifact resources with\n  help: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary credentials), or give stage `{}` default credentials",
            stage.name
        ),
    };
    let client = Client::new(credentials)?;
    let mut failed = false;
    if let Some(state) = state {
        let s3 = Service {
            endpoint: state
                .endpoint
                .clone()
                .unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", state.region)),
            region: state.region.clone(),
            name: "s3",
        };
        match ensure_bucket(&client, &s3, &state.bucket).await {
            Ok(done) => say(done, "s3 bucket", &state.bucket, "state"),
            Err(e) => {
                failed = true;
                eprintln!("error: state bucket {}: {e:#}", state.bucket);
            }
        }
        if !failed {
            match ensure_versioning(&client, &s3, &state.bucket).await {
                Ok(done) => say(
                    done,
                    "versioning on",
                    &state.bucket,
                    "earlier states are kept",
                ),
                Err(e) => {
                    failed = true;
                    eprintln!("error: versioning on {}: {e:#}", state.bucket);
                }
            }
        }
        if let Some(table) = &state.dynamodb_table {
            match ensure_table(&client, &dynamodb(state), table).await {
                Ok(done) => say(done, "dynamodb table", table, "state locks"),
                Err(e) => {
                    failed = true;
                    eprintln!("error: lock table {table}: {e:#}");
                }
            }
        }
    } else {
        eprintln!("state is local: no state bucket or lock table to create");
    }
    if let Some(bucket) = &artifact_bucket {
        let region = ["AWS_REGION", "AWS_DEFAULT_REGION"]
            .iter()
            .find_map(|k| process_env.get(*k).filter(|v| !v.is_empty()).cloned())
            .or_else(|| state.map(|s| s.region.clone()))
            .unwrap_or_else(|| "us-east-1".to_owned());
        let endpoint = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"]
            .iter()
            .find_map(|k| process_env.get(*k).filter(|v| !v.is_empty()).cloned())
            .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
        let s3 = Service {
            endpoint,
            region,
            name: "s3",
        };
        match ensure_bucket(&client, &s3, bucket).await {
            Ok(done) => say(done, "s3 bucket", bucket, "artifacts and saved plans"),
            Err(e) => {
                failed = true;
                eprintln!("error: artifact bucket {bucket}: {e:#}");
            }
        }
    } else {
        eprintln!("artifacts are kept in {artifacts_url}: no artifact bucket to create");
    }
    if failed {
        return Ok(ExitStatus::Failure);
    }
    Ok(ExitStatus::Success)
}

fn say(done: Done, what: &str, name: &str, why: &str) {
    println!("{}  {what} {name} ({why})", done.word());
}

fn dynamodb(state: &S3State) -> Service {
    Service {
        endpoint: state
            .dynamodb_endpoint
            .clone()
            .or_else(|| state.endpoint.clone())
            .unwrap_or_else(|| format!("https://dynamodb.{}.amazonaws.com", state.region)),
        region: state.region.clone(),
        name: "dynamodb",
    }
}

/// The AWS error code in an answer's body (`<Code>...</Code>` or `"__type": "...#Code"`).
fn error_code(body: &str) -> String {
    if let Some(start) = body.find("<Code>") {
        let rest = &body[start + 6..];
        return rest[..rest.find("</Code>").unwrap_or(rest.len())].to_owned();
    }
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("__type")?.as_str().map(str::to_owned))
        .map(|t| t.rsplit('#').next().unwrap_or_default().to_owned())
        .unwrap_or_default()
}

fn failure(what: &str, response: &aws::Response) -> anyhow::Error {
    let code = error_code(&response.body);
    anyhow::anyhow!(
        "{what} answered {}{}",
        response.status,
        if code.is_empty() {
            String::new()
        } else {
            format!(" {code}")
        }
    )
}

async fn ensure_bucket(client: &Client, s3: &Service, bucket: &str) -> Result<Done> {
    let path = format!("/{bucket}");
    let head = client.send(s3, "HEAD", &path, "", &[], Vec::new()).await?;
    match head.status {
        200 => return Ok(Done::Existed),
        404 => {}
        403 => bail!(
            "the bucket exists and these credentials may not use it (bucket names are global: pick another name, or use credentials of its account)"
        ),
        _ => return Err(failure("HeadBucket", &head)),
    }
    let body = if s3.region == "us-east-1" {
        Vec::new()
    } else {
        format!(
            "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><LocationConstraint>{}</LocationConstraint></CreateBucketConfiguration>",
            s3.region
        )
        .into_bytes()
    };
    let created = client.send(s3, "PUT", &path, "", &[], body).await?;
    if created.ok() {
        return Ok(Done::Created);
    }
    match error_code(&created.body).as_str() {
        // Made by someone else between our HEAD and PUT, with these credentials.
        "BucketAlreadyOwnedByYou" => Ok(Done::Existed),
        "BucketAlreadyExists" => bail!(
            "the name is taken by another account (bucket names are global): pick another name in slipway.hcl"
        ),
        _ => Err(failure("CreateBucket", &created)),
    }
}

async fn ensure_versioning(client: &Client, s3: &Service, bucket: &str) -> Result<Done> {
    let path = format!("/{bucket}");
    let current = client
        .send(s3, "GET", &path, "versioning=", &[], Vec::new())
        .await?;
    if !current.ok() {
        return Err(failure("GetBucketVersioning", &current));
    }
    if current.body.contains("<Status>Enabled</Status>") {
        return Ok(Done::Existed);
    }
    let body = b"<VersioningConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Status>Enabled</Status></VersioningConfiguration>".to_vec();
    let headers = [
        ("x-amz-checksum-sha256", aws::checksum_sha256(&body)),
        ("x-amz-sdk-checksum-algorithm", "SHA256".to_owned()),
    ];
    let put = client
        .send(s3, "PUT", &path, "versioning=", &headers, body)
        .await?;
    if !put.ok() {
        return Err(failure("PutBucketVersioning", &put));
    }
    Ok(Done::Enabled)
}

async fn dynamodb_call(
    client: &Client,
    service: &Service,
    action: &str,
    body: serde_json::Value,
) -> Result<aws::Response> {
    let headers = [
        ("content-type", "application/x-amz-json-1.0".to_owned()),
        ("x-amz-target", format!("DynamoDB_20120810.{action}")),
    ];
    client
        .send(
            service,
            "POST",
            "/",
            "",
            &headers,
            body.to_string().into_bytes(),
        )
        .await
}

/// The lock table Terraform's S3 backend expects: `LockID` (string) as the hash key.
async fn ensure_table(client: &Client, service: &Service, table: &str) -> Result<Done> {
    let name = serde_json::json!({ "TableName": table });
    let described = dynamodb_call(client, service, "DescribeTable", name.clone()).await?;
    let done = if described.ok() {
        Done::Existed
    } else if error_code(&described.body) == "ResourceNotFoundException" {
        let created = dynamodb_call(
            client,
            service,
            "CreateTable",
            serde_json::json!({
                "TableName": table,
                "AttributeDefinitions": [{ "AttributeName": "LockID", "AttributeType": "S" }],
                "KeySchema": [{ "AttributeName": "LockID", "KeyType": "HASH" }],
                "BillingMode": "PAY_PER_REQUEST",
            }),
        )
        .await?;
        if created.ok() {
            Done::Created
        } else if error_code(&created.body) == "ResourceInUseException" {
            Done::Existed
        } else {
            return Err(failure("CreateTable", &created));
        }
    } else {
        return Err(failure("DescribeTable", &described));
    };
    // A new table takes a moment to become usable; Terraform's first lock needs it active.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let described = dynamodb_call(client, service, "DescribeTable", name.clone()).await?;
        let status: Option<String> = serde_json::from_str::<serde_json::Value>(&described.body)
            .ok()
            .and_then(|v| v["Table"]["TableStatus"].as_str().map(str::to_owned));
        if status.as_deref() == Some("ACTIVE") {
            return Ok(done);
        }
        if std::time::Instant::now() > deadline {
            bail!(
                "the table is {} after two minutes; run bootstrap again once it is ACTIVE",
                status.unwrap_or_else(|| "not described".to_owned())
            );
        }
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_error_codes_of_both_services() {
        assert_eq!(
            error_code("<Error><Code>BucketAlreadyOwnedByYou</Code></Error>"),
            "BucketAlreadyOwnedByYou"
        );
        assert_eq!(
            error_code(
                r#"{"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException"}"#
            ),
            "ResourceNotFoundException"
        );
        assert_eq!(error_code(""), "");
    }
}
