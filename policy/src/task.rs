//! What a task may ask for (`unitgate run`, issue #14): the policy's
//! `[tasks]` table, and the one grammar for limits that the policy's
//! maxima, the CLI's flags and the helper's checks share.
//!
//! A limit reaches systemd only as a number the helper formats itself
//! (`CPUQuota=50%`, `MemoryMax=536870912`), never as text a caller wrote,
//! so the grammar is deliberately narrow: digits and one unit letter, no
//! signs, spaces, fractions, `infinity` or zero.

use crate::toml::{Entry, Table, Value};

/// The keys of `[tasks]`.
pub const KEYS: &[&str] = &[
    "commands",
    "max_cpu_percent",
    "max_memory",
    "max_tasks",
    "max_runtime_secs",
    "max_running",
];

/// CPU, as a percentage of one CPU (`CPUQuota=`): up to 1,000 CPUs.
pub const CPU_PERCENT: std::ops::RangeInclusive<u64> = 1..=100_000;
/// Memory in bytes (`MemoryMax=`): 1 MiB to 1 PiB.
pub const MEMORY: std::ops::RangeInclusive<u64> = 1 << 20..=1 << 50;
/// Processes and threads (`TasksMax=`): up to the kernel's `pid_max` limit.
pub const TASKS: std::ops::RangeInclusive<u64> = 1..=4_194_304;
/// Run time in seconds (`RuntimeMaxSec=`): up to a year.
pub const RUNTIME_SECS: std::ops::RangeInclusive<u64> = 1..=31_536_000;
/// Tasks of one app running at once.
pub const RUNNING: std::ops::RangeInclusive<u64> = 1..=10_000;
/// Longest accepted command path.
pub const MAX_PATH: usize = 4096;

/// The `[tasks]` table: which programs an app's callers may run as
/// themselves, and the most each run may take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskPolicy {
    pub commands: Vec<CommandRule>,
    pub max_cpu_percent: u64,
    pub max_memory: u64,
    pub max_tasks: u64,
    pub max_runtime_secs: u64,
    pub max_running: u64,
}

/// One entry of `commands`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandRule {
    /// Exactly this program.
    File(String),
    /// Any program below this directory (written with its trailing `/`).
    Dir(String),
}

impl CommandRule {
    fn allows(&self, command: &str) -> bool {
        match self {
            CommandRule::File(f) => f == command,
            CommandRule::Dir(d) => command.len() > d.len() && command.starts_with(d.as_str()),
        }
    }
}

/// The limits of one task, each within the policy's maximum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub cpu_percent: u64,
    pub memory: u64,
    pub tasks: u64,
    pub runtime_secs: u64,
}

/// What a caller asked for; `None`: the policy's maximum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Asked {
    pub cpu_percent: Option<u64>,
    pub memory: Option<u64>,
    pub tasks: Option<u64>,
    pub runtime_secs: Option<u64>,
}

impl TaskPolicy {
    /// Whether `command` is in its one spelling ([`is_clean_path`]) and one
    /// the policy lists.
    pub fn allows_command(&self, command: &str) -> bool {
        is_clean_path(command) && self.commands.iter().any(|r| r.allows(command))
    }

    /// The task's limits: each asked one if within its maximum, the
    /// maximum for each not asked. The error names the first one above.
    pub fn limits(&self, asked: Asked) -> Result<Limits, String> {
        let pick = |what: &str, asked: Option<u64>, max: u64| match asked {
            Some(v) if v > max => Err(format!("{what} {v} is above the app's maximum {max}")),
            Some(v) => Ok(v),
            None => Ok(max),
        };
        Ok(Limits {
            cpu_percent: pick("cpu", asked.cpu_percent, self.max_cpu_percent)?,
            memory: pick("memory", asked.memory, self.max_memory)?,
            tasks: pick("tasks", asked.tasks, self.max_tasks)?,
            runtime_secs: pick("timeout", asked.runtime_secs, self.max_runtime_secs)?,
        })
    }
}

/// A CPU share in percent of one CPU: `50` or `50%`, within
/// [`CPU_PERCENT`].
pub fn parse_cpu(s: &str) -> Result<u64, String> {
    let digits = s.strip_suffix('%').unwrap_or(s);
    number(digits, CPU_PERCENT).ok_or_else(|| {
        format!(
            "'{}' is not a CPU percentage from 1 to 100000 (e.g. 50 or 200%)",
            shown(s)
        )
    })
}

