//! Streaming reader for `terraform show -json` / `tofu show -json` plans.
//!
//! The plan's top-level object is walked by the structural [`Scanner`]: the elements of
//! `resource_changes` and `resource_drift` are copied out in batches of about 512 KB and
//! each parsed with serde visitors as a slice (fast, and memory bounded by a few batches);
//! the small `format_version`, `terraform_version` and `output_changes` likewise, and
//! everything else (`prior_state`, `planned_values`, `configuration`, ...) is skipped
//! unparsed. A large array's batches are parsed by worker threads, one per core, while
//! this thread reads and scans the next ones; they are appended in the plan's order and
//! the error reported is the first one met reading in that order. Attribute values are
//! reduced to one hash per top-level attribute, taken over their raw text, so no value is
//! ever built or kept and sensitive values cannot leak. Deep values (Kubernetes
//! manifests) cost no stack: raw values are skipped iteratively by serde_json, the
//! recursion limit is lifted, and `serde_stacker` grows the stack for the visitors that
//! do recurse (the sensitivity and unknown-value masks, past their first levels).

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::hash::{DefaultHasher, Hasher};
use std::io::{self, BufRead, BufReader};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, mpsc};

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::de::{SliceRead, StrRead};
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
    let size = file.metadata().map(|m| m.len()).ok();
    parse(Scanner::new(BufReader::with_capacity(1 << 20, file)), size).map_err(
        |error| match error {
            PlanError::Read(source) => io_error(source),
            other => other,
        },
    )
}

/// Reads a plan from any byte stream, in bounded memory.
pub fn read_plan<R: io::Read>(reader: R) -> Result<Plan, PlanError> {
    parse(
        Scanner::new(BufReader::with_capacity(1 << 20, reader)),
        None,
    )
}

/// Reads a plan already in memory.
pub fn parse_plan(bytes: &[u8]) -> Result<Plan, PlanError> {
    parse(Scanner::new(bytes), Some(bytes.len() as u64))
}

fn scan_error(error: ScanError) -> PlanError {
    match error {
        ScanError::Io(source) => PlanError::Read(source),
        ScanError::Syntax { message, offset } => PlanError::Malformed { message, offset },
    }
}

/// Walks the top-level object: the sections slipway reads are copied out one resource
/// change (or one small value) at a time and parsed as slices; the rest is skipped.
///
/// `size`, the plan's length in bytes when it is known (a file, not a pipe), lets the list of
/// changes be sized once instead of doubling as it grows.
fn parse<R: BufRead>(mut scanner: Scanner<R>, size: Option<u64>) -> Result<Plan, PlanError> {
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
                read_changes(&mut scanner, &mut buffer, &mut plan.resource_changes, size)?
            }
            "resource_drift" => {
                read_changes(&mut scanner, &mut buffer, &mut plan.resource_drift, size)?
            }
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

/// Element bytes gathered before a batch is handed to a parser: large enough that handing
/// it over costs nothing next to parsing it, small enough that the batches in flight stay
/// a few MB whatever the plan's size.
const BATCH_BYTES: usize = 512 << 10;

/// Resource changes copied out of the plan, back to back, to be parsed together.
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    /// Each change's end in `bytes` (it starts where the previous one ends) and its offset
    /// in the plan, for error messages.
    changes: Vec<(usize, u64)>,
    /// The changes parsed by a worker, until they are appended to the plan's.
    parsed: Vec<ResourceChange>,
}

impl Batch {
    fn clear(&mut self) {
        self.bytes.clear();
        self.changes.clear();
    }

    /// Parses every change into the batch's own `parsed`.
    fn parse_own(&mut self, scratch: &mut Scratch) -> Result<(), PlanError> {
        let mut parsed = std::mem::take(&mut self.parsed);
        let result = self.parse(scratch, &mut parsed);
        self.parsed = parsed;
        result
    }

    /// Parses every change in order, appending them to `out`; stops at the first error.
    fn parse(&self, scratch: &mut Scratch, out: &mut Vec<ResourceChange>) -> Result<(), PlanError> {
        out.reserve(self.changes.len());
        // Validated as UTF-8 once, the changes are parsed as `str`s, sparing serde_json a
        // check of every string; bytes that are not UTF-8 take the slice path and its errors.
        let text = std::str::from_utf8(&self.bytes).ok();
        let mut start = 0;
        for &(end, offset) in &self.changes {
            let bytes = &self.bytes[start..end];
            let change = match text.and_then(|text| text.get(start..end)) {
                Some(text) => parse_change(StrRead::new(text), bytes, offset, scratch),
                None => parse_change(SliceRead::new(bytes), bytes, offset, scratch),
            }?;
            out.push(change);
            start = end;
        }
        Ok(())
    }
}

