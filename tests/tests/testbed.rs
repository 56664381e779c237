//! The test bed's own end-to-end tests: a real systemd boots, reboots are
//! real, state persists where it should and nothing leaks onto the host.

use std::path::Path;

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use unitgate_tests::image::CACHE_DIR;
use unitgate_tests::machine::{mounts_mentioning, processes_mentioning};
use unitgate_tests::{fixture, Machine, Os};

const PROBE_UNIT: &str = "[Unit]
Description=test bed probe %i

[Service]
ExecStart=/bin/sleep infinity

[Install]
WantedBy=multi-user.target
";

fn is_active(m: &Machine, unit: &str) -> String {
    m.sh(&format!("systemctl is-active {unit}"))
        .stdout
        .trim()
        .to_owned()
}

#[test]
fn enabled_unit_survives_reboot_started_only_does_not() {
    let mut m = Machine::boot("reboot");
    m.write_file(
        "/etc/systemd/system/tb-probe@.service",
        PROBE_UNIT.as_bytes(),
        0o644,
    );
    m.sh("systemctl daemon-reload && systemctl enable --now tb-probe@kept.service && systemctl start tb-probe@lost.service")
        .ok();
    assert_eq!(is_active(&m, "tb-probe@kept.service"), "active");
    assert_eq!(is_active(&m, "tb-probe@lost.service"), "active");
    let init_before = m.init_pid();

    m.reboot();

    assert_ne!(m.init_pid(), init_before, "a reboot starts a new init");
    assert_eq!(is_active(&m, "tb-probe@kept.service"), "active");
    assert_eq!(is_active(&m, "tb-probe@lost.service"), "inactive");
    let enabled = m.sh("systemctl is-enabled tb-probe@kept.service").stdout;
    assert_eq!(enabled.trim(), "enabled");
}

#[test]
fn users_and_var_lib_survive_reboot_and_stay_off_the_host() {
    let mut m = Machine::boot("persist");
    m.add_user("tbalice", &[]);
    m.write_file("/var/lib/tb-state/marker", b"kept\n", 0o600);
    m.write_file("/usr/local/share/tb-marker", b"kept\n", 0o644);

    m.reboot();

    m.sh("getent passwd tbalice").ok();
    assert_eq!(m.sh("cat /var/lib/tb-state/marker").ok().stdout, "kept\n");
    assert_eq!(m.sh("cat /usr/local/share/tb-marker").ok().stdout, "kept\n");
    // /tmp and /run are volatile: a reboot empties them, as on real hardware.
    m.sh("touch /run/tb-volatile").ok();
    m.reboot();
    assert!(!m.sh("test -e /run/tb-volatile").success());

    // The host never saw any of it.
    let host_passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    assert!(!host_passwd.contains("tbalice"));
    assert!(!Path::new("/var/lib/tb-state").exists());
    assert!(!Path::new("/usr/local/share/tb-marker").exists());
}

#[test]
fn unprivileged_user_runs_without_privileges_and_sudo_is_real() {
    let m = Machine::boot("user");
    m.add_user("tbbob", &[]);
    let out = m.sh_as("tbbob", "id -un; id -u; echo \"$HOME\"").ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "tbbob");
    assert_ne!(lines[1], "0");
    assert_eq!(lines[2], "/home/tbbob");
    // Without a sudoers rule, sudo refuses (and never prompts: -n).
    let refused = m.sh_as("tbbob", "sudo -n /usr/bin/id -u");
    assert!(
        !refused.success(),
        "sudo must refuse a user with no rule: {refused}"
    );
    m.write_file(
        "/etc/sudoers.d/tbbob",
        b"tbbob ALL=(root) NOPASSWD: /usr/bin/id\n",
        0o440,
    );
    let allowed = m.sh_as("tbbob", "sudo -n /usr/bin/id -u").ok();
    assert_eq!(allowed.stdout.trim(), "0");
    // Unprivileged reads of systemd work over D-Bus.
    let state = m
        .sh_as("tbbob", "systemctl show -P ActiveState dbus.service")
        .ok();
    assert_eq!(state.stdout.trim(), "active");
}

