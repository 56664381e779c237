use super::*;
use crate::caller::Invoker;
use std::os::unix::ffi::OsStringExt;
use unitgate_policy::config as policy;

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

const POLICY: &str =
    "unit = \"demo@.service\"\ncallers = [\"daemon\"]\nactions = [\"enable\", \"disable\"]\n\
                      instance_pattern = \"[a-z]+\"\nmax_instances = 2\n\
                      [limits]\nmax_cpu_percent = 100\nmax_memory = \"1G\"\nmax_tasks = 64\n";

/// Judge `words` (after APP `limit`) of app demo under `policy`, as the
/// sudo caller with uid 1 (`daemon`).
fn judge(policy: &str, words: &[&str]) -> Result<LimitPlan, Error> {
    let inv = Invoker {
        sudo_uid: Some(OsStr::new("1")),
        ..Invoker::default()
    };
    let args = os(words);
    let proc = Process {
        args: &args,
        euid: 0,
        invoker: inv,
    };
    let mut record = Record::default();
    let load = |_: &str| policy::parse(policy.as_bytes()).map_err(|why| panic!("{why}"));
    judge_limit_with(OsStr::new("demo"), &args, &proc, &mut record, load)
}

#[test]
fn a_limit_becomes_one_set_property_of_numbers_it_formats() {
    let plan = judge(
        POLICY,
        &["--memory", "512M", "--cpu", "50%", "--tasks", "8", "web"],
    )
    .unwrap();
    assert_eq!(plan.unit, "demo@web.service");
    assert_eq!(
        argv(&plan).join(" "),
        "systemctl --no-pager --no-ask-password set-property -- demo@web.service \
         CPUQuota=50% MemoryMax=536870912 TasksMax=8"
    );
    let plan = judge(POLICY, &["--tasks", "64", "web"]).unwrap();
    assert_eq!(argv(&plan)[6..], ["TasksMax=64"]);
    let plan = judge(POLICY, &["--reset", "web"]).unwrap();
    assert_eq!(plan.set, None);
}

#[test]
fn malformed_limit_words_are_refused() {
    let usage = [
        &[][..],
        &["--reset"],
        &["--cpu", "50"],
        &["--cpu", "50", "--cpu", "60", "web"],
        &["--cpu", "web"],
        &["--reset", "--cpu", "5", "web"],
        &["--cpu", "5", "--reset", "web"],
        &["web", "--cpu", "5"],
        &["--io", "5", "web"],
        &["--cpu=5", "web"],
        &["--", "--cpu", "5", "web"],
        &["--cpu", "5", "a", "b"],
        &["web"],
    ];
    for words in usage {
        let e = judge(POLICY, words).unwrap_err();
        assert!(matches!(e, Error::Usage(_)), "{words:?}: {e}");
        assert_eq!(e.exit_code(), exit::USAGE, "{words:?}");
    }
    let e = judge(POLICY, &["--cpu=5", "web"]).unwrap_err();
    assert!(
        e.to_string().contains("unknown or misplaced word --cpu=5;"),
        "{e}"
    );
    for words in [&["--cpu", "5", "we/b"][..], &["--reset", "_web"]] {
        let e = judge(POLICY, words).unwrap_err();
        assert!(matches!(e, Error::InvalidInstance { .. }), "{words:?}: {e}");
        assert_eq!(e.exit_code(), exit::DATA_ERR, "{words:?}");
    }
}

