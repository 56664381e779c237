use super::*;
use unitgate_policy::testutil::{chown, is_root, set_mode, TempTree};

const GUARD: &str = "system/demo@.service.d/50-unitgate-guard.conf";

/// A unit directory with the guard installed as the installer leaves it.
fn guarded() -> Option<TempTree> {
    if !is_root() {
        return None;
    }
    let t = TempTree::new();
    t.dir("system/demo@.service.d", 0o755);
    t.file(GUARD, TEXT.as_bytes(), 0o644);
    t.dir("system/timers.target.wants", 0o755);
    t.link(
        TIMER_LINK,
        "/usr/local/lib/systemd/system/unitgate-reload.timer",
    );
    Some(t)
}

const TIMER_LINK: &str = "system/timers.target.wants/unitgate-reload.timer";

#[test]
fn without_the_reload_timer_enabled_the_guard_does_not_count() {
    let Some(t) = guarded() else { return };
    std::fs::remove_file(t.path(TIMER_LINK)).unwrap();
    assert!(!check(&t), "no timer link");
    t.file(TIMER_LINK, b"", 0o644);
    assert!(!check(&t), "a file, not systemctl's link");
    std::fs::remove_file(t.path(TIMER_LINK)).unwrap();
    t.link(
        TIMER_LINK,
        "/usr/local/lib/systemd/system/unitgate-reload.timer",
    );
    set_mode(&t.path("system/timers.target.wants"), 0o777);
    assert!(!check(&t), "a link anyone could have made");
}

fn check(t: &TempTree) -> bool {
    installed(&t.path("system"), "demo").expect("unit dir is root's")
}

#[test]
fn the_guard_as_installed_is_recognised_for_its_app_only() {
    let Some(t) = guarded() else { return };
    assert!(check(&t));
    assert!(!installed(&t.path("system"), "other").unwrap());
}

#[test]
fn a_guard_with_any_other_text_is_not_ours() {
    let Some(t) = guarded() else { return };
    for text in [
        String::new(),
        TEXT.replace("multi-user.target.wants", "default.target.wants"),
        format!("{TEXT}ConditionPathIsSymbolicLink=\n"),
        format!("{TEXT}\n"),
        TEXT[..TEXT.len() - 1].to_owned(),
    ] {
        std::fs::write(t.path(GUARD), &text).unwrap();
        assert!(!check(&t), "accepted {text:?}");
    }
}

#[test]
fn a_guard_someone_else_could_write_is_not_trusted() {
    let Some(t) = guarded() else { return };
    set_mode(&t.path(GUARD), 0o664);
    assert!(!check(&t), "group-writable file");
    set_mode(&t.path(GUARD), 0o644);
    chown(&t.path(GUARD), 1234);
    assert!(!check(&t), "file of another uid");
    chown(&t.path(GUARD), 0);
    set_mode(&t.path("system/demo@.service.d"), 0o777);
    assert!(!check(&t), "world-writable drop-in directory");
    set_mode(&t.path("system/demo@.service.d"), 0o755);
    chown(&t.path("system/demo@.service.d"), 1234);
    assert!(!check(&t), "drop-in directory of another uid");
}

#[test]
fn a_guard_reached_through_a_link_is_not_followed() {
    let Some(t) = guarded() else { return };
    t.dir("elsewhere", 0o755);
    t.file("elsewhere/50-unitgate-guard.conf", TEXT.as_bytes(), 0o644);
    std::fs::remove_file(t.path(GUARD)).unwrap();
    t.link(
        GUARD,
        &t.path("elsewhere/50-unitgate-guard.conf").to_string_lossy(),
    );
    assert!(!check(&t), "file is a symlink");
    std::fs::remove_file(t.path(GUARD)).unwrap();
    std::fs::remove_dir(t.path("system/demo@.service.d")).unwrap();
    t.link(
        "system/demo@.service.d",
        &t.path("elsewhere").to_string_lossy(),
    );
    assert!(!check(&t), "directory is a symlink");
}

#[test]
fn no_guard_and_a_fifo_in_its_place_mean_the_old_path() {
    let Some(t) = guarded() else { return };
    std::fs::remove_file(t.path(GUARD)).unwrap();
    assert!(!check(&t), "missing");
    nix::unistd::mkfifo(
        &t.path(GUARD),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    assert!(!check(&t), "a FIFO neither hangs nor counts");
}

#[test]
fn a_unit_dir_someone_else_can_write_is_refused() {
    let Some(t) = guarded() else { return };
    set_mode(&t.path("system"), 0o777);
    assert!(installed(&t.path("system"), "demo").is_err());
}
