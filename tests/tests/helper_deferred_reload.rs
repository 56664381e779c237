//! `enable` and `disable` without a daemon-reload (issue #13), through real
//! sudo and systemd: with the guard drop-in on the template, the helper
//! enables by making the links itself (or `--no-reload`) and starting,
//! disables by removing the links and stopping,
//! and leaves one coalesced reload to unitgate-reload.service. What systemd
//! holds in memory in between must never start a stopped instance.
//!
//! The installer puts the reload script, service and timer in place; the
//! demo template is not installed by it, so its guard is written here from
//! deploy/systemd/. The last tests check that the installer guards a
//! reference app and takes the guard away again.

use unitgate_tests::fixture::{audit_lines, demo_machine, sudo_helper_str, unit_state, wait_until};
use unitgate_tests::machine::GUARD;
use unitgate_tests::Machine;

/// The helper's demo machine with the guard on `demo@.service` and the
/// reload timer stopped: each test runs the reload itself ([`reload_now`])
/// where it wants one, so that what systemd holds in between is known.
fn guarded_machine(label: &str) -> Machine {
    let m = demo_machine(label);
    m.guard_template("demo@.service");
    m.sh("systemctl stop unitgate-reload.timer").ok();
    m
}

/// Whether multi-user.target, as systemd holds it in memory, wants `instance`.
fn target_wants(m: &Machine, instance: &str) -> bool {
    let out = m.sh("systemctl show -P Wants multi-user.target").ok();
    out.stdout
        .split_whitespace()
        .any(|u| u == format!("demo@{instance}.service"))
}

fn marker(m: &Machine) -> bool {
    m.sh("test -e /run/unitgate/reload-pending").success()
}

/// One run of the reload service, as its timer starts it once the pause
/// after the last reload is over (a reload under load can take a second,
/// which holds the next one back for nine).
fn reload_now(m: &Machine) {
    m.sh("rm -f /run/unitgate/reload-not-before").ok();
    start_reload_service(m);
}

fn start_reload_service(m: &Machine) {
    m.sh("systemctl start unitgate-reload.service").ok();
}

