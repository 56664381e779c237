use super::*;
use unitgate_policy::testutil::{is_root, set_mode, TempTree};

const POLICY: &str = r#"
unit = "demo@.service"
instance_pattern = "[a-z0-9][a-z0-9-]{0,31}"
callers = ["daemon"]
actions = ["enable", "disable", "show"]
max_instances = 3
"#;

fn setup() -> Option<(TempTree, Paths)> {
    if !is_root() {
        return None;
    }
    let t = TempTree::new();
    t.dir("apps", 0o755);
    t.file("apps/demo.toml", POLICY.as_bytes(), 0o644);
    t.dir("run", 0o755);
    t.dir("system/multi-user.target.wants", 0o755);
    let paths = Paths {
        policy_root: t.root.clone(),
        policy_dir: PathBuf::from("apps"),
        lock_parent: t.path("run"),
        unit_dir: t.path("system"),
        unit_path: vec![(t.path("system"), true)],
        systemctl: PathBuf::from("/nonexistent/systemctl"),
        systemd_run: PathBuf::from("/nonexistent/systemd-run"),
        cgroup_fs: t.path("cgroup"),
        control_dir: PathBuf::from("/nonexistent/system.control"),
    };
    Some((t, paths))
}

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

/// Judge `args` as the given sudo caller (None: root without sudo).
fn judge_as(paths: &Paths, sudo_uid: Option<&str>, args: &[OsString]) -> Result<Plan, Error> {
    let inv = Invoker {
        sudo_uid: sudo_uid.map(OsStr::new),
        ..Invoker::default()
    };
    judge_invoked(paths, inv, args)
}

fn judge_invoked(paths: &Paths, invoker: Invoker<'_>, args: &[OsString]) -> Result<Plan, Error> {
    judge_recorded(paths, invoker, args).0
}

/// The judgement and the audit record it filled (who the caller was).
fn judge_recorded(
    paths: &Paths,
    invoker: Invoker<'_>,
    args: &[OsString],
) -> (Result<Plan, Error>, Record) {
    let proc = Process {
        args,
        euid: 0,
        invoker,
    };
    let mut record = Record::default();
    let plan = parse_args(args).and_then(|raw| judge(&raw, &proc, paths, &mut record));
    (plan, record)
}

fn code(r: Result<Plan, Error>) -> u8 {
    r.map_or_else(|e| e.exit_code(), |_| 0)
}

#[test]
fn parse_args_shapes() {
    for bad in [
        &[][..],
        &["demo"],
        &["demo", "enable"],
        &["--help"],
        &["-x", "enable", "1"],
        &["--check"],
        &["--check", "--check", "a", "b", "c"],
        // --wait: after --check, once, with 0 to 3600 plain seconds.
        &["--wait"],
        &["--wait", "5"],
        &["--wait", "5", "demo", "show"],
        &["--wait", "5", "--check", "demo", "show", "1"],
        &["--wait", "5", "--wait", "5", "demo", "show", "1"],
        &["--check", "--wait", "1", "--check", "demo", "show", "1"],
        &["--wait=5", "demo", "show", "1"],
        &["-w", "5", "demo", "show", "1"],
        &["--wait", "3601", "demo", "show", "1"],
        &["--wait", "-1", "demo", "show", "1"],
        &["--wait", "+5", "demo", "show", "1"],
        &["--wait", "05", "demo", "show", "1"],
        &["--wait", "1.5", "demo", "show", "1"],
        &["--wait", " 5", "demo", "show", "1"],
        &["--wait", "", "demo", "show", "1"],
        &["--wait", "99999999999999999999", "demo", "show", "1"],
        &["--wait", "demo", "show", "1"],
    ] {
        let e = parse_args(&os(bad)).unwrap_err();
        assert_eq!(e.exit_code(), exit::USAGE, "{bad:?}");
        assert!(!e.to_string().contains('\n'), "{bad:?}: {}", e);
    }
    let args = os(&["--check", "demo", "show", "1", "2"]);
    let raw = parse_args(&args).unwrap();
    assert!(raw.check);
    assert_eq!(
        (raw.app, raw.action, raw.instances.len()),
        (OsStr::new("demo"), OsStr::new("show"), 2)
    );
    assert_eq!(raw.wait, Duration::from_secs(30), "the default");
    assert!(!parse_args(&os(&["demo", "show", "1"])).unwrap().check);
    for (args, check, secs) in [
        (&["--wait", "0", "demo", "show", "1"][..], false, 0),
        (&["--wait", "3600", "demo", "show", "1"], false, 3600),
        (&["--check", "--wait", "7", "demo", "show", "1"], true, 7),
    ] {
        let args = os(args);
        let raw = parse_args(&args).unwrap();
        assert_eq!((raw.check, raw.wait), (check, Duration::from_secs(secs)));
        assert_eq!((raw.app, raw.instances.len()), (OsStr::new("demo"), 1));
    }
    let e = parse_args(&os(&["--wait", "x", "demo", "show", "1"])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid usage (--wait takes whole seconds from 0 to 3600, not 'x')"
    );
}

