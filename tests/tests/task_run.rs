//! Tasks through the helper (`run`, `kill`), through real `sudo` in a real
//! systemd: a task runs as its caller with the limits asked (or the
//! policy's maxima), in the tasks slice, with its arguments byte for byte;
//! `kill` stops only the caller's own tasks; `max_running` holds against
//! concurrent calls; a scope is the caller's child and dies with it; and
//! every hostile request is refused with no unit created.

use unitgate_tests::fixture::{
    audit_lines, demo_machine, show, sudo_helper, sudo_helper_str, wait_until, wait_until_showing,
    CLI, DEMO_POLICY, HELPER, POLICY_PATH,
};
use unitgate_tests::Machine;

const USAGE: i32 = 64;
const BAD_NAME: i32 = 65;
const BUSY: i32 = 75;
const NO_PERM: i32 = 77;

/// The tasks slice's cgroup (the test bed's hierarchy is unified).
const SLICE: &str = "/sys/fs/cgroup/unitgate.slice/unitgate-tasks.slice";
const JOBS: &str = "/usr/local/lib/tasktest";

/// The demo machine, its policy with a `[tasks]` table, and the programs
/// tasks may run: `sleeper SECS`, `report FILE ARG...` (writes its uid,
/// groups, `FOO` and arguments to FILE), `fail CODE`.
fn task_machine(label: &str) -> Machine {
    let m = demo_machine(label);
    let policy = format!(
        "{DEMO_POLICY}\n[tasks]\ncommands = [\"{JOBS}/\"]\nmax_cpu_percent = 150\n\
         max_memory = \"256M\"\nmax_tasks = 32\nmax_runtime_secs = 600\nmax_running = 2\n"
    );
    m.write_file(POLICY_PATH, policy.as_bytes(), 0o644);
    m.write_file(
        &format!("{JOBS}/sleeper"),
        b"#!/bin/sh\nexec sleep \"$1\"\n",
        0o755,
    );
    m.write_file(
        &format!("{JOBS}/report"),
        b"#!/bin/sh\nout=$1; shift\n{ id -u; id -G | tr ' ' '\\n' | sort -n | tr '\\n' ' '; echo; \
          printf '%s\\n' \"FOO=$FOO\"; for a in \"$@\"; do printf '<%s>\\n' \"$a\"; done; } \
          > \"$out\"\n",
        0o755,
    );
    m.write_file(&format!("{JOBS}/fail"), b"#!/bin/sh\nexit \"$1\"\n", 0o755);
    m.sh("install -d -o ops -m 0755 /srv/out").ok();
    // What a service account could plant if a listed directory were its
    // own, and a link out of the list.
    m.sh(&format!(
        "install -d -o ops -m 0755 {JOBS}/mine && cp {JOBS}/sleeper {JOBS}/mine/ && \
         chown ops {JOBS}/mine/sleeper && ln -s /bin/sleep {JOBS}/link"
    ))
    .ok();
    m
}

/// `user`'s groups as `report` writes them: ids sorted, space-separated.
fn groups_of(m: &Machine, user: &str) -> String {
    let cmd = format!("id -G {user} | tr ' ' '\\n' | sort -n | tr '\\n' ' '; echo");
    m.sh(&cmd).ok().stdout
}

fn uid_of(m: &Machine, user: &str) -> String {
    m.sh(&format!("id -u {user}")).ok().stdout.trim().to_owned()
}

/// The task units of app demo in the slice's cgroup, sorted.
fn running(m: &Machine) -> Vec<String> {
    let out = m.sh(&format!(
        "ls -1 {SLICE} 2>/dev/null | grep '^demo-task-' | sort"
    ));
    out.stdout.lines().map(str::to_owned).collect()
}

/// Every task unit systemd has loaded, in any state.
fn loaded_tasks(m: &Machine) -> String {
    m.sh("systemctl list-units --all --plain --no-legend --no-pager 'demo-task-*'")
        .ok()
        .stdout
}

