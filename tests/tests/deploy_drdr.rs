//! DrDr as a whole (issue #15): `drdr-main@N` and `drdr-render@N` are
//! clients of display `:N` of the `drdr-x` app, bound to it by their
//! templates' dependencies, with real Xvfb and a real window manager.
//!
//! One machine boot for the whole story, in order: the templates verify
//! clean and score ≤ 2.0; starting main on `:91` brings up the display's
//! stack and main renders against it; restarting the display, its server
//! dying, and the periodic restart timer each give a new X server (a new
//! cookie) that main and render come back to by themselves; an app-wide
//! setting reaches the instances through `reconfigure --restart`; after a
//! reboot the enabled clients bring their display back; a client in a
//! network namespace of its own cannot open the display; stopping the
//! display stops everything on it; uninstalling drdr-x disables its timer.
//!
//! Every lifecycle step goes through the CLI as the account `drdr` (real
//! sudo, the helper); root installs, inspects, kills the X server, and
//! shortens the timer with a drop-in.

use std::time::Instant;

use unitgate_tests::fixture::{show, wait_until_showing};
use unitgate_tests::{Machine, Output};

const SCREEN: &str = "1024x768x24";
const STATUS: &str = "/var/lib/drdr-main/instances/91/status";
const RENDERED: &str = "/var/lib/drdr-render/instances/91/rendered";

/// `drdr-current FILE`: FILE, a stand-in's report, names the cookie display
/// :91 has now, i.e. its program is connected to the X server running now
/// (a new server has a new cookie; the stand-ins exit when theirs goes).
const CURRENT: &str = r#"#!/bin/sh
[ -s /run/drdr-x/91/xauthority ] || exit 1
cookie=$(xauth -f /run/drdr-x/91/xauthority list | awk '{ print $3 }' | sha256sum | cut -c 1-16)
grep -q " cookie=$cookie " "$1" 2>/dev/null
"#;

/// What the machine shows when a wait gives up.
const DIAGNOSE: &str = "systemctl --no-pager status 'drdr-*' 2>&1 | tail -n 80; journalctl --no-pager -u 'drdr-main@*' -u 'drdr-render@*' | tail -n 40; \
    cat /var/lib/drdr-main/instances/91/status /var/lib/drdr-render/instances/91/rendered; \
    journalctl --no-pager -n 40";

/// `unitgate --app APP ARGS` as drdr, which must succeed (else the
/// units' state and journal are shown).
#[track_caller]
fn ug(m: &Machine, app: &str, args: &str) -> Output {
    let out = m.sh_as("drdr", &format!("unitgate --app {app} {args}"));
    if !out.success() {
        let state = m.sh(DIAGNOSE);
        panic!("unitgate --app {app} {args}: {out}\n{state}");
    }
    out
}

#[track_caller]
fn wait(m: &Machine, what: &str, condition: &str) {
    // Generous: two cores shared with other suites.
    wait_until_showing(m, what, condition, 60, DIAGNOSE);
}

fn main_pid(m: &Machine, unit: &str) -> String {
    show(m, unit, "MainPID")
}

/// Both stand-ins report the X server running now.
#[track_caller]
fn wait_both_current(m: &Machine, after: &str) {
    wait(
        m,
        &format!("drdr-main to render against the current server ({after})"),
        &format!("/usr/local/sbin/drdr-current {STATUS}"),
    );
    wait(
        m,
        &format!("drdr-render to render against the current server ({after})"),
        &format!("/usr/local/sbin/drdr-current {RENDERED}"),
    );
}

/// Waits for display :91 to run an X server other than `old` (a MainPID)
/// and returns its pid.
#[track_caller]
fn wait_new_server(m: &Machine, old: &str, after: &str) -> String {
    wait(
        m,
        &format!("a new X server on :91 ({after})"),
        &format!(
            "systemctl is-active -q drdr-xvfb@91.service && \
             p=$(systemctl show -P MainPID drdr-xvfb@91.service) && [ \"$p\" != 0 ] && [ \"$p\" != {old} ]"
        ),
    );
    main_pid(m, "drdr-xvfb@91.service")
}