#[test]
fn accepted_call_builds_the_exact_argv() {
    let Some((_t, paths)) = setup() else { return };
    let args = os(&["demo", "enable", "b", "a", "b"]);
    let sudo = Invoker {
        sudo_uid: Some(OsStr::new("1")),
        ..Invoker::default()
    };
    let (plan, record) = judge_recorded(&paths, sudo, &args);
    let plan = plan.unwrap();
    assert_eq!(record.caller.as_deref(), Some("daemon"));
    assert_eq!(plan.units, ["demo@b.service", "demo@a.service"]);
    assert_eq!(
        plan.argv.join(" "),
        "systemctl --no-pager --no-ask-password enable --now -- demo@b.service demo@a.service"
    );
    assert_eq!(
        would_exec(&plan, &Paths::system()),
        "would exec: /usr/bin/systemctl --no-pager --no-ask-password enable --now -- demo@b.service demo@a.service"
    );
}

#[test]
fn refusals_in_order_with_their_codes() {
    let Some((_t, paths)) = setup() else { return };
    let cases: &[(Option<&str>, &[&str], u8, &str)] = &[
        (
            Some("1"),
            &["Demo", "enable", "1"],
            exit::DATA_ERR,
            "invalid app name 'Demo'",
        ),
        (
            Some("1"),
            &["demo", "start", "1"],
            exit::USAGE,
            "unknown action 'start'",
        ),
        (
            Some("1"),
            &["demo", "enable", "../x"],
            exit::DATA_ERR,
            "invalid instance name '../x'",
        ),
        (
            Some("1"),
            &["demo", "enable", "ok", "-x"],
            exit::DATA_ERR,
            "invalid instance name '-x'",
        ),
        (
            Some("1"),
            &["nope", "enable", "1"],
            exit::CONFIG,
            "no policy for app nope",
        ),
        (
            Some("1"),
            &["demo", "restart", "1"],
            exit::NO_PERM,
            "action 'restart' is not allowed",
        ),
        (
            Some("2"),
            &["demo", "enable", "1"],
            exit::NO_PERM,
            "caller 'bin' may not drive app 'demo'",
        ),
        (
            Some("x"),
            &["demo", "enable", "1"],
            exit::NO_PERM,
            "SUDO_UID 'x'",
        ),
        (
            Some("1"),
            &["demo", "enable", "UPPER"],
            exit::DATA_ERR,
            "does not match the instance_pattern of app demo",
        ),
        (
            Some("1"),
            &["demo", "enable", "a_b"],
            exit::DATA_ERR,
            "invalid instance name 'a_b'",
        ),
    ];
    for (uid, args, want, msg) in cases {
        let e = judge_as(&paths, *uid, &os(args)).unwrap_err();
        assert_eq!(e.exit_code(), *want, "{args:?}: {}", e);
        assert!(
            e.to_string().contains(msg),
            "{args:?}: `{}` lacks `{msg}`",
            e
        );
    }
    // Root without sudo is always allowed; too many instances is usage.
    assert_eq!(code(judge_as(&paths, None, &os(&["demo", "show", "1"]))), 0);
    let many: Vec<String> = (0..257).map(|i| format!("i{i}")).collect();
    let mut args = vec!["demo", "show"];
    args.extend(many.iter().map(String::as_str));
    assert_eq!(code(judge_as(&paths, None, &os(&args))), exit::USAGE);
    args.pop();
    assert_eq!(code(judge_as(&paths, None, &os(&args))), 0);
}

