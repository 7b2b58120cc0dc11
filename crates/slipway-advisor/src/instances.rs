//! Counting resource instances from declarations, where no state says what exists.
//!
//! A stack's root module and the local modules it calls (transitively) are walked as
//! Terraform would instantiate them: variables take the caller's arguments or their
//! defaults, `locals` are worked out from those, and each resource's `count` or `for_each`
//! (times the `count` or `for_each` of the module calls above it) gives its instances.
//! Only what literal values, defaults and a few pure functions determine is evaluated;
//! anything that needs a data source, another resource or a value only known at apply
//! time is unknown, and the block is then counted as one instance.

use std::collections::BTreeMap;

use hcl::Value;
use hcl::edit::structure::{Body, Structure};
use hcl::eval::{Context, Evaluate as _, FuncArgs, FuncDef, ParamType};

use crate::code::{ResourceBlock, TfFile};

/// How deep module calls are followed (a cycle of local modules stops here).
const MAX_DEPTH: usize = 16;
/// Passes over `locals` (each resolves those whose inputs the previous one resolved).
const LOCAL_PASSES: usize = 8;

/// A stack's code, instantiated from its root folder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Instantiated {
    /// Every resource block once per module call that reaches it, with its instances.
    pub resources: Vec<ResourceBlock>,
    /// The folders reached (the root included), in the order first reached.
    pub folders: Vec<String>,
}

/// Instantiates `root` with `folders` (folder -> its `.tf` files); `resolve(dir, source)`
/// turns a local module `source` into a folder (`None` when it leaves the project).
pub fn instantiate(
    root: &str,
    folders: &BTreeMap<String, Vec<TfFile>>,
    resolve: &dyn Fn(&str, &str) -> Option<String>,
) -> Instantiated {
    let mut out = Instantiated::default();
    let functions = functions();
    let walker = Walker {
        folders,
        resolve,
        functions: &functions,
    };
    walker.walk(root, "", &BTreeMap::new(), Some(1), 0, &mut out);
    out
}

/// A variable's value: known, or not known before apply.
type Inputs = BTreeMap<String, Option<Value>>;

struct Walker<'a> {
    folders: &'a BTreeMap<String, Vec<TfFile>>,
    resolve: &'a dyn Fn(&str, &str) -> Option<String>,
    functions: &'a [(&'static str, FuncDef)],
}

