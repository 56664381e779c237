//! A small, strict subset of TOML 1.0, parsed by hand.
//!
//! Hand-written because it runs inside the root helper, whose dependency list
//! is kept short on purpose; the differential fuzz target in `policy/fuzz`
//! holds it to the `toml` crate instead (docs/helper.md, "Format").
//!
//! The model has two levels: the root table, and named tables directly below
//! it whose values are strings, integers, booleans or flat arrays of those.
//! Within that model it accepts what TOML 1.0 accepts: comments, blank lines,
//! LF or CRLF line ends, a byte order mark at the start; keys bare, "basic"
//! or 'literal'; a table as a `[t]` header, as dotted root keys `t.k = v`, or
//! as an inline table `t = { k = v, … }` at the root, all three giving the
//! same [`Table`]; basic strings with every TOML 1.0 escape, literal strings,
//! decimal integers, booleans, and arrays (multi-line, trailing comma,
//! comments inside).
//!
//! Everything else is refused as "unsupported TOML" rather than
//! half-understood: tables inside tables (`[a.b]`, `a.b.c = 1`, a dotted key
//! or inline table under a `[t]`, inline tables in arrays or inline tables),
//! arrays of tables, nested arrays, floats, dates and times, multi-line
//! strings, hexadecimal/octal/binary integers, and what TOML 1.1 added (`\e`
//! and `\x` escapes, inline tables across lines or with a trailing comma).
//! Every error names its line and column, and the key being parsed, if any.

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

/// One `key = value`, at the line and column its key starts (so a
/// multi-line array is at its first line). `key` is decoded: `"a b"` gives
/// `a b`, which may hold anything; print it with [`display_key`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: Value,
    pub line: usize,
    /// 1-based, counted in characters.
    pub column: usize,
}

/// A table: the root table has the empty name and line and column 0. Its
/// position is that of its header's `[`, of its first dotted key, or of the
/// key of its inline table. Its name may hold anything, like a key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Table {
    pub name: String,
    pub line: usize,
    pub column: usize,
    pub entries: Vec<Entry>,
}

impl Table {
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.key == key)
    }
}

/// A parsed file: the root table, then the named tables in the order they
/// first appear. Names are unique, and no root key has a table's name.
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
    /// 1-based, counted in characters.
    pub column: usize,
    /// The key whose value was being parsed, if any, dotted and escaped
    /// for display.
    pub key: Option<String>,
    /// What kind of error, "unsupported TOML" or "invalid TOML".
    pub kind: &'static str,
    pub detail: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at line {}, column {}",
            self.kind, self.line, self.column
        )?;
        if let Some(key) = &self.key {
            write!(f, " (key `{key}`)")?;
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

/// Valid TOML (or TOML 1.1) that this subset does not model.
pub const UNSUPPORTED: &str = "unsupported TOML";
/// Not TOML at all.
pub const SYNTAX: &str = "invalid TOML";

type Result<T> = std::result::Result<T, ParseError>;

/// Parse `text` into a [`Document`].
pub fn parse(text: &str) -> Result<Document> {
    // TOML allows a byte order mark, only as the very first character.
    let bom = if text.starts_with('\u{feff}') {
        '\u{feff}'.len_utf8()
    } else {
        0
    };
    Parser {
        src: text,
        bom,
        pos: bom,
        line: 1,
        key: None,
        doc: Document::default(),
        origins: Vec::new(),
        current: None,
    }
    .document()
}

/// How a table came to be, which decides what may still add to it.
#[derive(Clone, Copy)]
enum Origin {
    /// `[t]`: owns the lines up to the next header.
    Header,
    /// `t.k = v` at the root: more dotted keys may add to it, a `[t]` may
    /// not (TOML forbids defining it a second time).
    Dotted,
    /// `t = { … }`: complete as written.
    Inline,
}

/// A key as written: its dotted parts, decoded, and where it starts.
struct Key {
    parts: Vec<String>,
    pos: usize,
    line: usize,
}

struct Parser<'a> {
    src: &'a str,
    /// Length of the byte order mark, if any: not a column.
    bom: usize,
    pos: usize,
    line: usize,
    key: Option<String>,
    doc: Document,
    /// Parallel to `doc.tables`.
    origins: Vec<Origin>,
    /// The `[table]` whose lines we are in, by index; None before the first.
    current: Option<usize>,
}

fn is_bare_key_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
}

