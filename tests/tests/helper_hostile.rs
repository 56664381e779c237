//! Hostile input against the privileged helper, through real `sudo` and the
//! installed sudoers drop-in, in a real systemd. Every case must be refused
//! with its documented exit code, one stderr line, one audit line (when the
//! helper ran at all) and no change whatsoever in systemd.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStringExt;

use unitgate_tests::fixture::{
    audit_lines, demo_machine, sudo_helper, sudo_helper_str, systemd_snapshot, unit_state,
    DEMO_POLICY, HELPER, POLICY_PATH,
};
use unitgate_tests::Machine;

const USAGE: i32 = 64;
const BAD_NAME: i32 = 65;
const NO_PERM: i32 = 77;
const CONFIG: i32 = 78;

/// Who refuses: the helper (exit code, `unitgate-systemctl:` line, audit)
/// or sudo itself (the helper never runs, so no audit line).
#[derive(Clone, Copy, PartialEq, Debug)]
enum By {
    Helper(i32),
    Sudo,
}

struct Case {
    what: String,
    user: &'static str,
    args: Vec<OsString>,
    by: By,
}

fn case(what: &str, user: &'static str, args: Vec<OsString>, by: By) -> Case {
    Case {
        what: what.to_owned(),
        user,
        args,
        by,
    }
}

fn os(s: &str) -> OsString {
    OsString::from(s)
}

fn bytes(b: &[u8]) -> OsString {
    OsString::from_vec(b.to_vec())
}

/// `demo enable <instance>` as the allowed caller.
fn enable_instance(what: &str, instance: OsString) -> Case {
    case(
        &format!("instance: {what}"),
        "ops",
        vec![os("demo"), os("enable"), instance],
        By::Helper(BAD_NAME),
    )
}

fn instance_cases() -> Vec<Case> {
    let utf8: &[(&str, &str)] = &[
        ("option --now", "--now"),
        ("option -h", "-h"),
        ("option --root", "--root=/tmp"),
        ("option --host", "--host=evil"),
        ("option -H", "-H"),
        ("leading dash", "-1"),
        ("path traversal", "../../etc/passwd"),
        ("slash", "a/b"),
        ("absolute path", "/etc/shadow"),
        ("dot", "."),
        ("dotdot", ".."),
        ("suffix .service", "1.service"),
        ("suffix .socket", "1.socket"),
        ("suffix .target", "rescue.target"),
        ("at sign", "x@y"),
        ("full unit name", "demo@1.service"),
        ("space", "a b"),
        ("trailing space", "a "),
        ("tab", "a\tb"),
        ("newline", "a\nb"),
        ("carriage return", "a\rb"),
        ("escape sequence", "a\u{1b}[31m"),
        ("DEL", "a\u{7f}"),
        ("fullwidth digit", "\u{ff11}"),
        ("cyrillic a", "\u{430}"),
        ("zero-width joiner", "a\u{200d}b"),
        ("right-to-left override", "a\u{202e}b"),
        ("no-break space", "a\u{a0}b"),
        ("glob star", "*"),
        ("glob prefix", "1*"),
        ("glob question", "?"),
        ("glob class", "[0-9]"),
        ("template glob", "demo@*"),
        ("specifier %i", "%i"),
        ("specifier %n", "%n"),
        ("specifier %h", "a%h"),
        ("backslash escape", "a\\x2d"),
        ("empty", ""),
        ("65 characters", &"a".repeat(65)),
        ("4096 characters", &"a".repeat(4096)),
        ("uppercase outside the policy pattern", "ABC"),
        ("underscore outside the policy pattern", "a_b"),
        ("shell metacharacters", "a;reboot"),
        ("command substitution", "$(reboot)"),
        ("backticks", "`reboot`"),
        ("quote", "a'b"),
        ("colon", "a:b"),
        ("tilde", "~root"),
    ];
    let mut cases: Vec<Case> = utf8
        .iter()
        .map(|(what, name)| enable_instance(what, os(name)))
        .collect();
    let raw: &[(&str, &[u8])] = &[
        ("invalid UTF-8 byte", b"\xff"),
        ("overlong slash", b"a\xc0\xafb"),
        ("lone continuation byte", b"1\x80"),
        ("latin-1 e-acute", b"caf\xe9"),
    ];
    cases.extend(
        raw.iter()
            .map(|(what, name)| enable_instance(what, bytes(name))),
    );
    cases
}