#[test]
fn a_task_runs_as_its_caller_with_its_limits_and_its_arguments_intact() {
    let m = task_machine("task-run");
    let uid = uid_of(&m, "ops");
    let unit = format!("demo-task-{uid}-j1.service");
    let out = sudo_helper_str(
        &m,
        "ops",
        &[
            "demo",
            "run",
            "--name",
            "j1",
            "--cpu",
            "50",
            "--memory",
            "64M",
            "--tasks",
            "8",
            "--timeout",
            "120",
            "--",
            &format!("{JOBS}/sleeper"),
            "300",
        ],
    );
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(running(&m), std::slice::from_ref(&unit));
    let pid = show(&m, &unit, "MainPID");
    let ids = m.sh(&format!("ps -o uid=,gid= -p {pid}")).ok().stdout;
    let gid = m.sh("id -g ops").ok().stdout;
    assert_eq!(
        ids.split_whitespace().collect::<Vec<_>>(),
        [uid.as_str(), gid.trim()],
        "the task's uid and gid are the caller's"
    );
    let groups = m
        .sh(&format!("grep ^Groups: /proc/{pid}/status"))
        .ok()
        .stdout;
    assert!(!groups.split_whitespace().any(|g| g == "0"), "{groups}");
    for (prop, want) in [
        ("CPUQuotaPerSecUSec", "500ms"),
        ("MemoryMax", "67108864"),
        ("MemorySwapMax", "0"),
        ("TasksMax", "8"),
        ("RuntimeMaxUSec", "2min"),
        ("NoNewPrivileges", "yes"),
        ("PrivateTmp", "yes"),
        ("Slice", "unitgate-tasks.slice"),
    ] {
        assert_eq!(show(&m, &unit, prop), want, "{prop}");
    }
    let last = audit_lines(&m).pop().unwrap();
    for part in [
        "caller=ops",
        "action=run",
        "instances=j1",
        &format!("task={unit}"),
        "mode=service",
        "cpu=50%",
        "memory=67108864",
        "tasks=8",
        "timeout=120",
        &format!("command={JOBS}/sleeper"),
        "verdict=accepted",
    ] {
        assert!(last.contains(part), "{part} in {last}");
    }

    // Limits not asked for are the policy's maxima.
    let out = sudo_helper_str(
        &m,
        "ops",
        &[
            "demo",
            "run",
            "--name",
            "j2",
            "--",
            &format!("{JOBS}/sleeper"),
            "300",
        ],
    );
    assert_eq!(out.code, 0, "{out}");
    let unit2 = format!("demo-task-{uid}-j2.service");
    assert_eq!(show(&m, &unit2, "CPUQuotaPerSecUSec"), "1.500000s");
    assert_eq!(show(&m, &unit2, "MemoryMax"), "268435456");
    assert_eq!(show(&m, &unit2, "TasksMax"), "32");
    assert_eq!(show(&m, &unit2, "RuntimeMaxUSec"), "10min");

    // Another caller of the same app cannot even name ops's task.
    let out = sudo_helper_str(&m, "grouped", &["demo", "kill", "j1"]);
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stderr.contains("no such task"), "{out}");
    assert_eq!(running(&m).len(), 2);
    // Its owner can stop it.
    let out = sudo_helper_str(&m, "ops", &["demo", "kill", "j1", "j2"]);
    assert_eq!(out.code, 0, "{out}");
    wait_until(
        &m,
        "both tasks gone",
        &format!("! ls {SLICE} | grep -q demo-task-"),
        30,
    );
    assert_eq!(loaded_tasks(&m), "", "a stopped task leaves no unit behind");

    // The largest arguments allowed survive a daemon-reload: PID 1 reads
    // the task's transient file back, every setting intact.
    let big = "é".repeat(2000);
    let mut argv = vec!["demo", "run", "--name", "big", "--timeout", "300", "--"];
    let sleeper = format!("{JOBS}/sleeper");
    argv.extend([sleeper.as_str(), "300"]);
    argv.extend(std::iter::repeat_n(big.as_str(), 32));
    let out = sudo_helper_str(&m, "ops", &argv);
    assert_eq!(out.code, 0, "{}", out.stderr);
    m.sh("systemctl daemon-reload").ok();
    let big_unit = format!("demo-task-{uid}-big.service");
    assert_eq!(show(&m, &big_unit, "LoadState"), "loaded");
    assert_eq!(show(&m, &big_unit, "RuntimeMaxUSec"), "5min");
    assert_eq!(show(&m, &big_unit, "ActiveState"), "active");
    sudo_helper_str(&m, "ops", &["demo", "kill", "big"]).ok();

    // Arguments and environment arrive byte for byte: no `$` expansion, no
    // `%` specifier, newlines and option-like words kept.
    let args = [
        "$HOME",
        "${FOO}",
        "a%nb",
        "x\ny",
        "--uid=0",
        "-p",
        "User=root",
        ";id",
        "",
    ];
    let mut argv = vec![
        "demo",
        "run",
        "--name",
        "r1",
        "--env",
        "FOO=$bar %i",
        "--",
        "/usr/local/lib/tasktest/report",
        "/srv/out/r1",
    ];
    argv.extend(args);
    let out = sudo_helper_str(&m, "ops", &argv);
    assert_eq!(out.code, 0, "{out}");
    wait_until(&m, "the report", "[ -s /srv/out/r1 ]", 30);
    wait_until(
        &m,
        "the report task's end",
        &format!("! ls {SLICE} | grep -q r1"),
        30,
    );
    let report = m.sh("cat /srv/out/r1").ok().stdout;
    let mut want = format!("{uid}\n");
    want.push_str(&groups_of(&m, "ops"));
    want.push_str("FOO=$bar %i\n");
    for a in args {
        want.push_str(&format!("<{a}>\n"));
    }
    assert_eq!(report, want);
}

