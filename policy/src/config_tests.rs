use super::*;
use crate::testutil::{is_root, set_mode, TempTree};

const GOOD: &str = r#"
unit = "left4me-server@.service"
instance_pattern = "[0-9]{1,5}"
callers = ["left4me", "@l4d-ops"]
actions = ["enable", "disable", "restart", "reset-failed", "show"]
"#;

fn bad(text: &str, want: &str) {
    match parse(text.as_bytes()) {
        Ok(_) => panic!("accepted {text:?}"),
        Err(msg) => assert!(msg.contains(want), "{text:?}: `{msg}` lacks `{want}`"),
    }
}

fn with(key_line: &str) -> String {
    let key = key_line.split(' ').next().unwrap_or_default();
    let kept: Vec<&str> = GOOD
        .lines()
        .filter(|l| !l.starts_with(&format!("{key} ")))
        .collect();
    format!("{}\n{key_line}\n", kept.join("\n"))
}

#[test]
fn a_good_policy() {
    let p = parse(GOOD.as_bytes()).unwrap();
    assert_eq!(p.unit_prefix, "left4me-server");
    assert_eq!(
        p.callers,
        vec![
            CallerRule::User("left4me".into()),
            CallerRule::Group("l4d-ops".into())
        ]
    );
    assert_eq!(p.actions, Action::ALL.to_vec());
    assert!(p.allows_instance("27015"));
    assert!(!p.allows_instance("270155"));
    assert!(!p.allows_instance("a"));
}

#[test]
fn cli_keys_and_tables_are_accepted_unvalidated() {
    let text = format!(
        "{GOOD}state_dir = '/var/lib/x'\nskeleton_dir = 1\nenv_file = true\nport_range = [27015, 27115]\n\
         install_command = ['sh']\nstop_timeout = 30\n[env]\nANY = 'thing'\nN = 3\n"
    );
    assert!(parse(text.as_bytes()).is_ok());
}

#[test]
fn unknown_keys_and_tables() {
    bad(
        &format!("{GOOD}exec_start = '/bin/sh'"),
        "unknown key `exec_start` at line 6, column 1",
    );
    bad(
        &format!("{GOOD}[service]\n"),
        "unknown table `[service]` at line 6, column 1",
    );
}

#[test]
fn unknown_keys_and_tables_through_quoted_and_dotted_keys() {
    bad(
        &format!("{GOOD}  \"exec start\" = '/bin/sh'"),
        "unknown key `\"exec start\"` at line 6, column 3",
    );
    bad(
        &format!("{GOOD}service.exec = 1\n"),
        "unknown table `[service]` at line 6, column 1",
    );
    bad(
        &format!("{GOOD}service = {{ exec = 1 }}\n"),
        "unknown table `[service]` at line 6, column 1",
    );
    // A quoted key's content is escaped in the message.
    bad(
        &format!("{GOOD}\"unit\\u001b\" = 1\n"),
        "unknown key `\"unit\\x1b\"` at line 6",
    );
}

#[test]
fn env_may_be_a_header_dotted_keys_or_an_inline_table() {
    for env in [
        "[env]\nA = 'x'\nB = 'y'\n",
        "env.A = 'x'\nenv.B = 'y'\n",
        "env = { A = 'x', \"B\" = 'y' }\n",
    ] {
        let text = format!("{GOOD}{env}");
        assert!(parse(text.as_bytes()).is_ok(), "{text}");
    }
}

#[test]
fn required_keys() {
    bad("", "missing required key `unit`");
    for key in ["unit", "callers", "actions"] {
        let text: Vec<&str> = GOOD
            .lines()
            .filter(|l| !l.starts_with(&format!("{key} ")))
            .collect();
        bad(&text.join("\n"), &format!("missing required key `{key}`"));
    }
    let text: Vec<&str> = GOOD
        .lines()
        .filter(|l| !l.starts_with("instance_pattern"))
        .collect();
    let p = parse(text.join("\n").as_bytes()).unwrap();
    assert!(p.allows_instance("Any-name_1") && !p.allows_instance("a.b"));
}

#[test]
fn wrong_types_name_key_and_line() {
    bad(
        &with("unit = 1"),
        "`unit` at line 5 must be a string, not integer",
    );
    bad(
        &with("instance_pattern = ['x']"),
        "`instance_pattern` at line 5 must be a string, not array",
    );
    bad(
        &with("callers = 'ops'"),
        "`callers` at line 5 must be an array of strings, not string",
    );
    bad(
        &with("callers = ['ops', 1]"),
        "`callers` at line 5 must be an array of strings, with elements, not integer",
    );
    bad(
        &with("actions = true"),
        "`actions` at line 5 must be an array of strings, not boolean",
    );
}