/// How `read_changes` stopped scanning a batch.
enum Scanned {
    /// The batch is full; more changes follow.
    Full,
    /// The array's closing `]` was read.
    End,
}

/// Scans changes into `batch` until it is full or the array ends.
fn scan_batch<R: BufRead>(
    scanner: &mut Scanner<R>,
    batch: &mut Batch,
    first: &mut bool,
) -> Result<Scanned, PlanError> {
    loop {
        match scanner.peek().map_err(scan_error)? {
            Some(b']') => {
                scanner.bump();
                return Ok(Scanned::End);
            }
            Some(b',') if !*first => scanner.bump(),
            _ if *first => {}
            _ => return Err(expected(scanner, "`,` or `]` between resource changes")),
        }
        *first = false;
        let offset = scanner.offset();
        scanner
            .value_to_parse(&mut batch.bytes)
            .map_err(scan_error)?;
        batch.changes.push((batch.bytes.len(), offset));
        if batch.bytes.len() >= BATCH_BYTES {
            return Ok(Scanned::Full);
        }
    }
}

/// Reads a `resource_changes`-shaped array (or `null`). Changes are copied out in batches;
/// a large array's batches are parsed by worker threads while the next ones are read, and
/// appended in the plan's order. Errors are those of reading it in order: the first
/// change that does not parse, or else where the array's text breaks.
fn read_changes<R: BufRead>(
    scanner: &mut Scanner<R>,
    buffer: &mut Vec<u8>,
    changes: &mut Vec<ResourceChange>,
    size: Option<u64>,
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
    let mut batch = Batch::default();
    let mut scratch = Scratch::default();
    let workers = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    loop {
        let scanned = scan_batch(scanner, &mut batch, &mut first);
        match scanned {
            // A small array (or one machine core): parsed here, batch by batch.
            Ok(Scanned::End) => return batch.parse(&mut scratch, changes),
            Ok(Scanned::Full) if workers < 2 => {
                batch.parse(&mut scratch, changes)?;
                batch.clear();
            }
            Ok(Scanned::Full) => {
                reserve_for_the_rest(changes, &batch, size, scanner.offset());
                break;
            }
            Err(error) => {
                // A change before the break that does not parse was met first.
                batch.parse(&mut scratch, changes)?;
                return Err(error);
            }
        }
    }
    read_in_parallel(scanner, batch, &mut first, workers, changes)
}

/// What a plan read from a pipe (its size unknown) is sized for once its first batch is
/// full: 256 MiB, a plan of a quarter of a million changes, larger than nearly all.
const UNKNOWN_PLAN_BYTES: u64 = 256 << 20;

/// Sizes `changes` for as many more as the rest of a plan of `size` bytes (or, unknown,
/// [`UNKNOWN_PLAN_BYTES`]) could hold at the first batch's bytes per change. Every change
/// kept would otherwise be moved and its memory faulted in again at each doubling, a third
/// of the reader's time on a large plan. The estimate counts the sections after the array
/// too, so it errs high: the capacity it leaves unused is address space reserved, never
/// touched, which costs no memory. A larger plan grows on from there by doubling.
fn reserve_for_the_rest(
    changes: &mut Vec<ResourceChange>,
    first: &Batch,
    size: Option<u64>,
    offset: u64,
) {
    let Some(per_change) = first.bytes.len().checked_div(first.changes.len()) else {
        return;
    };
    let size = size.unwrap_or(UNKNOWN_PLAN_BYTES);
    let rest = usize::try_from(size.saturating_sub(offset)).unwrap_or(usize::MAX);
    let estimate = first.changes.len().saturating_add(rest / per_change.max(1));
    // A reservation the system refuses (an estimate far beyond memory) only costs the
    // doublings.
    let _ = changes.try_reserve(estimate);
}

/// What a worker hands back: the batch's index, whether it parsed (or its first error) and
/// the batch itself, its text cleared and its changes parsed.
type Parsed = (usize, Result<(), PlanError>, Batch);

