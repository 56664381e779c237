//! The real binary, driven by assert_cmd, for what needs no root-owned
//! policy and no container: usage, names, non-UTF-8 and a missing policy.
//! It never writes to /etc. Fast: these run first in the test command.

mod support;
use support::is_root;

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use assert_cmd::Command;
use predicates::prelude::*;
use predicates::str::contains;

/// The helper as sudo would start it for root, minus sudo's variables: the
/// caller's environment must never decide anything.
fn helper() -> Command {
    let mut cmd = Command::cargo_bin("unitgate-systemctl").unwrap();
    for var in ["SUDO_UID", "SUDO_GID", "DOAS_USER", "PKEXEC_UID"] {
        cmd.env_remove(var);
    }
    cmd
}

fn one_line() -> impl Predicate<str> {
    predicate::function(|s: &str| s.lines().count() == 1)
}

#[test]
fn usage_errors_print_the_usage_with_exit_codes_and_exit_64() {
    for args in [
        &[][..],
        &["--help"],
        &["--version"],
        &["demo", "enable"],
        &["-x", "enable", "1"],
        &["demo", "start", "1"],
        &["--wait", "3601", "demo", "show", "1"],
        &["--wait", "1", "--check", "demo", "show", "1"],
        &["--check", "--check", "demo", "show", "1"],
    ] {
        helper().args(args).assert().code(64).stdout("").stderr(
            predicate::str::starts_with("unitgate-systemctl: ")
                .and(contains(
                    "[--check] [--wait SECONDS] APP ACTION INSTANCE...",
                ))
                .and(contains("exit status:"))
                .and(contains("75  busy"))
                .and(contains("78  policy missing"))
                .and(contains("panicked").not()),
        );
    }
}

#[test]
fn more_instances_than_one_call_may_name_is_a_usage_error() {
    let mut args = vec!["demo".to_owned(), "show".to_owned()];
    args.extend((0..257).map(|i| format!("i{i}")));
    helper()
        .args(&args)
        .assert()
        .code(64)
        .stderr(contains("1 to 256 instances"));
}

#[test]
fn bad_names_exit_65_with_one_escaped_line() {
    let cases = [
        vec!["Demo".into(), "enable".into(), "1".into()],
        vec!["demo".into(), "enable".into(), "a\nb".into()],
        vec![
            "demo".into(),
            "enable".into(),
            OsString::from_vec(b"\xff\x1b".to_vec()),
        ],
        vec![
            OsString::from_vec(b"d\xffemo".to_vec()),
            "enable".into(),
            "1".into(),
        ],
    ];
    // 65 when root; 77 first when the tests run unprivileged.
    let want = if nix::unistd::geteuid().is_root() {
        65
    } else {
        77
    };
    for args in cases {
        helper().args(&args).assert().code(want).stdout("").stderr(
            predicate::str::starts_with("unitgate-systemctl: ")
                .and(one_line())
                .and(contains('\x1b').not()),
        );
    }
}

#[test]
fn a_missing_policy_is_78_and_check_mode_runs_nothing() {
    if !is_root() {
        return;
    }
    let app = "unitgate-helper-test-no-such-app";
    for check in [true, false] {
        let mut cmd = helper();
        if check {
            cmd.arg("--check");
        }
        cmd.args([app, "show", "1"])
            .assert()
            .code(78)
            .stdout("")
            .stderr(contains(format!("no policy for app {app}")).and(one_line()));
    }
}

#[test]
fn doas_pkexec_and_forged_sudo_variables_decide_nothing_before_the_policy() {
    if !is_root() {
        return;
    }
    // Without a policy every one of them still ends at the policy (78):
    // none is a way past it, and none panics.
    for (var, value) in [
        ("DOAS_USER", "alice"),
        ("PKEXEC_UID", "1000"),
        ("SUDO_UID", "not-a-number"),
    ] {
        helper()
            .env(var, value)
            .args(["unitgate-helper-test-no-such-app", "show", "1"])
            .assert()
            .code(78)
            .stderr(one_line().and(contains("panicked").not()));
    }
}

#[test]
fn closed_standard_descriptors_are_not_a_panic() {
    if !is_root() {
        return;
    }
    // The shell closes them before exec, as a careless caller could.
    for redirect in [">&-", "<&- >&-", "<&- >&- 2>/dev/null"] {
        let script = format!("exec \"$0\" unitgate-helper-test-no-such-app show 1 {redirect}");
        let out = std::process::Command::new("sh")
            .args(["-c", &script, env!("CARGO_BIN_EXE_unitgate-systemctl")])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(78), "{redirect}: {out:?}");
        assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    }
}
