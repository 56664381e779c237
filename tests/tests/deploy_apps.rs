//! End-to-end proofs for the reference apps in deploy/apps/: their unit
//! templates verify clean and score ≤ 2.0 in `systemd-analyze security`, and
//! the real payloads run under them — a 32-bit stand-in for the L4D2 server
//! on two ports that survives a reboot, Debian's Xvfb with a real window
//! manager and a per-display cookie that leaves nothing behind, a runner
//! pool whose units carry their limits, and a task runner whose every task
//! is a limited unit of its own through the helper's `run`.
//!
//! Driving: everything an operator does day to day goes through the CLI as
//! the app's service account — `unitgate --app APP init|start|stop` — and
//! so through real sudo, the shipped sudoers drop-in and the helper. Root
//! only installs, inspects and reboots.

use std::process::Command;
use std::sync::OnceLock;

use unitgate_tests::{paths, Machine, Output};

/// Boots a machine with unitgate and the given reference apps installed by
/// the project's own installer.
fn machine_with_apps(label: &str, apps: &[&str]) -> Machine {
    let m = Machine::boot(label);
    m.install_unitgate();
    let mut cmd = String::from("cd /mnt/src && sh deploy/install.sh --app-only");
    for app in apps {
        cmd.push_str(&format!(" --app deploy/apps/{app}"));
    }
    m.sh(&cmd).ok();
    m
}

/// Runs `unitgate --app APP ARGS` as `account`.
fn ug(m: &Machine, account: &str, app: &str, args: &str) -> Output {
    m.sh_as(account, &format!("unitgate --app {app} {args}"))
}

/// `unitgate init INSTANCE [--set K=V]...` as the service account.
fn init_instance(m: &Machine, app: &str, account: &str, instance: &str, sets: &[&str]) {
    let mut args = format!("init {instance}");
    for kv in sets {
        args.push_str(&format!(" --set '{kv}'"));
    }
    ug(m, account, app, &args).ok();
}

/// The app's service account and its unit prefix.
fn account_of(app: &str) -> &'static str {
    match app {
        "left4me-server" => "left4me",
        "drdr-x" => "drdr",
        "runner-pool" => "runner",
        "task-runner" => "taskrunner",
        _ => panic!("unknown app {app}"),
    }
}

/// `unitgate start` (helper `enable` = `systemctl enable --now`).
fn start(m: &Machine, app: &str, instances: &[&str]) -> Output {
    ug(
        m,
        account_of(app),
        app,
        &format!("start {}", instances.join(" ")),
    )
}

/// `unitgate stop` (helper `disable` = `systemctl disable --now`).
fn stop(m: &Machine, app: &str, instances: &[&str]) -> Output {
    ug(
        m,
        account_of(app),
        app,
        &format!("stop {}", instances.join(" ")),
    )
}

fn active_state(m: &Machine, unit: &str) -> String {
    m.sh(&format!("systemctl show -P ActiveState {unit}"))
        .stdout
        .trim()
        .to_owned()
}

/// Waits (up to 60 s: the machine may be shared with other work) until
/// `script` succeeds inside the machine.
#[track_caller]
fn wait_for(m: &Machine, what: &str, script: &str) {
    let out = m.sh(&format!(
        "end=$(( $(date +%s) + 60 )); \
         until ( {script} ) >/dev/null 2>&1; do [ \"$(date +%s)\" -lt \"$end\" ] || exit 1; sleep 0.1; done"
    ));
    if !out.success() {
        let diag = m.sh("systemctl --no-pager --failed; journalctl --no-pager -n 60");
        panic!("timed out waiting for {what}\n{diag}");
    }
}

/// The L4D2 stand-in: deploy/apps/left4me-server/standin/srcds_standin.c built
/// as a static 32-bit i386 binary (like the real srcds_linux), once per test
/// run, into the target directory that the machines see at /mnt/target.
fn standin_binary() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let src = paths::checkout().join("deploy/apps/left4me-server/standin/srcds_standin.c");
        let dir = paths::target_dir().join("deploy-standin");
        std::fs::create_dir_all(&dir).unwrap();
        let tmp = dir.join(format!("srcds_linux.{}", std::process::id()));
        let status = Command::new("gcc")
            .args(["-m32", "-static", "-O2", "-o"])
            .arg(&tmp)
            .arg(&src)
            .status()
            .expect("run gcc (deploy/test-deps.txt lists gcc-multilib)");
        assert!(
            status.success(),
            "building the 32-bit stand-in failed (is gcc-multilib installed?)"
        );
        std::fs::rename(&tmp, dir.join("srcds_linux")).unwrap();
    });
    "/mnt/target/deploy-standin/srcds_linux"
}

