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

use std::collections::BTreeMap;
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
                    _ => {
                        let bytes: &[u8] = &buffer;
                        parse_slice(bytes, offset, |d| {
                            OutputChangesSeed {
                                changes: &mut plan.output_changes,
                                bytes,
                            }
                            .deserialize(d)
                        })?
                    }
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
    let mut scratch = Scratch::default();
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
        let bytes: &[u8] = buffer;
        changes.push(parse_slice(bytes, offset, |d| {
            ResourceChangeSeed {
                scratch: &mut scratch,
                bytes,
            }
            .deserialize(d)
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

/// Reads one resource change, `bytes` being the copied text it is parsed from (attribute
/// values are kept as ranges of it); `scratch` is reused from one change to the next so
/// that reading a change allocates only what the model keeps.
struct ResourceChangeSeed<'s, 'de> {
    scratch: &'s mut Scratch,
    bytes: &'de [u8],
}

impl<'de> DeserializeSeed<'de> for ResourceChangeSeed<'_, 'de> {
    type Value = ResourceChange;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ResourceChangeSeed<'_, 'de> {
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
                ResourceField::Change => {
                    change = Some(map.next_value_seed(ChangeSeed {
                        scratch: &mut *self.scratch,
                        bytes: self.bytes,
                    })?)
                }
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
            changed_attributes: self.scratch.changed_attributes(self.bytes),
            sensitive_attributes: self.scratch.sensitive_attributes(),
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

/// The `change` object, reduced to what reports need; its attribute values and masks are
/// read into the [`Scratch`] the seed was handed.
#[derive(Default)]
struct RawChange {
    /// The `actions` array joined with commas, without allocating per element.
    actions: Option<String>,
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
}

/// The parts of one change read without keeping them: `before`/`after` reduced to their
/// top-level attributes and where each value's text lies, and the three masks reduced to
/// the attributes they mark. Cleared and refilled for each change, so its buffers are
/// allocated once per plan, not once per change.
#[derive(Default)]
struct Scratch {
    before: Attributes,
    after: Attributes,
    after_unknown: Marks,
    before_sensitive: Marks,
    after_sensitive: Marks,
}

impl Scratch {
    fn clear(&mut self) {
        self.before.clear();
        self.after.clear();
        self.after_unknown.clear();
        self.before_sensitive.clear();
        self.after_sensitive.clear();
    }

    /// Top-level attributes whose value differs between before and after, or is unknown
    /// until apply, sorted; `bytes` is the text the values were read from.
    fn changed_attributes(&self, bytes: &[u8]) -> Vec<String> {
        let (Shape::Object, Shape::Object) = (self.before.shape, self.after.shape) else {
            return Vec::new();
        };
        let (before, after) = (&self.before, &self.after);
        let mut changed: Vec<&str> = self.after_unknown.iter().collect();
        let same = |a: (usize, usize), b: (usize, usize)| {
            json_eq(
                bytes.get(a.0..a.1).unwrap_or_default(),
                bytes.get(b.0..b.1).unwrap_or_default(),
            )
        };
        // Terraform writes both sides with the same keys in the same order; compare
        // pairwise and only fall back to lookups when they differ.
        let same_keys = before.entries.len() == after.entries.len()
            && before
                .iter()
                .zip(after.iter())
                .all(|((b, _), (a, _))| a == b);
        if same_keys {
            for ((name, before_value), (_, after_value)) in before.iter().zip(after.iter()) {
                if !same(before_value, after_value) {
                    changed.push(name);
                }
            }
        } else {
            let before_map: BTreeMap<&str, (usize, usize)> = before.iter().collect();
            let after_map: BTreeMap<&str, (usize, usize)> = after.iter().collect();
            for (name, value) in &before_map {
                if !after_map
                    .get(name)
                    .is_some_and(|other| same(*value, *other))
                {
                    changed.push(name);
                }
            }
            for name in after_map.keys() {
                if !before_map.contains_key(name) {
                    changed.push(name);
                }
            }
        }
        sorted_names(changed)
    }

    /// Top-level attributes marked sensitive before or after, sorted.
    fn sensitive_attributes(&self) -> Vec<String> {
        sorted_names(
            self.before_sensitive
                .iter()
                .chain(self.after_sensitive.iter())
                .collect(),
        )
    }
}

fn sorted_names(mut names: Vec<&str>) -> Vec<String> {
    if names.is_empty() {
        return Vec::new();
    }
    names.sort_unstable();
    names.dedup();
    names.into_iter().map(str::to_string).collect()
}

/// Whether two JSON texts are the same value as far as slipway cares: byte for byte, or
/// the same once whitespace between tokens is ignored (equal hashes).
fn json_eq(a: &[u8], b: &[u8]) -> bool {
    if a == b {
        return true;
    }
    (has_whitespace(a) || has_whitespace(b)) && hash_json(a) == hash_json(b)
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

struct ChangeSeed<'s, 'de> {
    scratch: &'s mut Scratch,
    bytes: &'de [u8],
}

impl<'de> DeserializeSeed<'de> for ChangeSeed<'_, 'de> {
    type Value = RawChange;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<RawChange, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ChangeSeed<'_, 'de> {
    type Value = RawChange;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a change object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawChange, A::Error> {
        let mut change = RawChange::default();
        let (scratch, bytes) = (self.scratch, self.bytes);
        scratch.clear();
        while let Some(field) = map.next_key::<ChangeField>()? {
            match field {
                ChangeField::Actions => change.actions = Some(map.next_value_seed(JoinedActions)?),
                ChangeField::Before => map.next_value_seed(AttributesSeed {
                    table: &mut scratch.before,
                    bytes,
                })?,
                ChangeField::After => map.next_value_seed(AttributesSeed {
                    table: &mut scratch.after,
                    bytes,
                })?,
                ChangeField::AfterUnknown => {
                    map.next_value_seed(MarksSeed(&mut scratch.after_unknown))?
                }
                ChangeField::BeforeSensitive => {
                    map.next_value_seed(MarksSeed(&mut scratch.before_sensitive))?
                }
                ChangeField::AfterSensitive => {
                    map.next_value_seed(MarksSeed(&mut scratch.after_sensitive))?
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
struct OutputChangesSeed<'v, 'de> {
    changes: &'v mut Vec<OutputChange>,
    bytes: &'de [u8],
}

impl<'de> DeserializeSeed<'de> for OutputChangesSeed<'_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for OutputChangesSeed<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of output changes")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut scratch = Scratch::default();
        while let Some(name) = map.next_key::<String>()? {
            let change = map.next_value_seed(ChangeSeed {
                scratch: &mut scratch,
                bytes: self.bytes,
            })?;
            let action = change.action().map_err(|actions| {
                de::Error::custom(format_args!(
                    "output change {name}: unsupported actions {actions}"
                ))
            })?;
            let sensitive = scratch.before_sensitive.any() || scratch.after_sensitive.any();
            self.changes.push(OutputChange {
                name,
                action,
                sensitive,
            });
        }
        Ok(())
    }
}

/// What a `before` or `after` value is.
#[derive(Default, Clone, Copy, PartialEq)]
enum Shape {
    #[default]
    Absent,
    Object,
    /// Not an object (Terraform writes none such for a resource); only told apart as such.
    Other,
}

/// A value reduced to its top-level attributes: each name and where its value's text
/// lies in the copied change. Names live in one buffer; nothing is hashed or copied.
#[derive(Default)]
struct Attributes {
    shape: Shape,
    names: String,
    /// (end of the name in `names`, start and end of the value's text); a name starts
    /// where the previous one ends.
    entries: Vec<(usize, usize, usize)>,
}

impl Attributes {
    fn clear(&mut self) {
        self.shape = Shape::Absent;
        self.names.clear();
        self.entries.clear();
    }

    fn iter(&self) -> impl Iterator<Item = (&str, (usize, usize))> {
        let mut start = 0;
        self.entries.iter().map(move |&(end, from, to)| {
            let name = self.names.get(start..end).unwrap_or_default();
            start = end;
            (name, (from, to))
        })
    }
}

/// Reads a value into an [`Attributes`] table; `bytes` is the slice being parsed, which
/// raw values are borrowed from.
struct AttributesSeed<'t, 'de> {
    table: &'t mut Attributes,
    bytes: &'de [u8],
}

impl<'de> DeserializeSeed<'de> for AttributesSeed<'_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        self.table.clear();
        deserializer.deserialize_any(self)
    }
}

impl<'de> AttributesSeed<'_, 'de> {
    fn other<E>(self) -> Result<(), E> {
        self.table.shape = Shape::Other;
        Ok(())
    }
}

impl<'de> Visitor<'de> for AttributesSeed<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.other()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.other()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.other()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.other()
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.other()
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<&RawValue>()?.is_some() {}
        self.other()
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let table = self.table;
        table.shape = Shape::Object;
        let base = self.bytes.as_ptr() as usize;
        while map.next_key_seed(KeyInto(&mut table.names))?.is_some() {
            // Values are taken raw (borrowed from the copied resource change): serde_json
            // skips them without recursion, however deep, and only where their text lies
            // is kept, to be compared byte for byte with the other side's.
            let raw = map.next_value::<&RawValue>()?.get();
            let from = (raw.as_ptr() as usize)
                .checked_sub(base)
                .filter(|from| from + raw.len() <= self.bytes.len())
                .ok_or_else(|| de::Error::custom("an attribute value outside the change"))?;
            table
                .entries
                .push((table.names.len(), from, from + raw.len()));
        }
        Ok(())
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

fn has_whitespace(bytes: &[u8]) -> bool {
    memchr::memchr3(b' ', b'\n', b'\t', bytes).is_some() || memchr::memchr(b'\r', bytes).is_some()
}

/// Hashes JSON text ignoring whitespace between tokens, so equal values hash equally
/// however the plan was indented.
fn hash_json(bytes: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
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
/// top-level attributes with a `true` anywhere inside (names in one buffer).
#[derive(Default)]
struct Marks {
    whole: bool,
    names: String,
    /// The end of each marked name in `names`.
    ends: Vec<usize>,
}

impl Marks {
    fn clear(&mut self) {
        self.whole = false;
        self.names.clear();
        self.ends.clear();
    }

    fn any(&self) -> bool {
        self.whole || !self.ends.is_empty()
    }

    fn iter(&self) -> impl Iterator<Item = &str> {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let name = self.names.get(start..end).unwrap_or_default();
            start = end;
            name
        })
    }
}

struct MarksSeed<'m>(&'m mut Marks);

impl<'de> DeserializeSeed<'de> for MarksSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        self.0.clear();
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for MarksSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mask of booleans")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.0.whole = v;
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        self.0.whole = AnyTrueSeed.visit_seq(seq)?;
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let marks = self.0;
        while map.next_key_seed(KeyInto(&mut marks.names))?.is_some() {
            if map.next_value_seed(AnyTrueSeed)? {
                marks.ends.push(marks.names.len());
            } else {
                let start = marks.ends.last().copied().unwrap_or(0);
                marks.names.truncate(start);
            }
        }
        Ok(())
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
