//! Hex dumps and byte diffs for failure messages.

use std::fmt::Write;

/// A classic 16-bytes-per-line hex dump with offsets.
pub fn dump(bytes: &[u8]) -> String {
    let mut s = String::new();
    for (i, line) in bytes.chunks(16).enumerate() {
        let _ = write!(s, "{:04x}: ", i * 16);
        for b in line {
            let _ = write!(s, "{b:02x} ");
        }
        s.push('\n');
    }
    s
}

/// The offset of the first differing byte (or the shorter length when one is a prefix of
/// the other); `None` when equal.
pub fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    if a == b {
        return None;
    }
    Some(
        a.iter()
            .zip(b)
            .position(|(x, y)| x != y)
            .unwrap_or(a.len().min(b.len())),
    )
}

/// Both buffers line by line, lines that differ marked with `!` and differing bytes in
/// brackets; empty when they are equal.
pub fn diff(expected: &[u8], actual: &[u8]) -> String {
    let Some(first) = first_difference(expected, actual) else {
        return String::new();
    };
    let mut s = format!(
        "expected {} bytes, got {}; first difference at offset {first} ({first:#x})\n",
        expected.len(),
        actual.len()
    );
    let lines = expected.len().max(actual.len()).div_ceil(16);
    for l in 0..lines {
        let range = l * 16..(l + 1) * 16;
        let e = expected.get(range.start..range.end.min(expected.len())).unwrap_or(&[]);
        let a = actual.get(range.start..range.end.min(actual.len())).unwrap_or(&[]);
        let mark = if e == a { ' ' } else { '!' };
        let cell = |x: Option<&u8>, y: Option<&u8>| match (x, y) {
            (Some(x), Some(y)) if x == y => format!(" {x:02x} "),
            (Some(x), _) => format!("[{x:02x}]"),
            (None, _) => "    ".to_string(),
        };
        let _ = write!(s, "{mark}{:04x} exp:", l * 16);
        for i in 0..16 {
            s.push_str(&cell(e.get(i), a.get(i)));
        }
        s.push('\n');
        let _ = write!(s, "{mark}{:04x} got:", l * 16);
        for i in 0..16 {
            s.push_str(&cell(a.get(i), e.get(i)));
        }
        s.push('\n');
    }
    s
}

/// Parse a hex string, ignoring whitespace and colons (offset columns of pasted dumps must be
/// removed first).
pub fn parse(s: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = s.bytes().filter(|c| c.is_ascii_hexdigit()).collect();
    if s.bytes()
        .any(|c| !(c.is_ascii_hexdigit() || c.is_ascii_whitespace() || c == b':'))
    {
        return Err("non-hex character in hex string".into());
    }
    if !digits.len().is_multiple_of(2) {
        return Err(format!("odd number of hex digits ({})", digits.len()));
    }
    let val = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
    Ok(digits.chunks(2).map(|p| (val(p[0]) << 4) | val(p[1])).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_marks_the_changed_byte() {
        let a = [1u8, 2, 3, 4];
        let b = [1u8, 2, 9, 4, 5];
        assert_eq!(first_difference(&a, &b), Some(2));
        let d = diff(&a, &b);
        assert!(d.contains("[03]"), "{d}");
        assert!(d.contains("[09]"), "{d}");
        assert!(d.contains("first difference at offset 2"), "{d}");
        assert_eq!(diff(&a, &a), "");
        assert_eq!(first_difference(&a, &a[..2]), Some(2));
    }

    #[test]
    fn parse_accepts_spaced_hex() {
        assert_eq!(parse("0a 0B\n:ff").expect("hex"), vec![0x0a, 0x0b, 0xff]);
        assert!(parse("abc").is_err());
        assert!(parse("zz").is_err());
    }
}