/// Puts the stand-in where `unitgate install` (SteamCMD) would put the game:
/// srcds_run (a shell script) + srcds_linux (i386) in the shared game dir.
fn install_standin_game(m: &Machine) {
    let bin = standin_binary();
    m.sh_as(
        "left4me",
        &format!(
            "set -e; g=/var/lib/left4me-server/game; cp {bin} $g/srcds_linux; \
             cp /mnt/src/deploy/apps/left4me-server/standin/srcds_run $g/srcds_run; \
             chmod 0755 $g/srcds_linux $g/srcds_run; mkdir -p $g/left4dead2/cfg; \
             ln -sfn /var/lib/left4me-server/instances $g/left4dead2/cfg/unitgate-instances"
        ),
    )
    .ok();
}

/// `unitgate init` of a left4me server with its own hostname; returns the
/// port the CLI allocated from the app's port_range.
fn init_left4me(m: &Machine, instance: &str, hostname: &str) -> u16 {
    init_instance(m, "left4me-server", "left4me", instance, &[]);
    let dir = format!("/var/lib/left4me-server/instances/{instance}");
    m.sh_as(
        "left4me",
        &format!("sed -i 's/^hostname .*/hostname \"{hostname}\"/' {dir}/server.cfg"),
    )
    .ok();
    let env = m
        .sh_as("left4me", &format!("cat {dir}/instance.env"))
        .ok()
        .stdout;
    let port = env
        .lines()
        .find_map(|l| l.strip_prefix("PORT="))
        .unwrap_or_else(|| panic!("no PORT in {env}"));
    port.trim_matches('"').parse().unwrap()
}

/// What the server answers on TCP `port` (bash's /dev/tcp, no extra tools).
fn tcp_hello(m: &Machine, port: u16) -> Output {
    m.sh(&format!(
        "timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}; head -n1 <&3'"
    ))
}

/// What the server answers to a UDP datagram on `port`.
fn udp_hello(m: &Machine, port: u16) -> Output {
    m.sh(&format!(
        "timeout 5 bash -c 'exec 3<>/dev/udp/127.0.0.1/{port}; printf ping >&3; head -n1 <&3'"
    ))
}

#[test]
fn reference_templates_verify_clean_and_score_at_most_2() {
    let m = machine_with_apps("deploy-score", &["left4me-server", "drdr-x", "runner-pool"]);
    install_standin_game(&m);
    init_left4me(&m, "1", "score");
    init_instance(&m, "drdr-x", "drdr", "91", &["XVFB_SCREEN=1024x768x24"]);
    init_instance(&m, "runner-pool", "runner", "w1", &[]);
    let mut report = String::new();
    for unit in [
        "left4me-server@1.service",
        "drdr-xvfb@91.service",
        "drdr-wm@91.service",
        "runner-pool@w1.service",
    ] {
        let score = m.assert_hardened(unit);
        report.push_str(&format!("{unit}: {score}\n"));
    }
    eprintln!("exposure scores:\n{report}");
}

#[test]
fn left4me_instances_listen_on_distinct_ports_after_reboot() {
    let mut m = machine_with_apps("deploy-l4d2", &["left4me-server"]);
    install_standin_game(&m);
    let p1 = init_left4me(&m, "1", "alpha");
    let p2 = init_left4me(&m, "2", "beta");
    assert_ne!(p1, p2, "each instance gets its own port");
    for p in [p1, p2] {
        assert!(
            (27015..=27115).contains(&p),
            "port {p} outside the app's port_range"
        );
    }
    start(&m, "left4me-server", &["1", "2"]).ok();

    let check = |m: &Machine| {
        for (port, name) in [(p1, "alpha"), (p2, "beta")] {
            wait_for(
                m,
                &format!("port {port}"),
                &format!("ss -Hltn 'sport = :{port}' | grep -q LISTEN"),
            );
            let want = format!("srcds-standin port={port} hostname={name}");
            let tcp = tcp_hello(m, port).ok();
            assert_eq!(tcp.stdout.trim(), want, "TCP {port}");
            let udp = udp_hello(m, port).ok();
            assert_eq!(udp.stdout.trim(), want, "UDP {port}");
        }
        // Each instance runs the 32-bit engine as the service account.
        for i in ["1", "2"] {
            let pid = m
                .sh(&format!(
                    "systemctl show -P MainPID left4me-server@{i}.service"
                ))
                .ok();
            let pid = pid.stdout.trim();
            let who = m
                .sh(&format!(
                    "stat -c %U /proc/{pid}; head -c 5 /proc/{pid}/exe | od -An -tx1"
                ))
                .ok();
            assert!(
                who.stdout.starts_with("left4me\n"),
                "not the service account: {who}"
            );
            // ELF header byte 5 (EI_CLASS) = 01: a 32-bit binary.
            assert!(
                who.stdout.trim_end().ends_with("01"),
                "not a 32-bit process: {who}"
            );
        }
        // The CLI sees both running.
        ug(m, "left4me", "left4me-server", "status 1 2").ok();
    };
    check(&m);
    m.reboot();
    check(&m);

    stop(&m, "left4me-server", &["1"]).ok();
    assert_eq!(active_state(&m, "left4me-server@1.service"), "inactive");
    assert!(
        !tcp_hello(&m, p1).success(),
        "a stopped server still answers"
    );
    assert!(tcp_hello(&m, p2).success(), "stopping 1 must not touch 2");
}

