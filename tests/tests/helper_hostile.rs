//! Hostile input against the privileged helper, through real `sudo` and the
//! installed sudoers drop-in, in a real systemd. Every case must be refused
//! with its documented exit code, one stderr line, one audit line (when the
//! helper ran at all) and no change whatsoever in systemd.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStringExt;
use std::time::{Duration, Instant};

use unitgate_tests::corpus::check_each;
use unitgate_tests::fixture::{
    audit_lines, demo_machine, enabled_links, lock_files, sudo_helper, sudo_helper_str,
    systemd_snapshot, unit_state, wait_until, DEMO_POLICY, DEMO_UNIT, HELPER, POLICY_PATH,
};
use unitgate_tests::{Machine, Os};

const USAGE: i32 = 64;
const BAD_NAME: i32 = 65;
const BUSY: i32 = 75;
const NO_PERM: i32 = 77;
const CONFIG: i32 = 78;

/// Who refuses: the helper (exit code, `unitgate-systemctl:` line, audit)
/// or sudo itself (the helper never runs, so no audit line).
#[derive(Clone, Copy, PartialEq, Debug)]
enum By {
    Helper(i32),
    Sudo,
    /// sudo-rs 0.2.5 reads its arguments as UTF-8 and panics (exit 101) on
    /// any other byte, before it runs anything: through it, a non-UTF-8
    /// argument never reaches the helper (whose own answer is 65).
    SudoRsPanic,
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
            "--wait above 3600",
            "ops",
            vec![
                os("--wait"),
                os("3601"),
                os("demo"),
                os("disable"),
                os("keep"),
            ],
            By::Helper(USAGE),
        ),
        case(
            "--wait not a number",
            "ops",
            vec![
                os("--wait"),
                os("1e3"),
                os("demo"),
                os("disable"),
                os("keep"),
            ],
            By::Helper(USAGE),
        ),
        case(
            "--wait negative",
            "ops",
            vec![
                os("--wait"),
                os("-1"),
                os("demo"),
                os("disable"),
                os("keep"),
            ],
            By::Helper(USAGE),
        ),
        case(
            "--wait twice",
            "ops",
            vec![
                os("--wait"),
                os("1"),
                os("--wait"),
                os("1"),
                os("demo"),
                os("disable"),
                os("keep"),
            ],
            By::Helper(USAGE),
        ),
        case(
            "--check after --wait",
            "ops",
            vec![
                os("--wait"),
                os("1"),
                os("--check"),
                os("demo"),
                os("disable"),
                os("keep"),
            ],
            By::Helper(USAGE),
        ),
        case(
            "--wait=N form",
            "ops",
            vec![os("--wait=1"), os("demo"), os("disable"), os("keep")],
            By::Helper(USAGE),
        ),
        case(
            "--wait without its value",
            "ops",
            vec![os("--wait")],
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
    let by = if m.os() == Os::TrixieSudoRs && c.args.iter().any(|a| a.to_str().is_none()) {
        By::SudoRsPanic
    } else {
        c.by
    };
    match by {
        By::Helper(code) => assert_helper_refusal(m, &out, code, audits_before, &ctx),
        By::Sudo => {
            assert_ne!(out.code, 0, "sudo should refuse {ctx}");
            assert!(
                out.stderr.starts_with(m.os().sudo_prefix()),
                "want sudo's refusal for {ctx}"
            );
            assert_eq!(
                audit_lines(m).len(),
                audits_before,
                "helper must not have run: {ctx}"
            );
        }
        By::SudoRsPanic => {
            assert_eq!(out.code, 101, "want sudo-rs's panic for {ctx}");
            assert!(out.stderr.contains("panicked"), "{ctx}");
            assert_eq!(
                audit_lines(m).len(),
                audits_before,
                "helper must not have run: {ctx}"
            );
        }
    }
    assert_eq!(systemd_snapshot(m), before, "systemd changed for {ctx}");
}

/// Runs `script` as root and checks it is a refusal by the helper with
/// `code` and a message containing `msg`, changing nothing in systemd.
fn assert_root_refused(m: &Machine, script: &str, code: i32, msg: &str) {
    let before = systemd_snapshot(m);
    let audits_before = audit_lines(m).len();
    let out = m.sh(script);
    let ctx = format!("`{script}`: {out}");
    assert_helper_refusal(m, &out, code, audits_before, &ctx);
    assert!(out.stderr.contains(msg), "want `{msg}` for {ctx}");
    assert_eq!(systemd_snapshot(m), before, "systemd changed for {ctx}");
}