fn argument_cases() -> Vec<Case> {
    let mut many: Vec<OsString> = vec![os("demo"), os("show")];
    many.extend((0..257).map(|i| os(&format!("i{i}"))));
    let mut big_app_args = vec![os(&"a".repeat(70)), os("enable"), os("1")];
    big_app_args.truncate(3);
    vec![
        case("no arguments", "ops", vec![], By::Helper(USAGE)),
        case("app only", "ops", vec![os("demo")], By::Helper(USAGE)),
        case(
            "no instance",
            "ops",
            vec![os("demo"), os("enable")],
            By::Helper(USAGE),
        ),
        case("257 instances", "ops", many, By::Helper(USAGE)),
        case(
            "unknown action start",
            "ops",
            vec![os("demo"), os("start"), os("1")],
            By::Helper(USAGE),
        ),
        case(
            "unknown action mask",
            "ops",
            vec![os("demo"), os("mask"), os("1")],
            By::Helper(USAGE),
        ),
        case(
            "unknown action edit",
            "ops",
            vec![os("demo"), os("edit"), os("1")],
            By::Helper(USAGE),
        ),
        case(
            "action in capitals",
            "ops",
            vec![os("demo"), os("Enable"), os("1")],
            By::Helper(USAGE),
        ),
        case(
            "action with space",
            "ops",
            vec![os("demo"), os("enable "), os("1")],
            By::Helper(USAGE),
        ),
        case(
            "action as option",
            "ops",
            vec![os("demo"), os("--now"), os("1")],
            By::Helper(USAGE),
        ),
        case("help option", "ops", vec![os("--help")], By::Helper(USAGE)),
        case(
            "check option misplaced",
            "ops",
            vec![os("demo"), os("--check"), os("enable"), os("1")],
            By::Helper(USAGE),
        ),
        case(
            "unknown app",
            "ops",
            vec![os("nosuchapp"), os("enable"), os("1")],
            By::Helper(CONFIG),
        ),
        case(
            "app in capitals",
            "ops",
            vec![os("Demo"), os("enable"), os("1")],
            By::Helper(BAD_NAME),
        ),
        case(
            "app with suffix",
            "ops",
            vec![os("demo.toml"), os("enable"), os("1")],
            By::Helper(BAD_NAME),
        ),
        case(
            "app path traversal",
            "ops",
            vec![os("../apps/demo"), os("enable"), os("1")],
            By::Helper(BAD_NAME),
        ),
        case(
            "app absolute path",
            "ops",
            vec![os("/tmp/evil"), os("enable"), os("1")],
            By::Helper(BAD_NAME),
        ),
        case(
            "app as option",
            "ops",
            vec![os("-x"), os("enable"), os("1")],
            By::Helper(USAGE),
        ),
        case(
            "app non-UTF-8",
            "ops",
            vec![bytes(b"dem\xff"), os("enable"), os("1")],
            By::Helper(BAD_NAME),
        ),
        case("app too long", "ops", big_app_args, By::Helper(BAD_NAME)),
        case(
            "one bad name among good ones",
            "ops",
            vec![
                os("demo"),
                os("enable"),
                os("good1"),
                os("good2"),
                os("../bad"),
            ],
            By::Helper(BAD_NAME),
        ),
        case(
            "caller not in the policy",
            "outsider",
            vec![os("demo"), os("enable"), os("1")],
            By::Helper(NO_PERM),
        ),
        case(
            "caller not in the policy, show",
            "outsider",
            vec![os("demo"), os("show"), os("keep")],
            By::Helper(NO_PERM),
        ),
        case(
            "user without the sudoers group",
            "stranger",
            vec![os("demo"), os("enable"), os("1")],
            By::Sudo,
        ),
        case(
            "user without the sudoers group, disable",
            "stranger",
            vec![os("demo"), os("disable"), os("keep")],
            By::Sudo,
        ),
    ]
}

