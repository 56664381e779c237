//! `unitgate` end to end, as the app's unprivileged service account
//! through real sudo and the installed helper: lifecycle, reboots, no-ops,
//! start-limit recovery and per-instance bulk results.

mod common;

use common::{demo_machine, instance, status_json, ug, wait_for, STATE_DIR};

#[test]
fn full_lifecycle_survives_reboots_as_an_unprivileged_caller() {
    let mut m = demo_machine("cli-lifecycle");
    let init = ug(&m, "init web1").ok();
    assert!(
        init.stdout.contains("web1: initialized") && init.stdout.contains("port 20000"),
        "{init}"
    );
    let env = m
        .sh(&format!(
            "cat {STATE_DIR}/web1/instance.env; stat -c %U {STATE_DIR}/web1"
        ))
        .ok()
        .stdout;
    assert!(
        env.contains("PORT=\"20000\"")
            && env.contains("GREETING=\"hello from web1 on port 20000\""),
        "{env}"
    );
    assert!(
        env.trim_end().ends_with("demo"),
        "instance owned by the service account: {env}"
    );
    m.sh(&format!(
        "test -f {STATE_DIR}/web1/data/README && test -f {STATE_DIR}/web1/server.cfg"
    ))
    .ok();

    let st = instance(&m, "web1").expect("listed after init");
    assert_eq!(st["initialized"], true);
    assert_eq!(st["enabled"], false);
    assert_eq!(st["active_state"], "inactive");
    assert!(st["drift"].is_null(), "{st}");

    ug(&m, "start web1").ok();
    let st = instance(&m, "web1").unwrap();
    assert_eq!(
        (st["active_state"].as_str(), st["sub_state"].as_str()),
        (Some("active"), Some("running")),
        "{st}"
    );
    assert_eq!(st["enabled"], true);
    assert!(st["main_pid"].as_u64().unwrap() > 1, "{st}");
    // Memory accounting depends on the cgroup controllers the container gets.
    assert!(
        st["memory_bytes"].is_u64() || st["memory_bytes"].is_null(),
        "{st}"
    );
    assert!(st["since"].as_str().unwrap().ends_with('Z'), "{st}");
    assert!(st["drift"].is_null());
    assert_eq!(ug(&m, "status web1").code, 0);
    let human = ug(&m, "status").ok().stdout;
    assert!(
        human.starts_with("INSTANCE") && human.contains("web1") && human.contains("active/running"),
        "{human}"
    );
    assert!(!human.contains('\x1b'), "no colour when not on a terminal");

    m.reboot();
    let st = instance(&m, "web1").unwrap();
    assert_eq!(
        st["active_state"], "active",
        "still running after reboot: {st}"
    );
    assert!(st["drift"].is_null());

    ug(&m, "stop web1").ok();
    assert_eq!(
        ug(&m, "status web1").code,
        3,
        "a stopped instance is not active"
    );
    m.reboot();
    let st = instance(&m, "web1").unwrap();
    assert_eq!(
        st["active_state"], "inactive",
        "still stopped after reboot: {st}"
    );
    assert_eq!(st["enabled"], false);
    assert!(st["drift"].is_null());

    ug(&m, "delete web1").ok();
    assert!(instance(&m, "web1").is_none(), "gone from status");
    assert_eq!(ug(&m, "status web1").code, 66);
    m.sh(&format!("test ! -e {STATE_DIR}/web1")).ok();
    let left = m.sh(&format!("ls -A {STATE_DIR}")).ok().stdout;
    assert_eq!(left.trim(), ".locks", "only lock files remain");
}