#[test]
fn non_root_and_non_utf8_are_refused() {
    let Some((_t, paths)) = setup() else { return };
    let args = os(&["demo", "show", "1"]);
    let raw = parse_args(&args).unwrap();
    let proc = Process {
        args: &args,
        euid: 1000,
        invoker: Invoker::default(),
    };
    let e = judge(&raw, &proc, &paths, &mut Record::default()).unwrap_err();
    assert_eq!(e.exit_code(), exit::NO_PERM);
    use std::os::unix::ffi::OsStringExt;
    for bad in [
        vec![
            OsString::from_vec(b"de\xffmo".to_vec()),
            "show".into(),
            "1".into(),
        ],
        vec![
            "demo".into(),
            "show".into(),
            OsString::from_vec(b"\xff".to_vec()),
        ],
    ] {
        let e = judge_as(&paths, None, &bad).unwrap_err();
        assert_eq!(e.exit_code(), exit::DATA_ERR);
        assert!(e.to_string().contains("\\xff"), "{}", e);
    }
}

#[test]
fn insecure_policy_is_config_error() {
    let Some((t, paths)) = setup() else { return };
    set_mode(&t.path("apps"), 0o777);
    let e = judge_as(&paths, None, &os(&["demo", "show", "1"])).unwrap_err();
    assert_eq!(e.exit_code(), exit::CONFIG);
    assert!(
        e.to_string().starts_with("refusing insecure path"),
        "{}",
        e.to_string()
    );
}

#[test]
fn enable_is_bounded_by_max_instances() {
    let Some((t, paths)) = setup() else { return };
    let link = |name: &str| {
        t.link(
            &format!("system/multi-user.target.wants/demo@{name}.service"),
            "/etc/systemd/system/demo@.service",
        )
    };
    link("a");
    link("b");
    let bounded = |args: &[&str]| {
        let plan = judge_as(&paths, Some("1"), &os(args)).unwrap();
        within_max_instances(&plan, &paths)
    };
    // 2 enabled of at most 3: re-enabling costs nothing, one more fits.
    bounded(&["demo", "enable", "a", "b", "c"]).unwrap();
    let e = bounded(&["demo", "enable", "a", "c", "d"]).unwrap_err();
    assert_eq!(e.exit_code(), exit::NO_PERM);
    assert!(
        e.to_string().starts_with(
            "app demo allows at most 3 enabled instances; 2 already enabled, this call would add 2"
        ),
        "{}",
        e.to_string()
    );
    // Only enable adds links; disable and show are never counted.
    link("c");
    link("d");
    bounded(&["demo", "disable", "x", "y"]).unwrap();
    bounded(&["demo", "show", "x"]).unwrap();
    assert!(bounded(&["demo", "enable", "x"]).is_err());
}

#[test]
fn identity_is_judged_after_the_policy_is_read() {
    let Some((_t, paths)) = setup() else { return };
    let args = os(&["demo", "show", "1"]);
    let doas = Invoker {
        doas_user: Some(OsStr::new("daemon")),
        ..Invoker::default()
    };
    let e = judge_invoked(&paths, doas.clone(), &args).unwrap_err();
    assert_eq!(e.exit_code(), exit::NO_PERM);
    assert_eq!(
        e.to_string(),
        "invoked through doas (only sudo is supported; run it with sudo)"
    );
    // An unknown app is still a missing policy, whoever asks.
    let e = judge_invoked(&paths, doas, &os(&["nope", "show", "1"])).unwrap_err();
    assert_eq!(e.exit_code(), exit::CONFIG);
    let su = Invoker {
        login_uid: caller::LoginUid::Uid(1000),
        ..Invoker::default()
    };
    let e = judge_invoked(&paths, su, &args).unwrap_err();
    assert_eq!(
        e.to_string(),
        "root from uid 1000's login session without sudo (su, doas, pkexec or a wrapper; run it through sudo)"
    );
    let root_login = Invoker {
        login_uid: caller::LoginUid::Uid(0),
        ..Invoker::default()
    };
    let (plan, record) = judge_recorded(&paths, root_login, &args);
    assert!(plan.is_ok());
    assert_eq!(record.caller.as_deref(), Some("root"));
}

#[test]
fn audit_record_from_raw_arguments() {
    let inv = Invoker {
        sudo_uid: Some(OsStr::new("1001")),
        ..Invoker::default()
    };
    let r = audit_record(&os(&["--check", "app", "enable", "1", "2"]), &inv);
    assert_eq!(
        audit::line(&r, Verdict::Check),
        "caller=? uid=1001 app=app action=enable instances=1,2 verdict=check"
    );
    let r = audit_record(&os(&["--check", "--wait", "5", "app", "enable", "1"]), &inv);
    assert_eq!(
        audit::line(&r, Verdict::Accepted),
        "caller=? uid=1001 app=app action=enable instances=1 verdict=accepted"
    );
    let r = audit_record(&[], &Invoker::default());
    assert_eq!(
        audit::line(&r, Verdict::Refused(64, "x")),
        "caller=? uid=0 app=? action=? instances=- verdict=refused exit=64 reason=\"x\""
    );
}

