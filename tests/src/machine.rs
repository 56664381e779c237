//! A throw-away machine running a real systemd (systemd-nspawn, `--boot`)
//! on one of the test bed's operating systems ([`Os`]): the host's own `/`
//! read-only under a volatile root, or a cached Debian 13 tree under a
//! volatile overlay.
//!
//! `/etc`, `/var/lib` and `/usr/local` are overlays whose upper directories
//! live in the machine's own directory on the host and persist between boots,
//! so [`Machine::reboot`] is a real reboot: users, sudoers, state and
//! `enable` symlinks survive, the host (and the cached tree) is never
//! written to.
//!
//! Every machine gets the unified cgroup hierarchy (cgroup v2), whatever
//! the host mounts: systemd 257 needs it, and it is what current systems
//! run (process tracking, `cgroup.kill`, freezing). The host keeps its own
//! mounts; nspawn only mounts a cgroup2 tree inside the machine.
//!
//! Cleanup is tied to ownership: dropping a `Machine` (also while unwinding
//! from a failed assertion) powers it off, waits for the nspawn process to
//! exit and removes the directory, and the machine's own cgroup (machines
//! never share one: see [`crate::cgroup`]). If the whole test process dies,
//! the kernel sends nspawn SIGTERM (`PR_SET_PDEATHSIG`), which nspawn turns
//! into an orderly poweroff of the container; the next run of the suite
//! removes any directory and cgroup left behind by a dead process.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

use crate::cgroup;
use crate::network::Link;
use crate::os::Os;
use crate::paths;

/// Where machine directories live on the host. Not under /tmp: the upper
/// directories must sit on a real filesystem, not tmpfs-on-overlay oddities.
pub const BASE_DIR: &str = "/var/tmp/unitgate-testbed";

const BOOT_TIMEOUT: Duration = Duration::from_secs(90);
const POWEROFF_TIMEOUT: Duration = Duration::from_secs(30);
/// The guard drop-in the installer writes (see [`Machine::guard_template`]).
pub const GUARD: &str = include_str!("../../deploy/systemd/50-unitgate-guard.conf");
/// Upper bound for any single command run inside (enforced by `timeout`
/// inside the machine, so a hung command fails the test instead of the run).
const COMMAND_TIMEOUT_SECS: u32 = 300;

static NEXT_ID: AtomicUsize = AtomicUsize::new(0);
static HOST_SETUP: Once = Once::new();

/// A command's result, with output decoded lossily for assertions.
#[derive(Debug, Clone)]
pub struct Output {
    /// Exit code; -1 when killed by a signal.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == 0
    }

    /// Returns self when the command exited 0, panics with its output otherwise.
    #[track_caller]
    pub fn ok(self) -> Self {
        assert!(self.success(), "command failed: {self}");
        self
    }
}