impl Walker<'_> {
    fn walk(
        &self,
        dir: &str,
        module_path: &str,
        inputs: &Inputs,
        multiplicity: Option<usize>,
        depth: usize,
        out: &mut Instantiated,
    ) {
        if !out.folders.iter().any(|f| f == dir) {
            out.folders.push(dir.to_owned());
        }
        if depth > MAX_DEPTH {
            return;
        }
        let Some(files) = self.folders.get(dir) else {
            return;
        };
        let bodies: Vec<(&TfFile, Body)> = files
            .iter()
            .filter_map(|f| Some((f, hcl::edit::parser::parse_body(&f.text).ok()?)))
            .collect();
        let blocks = || {
            bodies.iter().flat_map(|(file, body)| {
                body.iter().filter_map(move |s| match s {
                    Structure::Block(b) => Some((*file, b)),
                    Structure::Attribute(_) => None,
                })
            })
        };

        // Variables: the caller's arguments, else the defaults.
        let mut vars: BTreeMap<String, Value> = BTreeMap::new();
        let empty = base_context(self.functions);
        for (_, block) in blocks().filter(|(_, b)| b.ident.as_str() == "variable") {
            let Some(name) = block.labels.first().map(|l| l.as_str().to_owned()) else {
                continue;
            };
            let value = match inputs.get(&name) {
                Some(given) => given.clone(),
                None => block
                    .body
                    .get_attribute("default")
                    .and_then(|a| evaluate(&a.value, &empty)),
            };
            if let Some(value) = value {
                vars.insert(name, value);
            }
        }

        // Locals, in as many passes as their references need.
        let pending: Vec<(String, hcl::Expression)> = blocks()
            .filter(|(_, b)| b.ident.as_str() == "locals")
            .flat_map(|(_, b)| {
                b.body
                    .attributes()
                    .map(|a| (a.key.as_str().to_owned(), a.value.clone().into()))
                    .collect::<Vec<_>>()
            })
            .collect();
        let mut locals: BTreeMap<String, Value> = BTreeMap::new();
        for _ in 0..LOCAL_PASSES {
            let ctx = context(self.functions, &vars, &locals);
            let resolved: Vec<(String, Value)> = pending
                .iter()
                .filter(|(name, _)| !locals.contains_key(name))
                .filter_map(|(name, expr)| Some((name.clone(), expr.evaluate(&ctx).ok()?)))
                .collect();
            if resolved.is_empty() {
                break;
            }
            locals.extend(resolved);
        }
        let ctx = context(self.functions, &vars, &locals);

        for (file, block) in blocks() {
            let labels: Vec<&str> = block.labels.iter().map(|l| l.as_str()).collect();
            match (block.ident.as_str(), labels.as_slice()) {
                ("resource", [kind, name, ..]) => {
                    let own = repetition(&block.body, &ctx);
                    out.resources.push(ResourceBlock {
                        kind: (*kind).to_owned(),
                        name: (*name).to_owned(),
                        file: file.path.clone(),
                        line: crate::code::line_of(&file.text, block),
                        module: module_path.to_owned(),
                        instances: times(multiplicity, own),
                    });
                }
                ("module", [name, ..]) => {
                    let Some(source) = block
                        .body
                        .get_attribute("source")
                        .and_then(|a| crate::code::literal(&a.value))
                        .filter(|s| s.starts_with("./") || s.starts_with("../"))
                    else {
                        continue;
                    };
                    let Some(next) = (self.resolve)(dir, &source) else {
                        continue;
                    };
                    let args: Inputs = block
                        .body
                        .attributes()
                        .filter(|a| {
                            !matches!(
                                a.key.as_str(),
                                "source" | "count" | "for_each" | "providers" | "depends_on"
                            )
                        })
                        .map(|a| (a.key.as_str().to_owned(), evaluate(&a.value, &ctx)))
                        .collect();
                    let path = if module_path.is_empty() {
                        format!("module.{name}")
                    } else {
                        format!("{module_path}.module.{name}")
                    };
                    self.walk(
                        &next,
                        &path,
                        &args,
                        times(multiplicity, repetition(&block.body, &ctx)),
                        depth + 1,
                        out,
                    );
                }
                _ => {}
            }
        }
    }
}

/// A block's instances from its `count` or `for_each` (one without either).
fn repetition(body: &Body, ctx: &Context) -> Option<usize> {
    if let Some(count) = body.get_attribute("count") {
        return match evaluate(&count.value, ctx)? {
            Value::Number(n) => n.as_f64().filter(|n| *n >= 0.0).map(|n| n as usize),
            Value::Bool(b) => Some(usize::from(b)),
            _ => None,
        };
    }
    if let Some(for_each) = body.get_attribute("for_each") {
        return match evaluate(&for_each.value, ctx)? {
            Value::Array(mut items) => {
                items.dedup();
                Some(items.len())
            }
            Value::Object(map) => Some(map.len()),
            _ => None,
        };
    }
    Some(1)
}

/// Instances of a block inside calls: any known zero wins, any unknown makes it unknown.
fn times(a: Option<usize>, b: Option<usize>) -> Option<usize> {
    match (a, b) {
        (Some(0), _) | (_, Some(0)) => Some(0),
        (Some(a), Some(b)) => Some(a * b),
        _ => None,
    }
}

fn evaluate(expr: &hcl::edit::expr::Expression, ctx: &Context) -> Option<Value> {
    hcl::Expression::from(expr.clone()).evaluate(ctx).ok()
}

fn base_context<'a>(functions: &[(&'static str, FuncDef)]) -> Context<'a> {
    let mut ctx = Context::new();
    for (name, func) in functions {
        ctx.declare_func(*name, func.clone());
    }
    ctx
}