#[test]
fn max_instances_defaults_to_1000_and_is_bounded() {
    assert_eq!(parse(GOOD.as_bytes()).unwrap().max_instances, 1000);
    assert_eq!(DEFAULT_MAX_INSTANCES, 1000);
    for (line, want) in [
        ("max_instances = 1", 1),
        ("max_instances = 250", 250),
        ("max_instances = 100_000", 100_000),
    ] {
        assert_eq!(parse(with(line).as_bytes()).unwrap().max_instances, want);
    }
    for (line, msg) in [
        ("max_instances = 0", "must be from 1 to 100000, not 0"),
        ("max_instances = -1", "must be from 1 to 100000, not -1"),
        (
            "max_instances = 100001",
            "must be from 1 to 100000, not 100001",
        ),
        (
            "max_instances = 9223372036854775807",
            "must be from 1 to 100000, not 9223372036854775807",
        ),
        ("max_instances = '5'", "must be an integer, not string"),
        ("max_instances = [5]", "must be an integer, not array"),
    ] {
        bad(&with(line), &format!("`max_instances` at line 6 {msg}"));
    }
    bad(
        &format!("{GOOD}max_instances = 5\nmax_instances = 6\n"),
        "duplicate",
    );
}

#[test]
fn unit_must_be_a_template() {
    for u in [
        "ssh.service",
        "../demo@.service",
        "a@b.service",
        "@.service",
        "a@.socket",
        "a/b@.service",
        "-a@.service",
    ] {
        bad(
            &with(&format!("unit = '{u}'")),
            "`unit` at line 5 must be a template",
        );
    }
    assert!(parse(with("unit = 'a:b-c_d@.service'").as_bytes()).is_ok());
}

#[test]
fn callers_rules() {
    for c in ["Root", "a b", "@", "@@x", "1x", "a.b", "", "@Ops"] {
        bad(
            &with(&format!("callers = ['{c}']")),
            "is neither a user name",
        );
    }
    assert!(parse(with("callers = []").as_bytes()).is_ok());
}

#[test]
fn actions_rules() {
    bad(&with("actions = ['start']"), "unknown action 'start'");
    bad(
        &with("actions = ['show', 'show']"),
        "duplicate action 'show'",
    );
    let p = parse(with("actions = ['show']").as_bytes()).unwrap();
    assert!(p.allows_action(Action::Show) && !p.allows_action(Action::Enable));
}

#[test]
fn patterns_that_escape_their_anchors_are_rejected() {
    for pat in ["a)|(.*", "(", ")", "a)(", "[", "x{2,1}", ""] {
        bad(
            &with(&format!("instance_pattern = '{pat}'")),
            "`instance_pattern` at line 5",
        );
    }
    bad(&with("instance_pattern = \"a\\nb\""), "control characters");
    bad(
        &with(&format!("instance_pattern = '{}'", "a".repeat(1025))),
        "must be 1 to 1024 bytes",
    );
    // The regex crate's syntax errors span lines; a refusal is one.
    let err = parse(with("instance_pattern = 'a)|(.*'").as_bytes()).unwrap_err();
    assert!(!err.contains('\n'), "{err}");
    assert!(err.ends_with("invalid regex: unopened group"), "{err}");
    // Too big once compiled.
    bad(
        &with("instance_pattern = '((a{100}){100}){100}'"),
        "invalid regex",
    );
}

#[test]
fn patterns_are_anchored() {
    let p = parse(with("instance_pattern = '[0-9]+|x'").as_bytes()).unwrap();
    assert!(p.allows_instance("12") && p.allows_instance("x"));
    for i in ["12x", "x1", "a12", "xx"] {
        assert!(!p.allows_instance(i), "{i}");
    }
}

#[test]
fn widening_patterns_cannot_admit_what_the_builtin_rule_refuses() {
    let hostile = [
        "../x",
        "a.service",
        "-now",
        "a b",
        "x@y",
        "%i",
        "*",
        "",
        "a\n",
        "ａ",
        &"a".repeat(65),
    ];
    for pat in [
        ".*", "(?s).*", "[^x]*", ".*|.*", "(?s:.)*", r"[\s\S]*", "(?m)^.*$",
    ] {
        let p = parse(with(&format!("instance_pattern = '{pat}'")).as_bytes())
            .unwrap_or_else(|e| panic!("{pat}: {e}"));
        for name in hostile {
            assert!(!p.allows_instance(name), "{pat} admitted {name:?}");
        }
        assert!(p.allows_instance("ok-1"), "{pat}");
    }
}

#[test]
fn not_utf8_names_its_line() {
    match parse(b"# a\n# \xff\n") {
        Err(m) => assert_eq!(m, "not valid UTF-8 at line 2"),
        Ok(_) => panic!("accepted"),
    }
}

#[test]
fn load_from_a_secure_tree() {
    if !is_root() {
        return;
    }
    let t = TempTree::new();
    t.dir("etc/apps", 0o755);
    t.file("etc/apps/good.toml", GOOD.as_bytes(), 0o644);
    t.file("etc/apps/broken.toml", b"unit = 1\n", 0o644);
    let dir = Path::new("etc/apps");
    assert!(load(&t.root, dir, "good").is_ok());
    let e = load(&t.root, dir, "none").unwrap_err();
    let shown = t.path("etc/apps/none.toml");
    assert_eq!(
        e.to_string(),
        format!("no policy for app none ({}: not found)", shown.display())
    );
    let e = load(&t.root, dir, "broken").unwrap_err();
    assert!(
        e.to_string().contains("`unit` at line 1 must be a string"),
        "{}",
        e.to_string()
    );
    set_mode(&t.path("etc/apps/good.toml"), 0o666);
    assert!(matches!(
        load(&t.root, dir, "good").unwrap_err(),
        LoadError::Untrusted(trusted::Error::Insecure { .. })
    ));
}
