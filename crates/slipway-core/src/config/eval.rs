//! Evaluation of configuration expressions: `env("NAME")`, `instance.name`, `stage.name`,
//! `project.name` and, in a stack's `inputs`, `dependency.NAME.outputs.OUTPUT`.
//!
//! The environment is a value handed in by the caller, never read from the process here,
//! so evaluation stays a pure function of its inputs.

use std::cell::RefCell;
use std::collections::BTreeMap;

use hcl::eval::{Context, Evaluate, FuncArgs, FuncDef, ParamType};
use hcl::{Expression, Value};

/// Environment variables visible to `env()`.
pub type Env = BTreeMap<String, String>;

thread_local! {
    // `hcl` functions are plain `fn` pointers; the environment reaches `env()` through these
    // slots, set only for the duration of one `evaluate` call on this thread.
    static ENV: RefCell<Env> = const { RefCell::new(BTreeMap::new()) };
    static MISSING_ENV_IS_EMPTY: RefCell<bool> = const { RefCell::new(false) };
}

fn env_function(args: FuncArgs) -> Result<Value, String> {
    let mut values = args.into_values().into_iter();
    let name = match values.next() {
        Some(Value::String(name)) => name,
        _ => return Err("env() needs the variable's name as a string".into()),
    };
    let default = values.next();
    ENV.with(|env| match env.borrow().get(&name) {
        Some(value) => Ok(Value::String(value.clone())),
        None => match default {
            Some(default) => Ok(default),
            None if MISSING_ENV_IS_EMPTY.with(|lenient| *lenient.borrow()) => {
                Ok(Value::String(String::new()))
            }
            None => Err(format!(
                "environment variable `{name}` is not set (set it, or give a default: env(\"{name}\", \"...\"))"
            )),
        },
    })
}

/// Names available to expressions.
#[derive(Debug, Clone, Default)]
pub struct Scope<'a> {
    pub project: &'a str,
    pub stage: Option<&'a str>,
    pub instance: Option<&'a str>,
    /// Dependency name to its outputs; only for stack inputs.
    pub dependencies: Option<&'a BTreeMap<String, BTreeMap<String, serde_json::Value>>>,
    /// Treat an unset environment variable as empty. Used when validating at load time
    /// values that only matter when stacks run (generated files), so that `slipway stacks`
    /// works without the environment a run needs.
    pub missing_env_is_empty: bool,
}

/// Evaluates `expr` in `scope` with `env` visible to `env()`.
pub fn evaluate(expr: &Expression, scope: &Scope<'_>, env: &Env) -> Result<Value, String> {
    // A literal is its own value: most configuration values are, and they need no context
    // (one per attribute, with a copy of the environment, was most of loading a large tree).
    match expr {
        Expression::String(s) => return Ok(Value::String(s.clone())),
        Expression::Bool(b) => return Ok(Value::Bool(*b)),
        Expression::Number(n) => return Ok(Value::Number(*n)),
        Expression::Null => return Ok(Value::Null),
        _ => {}
    }
    let mut ctx = Context::new();
    ctx.declare_func(
        "env",
        FuncDef::builder()
            .param(ParamType::String)
            .variadic_param(ParamType::Any)
            .build(env_function),
    );
    ctx.declare_var("project", object([("name", scope.project)]));
    if let Some(stage) = scope.stage {
        ctx.declare_var("stage", object([("name", stage)]));
    }
    if let Some(instance) = scope.instance {
        ctx.declare_var("instance", object([("name", instance)]));
    }
    if let Some(dependencies) = scope.dependencies {
        let mut map = hcl::Map::new();
        for (name, outputs) in dependencies {
            let outputs: hcl::Map<String, Value> = outputs
                .iter()
                .map(|(k, v)| (k.clone(), json_to_hcl(v)))
                .collect();
            let mut dep = hcl::Map::new();
            dep.insert("outputs".to_owned(), Value::Object(outputs));
            map.insert(name.clone(), Value::Object(dep));
        }
        ctx.declare_var("dependency", Value::Object(map));
    }
    ENV.with(|slot| *slot.borrow_mut() = env.clone());
    MISSING_ENV_IS_EMPTY.with(|slot| *slot.borrow_mut() = scope.missing_env_is_empty);
    let result = expr.evaluate(&ctx);
    ENV.with(|slot| slot.borrow_mut().clear());
    MISSING_ENV_IS_EMPTY.with(|slot| *slot.borrow_mut() = false);
    result.map_err(|error| error.kind().to_string())
}

