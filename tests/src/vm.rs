//! The VM tier: what only a real kernel with every cgroup v2 controller can
//! prove (memory accounting, `MemoryMax=`, `TasksMax=`, `CPUQuota=`), which
//! the nspawn test bed on a host with v1 controllers cannot.
//!
//! A [`Checks`] group is a list of shell scripts run **in one boot** of a
//! Debian guest under QEMU (software emulation, `-accel tcg`): the host
//! writes the scripts into a 9p-shared job directory, the guest's
//! `unitgate-vm-job.service` runs them in order as root once the system is
//! up (a [`Checks::concurrently`] group at the same time;
//! `tests/vm/guest/harness.sh`, each with its own deadline), writes each
//! one's stdout, stderr and exit code back into the share and powers off;
//! [`Checks::run`] returns them as a [`Report`] for the test to assert on.
//!
//! ```no_run
//! use unitgate_tests::vm::Checks;
//! let report = Checks::new("example")
//!     .with_unitgate()
//!     .check("controllers", 30, "cat /sys/fs/cgroup/cgroup.controllers")
//!     .boot();
//! assert!(report.ok("controllers").stdout.contains("memory"));
//! ```
//!
//! Checks run as root and become a service account with `as_user USER
//! CMD…` (setpriv, as `Machine::sh_as`; the unitgate it runs goes through the
//! guest's real sudo), wait on conditions with
//! `wait_until SECONDS WHAT CMD…` and find a unit's cgroup with `cgroup_of`
//! (`tests/vm/guest/prelude.sh`). The checkout under test is at `/mnt/src`
//! and its target directory at `/mnt/target`, both read-only, so
//! [`Checks::with_unitgate`] installs unitgate with its own installer as
//! [`crate::Machine::install_unitgate`] does. Several tests can share one
//! boot through [`SharedBoot`].
//!
//! Every boot is watched: when the guest does not get to its checks within
//! [`BOOT_ALLOWANCE`], or a step runs [`STEP_SLACK`] past the deadline the
//! guest itself should have enforced (so the guest is wedged), or the boot's
//! own deadline passes, QEMU is killed and the run fails with the console's
//! last lines. The guest disk is a QEMU snapshot of the cached
//! image (tests/src/vm/image.rs), discarded at exit; the run directory (job
//! share, console log) is removed when the run ends, and QEMU dies with the
//! thread that started it (`PR_SET_PDEATHSIG`), so nothing is left on the
//! host: no process, no mount (9p is served by QEMU, mounted only in the
//! guest), no file.

pub mod image;

use std::fmt;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Once, OnceLock};
use std::time::{Duration, Instant};

pub use image::{Image, ImageCache};

use crate::machine::{processes_mentioning, Output};
use crate::paths;

const HARNESS: &str = include_str!("../vm/guest/harness.sh");
const PRELUDE: &str = include_str!("../vm/guest/prelude.sh");

const QEMU: &str = "/usr/bin/qemu-system-x86_64";

/// Guest memory: a job must be able to go well past runner-pool's
/// `MemoryMax=512M`, and the same job without the limit must still fit.
const GUEST_MEMORY_MIB: u32 = 1536;

/// Guest CPUs. Each is a host thread under TCG, and the host's two cores
/// are shared with the rest of the suite; one keeps the tier to one core
/// and makes a CPU measurement in the guest mean what it says.
const GUEST_CPUS: u32 = 1;

/// What the kernel and systemd may take to get to the checks: about 20 s
/// on this 2-core host while the rest of the suite runs, but TCG slows down
/// with the host, so the allowance is generous.
pub const BOOT_ALLOWANCE: Duration = Duration::from_secs(180);

/// How long past a step's deadline the host waits for the guest's harness
/// to report it (the guest kills a step at its deadline, and 5 s later for
/// good) before it takes the guest for wedged.
pub const STEP_SLACK: Duration = Duration::from_secs(30);

/// A setup step's deadline (installs take 5–15 s in the guest).
const SETUP_SECS: u32 = 120;

/// Per result file: checks that print more are cut (and say so).
const MAX_OUTPUT_BYTES: u64 = 1 << 20;

static NEXT_RUN: AtomicUsize = AtomicUsize::new(0);
static STALE_RUNS_REMOVED: Once = Once::new();

/// A group of steps for one boot: setup steps (a failed one stops the
/// group: every later step is reported as not run, with its reason) and
/// checks, run in the order added.
#[derive(Debug, Clone)]
pub struct Checks {
    label: String,
    steps: Vec<Step>,
    deadline: Option<Duration>,
    groups: u32,
}

