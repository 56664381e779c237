//! Benchmark of the CLI (not a timed test; run by hand as root, figures go
//! to BENCHMARKS.md):
//!
//!     cargo build --release && target/release/bench-cli [N...]
//!
//! For each N (default: 100 and 1000; 10000 takes about half an hour), a
//! fresh test-bed machine with the demo app, its template guarded as the
//! installer guards a reference app (so the helper enables and disables
//! without a daemon-reload; the reload timer runs as installed), and N
//! initialized, running instances. It measures, each beside what systemd
//! itself costs in the same run:
//!
//! - stopping one and starting one instance (`unitgate stop`, `unitgate
//!   start --settle 0`) against raw `systemctl stop` / `start` of another,
//!   and against `systemctl disable --now` / `enable --now` (one full
//!   daemon-reload each: the old path);
//! - a batched `start --settle 0` of min(500, N/2) instances against a raw
//!   `systemctl enable --now` of as many other units;
//! - `status --json` of all N, warm and cold (no status cache), against the
//!   floor of one unprivileged `systemctl list-units` + `list-unit-files`,
//!   and against the per-instance `sudo helper show` loop it replaces.
//!
//! Times are wall-clock, measured inside the machine; medians.

use unitgate_tests::demo::{bench_machine, ug, USER};
use unitgate_tests::Machine;

const RUNS: usize = 11;