#[test]
fn left4me_32bit_server_needs_its_x86_syscall_exception() {
    let m = machine_with_apps("deploy-l4d2-abi", &["left4me-server"]);
    install_standin_game(&m);
    let port = init_left4me(&m, "7", "abi");
    // The same template restricted to the native ABI cannot run srcds_linux.
    m.write_file(
        "/etc/systemd/system/left4me-server@7.service.d/native-only.conf",
        b"[Service]\nSystemCallArchitectures=\nSystemCallArchitectures=native\nRestart=no\n",
        0o644,
    );
    m.sh("systemctl daemon-reload").ok();
    let _ = m.sh("systemctl enable --now left4me-server@7.service");
    wait_for(
        &m,
        "the native-only unit to fail",
        "systemctl is-failed -q left4me-server@7.service",
    );
    assert!(!tcp_hello(&m, port).success());
    // With the shipped exception it runs.
    m.sh("rm -r /etc/systemd/system/left4me-server@7.service.d && systemctl daemon-reload && systemctl disable left4me-server@7.service").ok();
    // The CLI resets an instance stuck in failed before starting it.
    start(&m, "left4me-server", &["7"]).ok();
    wait_for(
        &m,
        "the port",
        &format!("ss -Hltn 'sport = :{port}' | grep -q LISTEN"),
    );
    assert!(tcp_hello(&m, port).ok().stdout.contains("hostname=abi"));
}

#[test]
fn left4me_install_runs_steamcmd_for_app_222860_or_says_what_to_do() {
    let m = machine_with_apps("deploy-l4d2-install", &["left4me-server"]);
    let cmd = "/usr/local/lib/unitgate/apps/left4me-server/install-l4d2";
    let toml = m
        .sh("cat /etc/unitgate/apps/left4me-server.toml")
        .ok()
        .stdout;
    assert!(
        toml.contains(&format!("install_command = [\"{cmd}\"]")),
        "{toml}"
    );

    // `unitgate install` runs it as the caller and passes its output through.
    let missing = ug(&m, "left4me", "left4me-server", "install");
    assert!(!missing.success(), "{missing}");
    assert!(missing.stderr.contains("SteamCMD not found"), "{missing}");
    assert!(
        missing.stderr.contains("apt-get install steamcmd"),
        "{missing}"
    );
    assert_eq!(
        m.sh_as("left4me", cmd).code,
        69,
        "EX_UNAVAILABLE without SteamCMD"
    );

    // A fake SteamCMD records its arguments and "installs" srcds_run.
    m.write_file(
        "/usr/local/bin/steamcmd",
        b"#!/bin/sh\necho \"$@\" > /var/lib/left4me-server/steamcmd-args\n\
          while [ $# -gt 0 ]; do [ \"$1\" = +force_install_dir ] && d=$2; shift; done\n\
          printf '#!/bin/sh\\n' > \"$d/srcds_run\"; chmod 755 \"$d/srcds_run\"\n",
        0o755,
    );
    let out = ug(&m, "left4me", "left4me-server", "install").ok();
    assert!(out.stdout.contains("install-l4d2: done"), "{out}");
    let args = m
        .sh("cat /var/lib/left4me-server/steamcmd-args")
        .ok()
        .stdout;
    assert!(
        args.contains("+force_install_dir /var/lib/left4me-server/game"),
        "{args}"
    );
    assert!(
        args.contains("+login anonymous +app_update 222860 validate +quit"),
        "{args}"
    );
    let link = m
        .sh("readlink /var/lib/left4me-server/game/left4dead2/cfg/unitgate-instances")
        .ok()
        .stdout;
    assert_eq!(link.trim(), "/var/lib/left4me-server/instances");
    // Idempotent.
    ug(&m, "left4me", "left4me-server", "install").ok();
}