/// `setup()` with the app's template in the unit directory and its guard
/// installed as the installer leaves it, the reload timer enabled.
fn guarded() -> Option<(TempTree, Paths)> {
    let (t, paths) = setup()?;
    t.file(
        "system/demo@.service",
        b"[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n",
        0o644,
    );
    t.dir("system/demo@.service.d", 0o755);
    t.file(
        &format!("system/demo@.service.d/{}", guard::FILE_NAME),
        guard::TEXT.as_bytes(),
        0o644,
    );
    t.dir("system/timers.target.wants", 0o755);
    t.link(
        "system/timers.target.wants/unitgate-reload.timer",
        "/usr/local/lib/systemd/system/unitgate-reload.timer",
    );
    Some((t, paths))
}

/// The whole pipeline as sudo's caller `daemon` (uid 1); systemctl is
/// missing in these trees, so an accepted call ends at the exec (69).
fn run_as_daemon(paths: &Paths, args: &[&str]) -> u8 {
    let args = os(args);
    let proc = Process {
        args: &args,
        euid: 0,
        invoker: Invoker {
            sudo_uid: Some(OsStr::new("1")),
            ..Invoker::default()
        },
    };
    run(&proc, paths)
}

#[test]
fn a_guarded_enable_links_before_its_marker_and_a_failed_one_leaves_no_link() {
    let Some((t, paths)) = guarded() else { return };
    let plan = judge_as(&paths, Some("1"), &os(&["demo", "enable", "a"])).unwrap();
    let plan = choose_reload(plan, &paths, &mut Record::default()).unwrap();
    assert_eq!(plan.reload, Reload::Linked);
    let link = t.path("system/multi-user.target.wants/demo@a.service");
    let marker = t.path("run/unitgate/reload-pending");
    // --check makes nothing.
    assert_eq!(
        run_as_daemon(&paths, &["--check", "demo", "enable", "a"]),
        exit::OK
    );
    assert!(std::fs::symlink_metadata(&link).is_err() && !marker.exists());
    assert!(would_exec(&plan, &paths).starts_with(&format!(
        "would link: {} -> {}\nwould exec: /nonexistent/systemctl --no-pager --no-ask-password start -- demo@a.service",
        link.display(),
        t.path("system/demo@.service").display()
    )));

    // The links and the marker are made, then the exec fails: the link
    // goes again (the marker may stay: a reload of nothing is harmless).
    let made = defer_reload(&plan, &paths).unwrap();
    assert_eq!(made, ["demo@a.service"]);
    assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink() && marker.exists());
    enabled::remove_made(&paths.unit_dir, &made).unwrap();
    assert_eq!(
        run_as_daemon(&paths, &["demo", "enable", "a"]),
        exit::UNAVAILABLE
    );
    assert!(std::fs::symlink_metadata(&link).is_err(), "left enabled");
}

#[test]
fn a_guarded_enable_past_max_instances_makes_no_link() {
    let Some((t, paths)) = guarded() else { return };
    for i in ["x", "y", "z"] {
        t.link(
            &format!("system/multi-user.target.wants/demo@{i}.service"),
            "/etc/systemd/system/demo@.service",
        );
    }
    assert_eq!(
        run_as_daemon(&paths, &["demo", "enable", "a"]),
        exit::NO_PERM
    );
    assert!(
        std::fs::symlink_metadata(t.path("system/multi-user.target.wants/demo@a.service")).is_err()
    );
}

#[test]
fn a_template_changed_while_the_call_waited_is_refused_as_busy() {
    let Some((t, paths)) = guarded() else { return };
    let plan = judge_as(&paths, Some("1"), &os(&["demo", "enable", "a"])).unwrap();
    let plan = choose_reload(plan, &paths, &mut Record::default()).unwrap();
    still_chosen(&plan, &paths).unwrap();
    // Root masks the instance meanwhile.
    t.link("system/demo@a.service", "/dev/null");
    let e = still_chosen(&plan, &paths).unwrap_err();
    assert_eq!(e.exit_code(), exit::TEMPFAIL, "{e}");
    std::fs::remove_file(t.path("system/demo@a.service")).unwrap();
    // ... or takes the guard away.
    std::fs::remove_file(t.path(&format!("system/demo@.service.d/{}", guard::FILE_NAME))).unwrap();
    assert_eq!(
        still_chosen(&plan, &paths).unwrap_err().exit_code(),
        exit::TEMPFAIL
    );
}