#[test]
fn start_is_a_noop_on_a_running_instance_and_stop_on_a_stopped_one() {
    let m = demo_machine("cli-noop");
    ug(&m, "init a").ok();
    ug(&m, "start a").ok();
    let pid = instance(&m, "a").unwrap()["main_pid"].clone();
    let again = ug(&m, "start a").ok();
    assert!(again.stdout.contains("already running"), "{again}");
    assert_eq!(
        instance(&m, "a").unwrap()["main_pid"],
        pid,
        "the process was not restarted"
    );
    ug(&m, "restart a").ok();
    assert_ne!(
        instance(&m, "a").unwrap()["main_pid"],
        pid,
        "restart gives a new process"
    );
    ug(&m, "stop a").ok();
    let again = ug(&m, "stop a").ok();
    assert!(again.stdout.contains("already stopped"), "{again}");
}

#[test]
fn start_clears_a_start_limit_failure() {
    let m = demo_machine("cli-startlimit");
    ug(&m, "init f").ok();
    m.sh_as(common::USER, &format!("touch {STATE_DIR}/f/fail"))
        .ok();
    let _ = ug(&m, "start f");
    wait_for(
        &m,
        "demo@f to hit its start limit",
        "systemctl is-failed demo@f.service",
    );
    let st = instance(&m, "f").unwrap();
    assert_eq!(st["drift"], "failed", "{st}");
    m.sh_as(common::USER, &format!("rm {STATE_DIR}/f/fail"))
        .ok();
    ug(&m, "start f").ok();
    let st = instance(&m, "f").unwrap();
    assert_eq!(st["active_state"], "active", "{st}");
    assert!(st["drift"].is_null(), "{st}");
}

