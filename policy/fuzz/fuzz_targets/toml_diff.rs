//! Input: a policy file's text. The hand-written TOML subset
//! (`unitgate_policy::toml`) against two real parsers, the `toml` crate 0.8
//! (TOML 1.0, the version the subset claims) and 1.x (TOML 1.1):
//!
//! - what the subset accepts, both accept, with the same meaning: the same
//!   tables, keys, types and values (so a document either rejects, the
//!   subset rejects too);
//! - what either accepts, the subset accepts or refuses as "unsupported
//!   TOML", never as "invalid TOML": it does not call valid TOML broken;
//! - every error names a line and column inside the text, and its message is
//!   safe to print (no control characters, nothing but ASCII and `…`);
//! - positions of entries and tables are inside the text;
//! - the policy schema check on top of a parsed document does not panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use unitgate_policy::config;
use unitgate_policy::toml::{self as subset, Document, Table, Value, UNSUPPORTED};

/// What a document means, independent of which parser read it. TOML tables
/// are unordered, so a map; types the subset has no value for (floats,
/// dates) are kept as `Other` and can never equal a subset value.
#[derive(Debug, PartialEq)]
enum Meaning {
    String(String),
    Integer(i64),
    Boolean(bool),
    Array(Vec<Meaning>),
    Table(BTreeMap<String, Meaning>),
    Other(String),
}

fuzz_target!(|data: &[u8]| {
    // All parse text; a policy that is not UTF-8 never reaches any of them.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let v1_0 = text
        .parse::<toml_1_0::Table>()
        .map(|t| from_v1_0(&toml_1_0::Value::Table(t)));
    let v1_1 = text
        .parse::<toml::Table>()
        .map(|t| from_v1_1(&toml::Value::Table(t)));
    match subset::parse(text) {
        Ok(doc) => {
            let ours = from_subset(&doc);
            match &v1_0 {
                Ok(m) => assert_eq!(&ours, m, "{text:?} means something else in TOML 1.0"),
                Err(e) => {
                    panic!("the subset accepted what TOML 1.0 rejects:\n{text:?}\n{doc:?}\n{e}")
                }
            }
            match &v1_1 {
                Ok(m) => assert_eq!(&ours, m, "{text:?} means something else in TOML 1.1"),
                Err(e) => {
                    panic!("the subset accepted what TOML 1.1 rejects:\n{text:?}\n{doc:?}\n{e}")
                }
            }
            check_positions(text, &doc);
            let _ = config::from_document(&doc);
        }
        Err(e) => {
            if v1_0.is_ok() || v1_1.is_ok() {
                assert_eq!(
                    e.kind, UNSUPPORTED,
                    "valid TOML called invalid:\n{text:?}\n{e}"
                );
            }
            assert!(
                position_in(text, e.line, e.column),
                "{text:?}: position of {e}"
            );
            let shown = e.to_string();
            assert!(
                shown
                    .chars()
                    .all(|c| c == '…' || (c.is_ascii() && !c.is_ascii_control())),
                "unsafe message {shown:?}"
            );
        }
    }
});

fn from_subset(doc: &Document) -> Meaning {
    let mut root = entries(&doc.root);
    for t in &doc.tables {
        let prior = root.insert(t.name.clone(), Meaning::Table(entries(t)));
        assert!(
            prior.is_none(),
            "table {:?} also a root key or table",
            t.name
        );
    }
    Meaning::Table(root)
}

fn entries(t: &Table) -> BTreeMap<String, Meaning> {
    let mut out = BTreeMap::new();
    for e in &t.entries {
        let prior = out.insert(e.key.clone(), value(&e.value));
        assert!(prior.is_none(), "key {:?} twice in {:?}", e.key, t.name);
    }
    out
}

fn value(v: &Value) -> Meaning {
    match v {
        Value::String(s) => Meaning::String(s.clone()),
        Value::Integer(n) => Meaning::Integer(*n),
        Value::Boolean(b) => Meaning::Boolean(*b),
        Value::Array(items) => Meaning::Array(items.iter().map(value).collect()),
    }
}

// The two crate versions have distinct but alike value types.
macro_rules! from_crate {
    ($name:ident, $krate:ident) => {
        fn $name(v: &$krate::Value) -> Meaning {
            use $krate::Value as V;
            match v {
                V::String(s) => Meaning::String(s.clone()),
                V::Integer(n) => Meaning::Integer(*n),
                V::Boolean(b) => Meaning::Boolean(*b),
                V::Array(items) => Meaning::Array(items.iter().map($name).collect()),
                V::Table(t) => {
                    Meaning::Table(t.iter().map(|(k, v)| (k.clone(), $name(v))).collect())
                }
                other => Meaning::Other(format!("{other:?}")),
            }
        }
    };
}
from_crate!(from_v1_0, toml_1_0);
from_crate!(from_v1_1, toml);

/// Line `line` exists and column `column` is on it or just past its end.
fn position_in(text: &str, line: usize, column: usize) -> bool {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    match line.checked_sub(1).and_then(|i| text.split('\n').nth(i)) {
        Some(l) => (1..=l.chars().count() + 1).contains(&column),
        None => false,
    }
}

/// Entries and tables are at positions of the text, entries in order.
fn check_positions(text: &str, doc: &Document) {
    for t in std::iter::once(&doc.root).chain(&doc.tables) {
        let mut last = 0;
        for e in &t.entries {
            assert!(position_in(text, e.line, e.column), "{text:?}: {e:?}");
            assert!(e.line >= last, "{text:?}: {e:?} out of order");
            last = e.line;
        }
    }
    for t in &doc.tables {
        assert!(position_in(text, t.line, t.column), "{text:?}: {t:?}");
    }
}
