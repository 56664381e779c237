//! What the nspawn test bed cannot prove on a host whose memory, cpu and
//! pids controllers sit in cgroup v1, proved in one boot of a real kernel
//! with every cgroup v2 controller (the VM tier, tests/src/vm.rs):
//!
//! - `unitgate status` reports a running instance's memory, and the number
//!   follows what its jobs really hold;
//! - runner-pool's limits are enforced on a job: an allocation past
//!   `MemoryMax=512M` is OOM-killed inside the worker's cgroup (and the unit
//!   says so), a job forking 80 processes is capped at `TasksMax=64`, a busy loop is
//!   throttled to `CPUQuota=50%`;
//! - stopping a worker kills what a job double-forked and setsid'd away:
//!   nothing is left in its cgroup;
//! - a task (`unitgate run`, issue #14) gets the limits it asked for,
//!   enforced: `--memory 50M` allocating 200M is OOM-killed and `run`
//!   says so (137, result `oom-kill`), `--tasks 5` stops a fork bomb,
//!   `--cpu 20` throttles a busy loop; each beside a control task asking
//!   for room enough (the app's policy gets a `[tasks]` table for it).
//!
//! Each enforcement check runs twice: on a worker as shipped, and on a
//! control worker whose drop-in clears just that limit (or sets
//! `KillMode=process`). The same predicate must hold for the first and fail
//! for the second, so every run shows the test able to fail without the
//! limit.
//!
//! unitgate and the app are installed by their own installer from the
//! checkout (`deploy/install.sh`, `--app-only --app deploy/apps/runner-pool`),
//! and the service account `runner` drives every worker through the CLI and
//! real sudo; root only writes the controls' drop-ins and reads cgroups.

use std::collections::HashMap;

use unitgate_tests::vm::{Checks, SharedBoot};
use unitgate_tests::Output;

/// Shell functions for the checks below (prepended to each).
const POOL_SH: &str = r#"pool=/var/lib/runner-pool
# Checks that run at the same time stop their workers at the same time,
# and each stop waits its turn for the app's lock (systemd's enable and
# disable are app-wide): a lock wait polls the lock, so a long one costs
# nothing when the lock is free.
ug() { as_user runner unitgate --app runner-pool --wait 240 "$@"; }

# worker_up W: worker W (started by the `workers` setup step) takes jobs.
worker_up() {
    wait_until 60 "runner-pool@$1 to take jobs" test -d "$pool/spool/$1/queue"
}

# submit W JOB: the script on stdin becomes job JOB of worker W, moved into
# its queue whole (a worker must never claim a half-written job).
submit() {
    as_user runner sh -c "cat > '$pool/spool/$1/.$2' && mv '$pool/spool/$1/.$2' '$pool/spool/$1/queue/$2'"
}

# filed W JOB: where the runner filed the job (done or failed), else fails.
filed() {
    for where in done failed; do
        if [ -e "$pool/instances/$1/$where/$2.status" ]; then echo "$where"; return 0; fi
    done
    return 1
}

# job_status W JOB: "done 0", "failed 137", or "unfiled -" (still in
# running/, or lost with its worker).
job_status() {
    if where=$(filed "$1" "$2"); then
        echo "$where $(cat "$pool/instances/$1/$where/$2.status")"
    else
        echo "unfiled -"
    fi
}

# end_worker W: W's jobs ended, after a check whose subject is not the stop
# (the guest goes on to measure CPU time). As root, through systemd: a
# stop through unitgate also disables, which takes the app's lock, and
# under emulation a handful of checks ending together queued there for
# minutes.
end_worker() { systemctl stop "runner-pool@$1.service"; }
"#;