/// A memory size: digits and an optional `K`, `M`, `G` or `T` (powers of
/// 1024), within [`MEMORY`]: `512M`, `2G`, `1073741824`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let bad = || {
        format!(
            "'{}' is not a size from 1M to 1024T (digits and K, M, G or T, e.g. 512M)",
            shown(s)
        )
    };
    let (digits, shift) = match s.as_bytes().last() {
        Some(b'K') => (&s[..s.len() - 1], 10),
        Some(b'M') => (&s[..s.len() - 1], 20),
        Some(b'G') => (&s[..s.len() - 1], 30),
        Some(b'T') => (&s[..s.len() - 1], 40),
        _ => (s, 0),
    };
    let n = number(digits, 1..=u64::MAX).ok_or_else(bad)?;
    n.checked_mul(1 << shift)
        .filter(|b| MEMORY.contains(b))
        .ok_or_else(bad)
}

/// A count of processes and threads, within [`TASKS`].
pub fn parse_tasks(s: &str) -> Result<u64, String> {
    number(s, TASKS)
        .ok_or_else(|| format!("'{}' is not a number of tasks from 1 to 4194304", shown(s)))
}

/// Seconds, within [`RUNTIME_SECS`].
pub fn parse_secs(s: &str) -> Result<u64, String> {
    number(s, RUNTIME_SECS).ok_or_else(|| {
        format!(
            "'{}' is not a number of seconds from 1 to 31536000",
            shown(s)
        )
    })
}

/// A caller's text as an error message may show it: escaped, one line.
fn shown(s: &str) -> String {
    crate::escape::quoted(s.as_bytes())
}

/// Plain decimal digits, no leading zero, within `range`.
fn number(s: &str, range: std::ops::RangeInclusive<u64>) -> Option<u64> {
    let ok = !s.is_empty()
        && s.len() <= 20
        && s.bytes().all(|b| b.is_ascii_digit())
        && !s.starts_with('0');
    ok.then(|| s.parse::<u64>().ok())
        .flatten()
        .filter(|n| range.contains(n))
}

/// An absolute path in its one spelling: starts with `/`, no empty, `.` or
/// `..` component, printable ASCII without spaces, at most [`MAX_PATH`]
/// bytes; a trailing `/` only where `dir` allows it.
fn path_shape(p: &str, dir: bool) -> bool {
    let body = if dir { p.strip_suffix('/') } else { Some(p) };
    let Some(body) = body.and_then(|b| b.strip_prefix('/')) else {
        return false;
    };
    p.len() <= MAX_PATH
        && p.bytes().all(|b| b.is_ascii_graphic())
        && (body.is_empty() && dir
            || !body.is_empty() && body.split('/').all(|c| !matches!(c, "" | "." | "..")))
}

/// Whether `p` is a program path a task may name: absolute, in one
/// spelling (see `path_shape`).
pub fn is_clean_path(p: &str) -> bool {
    path_shape(p, false)
}

/// The slice every task runs in; systemd nests it as
/// `unitgate.slice/unitgate-tasks.slice`.
pub const SLICE: &str = "unitgate-tasks.slice";
/// Longest task id.
pub const MAX_ID: usize = 64;

/// A task id: `[A-Za-z0-9][A-Za-z0-9_]{0,63}`. No `-`, so the unit name
/// [`unit_base`] makes splits back into app, uid and id one way only.
pub fn is_valid_id(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_ID
        && b[0].is_ascii_alphanumeric()
        && b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'_')
}

/// How a task runs: a transient service (systemd starts it) or a scope
/// (the caller's own descendant).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Service,
    Scope,
}

impl Kind {
    pub fn suffix(self) -> &'static str {
        match self {
            Kind::Service => ".service",
            Kind::Scope => ".scope",
        }
    }
}

/// `<app>-task-<uid>-<id>`: the unit name of a task without its suffix.
/// The uid is the caller's, so one caller's names never meet another's.
pub fn unit_base(app: &str, uid: u32, id: &str) -> String {
    format!("{app}-task-{uid}-{id}")
}