/// The rest of a large array: this thread scans batches while `workers` threads parse them.
fn read_in_parallel<R: BufRead>(
    scanner: &mut Scanner<R>,
    full: Batch,
    first: &mut bool,
    workers: usize,
    changes: &mut Vec<ResourceChange>,
) -> Result<(), PlanError> {
    // Bounded, so batches in flight are few: reading waits for parsing.
    let (jobs, queue) = mpsc::sync_channel::<(usize, Batch)>(workers);
    let queue = Mutex::new(queue);
    let (done, parsed) = mpsc::channel::<Parsed>();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let (queue, done) = (&queue, done.clone());
            scope.spawn(move || {
                let mut scratch = Scratch::default();
                loop {
                    let job = queue
                        .lock()
                        .map_err(|_| ())
                        .and_then(|q| q.recv().map_err(|_| ()));
                    let Ok((index, mut batch)) = job else {
                        return;
                    };
                    let result = batch.parse_own(&mut scratch);
                    batch.clear();
                    if done.send((index, result, batch)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(done);

        let mut order = Reorder::default();
        let mut next = full;
        let mut sent = 0;
        let mut scan_failure = None;
        loop {
            if jobs.send((sent, next)).is_err() {
                break;
            }
            sent += 1;
            while let Ok(parsed) = parsed.try_recv() {
                order.accept(parsed, changes);
            }
            if order.failed() {
                break;
            }
            next = order.spare.pop().unwrap_or_default();
            match scan_batch(scanner, &mut next, first) {
                Ok(Scanned::Full) => continue,
                Ok(Scanned::End) => {}
                Err(error) => scan_failure = Some(error),
            }
            // The last batch (its changes precede any break in the text).
            if !next.changes.is_empty() && jobs.send((sent, next)).is_ok() {
                sent += 1;
            }
            break;
        }
        drop(jobs);
        for parsed in parsed.iter() {
            order.accept(parsed, changes);
        }
        order.finish(sent)?;
        scan_failure.map_or(Ok(()), Err)
    })
}

/// Appends parsed batches to the plan's changes in their order, whatever order they come
/// back in, and keeps the first error (in the plan's order).
#[derive(Default)]
struct Reorder {
    next: usize,
    waiting: BTreeMap<usize, Batch>,
    error: Option<(usize, PlanError)>,
    /// Batches appended, to be filled again: their buffers are allocated once.
    spare: Vec<Batch>,
}

impl Reorder {
    fn failed(&self) -> bool {
        self.error.is_some()
    }

    fn accept(&mut self, (index, result, batch): Parsed, changes: &mut Vec<ResourceChange>) {
        match result {
            Ok(()) => {
                self.waiting.insert(index, batch);
            }
            Err(error) => {
                if self.error.as_ref().is_none_or(|(first, _)| index < *first) {
                    self.error = Some((index, error));
                }
            }
        }
        while let Some(mut batch) = self.waiting.remove(&self.next) {
            changes.append(&mut batch.parsed);
            self.spare.push(batch);
            self.next += 1;
        }
    }

    /// The first error, or a failure if a batch never came back (a worker died).
    fn finish(self, sent: usize) -> Result<(), PlanError> {
        if let Some((_, error)) = self.error {
            return Err(error);
        }
        if self.next != sent {
            return Err(PlanError::Read(io::Error::other(
                "a resource change parser stopped before the end",
            )));
        }
        Ok(())
    }
}

/// Parses one resource change copied out of the plan (`bytes` its text, `read` over it),
/// at `offset` in the plan.
fn parse_change<'de, R: serde_json::de::Read<'de>>(
    read: R,
    bytes: &'de [u8],
    offset: u64,
    scratch: &mut Scratch,
) -> Result<ResourceChange, PlanError> {
    let mut de = serde_json::Deserializer::new(read);
    de.disable_recursion_limit();
    ResourceChangeSeed { scratch, bytes }
        .deserialize(&mut de)
        .and_then(|change| de.end().map(|()| change))
        .map_err(|error| malformed(bytes, offset, &error))
}

fn malformed(bytes: &[u8], offset: u64, error: &serde_json::Error) -> PlanError {
    PlanError::Malformed {
        offset: offset + position_in(bytes, error.line(), error.column()),
        message: strip_position(error),
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
        .map_err(|error| malformed(bytes, offset, &error))?;
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
        let action = change.action.clone().map_err(|actions| {
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
struct RawChange {
    /// The action, or the offending `actions` array rendered for an error message.
    action: Result<Action, String>,
    replace_paths: Vec<Vec<serde_json::Value>>,
    importing: bool,
}

/// The action of an `actions` array joined with commas, or the array rendered for an
/// error message.
fn joined_action(joined: &str) -> Result<Action, String> {
    Action::from_joined(joined).ok_or_else(|| {
        let names: Vec<&str> = joined.split(',').filter(|n| !n.is_empty()).collect();
        format!("{names:?}")
    })
}

/// The parts of one change read without keeping them: `before`/`after` reduced to their
/// top-level attributes and where each value's text lies, and the three masks reduced to
/// the attributes they mark. Cleared and refilled for each change, so its buffers are
/// allocated once per plan, not once per change.
#[derive(Default)]
struct Scratch {
    /// The `actions` array joined with commas.
    actions: String,
    before: Attributes,
    after: Attributes,
    after_unknown: Marks,
    before_sensitive: Marks,
    after_sensitive: Marks,
}

impl Scratch {
    fn clear(&mut self) {
        self.actions.clear();
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
        let (scratch, bytes) = (self.scratch, self.bytes);
        scratch.clear();
        let mut replace_paths = Vec::new();
        let mut importing = false;
        while let Some(field) = map.next_key::<ChangeField>()? {
            match field {
                ChangeField::Actions => {
                    scratch.actions.clear();
                    map.next_value_seed(JoinedActions(&mut scratch.actions))?
                }
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
                    let paths: Option<Vec<Vec<serde_json::Value>>> =
                        map.next_value_seed(Deep(PhantomData))?;
                    replace_paths = paths.unwrap_or_default();
                }
                ChangeField::Importing => {
                    importing = map.next_value::<Option<IgnoredAny>>()?.is_some()
                }
                ChangeField::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(RawChange {
            action: joined_action(&scratch.actions),
            replace_paths,
            importing,
        })
    }
}

/// An `actions` array appended to a buffer as one comma-joined string.
struct JoinedActions<'b>(&'b mut String);

impl<'de> DeserializeSeed<'de> for JoinedActions<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for JoinedActions<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of action names")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let joined = self.0;
        let mut first = true;
        loop {
            if !first {
                joined.push(',');
            }
            if seq.next_element_seed(KeyInto(&mut *joined))?.is_none() {
                if !first {
                    joined.pop();
                }
                return Ok(());
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
            let action = change.action.clone().map_err(|actions| {
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

/// A `T` read by recursive visitors (masks, `serde_json::Value`s), on a stack grown on
/// demand: serde_json's own recursion limit is lifted, and values are only ever skipped
/// (iteratively) or read this way.
struct Deep<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for Deep<T> {
    type Value = T;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<T, D::Error> {
        T::deserialize(serde_stacker::Deserializer::new(deserializer))
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
        self.0.whole = AnyTrueSeed::<false>(1).visit_seq(seq)?;
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let marks = self.0;
        while map.next_key_seed(KeyInto(&mut marks.names))?.is_some() {
            if map.next_value_seed(AnyTrueSeed::<false>(1))? {
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
///
/// Read by recursion, its nesting depth counted: masks are shallow, and past
/// [`SHALLOW`] levels the rest of a value is read on a stack grown on demand, however deep.
/// `DEEP` once on the growing stack, whose deserializer reads all that is nested below.
struct AnyTrueSeed<const DEEP: bool = false>(u32);

/// How deep a mask is read on the thread's own stack.
const SHALLOW: u32 = 64;

impl<'de> DeserializeSeed<'de> for AnyTrueSeed<false> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        if self.0 >= SHALLOW {
            serde_stacker::Deserializer::new(deserializer)
                .deserialize_any(AnyTrueSeed::<true>(self.0))
        } else {
            deserializer.deserialize_any(self)
        }
    }
}

impl<'de> DeserializeSeed<'de> for AnyTrueSeed<true> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, const DEEP: bool> Visitor<'de> for AnyTrueSeed<DEEP>
where
    AnyTrueSeed<DEEP>: DeserializeSeed<'de, Value = bool>,
{
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
        while let Some(marked) =
            seq.next_element_seed(AnyTrueSeed::<DEEP>(self.0.saturating_add(1)))?
        {
            any |= marked;
        }
        Ok(any)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let mut any = false;
        while map.next_key::<IgnoredAny>()?.is_some() {
            any |= map.next_value_seed(AnyTrueSeed::<DEEP>(self.0.saturating_add(1)))?;
        }
        Ok(any)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rest_of_a_known_size_is_reserved_at_the_first_batchs_bytes_per_change() {
        let first = Batch {
            bytes: vec![b' '; 1_000],
            changes: (1..=10).map(|i| (i * 100, 0)).collect(),
            parsed: Vec::new(),
        };
        let mut changes = Vec::new();
        reserve_for_the_rest(&mut changes, &first, Some(10_000), 1_000);
        // 10 changes in the first 1,000 bytes; 9,000 bytes left hold about 90 more.
        assert!(changes.capacity() >= 100, "capacity {}", changes.capacity());
        let mut unknown = Vec::new();
        reserve_for_the_rest(&mut unknown, &first, None, 1_000);
        assert!(
            unknown.capacity() >= 2_600_000,
            "a stream of unknown size is sized for 256 MiB: {}",
            unknown.capacity()
        );
        let mut beyond = Vec::new();
        reserve_for_the_rest(&mut beyond, &first, Some(u64::MAX), 1_000);
        assert!(
            beyond.capacity() < usize::MAX / 2,
            "an estimate beyond memory is refused, not fatal"
        );
    }

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
