//! Streaming reader for `terraform show -json` / `tofu show -json` plans.
//!
//! The plan's top-level object is walked by the structural [`Scanner`]: each element of
//! `resource_changes` and `resource_drift` is copied out on its own and parsed with serde
//! visitors as a slice (fast, and memory bounded by one resource change), the small
//! `format_version`, `terraform_version` and `output_changes` likewise, and everything
//! else (`prior_state`, `planned_values`, `configuration`, ...) is skipped unparsed.
//! Attribute values are reduced to one hash per top-level attribute, taken over their raw
//! text, so no value is ever built or kept and sensitive values cannot leak. Deep values
//! (Kubernetes manifests) cost no stack: raw values are skipped iteratively by serde_json,
//! the recursion limit is lifted, and `serde_stacker` grows the stack for the visitors
//! that do recurse (the sensitivity and unknown-value masks).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::File;
use std::hash::{DefaultHasher, Hasher};
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::model::{Action, OutputChange, Plan, ResourceChange, ResourceMode};
use crate::scan::{ScanError, Scanner};

/// Why a plan could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("cannot read plan file {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read the plan")]
    Read(#[source] io::Error),
    #[error("the plan is empty: expected the JSON written by `terraform show -json`")]
    Empty,
    #[error("malformed plan JSON at byte {offset}: {message}")]
    Malformed { message: String, offset: u64 },
    #[error("the plan has no `format_version`: is this the output of `terraform show -json`?")]
    MissingFormatVersion,
    #[error(
        "unsupported plan format_version \"{0}\": slipway reads format versions 0.1, 0.2 and 1.x"
    )]
    UnsupportedFormatVersion(String),
}

/// Reads a plan from a JSON file written by `terraform show -json PLANFILE`.
pub fn read_plan_file(path: &Path) -> Result<Plan, PlanError> {
    let io_error = |source| PlanError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io_error)?;
    read_plan(file).map_err(|error| match error {
        PlanError::Read(source) => io_error(source),
        other => other,
    })
}

/// Reads a plan from any byte stream, in bounded memory.
pub fn read_plan<R: io::Read>(reader: R) -> Result<Plan, PlanError> {
    parse(Scanner::new(BufReader::with_capacity(1 << 20, reader)))
}

/// Reads a plan already in memory.
pub fn parse_plan(bytes: &[u8]) -> Result<Plan, PlanError> {
    parse(Scanner::new(bytes))
}

fn scan_error(error: ScanError) -> PlanError {
    match error {
        ScanError::Io(source) => PlanError::Read(source),
        ScanError::Syntax { message, offset } => PlanError::Malformed { message, offset },
    }
}