#[test]
fn hostile_values_never_reach_systemd() {
    let values = [
        "1G;x",
        "-5",
        "infinity",
        "0",
        "99999999999999999999999",
        "5 ",
        " 5",
        "5\nTasksMax=9",
        "50%%",
        "1.5G",
        "0x10",
        "+5",
        "",
        "5$",
        "%n",
    ];
    for flag in ["--cpu", "--memory", "--tasks"] {
        for v in values {
            let e = judge(POLICY, &[flag, v, "web"]).unwrap_err();
            assert!(matches!(e, Error::InvalidTask { .. }), "{flag} {v:?}: {e}");
        }
    }
    let mut words = os(&["--memory"]);
    words.push(OsString::from_vec(b"5\xffM".to_vec()));
    words.push("web".into());
    let inv = Invoker {
        sudo_uid: Some(OsStr::new("1")),
        ..Invoker::default()
    };
    let proc = Process {
        args: &words,
        euid: 0,
        invoker: inv,
    };
    let e = judge_limit_with(
        OsStr::new("demo"),
        &words,
        &proc,
        &mut Record::default(),
        |_| panic!("the policy is read after the words"),
    )
    .unwrap_err();
    assert!(matches!(e, Error::NotUtf8(_)), "{e}");
}

#[test]
fn the_policy_bounds_who_what_and_how_much() {
    // Above a maximum.
    for words in [
        &["--cpu", "101", "web"][..],
        &["--memory", "2G", "web"],
        &["--tasks", "65", "web"],
    ] {
        let e = judge(POLICY, words).unwrap_err();
        assert!(matches!(e, Error::AboveMaximum(_)), "{words:?}: {e}");
        assert_eq!(e.exit_code(), exit::NO_PERM);
    }
    // Not the instance_pattern's, or not a valid name at all.
    assert!(matches!(
        judge(POLICY, &["--cpu", "5", "Web1"]).unwrap_err(),
        Error::InvalidInstance { .. }
    ));
    assert!(matches!(
        judge(POLICY, &["--cpu", "5", "../x"]).unwrap_err(),
        Error::InvalidInstance { .. }
    ));
    // An app without [limits]: no limit, but a reset (of limits kept from
    // before root removed the table).
    let bare = POLICY.split("[limits]").next().unwrap();
    let e = judge(bare, &["--cpu", "5", "web"]).unwrap_err();
    assert!(matches!(e, Error::NoLimits(_)), "{e}");
    assert_eq!(e.exit_code(), exit::NO_PERM);
    assert_eq!(judge(bare, &["--reset", "web"]).unwrap().set, None);
    // An app whose callers may not enable and disable (a limit can stop an
    // instance as surely as disable).
    for actions in ["[\"enable\"]", "[\"disable\", \"show\"]"] {
        let p = POLICY.replace("[\"enable\", \"disable\"]", actions);
        for words in [&["--cpu", "5", "web"][..], &["--reset", "web"]] {
            let e = judge(&p, words).unwrap_err();
            assert!(matches!(e, Error::NoLimits(_)), "{actions} {words:?}: {e}");
        }
    }
    // A caller the app does not list.
    let other = POLICY.replace("[\"daemon\"]", "[\"root\"]");
    let e = judge(&other, &["--cpu", "5", "web"]).unwrap_err();
    assert!(matches!(e, Error::CallerNotAllowed { .. }), "{e}");
}

#[test]
fn limited_instances_stay_within_max_instances() {
    use unitgate_policy::testutil::{is_root, TempTree};
    if !is_root() {
        return;
    }
    let t = TempTree::new();
    let paths = Paths {
        control_dir: t.root.clone(),
        ..Paths::system()
    };
    let plan = |words: &[&str]| judge(POLICY, words).unwrap();
    // max_instances = 2: two limited, a third refused; the two can still
    // be changed, and a reset is never refused.
    std::fs::create_dir(t.root.join("demo@a.service.d")).unwrap();
    assert!(within_max_limited(&plan(&["--cpu", "5", "b"]), &paths).is_ok());
    std::fs::create_dir(t.root.join("demo@b.service.d")).unwrap();
    let e = within_max_limited(&plan(&["--cpu", "5", "c"]), &paths).unwrap_err();
    assert!(matches!(e, Error::TooManyLimited { limited: 2, .. }), "{e}");
    assert!(within_max_limited(&plan(&["--cpu", "5", "a"]), &paths).is_ok());
    assert!(within_max_limited(&plan(&["--reset", "c"]), &paths).is_ok());
}
