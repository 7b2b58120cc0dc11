//! The API's OpenAPI document: docs/openapi.json is the one the code makes, it names every
//! route the server serves under `/api/v1` and nothing it does not, and what the server
//! answers fits the schemas it gives.
//!
//! After changing the API, rewrite the checked-in document with
//! `SLIPWAY_UPDATE_OPENAPI=1 cargo nextest run --workspace -E 'binary(openapi)'` and review
//! its diff with the change.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::{Value, json};
use slipway_store::{NewApproval, NewAuditEntry, NewRun, Role, Store as _};

mod common;
use common::Server;

/// The routes the router serves under `/api/v1`, as `METHOD path` in the document's form.
/// A route added to `api::routes` belongs here and in the document.
const ROUTES: &[&str] = &[
    "GET /api/v1/audit",
    "GET /api/v1/dora",
    "GET /api/v1/advice",
    "GET /api/v1/drift",
    "GET /api/v1/drills",
    "GET /api/v1/openapi.json",
    "GET /api/v1/project",
    "GET /api/v1/pull-requests/{id}/report",
    "GET /api/v1/queue",
    "GET /api/v1/workers",
    "GET /api/v1/releases",
    "GET /api/v1/runs",
    "POST /api/v1/runs",
    "GET /api/v1/runs/{run}",
    "POST /api/v1/runs/{run}/approve",
    "GET /api/v1/runs/{run}/events",
    "POST /api/v1/runs/{run}/reject",
    "GET /api/v1/runs/{run}/stack-runs/{stack_run}/log",
    "GET /api/v1/runs/{run}/stages/{stage}/report",
    "GET /api/v1/tokens",
    "POST /api/v1/tokens",
    "DELETE /api/v1/tokens/{id}",
];

const METHODS: &[&str] = &["get", "put", "post", "delete", "patch"];

fn checked_in() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json")
}

fn document() -> Value {
    serde_json::from_str(&slipway_server::openapi_json()).expect("the document is JSON")
}

/// `METHOD path` of every operation in the document.
fn operations(document: &Value) -> BTreeSet<String> {
    document["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(move |m| format!("{} {path}", m.to_uppercase()))
        })
        .collect()
}

#[test]
fn the_checked_in_document_is_the_one_the_code_makes() {
    let made = slipway_server::openapi_json();
    assert_eq!(
        made,
        slipway_server::openapi_json(),
        "the same text each time"
    );
    let path = checked_in();
    if std::env::var_os("SLIPWAY_UPDATE_OPENAPI").is_some_and(|v| !v.is_empty() && v != "0") {
        std::fs::write(&path, &made).unwrap();
        return;
    }
    let kept = std::fs::read_to_string(&path).unwrap_or_default();
    if kept != made {
        let line = kept
            .lines()
            .zip(made.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| kept.lines().count().min(made.lines().count()));
        panic!(
            "docs/openapi.json is not the document the code makes (first difference at line {}: \
             kept {:?}, made {:?}).\nIf the API changed on purpose, rewrite it with\n  \
             SLIPWAY_UPDATE_OPENAPI=1 cargo nextest run --workspace -E 'binary(openapi)'\n\
             and review its diff with the change.",
            line + 1,
            kept.lines().nth(line).unwrap_or("<end>"),
            made.lines().nth(line).unwrap_or("<end>"),
        );
    }
}

