use super::*;
use crate::config::parse;

const POLICY: &str = r#"
unit = "runner-pool@.service"
callers = ["runner"]
actions = ["enable", "disable", "show"]

[tasks]
commands = ["/usr/local/lib/runner-pool/job", "/opt/jobs/"]
max_cpu_percent = 200
max_memory = "2G"
max_tasks = 64
max_runtime_secs = 3600
max_running = 4
"#;

fn tasks(text: &str) -> Result<TaskPolicy, String> {
    parse(text.as_bytes()).map(|p| p.tasks.expect("[tasks]"))
}

fn with(key: &str, line: &str) -> String {
    POLICY
        .lines()
        .map(|l| {
            if l.starts_with(&format!("{key} ")) {
                line
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_tasks_table_is_read_and_its_absence_allows_no_task() {
    let t = tasks(POLICY).unwrap();
    assert_eq!(t.max_cpu_percent, 200);
    assert_eq!(t.max_memory, 2 << 30);
    assert_eq!(
        (t.max_tasks, t.max_runtime_secs, t.max_running),
        (64, 3600, 4)
    );
    assert_eq!(
        t.commands,
        [
            CommandRule::File("/usr/local/lib/runner-pool/job".into()),
            CommandRule::Dir("/opt/jobs/".into())
        ]
    );
    let without = POLICY.split("[tasks]").next().unwrap();
    assert_eq!(parse(without.as_bytes()).unwrap().tasks, None);
}

#[test]
fn commands_are_exact_files_or_whole_directories() {
    let t = tasks(POLICY).unwrap();
    for ok in [
        "/usr/local/lib/runner-pool/job",
        "/opt/jobs/a",
        "/opt/jobs/sub/b",
    ] {
        assert!(t.allows_command(ok), "{ok}");
    }
    for refused in [
        "/usr/local/lib/runner-pool/job2",
        "/usr/local/lib/runner-pool/",
        "/usr/local/lib/runner-pool",
        "/opt/jobs/",
        "/opt/jobs",
        "/opt/jobsx/a",
        "/opt/jobs/../../bin/sh",
        "/opt/jobs/./a",
        "/opt/jobs//a",
        "/opt/jobs/a b",
        "/opt/jobs/a\nb",
        "opt/jobs/a",
        "job",
        "",
        "/bin/sh",
    ] {
        assert!(!t.allows_command(refused), "{refused:?}");
    }
    assert!(!t.allows_command(&format!("/opt/jobs/{}", "a".repeat(MAX_PATH))));
}

#[test]
fn a_bad_tasks_table_is_refused_naming_the_key() {
    for (key, line, want) in [
        ("max_memory", "max_memory = 2", "must be a string"),
        ("max_memory", "max_memory = \"2X\"", "not a size"),
        ("max_memory", "max_memory = \"0\"", "not a size"),
        (
            "max_cpu_percent",
            "max_cpu_percent = 0",
            "must be from 1 to 100000",
        ),
        ("max_cpu_percent", "max_cpu_percent = -5", "must be from 1"),
        ("max_tasks", "max_tasks = \"64\"", "must be an integer"),
        (
            "max_running",
            "max_running = 100000",
            "must be from 1 to 10000",
        ),
        ("max_runtime_secs", "max_runtime_secs = 0", "must be from 1"),
        ("commands", "commands = []", "lists no program"),
        ("commands", "commands = \"/bin/true\"", "must be an array"),
        (
            "commands",
            "commands = [\"bin/true\"]",
            "not an absolute path",
        ),
        (
            "commands",
            "commands = [\"/opt/../bin/\"]",
            "not an absolute path",
        ),
        (
            "commands",
            "commands = [\"/opt//x\"]",
            "not an absolute path",
        ),
        ("commands", "commands = [1]", "must be strings"),
    ] {
        let text = with(key, line);
        let err = tasks(&text).unwrap_err();
        assert!(err.contains(want), "{line}: `{err}` lacks `{want}`");
    }
    let missing = with("max_running", "");
    assert!(tasks(&missing)
        .unwrap_err()
        .contains("missing `max_running`"));
    let unknown = format!("{POLICY}\nuser = \"root\"\n");
    assert!(tasks(&unknown)
        .unwrap_err()
        .contains("unknown key `user` in [tasks]"));
}

#[test]
fn limits_default_to_the_maximum_and_never_exceed_it() {
    let t = tasks(POLICY).unwrap();
    let max = Limits {
        cpu_percent: 200,
        memory: 2 << 30,
        tasks: 64,
        runtime_secs: 3600,
    };
    assert_eq!(t.limits(Asked::default()).unwrap(), max);
    let asked = Asked {
        cpu_percent: Some(50),
        memory: Some(50 << 20),
        tasks: Some(5),
        runtime_secs: Some(10),
    };
    assert_eq!(
        t.limits(asked).unwrap(),
        Limits {
            cpu_percent: 50,
            memory: 50 << 20,
            tasks: 5,
            runtime_secs: 10
        }
    );
    for (asked, want) in [
        (
            Asked {
                cpu_percent: Some(201),
                ..Asked::default()
            },
            "cpu 201 is above the app's maximum 200",
        ),
        (
            Asked {
                memory: Some((2 << 30) + 1),
                ..Asked::default()
            },
            "memory",
        ),
        (
            Asked {
                tasks: Some(65),
                ..Asked::default()
            },
            "tasks 65",
        ),
        (
            Asked {
                runtime_secs: Some(3601),
                ..Asked::default()
            },
            "timeout 3601",
        ),
    ] {
        assert!(t.limits(asked).unwrap_err().contains(want), "{want}");
    }
}

#[test]
fn the_limit_grammar_takes_digits_and_one_unit_only() {
    assert_eq!(parse_cpu("50"), Ok(50));
    assert_eq!(parse_cpu("200%"), Ok(200));
    assert_eq!(parse_size("512M"), Ok(512 << 20));
    assert_eq!(parse_size("1073741824"), Ok(1 << 30));
    assert_eq!(parse_size("1024T"), Ok(1 << 50));
    assert_eq!(parse_tasks("5"), Ok(5));
    assert_eq!(parse_secs("3600"), Ok(3600));
    for bad in [
        "", "0", "-5", "+5", "05", " 5", "5 ", "5.5", "1e3", "infinity", "max", "1G;x", "1G\n",
        "%", "50%%", "٥",
    ] {
        assert!(parse_cpu(bad).is_err(), "cpu {bad:?}");
        assert!(parse_tasks(bad).is_err(), "tasks {bad:?}");
        assert!(parse_secs(bad).is_err(), "secs {bad:?}");
        assert!(parse_size(bad).is_err(), "size {bad:?}");
    }
    for bad in [
        "1",
        "1023K",
        "1g",
        "1KB",
        "1025T",
        "99999999999999999999",
        "18446744073709551616",
        "16384P",
        "1P",
    ] {
        assert!(parse_size(bad).is_err(), "size {bad:?}");
    }
    assert!(parse_cpu("100001").is_err());
    assert!(parse_tasks("4194305").is_err());
    assert!(parse_secs("31536001").is_err());
    assert!(parse_secs("99999999999999999999999").is_err());
}

#[test]
fn a_task_id_has_no_dash_and_no_specials() {
    for good in ["a", "job_1", "A9", &"x".repeat(64)] {
        assert!(is_valid_id(good), "{good}");
    }
    for bad in [
        "",
        "-a",
        "_a",
        "a-b",
        "a.b",
        "a b",
        "a%b",
        "a$b",
        "a\nb",
        "é",
        &"x".repeat(65),
    ] {
        assert!(!is_valid_id(bad), "{bad}");
    }
}

#[test]
fn a_task_unit_name_splits_back_one_way_only() {
    let unit = format!("{}.service", unit_base("a-task-x", 1000, "j1"));
    assert_eq!(unit, "a-task-x-task-1000-j1.service");
    assert_eq!(
        parse_unit(&unit),
        Some(("a-task-x", 1000, "j1", Kind::Service))
    );
    let scope = format!("{}.scope", unit_base("demo", 0, "x"));
    assert_eq!(parse_unit(&scope), Some(("demo", 0, "x", Kind::Scope)));
    for bad in [
        "demo-task-1000-j1",
        "demo-task-1000-j1.socket",
        "demo-task-01000-j1.service",
        "demo-task--j1.service",
        "demo-task-1000-.service",
        "demo-1000-j1.service",
        "-task-1000-j1.service",
        "demo-task-99999999999-j1.service",
        "demo@1.service",
    ] {
        assert_eq!(parse_unit(bad), None, "{bad}");
    }
}

#[test]
fn a_malformed_limit_is_shown_escaped_on_one_line() {
    for parse in [parse_cpu, parse_size, parse_tasks, parse_secs] {
        let e = parse("1\nUser=root").unwrap_err();
        assert!(!e.contains('\n') && e.contains("1\\x0aUser=root"), "{e}");
    }
}
