use super::*;
use unitgate_policy::testutil::{chown, is_root, set_mode, TempTree};

/// Three unit directories, highest priority first, the middle one a
/// generator's (not linkable).
fn tree() -> Option<(TempTree, Vec<(PathBuf, bool)>)> {
    if !is_root() {
        return None;
    }
    let t = TempTree::new();
    for d in ["etc", "generator", "local"] {
        t.dir(d, 0o755);
    }
    let path = vec![
        (t.path("etc"), true),
        (t.path("generator"), false),
        (t.path("local"), true),
    ];
    Some((t, path))
}

const UNIT: &[u8] = b"[Service]\nExecStart=/bin/true\n";

#[test]
fn the_first_directory_holding_the_template_decides() {
    let Some((t, path)) = tree() else { return };
    assert_eq!(template(&path, "demo"), None, "found nowhere");
    t.file("local/demo@.service", UNIT, 0o644);
    assert_eq!(template(&path, "demo"), Some(t.path("local/demo@.service")));
    assert_eq!(template(&path, "other"), None);
    t.file("etc/demo@.service", UNIT, 0o644);
    assert_eq!(template(&path, "demo"), Some(t.path("etc/demo@.service")));
    // A generated template shadows the one after it: left to systemctl.
    std::fs::remove_file(t.path("etc/demo@.service")).unwrap();
    t.file("generator/demo@.service", UNIT, 0o644);
    assert_eq!(template(&path, "demo"), None);
}

#[test]
fn a_linked_masked_or_writable_template_is_left_to_systemctl() {
    let Some((t, path)) = tree() else { return };
    t.file("local/demo@.service", UNIT, 0o644);
    // `systemctl link` or a mask puts a symlink first on the path.
    t.link("etc/demo@.service", "/dev/null");
    assert_eq!(template(&path, "demo"), None);
    std::fs::remove_file(t.path("etc/demo@.service")).unwrap();
    assert!(template(&path, "demo").is_some());

    set_mode(&t.path("local/demo@.service"), 0o664);
    assert_eq!(template(&path, "demo"), None, "group-writable file");
    set_mode(&t.path("local/demo@.service"), 0o644);
    chown(&t.path("local/demo@.service"), 1);
    assert_eq!(template(&path, "demo"), None, "not root's file");
    chown(&t.path("local/demo@.service"), 0);
    set_mode(&t.path("local"), 0o777);
    assert_eq!(template(&path, "demo"), None, "world-writable directory");
    set_mode(&t.path("local"), 0o755);
    assert!(template(&path, "demo").is_some());

    t.dir("etc/demo@.service", 0o755);
    assert_eq!(template(&path, "demo"), None, "a directory of that name");
}

#[test]
fn the_system_path_is_systemds_head_and_ends_before_the_build_dependent_part() {
    let dirs: Vec<&str> = SYSTEM_UNIT_PATH.iter().map(|(d, _)| *d).collect();
    assert_eq!(dirs.first(), Some(&"/etc/systemd/system.control"));
    assert_eq!(dirs.last(), Some(&"/usr/local/lib/systemd/system"));
    let linkable: Vec<&str> = SYSTEM_UNIT_PATH
        .iter()
        .filter(|(_, l)| *l)
        .map(|(d, _)| *d)
        .collect();
    assert_eq!(
        linkable,
        [
            "/etc/systemd/system",
            "/run/systemd/system",
            "/usr/local/lib/systemd/system"
        ]
    );
}
