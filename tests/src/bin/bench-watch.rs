//! Benchmark of `unitgate watch` (not a timed test; run by hand, figures go
//! to BENCHMARKS.md):
//!
//!     cargo build --release && sudo target/release/bench-watch [N [TRIALS]]
//!
//! In a test-bed machine with N (default 1000) initialized, running
//! instances of the demo app (its template guarded as the installer guards
//! a reference app, so starting them all costs no reload per batch), a
//! watcher runs as the service account, its lines timestamped by a reader
//! (bash's `$EPOCHREALTIME`, no fork per line) as they arrive. Each trial
//! takes a timestamp inside the machine right before an out-of-band
//! `systemctl` change and looks for the watcher's line about that instance:
//! latency = line received − command issued. Then the watcher's CPU time
//! while idle over 60 s (default `--interval` 10 s) and its memory.

use std::time::{Duration, Instant};

use unitgate_tests::demo::{bench_machine, ug, wait_for, USER};
use unitgate_tests::Machine;

/// `watch-reader`: the watcher, with every line prefixed by the µs it was
/// read at; the watcher's pid in /tmp/wb.pid.
const READER: &str = r#"#!/bin/bash
unitgate watch --json "$@" 2>/tmp/wb.err > >(while IFS= read -r l; do printf '%s %s\n' "${EPOCHREALTIME/./}" "$l"; done >/tmp/wb.log) &
echo $! >/tmp/wb.pid
wait
"#;

/// What `unitgate init $i` leaves for the demo app (as i1 has it), for
/// instance `$i` numbered `${i#i}`, port 20000 + that - 1.
const REPLICA: &str = r#"n=${i#i}; p=$((19999 + n)); umask 027; mkdir -p .$i.new/data && cp i1/server.cfg .$i.new/ && cp i1/data/README .$i.new/data/ && printf '# Written by `unitgate init` for instance %s of app demo.\n# Read by `unitgate launch` when the instance starts; values are double-quoted.\nUNITGATE_APP="demo"\nUNITGATE_INSTANCE="%s"\nPORT="%s"\nGREETING="hello from %s on port %s"\nDATA_DIR="/var/lib/demo/instances/%s/data"\n' $i $i $p $i $p $i > .$i.new/instance.env && chmod 2750 .$i.new && chmod 755 .$i.new/data && chmod 644 .$i.new/server.cfg .$i.new/data/README && mv .$i.new $i"#;

/// Lines of the log about `inst` received at or after `t0` (µs), as
/// (receive time, parsed line).
fn lines_after(m: &Machine, inst: &str, t0: u64) -> Vec<(u64, serde_json::Value)> {
    let out = m
        .sh(&format!(
            "grep -F '\"instance\":\"{inst}\"' /tmp/wb.log || true"
        ))
        .ok();
    out.stdout
        .lines()
        .filter_map(|l| {
            let (ts, json) = l.split_once(' ')?;
            let ts: u64 = ts.parse().ok()?;
            if ts < t0 {
                return None;
            }
            Some((ts, serde_json::from_str(json).ok()?))
        })
        .collect()
}