/// Runs one case and checks everything a refusal promises.
fn assert_refused(m: &Machine, c: &Case) {
    let before = systemd_snapshot(m);
    let audits_before = audit_lines(m).len();
    let args: Vec<&OsStr> = c.args.iter().map(OsString::as_os_str).collect();
    let out = sudo_helper(m, c.user, &args);
    let ctx = format!("case `{}` ({:?}): {out}", c.what, c.args);
    match c.by {
        By::Helper(code) => {
            assert_eq!(out.code, code, "wrong exit code for {ctx}");
            let lines: Vec<&str> = out.stderr.lines().collect();
            if code != USAGE {
                assert_eq!(lines.len(), 1, "want exactly one stderr line for {ctx}");
            }
            assert!(
                lines
                    .first()
                    .is_some_and(|l| l.starts_with("unitgate-systemctl: ")),
                "message must start with `unitgate-systemctl: ` for {ctx}"
            );
            assert!(!out.stderr.contains("panicked"), "panic for {ctx}");
            let audits = audit_lines(m);
            assert_eq!(
                audits.len(),
                audits_before + 1,
                "want one audit line for {ctx}"
            );
            let line = audits.last().unwrap();
            assert!(line.contains("verdict=refused"), "audit `{line}` for {ctx}");
            assert!(
                line.contains(&format!("exit={code}")),
                "audit `{line}` for {ctx}"
            );
            assert!(line.contains("app="), "audit `{line}` for {ctx}");
        }
        By::Sudo => {
            assert_ne!(out.code, 0, "sudo should refuse {ctx}");
            assert!(
                out.stderr.starts_with("sudo:"),
                "want sudo's refusal for {ctx}"
            );
            assert_eq!(
                audit_lines(m).len(),
                audits_before,
                "helper must not have run: {ctx}"
            );
        }
    }
    assert_eq!(systemd_snapshot(m), before, "systemd changed for {ctx}");
}

fn machine_with_running_instance(label: &str) -> Machine {
    let m = demo_machine(label);
    // A running, enabled instance: any injected disable/stop would show.
    m.sh("systemctl enable --now demo@keep.service").ok();
    m
}

#[test]
fn hostile_arguments_are_refused_without_touching_systemd() {
    let m = machine_with_running_instance("hostile-args");
    let mut cases = instance_cases();
    cases.extend(argument_cases());
    assert!(cases.len() >= 60, "corpus has {} cases", cases.len());
    for c in &cases {
        assert_refused(&m, c);
    }
    assert_eq!(unit_state(&m, "keep"), ("active".into(), "enabled".into()));
}

/// A policy that fails closed: written by root, then one call as `ops`.
fn policy_case(m: &Machine, what: &str, setup: &str, code: i32) {
    m.sh(setup).ok();
    let c = case(
        &format!("policy: {what}"),
        "ops",
        vec![os("demo"), os("enable"), os("1")],
        By::Helper(code),
    );
    assert_refused(m, &c);
    // Restore the good policy and the secure directory modes.
    m.sh("chmod 0755 /etc/unitgate /etc/unitgate/apps && chown root:root /etc/unitgate /etc/unitgate/apps && rm -rf /etc/unitgate/apps/demo.toml")
        .ok();
    m.write_file(POLICY_PATH, DEMO_POLICY.as_bytes(), 0o644);
}

fn write_policy(body: &str) -> String {
    format!("cat > {POLICY_PATH} <<'EOF'\n{body}\nEOF\nchmod 0644 {POLICY_PATH}")
}

