//! `unitgate` refusals and exit codes, end to end: bad names, unknown
//! instances, callers sudo or the helper refuse, busy locks, journal access.

mod common;

use common::{demo_machine, ug, wait_for, STATE_DIR, USER};
use unitgate_tests::completion;
use unitgate_tests::corpus::check_each;

#[test]
fn bad_names_and_unknown_instances_get_their_exit_codes() {
    let m = demo_machine("cli-codes");
    ug(&m, "init ok1").ok();
    let cases = [
        ("init ../x", 65, "invalid instance name"),
        ("init a.b", 65, "invalid instance name"),
        ("init -- -a", 65, "invalid instance name"),
        ("start ok1 'a b'", 65, "invalid instance name"),
        ("start nope", 66, "no such instance 'nope'"),
        ("delete nope", 66, "no such instance"),
        ("status nope", 66, "no such instance"),
        ("restart nope", 66, "no such instance"),
        ("init ok1", 73, "already exists"),
        ("--app nosuch status", 78, "no app 'nosuch'"),
        ("--app Bad/App status", 65, "invalid app name"),
        ("frobnicate", 64, "unrecognized subcommand 'frobnicate'"),
        ("start", 64, "required arguments were not provided"),
        ("status ok1", 3, ""),
    ];
    check_each(
        cases,
        |(args, ..)| format!("unitgate {args}"),
        |&(args, code, needle)| {
            let out = ug(&m, args);
            assert_eq!(out.code, code, "{out}");
            assert!(out.stderr.contains(needle), "{out}");
            if code != 3 {
                let line = out.stderr.trim_end();
                assert!(
                    !line.contains('\n') && line.starts_with("unitgate: ") && line.ends_with(')'),
                    "one line: {out}"
                );
            }
        },
    );
    m.sh(&format!(
        "test ! -e {STATE_DIR}/../x && test ! -e {STATE_DIR}/a.b"
    ))
    .ok();
}

#[test]
fn a_non_caller_is_refused_before_anything_and_a_non_member_by_sudo() {
    let m = demo_machine("cli-refuse");
    ug(&m, "init r1").ok();
    // In group unitgate (sudo lets her run the helper) but not a caller of demo.
    m.add_user("mallory", &["unitgate", "demoops"]);
    m.write_file(
        "/etc/unitgate/apps/other.toml",
        b"unit = \"other@.service\"\ncallers = [\"nobody\"]\nactions = [\"show\"]\n",
        0o644,
    );
    let out = m.sh_as("mallory", "unitgate --app demo start r1");
    // mallory is in demoops, a caller group of demo: make a config that excludes her.
    assert!(out.code == 0 || out.code == 77, "{out}");
    m.write_file(
        "/etc/unitgate/apps/demo.toml",
        common::APP_CONFIG
            .replace("\"@demoops\"", "\"@nosuchgroup\"")
            .as_bytes(),
        0o644,
    );
    let _ = ug(&m, "stop r1");
    let out = m.sh_as("mallory", "unitgate --app demo start r1");
    assert_eq!(out.code, 77, "{out}");
    // Judged against the policy before anything is touched: told who may
    // drive the app, not that some directory is unreadable.
    assert!(
        out.stderr.contains("mallory may not drive app 'demo'") && out.stderr.contains("callers"),
        "{out}"
    );
    let st = m.sh("systemctl is-active demo@r1.service").stdout;
    assert_eq!(st.trim(), "inactive", "nothing was started");

    // A caller of the app who does not own its state: her commands run
    // as the account (docs/deploy.md, operators), which sudo must allow;
    // without the installer's operators= rule it does not, and she is told
    // so, having touched nothing. (Before, she opened the account's state
    // herself, through her group, and failed at the helper's sudo.)
    m.write_file(
        "/etc/unitgate/apps/demo.toml",
        common::APP_CONFIG.as_bytes(),
        0o644,
    );
    m.add_user("eve", &["demoops"]);
    let out = m.sh_as("eve", "unitgate --app demo start r1");
    assert_eq!(out.code, 77, "{out}");
    assert!(
        out.stderr.contains("sudo does not let you run")
            && out.stderr.contains("operators= of the app's install.conf"),
        "{out}"
    );
    let st = m.sh("systemctl is-active demo@r1.service").stdout;
    assert_eq!(st.trim(), "inactive", "nothing was started");
    // No app lists eve's neighbours: app selection explains.
    m.add_user("trudy", &[]);
    let out = m.sh_as("trudy", "unitgate status");
    assert_eq!(out.code, 77, "{out}");
    assert!(out.stderr.contains("callers"), "{out}");
}

#[test]
fn a_held_lock_makes_a_command_wait_then_exit_75_busy() {
    let m = demo_machine("cli-busy");
    ug(&m, "init l1").ok();
    ug(&m, "init l2").ok();
    // Another command holds l1's lock (as `unitgate` would) until released.
    let lock = format!("{STATE_DIR}/.locks/instance.l1.lock");
    let script = format!(
        "mkfifo /tmp/release-l1; (flock {lock} sh -c 'read x < /tmp/release-l1' &); \
         until ! flock -n {lock} true; do sleep 0.01; done; \
         unitgate --wait 1 start l1; echo \"code=$?\"; \
         unitgate --wait 1 start l2; echo \"other=$?\"; echo > /tmp/release-l1"
    );
    let out = m.sh_as(USER, &script);
    assert!(out.stdout.contains("code=75"), "{out}");
    assert!(out.stderr.contains("instance 'l1' is busy"), "{out}");
    // Another instance is not blocked by l1's lock.
    assert!(out.stdout.contains("other=0"), "{out}");
}

