use super::*;
use unitgate_policy::exit;
use unitgate_policy::testutil::{chown, is_root, set_mode, TempTree};

fn set(names: &[&str]) -> BTreeSet<Vec<u8>> {
    names
        .iter()
        .map(|n| format!("demo@{n}.service").into_bytes())
        .collect()
}

fn units(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| format!("demo@{n}.service")).collect()
}

/// A unit directory the way `systemctl enable` leaves it, plus look-alikes
/// that must not count.
fn unit_dir() -> Option<TempTree> {
    if !is_root() {
        return None;
    }
    let t = TempTree::new();
    t.dir("system/multi-user.target.wants", 0o755);
    t.dir("system/sockets.target.requires", 0o755);
    t.dir("system/graphical.target.upholds", 0o755);
    t.dir("system/demo@.service.d", 0o755);
    t.dir("system/backup.wants.old", 0o755);
    t.file("system/demo@.service", b"[Service]\n", 0o644);
    t.file("system/stray.wants", b"not a directory\n", 0o644);
    let target = "/etc/systemd/system/demo@.service";
    for link in [
        "multi-user.target.wants/demo@a.service",
        "multi-user.target.wants/demo@b.service",
        "multi-user.target.wants/demo@.service",
        "multi-user.target.wants/demo-x@c.service",
        "multi-user.target.wants/other@d.service",
        "multi-user.target.wants/demo@e.socket",
        "multi-user.target.wants/xdemo@f.service",
        "sockets.target.requires/demo@a.service",
        "graphical.target.upholds/demo@c.service",
        "backup.wants.old/demo@z.service",
        "demo@.service.d/demo@y.service",
    ] {
        t.link(&format!("system/{link}"), target);
    }
    Some(t)
}

#[test]
fn counts_distinct_instances_in_wants_requires_and_upholds() {
    let Some(t) = unit_dir() else { return };
    let found = enabled_units(&t.path("system"), "demo").unwrap();
    assert_eq!(found, set(&["a", "b", "c"]));
    let other = enabled_units(&t.path("system"), "demo-x").unwrap();
    assert_eq!(other, [b"demo-x@c.service".to_vec()].into());
    assert!(enabled_units(&t.path("system"), "nothing")
        .unwrap()
        .is_empty());
}

#[test]
fn untrusted_or_symlinked_link_directories_fail_closed() {
    let Some(t) = unit_dir() else { return };
    let dir = t.path("system");
    set_mode(&t.path("system/multi-user.target.wants"), 0o775);
    let e = enabled_units(&dir, "demo").unwrap_err();
    assert_eq!(e.exit_code(), exit::CONFIG, "{}", e);
    set_mode(&t.path("system/multi-user.target.wants"), 0o755);
    chown(&dir, 1);
    let e = enabled_units(&dir, "demo").unwrap_err();
    assert!(
        e.to_string().contains("owned by uid 1"),
        "{}",
        e.to_string()
    );
    chown(&dir, 0);
    // systemctl would write links through it, where they would go uncounted.
    t.dir("elsewhere", 0o755);
    t.link(
        "system/default.target.wants",
        &t.path("elsewhere").to_string_lossy(),
    );
    let e = enabled_units(&dir, "demo").unwrap_err();
    assert_eq!(e.exit_code(), exit::CONFIG, "{}", e);
    assert!(e.to_string().contains("a symlink"), "{}", e);
}

#[test]
fn the_limit_counts_the_union_of_enabled_and_requested() {
    let enabled = set(&["a", "b", "c"]);
    // Already enabled names do not count again.
    check_room("demo", 3, &enabled, &units(&["a", "b", "c"])).unwrap();
    check_room("demo", 5, &enabled, &units(&["a", "d", "e"])).unwrap();
    let e = check_room("demo", 5, &enabled, &units(&["a", "d", "e", "f"])).unwrap_err();
    assert_eq!(e.exit_code(), exit::NO_PERM);
    assert_eq!(
        e.to_string(),
        "app demo allows at most 5 enabled instances; 3 already enabled, this call would add 3 \
         (disable some first, or raise max_instances in its policy)"
    );
    let e = check_room("demo", 1, &BTreeSet::new(), &units(&["a", "b"])).unwrap_err();
    assert!(
        e.to_string()
            .contains("0 already enabled, this call would add 2"),
        "{}",
        e.to_string()
    );
    // Above a limit lowered since, enabled instances can still be started,
    // but nothing can be added.
    check_room("demo", 2, &enabled, &units(&["c", "a"])).unwrap();
    assert!(check_room("demo", 2, &enabled, &units(&["c", "x"])).is_err());
}

