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
        ("\n\n[[arr]]", 3),
        ("[a.b]", 1),
        ("[a . 'b']", 1),
        ("a.b.c = 1", 1),
        ("[t]\na.b = 1", 2),
        ("[t]\na = {b = 1}", 2),
        ("x = [{a = 1}]", 1),
        ("t = {a = {b = 1}}", 1),
        ("t = {a.b = 1}", 1),
        ("t = {a = 1,\n b = 2}", 1),
        ("t = {\n}", 1),
        ("t = {a = 1 # c\n}", 1),
        ("t = { a\n= 1 }", 1),
        ("t = { a =\n1 }", 1),
        ("t = {a = 1,}", 1),
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
        ("x = \"\\x41\"", 1),
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
        ("a = [\n1,\n", 1, "column 5 (key `a`): unterminated array"),
        ("a = [,]", 1, "invalid value"),
        ("[]", 1, "expected a key"),
        ("[t", 1, "expected `]`"),
        ("= 1", 1, "expected a key"),
        ("# ok\n\u{1}", 2, "expected a key"),
        ("# bad \u{7f}", 1, "control character in comment"),
        ("a = 1\rb = 2", 1, "carriage return"),
        ("a = 1\n\u{feff}b = 2", 2, "expected a key"),
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

/// The tables of a document without positions: what it means.
fn meaning(text: &str) -> Vec<(String, Vec<(String, Value)>)> {
    let doc = ok(text);
    std::iter::once(&doc.root)
        .chain(&doc.tables)
        .map(|t| {
            let entries = t.entries.iter().map(|e| (e.key.clone(), e.value.clone()));
            (t.name.clone(), entries.collect())
        })
        .collect()
}

/// The error's kind and column as well.
fn err_at(text: &str) -> (&'static str, usize, usize) {
    let e = parse(text).expect_err(text);
    (e.kind, e.line, e.column)
}

