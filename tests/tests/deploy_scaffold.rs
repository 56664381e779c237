//! `unitgate new-app` end to end: what it writes installs with
//! deploy/install.sh --app, verifies clean, scores ≤ 2.0 and runs —
//! networkless by default, and with `--network inet --port-range` serving
//! its instances' ports. (Its rules are unit-tested in ctl/src/scaffold.rs.)

use std::process::Command;
use std::sync::OnceLock;

use unitgate_tests::{paths, Machine};

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
    let verify = m.sh("systemd-analyze verify sleeper@one.service");
    assert!(
        verify.success() && verify.stderr.trim().is_empty(),
        "{verify}"
    );
    let score = m.security_exposure("sleeper@one.service");
    eprintln!("new-app default (network none): {score}");
    assert!(score <= 2.0, "scaffold scores {score}");
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
    let verify = m.sh("systemd-analyze verify pinger@a.service");
    assert!(
        verify.success() && verify.stderr.trim().is_empty(),
        "{verify}"
    );
    let score = m.security_exposure("pinger@a.service");
    eprintln!("new-app --network inet --port-range: {score}");
    assert!(score <= 2.0, "scaffold scores {score}");
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
