//! The privileged path, top to bottom:
//!
//! sanitize process → parse args → judge (root, names, policy, caller) →
//! build argv → choose the reload (the app's guard drop-in) → lock →
//! bound (`enable`: `max_instances`) → remove `disable`'s links, mark the
//! deferred reload → audit → exec.
//!
//! Every step is a small function returning `Result<_, Error>`; `run` is the
//! only place that turns an error into a message, an audit line and an exit
//! code. `judge` has no side effects besides reading the policy, so tests
//! drive it with injected paths; everything after it that touches the
//! system (lock files under /run, the enabled instances under
//! /etc/systemd/system, the exec) gets its paths from [`Paths`] too.

use crate::action::{self, Action, Reload, SYSTEMCTL};
use crate::audit::{self, Record, Verdict};
use crate::caller::{self, Caller, Invoker};
use crate::error::Error;
use crate::system::fs::{self, Held};
use crate::system::process;
use crate::{
    control_dir, enabled, guard, limit_pipeline, lock, running, task, task_pipeline, unit_file,
};
use nix::fcntl::OFlag;
use std::ffi::{CString, OsStr, OsString};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, IntoRawFd};
use std::path::{Path, PathBuf};
use std::time::Duration;
use unitgate_policy::config::{self as policy, Policy, POLICY_DIR};
use unitgate_policy::escape::{quoted, shell_word};
pub use unitgate_policy::limits::{DEFAULT_WAIT_SECS, MAX_INSTANCES, MAX_WAIT_SECS};
use unitgate_policy::{exit, name};

/// The complete environment systemctl gets: an allow-list built from
/// scratch, never a filtered copy of ours.
pub const EXEC_ENV: &[&str] = &[
    "PATH=/usr/sbin:/usr/bin",
    "LC_ALL=C",
    "SYSTEMD_PAGERSECURE=1",
    "SYSTEMD_COLORS=0",
    "SYSTEMD_URLIFY=0",
];

pub const USAGE: &str = "\
usage: unitgate-systemctl [--check] [--wait SECONDS] APP ACTION INSTANCE...
       unitgate-systemctl [--check] [--wait SECONDS] APP run [--scope] --name ID
           [--cpu PCT] [--memory SIZE] [--tasks N] [--timeout SECS] [--env K=V]...
           -- COMMAND [ARG]...
       unitgate-systemctl [--check] APP kill ID...
       unitgate-systemctl [--check] [--wait SECONDS] APP limit
           (--reset | [--cpu PCT] [--memory SIZE] [--tasks N]) INSTANCE

Runs /usr/bin/systemctl ACTION on the units <prefix>@INSTANCE.service of APP,
as allowed by /etc/unitgate/apps/APP.toml. With --check, makes every check,
prints the command it would run, and runs nothing. --wait: how long to wait
for other calls on the same units to finish, 0 to 3600 seconds (default 30);
then exit 75. The options come in this order, each at most once.

ACTION is one of: enable (enable --now), disable (disable --now), restart
(restarts running units only: try-restart), reset-failed, show.
1 to 256 instances, each [A-Za-z0-9][A-Za-z0-9_-]{0,63}.