#[test]
fn enable_and_disable_defer_the_reload_and_leave_a_marker() {
    let m = guarded_machine("defer-mark");
    let out = sudo_helper_str(&m, "ops", &["demo", "enable", "a"]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(unit_state(&m, "a"), ("active".into(), "enabled".into()));
    assert!(marker(&m), "no reload-pending marker");
    assert!(!target_wants(&m, "a"), "systemd reloaded after all");
    let last = audit_lines(&m).pop().unwrap();
    assert!(
        last.contains("reload=linked") && last.contains("verdict=accepted"),
        "{last}"
    );

    reload_now(&m);
    assert!(!marker(&m), "the reload left its marker");
    assert!(target_wants(&m, "a"), "the reload did not load the link");

    let out = sudo_helper_str(&m, "ops", &["demo", "disable", "a"]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(unit_state(&m, "a"), ("inactive".into(), "disabled".into()));
    assert!(marker(&m));
    assert!(
        target_wants(&m, "a"),
        "stale Wants= expected until the reload"
    );
    reload_now(&m);
    assert!(!target_wants(&m, "a"));
}

#[test]
fn a_stopped_instance_stays_stopped_whatever_asks_for_it_before_the_reload() {
    let mut m = guarded_machine("defer-stays");
    sudo_helper_str(&m, "ops", &["demo", "enable", "s1", "s2"]).ok();
    reload_now(&m);
    sudo_helper_str(&m, "ops", &["demo", "disable", "s1"]).ok();
    assert!(target_wants(&m, "s1"), "the test needs the stale Wants=");
    for how in [
        "systemctl start multi-user.target",
        "systemctl isolate multi-user.target",
    ] {
        m.sh(how).ok();
        m.sh("systemctl is-system-running --wait >/dev/null || true");
        assert_eq!(unit_state(&m, "s1").0, "inactive", "after {how}");
        assert_eq!(unit_state(&m, "s2").0, "active", "s2 after {how}");
    }
    m.sh("systemctl daemon-reload").ok();
    m.sh("systemctl start multi-user.target").ok();
    assert_eq!(
        unit_state(&m, "s1").0,
        "inactive",
        "after an out-of-band reload"
    );
    m.reboot();
    assert_eq!(unit_state(&m, "s1"), ("inactive".into(), "disabled".into()));
    assert_eq!(unit_state(&m, "s2"), ("active".into(), "enabled".into()));
}

#[test]
fn an_instance_started_without_a_reload_comes_back_after_a_reboot() {
    let mut m = guarded_machine("defer-reboot");
    sudo_helper_str(&m, "ops", &["demo", "enable", "r1"]).ok();
    assert!(!target_wants(&m, "r1"));
    m.reboot();
    assert_eq!(unit_state(&m, "r1"), ("active".into(), "enabled".into()));
}

#[test]
fn a_reload_cut_short_after_taking_the_marker_is_redone() {
    let m = guarded_machine("defer-crash");
    sudo_helper_str(&m, "ops", &["demo", "enable", "c1"]).ok();
    // What a run killed between its rename and its reload leaves behind.
    m.sh("mv /run/unitgate/reload-pending /run/unitgate/reload-inflight")
        .ok();
    reload_now(&m);
    assert!(target_wants(&m, "c1"));
    assert!(m.sh("test ! -e /run/unitgate/reload-inflight").success());
}

#[test]
fn the_timer_converges_systemd_within_its_interval() {
    let m = guarded_machine("defer-timer");
    m.sh("systemctl start unitgate-reload.timer").ok();
    sudo_helper_str(&m, "ops", &["demo", "enable", "t1"]).ok();
    assert!(!target_wants(&m, "t1"), "the test needs a deferred reload");
    // 30 s interval plus the reload itself; generous for a loaded machine.
    wait_until(
        &m,
        "the timer's reload",
        "systemctl show -P Wants multi-user.target | tr ' ' '\\n' | grep -qx demo@t1.service",
        120,
    );
    assert!(!marker(&m));
}

/// The head of systemd's unit path the helper looks for a template in
/// (helper/src/unit_file.rs), as `systemd-analyze unit-paths` prints it on
/// systemd 252 and 257.
const UNIT_PATH_HEAD: &[&str] = &[
    "/etc/systemd/system.control",
    "/run/systemd/system.control",
    "/run/systemd/transient",
    "/run/systemd/generator.early",
    "/etc/systemd/system",
    "/etc/systemd/system.attached",
    "/run/systemd/system",
    "/run/systemd/system.attached",
    "/run/systemd/generator",
    "/usr/local/lib/systemd/system",
];

/// The target of `instance`'s enable link.
fn link_target(m: &Machine, instance: &str) -> String {
    m.sh(&format!(
        "readlink /etc/systemd/system/multi-user.target.wants/demo@{instance}.service || true"
    ))
    .ok()
    .stdout
}

/// What the helper would do for an enable of `instance`: the links it
/// would make itself, then the command it would run.
fn would_exec(m: &Machine, instance: &str) -> (Vec<String>, String) {
    let out = sudo_helper_str(m, "ops", &["--check", "demo", "enable", instance]).ok();
    let mut lines: Vec<String> = out.stdout.lines().map(str::to_owned).collect();
    let exec = lines.pop().unwrap_or_default();
    (lines, exec)
}

/// A guarded enable makes its links in the helper, not through PID 1's
/// EnableUnitFiles (7–12 ms with 1,000 enabled): they must be exactly the
/// links systemctl makes, wherever on the trusted head of the unit path
/// the template lives; a template anywhere else is left to systemctl.
#[test]
fn the_helper_makes_the_enable_links_systemctl_would() {
    let m = guarded_machine("defer-links");
    let paths = m.sh("systemd-analyze unit-paths").ok();
    let head: Vec<&str> = paths.stdout.lines().take(UNIT_PATH_HEAD.len()).collect();
    assert_eq!(head, UNIT_PATH_HEAD, "{paths}");

    let start = "would exec: /usr/bin/systemctl --no-pager --no-ask-password start -- demo@";
    for (dir, inst) in [
        ("/etc/systemd/system", "e1"),
        ("/usr/local/lib/systemd/system", "l1"),
    ] {
        m.sh(&format!(
            "test -f {dir}/demo@.service || mv /etc/systemd/system/demo@.service {dir}/; \
             systemctl daemon-reload && systemctl enable --no-reload demo@ctl-{inst}.service"
        ))
        .ok();
        let systemctls = link_target(&m, &format!("ctl-{inst}"));
        assert_eq!(systemctls.trim(), format!("{dir}/demo@.service"));
        let link = format!("/etc/systemd/system/multi-user.target.wants/demo@{inst}.service");
        assert_eq!(
            would_exec(&m, inst),
            (
                vec![format!("would link: {link} -> {dir}/demo@.service")],
                format!("{start}{inst}.service")
            )
        );
        let out = sudo_helper_str(&m, "ops", &["demo", "enable", inst]);
        assert_eq!(out.code, 0, "{out}");
        assert_eq!(link_target(&m, inst), systemctls, "template in {dir}");
        assert_eq!(unit_state(&m, inst), ("active".into(), "enabled".into()));
        let last = audit_lines(&m).pop().unwrap();
        assert!(last.contains("reload=linked"), "{last}");
        assert!(marker(&m));
        // systemctl's own disable finds and removes the helper's link.
        m.sh(&format!(
            "systemctl disable --no-reload demo@{inst}.service"
        ))
        .ok();
        assert!(link_target(&m, inst).is_empty(), "systemctl left our link");
    }

    // A linked unit file (`systemctl link`): systemctl knows where its
    // links point, so it makes them, still without a reload.
    m.sh("mv /usr/local/lib/systemd/system/demo@.service /root/ && \
         systemctl link /root/demo@.service && systemctl daemon-reload")
        .ok();
    let old_path = "would exec: /usr/bin/systemctl --no-pager --no-ask-password enable --no-reload --now -- demo@";
    assert_eq!(
        would_exec(&m, "k1"),
        (vec![], format!("{old_path}k1.service"))
    );
    let out = sudo_helper_str(&m, "ops", &["demo", "enable", "k1"]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(unit_state(&m, "k1"), ("active".into(), "enabled".into()));
    assert!(!target_wants(&m, "k1"), "systemd reloaded after all");

    // A masked instance is systemctl's to refuse, as before: no link.
    m.sh("rm -f /etc/systemd/system/demo@.service && \
          mv /root/demo@.service /etc/systemd/system/ && systemctl mask demo@m1.service && \
          systemctl daemon-reload")
        .ok();
    assert_eq!(
        would_exec(&m, "m1"),
        (vec![], format!("{old_path}m1.service"))
    );
    let out = sudo_helper_str(&m, "ops", &["demo", "enable", "m1"]);
    assert_ne!(out.code, 0, "{out}");
    assert!(
        link_target(&m, "m1").is_empty(),
        "a masked instance got a link"
    );
}

#[test]
fn an_app_without_the_guard_keeps_systemctls_own_reload() {
    let m = demo_machine("defer-unguarded");
    let out = sudo_helper_str(&m, "ops", &["demo", "enable", "u1"]);
    assert_eq!(out.code, 0, "{out}");
    assert!(target_wants(&m, "u1"), "enable --now reloads");
    assert!(!marker(&m));
    let last = audit_lines(&m).pop().unwrap();
    assert!(last.contains("reload=now"), "{last}");
}

#[test]
fn the_installer_guards_a_reference_app_and_runs_the_reload_timer() {
    let m = Machine::boot("defer-installer");
    m.install_unitgate();
    let timer = m.sh(
        "systemctl is-enabled unitgate-reload.timer; systemctl is-active unitgate-reload.timer",
    );
    assert_eq!(timer.stdout, "enabled\nactive\n", "{timer}");
    m.sh("cd /mnt/src && sh deploy/install.sh --app-only --app deploy/apps/runner-pool")
        .ok();
    let guard = "/etc/systemd/system/runner-pool@.service.d/50-unitgate-guard.conf";
    let st = m
        .sh(&format!("stat -c '%U:%G %a' {guard} && cat {guard}"))
        .ok();
    assert_eq!(st.stdout, format!("root:root 644\n{GUARD}"));
    let dropins = m
        .sh("systemctl show -P DropInPaths runner-pool@w1.service")
        .ok();
    assert!(
        dropins.stdout.contains(guard),
        "systemd does not load it: {dropins}"
    );

    m.sh("cd /mnt/src && sh deploy/uninstall.sh --app runner-pool")
        .ok();
    assert!(m
        .sh("test ! -e /etc/systemd/system/runner-pool@.service.d")
        .success());
    m.sh("cd /mnt/src && sh deploy/uninstall.sh").ok();
    let gone = m.sh(
        "systemctl list-unit-files --no-legend 'unitgate-reload*' | wc -l; \
         ls /etc/systemd/system/timers.target.wants/ | grep -c unitgate || true",
    );
    assert_eq!(gone.stdout, "0\n0\n", "{gone}");
}

#[test]
fn the_installer_leaves_a_template_it_cannot_guard_on_the_old_path() {
    let m = Machine::boot("defer-noguard");
    m.install_unitgate();
    let guard = "/etc/systemd/system/runner-pool@.service.d/50-unitgate-guard.conf";
    let install = "cd /mnt/src && sh deploy/install.sh --app-only --app /root/runner-pool";
    // A copy of runner-pool, guarded as installed ...
    m.sh(&format!(
        "cp -a /mnt/src/deploy/apps/runner-pool /root/runner-pool && {install}"
    ))
    .ok();
    assert!(m.sh(&format!("test -f {guard}")).success());
    // ... whose next version's template is wanted by another target: the
    // reinstall takes the guard away again.
    m.sh(&format!(
        "sed -i 's/^WantedBy=multi-user.target$/WantedBy=graphical.target/' \
           /root/runner-pool/runner-pool@.service && {install}"
    ))
    .ok();
    assert!(m.sh(&format!("test ! -e {guard}")).success());
    // An Also= in an [Install] section systemd reads despite its leading
    // blank, beside one that looks right, gets no guard either.
    m.sh(&format!(
        "sed -i 's/^WantedBy=graphical.target$/WantedBy=multi-user.target/' \
           /root/runner-pool/runner-pool@.service && \
         printf ' [Install]\\nAlso=sshd.service\\n' >> /root/runner-pool/runner-pool@.service && \
         {install}"
    ))
    .ok();
    assert!(m.sh(&format!("test ! -e {guard}")).success());
}

#[test]
fn a_call_holding_the_reload_lock_delays_the_reload_10_s_and_loses_nothing() {
    let m = guarded_machine("defer-stuck");
    sudo_helper_str(&m, "ops", &["demo", "enable", "k1"]).ok();
    // What a helper call its caller stopped (SIGSTOP relayed by sudo) holds
    // until it goes on: the reload lock, shared.
    m.sh("systemd-run --unit=stuck-call flock --shared /run/unitgate/reload.lock sleep infinity")
        .ok();
    wait_until(
        &m,
        "the stuck call's lock",
        "! flock --exclusive --nonblock /run/unitgate/reload.lock true",
        60,
    );
    // Other calls share the lock: they are not held up.
    let out = sudo_helper_str(&m, "ops", &["demo", "enable", "k2"]);
    assert_eq!(out.code, 0, "{out}");

    let began = std::time::Instant::now();
    reload_now(&m);
    assert!(
        began.elapsed() >= std::time::Duration::from_secs(10),
        "the reload did not wait for the lock"
    );
    assert!(target_wants(&m, "k1") && target_wants(&m, "k2"));
    assert!(marker(&m), "the marker must stay for the next run");
    let log = m.sh("journalctl -q -u unitgate-reload.service -o cat").ok();
    assert!(log.stdout.contains("busy for 10 s"), "{log}");

    m.sh("systemctl stop stuck-call").ok();
    reload_now(&m);
    assert!(!marker(&m), "the next run did not take the marker");
}

/// Six instances, each enabled and disabled five times by the helper while
/// root reloads systemd back to back and runs our reload service between:
/// every change lands on disk, and one reload afterwards makes systemd's
/// memory equal to it.
#[test]
fn reloads_anyone_triggers_during_a_storm_of_calls_lose_nothing() {
    let m = guarded_machine("defer-storm");
    m.sh("systemd-run --unit=reloader sh -c \
         'while :; do systemctl daemon-reload; systemctl start unitgate-reload.service; done'")
        .ok();
    let helper = unitgate_tests::fixture::HELPER;
    // The last round leaves s1, s3 and s5 enabled, s2, s4 and s6 disabled.
    let storm = m.sh_as(
        "ops",
        &format!(
            "for round in 1 2 3 4 5; do for i in 1 2 3 4 5 6; do \
               sudo -n {helper} demo enable s$i || echo \"FAIL enable s$i: $?\"; \
               if [ $((i % 2)) = 0 ] || [ $round != 5 ]; then \
                 sudo -n {helper} demo disable s$i || echo \"FAIL disable s$i: $?\"; \
               fi; \
             done; done"
        ),
    );
    m.sh("systemctl stop reloader").ok();
    assert!(!storm.stdout.contains("FAIL"), "{storm}");
    for i in 1..=6 {
        let want = if i % 2 == 1 {
            ("active", "enabled")
        } else {
            ("inactive", "disabled")
        };
        let got = unit_state(&m, &format!("s{i}"));
        assert_eq!(
            (got.0.as_str(), got.1.as_str()),
            want,
            "s{i} on disk and running"
        );
    }
    reload_now(&m);
    for i in 1..=6 {
        assert_eq!(
            target_wants(&m, &format!("s{i}")),
            i % 2 == 1,
            "s{i} in multi-user.target's Wants= after one reload"
        );
    }
    assert!(m
        .sh("test ! -e /run/unitgate/reload-pending && test ! -e /run/unitgate/reload-inflight")
        .success());
    m.sh("systemctl start multi-user.target").ok();
    for i in [2, 4, 6] {
        assert_eq!(unit_state(&m, &format!("s{i}")).0, "inactive", "s{i}");
    }
}

#[test]
fn with_the_reload_timer_disabled_the_guard_is_not_enough() {
    let m = guarded_machine("defer-notimer");
    // Nothing would ever load a deferred change.
    m.sh("systemctl disable unitgate-reload.timer").ok();
    let out = sudo_helper_str(&m, "ops", &["demo", "enable", "n1"]);
    assert_eq!(out.code, 0, "{out}");
    assert!(target_wants(&m, "n1"), "enable --now reloads");
    assert!(!marker(&m));
    let last = audit_lines(&m).pop().unwrap();
    assert!(last.contains("reload=now"), "{last}");
}

/// A reload that took D seconds keeps the next one back for 9 x D: with
/// thousands of units (28 s a reload), systemd then answers its clients at
/// least nine tenths of the time. Here a reload takes well under a second,
/// so the pause is set by hand.
#[test]
fn reloads_are_paced_by_what_the_last_one_took() {
    let m = guarded_machine("defer-paced");
    sudo_helper_str(&m, "ops", &["demo", "enable", "p1"]).ok();
    m.sh("echo $(( $(date +%s) + 3600 )) > /run/unitgate/reload-not-before")
        .ok();
    start_reload_service(&m);
    assert!(marker(&m) && !target_wants(&m, "p1"), "reloaded too soon");
    m.sh("echo $(( $(date +%s) - 1 )) > /run/unitgate/reload-not-before")
        .ok();
    start_reload_service(&m);
    assert!(!marker(&m) && target_wants(&m, "p1"), "did not reload");
    // The next pause: from the end of this reload, 9 x its whole seconds.
    let pause = m
        .sh("echo $(( $(cat /run/unitgate/reload-not-before) - $(date +%s) ))")
        .ok();
    let secs: i64 = pause.stdout.trim().parse().unwrap();
    assert!((-60..=60).contains(&secs), "{pause}");
    // Whatever a stray hand wrote there, the reload still runs.
    sudo_helper_str(&m, "ops", &["demo", "disable", "p1"]).ok();
    m.sh("echo garbage > /run/unitgate/reload-not-before").ok();
    start_reload_service(&m);
    assert!(!marker(&m) && !target_wants(&m, "p1"));
}
