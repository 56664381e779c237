//! Property test of the judging path: no argv — however hostile — yields a
//! systemctl argv with a caller-chosen option or a unit other than
//! `<prefix>@<instance>.service`.

use super::*;
use proptest::prelude::*;
use std::os::unix::ffi::OsStringExt;
use unitgate_policy::testutil::{is_root, TempTree};

/// A root-owned tree with `apps/demo.toml` using the widest pattern.
fn tree() -> Option<TempTree> {
    if !is_root() {
        return None;
    }
    let t = TempTree::new();
    t.dir("apps", 0o755);
    let policy = "unit = 'demo@.service'\ninstance_pattern = '(?s).*'\ncallers = []\n\
                  actions = ['enable', 'disable', 'restart', 'reset-failed', 'show']\n";
    t.file("apps/demo.toml", policy.as_bytes(), 0o644);
    Some(t)
}

fn arg() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::sample::select(vec![
            "demo",
            "enable",
            "disable",
            "restart",
            "reset-failed",
            "show",
            "--check",
            "--wait",
            "0",
            "30",
            "--",
            "-",
            "--now",
            "-H",
            "--host=x",
            "1",
            "a",
            "a.service",
            "demo@1.service",
            "..",
            "%i",
            "@",
            "",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        "[A-Za-z0-9_-]{1,8}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..12),
    ]
}

#[test]
fn hostile_argv_never_yields_an_unsafe_systemctl_argv() {
    let Some(tree) = tree() else { return };
    let paths = Paths {
        policy_root: tree.root.clone(),
        policy_dir: PathBuf::from("apps"),
        lock_parent: PathBuf::from("/nonexistent"),
        unit_dir: PathBuf::from("/nonexistent"),
        unit_path: Vec::new(),
        systemctl: PathBuf::from("/nonexistent"),
        systemd_run: PathBuf::from("/nonexistent/systemd-run"),
        cgroup_fs: PathBuf::from("/nonexistent"),
        control_dir: PathBuf::from("/nonexistent/system.control"),
    };
    let strategy = prop_oneof![
        proptest::collection::vec(arg(), 0..8),
        proptest::collection::vec(arg(), 0..4).prop_map(|mut v| {
            v.splice(0..0, [b"demo".to_vec(), b"enable".to_vec()]);
            v
        }),
    ];
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(2000));
    let accepted = std::cell::Cell::new(0);
    runner
        .run(&strategy, |raw_args| {
            let args: Vec<OsString> = raw_args.iter().cloned().map(OsString::from_vec).collect();
            let proc = Process {
                args: &args,
                euid: 0,
                invoker: Invoker::default(),
            };
            let Ok(raw) = parse_args(&args) else {
                return Ok(());
            };
            let Ok(plan) = judge(&raw, &proc, &paths, &mut Record::default()) else {
                return Ok(());
            };
            accepted.set(accepted.get() + 1);
            let sep = plan.argv.iter().position(|a| a == "--").unwrap();
            let verb = &plan.argv[..sep];
            prop_assert_eq!(
                &verb[..3],
                &["systemctl", "--no-pager", "--no-ask-password"]
            );
            let want_verb = match plan.action {
                Action::Restart => "try-restart",
                other => other.name(),
            };
            prop_assert_eq!(verb[3].as_str(), want_verb);
            // Duplicates are dropped, first occurrence kept.
            let mut wanted: Vec<&str> = Vec::new();
            for inst in raw.instances {
                let inst = inst.to_str().unwrap();
                prop_assert!(name::is_valid_instance(inst));
                if !wanted.contains(&inst) {
                    wanted.push(inst);
                }
            }
            let units = &plan.argv[sep + 1..];
            prop_assert_eq!(units.len(), wanted.len());
            for (unit, inst) in units.iter().zip(wanted) {
                prop_assert!(!unit.starts_with('-'));
                prop_assert_eq!(unit, &format!("demo@{inst}.service"));
            }
            Ok(())
        })
        .unwrap();
    assert!(
        accepted.get() > 0,
        "the strategy never produced an accepted call"
    );
}
