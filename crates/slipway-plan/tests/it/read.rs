//! Plan reading over plans recorded with real Terraform (format 0.2 and 1.x).

use slipway_plan::{Action, ResourceChange, StackLinks, StatefulTypes, blast_radius, parse_plan};

use crate::{CURRENT, LEGACY, fixture};

fn change<'p>(plan: &'p slipway_plan::Plan, address: &str) -> &'p ResourceChange {
    plan.resource_changes
        .iter()
        .find(|c| c.address == address)
        .unwrap_or_else(|| panic!("no change for {address}"))
}

#[test]
fn format_versions_of_both_terraform_generations() {
    assert_eq!(
        fixture(&format!("create.{LEGACY}.json")).format_version,
        "0.2"
    );
    let current = fixture(&format!("create.{CURRENT}.json"));
    assert!(
        current.format_version.starts_with("1."),
        "{}",
        current.format_version
    );
}

#[test]
fn create() {
    for version in [LEGACY, CURRENT] {
        let plan = fixture(&format!("create.{version}.json"));
        let actions: Vec<(&str, Action)> = plan
            .resource_changes
            .iter()
            .map(|c| (c.address.as_str(), c.action))
            .collect();
        assert_eq!(
            actions,
            vec![
                ("aws_dynamodb_table.orders", Action::Create),
                ("aws_s3_bucket.assets", Action::Create),
                ("aws_sqs_queue.events", Action::Create),
            ],
            "{version}"
        );
        assert!(
            change(&plan, "aws_s3_bucket.assets")
                .changed_attributes
                .is_empty()
        );
        let outputs: Vec<(&str, Action)> = plan
            .output_changes
            .iter()
            .map(|o| (o.name.as_str(), o.action))
            .collect();
        assert_eq!(
            outputs,
            vec![
                ("bucket_name", Action::Create),
                ("queue_url", Action::Create)
            ],
            "{version}"
        );
    }
}

#[test]
fn update_names_the_changed_attributes() {
    for version in [LEGACY, CURRENT] {
        let plan = fixture(&format!("update.{version}.json"));
        let events = change(&plan, "aws_sqs_queue.events");
        assert_eq!(events.action, Action::Update, "{version}");
        for attribute in ["tags", "visibility_timeout_seconds"] {
            assert!(
                events.changed_attributes.iter().any(|a| a == attribute),
                "{version}: {:?}",
                events.changed_attributes
            );
        }
        assert!(!events.changed_attributes.iter().any(|a| a == "name"));
        assert_eq!(
            change(&plan, "aws_sqs_queue.unchanged").action,
            Action::NoOp
        );
        let output = &plan.output_changes[0];
        assert_eq!(
            (output.name.as_str(), output.action),
            ("queue_env", Action::Update)
        );
    }
}

#[test]
fn replace_in_both_orders() {
    for version in [LEGACY, CURRENT] {
        let plan = fixture(&format!("replace.{version}.json"));
        let table = change(&plan, "aws_dynamodb_table.orders");
        assert_eq!(table.action, Action::DeleteThenCreate, "{version}");
        assert_eq!(table.replace_paths, vec!["name"]);
        assert_eq!(
            table.action_reason.as_deref(),
            Some("replace_because_cannot_update")
        );
        let queue = change(&plan, "aws_sqs_queue.events");
        assert_eq!(queue.action, Action::CreateThenDelete, "{version}");
        assert_eq!(queue.replace_paths, vec!["name"]);

        let radius = blast_radius(
            "orders",
            &plan,
            &StatefulTypes::builtin(),
            &StackLinks::default(),
        );
        assert_eq!(radius.counts.replace, 2);
        let at_risk: Vec<&str> = radius
            .data_loss
            .iter()
            .map(|r| r.address.as_str())
            .collect();
        assert_eq!(at_risk, vec!["aws_dynamodb_table.orders"], "{version}");
        assert_eq!(radius.changed_outputs[0].name, "queue_arn");
    }
}