#[test]
fn installer_puts_helper_cli_and_sudoers_in_place_idempotently() {
    let m = Machine::boot("install");
    m.install_unitgate();
    let stat = m
        .sh("stat -c '%U:%G %a' /usr/local/libexec/unitgate/unitgate-systemctl /usr/local/bin/unitgate /etc/sudoers.d/unitgate /etc/unitgate/apps")
        .ok()
        .stdout;
    assert_eq!(
        stat.lines().collect::<Vec<_>>(),
        [
            "root:root 755",
            "root:root 755",
            "root:root 440",
            "root:root 755"
        ]
    );
    m.sh(&format!("getent group unitgate && {} -c", m.os().visudo()))
        .ok();
    let rule = m.sh("grep -v '^#' /etc/sudoers.d/unitgate").ok().stdout;
    assert_eq!(
        rule.trim(),
        "%unitgate ALL=(root) NOPASSWD: /usr/local/libexec/unitgate/unitgate-systemctl"
    );
    // Second run: nothing to do.
    let again = m.install_unitgate();
    assert!(
        !again.stdout.contains("installed"),
        "second install changed things: {again}"
    );
}

/// Two machines, one unit name: each machine's unit is its own cgroup, so
/// a stop in one takes all of its processes, at once, and nothing of the
/// other's. (Machines sharing a cgroup made a stop fail to kill the group,
/// EIO on the other machine's pids, and wait for the other machine's
/// processes to leave a cgroup they never leave.)
#[test]
fn machines_have_cgroups_of_their_own() {
    let a = Machine::boot("cgroup-a");
    let b = Machine::boot("cgroup-b");
    let unit = "systemd-run --quiet --unit=same.service -p TimeoutStopSec=20 \
                sh -c 'sleep 1001 & sleep 1002 & wait'";
    // b's first: a cgroup lists its processes oldest first.
    b.sh(unit).ok();
    a.sh(unit).ok();
    fixture::wait_until(&a, "both children", "[ \"$(pgrep -c -x sleep)\" = 2 ]", 60);
    fixture::wait_until(&b, "both children", "[ \"$(pgrep -c -x sleep)\" = 2 ]", 60);
    let started = std::time::Instant::now();
    a.sh("systemctl stop same.service").ok();
    let took = started.elapsed();
    let left = a.sh("pgrep -a -x sleep || true").stdout;
    assert!(left.trim().is_empty(), "left after the stop: {left}");
    assert!(
        took < std::time::Duration::from_secs(15),
        "the stop waited for its timeout ({took:?}): {}",
        a.sh("journalctl --no-pager -n 10 -u same.service").stdout
    );
    assert_eq!(is_active(&b, "same.service"), "active");
    assert_eq!(b.sh("pgrep -c -x sleep").stdout.trim(), "2");
}

#[test]
fn machine_leaves_no_process_mount_or_directory_behind() {
    let m = Machine::boot("leak");
    let name = m.name().to_owned();
    let dir = m.dir().to_path_buf();
    assert!(
        !processes_mentioning(&name).is_empty(),
        "nspawn should be running"
    );
    drop(m);
    assert_eq!(processes_mentioning(&name), Vec::<u32>::new());
    assert_eq!(
        mounts_mentioning(&dir.display().to_string()),
        Vec::<String>::new()
    );
    assert!(!dir.exists(), "{} still exists", dir.display());
}

#[test]
fn machine_is_cleaned_up_when_a_test_panics() {
    let mut seen = None;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let m = Machine::boot("panic");
        seen = Some((m.name().to_owned(), m.dir().to_path_buf()));
        m.sh("false").ok();
    }));
    assert!(result.is_err(), "the failing command should have panicked");
    let (name, dir) = seen.expect("machine booted");
    assert_eq!(processes_mentioning(&name), Vec::<u32>::new());
    assert!(!dir.exists());
}