#[test]
fn drdr_x_display_needs_its_cookie_and_stop_leaves_no_process_socket_or_shm() {
    let m = machine_with_apps("deploy-drdr", &["drdr-x"]);
    init_instance(&m, "drdr-x", "drdr", "91", &["XVFB_SCREEN=1280x1024x24"]);
    start(&m, "drdr-x", &["91"]).ok();
    assert_eq!(active_state(&m, "drdr-xvfb@91.service"), "active");
    wait_for(
        &m,
        "the window manager",
        "systemctl is-active -q drdr-wm@91.service",
    );

    // The cookie: readable by the service account (and group drdr), nobody else.
    let st = m.sh("stat -c '%U:%G %a' /run/drdr-x/91/xauthority").ok();
    assert_eq!(st.stdout.trim(), "drdr:drdr 640");
    let with = m.sh_as(
        "drdr",
        "XAUTHORITY=/run/drdr-x/91/xauthority xdpyinfo -display :91",
    );
    assert!(
        with.success() && with.stdout.contains("name of display:    :91"),
        "{with}"
    );
    let without = m.sh_as("drdr", "XAUTHORITY=/nonexistent xdpyinfo -display :91");
    assert!(
        !without.success(),
        "a client without the cookie got in: {without}"
    );
    let root_without = m.sh("XAUTHORITY=/dev/null xdpyinfo -display :91");
    assert!(
        !root_without.success(),
        "root without the cookie got in: {root_without}"
    );
    // Not on TCP.
    assert!(m.sh("ss -Hltn | grep -q ':6091 '").code != 0);
    // A window manager owns the display (EWMH check window set by the WM).
    wait_for(
        &m,
        "the WM to manage :91",
        "XAUTHORITY=/run/drdr-x/91/xauthority xprop -display :91 -root _NET_SUPPORTING_WM_CHECK | grep -q 'window id'",
    );
    // The server's shared memory lives in the display's own IPC namespace.
    let pid = m
        .sh("systemctl show -P MainPID drdr-xvfb@91.service")
        .ok()
        .stdout
        .trim()
        .to_owned();
    let ns_shm = m
        .sh(&format!("nsenter -t {pid} -i ipcs -m | grep -c drdr"))
        .stdout;
    assert!(
        ns_shm.trim() != "0",
        "expected Xvfb -shmem's segment in the unit's IPC namespace"
    );
    let host_shm = m.sh("ipcs -m | grep -c drdr").stdout;
    assert_eq!(
        host_shm.trim(),
        "0",
        "X shared memory leaked into the host IPC namespace"
    );

    stop(&m, "drdr-x", &["91"]).ok();
    // Stopping the display stopped the WM (BindsTo/PartOf), cleanly.
    assert_eq!(active_state(&m, "drdr-wm@91.service"), "inactive");
    assert_eq!(active_state(&m, "drdr-xvfb@91.service"), "inactive");
    let procs = m.sh("ps -u drdr -o pid=,comm= || true").stdout;
    assert!(procs.trim().is_empty(), "processes of drdr left: {procs}");
    let sockets = m.sh("ss -Hxl | grep X11-unix/X91 || true").stdout;
    assert!(sockets.trim().is_empty(), "X socket left: {sockets}");
    m.sh("test ! -e /tmp/.X11-unix/X91 && test ! -e /tmp/.X91-lock && test ! -e /run/drdr-x/91")
        .ok();
    let shm = m.sh("ipcs -m | grep -c drdr").stdout;
    assert_eq!(shm.trim(), "0");
    let ns = m.sh(&format!("test -e /proc/{pid}"));
    assert!(!ns.success(), "Xvfb {pid} survived the stop");

    // And it starts again from scratch.
    start(&m, "drdr-x", &["91"]).ok();
    m.sh_as(
        "drdr",
        "XAUTHORITY=/run/drdr-x/91/xauthority xdpyinfo -display :91 >/dev/null",
    )
    .ok();
}

#[test]
fn drdr_x_restart_restarts_the_wm_with_a_fresh_cookie() {
    let m = machine_with_apps("deploy-drdr-restart", &["drdr-x"]);
    init_instance(&m, "drdr-x", "drdr", "92", &["XVFB_SCREEN=800x600x24"]);
    start(&m, "drdr-x", &["92"]).ok();
    wait_for(
        &m,
        "the window manager",
        "systemctl is-active -q drdr-wm@92.service",
    );
    let wm_before = m
        .sh("systemctl show -P MainPID drdr-wm@92.service")
        .ok()
        .stdout;
    m.sh("cp /run/drdr-x/92/xauthority /root/old-cookie").ok();

    ug(&m, "drdr", "drdr-x", "restart 92").ok();
    wait_for(
        &m,
        "the window manager",
        "systemctl is-active -q drdr-wm@92.service",
    );
    let wm_after = m
        .sh("systemctl show -P MainPID drdr-wm@92.service")
        .ok()
        .stdout;
    assert_ne!(
        wm_before, wm_after,
        "restarting the display must restart its WM (PartOf=)"
    );
    m.sh("XAUTHORITY=/run/drdr-x/92/xauthority xdpyinfo -display :92 >/dev/null")
        .ok();
    let stale = m.sh("XAUTHORITY=/root/old-cookie xdpyinfo -display :92");
    assert!(
        !stale.success(),
        "the previous start's cookie still opens the display"
    );
}