#[test]
fn drdr_main_and_render_follow_their_display() {
    let began = Instant::now();
    let mut m = Machine::boot("drdr");
    m.install_unitgate();
    m.sh(
        "cd /mnt/src && sh deploy/install.sh --app-only --app deploy/apps/drdr-x \
          --app deploy/apps/drdr-main --app deploy/apps/drdr-render",
    )
    .ok();
    m.write_file("/usr/local/sbin/drdr-current", CURRENT.as_bytes(), 0o755);
    let booted = began.elapsed();

    // The new templates: verify clean, and at most 2.0 in `security`.
    let mut scores = String::new();
    for unit in [
        "drdr-main@91.service",
        "drdr-render@91.service",
        "drdr-x-restart@91.service",
        "drdr-x-restart@91.timer",
    ] {
        if unit.ends_with(".service") {
            let score = m.assert_hardened(unit);
            scores.push_str(&format!("{unit}: {score}\n"));
        } else {
            m.assert_verifies_clean(unit);
        }
    }

    ug(&m, "drdr-x", &format!("init 91 --set XVFB_SCREEN={SCREEN}"));
    ug(&m, "drdr-main", "init 91");
    ug(&m, "drdr-render", "init 91");

    // Starting main starts the display's stack first; main renders on it.
    assert_eq!(show(&m, "drdr-xvfb@91.service", "ActiveState"), "inactive");
    ug(&m, "drdr-main", "start 91");
    assert_eq!(show(&m, "drdr-xvfb@91.service", "ActiveState"), "active");
    wait(
        &m,
        "the window manager of :91",
        "systemctl is-active -q drdr-wm@91.service",
    );
    ug(&m, "drdr-render", "start 91");
    wait_both_current(&m, "first start");
    let status = m.sh(&format!("cat {STATUS}")).ok().stdout;
    assert!(
        status.contains(&format!("display=:91 screen={SCREEN} ")),
        "main does not report display :91's own screen {SCREEN}: {status}"
    );
    let rendered = m.sh(&format!("cat {RENDERED}")).ok().stdout;
    assert!(
        rendered.contains(&format!("display=:91 screen={SCREEN} window=")),
        "render did not map a window on :91: {rendered}"
    );

    // A restart of the display through unitgate: a new server, and main and
    // render restarted against it (PartOf=).
    let server = main_pid(&m, "drdr-xvfb@91.service");
    let main = main_pid(&m, "drdr-main@91.service");
    ug(&m, "drdr-x", "restart 91");
    let server = wait_new_server(&m, &server, "unitgate restart");
    wait_both_current(&m, "unitgate restart");
    assert_ne!(
        main_pid(&m, "drdr-main@91.service"),
        main,
        "main was not restarted with its display"
    );
    // In order (PartOf=): stopped before its server went, not a crash that
    // Restart= made good.
    for unit in ["drdr-main@91.service", "drdr-render@91.service"] {
        assert_eq!(show(&m, unit, "NRestarts"), "0", "{unit} lost its server");
    }

    // The X server dies: systemd starts a new one (Restart=on-failure) and
    // main and render come back to it on their own.
    let wm = main_pid(&m, "drdr-wm@91.service");
    m.sh("systemctl kill --kill-whom=main --signal=KILL drdr-xvfb@91.service")
        .ok();
    let server = wait_new_server(&m, &server, "the server was killed");
    wait_both_current(&m, "the server was killed");
    wait(
        &m,
        "a new window manager on :91",
        &format!(
            "systemctl is-active -q drdr-wm@91.service && \
             [ \"$(systemctl show -P MainPID drdr-wm@91.service)\" != {wm} ]"
        ),
    );

    // The periodic restart: root's timer, made to fire now by a drop-in.
    m.write_file(
        "/etc/systemd/system/drdr-x-restart@91.timer.d/soon.conf",
        b"[Timer]\nOnCalendar=\nRandomizedDelaySec=0\nOnActiveSec=1s\nAccuracySec=1ms\n",
        0o644,
    );
    m.sh("systemctl daemon-reload && systemctl start drdr-x-restart@91.timer")
        .ok();
    wait_new_server(&m, &server, "the restart timer fired");
    wait_both_current(&m, "the restart timer fired");
    wait(
        &m,
        "the restart service to finish",
        "[ \"$(systemctl show -P ActiveState drdr-x-restart@91.service)\" = inactive ] && \
         [ \"$(systemctl show -P Result drdr-x-restart@91.service)\" = success ] && \
         [ \"$(systemctl show -P ExecMainStartTimestampMonotonic drdr-x-restart@91.service)\" != 0 ]",
    );
    m.sh("systemctl stop drdr-x-restart@91.timer").ok();

    // An app-wide setting (the seed's /etc/drdr/drdr.env): edited in the
    // app config by root, written into the instance by reconfigure.
    let status = m.sh(&format!("cat {STATUS}")).ok().stdout;
    assert!(status.contains(" PARALLELISM=4"), "{status}");
    m.sh("sed -i 's/^PARALLELISM = \"4\"/PARALLELISM = \"8\"/' /etc/unitgate/apps/drdr-main.toml")
        .ok();
    let reconf = ug(&m, "drdr-main", "reconfigure --restart");
    assert!(reconf.stdout.contains("PARALLELISM"), "{reconf}");
    wait(
        &m,
        "main to run with PARALLELISM=8",
        &format!("grep -q ' PARALLELISM=8$' {STATUS}"),
    );

    // After a reboot: main is enabled, the display only needed by it, so
    // main brings it up again, and renders against it.
    // (The reports stay in /var/lib; a new server has a new cookie.)
    m.reboot();
    wait(
        &m,
        "main and its display to run after the reboot",
        "systemctl is-active -q drdr-main@91.service && systemctl is-active -q drdr-xvfb@91.service",
    );
    wait_both_current(&m, "reboot");

    // The network exception is needed: a client in a network namespace of
    // its own does not reach the display's abstract socket (the file socket
    // is in the display's private /tmp). And PrivateNetwork= must not be
    // trusted in a unit that joins the display's namespaces: systemd (252
    // and 257) silently keeps it in the display's, the host's, namespace.
    let client = |props: &str| {
        m.sh(&format!(
            "systemd-run --quiet --wait --pipe --collect -p User=drdr {props} \
             -E DISPLAY=:91 -E XAUTHORITY=/run/drdr-x/91/xauthority xdpyinfo 2>&1"
        ))
    };
    client("-p PrivateTmp=yes").ok();
    let isolated = client("-p PrivateTmp=yes -p PrivateNetwork=yes");
    assert!(
        !isolated.success() && isolated.stdout.contains("unable to open display"),
        "a client without the host's network namespace reached the display: {isolated}"
    );

    // Stopping the display stops everything on it.
    ug(&m, "drdr-x", "stop 91");
    for unit in [
        "drdr-main@91.service",
        "drdr-render@91.service",
        "drdr-wm@91.service",
        "drdr-xvfb@91.service",
    ] {
        assert_eq!(show(&m, unit, "ActiveState"), "inactive", "{unit}");
    }
    let procs = m.sh("ps -u drdr -o pid=,comm= || true").stdout;
    assert!(procs.trim().is_empty(), "processes of drdr left: {procs}");

    // Uninstalling drdr-x disables the restart timers an operator enabled:
    // no link is left to a unit file that is gone.
    m.sh("systemctl enable drdr-x-restart@91.timer").ok();
    m.sh("cd /mnt/src && sh deploy/uninstall.sh --app drdr-x")
        .ok();
    m.sh(
        "test ! -e /etc/systemd/system/timers.target.wants/drdr-x-restart@91.timer \
          && test ! -e /usr/local/lib/systemd/system/drdr-x-restart@.timer",
    )
    .ok();

    eprintln!(
        "exposure scores:\n{scores}boot and install: {:.1} s, whole test: {:.1} s",
        booted.as_secs_f64(),
        began.elapsed().as_secs_f64()
    );
}