#[test]
fn machines_run_the_unified_cgroup_hierarchy_and_the_host_keeps_its_own() {
    let host_cgroups_before = mounts_mentioning("cgroup");
    let m = Machine::boot("cgroup2");
    let fs = m.sh("stat -fc %T /sys/fs/cgroup").ok().stdout;
    assert_eq!(fs.trim(), "cgroup2fs");
    m.write_file(
        "/etc/systemd/system/tb-probe@.service",
        PROBE_UNIT.as_bytes(),
        0o644,
    );
    m.sh("systemctl daemon-reload && systemctl start tb-probe@v2.service")
        .ok();
    // A unit's own cgroup, with the v2-only interfaces systemd uses to
    // kill and freeze it.
    let group = m
        .sh("systemctl show -P ControlGroup tb-probe@v2.service")
        .ok()
        .stdout;
    let group = group.trim();
    assert!(group.ends_with("/tb-probe@v2.service"), "{group}");
    m.sh(&format!(
        "test -e '/sys/fs/cgroup{group}/cgroup.kill' && test -e '/sys/fs/cgroup{group}/cgroup.freeze' \
         && grep -qx \"$(systemctl show -P MainPID tb-probe@v2.service)\" '/sys/fs/cgroup{group}/cgroup.procs'"
    ))
    .ok();
    drop(m);
    assert_eq!(mounts_mentioning("cgroup"), host_cgroups_before);
}

#[test]
fn each_os_boots_its_own_systemd_and_sudo_and_leaves_its_tree_alone() {
    for os in Os::ALL {
        let m = Machine::boot_on(os, &format!("os-{}", os.name()));
        let what = format!("{os:?}");
        let version = m.sh("systemctl --version | head -n 1").ok().stdout;
        assert!(
            version.starts_with(&format!("systemd {} ", os.systemd_version())),
            "{what}: {version}"
        );
        let release = m.sh(". /etc/os-release && echo $VERSION_ID").ok().stdout;
        let want = if os == Os::Host { "12" } else { "13" };
        assert_eq!(release.trim(), want, "{what}");
        let sudo = m.sh("sudo -V 2>&1 | head -n 1").ok().stdout;
        assert_eq!(
            sudo.starts_with("sudo-rs "),
            os == Os::TrixieSudoRs,
            "{what}: /usr/bin/sudo is {sudo}"
        );
        let checkers = m
            .sh("for v in visudo visudo-rs; do command -v $v || true; done")
            .ok()
            .stdout;
        assert!(
            checkers.contains(&format!("/{}\n", os.visudo())),
            "{what}: {checkers}"
        );
        if os == Os::TrixieSudoRs {
            assert!(!checkers.contains("/visudo\n"), "{what}: {checkers}");
        }
        // What a machine writes stays in its own upper directories.
        m.write_file("/etc/tb-written", b"x\n", 0o644);
        m.write_file("/usr/local/tb-written", b"x\n", 0o644);
        m.sh("touch /tb-written").ok();
        let usr = m.sh("touch /usr/tb-written");
        if os == Os::Host {
            // The host's /usr is bound read-only: nothing in it can change.
            assert!(usr.stderr.contains("Read-only file system"), "{usr}");
        } else {
            // A cached tree's /usr is under the volatile overlay: writes go
            // to its tmpfs, never into the image.
            usr.ok();
            let root = os.root();
            for path in [
                "etc/tb-written",
                "usr/local/tb-written",
                "usr/tb-written",
                "tb-written",
            ] {
                assert!(
                    !root.join(path).exists(),
                    "{what}: {path} reached the image"
                );
            }
        }
    }
}

#[test]
fn the_image_cache_is_root_only() {
    let root = Os::Trixie.root();
    let cache = std::fs::symlink_metadata(CACHE_DIR).unwrap();
    assert!(cache.is_dir());
    assert_eq!(cache.uid(), 0);
    assert_eq!(cache.permissions().mode() & 0o7777, 0o700);
    assert!(root.starts_with(CACHE_DIR), "{}", root.display());
    // The build's own lock and log are root's too.
    let lock = std::fs::symlink_metadata(Path::new(CACHE_DIR).join(".lock")).unwrap();
    assert!(lock.is_file() && lock.uid() == 0 && lock.permissions().mode() & 0o077 == 0);
}