/// A command run early in boot: the `/var/run` link that systemd-tmpfiles
/// makes is not there yet, or the system bus itself is not up. The socket is
/// reached at /run where `dbus.socket` listens; a bus that is not up is
/// waited for within --wait (status and the lifecycle commands alike), and
/// past it is one line (or one JSON error) and exit 69.
#[test]
fn a_command_before_the_system_bus_is_up_waits_for_it_within_wait() {
    let m = demo_machine("cli-early-bus");
    ug(&m, "init e1").ok();
    ug(&m, "start e1").ok();
    ug(&m, "init e2").ok();
    // The reported failure: 69, "Failed to connect to address
    // unix:path=/var/run/dbus/system_bus_socket: No such file or directory".
    m.sh("rm /var/run").ok();
    let out = ug(&m, "status e1");
    m.sh("ln -s ../run /var/run").ok();
    assert_eq!(out.code, 0, "status without the /var/run link: {out}");

    // The bus stopped: its socket file stays, nobody listens on it.
    m.sh("systemctl stop dbus.socket dbus.service && test -S /run/dbus/system_bus_socket")
        .ok();
    let out = ug(&m, "--wait 0 status e1");
    assert_eq!(out.code, 69, "{out}");
    assert!(out.stderr.contains("Connection refused"), "{out}");
    // No bus at all, as before dbus.socket first starts: no socket file.
    m.sh("rm /run/dbus/system_bus_socket").ok();
    let out = ug(&m, "--wait 1 status e1");
    assert_eq!(out.code, 69, "{out}");
    let line = out.stderr.lines().last().unwrap_or_default();
    assert!(
        line.starts_with("unitgate: the system bus is not up: ")
            && line.contains("No such file or directory")
            && line.contains("(waited 1 s)")
            && line.ends_with("or raise --wait)"),
        "the documented line: {out}"
    );
    assert!(
        out.stderr
            .starts_with("unitgate: the system bus is not up yet; waiting up to 1 s"),
        "said once that it waits: {out}"
    );
    let out = ug(&m, "--json --wait 0 start e2");
    assert_eq!(out.code, 69, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("one document");
    assert_eq!(v["error"]["kind"], "unavailable", "{out}");
    assert_eq!(v["error"]["code"], 69, "{out}");

    // With a wait, the commands are already waiting when the bus comes up,
    // and then answer as usual: status reads e1 running, start starts e2.
    for (tag, args) in [("status", "--json status e1"), ("start", "start e2")] {
        m.sh_as(
            USER,
            &format!(
                "setsid sh -c 'unitgate --wait 120 {args} >/tmp/{tag}.out 2>/tmp/{tag}.err; \
                 echo $? >/tmp/{tag}.rc' </dev/null >/dev/null 2>&1 &"
            ),
        )
        .ok();
    }
    for tag in ["status", "start"] {
        wait_for(
            &m,
            &format!("{tag} to wait for the bus"),
            &format!("grep -q 'system bus is not up yet; waiting up to 120 s' /tmp/{tag}.err"),
        );
    }
    m.sh("test ! -e /tmp/status.rc && test ! -e /tmp/start.rc")
        .ok();
    m.sh("systemctl start dbus.socket").ok();
    for tag in ["status", "start"] {
        wait_for(
            &m,
            &format!("the waiting {tag} to answer"),
            &format!("test -s /tmp/{tag}.rc"),
        );
    }
    let out = m.sh("cat /tmp/status.rc /tmp/status.out").ok().stdout;
    assert!(
        out.starts_with("0\n") && out.replace(' ', "").contains("\"instance\":\"e1\""),
        "{out}"
    );
    let out = m
        .sh("cat /tmp/start.rc /tmp/start.out /tmp/start.err")
        .ok()
        .stdout;
    assert!(out.starts_with("0\ne2: started\n"), "{out}");
    assert_eq!(ug(&m, "status e2").code, 0, "e2 runs");
}

#[test]
fn logs_explain_missing_journal_access_and_work_when_granted() {
    let m = demo_machine("cli-logs");
    ug(&m, "init j1").ok();
    ug(&m, "start j1").ok();
    let out = ug(&m, "logs j1 -n 5");
    assert_eq!(out.code, 77, "{out}");
    assert!(
        out.stderr.contains("usermod -aG systemd-journal demo"),
        "{out}"
    );
    m.sh(&format!("usermod -aG systemd-journal {USER}")).ok();
    common::wait_for(
        &m,
        "the greeting in the journal",
        "journalctl -u demo@j1.service | grep -q 'hello from j1'",
    );
    let out = ug(&m, "logs j1 -n 20").ok();
    assert!(out.stdout.contains("hello from j1 on port 20000"), "{out}");
}

#[test]
fn completions_and_man_page_come_from_the_cli_definition() {
    let m = demo_machine("cli-docs");
    // The bash code asks unitgate at each TAB: commands from the
    // definition, instances from the app's state directory.
    ug(&m, "completions bash > /tmp/unitgate.bash").ok();
    ug(&m, "init c1").ok();
    let tab = |words: &[&str]| completion::bash(&m, Some(USER), "/tmp/unitgate.bash", words);
    assert_eq!(tab(&["unitgate", "del"]), ["delete"]);
    assert_eq!(tab(&["unitgate", "start", "c"]), ["c1"]);
    let man = ug(&m, "man").ok().stdout;
    assert!(man.contains(".TH unitgate"), "{man}");
}
