use super::*;
use unitgate_policy::testutil::{chown, is_root, set_mode, TempTree};

/// Four unit directories, highest priority first: two the helper links
/// from, a generator's between them and a package's last (neither linked
/// from).
fn tree() -> Option<(TempTree, Vec<(PathBuf, bool)>)> {
    if !is_root() {
        return None;
    }
    let t = TempTree::new();
    for d in ["etc", "generator", "local", "usr"] {
        t.dir(d, 0o755);
    }
    let path = vec![
        (t.path("etc"), true),
        (t.path("generator"), false),
        (t.path("local"), true),
        (t.path("usr"), false),
    ];
    Some((t, path))
}

const UNIT: &[u8] = b"[Service]\nExecStart=/bin/true\n\n[Install]\nWantedBy=multi-user.target\n";

fn units(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| format!("demo@{n}.service")).collect()
}

fn found(path: &[(PathBuf, bool)], prefix: &str) -> Option<PathBuf> {
    template(path, prefix, &units(&["a"]))
}

#[test]
fn the_first_directory_holding_the_template_decides() {
    let Some((t, path)) = tree() else { return };
    assert_eq!(found(&path, "demo"), None, "found nowhere");
    t.file("usr/demo@.service", UNIT, 0o644);
    assert_eq!(found(&path, "demo"), None, "only in a package's directory");
    t.file("local/demo@.service", UNIT, 0o644);
    assert_eq!(found(&path, "demo"), Some(t.path("local/demo@.service")));
    assert_eq!(found(&path, "other"), None);
    t.file("etc/demo@.service", UNIT, 0o644);
    assert_eq!(found(&path, "demo"), Some(t.path("etc/demo@.service")));
    // A generated template shadows the one after it: left to systemctl.
    std::fs::remove_file(t.path("etc/demo@.service")).unwrap();
    t.file("generator/demo@.service", UNIT, 0o644);
    assert_eq!(found(&path, "demo"), None);
}

#[test]
fn a_linked_masked_or_writable_template_is_left_to_systemctl() {
    let Some((t, path)) = tree() else { return };
    t.file("local/demo@.service", UNIT, 0o644);
    // `systemctl link` or a mask puts a symlink first on the path.
    t.link("etc/demo@.service", "/dev/null");
    assert_eq!(found(&path, "demo"), None);
    std::fs::remove_file(t.path("etc/demo@.service")).unwrap();
    assert!(found(&path, "demo").is_some());

    set_mode(&t.path("local/demo@.service"), 0o664);
    assert_eq!(found(&path, "demo"), None, "group-writable file");
    set_mode(&t.path("local/demo@.service"), 0o644);
    chown(&t.path("local/demo@.service"), 1);
    assert_eq!(found(&path, "demo"), None, "not root's file");
    chown(&t.path("local/demo@.service"), 0);
    set_mode(&t.path("local"), 0o777);
    assert_eq!(found(&path, "demo"), None, "world-writable directory");
    set_mode(&t.path("local"), 0o755);
    assert!(found(&path, "demo").is_some());

    t.dir("etc/demo@.service", 0o755);
    assert_eq!(found(&path, "demo"), None, "a directory of that name");
}

#[test]
fn an_instance_with_a_unit_file_of_its_own_is_left_to_systemctl() {
    let Some((t, path)) = tree() else { return };
    t.file("local/demo@.service", UNIT, 0o644);
    assert!(template(&path, "demo", &units(&["a", "b"])).is_some());
    // `systemctl mask demo@b.service`, anywhere on the path, even in a
    // directory the helper never links from.
    t.link("usr/demo@b.service", "/dev/null");
    assert_eq!(template(&path, "demo", &units(&["a", "b"])), None);
    assert!(template(&path, "demo", &units(&["a"])).is_some());
    t.file("etc/demo@a.service", UNIT, 0o644);
    assert_eq!(
        template(&path, "demo", &units(&["a"])),
        None,
        "its own file"
    );
}

#[test]
fn only_a_template_wanted_by_multi_user_target_alone_is_linked() {
    let Some((t, path)) = tree() else { return };
    let with = |text: &str| {
        t.file("local/demo@.service", text.as_bytes(), 0o644);
        found(&path, "demo").is_some()
    };
    assert!(with(
        "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n"
    ));
    assert!(with(
        "[Install]\n  WantedBy=multi-user.target  \n# WantedBy=x\n; y\n\n[Unit]\nX=1\n"
    ));
    assert!(with(
        "[Install]\n[Unit]\n[Install]\nWantedBy=multi-user.target\n"
    ));
    for text in [
        "",
        "[Service]\nExecStart=/bin/true\n",
        "[Install]\nWantedBy=graphical.target\n",
        "[Install]\nWantedBy=multi-user.target\nAlias=x.service\n",
        "[Install]\nWantedBy=multi-user.target\n[Install]\nAlso=sshd.service\n",
        "[Install]\nRequiredBy=multi-user.target\n",
        "[Install]\nWantedBy=multi-user.target graphical.target\n",
        "[Install]\nWantedBy=multi-user.target \\\n  graphical.target\n",
        "[Unit]\nDescription=x \\\n[Install]\nWantedBy=multi-user.target\n",
    ] {
        assert!(!with(text), "{text:?}");
    }
    let big = format!(
        "[Install]\nWantedBy=multi-user.target\n#{}\n",
        "x".repeat(MAX_TEMPLATE_SIZE as usize)
    );
    assert!(!with(&big), "larger than we read");
    assert!(!install_is_wanted_by_multi_user(
        b"[Install]\nWantedBy=multi-user.target\n\xff\n"
    ));
}
