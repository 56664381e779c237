//! Per-instance limits (`unitgate limit`, the helper's `limit`), through
//! real sudo in a real systemd: set at once on the running unit, kept
//! across a reboot, shown by `status`, reset by `--reset` and by `delete`;
//! everything above the app's `[limits]`, malformed, unlisted or past
//! `max_instances` refused with nothing kept.

mod common;
use common::{demo_machine, status_json, ug, APP_CONFIG, USER};
use unitgate_tests::fixture::{audit_lines, show, HELPER};
use unitgate_tests::Machine;

const CONTROL: &str = "/etc/systemd/system.control";
const NO_INSTANCE: i32 = 66;
const USAGE: i32 = 64;
const BAD_NAME: i32 = 65;
const NO_PERM: i32 = 77;

/// The demo app with `[limits]` (or without) and room for 3 instances.
fn limits_machine(label: &str, with_limits: bool) -> Machine {
    let m = demo_machine(label);
    let mut config = APP_CONFIG.replace("[env]", "max_instances = 3\n\n[env]");
    if with_limits {
        config.push_str("\n[limits]\nmax_cpu_percent = 100\nmax_memory = \"1G\"\nmax_tasks = 64\n");
    }
    m.write_file("/etc/unitgate/apps/demo.toml", config.as_bytes(), 0o644);
    m
}

/// CPUQuota, MemoryMax and TasksMax as systemd has them for `unit`.
fn limits_of(m: &Machine, unit: &str) -> [String; 3] {
    ["CPUQuotaPerSecUSec", "MemoryMax", "TasksMax"].map(|p| show(m, unit, p))
}

/// The directories PID 1 keeps properties in, for the demo app.
fn kept_dirs(m: &Machine) -> String {
    m.sh(&format!(
        "ls -1 {CONTROL} 2>/dev/null | grep '^demo@' || true"
    ))
    .ok()
    .stdout
}

/// Validates `doc` against the schema's `def` (with the jsonschema the
/// Python client uses, on the host: not every test-bed image has Python).
fn valid(def: &str, doc: &str) {
    use std::io::Write;
    let schema = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/schema/unitgate.schema.json"
    );
    let script = format!(
        "import json,sys,jsonschema; s=json.load(open({schema:?})); \
         jsonschema.validate(json.load(sys.stdin), {{\"$ref\": \"#/$defs/{def}\", \"$defs\": s[\"$defs\"]}})"
    );
    let mut child = std::process::Command::new("python3")
        .args(["-c", &script])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 with jsonschema on the host");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(doc.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{def} invalid: {}\n{doc}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn limits_apply_at_once_survive_a_reboot_and_go_with_reset_and_delete() {
    let mut m = limits_machine("limits-life", true);
    ug(&m, "init web1").ok();
    ug(&m, "init web2").ok();
    ug(&m, "start web1").ok();
    let unit = "demo@web1.service";
    let before = limits_of(&m, unit);
    assert_eq!(before[1], "infinity", "{before:?}");

    // Set on the running unit, at once.
    let out = ug(&m, "--json limit web1 --cpu 50 --memory 512M --tasks 32");
    assert_eq!(out.code, 0, "{out}");
    valid("results_document", &out.stdout);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["results"][0]["outcome"], "limited");
    assert_eq!(limits_of(&m, unit), ["500ms", "536870912", "32"]);
    let pid = show(&m, unit, "MainPID");
    let cgroup = show(&m, unit, "ControlGroup");
    let max = m.sh(&format!(
        "cat /sys/fs/cgroup{cgroup}/pids.max 2>/dev/null || echo no-pids-controller"
    ));
    // Where the machine's hierarchy has the pids controller, the kernel has it.
    assert!(
        matches!(max.stdout.trim(), "32" | "no-pids-controller"),
        "{max}"
    );
    assert!(audit_lines(&m).iter().any(|l| l.contains(
        "action=limit instances=web1 cpu=50% memory=536870912 tasks=32 verdict=accepted"
    )));

    // Shown by status, in the table and the document.
    let v = status_json(&m, "web1");
    valid("status_document", &serde_json::to_string(&v).unwrap());
    assert_eq!(
        v["instances"][0]["limits"],
        serde_json::json!({"cpu_percent": 50, "memory_bytes": 536870912, "tasks": 32})
    );
    assert!(status_json(&m, "web2")["instances"][0]["limits"].is_null());
    let table = ug(&m, "status").ok().stdout;
    assert!(
        table.contains("limits: web1: cpu 50%, memory 512.0M, tasks 32"),
        "{table}"
    );
    assert!(!table.contains("web2: cpu"), "{table}");

    // Changing one leaves the others.
    ug(&m, "limit web1 --tasks 16").ok();
    assert_eq!(limits_of(&m, unit), ["500ms", "536870912", "16"]);

    // Kept across a reboot: the running instance comes back with them.
    m.reboot();
    common::wait_for(
        &m,
        "web1 running again",
        &format!("systemctl is-active -q {unit}"),
    );
    assert_eq!(limits_of(&m, unit), ["500ms", "536870912", "16"]);
    assert_ne!(
        show(&m, unit, "MainPID"),
        pid,
        "a new process since the reboot"
    );

    // --reset: the unit file's values at once, nothing kept.
    let out = ug(&m, "limit web1 --reset");
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(out.stdout, "web1: limits reset\n");
    assert_eq!(limits_of(&m, unit), before);
    assert_eq!(kept_dirs(&m), "");
    // Nothing kept: a second reset changes nothing and succeeds.
    assert_eq!(ug(&m, "limit web1 --reset").code, 0);

    // delete takes them too: a new instance of the name starts without.
    ug(&m, "limit web1 web2 --memory 256M").ok();
    assert_eq!(kept_dirs(&m), "demo@web1.service.d\ndemo@web2.service.d\n");
    ug(&m, "delete web1").ok();
    assert_eq!(kept_dirs(&m), "demo@web2.service.d\n");
    ug(&m, "init web1").ok();
    ug(&m, "start web1").ok();
    assert_eq!(limits_of(&m, unit), before);
}

