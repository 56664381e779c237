//! Rendering untrusted bytes for humans and for the system log.
//!
//! Anything an attacker controls reaches stderr and syslog only through
//! these functions, so a name can never forge a log field, a second line or a
//! terminal escape sequence.

use std::fmt::Write;

/// Longest rendering of one untrusted value, in output characters.
pub const MAX_SHOWN: usize = 80;

/// Escape for a quoted context (messages, `reason="…"`): every byte outside
/// printable ASCII, and the quote and backslash characters, become `\xNN`.
pub fn quoted(bytes: impl AsRef<[u8]>) -> String {
    render(bytes.as_ref(), |b| {
        (0x20..0x7f).contains(&b) && !matches!(b, b'"' | b'\'' | b'\\')
    })
}

/// Escape for an unquoted `key=value` log field: additionally escapes space,
/// `=` and `,` so that a value can never look like another field or list item.
pub fn field(bytes: impl AsRef<[u8]>) -> String {
    render(bytes.as_ref(), |b| {
        (0x21..0x7f).contains(&b) && !matches!(b, b'"' | b'\'' | b'\\' | b'=' | b',')
    })
}

fn render(bytes: &[u8], keep: impl Fn(u8) -> bool) -> String {
    let mut out = String::new();
    for (i, &b) in bytes.iter().enumerate() {
        if out.len() >= MAX_SHOWN {
            let _ = write!(out, "…(+{} bytes)", bytes.len() - i);
            break;
        }
        if keep(b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// Quote one word for a POSIX shell (used for `--check` output): safe words
/// are printed bare, anything else single-quoted.
pub fn shell_word(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_escapes_controls_quotes_and_non_ascii() {
        assert_eq!(quoted(b"a b"), "a b");
        assert_eq!(quoted(b"a\nb"), "a\\x0ab");
        assert_eq!(quoted(b"\x1b[31m"), "\\x1b[31m");
        assert_eq!(quoted(b"\"'\\"), "\\x22\\x27\\x5c");
        assert_eq!(quoted("ａ".as_bytes()), "\\xef\\xbd\\x81");
        assert_eq!(quoted(b"\0"), "\\x00");
        assert_eq!(quoted(b"\xff"), "\\xff");
    }

    #[test]
    fn field_cannot_forge_another_field() {
        assert_eq!(field(b"x verdict=accepted"), "x\\x20verdict\\x3daccepted");
        assert_eq!(field(b"a,b"), "a\\x2cb");
    }

    #[test]
    fn long_values_are_truncated_and_say_so() {
        let long = vec![b'a'; 500];
        let shown = quoted(&long);
        assert!(shown.starts_with(&"a".repeat(MAX_SHOWN)));
        assert!(shown.ends_with("…(+420 bytes)"));
        let hostile = vec![0u8; 500];
        assert!(quoted(&hostile).len() < MAX_SHOWN + 30);
    }

    #[test]
    fn shell_words() {
        assert_eq!(shell_word("--no-pager"), "--no-pager");
        assert_eq!(shell_word("a@1.service"), "a@1.service");
        assert_eq!(shell_word("a b"), "'a b'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word(""), "''");
    }
}
