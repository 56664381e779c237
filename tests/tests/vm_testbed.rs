//! The VM tier's test bed itself (tests/src/vm.rs): a group of checks runs
//! in one boot of a guest whose cgroup v2 controllers are all there; a
//! failing check fails its test with everything it printed; a check past its
//! deadline is killed and the group goes on; a failed setup step keeps the
//! checks after it from running, saying why; a boot past its deadline, or a
//! guest stuck in a step, is killed; and no run leaves a process, a mount or
//! a file on the host. The
//! image cache refuses what another account could have written, builds once
//! when two ask at the same time, and keeps nothing from a failed build.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use unitgate_tests::machine::{mounts_mentioning, processes_mentioning};
use unitgate_tests::vm::{self, BootFailure, Checks, ImageCache, SharedBoot};

/// One boot for the tests below that need a guest.
static BED: SharedBoot = SharedBoot::new(|| {
    Checks::new("vm-testbed")
        .check("controllers", 30, "cat /sys/fs/cgroup/cgroup.controllers")
        .check(
            "as-user",
            30,
            "as_user nobody id -un; as_user nobody sh -c 'echo $HOME'",
        )
        .check(
            "fails",
            30,
            "echo 'seen on stdout'; echo 'seen on stderr' >&2; exit 3",
        )
        .check("hangs", 2, "echo started; exec sleep 1000")
        .check("after-a-hang", 30, "echo still running checks")
        .check(
            "waits-on-a-condition",
            10,
            "wait_until 2 'a file nobody writes' test -e /nonexistent",
        )
        // Each waits for the other: one at a time, the first would time out.
        .concurrently(|c| {
            c.check(
                "together-a",
                60,
                "touch /run/a; wait_until 30 'check b' test -e /run/b; touch /run/a-done",
            )
            .check(
                "together-b",
                60,
                "touch /run/b; wait_until 30 'check a' test -e /run/a; touch /run/b-done",
            )
        })
        .check(
            "after-the-group",
            30,
            "test -e /run/a-done && test -e /run/b-done && echo both ended",
        )
        // Last, since it stops the group.
        .setup("broken-setup", "echo 'setup says why' >&2; exit 7")
        .check("never-runs", 30, "echo must not run")
});

#[test]
fn a_group_runs_in_one_boot_with_every_cgroup_v2_controller() {
    let report = BED.report();
    let controllers = &report.ok("controllers").stdout;
    for controller in ["cpu", "memory", "pids"] {
        assert!(
            controllers.split_whitespace().any(|c| c == controller),
            "controller {controller} missing in the guest: {controllers}"
        );
    }
    assert_eq!(report.ok("after-a-hang").stdout, "still running checks\n");
    assert!(report.boot_seconds().is_some_and(|s| s > 0.0));
}

#[test]
fn checks_of_a_concurrent_group_run_at_once_and_the_next_step_waits_for_all() {
    let report = BED.report();
    report.ok("together-a");
    report.ok("together-b");
    assert_eq!(report.ok("after-the-group").stdout, "both ended\n");
}

#[test]
fn checks_reach_an_unprivileged_account() {
    assert_eq!(BED.report().ok("as-user").stdout, "nobody\n/nonexistent\n");
}

#[test]
fn a_failing_check_fails_its_test_with_its_output() {
    let report = BED.report();
    let failure = std::panic::catch_unwind(|| {
        report.ok("fails");
    })
    .expect_err("a check that exits 3 must fail the test");
    let message = failure
        .downcast_ref::<String>()
        .expect("a formatted panic message");
    for want in ["`fails`", "exit 3", "seen on stdout", "seen on stderr"] {
        assert!(
            message.contains(want),
            "the failure must show {want:?}: {message}"
        );
    }
}

#[test]
fn a_check_past_its_deadline_is_killed_and_the_group_goes_on() {
    let report = BED.report();
    let hung = report.result("hangs");
    assert!(hung.deadline_passed, "{hung}");
    assert_eq!(hung.output.stdout, "started\n");
    assert!(hung.seconds < 10.0, "{hung}");
    assert!(report.output("after-a-hang").success());
}

#[test]
fn a_condition_wait_fails_the_check_at_its_deadline_naming_what_it_waited_for() {
    let waited = BED.report().result("waits-on-a-condition");
    assert_eq!(waited.output.code, 1, "{waited}");
    assert!(!waited.deadline_passed, "{waited}");
    assert!(
        waited
            .output
            .stderr
            .contains("timed out after 2s waiting for a file nobody writes"),
        "{waited}"
    );
}

#[test]
fn a_failed_setup_step_keeps_the_checks_after_it_from_running() {
    let report = BED.report();
    let skipped = report.output("never-runs");
    assert_eq!(skipped.code, 125);
    assert!(skipped.stdout.is_empty());
    let failure = std::panic::catch_unwind(|| {
        report.ok("never-runs");
    })
    .expect_err("a check that did not run must fail its test");
    let message = failure.downcast_ref::<String>().unwrap();
    assert!(
        message.contains("not run: setup step broken-setup (")
            && message.contains("setup says why"),
        "the failure must name the setup step and show its output: {message}"
    );
}

