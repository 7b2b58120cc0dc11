//! Plans large enough to be read in batches, parsed by worker threads while the next ones
//! are read: the result is the one of reading each change on its own, in the plan's order,
//! and the error is the first one met reading the plan in order.

use slipway_plan::{Plan, PlanError, parse_plan, read_plan, read_plan_file};

/// A generated plan of `resources` changes (about 900 bytes each): several batches.
fn generated(resources: usize) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("temporary folder");
    let path = dir.path().join("plan.json");
    slipway_plan::bench::generate(&path, resources).expect("plan generated");
    std::fs::read(&path).expect("plan read back")
}

/// Each change of the plan parsed alone, in a plan of its own (too small to be batched).
fn one_by_one(bytes: &[u8]) -> Plan {
    let whole: serde_json::Value = serde_json::from_slice(bytes).expect("valid JSON");
    let mut plan = parse_plan(br#"{"format_version":"1.2"}"#).expect("empty plan");
    for change in whole["resource_changes"].as_array().expect("changes") {
        let single = format!(r#"{{"format_version":"1.2","resource_changes":[{change}]}}"#);
        let read = parse_plan(single.as_bytes()).expect("one change reads");
        plan.resource_changes.extend(read.resource_changes);
    }
    plan
}

/// Hands out the bytes in reads of a fixed, odd size, so buffers end anywhere.
struct Chunked<'a>(&'a [u8], usize);

impl std::io::Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let take = self.0.len().min(self.1).min(buf.len());
        buf[..take].copy_from_slice(&self.0[..take]);
        self.0 = &self.0[take..];
        Ok(take)
    }
}

#[test]
fn batches_read_in_parallel_match_each_change_read_alone() {
    let bytes = generated(3_000);
    let expected = one_by_one(&bytes);
    assert_eq!(expected.resource_changes.len(), 3_000);
    let in_memory = parse_plan(&bytes).expect("reads");
    assert_eq!(in_memory.resource_changes, expected.resource_changes);
    assert_eq!(in_memory.format_version, "1.2");
    assert_eq!(in_memory.terraform_version.as_deref(), Some("1.11.4"));
    for chunk in [1 << 20, 65_537, 7_777, 61] {
        let streamed = read_plan(Chunked(&bytes, chunk)).expect("streams");
        assert_eq!(streamed, in_memory, "reads of {chunk} bytes");
    }
}

#[test]
fn a_file_whose_size_is_known_reads_as_a_stream_does() {
    let bytes = generated(3_000);
    let dir = tempfile::tempdir().expect("temporary folder");
    let path = dir.path().join("plan.json");
    std::fs::write(&path, &bytes).expect("plan written");
    let from_file = read_plan_file(&path).expect("reads");
    let streamed = read_plan(Chunked(&bytes, 65_537)).expect("streams");
    assert_eq!(from_file, streamed);
}

/// The plan with the `nth` change's actions replaced.
fn with_bad_actions(bytes: &[u8], nth: usize, actions: &str) -> Vec<u8> {
    let text = String::from_utf8(bytes.to_vec()).expect("UTF-8");
    let marker = r#""change":{"actions":["#;
    let at = text
        .match_indices(marker)
        .nth(nth)
        .map(|(at, _)| at + marker.len() - 1)
        .expect("the nth change");
    let end = at + text[at..].find(']').expect("end of actions") + 1;
    format!("{}{actions}{}", &text[..at], &text[end..]).into_bytes()
}

fn message(error: PlanError) -> String {
    match error {
        PlanError::Malformed { message, .. } => message,
        other => panic!("not a malformed plan: {other:?}"),
    }
}

#[test]
fn the_first_bad_change_is_reported_whatever_follows() {
    let bytes = generated(3_000);
    let late = with_bad_actions(&bytes, 2_500, r#"["explode"]"#);
    let both = with_bad_actions(&late, 700, r#"["implode"]"#);
    let error = message(parse_plan(&both).expect_err("bad actions"));
    assert!(
        error.contains(r#"r700: unsupported actions ["implode"]"#),
        "{error}"
    );
    let error = message(read_plan(Chunked(&both, 4_099)).expect_err("bad actions"));
    assert!(
        error.contains(r#"r700: unsupported actions ["implode"]"#),
        "{error}"
    );

    let error = message(parse_plan(&late).expect_err("bad actions"));
    assert!(
        error.contains(r#"r2500: unsupported actions ["explode"]"#),
        "{error}"
    );

    // A change that does not parse comes before the break in the text after it.
    let cut = &late[..late.len() - 1_000];
    let error = message(parse_plan(cut).expect_err("bad actions"));
    assert!(error.contains("r2500: unsupported actions"), "{error}");
    // And the break alone is reported where it is.
    let cut = &bytes[..bytes.len() / 2];
    match parse_plan(cut).expect_err("truncated") {
        PlanError::Malformed { message, offset } => {
            assert_eq!(message, "unexpected end of input inside a value");
            assert_eq!(offset, cut.len() as u64);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_change_broken_mid_plan_is_reported_at_its_offset() {
    let bytes = generated(2_000);
    let text = String::from_utf8(bytes).expect("UTF-8");
    // A stray character between two attributes of a change past the first batches.
    let at = text
        .match_indices(r#","enabled":"#)
        .nth(1_500)
        .expect("attribute")
        .0;
    let broken = format!("{}@{}", &text[..at], &text[at..]);
    match parse_plan(broken.as_bytes()).expect_err("stray character") {
        // The parser that reads the change says what it wanted there.
        PlanError::Malformed { message, offset } => {
            assert_eq!(message, "expected `,` or `}`");
            assert_eq!(offset, at as u64);
        }
        other => panic!("{other:?}"),
    }
}
