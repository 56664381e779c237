use super::*;
use std::os::unix::ffi::OsStringExt;

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

fn max() -> Limits {
    Limits {
        cpu_percent: 200,
        memory: 1 << 30,
        tasks: 64,
        runtime_secs: 3600,
    }
}

#[test]
fn a_run_request_in_full() {
    let req = parse_run(&os(&[
        "--env",
        "A=1",
        "--cpu",
        "50%",
        "--name",
        "job_1",
        "--memory",
        "512M",
        "--tasks",
        "5",
        "--timeout",
        "60",
        "--env",
        "B=x y",
        "--",
        "/opt/jobs/run",
        "--cpu",
        "$HOME",
        "",
    ]))
    .unwrap();
    assert_eq!(req.kind, Kind::Service);
    assert_eq!(req.id, "job_1");
    assert_eq!(
        req.asked,
        Asked {
            cpu_percent: Some(50),
            memory: Some(512 << 20),
            tasks: Some(5),
            runtime_secs: Some(60),
        }
    );
    assert_eq!(
        req.env,
        [("A".into(), "1".into()), ("B".into(), "x y".into())]
    );
    assert_eq!(req.command, "/opt/jobs/run");
    assert_eq!(req.args, ["--cpu", "$HOME", ""]);
}

#[test]
fn malformed_run_requests_are_refused_with_their_codes() {
    let cases: &[(&[&str], u8, &str)] = &[
        (
            &["--name", "a", "/bin/true"],
            64,
            "no `--` before the command",
        ),
        (&["--name", "a", "--"], 64, "no command after `--`"),
        (&["--", "/bin/true"], 64, "--name ID is required"),
        (
            &["--name", "a", "--name", "b", "--", "/x"],
            64,
            "--name given twice",
        ),
        (
            &["--scope", "--scope", "--name", "a", "--", "/x"],
            64,
            "--scope given twice",
        ),
        (
            &["--uid", "0", "--name", "a", "--", "/x"],
            64,
            "unknown option '--uid'",
        ),
        (
            &["-p", "User=root", "--name", "a", "--", "/x"],
            64,
            "unknown option '-p'",
        ),
        (&["--name"], 64, "--name without a value"),
        (&["--name", "a-b", "--", "/x"], 65, "invalid task id 'a-b'"),
        (
            &["--name", "a\nb", "--", "/x"],
            65,
            "invalid task id 'a\\x0ab'",
        ),
        (&["--name", "a%n", "--", "/x"], 65, "invalid task id"),
        (
            &["--name", "a", "--cpu", "0", "--", "/x"],
            64,
            "invalid limit",
        ),
        (
            &["--name", "a", "--cpu", "-5", "--", "/x"],
            64,
            "invalid limit",
        ),
        (
            &["--name", "a", "--memory", "1G;x", "--", "/x"],
            64,
            "invalid limit",
        ),
        (
            &["--name", "a", "--memory", "infinity", "--", "/x"],
            64,
            "invalid limit",
        ),
        (
            &[
                "--name",
                "a",
                "--tasks",
                "99999999999999999999999",
                "--",
                "/x",
            ],
            64,
            "invalid limit",
        ),
        (
            &["--name", "a", "--timeout", "1.5", "--", "/x"],
            64,
            "invalid limit",
        ),
        (
            &["--name", "a", "--env", "LD_PRELOAD=/tmp/x.so", "--", "/x"],
            65,
            "start-up hook",
        ),
        (
            &["--name", "a", "--env", "BASH_ENV=/tmp/x", "--", "/x"],
            65,
            "start-up hook",
        ),
        (
            &["--name", "a", "--env", "A=1\nUser=root", "--", "/x"],
            65,
            "control characters",
        ),
        (
            &["--name", "a", "--env", "A B=1", "--", "/x"],
            65,
            "the name must match",
        ),
        (
            &["--name", "a", "--env", "=1", "--", "/x"],
            65,
            "the name must match",
        ),
        (
            &["--name", "a", "--env", "NOEQUALS", "--", "/x"],
            65,
            "expected K=V",
        ),
    ];
    for (args, code, msg) in cases {
        let e = parse_run(&os(args)).unwrap_err();
        assert_eq!(e.exit_code(), *code, "{args:?}: {e}");
        assert!(e.to_string().contains(msg), "{args:?}: {e}");
    }
}