run starts COMMAND (listed in the app's [tasks] commands) as the caller, in
the transient unit <app>-task-<uid>-<ID>.service (returns once it started)
or, with --scope, <app>-task-<uid>-<ID>.scope (waits, exits with its status).
Limits not given are the policy's maxima. kill stops the caller's own tasks.
ID: [A-Za-z0-9][A-Za-z0-9_]{0,63}.

limit sets CPUQuota=, MemoryMax= and TasksMax= of <prefix>@INSTANCE.service
(systemctl set-property: at once, and kept across reboots), each within the
app's [limits]; --reset empties all three and removes what was kept.

exit status:
  0   success (--check: the call would be allowed)
  64  usage error
  65  invalid app, instance or task name, --env pair or argument
  69  /usr/bin/systemctl or /usr/bin/systemd-run not found
  71  operating-system error
  75  busy: another call holds a lock of these units, or max_running tasks
      run; retry
  77  not permitted (also: not through sudo, max_instances reached, a
      command or limit the app's [tasks] or [limits] does not allow, a root
      caller's run, an app without [limits])
  78  policy missing, invalid or insecure
  *   otherwise systemctl's or systemd-run's own exit status (a --scope
      task's: its own, 128 + signal if killed)
";

/// Where things are. Only `Paths::system()` is ever used by the binary;
/// tests build their own to point at temporary directories.
#[derive(Clone, Debug)]
pub struct Paths {
    /// Trusted directory the policy walk starts from.
    pub policy_root: PathBuf,
    /// Policy directory, relative to `policy_root`.
    pub policy_dir: PathBuf,
    /// Trusted directory holding `unitgate/locks`.
    pub lock_parent: PathBuf,
    /// Where `systemctl enable` links units (`*.wants/` etc.), counted for
    /// `max_instances`.
    pub unit_dir: PathBuf,
    /// Where a template's file is looked for, to link instances to it
    /// (see `unit_file.rs`).
    pub unit_path: Vec<(PathBuf, bool)>,
    pub systemctl: PathBuf,
    pub systemd_run: PathBuf,
    /// Where the kernel's cgroup file systems are (running tasks are
    /// counted there, see `running.rs`).
    pub cgroup_fs: PathBuf,
    /// Where PID 1 keeps what `set-property` set (see `control_dir.rs`).
    pub control_dir: PathBuf,
}

impl Paths {
    pub fn system() -> Paths {
        Paths {
            policy_root: PathBuf::from("/"),
            policy_dir: PathBuf::from(POLICY_DIR.trim_start_matches('/')),
            lock_parent: PathBuf::from(lock::LOCK_PARENT),
            unit_dir: PathBuf::from(enabled::UNIT_DIR),
            unit_path: unit_file::system_unit_path(),
            systemctl: PathBuf::from(SYSTEMCTL),
            systemd_run: PathBuf::from(task::SYSTEMD_RUN),
            cgroup_fs: PathBuf::from(running::CGROUP_FS),
            control_dir: PathBuf::from(control_dir::CONTROL_DIR),
        }
    }
}

/// What the process was started with.
#[derive(Clone, Debug)]
pub struct Process<'a> {
    /// Arguments after argv[0].
    pub args: &'a [OsString],
    pub euid: u32,
    pub invoker: Invoker<'a>,
}

/// The command line, split but not yet validated.
#[derive(Clone, Copy, Debug)]
pub struct RawRequest<'a> {
    pub check: bool,
    /// `--wait`, validated.
    pub wait: Duration,
    pub app: &'a OsStr,
    pub action: &'a OsStr,
    pub instances: &'a [OsString],
}

/// A call that passed every check.
#[derive(Clone, Debug)]
pub struct Plan {
    pub app: String,
    pub action: Action,
    pub units: Vec<String>,
    pub argv: Vec<String>,
    /// How `enable` and `disable` reload (`Now` for every other action).
    pub reload: Reload,
    /// With [`Reload::Linked`], the template file the links point at.
    pub template: Option<PathBuf>,
    /// From the policy, for the `max_instances` bound of `enable`.
    pub unit_prefix: String,
    pub max_instances: u32,
}

// ---------------------------------------------------------------- the path

/// Run the whole pipeline after `sanitize_process`; returns the exit code
/// (only when not exec'ing).
pub fn run(proc: &Process<'_>, paths: &Paths) -> u8 {
    // Every refusal is audited, even a malformed command line.
    let mut record = audit_record(proc.args, &proc.invoker);
    if let (check, wait, [app, action, rest @ ..]) = split_options(proc.args) {
        let wait = match wait.map_or(Ok(Duration::from_secs(DEFAULT_WAIT_SECS)), parse_wait) {
            Ok(wait) => wait,
            Err(e) => return refuse(Some(&record), &e),
        };
        if action == "run" {
            return task_pipeline::run(check, wait, app, rest, proc, paths, &mut record);
        }
        if action == "kill" {
            return task_pipeline::kill(check, app, rest, proc, paths, &mut record);
        }
        if action == "limit" {
            return limit_pipeline::limit(check, wait, app, rest, proc, paths, &mut record);
        }
    }
    let raw = match parse_args(proc.args) {
        Ok(raw) => raw,
        Err(e) => return refuse(Some(&record), &e),
    };
    let plan = match judge(&raw, proc, paths, &mut record) {
        Ok(plan) => plan,
        Err(e) => return refuse(Some(&record), &e),
    };
    let plan = match choose_reload(plan, paths, &mut record) {
        Ok(plan) => plan,
        Err(e) => return refuse(Some(&record), &e),
    };
    if raw.check {
        // Unlocked, so this count is only a preview of the real call's.
        if let Err(e) = within_max_instances(&plan, paths) {
            return refuse(Some(&record), &e);
        }
        audit::send(&record, Verdict::Check);
        let _ = writeln!(std::io::stdout(), "{}", would_exec(&plan, paths));
        return exit::OK;
    }
    let _locks = match lock_units(&plan, paths, raw.wait) {
        Ok(locks) => locks,
        Err(e) => return refuse(Some(&record), &e),
    };
    if let Err(e) = still_chosen(&plan, paths) {
        return refuse(Some(&record), &e);
    }
    // Counted while holding the app-wide lock every `enable` takes, so no
    // other enable can add instances between this count and our exec.
    if let Err(e) = within_max_instances(&plan, paths) {
        return refuse(Some(&record), &e);
    }
    let made = match defer_reload(&plan, paths) {
        Ok(made) => made,
        Err(e) => return refuse(Some(&record), &e),
    };
    audit::send(&record, Verdict::Accepted);
    let e = exec(&plan, paths);
    // systemctl never ran: the links this call made go again, so a failed
    // enable leaves nothing enabled.
    let _ = enabled::remove_made(&paths.unit_dir, &made);
    refuse(Some(&record), &e)
}

/// Step 1, before anything is read: refuse setuid/setgid, then put the
/// descriptors, umask, working directory and signals into a known state.
pub fn sanitize_process() -> Result<(), Error> {
    if process::at_secure() {
        return Err(Error::AtSecure);
    }
    reopen_std_fds()?;
    process::close_fds_above_2();
    process::set_umask(0o022);
    process::chdir(OsStr::new("/")).map_err(|err| Error::Os {
        what: "cannot chdir to /".into(),
        err,
    })?;
    process::reset_signals();
    Ok(())
}

/// Step 2: `[--check] [--wait SECONDS] APP ACTION INSTANCE...`, the options
/// in that order, each at most once; anything else is usage.
pub fn parse_args(args: &[OsString]) -> Result<RawRequest<'_>, Error> {
    let (check, wait, rest) = split_options(args);
    let wait = wait.map_or(Ok(Duration::from_secs(DEFAULT_WAIT_SECS)), parse_wait)?;
    if let Some(opt) = rest
        .first()
        .filter(|a| a.as_encoded_bytes().starts_with(b"-"))
    {
        return Err(Error::Usage(format!(
            "unknown, repeated or misplaced option '{}', or --wait without SECONDS: \
             the options are --check, then --wait SECONDS, each at most once",
            quoted(opt.as_encoded_bytes())
        )));
    }
    match rest {
        [app, action, instances @ ..] if !instances.is_empty() => Ok(RawRequest {
            check,
            wait,
            app,
            action,
            instances,
        }),
        _ => Err(Error::Usage("expected APP ACTION INSTANCE...".into())),
    }
}

