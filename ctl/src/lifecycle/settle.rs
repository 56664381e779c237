//! "Started" means running: after a start or restart, each instance must
//! be up (active, its main process running — for `Type=notify`, ready) and
//! stay up for the settle window: not failed, not inactive, not restarted
//! by systemd, not a new main process. A start that fails at once (a
//! missing binary) or after a second (a crash) is caught here instead of
//! being reported as "started" while systemd cycles it.
//!
//! The window is watched by re-reading states (one pipelined burst for all
//! instances) every [`POLL`]: a condition checked against a deadline, ending
//! early for each instance that already failed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::app::App;
use crate::error::{Result, UnitReport};
use crate::name::InstanceName;
use crate::systemd::{Detail, MainExit, ServiceOutcome, Systemd};
use crate::unit::UnitInfo;

/// How often states are re-read during the window.
pub const POLL: Duration = Duration::from_millis(200);
/// Journal lines in the error of an instance that did not stay up.
const JOURNAL_LINES: u32 = 10;

/// Waits until each instance has run for `window` (see the module doc);
/// with a zero window, one look: up or on its way up is enough (what
/// unitgate reported before there was a settle window). Each instance gets
/// `Ok` or how it ended.
pub fn until_running(
    sd: &Systemd,
    app: &App,
    names: &[InstanceName],
    window: Duration,
) -> Result<Vec<(InstanceName, std::result::Result<(), UnitReport>)>> {
    let began = Instant::now();
    let mut pending: Vec<InstanceName> = names.to_vec();
    let mut first: BTreeMap<InstanceName, (u32, Option<u32>)> = BTreeMap::new();
    let mut out = Vec::with_capacity(names.len());
    loop {
        let states = read(sd, app, &pending, window)?;
        let elapsed = began.elapsed();
        let mut still = Vec::new();
        for name in pending {
            let unit = states.get(&name);
            let base = *first
                .entry(name.clone())
                .or_insert_with(|| unit.map_or((0, None), |u| (u.main_pid, u.restarts)));
            match judge(unit, base, window, elapsed) {
                Judged::Up => out.push((name, Ok(()))),
                Judged::Down => {
                    let report = report(sd, app, &name, unit, base)?;
                    out.push((name, Err(report)));
                }
                Judged::Wait => still.push(name),
            }
        }
        pending = still;
        if pending.is_empty() {
            return Ok(out);
        }
        let left = window.saturating_sub(began.elapsed());
        std::thread::sleep(POLL.min(left).max(Duration::from_millis(10)));
    }
}

enum Judged {
    Up,
    Down,
    Wait,
}

/// One look at an instance `elapsed` into its window; `base` is its main
/// PID and restart count at the first look.
fn judge(
    unit: Option<&UnitInfo>,
    base: (u32, Option<u32>),
    window: Duration,
    elapsed: Duration,
) -> Judged {
    let Some(u) = unit else {
        return Judged::Down;
    };
    if window.is_zero() {
        return if u.is_up_or_starting() {
            Judged::Up
        } else {
            Judged::Down
        };
    }
    let restarted = match (base.1, u.restarts) {
        (Some(before), Some(now)) => now > before,
        _ => false,
    };
    let replaced = base.0 != 0 && u.main_pid != 0 && u.main_pid != base.0;
    if u.active.is_down() || u.is_crash_looping() || restarted || replaced {
        return Judged::Down;
    }
    if elapsed < window {
        return Judged::Wait;
    }
    if u.is_running() {
        Judged::Up
    } else {
        Judged::Down
    }
}

/// The units' states, with their main PID and restarts when there is a
/// window to judge them over (`--settle 0` judges the state alone).
fn read(
    sd: &Systemd,
    app: &App,
    names: &[InstanceName],
    window: Duration,
) -> Result<BTreeMap<InstanceName, UnitInfo>> {
    let units: Vec<String> = names.iter().map(|n| app.unit(n)).collect();
    let detail = if window.is_zero() {
        Detail::States
    } else {
        Detail::Progress
    };
    let mut states = sd.units(&units, detail, None)?;
    Ok(names
        .iter()
        .filter_map(|n| states.remove(&app.unit(n)).map(|u| (n.clone(), u)))
        .collect())
}