#[derive(Debug, Clone)]
struct Step {
    name: String,
    kind: StepKind,
    deadline_secs: u32,
    script: String,
    /// Steps of one group run at the same time ([`Checks::concurrently`]).
    group: Option<u32>,
}

/// Whether a failed step stops the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    Setup,
    Check,
}

impl StepKind {
    fn as_str(self) -> &'static str {
        match self {
            StepKind::Setup => "setup",
            StepKind::Check => "check",
        }
    }
}

/// Mounts the checkout and its target directory, read-only, where the
/// nspawn test bed has them, so the same install commands work in both.
const MOUNT_SHARES: &str = "for share in src target; do
    mkdir -p /mnt/$share
    mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288,ro $share /mnt/$share
done
test -f /mnt/src/deploy/install.sh";

impl Checks {
    /// A new group; `label` names the run in `ps` and on the host.
    pub fn new(label: &str) -> Checks {
        let checks = Checks {
            label: label.to_owned(),
            steps: Vec::new(),
            deadline: None,
            groups: 0,
        };
        checks.setup("mount-shares", MOUNT_SHARES)
    }

    /// A setup step (deadline 120 s).
    pub fn setup(mut self, name: &str, script: &str) -> Checks {
        self.push(name, StepKind::Setup, SETUP_SECS, script);
        self
    }

    /// A check, killed after `deadline_secs` (its result then says so).
    pub fn check(mut self, name: &str, deadline_secs: u32, script: &str) -> Checks {
        self.push(name, StepKind::Check, deadline_secs, script);
        self
    }

    /// Setup: unitgate installed by its own installer from the checkout and
    /// the release binaries (as `Machine::install_unitgate`).
    pub fn with_unitgate(self) -> Checks {
        paths::require_release_binaries();
        self.setup(
            "install-unitgate",
            "cd /mnt/src && CARGO_TARGET_DIR=/mnt/target sh deploy/install.sh",
        )
    }

    /// Setup: a reference app installed by `deploy/install.sh --app-only`
    /// (`app_dir` relative to the checkout, e.g. `deploy/apps/runner-pool`).
    pub fn with_app(self, app_dir: &str) -> Checks {
        let name = format!("install-{}", app_dir.rsplit('/').next().unwrap_or(app_dir));
        self.setup(
            &name,
            &format!("cd /mnt/src && sh deploy/install.sh --app-only --app '{app_dir}'"),
        )
    }

    /// Checks that run at the same time, each under its own deadline: the
    /// next step starts once all of them ended. Under emulation a check
    /// spends most of its time in fixed costs (the CLI, sudo, a worker's
    /// start), so checks whose measurements cannot disturb each other
    /// overlap those costs; a measurement that needs the guest's one CPU
    /// to itself stays outside a group. Only checks: a setup step must end
    /// before what depends on it starts.
    pub fn concurrently(mut self, add: impl FnOnce(Checks) -> Checks) -> Checks {
        let first = self.steps.len();
        self.groups += 1;
        let group = self.groups;
        let mut checks = add(self);
        for step in &mut checks.steps[first..] {
            assert_eq!(
                step.kind,
                StepKind::Check,
                "setup step {} in a concurrent group",
                step.name
            );
            assert!(step.group.is_none(), "nested concurrent groups");
            step.group = Some(group);
        }
        checks
    }

    /// A deadline for the whole boot, beside the watch on each step: when it
    /// passes, QEMU is killed and the run fails.
    pub fn boot_deadline(mut self, deadline: Duration) -> Checks {
        self.deadline = Some(deadline);
        self
    }

    fn push(&mut self, name: &str, kind: StepKind, deadline_secs: u32, script: &str) {
        assert!(
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "step name {name:?}: letters, digits, - and _ only"
        );
        assert!(
            self.steps.iter().all(|s| s.name != name),
            "two steps named {name}"
        );
        assert!(deadline_secs > 0, "step {name}: a deadline of 0 s");
        assert!(
            self.steps.len() < 999,
            "at most 999 steps (NNN directories)"
        );
        self.steps.push(Step {
            name: name.to_owned(),
            kind,
            deadline_secs,
            script: script.to_owned(),
            group: None,
        });
    }

