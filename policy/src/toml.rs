//! A small, strict subset of TOML.
//!
//! Supported: `#` comments, blank lines, `[table]` headers, `key = value`
//! with bare keys, and values that are basic strings (escapes `\" \\ \n \t
//! \r \uXXXX`), literal strings, decimal integers (`_` separators allowed
//! between digits), booleans, and arrays of those (multi-line, trailing comma
//! and comments allowed). Everything else TOML has — inline tables, dotted or
//! quoted keys, arrays of tables, floats, dates, multi-line strings, hex
//! integers — is rejected as "unsupported TOML" rather than half-understood.
//! Every error names its line (and the key being parsed, if any).

use crate::escape;
use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    String(String),
    Integer(i64),
    Boolean(bool),
    Array(Vec<Value>),
}

impl Value {
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::String(_) => "string",
            Value::Integer(_) => "integer",
            Value::Boolean(_) => "boolean",
            Value::Array(_) => "array",
        }
    }
}

/// One `key = value` line (its first line, for multi-line arrays).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: Value,
    pub line: usize,
}

/// A table: the root table has the empty name and line 0.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Table {
    pub name: String,
    pub line: usize,
    pub entries: Vec<Entry>,
}

impl Table {
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.key == key)
    }
}

/// A parsed file: the root table, then the `[tables]` in file order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Document {
    pub root: Table,
    pub tables: Vec<Table>,
}

impl Document {
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.name == name)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    /// The key whose value was being parsed, if any.
    pub key: Option<String>,
    /// What kind of error, e.g. "unsupported TOML" or "invalid string".
    pub kind: &'static str,
    pub detail: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at line {}", self.kind, self.line)?;
        if let Some(key) = &self.key {
            write!(f, " (key `{key}`)")?;
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

const UNSUPPORTED: &str = "unsupported TOML";
const SYNTAX: &str = "invalid TOML";

type Result<T> = std::result::Result<T, ParseError>;

/// Parse `text` into a [`Document`].
pub fn parse(text: &str) -> Result<Document> {
    Parser {
        src: text,
        pos: 0,
        line: 1,
        key: None,
        doc: Document::default(),
    }
    .document()
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
    line: usize,
    key: Option<String>,
    doc: Document,
}

fn is_bare_key_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
}

/// Control characters TOML forbids in comments and strings (tab is allowed).
fn is_forbidden_control(c: char) -> bool {
    (c < ' ' && c != '\t') || c == '\x7f'
}