#[test]
fn the_document_describes_the_api_as_a_whole() {
    let document = document();
    assert_eq!(document["openapi"], "3.1.0");
    assert_eq!(document["info"]["title"], "slipway");
    assert_eq!(
        document["info"]["version"], "1",
        "the API's version, not the crate's"
    );
    assert_eq!(
        document["components"]["securitySchemes"]["bearer"],
        json!({
            "type": "http",
            "scheme": "bearer",
            "description": document["components"]["securitySchemes"]["bearer"]["description"],
        })
    );
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in METHODS {
            let Some(operation) = item.get(*method) else {
                continue;
            };
            let name = format!("{method} {path}");
            assert_eq!(
                operation["security"],
                json!([{ "bearer": [] }]),
                "{name} needs a token"
            );
            let responses = operation["responses"].as_object().unwrap();
            assert!(
                responses.contains_key("401"),
                "{name} says what a missing token gets"
            );
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{name} says what success is"
            );
            for (status, response) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    let error = response
                        .get("$ref")
                        .and_then(|r| r.as_str())
                        .map(|r| {
                            &document["components"]["responses"]
                                [r.trim_start_matches("#/components/responses/")]
                        })
                        .unwrap_or(response);
                    let json = &error["content"]["application/json"]["schema"]["$ref"];
                    assert!(
                        json == "#/components/schemas/Error"
                            || error["content"].get("application/json").is_none(),
                        "{name} {status}: an error's JSON body is an Error: {error}"
                    );
                }
            }
            assert!(
                operation["operationId"].is_string() && operation["summary"].is_string(),
                "{name} is named and summarised"
            );
        }
    }
    let error = &document["components"]["schemas"]["Error"];
    assert_eq!(error["required"], json!(["error"]), "{error}");
    let text = document.to_string();
    for hidden in ["worker", "token_hash", "log_path", "pid", "plan_file"] {
        assert!(!text.contains(&format!("\"{hidden}\"")), "no `{hidden}`");
    }
}

#[test]
fn the_document_names_every_route_the_server_serves_and_no_other() {
    let document = document();
    let listed: BTreeSet<String> = ROUTES.iter().map(|r| (*r).to_owned()).collect();
    assert_eq!(
        operations(&document),
        listed,
        "the document's operations are the router's routes"
    );

    // The router's own paths under /api/v1, from its debug form (axum has no other way to
    // list them); they must be the document's.
    let server = Server::start();
    let router = server
        .runtime
        .block_on(slipway_server::router_for(
            slipway_server::ServerConfig::default(),
            server.store.clone(),
        ))
        .unwrap();
    let debug = format!("{router:?}");
    let mut routed: BTreeSet<String> = BTreeSet::new();
    for piece in debug.split('"').skip(1).step_by(2) {
        if let Some(rest) = piece.strip_prefix("/api/v1") {
            routed.insert(format!("/api/v1{rest}"));
        }
    }
    let documented: BTreeSet<String> = document["paths"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(
        routed, documented,
        "the router's paths under /api/v1 are the document's"
    );

    // Each method of each path: without a token, what the router serves answers 401 and
    // what it does not serve 405.
    for path in &documented {
        let concrete = path
            .replace("{run}", "1")
            .replace("{stack_run}", "1")
            .replace("{id}", "1");
        for method in METHODS {
            let (status, text) = server.request(
                &method.to_uppercase(),
                &concrete,
                None,
                &[],
                (*method != "get" && *method != "delete").then_some(&json!({})),
            );
            let name = format!("{} {path}", method.to_uppercase());
            if listed.contains(&name) {
                assert_eq!(status, 401, "{name} is served, behind a token: {text}");
                let body: Value = serde_json::from_str(&text).unwrap();
                assert!(body["error"].is_string(), "{name}: {text}");
            } else {
                assert_eq!(status, 405, "{name} is not served: {text}");
            }
        }
    }
}

#[test]
fn docs_server_md_names_every_route_with_its_role() {
    let text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/server.md"),
    )
    .unwrap();
    for route in ROUTES {
        assert!(
            text.contains(&format!("`{route}`")),
            "docs/server.md's API section does not name `{route}`"
        );
    }
}

