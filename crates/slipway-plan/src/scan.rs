//! A structural scanner that walks a plan's top-level object without parsing it.
//!
//! serde_json parses a byte stream one byte at a time through `io::Read`, several times
//! slower than it parses a slice. The scanner reads the plan in large buffered chunks,
//! finds where each value ends (tracking strings, escapes and bracket nesting, iteratively,
//! so depth costs no stack), and either skips the value or copies it into a buffer that
//! serde_json then parses as a slice. Memory stays bounded by the largest value copied:
//! one resource change, not the plan.
//!
//! Skipped values (`prior_state`, `configuration`, ...) are checked for structure only:
//! balanced and matching brackets, terminated strings, no stray characters between
//! tokens. What is parsed (resource changes, outputs, versions) is fully validated.

use std::io::{self, BufRead};

/// Why scanning stopped.
#[derive(Debug)]
pub enum ScanError {
    Io(io::Error),
    /// Malformed JSON at this byte offset from the start of the input.
    Syntax {
        message: String,
        offset: u64,
    },
}

pub type ScanResult<T> = Result<T, ScanError>;

pub struct Scanner<R> {
    reader: R,
    offset: u64,
}

fn is_scalar_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'+' | b'-' | b'.')
}

impl<R: BufRead> Scanner<R> {
    pub fn new(reader: R) -> Self {
        Self { reader, offset: 0 }
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    pub fn syntax<T>(&self, message: impl Into<String>) -> ScanResult<T> {
        Err(ScanError::Syntax {
            message: message.into(),
            offset: self.offset,
        })
    }

    fn consume(&mut self, count: usize) {
        self.reader.consume(count);
        self.offset += count as u64;
    }

    /// Skips whitespace and returns the next byte without consuming it; `None` at the end.
    pub fn peek(&mut self) -> ScanResult<Option<u8>> {
        loop {
            let buffer = self.reader.fill_buf().map_err(ScanError::Io)?;
            if buffer.is_empty() {
                return Ok(None);
            }
            match buffer.iter().position(|b| !b.is_ascii_whitespace()) {
                Some(at) => {
                    let byte = buffer[at];
                    self.consume(at);
                    return Ok(Some(byte));
                }
                None => {
                    let all = buffer.len();
                    self.consume(all);
                }
            }
        }
    }

    /// Consumes `expected` (after whitespace) or fails naming what was wanted.
    pub fn expect(&mut self, expected: u8, wanted: &str) -> ScanResult<()> {
        match self.peek()? {
            Some(byte) if byte == expected => {
                self.consume(1);
                Ok(())
            }
            Some(byte) => self.syntax(format!("expected {wanted}, found `{}`", byte as char)),
            None => self.syntax(format!("unexpected end of input: expected {wanted}")),
        }
    }

    /// Consumes one byte already seen by `peek`.
    pub fn bump(&mut self) {
        self.consume(1);
    }

    /// Consumes one JSON value, appending its bytes to `out` when given.
    pub fn value(&mut self, mut out: Option<&mut Vec<u8>>) -> ScanResult<()> {
        let Some(first) = self.peek()? else {
            return self.syntax("unexpected end of input: expected a value");
        };
        if !(first == b'{' || first == b'[' || first == b'"' || is_scalar_byte(first)) {
            return self.syntax(format!("expected a value, found `{}`", first as char));
        }
        let scalar = is_scalar_byte(first);
        // Open brackets, innermost last; a Vec so nesting depth costs heap, not stack.
        let mut open: Vec<u8> = Vec::new();
        let (mut in_string, mut escaped) = (false, false);
        loop {
            let buffer = self.reader.fill_buf().map_err(ScanError::Io)?;
            if buffer.is_empty() {
                if scalar {
                    return Ok(());
                }
                return self.syntax("unexpected end of input inside a value");
            }
            let mut done_at = None;
            let mut error = None;
            let mut at = 0;
            while at < buffer.len() {
                if scalar {
                    if !is_scalar_byte(buffer[at]) {
                        done_at = Some(at);
                        break;
                    }
                    at += 1;
                    continue;
                }
                if in_string {
                    if escaped {
                        escaped = false;
                        at += 1;
                        continue;
                    }
                    // Jump over string content: most of a plan's bytes are in strings.
                    match memchr::memchr2(b'"', b'\\', &buffer[at..]) {
                        None => at = buffer.len(),
                        Some(found) => {
                            at += found;
                            if buffer[at] == b'\\' {
                                escaped = true;
                            } else {
                                in_string = false;
                                if open.is_empty() {
                                    done_at = Some(at + 1);
                                    break;
                                }
                            }
                            at += 1;
                        }
                    }
                    continue;
                }
                let byte = buffer[at];
                match byte {
                    b'"' => in_string = true,
                    b'{' | b'[' => open.push(byte),
                    b'}' | b']' => {
                        let wanted = if byte == b'}' { b'{' } else { b'[' };
                        if open.pop() != Some(wanted) {
                            error = Some((at, format!("unexpected `{}`", byte as char)));
                            break;
                        }
                        if open.is_empty() {
                            done_at = Some(at + 1);
                            break;
                        }
                    }
                    b',' | b':' | b' ' | b'\n' | b'\r' | b'\t' => {}
                    other if is_scalar_byte(other) => {}
                    other => {
                        error = Some((at, format!("unexpected character `{}`", other as char)));
                        break;
                    }
                }
                at += 1;
            }
            if let Some((at, message)) = error {
                self.consume(at);
                return self.syntax(message);
            }
            let take = done_at.unwrap_or(buffer.len());
            if let Some(out) = out.as_deref_mut() {
                out.extend_from_slice(&buffer[..take]);
            }
            self.consume(take);
            if done_at.is_some() {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(text: &str) -> ScanResult<(String, String)> {
        let mut scanner = Scanner::new(io::BufReader::with_capacity(3, text.as_bytes()));
        let mut out = Vec::new();
        scanner.value(Some(&mut out))?;
        let mut rest = Vec::new();
        io::Read::read_to_end(&mut scanner.reader, &mut rest).map_err(ScanError::Io)?;
        Ok((
            String::from_utf8_lossy(&out).into_owned(),
            String::from_utf8_lossy(&rest).into_owned(),
        ))
    }

    #[test]
    fn finds_the_end_of_each_kind_of_value() {
        let cases = [
            (
                r#"  {"a":[1,{"b":"}]"}]} ,"#,
                (r#"{"a":[1,{"b":"}]"}]}"#, " ,"),
            ),
            (r#""x\"y" ]"#, (r#""x\"y""#, " ]")),
            ("true,", ("true", ",")),
            ("-1.5e3}", ("-1.5e3", "}")),
            ("[[[]]]", ("[[[]]]", "")),
        ];
        for (text, (value, rest)) in cases {
            let (scanned, remaining) = scan(text).unwrap_or_else(|e| panic!("{text}: {e:?}"));
            assert_eq!(
                (scanned.as_str(), remaining.as_str()),
                (value, rest),
                "{text}"
            );
        }
    }

    #[test]
    fn rejects_broken_structure() {
        for text in ["{\"a\":[}", "[1,2", "\"open", "}", "{\"a\"@}", "[\"a\\\""] {
            assert!(
                matches!(scan(text), Err(ScanError::Syntax { .. })),
                "{text:?}"
            );
        }
    }
}