    /// Boots once and runs every step; panics with a [`BootError`]'s
    /// description when the boot itself fails (a failed check is a result,
    /// see [`Report::ok`]).
    pub fn boot(&self) -> Report {
        self.run().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Boots once and runs every step. The image is built first if this
    /// recipe has none cached (panics if that fails: never a skip).
    pub fn run(&self) -> Result<Report, BootError> {
        preflight();
        let image = ImageCache::standard().ensure();
        let run = RunDir::create(&self.label);
        self.write_job(&run.job());
        let began = Instant::now();
        let mut qemu = Qemu::spawn(&image, &run);
        let exit = self.watch(&mut qemu, &run.job(), began);
        let wall = began.elapsed();
        let steps = self.read_results(&run.job());
        let console = std::fs::read_to_string(run.path.join("console.log")).unwrap_or_default();
        let fail = |failure: BootFailure| BootError {
            run: run.name.clone(),
            failure,
            steps: steps.clone(),
            console_tail: image::tail(&console, 60),
        };
        let status = match exit {
            Ok(status) => status,
            Err(failure) => {
                qemu.kill();
                return Err(fail(failure));
            }
        };
        let done = std::fs::read_to_string(run.job().join("results/done")).ok();
        if done.is_none() || !status.success() {
            let qemu_log = std::fs::read_to_string(run.path.join("qemu.log")).unwrap_or_default();
            return Err(fail(BootFailure::Incomplete {
                qemu_status: status.to_string(),
                qemu_log: image::tail(&qemu_log, 20),
            }));
        }
        let checks_started_at = read_seconds(&run.job().join("results/checks-started"));
        let report = Report {
            run: run.name.clone(),
            steps: steps.into_iter().flatten().collect(),
            checks_started_at,
            wall,
            image_built_in: image.built_in(),
        };
        eprintln!("vm: {}", report.timings());
        Ok(report)
    }

    /// Waits for QEMU to exit while the guest makes progress: it must get
    /// to its checks within [`BOOT_ALLOWANCE`], finish each step within its
    /// deadline plus [`STEP_SLACK`] of the one before (or of the start),
    /// and power off within [`STEP_SLACK`] of the last; and all of it within
    /// the boot's deadline, if it has one. Steps of a concurrent group all
    /// start with the group, so timing each from the end of the one before
    /// only widens the bound, never cuts a step short.
    fn watch(
        &self,
        qemu: &mut Qemu,
        job: &Path,
        began: Instant,
    ) -> Result<std::process::ExitStatus, BootFailure> {
        let results = job.join("results");
        let mut finished = 0;
        // When the checks started, then when the last step finished.
        let mut last_progress = None::<Instant>;
        loop {
            if let Some(status) = qemu.child.try_wait().expect("try_wait QEMU") {
                return Ok(status);
            }
            if let Some(limit) = self.deadline {
                if began.elapsed() > limit {
                    return Err(BootFailure::DeadlinePassed(limit));
                }
            }
            if last_progress.is_none() {
                if results.join("checks-started").exists() {
                    last_progress = Some(Instant::now());
                } else if began.elapsed() > BOOT_ALLOWANCE {
                    return Err(BootFailure::Stalled {
                        waiting_for: "the guest to get to its checks".to_owned(),
                        after: BOOT_ALLOWANCE,
                    });
                }
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            while finished < self.steps.len()
                && results.join(step_dir(finished)).join("code").exists()
            {
                finished += 1;
                last_progress = Some(Instant::now());
            }
            let (waiting_for, allowed) = match self.steps.get(finished) {
                Some(step) => (
                    format!("step {} `{}` to end", step_dir(finished), step.name),
                    Duration::from_secs(step.deadline_secs.into()) + STEP_SLACK,
                ),
                None => ("the guest to power off".to_owned(), STEP_SLACK),
            };
            if last_progress.is_some_and(|at| at.elapsed() > allowed) {
                return Err(BootFailure::Stalled {
                    waiting_for,
                    after: allowed,
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The job share: the harness, the prelude, checks/NNN/{name,script,
    /// deadline,kind[,group]} and an empty results/.
    fn write_job(&self, job: &Path) {
        image::make_private_dir(job);
        std::fs::write(job.join("harness.sh"), HARNESS).expect("write harness");
        std::fs::write(job.join("prelude.sh"), PRELUDE).expect("write prelude");
        image::make_private_dir(&job.join("results"));
        image::make_private_dir(&job.join("checks"));
        for (i, step) in self.steps.iter().enumerate() {
            let dir = job.join("checks").join(step_dir(i));
            image::make_private_dir(&dir);
            std::fs::write(dir.join("name"), &step.name).expect("write name");
            std::fs::write(dir.join("script"), &step.script).expect("write script");
            std::fs::write(dir.join("deadline"), step.deadline_secs.to_string())
                .expect("write deadline");
            std::fs::write(dir.join("kind"), step.kind.as_str()).expect("write kind");
            if let Some(group) = step.group {
                std::fs::write(dir.join("group"), group.to_string()).expect("write group");
            }
        }
    }

    /// Each step's result, `None` for a step the guest never finished.
    fn read_results(&self, job: &Path) -> Vec<Option<StepResult>> {
        self.steps
            .iter()
            .enumerate()
            .map(|(i, step)| {
                let dir = job.join("results").join(step_dir(i));
                let code = read_limited(&dir.join("code"))?;
                Some(StepResult {
                    name: step.name.clone(),
                    kind: step.kind,
                    deadline_secs: step.deadline_secs,
                    output: Output {
                        code: code.trim().parse().unwrap_or(-1),
                        stdout: read_limited(&dir.join("stdout")).unwrap_or_default(),
                        stderr: read_limited(&dir.join("stderr")).unwrap_or_default(),
                    },
                    seconds: read_seconds(&dir.join("seconds")).unwrap_or(0.0),
                    deadline_passed: dir.join("deadline-passed").exists(),
                })
            })
            .collect()
    }
}

fn step_dir(index: usize) -> String {
    format!("{:03}", index + 1)
}

/// What one step did in the guest.
#[derive(Debug, Clone)]
pub struct StepResult {
    pub name: String,
    pub kind: StepKind,
    pub deadline_secs: u32,
    /// Exit code (125: not run because a setup step failed; 124 or 137 with
    /// `deadline_passed`: killed at its deadline), stdout and stderr.
    pub output: Output,
    /// Guest seconds the step ran.
    pub seconds: f64,
    pub deadline_passed: bool,
}

impl fmt::Display for StepResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} `{}`: ", self.kind.as_str(), self.name)?;
        if self.deadline_passed {
            write!(f, "killed at its deadline of {} s, ", self.deadline_secs)?;
        }
        write!(f, "{:.1} s, {}", self.seconds, self.output)
    }
}

/// The results of one boot's steps.
#[derive(Debug, Clone)]
pub struct Report {
    run: String,
    steps: Vec<StepResult>,
    checks_started_at: Option<f64>,
    wall: Duration,
    image_built_in: Option<Duration>,
}

impl Report {
    /// The run's name (its directory on the host while it ran).
    pub fn run_name(&self) -> &str {
        &self.run
    }

    /// The step named `name`; panics listing the known ones otherwise.
    #[track_caller]
    pub fn result(&self, name: &str) -> &StepResult {
        self.steps
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| {
                let known: Vec<&str> = self.steps.iter().map(|s| s.name.as_str()).collect();
                panic!("no step {name} in VM run {} (steps: {known:?})", self.run)
            })
    }

    #[track_caller]
    pub fn output(&self, name: &str) -> &Output {
        &self.result(name).output
    }

    /// The output of step `name` if it exited 0; otherwise panics with all
    /// of it, and, when a setup step kept it from running, that step's too.
    #[track_caller]
    pub fn ok(&self, name: &str) -> &Output {
        let result = self.result(name);
        if result.output.success() {
            return &result.output;
        }
        let mut message = format!("VM run {}: {result}", self.run);
        if let Some(setup) = self
            .steps
            .iter()
            .find(|s| s.kind == StepKind::Setup && !s.output.success())
        {
            if setup.name != name {
                message.push_str(&format!("\nbecause {setup}"));
            }
        }
        panic!("{message}");
    }

    /// Guest uptime when the first step started (kernel + initramfs +
    /// systemd up to multi-user.target).
    pub fn boot_seconds(&self) -> Option<f64> {
        self.checks_started_at
    }

    /// Host time from starting QEMU to its exit.
    pub fn wall(&self) -> Duration {
        self.wall
    }

    /// One line: image, boot, each step, total.
    pub fn timings(&self) -> String {
        let image = match self.image_built_in {
            Some(took) => format!("image built in {:.0} s", took.as_secs_f64()),
            None => "image cached".to_owned(),
        };
        let steps: Vec<String> = self
            .steps
            .iter()
            .map(|s| format!("{} {:.1}", s.name, s.seconds))
            .collect();
        format!(
            "{}: {image}; guest at its checks after {} s; steps (s): {}; QEMU ran {:.1} s",
            self.run,
            self.checks_started_at
                .map_or("?".to_owned(), |s| format!("{s:.1}")),
            steps.join(", "),
            self.wall.as_secs_f64()
        )
    }
}

/// A boot that did not get through its steps.
#[derive(Debug, Clone)]
pub struct BootError {
    pub run: String,
    pub failure: BootFailure,
    /// What the guest got done, step by step (`None`: not finished).
    pub steps: Vec<Option<StepResult>>,
    pub console_tail: String,
}

#[derive(Debug, Clone)]
pub enum BootFailure {
    /// The boot's deadline passed; QEMU was killed.
    DeadlinePassed(Duration),
    /// The guest made no progress for longer than it may; QEMU was killed.
    Stalled {
        waiting_for: String,
        after: Duration,
    },
    /// QEMU exited before the harness got to the end (a guest panic, a
    /// harness that could not start, QEMU refusing its arguments).
    Incomplete {
        qemu_status: String,
        qemu_log: String,
    },
}

impl fmt::Display for BootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.failure {
            BootFailure::DeadlinePassed(limit) => write!(
                f,
                "VM run {}: no poweroff within its deadline of {} s; QEMU killed",
                self.run,
                limit.as_secs()
            )?,
            BootFailure::Stalled { waiting_for, after } => write!(
                f,
                "VM run {}: waited {} s for {waiting_for}; the guest is stuck, QEMU killed",
                self.run,
                after.as_secs()
            )?,
            BootFailure::Incomplete {
                qemu_status,
                qemu_log,
            } => write!(
                f,
                "VM run {}: QEMU exited ({qemu_status}) before the harness finished; QEMU said:\n{qemu_log}",
                self.run
            )?,
        }
        writeln!(f, "\nsteps:")?;
        for (i, step) in self.steps.iter().enumerate() {
            match step {
                Some(result) => writeln!(f, "{result}")?,
                None => writeln!(f, "step {}: not finished", i + 1)?,
            }
        }
        write!(f, "console (last lines):\n{}", self.console_tail)
    }
}

/// One boot shared by several tests: the first to ask boots (the others
/// wait), every one gets the same report, and a failed boot fails each of
/// them with the same message instead of booting again.
pub struct SharedBoot {
    define: fn() -> Checks,
    report: OnceLock<Result<Report, String>>,
}

impl SharedBoot {
    pub const fn new(define: fn() -> Checks) -> SharedBoot {
        SharedBoot {
            define,
            report: OnceLock::new(),
        }
    }

    #[track_caller]
    pub fn report(&self) -> &Report {
        let result = self.report.get_or_init(|| {
            let boot =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (self.define)().boot()));
            boot.map_err(|panic| panic_message(panic.as_ref()))
        });
        match result {
            Ok(report) => report,
            Err(message) => panic!("the shared VM boot failed: {message}"),
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "(a panic without a message)".to_owned())
}

/// A run's directory on the host: the job share and QEMU's logs. Removed
/// when dropped (kept with `UNITGATE_KEEP_TESTBED=1`, as machines are).
struct RunDir {
    name: String,
    path: PathBuf,
}

impl RunDir {
    fn create(label: &str) -> RunDir {
        let runs = Path::new(image::CACHE_ROOT).join("runs");
        image::make_private_dir(Path::new(image::CACHE_ROOT));
        image::make_private_dir(&runs);
        STALE_RUNS_REMOVED.call_once(|| remove_stale_runs(&runs));
        let n = NEXT_RUN.fetch_add(1, Ordering::SeqCst);
        let name = format!(
            "ugvm-{}-{}-{n}",
            crate::machine::name_part(label),
            std::process::id()
        );
        let path = runs.join(&name);
        image::make_private_dir(&path);
        RunDir { name, path }
    }