#[test]
fn limits_beyond_the_policy_are_refused_with_nothing_kept() {
    let m = limits_machine("limits-hostile", true);
    ug(&m, "init web1").ok();
    let unit = "demo@web1.service";
    for (args, code) in [
        ("limit web1 --cpu 101", NO_PERM),
        ("limit web1 --memory 2G", NO_PERM),
        ("limit web1 --tasks 65", NO_PERM),
        ("limit web1 --memory '1G;x'", USAGE),
        ("limit web1 --cpu -5", USAGE),
        ("limit web1 --tasks infinity", USAGE),
        ("limit web1 --tasks 0", USAGE),
        ("limit web1 --memory 99999999999999999999T", USAGE),
        ("limit web1", USAGE),
        ("limit web1 --reset --cpu 5", USAGE),
        ("limit ghost --cpu 5", NO_INSTANCE),
        ("limit ../web1 --cpu 5", BAD_NAME),
    ] {
        let out = ug(&m, &format!("--json {args}"));
        assert_eq!(out.code, code, "{args}: {out}");
        assert_eq!(out.stderr.lines().count(), 1, "{args}: {out}");
    }
    assert_eq!(kept_dirs(&m), "");
    assert_eq!(show(&m, unit, "MemoryMax"), "infinity");

    // The helper itself, as the service account would call it past the
    // CLI: the same refusals, a unit that does not exist never named, and
    // no more limited instances than max_instances (3).
    let helper = |args: &str| m.sh_as(USER, &format!("sudo -n {HELPER} demo limit {args}"));
    for (args, code) in [
        ("--cpu 5 web1 web2", USAGE),
        ("--cpu 5", USAGE),
        ("--cpu 5 --cpu 6 web1", USAGE),
        ("--cpu 5%% web1", BAD_NAME),
        ("--memory '5G\nCPUQuota=100%' web1", BAD_NAME),
        ("--cpu 5 'web1\nx'", BAD_NAME),
        ("--cpu 5 -- web1", USAGE),
        ("--cpu 200 web1", NO_PERM),
        ("--property=MemoryMax=5 web1", USAGE),
    ] {
        let out = helper(args);
        assert_eq!(out.code, code, "{args}: {out}");
    }
    assert_eq!(kept_dirs(&m), "");
    for i in 1..=3 {
        assert_eq!(helper(&format!("--tasks 5 ghost{i}")).code, 0);
    }
    let out = helper("--tasks 5 ghost4");
    assert_eq!(out.code, NO_PERM, "{out}");
    assert!(out.stderr.contains("at most 3 instances"), "{out}");
    // One already limited may still change, and resets are never refused.
    assert_eq!(helper("--tasks 6 ghost1").code, 0);
    assert_eq!(helper("--reset ghost2").code, 0);
    assert_eq!(helper("--tasks 5 ghost4").code, 0);
    assert_eq!(
        kept_dirs(&m),
        "demo@ghost1.service.d\ndemo@ghost3.service.d\ndemo@ghost4.service.d\n"
    );

    // A caller the app does not list.
    m.add_user("outsider", &["unitgate"]);
    let out = m.sh_as(
        "outsider",
        &format!("sudo -n {HELPER} demo limit --cpu 5 web1"),
    );
    assert_eq!(out.code, NO_PERM, "{out}");
    assert_eq!(show(&m, unit, "CPUQuotaPerSecUSec"), "infinity");
}