#[test]
fn timeout_ends_a_task_and_max_running_holds_under_concurrent_calls() {
    let m = task_machine("task-limits");
    // --timeout: a 300 s sleeper asked to end after 1 s is gone in seconds.
    let out = sudo_helper_str(
        &m,
        "ops",
        &[
            "demo",
            "run",
            "--name",
            "t1",
            "--timeout",
            "1",
            "--",
            &format!("{JOBS}/sleeper"),
            "300",
        ],
    );
    assert_eq!(out.code, 0, "{out}");
    wait_until(
        &m,
        "the timed-out task's end",
        &format!("! ls {SLICE} | grep -q t1"),
        30,
    );
    let journal = m
        .sh("journalctl --no-pager -o cat -u 'demo-task-*-t1.service'")
        .stdout;
    assert!(journal.contains("timeout"), "{journal}");

    // Six calls at once, max_running = 2: exactly two start, the others
    // are refused as busy (75) and leave nothing behind.
    let script = format!(
        "for i in 1 2 3 4 5 6; do \
           (su -s /bin/sh ops -c \"sudo -n {HELPER} demo run --name c$i -- {JOBS}/sleeper 300\" \
              >/dev/null 2>&1; echo $?) & \
         done; wait"
    );
    let codes = m.sh(&script).ok().stdout;
    let mut codes: Vec<i32> = codes.lines().map(|l| l.trim().parse().unwrap()).collect();
    codes.sort_unstable();
    assert_eq!(codes, [0, 0, BUSY, BUSY, BUSY, BUSY], "exit codes");
    assert_eq!(running(&m).len(), 2, "{:?}", running(&m));
    let loaded = loaded_tasks(&m);
    assert_eq!(loaded.lines().count(), 2, "{loaded}");
    let out = sudo_helper_str(
        &m,
        "ops",
        &[
            "demo",
            "run",
            "--name",
            "c7",
            "--",
            &format!("{JOBS}/sleeper"),
            "1",
        ],
    );
    assert_eq!(out.code, BUSY, "{out}");
    assert!(out.stderr.contains("at most 2 tasks at once"), "{out}");
}

