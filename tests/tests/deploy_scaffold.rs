//! `unitgate new-app` end to end: what it writes installs with
//! deploy/install.sh --app, verifies clean, scores ≤ 2.0 and runs —
//! networkless by default, and with `--network inet --port-range` serving
//! its instances' ports. (Its rules are unit-tested in ctl/src/scaffold.rs.)

use std::process::Command;
use std::sync::OnceLock;

use unitgate_tests::{fixture, paths, Machine};

/// A native (64-bit) build of the L4D2 stand-in: binds UDP+TCP ${PORT}.
fn native_listener() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let src = paths::checkout().join("deploy/apps/left4me-server/standin/srcds_standin.c");
        let dir = paths::target_dir().join("deploy-standin");
        std::fs::create_dir_all(&dir).unwrap();
        let tmp = dir.join(format!("listener64.{}", std::process::id()));
        let ok = Command::new("gcc")
            .args(["-O2", "-o"])
            .arg(&tmp)
            .arg(&src)
            .status()
            .expect("gcc")
            .success();
        assert!(ok, "building the native listener failed");
        std::fs::rename(&tmp, dir.join("listener64")).unwrap();
    });
    "/mnt/target/deploy-standin/listener64"
}

/// `unitgate --app APP init INSTANCE` as the app's account; returns the
/// instance's environment file.
fn init(m: &Machine, app: &str, user: &str, instance: &str) -> String {
    m.sh_as(user, &format!("unitgate --app {app} init {instance}"))
        .ok();
    m.sh_as(
        user,
        &format!("cat /var/lib/{app}/instances/{instance}/instance.env"),
    )
    .ok()
    .stdout
}

fn start(m: &Machine, app: &str, user: &str, instance: &str) {
    m.sh_as(user, &format!("unitgate --app {app} start {instance}"))
        .ok();
}

#[test]
fn new_app_default_is_networkless_scores_at_most_2_and_runs() {
    let m = Machine::boot("deploy-newapp");
    m.install_unitgate();
    let wrote = m
        .sh("mkdir /root/apps && unitgate new-app sleeper --exec 'sleep infinity' --dir /root/apps")
        .ok();
    assert!(
        wrote.stdout.contains("deploy/install.sh --app-only --app"),
        "{wrote}"
    );
    m.sh("cd /mnt/src && sh deploy/install.sh --app-only --app /root/apps/sleeper")
        .ok();
    let env = init(&m, "sleeper", "sleeper", "one");
    assert!(env.contains("INSTANCE=\"one\""), "{env}");
    let score = m.assert_hardened("sleeper@one.service");
    eprintln!("new-app default (network none): {score}");
    start(&m, "sleeper", "sleeper", "one");
    let show = m.sh("systemctl show -P ActiveState sleeper@one.service; systemctl show -P User sleeper@one.service").ok();
    assert_eq!(show.stdout, "active\nsleeper\n");
}

#[test]
fn new_app_inet_with_port_range_scores_at_most_2_and_serves_each_port() {
    let listener = native_listener();
    let m = Machine::boot("deploy-newapp-inet");
    m.install_unitgate();
    m.sh(&format!(
        "mkdir /root/apps && unitgate new-app pinger --exec '{listener} -game . -port ${{PORT}}' \
         --port-range 4000-4009 --network inet --memory-max 256M --dir /root/apps && \
         cd /mnt/src && sh deploy/install.sh --app-only --app /root/apps/pinger"
    ))
    .ok();
    let mut ports = Vec::new();
    for i in ["a", "b"] {
        let env = init(&m, "pinger", "pinger", i);
        let port: u16 = env
            .lines()
            .find_map(|l| l.strip_prefix("PORT="))
            .expect("PORT")
            .trim_matches('"')
            .parse()
            .unwrap();
        assert!((4000..=4009).contains(&port), "{env}");
        ports.push(port);
        m.sh_as("pinger", &format!("mkdir /var/lib/pinger/instances/{i}/cfg && echo 'hostname \"{i}\"' > /var/lib/pinger/instances/{i}/cfg/server.cfg")).ok();
    }
    assert_ne!(ports[0], ports[1]);
    let score = m.assert_hardened("pinger@a.service");
    eprintln!("new-app --network inet --port-range: {score}");
    assert!(
        m.sh("systemctl show -P MemoryMax pinger@a.service")
            .ok()
            .stdout
            .trim()
            == "268435456"
    );

    start(&m, "pinger", "pinger", "a");
    let hello = m.sh(&format!(
        "end=$(( $(date +%s) + 60 )); until timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/{}; head -n1 <&3'; do [ \"$(date +%s)\" -lt \"$end\" ] || exit 1; sleep 0.1; done",
        ports[0]
    ));
    assert_eq!(
        hello.stdout.trim(),
        format!("srcds-standin port={} hostname=a", ports[0]),
        "{hello}"
    );
    // Instances of one app get distinct ports and run side by side.
    start(&m, "pinger", "pinger", "b");
    let hello = m.sh(&format!(
        "end=$(( $(date +%s) + 60 )); until timeout 5 bash -c 'exec 3<>/dev/udp/127.0.0.1/{}; printf x >&3; head -n1 <&3'; do [ \"$(date +%s)\" -lt \"$end\" ] || exit 1; sleep 0.1; done",
        ports[1]
    ));
    assert_eq!(
        hello.stdout.trim(),
        format!("srcds-standin port={} hostname=b", ports[1]),
        "{hello}"
    );
}