/// A finished process's result, as the test bed shows it (machines' commands,
/// and programs a test runs on the host).
impl From<std::process::Output> for Output {
    fn from(out: std::process::Output) -> Output {
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// A running (or powered-off, between reboots) test machine.
pub struct Machine {
    name: String,
    os: Os,
    /// The tree nspawn boots (`/` for the host).
    root: PathBuf,
    dir: PathBuf,
    cgroups: cgroup::Own,
    /// The bridge and address of a machine on a [`Link`]; none: a network
    /// namespace of its own with only loopback.
    link: Option<(String, String)>,
    nspawn: Option<Child>,
    init_pid: u32,
    boots: u32,
    last_boot: Duration,
}

impl Machine {
    /// Boots a new machine on the OS the environment selects
    /// ([`Os::from_env`]: the host unless `UNITGATE_TESTBED_OS` says
    /// otherwise). `label` only makes the name readable in `ps`; the name
    /// is unique per process and call, so parallel tests never share.
    pub fn boot(label: &str) -> Machine {
        Machine::boot_on(Os::from_env(), label)
    }

    /// Boots a new machine on `os`, whatever the environment selects.
    pub fn boot_on(os: Os, label: &str) -> Machine {
        Machine::boot_with(os, label, None)
    }

    /// Boots a new machine on `os` as member `n` of `link`: its interface
    /// `host0` is on the link's bridge, at [`Link::address`]`(n)`, after
    /// every boot.
    pub fn boot_on_link(os: Os, label: &str, link: &Link, n: u8) -> Machine {
        let member = (link.name().to_string(), link.address(n));
        Machine::boot_with(os, label, Some(member))
    }

    fn boot_with(os: Os, label: &str, link: Option<(String, String)>) -> Machine {
        preflight();
        HOST_SETUP.call_once(prepare_host);
        let root = os.root();
        let name = unique_name(label);
        let dir = Path::new(BASE_DIR).join(&name);
        for upper in ["etc", "varlib", "local"] {
            std::fs::create_dir_all(dir.join(upper)).expect("create machine upper dir");
        }
        let cgroups = cgroup::Own::create(&name);
        let mut machine = Machine {
            name,
            os,
            root,
            dir,
            cgroups,
            link,
            nspawn: None,
            init_pid: 0,
            boots: 0,
            last_boot: Duration::ZERO,
        };
        machine.start();
        machine
    }

    /// The operating system the machine runs.
    pub fn os(&self) -> Os {
        self.os
    }

    /// The machine (and host name) of the container.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The machine's directory on the host (upper dirs and console logs).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How long the last boot took, from spawning nspawn to
    /// `is-system-running` answering running/degraded.
    pub fn last_boot_time(&self) -> Duration {
        self.last_boot
    }

    /// The pid (on the host) of the container's init.
    pub fn init_pid(&self) -> u32 {
        self.init_pid
    }

    /// Powers the machine off and boots it again from the same directories.
    pub fn reboot(&mut self) {
        self.poweroff();
        self.start();
    }

    /// Powers the machine off and leaves it off (until [`Machine::reboot`]
    /// or the drop, which cleans up as ever).
    pub fn power_off(&mut self) {
        self.poweroff();
    }

    /// Runs `script` with `/bin/sh -c` as root inside the machine.
    pub fn sh(&self, script: &str) -> Output {
        self.run(self.inside(&["/bin/sh", "-c", script]), None)
    }

    /// Runs `script` as root, feeding `input` on stdin.
    pub fn sh_with_input(&self, script: &str, input: &[u8]) -> Output {
        self.run(self.inside(&["/bin/sh", "-c", script]), Some(input))
    }

    /// Runs `script` with `/bin/sh -c` as the unprivileged `user` (real and
    /// effective uid and gid, the user's groups, a fresh login-like
    /// environment): the way an app's service account runs things.
    pub fn sh_as(&self, user: &str, script: &str) -> Output {
        let argv = ["/bin/sh", "-c", script].map(std::ffi::OsStr::new);
        self.exec_as(user, &argv)
    }

    /// Runs `argv` as root inside the machine, each argument passed as is
    /// (no shell); for hostile-input tests that need exact bytes.
    pub fn exec(&self, argv: &[&std::ffi::OsStr]) -> Output {
        let mut cmd = self.inside(&[]);
        cmd.args(argv);
        self.run(cmd, None)
    }

    /// Runs `argv` as the unprivileged `user`, each argument passed as is
    /// (arbitrary bytes, no shell): hostile input reaches `sudo` unaltered.
    pub fn exec_as(&self, user: &str, argv: &[&std::ffi::OsStr]) -> Output {
        let wrapper = r#"u="$1"; shift; g=$(id -g -- "$u") || exit 125
exec setpriv --reuid="$u" --regid="$g" --init-groups --reset-env -- "$@""#;
        let mut cmd = self.inside(&["/bin/sh", "-c", wrapper, "sh", user]);
        cmd.args(argv);
        self.run(cmd, None)
    }

    /// Writes `content` to `path` inside the machine (as root, then chmod).
    pub fn write_file(&self, path: &str, content: &[u8], mode: u32) {
        let script = format!(
            "set -e; mkdir -p -- \"$(dirname -- '{path}')\"; cat > '{path}'; chmod {mode:o} '{path}'"
        );
        self.sh_with_input(&script, content).ok();
    }

    /// Creates an unprivileged user (with home) in the given extra groups.
    pub fn add_user(&self, user: &str, groups: &[&str]) {
        let mut script = format!("useradd --create-home --shell /bin/sh '{user}'");
        for group in groups {
            script.push_str(&format!(" && usermod -aG '{group}' '{user}'"));
        }
        self.sh(&script).ok();
    }

    /// The overall exposure score `systemd-analyze security` gives a
    /// loaded unit inside the machine (0 best, 10 worst).
    pub fn security_exposure(&self, unit: &str) -> f64 {
        let out = self
            .sh(&format!("systemd-analyze security --no-pager {unit}"))
            .ok();
        let line = out
            .stdout
            .lines()
            .find(|l| l.contains("Overall exposure level"))
            .unwrap_or_else(|| panic!("no exposure line for {unit}: {out}"));
        let score = line
            .rsplit(": ")
            .next()
            .and_then(|r| r.split_whitespace().next());
        score
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("unparsable score in {line:?}"))
    }

    /// Asserts that `systemd-analyze verify UNIT` has nothing to say.
    pub fn assert_verifies_clean(&self, unit: &str) {
        let verify = self.sh(&format!("systemd-analyze verify {unit}"));
        assert!(
            verify.success() && verify.stdout.trim().is_empty() && verify.stderr.trim().is_empty(),
            "systemd-analyze verify {unit} is not clean: {verify}"
        );
    }

    /// Asserts that a loaded template instance is as every app's must be:
    /// it verifies clean and exposes at most 2.0, also as a CI gate would
    /// check it (`--threshold=20`, in tenths). Its score.
    pub fn assert_hardened(&self, unit: &str) -> f64 {
        self.assert_verifies_clean(unit);
        let score = self.security_exposure(unit);
        assert!(score <= 2.0, "{unit} scores {score} > 2.0");
        self.sh(&format!(
            "systemd-analyze security --threshold=20 {unit} >/dev/null"
        ))
        .ok();
        score
    }

    /// Installs unitgate inside with its own installer, from the checkout
    /// and release binaries mounted read-only at /mnt/src and /mnt/target.
    pub fn install_unitgate(&self) -> Output {
        paths::require_release_binaries();
        self.sh("cd /mnt/src && CARGO_TARGET_DIR=/mnt/target sh deploy/install.sh")
            .ok()
    }

    /// unitgate's guard drop-in on `template` (`demo@.service`), as
    /// `install.sh --app` writes it for a reference app, then one
    /// daemon-reload: from then on the helper enables and disables the
    /// template's instances without a reload of their own (docs/helper.md,
    /// "Enabling without a daemon-reload").
    pub fn guard_template(&self, template: &str) {
        self.write_file(
            &format!("/etc/systemd/system/{template}.d/50-unitgate-guard.conf"),
            GUARD.as_bytes(),
            0o644,
        );
        self.sh("systemctl daemon-reload").ok();
    }

    fn start(&mut self) {
        let began = Instant::now();
        self.boots += 1;
        self.init_pid = 0;
        let log = std::fs::File::create(self.dir.join(format!("console-{}.log", self.boots)))
            .expect("create console log");
        let mut cmd = self.nspawn_command();
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log);
        // The container gets a cgroup of its own (see the cgroup module).
        let cgroups = self.cgroups.entry();
        // SAFETY: prctl(PR_SET_PDEATHSIG) and cgroup::Entry::enter are
        // async-signal-safe and touch only the child's own state between
        // fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                cgroups.enter()?;
                // If the test process dies, nspawn gets SIGTERM, which it
                // turns into an orderly poweroff of the container.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn systemd-nspawn");
        let pid = child.id();
        self.nspawn = Some(child);
        self.init_pid = self.wait_for_init(pid, began);
        self.wait_until_running(began);
        if let Some((_, address)) = &self.link {
            self.sh(&format!(
                "ip addr add {address}/24 dev host0 && ip link set host0 up"
            ))
            .ok();
        }
        self.last_boot = began.elapsed();
    }

