//! A structural scanner that walks a plan's top-level object without parsing it.
//!
//! serde_json parses a byte stream one byte at a time through `io::Read`, several times
//! slower than it parses a slice. The scanner reads the plan in large buffered chunks,
//! finds where each value ends (tracking strings, escapes and bracket nesting, iteratively,
//! so depth costs no stack), and either skips the value or copies it into a buffer that
//! serde_json then parses as a slice. Memory stays bounded by the largest value copied:
//! one resource change, not the plan.
//!
//! Objects and arrays are scanned 64 bytes at a time: one bit per byte for quotes,
//! backslashes, brackets and the bytes allowed between tokens (SSE2 on x86-64, byte by
//! byte elsewhere); the bytes inside strings follow from the unescaped quotes (a prefix
//! XOR), and only the brackets outside strings are then visited one by one.
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

    /// Consumes one JSON value, appending its bytes to `out` when given; its structure is
    /// checked.
    pub fn value(&mut self, out: Option<&mut Vec<u8>>) -> ScanResult<()> {
        self.any_value::<true>(out)
    }

    /// Consumes one JSON value and appends its bytes to `out`, for a parser that reads all
    /// of them and so reports what is broken inside: only where the value ends is found
    /// (strings, escapes and bracket depth), a third less work than [`Scanner::value`].
    pub fn value_to_parse(&mut self, out: &mut Vec<u8>) -> ScanResult<()> {
        self.any_value::<false>(Some(out))
    }

    fn any_value<const CHECKED: bool>(&mut self, out: Option<&mut Vec<u8>>) -> ScanResult<()> {
        let Some(first) = self.peek()? else {
            return self.syntax("unexpected end of input: expected a value");
        };
        match first {
            b'{' | b'[' => self.container::<CHECKED>(out),
            b'"' => self.string(out),
            _ if is_scalar_byte(first) => self.scalar(out),
            _ => self.syntax(format!("expected a value, found `{}`", first as char)),
        }
    }

    /// An object or array, 64 bytes at a time (see [`Block`]); `CHECKED`, every byte
    /// between tokens and every closing bracket is checked too.
    fn container<const CHECKED: bool>(&mut self, mut out: Option<&mut Vec<u8>>) -> ScanResult<()> {
        let mut nesting = Nesting::default();
        loop {
            let buffer = self.reader.fill_buf().map_err(ScanError::Io)?;
            if buffer.is_empty() {
                return self.syntax("unexpected end of input inside a value");
            }
            let mut at = 0;
            let mut stop = None;
            while at < buffer.len() {
                let len = (buffer.len() - at).min(64);
                let block: [u8; 64] = match buffer[at..].first_chunk::<64>() {
                    Some(block) => *block,
                    None => {
                        // The buffer's last bytes, padded with whitespace, which changes
                        // nothing inside or outside a string.
                        let mut block = [b' '; 64];
                        block[..len].copy_from_slice(&buffer[at..]);
                        block
                    }
                };
                match nesting.step::<CHECKED>(&block, len) {
                    Step::More => at += len,
                    Step::End(end) => {
                        stop = Some(Ok(at + end));
                        break;
                    }
                    Step::Unexpected(found) => {
                        stop = Some(Err(at + found));
                        break;
                    }
                }
            }
            let take = match stop {
                Some(Err(found)) => {
                    let byte = buffer[found];
                    self.consume(found);
                    return self.syntax(if matches!(byte, b'}' | b']') {
                        format!("unexpected `{}`", byte as char)
                    } else {
                        format!("unexpected character `{}`", byte as char)
                    });
                }
                Some(Ok(end)) => end,
                None => buffer.len(),
            };
            if let Some(out) = out.as_deref_mut() {
                out.extend_from_slice(&buffer[..take]);
            }
            self.consume(take);
            if stop.is_some() {
                return Ok(());
            }
        }
    }

    /// A string: up to its closing quote.
    fn string(&mut self, mut out: Option<&mut Vec<u8>>) -> ScanResult<()> {
        // Past the opening quote first: the search below is for the closing one.
        if let Some(out) = out.as_deref_mut() {
            out.push(b'"');
        }
        self.consume(1);
        let mut escaped = false;
        loop {
            let buffer = self.reader.fill_buf().map_err(ScanError::Io)?;
            if buffer.is_empty() {
                return self.syntax("unexpected end of input inside a value");
            }
            let mut at = 0;
            let mut done_at = None;
            while at < buffer.len() {
                if escaped {
                    escaped = false;
                    at += 1;
                    continue;
                }
                match memchr::memchr2(b'"', b'\\', &buffer[at..]) {
                    None => at = buffer.len(),
                    Some(found) => {
                        at += found;
                        if buffer[at] == b'\\' {
                            escaped = true;
                            at += 1;
                        } else {
                            done_at = Some(at + 1);
                            break;
                        }
                    }
                }
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

    /// A number, `true`, `false` or `null`: up to the first byte that cannot be part of one.
    fn scalar(&mut self, mut out: Option<&mut Vec<u8>>) -> ScanResult<()> {
        loop {
            let buffer = self.reader.fill_buf().map_err(ScanError::Io)?;
            if buffer.is_empty() {
                return Ok(());
            }
            let done_at = buffer.iter().position(|&b| !is_scalar_byte(b));
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

/// Where a container's scan stands between blocks: its open brackets (a `Vec`, so nesting
/// depth costs heap, not stack) or, unchecked, only how many there are; whether the last
/// block ended inside a string, and whether its last byte was an unescaped backslash.
#[derive(Default)]
struct Nesting {
    open: Vec<u8>,
    depth: usize,
    /// All ones inside a string, else zero.
    inside: u64,
    /// 1 when the next block's first byte is escaped.
    escape: u64,
}

/// What a block did to a container.
enum Step {
    /// It goes on past the block.
    More,
    /// It ends just before this index in the block.
    End(usize),
    /// The byte at this index is a stray character or a mismatched bracket.
    Unexpected(usize),
}

impl Nesting {
    /// Scans the first `len` bytes of `block` (the rest is whitespace padding).
    fn step<const CHECKED: bool>(&mut self, block: &[u8; 64], len: usize) -> Step {
        let masks = Block::classify::<CHECKED>(block);
        // Which bytes a backslash escapes, in order, as an escaped backslash escapes nothing.
        // Backslashes are rare outside string-heavy values; most blocks skip the loop.
        let mut escaped = self.escape;
        let mut carry = 0;
        let mut backslashes = masks.backslash;
        while backslashes != 0 {
            let at = backslashes.trailing_zeros();
            backslashes &= backslashes - 1;
            if escaped >> at & 1 == 0 {
                if at == 63 {
                    carry = 1;
                } else {
                    escaped |= 1 << (at + 1);
                }
            }
        }
        if len < 64 {
            carry = escaped >> len & 1;
        }
        // Inside a string: from an opening quote up to (not including) its closing one.
        let inside = prefix_xor(masks.quote & !escaped) ^ self.inside;
        if !CHECKED {
            return self.step_depth(&masks, inside, len, carry);
        }
        let stray = !(masks.plain | masks.quote | masks.open | masks.close) & !inside;
        let first_stray = stray.trailing_zeros();
        let before_stray = if first_stray == 64 {
            u64::MAX
        } else {
            (1 << first_stray) - 1
        };
        let mut brackets = (masks.open | masks.close) & !inside & before_stray;
        while brackets != 0 {
            let at = brackets.trailing_zeros() as usize;
            brackets &= brackets - 1;
            match block[at] {
                byte @ (b'{' | b'[') => self.open.push(byte),
                byte => {
                    let wanted = if byte == b'}' { b'{' } else { b'[' };
                    if self.open.pop() != Some(wanted) {
                        return Step::Unexpected(at);
                    }
                    if self.open.is_empty() {
                        return Step::End(at + 1);
                    }
                }
            }
        }
        if first_stray < 64 {
            return Step::Unexpected(first_stray as usize);
        }
        self.carry(inside, len, carry)
    }

    /// The rest of an unchecked step: brackets counted, whatever their kind.
    fn step_depth(&mut self, masks: &Block, inside: u64, len: usize, carry: u64) -> Step {
        let mut brackets = (masks.open | masks.close) & !inside;
        while brackets != 0 {
            let at = brackets.trailing_zeros() as usize;
            brackets &= brackets - 1;
            if masks.open >> at & 1 == 1 {
                self.depth += 1;
            } else {
                // A closing bracket before any opening one cannot happen: the container
                // starts with its own.
                self.depth = self.depth.saturating_sub(1);
                if self.depth == 0 {
                    return Step::End(at + 1);
                }
            }
        }
        self.carry(inside, len, carry)
    }

    /// Carries whether the block ended inside a string, and on an escape, to the next one.
    fn carry(&mut self, inside: u64, len: usize, escape: u64) -> Step {
        self.inside = if inside >> (len - 1) & 1 == 1 {
            u64::MAX
        } else {
            0
        };
        self.escape = escape;
        Step::More
    }
}

/// Each bit `i` set when bit `i` or an odd number of the bits below it are set: with the
/// unescaped quotes, the bytes inside strings.
fn prefix_xor(mut bits: u64) -> u64 {
    bits ^= bits << 1;
    bits ^= bits << 2;
    bits ^= bits << 4;
    bits ^= bits << 8;
    bits ^= bits << 16;
    bits ^= bits << 32;
    bits
}

/// The bytes of a 64-byte block that matter to the structure, one bit per byte.
#[derive(Debug, Default, PartialEq)]
struct Block {
    quote: u64,
    backslash: u64,
    /// `{` and `[`.
    open: u64,
    /// `}` and `]`.
    close: u64,
    /// Whitespace, `,`, `:` and the bytes of numbers, `true`, `false` and `null`: what may
    /// stand between tokens besides quotes and brackets. Left empty when unchecked.
    plain: u64,
}

// Used on machines without SSE2, and by the tests everywhere.
#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
fn is_plain_byte(byte: u8) -> bool {
    is_scalar_byte(byte) || matches!(byte, b',' | b':' | b' ' | b'\n' | b'\r' | b'\t')
}

impl Block {
    /// One byte at a time: the reference, and the path on machines without SSE2.
    #[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
    fn classify_bytes(block: &[u8; 64]) -> Block {
        let mut masks = Block::default();
        for (at, &byte) in block.iter().enumerate() {
            let bit = 1 << at;
            match byte {
                b'"' => masks.quote |= bit,
                b'\\' => masks.backslash |= bit,
                b'{' | b'[' => masks.open |= bit,
                b'}' | b']' => masks.close |= bit,
                _ if is_plain_byte(byte) => masks.plain |= bit,
                _ => {}
            }
        }
        masks
    }

    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    fn classify<const CHECKED: bool>(block: &[u8; 64]) -> Block {
        let mut masks = Self::classify_bytes(block);
        if !CHECKED {
            masks.plain = 0;
        }
        masks
    }

    /// Sixteen bytes at a time with SSE2 (every x86-64 has it).
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    fn classify<const CHECKED: bool>(block: &[u8; 64]) -> Block {
        use safe_arch::{
            bitand_m128i, bitandnot_m128i, bitor_m128i, cmp_eq_mask_i8_m128i, cmp_gt_mask_i8_m128i,
            cmp_lt_mask_i8_m128i, load_unaligned_m128i, m128i, move_mask_i8_m128i,
            set_splat_i8_m128i,
        };
        let splat = |byte: u8| set_splat_i8_m128i(i8::from_ne_bytes([byte]));
        let bits = |mask: m128i| u64::from(move_mask_i8_m128i(mask) as u16);
        let mut masks = Block::default();
        for (lane, chunk) in block.chunks_exact(16).enumerate() {
            let Some(chunk) = chunk.first_chunk::<16>() else {
                continue;
            };
            let v = load_unaligned_m128i(chunk);
            let eq = |byte: u8| cmp_eq_mask_i8_m128i(v, splat(byte));
            // `{` and `[` differ only in bit 5, as do `}` and `]`.
            let folded = bitand_m128i(v, splat(0xDF));
            let open = cmp_eq_mask_i8_m128i(folded, splat(b'['));
            let close = cmp_eq_mask_i8_m128i(folded, splat(b']'));
            let shift = lane * 16;
            masks.quote |= bits(eq(b'"')) << shift;
            masks.backslash |= bits(eq(b'\\')) << shift;
            masks.open |= bits(open) << shift;
            masks.close |= bits(close) << shift;
            if !CHECKED {
                continue;
            }
            let space = bitor_m128i(
                bitor_m128i(eq(b' '), eq(b'\n')),
                bitor_m128i(eq(b'\r'), eq(b'\t')),
            );
            // `+ , - . 0-9 :` (signed compares: bytes from 0x80 are negative, never inside).
            let range = |low: u8, high: u8, v: m128i| {
                bitand_m128i(
                    cmp_gt_mask_i8_m128i(v, splat(low - 1)),
                    cmp_lt_mask_i8_m128i(v, splat(high + 1)),
                )
            };
            let number = bitandnot_m128i(eq(b'/'), range(b'+', b':', v));
            let letter = range(b'a', b'z', bitor_m128i(v, splat(0x20)));
            masks.plain |= bits(bitor_m128i(bitor_m128i(space, number), letter)) << shift;
        }
        masks
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

    /// Scans `text` with reads of `capacity` bytes at most.
    fn scan_with(text: &str, capacity: usize) -> ScanResult<(String, String)> {
        scan_how(text, capacity, |scanner, out| scanner.value(Some(out)))
    }

    /// Scans `text` as [`Scanner::value_to_parse`] does, with reads of `capacity` bytes.
    fn scan_to_parse(text: &str, capacity: usize) -> ScanResult<(String, String)> {
        scan_how(text, capacity, |scanner, out| scanner.value_to_parse(out))
    }

    fn scan_how(
        text: &str,
        capacity: usize,
        scan: impl FnOnce(&mut Scanner<io::BufReader<&[u8]>>, &mut Vec<u8>) -> ScanResult<()>,
    ) -> ScanResult<(String, String)> {
        let mut scanner = Scanner::new(io::BufReader::with_capacity(capacity, text.as_bytes()));
        let mut out = Vec::new();
        scan(&mut scanner, &mut out)?;
        let mut rest = Vec::new();
        io::Read::read_to_end(&mut scanner.reader, &mut rest).map_err(ScanError::Io)?;
        Ok((
            String::from_utf8_lossy(&out).into_owned(),
            String::from_utf8_lossy(&rest).into_owned(),
        ))
    }

    /// Values whose quotes, escapes and brackets fall on every position of a 64-byte block,
    /// and on every buffer boundary: escaped quotes, escaped backslashes before a closing
    /// quote, brackets inside strings, nested unknown fields.
    #[test]
    fn finds_the_end_wherever_blocks_and_buffers_split_it() {
        let rest =
            r#""k\"":"a\"}b\\","n":[{"x":"]}","y":[[],{}],"z":"\\\""}],"u":"\u00e9 é","t":true}"#;
        for shift in 0..130 {
            // Blocks start at the value's first byte: the padding moves the rest along them.
            let value = format!(r#"{{"pad":"{}",{rest}"#, "p".repeat(shift));
            let text = format!("  {value} ,{{\"next\":1}}");
            for capacity in [1, 3, 63, 64, 65, 127, 1 << 16] {
                for scan in [scan_with, scan_to_parse] {
                    let (scanned, rest) = scan(&text, capacity)
                        .unwrap_or_else(|e| panic!("shift {shift}, capacity {capacity}: {e:?}"));
                    assert_eq!(scanned, value, "shift {shift}, capacity {capacity}");
                    assert_eq!(
                        rest, r#" ,{"next":1}"#,
                        "shift {shift}, capacity {capacity}"
                    );
                }
            }
        }
        // A long string of escapes: runs of backslashes straddling blocks.
        for run in 60..70 {
            let value = format!(r#"["{}\"{}"]"#, "\\\\".repeat(run), "\\\\\\\"".repeat(run));
            for capacity in [7, 64, 1 << 16] {
                let text = format!("{value}]");
                for scan in [scan_with, scan_to_parse] {
                    let (scanned, rest) = scan(&text, capacity).expect("scans");
                    assert_eq!((scanned.as_str(), rest.as_str()), (value.as_str(), "]"));
                }
            }
        }
    }

    /// Scanning a value to parse finds where its brackets balance and leaves the rest of
    /// what is broken to the parser: the copy it hands over is never valid JSON.
    #[test]
    fn a_value_to_parse_ends_where_its_brackets_balance() {
        for (text, copied) in [
            (r#"{"a"@} ,"#, r#"{"a"@}"#),
            (r#"{"a":[1}] ,"#, r#"{"a":[1}]"#),
            (r#"[{"b":"]"]} ]"#, r#"[{"b":"]"]}"#),
        ] {
            for capacity in [5, 64, 1 << 16] {
                let (scanned, _) = scan_to_parse(text, capacity).expect("an end");
                assert_eq!(scanned, copied, "{text}");
                assert!(serde_json::from_str::<serde_json::Value>(&scanned).is_err());
                assert!(scan_with(text, capacity).is_err(), "{text}: checked");
            }
        }
        for text in ["{\"a\":[}", "[1,2", "\"open", "[\"a\\\""] {
            assert!(
                matches!(scan_to_parse(text, 64), Err(ScanError::Syntax { .. })),
                "{text:?}"
            );
        }
    }

    #[test]
    fn reports_broken_structure_where_it_is() {
        let long = "x".repeat(100);
        for (text, offset, message) in [
            (
                format!(r#"{{"a":"{long}"@}}"#),
                107,
                "unexpected character `@`",
            ),
            (format!(r#"[{{"a":"{long}"]]"#), 108, "unexpected `]`"),
            (
                format!(r#"[{{"{long}\"}}"#),
                106,
                "unexpected end of input inside a value",
            ),
            (format!(r#"[{long}\]"#), 101, "unexpected character `\\`"),
        ] {
            for capacity in [5, 64, 1 << 16] {
                match scan_with(&text, capacity) {
                    Err(ScanError::Syntax {
                        message: m,
                        offset: o,
                    }) => {
                        assert_eq!((m.as_str(), o), (message, offset), "{text}");
                    }
                    other => panic!("{text}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn classifies_blocks_like_the_byte_by_byte_reference() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut block = [0u8; 64];
        for round in 0..4_000 {
            for byte in &mut block {
                // Mostly the bytes that matter, and every byte value at times.
                let pick = next();
                *byte = if round % 2 == 0 {
                    (pick >> 8) as u8
                } else {
                    let bytes = b"\"\\{}[],: \n\r\ta0+-./@\x80\xff";
                    bytes[(pick % bytes.len() as u64) as usize]
                };
            }
            assert_eq!(
                Block::classify::<true>(&block),
                Block::classify_bytes(&block),
                "{block:?}"
            );
        }
        let all: Vec<u8> = (0..=255).collect();
        for chunk in all.chunks(64) {
            let block: [u8; 64] = chunk.try_into().expect("64 bytes");
            assert_eq!(
                Block::classify::<true>(&block),
                Block::classify_bytes(&block)
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