/// `--check` and `--wait VALUE` where they may stand, not yet validated, and
/// the arguments after them (also what the audit record is made from).
fn split_options(args: &[OsString]) -> (bool, Option<&OsStr>, &[OsString]) {
    let (check, rest) = match args {
        [first, rest @ ..] if first == "--check" => (true, rest),
        _ => (false, args),
    };
    match rest {
        [opt, value, rest @ ..] if opt == "--wait" => (check, Some(value.as_os_str()), rest),
        _ => (check, None, rest),
    }
}

/// Whole seconds, 0 to 3600, plain decimal (no sign, no leading zero).
fn parse_wait(value: &OsStr) -> Result<Duration, Error> {
    let bytes = value.as_encoded_bytes();
    let plain = !bytes.is_empty()
        && bytes.len() <= 4
        && bytes.iter().all(u8::is_ascii_digit)
        && (bytes.len() == 1 || bytes[0] != b'0');
    let secs = std::str::from_utf8(bytes)
        .ok()
        .filter(|_| plain)
        .and_then(|t| t.parse::<u64>().ok())
        .filter(|&s| s <= MAX_WAIT_SECS);
    secs.map(Duration::from_secs).ok_or_else(|| {
        Error::Usage(format!(
            "--wait takes whole seconds from 0 to {MAX_WAIT_SECS}, not '{}'",
            quoted(bytes)
        ))
    })
}