/// A task's unit name split back: app, uid, id and kind, or `None` for a
/// name [`unit_base`] plus a suffix cannot have made.
pub fn parse_unit(unit: &str) -> Option<(&str, u32, &str, Kind)> {
    let (base, kind) = if let Some(b) = unit.strip_suffix(".service") {
        (b, Kind::Service)
    } else {
        (unit.strip_suffix(".scope")?, Kind::Scope)
    };
    let (rest, id) = base.rsplit_once('-')?;
    let (rest, uid) = rest.rsplit_once('-')?;
    let app = rest.strip_suffix("-task")?;
    let plain_uid = !uid.is_empty() && uid.bytes().all(|b| b.is_ascii_digit());
    let uid = uid.parse::<u32>().ok().filter(|_| plain_uid)?;
    let ok = crate::name::is_valid_app(app) && is_valid_id(id) && unit_base(app, uid, id) == base;
    ok.then_some((app, uid, id, kind))
}

/// The `[tasks]` table, validated; errors name the key and its line.
pub fn from_table(t: &Table) -> Result<TaskPolicy, String> {
    only_keys(t, KEYS)?;
    let required = |key: &str| required(t, key);
    Ok(TaskPolicy {
        commands: commands(required("commands")?)?,
        max_cpu_percent: integer(required("max_cpu_percent")?, CPU_PERCENT)?,
        max_memory: size(required("max_memory")?)?,
        max_tasks: integer(required("max_tasks")?, TASKS)?,
        max_runtime_secs: integer(required("max_runtime_secs")?, RUNTIME_SECS)?,
        max_running: integer(required("max_running")?, RUNNING)?,
    })
}

/// An error for the first key of `t` not in `keys`.
pub(crate) fn only_keys(t: &Table, keys: &[&str]) -> Result<(), String> {
    match t.entries.iter().find(|e| !keys.contains(&e.key.as_str())) {
        Some(e) => Err(format!(
            "unknown key `{}` in [{}] at line {}",
            crate::toml::display_key(&e.key),
            t.name,
            e.line
        )),
        None => Ok(()),
    }
}

pub(crate) fn required<'t>(t: &'t Table, key: &str) -> Result<&'t Entry, String> {
    t.get(key)
        .ok_or_else(|| format!("[{}] at line {} is missing `{key}`", t.name, t.line))
}

/// An integer entry within `range`.
pub(crate) fn integer(e: &Entry, range: std::ops::RangeInclusive<u64>) -> Result<u64, String> {
    let (key, lo, hi) = (&e.key, range.start(), range.end());
    match &e.value {
        Value::Integer(n) => u64::try_from(*n)
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| {
                format!(
                    "`{key}` at line {} must be from {lo} to {hi}, not {n}",
                    e.line
                )
            }),
        other => Err(format!(
            "`{key}` at line {} must be an integer, not {}",
            e.line,
            other.type_name()
        )),
    }
}

/// A size entry: a string [`parse_size`] takes.
pub(crate) fn size(e: &Entry) -> Result<u64, String> {
    match &e.value {
        Value::String(s) => {
            parse_size(s).map_err(|why| format!("`{}` at line {}: {why}", e.key, e.line))
        }
        other => Err(format!(
            "`{}` at line {} must be a string such as \"2G\", not {}",
            e.key,
            e.line,
            other.type_name()
        )),
    }
}

fn commands(e: &Entry) -> Result<Vec<CommandRule>, String> {
    let bad = |what: String| format!("`commands` at line {}: {what}", e.line);
    let Value::Array(items) = &e.value else {
        return Err(bad(format!(
            "must be an array of paths, not {}",
            e.value.type_name()
        )));
    };
    if items.is_empty() {
        return Err(bad(
            "lists no program (leave out [tasks] to allow none)".into()
        ));
    }
    items
        .iter()
        .map(|v| match v {
            Value::String(p) if p.ends_with('/') && path_shape(p, true) => {
                Ok(CommandRule::Dir(p.clone()))
            }
            Value::String(p) if path_shape(p, false) => Ok(CommandRule::File(p.clone())),
            Value::String(p) => Err(bad(format!(
                "'{}' is not an absolute path in one spelling (no //, . or .., printable, no spaces; a directory ends with /)",
                crate::escape::quoted(p.as_bytes())
            ))),
            other => Err(bad(format!("elements must be strings, not {}", other.type_name()))),
        })
        .collect()
}

#[cfg(test)]
#[path = "task_tests.rs"]
mod tests;