#[test]
fn a_scope_is_the_callers_child_with_its_exit_status_and_dies_with_it() {
    let m = task_machine("task-scope");
    let uid = uid_of(&m, "ops");
    // The exit status comes back; the scope is gone after.
    let out = sudo_helper_str(
        &m,
        "ops",
        &[
            "demo",
            "run",
            "--scope",
            "--name",
            "f1",
            "--",
            &format!("{JOBS}/fail"),
            "3",
        ],
    );
    assert_eq!(out.code, 3, "{out}");
    wait_until(
        &m,
        "the scope's end",
        &format!("! ls {SLICE} | grep -q f1"),
        30,
    );

    // As the caller, with the caller's groups (not root's), in its scope.
    let out = sudo_helper_str(
        &m,
        "ops",
        &[
            "demo", "run", "--scope", "--memory", "32M", "--name", "w1", "--", "/bin/sh", "-c", "x",
        ],
    );
    assert_eq!(out.code, NO_PERM, "only listed commands: {out}");
    let out = sudo_helper_str(
        &m,
        "ops",
        &[
            "demo",
            "run",
            "--scope",
            "--name",
            "w1",
            "--",
            &format!("{JOBS}/report"),
            "/srv/out/w1",
            "$HOME",
        ],
    );
    assert_eq!(out.code, 0, "{out}");
    let report = m.sh("cat /srv/out/w1").ok().stdout;
    let groups = groups_of(&m, "ops");
    assert_eq!(report, format!("{uid}\n{groups}FOO=\n<$HOME>\n"));

    // A scope that ran out of time is gone, unit and all.
    let out = sudo_helper_str(
        &m,
        "ops",
        &[
            "demo",
            "run",
            "--scope",
            "--timeout",
            "1",
            "--name",
            "t1",
            "--",
            &format!("{JOBS}/sleeper"),
            "300",
        ],
    );
    assert_ne!(out.code, 0, "{out}");
    wait_until(
        &m,
        "the timed-out scope's end",
        &format!("! ls {SLICE} | grep -q t1"),
        30,
    );
    assert_eq!(loaded_tasks(&m), "", "no failed scope stays loaded");

    // One id, one task: a service of id d1 runs, so no scope may take d1.
    let out = sudo_helper_str(
        &m,
        "ops",
        &[
            "demo",
            "run",
            "--name",
            "d1",
            "--",
            &format!("{JOBS}/sleeper"),
            "300",
        ],
    );
    assert_eq!(out.code, 0, "{out}");
    let out = sudo_helper_str(
        &m,
        "ops",
        &[
            "demo",
            "run",
            "--scope",
            "--name",
            "d1",
            "--",
            &format!("{JOBS}/sleeper"),
            "1",
        ],
    );
    assert_eq!(out.code, 73, "{out}");
    assert!(out.stderr.contains("is running already"), "{out}");
    sudo_helper_str(&m, "ops", &["demo", "kill", "d1"]).ok();
    wait_until(&m, "d1's end", &format!("! ls {SLICE} | grep -q d1"), 30);

    // Its parent's end is its end: a scope started by a caller's shell in
    // the background, the caller's sudo told to stop, the task follows.
    let unit = format!("demo-task-{uid}-s1.scope");
    m.sh(&format!(
        "su -s /bin/sh ops -c 'sudo -n {HELPER} demo run --scope --name s1 -- {JOBS}/sleeper 300 \
           </dev/null >/dev/null 2>&1 & echo $! > /srv/out/sudo.pid'"
    ))
    .ok();
    wait_until(&m, "the scope", &format!("[ -d {SLICE}/{unit} ]"), 30);
    assert_eq!(show(&m, &unit, "RuntimeMaxUSec"), "10min");
    let pids = m
        .sh(&format!("cat {SLICE}/{unit}/cgroup.procs"))
        .ok()
        .stdout;
    let pid = pids.lines().next().expect("a process in the scope");
    let uid_in = m.sh(&format!("ps -o uid= -p {pid}")).ok().stdout;
    assert_eq!(uid_in.trim(), uid);
    // Nothing of the helper's (its lock, the audit socket) reaches the task.
    let fds = m
        .sh(&format!("ls /proc/{pid}/fd | sort -n | tr '\\n' ' '"))
        .ok()
        .stdout;
    assert_eq!(fds, "0 1 2 ", "the task's descriptors");
    // What a caller's supervisor does to end its child: SIGTERM to sudo,
    // which relays it to the helper, which passes it on to the task.
    m.sh("kill -TERM $(cat /srv/out/sudo.pid)").ok();
    wait_until(
        &m,
        "the scope's end",
        &format!("[ ! -d {SLICE}/{unit} ]"),
        30,
    );
}

