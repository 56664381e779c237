use super::*;
use nix::fcntl::{Flock, FlockArg};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use unitgate_policy::exit;
use unitgate_policy::testutil::{is_root, set_mode, TempTree};

fn units(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| format!("demo@{n}.service")).collect()
}

fn req<'a>(app: &'a str, units: &'a [String], app_wide: bool, wait: Duration) -> Request<'a> {
    Request {
        app,
        units,
        app_wide,
        deferred_reload: false,
        wait,
    }
}

/// A root-owned `run` directory to create `unitgate/locks` in.
fn setup() -> Option<TempTree> {
    if !is_root() {
        return None;
    }
    let t = TempTree::new();
    t.dir("run", 0o755);
    Some(t)
}

/// Take `path`'s lock through a second open file description, as another
/// helper process would; held until the returned file is dropped.
fn hold(path: &Path) -> Flock<std::fs::File> {
    let f = std::fs::File::open(path).unwrap();
    Flock::lock(f, FlockArg::LockExclusiveNonblock)
        .unwrap_or_else(|_| panic!("could not take {}", path.display()))
}

fn is_locked(path: &Path) -> bool {
    let f = std::fs::File::open(path).unwrap();
    Flock::lock(f, FlockArg::LockExclusiveNonblock).is_err()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn slots_are_stable_and_bounded() {
    // Pinned: a change would let two helper versions lock one unit in
    // different slots during an upgrade.
    assert_eq!(slot(""), 197);
    assert_eq!(slot("demo@a.service"), 133);
    assert_eq!(slot("demo@b.service"), 148);
    assert_eq!(slot("left4me-server@27015.service"), 119);
    assert_eq!(slot_name(7), "slot-007");
    assert_eq!(slot_name(255), "slot-255");
    // Every slot is used and none is crowded: 100,000 names, 390 each on
    // average.
    let mut counts: BTreeMap<u32, usize> = BTreeMap::new();
    for i in 0..100_000 {
        *counts
            .entry(slot(&format!("demo@{i}.service")))
            .or_default() += 1;
    }
    assert_eq!(counts.len(), SLOTS as usize);
    assert!(counts.keys().all(|&s| s < SLOTS));
    let (lo, hi) = (
        counts.values().min().unwrap(),
        counts.values().max().unwrap(),
    );
    assert!(*lo > 250 && *hi < 550, "uneven: {lo}..{hi}");
}

#[test]
fn directories_are_root_only_and_locks_survive_exec() {
    let Some(t) = setup() else { return };
    let names = units(&["b", "a", "a"]);
    let locks = lock(&t.path("run"), &req("demo", &names, false, Duration::ZERO)).unwrap();
    assert_eq!(locks.len(), 2, "one lock per distinct slot");
    let mode = |p: &str| std::fs::metadata(t.path(p)).unwrap().mode() & 0o7777;
    assert_eq!(mode("run/unitgate"), 0o755);
    assert_eq!(mode("run/unitgate/locks"), 0o700);
    assert_eq!(mode("run/unitgate/locks/demo"), 0o700);
    let a = t
        .path("run/unitgate/locks/demo")
        .join(slot_name(slot("demo@a.service")));
    assert_eq!(mode("run/unitgate/locks/demo/slot-133"), 0o600);
    assert_eq!(
        files_in(&t.path("run/unitgate/locks/demo")),
        ["slot-133", "slot-148"]
    );
    for fd in &locks {
        let flags = nix::fcntl::fcntl(&**fd, nix::fcntl::FcntlArg::F_GETFD).unwrap();
        assert_eq!(flags & libc::FD_CLOEXEC, 0, "lock fd must survive exec");
    }
    assert!(is_locked(&a), "lock must be held");
    drop(locks);
    assert!(!is_locked(&a), "released with the descriptors");
}

#[test]
fn thousands_of_names_leave_at_most_256_files_per_app() {
    let Some(t) = setup() else { return };
    for batch in 0..20 {
        let names: Vec<String> = (0..256)
            .map(|i| format!("demo@n{batch}-{i}.service"))
            .collect();
        let held = lock(&t.path("run"), &req("demo", &names, false, Duration::ZERO)).unwrap();
        assert!(held.len() <= SLOTS as usize);
    }
    let files = files_in(&t.path("run/unitgate/locks/demo"));
    assert!(files.len() <= SLOTS as usize, "{} files", files.len());
    assert!(
        files.len() > 250,
        "5,120 names should touch nearly every slot"
    );
    let slot_file = regex::Regex::new(r"\Aslot-[0-9]{3}\z").unwrap();
    assert!(files.iter().all(|f| slot_file.is_match(f)), "{files:?}");
    // Another app gets its own set; nothing else appears in locks/.
    lock(
        &t.path("run"),
        &req("other", &units(&["x"]), false, Duration::ZERO),
    )
    .unwrap();
    assert_eq!(files_in(&t.path("run/unitgate/locks")), ["demo", "other"]);
}

#[test]
fn a_held_slot_makes_the_call_busy_after_its_wait() {
    let Some(t) = setup() else { return };
    let run = t.path("run");
    let names = units(&["a", "b"]);
    drop(lock(&run, &req("demo", &names, false, Duration::ZERO)).unwrap());
    let b = t
        .path("run/unitgate/locks/demo")
        .join(slot_name(slot("demo@b.service")));
    let _other_call = hold(&b);

    let began = std::time::Instant::now();
    let e = lock(&run, &req("demo", &names, false, Duration::from_secs(1))).unwrap_err();
    let took = began.elapsed();
    assert_eq!(e.exit_code(), exit::TEMPFAIL, "{}", e);
    assert_eq!(
        e.to_string(),
        format!(
            "busy: waited 1 s for demo@b.service (another call holds the lock of {}; retry)",
            b.display()
        )
    );
    assert!(took >= Duration::from_secs(1), "gave up early: {took:?}");
    assert!(took < Duration::from_secs(10), "overslept: {took:?}");
    // The slot taken before the busy one was released again.
    let a = t
        .path("run/unitgate/locks/demo")
        .join(slot_name(slot("demo@a.service")));
    assert!(!is_locked(&a));

    // --wait 0: one attempt.
    let began = std::time::Instant::now();
    let e = lock(&run, &req("demo", &names, false, Duration::ZERO)).unwrap_err();
    assert_eq!(e.exit_code(), exit::TEMPFAIL);
    assert!(began.elapsed() < Duration::from_secs(5));
    // Units in other slots and other apps' units are not held up.
    lock(&run, &req("demo", &units(&["a"]), false, Duration::ZERO)).unwrap();
    lock(
        &run,
        &req("other", &["other@b.service".into()], false, Duration::ZERO),
    )
    .unwrap();
}

#[test]
fn enable_takes_the_app_wide_lock_first() {
    let Some(t) = setup() else { return };
    let run = t.path("run");
    let names = units(&["a"]);
    let held = lock(&run, &req("demo", &names, true, Duration::ZERO)).unwrap();
    assert_eq!(held.len(), 2, "the app directory and one slot");
    let app_dir = t.path("run/unitgate/locks/demo");
    assert!(is_locked(&app_dir));
    // A second enable of another unit waits for it and then gives up ...
    let e = lock(&run, &req("demo", &units(&["b"]), true, Duration::ZERO)).unwrap_err();
    assert_eq!(e.exit_code(), exit::TEMPFAIL);
    assert!(
        e.to_string().starts_with(
            "busy: waited 0 s to enable instances of app demo (another call holds the lock of "
        ),
        "{}",
        e.to_string()
    );
    // ... while other actions on other units go ahead.
    lock(&run, &req("demo", &units(&["b"]), false, Duration::ZERO)).unwrap();
    drop(held);
    lock(&run, &req("demo", &units(&["b"]), true, Duration::ZERO)).unwrap();
    assert!(files_in(&app_dir).iter().all(|f| f.starts_with("slot-")));
}

#[test]
fn insecure_or_planted_lock_paths_are_refused() {
    let Some(t) = setup() else { return };
    let run = t.path("run");
    let names = units(&["a"]);
    drop(lock(&run, &req("demo", &names, false, Duration::ZERO)).unwrap());
    for dir in [
        "run/unitgate/locks/demo",
        "run/unitgate/locks",
        "run/unitgate",
    ] {
        set_mode(&t.path(dir), 0o777);
        let e = lock(&run, &req("demo", &names, false, Duration::ZERO)).unwrap_err();
        assert_eq!(e.exit_code(), exit::CONFIG, "{dir}: {}", e);
        assert!(
            e.to_string().starts_with("refusing insecure path"),
            "{}",
            e.to_string()
        );
        set_mode(
            &t.path(dir),
            if dir == "run/unitgate" { 0o755 } else { 0o700 },
        );
    }
    // A symlink or a FIFO in a slot's place is never followed or used.
    let slot_path = t
        .path("run/unitgate/locks/demo")
        .join(slot_name(slot("demo@a.service")));
    std::fs::remove_file(&slot_path).unwrap();
    t.link(
        "run/unitgate/locks/demo/slot-133",
        &t.path("target").to_string_lossy(),
    );
    let e = lock(&run, &req("demo", &names, false, Duration::ZERO)).unwrap_err();
    assert_eq!(e.exit_code(), exit::OS_ERR, "{}", e);
    assert!(!t.path("target").exists(), "followed the symlink");
    std::fs::remove_file(&slot_path).unwrap();
    nix::unistd::mkfifo(&slot_path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let e = lock(&run, &req("demo", &names, false, Duration::ZERO)).unwrap_err();
    assert_eq!(e.exit_code(), exit::CONFIG, "{}", e);
}

#[test]
fn calls_that_defer_the_reload_share_its_lock_and_the_reload_waits_for_them() {
    let Some(t) = setup() else { return };
    let run = t.path("run");
    let (a, b) = (units(&["a"]), units(&["b"]));
    let deferred = |names| Request {
        deferred_reload: true,
        ..req("demo", names, false, Duration::ZERO)
    };
    let first = lock(&run, &deferred(&a)).unwrap();
    let second = lock(&run, &deferred(&b)).unwrap();
    assert_eq!(
        (first.len(), second.len()),
        (2, 2),
        "reload lock and a slot"
    );
    let reload_lock = t.path("run/unitgate/reload.lock");
    // unitgate-reload's exclusive lock waits while any such call runs ...
    assert!(is_locked(&reload_lock));
    drop(first);
    assert!(is_locked(&reload_lock));
    drop(second);
    // ... and, once it holds it, a new call is busy rather than racing it.
    let reload = hold(&reload_lock);
    let e = lock(&run, &deferred(&a)).unwrap_err();
    assert_eq!(e.exit_code(), exit::TEMPFAIL);
    assert!(
        e.to_string().contains("for the deferred daemon-reload"),
        "{e}"
    );
    drop(reload);
    assert_eq!(
        lock(&run, &req("demo", &a, false, Duration::ZERO))
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn the_reload_marker_is_a_plain_file_of_roots_never_one_planted() {
    let Some(t) = setup() else { return };
    let run = t.path("run");
    mark_reload_pending(&run).unwrap();
    let marker = t.path("run/unitgate/reload-pending");
    let st = std::fs::symlink_metadata(&marker).unwrap();
    assert!(st.is_file() && st.uid() == 0, "{st:?}");
    // Marking twice is one marker.
    mark_reload_pending(&run).unwrap();
    assert_eq!(files_in(&t.path("run/unitgate")), ["reload-pending"]);
    std::fs::remove_file(&marker).unwrap();
    t.file("elsewhere", b"", 0o644);
    t.link(
        "run/unitgate/reload-pending",
        &t.path("elsewhere").to_string_lossy(),
    );
    assert!(mark_reload_pending(&run).is_err(), "followed a link");
    std::fs::remove_file(&marker).unwrap();
    set_mode(&t.path("run/unitgate"), 0o777);
    assert_eq!(
        mark_reload_pending(&run).unwrap_err().exit_code(),
        exit::CONFIG
    );
}