/// Control characters TOML forbids in comments and strings (tab is allowed).
fn is_forbidden_control(c: char) -> bool {
    (c < ' ' && c != '\t') || c == '\x7f'
}

/// A key or table name for a message: bare if it can be, else in quotes
/// with its bytes escaped as in every message (`\xHH`), since a quoted key
/// may hold control characters, quotes or dots.
pub fn display_key(key: &str) -> String {
    if !key.is_empty() && key.bytes().all(is_bare_key_byte) {
        key.to_owned()
    } else {
        format!("\"{}\"", escape::quoted(key.as_bytes()))
    }
}

/// A dotted key for messages, each part as [`display_key`] shows it.
fn show_key(parts: &[String]) -> String {
    let parts: Vec<String> = parts.iter().map(|p| display_key(p)).collect();
    parts.join(".")
}

impl Parser<'_> {
    /// An error at byte offset `pos`; line and column are counted from the
    /// text itself, so they are right wherever the parser has got to.
    fn err_at(&self, pos: usize, kind: &'static str, detail: impl Into<String>) -> ParseError {
        let (line, column) = self.line_column(pos);
        ParseError {
            line,
            column,
            key: self.key.clone(),
            kind,
            detail: detail.into(),
        }
    }

    fn err(&self, kind: &'static str, detail: impl Into<String>) -> ParseError {
        self.err_at(self.pos, kind, detail)
    }

    /// The 1-based line and column (in characters, the byte order mark not
    /// counted) of byte offset `pos`.
    fn line_column(&self, pos: usize) -> (usize, usize) {
        let before = self.src.get(..pos).unwrap_or(self.src);
        let line_start = before.rfind('\n').map_or(self.bom, |i| i + 1);
        let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
        (before.matches('\n').count() + 1, column)
    }

    /// An entry whose key starts at `key`.
    fn entry(&self, key: &Key, name: &str, value: Value) -> Entry {
        Entry {
            key: name.to_owned(),
            value,
            line: key.line,
            column: self.line_column(key.pos).1,
        }
    }

    /// A new named table positioned at byte offset `pos`.
    fn push_table(&mut self, name: &str, pos: usize, entries: Vec<Entry>, origin: Origin) {
        let (line, column) = self.line_column(pos);
        self.doc.tables.push(Table {
            name: name.to_owned(),
            line,
            column,
            entries,
        });
        self.origins.push(origin);
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

    fn expect(&mut self, byte: u8, what: &str) -> Result<()> {
        if self.peek() != Some(byte) {
            return Err(self.err(SYNTAX, format!("expected {what}")));
        }
        self.pos += 1;
        Ok(())
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
                Some(c) if is_bare_key_byte(c) || c == b'"' || c == b'\'' => self.key_value()?,
                Some(_) => return Err(self.err(SYNTAX, "expected a key, a [table] or a comment")),
            }
        }
    }

    /// One part of a key: bare, "basic" or 'literal'.
    fn simple_key(&mut self) -> Result<String> {
        match self.peek() {
            Some(b'"') => self.basic_string(),
            Some(b'\'') => self.literal_string(),
            Some(c) if is_bare_key_byte(c) => {
                let start = self.pos;
                while self.peek().is_some_and(is_bare_key_byte) {
                    self.pos += 1;
                }
                Ok(self.src[start..self.pos].to_owned())
            }
            _ => Err(self.err(
                SYNTAX,
                "expected a key: bare [A-Za-z0-9_-]+, \"basic\" or 'literal'",
            )),
        }
    }

    /// A key and its dotted parts (blanks around the dots are allowed), and
    /// the blanks after it.
    fn key(&mut self) -> Result<Key> {
        let (pos, line) = (self.pos, self.line);
        let mut parts = vec![self.simple_key()?];
        loop {
            self.skip_blanks();
            if self.peek() != Some(b'.') {
                return Ok(Key { parts, pos, line });
            }
            self.pos += 1;
            self.skip_blanks();
            parts.push(self.simple_key()?);
        }
    }

    fn table_index(&self, name: &str) -> Option<usize> {
        self.doc.tables.iter().position(|t| t.name == name)
    }

    fn header(&mut self) -> Result<()> {
        let start = self.pos;
        self.pos += 1;
        if self.peek() == Some(b'[') {
            return Err(self.err_at(start, UNSUPPORTED, "arrays of tables `[[…]]`"));
        }
        self.skip_blanks();
        let mut key = self.key()?;
        self.expect(b']', "`]` after the table name")?;
        let shown = show_key(&key.parts);
        if key.parts.len() > 1 {
            let detail = format!("table `[{shown}]` inside a table (only one level of tables)");
            return Err(self.err_at(start, UNSUPPORTED, detail));
        }
        self.end_of_line()?;
        let name = key.parts.pop().unwrap_or_default();
        let first = match self.table_index(&name) {
            Some(i) => Some(self.doc.tables[i].line),
            None => self.doc.root.get(&name).map(|e| e.line),
        };
        if let Some(first) = first {
            let detail = format!("duplicate table `[{shown}]` (first defined at line {first})");
            return Err(self.err_at(start, SYNTAX, detail));
        }
        self.push_table(&name, start, Vec::new(), Origin::Header);
        self.current = Some(self.doc.tables.len() - 1);
        Ok(())
    }

    fn key_value(&mut self) -> Result<()> {
        let key = self.key()?;
        let shown = show_key(&key.parts);
        self.key = Some(shown.clone());
        self.expect(b'=', "`=` after the key")?;
        self.skip_blanks();
        match (self.current, key.parts.as_slice()) {
            (None, [name]) => {
                self.root_key_free(&key, name)?;
                if self.peek() == Some(b'{') {
                    let entries = self.inline_table(name)?;
                    self.push_table(name, key.pos, entries, Origin::Inline);
                } else {
                    let value = self.value()?;
                    let entry = self.entry(&key, name, value);
                    self.doc.root.entries.push(entry);
                }
            }
            (None, [table, name]) => {
                let t = self.dotted_table(&key, table)?;
                self.entry_free(&self.doc.tables[t].entries, &key, name)?;
                let value = self.value()?;
                let entry = self.entry(&key, name, value);
                self.doc.tables[t].entries.push(entry);
            }
            (None, _) => {
                let detail =
                    format!("dotted key `{shown}` of more than two parts (tables inside tables)");
                return Err(self.err_at(key.pos, UNSUPPORTED, detail));
            }
            (Some(t), [name]) => {
                self.entry_free(&self.doc.tables[t].entries, &key, name)?;
                let value = self.value()?;
                let entry = self.entry(&key, name, value);
                self.doc.tables[t].entries.push(entry);
            }
            (Some(t), _) => {
                let table = show_key(std::slice::from_ref(&self.doc.tables[t].name));
                let detail =
                    format!("dotted key `{shown}` in table `[{table}]` (tables inside tables)");
                return Err(self.err_at(key.pos, UNSUPPORTED, detail));
            }
        }
        self.end_of_line()?;
        self.key = None;
        Ok(())
    }

    /// A root key `name` may be defined if neither a root key nor a table
    /// (dotted or inline; no header precedes root keys) has that name.
    fn root_key_free(&self, key: &Key, name: &str) -> Result<()> {
        let first = match self.table_index(name) {
            Some(i) => Some(self.doc.tables[i].line),
            None => self.doc.root.get(name).map(|e| e.line),
        };
        match first {
            Some(first) => Err(self.duplicate(key, first)),
            None => Ok(()),
        }
    }

    fn entry_free(&self, entries: &[Entry], key: &Key, name: &str) -> Result<()> {
        match entries.iter().find(|e| e.key == name) {
            Some(e) => Err(self.duplicate(key, e.line)),
            None => Ok(()),
        }
    }

    fn duplicate(&self, key: &Key, first: usize) -> ParseError {
        let detail = format!(
            "duplicate key `{}` (first defined at line {first})",
            show_key(&key.parts)
        );
        let mut e = self.err_at(key.pos, SYNTAX, detail);
        e.key = None;
        e
    }

    /// The table a root `table.name = …` adds to, created at its first key.
    fn dotted_table(&mut self, key: &Key, table: &str) -> Result<usize> {
        if let Some(e) = self.doc.root.get(table) {
            let detail = format!(
                "`{}` is a value (line {}), not a table",
                show_key(&key.parts[..1]),
                e.line
            );
            return Err(self.err_at(key.pos, SYNTAX, detail));
        }
        match self.table_index(table) {
            Some(i) => match self.origins[i] {
                Origin::Dotted => Ok(i),
                // Headers never precede root keys, so this is an inline table.
                Origin::Header | Origin::Inline => {
                    let detail = format!(
                        "inline table `{}` (line {}) cannot be added to",
                        show_key(&key.parts[..1]),
                        self.doc.tables[i].line
                    );
                    Err(self.err_at(key.pos, SYNTAX, detail))
                }
            },
            None => {
                self.push_table(table, key.pos, Vec::new(), Origin::Dotted);
                Ok(self.doc.tables.len() - 1)
            }
        }
    }

    /// `{ k = v, … }` on one line (arrays inside may span lines, as in TOML
    /// 1.0); its keys are single parts, its values not tables.
    fn inline_table(&mut self, table: &str) -> Result<Vec<Entry>> {
        self.pos += 1;
        let mut entries: Vec<Entry> = Vec::new();
        self.skip_blanks();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(entries);
        }
        loop {
            self.inline_table_continues()?;
            let key = self.key()?;
            let mut full = vec![table.to_owned()];
            full.extend(key.parts.iter().cloned());
            let shown = show_key(&full);
            self.key = Some(shown.clone());
            let [name] = key.parts.as_slice() else {
                let detail =
                    format!("dotted key `{shown}` in an inline table (tables inside tables)");
                return Err(self.err_at(key.pos, UNSUPPORTED, detail));
            };
            self.inline_table_continues()?;
            self.expect(b'=', "`=` after the key")?;
            self.inline_table_continues()?;
            if let Some(e) = entries.iter().find(|e| e.key == *name) {
                let first = e.line;
                return Err(self.duplicate(&Key { parts: full, ..key }, first));
            }
            let value = self.value()?;
            entries.push(self.entry(&key, name, value));
            self.skip_blanks();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    self.skip_blanks();
                    if self.peek() == Some(b'}') {
                        return Err(
                            self.err(UNSUPPORTED, "trailing comma in an inline table (TOML 1.1)")
                        );
                    }
                }
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(entries);
                }
                _ => {
                    self.inline_table_continues()?;
                    return Err(self.err(SYNTAX, "expected `,` or `}` in the inline table"));
                }
            }
        }
    }

    /// TOML 1.0 inline tables end on the line they start on; TOML 1.1 lets
    /// them go on, with comments, which is valid TOML we do not model.
    fn inline_table_continues(&mut self) -> Result<()> {
        self.skip_blanks();
        match self.peek() {
            Some(b'\n' | b'\r' | b'#') => Err(self.err(
                UNSUPPORTED,
                "inline table across lines or with comments (TOML 1.1)",
            )),
            None => Err(self.err(SYNTAX, "unterminated inline table")),
            Some(_) => Ok(()),
        }
    }

    fn value(&mut self) -> Result<Value> {
        let multi_line = self.rest().starts_with("\"\"\"") || self.rest().starts_with("'''");
        match self.peek() {
            _ if multi_line => Err(self.err(UNSUPPORTED, "multi-line strings")),
            Some(b'"') => self.basic_string().map(Value::String),
            Some(b'\'') => self.literal_string().map(Value::String),
            Some(b'[') => self.array().map(Value::Array),
            Some(b'{') => Err(self.err(
                UNSUPPORTED,
                "an inline table here (only a root key's value may be one: no tables inside tables or arrays)",
            )),
            Some(b't' | b'f') => self.boolean().map(Value::Boolean),
            Some(b'0'..=b'9' | b'+' | b'-' | b'i' | b'n') => self.integer().map(Value::Integer),
            None | Some(b'\n' | b'\r' | b'#') => Err(self.err(SYNTAX, "missing value")),
            Some(_) => Err(self.err(SYNTAX, "invalid value")),
        }
    }

    fn basic_string(&mut self) -> Result<String> {
        let open = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let at = self.pos;
            match self.bump_char() {
                Some('"') => return Ok(out),
                Some('\\') => out.push(self.escape()?),
                None | Some('\n' | '\r') => {
                    return Err(self.err_at(open, SYNTAX, "unterminated string"))
                }
                Some(c) if is_forbidden_control(c) => {
                    return Err(self.err_at(at, SYNTAX, "control character in string"))
                }
                Some(c) => out.push(c),
            }
        }
    }

    /// After a backslash in a basic string: the escapes of TOML 1.0.
    fn escape(&mut self) -> Result<char> {
        let start = self.pos - 1;
        match self.bump_char() {
            Some('"') => Ok('"'),
            Some('\\') => Ok('\\'),
            Some('b') => Ok('\u{8}'),
            Some('f') => Ok('\u{c}'),
            Some('n') => Ok('\n'),
            Some('t') => Ok('\t'),
            Some('r') => Ok('\r'),
            Some('u') => self.hex_escape(start, 'u', 4),
            Some('U') => self.hex_escape(start, 'U', 8),
            Some(c @ ('e' | 'x')) => {
                Err(self.err_at(start, UNSUPPORTED, format!("escape `\\{c}` (TOML 1.1)")))
            }
            Some(c) => {
                let shown = escape::quoted(c.to_string().as_bytes());
                Err(self.err_at(start, SYNTAX, format!("invalid escape `\\{shown}`")))
            }
            None => Err(self.err(SYNTAX, "unterminated string")),
        }
    }

    /// `\uXXXX` or `\UXXXXXXXX`: exactly `digits` hex digits naming a
    /// Unicode scalar value (no surrogates, nothing above 10FFFF).
    fn hex_escape(&mut self, start: usize, letter: char, digits: usize) -> Result<char> {
        let c = self
            .rest()
            .get(..digits)
            .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .and_then(char::from_u32);
        let c = c.ok_or_else(|| {
            let detail = format!(
                "invalid \\{letter} escape (need {digits} hex digits of a Unicode scalar value: no surrogates, at most 10FFFF)"
            );
            self.err_at(start, SYNTAX, detail)
        })?;
        self.pos += digits;
        Ok(c)
    }

    fn literal_string(&mut self) -> Result<String> {
        let open = self.pos;
        self.pos += 1;
        let start = self.pos;
        loop {
            let at = self.pos;
            match self.bump_char() {
                Some('\'') => return Ok(self.src[start..at].to_owned()),
                None | Some('\n' | '\r') => {
                    return Err(self.err_at(open, SYNTAX, "unterminated string"))
                }
                Some(c) if is_forbidden_control(c) => {
                    return Err(self.err_at(at, SYNTAX, "control character in string"))
                }
                Some(_) => {}
            }
        }
    }

    /// The characters a number, date or special float could be made of.
    fn token(&mut self) -> (usize, &str) {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || b"_+-.:".contains(&c))
        {
            self.pos += 1;
        }
        (start, &self.src[start..self.pos])
    }

    fn boolean(&mut self) -> Result<bool> {
        match self.token() {
            (_, "true") => Ok(true),
            (_, "false") => Ok(false),
            (start, other) => {
                let detail = format!("invalid value `{}`", escape::quoted(other.as_bytes()));
                Err(self.err_at(start, SYNTAX, detail))
            }
        }
    }

    fn integer(&mut self) -> Result<i64> {
        let (start, token) = self.token();
        let token = token.to_owned();
        let body = token.trim_start_matches(['+', '-']);
        let unsupported = |what| Err(self.err_at(start, UNSUPPORTED, what));
        if ["0x", "0o", "0b"].iter().any(|p| body.starts_with(p)) {
            return unsupported("hexadecimal, octal or binary integers");
        }
        let numeric = body.starts_with(|c: char| c.is_ascii_digit());
        if body == "inf" || body == "nan" || (numeric && body.contains(['.', 'e', 'E'])) {
            return unsupported("floats");
        }
        if numeric && body.contains([':', '-']) {
            return unsupported("dates and times");
        }
        let invalid = || format!("invalid integer `{}`", escape::quoted(token.as_bytes()));
        if token.len() - body.len() > 1 || !valid_digits(body) {
            return Err(self.err_at(start, SYNTAX, invalid()));
        }
        let digits: String = token.chars().filter(|&c| c != '_').collect();
        digits.parse::<i64>().map_err(|_| {
            let detail = format!(
                "integer `{}` out of range",
                escape::quoted(token.as_bytes())
            );
            self.err_at(start, SYNTAX, detail)
        })
    }

    fn array(&mut self) -> Result<Vec<Value>> {
        let open = self.pos;
        self.pos += 1;
        let mut items = Vec::new();
        loop {
            self.skip_array_space()?;
            match self.peek() {
                Some(b']') => break,
                Some(b'[') => return Err(self.err(UNSUPPORTED, "nested arrays")),
                None => return Err(self.err_at(open, SYNTAX, "unterminated array")),
                Some(_) => items.push(self.value()?),
            }
            self.skip_array_space()?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => break,
                None => return Err(self.err_at(open, SYNTAX, "unterminated array")),
                _ => return Err(self.err(SYNTAX, "expected `,` or `]` in the array")),
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