/// The limits are only carried here: a container on a host whose memory,
/// cpu and pids controllers sit in cgroup v1 does not enforce them.
/// `vm_runner_pool` proves them enforced, in a VM.
#[test]
fn runner_pool_units_carry_their_limits_and_kill_whole_jobs_on_stop() {
    let m = machine_with_apps("deploy-runner", &["runner-pool"]);
    for w in ["w1", "w2"] {
        init_instance(&m, "runner-pool", "runner", w, &["RUNNER_POLL=1"]);
    }
    start(&m, "runner-pool", &["w1", "w2"]).ok();
    for w in ["w1", "w2"] {
        let show = m
            .sh(&format!(
                "systemctl show -p MemoryMax -p CPUQuotaPerSecUSec -p TasksMax -p KillMode -p User -p ActiveState runner-pool@{w}.service"
            ))
            .ok()
            .stdout;
        for want in [
            "MemoryMax=536870912",
            "CPUQuotaPerSecUSec=500ms",
            "TasksMax=64",
            "KillMode=control-group",
            "User=runner",
            "ActiveState=active",
        ] {
            assert!(
                show.lines().any(|l| l == want),
                "runner-pool@{w}: want {want} in\n{show}"
            );
        }
    }
    // A job runs, once, in one worker.
    m.sh_as(
        "runner",
        "printf '#!/bin/sh\\necho hello from $RUNNER_WORKER\\n' > /var/lib/runner-pool/spool/queue/hello",
    )
    .ok();
    wait_for(
        &m,
        "the job to finish",
        "ls /var/lib/runner-pool/instances/*/done/hello.status",
    );
    let log = m
        .sh("cat /var/lib/runner-pool/instances/*/done/hello.log")
        .ok()
        .stdout;
    assert!(log.starts_with("hello from w"), "{log}");

    // A job that forks a daemon: the stop takes it too (KillMode=control-group).
    m.sh_as(
        "runner",
        "printf '#!/bin/sh\\n(setsid sleep 1000 &)\\nexec sleep 1001\\n' > /var/lib/runner-pool/spool/queue/daemon",
    )
    .ok();
    wait_for(
        &m,
        "the daemon job",
        "pgrep -u runner -x sleep -c | grep -q 2",
    );
    stop(&m, "runner-pool", &["w1", "w2"]).ok();
    let left = m.sh("pgrep -u runner -a || true").stdout;
    assert!(left.trim().is_empty(), "processes left after stop: {left}");
}