    fn job(&self) -> PathBuf {
        self.path.join("job")
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if std::env::var_os("UNITGATE_KEEP_TESTBED").is_some() {
            eprintln!("vm: keeping {}", self.path.display());
            return;
        }
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            eprintln!("vm: could not remove {}: {e}", self.path.display());
        }
    }
}

/// Run directories whose test process is gone and that no process
/// mentions (QEMU names its run directory in its arguments).
fn remove_stale_runs(runs: &Path) {
    for entry in std::fs::read_dir(runs).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let owner_alive = name
            .rsplit('-')
            .nth(1)
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
        if !owner_alive && processes_mentioning(&name).is_empty() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The QEMU process of a run; killed (and reaped) when dropped.
struct Qemu {
    child: std::process::Child,
}

impl Qemu {
    fn spawn(image: &Image, run: &RunDir) -> Qemu {
        let log = std::fs::File::create(run.path.join("qemu.log")).expect("create qemu.log");
        let mut cmd = Command::new(QEMU);
        cmd.env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            // The disk snapshot's scratch file goes here (and is unlinked by
            // QEMU at once), not into a shared /var/tmp.
            .env("TMPDIR", &run.path)
            .args(qemu_args(image, run))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log);
        // QEMU dies with the thread that started it, so a killed test leaves
        // no VM running.
        die_with_parent(&mut cmd);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {QEMU}: {e}"));
        Qemu { child }
    }

    fn kill(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        self.kill();
    }
}