#[test]
fn what_the_server_answers_fits_the_document() {
    let document = document();
    let server = Server::start();
    let admin = server.token("ada", Role::Admin, None);
    let viewer = server.token("vic", Role::Viewer, None);
    let run = server.runtime.block_on(async {
        let store = &server.store;
        let run = store
            .create_run(&NewRun {
                commit: "6113728f27ae82c7b1a177c8d03f9e96e0adf246".to_owned(),
                trigger: "push".to_owned(),
                actor: "dana".to_owned(),
            })
            .await
            .unwrap();
        store
            .append_run_events(run.id, &[json!({ "event": "run_started", "run": run.id })])
            .await
            .unwrap();
        store
            .record_approval(&NewApproval {
                run_id: run.id,
                stage: "prod".to_owned(),
                actor: "erin".to_owned(),
                reason: "looks right".to_owned(),
                plans: [("web".to_owned(), "ab".repeat(32))].into(),
            })
            .await
            .unwrap();
        store
            .append_audit(&NewAuditEntry {
                actor: "dana".to_owned(),
                action: slipway_store::AuditAction::Apply,
                stage: Some("prod".to_owned()),
                stack: Some("web".to_owned()),
                run_id: Some(run.id),
                details: json!({ "commit": "6113728" }),
            })
            .await
            .unwrap();
        run
    });
    let fits = |method: &str, path: &str, documented: &str, token: &str, body: Option<Value>| {
        let (status, answer) = server.json(method, path, Some(token), body.as_ref());
        let schema = response_schema(&document, method, documented, status)
            .unwrap_or_else(|| panic!("{method} {path}: {status} is not documented: {answer}"));
        if let Err(why) = check(&document, &schema, &answer, "$") {
            panic!("{method} {path} answered {status}, not as documented: {why}\n{answer}");
        }
        answer
    };
    let queued = fits(
        "POST",
        "/api/v1/runs",
        "/api/v1/runs",
        &admin,
        Some(json!({ "commit": "ec26c3e57ca3a959ca5aad62de7213c562f8c821" })),
    );
    assert_eq!(queued["status"], "queued");
    let queue = fits("GET", "/api/v1/queue", "/api/v1/queue", &viewer, None);
    assert_eq!(queue[0]["waiting"], "next");
    fits("GET", "/api/v1/runs", "/api/v1/runs", &viewer, None);
    let detail = fits(
        "GET",
        &format!("/api/v1/runs/{}", run.id),
        "/api/v1/runs/{run}",
        &viewer,
        None,
    );
    assert_eq!(detail["approvals"][0]["plans"]["web"], "ab".repeat(32));
    fits(
        "GET",
        &format!("/api/v1/runs/{}/events", run.id),
        "/api/v1/runs/{run}/events",
        &viewer,
        None,
    );
    fits(
        "GET",
        "/api/v1/runs/999",
        "/api/v1/runs/{run}",
        &viewer,
        None,
    );
    let audit = fits("GET", "/api/v1/audit", "/api/v1/audit", &viewer, None);
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "queue_run"),
        "{audit}"
    );
    fits("GET", "/api/v1/releases", "/api/v1/releases", &viewer, None);
    fits("GET", "/api/v1/drills", "/api/v1/drills", &viewer, None);
    fits("GET", "/api/v1/drift", "/api/v1/drift", &viewer, None);
    // The metrics need the project (for its git history): a server without one says so.
    let dora = fits("GET", "/api/v1/dora?days=7", "/api/v1/dora", &viewer, None);
    assert!(
        dora["error"]
            .as_str()
            .unwrap()
            .contains("no project loaded"),
        "{dora}"
    );
    fits("GET", "/api/v1/project", "/api/v1/project", &viewer, None);
    let made = fits(
        "POST",
        "/api/v1/tokens",
        "/api/v1/tokens",
        &admin,
        Some(json!({ "actor": "ci", "role": "deployer", "stage": "test" })),
    );
    fits(
        "POST",
        "/api/v1/tokens",
        "/api/v1/tokens",
        &viewer,
        Some(json!({ "actor": "ci", "role": "deployer" })),
    );
    fits(
        "DELETE",
        &format!("/api/v1/tokens/{}", made["id"]),
        "/api/v1/tokens/{id}",
        &admin,
        None,
    );
    let tokens = fits("GET", "/api/v1/tokens", "/api/v1/tokens", &admin, None);
    assert!(
        tokens
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["revoked_at"].is_string()),
        "{tokens}"
    );
    fits(
        "POST",
        &format!("/api/v1/runs/{}/approve", run.id),
        "/api/v1/runs/{run}/approve",
        &admin,
        Some(json!({ "stage": "prod", "reason": " " })),
    );
    let served = fits(
        "GET",
        "/api/v1/openapi.json",
        "/api/v1/openapi.json",
        &viewer,
        None,
    );
    assert_eq!(served, document, "the server serves the same document");
}

