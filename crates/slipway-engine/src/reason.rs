//! Why an engine command failed, in the engine's own words.
//!
//! Terraform and OpenTofu explain a failure in an `Error:` block: a summary line, a blank
//! line, then the location (`on main.tf line 2 ...`), a source excerpt and a detail
//! paragraph. People reading a terminal line, a stage summary or `history` want the
//! summary and the start of the detail, not "exit code 1; see the log". The text read here
//! is the step's log, which is already redacted, so the reason is too.

/// The longest reason kept; the log has the rest.
const MAX_REASON_CHARS: usize = 300;

/// How many lines of the detail paragraph follow the summary.
const DETAIL_LINES: usize = 2;

/// The first `Error:` block of `output`: its summary and the first lines of its detail,
/// joined on one line. `None` when the output holds no such block.
pub fn engine_reason(output: &str) -> Option<String> {
    let mut lines = output.lines().map(strip_frame);
    let summary = lines.find_map(|line| line.strip_prefix("Error: "))?.trim();
    let mut detail = Vec::new();
    let mut in_excerpt = false;
    for line in lines {
        if is_block_boundary(line) {
            break;
        }
        if line.is_empty() {
            // A blank line ends the location and source excerpt (with the values under it)
            // that come before the detail.
            in_excerpt = false;
            if !detail.is_empty() {
                break;
            }
            continue;
        }
        if line.starts_with("on ") || line.starts_with("with ") {
            in_excerpt = true;
            continue;
        }
        if in_excerpt {
            continue;
        }
        detail.push(line.trim());
        if detail.len() == DETAIL_LINES {
            break;
        }
    }
    let mut reason = summary.to_owned();
    if !detail.is_empty() {
        reason.push_str(": ");
        reason.push_str(&detail.join(" "));
    }
    Some(shorten(reason))
}

/// Whether a step's output is the engine refusing a saved plan because the state it was
/// made against has changed since (Terraform and OpenTofu say "Saved plan is stale").
pub fn says_saved_plan_is_stale(output: &str) -> bool {
    engine_reason(output).is_some_and(|reason| reason.starts_with("Saved plan is stale"))
}

/// Whether a step's output is the engine refusing a saved plan made with another lock file
/// than the one it sees now (Terraform 1.1+ and OpenTofu keep the lock file in the plan and
/// compare, checksums included, before changing anything).
pub fn says_saved_plan_has_other_lock_file(output: &str) -> bool {
    engine_reason(output)
        .is_some_and(|reason| reason.starts_with("Inconsistent dependency lock file"))
}

/// The reason of the first failure in the log file at `path`, if it can be read.
pub fn first_engine_error(path: &std::path::Path) -> Option<String> {
    engine_reason(&std::fs::read_to_string(path).ok()?)
}

/// A line without the box Terraform draws around diagnostics when colour is on, and
/// without its indentation.
fn strip_frame(line: &str) -> &str {
    line.trim_start_matches(|c: char| c == '│' || c == '╷' || c == '╵' || c.is_whitespace())
        .trim_end()
}

/// Where one diagnostic ends and the next output begins.
fn is_block_boundary(line: &str) -> bool {
    line.starts_with("Error: ") || line.starts_with("Warning: ") || line.starts_with("== ")
}

fn shorten(reason: String) -> String {
    if reason.chars().count() <= MAX_REASON_CHARS {
        return reason;
    }
    let mut short: String = reason.chars().take(MAX_REASON_CHARS - 1).collect();
    short.push('…');
    short
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_and_detail_without_location_or_excerpt() {
        let output = "\
== terraform plan -input=false -no-color ==

Error: Unsupported attribute

  on ../../outputs.tf line 2, in output \"queue_url\":
   2:   value = aws_sqs_queue.this.url

This object has no argument, nested block, or exported attribute named \"url\".
Did you mean \"arn\"?
== plan finished in 4.4s with exit code 1 ==
";
        assert_eq!(
            engine_reason(output).unwrap(),
            "Unsupported attribute: This object has no argument, nested block, or exported \
             attribute named \"url\". Did you mean \"arn\"?"
        );
    }

    #[test]
    fn a_framed_diagnostic_reads_the_same() {
        let output = "\
╷
│ Error: error loading state: AccessDenied: Access Denied
│ \tstatus code: 403, request id: 1234
│
╵
";
        assert_eq!(
            engine_reason(output).unwrap(),
            "error loading state: AccessDenied: Access Denied: status code: 403, request id: 1234"
        );
    }

    #[test]
    fn detail_stops_at_the_next_diagnostic() {
        let output = "\
Error: Reference to undeclared input variable

  on main.tf line 3, in resource \"null_resource\" \"x\":
   3:   name = var.missing

An input variable with the name \"missing\" has not been declared.
Error: Second error

Other detail.
";
        assert_eq!(
            engine_reason(output).unwrap(),
            "Reference to undeclared input variable: An input variable with the name \
             \"missing\" has not been declared."
        );
    }

    #[test]
    fn with_lines_and_their_values_are_not_detail() {
        let output = "\
Error: creating SQS Queue (orders): InvalidClientTokenId

  with aws_sqs_queue.orders,
  on main.tf line 1, in resource \"aws_sqs_queue\" \"orders\":
   1: resource \"aws_sqs_queue\" \"orders\" {

";
        assert_eq!(
            engine_reason(output).unwrap(),
            "creating SQS Queue (orders): InvalidClientTokenId"
        );
    }

    #[test]
    fn a_saved_plan_with_another_lock_file_is_recognised_from_the_error_block() {
        let output = "== terraform apply ==\n╷\n│ Error: Inconsistent dependency lock file\n│\n│ The given plan file was created with a different set of external dependency\n│ selections than the current configuration.\n╵\n";
        assert!(says_saved_plan_has_other_lock_file(output));
        assert!(!says_saved_plan_is_stale(output));
        assert!(!says_saved_plan_has_other_lock_file(
            "Error: Saved plan is stale\n\nThe given plan file can no longer be applied\n"
        ));
    }

    #[test]
    fn a_stale_saved_plan_is_recognised_from_the_error_block() {
        let output = "\
Error: Saved plan is stale

The given plan file can no longer be applied because the state was changed by another
operation after the plan was created.
";
        assert!(says_saved_plan_is_stale(output));
        let framed = "╷\n│ Error: Saved plan is stale\n│\n│ The given plan file can no longer be applied\n╵\n";
        assert!(says_saved_plan_is_stale(framed));
        // Said in passing, not as the error, it is not the engine's verdict.
        assert!(!says_saved_plan_is_stale(
            "note: Saved plan is stale\nError: other\n"
        ));
        assert!(!says_saved_plan_is_stale(""));
    }

    #[test]
    fn output_without_an_error_block_has_no_reason() {
        assert_eq!(engine_reason("Plan: 1 to add\nkilled\n"), None);
        assert_eq!(engine_reason(""), None);
    }

    #[test]
    fn long_reasons_are_cut() {
        let output = format!("Error: {}\n", "x".repeat(1000));
        let reason = engine_reason(&output).unwrap();
        assert_eq!(reason.chars().count(), MAX_REASON_CHARS);
        assert!(reason.ends_with('…'));
    }
}