fn qemu_args(image: &Image, run: &RunDir) -> Vec<String> {
    let share = |tag: &str, path: &Path, extra: &str| {
        format!(
            "local,path={},mount_tag={tag},multidevs=remap,{extra}",
            path.display()
        )
    };
    let mut args: Vec<String> = [
        "-name",
        &run.name,
        "-accel",
        "tcg",
        "-cpu",
        "max",
        "-m",
        &GUEST_MEMORY_MIB.to_string(),
        "-smp",
        &GUEST_CPUS.to_string(),
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        // A poweroff, a reboot and a panic (panic=1) all end QEMU.
        "-no-reboot",
        "-nic",
        "none",
        // QEMU serves the guest, which is where the experiments run: it may
        // not spawn programs, gain privileges or use obsolete syscalls.
        "-sandbox",
        "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
        "-serial",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(format!("file:{}", run.path.join("console.log").display()));
    args.push("-kernel".into());
    args.push(image.file("vmlinuz").display().to_string());
    args.push("-initrd".into());
    args.push(image.file("initrd.img").display().to_string());
    args.push("-append".into());
    args.push("root=/dev/vda rw console=ttyS0 quiet panic=1 fsck.mode=skip mitigations=off".into());
    // The cached image is only read: the guest's writes go to a snapshot
    // that QEMU drops at exit.
    args.push("-drive".into());
    args.push(format!(
        "file={},if=virtio,format=raw,snapshot=on",
        image.file("rootfs.img").display()
    ));
    // The job share is the only one the guest writes. mapped-xattr keeps
    // what the guest's root creates from becoming a real owner, mode or
    // device node on the host.
    args.push("-virtfs".into());
    args.push(share("job", &run.job(), "security_model=mapped-xattr"));
    args.push("-virtfs".into());
    args.push(share(
        "src",
        &paths::checkout(),
        "security_model=none,readonly=on",
    ));
    args.push("-virtfs".into());
    args.push(share(
        "target",
        &paths::target_dir(),
        "security_model=none,readonly=on",
    ));
    args
}

/// A file the guest wrote, read without following links and cut at
/// [`MAX_OUTPUT_BYTES`]; `None` if it is not there.
fn read_limited(path: &Path) -> Option<String> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    if !file.metadata().ok()?.is_file() {
        return Some(format!("({} is not a regular file)", path.display()));
    }
    let mut bytes = Vec::new();
    file.take(MAX_OUTPUT_BYTES + 1)
        .read_to_end(&mut bytes)
        .ok()?;
    let mut text =
        String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_OUTPUT_BYTES as usize)]).into_owned();
    if bytes.len() as u64 > MAX_OUTPUT_BYTES {
        text.push_str("\n[… cut at 1 MiB]\n");
    }
    Some(text)
}

fn read_seconds(path: &Path) -> Option<f64> {
    read_limited(path)?.trim().parse().ok()
}

/// The VM tier needs root and QEMU; it fails, never skips, without them.
/// (Root is the image cache's to insist on.)
fn preflight() {
    for (tool, package) in [
        (QEMU, "qemu-system-x86"),
        ("/usr/sbin/debootstrap", "debootstrap"),
        ("/usr/sbin/mkfs.ext4", "e2fsprogs"),
        ("/usr/bin/unshare", "util-linux"),
    ] {
        assert!(
            Path::new(tool).exists(),
            "{tool} is missing: `apt-get install -y {package}` (the README's test command \
             installs it: deploy/test-deps.txt)"
        );
    }
}

/// The child gets SIGKILL when the thread that spawned it ends
/// (PR_SET_PDEATHSIG), so a killed test leaves nothing of it running.
pub(crate) fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches only
    // the child.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