impl Parser<'_> {
    fn err(&self, kind: &'static str, detail: impl Into<String>) -> ParseError {
        ParseError {
            line: self.line,
            key: self.key.clone(),
            kind,
            detail: detail.into(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.src.as_bytes().get(self.pos).copied()
    }

    fn rest(&self) -> &str {
        self.src.get(self.pos..).unwrap_or("")
    }

    fn bump_char(&mut self) -> Option<char> {
        let c = self.rest().chars().next()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    fn skip_comment(&mut self) -> Result<()> {
        if self.peek() != Some(b'#') {
            return Ok(());
        }
        while let Some(c) = self.rest().chars().next() {
            if c == '\n' || c == '\r' {
                break;
            }
            if is_forbidden_control(c) {
                return Err(self.err(SYNTAX, "control character in comment"));
            }
            self.pos += c.len_utf8();
        }
        Ok(())
    }

    /// Consume a newline (`\n` or `\r\n`); returns false at anything else.
    fn newline(&mut self) -> Result<bool> {
        match self.peek() {
            Some(b'\n') => self.pos += 1,
            Some(b'\r') if self.rest().starts_with("\r\n") => self.pos += 2,
            Some(b'\r') => return Err(self.err(SYNTAX, "carriage return without line feed")),
            _ => return Ok(false),
        }
        self.line += 1;
        Ok(true)
    }

    /// After a header or value: blanks, an optional comment, then the end of
    /// the line or of the file.
    fn end_of_line(&mut self) -> Result<()> {
        self.skip_blanks();
        self.skip_comment()?;
        if self.newline()? || self.peek().is_none() {
            Ok(())
        } else {
            Err(self.err(SYNTAX, "expected end of line"))
        }
    }

    fn document(mut self) -> Result<Document> {
        loop {
            self.skip_blanks();
            match self.peek() {
                None => return Ok(self.doc),
                Some(b'#' | b'\n' | b'\r') => self.end_of_line()?,
                Some(b'[') => self.header()?,
                Some(c) if is_bare_key_byte(c) => self.key_value()?,
                Some(b'"' | b'\'') => return Err(self.err(UNSUPPORTED, "quoted keys")),
                Some(_) => return Err(self.err(SYNTAX, "expected a key, a [table] or a comment")),
            }
        }
    }

    fn bare_key(&mut self) -> Result<String> {
        let start = self.pos;
        while self.peek().is_some_and(is_bare_key_byte) {
            self.pos += 1;
        }
        let key = &self.src[start..self.pos];
        if key.is_empty() {
            return Err(self.err(SYNTAX, "expected a bare key [A-Za-z0-9_-]+"));
        }
        self.skip_blanks();
        if self.peek() == Some(b'.') {
            return Err(self.err(UNSUPPORTED, format!("dotted key `{key}.…`")));
        }
        Ok(key.to_owned())
    }

    fn header(&mut self) -> Result<()> {
        self.pos += 1;
        if self.peek() == Some(b'[') {
            return Err(self.err(UNSUPPORTED, "arrays of tables"));
        }
        self.skip_blanks();
        if matches!(self.peek(), Some(b'"' | b'\'')) {
            return Err(self.err(UNSUPPORTED, "quoted table names"));
        }
        let name = self.bare_key()?;
        if self.peek() != Some(b']') {
            return Err(self.err(SYNTAX, "expected `]` after table name"));
        }
        self.pos += 1;
        let line = self.line;
        self.end_of_line()?;
        if self.doc.table(&name).is_some() || self.doc.root.get(&name).is_some() {
            return Err(ParseError {
                line,
                key: None,
                kind: SYNTAX,
                detail: format!("duplicate table `[{name}]`"),
            });
        }
        self.doc.tables.push(Table {
            name,
            line,
            entries: Vec::new(),
        });
        Ok(())
    }

    fn key_value(&mut self) -> Result<()> {
        let line = self.line;
        let key = self.bare_key()?;
        self.key = Some(key.clone());
        if self.peek() != Some(b'=') {
            return Err(self.err(SYNTAX, "expected `=` after key"));
        }
        self.pos += 1;
        self.skip_blanks();
        let value = self.value()?;
        self.end_of_line()?;
        self.key = None;
        let table = self.doc.tables.last_mut().unwrap_or(&mut self.doc.root);
        if let Some(first) = table.get(&key) {
            let detail = format!(
                "duplicate key `{key}` (first defined at line {})",
                first.line
            );
            return Err(ParseError {
                line,
                key: None,
                kind: SYNTAX,
                detail,
            });
        }
        table.entries.push(Entry { key, value, line });
        Ok(())
    }

    fn value(&mut self) -> Result<Value> {
        let multi_line = self.rest().starts_with("\"\"\"") || self.rest().starts_with("'''");
        match self.peek() {
            _ if multi_line => Err(self.err(UNSUPPORTED, "multi-line strings")),
            Some(b'"') => self.basic_string().map(Value::String),
            Some(b'\'') => self.literal_string().map(Value::String),
            Some(b'[') => self.array().map(Value::Array),
            Some(b'{') => Err(self.err(UNSUPPORTED, "inline tables")),
            Some(b't' | b'f') => self.boolean().map(Value::Boolean),
            Some(b'0'..=b'9' | b'+' | b'-' | b'i' | b'n') => self.integer().map(Value::Integer),
            None | Some(b'\n' | b'\r' | b'#') => Err(self.err(SYNTAX, "missing value")),
            Some(_) => Err(self.err(SYNTAX, "invalid value")),
        }
    }

    fn basic_string(&mut self) -> Result<String> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            match self.bump_char() {
                Some('"') => return Ok(out),
                Some('\\') => out.push(self.escape()?),
                None | Some('\n' | '\r') => return Err(self.err(SYNTAX, "unterminated string")),
                Some(c) if is_forbidden_control(c) => {
                    return Err(self.err(SYNTAX, "control character in string"))
                }
                Some(c) => out.push(c),
            }
        }
    }

    fn escape(&mut self) -> Result<char> {
        match self.bump_char() {
            Some('"') => Ok('"'),
            Some('\\') => Ok('\\'),
            Some('n') => Ok('\n'),
            Some('t') => Ok('\t'),
            Some('r') => Ok('\r'),
            Some('u') => {
                let hex = self
                    .rest()
                    .get(..4)
                    .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
                let c = hex
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .and_then(char::from_u32);
                let c = c.ok_or_else(|| {
                    self.err(
                        SYNTAX,
                        "invalid \\u escape (need 4 hex digits, no surrogates)",
                    )
                })?;
                self.pos += 4;
                Ok(c)
            }
            Some(c) => {
                let shown = escape::quoted(c.to_string().as_bytes());
                Err(self.err(UNSUPPORTED, format!("escape `\\{shown}`")))
            }
            None => Err(self.err(SYNTAX, "unterminated string")),
        }
    }

    fn literal_string(&mut self) -> Result<String> {
        self.pos += 1;
        let start = self.pos;
        loop {
            match self.bump_char() {
                Some('\'') => return Ok(self.src[start..self.pos - 1].to_owned()),
                None | Some('\n' | '\r') => return Err(self.err(SYNTAX, "unterminated string")),
                Some(c) if is_forbidden_control(c) => {
                    return Err(self.err(SYNTAX, "control character in string"))
                }
                Some(_) => {}
            }
        }
    }

    /// The characters a number, date or special float could be made of.
    fn token(&mut self) -> &str {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || b"_+-.:".contains(&c))
        {
            self.pos += 1;
        }
        &self.src[start..self.pos]
    }

    fn boolean(&mut self) -> Result<bool> {
        match self.token() {
            "true" => Ok(true),
            "false" => Ok(false),
            other => {
                let detail = format!("invalid value `{}`", escape::quoted(other.as_bytes()));
                Err(self.err(SYNTAX, detail))
            }
        }
    }

    fn integer(&mut self) -> Result<i64> {
        let token = self.token().to_owned();
        let body = token.trim_start_matches(['+', '-']);
        if ["0x", "0o", "0b"].iter().any(|p| body.starts_with(p)) {
            return Err(self.err(UNSUPPORTED, "hexadecimal, octal or binary integers"));
        }
        let numeric = body.starts_with(|c: char| c.is_ascii_digit());
        if body == "inf" || body == "nan" || (numeric && body.contains(['.', 'e', 'E'])) {
            return Err(self.err(UNSUPPORTED, "floats"));
        }
        if numeric && body.contains([':', '-']) {
            return Err(self.err(UNSUPPORTED, "dates and times"));
        }
        let invalid = || format!("invalid integer `{}`", escape::quoted(token.as_bytes()));
        if token.len() - body.len() > 1 || !valid_digits(body) {
            return Err(self.err(SYNTAX, invalid()));
        }
        let digits: String = token.chars().filter(|&c| c != '_').collect();
        digits
            .parse::<i64>()
            .map_err(|_| self.err(SYNTAX, format!("integer `{}` out of range", token)))
    }

    fn array(&mut self) -> Result<Vec<Value>> {
        self.pos += 1;
        let mut items = Vec::new();
        loop {
            self.skip_array_space()?;
            match self.peek() {
                Some(b']') => break,
                Some(b'[') => return Err(self.err(UNSUPPORTED, "nested arrays")),
                None => return Err(self.err(SYNTAX, "unterminated array")),
                Some(_) => items.push(self.value()?),
            }
            self.skip_array_space()?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => break,
                _ => return Err(self.err(SYNTAX, "expected `,` or `]` in array")),
            }
        }
        self.pos += 1;
        Ok(items)
    }

    /// Blanks, comments and newlines, all of which may appear inside arrays.
    fn skip_array_space(&mut self) -> Result<()> {
        loop {
            self.skip_blanks();
            self.skip_comment()?;
            if !self.newline()? {
                return Ok(());
            }
        }
    }
}

/// Decimal digits with `_` only between digits, and no leading zero.
fn valid_digits(body: &str) -> bool {
    let b = body.as_bytes();
    let digits_ok = b.iter().all(|&c| c.is_ascii_digit() || c == b'_');
    let first_last =
        b.first().is_some_and(u8::is_ascii_digit) && b.last().is_some_and(u8::is_ascii_digit);
    let no_double = !body.contains("__");
    let no_leading_zero = !(b.len() > 1 && b[0] == b'0');
    digits_ok && first_last && no_double && no_leading_zero
}

#[cfg(test)]
#[path = "toml_tests.rs"]
mod tests;
