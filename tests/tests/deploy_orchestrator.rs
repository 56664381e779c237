//! The orchestrator reference app (deploy/apps/orchestrator): the 24/7
//! scheduler of Tmux-Orchestrator, whose own setup (a root service with
//! `ExecStartPre=pkill …; sleep 2; rm lock files`) lost a race between a
//! restart and the old scheduler still shutting down.
//!
//! One machine for the whole suite (a boot and an install cost more than
//! every check together), two instances: `b` crash-loops while `a` has its
//! tmux checked and takes a storm of restarts, so the crash loop's ten
//! restart delays overlap the rest. What is proved, as the account through
//! the CLI and the helper wherever the account would act:
//!
//! - ten quick crashes, and the scheduler is running again by itself, its
//!   tmux server (the agents) untouched throughout: no start limit leaves
//!   it `failed` (with new-app's 5 starts per 120 s this test fails);
//! - the scheduler reaches its own tmux server through the socket in the
//!   instance's directory: the account lists the session, the check-in
//!   count advances and the agent window receives the check-ins;
//! - twenty concurrent restarts (and root's raw `systemctl restart`s
//!   beside them, past every unitgate lock): never two schedulers at once,
//!   one tmux server all along, the same agent window, the scheduler active;
//! - both templates verify clean and score ≤ 2.0;
//! - a stop, and a delete of a running instance, leave no process of the
//!   account.

use std::time::Instant;

use unitgate_tests::fixture::{show, wait_until, wait_until_showing};
use unitgate_tests::{Machine, Output};

const ACCOUNT: &str = "orchestrator";
const STATE: &str = "/var/lib/orchestrator/instances";

/// `unitgate --app orchestrator ARGS` as the account.
fn ug(m: &Machine, args: &str) -> Output {
    m.sh_as(ACCOUNT, &format!("unitgate --app orchestrator {args}"))
}

/// A shell command running tmux as the account against `instance`'s
/// server (never starting one: `-N`), for use inside root's scripts.
fn tmux_cmd(instance: &str, args: &str) -> String {
    format!("runuser -u {ACCOUNT} -- env TMUX_TMPDIR={STATE}/{instance} tmux -N {args}")
}

/// What tmux says, as the account, trimmed.
fn tmux(m: &Machine, instance: &str, args: &str) -> String {
    m.sh(&tmux_cmd(instance, args))
        .ok()
        .stdout
        .trim()
        .to_owned()
}

/// The check-in count the scheduler keeps on its session (`@checkin`).
fn checkin_cmd(instance: &str) -> String {
    tmux_cmd(instance, "display -p -t =orchestrator: '#{@checkin}'")
}

/// Probes installed in the machine, each printing PIDs, one a line, for
/// the instance in `$1`: `orch-schedulers` its scheduler processes (the
/// exact command line `unitgate launch` execs), `orch-servers` the tmux
/// servers whose TMUX_TMPDIR is its directory. Both leave out a match's own
/// children: between fork and exec a child still shows its parent's
/// command line and name, and is not a second scheduler or server.
const PROBES: [(&str, &str); 2] = [
    (
        "/run/orch-schedulers",
        r#"#!/bin/sh
ps -u orchestrator -o pid=,ppid=,args= \
    | awk -v want="/bin/sh /usr/local/lib/unitgate/apps/orchestrator/scheduler $1" '
        { pid = $1; ppid = $2; $1 = ""; $2 = ""; sub(/^ +/, "") }
        $0 == want { parent[pid] = ppid }
        END { for (p in parent) if (!(parent[p] in parent)) print p }'
"#,
    ),
    (
        "/run/orch-servers",
        r#"#!/bin/sh
ps -u orchestrator -o pid=,ppid=,comm= | awk '$3 == "tmux:" && $4 == "server" { print $1, $2 }' \
    | while read -r pid ppid; do
        tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null \
            | grep -qx "TMUX_TMPDIR=/var/lib/orchestrator/instances/$1" && echo "$pid $ppid"
    done \
    | awk '{ parent[$1] = $2 } END { for (p in parent) if (!(parent[p] in parent)) print p }'
"#,
    ),
];

/// The sampler: once per pass until `/run/orch-storm-done` exists, one line
/// `SCHEDULERS SERVERS` for the instance in `$1`.
const SAMPLER: &str = r#"#!/bin/sh
while [ ! -e /run/orch-storm-done ]; do
    echo "$(/run/orch-schedulers "$1" | wc -l) $(/run/orch-servers "$1" | wc -l)"
done
"#;