/// Exit code, exactly one `unitgate-systemctl: ` line (plus the usage text
/// for 64), no panic, and one refused audit line with that code.
fn assert_helper_refusal(
    m: &Machine,
    out: &unitgate_tests::Output,
    code: i32,
    audits_before: usize,
    ctx: &str,
) {
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
    check_each(&cases, |c| c.what.clone(), |c| assert_refused(&m, c));
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
    check_each(
        &cases,
        |(what, ..)| what.to_string(),
        |(what, setup, code)| policy_case(&m, what, setup, *code),
    );
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
        let cases = ["../x", "a.service", "-now", "a b", "x@y", "%i", "*"].map(|name| {
            case(
                &format!("pattern {pattern} with {name:?}"),
                "ops",
                vec![os("demo"), os("enable"), os(name)],
                By::Helper(BAD_NAME),
            )
        });
        check_each(&cases, |c| c.what.clone(), |c| assert_refused(&m, c));
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
        assert!(out.stderr.starts_with(m.os().sudo_prefix()), "{out}");
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

/// `ops` runs `demo ACTION` on `names` through sudo.
fn ops_call(
    m: &Machine,
    options: &[&str],
    action: &str,
    names: &[String],
) -> unitgate_tests::Output {
    let mut args: Vec<&str> = options.to_vec();
    args.extend(["demo", action]);
    args.extend(names.iter().map(String::as_str));
    sudo_helper_str(m, "ops", &args)
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

#[test]
fn thousands_of_unit_names_leave_at_most_256_lock_files_for_the_app() {
    let m = demo_machine("hostile-lockfiles");
    // 12 calls of 256 distinct names (3,072), as a caller hunting for the
    // inode limit of /run would send them; each call takes its units' locks.
    for call in 0..12 {
        let out = ops_call(&m, &[], "disable", &names(&format!("n{call}-"), 256));
        assert_eq!(out.code, 0, "call {call}: {out}");
    }
    let files = lock_files(&m);
    assert!(
        files.len() <= 256,
        "{} lock files for 3,072 names, e.g. {:?}",
        files.len(),
        &files[..3]
    );
    let is_slot = |f: &str| {
        f.strip_prefix("/run/unitgate/locks/demo/slot-")
            .is_some_and(|n| n.len() == 3 && n.bytes().all(|b| b.is_ascii_digit()) && n < "256")
    };
    assert!(files.iter().all(|f| is_slot(f)), "{files:?}");
    let apps = m.sh("ls -A /run/unitgate/locks").ok().stdout;
    assert_eq!(apps.trim(), "demo");
    let mode = m.sh("stat -c '%U %a' /run/unitgate/locks/demo").ok().stdout;
    assert_eq!(mode.trim(), "root 700");
}

/// `ops` enables `names`; asserts the helper refused with `msg` and that
/// nothing in systemd changed.
fn assert_enable_refused(m: &Machine, names: &[String], msg: &str) {
    let before = systemd_snapshot(m);
    let audits_before = audit_lines(m).len();
    let out = ops_call(m, &[], "enable", names);
    let ctx = format!("enable {} names: {out}", names.len());
    assert_helper_refusal(m, &out, NO_PERM, audits_before, &ctx);
    assert!(out.stderr.contains(msg), "want `{msg}` in {ctx}");
    assert_eq!(systemd_snapshot(m), before, "systemd changed for {ctx}");
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

#[test]
fn enable_beyond_max_instances_is_refused_and_links_stay_bounded() {
    let m = demo_machine("hostile-maxinst");
    m.sh(&write_policy(&format!("{DEMO_POLICY}max_instances = 5")))
        .ok();
    let enable = |n: &[&str]| ops_call(&m, &[], "enable", &strings(n));
    assert_eq!(enable(&["a1", "a2", "a3"]).code, 0);
    assert_enable_refused(
        &m,
        &strings(&["a1", "b1", "b2", "b3"]),
        "unitgate-systemctl: app demo allows at most 5 enabled instances; 3 already enabled, this call would add 3",
    );
    // Names already enabled do not count twice: 3 + 2 new is 5.
    let out = enable(&["a1", "a2", "b1", "b2"]);
    assert_eq!(out.code, 0, "{out}");
    assert_enable_refused(
        &m,
        &strings(&["c1"]),
        "5 already enabled, this call would add 1",
    );
    // A flood of fresh names adds nothing.
    for call in 0..4 {
        assert_enable_refused(
            &m,
            &names(&format!("f{call}-"), 256),
            "5 already enabled, this call would add 256",
        );
    }
    assert_eq!(enabled_links(&m), 5);
    // Disabling makes room; instances root enables by hand count too, and
    // above the limit the enabled ones can still be started.
    assert_eq!(ops_call(&m, &[], "disable", &strings(&["b2"])).code, 0);
    assert_eq!(enable(&["c1"]).code, 0);
    m.sh("systemctl enable demo@byroot.service").ok();
    assert_enable_refused(
        &m,
        &strings(&["c2"]),
        "6 already enabled, this call would add 1",
    );
    m.sh("systemctl stop demo@c1.service").ok();
    let out = enable(&["c1"]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(unit_state(&m, "c1"), ("active".into(), "enabled".into()));
    assert_eq!(enabled_links(&m), 6);
}

#[test]
fn without_max_instances_an_app_may_enable_1000_instances_and_no_more() {
    let m = demo_machine("hostile-maxdefault");
    // Instances whose start is skipped at once: what stays are their links
    // and loaded units in PID 1, which is what the limit bounds.
    m.write_file(
        "/etc/systemd/system/demo@.service.d/never.conf",
        b"[Unit]\nConditionPathExists=/nonexistent\n",
        0o644,
    );
    m.sh("systemctl daemon-reload").ok();
    for call in 0..3 {
        let out = ops_call(&m, &[], "enable", &names(&format!("d{call}-"), 256));
        assert_eq!(out.code, 0, "call {call}: {out}");
    }
    assert_eq!(enabled_links(&m), 768);
    assert_enable_refused(
        &m,
        &names("d3-", 256),
        "app demo allows at most 1000 enabled instances; 768 already enabled, this call would add 256",
    );
    let out = ops_call(&m, &[], "enable", &names("d3-", 232));
    assert_eq!(out.code, 0, "{out}");
    assert_enable_refused(
        &m,
        &strings(&["one-more"]),
        "1000 already enabled, this call would add 1",
    );
    assert_eq!(enabled_links(&m), 1000);
}

/// Makes every start of `demo@INSTANCE` wait until root writes to the FIFO
/// /run/release-INSTANCE, so an `enable` of it holds its locks meanwhile.
fn hold_starts_of(m: &Machine, instance: &str) {
    m.write_file(
        &format!("/etc/systemd/system/demo@{instance}.service.d/hold.conf"),
        b"[Service]\nExecStartPre=/bin/sh -c 'read x < /run/release-%i'\nTimeoutStartSec=infinity\n",
        0o644,
    );
    m.sh(&format!(
        "mkfifo -m 0600 /run/release-{instance} && systemctl daemon-reload"
    ))
    .ok();
}

#[test]
fn a_call_its_caller_stopped_makes_other_calls_busy_within_their_wait() {
    let m = demo_machine("hostile-stopped");
    // A second app: a stopped call of one app must hold up no other app.
    m.write_file(
        "/etc/systemd/system/other@.service",
        DEMO_UNIT.as_bytes(),
        0o644,
    );
    m.write_file(
        "/etc/unitgate/apps/other.toml",
        DEMO_POLICY
            .replace("demo@.service", "other@.service")
            .as_bytes(),
        0o644,
    );
    hold_starts_of(&m, "held");
    // ops runs `enable held` in the background and keeps its sudo's pid;
    // the call blocks in systemctl, holding the lock, until root releases
    // the start. The bash around it stays alive as the parent of the job's
    // process group (the kernel discards SIGTSTP sent to an orphaned group,
    // as a caller with a terminal never has) until ops sends it `go`. The
    // job is a plain sh that records sudo's exit status: sh without job
    // control waits for termination only, where bash's `wait` under job
    // control may report a stop it saw before the job was continued (148).
    m.sh_as(
        "ops",
        &format!(
            "mkfifo /tmp/caller-go && bash -c 'set -m; \
               sh -c \"sudo -n {HELPER} demo enable held & echo \\$! > /tmp/sudo.pid; \
                        wait \\$!; echo \\$? > /tmp/held.rc\" & \
               read go < /tmp/caller-go; wait' \
             </dev/null >/dev/null 2>&1 &"
        ),
    )
    .ok();
    wait_until(
        &m,
        "the start of demo@held",
        "[ \"$(systemctl show -P ActiveState demo@held.service)\" = activating ]",
        60,
    );
    // The caller stops its own call: sudo relays SIGTSTP to systemctl.
    m.sh_as("ops", "kill -TSTP \"$(cat /tmp/sudo.pid)\"").ok();
    let systemctl = "pgrep -f '^systemctl .*demo@held.service'";
    wait_until(
        &m,
        "the caller's systemctl to be stopped",
        &format!("p=$({systemctl}) && ps -o stat= -p \"$p\" | grep -q T"),
        60,
    );
    // The start completes; only the stopped call keeps the lock now.
    m.sh("echo go > /run/release-held").ok();
    wait_until(
        &m,
        "demo@held to run",
        "systemctl is-active -q demo@held.service",
        60,
    );

    // Root's call without --wait gives up after the default 30 s instead of
    // blocking for as long as the caller likes.
    let began = Instant::now();
    let out = m.sh(&format!("timeout 60 {HELPER} demo disable held"));
    let took = began.elapsed();
    assert_eq!(out.code, BUSY, "{out}");
    assert!(
        took >= Duration::from_secs(30) && took < Duration::from_secs(60),
        "default wait took {took:?}"
    );
    // With --wait (the CLI passes its own budget): one line, audited.
    let audits_before = audit_lines(&m).len();
    let began = Instant::now();
    let out = m.sh(&format!("{HELPER} --wait 2 demo disable held"));
    let took = began.elapsed();
    assert_helper_refusal(&m, &out, BUSY, audits_before, "disable held, --wait 2");
    assert_eq!(
        out.stderr.trim_end(),
        "unitgate-systemctl: busy: waited 2 s for demo@held.service \
         (another call holds the lock of /run/unitgate/locks/demo/slot-193; retry)"
    );
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(30),
        "--wait 2 took {took:?}"
    );
    // The stopped call is an enable, so it also holds the app's enable lock.
    let out = ops_call(&m, &["--wait", "1"], "enable", &strings(&["other1"]));
    assert_eq!(out.code, BUSY, "{out}");
    assert!(
        out.stderr
            .contains("busy: waited 1 s to enable instances of app demo"),
        "{out}"
    );
    // Nothing else waits: a unit of demo in another slot, and another app.
    let out = ops_call(&m, &["--wait", "0"], "disable", &strings(&["free1"]));
    assert_eq!(out.code, 0, "{out}");
    let out = sudo_helper_str(&m, "ops", &["--wait", "0", "other", "enable", "x"]);
    assert_eq!(out.code, 0, "{out}");
    m.sh("systemctl is-active -q other@x.service").ok();
    assert_eq!(unit_state(&m, "held"), ("active".into(), "enabled".into()));

    // The caller continues its call as a shell's `fg` or `bg` does, with
    // SIGCONT to the job's process group (sudo and the systemctl it relayed
    // the stop to are in it); the call finishes and frees the lock.
    m.sh_as(
        "ops",
        "job=$(ps -o pgid= -p \"$(cat /tmp/sudo.pid)\" | tr -d ' ') && kill -s CONT -- \"-$job\" \
         && echo go > /tmp/caller-go",
    )
    .ok();
    wait_until(
        &m,
        "the continued call to finish",
        "[ -s /tmp/held.rc ]",
        60,
    );
    assert_eq!(m.sh("cat /tmp/held.rc").ok().stdout.trim(), "0");
    let out = ops_call(&m, &["--wait", "5"], "disable", &strings(&["held"]));
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(
        unit_state(&m, "held"),
        ("inactive".into(), "disabled".into())
    );
}

#[test]
fn root_without_sudo_must_come_from_roots_own_session_or_none() {
    let m = machine_with_running_instance("hostile-identity");
    let as_login = |uid: &str, cmd: &str| format!("echo {uid} > /proc/self/loginuid && exec {cmd}");
    // doas and pkexec set these (and sudo never does): refused, even with
    // a SUDO_UID passed along by a tool that keeps the environment.
    for (env, tool) in [
        ("DOAS_USER=ops", "doas"),
        ("PKEXEC_UID=1000", "pkexec"),
        ("DOAS_USER=ops SUDO_UID=0", "doas"),
    ] {
        assert_root_refused(
            &m,
            &format!("env {env} {HELPER} demo disable keep"),
            NO_PERM,
            &format!("invoked through {tool} (only sudo is supported; run it with sudo)"),
        );
    }
    // Root from a user's login session without sudo: su, a wrapper.
    assert_root_refused(
        &m,
        &as_login("1000", &format!("{HELPER} demo disable keep")),
        NO_PERM,
        "unitgate-systemctl: root from uid 1000's login session without sudo (su, doas, pkexec or a wrapper; run it through sudo)",
    );
    // Root's own login (loginuid 0) and no session at all (services, cron)
    // drive every app; so does root's own sudo from a user's session.
    for (what, script) in [
        (
            "root login",
            as_login("0", &format!("{HELPER} demo enable r0")),
        ),
        ("no session", format!("{HELPER} demo enable r1")),
        (
            "sudo from uid 1000's session",
            as_login("1000", &format!("sudo -n {HELPER} demo enable r2")),
        ),
    ] {
        let out = m.sh(&script);
        assert_eq!(out.code, 0, "{what}: {out}");
        let last = audit_lines(&m).pop().unwrap();
        assert!(
            last.contains("caller=root uid=0") && last.contains("verdict=accepted"),
            "{what}: {last}"
        );
    }
    for i in ["r0", "r1", "r2"] {
        assert_eq!(
            unit_state(&m, i),
            ("active".into(), "enabled".into()),
            "{i}"
        );
    }
    assert_eq!(unit_state(&m, "keep"), ("active".into(), "enabled".into()));
}

#[test]
fn root_with_an_inherited_sudo_uid_is_judged_as_that_user() {
    let m = machine_with_running_instance("hostile-sudo-s");
    // An administrator with full sudo rights, not a caller of the app.
    m.add_user("admin", &[]);
    m.write_file(
        "/etc/sudoers.d/admin",
        b"admin ALL=(ALL:ALL) NOPASSWD: ALL\n",
        0o440,
    );
    // Root in admin's `sudo -s` shell carries admin's SUDO_UID: the helper
    // run from there is admin, whom the policy does not list.
    let before = systemd_snapshot(&m);
    let out = m.sh_as("admin", &format!("sudo -n -s {HELPER} demo disable keep"));
    assert_eq!(out.code, NO_PERM, "{out}");
    assert!(
        out.stderr
            .contains("caller 'admin' may not drive app 'demo'"),
        "{out}"
    );
    assert_eq!(systemd_snapshot(&m), before);
    // The same with ops's uid: judged as ops, and allowed as ops.
    let uid = m.sh("id -u ops").ok().stdout.trim().to_owned();
    let out = m.sh(&format!("env SUDO_UID={uid} {HELPER} demo enable s1"));
    assert_eq!(out.code, 0, "{out}");
    let last = audit_lines(&m).pop().unwrap();
    assert!(last.contains(&format!("caller=ops uid={uid}")), "{last}");
    assert_eq!(unit_state(&m, "keep"), ("active".into(), "enabled".into()));
}

#[test]
fn restart_never_starts_a_stopped_failed_or_unknown_instance() {
    let m = machine_with_running_instance("hostile-restart");
    m.write_file(
        "/etc/systemd/system/demo@bad.service.d/fail.conf",
        b"[Service]\nExecStart=\nExecStart=/bin/false\nRestart=no\n",
        0o644,
    );
    m.sh("systemctl daemon-reload && systemctl enable --now demo@stopped.service && systemctl disable --now demo@stopped.service")
        .ok();
    let mut targets = strings(&["never1", "stopped", "bad"]);
    targets.extend(names("random", 200));
    let out = ops_call(&m, &[], "restart", &targets);
    assert_eq!(out.code, 0, "{out}");
    for i in ["never1", "stopped", "bad", "random0", "random199"] {
        assert_eq!(
            unit_state(&m, i),
            ("inactive".into(), "disabled".into()),
            "{i}"
        );
    }
    let failed = m
        .sh("systemctl list-units --all --state=failed --plain --no-legend --no-pager 'demo@*'")
        .ok()
        .stdout;
    assert_eq!(failed, "", "restart left failed units");
    // A running instance is still restarted.
    let pid = |m: &Machine| {
        m.sh("systemctl show -P MainPID demo@keep.service")
            .ok()
            .stdout
    };
    let before = pid(&m);
    assert_eq!(ops_call(&m, &[], "restart", &strings(&["keep"])).code, 0);
    assert_ne!(pid(&m), before);
    assert_eq!(unit_state(&m, "keep"), ("active".into(), "enabled".into()));
}