#[test]
fn a_boot_past_its_deadline_is_killed_and_leaves_nothing_behind() {
    let error = Checks::new("vm-deadline")
        .check("never-reached", 30, "true")
        .boot_deadline(Duration::from_secs(3))
        .run()
        .expect_err("no guest gets to its checks in 3 s");
    assert!(
        matches!(error.failure, BootFailure::DeadlinePassed(_)),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("no poweroff within its deadline of 3 s"),
        "{error}"
    );
    assert_nothing_left_of(&error.run);
}

#[test]
fn a_guest_stuck_in_a_step_is_killed_and_leaves_nothing_behind() {
    // Stopping the step's `timeout` keeps the guest from ever enforcing the
    // step's deadline: the harness waits forever, as in a wedged guest.
    let error = Checks::new("vm-wedged")
        .check("wedges-the-harness", 1, "kill -STOP $PPID; exec sleep 1000")
        .check("never-reached", 30, "true")
        .run()
        .expect_err("a guest whose harness hangs must fail the run");
    assert!(
        matches!(error.failure, BootFailure::Stalled { .. }),
        "{error}"
    );
    let message = error.to_string();
    assert!(
        message.contains("for step 002 `wedges-the-harness` to end")
            && message.contains("the guest is stuck, QEMU killed"),
        "{message}"
    );
    assert!(
        error.steps[0].is_some() && error.steps[1].is_none(),
        "{message}"
    );
    assert_nothing_left_of(&error.run);
}

#[test]
fn a_finished_run_leaves_nothing_behind() {
    assert_nothing_left_of(BED.report().run_name());
}

/// No process, mount or file of the run `name` on the host.
fn assert_nothing_left_of(name: &str) {
    assert_eq!(processes_mentioning(name), Vec::<u32>::new(), "{name}");
    assert_eq!(mounts_mentioning(name), Vec::<String>::new(), "{name}");
    let dir = Path::new(vm::image::CACHE_ROOT).join("runs").join(name);
    assert!(!dir.exists(), "{} left behind", dir.display());
}

/// A scratch image cache of root's under /var/tmp, with a fake recipe whose
/// build.sh counts its runs (no Debian, no QEMU); removed when dropped, so a
/// failing test leaves nothing either.
struct Scratch {
    base: PathBuf,
}

impl Scratch {
    fn path(&self, rel: &str) -> PathBuf {
        self.base.join(rel)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

fn scratch_cache(test: &str, build: &str) -> (Scratch, ImageCache) {
    let base = Path::new("/var/tmp").join(format!("ugvm-cache-test-{test}-{}", std::process::id()));
    let scratch = Scratch { base };
    let _ = std::fs::remove_dir_all(&scratch.base);
    std::fs::create_dir_all(scratch.path("recipe")).unwrap();
    std::fs::set_permissions(&scratch.base, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(scratch.path("recipe/build.sh"), build).unwrap();
    let cache = ImageCache::new(&scratch.path("cache"), &scratch.path("recipe"));
    (scratch, cache)
}

const FAKE_BUILD: &str = "set -e
echo build >> \"$(dirname \"$0\")/../builds\"
sleep 1
for f in vmlinuz initrd.img rootfs.img; do echo $f > \"$1/$f\"; done
";

#[test]
fn two_runs_asking_for_a_missing_image_build_it_once() {
    let (scratch, cache) = scratch_cache("once", FAKE_BUILD);
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let cache = cache.clone();
            std::thread::spawn(move || cache.ensure().dir().to_path_buf())
        })
        .collect();
    let dirs: Vec<PathBuf> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(dirs[0], dirs[1]);
    let again = cache.ensure();
    assert!(
        again.built_in().is_none(),
        "the second ask must hit the cache"
    );
    assert_eq!(
        std::fs::read_to_string(scratch.path("builds")).unwrap(),
        "build\n"
    );
    assert_eq!(
        again.dir().file_name().unwrap().to_str().unwrap(),
        cache.key(),
        "the image is kept under its recipe's key"
    );
    let meta = std::fs::metadata(scratch.path("cache")).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (0, 0o700));
    drop(again);
}

#[test]
fn a_changed_recipe_gets_a_new_key() {
    let (scratch, cache) = scratch_cache("key", FAKE_BUILD);
    let before = cache.key();
    std::fs::write(scratch.path("recipe/packages.txt"), "one-more-package\n").unwrap();
    assert_ne!(cache.key(), before);
}

#[test]
fn a_failed_build_leaves_no_image_and_no_temporary_directory() {
    let (scratch, cache) = scratch_cache("fails", "echo 'no mirror today' >&2; exit 1\n");
    let failure = std::panic::catch_unwind(|| {
        cache.ensure();
    })
    .expect_err("a failed build must fail the run");
    let message = failure.downcast_ref::<String>().unwrap();
    assert!(message.contains("no mirror today"), "{message}");
    let left: Vec<_> = std::fs::read_dir(scratch.path("cache/images"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".lock"))
        .collect();
    assert_eq!(left, Vec::<String>::new());
}