/// Walks the top-level object: the sections slipway reads are copied out one resource
/// change (or one small value) at a time and parsed as slices; the rest is skipped.
fn parse<R: BufRead>(mut scanner: Scanner<R>) -> Result<Plan, PlanError> {
    match scanner.peek().map_err(scan_error)? {
        None => return Err(PlanError::Empty),
        Some(b'{') => scanner.bump(),
        Some(_) => {
            return Err(expected(
                &scanner,
                "a JSON object written by `terraform show -json`",
            ));
        }
    }
    let mut plan = Plan {
        format_version: String::new(),
        terraform_version: None,
        resource_changes: Vec::new(),
        resource_drift: Vec::new(),
        output_changes: Vec::new(),
    };
    let mut format_version = None;
    let mut buffer = Vec::new();
    let mut first = true;
    loop {
        match scanner.peek().map_err(scan_error)? {
            Some(b'}') => {
                scanner.bump();
                break;
            }
            Some(b',') if !first => scanner.bump(),
            _ if first => {}
            _ => return Err(expected(&scanner, "`,` or `}` after a value")),
        }
        first = false;
        buffer.clear();
        let key_offset = scanner.offset();
        if scanner.peek().map_err(scan_error)? != Some(b'"') {
            return Err(expected(&scanner, "a field name"));
        }
        scanner.value(Some(&mut buffer)).map_err(scan_error)?;
        let key: String = parse_slice(&buffer, key_offset, |d| String::deserialize(d))?;
        scanner.expect(b':', "`:`").map_err(scan_error)?;
        match key.as_str() {
            "resource_changes" => {
                read_changes(&mut scanner, &mut buffer, &mut plan.resource_changes)?
            }
            "resource_drift" => read_changes(&mut scanner, &mut buffer, &mut plan.resource_drift)?,
            "format_version" | "terraform_version" | "output_changes" => {
                buffer.clear();
                let offset = scanner.offset();
                scanner.value(Some(&mut buffer)).map_err(scan_error)?;
                match key.as_str() {
                    "format_version" => {
                        let version: String =
                            parse_slice(&buffer, offset, |d| String::deserialize(d))?;
                        // Fail before streaming a large plan we cannot interpret.
                        check_format_version(&version)?;
                        format_version = Some(version);
                    }
                    "terraform_version" => {
                        plan.terraform_version =
                            parse_slice(&buffer, offset, |d| Option::<String>::deserialize(d))?;
                    }
                    _ => parse_slice(&buffer, offset, |d| {
                        OutputChangesSeed(&mut plan.output_changes).deserialize(d)
                    })?,
                }
            }
            _ => scanner.value(None).map_err(scan_error)?,
        }
    }
    if scanner.peek().map_err(scan_error)?.is_some() {
        return Err(expected(
            &scanner,
            "the end of the plan after its closing `}`",
        ));
    }
    plan.format_version = format_version.ok_or(PlanError::MissingFormatVersion)?;
    Ok(plan)
}

fn expected<R: BufRead>(scanner: &Scanner<R>, wanted: &str) -> PlanError {
    PlanError::Malformed {
        message: format!("expected {wanted}"),
        offset: scanner.offset(),
    }
}

/// Reads a `resource_changes`-shaped array (or `null`), one element at a time.
fn read_changes<R: BufRead>(
    scanner: &mut Scanner<R>,
    buffer: &mut Vec<u8>,
    changes: &mut Vec<ResourceChange>,
) -> Result<(), PlanError> {
    match scanner.peek().map_err(scan_error)? {
        Some(b'[') => scanner.bump(),
        Some(b'n') => {
            let offset = scanner.offset();
            buffer.clear();
            scanner.value(Some(buffer)).map_err(scan_error)?;
            return parse_slice(buffer, offset, |d| <()>::deserialize(d));
        }
        _ => return Err(expected(scanner, "an array of resource changes")),
    }
    let mut first = true;
    loop {
        match scanner.peek().map_err(scan_error)? {
            Some(b']') => {
                scanner.bump();
                return Ok(());
            }
            Some(b',') if !first => scanner.bump(),
            _ if first => {}
            _ => return Err(expected(scanner, "`,` or `]` between resource changes")),
        }
        first = false;
        buffer.clear();
        let offset = scanner.offset();
        scanner.value(Some(buffer)).map_err(scan_error)?;
        changes.push(parse_slice(buffer, offset, |d| {
            ResourceChangeSeed.deserialize(d)
        })?);
    }
}

type Stacked<'a, 'de> =
    serde_stacker::Deserializer<&'a mut serde_json::Deserializer<serde_json::de::SliceRead<'de>>>;

/// Parses one copied value with serde_json, growing the stack on demand for deep values;
/// errors carry their offset in the whole plan.
fn parse_slice<'de, T>(
    bytes: &'de [u8],
    offset: u64,
    parse: impl FnOnce(Stacked<'_, 'de>) -> Result<T, serde_json::Error>,
) -> Result<T, PlanError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    de.disable_recursion_limit();
    let value = parse(serde_stacker::Deserializer::new(&mut de))
        .and_then(|value| de.end().map(|()| value))
        .map_err(|error| PlanError::Malformed {
            offset: offset + position_in(bytes, error.line(), error.column()),
            message: strip_position(&error),
        })?;
    Ok(value)
}