#[test]
fn bulk_commands_report_per_instance_and_exit_with_the_first_failure() {
    let m = demo_machine("cli-bulk");
    for i in ["b1", "b2", "b3"] {
        ug(&m, &format!("init {i}")).ok();
    }
    let out = ug(&m, "--json start b1 nope b2 b3");
    assert_eq!(out.code, 66, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let results = v["results"].as_array().unwrap();
    let summary: Vec<(String, bool)> = results
        .iter()
        .map(|r| {
            (
                r["instance"].as_str().unwrap().to_owned(),
                r["ok"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("b1".into(), true),
            ("nope".into(), false),
            ("b2".into(), true),
            ("b3".into(), true)
        ]
    );
    assert_eq!(results[1]["error"]["kind"], "no-such-instance", "{out}");
    assert_eq!(results[1]["error"]["code"], 66, "{out}");
    assert!(results[1]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("no such instance"));
    assert!(results[0]["error"].is_null());
    let human = ug(&m, "stop b1 b2 nope");
    assert_eq!(human.code, 66);
    assert!(
        human.stdout.contains("b1: stopped")
            && human.stdout.contains("nope: failed: no such instance"),
        "{human}"
    );
    assert!(human.stderr.contains("1 of 3 instances failed"), "{human}");
    let all = status_json(&m, "b1 b2 b3");
    let states: Vec<&str> = all["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["active_state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["inactive", "inactive", "active"]);
    ug(&m, "delete b1 b2 b3").ok();
    assert_eq!(
        status_json(&m, "")["instances"].as_array().unwrap().len(),
        0
    );
}

#[test]
fn ports_are_unique_and_freed_on_delete() {
    let m = demo_machine("cli-ports");
    for i in ["p1", "p2", "p3"] {
        ug(&m, &format!("init {i}")).ok();
    }
    let port = |i: &str| {
        m.sh(&format!("grep ^PORT= {STATE_DIR}/{i}/instance.env"))
            .ok()
            .stdout
            .trim()
            .to_owned()
    };
    assert_eq!(
        [port("p1"), port("p2"), port("p3")],
        ["PORT=\"20000\"", "PORT=\"20001\"", "PORT=\"20002\""]
    );
    ug(&m, "delete p2").ok();
    ug(&m, "init p4").ok();
    assert_eq!(port("p4"), "PORT=\"20001\"");
    let taken = ug(&m, "init p5 --set PORT=20000");
    assert_eq!(taken.code, 64, "{taken}");
    assert!(
        taken.stderr.contains("already used by instance 'p1'"),
        "{taken}"
    );
    ug(&m, "init p5 --set PORT=25000 --set MAP=c1m1").ok();
    assert_eq!(port("p5"), "PORT=\"25000\"");
    // An existing instance keeps its port and values, and says which of
    // those asked for it has otherwise.
    let again = ug(
        &m,
        "init p5 --exist-ok --set PORT=25001 --set MAP=c1m1 --set NEW=x",
    )
    .ok();
    assert_eq!(
        again.stdout,
        format!(
            "p5: exists in {STATE_DIR}/p5 (port 25000); it keeps its own \
             NEW=nothing (not \"x\"), PORT=\"25000\" (not \"25001\")\n"
        )
    );
    let doc = ug(&m, "--json init p5 --exist-ok").ok();
    let doc: serde_json::Value = serde_json::from_str(&doc.stdout).expect("init JSON");
    assert_eq!(doc["outcome"], "exists");
    assert_eq!(doc["port"], 25000);
    assert_eq!(doc["set"], serde_json::json!({"MAP": "c1m1"}));
    assert_eq!(port("p5"), "PORT=\"25000\"");
}

#[test]
fn install_runs_the_install_command_as_the_caller() {
    let m = demo_machine("cli-install");
    let out = ug(&m, "install --force").ok();
    assert!(out.stdout.contains("installing demo (force=1)"), "{out}");
    let owner = m
        .sh("stat -c %U /var/lib/demo/shared/installed")
        .ok()
        .stdout;
    assert_eq!(owner.trim(), "demo");

    // Never as root: root would run the app's own code with every privilege.
    // `sudo unitgate install` runs it as the account that owns the state.
    m.sh("rm /var/lib/demo/shared/installed").ok();
    let out = m.sh("unitgate --app demo install").ok();
    assert!(out.stdout.contains("installing demo"), "{out}");
    let owner = m
        .sh("stat -c %U /var/lib/demo/shared/installed")
        .ok()
        .stdout;
    assert_eq!(owner.trim(), "demo", "root ran the install command");
    // Where only root controls the state, root refuses rather than run it.
    m.sh("sed -i 's|^state_dir = .*|state_dir = \"/var/lib/rootonly\"|' /etc/unitgate/apps/demo.toml && install -d -m 0755 /var/lib/rootonly")
        .ok();
    let out = m.sh("unitgate --app demo install");
    assert_eq!(out.code, 77, "{out}");
    assert!(out.stderr.contains("as the app's service account"), "{out}");
    m.sh("sed -i 's|^state_dir = .*|state_dir = \"/var/lib/demo/instances\"|' /etc/unitgate/apps/demo.toml")
        .ok();

    // A long, silent install shows that it is still working. It stays
    // silent until the test has seen that line, however slowly it comes.
    m.write_file(
        "/usr/local/share/demo/install.sh",
        b"#!/bin/sh\nuntil [ -e \"$UNITGATE_STATE_DIR/../shared/go\" ]; do sleep 0.1; done\necho slow install done\n",
        0o755,
    );
    m.sh_as(
        common::USER,
        "setsid sh -c 'unitgate install >/tmp/slow.out 2>/tmp/slow.err; echo $? >/tmp/slow.rc' </dev/null >/dev/null 2>&1 &",
    )
    .ok();
    wait_for(
        &m,
        "the progress line of a silent install",
        "grep -q 'still running after 15 s' /tmp/slow.err",
    );
    m.sh("test ! -e /tmp/slow.rc && touch /var/lib/demo/shared/go")
        .ok();
    wait_for(&m, "the install to finish", "test -s /tmp/slow.rc");
    let out = m.sh("cat /tmp/slow.rc /tmp/slow.out").ok().stdout;
    assert!(
        out.starts_with("0\n") && out.contains("slow install done"),
        "{out}"
    );
}
