use super::*;

fn ok(text: &str) -> Document {
    parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

fn root_value(text: &str, key: &str) -> Value {
    ok(text).root.get(key).unwrap().value.clone()
}

/// The error's line and its rendered message.
fn err(text: &str) -> (usize, String) {
    let e = parse(text).expect_err(text);
    (e.line, e.to_string())
}

fn s(v: &str) -> Value {
    Value::String(v.into())
}

#[test]
fn a_complete_document() {
    let doc = ok("# comment\n\
                  unit = \"a@.service\"   # trailing\n\
                  \n\
                  n = -1_000\n\
                  flag = true\n\
                  list = [\n  'x', # inside\n  \"y\",\n]\n\
                  [env]\n\
                  PORT = 27015\n");
    assert_eq!(doc.root.entries.len(), 4);
    assert_eq!(doc.root.get("unit").unwrap().line, 2);
    assert_eq!(doc.root.get("n").unwrap().value, Value::Integer(-1000));
    assert_eq!(doc.root.get("flag").unwrap().value, Value::Boolean(true));
    assert_eq!(
        doc.root.get("list").unwrap().value,
        Value::Array(vec![s("x"), s("y")])
    );
    assert_eq!(doc.root.get("list").unwrap().line, 6);
    let env = doc.table("env").unwrap();
    assert_eq!((env.line, env.entries[0].line), (10, 11));
    assert_eq!(env.get("PORT").unwrap().value, Value::Integer(27015));
}

#[test]
fn strings_and_escapes() {
    assert_eq!(
        root_value(r#"a = "q\"b\\n\n\t\r\u00e9""#, "a"),
        s("q\"b\\n\n\t\ré")
    );
    assert_eq!(root_value(r"a = 'C:\path\n'", "a"), s(r"C:\path\n"));
    assert_eq!(root_value("a = \"\"", "a"), s(""));
    assert_eq!(root_value("a = \"tab\there\"", "a"), s("tab\there"));
    assert_eq!(
        root_value("a = \"#not comment\" # comment", "a"),
        s("#not comment")
    );
    assert_eq!(root_value("a = []", "a"), Value::Array(vec![]));
    assert_eq!(
        root_value("a = [1,2,]", "a"),
        Value::Array(vec![Value::Integer(1), Value::Integer(2)])
    );
    assert_eq!(root_value("a = 0", "a"), Value::Integer(0));
    assert_eq!(root_value("a = +5", "a"), Value::Integer(5));
    assert_eq!(
        root_value("a = 9223372036854775807", "a"),
        Value::Integer(i64::MAX)
    );
    assert_eq!(
        root_value("a = -9223372036854775808", "a"),
        Value::Integer(i64::MIN)
    );
    assert_eq!(ok("a = 1\r\nb = 2\r\n").root.get("b").unwrap().line, 2);
}

#[test]
fn unsupported_toml_names_its_line() {
    let cases = [
        ("a = 1\nt = {x = 1}", 2),
        ("a.b = 1", 1),
        ("\"a\" = 1", 1),
        ("\n\n[[arr]]", 3),
        ("[a.b]", 1),
        ("x = 1.5", 1),
        ("x = 1e3", 1),
        ("x = inf", 1),
        ("x = nan", 1),
        ("x = 1979-05-27", 1),
        ("x = 07:32:00", 1),
        ("x = 1979-05-27T07:32:00Z", 1),
        ("x = 0x10", 1),
        ("x = \"\"\"multi\"\"\"", 1),
        ("x = '''multi'''", 1),
        ("x = [[1], [2]]", 1),
        ("x = \"\\e\"", 1),
        ("x = \"\\U0001F600\"", 1),
        ("x = \"\\b\"", 1),
    ];
    for (text, line) in cases {
        let (l, msg) = err(text);
        assert_eq!(l, line, "{text:?}: {msg}");
        assert!(
            msg.starts_with(&format!("unsupported TOML at line {line}")),
            "{text:?}: {msg}"
        );
    }
}

#[test]
fn syntax_errors_name_line_and_key() {
    let cases: &[(&str, usize, &str)] = &[
        (
            "a = 1\na = 2",
            2,
            "duplicate key `a` (first defined at line 1)",
        ),
        ("[t]\n[t]", 2, "duplicate table `[t]`"),
        ("t = 1\n[t]", 2, "duplicate table `[t]`"),
        ("a = ", 1, "missing value"),
        ("a", 1, "expected `=`"),
        ("a = 1 2", 1, "expected end of line"),
        ("a = \"open", 1, "(key `a`): unterminated string"),
        ("a = 'open\n'", 1, "unterminated string"),
        ("x = 1\na = \"a\u{1}b\"", 2, "control character in string"),
        ("a = \"\\u12\"", 1, "invalid \\u escape"),
        ("a = \"\\ud800\"", 1, "invalid \\u escape"),
        ("a = 9223372036854775808", 1, "out of range"),
        ("a = 1__0", 1, "invalid integer"),
        ("a = _1", 1, "invalid value"),
        ("a = 1_", 1, "invalid integer"),
        ("a = 01", 1, "invalid integer"),
        ("a = --1", 1, "invalid integer"),
        ("a = yes", 1, "invalid value"),
        ("a = truex", 1, "invalid value"),
        ("a = [1 2]", 1, "expected `,` or `]`"),
        ("a = [\n1,\n", 3, "unterminated array"),
        ("a = [,]", 1, "invalid value"),
        ("[]", 1, "expected a bare key"),
        ("[t", 1, "expected `]`"),
        ("= 1", 1, "expected a key"),
        ("# ok\n\u{1}", 2, "expected a key"),
        ("# bad \u{7f}", 1, "control character in comment"),
        ("a = 1\rb = 2", 1, "carriage return"),
        ("\u{feff}a = 1", 1, "expected a key"),
    ];
    for (text, line, want) in cases {
        let (l, msg) = err(text);
        assert_eq!(l, *line, "{text:?}: {msg}");
        assert!(msg.contains(want), "{text:?}: `{msg}` lacks `{want}`");
        assert!(msg.contains(&format!("at line {line}")), "{msg}");
    }
}

#[test]
fn error_messages_escape_file_content() {
    let (_, msg) = err("a = \"\\\u{1b}\"");
    assert!(!msg.contains('\u{1b}'), "{msg:?}");
    let (_, msg) = err("a = 12\u{1b}x");
    assert!(!msg.contains('\u{1b}'), "{msg:?}");
}