#[test]
fn insecure_or_malicious_policies_fail_closed() {
    let m = machine_with_running_instance("hostile-policy");
    m.sh("cp /etc/unitgate/apps/demo.toml /home/ops/evil.toml && chown ops: /home/ops/evil.toml")
        .ok();
    let cases: Vec<(&str, String, i32)> = vec![
        ("world-writable file", format!("chmod 0666 {POLICY_PATH}"), CONFIG),
        ("group-writable file", format!("chmod 0664 {POLICY_PATH}"), CONFIG),
        ("file owned by the caller", format!("chown ops {POLICY_PATH}"), CONFIG),
        ("group-writable apps dir", "chmod 0775 /etc/unitgate/apps".into(), CONFIG),
        ("apps dir owned by the caller", "chown ops /etc/unitgate/apps".into(), CONFIG),
        ("world-writable /etc/unitgate", "chmod 0777 /etc/unitgate".into(), CONFIG),
        (
            "symlink to a caller-owned file",
            format!("ln -sf /home/ops/evil.toml {POLICY_PATH}"),
            CONFIG,
        ),
        (
            "symlink into a caller-owned directory",
            format!("mkdir -p /home/ops/d && cp /home/ops/evil.toml /home/ops/d/demo.toml && chown root: /home/ops/d/demo.toml && chown ops: /home/ops/d && ln -sf /home/ops/d/demo.toml {POLICY_PATH}"),
            CONFIG,
        ),
        ("policy is a directory", format!("rm {POLICY_PATH} && mkdir {POLICY_PATH}"), CONFIG),
        ("policy is a FIFO", format!("rm {POLICY_PATH} && mkfifo -m 0644 {POLICY_PATH}"), CONFIG),
        ("policy is missing", format!("rm {POLICY_PATH}"), CONFIG),
        ("garbage", write_policy("\u{1}\u{2}not toml at all ]]]"), CONFIG),
        ("empty file", format!(": > {POLICY_PATH}"), CONFIG),
        ("unknown key", write_policy(&format!("{DEMO_POLICY}\nexec_start = \"/bin/sh\"")), CONFIG),
        ("duplicate key", write_policy(&format!("{DEMO_POLICY}\nunit = \"other@.service\"")), CONFIG),
        ("unit not a template", write_policy(&DEMO_POLICY.replace("demo@.service", "ssh.service")), CONFIG),
        ("unit with path", write_policy(&DEMO_POLICY.replace("demo@.service", "../demo@.service")), CONFIG),
        ("action outside the five", write_policy(&DEMO_POLICY.replace("\"show\"", "\"show\", \"mask\"")), CONFIG),
        ("callers not a list", write_policy(&DEMO_POLICY.replace("[\"ops\", \"@demo-ops\"]", "\"ops\"")), CONFIG),
        (
            "pattern escaping its anchors",
            write_policy(&DEMO_POLICY.replace("[a-z0-9][a-z0-9-]{0,31}", "a)|(.*")),
            CONFIG,
        ),
        ("pattern not a regex", write_policy(&DEMO_POLICY.replace("[a-z0-9][a-z0-9-]{0,31}", "(")), CONFIG),
        (
            "action not allowed by the policy",
            write_policy(&DEMO_POLICY.replace("\"enable\", ", "")),
            NO_PERM,
        ),
        (
            "caller removed from the policy",
            write_policy(&DEMO_POLICY.replace("\"ops\", ", "")),
            NO_PERM,
        ),
    ];
    for (what, setup, code) in &cases {
        policy_case(&m, what, setup, *code);
    }
    assert_eq!(unit_state(&m, "keep"), ("active".into(), "enabled".into()));
}

#[test]
fn widening_patterns_never_admit_names_outside_the_builtin_rule() {
    let m = machine_with_running_instance("hostile-widen");
    for pattern in [".*", "(?s).*", "[^x]*", ".*|.*", "(?-u:.)*"] {
        m.sh(&write_policy(&DEMO_POLICY.replace(
            "[a-z0-9][a-z0-9-]{0,31}",
            &pattern.replace('\\', "\\\\"),
        )))
        .ok();
        for name in ["../x", "a.service", "-now", "a b", "x@y", "%i", "*"] {
            let c = case(
                &format!("pattern {pattern} with {name:?}"),
                "ops",
                vec![os("demo"), os("enable"), os(name)],
                By::Helper(BAD_NAME),
            );
            assert_refused(&m, &c);
        }
    }
}