#[test]
fn hostile_task_requests_are_refused_and_create_no_unit() {
    let m = task_machine("task-hostile");
    let job = format!("{JOBS}/sleeper");
    let cases: Vec<(&str, &str, Vec<String>, i32)> = vec![
        (
            "run as root via --uid",
            "ops",
            vec!["--uid".into(), "0".into()],
            USAGE,
        ),
        (
            "a property",
            "ops",
            vec!["-p".into(), "User=root".into()],
            USAGE,
        ),
        (
            "--property",
            "ops",
            vec!["--property=User=root".into()],
            USAGE,
        ),
        ("--setenv", "ops", vec!["--setenv=A=1".into()], USAGE),
        ("id with a dash", "ops", vec!["--name=x".into()], USAGE),
        ("cpu 0", "ops", vec!["--cpu".into(), "0".into()], USAGE),
        (
            "cpu negative",
            "ops",
            vec!["--cpu".into(), "-5".into()],
            USAGE,
        ),
        (
            "cpu above max",
            "ops",
            vec!["--cpu".into(), "151".into()],
            NO_PERM,
        ),
        (
            "memory smuggling",
            "ops",
            vec!["--memory".into(), "1G;x".into()],
            USAGE,
        ),
        (
            "memory infinity",
            "ops",
            vec!["--memory".into(), "infinity".into()],
            USAGE,
        ),
        (
            "memory above max",
            "ops",
            vec!["--memory".into(), "257M".into()],
            NO_PERM,
        ),
        (
            "memory huge",
            "ops",
            vec!["--memory".into(), "99999999999T".into()],
            USAGE,
        ),
        (
            "tasks above max",
            "ops",
            vec!["--tasks".into(), "33".into()],
            NO_PERM,
        ),
        (
            "timeout above max",
            "ops",
            vec!["--timeout".into(), "601".into()],
            NO_PERM,
        ),
        (
            "env newline",
            "ops",
            vec!["--env".into(), "A=1\nUser=root".into()],
            BAD_NAME,
        ),
        (
            "env loader hook",
            "ops",
            vec!["--env".into(), "LD_PRELOAD=/srv/out/x.so".into()],
            BAD_NAME,
        ),
    ];
    let before = loaded_tasks(&m);
    for (what, user, opts, code) in &cases {
        let name = "h1".to_owned();
        let mut argv: Vec<String> = vec!["demo".into(), "run".into()];
        argv.extend(opts.iter().cloned());
        argv.extend([
            "--name".into(),
            name,
            "--".into(),
            job.clone(),
            "300".into(),
        ]);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let out = sudo_helper_str(&m, user, &argv);
        assert_eq!(out.code, *code, "{what}: {out}");
        let lines = out
            .stderr
            .lines()
            .filter(|l| l.starts_with("unitgate-systemctl:"));
        assert_eq!(lines.count(), 1, "{what}: one message: {out}");
    }
    let commands: &[(&str, &str, i32)] = &[
        (
            "relative command",
            "usr/local/lib/tasktest/sleeper",
            NO_PERM,
        ),
        ("command outside the list", "/bin/sh", NO_PERM),
        (
            "dot-dot out of the list",
            "/usr/local/lib/tasktest/../../../../bin/sh",
            NO_PERM,
        ),
        ("double slash", "/usr/local/lib/tasktest//sleeper", NO_PERM),
        (
            "the listed directory itself",
            "/usr/local/lib/tasktest/",
            NO_PERM,
        ),
        (
            "dollar in the command",
            "/usr/local/lib/tasktest/$x",
            NO_PERM,
        ),
        (
            "percent in the command",
            "/usr/local/lib/tasktest/%n",
            NO_PERM,
        ),
    ];
    for (what, command, code) in commands {
        let out = sudo_helper_str(&m, "ops", &["demo", "run", "--name", "h2", "--", command]);
        assert_eq!(out.code, *code, "{what}: {out}");
    }
    let ids: &[&str] = &["a-b", "a\nb", "a%n", "a$b", "../x", "x.service", ""];
    for id in ids {
        let out = sudo_helper_str(&m, "ops", &["demo", "run", "--name", id, "--", &job, "1"]);
        assert_eq!(out.code, BAD_NAME, "id {id:?}: {out}");
        let out = sudo_helper_str(&m, "ops", &["demo", "kill", id]);
        assert_eq!(out.code, BAD_NAME, "kill id {id:?}: {out}");
    }
    let bad_utf8 = std::ffi::OsStr::new(unsafe_free_bytes());
    let out = sudo_helper(
        &m,
        "ops",
        &[
            "demo".as_ref(),
            "run".as_ref(),
            "--name".as_ref(),
            "u".as_ref(),
            "--".as_ref(),
            job.as_ref(),
            bad_utf8,
        ],
    );
    assert!(
        out.code == BAD_NAME || out.code == 101,
        "non-UTF-8 argument: {out}"
    );
    // Callers: one the policy does not list, and root itself.
    let out = sudo_helper_str(
        &m,
        "outsider",
        &["demo", "run", "--name", "o1", "--", &job, "1"],
    );
    assert_eq!(out.code, NO_PERM, "{out}");
    let out = m.sh(&format!("sudo -n {HELPER} demo run --name r1 -- {job} 1"));
    assert_eq!(out.code, NO_PERM, "{out}");
    assert!(out.stderr.contains("the caller is root"), "{out}");
    // An app without [tasks].
    m.write_file(
        "/etc/unitgate/apps/plain.toml",
        DEMO_POLICY
            .replace("demo@.service", "plain@.service")
            .as_bytes(),
        0o644,
    );
    let out = sudo_helper_str(
        &m,
        "ops",
        &["plain", "run", "--name", "p1", "--", &job, "1"],
    );
    assert_eq!(out.code, NO_PERM, "{out}");
    assert!(out.stderr.contains("runs no tasks"), "{out}");

    assert_eq!(loaded_tasks(&m), before, "no unit was created");
    assert_eq!(running(&m), Vec::<String>::new());
    let refused = audit_lines(&m)
        .iter()
        .filter(|l| l.contains("action=run") && l.contains("verdict=refused"))
        .count();
    assert!(refused >= 30, "every refusal audited ({refused})");
}