    fn nspawn_command(&self) -> Command {
        let up = |d: &str| self.dir.join(d).display().to_string();
        let lower = |d: &str| self.root.join(d).display().to_string();
        let mut cmd = Command::new("systemd-nspawn");
        cmd.env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            // A cgroup2 hierarchy inside the machine even on a host that
            // keeps v1 controllers (nspawn reads this only from its own
            // environment; the host's mounts are not touched).
            .env("SYSTEMD_NSPAWN_UNIFIED_HIERARCHY", "1")
            .args(["--register=no", "--keep-unit"])
            .arg(format!("--volatile={}", self.volatile_mode()))
            .arg("-D")
            .arg(&self.root)
            .arg(format!("--machine={}", self.name))
            .arg(match &self.link {
                Some((bridge, _)) => format!("--network-bridge={bridge}"),
                None => "--private-network".to_string(),
            })
            .arg(format!("--overlay={}:{}:/etc", lower("etc"), up("etc")))
            .arg(format!(
                "--overlay={}:{}:/var/lib",
                lower("var/lib"),
                up("varlib")
            ))
            .arg(format!(
                "--overlay={}:{}:/usr/local",
                lower("usr/local"),
                up("local")
            ))
            .arg(format!(
                "--bind-ro={}:/mnt/src",
                paths::checkout().display()
            ))
            .arg(format!(
                "--bind-ro={}:/mnt/target",
                paths::target_dir().display()
            ))
            .args(["--boot", "-q", "--", "systemd.firstboot=off"]);
        if self.os == Os::Host {
            cmd.args(
                host_enabled_units()
                    .iter()
                    .map(|u| format!("systemd.mask={u}")),
            );
        }
        cmd
    }