/// Scaffolds `name` with `options` as root and installs it; the score
/// `new-app` printed (measured offline before the install).
fn scaffold(m: &Machine, name: &str, exec: &str, options: &str) -> f64 {
    let wrote = m
        .sh(&format!(
            "mkdir -p /root/apps && unitgate new-app {name} --exec '{exec}' {options} --dir /root/apps && \
             cd /mnt/src && sh deploy/install.sh --app-only --app /root/apps/{name} >/dev/null"
        ))
        .ok();
    let printed = wrote
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("systemd-analyze security (offline): "))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok());
    printed.unwrap_or_else(|| panic!("new-app printed no score: {wrote}"))
}

/// Hardened as every template must be, scored live as `new-app` printed.
fn verified_and_scored(m: &Machine, unit: &str, printed: f64) {
    let live = m.assert_hardened(unit);
    eprintln!("{unit}: {live} (new-app printed {printed})");
    assert!(
        (live - printed).abs() < 0.05,
        "{unit}: live {live}, printed {printed}"
    );
}

/// `exec` as two apps of one account, `app` with `--profile profile`
/// (verified, and scored as `new-app` printed) and `control` with the
/// default sandbox; `ready` runs as root once both are installed, then an
/// instance `one` of each starts. What each program wrote.
fn beside_the_default(
    m: &Machine,
    (app, control): (&str, &str),
    profile: &str,
    exec: &str,
    ready: &str,
) -> (String, String) {
    let printed = scaffold(m, app, exec, &format!("--profile {profile}"));
    verified_and_scored(m, &format!("{app}@one.service"), printed);
    scaffold(m, control, exec, &format!("--user {app}"));
    m.sh(ready).ok();
    for name in [app, control] {
        init(m, name, app, "one");
        start(m, name, app, "one");
    }
    (seen(m, app, app, "one"), seen(m, control, app, "one"))
}

/// What an instance's program wrote into `seen` in its directory, once it
/// has.
fn seen(m: &Machine, app: &str, user: &str, instance: &str) -> String {
    let file = format!("/var/lib/{app}/instances/{instance}/seen");
    fixture::wait_until(m, &format!("{file} written"), &format!("[ -s {file} ]"), 60);
    m.sh_as(user, &format!("cat {file}")).ok().stdout
}

#[test]
fn new_app_profiles_reach_a_display_a_tmux_server_and_the_network_where_the_default_cannot() {
    let m = Machine::boot("deploy-newapp-profiles");
    m.install_unitgate();

    // x11: a display on the machine, reached through its abstract socket;
    // the default profile's network namespace of its own has none.
    m.sh("systemd-run --unit=xvfb7 /usr/bin/Xvfb :7 -nolisten tcp")
        .ok();
    fixture::wait_until(&m, "Xvfb :7", "xdpyinfo -display :7 >/dev/null 2>&1", 60);
    let ask_x = "/bin/sh -c \"xdpyinfo -display :7 >seen 2>&1; exec sleep infinity\"";
    let (shown, default) = beside_the_default(&m, ("xcli", "xnone"), "x11", ask_x, "true");
    assert!(shown.contains("dimensions:"), "{shown}");
    assert!(default.contains("unable to open display"), "{default}");

    // tmux: the account's server (here a unit of its own, as a login
    // session would be), found through TMUX_TMPDIR; with the default
    // profile tmux looks in the private /tmp, the seed's failure.
    let tell_tmux =
        "/bin/sh -c \"tmux set-environment -g FROM_UNIT yes >seen 2>&1 && echo reached >>seen; exec sleep infinity\"";
    let (shown, default) = beside_the_default(
        &m,
        ("tcli", "tnone"),
        "tmux",
        tell_tmux,
        "systemd-run --unit=tcli-tmux --uid=tcli -p Type=forking \
         -E TMUX_TMPDIR=/var/lib/tcli/tmux /usr/bin/tmux new-session -d -s main sleep infinity",
    );
    assert_eq!(shown.trim(), "reached");
    let shown = m
        .sh_as(
            "tcli",
            "TMUX_TMPDIR=/var/lib/tcli/tmux tmux show-environment -g FROM_UNIT",
        )
        .ok();
    assert_eq!(shown.stdout.trim(), "FROM_UNIT=yes", "{shown}");
    assert!(
        default.contains("no server running") || default.contains("error connecting"),
        "{default}"
    );

    // inet-out: connects out; never listening is SocketBindDeny=any, which
    // needs cgroup BPF: a container ignores it, so here it is checked as
    // configured, not enforced.
    m.sh(&format!(
        "mkdir -p /srv/hello/cfg && echo 'hostname \"out\"' > /srv/hello/cfg/server.cfg && \
         systemd-run --unit=hello-4100 -p WorkingDirectory=/srv/hello {} -game . -port 4100",
        native_listener()
    ))
    .ok();
    fixture::wait_until(
        &m,
        "the listener on 4100",
        "bash -c 'exec 3<>/dev/tcp/127.0.0.1/4100' 2>/dev/null",
        60,
    );
    let call_out =
        "/bin/bash -c \"(exec 3<>/dev/tcp/127.0.0.1/4100 && head -n1 <&3) >seen 2>&1; exec sleep infinity\"";
    let (shown, default) = beside_the_default(&m, ("ocli", "onone"), "inet-out", call_out, "true");
    assert_eq!(shown.trim(), "srcds-standin port=4100 hostname=out");
    assert!(
        default.contains("Address family not supported"),
        "{default}"
    );
    let bind = m
        .sh("systemctl show -P SocketBindDeny ocli@one.service")
        .ok();
    assert_eq!(bind.stdout.trim(), "any", "{bind}");
}