/// Step 3: every check, in order. Fills `record` as facts become known.
pub fn judge(
    raw: &RawRequest<'_>,
    proc: &Process<'_>,
    paths: &Paths,
    record: &mut Record,
) -> Result<Plan, Error> {
    judge_with(raw, proc, record, |app| {
        policy::load(&paths.policy_root, &paths.policy_dir, app).map_err(Error::Policy)
    })
}

/// `judge` with the policy loader passed in (the fuzz target parses policy
/// text from memory instead of reading a root-owned file).
pub fn judge_with(
    raw: &RawRequest<'_>,
    proc: &Process<'_>,
    record: &mut Record,
    load_policy: impl FnOnce(&str) -> Result<Policy, Error>,
) -> Result<Plan, Error> {
    check_root(proc.euid)?;
    // Identify now so refusals below are logged with the caller's name;
    // whether the caller is *allowed* is decided after the policy is read.
    let caller = caller::identify(&proc.invoker);
    if let Ok(c) = &caller {
        record.caller = Some(c.name.clone());
        record.uid = c.uid.to_string().into_bytes();
    }
    let app = valid_app(raw.app)?;
    let action = known_action(raw.action)?;
    let instances = valid_instances(raw.instances)?;
    let policy = load_policy(app)?;
    // Who first: a caller the app does not list learns nothing more about
    // its policy (which actions it allows) than that it may not drive it.
    let caller = caller?;
    allowed_caller(&policy, &caller, app)?;
    allowed_action(&policy, action, app)?;
    allowed_instances(&policy, &instances, app)?;
    let units = unit_names(&policy, &instances)?;
    let argv = action::argv(action, Reload::Now, &units);
    Ok(Plan {
        app: app.to_owned(),
        action,
        units,
        argv,
        reload: Reload::Now,
        template: None,
        unit_prefix: policy.unit_prefix,
        max_instances: policy.max_instances,
    })
}

fn check_root(euid: u32) -> Result<(), Error> {
    if euid == 0 {
        Ok(())
    } else {
        Err(Error::NotRoot { euid })
    }
}

fn valid_app(arg: &OsStr) -> Result<&str, Error> {
    let bytes = arg.as_encoded_bytes();
    let app = arg.to_str().ok_or_else(|| Error::NotUtf8(bytes.to_vec()))?;
    name::is_valid_app(app)
        .then_some(app)
        .ok_or_else(|| Error::InvalidApp(bytes.to_vec()))
}

fn known_action(arg: &OsStr) -> Result<Action, Error> {
    arg.to_str()
        .and_then(Action::parse)
        .ok_or_else(|| Error::UnknownAction(arg.as_encoded_bytes().to_vec()))
}