/// Runs `script` `runs` times as `user` (None: root) inside the machine and
/// returns each run's wall time in ms, measured inside. One command per run,
/// so that a slow one (a reload with 10,000 units) stays within the test
/// bed's limit on a command.
fn time_runs(m: &Machine, user: Option<&str>, script: &str, runs: usize) -> Vec<f64> {
    (0..runs)
        .map(|_| try_time(m, user, script).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

/// One timed run of `script`, or what it said when it failed.
fn try_time(m: &Machine, user: Option<&str>, script: &str) -> Result<f64, String> {
    let timed = format!(
        "s=$(date +%s%N); {{ {script}\n}} >/dev/null 2>/tmp/bench.err || {{ echo FAIL; tail -5 /tmp/bench.err; }}; e=$(date +%s%N); echo $(( (e - s) / 1000 ))"
    );
    let out = match user {
        Some(u) => m.sh_as(u, &timed),
        None => m.sh(&timed),
    }
    .ok();
    if out.stdout.contains("FAIL") {
        return Err(format!("a timed command failed: {script}\n{out}"));
    }
    Ok(out.stdout.trim().parse::<f64>().expect("a time in µs") / 1000.0)
}

/// The total of `script` run over `names` in chunks of 1000, `{}` in it
/// replaced by a chunk: the whole would outlast the test bed's limit on one
/// command with 10,000 instances.
fn time_chunked(m: &Machine, script: &str, names: &[String]) -> f64 {
    names
        .chunks(1000)
        .map(|chunk| time_runs(m, Some(USER), &script.replace("{}", &chunk.join(" ")), 1)[0])
        .sum()
}

/// Alternates `a` and `b` (each run as `user`, None: root) `runs` times,
/// timing each: a pair such as stop/start, measured on the same instance.
fn time_pairs(
    m: &Machine,
    user: Option<&str>,
    a: &str,
    b: &str,
    runs: usize,
) -> (Vec<f64>, Vec<f64>) {
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        ta.extend(time_runs(m, user, a, 1));
        tb.extend(time_runs(m, user, b, 1));
    }
    (ta, tb)
}

/// The median; NaN (a failed run) sorts last.
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
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

/// One machine's medians, in ms.
struct Figures {
    n: usize,
    init_each: f64,
    start_all: f64,
    stop_one: f64,
    start_one: f64,
    raw_stop: f64,
    raw_start: f64,
    raw_disable_now: f64,
    raw_enable_now: f64,
    batch: usize,
    batch_start: f64,
    raw_batch: f64,
    status: f64,
    status_cold: f64,
    floor: f64,
    reload: f64,
    show_each: f64,
}

/// The demo machine with `n` instances initialized and running.
fn machine(n: usize) -> (Machine, f64, f64) {
    // The demo unit's start limit (3 in 10 s) is for the crash-loop tests;
    // here one instance is started eleven times in a row.
    let m = bench_machine(&format!("cli-bench-{n}"), n, "StartLimitIntervalSec=0");
    let all: Vec<String> = (1..=n).map(|i| format!("i{i}")).collect();
    let init = time_chunked(&m, "for i in {}; do unitgate init $i; done", &all);
    let start = time_chunked(&m, "unitgate start --settle 0 {}", &all);
    let running = m
        .sh("systemctl list-units --state=running --plain --no-legend 'demo@*' | wc -l")
        .ok()
        .stdout;
    assert_eq!(running.trim(), n.to_string());
    (m, init / n as f64, start)
}

fn bench(n: usize) -> Figures {
    let (m, init_each, start_all) = machine(n);
    eprintln!("bench-cli: {n} instances running");

    // One instance, among n running: through unitgate (the fast path) and
    // raw systemd on another instance, in the same minutes.
    let (stop_one, start_one) = time_pairs(
        &m,
        Some(USER),
        "unitgate stop i1",
        "unitgate start --settle 0 i1",
        RUNS,
    );
    let (raw_stop, raw_start) = time_pairs(
        &m,
        None,
        "systemctl stop demo@i2.service",
        "systemctl start demo@i2.service",
        RUNS,
    );
    // The old path: one full daemon-reload each (3 runs: seconds each at
    // 10,000).
    let (raw_disable_now, raw_enable_now) = time_pairs(
        &m,
        None,
        "systemctl disable --now demo@i3.service",
        "systemctl enable --now demo@i3.service",
        3,
    );
    let reload = time_runs(&m, None, "systemctl daemon-reload", 3);
    eprintln!(
        "bench-cli: {n}: stop one {:.1}, start one {:.1}, raw stop {:.1}, raw start {:.1}, disable --now {:.0}, enable --now {:.0}, daemon-reload {:.0} (ms)",
        median(stop_one.clone()),
        median(start_one.clone()),
        median(raw_stop.clone()),
        median(raw_start.clone()),
        median(raw_disable_now.clone()),
        median(raw_enable_now.clone()),
        median(reload.clone())
    );

    // Batched: unitgate's start of `batch` instances against a raw
    // `systemctl enable --now` of as many others, alternating, 3 rounds
    // (both stopped again in between, untimed).
    let batch = (n / 2).min(500);
    let (a, b_units) = (names(1..=batch), units(batch + 1..=2 * batch));
    // Undone without a reload: with 10,000 units a `disable --now` of 500
    // outlasts D-Bus's 25 s timeout on its stops ("Connection timed out").
    let undo_raw = format!("systemctl disable --no-reload {b_units} && systemctl stop {b_units}");
    ug(&m, &format!("stop {a}")).ok();
    m.sh(&undo_raw).ok();
    let (mut ug_batch, mut raw_batch) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        // The raw command can fail the same way: a failed run counts as
        // NaN, and says why.
        let raw = try_time(&m, None, &format!("systemctl enable --now {b_units}"));
        raw_batch.push(raw.unwrap_or_else(|e| {
            eprintln!("bench-cli: {e}");
            f64::NAN
        }));
        m.sh(&undo_raw).ok();
        ug_batch.extend(time_runs(
            &m,
            Some(USER),
            &format!("unitgate start --settle 0 {a}"),
            1,
        ));
        ug(&m, &format!("stop {a}")).ok();
    }
    ug(&m, &format!("start --settle 0 {}", names(1..=2 * batch))).ok();

    let cold = time_runs(
        &m,
        Some(USER),
        "rm -f /var/lib/demo/instances/.locks/status-cache.*.json; unitgate status --json",
        5,
    );
    let status = time_runs(&m, Some(USER), "unitgate status --json", RUNS);
    let floor = time_runs(
        &m,
        Some(USER),
        "systemctl list-units --all --plain --no-legend 'demo@*'; systemctl list-unit-files --plain --no-legend 'demo@*'",
        RUNS,
    );
    // The per-instance privileged loop status replaces, on 100 instances.
    let show = time_runs(
        &m,
        Some(USER),
        "for i in $(seq 100); do sudo -n /usr/local/libexec/unitgate/unitgate-systemctl demo show i$i; done",
        1,
    );
    let out = ug(&m, "status --json").ok();
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("status --json");
    let instances = doc["instances"].as_array().expect("instances");
    assert_eq!(instances.len(), n);
    assert!(instances.iter().all(|i| i["drift"].is_null()), "{out}");

    Figures {
        n,
        init_each,
        start_all,
        stop_one: median(stop_one),
        start_one: median(start_one),
        raw_stop: median(raw_stop),
        raw_start: median(raw_start),
        raw_disable_now: median(raw_disable_now),
        raw_enable_now: median(raw_enable_now),
        batch,
        batch_start: median(ug_batch),
        raw_batch: median(raw_batch),
        status: median(status),
        status_cold: median(cold),
        floor: median(floor),
        reload: median(reload),
        show_each: show[0] / 100.0,
    }
}