#[test]
fn delete() {
    for version in [LEGACY, CURRENT] {
        let plan = fixture(&format!("delete.{version}.json"));
        assert_eq!(change(&plan, "aws_s3_bucket.assets").action, Action::Delete);
        assert_eq!(change(&plan, "aws_sqs_queue.events").action, Action::NoOp);
        let radius = blast_radius(
            "assets",
            &plan,
            &StatefulTypes::builtin(),
            &StackLinks::default(),
        );
        assert_eq!(radius.counts.delete, 1);
        assert_eq!(radius.data_loss.len(), 1, "{version}");
        assert_eq!(plan.output_changes[0].action, Action::Delete, "{version}");
    }
}

#[test]
fn moved_block() {
    let plan = fixture(&format!("moved.{CURRENT}.json"));
    let events = change(&plan, "aws_sqs_queue.events");
    assert_eq!(
        events.previous_address.as_deref(),
        Some("aws_sqs_queue.old")
    );
    assert!(events.moved());
    assert_eq!(events.action, Action::NoOp);
    let radius = blast_radius(
        "events",
        &plan,
        &StatefulTypes::builtin(),
        &StackLinks::default(),
    );
    assert_eq!(radius.counts.moves, 1);
    assert_eq!(radius.moves[0].from, "aws_sqs_queue.old");
}

#[test]
fn drift_outside_terraform() {
    for version in [LEGACY, CURRENT] {
        let plan = fixture(&format!("drift.{version}.json"));
        let drifted = &plan.resource_drift;
        assert_eq!(drifted.len(), 1, "{version}");
        assert_eq!(drifted[0].address, "aws_sqs_queue.events");
        assert_eq!(drifted[0].action, Action::Update);
        assert!(
            drifted[0].changed_attributes.iter().any(|a| a == "tags"),
            "{version}"
        );
        // The plan itself puts the tags back.
        assert_eq!(change(&plan, "aws_sqs_queue.events").action, Action::Update);
    }
}

#[test]
fn sensitive_values_are_flagged_not_kept() {
    for version in [LEGACY, CURRENT] {
        let plan = fixture(&format!("sensitive.{version}.json"));
        let parameter = change(&plan, "aws_ssm_parameter.db_password");
        assert_eq!(parameter.action, Action::Update, "{version}");
        assert!(parameter.sensitive_attributes.iter().any(|a| a == "value"));
        assert!(parameter.changed_attributes.iter().any(|a| a == "value"));
        let output = plan.output_changes.iter().find(|o| o.name == "db_password");
        assert!(output.is_some_and(|o| o.sensitive), "{version}");
    }
}

#[test]
fn handwritten_forget_import_move_deposed_read() {
    let plan = fixture("handwritten.forget-import.json");
    let logs = change(&plan, "aws_s3_bucket.logs");
    assert!(logs.importing);
    assert_eq!(logs.action, Action::NoOp);
    assert_eq!(
        change(&plan, "aws_dynamodb_table.legacy").action,
        Action::Forget
    );
    let db = change(&plan, "module.db.aws_db_instance.main");
    assert_eq!(db.action, Action::CreateThenForget);
    assert_eq!(db.module_address.as_deref(), Some("module.db"));
    assert_eq!(db.changed_attributes, vec!["arn", "identifier"]);
    assert_eq!(db.sensitive_attributes, vec!["password"]);
    assert!(change(&plan, "aws_kms_key.main[\"eu\"]").moved());
    assert_eq!(
        change(&plan, "aws_ebs_volume.data").deposed.as_deref(),
        Some("00000001")
    );
    assert_eq!(
        change(&plan, "data.aws_caller_identity.current").action,
        Action::Read
    );
    assert_eq!(
        change(&plan, "aws_security_group.web").changed_attributes,
        vec!["ingress"]
    );

    let radius = blast_radius(
        "mixed",
        &plan,
        &StatefulTypes::builtin(),
        &StackLinks::default(),
    );
    let c = radius.counts;
    assert_eq!(
        (
            c.create, c.update, c.replace, c.delete, c.forget, c.read, c.no_op, c.import, c.moves
        ),
        (0, 1, 1, 1, 1, 1, 2, 1, 1)
    );
    // Forgetting keeps the data; only the deposed volume's delete destroys it.
    let at_risk: Vec<&str> = radius
        .data_loss
        .iter()
        .map(|r| r.address.as_str())
        .collect();
    assert_eq!(at_risk, vec!["aws_ebs_volume.data"]);
    assert_eq!(radius.actions.get("create,forget"), Some(&1));
}