#[test]
fn non_utf8_and_oversized_arguments_are_refused() {
    let mut args = os(&["--name", "a", "--", "/x"]);
    args.push(OsString::from_vec(vec![0xff, b'a']));
    assert_eq!(parse_run(&args).unwrap_err().exit_code(), 65);
    let mut args = os(&["--name", "a", "--", "/x"]);
    args.push(OsString::from("x".repeat(MAX_ARG_BYTES + 1)));
    assert_eq!(parse_run(&args).unwrap_err().exit_code(), 65);
    let mut args = os(&["--name", "a", "--", "/x"]);
    args.extend((0..=MAX_ARGS).map(|_| OsString::from("a")));
    assert_eq!(parse_run(&args).unwrap_err().exit_code(), 65);
    let mut args = os(&["--name", "a"]);
    for i in 0..=MAX_ENV {
        args.extend(os(&["--env", &format!("K{i}=v")]));
    }
    args.extend(os(&["--", "/x"]));
    assert_eq!(parse_run(&args).unwrap_err().exit_code(), 65);
}

#[test]
fn a_service_task_argv_is_fixed_but_for_checked_values() {
    let req = parse_run(&os(&[
        "--name",
        "j1",
        "--env",
        "K=v w",
        "--",
        "/opt/jobs/run",
        "$HOME",
        "a%nb",
        "x\ny",
    ]))
    .unwrap();
    let s = start_argv("demo", 1000, &req, &max());
    assert_eq!(s.base, "demo-task-1000-j1");
    assert_eq!(s.unit, "demo-task-1000-j1.service");
    let line = s.argv.join(" ");
    assert!(
        line.starts_with(
            "systemd-run --no-ask-password --quiet --unit=demo-task-1000-j1.service \
         --slice=unitgate-tasks.slice --uid=1000 --collect --service-type=exec \
         --property=CPUQuota=200% --property=MemoryMax=1073741824 --property=MemorySwapMax=0 \
         --property=TasksMax=64 --property=RuntimeMaxSec=3600"
        ),
        "{line}"
    );
    assert!(line.contains("--property=NoNewPrivileges=yes"), "{line}");
    let tail = s.argv.iter().position(|a| a == "--").unwrap();
    assert_eq!(s.argv[tail - 1], "--setenv=K=v w");
    assert_eq!(
        s.argv[tail + 1..],
        ["/opt/jobs/run", "$$HOME", "a%nb", "x\ny"]
    );
    // Nothing but our own options before `--`.
    for a in &s.argv[1..tail] {
        assert!(a.starts_with("--"), "{a}");
    }
}

#[test]
fn a_scope_task_keeps_its_arguments_and_takes_no_exec_settings() {
    let req = parse_run(&os(&["--scope", "--name", "w", "--", "/x", "$HOME"])).unwrap();
    let s = start_argv("demo", 1000, &req, &max());
    assert_eq!(s.unit, "demo-task-1000-w.scope");
    assert!(s.argv.contains(&"--scope".to_owned()));
    assert!(s.argv.contains(&"--collect".to_owned()));
    assert!(s.argv.contains(&"--property=TimeoutStopSec=10".to_owned()));
    assert!(!s.argv.iter().any(|a| a.contains("NoNewPrivileges")));
    assert_eq!(s.argv[s.argv.len() - 2..], ["/x", "$HOME"]);
}

#[test]
fn kill_takes_task_ids_only() {
    assert_eq!(parse_kill(&os(&["a", "b", "a"])).unwrap(), ["a", "b"]);
    assert_eq!(parse_kill(&[]).unwrap_err().exit_code(), 64);
    for bad in ["a-b", "../x", "x.service", "*", ""] {
        assert_eq!(
            parse_kill(&os(&[bad])).unwrap_err().exit_code(),
            65,
            "{bad}"
        );
    }
}

#[test]
fn the_arguments_and_the_environment_are_bounded_in_total() {
    // Each argument within its own limit, all of them together not.
    let mut args = os(&["--name", "a", "--", "/x"]);
    args.extend((0..40).map(|_| OsString::from("$".repeat(2048))));
    let Err(e) = parse_run(&args) else {
        panic!("accepted")
    };
    assert!(e.to_string().contains("more than 131072 bytes"), "{e}");
    let mut args = os(&["--name", "a"]);
    for i in 0..20 {
        args.extend([
            OsString::from("--env"),
            OsString::from(format!("K{i}={}", "é".repeat(2000))),
        ]);
    }
    args.extend(os(&["--", "/x"]));
    let Err(e) = parse_run(&args) else {
        panic!("accepted")
    };
    assert!(e.to_string().contains("more than 65536 bytes"), "{e}");
    // Just under both: accepted.
    let mut args = os(&["--name", "a"]);
    for i in 0..15 {
        args.extend([
            OsString::from("--env"),
            OsString::from(format!("K{i}={}", "é".repeat(2000))),
        ]);
    }
    args.extend(os(&["--", "/x"]));
    args.extend((0..31).map(|_| OsString::from("é".repeat(2048))));
    assert!(parse_run(&args).err().map(|e| e.to_string()).is_none());
}