fn main() {
    let counts: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| {
            a.parse()
                .expect("usage: bench-cli [N...] (instance counts)")
        })
        .collect();
    let counts = if counts.is_empty() {
        vec![100, 1000]
    } else {
        counts
    };
    let mut figures = Vec::new();
    for n in counts {
        figures.push(bench(n));
        // After each count: a later one that fails loses nothing.
        table(&figures);
    }
}

fn table(figures: &[Figures]) {
    println!("\n=== unitgate benchmark (medians, ms; guarded template) ===");
    let row = |what: &str, f: &dyn Fn(&Figures) -> String| {
        let cells: Vec<String> = figures.iter().map(f).collect();
        println!("| {what} | {} |", cells.join(" | "));
    };
    row("instances", &|f| f.n.to_string());
    row("`unitgate stop` one", &|f| format!("{:.1}", f.stop_one));
    row("`unitgate start --settle 0` one", &|f| {
        format!("{:.1}", f.start_one)
    });
    row("raw `systemctl stop` one", &|f| {
        format!("{:.1}", f.raw_stop)
    });
    row("raw `systemctl start` one", &|f| {
        format!("{:.1}", f.raw_start)
    });
    row("raw `systemctl disable --now` one (old path)", &|f| {
        format!("{:.0}", f.raw_disable_now)
    });
    row("raw `systemctl enable --now` one (old path)", &|f| {
        format!("{:.0}", f.raw_enable_now)
    });
    row("`systemctl daemon-reload`", &|f| format!("{:.0}", f.reload));
    row("batched `unitgate start --settle 0`", &|f| {
        format!("{:.0} ({})", f.batch_start, f.batch)
    });
    row("raw `systemctl enable --now`, same count", &|f| {
        format!("{:.0} ({:.2}x)", f.raw_batch, f.batch_start / f.raw_batch)
    });
    row("`status --json` all, warm", &|f| format!("{:.1}", f.status));
    row("`status --json` all, cold", &|f| {
        format!("{:.1}", f.status_cold)
    });
    row("floor: `list-units` + `list-unit-files`", &|f| {
        format!("{:.1} ({:.2}x)", f.floor, f.status / f.floor)
    });
    row(
        "per-instance `sudo helper show` loop, all (100 measured)",
        &|f| {
            format!(
                "{:.0} ({:.0}x status)",
                f.show_each * f.n as f64,
                f.show_each * f.n as f64 / f.status
            )
        },
    );
    row("`unitgate init`, each", &|f| format!("{:.1}", f.init_each));
    row("`unitgate start --settle 0` of all", &|f| {
        format!("{:.0}", f.start_all)
    });
    if let (Some(first), Some(last)) = (figures.first(), figures.last()) {
        if first.n != last.n {
            println!(
                "\nfrom {} to {} instances: stop one x{:.2}, start one x{:.2}",
                first.n,
                last.n,
                last.stop_one / first.stop_one,
                last.start_one / first.start_one
            );
        }
    }
}