#[test]
fn removing_links_takes_the_units_from_every_link_directory_and_nothing_else() {
    let Some(t) = unit_dir() else { return };
    let dir = t.path("system");
    t.file("system/multi-user.target.wants/demo@q.service", b"", 0o644);
    remove_links(&dir, &units(&["a", "c", "q", "never-enabled"])).unwrap();
    // q is a plain file there: counted (it could be a unit), not removed.
    assert_eq!(enabled_units(&dir, "demo").unwrap(), set(&["b", "q"]));
    // Outside link directories, and anything not a symlink, stays.
    for kept in [
        "backup.wants.old/demo@z.service",
        "demo@.service.d/demo@y.service",
        "multi-user.target.wants/demo-x@c.service",
        "multi-user.target.wants/demo@q.service",
    ] {
        assert!(
            std::fs::symlink_metadata(t.path(&format!("system/{kept}"))).is_ok(),
            "{kept} removed"
        );
    }
    set_mode(&t.path("system/multi-user.target.wants"), 0o775);
    let e = remove_links(&dir, &units(&["b"])).unwrap_err();
    assert_eq!(e.exit_code(), exit::CONFIG, "{e}");
}

#[test]
fn making_links_points_each_unit_at_the_template_in_the_wants_directory_only() {
    let Some(t) = unit_dir() else { return };
    let dir = t.path("system");
    let template = Path::new("/etc/systemd/system/demo@.service");
    let made = make_links(&dir, template, &units(&["n1", "a", "n2"])).unwrap();
    assert_eq!(made, units(&["n1", "n2"]), "a was linked already");
    assert_eq!(
        enabled_units(&dir, "demo").unwrap(),
        set(&["a", "b", "c", "n1", "n2"])
    );
    let target = |l: &str| std::fs::read_link(t.path(&format!("system/{l}"))).unwrap();
    assert_eq!(target("multi-user.target.wants/demo@n1.service"), template);
    assert!(!t
        .path("system/sockets.target.requires/demo@n1.service")
        .exists());
    // Undone: only what this call made.
    remove_made(&dir, &made).unwrap();
    assert_eq!(enabled_units(&dir, "demo").unwrap(), set(&["a", "b", "c"]));
}

#[test]
fn a_link_to_something_else_in_the_way_fails_the_call_and_undoes_it() {
    let Some(t) = unit_dir() else { return };
    let dir = t.path("system");
    let template = Path::new("/usr/local/lib/systemd/system/demo@.service");
    // demo@a links to /etc/systemd/system/demo@.service, another file.
    let e = make_links(&dir, template, &units(&["n1", "a", "n2"])).unwrap_err();
    assert!(e.to_string().contains("cannot link"), "{e}");
    assert_eq!(enabled_units(&dir, "demo").unwrap(), set(&["a", "b", "c"]));
    let kept = std::fs::read_link(t.path("system/multi-user.target.wants/demo@a.service"));
    assert_eq!(
        kept.unwrap(),
        Path::new("/etc/systemd/system/demo@.service")
    );
    // A link to the same file under another name counts as linked.
    t.file("system/demo@.service", b"[Service]\n", 0o644);
    let same = t.path("system/demo@.service");
    t.link(
        "system/multi-user.target.wants/demo@s.service",
        &same.to_string_lossy(),
    );
    let alias = t.path("system/alias@.service");
    std::os::unix::fs::symlink(&same, &alias).unwrap();
    assert_eq!(
        make_links(&dir, &alias, &units(&["s"])).unwrap(),
        Vec::<String>::new()
    );
}

#[test]
fn making_links_creates_a_missing_wants_directory_and_refuses_what_is_in_the_way() {
    let Some(t) = unit_dir() else { return };
    let dir = t.path("system");
    let template = Path::new("/etc/systemd/system/demo@.service");
    std::fs::remove_dir_all(t.path("system/multi-user.target.wants")).unwrap();
    make_links(&dir, template, &units(&["a"])).unwrap();
    let meta = std::fs::symlink_metadata(t.path("system/multi-user.target.wants")).unwrap();
    assert!(meta.is_dir());
    // 0755 under the helper's umask (022, set before anything runs); never
    // writable by others, whatever the test's umask.
    let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions());
    assert_eq!(mode & 0o022, 0, "{mode:o}");

    // A plain file where the link goes is not an enable link: an error,
    // and the file stays.
    t.file("system/multi-user.target.wants/demo@f.service", b"x", 0o644);
    let e = make_links(&dir, template, &units(&["f"])).unwrap_err();
    assert!(e.to_string().contains("cannot link"), "{e}");
    assert!(
        std::fs::symlink_metadata(t.path("system/multi-user.target.wants/demo@f.service"))
            .unwrap()
            .is_file()
    );

    // A wants directory anyone could write to, or a symlink to one: refused,
    // nothing linked.
    set_mode(&t.path("system/multi-user.target.wants"), 0o777);
    let e = make_links(&dir, template, &units(&["w"])).unwrap_err();
    assert_eq!(e.exit_code(), exit::CONFIG, "{e}");
    assert!(!t
        .path("system/multi-user.target.wants/demo@w.service")
        .exists());
    std::fs::remove_dir_all(t.path("system/multi-user.target.wants")).unwrap();
    t.dir("elsewhere", 0o755);
    t.link(
        "system/multi-user.target.wants",
        &t.path("elsewhere").to_string_lossy(),
    );
    let e = make_links(&dir, template, &units(&["s"])).unwrap_err();
    assert!(e.to_string().contains("a symlink"), "{e}");
    assert!(!t.path("elsewhere/demo@s.service").exists());
}