/// Runs a probe (see [`PROBES`]) for `instance`.
fn probe(m: &Machine, which: &str, instance: &str) -> Vec<String> {
    m.sh(&format!("/run/orch-{which} {instance}"))
        .ok()
        .stdout
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The PIDs of `instance`'s tmux servers.
fn servers(m: &Machine, instance: &str) -> Vec<String> {
    probe(m, "servers", instance)
}

/// The PIDs of `instance`'s scheduler processes.
fn schedulers(m: &Machine, instance: &str) -> Vec<String> {
    probe(m, "schedulers", instance)
}

/// `instance`'s one tmux server, which must be its tmux unit's main
/// process (systemd's guess for `Type=forking`).
#[track_caller]
fn the_server(m: &Machine, instance: &str) -> String {
    let pids = servers(m, instance);
    assert_eq!(pids.len(), 1, "tmux servers of {instance}: {pids:?}");
    let main = show(
        m,
        &format!("orchestrator-tmux@{instance}.service"),
        "MainPID",
    );
    assert_eq!(pids[0], main, "the tmux unit's main PID is not its server");
    pids[0].clone()
}

/// Waits until the check-in count of `instance` is a number other than
/// `than` (so a scheduler is checking in with the session now).
#[track_caller]
fn wait_checkin_past(m: &Machine, instance: &str, than: &str) -> String {
    let now = format!("\"$({})\"", checkin_cmd(instance));
    wait_until_showing(
        m,
        &format!("{instance}'s check-in count to move past '{than}'"),
        &format!("echo {now} | grep -qx '[0-9][0-9]*' && [ {now} != '{than}' ]"),
        60,
        &format!("systemctl status --no-pager orchestrator@{instance}.service orchestrator-tmux@{instance}.service"),
    );
    m.sh(&checkin_cmd(instance)).ok().stdout.trim().to_owned()
}

#[test]
fn orchestrator_runs_24_7_beside_its_own_tmux_server() {
    let began = Instant::now();
    let m = Machine::boot("deploy-orch");
    m.install_unitgate();
    m.sh("cd /mnt/src && sh deploy/install.sh --app-only --app deploy/apps/orchestrator")
        .ok();
    for i in ["a", "b"] {
        ug(&m, &format!("init {i} --set ORCH_INTERVAL=1")).ok();
    }
    ug(&m, "start a b").ok();
    for (path, script) in PROBES {
        m.write_file(path, script.as_bytes(), 0o755);
    }
    let set_up = began.elapsed();

    // b: ten crashes in a row, set off by the account. The restart's own
    // start is the first; systemd's restarts are the other nine and then
    // the one that stays up.
    let b_server = the_server(&m, "b");
    m.sh_as(ACCOUNT, &format!("echo 10 > {STATE}/b/crash")).ok();
    let restart_b = ug(&m, "restart b");
    assert_eq!(
        restart_b.code, 4,
        "a crashing scheduler is not 'restarted': {restart_b}"
    );

    // a: the scheduler reaches its tmux server through the instance's socket.
    let first = wait_checkin_past(&m, "a", "");
    wait_checkin_past(&m, "a", &first);
    let sessions = m.sh_as(
        ACCOUNT,
        &format!("TMUX_TMPDIR={STATE}/a tmux -N list-sessions -F '#{{session_name}} #{{session_windows}}'"),
    );
    assert_eq!(sessions.ok().stdout, "orchestrator 1\n");
    wait_until(
        &m,
        "the agent window to have received a check-in",
        &format!("grep -q '^check-in [0-9]' {STATE}/a/checkins.log"),
        60,
    );
    let socket = m
        .sh(&format!(
            "d={STATE}/a/tmux-$(id -u {ACCOUNT}); stat -c '%U %a %F' $d; stat -c '%U %F' $d/default"
        ))
        .ok()
        .stdout;
    assert_eq!(socket, "orchestrator 700 directory\norchestrator socket\n");

    // a: the seed's race. Twenty restarts as the account at once (each
    // takes the instance's lock in turn: --wait covers the queue; --settle
    // 0 because staying up is the crash loop's proof, and twenty serialized
    // 2 s windows would cost 40 s), and five of root's own `systemctl
    // restart` beside them, past every unitgate lock, so that systemd's
    // job queue itself sees restarts overlap. Sampled throughout.
    let server = the_server(&m, "a");
    let pane = tmux(&m, "a", "display -p -t =orchestrator:agent '#{pane_pid}'");
    let before = schedulers(&m, "a");
    assert_eq!(before.len(), 1, "schedulers of a: {before:?}");
    m.write_file("/run/orch-sampler", SAMPLER.as_bytes(), 0o755);
    m.sh("setsid /run/orch-sampler a </dev/null >/run/orch-samples 2>&1 &")
        .ok();
    wait_until(&m, "the sampler", "test -s /run/orch-samples", 60);
    let storm = m.sh(&format!(
        "for n in $(seq 20); do \
           ( setpriv --reuid={ACCOUNT} --regid={ACCOUNT} --init-groups --reset-env -- \
               unitgate --app orchestrator --wait 120 restart --settle 0 a >/dev/null 2>&1; \
             echo \"rc=$?\" ) & \
         done; \
         for n in 1 2 3 4 5; do systemctl restart orchestrator@a.service & done; \
         wait"
    ));
    assert_eq!(
        storm.stdout.lines().filter(|l| *l == "rc=0").count(),
        20,
        "every restart succeeds: {storm}"
    );
    // Active comes with the fork, the scheduler with launch's exec.
    wait_until_showing(
        &m,
        "a's one scheduler to run as its unit's main process after the storm",
        "systemctl is-active -q orchestrator@a.service && \
         [ \"$(/run/orch-schedulers a)\" = \"$(systemctl show -P MainPID orchestrator@a.service)\" ]",
        60,
        "/run/orch-schedulers a; systemctl status --no-pager orchestrator@a.service",
    );
    m.sh("touch /run/orch-storm-done").ok();
    wait_until(
        &m,
        "the sampler to end",
        "! pgrep -f '[/]run/orch-sampler'",
        60,
    );
    let samples = m.sh("cat /run/orch-samples").ok().stdout;
    let lines: Vec<&str> = samples.lines().collect();
    assert!(lines.len() >= 5, "too few samples: {samples}");
    let overlaps: Vec<&&str> = lines
        .iter()
        .filter(|l| !matches!(**l, "0 1" | "1 1"))
        .collect();
    assert!(
        overlaps.is_empty(),
        "schedulers/tmux servers of a seen during the storm (want at most 1, exactly 1): {overlaps:?} of {} samples",
        lines.len()
    );
    eprintln!(
        "storm: {} samples, {} of them between a stop and a start",
        lines.len(),
        lines.iter().filter(|l| **l == "0 1").count()
    );
    let after = schedulers(&m, "a");
    assert_eq!(after.len(), 1, "schedulers of a after the storm: {after:?}");
    assert_ne!(after, before, "the storm restarted nothing");
    assert_eq!(
        after[0],
        show(&m, "orchestrator@a.service", "MainPID"),
        "the scheduler is the unit's main process"
    );
    assert_eq!(the_server(&m, "a"), server, "the restarts restarted tmux");
    assert_eq!(
        tmux(&m, "a", "display -p -t =orchestrator:agent '#{pane_pid}'"),
        pane,
        "the agent window did not survive the restarts"
    );
    let now = m.sh(&checkin_cmd("a")).ok().stdout.trim().to_owned();
    wait_checkin_past(&m, "a", &now);
    ug(&m, "status a").ok();

    // Both templates: verify clean, ≤ 2.0.
    let mut scores = String::new();
    for unit in ["orchestrator@a.service", "orchestrator-tmux@a.service"] {
        let score = m.assert_hardened(unit);
        scores.push_str(&format!("{unit}: {score}\n"));
    }
    eprintln!("exposure scores:\n{scores}");

    // b: back by itself after ten crashes, its tmux server the same one.
    // A unit the start limit left `failed` ends the wait at once.
    let crash_loop = Instant::now();
    let restarts = "systemctl show -P NRestarts orchestrator@b.service";
    let script = format!(
        "end=$(( $(date +%s) + 90 )); \
         until [ \"$({restarts})\" -ge 10 ] && systemctl is-active -q orchestrator@b.service \
               && [ \"$(cat {STATE}/b/crash)\" = 0 ]; do \
           if systemctl is-failed -q orchestrator@b.service; then echo failed; exit 1; fi; \
           [ \"$(date +%s)\" -lt \"$end\" ] || {{ echo timeout; exit 1; }}; sleep 0.1; \
         done"
    );
    let back = m.sh(&script);
    if !back.success() {
        let state = m.sh(&format!(
            "{restarts}; cat {STATE}/b/crash; systemctl status --no-pager orchestrator@b.service"
        ));
        panic!("b did not come back by itself after its crashes: {back}\n{state}");
    }
    assert_eq!(m.sh(restarts).ok().stdout.trim(), "10");
    let crashes = m
        .sh("journalctl --no-pager -o cat -u orchestrator@b.service | grep -c 'crashing on purpose'")
        .ok()
        .stdout;
    assert_eq!(crashes.trim(), "10");
    let now = m.sh(&checkin_cmd("b")).stdout.trim().to_owned();
    wait_checkin_past(&m, "b", &now);
    ug(&m, "status b").ok();
    assert_eq!(the_server(&m, "b"), b_server, "the crashes restarted tmux");
    let waited = crash_loop.elapsed();

    // A stop takes the scheduler and, with it no longer needing it, tmux
    // and the agents: nothing of the account is left. `delete` of a running
    // instance too, though systemd stops its tmux unit only after the
    // scheduler, while the CLI purges the directory with the socket in it.
    ug(&m, "delete a").ok();
    ug(&m, "stop b").ok();
    wait_until_showing(
        &m,
        "every process of the account to end",
        &format!("! pgrep -u {ACCOUNT} >/dev/null"),
        60,
        &format!("ps -u {ACCOUNT} -o pid,args; systemctl list-units --no-pager 'orchestrator*'"),
    );
    for unit in ["orchestrator-tmux@a.service", "orchestrator-tmux@b.service"] {
        assert_eq!(show(&m, unit, "ActiveState"), "inactive", "{unit}");
    }
    m.sh(&format!("test ! -e {STATE}/a && test -d {STATE}/b"))
        .ok();
    eprintln!(
        "set-up {:.1} s, waited for b's crash loop {:.1} s after the rest, total {:.1} s",
        set_up.as_secs_f64(),
        waited.as_secs_f64(),
        began.elapsed().as_secs_f64()
    );
}