/// Count, UTF-8 and the built-in rule for every instance (one bad name
/// rejects the call); duplicates are dropped, first occurrence kept.
fn valid_instances(args: &[OsString]) -> Result<Vec<&str>, Error> {
    if args.is_empty() || args.len() > MAX_INSTANCES {
        return Err(Error::InstanceCount(args.len()));
    }
    let mut out: Vec<&str> = Vec::with_capacity(args.len());
    for arg in args {
        let bytes = arg.as_encoded_bytes();
        let inst = arg.to_str().ok_or_else(|| Error::NotUtf8(bytes.to_vec()))?;
        if !name::is_valid_instance(inst) {
            let why = "must match [A-Za-z0-9][A-Za-z0-9_-]{0,63}".into();
            return Err(Error::InvalidInstance {
                name: bytes.to_vec(),
                why,
            });
        }
        if !out.contains(&inst) {
            out.push(inst);
        }
    }
    Ok(out)
}

fn allowed_action(policy: &Policy, action: Action, app: &str) -> Result<(), Error> {
    if policy.allows_action(action) {
        Ok(())
    } else {
        Err(Error::ActionNotAllowed {
            action: action.name(),
            app: app.to_owned(),
        })
    }
}

/// The caller, or one of its groups, among the policy's `callers` (every
/// action's check: instances, tasks, limits).
pub(crate) fn allowed_caller(policy: &Policy, caller: &Caller, app: &str) -> Result<(), Error> {
    if caller.is_allowed(&policy.callers) {
        Ok(())
    } else {
        Err(Error::CallerNotAllowed {
            caller: caller.name.clone(),
            app: app.to_owned(),
        })
    }
}

fn allowed_instances(policy: &Policy, instances: &[&str], app: &str) -> Result<(), Error> {
    match instances.iter().find(|i| !policy.allows_instance(i)) {
        None => Ok(()),
        Some(bad) => Err(Error::InvalidInstance {
            name: bad.as_bytes().to_vec(),
            why: format!("does not match the instance_pattern of app {app}"),
        }),
    }
}

/// Step 4: `<prefix>@<instance>.service`, each checked byte for byte.
fn unit_names(policy: &Policy, instances: &[&str]) -> Result<Vec<String>, Error> {
    let unit = |inst: &&str| {
        name::unit_name(&policy.unit_prefix, inst).ok_or_else(|| Error::InvalidInstance {
            name: inst.as_bytes().to_vec(),
            why: "cannot form a unit name".into(),
        })
    };
    instances.iter().map(unit).collect()
}

/// Step 4b: an `enable` or `disable` of an app whose template carries
/// unitgate's guard drop-in leaves its daemon-reload to
/// unitgate-reload.service (docs/design/constant-cost.md), and its links to
/// the helper when the template's file is where their target is certain;
/// any other keeps systemctl's own.
fn choose_reload(mut plan: Plan, paths: &Paths, record: &mut Record) -> Result<Plan, Error> {
    if !matches!(plan.action, Action::Enable | Action::Disable) {
        return Ok(plan);
    }
    (plan.reload, plan.template) = reload_of(&plan, paths)?;
    plan.argv = action::argv(plan.action, plan.reload, &plan.units);
    record.reload = Some(match plan.reload {
        Reload::Linked => "linked",
        Reload::Deferred => "deferred",
        Reload::Now => "now",
    });
    Ok(plan)
}

/// How `plan`'s enable or disable reloads, and for a linked `enable` the
/// template its links point at, as the unit files on disk are now.
fn reload_of(plan: &Plan, paths: &Paths) -> Result<(Reload, Option<PathBuf>), Error> {
    if !guard::installed(&paths.unit_dir, &plan.unit_prefix)? {
        return Ok((Reload::Now, None));
    }
    if plan.action != Action::Enable {
        return Ok((Reload::Deferred, None));
    }
    Ok(
        match unit_file::template(&paths.unit_path, &plan.unit_prefix, &plan.units) {
            Some(t) => (Reload::Linked, Some(t)),
            None => (Reload::Deferred, None),
        },
    )
}