/// Drop-ins that each clear one of the template's limits for one control
/// worker (root's to write, as an operator's `systemctl edit` would be).
const CONTROLS: &str = r#"control() {
    mkdir -p "/etc/systemd/system/runner-pool@$1.service.d"
    printf '[Service]\n%s\n' "$2" > "/etc/systemd/system/runner-pool@$1.service.d/control.conf"
}
control nomem 'MemoryMax=infinity'
control notasks 'TasksMax=infinity'
control nocpu 'CPUQuota='
control nokill 'KillMode=process'
systemctl daemon-reload
systemctl show -p MemoryMax runner-pool@nomem.service | grep -qx MemoryMax=infinity
systemctl show -p TasksMax runner-pool@notasks.service | grep -qx TasksMax=infinity
systemctl show -p CPUQuotaPerSecUSec runner-pool@nocpu.service | grep -qx CPUQuotaPerSecUSec=infinity
systemctl show -p KillMode runner-pool@nokill.service | grep -qx KillMode=process
"#;

/// Every worker of the checks below, each with a queue of its own so that
/// no other worker takes its jobs, started by one batched `start` (one
/// lock, one `daemon-reload`: under emulation each CLI call through sudo
/// costs seconds of the one CPU, and concurrent starts would queue on the
/// app's lock anyway).
const WORKERS: &str = r#"workers="mem oom nomem bomb notasks cpu nocpu daemon nokill"
for w in $workers; do
    ug init "$w" --set RUNNER_POLL=1 --set "RUNNER_SPOOL=$pool/spool/$w"
done
# shellcheck disable=SC2086 # one word per worker
ug start $workers
"#;

/// A worker holding a 64 MiB job: what `status --json` says of its memory,
/// beside what the kernel's cgroup says, idle and loaded.
const MEMORY_REPORT: &str = r#"worker_up mem
cg=$(cgroup_of runner-pool@mem.service)
echo "idle_cgroup_bytes=$(cat "$cg/memory.current")"
echo "idle_status=$(ug status --json mem | tr -d '\n')"
submit mem hold <<'EOF'
#!/bin/sh
exec perl -e '$x = "x" x (64 * 1024 * 1024); open(my $f, ">", "holding"); close($f); sleep 600'
EOF
wait_until 60 "the job to hold its 64 MiB" test -e "$pool/instances/mem/holding"
echo "loaded_cgroup_bytes=$(cat "$cg/memory.current")"
echo "loaded_status=$(ug status --json mem | tr -d '\n')"
end_worker mem
"#;

/// A job asking for 600 MiB at once (dd's buffer) in worker `$1`.
const OOM_PROBE: &str = r#"w=$1
worker_up "$w"
memcg="oom_memcg=$(systemctl show -P ControlGroup "runner-pool@$w.service"),"
submit "$w" big <<'EOF'
#!/bin/sh
dd if=/dev/zero of=/dev/null bs=600M count=1
EOF
oom_kills() { journalctl -k -o cat | grep -F "$memcg" | grep -c 'task=dd,' || true; }
killed_or_filed() { [ "$(oom_kills)" -gt 0 ] || filed "$w" big; }
wait_until 270 "dd to be OOM-killed or its job filed" killed_or_filed
echo "kernel_oom_kills=$(oom_kills)"
echo "unit_saw_oom=$(journalctl -u "runner-pool@$w.service" -o cat | grep -c 'A process of this unit has been killed by the OOM killer' || true)"
echo "job=$(job_status "$w" big)"
end_worker "$w"
"#;

/// A job forking 80 sleepers in worker `$1` (the limit of 64, plus a
/// margin past what the worker's own processes take of it: the pids
/// controller counts tasks, however they were forked, and under emulation
/// every fork costs real time, so the job forks no more than it must to
/// show a control getting past the limit): how many tasks its cgroup holds
/// once forks are refused or all are done.
const FORK_BOMB: &str = r#"w=$1
worker_up "$w"
cg=$(cgroup_of "runner-pool@$w.service")
submit "$w" bomb <<'EOF'
#!/bin/sh
i=0
while [ "$i" -lt 80 ]; do
    sleep 600 &
    i=$((i + 1))
