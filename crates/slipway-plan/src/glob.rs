//! Glob-ish patterns for resource types and addresses: `*` matches any run of characters,
//! `?` exactly one; everything else (including `[` and `.` in addresses) is literal.

/// Whether `text` matches `pattern`. Allocation-free: matched byte by byte when both are
/// ASCII (resource types and addresses nearly always are), char by char otherwise.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    if pattern.is_ascii() && text.is_ascii() {
        return match_units(pattern.as_bytes(), text.as_bytes(), b'*', b'?');
    }
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    match_units(&pattern, &text, '*', '?')
}

fn match_units<T: Copy + PartialEq>(pattern: &[T], text: &[T], any: T, one: T) -> bool {
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was, and the text position it is currently standing for;
    // backtracking only to the last star keeps matching linear in practice.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(&c) if c == any => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == one || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == any)
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn matches() {
        let cases = [
            ("aws_db_*", "aws_db_instance", true),
            ("aws_db_*", "aws_dynamodb_table", false),
            ("aws_s3_bucket", "aws_s3_bucket", true),
            ("aws_s3_bucket", "aws_s3_bucket_policy", false),
            ("*_file_system", "aws_fsx_lustre_file_system", true),
            ("module.db.*", "module.db.aws_db_instance.main", true),
            ("aws_?3_bucket", "aws_s3_bucket", true),
            ("aws_kms_key.main[*]", "aws_kms_key.main[0]", true),
            ("*", "", true),
            ("", "x", false),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("ä?c*", "äbcdé", true),
            ("ä?c", "äbcdé", false),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(glob_match(pattern, text), expected, "{pattern} vs {text}");
        }
    }
}