/// What was done to an image file, and how.
type Tampering = (&'static str, fn(&Path));

#[test]
fn an_image_another_account_could_have_changed_is_refused() {
    let (_scratch, cache) = scratch_cache("tampered", FAKE_BUILD);
    let dir = cache.ensure().dir().to_path_buf();
    let rootfs = dir.join("rootfs.img");
    // A file handed to another account, one others may write, a link in
    // place of a file: each is refused before QEMU would see it.
    let tamperings: [Tampering; 3] = [
        ("owned by nobody", |f| {
            std::os::unix::fs::chown(f, Some(65534), None).unwrap()
        }),
        ("group-writable", |f| {
            std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o664)).unwrap()
        }),
        ("a symbolic link", |f| {
            std::fs::remove_file(f).unwrap();
            std::os::unix::fs::symlink("/etc/hostname", f).unwrap();
        }),
    ];
    for (what, tamper) in tamperings {
        std::fs::write(&rootfs, "rootfs.img\n").unwrap();
        std::os::unix::fs::chown(&rootfs, Some(0), Some(0)).unwrap();
        std::fs::set_permissions(&rootfs, std::fs::Permissions::from_mode(0o644)).unwrap();
        cache.ensure();
        tamper(&rootfs);
        let refused = std::panic::catch_unwind(|| {
            cache.ensure();
        })
        .expect_err(what);
        let message = refused.downcast_ref::<String>().unwrap();
        assert!(message.contains("not root's alone"), "{what}: {message}");
        let _ = std::fs::remove_file(&rootfs);
    }
}

#[test]
fn a_cache_directory_another_account_created_is_refused() {
    let (scratch, cache) = scratch_cache("foreign", FAKE_BUILD);
    std::fs::create_dir(scratch.path("cache")).unwrap();
    std::os::unix::fs::chown(scratch.path("cache"), Some(65534), Some(65534)).unwrap();
    let refused = std::panic::catch_unwind(|| {
        cache.ensure();
    })
    .expect_err("a cache root owned by nobody must be refused");
    let message = refused.downcast_ref::<String>().unwrap();
    assert!(
        message.contains("must be a directory owned by root with mode 0700"),
        "{message}"
    );
    assert!(
        !scratch.path("builds").exists(),
        "nothing may be built into a directory another account owns"
    );
}

#[test]
fn a_cache_directory_that_is_a_link_is_refused_and_nothing_is_written_through_it() {
    // /var/tmp is everyone's: another account could put a link where the
    // cache goes, even one to a directory of root's.
    let (scratch, cache) = scratch_cache("link", FAKE_BUILD);
    let elsewhere = scratch.path("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink(&elsewhere, scratch.path("cache")).unwrap();
    let refused = std::panic::catch_unwind(|| {
        cache.ensure();
    })
    .expect_err("a cache root that is a link must be refused");
    let message = refused.downcast_ref::<String>().unwrap();
    assert!(
        message.contains("(it is a symbolic link"),
        "the refusal must say why: {message}"
    );
    assert_eq!(
        std::fs::read_dir(&elsewhere).unwrap().count(),
        0,
        "nothing may be created through the link"
    );
    assert!(!scratch.path("builds").exists());
}

#[test]
fn the_lock_and_the_last_used_stamp_are_never_opened_through_a_link() {
    let (scratch, cache) = scratch_cache("stamp", FAKE_BUILD);
    let dir = cache.ensure().dir().to_path_buf();
    let victim = scratch.path("victim");
    std::fs::write(&victim, "untouched\n").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
    // Content, mtime and mode: opening a lock would chmod what it opened.
    let victim_state = || {
        let meta = std::fs::metadata(&victim).unwrap();
        (
            std::fs::read_to_string(&victim).unwrap(),
            meta.modified().unwrap(),
            meta.mode() & 0o7777,
        )
    };
    let before = victim_state();

    // The stamp: a link is refused, and the file behind it stays as it was.
    let stamp = dir.join("last-used");
    std::fs::remove_file(&stamp).unwrap();
    std::os::unix::fs::symlink(&victim, &stamp).unwrap();
    let refused = std::panic::catch_unwind(|| {
        cache.ensure();
    })
    .expect_err("a last-used stamp that is a link must be refused");
    let message = refused.downcast_ref::<String>().unwrap();
    assert!(message.contains("last-used"), "{message}");
    assert_eq!(victim_state(), before);
    std::fs::remove_file(&stamp).unwrap();

    // The lock: the same.
    let lock = dir.with_extension("lock");
    std::fs::remove_file(&lock).unwrap();
    std::os::unix::fs::symlink(&victim, &lock).unwrap();
    let refused = std::panic::catch_unwind(|| {
        cache.ensure();
    })
    .expect_err("a lock file that is a link must be refused");
    let message = refused.downcast_ref::<String>().unwrap();
    assert!(message.contains("open lock"), "{message}");
    assert_eq!(victim_state(), before);
}