/// A Kubernetes-manifest-like value nested far beyond serde_json's default limit of 128.
fn deep_plan(depth: usize) -> String {
    let open = "{\"a\":[".repeat(depth);
    let close = "]}".repeat(depth);
    format!(
        r#"{{"format_version":"1.2","prior_state":{open}1{close},"resource_changes":[{{"address":"kubernetes_manifest.deep","type":"kubernetes_manifest","change":{{"actions":["update"],"before":{{"manifest":{open}1{close},"same":{open}2{close}}},"after":{{"manifest":{open}3{close},"same":{open}2{close}}},"after_unknown":{{"manifest":{open}false{close}}},"after_sensitive":{{"manifest":{open}true{close}}}}}}}]}}"#
    )
}

#[test]
fn deeply_nested_values_neither_fail_nor_overflow() {
    let plan = parse_plan(deep_plan(10_000).as_bytes()).expect("deep plan reads");
    let deep = &plan.resource_changes[0];
    assert_eq!(deep.changed_attributes, vec!["manifest"]);
    assert_eq!(deep.sensitive_attributes, vec!["manifest"]);
    // The streaming reader takes the same path.
    let streamed =
        slipway_plan::read_plan(deep_plan(10_000).as_bytes()).expect("deep plan streams");
    assert_eq!(streamed, plan);
}

#[test]
fn unknown_fields_and_missing_optional_ones() {
    let plan = parse_plan(
        br#"{"format_version":"0.1","new_top":{"x":[1]},"resource_changes":[
            {"address":"aws_s3_bucket.b","type":"aws_s3_bucket","future":true,
             "change":{"actions":["delete"],"future":{}}}]}"#,
    )
    .expect("reads");
    let bucket = &plan.resource_changes[0];
    assert_eq!(bucket.action, Action::Delete);
    assert_eq!(bucket.name, "");
    assert!(bucket.provider_name.is_none());
    assert!(plan.output_changes.is_empty());
    assert!(plan.terraform_version.is_none());
}

/// Hands out one byte per read, so every value straddles buffer boundaries.
struct Trickle<'a>(&'a [u8]);

impl std::io::Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match (self.0.split_first(), buf.first_mut()) {
            (Some((byte, rest)), Some(slot)) => {
                *slot = *byte;
                self.0 = rest;
                Ok(1)
            }
            _ => Ok(0),
        }
    }
}

#[test]
fn streaming_across_buffer_boundaries_matches_in_memory() {
    let dir = std::fs::read_dir(crate::fixture_path("")).expect("fixtures");
    let mut checked = 0;
    for entry in dir.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let bytes = std::fs::read(&path).expect("fixture");
        let in_memory = parse_plan(&bytes).expect("reads");
        let streamed = slipway_plan::read_plan(Trickle(&bytes)).expect("streams");
        assert_eq!(streamed, in_memory, "{}", path.display());
        checked += 1;
    }
    assert!(checked >= 14, "only {checked} fixtures");
}

/// A real Terraform 1.11 plan with an `import {}` block and a `removed {}` block (format 1.2):
/// the blast radius counts the import and the forgotten resource, and nothing is destroyed.
#[test]
fn import_and_removed_blocks_recorded_with_terraform_1_11() {
    let plan = fixture(&format!("import-removed.{CURRENT}.json"));
    assert!(
        plan.format_version.starts_with("1."),
        "{}",
        plan.format_version
    );
    let bucket = change(&plan, "aws_s3_bucket.imported");
    assert!(bucket.importing, "the import block marks the change");
    assert_eq!(
        change(&plan, "aws_sqs_queue.dropped").action,
        Action::Forget,
        "removed with destroy = false forgets, never deletes"
    );
    assert!(!change(&plan, "aws_sqs_queue.kept").importing);

    let radius = blast_radius(
        "imports",
        &plan,
        &StatefulTypes::builtin(),
        &StackLinks::default(),
    );
    assert_eq!(radius.counts.import, 1);
    assert_eq!(radius.imports, vec!["aws_s3_bucket.imported"]);
    assert_eq!(radius.counts.forget, 1);
    assert_eq!(radius.counts.delete, 0);
    assert!(radius.data_loss.is_empty(), "{:?}", radius.data_loss);
    assert!(radius.score > 0.0, "an import and a forget weigh something");
}