/// Runs `cmd` (as root) with a timestamp taken inside right before it, and
/// waits for a line about `inst` satisfying `done`. Returns (ms to the first
/// line about `inst`, ms to the line satisfying `done`, ms `cmd` itself took).
fn trial(
    m: &Machine,
    inst: &str,
    cmd: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> (f64, f64, f64) {
    let out = m
        .sh(&format!(
            "exec bash -c 't0=${{EPOCHREALTIME/./}}; {cmd} >/dev/null 2>&1; echo $t0 ${{EPOCHREALTIME/./}}'"
        ))
        .ok();
    let (t0, t1) = out.stdout.trim().split_once(' ').expect("t0 t1");
    let (t0, t1): (u64, u64) = (t0.parse().unwrap(), t1.parse().unwrap());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lines = lines_after(m, inst, t0);
        if let Some((t, _)) = lines.iter().find(|(_, v)| done(v)) {
            let first = lines[0].0;
            return (
                (first - t0) as f64 / 1000.0,
                (*t - t0) as f64 / 1000.0,
                (t1 - t0) as f64 / 1000.0,
            );
        }
        assert!(
            Instant::now() < deadline,
            "no line for {inst} after `{cmd}`: {lines:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stats(v: &[f64]) -> (f64, f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (s[s.len() / 2], s[s.len() * 9 / 10], s[s.len() - 1])
}

fn cpu_ticks(m: &Machine, pid: &str) -> u64 {
    let stat = m.sh(&format!("cat /proc/{pid}/stat")).ok().stdout;
    let rest = stat.rsplit_once(')').unwrap().1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields after the command: state is [0]; utime [11], stime [12].
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>().expect("usage: bench-watch [N [TRIALS]]"));
    let n = args.next().unwrap_or(1000);
    let trials = args.next().unwrap_or(25);
    let m = bench_machine("watch-bench", n, "");
    // In chunks of 1000: with 10,000 instances the whole would outlast the
    // test bed's limit on one command. Past the first 1000 the instances'
    // state is written as `init` writes it (its environment file, its
    // skeleton): `init` picks a free port by reading every instance's
    // environment file, about half a second each at 10,000 (bench-cli
    // measures that), and this benchmark is about watch.
    let all: Vec<String> = (1..=n).map(|i| format!("i{i}")).collect();
    for (k, chunk) in all.chunks(1000).enumerate() {
        let names = chunk.join(" ");
        let init = if k == 0 {
            format!("for i in {names}; do unitgate init $i >/dev/null; done")
        } else {
            format!("cd /var/lib/demo/instances && for i in {names}; do {REPLICA}; done")
        };
        m.sh_as(USER, &init).ok();
        ug(&m, &format!("start {names}")).ok();
    }
    let running = m
        .sh("systemctl list-units --state=running --plain --no-legend 'demo@*' | wc -l")
        .ok()
        .stdout;
    assert_eq!(running.trim(), n.to_string());
    ug(&m, "status --json >/dev/null").ok(); // warm the status cache

    m.write_file("/usr/local/bin/watch-reader", READER.as_bytes(), 0o755);
    let started = Instant::now();
    m.sh_as(USER, "setsid watch-reader >/dev/null 2>&1 </dev/null &")
        .ok();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !m.sh("grep -q '\"event\":\"synced\"' /tmp/wb.log").success() {
        assert!(
            Instant::now() < deadline,
            "no synced line: {}",
            m.sh("cat /tmp/wb.err")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let snapshot = started.elapsed();
    let pid = m.sh("cat /tmp/wb.pid").ok().stdout.trim().to_owned();
    std::thread::sleep(Duration::from_secs(1));

    let mut stop_first = Vec::new();
    let mut stop_done = Vec::new();
    let mut dis_first = Vec::new();
    let mut dis_done = Vec::new();
    let mut kill_first = Vec::new();
    let mut rm_done = Vec::new();
    let (mut stop_cmd, mut dis_cmd, mut kill_cmd) = (Vec::new(), Vec::new(), Vec::new());
    for k in 0..trials {
        let inst = format!("i{}", 1 + k * 37 % n);
        // Out-of-band stop: should-run-but-inactive.
        let (f, d, c) = trial(
            &m,
            &inst,
            &format!("systemctl stop demo@{inst}.service"),
            |v| {
                v["event"] == "change"
                    && v["drift"] == "should-run-but-inactive"
                    && v["active_state"] == "inactive"
            },
        );
        stop_first.push(f);
        stop_done.push(d);
        stop_cmd.push(c);
        trial(
            &m,
            &inst,
            &format!("systemctl start demo@{inst}.service"),
            |v| v["event"] == "change" && v["active_state"] == "active" && v["drift"].is_null(),
        );
        // Out-of-band disable: running-but-not-enabled. (Enablement is read
        // from disk on UnitFilesChanged, before the daemon reload
        // `systemctl disable` asks for, during which systemd answers nothing.)
        let (f, d, c) = trial(
            &m,
            &inst,
            &format!("systemctl disable demo@{inst}.service"),
            |v| v["event"] == "change" && v["drift"] == "running-but-not-enabled",
        );
        dis_first.push(f);
        dis_done.push(d);
        dis_cmd.push(c);
        trial(
            &m,
            &inst,
            &format!("systemctl enable demo@{inst}.service"),
            |v| v["event"] == "change" && v["enabled"] == true && v["drift"].is_null(),
        );
        // A crash (SIGKILL of the main process; Restart= brings it back).
        let main_pid = m
            .sh(&format!(
                "systemctl show -p MainPID --value demo@{inst}.service"
            ))
            .ok()
            .stdout;
        let (f, _, c) = trial(&m, &inst, &format!("kill -KILL {}", main_pid.trim()), |v| {
            v["event"] == "change"
        });
        kill_first.push(f);
        kill_cmd.push(c);
        // Back up (a new main process, running) before its state directory
        // goes: removed while the restarted `unitgate launch` still reads
        // it, the instance fails its restarts into the start limit.
        wait_for(
            &m,
            "the killed instance to run again",
            &format!(
                "test \"$(systemctl show -p SubState --value demo@{inst}.service)\" = running \
                 && test \"$(systemctl show -p MainPID --value demo@{inst}.service)\" != {}",
                main_pid.trim()
            ),
        );
        // The state directory removed behind the CLI's back (inotify):
        // unit-without-state; then initialized again.
        let (_, d, _) = trial(
            &m,
            &inst,
            &format!("rm -rf /var/lib/demo/instances/{inst}"),
            |v| v["event"] == "change" && v["drift"] == "unit-without-state",
        );
        rm_done.push(d);
        ug(&m, &format!("init {inst}")).ok();
        m.sh(&format!("systemctl restart demo@{inst}.service")).ok();
        wait_for(
            &m,
            "the re-initialized instance to run",
            &format!(
                "test \"$(systemctl show -p SubState --value demo@{inst}.service)\" = running"
            ),
        );
    }

    // Idle: nothing changes for 60 s; the watcher re-reads all N every 10 s.
    std::thread::sleep(Duration::from_secs(2));
    let lines_before = m.sh("wc -l </tmp/wb.log").ok().stdout.trim().to_owned();
    let t0 = cpu_ticks(&m, &pid);
    let wall = Instant::now();
    std::thread::sleep(Duration::from_secs(60));
    let ticks = cpu_ticks(&m, &pid) - t0;
    let secs = wall.elapsed().as_secs_f64();
    let lines_after_idle = m.sh("wc -l </tmp/wb.log").ok().stdout.trim().to_owned();
    let hz: f64 = m.sh("getconf CLK_TCK").ok().stdout.trim().parse().unwrap();
    let rss = m
        .sh(&format!("awk '/^VmRSS/ {{print $2}}' /proc/{pid}/status"))
        .ok()
        .stdout;
    let err = m.sh("cat /tmp/wb.err").stdout;
    m.sh(&format!("kill -TERM {pid}")).ok();

    let show = |name: &str, v: &[f64]| {
        let (med, p90, max) = stats(v);
        println!(
            "{name:58} median {med:7.1} ms  p90 {p90:7.1} ms  worst {max:7.1} ms  (n={})",
            v.len()
        );
    };
    println!("\n=== unitgate watch benchmark, {n} instances running ===");
    println!(
        "start to synced line ({n} initial lines)                  {:.0} ms",
        snapshot.as_secs_f64() * 1000.0
    );
    show("systemctl stop -> first line about it", &stop_first);
    show(
        "systemctl stop -> inactive/dead + should-run-but-inactive",
        &stop_done,
    );
    show("systemctl disable -> first line about it", &dis_first);
    show("systemctl disable -> running-but-not-enabled", &dis_done);
    show(
        "kill -KILL of the main process -> first line about it",
        &kill_first,
    );
    show(
        "rm -rf <state_dir>/INSTANCE -> unit-without-state",
        &rm_done,
    );
    show("(systemctl stop itself, for comparison)", &stop_cmd);
    show(
        "(systemctl disable itself, incl. its daemon-reload)",
        &dis_cmd,
    );
    show("(kill itself)", &kill_cmd);
    let all_done: Vec<f64> = stop_done
        .iter()
        .chain(&dis_done)
        .chain(&rm_done)
        .copied()
        .collect();
    show("all drift lines (stop + disable + rm)", &all_done);
    println!(
        "idle watcher over {secs:.0} s: {ticks} ticks of {hz} Hz = {:.2} s CPU = {:.3}% of one core; lines while idle: {} -> {}",
        ticks as f64 / hz,
        ticks as f64 / hz / secs * 100.0,
        lines_before,
        lines_after_idle
    );
    println!("watcher RSS {} kB", rss.trim());
    if !err.trim().is_empty() {
        println!("watcher stderr:\n{err}");
    }
}