#[test]
fn task_runner_runs_each_request_as_its_own_limited_unit_through_one_sudo_rule() {
    let m = machine_with_apps("deploy-tasks", &["task-runner"]);
    let lib = "/usr/local/lib/unitgate/apps/task-runner";
    let queue = "/var/lib/task-runner/spool/queue";
    let dispatched = "/var/lib/task-runner/instances/d1";
    init_instance(&m, "task-runner", "taskrunner", "d1", &["TASKS_POLL=1"]);
    start(&m, "task-runner", &["d1"]).ok();
    m.assert_verifies_clean("task-runner@d1.service");
    let uid = m.sh("id -u taskrunner").ok().stdout.trim().to_owned();
    // The account's sudo rights are the helper's one rule: no systemd-run,
    // no systemctl.
    let rights = m.sh("sudo -l -U taskrunner").ok().stdout;
    assert!(rights.contains("unitgate-systemctl"), "{rights}");
    assert!(
        !rights.contains("/usr/bin/systemd-run") && !rights.contains("/usr/bin/systemctl"),
        "{rights}"
    );

    // A request with limits and arguments: it runs as the account, in its
    // own unit, with those limits, and is filed with its status.
    let submit = |id: &str, body: &str| {
        m.sh_as(
            "taskrunner",
            &format!("printf '%b' '{body}' > {queue}/.{id} && mv {queue}/.{id} {queue}/{id}"),
        )
        .ok();
    };
    submit(
        "job_1",
        &format!("cpu=50\\nmemory=256M\\ntimeout=60\\n--\\n{lib}/report\\nhello world\\nexit=3\\n"),
    );
    wait_for(
        &m,
        "job_1 filed",
        &format!("test -e {dispatched}/failed/job_1.status"),
    );
    let filed = m
        .sh(&format!(
            "cat {dispatched}/failed/job_1.status {dispatched}/failed/job_1.err"
        ))
        .stdout;
    assert!(
        filed.starts_with("3\n"),
        "status, then what unitgate said: {filed}"
    );
    let unit = format!("task-runner-task-{uid}-job_1.service");
    let log = m
        .sh(&format!("journalctl --no-pager -o cat -u {unit}"))
        .ok()
        .stdout;
    assert!(log.contains(&format!("task uid={uid} ")), "{log}");
    assert!(
        log.contains(&format!(
            "cgroup=/unitgate.slice/unitgate-tasks.slice/{unit}"
        )),
        "{log}"
    );
    assert!(log.contains("task arg=<hello world>"), "{log}");
    let audit = m
        .sh("journalctl --no-pager -o cat -t unitgate-systemctl")
        .ok()
        .stdout;
    assert!(
        audit
            .lines()
            .any(|l| l.contains("app=task-runner action=run instances=job_1")
                && l.contains("cpu=50% memory=268435456")
                && l.contains("verdict=accepted")),
        "{audit}"
    );
    // The dispatcher itself stayed in its own unit.
    assert_eq!(active_state(&m, "task-runner@d1.service"), "active");

    // A program the policy does not list, and a limit above the maximum:
    // refused by the helper, filed as failed with its reason; no unit.
    submit("job_2", "--\\n/bin/sh\\n-c\\nid\\n");
    submit("job_3", &format!("memory=2G\\n--\\n{lib}/report\\n"));
    wait_for(
        &m,
        "job_2 and job_3 filed",
        &format!(
            "test -e {dispatched}/failed/job_2.status && test -e {dispatched}/failed/job_3.status"
        ),
    );
    assert_eq!(
        m.sh(&format!("cat {dispatched}/failed/job_2.status"))
            .ok()
            .stdout,
        "77\n"
    );
    assert_eq!(
        m.sh(&format!("cat {dispatched}/failed/job_3.status"))
            .ok()
            .stdout,
        "77\n"
    );
    let why = m
        .sh(&format!("cat {dispatched}/failed/job_2.err"))
        .ok()
        .stdout;
    assert!(why.contains("not one app 'task-runner' may run"), "{why}");

    // A long task is stopped whole when its dispatcher is stopped and
    // started again: filed as 143, its unit gone.
    submit("job_4", &format!("--\\n{lib}/report\\n"));
    wait_for(
        &m,
        "job_4 done",
        &format!("test -e {dispatched}/done/job_4.status"),
    );
    m.sh(&format!("install -m 0755 /bin/sleep {lib}/sleeper"))
        .ok();
    let policy = m
        .sh("cat /etc/unitgate/apps/task-runner.toml")
        .ok()
        .stdout
        .replace(
            &format!("commands = [\"{lib}/report\"]"),
            &format!("commands = [\"{lib}/report\", \"{lib}/sleeper\"]"),
        );
    m.write_file(
        "/etc/unitgate/apps/task-runner.toml",
        policy.as_bytes(),
        0o644,
    );
    submit("job_5", &format!("--\\n{lib}/sleeper\\n600\\n"));
    let task5 = format!("task-runner-task-{uid}-job_5.service");
    wait_for(
        &m,
        "job_5 running",
        &format!("systemctl is-active -q {task5}"),
    );
    ug(&m, "taskrunner", "task-runner", "restart d1").ok();
    wait_for(
        &m,
        "job_5 filed",
        &format!("test -e {dispatched}/failed/job_5.status"),
    );
    assert_eq!(
        m.sh(&format!("cat {dispatched}/failed/job_5.status"))
            .ok()
            .stdout,
        "143\n"
    );
    wait_for(
        &m,
        "job_5's unit gone",
        &format!("! systemctl is-active -q {task5}"),
    );
}

