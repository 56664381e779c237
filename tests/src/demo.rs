//! The CLI's demo app: a booted machine with unitgate installed, a small
//! demo app (`demo@.service`, a port per instance, a skeleton, an install
//! command) and its service account `demo`. Shared by the `cli_*`
//! end-to-end tests and the benchmarks.

use crate::{Machine, Output};

/// The service account that owns the demo app's state and drives it.
pub const USER: &str = "demo";
pub const STATE_DIR: &str = "/var/lib/demo/instances";

pub const APP_CONFIG: &str = r#"# The demo app: one sleeping process per instance.
unit = "demo@.service"
instance_pattern = "[A-Za-z0-9][A-Za-z0-9_-]*"
callers = ["demo", "@demoops"]
actions = ["enable", "disable", "restart", "reset-failed", "show"]

state_dir = "/var/lib/demo/instances"
skeleton_dir = "/usr/local/share/demo/skeleton"
env_file = "instance.env"
port_range = [20000, 29999]
install_command = ["/usr/local/share/demo/install.sh"]

[env]
GREETING = "hello from {instance} on port {port}"
DATA_DIR = "{instance_dir}/data"
"#;

/// Runs as the service account until stopped, unless the instance's
/// `fail` marker exists: then it exits 1 at once (so Restart=on-failure
/// soon hits the start limit of 3 starts in 10 s, set in `[Unit]`, where
/// systemd reads `StartLimitIntervalSec=`). `unitgate launch` reads the instance's
/// environment file (`$$` keeps systemd from expanding the shell's `$`).
pub const UNIT: &str = r#"[Unit]
Description=unitgate demo instance %i
StartLimitIntervalSec=10s
StartLimitBurst=3

[Service]
User=demo
ExecStart=/usr/local/bin/unitgate --app demo launch %i -- /bin/sh -c 'test ! -e "$$DATA_DIR/../fail" || exit 1; echo "$$GREETING"; exec sleep infinity'
Restart=on-failure
RestartSec=50ms

[Install]
WantedBy=multi-user.target
"#;

const INSTALL_SCRIPT: &str = "#!/bin/sh\nset -e\necho \"installing $UNITGATE_APP (force=$UNITGATE_FORCE)\"\nmkdir -p \"$UNITGATE_STATE_DIR/../shared\"\ndate > \"$UNITGATE_STATE_DIR/../shared/installed\"\n";

/// Boots a machine with unitgate installed, the demo app configured and
/// the `demo` service account (group `unitgate`) owning the state dir.
pub fn demo_machine(label: &str) -> Machine {
    let m = Machine::boot(label);
    m.install_unitgate();
    m.write_file("/etc/unitgate/apps/demo.toml", APP_CONFIG.as_bytes(), 0o644);
    m.write_file("/etc/systemd/system/demo@.service", UNIT.as_bytes(), 0o644);
    m.write_file(
        "/usr/local/share/demo/skeleton/data/README",
        b"instance data\n",
        0o644,
    );
    m.write_file(
        "/usr/local/share/demo/skeleton/server.cfg",
        b"hostname demo\n",
        0o644,
    );
    m.write_file(
        "/usr/local/share/demo/install.sh",
        INSTALL_SCRIPT.as_bytes(),
        0o755,
    );
    m.sh("systemctl daemon-reload && groupadd demoops").ok();
    m.add_user(USER, &["unitgate", "demoops"]);
    m.sh(&format!("install -d -o root -g root -m 0755 /var/lib/demo && install -d -o {USER} -g demoops -m 2770 {STATE_DIR} && chown {USER}:demoops /var/lib/demo && chmod 2770 /var/lib/demo"))
        .ok();
    m
}

/// The demo machine shaped for the benchmarks: room for `n` instances
/// (`max_instances`), the template guarded as the installer guards a
/// reference app, and a drop-in of `[Unit]` settings `unit` (may be empty)
/// plus the greeting sent nowhere: systemd 252's journald takes at most
/// 4096 stdout streams, and past them (4,382 instances running in one
/// measurement) every start fails.
pub fn bench_machine(label: &str, n: usize, unit: &str) -> Machine {
    let m = demo_machine(label);
    let unit = if unit.is_empty() {
        String::new()
    } else {
        format!("[Unit]\n{unit}\n")
    };
    m.write_file(
        "/etc/systemd/system/demo@.service.d/90-bench.conf",
        format!("{unit}[Service]\nStandardOutput=null\n").as_bytes(),
        0o644,
    );
    m.guard_template("demo@.service");
    let config = APP_CONFIG.replace("[env]", &format!("max_instances = {n}\n\n[env]"));
    m.write_file("/etc/unitgate/apps/demo.toml", config.as_bytes(), 0o644);
    m
}

/// `unitgate ARGS` as the demo service account.
pub fn ug(m: &Machine, args: &str) -> Output {
    m.sh_as(USER, &format!("unitgate {args}"))
}

/// `status --json` of the given instances (or all), parsed.
pub fn status_json(m: &Machine, names: &str) -> serde_json::Value {
    let out = ug(m, &format!("status --json {names}"));
    assert!(matches!(out.code, 0 | 3 | 66), "status failed: {out}");
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("bad JSON ({e}): {out}"))
}

/// The status element of one instance, if listed.
pub fn instance(m: &Machine, name: &str) -> Option<serde_json::Value> {
    let v = status_json(m, "");
    v["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["instance"] == name)
        .cloned()
}

/// How long a condition wait gives up after: generous, because the test
/// machine may be shared with other work (the test command runs the suite
/// with a CPU hog on every core too).
pub const WAIT_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Waits (up to [`WAIT_LIMIT`]) until the shell condition `script`, run as
/// root inside, succeeds.
#[track_caller]
pub fn wait_for(m: &Machine, what: &str, script: &str) {
    let deadline = std::time::Instant::now() + WAIT_LIMIT;
    while std::time::Instant::now() < deadline {
        if m.sh(script).success() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}: {}", m.sh(script));
}