done
wait
EOF
fork_refusals() { awk '$1 == "max" { print $2 }' "$cg/pids.events"; }
capped_or_all_forked() { [ "$(fork_refusals)" -gt 0 ] || [ "$(cat "$cg/pids.current")" -ge 80 ]; }
# Forks are slow under emulation, and slower beside the other checks.
wait_until 240 "the job to hit TasksMax or fork all 80" capped_or_all_forked
# Forks now fail (or all are done); give the job no chance to grow: sample
# the count, then the events, then the peak where the kernel has one.
echo "pids_max=$(cat "$cg/pids.max")"
echo "pids_current=$(cat "$cg/pids.current")"
echo "fork_refusals=$(fork_refusals)"
if [ -e "$cg/pids.peak" ]; then echo "pids_peak=$(cat "$cg/pids.peak")"; fi
end_worker "$w"
"#;

/// A 4 s busy loop in worker `$1`: the CPU time its cgroup got for it and
/// how often the scheduler throttled it, read by the job itself around the
/// loop (its cgroup is read-only to it, not hidden), so the worker's own
/// start and the job's filing, slow forks under emulation, stay out of it.
const CPU_PROBE: &str = r#"w=$1
worker_up "$w"
echo "cpu_max=$(tr ' ' '/' < "$(cgroup_of "runner-pool@$w.service")/cpu.max")"
submit "$w" spin <<'EOF'
#!/bin/sh
# Up to five 4 s loops, until one is throttled in 5 periods: the quota can
# only bite while the guest's CPU gets the loop past 50 ms in a period, and
# a host busy with other work can starve the emulated CPU below that for a
# while (once measured: 25 % of a CPU, 1 throttled period). Without a quota
# no attempt is ever throttled, so the control runs all five.
cg=/sys/fs/cgroup$(sed -n 's/^0:://p' /proc/self/cgroup)
cpu_stat() { awk -v k="$1" '$1 == k { print $2 }' "$cg/cpu.stat"; }
for attempt in 1 2 3 4 5; do
    began=$(date +%s%N)
    usage=$(cpu_stat usage_usec)
    throttled=$(cpu_stat nr_throttled)
    timeout 4 sh -c 'while :; do :; done'
    used=$(($(cpu_stat usage_usec) - usage))
    periods=$(($(cpu_stat nr_throttled) - throttled))
    busy=$((($(date +%s%N) - began) / 1000))
    [ "$periods" -lt 5 ] || break
done
echo "attempts=$attempt"
echo "usage_usec=$used"
echo "throttled_periods=$periods"
echo "busy_usec=$busy"
EOF
wait_until 120 "the busy loop to be filed" filed "$w" spin
cat "$pool/instances/$w/done/spin.log"
end_worker "$w"
"#;

/// A job that leaves a double-forked, setsid'd daemon behind and then
/// runs on, in worker `$1`; the worker is stopped under it.
const DAEMON_PROBE: &str = r#"w=$1
worker_up "$w"
cg=$(cgroup_of "runner-pool@$w.service")
submit "$w" daemon <<'EOF'
#!/bin/sh
(setsid sh -c 'echo $$ > daemon.pid; exec sleep 1000' &)
exec sleep 1001
EOF
pidfile=$pool/instances/$w/daemon.pid
# Its parent, the ( … & ) subshell, exits at once: then PID 1 adopts it.
adopted() { [ -s "$pidfile" ] && [ "$(ps -o ppid= -p "$(cat "$pidfile")" | tr -d ' ')" = 1 ]; }
wait_until 60 "the daemon to be on its own" adopted
pid=$(cat "$pidfile")
echo "daemon_ppid=$(ps -o ppid= -p "$pid" | tr -d ' ')"
echo "daemon_session_leader=$([ "$(ps -o sid= -p "$pid" | tr -d ' ')" = "$pid" ] && echo yes || echo no)"
echo "daemon_in_unit_cgroup=$(grep -qx "$pid" "$cg/cgroup.procs" && echo yes || echo no)"
ug stop "$w"
wait_until 60 "runner-pool@$w to stop" sh -c "! systemctl is-active --quiet runner-pool@$w.service"
echo "daemon_alive_after_stop=$(kill -0 "$pid" 2>/dev/null && echo yes || echo no)"
if [ -e "$cg/cgroup.procs" ]; then
    echo "cgroup_procs_after_stop=$(wc -l < "$cg/cgroup.procs")"