#[test]
fn an_app_without_a_limits_table_allows_no_limit_and_delete_still_works() {
    let m = limits_machine("limits-none", false);
    ug(&m, "init web1").ok();
    let out = ug(&m, "limit web1 --cpu 5");
    assert_eq!(out.code, NO_PERM, "{out}");
    assert!(out.stderr.contains("allows no instance limits"), "{out}");
    let out = m.sh_as(USER, &format!("sudo -n {HELPER} demo limit --cpu 5 web1"));
    assert_eq!(out.code, NO_PERM, "{out}");
    assert!(out.stderr.contains("needs a [limits] table"), "{out}");
    // Kept from before root removed [limits] (here: set by root), and a
    // property of root's own: delete resets the first (a new instance of
    // the name must not inherit it) and leaves the second.
    m.sh("systemctl set-property demo@web1.service CPUWeight=50 TasksMax=8")
        .ok();
    assert_eq!(ug(&m, "delete web1").code, 0);
    let left = m
        .sh(&format!("ls {CONTROL}/demo@web1.service.d/"))
        .ok()
        .stdout;
    assert_eq!(left, "50-CPUWeight.conf\n");
    // Only root's own left: a reset removes nothing, so it reloads nothing.
    // (A loaded unit whose file changed needs a reload until one happens.)
    m.write_file(
        "/etc/systemd/system/sentinel.service",
        b"[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n",
        0o644,
    );
    m.sh("systemctl daemon-reload && systemctl start sentinel.service && echo '# changed' >> /etc/systemd/system/sentinel.service").ok();
    let needs_reload = || show(&m, "sentinel.service", "NeedDaemonReload");
    assert_eq!(needs_reload(), "yes");
    ug(&m, "init web1").ok();
    let out = m.sh_as(USER, &format!("sudo -n {HELPER} demo limit --reset web1"));
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(needs_reload(), "yes", "the reset reloaded");
    m.sh("systemctl daemon-reload").ok();
    assert_eq!(needs_reload(), "no");
}

#[test]
fn a_guarded_apps_reset_leaves_the_reload_to_its_reload_unit() {
    let m = limits_machine("limits-guarded", true);
    m.guard_template("demo@.service");
    ug(&m, "init web1").ok();
    ug(&m, "start web1").ok();
    let unit = "demo@web1.service";
    let before = limits_of(&m, unit);
    ug(&m, "limit web1 --tasks 8").ok();
    assert_eq!(limits_of(&m, unit)[2], "8");
    m.sh("rm -f /run/unitgate/reload-pending").ok();
    ug(&m, "limit web1 --reset").ok();
    assert_eq!(kept_dirs(&m), "");
    // Marked for the reload unit, which re-reads the unit files.
    assert!(m.sh("test -e /run/unitgate/reload-pending").success());
    assert!(audit_lines(&m)
        .iter()
        .any(|l| l.contains("instances=web1 reload=deferred limits=reset verdict=accepted")));
    m.sh("systemctl start unitgate-reload.service").ok();
    assert_eq!(limits_of(&m, unit), before);
}