/// How long [`last_outcome`] looks again for an attempt's end.
const OUTCOME_WAIT: Duration = Duration::from_secs(1);

/// How the unit's last attempt ended. A unit that restarts at once (50 ms
/// after a failure, say) can begin its next attempt between our look and
/// this read, which resets systemd's result and main exit ("success", no
/// exit): then it is read again, briefly, until an attempt has ended or
/// [`OUTCOME_WAIT`] has passed.
fn last_outcome(sd: &Systemd, unit: &str) -> Result<Option<ServiceOutcome>> {
    let deadline = Instant::now() + OUTCOME_WAIT;
    loop {
        let outcome = sd.service_outcome(unit)?;
        let mid_attempt = outcome
            .as_ref()
            .is_some_and(|o| o.result.as_deref() == Some("success") && o.main_exit.is_none());
        if !mid_attempt || Instant::now() >= deadline {
            return Ok(outcome);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// systemd's account of an instance that did not stay up.
fn report(
    sd: &Systemd,
    app: &App,
    name: &InstanceName,
    unit: Option<&UnitInfo>,
    base: (u32, Option<u32>),
) -> Result<UnitReport> {
    let unit_name = app.unit(name);
    let outcome = last_outcome(sd, &unit_name)?;
    let (exit_status, signal) = match outcome.as_ref().and_then(|o| o.main_exit.clone()) {
        Some(MainExit::Exited(status)) => (Some(status), None),
        Some(MainExit::Signal(sig)) => (None, Some(sig)),
        None => (None, None),
    };
    let restarts = outcome
        .as_ref()
        .and_then(|o| o.restarts)
        .map(|now| now.saturating_sub(base.1.unwrap_or(0)));
    Ok(UnitReport {
        active_state: unit.map_or("inactive", |u| u.active.as_str()).to_owned(),
        sub_state: unit.map_or("dead", |u| u.sub.as_str()).to_owned(),
        result: outcome.and_then(|o| o.result),
        exit_status,
        signal,
        restarts,
        journal: crate::logs::last_lines(&unit_name, JOURNAL_LINES),
        systemctl: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unit::{Active, Sub};

    fn unit(active: &str, sub: &str, pid: u32, restarts: u32) -> UnitInfo {
        UnitInfo {
            active: Active::parse(active),
            sub: Sub::parse(sub),
            main_pid: pid,
            restarts: Some(restarts),
            ..Default::default()
        }
    }

    const W: Duration = Duration::from_secs(2);

    fn j(u: &UnitInfo, elapsed_ms: u64) -> &'static str {
        match judge(Some(u), (10, Some(0)), W, Duration::from_millis(elapsed_ms)) {
            Judged::Up => "up",
            Judged::Down => "down",
            Judged::Wait => "wait",
        }
    }

    #[test]
    fn up_only_once_the_window_passed_and_down_as_soon_as_it_fails() {
        assert_eq!(j(&unit("active", "running", 10, 0), 100), "wait");
        assert_eq!(j(&unit("active", "running", 10, 0), 2000), "up");
        assert_eq!(j(&unit("failed", "failed", 0, 0), 100), "down");
        assert_eq!(j(&unit("activating", "auto-restart", 0, 1), 100), "down");
        assert_eq!(
            j(&unit("active", "running", 11, 1), 100),
            "down",
            "restarted"
        );
        assert_eq!(
            j(&unit("active", "running", 12, 0), 100),
            "down",
            "a new main process"
        );
        assert_eq!(
            j(&unit("activating", "start", 10, 0), 2000),
            "down",
            "never ready"
        );
        assert!(matches!(
            judge(None, (0, None), W, Duration::ZERO),
            Judged::Down
        ));
    }

    #[test]
    fn a_zero_window_is_one_look() {
        let z = |u: &UnitInfo| judge(Some(u), (0, None), Duration::ZERO, Duration::ZERO);
        assert!(matches!(z(&unit("activating", "start", 0, 0)), Judged::Up));
        assert!(matches!(z(&unit("failed", "failed", 0, 0)), Judged::Down));
    }
}
