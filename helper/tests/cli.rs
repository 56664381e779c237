//! The real binary, for what needs no root-owned policy: usage, names,
//! non-UTF-8, and a missing policy. It never writes to /etc.

mod support;
use support::is_root;

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::process::Command;

fn run(args: &[OsString]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_unitgate-systemctl"))
        .args(args)
        .env_remove("SUDO_UID")
        .env_remove("SUDO_GID")
        .env_remove("DOAS_USER")
        .env_remove("PKEXEC_UID")
        .output()
        .unwrap();
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (
        out.status.code().unwrap_or(-1),
        text(out.stdout),
        text(out.stderr),
    )
}

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

#[test]
fn usage_errors_print_usage_and_exit_64() {
    for args in [
        &[][..],
        &["--help"],
        &["demo", "enable"],
        &["-x", "enable", "1"],
        &["demo", "start", "1"],
        &["--wait", "3601", "demo", "show", "1"],
        &["--wait", "1", "--check", "demo", "show", "1"],
    ] {
        let (code, stdout, stderr) = run(&os(args));
        assert_eq!(code, 64, "{args:?}: {stderr}");
        assert!(stdout.is_empty());
        assert!(stderr.starts_with("unitgate-systemctl: "), "{stderr}");
        assert!(
            stderr.contains("exit status:")
                && stderr.contains("75  busy")
                && stderr.contains("78  policy missing")
                && stderr.contains("[--check] [--wait SECONDS] APP ACTION INSTANCE..."),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked"));
    }
}

#[test]
fn bad_names_exit_65_with_one_escaped_line() {
    let cases = [
        os(&["Demo", "enable", "1"]),
        os(&["demo", "enable", "a\nb"]),
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
    for args in cases {
        let (code, _, stderr) = run(&args);
        // 65 when root; 77 first when the tests run unprivileged.
        let want = if unsafe { libc::geteuid() } == 0 {
            65
        } else {
            77
        };
        assert_eq!(code, want, "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
        assert!(
            !stderr.contains('\x1b') && stderr.starts_with("unitgate-systemctl: "),
            "{stderr:?}"
        );
    }
}

#[test]
fn missing_policy_is_78_and_check_mode_runs_nothing() {
    if !is_root() {
        return;
    }
    let app = "unitgate-helper-test-no-such-app";
    for check in [true, false] {
        let mut args = os(&[app, "show", "1"]);
        if check {
            args.insert(0, "--check".into());
        }
        let (code, stdout, stderr) = run(&args);
        assert_eq!(code, 78, "{stderr}");
        assert!(stdout.is_empty());
        assert!(
            stderr.contains(&format!("no policy for app {app}")),
            "{stderr}"
        );
    }
}