#[test]
fn install_app_keeps_edited_config_and_uninstall_reverses_it() {
    let m = machine_with_apps("deploy-installer", &["runner-pool"]);
    // The layout: account, dirs with owners, config root-owned 0644, units.
    m.sh("id -nG runner | grep -qw unitgate").ok();
    let st = m
        .sh("stat -c '%n %U:%G %a' /var/lib/runner-pool /var/lib/runner-pool/instances /etc/unitgate/apps/runner-pool.toml /usr/local/lib/systemd/system/runner-pool@.service /usr/local/lib/unitgate/apps/runner-pool/runner")
        .ok()
        .stdout;
    assert_eq!(
        st,
        "/var/lib/runner-pool runner:runner 750\n\
         /var/lib/runner-pool/instances runner:runner 750\n\
         /etc/unitgate/apps/runner-pool.toml root:root 644\n\
         /usr/local/lib/systemd/system/runner-pool@.service root:root 644\n\
         /usr/local/lib/unitgate/apps/runner-pool/runner root:root 755\n"
    );
    let unit = m
        .sh("cat /usr/local/lib/systemd/system/runner-pool@.service")
        .ok()
        .stdout;
    assert!(
        unit.contains(
            "ExecStart=/usr/local/bin/unitgate --app runner-pool launch %i -- /usr/local/lib/unitgate/apps/runner-pool/runner"
        ),
        "@PREFIX@ not substituted"
    );

    // Re-running changes nothing.
    let again = m
        .sh("cd /mnt/src && sh deploy/install.sh --app-only --app deploy/apps/runner-pool")
        .ok();
    assert!(
        !again.stdout.contains(": installed ")
            && !again.stdout.contains(": updated ")
            && !again.stdout.contains(": created "),
        "second run changed something: {again}"
    );

    // An edited config is kept; the new version lands beside it.
    m.sh("sed -i 's/^callers = .*/callers = [\"runner\", \"alice\"]/' /etc/unitgate/apps/runner-pool.toml").ok();
    let edited = m.sh("cat /etc/unitgate/apps/runner-pool.toml").ok().stdout;
    let out = m
        .sh("cd /mnt/src && sh deploy/install.sh --app-only --app deploy/apps/runner-pool")
        .ok();
    assert!(
        out.stdout
            .contains("kept /etc/unitgate/apps/runner-pool.toml (edited)"),
        "{out}"
    );
    assert_eq!(
        m.sh("cat /etc/unitgate/apps/runner-pool.toml").ok().stdout,
        edited
    );
    m.sh("test -f /etc/unitgate/apps/runner-pool.toml.new").ok();

    // Uninstall: instances stopped and disabled, units gone, data kept.
    init_instance(&m, "runner-pool", "runner", "w1", &[]);
    start(&m, "runner-pool", &["w1"]).ok();
    let out = m
        .sh("cd /mnt/src && sh deploy/uninstall.sh --app runner-pool")
        .ok();
    assert!(
        out.stdout
            .contains("kept /etc/unitgate/apps/runner-pool.toml (edited"),
        "{out}"
    );
    assert_eq!(active_state(&m, "runner-pool@w1.service"), "inactive");
    m.sh("test ! -e /etc/systemd/system/multi-user.target.wants/runner-pool@w1.service")
        .ok();
    m.sh("test ! -e /usr/local/lib/systemd/system/runner-pool@.service && test ! -e /usr/local/lib/unitgate/apps").ok();
    m.sh("test -f /var/lib/runner-pool/instances/w1/instance.env && id runner")
        .ok();
    m.sh("test ! -e /etc/unitgate/skel/runner-pool").ok();

    // --purge: data, account and the edited config go too; idempotent.
    m.sh("cd /mnt/src && sh deploy/uninstall.sh --app runner-pool --purge")
        .ok();
    m.sh("cd /mnt/src && sh deploy/uninstall.sh --app runner-pool --purge")
        .ok();
    m.sh("test ! -e /var/lib/runner-pool && ! id runner && ! getent group runner")
        .ok();
    m.sh("test ! -e /etc/unitgate/apps/runner-pool.toml && test ! -e /etc/unitgate/apps/runner-pool.toml.new").ok();
    m.sh("test ! -e /var/lib/unitgate/apps").ok();
    // unitgate itself is untouched, sudo works.
    m.sh("test -x /usr/local/libexec/unitgate/unitgate-systemctl && visudo -c")
        .ok();
}

