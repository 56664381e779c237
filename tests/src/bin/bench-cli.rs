//! Benchmark of the CLI (not a timed test; run by hand as root, figures go
//! to BENCHMARKS.md):
//!
//!     cargo build --release && target/release/bench-cli
//!
//! In a test-bed machine with 1000 initialized, running instances it
//! measures `status --json` against the floor of one unprivileged
//! `systemctl list-units` + `list-unit-files` and against the per-instance
//! `sudo helper show` loop, and a batched `start` of 500 instances against
//! a raw `systemctl enable --now` of 500 units and the
//! one-`systemctl enable --now`-per-instance loop.

use unitgate_tests::demo::{demo_machine, ug, USER};
use unitgate_tests::Machine;

const N: usize = 1000;
const HALF: usize = 500;
const RUNS: usize = 21;

/// Runs `script` `runs` times as `user` (None: root) inside the machine and
/// returns each run's wall time in ms, measured inside.
fn time_runs(m: &Machine, user: Option<&str>, script: &str, runs: usize) -> Vec<f64> {
    let wrapped = format!(
        "for r in $(seq {runs}); do s=$(date +%s%N); {{ {script}\n}} >/dev/null 2>/tmp/bench.err || {{ echo FAIL; tail -5 /tmp/bench.err; }}; e=$(date +%s%N); echo $(( (e - s) / 1000 )); done"
    );
    let out = match user {
        Some(u) => m.sh_as(u, &wrapped),
        None => m.sh(&wrapped),
    }
    .ok();
    assert!(
        !out.stdout.contains("FAIL"),
        "a timed command failed: {script}\n{out}"
    );
    out.stdout
        .lines()
        .filter_map(|l| l.trim().parse::<f64>().ok())
        .map(|us| us / 1000.0)
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn names(range: std::ops::RangeInclusive<usize>) -> String {
    range.map(|i| format!("i{i}")).collect::<Vec<_>>().join(" ")
}

fn units(range: std::ops::RangeInclusive<usize>) -> String {
    range
        .map(|i| format!("demo@i{i}.service"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() {
    let m = demo_machine("cli-bench");
    let t = time_runs(
        &m,
        Some(USER),
        &format!("for i in $(seq {N}); do unitgate init i$i; done"),
        1,
    );
    println!(
        "init of {N} instances, one command each: {:.0} ms ({:.1} ms per init)",
        t[0],
        t[0] / N as f64
    );
    let (a, b) = (names(1..=HALF), names(HALF + 1..=N));
    let b_units = units(HALF + 1..=N);

    // Batched start of 500 vs raw `systemctl enable --now` of 500 units,
    // alternating, 3 rounds each (stopping in between, untimed).
    let mut ug_start = Vec::new();
    let mut raw_start = Vec::new();
    for _ in 0..3 {
        raw_start.extend(time_runs(
            &m,
            None,
            &format!("systemctl enable --now {b_units}"),
            1,
        ));
        m.sh(&format!("systemctl disable --now {b_units}")).ok();
        // Without the settle window: what systemctl itself does.
        ug_start.extend(time_runs(
            &m,
            Some(USER),
            &format!("unitgate start --settle 0 {a}"),
            1,
        ));
        ug(&m, &format!("stop {a}")).ok();
    }
    // With the default window (2 s): every one of the 500 watched at once.
    let settled = time_runs(&m, Some(USER), &format!("unitgate start {a}"), 1);
    ug(&m, &format!("stop {a}")).ok();
    // One `systemctl enable --now` (one daemon-reload) per instance, on 50.
    let per = time_runs(
        &m,
        None,
        &format!(
            "for u in {}; do systemctl enable --now $u; done",
            units(HALF + 1..=HALF + 50)
        ),
        1,
    );
    m.sh(&format!(
        "systemctl disable --now {}",
        units(HALF + 1..=HALF + 50)
    ))
    .ok();
    let per_instance_500 = per[0] / 50.0 * HALF as f64;

    // Everything running for the status figures.
    ug(&m, &format!("start --settle 0 {a} {b}")).ok();
    let running = m
        .sh("systemctl list-units --state=running --plain --no-legend 'demo@*' | wc -l")
        .ok()
        .stdout;
    assert_eq!(running.trim(), N.to_string());

    let cold = time_runs(
        &m,
        Some(USER),
        "rm -f /var/lib/demo/instances/.locks/status-cache.*.json; unitgate status --json",
        5,
    );
    let status = time_runs(&m, Some(USER), "unitgate status --json", RUNS);
    let table = time_runs(&m, Some(USER), "unitgate status", RUNS);
    let floor = time_runs(
        &m,
        Some(USER),
        "systemctl list-units --all --plain --no-legend 'demo@*'; systemctl list-unit-files --plain --no-legend 'demo@*'",
        RUNS,
    );
    // The per-instance privileged loop, on 100 instances, scaled to 1000.
    let show = time_runs(
        &m,
        Some(USER),
        "for i in $(seq 100); do sudo -n /usr/local/libexec/unitgate/unitgate-systemctl demo show i$i; done",
        1,
    );
    let show_1000 = show[0] * 10.0;
    let out = ug(&m, "status --json").ok();
    assert_eq!(out.stdout.matches("\"instance\":").count(), N);

    let (s, f, u, r) = (
        median(status),
        median(floor),
        median(ug_start.clone()),
        median(raw_start.clone()),
    );
    println!("\n=== unitgate benchmark, {N} instances (medians) ===");
    println!("status --json (all)                       {s:8.1} ms  ({RUNS} runs)");
    println!(
        "status --json, cold (no status cache)     {:8.1} ms  (5 runs)",
        median(cold)
    );
    println!(
        "status (table)                            {:8.1} ms",
        median(table)
    );
    println!(
        "floor: systemctl list-units + list-unit-files {f:8.1} ms  -> status/floor = {:.2}x",
        s / f
    );
    println!("per-instance `sudo helper show` loop      {show_1000:8.0} ms  (100 measured x10) -> {:.0}x slower than status", show_1000 / s);
    println!("unitgate start --settle 0 of {HALF} (batched) {u:8.0} ms  runs {ug_start:?}");
    println!(
        "unitgate start of {HALF}, 2 s settle window  {:8.0} ms  (window included)",
        settled[0]
    );
    println!("raw systemctl enable --now of {HALF}        {r:8.0} ms  runs {raw_start:?} -> unitgate/raw = {:.2}x", u / r);
    println!("one systemctl enable --now per instance   {per_instance_500:8.0} ms for {HALF} (50 measured x10)");
}