#[test]
fn backspace_and_form_feed_escapes() {
    assert_eq!(root_value(r#"a = "x\by\fz""#, "a"), s("x\u{8}y\u{c}z"));
}

#[test]
fn four_and_eight_digit_unicode_escapes() {
    assert_eq!(root_value(r#"a = "\u00e9\u0041""#, "a"), s("éA"));
    assert_eq!(root_value(r#"a = "\U0001F600\U00000041""#, "a"), s("😀A"));
    assert_eq!(
        root_value(r#"a = "\uFFFD\U0010FFFF""#, "a"),
        s("\u{fffd}\u{10ffff}")
    );
    // Escapes in a quoted key decode too.
    assert_eq!(root_value(r#""\u0041" = 1"#, "A"), Value::Integer(1));
}

#[test]
fn unicode_escapes_refuse_surrogates_out_of_range_and_short_forms() {
    for text in [
        r#"a = "\uD800""#,
        r#"a = "\udfff""#,
        r#"a = "\U0000D800""#,
        r#"a = "\U00110000""#,
        r#"a = "\UFFFFFFFF""#,
        r#"a = "\u12""#,
        r#"a = "\u12g4""#,
        r#"a = "\U0001F60""#,
        r#"a = "\u+123""#,
    ] {
        let e = parse(text).expect_err(text);
        assert_eq!((e.kind, e.line, e.column), (SYNTAX, 1, 6), "{text}: {e}");
        assert!(e.detail.contains("escape"), "{text}: {e}");
    }
}

#[test]
fn unknown_escapes_are_invalid_and_toml_1_1_ones_unsupported() {
    assert_eq!(err_at(r#"a = "\q""#), (SYNTAX, 1, 6));
    assert_eq!(err_at(r#"a = "\ ""#), (SYNTAX, 1, 6));
    assert_eq!(err_at(r#"a = "\a""#), (SYNTAX, 1, 6));
    assert_eq!(err_at(r#"a = "\e""#), (UNSUPPORTED, 1, 6));
    assert_eq!(err_at(r#"a = "\x41""#), (UNSUPPORTED, 1, 6));
    // A literal string has no escapes at all.
    assert_eq!(root_value(r"a = '\q\u12'", "a"), s(r"\q\u12"));
}

#[test]
fn a_leading_byte_order_mark_is_skipped() {
    assert_eq!(meaning("\u{feff}a = 1\n"), meaning("a = 1\n"));
    // ... and is not a column: the error is at the `!`, column 5.
    assert_eq!(err_at("\u{feff}a = !"), (SYNTAX, 1, 5));
    // Only at the very start.
    assert_eq!(err_at("a = 1\n\u{feff}b = 2").0, SYNTAX);
    assert_eq!(err_at(" \u{feff}a = 1").0, SYNTAX);
}

#[test]
fn dotted_keys_make_the_same_table_as_a_header() {
    let header = "unit = 'u'\n[env]\nA = \"x\"\nB = 2\n";
    assert_eq!(
        meaning("unit = 'u'\nenv.A = \"x\"\nenv.B = 2\n"),
        meaning(header)
    );
    // Blanks around the dot, quoted parts, other root keys in between.
    assert_eq!(
        meaning("env . A = \"x\"\nunit = 'u'\n\"env\".'B' = 2\n"),
        meaning("unit = 'u'\nenv.A = \"x\"\nenv.B = 2\n")
    );
    let doc = ok("a = 1\n  env.A = 'x'\nenv.B = 'y'\n");
    let env = doc.table("env").unwrap();
    assert_eq!((env.line, env.column), (2, 3));
    assert_eq!(env.get("B").map(|e| (e.line, e.column)), Some((3, 1)));
}

#[test]
fn quoted_keys_basic_and_literal() {
    let doc = ok("\"a b\" = 1\n'c.d' = 2\n\"\" = 3\n['x y']\n\"=\" = 4\n");
    assert_eq!(doc.root.get("a b").unwrap().value, Value::Integer(1));
    assert_eq!(doc.root.get("c.d").unwrap().value, Value::Integer(2));
    assert_eq!(doc.root.get("").unwrap().value, Value::Integer(3));
    assert_eq!(
        doc.table("x y").unwrap().get("=").unwrap().value,
        Value::Integer(4)
    );
    assert_eq!(meaning("[ \"env\" ]\nA = 1"), meaning("[env]\nA = 1"));
}

#[test]
fn a_quoted_key_is_the_same_key_as_its_bare_spelling() {
    let (line, msg) = err("a = 1\n\"a\" = 2");
    assert_eq!(line, 2);
    assert!(
        msg.contains("duplicate key `a` (first defined at line 1)"),
        "{msg}"
    );
    let (line, msg) = err("[env]\nA = 1\n'A' = 2");
    assert_eq!(line, 3);
    assert!(msg.contains("duplicate key `A`"), "{msg}");
    assert_eq!(err("[env]\n['env']").0, 2);
}

#[test]
fn an_inline_table_makes_the_same_table_as_a_header() {
    let header = "[env]\nA = \"x\"\n\"B C\" = 'y'\nN = [1, 2]\n";
    assert_eq!(
        meaning("env = { A = \"x\", \"B C\" = 'y', N = [\n1,\n2] }\n"),
        meaning(header)
    );
    assert_eq!(
        meaning("env={A=\"x\",\"B C\"='y',N=[1,2]}"),
        meaning(header)
    );
    assert_eq!(meaning("env = {}\n"), meaning("[env]\n"));
    let doc = ok("unit = 'u'\nenv = { A = 'x', B = 'y' } # trailing\n");
    let env = doc.table("env").unwrap();
    assert_eq!((env.line, env.column), (2, 1));
    assert_eq!(env.get("B").map(|e| (e.line, e.column)), Some((2, 18)));
}

#[test]
fn a_table_defined_twice_by_dotted_keys_header_or_inline_table_is_refused() {
    let cases: &[(&str, usize, &str)] = &[
        (
            "env.A = 1\nenv.A = 2",
            2,
            "duplicate key `env.A` (first defined at line 1)",
        ),
        (
            "env.A = 1\n[env]\nB = 2",
            2,
            "duplicate table `[env]` (first defined at line 1)",
        ),
        ("env = {A = 1}\n[env]", 2, "duplicate table `[env]`"),
        (
            "env = {A = 1}\nenv.B = 2",
            2,
            "inline table `env` (line 1) cannot be added to",
        ),
        (
            "env.A = 1\nenv = {B = 2}",
            2,
            "duplicate key `env` (first defined at line 1)",
        ),
        ("env = {A = 1}\nenv = {B = 2}", 2, "duplicate key `env`"),
        ("env = {A = 1, A = 2}", 1, "duplicate key `env.A`"),
        ("env = {A = 1, 'A' = 2}", 1, "duplicate key `env.A`"),
        ("env.A = 1\nenv = 2", 2, "duplicate key `env`"),
        (
            "env = 2\nenv.A = 1",
            2,
            "`env` is a value (line 1), not a table",
        ),
        ("\"env\" = 2\n'env'.A = 1", 2, "`env` is a value"),
    ];
    for (text, line, want) in cases {
        let e = parse(text).expect_err(text);
        assert_eq!((e.kind, e.line), (SYNTAX, *line), "{text:?}: {e}");
        assert!(
            e.to_string().contains(want),
            "{text:?}: `{e}` lacks `{want}`"
        );
    }
}

#[test]
fn errors_give_line_and_column() {
    assert_eq!(err_at("a = 1\nb = yes"), (SYNTAX, 2, 5));
    assert_eq!(err_at("a = 1\n  [t"), (SYNTAX, 2, 5));
    assert_eq!(err_at("é = 1"), (SYNTAX, 1, 1));
    // Columns count characters, not bytes.
    assert_eq!(err_at("a = 'é' x"), (SYNTAX, 1, 9));
    let e = parse("a = 1\nb.c.d = 2").unwrap_err();
    assert_eq!(e.to_string(), "unsupported TOML at line 2, column 1 (key `b.c.d`): dotted key `b.c.d` of more than two parts (tables inside tables)");
}

#[test]
fn messages_escape_quoted_keys() {
    for text in [
        "\"a\\u001b\" = 1\n\"a\\u001b\" = 2",
        "\"a\\u001b\" = !",
        "[\"t\\n\"]\n[\"t\\n\"]",
        "\"k\\u007f\".b = !",
    ] {
        let e = parse(text).expect_err(text).to_string();
        assert!(!e.chars().any(char::is_control), "{text:?}: {e:?}");
        assert!(e.contains("\\x"), "{text:?}: {e:?}");
    }
    assert_eq!(display_key("a-b_1"), "a-b_1");
    assert_eq!(display_key(""), "\"\"");
    assert_eq!(display_key("a b"), "\"a b\"");
    assert!(!display_key("\u{1b}").contains('\u{1b}'));
}
