//! JSON strings written by hand into a byte buffer, escaped exactly as serde_json escapes them
//! (`"`, `\` and the control characters; nothing else). For answers written on every rejected
//! request: serde_json looks up every byte of every string in a table, while most of these
//! strings need no escaping at all, which one pass without branches finds out.

use std::fmt;

/// Appends `s` as a JSON string, quotes included.
pub fn push_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    push_contents(out, s);
    out.push(b'"');
}

/// Appends `s` escaped, without quotes: the inside of a JSON string.
pub fn push_contents(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    // No early exit, so it compiles to a vector loop: cheaper than stopping at the first hit
    // for the short strings written here.
    let plain = bytes.iter().fold(true, |plain, &b| {
        plain & (b >= 0x20) & (b != b'"') & (b != b'\\')
    });
    if plain {
        out.extend_from_slice(bytes);
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if short.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(short);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// A `Display` written into a JSON string's inside, escaped, without building a `String`.
pub struct Escaping<'a>(pub &'a mut Vec<u8>);

impl fmt::Write for Escaping<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        push_contents(self.0, s);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn written(s: &str) -> String {
        let mut out = Vec::new();
        push_str(&mut out, s);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn escapes_quotes_backslashes_and_control_characters_only() {
        assert_eq!(written("plain text é ✓"), "\"plain text é ✓\"");
        assert_eq!(written("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(written("\n\r\t\u{8}\u{c}"), r#""\n\r\t\b\f""#);
        assert_eq!(written("\u{0}\u{1f}\u{7f}"), "\"\\u0000\\u001f\u{7f}\"");
        assert_eq!(written(""), "\"\"");
    }

    #[test]
    fn a_display_is_written_escaped() {
        use std::fmt::Write;
        let mut out = Vec::new();
        let inner = String::from("x\ny");
        write!(Escaping(&mut out), "{} \"{inner}\"", 3).unwrap();
        assert_eq!(out, br#"3 \"x\ny\""#);
    }

    proptest! {
        #[test]
        fn writes_what_serde_json_writes(s in "\\PC{0,40}|[\\x00-\\x7f]{0,40}") {
            prop_assert_eq!(written(&s), serde_json::to_string(&s).unwrap());
        }
    }
}