/// `uninstall --purge` removes the service account only once none of its
/// processes is left: it waits for the last ones (a unit's processes still
/// exiting, here a transient unit of the account's that ends on cue, while
/// the uninstall is waiting), and one that stays makes it stop, naming the
/// process and its unit, before anything is purged; a re-run then finishes.
#[test]
fn purge_waits_for_the_accounts_last_processes_before_removing_it() {
    let m = machine_with_apps("deploy-purge-busy", &["runner-pool"]);
    init_instance(&m, "runner-pool", "runner", "w1", &[]);
    start(&m, "runner-pool", &["w1"]).ok();
    // Something of the account's that systemd runs outside the app's units.
    m.sh("systemd-run --quiet --uid=runner --unit=straggler.service sleep infinity")
        .ok();

    let out = m.sh("cd /mnt/src && sh deploy/uninstall.sh --app runner-pool --purge");
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stderr.contains("still running as runner: ")
            && out
                .stderr
                .contains(" straggler.service /usr/bin/sleep infinity\n")
            && out
                .stderr
                .contains("account runner still has processes 15 s after its units were stopped")
            && out.stderr.contains("nothing was purged"),
        "{out}"
    );
    m.sh("id runner && test -f /var/lib/runner-pool/instances/w1/instance.env")
        .ok();
    assert_eq!(active_state(&m, "runner-pool@w1.service"), "inactive");

    // The re-run waits; the straggler ends while it does.
    m.sh("cd /mnt/src && setsid sh -c 'sh deploy/uninstall.sh --app runner-pool --purge >/tmp/purge.out 2>&1; echo $? >/tmp/purge.rc' </dev/null >/dev/null 2>&1 &")
        .ok();
    wait_for(
        &m,
        "the uninstall to wait for the account",
        "grep -q 'waiting up to 15 s for the processes of runner to end' /tmp/purge.out",
    );
    m.sh("test ! -e /tmp/purge.rc && systemctl stop straggler.service")
        .ok();
    wait_for(&m, "the uninstall to finish", "test -s /tmp/purge.rc");
    let out = m.sh("cat /tmp/purge.rc /tmp/purge.out").ok().stdout;
    assert!(
        out.starts_with("0\n") && out.contains("removed service account runner"),
        "{out}"
    );
    m.sh("! id runner && test ! -e /var/lib/runner-pool").ok();
}

/// A root-only secret for the leak tests: in a directory only root may
/// enter (the file itself is world-readable, so only a reader that never
/// went through that directory, such as a bind mount made by PID 1, sees it).
fn plant_root_secret(m: &Machine, name: &str, content: &str) -> String {
    let path = format!("/etc/unitgate-test-secret/{name}");
    m.sh(&format!(
        "install -d -m 0700 /etc/unitgate-test-secret && printf '%s\\n' '{content}' > {path} && chmod 0644 {path}"
    ))
    .ok();
    path
}

#[test]
fn an_instance_env_linked_to_a_root_only_file_leaks_nothing_into_the_service() {
    let m = machine_with_apps("deploy-envleak", &["runner-pool"]);
    init_instance(&m, "runner-pool", "runner", "w1", &[]);
    let secret = plant_root_secret(&m, "runner.env", "RUNNER_WORKER=\"hunter2-leak\"");
    m.sh("chmod 0600 /etc/unitgate-test-secret/runner.env").ok();
    m.sh_as(
        "runner",
        &format!("ln -sf {secret} /var/lib/runner-pool/instances/w1/instance.env"),
    )
    .ok();
    // It must not start with the secret; whether it starts at all is secondary.
    let _ = start(&m, "runner-pool", &["w1"]);
    wait_for(
        &m,
        "the worker's first start to have run",
        "journalctl -u runner-pool@w1.service --no-pager -o cat | grep -q .",
    );
    let journal = m
        .sh("journalctl -u runner-pool@w1.service --no-pager -o cat")
        .ok();
    assert!(!journal.stdout.contains("hunter2"), "leaked: {journal}");
    let environ = m.sh(
        "for p in $(systemctl show -P MainPID runner-pool@w1.service); do \
           [ \"$p\" = 0 ] || tr '\\0' '\\n' < /proc/$p/environ; done",
    );
    assert!(!environ.stdout.contains("hunter2"), "leaked: {environ}");
}

#[test]
fn a_server_cfg_linked_to_a_root_only_file_is_not_served() {
    let m = machine_with_apps("deploy-cfgleak", &["left4me-server"]);
    install_standin_game(&m);
    let port = init_left4me(&m, "1", "honest");
    let secret = plant_root_secret(&m, "server.cfg", "hostname \"leaked-secret\"");
    m.sh_as(
        "left4me",
        &format!("ln -sf {secret} /var/lib/left4me-server/instances/1/server.cfg"),
    )
    .ok();
    let _ = start(&m, "left4me-server", &["1"]);
    wait_for(
        &m,
        "the server's first start to have run",
        "journalctl -u left4me-server@1.service --no-pager -o cat | grep -q srcds",
    );
    let hello = tcp_hello(&m, port);
    assert!(
        !hello.stdout.contains("leaked"),
        "served the secret: {hello}"
    );
    let journal = m
        .sh("journalctl -u left4me-server@1.service --no-pager -o cat")
        .ok();
    assert!(!journal.stdout.contains("leaked"), "leaked: {journal}");
}