/// Step 5b: the choice of [`choose_reload`] still holds now that the locks
/// are held (waiting for them can take up to `--wait`, time for root to
/// mask, edit or unguard the template); a call made on the old judgement
/// is refused, to be retried.
fn still_chosen(plan: &Plan, paths: &Paths) -> Result<(), Error> {
    if !matches!(plan.action, Action::Enable | Action::Disable) {
        return Ok(());
    }
    if reload_of(plan, paths)? == (plan.reload, plan.template.clone()) {
        Ok(())
    } else {
        Err(Error::Changed(plan.unit_prefix.clone()))
    }
}

/// `--check` output: the links a linked `enable` would make, then the
/// executable and argv[1..], shell-quoted.
pub fn would_exec(plan: &Plan, paths: &Paths) -> String {
    let links = plan.template.iter().flat_map(|t| {
        plan.units.iter().map(move |u| {
            let link = paths.unit_dir.join(enabled::WANTS_DIR).join(u);
            format!(
                "would link: {} -> {}\n",
                shell_word(&link.to_string_lossy()),
                shell_word(&t.to_string_lossy())
            )
        })
    });
    let links: String = links.collect();
    format!("{links}{}", would_exec_line(plan, paths))
}

fn would_exec_line(plan: &Plan, paths: &Paths) -> String {
    let exe = shell_word(&paths.systemctl.to_string_lossy());
    let rest: Vec<String> = plan.argv.iter().skip(1).map(|a| shell_word(a)).collect();
    format!("would exec: {exe} {}", rest.join(" "))
}

/// Step 5: the lock slots of the units and, for `enable`, the app-wide
/// lock; only for actions that change state, and only now that the policy
/// proved the app real (so lock directories exist only for real apps).
fn lock_units(plan: &Plan, paths: &Paths, wait: Duration) -> Result<Vec<Held>, Error> {
    if !plan.action.changes_state() {
        return Ok(Vec::new());
    }
    let req = lock::Request {
        app: &plan.app,
        units: &plan.units,
        app_wide: plan.action == Action::Enable,
        deferred_reload: plan.reload == Reload::Deferred && plan.action == Action::Enable,
        wait,
    };
    lock::lock(&paths.lock_parent, &req)
}

/// Step 6: `enable` may not take the app past its policy's `max_instances`
/// enabled instances.
fn within_max_instances(plan: &Plan, paths: &Paths) -> Result<(), Error> {
    if plan.action != Action::Enable {
        return Ok(());
    }
    let enabled = enabled::enabled_units(&paths.unit_dir, &plan.unit_prefix)?;
    enabled::check_room(&plan.app, plan.max_instances, &enabled, &plan.units)
}

/// Step 6b, the last before the exec: for a deferred reload, the marker
/// that makes unitgate-reload.service run one. `disable` first removes the
/// instances' enable links itself (systemctl would find them by reading
/// every link), and a linked `enable` makes them itself, so either change
/// is on disk before its marker and any reload that takes the marker loads
/// it. An `enable` left to systemctl gets its links after the exec, so its
/// marker comes first, under the reload lock held until systemctl exits.
/// Returns the links this call made; on an error, none is left.
fn defer_reload(plan: &Plan, paths: &Paths) -> Result<Vec<String>, Error> {
    if !plan.reload.is_deferred() {
        return Ok(Vec::new());
    }
    let made = match (plan.action, &plan.template) {
        (Action::Disable, _) => {
            enabled::remove_links(&paths.unit_dir, &plan.units)?;
            Vec::new()
        }
        (Action::Enable, Some(template)) => {
            enabled::make_links(&paths.unit_dir, template, &plan.units)?
        }
        _ => Vec::new(),
    };
    if let Err(e) = lock::mark_reload_pending(&paths.lock_parent) {
        let _ = enabled::remove_made(&paths.unit_dir, &made);
        return Err(e);
    }
    Ok(made)
}