    /// `yes` (a tmpfs root with only `/usr` from the tree) for the host's
    /// `/`, whose other top-level directories are the host's own business.
    /// `overlay` (the whole tree under a tmpfs overlay) for a cached tree:
    /// with `yes`, nspawn's tmpfs would sit on the tree's own path and hide
    /// the `/etc` and `/var/lib` the overlays above take as lower layers;
    /// the host's `/` is the process root, which a mount on it never hides.
    fn volatile_mode(&self) -> &'static str {
        match self.os {
            Os::Host => "yes",
            Os::Trixie | Os::TrixieSudoRs => "overlay",
        }
    }

    /// The container's init ends up as nspawn's direct child (nspawn is a
    /// subreaper), but an intermediate child that sets up the namespaces
    /// comes first: the init is the child that is pid 1 in its own pid
    /// namespace.
    fn wait_for_init(&mut self, nspawn_pid: u32, began: Instant) -> u32 {
        let children = format!("/proc/{nspawn_pid}/task/{nspawn_pid}/children");
        loop {
            let listed = std::fs::read_to_string(&children).unwrap_or_default();
            let init = listed
                .split_whitespace()
                .filter_map(|pid| pid.parse::<u32>().ok())
                .find(|&pid| is_namespace_init(pid));
            if let Some(pid) = init {
                return pid;
            }
            self.fail_if_exited_or_late(began, "container init to appear");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn wait_until_running(&mut self, began: Instant) {
        loop {
            let out = self.run(self.inside(&["systemctl", "is-system-running"]), None);
            match out.stdout.trim() {
                "running" | "degraded" => return,
                _ => {}
            }
            self.fail_if_exited_or_late(began, "systemd to finish booting");
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn fail_if_exited_or_late(&mut self, began: Instant, waiting_for: &str) {
        let exited = match self.nspawn.as_mut() {
            Some(child) => child.try_wait().expect("try_wait").is_some(),
            None => true,
        };
        if exited || began.elapsed() > BOOT_TIMEOUT {
            let log = std::fs::read_to_string(self.dir.join(format!("console-{}.log", self.boots)))
                .unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            let jobs = if exited || self.init_pid == 0 {
                String::new()
            } else {
                let state = self.inside(&["sh", "-c", "systemctl is-system-running; systemctl list-jobs --no-pager; systemctl --failed --no-pager"]);
                self.run(state, None).to_string()
            };
            panic!(
                "machine {} never got to {waiting_for} (nspawn exited: {exited}); console:\n{}\nsystemd:\n{jobs}",
                self.name,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }

    /// `nsenter` into every namespace of the container's init, with a clean
    /// environment, no audit login uid and a time limit enforced inside.
    fn inside(&self, argv: &[&str]) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("LC_ALL", "C")
            .env("HOME", "/root")
            .args(["-t", &self.init_pid.to_string(), "-a", "--"])
            .args([
                "timeout",
                "--kill-after=5",
                &COMMAND_TIMEOUT_SECS.to_string(),
            ])
            .args(argv);
        // SAFETY: unset_login_uid only makes async-signal-safe calls (open,
        // write, read, close) on static buffers, as is required between fork
        // and exec in a multi-threaded process.
        unsafe { cmd.pre_exec(unset_login_uid) };
        cmd
    }

    fn run(&self, mut cmd: Command, input: Option<&[u8]>) -> Output {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = cmd.spawn().unwrap_or_else(|e| {
            panic!("spawn nsenter (with the audit login uid unset, see unset_login_uid): {e}")
        });
        if let Some(bytes) = input {
            let mut stdin = child.stdin.take().expect("piped stdin");
            // A command that exits without reading its input is not our error.
            let _ = stdin.write_all(bytes);
        }
        child.wait_with_output().expect("wait for nsenter").into()
    }

    /// Orderly poweroff; escalates to SIGTERM (twice) and SIGKILL of the
    /// nspawn process if the container does not go down in time.
    fn poweroff(&mut self) {
        let Some(mut child) = self.nspawn.take() else {
            return;
        };
        if child.try_wait().ok().flatten().is_none() {
            let _ = self
                .inside(&["systemctl", "poweroff"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let pid = child.id() as libc::pid_t;
        for (signal, grace) in [
            (0, POWEROFF_TIMEOUT),
            (libc::SIGTERM, Duration::from_secs(5)),
            (libc::SIGTERM, Duration::from_secs(5)),
            (libc::SIGKILL, Duration::from_secs(30)),
        ] {
            if signal != 0 {
                eprintln!(
                    "testbed: {} did not power off; sending signal {signal}",
                    self.name
                );
                // SAFETY: `pid` is our own un-reaped child, so it cannot have
                // been recycled for another process.
                unsafe { libc::kill(pid, signal) };
            }
            if wait_timeout(&mut child, grace) {
                return;
            }
        }
        panic!("systemd-nspawn {pid} for {} survived SIGKILL", self.name);
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        self.poweroff();
        self.cgroups.remove();
        if std::env::var_os("UNITGATE_KEEP_TESTBED").is_some() {
            eprintln!("testbed: keeping {}", self.dir.display());
            return;
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("testbed: could not remove {}: {e}", self.dir.display());
        }
    }
}

/// Runs in the forked child before it execs nsenter: every command inside
/// the machine starts with the kernel's audit login uid unset, as a service
/// or cron job would, instead of inheriting the test process's (which is the
/// developer's login session, or unset in CI). The helper judges root by it,
/// so tests that need one set it themselves (`echo 1000 >
/// /proc/self/loginuid; exec …`: from unset, no privilege is needed).
/// Clearing a set login uid needs CAP_AUDIT_CONTROL, which the root test
/// process has; if the kernel refuses anyway (audit's immutable-loginuid
/// mode), the spawn fails with EPERM unless the login uid already is unset.
fn unset_login_uid() -> std::io::Result<()> {
    const PATH: &std::ffi::CStr = c"/proc/thread-self/loginuid";
    const UNSET: &[u8] = b"4294967295";
    // SAFETY: PATH is NUL-terminated; the descriptor is closed before return.
    let fd = unsafe { libc::open(PATH.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if fd < 0 {
        // A kernel without audit has no login uid to inherit.
        return Ok(());
    }
    // SAFETY: UNSET is a static buffer of UNSET.len() bytes.
    let wrote = unsafe { libc::write(fd, UNSET.as_ptr().cast(), UNSET.len()) };
    let mut now = [0u8; 16];
    // SAFETY: `now` is writable for its length; reading from offset 0 shows
    // the current value whatever the write did.
    let read = unsafe { libc::pread(fd, now.as_mut_ptr().cast(), now.len(), 0) };
    // SAFETY: `fd` is ours and closed once.
    unsafe { libc::close(fd) };
    let unset = usize::try_from(read).is_ok_and(|n| &now[..n] == UNSET);
    if wrote == UNSET.len() as isize || unset {
        Ok(())
    } else {
        Err(std::io::Error::from_raw_os_error(libc::EPERM))
    }
}

/// True when `pid`'s innermost pid (last `NSpid` field) is 1.
fn is_namespace_init(pid: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("NSpid:"))
        .is_some_and(|ids| {
            let ids: Vec<&str> = ids.split_whitespace().collect();
            ids.len() > 1 && ids.last() == Some(&"1")
        })
}

fn wait_timeout(child: &mut Child, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// The end-to-end suite needs root and systemd-nspawn. It fails loudly
/// instead of skipping: a silently skipped suite proves nothing.
fn preflight() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert!(
        euid == 0,
        "the end-to-end test bed must run as root (it boots systemd-nspawn containers); \
         run the README's test command as root"
    );
    for tool in ["/usr/bin/systemd-nspawn", "/usr/bin/nsenter"] {
        assert!(
            Path::new(tool).exists(),
            "{tool} is missing: `apt-get install -y systemd-container sudo` \
             (the README's test command installs it)"
        );
    }
}

/// One-time host preparation: nspawn needs /run/systemd/nspawn on a
/// filesystem it can write; and directories of machines whose test process
/// died are removed.
fn prepare_host() {
    let nspawn_run = Path::new("/run/systemd/nspawn");
    if !is_mountpoint(nspawn_run) {
        std::fs::create_dir_all(nspawn_run).expect("mkdir /run/systemd/nspawn");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "tmpfs", "/run/systemd/nspawn"])
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mounting tmpfs on /run/systemd/nspawn failed"
        );
    }
    remove_stale_machine_dirs();
}

fn is_mountpoint(path: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let wanted = path.to_str().unwrap_or_default();
    mounts
        .lines()
        .any(|line| line.split(' ').nth(4) == Some(wanted))
}

/// Machine names end in `-<pid>-<n>`; a directory whose pid is gone and
/// that no process refers to is garbage from a killed run.
fn remove_stale_machine_dirs() {
    let Ok(entries) = std::fs::read_dir(BASE_DIR) else {
        return;
    };
    for entry in entries.flatten() {
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
    cgroup::remove_stale(|name| {
        !name
            .rsplit('-')
            .nth(1)
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists())
    });
}

fn unique_name(label: &str) -> String {
    let n = NEXT_ID.fetch_add(1, Ordering::SeqCst);
    format!("ug-{}-{}-{n}", name_part(label), std::process::id())
}

/// A test's label as part of a machine or run name: lower-case ASCII
/// letters and digits, anything else `-`, at most 32 characters.
pub(crate) fn name_part(label: &str) -> String {
    label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(32)
        .collect()
}

/// Units the host enables: booted in the container they would start real
/// services (a database, timers) that the test bed neither needs nor wants
/// to wait for, so each is masked on the kernel command line.
fn host_enabled_units() -> Vec<String> {
    let mut units = Vec::new();
    let Ok(dirs) = std::fs::read_dir("/etc/systemd/system") else {
        return units;
    };
    for dir in dirs.flatten() {
        let dir_name = dir.file_name().to_string_lossy().into_owned();
        if !dir_name.ends_with(".target.wants") {
            continue;
        }
        for unit in std::fs::read_dir(dir.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            units.push(unit.file_name().to_string_lossy().into_owned());
        }
    }
    units.sort();
    units.dedup();
    units
}

/// Host pids whose command line contains `needle` (used to prove that a
/// machine left no process behind). Test-bed only: the product never looks
/// for processes by name.
pub fn processes_mentioning(needle: &str) -> Vec<u32> {
    let me = std::process::id();
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(needle) {
            pids.push(pid);
        }
    }
    pids
}

/// Host mount points whose path or source mentions `needle`.
pub fn mounts_mentioning(needle: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|line| line.contains(needle))
        .map(str::to_owned)
        .collect()
}