/// The byte offset of serde_json's 1-based line and column within `bytes`.
fn position_in(bytes: &[u8], line: usize, column: usize) -> u64 {
    let line_start = if line <= 1 {
        0
    } else {
        bytes
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .nth(line - 2)
            .map_or(bytes.len(), |(at, _)| at + 1)
    };
    (line_start + column.saturating_sub(1)) as u64
}

/// serde_json's message without its " at line L column C", which is relative to the
/// copied value and would mislead.
fn strip_position(error: &serde_json::Error) -> String {
    let message = error.to_string();
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_string(),
        None => message,
    }
}

/// Accepts "0.1", "0.2" and any "1.N": the 1.x series promises backward compatibility.
fn check_format_version(version: &str) -> Result<(), PlanError> {
    let mut parts = version.splitn(2, '.');
    let supported = match (parts.next(), parts.next()) {
        (Some("0"), Some("1" | "2")) => true,
        (Some("1"), Some(minor)) => minor.parse::<u32>().is_ok(),
        _ => false,
    };
    if supported {
        Ok(())
    } else {
        Err(PlanError::UnsupportedFormatVersion(version.to_string()))
    }
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum ResourceField {
    Address,
    PreviousAddress,
    ModuleAddress,
    Mode,
    Type,
    Name,
    ProviderName,
    Deposed,
    Change,
    ActionReason,
    #[serde(other)]
    Other,
}

struct ResourceChangeSeed;

impl<'de> DeserializeSeed<'de> for ResourceChangeSeed {
    type Value = ResourceChange;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ResourceChangeSeed {
    type Value = ResourceChange;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a resource change object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ResourceChange, A::Error> {
        let mut address: Option<String> = None;
        let mut previous_address = None;
        let mut module_address = None;
        let mut mode = ResourceMode::Managed;
        let mut resource_type: Option<String> = None;
        let mut name = None;
        let mut provider_name = None;
        let mut deposed = None;
        let mut change: Option<RawChange> = None;
        let mut action_reason = None;
        while let Some(field) = map.next_key::<ResourceField>()? {
            match field {
                ResourceField::Address => address = map.next_value()?,
                ResourceField::PreviousAddress => previous_address = map.next_value()?,
                ResourceField::ModuleAddress => module_address = map.next_value()?,
                ResourceField::Mode => mode = map.next_value_seed(ModeSeed)?,
                ResourceField::Type => resource_type = map.next_value()?,
                ResourceField::Name => name = map.next_value()?,
                ResourceField::ProviderName => provider_name = map.next_value()?,
                ResourceField::Deposed => deposed = map.next_value()?,
                ResourceField::Change => change = Some(map.next_value_seed(ChangeSeed)?),
                ResourceField::ActionReason => action_reason = map.next_value()?,
                ResourceField::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let address = address.ok_or_else(|| de::Error::missing_field("address"))?;
        let resource_type = resource_type.ok_or_else(|| {
            de::Error::custom(format_args!(
                "resource change {address}: missing field `type`"
            ))
        })?;
        let change = change.ok_or_else(|| {
            de::Error::custom(format_args!(
                "resource change {address}: missing field `change`"
            ))
        })?;
        let action = change.action().map_err(|actions| {
            de::Error::custom(format_args!(
                "resource change {address}: unsupported actions {actions}"
            ))
        })?;
        Ok(ResourceChange {
            previous_address,
            module_address,
            mode,
            resource_type,
            name: name.unwrap_or_default(),
            provider_name,
            deposed,
            action,
            action_reason,
            importing: change.importing,
            replace_paths: change
                .replace_paths
                .iter()
                .map(|path| render_path(path))
                .collect(),
            changed_attributes: change.changed_attributes(),
            sensitive_attributes: change
                .before_sensitive
                .keys
                .union(&change.after_sensitive.keys)
                .cloned()
                .collect(),
            address,
        })
    }
}

/// `mode`: `"data"` for data sources; anything else (or null) is a managed resource.
struct ModeSeed;

impl<'de> DeserializeSeed<'de> for ModeSeed {
    type Value = ResourceMode;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<ResourceMode, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ModeSeed {
    type Value = ResourceMode;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a resource mode")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<ResourceMode, E> {
        Ok(if v == "data" {
            ResourceMode::Data
        } else {
            ResourceMode::Managed
        })
    }

    fn visit_unit<E: de::Error>(self) -> Result<ResourceMode, E> {
        Ok(ResourceMode::Managed)
    }
}

/// Renders a `replace_paths` entry: `["tags","env"]` as `tags.env`, `["ingress",0,"cidr"]`
/// as `ingress[0].cidr`.
fn render_path(steps: &[serde_json::Value]) -> String {
    let mut rendered = String::new();
    for step in steps {
        match step {
            serde_json::Value::String(key) => {
                let plain = !key.is_empty()
                    && key
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                if plain {
                    if !rendered.is_empty() {
                        rendered.push('.');
                    }
                    rendered.push_str(key);
                } else {
                    rendered.push_str(&format!("[{}]", serde_json::Value::String(key.clone())));
                }
            }
            other => rendered.push_str(&format!("[{other}]")),
        }
    }
    rendered
}

/// The `change` object, reduced to what reports need.
#[derive(Default)]
struct RawChange {
    /// The `actions` array joined with commas, without allocating per element.
    actions: Option<String>,
    before: Attributes,
    after: Attributes,
    after_unknown: Marks,
    before_sensitive: Marks,
    after_sensitive: Marks,
    replace_paths: Vec<Vec<serde_json::Value>>,
    importing: bool,
}

impl RawChange {
    /// The action, or the offending `actions` array rendered for an error message.
    fn action(&self) -> Result<Action, String> {
        let joined = self.actions.as_deref().unwrap_or_default();
        Action::from_joined(joined).ok_or_else(|| {
            let names: Vec<&str> = joined.split(',').filter(|n| !n.is_empty()).collect();
            format!("{names:?}")
        })
    }

    fn changed_attributes(&self) -> Vec<String> {
        let (Attributes::Object(before), Attributes::Object(after)) = (&self.before, &self.after)
        else {
            return Vec::new();
        };
        let mut changed: BTreeSet<&str> =
            self.after_unknown.keys.iter().map(String::as_str).collect();
        // Terraform writes both sides with the same keys in the same order; compare
        // pairwise and only fall back to lookups when they differ.
        let same_keys = before.entries.len() == after.entries.len()
            && before
                .iter()
                .zip(after.iter())
                .all(|((b, _), (a, _))| a == b);
        if same_keys {
            for ((name, before_hash), (_, after_hash)) in before.iter().zip(after.iter()) {
                if before_hash != after_hash {
                    changed.insert(name);
                }
            }
        } else {
            let before_map: BTreeMap<&str, u64> = before.iter().collect();
            let after_map: BTreeMap<&str, u64> = after.iter().collect();
            for (name, hash) in &before_map {
                if after_map.get(name) != Some(hash) {
                    changed.insert(name);
                }
            }
            for name in after_map.keys() {
                if !before_map.contains_key(name) {
                    changed.insert(name);
                }
            }
        }
        changed.into_iter().map(str::to_string).collect()
    }
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum ChangeField {
    Actions,
    Before,
    After,
    AfterUnknown,
    BeforeSensitive,
    AfterSensitive,
    ReplacePaths,
    Importing,
    #[serde(other)]
    Other,
}

struct ChangeSeed;

impl<'de> DeserializeSeed<'de> for ChangeSeed {
    type Value = RawChange;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<RawChange, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ChangeSeed {
    type Value = RawChange;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a change object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawChange, A::Error> {
        let mut change = RawChange::default();
        while let Some(field) = map.next_key::<ChangeField>()? {
            match field {
                ChangeField::Actions => change.actions = Some(map.next_value_seed(JoinedActions)?),
                ChangeField::Before => change.before = map.next_value_seed(AttributesSeed)?,
                ChangeField::After => change.after = map.next_value_seed(AttributesSeed)?,
                ChangeField::AfterUnknown => {
                    change.after_unknown = map.next_value_seed(MarksSeed)?
                }
                ChangeField::BeforeSensitive => {
                    change.before_sensitive = map.next_value_seed(MarksSeed)?
                }
                ChangeField::AfterSensitive => {
                    change.after_sensitive = map.next_value_seed(MarksSeed)?
                }
                ChangeField::ReplacePaths => {
                    let paths: Option<Vec<Vec<serde_json::Value>>> = map.next_value()?;
                    change.replace_paths = paths.unwrap_or_default();
                }
                ChangeField::Importing => {
                    change.importing = map.next_value::<Option<IgnoredAny>>()?.is_some()
                }
                ChangeField::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(change)
    }
}

/// An `actions` array read as one comma-joined string.
struct JoinedActions;

impl<'de> DeserializeSeed<'de> for JoinedActions {
    type Value = String;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for JoinedActions {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of action names")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<String, A::Error> {
        let mut joined = String::new();
        let mut first = true;
        loop {
            if !first {
                joined.push(',');
            }
            if seq.next_element_seed(KeyInto(&mut joined))?.is_none() {
                if !first {
                    joined.pop();
                }
                return Ok(joined);
            }
            first = false;
        }
    }
}

/// Appends each output change of the `output_changes` object as it is read.
struct OutputChangesSeed<'v>(&'v mut Vec<OutputChange>);

impl<'de> DeserializeSeed<'de> for OutputChangesSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for OutputChangesSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of output changes")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(name) = map.next_key::<String>()? {
            let change = map.next_value_seed(ChangeSeed)?;
            let action = change.action().map_err(|actions| {
                de::Error::custom(format_args!(
                    "output change {name}: unsupported actions {actions}"
                ))
            })?;
            let sensitive = change.before_sensitive.any() || change.after_sensitive.any();
            self.0.push(OutputChange {
                name,
                action,
                sensitive,
            });
        }
        Ok(())
    }
}

/// A value reduced to one hash per top-level attribute. Names live in one buffer so a
/// resource's attributes cost two allocations, not one per name.
#[derive(Default, PartialEq)]
enum Attributes {
    #[default]
    Absent,
    Object(AttributeTable),
    Other(u64),
}

#[derive(Default, PartialEq)]
struct AttributeTable {
    names: String,
    /// (end of the name in `names`, hash of the value); a name starts where the previous
    /// one ends.
    entries: Vec<(usize, u64)>,
}

impl AttributeTable {
    fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        let mut start = 0;
        self.entries.iter().map(move |&(end, hash)| {
            let name = self.names.get(start..end).unwrap_or_default();
            start = end;
            (name, hash)
        })
    }
}

struct AttributesSeed;

impl<'de> DeserializeSeed<'de> for AttributesSeed {
    type Value = Attributes;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Attributes, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for AttributesSeed {
    type Value = Attributes;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Attributes, E> {
        Ok(Attributes::Absent)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Attributes, E> {
        Ok(Attributes::Other(u64::from(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Attributes, E> {
        Ok(Attributes::Other(hash_bytes(v.to_string().as_bytes())))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Attributes, E> {
        Ok(Attributes::Other(hash_bytes(v.to_string().as_bytes())))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Attributes, E> {
        Ok(Attributes::Other(hash_bytes(v.to_string().as_bytes())))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Attributes, E> {
        Ok(Attributes::Other(hash_bytes(v.as_bytes())))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Attributes, A::Error> {
        let mut hasher = DefaultHasher::new();
        while let Some(raw) = seq.next_element::<&RawValue>()? {
            hasher.write_u64(hash_json(raw.get()));
        }
        Ok(Attributes::Other(hasher.finish()))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Attributes, A::Error> {
        // Sized for a typical resource, to spare the reallocations of growing from empty.
        let mut table = AttributeTable {
            names: String::with_capacity(256),
            entries: Vec::with_capacity(16),
        };
        while map.next_key_seed(KeyInto(&mut table.names))?.is_some() {
            // Values are taken raw (borrowed from the copied resource change): serde_json
            // skips them without recursion, however deep, and hashing their bytes is far
            // cheaper than visiting every nested value.
            let raw = map.next_value::<&RawValue>()?;
            table
                .entries
                .push((table.names.len(), hash_json(raw.get())));
        }
        Ok(Attributes::Object(table))
    }
}

/// Appends a map key to a buffer instead of allocating it.
struct KeyInto<'b>(&'b mut String);

impl<'de> DeserializeSeed<'de> for KeyInto<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyInto<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.0.push_str(v);
        Ok(())
    }
}

fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    hasher.write(bytes);
    hasher.finish()
}

/// Hashes JSON text ignoring whitespace between tokens, so equal values hash equally
/// however the plan was indented.
fn hash_json(text: &str) -> u64 {
    let bytes = text.as_bytes();
    let mut hasher = DefaultHasher::new();
    // Compact plans (what Terraform writes) have no whitespace at all: hash in one go.
    if memchr::memchr3(b' ', b'\n', b'\t', bytes).is_none() && !bytes.contains(&b'\r') {
        hasher.write(bytes);
        return hasher.finish();
    }
    let (mut in_string, mut escaped) = (false, false);
    let mut run_start = 0;
    for (at, &byte) in bytes.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
        } else if byte == b'"' {
            in_string = true;
        } else if byte.is_ascii_whitespace() {
            hasher.write(&bytes[run_start..at]);
            run_start = at + 1;
        }
    }
    hasher.write(&bytes[run_start..]);
    hasher.finish()
}

/// A mask like `after_unknown` or `after_sensitive`: `true` for the whole value, or the
/// top-level attributes with a `true` anywhere inside.
#[derive(Default)]
struct Marks {
    whole: bool,
    keys: BTreeSet<String>,
}

impl Marks {
    fn any(&self) -> bool {
        self.whole || !self.keys.is_empty()
    }
}

struct MarksSeed;

impl<'de> DeserializeSeed<'de> for MarksSeed {
    type Value = Marks;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Marks, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for MarksSeed {
    type Value = Marks;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mask of booleans")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Marks, E> {
        Ok(Marks {
            whole: v,
            keys: BTreeSet::new(),
        })
    }
    fn visit_unit<E: de::Error>(self) -> Result<Marks, E> {
        Ok(Marks::default())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Marks, E> {
        Ok(Marks::default())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Marks, E> {
        Ok(Marks::default())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Marks, E> {
        Ok(Marks::default())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Marks, E> {
        Ok(Marks::default())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Marks, A::Error> {
        Ok(Marks {
            whole: AnyTrueSeed.visit_seq(seq)?,
            keys: BTreeSet::new(),
        })
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Marks, A::Error> {
        let mut keys = BTreeSet::new();
        let mut key = String::new();
        while map.next_key_seed(KeyInto(&mut key))?.is_some() {
            if map.next_value_seed(AnyTrueSeed)? {
                keys.insert(key.clone());
            }
            key.clear();
        }
        Ok(Marks { whole: false, keys })
    }
}

/// Whether a mask value holds a `true` anywhere.
struct AnyTrueSeed;

impl<'de> DeserializeSeed<'de> for AnyTrueSeed {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for AnyTrueSeed {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mask of booleans")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
        Ok(v)
    }
    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        let mut any = false;
        while let Some(marked) = seq.next_element_seed(AnyTrueSeed)? {
            any |= marked;
        }
        Ok(any)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let mut any = false;
        while map.next_key::<IgnoredAny>()?.is_some() {
            any |= map.next_value_seed(AnyTrueSeed)?;
        }
        Ok(any)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_versions() {
        for ok in ["0.1", "0.2", "1.0", "1.2", "1.10"] {
            assert!(check_format_version(ok).is_ok(), "{ok}");
        }
        for bad in ["0.3", "2.0", "1", "", "1.x", "abc"] {
            assert!(check_format_version(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn renders_replace_paths() {
        let path: Vec<serde_json::Value> =
            serde_json::from_str(r#"["ingress", 0, "cidr_blocks", "a b"]"#).expect("valid");
        assert_eq!(render_path(&path), r#"ingress[0].cidr_blocks["a b"]"#);
    }
}