fn context<'a>(
    functions: &[(&'static str, FuncDef)],
    vars: &BTreeMap<String, Value>,
    locals: &BTreeMap<String, Value>,
) -> Context<'a> {
    let mut ctx = base_context(functions);
    let object = |map: &BTreeMap<String, Value>| {
        Value::Object(map.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    };
    ctx.declare_var("var", object(vars));
    ctx.declare_var("local", object(locals));
    ctx
}

/// The pure functions `count` and `for_each` expressions commonly use.
fn functions() -> Vec<(&'static str, FuncDef)> {
    let variadic = |f: hcl::eval::Func| FuncDef::builder().variadic_param(ParamType::Any).build(f);
    let one = |f: hcl::eval::Func| FuncDef::new(f, [ParamType::Any]);
    vec![
        ("length", one(length)),
        ("max", variadic(max)),
        ("min", variadic(min)),
        ("concat", variadic(concat)),
        ("coalesce", variadic(coalesce)),
        ("compact", one(compact)),
        ("distinct", one(distinct)),
        ("toset", one(distinct)),
        ("tolist", one(identity)),
        ("tomap", one(identity)),
        ("flatten", one(flatten)),
        ("keys", one(keys)),
        ("values", one(values)),
        ("merge", variadic(merge)),
        (
            "contains",
            FuncDef::new(contains, [ParamType::Any, ParamType::Any]),
        ),
        (
            "lookup",
            FuncDef::builder()
                .params([ParamType::Any, ParamType::Any])
                .variadic_param(ParamType::Any)
                .build(lookup),
        ),
    ]
}

fn length(args: FuncArgs) -> Result<Value, String> {
    match &args[0] {
        Value::Array(a) => Ok(a.len().into()),
        Value::Object(o) => Ok(o.len().into()),
        Value::String(s) => Ok(s.chars().count().into()),
        _ => Err("length of what".into()),
    }
}

fn numbers(args: &FuncArgs) -> Result<Vec<f64>, String> {
    args.iter()
        .map(|v| match v {
            Value::Number(n) => n.as_f64().ok_or_else(|| "not a number".to_owned()),
            _ => Err("not a number".into()),
        })
        .collect()
}

fn number(n: f64) -> Value {
    if n.fract() == 0.0 && n >= 0.0 {
        Value::from(n as u64)
    } else {
        Value::from(n)
    }
}

fn max(args: FuncArgs) -> Result<Value, String> {
    numbers(&args)?
        .into_iter()
        .reduce(f64::max)
        .map(number)
        .ok_or_else(|| "max of nothing".into())
}

fn min(args: FuncArgs) -> Result<Value, String> {
    numbers(&args)?
        .into_iter()
        .reduce(f64::min)
        .map(number)
        .ok_or_else(|| "min of nothing".into())
}

fn concat(args: FuncArgs) -> Result<Value, String> {
    let mut all = Vec::new();
    for value in args.iter() {
        match value {
            Value::Array(a) => all.extend(a.iter().cloned()),
            _ => return Err("concat of a non-list".into()),
        }
    }
    Ok(Value::Array(all))
}

fn is_empty_value(v: &Value) -> bool {
    matches!(v, Value::Null) || *v == Value::String(String::new())
}

fn coalesce(args: FuncArgs) -> Result<Value, String> {
    args.iter()
        .find(|v| !is_empty_value(v))
        .cloned()
        .ok_or_else(|| "no value".into())
}

fn compact(args: FuncArgs) -> Result<Value, String> {
    match &args[0] {
        Value::Array(a) => Ok(Value::Array(
            a.iter().filter(|v| !is_empty_value(v)).cloned().collect(),
        )),
        _ => Err("compact of a non-list".into()),
    }
}

fn distinct(args: FuncArgs) -> Result<Value, String> {
    match &args[0] {
        Value::Array(a) => {
            let mut out: Vec<Value> = Vec::new();
            for v in a {
                if !out.contains(v) {
                    out.push(v.clone());
                }
            }
            Ok(Value::Array(out))
        }
        other => Ok(other.clone()),
    }
}

fn identity(args: FuncArgs) -> Result<Value, String> {
    Ok(args[0].clone())
}

fn flatten(args: FuncArgs) -> Result<Value, String> {
    fn into(value: &Value, out: &mut Vec<Value>) {
        match value {
            Value::Array(a) => a.iter().for_each(|v| into(v, out)),
            other => out.push(other.clone()),
        }
    }
    let mut out = Vec::new();
    into(&args[0], &mut out);
    Ok(Value::Array(out))
}

fn keys(args: FuncArgs) -> Result<Value, String> {
    match &args[0] {
        Value::Object(o) => Ok(Value::Array(
            o.keys().map(|k| Value::String(k.clone())).collect(),
        )),
        _ => Err("keys of a non-map".into()),
    }
}

fn values(args: FuncArgs) -> Result<Value, String> {
    match &args[0] {
        Value::Object(o) => Ok(Value::Array(o.values().cloned().collect())),
        _ => Err("values of a non-map".into()),
    }
}

fn merge(args: FuncArgs) -> Result<Value, String> {
    let mut out = hcl::Map::new();
    for value in args.iter() {
        match value {
            Value::Object(o) => out.extend(o.iter().map(|(k, v)| (k.clone(), v.clone()))),
            Value::Null => {}
            _ => return Err("merge of a non-map".into()),
        }
    }
    Ok(Value::Object(out))
}

fn contains(args: FuncArgs) -> Result<Value, String> {
    match &args[0] {
        Value::Array(a) => Ok(Value::Bool(a.contains(&args[1]))),
        _ => Err("contains of a non-list".into()),
    }
}

fn lookup(args: FuncArgs) -> Result<Value, String> {
    let (Value::Object(map), Value::String(key)) = (&args[0], &args[1]) else {
        return Err("lookup of a non-map".into());
    };
    map.get(key)
        .or_else(|| args.get(2))
        .cloned()
        .ok_or_else(|| "no such key".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(dir: &str, source: &str) -> Option<String> {
        let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
        for part in source.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    parts.pop()?;
                }
                other => parts.push(other),
            }
        }
        Some(parts.join("/"))
    }

    #[test]
    fn counts_from_arguments_defaults_and_locals() {
        let module = r#"
variable "create_vpc" { default = true }
variable "enable_flow_log" { default = false }
variable "private_subnets" { default = [] }
variable "azs" {}
locals {
  create = var.create_vpc && length(var.private_subnets) > 0
  n      = max(length(var.private_subnets), 1)
}
resource "aws_vpc" "this" { count = local.create ? 1 : 0 }
resource "aws_subnet" "private" { count = local.create ? local.n : 0 }
resource "aws_iam_role" "flow_log" { count = var.enable_flow_log ? 1 : 0 }
resource "aws_route_table" "each" { for_each = toset(var.private_subnets) }
resource "aws_eip" "nat" { count = length(var.azs) }
resource "aws_internet_gateway" "this" {}
"#;
        let example = r#"
module "vpc" {
  source          = "../../"
  private_subnets = ["a", "b", "c"]
  azs             = data.aws_availability_zones.names
}
module "off" {
  source = "../../"
  count  = 0
}
"#;
        let folders = BTreeMap::from([
            ("".to_owned(), vec![TfFile::new("main.tf", module)]),
            (
                "examples/simple".to_owned(),
                vec![TfFile::new("examples/simple/main.tf", example)],
            ),
        ]);
        let got = instantiate("examples/simple", &folders, &resolve);
        let counted: Vec<(String, String, Option<usize>)> = got
            .resources
            .iter()
            .map(|r| (r.module.clone(), r.address(), r.instances))
            .collect();
        let m = |module: &str, address: &str, n: Option<usize>| {
            (module.to_owned(), address.to_owned(), n)
        };
        assert_eq!(
            counted,
            vec![
                m("module.vpc", "aws_vpc.this", Some(1)),
                m("module.vpc", "aws_subnet.private", Some(3)),
                m("module.vpc", "aws_iam_role.flow_log", Some(0)),
                m("module.vpc", "aws_route_table.each", Some(3)),
                m("module.vpc", "aws_eip.nat", None),
                m("module.vpc", "aws_internet_gateway.this", Some(1)),
                m("module.off", "aws_vpc.this", Some(0)),
                m("module.off", "aws_subnet.private", Some(0)),
                m("module.off", "aws_iam_role.flow_log", Some(0)),
                m("module.off", "aws_route_table.each", Some(0)),
                m("module.off", "aws_eip.nat", Some(0)),
                m("module.off", "aws_internet_gateway.this", Some(0)),
            ]
        );
        assert_eq!(got.folders, vec!["examples/simple", ""]);
    }
}