#[test]
fn forged_sudo_variables_and_hostile_environment_are_ignored() {
    let m = machine_with_running_instance("hostile-env");
    // Without SETENV in the rule, sudo itself refuses to let a caller set
    // SUDO_UID (or anything else) for the helper.
    for assignment in [
        "SUDO_UID=0",
        "SUDO_GID=0",
        "SUDO_USER=root",
        "PATH=/tmp",
        "LD_PRELOAD=/tmp/x.so",
    ] {
        let before = systemd_snapshot(&m);
        let out = m.exec_as(
            "outsider",
            &[
                OsStr::new("sudo"),
                OsStr::new("-n"),
                OsStr::new(assignment),
                OsStr::new(HELPER),
                OsStr::new("demo"),
                OsStr::new("disable"),
                OsStr::new("keep"),
            ],
        );
        assert_ne!(out.code, 0, "sudo {assignment} must be refused: {out}");
        assert!(out.stderr.starts_with("sudo:"), "{out}");
        assert_eq!(systemd_snapshot(&m), before);
    }
    // An environment full of traps, passed through sudo: the call works and
    // none of the traps fires.
    m.sh("mkdir -p /tmp/trap && printf '#!/bin/sh\\ntouch /tmp/trap/fired-$(basename $0)\\n' > /tmp/trap/systemctl && chmod 0755 /tmp/trap/systemctl && for p in pager editor less; do cp /tmp/trap/systemctl /tmp/trap/$p; done && chmod 0777 /tmp/trap")
        .ok();
    let traps = "SYSTEMD_PAGER=/tmp/trap/pager PAGER=/tmp/trap/pager SYSTEMD_PAGERSECURE=0 \
                 LESSOPEN='|/tmp/trap/less %s' SYSTEMD_EDITOR=/tmp/trap/editor EDITOR=/tmp/trap/editor \
                 VISUAL=/tmp/trap/editor SYSTEMD_LESS=+!/tmp/trap/less PATH=/tmp/trap:$PATH \
                 SYSTEMD_COLORS=1 SYSTEMD_LOG_LEVEL=debug LD_PRELOAD=/tmp/trap/x.so";
    // On a pseudo-terminal (`script`), where a pager would otherwise start.
    let out = m.sh_as(
        "ops",
        &format!(
            "cd /tmp/trap && env {traps} script -qec 'sudo -n {HELPER} demo show keep' /dev/null"
        ),
    );
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains("ActiveState=active"), "{out}");
    // As root without sudo (where nothing resets the environment), too.
    let out = m.sh(&format!(
        "cd /tmp/trap && env {traps} script -qec '{HELPER} demo show keep' /dev/null"
    ));
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains("ActiveState=active"), "{out}");
    let fired = m.sh("ls /tmp/trap | grep fired || true").ok().stdout;
    assert_eq!(fired, "", "a trap fired");
}

#[test]
fn setuid_or_setgid_installs_refuse_to_run() {
    let m = machine_with_running_instance("hostile-suid");
    for (mode, what) in [
        ("4755", "setuid"),
        ("2755", "setgid"),
        ("6755", "setuid+setgid"),
    ] {
        m.sh(&format!(
            "install -o root -g root -m {mode} {HELPER} /usr/local/libexec/unitgate/suid-copy"
        ))
        .ok();
        let before = systemd_snapshot(&m);
        let out = m.sh_as(
            "ops",
            "/usr/local/libexec/unitgate/suid-copy demo disable keep",
        );
        assert_eq!(out.code, NO_PERM, "{what}: {out}");
        assert_eq!(out.stderr.lines().count(), 1, "{what}: {out}");
        assert!(
            out.stderr.starts_with("unitgate-systemctl: "),
            "{what}: {out}"
        );
        assert_eq!(systemd_snapshot(&m), before, "{what}");
    }
    // Not root and not setuid: refused as well.
    let out = m.sh_as("ops", &format!("{HELPER} demo disable keep"));
    assert_eq!(out.code, NO_PERM, "{out}");
    assert_eq!(unit_state(&m, "keep"), ("active".into(), "enabled".into()));
}

#[test]
fn closed_standard_descriptors_do_not_break_the_helper() {
    let m = demo_machine("hostile-fds");
    // Closed for the helper itself (sudo would reopen or refuse them).
    let out = m.sh(&format!(
        "{HELPER} demo enable fd1 <&- >&- 2>&-; echo \"exit=$?\""
    ));
    assert_eq!(out.stdout.trim(), "exit=0", "{out}");
    assert_eq!(unit_state(&m, "fd1"), ("active".into(), "enabled".into()));
    let out = sudo_helper_str(&m, "ops", &["demo", "disable", "fd1"]);
    assert_eq!(out.code, 0, "{out}");
}