fn object<const N: usize>(pairs: [(&str, &str); N]) -> Value {
    Value::Object(
        pairs
            .into_iter()
            .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
            .collect(),
    )
}

/// Converts a JSON value (Terraform outputs) into an HCL value.
pub fn json_to_hcl(value: &serde_json::Value) -> Value {
    match value {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => n
            .as_i64()
            .map(Value::from)
            .or_else(|| n.as_u64().map(Value::from))
            .or_else(|| n.as_f64().map(Value::from))
            .unwrap_or(Value::Null),
        serde_json::Value::String(s) => Value::String(s.clone()),
        serde_json::Value::Array(items) => Value::Array(items.iter().map(json_to_hcl).collect()),
        serde_json::Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), json_to_hcl(v)))
                .collect(),
        ),
    }
}

/// Converts an HCL value into JSON (for tfvars files and reports).
pub fn hcl_to_json(value: &Value) -> serde_json::Value {
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                serde_json::Value::from(i)
            } else if let Some(u) = n.as_u64() {
                serde_json::Value::from(u)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map_or(serde_json::Value::Null, serde_json::Value::Number)
            }
        }
        Value::String(s) => serde_json::Value::String(s.clone()),
        Value::Array(items) => serde_json::Value::Array(items.iter().map(hcl_to_json).collect()),
        Value::Object(map) => serde_json::Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), hcl_to_json(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Expression {
        hcl::edit::parser::parse_expr(text).unwrap().into()
    }

    #[test]
    fn env_reads_the_given_environment_and_defaults() {
        let env = Env::from([("PORT".to_owned(), "4566".to_owned())]);
        let scope = Scope {
            project: "p",
            ..Scope::default()
        };
        let value = evaluate(&parse(r#""http://127.0.0.1:${env("PORT")}""#), &scope, &env);
        assert_eq!(value, Ok(Value::from("http://127.0.0.1:4566")));
        let value = evaluate(&parse(r#"env("MISSING", "x")"#), &scope, &env);
        assert_eq!(value, Ok(Value::from("x")));
        let error = evaluate(&parse(r#"env("MISSING")"#), &scope, &env).unwrap_err();
        assert!(error.contains("`MISSING` is not set"), "{error}");
    }

    #[test]
    fn literals_evaluate_to_themselves_and_escaped_templates_stay_text() {
        let env = Env::new();
        let scope = Scope::default();
        for (text, value) in [
            (r#""team1""#, Value::from("team1")),
            (r#""$${env(\"X\")}""#, Value::from("${env(\"X\")}")),
            ("true", Value::Bool(true)),
            ("42", Value::from(42)),
            ("null", Value::Null),
        ] {
            assert_eq!(evaluate(&parse(text), &scope, &env), Ok(value), "{text}");
        }
    }

    #[test]
    fn instance_and_dependency_outputs_resolve() {
        let outputs = BTreeMap::from([(
            "network".to_owned(),
            BTreeMap::from([("vpc_id".to_owned(), serde_json::json!("vpc-1"))]),
        )]);
        let scope = Scope {
            project: "p",
            stage: Some("dev"),
            instance: Some("zero-1a2b"),
            dependencies: Some(&outputs),
            missing_env_is_empty: false,
        };
        let expr = parse(r#"{ env = instance.name, vpc = dependency.network.outputs.vpc_id }"#);
        let value = hcl_to_json(&evaluate(&expr, &scope, &Env::new()).unwrap());
        assert_eq!(
            value,
            serde_json::json!({"env": "zero-1a2b", "vpc": "vpc-1"})
        );
    }

    #[test]
    fn literal_terraform_interpolation_survives_with_double_dollar() {
        let expr = parse(r#""$${var.env}""#);
        let scope = Scope {
            project: "p",
            ..Scope::default()
        };
        assert_eq!(
            evaluate(&expr, &scope, &Env::new()),
            Ok(Value::from("${var.env}"))
        );
    }
}
