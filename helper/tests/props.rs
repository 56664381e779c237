//! Property tests over the public API: unit names always round-trip, and
//! no argv — however hostile — yields a systemctl argv with a caller-chosen
//! option or a unit other than `<prefix>@<instance>.service`.

mod support;
use support::is_root;

use proptest::prelude::*;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use unitgate_helper::action::Action;
use unitgate_helper::audit::Record;
use unitgate_helper::caller::Invoker;
use unitgate_helper::name;
use unitgate_helper::pipeline::{judge, parse_args, Paths, Process};
use unitgate_helper::policy;

const WIDE_PATTERNS: &[&str] = &[
    ".*",
    "(?s).*",
    "[^x]*",
    ".*|.*",
    r"[\s\S]*",
    "[A-Za-z0-9_-]+",
];

proptest! {
    #[test]
    fn unit_names_round_trip(
        prefix in "[A-Za-z0-9][A-Za-z0-9_:-]{0,127}",
        instance in "[A-Za-z0-9][A-Za-z0-9_-]{0,63}|\\PC{0,70}",
        pattern in proptest::sample::select(WIDE_PATTERNS),
    ) {
        let text = format!(
            "unit = '{prefix}@.service'\ninstance_pattern = '{pattern}'\ncallers = []\nactions = ['show']\n"
        );
        let p = policy::parse(text.as_bytes()).unwrap();
        // A pattern can only narrow: allowed implies the built-in rule.
        if !p.allows_instance(&instance) {
            return Ok(());
        }
        prop_assert!(name::is_valid_instance(&instance));
        let unit = name::unit_name(&p.unit_prefix, &instance).unwrap();
        let back = unit.strip_prefix(&format!("{prefix}@")).and_then(|u| u.strip_suffix(".service"));
        prop_assert_eq!(back, Some(instance.as_str()));
        prop_assert_eq!(unit.matches('@').count(), 1);
        prop_assert_eq!(unit.matches('.').count(), 1);
        prop_assert!(instance.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
        prop_assert!(!instance.starts_with('-'));
    }
}

/// A root-owned tree with `apps/demo.toml` using the widest pattern.
struct Tree(PathBuf);

impl Tree {
    fn new() -> Option<Tree> {
        if !is_root() {
            return None;
        }
        let root = PathBuf::from(format!(
            "/var/tmp/unitgate-helper-props-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("apps")).unwrap();
        for d in [&root, &root.join("apps")] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let policy = "unit = 'demo@.service'\ninstance_pattern = '(?s).*'\ncallers = []\n\
                      actions = ['enable', 'disable', 'restart', 'reset-failed', 'show']\n";
        let file = root.join("apps/demo.toml");
        std::fs::write(&file, policy).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        Some(Tree(root))
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
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
    let Some(tree) = Tree::new() else { return };
    let paths = Paths {
        policy_root: tree.0.clone(),
        policy_dir: PathBuf::from("apps"),
        lock_parent: PathBuf::from("/nonexistent"),
        unit_dir: PathBuf::from("/nonexistent"),
        systemctl: PathBuf::from("/nonexistent"),
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