/// The schema the document gives for `status` of `method path`'s JSON answer.
fn response_schema(document: &Value, method: &str, path: &str, status: u16) -> Option<Value> {
    let mut response =
        &document["paths"][path][method.to_lowercase()]["responses"][status.to_string()];
    if let Some(reference) = response.get("$ref").and_then(|r| r.as_str()) {
        response = &document["components"]["responses"]
            [reference.trim_start_matches("#/components/responses/")];
    }
    response["content"]["application/json"]
        .get("schema")
        .cloned()
}

/// Whether `value` fits `schema` as far as the document's schemas go: types, required and
/// only the declared properties, enumerations, and what they nest.
fn check(document: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let Some(reference) = schema.get("$ref").and_then(|r| r.as_str()) {
        let name = reference.trim_start_matches("#/components/schemas/");
        let named = &document["components"]["schemas"][name];
        if named.is_null() {
            return Err(format!("{at}: {reference} is not in the document"));
        }
        return check(document, named, value, at);
    }
    if let Some(choices) = schema.get("oneOf").and_then(|c| c.as_array()) {
        let fitting = choices
            .iter()
            .filter(|c| check(document, c, value, at).is_ok())
            .count();
        return if fitting == 1 {
            Ok(())
        } else {
            Err(format!("{at}: {value} fits {fitting} of oneOf {schema}"))
        };
    }
    if let Some(allowed) = schema.get("enum").and_then(|e| e.as_array()) {
        if !allowed.contains(value) {
            return Err(format!("{at}: {value} is not one of {allowed:?}"));
        }
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(|t| t.as_str()).collect(),
        _ => return Ok(()),
    };
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let fits = types.contains(&kind) || (kind == "integer" && types.contains(&"number"));
    if !fits {
        return Err(format!("{at}: {value} is {kind}, not {types:?}"));
    }
    match value {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                check(document, &schema["items"], item, &format!("{at}[{i}]"))?;
            }
        }
        Value::Object(fields) => {
            for required in schema["required"].as_array().into_iter().flatten() {
                let name = required.as_str().unwrap_or_default();
                if !fields.contains_key(name) {
                    return Err(format!("{at}: required `{name}` is missing"));
                }
            }
            let properties = schema.get("properties").and_then(|p| p.as_object());
            for (name, field) in fields {
                let at = format!("{at}.{name}");
                match (
                    properties.and_then(|p| p.get(name)),
                    schema.get("additionalProperties"),
                ) {
                    (Some(property), _) => check(document, property, field, &at)?,
                    (None, Some(additional)) if additional.is_object() => {
                        check(document, additional, field, &at)?;
                    }
                    (None, _) if properties.is_some() => {
                        return Err(format!("{at}: not a documented property"));
                    }
                    (None, _) => {}
                }
            }
        }
        _ => {}
    }
    Ok(())
}

#[test]
fn the_fit_check_refuses_what_does_not_fit() {
    let document = document();
    let job = json!({ "$ref": "#/components/schemas/Job" });
    let fitting = json!({
        "id": 1, "kind": "run", "repository": "acme/platform", "git_ref": "refs/heads/main",
        "commit": "6113728", "stage": null, "run_id": null, "stack": null, "delivery_id": null,
        "requested_by": "dee", "queued_at": "2024-05-01T12:00:00.000Z", "status": "queued",
        "started_at": null, "finished_at": null, "superseded_by": null, "outcome": null,
        "heartbeat_at": null, "labels": {},
    });
    check(&document, &job, &fitting, "$").unwrap();
    let mut waiting = fitting.clone();
    waiting["waiting"] = json!("next");
    check(&document, &job, &waiting, "$").unwrap();
    for (field, value) in [
        ("kind", json!("launch")),
        ("id", json!("1")),
        ("worker", json!({ "pid": 1 })),
        ("started_at", json!(17)),
        ("waiting", json!(null)),
    ] {
        let mut wrong = fitting.clone();
        wrong[field] = value;
        assert!(
            check(&document, &job, &wrong, "$").is_err(),
            "{field}: {wrong}"
        );
    }
    let mut missing = fitting;
    missing.as_object_mut().unwrap().remove("outcome");
    assert!(check(&document, &job, &missing, "$").is_err());
}