/// Step 7: stdin from /dev/null, fixed environment, execve. Returns only
/// on failure (the lock descriptors stay open across a successful exec).
fn exec(plan: &Plan, paths: &Paths) -> Error {
    let os = |what: &'static str| {
        move |err| Error::Os {
            what: what.to_owned(),
            err,
        }
    };
    if let Err(e) = stdin_from_null() {
        return e;
    }
    let cstrings = |v: &[String]| {
        v.iter()
            .map(|s| CString::new(s.as_bytes()))
            .collect::<Result<Vec<_>, _>>()
    };
    let env: Vec<String> = EXEC_ENV.iter().map(|s| (*s).to_owned()).collect();
    let (Ok(argv), Ok(envp)) = (cstrings(&plan.argv), cstrings(&env)) else {
        return os("cannot build argv")(std::io::ErrorKind::InvalidInput.into());
    };
    let err = process::execve(paths.systemctl.as_os_str(), &argv, &envp);
    if err.kind() == std::io::ErrorKind::NotFound {
        Error::ProgramMissing(paths.systemctl.clone())
    } else {
        os("cannot execute systemctl")(err)
    }
}

// ---------------------------------------------------------------- helpers

/// Point stdin at /dev/null: a program we exec reads nothing of the caller's.
pub fn stdin_from_null() -> Result<(), Error> {
    let os = |what: &str| {
        let what = what.to_owned();
        move |err| Error::Os { what, err }
    };
    let null = fs::open(Path::new("/dev/null"), OFlag::O_RDONLY | OFlag::O_CLOEXEC)
        .map_err(os("cannot open /dev/null"))?;
    process::dup2_std(null.as_fd(), 0).map_err(os("cannot redirect stdin"))
}

/// Point any closed descriptor among 0, 1, 2 at /dev/null, so that files we
/// open later can never become someone's stdout or stderr.
fn reopen_std_fds() -> Result<(), Error> {
    let null = fs::open(Path::new("/dev/null"), OFlag::O_RDWR).map_err(|err| Error::Os {
        what: "cannot open /dev/null".into(),
        err,
    })?;
    for fd in 0..=2 {
        if fd != null.as_raw_fd() && !process::fd_is_open(fd) {
            process::dup2_std(null.as_fd(), fd).map_err(|err| Error::Os {
                what: "cannot reopen fd".into(),
                err,
            })?;
        }
    }
    if null.as_raw_fd() <= 2 {
        // It filled a closed standard descriptor itself: keep it open.
        let _ = null.into_raw_fd();
    }
    Ok(())
}

/// What the log should say about the call, taken from the raw arguments
/// (escaped later) so that even a malformed call is recorded.
fn audit_record(args: &[OsString], inv: &Invoker<'_>) -> Record {
    let (_, _, args) = split_options(args);
    let bytes = |a: &OsString| a.as_encoded_bytes().to_vec();
    let uid = inv.sudo_uid.map_or_else(
        || inv.uid.to_string().into_bytes(),
        |u| u.as_encoded_bytes().to_vec(),
    );
    Record {
        caller: None,
        uid,
        app: args.first().map(bytes),
        action: args.get(1).map(bytes),
        instances: args.iter().skip(2).map(bytes).collect(),
        reload: None,
        task: None,
    }
}

/// The one place an error becomes output: stderr line (plus usage text for
/// 64), audit line when the command line was understood, exit code.
pub fn refuse(record: Option<&Record>, e: &Error) -> u8 {
    let code = e.exit_code();
    let msg = e.to_string();
    if let Some(r) = record {
        audit::send(r, Verdict::Refused(code, &msg));
    }
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "unitgate-systemctl: {msg}");
    if code == exit::USAGE {
        let _ = write!(err, "\n{USAGE}");
    }
    code
}

#[cfg(test)]
#[path = "pipeline_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "pipeline_props.rs"]
mod props;