else
    echo "cgroup_procs_after_stop=0"
fi
kill "$pid" 2>/dev/null || true
"#;

/// For the task checks: a `[tasks]` table in runner-pool's policy (root's
/// to write, as an operator would) and the probes it lists, root's.
const TASKS_SETUP: &str = r#"cat >> /etc/unitgate/apps/runner-pool.toml <<'POLICY'

[tasks]
commands = ["/usr/local/lib/tasktest/"]
max_cpu_percent = 100000
max_memory = "512M"
max_tasks = 128
max_runtime_secs = 600
max_running = 8
POLICY
install -d -m 0755 /usr/local/lib/tasktest
cat > /usr/local/lib/tasktest/alloc <<'PROBE'
#!/bin/sh
exec dd if=/dev/zero of=/dev/null bs=200M count=1
PROBE
# 20 children that sleep, whatever forks fail (a shell would end at its
# first failed fork, and the cgroup with it), then it waits for them.
cat > /usr/local/lib/tasktest/forker <<'PROBE'
#!/usr/bin/perl
for (1 .. 20) {
    my $pid = fork;
    if (defined $pid && $pid == 0) { sleep 300; exit 0; }
}
1 while wait != -1;
PROBE
cat > /usr/local/lib/tasktest/spin <<'PROBE'
#!/bin/sh
# A 4 s busy loop; its cgroup's CPU time and throttled periods around it.
cg=/sys/fs/cgroup$(sed -n 's/^0:://p' /proc/self/cgroup)
cpu_stat() { awk -v k="$1" '$1 == k { print $2 }' "$cg/cpu.stat"; }
began=$(date +%s%N)
usage=$(cpu_stat usage_usec)
throttled=$(cpu_stat nr_throttled)
timeout 4 sh -c 'while :; do :; done'
echo "usage_usec=$(($(cpu_stat usage_usec) - usage))"
echo "throttled_periods=$(($(cpu_stat nr_throttled) - throttled))"
echo "busy_usec=$((($(date +%s%N) - began) / 1000))"
echo "cpu_max=$(tr ' ' '/' < "$cg/cpu.max")"
PROBE
chmod 0755 /usr/local/lib/tasktest/*
"#;

/// `run --memory $1 -- alloc` as runner: its exit status and document.
const TASK_OOM: &str = r#"rc=0
out=$(ug --json run --name "oom$2" --memory "$1" -- /usr/local/lib/tasktest/alloc) || rc=$?
echo "rc=$rc"
echo "doc=$(echo "$out" | tr -d '\n ')"
"#;

/// `run --detach --tasks $1 -- forker` as runner: what its cgroup counted.
const TASK_BOMB: &str = r#"id=bomb$1
ug run --detach --name "$id" --tasks "$1" -- /usr/local/lib/tasktest/forker
cg=/sys/fs/cgroup/unitgate.slice/unitgate-tasks.slice/runner-pool-task-$(id -u runner)-$id.service
refusals() { awk '$1 == "max" { print $2 }' "$cg/pids.events"; }
capped_or_all() { [ "$(refusals)" -gt 0 ] || [ "$(cat "$cg/pids.current")" -ge 21 ]; }
wait_until 240 "the bomb to hit TasksMax or fork all 20" capped_or_all
echo "pids_max=$(cat "$cg/pids.max")"
echo "pids_current=$(cat "$cg/pids.current")"
echo "fork_refusals=$(refusals)"
ug kill "$id"
"#;

/// A `new-app` scaffold with `--profile $1` whose program tries to listen
/// on 127.0.0.1:$2 and writes what happened. `inet-out`'s
/// `SocketBindDeny=any` needs cgroup BPF, which containers lack: this
/// kernel is where it is enforced, or not.
const NEWAPP_BIND: &str = r#"app=bind-$1
cat > /usr/local/bin/try-bind <<'PROBE'
#!/usr/bin/perl
use Socket;
socket(my $s, PF_INET, SOCK_STREAM, 0) or die "socket: $!";
# The error read at once: bind's own, not a later call's.
my $seen = bind($s, pack_sockaddr_in($ARGV[0], inet_aton("127.0.0.1"))) ? "bound" : "refused: $!";
listen($s, 1) if $seen eq "bound";
open my $f, ">", "seen.new" or die "seen.new: $!";
print $f "$seen\n";
close $f;
rename "seen.new", "seen";
sleep;
PROBE
chmod 0755 /usr/local/bin/try-bind
mkdir -p /root/apps
unitgate new-app "$app" --exec "/usr/local/bin/try-bind $2" --profile "$1" --dir /root/apps >/dev/null
(cd /mnt/src && sh deploy/install.sh --app-only --app "/root/apps/$app" >/dev/null)
as_user "$app" unitgate --app "$app" init one
as_user "$app" unitgate --app "$app" start one
wait_until 120 "the program's try" test -e "/var/lib/$app/instances/one/seen"
echo "seen=$(cat "/var/lib/$app/instances/one/seen")"
echo "socket_bind_deny=$(systemctl show -P SocketBindDeny "$app@one.service")"
# Whether systemd could use cgroup BPF at all (it says so once, at boot).
journalctl -b --no-pager -o cat | grep -iE 'libbpf|cgroup BPF' | tail -n 3 | sed 's/^/journal: /'
"#;

/// `run --cpu $1 -- spin` as runner, its figures read from its journal.
const TASK_CPU: &str = r#"id=cpu$1
rc=0
ug run --name "$id" --cpu "$1" -- /usr/local/lib/tasktest/spin || rc=$?
echo "rc=$rc"
unit="runner-pool-task-$(id -u runner)-$id.service"
wait_until 30 "the spin's figures in its journal" sh -c "journalctl -o cat -u $unit | grep -q cpu_max="
journalctl -o cat -u "$unit" | grep -E '^[a-z_]+='
"#;

/// One boot: unitgate and runner-pool installed, the controls' drop-ins,
/// then the checks. Each worker has a cgroup of its own, and what the
/// memory, tasks and stop checks measure is their own cgroup's (bytes,
/// tasks, processes left), which other workers' jobs cannot move (the
/// guest's 1536 MiB holds the uncapped 600 MiB job beside the rest), so
/// those run at the same time. The busy loops measure CPU time against
/// wall time on the guest's one CPU: they run after, one at a time, so the
/// control's loop gets the CPU to itself and its lack of throttling means
/// the missing quota, not a busy neighbour.
static POOL: SharedBoot = SharedBoot::new(|| {
    let probe = |script: &str, worker: &str| format!("{POOL_SH}\nset -- {worker}\n{script}");
    // Seven checks share the one CPU: each gets a deadline for all of them.
    let together = 300;
    Checks::new("vm-runner-pool")
        .with_unitgate()
        .with_app("deploy/apps/runner-pool")
        .setup("controls", CONTROLS)
        .setup("tasks", TASKS_SETUP)
        .setup("workers", &format!("{POOL_SH}\n{WORKERS}"))
        .concurrently(|c| {
            c.check(
                "memory-report",
                together,
                &format!("{POOL_SH}\n{MEMORY_REPORT}"),
            )
            .check("memory-max", together, &probe(OOM_PROBE, "oom"))
            .check("memory-max-control", together, &probe(OOM_PROBE, "nomem"))
            .check("tasks-max", together, &probe(FORK_BOMB, "bomb"))
            .check("tasks-max-control", together, &probe(FORK_BOMB, "notasks"))
            .check(
                "stop-kills-daemon",
                together,
                &probe(DAEMON_PROBE, "daemon"),
            )
            .check(
                "stop-kills-daemon-control",
                together,
                &probe(DAEMON_PROBE, "nokill"),
            )
            .check("task-memory", together, &probe(TASK_OOM, "50M 1"))
            .check("task-memory-control", together, &probe(TASK_OOM, "512M 2"))
            .check("task-tasks", together, &probe(TASK_BOMB, "5"))
            .check("task-tasks-control", together, &probe(TASK_BOMB, "64"))
        })
        .check("task-cpu", 120, &probe(TASK_CPU, "20"))
        .check("task-cpu-control", 120, &probe(TASK_CPU, "100000"))
        .check("cpu-quota", 180, &probe(CPU_PROBE, "cpu"))
        .check("cpu-quota-control", 180, &probe(CPU_PROBE, "nocpu"))
        .check(
            "newapp-inet-out",
            300,
            &format!("set -- inet-out 4200\n{NEWAPP_BIND}"),
        )
        .check(
            "newapp-inet-in",
            300,
            &format!("set -- inet-in 4201\n{NEWAPP_BIND}"),
        )
});

/// The `key=value` lines a check printed (shown with `--nocapture`, for
/// the figures behind a passing test).
fn fields(out: &Output) -> HashMap<String, String> {
    let fields: HashMap<String, String> = out
        .stdout
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let mut shown: Vec<String> = fields
        .iter()
        .filter(|(k, _)| !k.ends_with("_status"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    shown.sort();
    eprintln!("{}", shown.join(" "));
    fields
}

fn number(fields: &HashMap<String, String>, key: &str) -> u64 {
    fields
        .get(key)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no number {key} in {fields:?}"))
}

/// `memory_bytes` of the only instance in a `status --json` line.
fn status_memory(fields: &HashMap<String, String>, key: &str) -> Option<u64> {
    let json: serde_json::Value = serde_json::from_str(&fields[key])
        .unwrap_or_else(|e| panic!("{key} is not JSON ({e}): {fields:?}"));
    json["instances"][0]["memory_bytes"].as_u64()
}

const MIB: u64 = 1024 * 1024;

#[test]
fn status_reports_the_memory_a_running_worker_really_holds() {
    let out = POOL.report().ok("memory-report");
    let f = fields(out);
    let idle = status_memory(&f, "idle_status")
        .unwrap_or_else(|| panic!("an idle running worker has no memory_bytes: {out}"));
    assert!(
        (100 * 1024..64 * MIB).contains(&idle),
        "an idle worker (a shell waiting for jobs) at {idle} bytes: {out}"
    );
    let loaded = status_memory(&f, "loaded_status")
        .unwrap_or_else(|| panic!("a loaded worker has no memory_bytes: {out}"));
    let cgroup = number(&f, "loaded_cgroup_bytes");
    assert!(
        (64 * MIB..512 * MIB).contains(&loaded),
        "a worker whose job holds 64 MiB reported at {loaded} bytes: {out}"
    );
    assert!(
        loaded.abs_diff(cgroup) < 16 * MIB,
        "status says {loaded} bytes, the cgroup {cgroup}: {out}"
    );
}

/// The kernel OOM-killed dd inside the worker's own cgroup, systemd saw it
/// as the unit's, and the job never got to finish.
fn memory_max_held(out: &Output) -> Result<(), String> {
    let f = fields(out);
    let kills = number(&f, "kernel_oom_kills");
    let unit_saw = number(&f, "unit_saw_oom");
    let job = f.get("job").cloned().unwrap_or_default();
    if kills >= 1 && unit_saw >= 1 && !job.starts_with("done") {
        Ok(())
    } else {
        Err(format!(
            "no OOM kill in the worker's cgroup (kernel: {kills}, unit: {unit_saw}, job: {job})"
        ))
    }
}

#[test]
fn memory_max_oom_kills_a_job_that_allocates_past_it() {
    let out = POOL.report().ok("memory-max");
    memory_max_held(out).unwrap_or_else(|e| panic!("{e}: {out}"));
}

#[test]
fn without_memory_max_the_same_job_completes() {
    let out = POOL.report().ok("memory-max-control");
    assert!(
        memory_max_held(out).is_err(),
        "the OOM evidence must be missing without MemoryMax: {out}"
    );
    assert_eq!(fields(out)["job"], "done 0", "{out}");
}

/// Forks were refused at the limit, and the cgroup never held more.
fn tasks_max_held(out: &Output) -> Result<(), String> {
    let f = fields(out);
    let refusals = number(&f, "fork_refusals");
    let current = number(&f, "pids_current");
    let peak = f.get("pids_peak").and_then(|p| p.parse::<u64>().ok());
    if refusals >= 1 && current <= 64 && peak.map_or(true, |p| p <= 64) {
        Ok(())
    } else {
        Err(format!(
            "the job was not capped at 64 tasks (refused forks: {refusals}, tasks: {current}, peak: {peak:?})"
        ))
    }
}

#[test]
fn tasks_max_caps_a_fork_bomb() {
    let out = POOL.report().ok("tasks-max");
    assert_eq!(fields(out)["pids_max"], "64", "{out}");
    tasks_max_held(out).unwrap_or_else(|e| panic!("{e}: {out}"));
}

#[test]
fn without_tasks_max_the_same_bomb_forks_past_64() {
    let out = POOL.report().ok("tasks-max-control");
    assert!(
        tasks_max_held(out).is_err(),
        "the cap must be missing without TasksMax: {out}"
    );
    // The job forks 80. The check waited until the cgroup held that many,
    // but a later sample can read fewer than its peak (the count moves with
    // the worker's own processes too), so the peak is what shows every fork
    // went through.
    let f = fields(out);
    let most = match f.get("pids_peak") {
        Some(_) => number(&f, "pids_peak"),
        None => number(&f, "pids_current"),
    };
    assert!(most >= 80, "the job never held all 80 tasks: {out}");
}

/// The busy loop got at most `quota` + 10 percent of its 4 s (slack for
/// the forks around it) and the scheduler throttled it: not merely a slow
/// guest.
fn cpu_throttled_to(out: &Output, quota: u64) -> Result<(), String> {
    let f = fields(out);
    let usage = number(&f, "usage_usec");
    let busy = number(&f, "busy_usec");
    let throttled = number(&f, "throttled_periods");
    let share = usage as f64 / busy as f64;
    if throttled >= 5 && share <= (quota + 10) as f64 / 100.0 {
        Ok(())
    } else {
        Err(format!(
            "not throttled to {quota}% ({:.0}% of {busy} µs, throttled in {throttled} periods)",
            share * 100.0
        ))
    }
}

#[test]
fn cpu_quota_throttles_a_busy_loop_to_half_a_cpu() {
    let out = POOL.report().ok("cpu-quota");
    assert_eq!(fields(out)["cpu_max"], "50000/100000", "{out}");
    cpu_throttled_to(out, 50).unwrap_or_else(|e| panic!("{e}: {out}"));
}

#[test]
fn without_cpu_quota_the_same_loop_is_not_throttled() {
    let out = POOL.report().ok("cpu-quota-control");
    assert!(
        cpu_throttled_to(out, 50).is_err(),
        "the throttling must be missing without CPUQuota: {out}"
    );
}

/// The daemon really left its job (reparented to PID 1, its own session)
/// but not the unit's cgroup, and the stop took it: nothing left there.
fn stop_killed_daemon(out: &Output) -> Result<(), String> {
    let f = fields(out);
    let detached = f.get("daemon_ppid").map(String::as_str) == Some("1")
        && f.get("daemon_session_leader").map(String::as_str) == Some("yes");
    if !detached || f.get("daemon_in_unit_cgroup").map(String::as_str) != Some("yes") {
        return Err(format!(
            "the job's daemon was not a detached process of the unit: {f:?}"
        ));
    }
    let alive = f.get("daemon_alive_after_stop").map(String::as_str) == Some("yes");
    let left = number(&f, "cgroup_procs_after_stop");
    if !alive && left == 0 {
        Ok(())
    } else {
        Err(format!(
            "after the stop the daemon is alive: {alive}, processes in the cgroup: {left}"
        ))
    }
}

#[test]
fn stopping_a_worker_kills_a_daemon_its_job_double_forked() {
    let out = POOL.report().ok("stop-kills-daemon");
    stop_killed_daemon(out).unwrap_or_else(|e| panic!("{e}: {out}"));
}

#[test]
fn with_kill_mode_process_the_daemon_outlives_the_stop() {
    let out = POOL.report().ok("stop-kills-daemon-control");
    let err = stop_killed_daemon(out).expect_err("KillMode=process must leave the daemon");
    assert!(err.contains("after the stop"), "{err}: {out}");
}

/// The task was OOM-killed, and `run` said so: 137 and result `oom-kill`.
fn task_oom_reported(out: &Output) -> Result<(), String> {
    let f = fields(out);
    let doc = f.get("doc").cloned().unwrap_or_default();
    if f.get("rc").map(String::as_str) == Some("137") && doc.contains("\"result\":\"oom-kill\"") {
        Ok(())
    } else {
        Err(format!(
            "no OOM kill reported (rc {:?}, {doc})",
            f.get("rc")
        ))
    }
}

#[test]
fn a_task_with_memory_50m_allocating_200m_is_oom_killed_and_reported() {
    let out = POOL.report().ok("task-memory");
    task_oom_reported(out).unwrap_or_else(|e| panic!("{e}: {out}"));
}

#[test]
fn a_task_with_memory_to_spare_allocates_200m_and_succeeds() {
    let out = POOL.report().ok("task-memory-control");
    assert!(task_oom_reported(out).is_err(), "{out}");
    let f = fields(out);
    assert_eq!(f.get("rc").map(String::as_str), Some("0"), "{out}");
    assert!(f["doc"].contains("\"result\":\"success\""), "{out}");
}

#[test]
fn a_task_with_tasks_5_cannot_fork_past_5() {
    let out = POOL.report().ok("task-tasks");
    let f = fields(out);
    assert_eq!(f["pids_max"], "5", "{out}");
    assert!(number(&f, "fork_refusals") >= 1, "{out}");
    assert!(number(&f, "pids_current") <= 5, "{out}");
}

#[test]
fn a_task_with_tasks_64_forks_all_20() {
    let out = POOL.report().ok("task-tasks-control");
    let f = fields(out);
    assert_eq!(f["pids_max"], "64", "{out}");
    assert_eq!(number(&f, "fork_refusals"), 0, "{out}");
    assert!(number(&f, "pids_current") >= 21, "{out}");
}

#[test]
fn a_task_with_cpu_20_is_throttled_to_a_fifth_of_a_cpu() {
    let out = POOL.report().ok("task-cpu");
    let f = fields(out);
    assert_eq!(f["cpu_max"], "20000/100000", "{out}");
    assert_eq!(f.get("rc").map(String::as_str), Some("0"), "{out}");
    cpu_throttled_to(out, 20).unwrap_or_else(|e| panic!("{e}: {out}"));
}

#[test]
fn a_task_with_a_quota_of_every_cpu_is_not_throttled() {
    let out = POOL.report().ok("task-cpu-control");
    assert!(cpu_throttled_to(out, 20).is_err(), "{out}");
}

#[test]
fn new_app_inet_out_cannot_listen_where_the_kernel_enforces_it() {
    let out = POOL.report().ok("newapp-inet-out");
    let f = fields(out);
    assert_eq!(f["socket_bind_deny"], "any", "{out}");
    assert!(
        f["seen"].starts_with("refused: ") && f["seen"].contains("Operation not permitted"),
        "{out}"
    );
}

#[test]
fn new_app_inet_in_listens_on_the_same_kernel() {
    let out = POOL.report().ok("newapp-inet-in");
    let f = fields(out);
    assert_eq!(f["seen"], "bound", "{out}");
    assert_eq!(f["socket_bind_deny"], "", "{out}");
}
