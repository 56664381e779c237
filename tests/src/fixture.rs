//! A machine with unitgate installed and a small demo app whose instances
//! are `demo@<name>.service` (a `sleep infinity` each), plus the users the
//! helper's tests need:
//!
//! | user       | in group `unitgate` (sudoers) | allowed by the policy |
//! |------------|-------------------------------|-----------------------|
//! | `ops`      | yes                           | by name               |
//! | `grouped`  | yes                           | via `@demo-ops`       |
//! | `outsider` | yes                           | no                    |
//! | `stranger` | no                            | no                    |

use std::ffi::OsStr;

use crate::Machine;

/// The installed helper (PREFIX=/usr/local).
pub const HELPER: &str = "/usr/local/libexec/unitgate/unitgate-systemctl";
/// The installed CLI.
pub const CLI: &str = "/usr/local/bin/unitgate";
pub const POLICY_PATH: &str = "/etc/unitgate/apps/demo.toml";

pub const DEMO_UNIT: &str = "[Unit]
Description=unitgate demo instance %i

[Service]
ExecStart=/bin/sleep infinity
Restart=on-failure

[Install]
WantedBy=multi-user.target
";

/// The demo app's policy: every action, callers `ops` and `@demo-ops`.
pub const DEMO_POLICY: &str = r#"# demo app for the end-to-end tests
unit = "demo@.service"
instance_pattern = "[a-z0-9][a-z0-9-]{0,31}"
callers = ["ops", "@demo-ops"]
actions = ["enable", "disable", "restart", "reset-failed", "show"]
"#;

/// Boots a machine, installs unitgate, the demo unit and policy, and the
/// users in the table above.
pub fn demo_machine(label: &str) -> Machine {
    let m = Machine::boot(label);
    m.install_unitgate();
    m.write_file(
        "/etc/systemd/system/demo@.service",
        DEMO_UNIT.as_bytes(),
        0o644,
    );
    m.write_file(POLICY_PATH, DEMO_POLICY.as_bytes(), 0o644);
    m.sh("systemctl daemon-reload && groupadd demo-ops").ok();
    m.add_user("ops", &["unitgate"]);
    m.add_user("grouped", &["unitgate", "demo-ops"]);
    m.add_user("outsider", &["unitgate"]);
    m.add_user("stranger", &[]);
    m
}

/// Runs the helper as `user` through real `sudo -n` with exactly `args`.
pub fn sudo_helper(m: &Machine, user: &str, args: &[&OsStr]) -> crate::Output {
    let mut argv: Vec<&OsStr> = vec![OsStr::new("sudo"), OsStr::new("-n"), OsStr::new(HELPER)];
    argv.extend_from_slice(args);
    m.exec_as(user, &argv)
}

/// Like [`sudo_helper`] for UTF-8 arguments.
pub fn sudo_helper_str(m: &Machine, user: &str, args: &[&str]) -> crate::Output {
    let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    sudo_helper(m, user, &args)
}

/// Everything about the demo units a refused call must not change: loaded
/// units and their states, enablement symlinks, unit files, queued jobs.
pub fn systemd_snapshot(m: &Machine) -> String {
    m.sh(
        "systemctl list-units --all --plain --no-legend --no-pager 'demo@*' | sort; \
         echo --; ls -1 /etc/systemd/system/multi-user.target.wants/ | sort; \
         echo --; ls -1 /etc/systemd/system/ | sort; \
         echo --; systemctl list-jobs --no-legend --no-pager",
    )
    .ok()
    .stdout
}

/// All audit lines the helper has written so far (journald is flushed
/// first, so a line written by a finished call is always included).
pub fn audit_lines(m: &Machine) -> Vec<String> {
    m.sh("journalctl --sync; journalctl --no-pager -o cat -t unitgate-systemctl")
        .ok()
        .stdout
        .lines()
        .filter(|l| !l.starts_with("-- "))
        .map(str::to_owned)
        .collect()
}

/// `systemctl is-active` / `is-enabled` of a demo instance, as root.
pub fn unit_state(m: &Machine, instance: &str) -> (String, String) {
    let active = m.sh(&format!("systemctl is-active demo@{instance}.service"));
    let enabled = m.sh(&format!("systemctl is-enabled demo@{instance}.service"));
    (
        active.stdout.trim().to_owned(),
        enabled.stdout.trim().to_owned(),
    )
}

/// `systemctl show -P PROP UNIT` inside, trimmed.
pub fn show(m: &Machine, unit: &str, prop: &str) -> String {
    m.sh(&format!("systemctl show -P {prop} {unit}"))
        .ok()
        .stdout
        .trim()
        .to_owned()
}

/// Waits until `condition` (a shell condition, run as root inside) holds,
/// polling every 20 ms; panics naming `what` after `limit_secs`.
#[track_caller]
pub fn wait_until(m: &Machine, what: &str, condition: &str, limit_secs: u32) {
    wait_until_showing(m, what, condition, limit_secs, "true");
}

/// [`wait_until`], and on giving up, what `diagnose` prints in the
/// machine (for a failure seen once in a while: its state, not a guess).
#[track_caller]
pub fn wait_until_showing(
    m: &Machine,
    what: &str,
    condition: &str,
    limit_secs: u32,
    diagnose: &str,
) {
    let script = format!(
        "end=$(( $(date +%s) + {limit_secs} )); \
         until {condition}; do [ \"$(date +%s)\" -lt \"$end\" ] || exit 1; sleep 0.02; done"
    );
    let out = m.sh(&script);
    if !out.success() {
        let state = m.sh(diagnose);
        panic!("gave up after {limit_secs} s waiting for {what} ({condition}): {out}\n{state}");
    }
}

/// How many `demo@<instance>.service` links `systemctl enable` has left in
/// the `*.wants/`, `*.requires/` and `*.upholds/` directories.
pub fn enabled_links(m: &Machine) -> usize {
    let out = m
        .sh(
            "find /etc/systemd/system -mindepth 2 -maxdepth 2 -name 'demo@?*.service' \
             \\( -path '*.wants/*' -o -path '*.requires/*' -o -path '*.upholds/*' \\) | wc -l",
        )
        .ok();
    out.stdout.trim().parse().expect("a count")
}

/// Every lock file (anything but a directory) under /run/unitgate/locks.
pub fn lock_files(m: &Machine) -> Vec<String> {
    m.sh("find /run/unitgate/locks -mindepth 1 ! -type d 2>/dev/null | sort")
        .stdout
        .lines()
        .map(str::to_owned)
        .collect()
}