/// A non-UTF-8 argument (an invalid byte in an otherwise plain word).
fn unsafe_free_bytes() -> &'static std::ffi::OsStr {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::OsStr::from_bytes(b"x\xffy")
}

/// `unitgate --app demo ARGS...` as `user`.
fn cli(m: &Machine, user: &str, args: &[&str]) -> unitgate_tests::Output {
    let mut argv: Vec<&std::ffi::OsStr> = vec![CLI.as_ref(), "--app".as_ref(), "demo".as_ref()];
    argv.extend(args.iter().map(std::ffi::OsStr::new));
    m.exec_as(user, &argv)
}

#[test]
fn the_cli_runs_waits_for_lists_and_kills_tasks() {
    let m = task_machine("task-cli");
    m.sh("usermod -aG systemd-journal ops").ok();
    m.write_file(
        &format!("{JOBS}/echoer"),
        b"#!/bin/sh\necho \"hello from $1\"\nexit \"$2\"\n",
        0o755,
    );
    let echoer = format!("{JOBS}/echoer");
    let sleeper = format!("{JOBS}/sleeper");

    // Waits, and exits with the task's status; says so on one line.
    let out = cli(
        &m,
        "ops",
        &["run", "--name", "e3", "--", &echoer, "e3", "3"],
    );
    assert_eq!(out.code, 3, "{out}");
    assert!(out.stderr.contains("task e3 exited with status 3"), "{out}");
    assert_eq!(out.stderr.lines().count(), 1, "{out}");
    let out = cli(
        &m,
        "ops",
        &["--json", "run", "--name", "e0", "--", &echoer, "e0", "0"],
    );
    assert_eq!(out.code, 0, "{out}");
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect(&out.stdout);
    assert_eq!(doc["task"], "e0");
    assert_eq!(doc["result"], "success");
    assert_eq!(doc["exit_status"], 0);
    // Its output is in its journal, for its owner.
    wait_until(
        &m,
        "the task's journal",
        "journalctl -o cat -u 'demo-task-*-e0.*' | grep -q 'hello from e0'",
        30,
    );
    let logs = cli(&m, "ops", &["logs", "--task", "e0"]);
    assert!(logs.stdout.contains("hello from e0"), "{logs}");

    // --timeout: 124, as timeout(1).
    let out = cli(&m, "ops", &["run", "--timeout", "1", "--", &sleeper, "300"]);
    assert_eq!(out.code, 124, "{out}");
    assert!(out.stderr.contains("--timeout"), "{out}");

    // --detach prints the id at once; `tasks` lists it with its limits;
    // `kill` stops it.
    let out = cli(
        &m,
        "ops",
        &[
            "run", "--detach", "--memory", "64M", "--cpu", "25", "--", &sleeper, "300",
        ],
    );
    assert_eq!(out.code, 0, "{out}");
    let id = out.stdout.trim().to_owned();
    assert!(
        id.starts_with('t') && !id.contains(char::is_whitespace),
        "{out}"
    );
    let out = cli(&m, "ops", &["--json", "tasks"]);
    assert_eq!(out.code, 0, "{out}");
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect(&out.stdout);
    let tasks = doc["tasks"].as_array().expect("tasks");
    assert_eq!(tasks.len(), 1, "{doc}");
    let t = &tasks[0];
    assert_eq!(t["task"], id.as_str());
    assert_eq!(t["kind"], "service");
    assert_eq!(t["active_state"], "active");
    assert_eq!(t["memory_max"], 64 << 20);
    assert_eq!(t["cpu_quota_percent"], 25);
    assert_eq!(t["tasks_max"], 32);
    assert_eq!(t["runtime_max_secs"], 600);
    // Another caller sees none of ops's tasks.
    let other = cli(&m, "grouped", &["--json", "tasks"]);
    assert_eq!(other.code, 0, "{other}");
    assert!(other.stdout.contains("\"tasks\": []"), "{other}");
    let out = cli(&m, "ops", &["kill", &id]);
    assert_eq!(out.code, 0, "{out}");
    wait_until(
        &m,
        "the killed task's end",
        &format!("! ls {SLICE} | grep -q {id}"),
        30,
    );
    let out = cli(&m, "ops", &["--json", "tasks"]);
    assert!(out.stdout.contains("\"tasks\": []"), "{out}");

    // A refusal is the helper's, with its code, and nothing runs.
    let out = cli(&m, "ops", &["run", "--", "/bin/sh", "-c", "id"]);
    assert_eq!(out.code, NO_PERM, "{out}");
    assert!(out.stderr.contains("the helper refused"), "{out}");
    let out = cli(&m, "ops", &["run", "--memory", "1G;x", "--", &sleeper, "1"]);
    assert_eq!(out.code, USAGE, "{out}");
    let out = cli(&m, "ops", &["run", "--name", "a-b", "--", &sleeper, "1"]);
    assert_eq!(out.code, BAD_NAME, "{out}");

    // --scope: our stdio, our status, and our end is its end.
    let out = cli(&m, "ops", &["run", "--scope", "--", &echoer, "scope", "5"]);
    assert_eq!(out.code, 5, "{out}");
    assert_eq!(out.stdout, "hello from scope\n");
    let uid = uid_of(&m, "ops");
    let unit = format!("demo-task-{uid}-w9.scope");
    // A supervisor that stays: the command's parent waits for it.
    let supervised = |name: &str| {
        format!(
            "setsid sh -c \"su -s /bin/sh ops -c '{CLI} --app demo run --scope --name {name} \
               -- {sleeper} 300 </dev/null >/dev/null 2>&1 & echo \\$! > /srv/out/{name}.pid; \
               wait'\" </dev/null >/dev/null 2>&1 9>&- &"
        )
    };
    m.sh(&supervised("w9")).ok();
    wait_until(&m, "the scope", &format!("[ -d {SLICE}/{unit} ]"), 30);
    // What a supervisor does: SIGTERM to the command it started. The task
    // ends, and so does the command.
    m.sh("kill -TERM $(cat /srv/out/w9.pid)").ok();
    wait_until(
        &m,
        "the scope's end",
        &format!("[ ! -d {SLICE}/{unit} ]"),
        30,
    );
    wait_until(
        &m,
        "the command's end",
        "! kill -0 $(cat /srv/out/w9.pid)",
        30,
    );
    assert_eq!(loaded_tasks(&m), "");

    // Told to stop before its scope exists (here: while the helper waits
    // for the app's task lock, which root holds), it stops the task once
    // it starts, and ends.
    let out = cli(
        &m,
        "ops",
        &["--json", "run", "--scope", "--", &sleeper, "1"],
    );
    assert_eq!(out.code, USAGE, "--json with --scope: {out}");
    let early = format!("demo-task-{uid}-early.scope");
    let script = format!(
        "exec 9>/run/unitgate/locks/demo/tasks && flock 9 && {start} \
         until pgrep -f '[u]nitgate-systemctl --wait 30 demo run --scope --name early' >/dev/null; \
           do sleep 0.05; done; \
         kill -TERM $(cat /srv/out/early.pid); sleep 1",
        start = supervised("early"),
    );
    m.sh(&script).ok();
    // The lock is free again (the shell above ended): the helper starts
    // the scope, the command stops it and ends.
    // (Seen once in many runs: the command ended, its scope did not.)
    let diagnose = format!(
        "ps -eo pid,ppid,pgid,stat,etime,args; cat {SLICE}/{early}/cgroup.procs; \
         systemctl status --no-pager {early}; journalctl --no-pager -n 60"
    );
    wait_until_showing(
        &m,
        "the early command's end",
        "! kill -0 $(cat /srv/out/early.pid)",
        60,
        &diagnose,
    );
    wait_until_showing(
        &m,
        "no early scope",
        &format!("[ ! -d {SLICE}/{early} ]"),
        30,
        &diagnose,
    );
    assert_eq!(loaded_tasks(&m), "");

    // A waiting run whose task is killed says so: 128 + SIGTERM, even
    // though systemd counts that end a success. (Killed once it runs: a
    // stop while its start job is still on makes systemd cancel the start,
    // and `run` fails as the start did, 1.)
    let script = format!(
        "su -s /bin/sh ops -c '{CLI} --app demo run --name k1 -- {sleeper} 300; \
           echo rc=$? > /srv/out/k1.rc' </dev/null >/dev/null 2>/srv/out/k1.err &
         until [ \"$(systemctl show -P SubState demo-task-{uid}-k1.service)\" = running ]; do sleep 0.05; done
         su -s /bin/sh ops -c '{CLI} --app demo kill k1'
         wait"
    );
    m.sh(&script).ok();
    let err = m.sh("cat /srv/out/k1.err").stdout;
    assert_eq!(m.sh("cat /srv/out/k1.rc").stdout.trim(), "rc=143", "{err}");
}

#[test]
fn a_waiting_run_reports_its_task_while_others_ask_systemd_about_it() {
    // `systemctl show` of a name no unit has yet makes systemd load a
    // placeholder for it and drop it again, each announced on the bus; a
    // waiting run must not take that drop for its task's end (it did, and
    // said it had lost track of the task, 1). Programs that fail at once
    // also end before their start job can, and systemd-run reports a
    // failed start (1): the run reports the program's own status.
    let m = task_machine("task-asked");
    let uid = uid_of(&m, "ops");
    let script = format!(
        "( while :; do for i in 1 2 3 4 5 6 7 8; do \
             systemctl show -P ActiveState demo-task-{uid}-p$i.service >/dev/null; done; done ) &
         poller=$!
         for i in 1 2 3 4 5 6 7 8; do
           if [ $((i % 2)) = 0 ]; then job='{JOBS}/fail 5'; else job='{JOBS}/sleeper 0.3'; fi
           su -s /bin/sh ops -c \"{CLI} --app demo run --name p$i -- $job\" </dev/null >/dev/null 2>/srv/out/p$i.err
           echo \"p$i rc=$? $(cat /srv/out/p$i.err)\" | sed 's/ *$//'
         done
         kill $poller"
    );
    let out = m.sh(&script).ok();
    let expected: String = (1..=8)
        .map(|i| format!("p{i} rc={}\n", if i % 2 == 0 { 5 } else { 0 }))
        .collect();
    let mut got = String::new();
    for line in out.stdout.lines() {
        let mut words = line.splitn(3, ' ');
        let (name, rc) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        got += &format!("{name} {rc}\n");
        // A failed run says why, in one line.
        let err = words.next().unwrap_or("");
        assert!(
            err.is_empty() || err.contains("exited with status 5"),
            "{line}"
        );
    }
    assert_eq!(got, expected, "{out}");
    assert_eq!(loaded_tasks(&m), "");

    // A program the kernel cannot execute fails its start every time:
    // systemd records 203 (EXEC) as its status, and the run says so.
    m.write_file(
        &format!("{JOBS}/noexec"),
        b"#!/nonexistent/interpreter\n",
        0o755,
    );
    let out = cli(
        &m,
        "ops",
        &["run", "--name", "x1", "--", &format!("{JOBS}/noexec")],
    );
    assert_eq!(out.code, 203, "{out}");
    assert!(
        out.stderr.contains("task x1 exited with status 203"),
        "{out}"
    );
    assert_eq!(loaded_tasks(&m), "");
}

#[test]
fn a_waiting_run_outlives_a_daemon_reload_during_its_task() {
    // A daemon-reload frees every unit and builds it again from what it
    // serialised, and announces each as removed on the bus: the CLI took
    // that for its task's end and said it had lost track of it (1) while
    // the task ran on (a deferred reload on the VM tier did this).
    let m = task_machine("task-reload");
    let uid = uid_of(&m, "ops");
    m.write_file(
        &format!("{JOBS}/waitfile"),
        b"#!/bin/sh\nwhile [ ! -e \"$1\" ]; do sleep 0.05; done\nexit 7\n",
        0o755,
    );
    let script = format!(
        "su -s /bin/sh ops -c '{CLI} --app demo run --name r1 -- {JOBS}/waitfile /srv/out/go' \
             </dev/null >/dev/null 2>/srv/out/r1.err &
         run=$!
         deadline=$(( $(date +%s) + 60 ))
         until systemctl is-active --quiet demo-task-{uid}-r1.service; do
           [ $(date +%s) -lt $deadline ] || {{ echo 'the task never ran'; exit 1; }}
           sleep 0.05
         done
         systemctl daemon-reload
         systemctl daemon-reload
         touch /srv/out/go
         wait $run
         echo \"rc=$? $(cat /srv/out/r1.err)\""
    );
    let out = m.sh(&script).ok();
    assert!(
        out.stdout
            .starts_with("rc=7 unitgate: task r1 exited with status 7 "),
        "{out}"
    );
    assert_eq!(loaded_tasks(&m), "");
}
