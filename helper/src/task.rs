//! What a `run` or `kill` call asks for, checked byte by byte, and the
//! exact systemd-run argv a task becomes (docs/design/tasks.md).
//!
//! Nothing a caller writes reaches systemd as a property: the limits are
//! numbers formatted here, the unit name is built from checked parts, the
//! environment goes as `--setenv=K=V` (a D-Bus string, never parsed as a
//! unit file) and the program's arguments follow `--`.

use crate::error::Error;
use std::ffi::{OsStr, OsString};
use unitgate_policy::task::{self as policy_task, Asked, Kind, Limits};

/// The program a task is started by.
pub const SYSTEMD_RUN: &str = "/usr/bin/systemd-run";
/// Most arguments after the command, and the longest one.
pub const MAX_ARGS: usize = 256;
pub const MAX_ARG_BYTES: usize = 4096;
/// Most bytes of the command and its arguments together (after `$` is
/// doubled), and of the environment together: PID 1 writes each as one
/// line of the transient unit's file, escaped (a non-ASCII byte takes
/// four), and reading it back after a daemon-reload fails on a line over
/// 1 MiB, which would leave the running task without its settings.
pub const MAX_ARGV_TOTAL: usize = 128 << 10;
pub const MAX_ENV_TOTAL: usize = 64 << 10;
/// Most `--env` pairs, and the longest key and value.
pub const MAX_ENV: usize = 64;
pub const MAX_ENV_KEY: usize = 128;
pub const MAX_ENV_VALUE: usize = 4096;
/// Most tasks one `kill` names.
pub const MAX_KILL: usize = 256;
/// How long a stopped task has between SIGTERM and SIGKILL.
pub const STOP_TIMEOUT_SECS: u32 = 10;

/// Variables that make a listed program run other code (the dynamic
/// loader's and the shells' start-up hooks), refused as `--env` keys.
const INJECTING: &[&str] = &["BASH_ENV", "ENV", "IFS", "SHELLOPTS", "BASHOPTS", "PS4"];

/// A `run` call's own arguments, checked (the policy is not consulted yet).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunRequest {
    pub kind: Kind,
    pub id: String,
    pub asked: Asked,
    pub env: Vec<(String, String)>,
    pub command: String,
    pub args: Vec<String>,
}

pub const RUN_USAGE: &str = "run [--scope] --name ID [--cpu PCT] [--memory SIZE] [--tasks N] \
[--timeout SECS] [--env K=V]... -- COMMAND [ARG]...";

/// `run`'s arguments after the word `run`: options in any order (each at
/// most once but `--env`), then `--`, the command and its arguments.
pub fn parse_run(args: &[OsString]) -> Result<RunRequest, Error> {
    let usage = |why: String| Error::Usage(format!("{why}; usage: {RUN_USAGE}"));
    let mut kind = Kind::Service;
    let (mut id, mut cpu, mut memory, mut tasks, mut timeout) = (None, None, None, None, None);
    let mut env = Vec::new();
    let mut rest = args;
    loop {
        let Some((opt, tail)) = rest.split_first() else {
            return Err(usage("no `--` before the command".into()));
        };
        if opt == "--" {
            rest = tail;
            break;
        }
        let flag = opt.to_str().unwrap_or("");
        if flag == "--scope" {
            if kind == Kind::Scope {
                return Err(usage("--scope given twice".into()));
            }
            kind = Kind::Scope;
            rest = tail;
            continue;
        }
        let slot = match flag {
            "--name" => &mut id,
            "--cpu" => &mut cpu,
            "--memory" => &mut memory,
            "--tasks" => &mut tasks,
            "--timeout" => &mut timeout,
            "--env" => {
                let Some((value, tail)) = tail.split_first() else {
                    return Err(usage("--env without K=V".into()));
                };
                env.push(env_pair(value)?);
                rest = tail;
                continue;
            }
            _ => {
                let shown = unitgate_policy::escape::quoted(opt.as_encoded_bytes());
                return Err(usage(if opt.as_encoded_bytes().starts_with(b"-") {
                    format!("unknown option '{shown}'")
                } else {
                    format!("no `--` before the command '{shown}'")
                }));
            }
        };
        let Some((value, tail)) = tail.split_first() else {
            return Err(usage(format!("{flag} without a value")));
        };
        if slot.is_some() {
            return Err(usage(format!("{flag} given twice")));
        }
        *slot = Some(utf8(value)?);
        rest = tail;
    }
    let Some((command, args)) = rest.split_first() else {
        return Err(usage("no command after `--`".into()));
    };
    if env.len() > MAX_ENV {
        return Err(invalid(
            "environment",
            b"",
            format!("more than {MAX_ENV} --env"),
        ));
    }
    let env_total: usize = env.iter().map(|(k, v)| k.len() + v.len() + 1).sum();
    if env_total > MAX_ENV_TOTAL {
        let why = format!("more than {MAX_ENV_TOTAL} bytes in all");
        return Err(invalid("environment", b"", why));
    }
    let id = id.ok_or_else(|| usage("--name ID is required".into()))?;
    let limit = |v: Option<&str>, parse: fn(&str) -> Result<u64, String>| {
        v.map(parse)
            .transpose()
            .map_err(|why| Error::Usage(format!("invalid limit ({why})")))
    };
    let command = utf8(command)?.to_owned();
    let args = arguments(args)?;
    let doubled = |a: &String| a.len() + a.matches('$').count();
    let argv_total = command.len() + args.iter().map(doubled).sum::<usize>();
    if argv_total > MAX_ARGV_TOTAL {
        let why = format!("the command and its arguments take more than {MAX_ARGV_TOTAL} bytes");
        return Err(invalid("arguments", b"", why));
    }
    Ok(RunRequest {
        kind,
        id: task_id(id)?,
        asked: Asked {
            cpu_percent: limit(cpu, policy_task::parse_cpu)?,
            memory: limit(memory, policy_task::parse_size)?,
            tasks: limit(tasks, policy_task::parse_tasks)?,
            runtime_secs: limit(timeout, policy_task::parse_secs)?,
        },
        env,
        command,
        args,
    })
}

/// `kill`'s arguments: 1 to [`MAX_KILL`] task ids, duplicates dropped.
pub fn parse_kill(args: &[OsString]) -> Result<Vec<String>, Error> {
    if args.is_empty() || args.len() > MAX_KILL {
        return Err(Error::Usage(format!(
            "kill takes 1 to {MAX_KILL} task ids, not {}",
            args.len()
        )));
    }
    let mut ids: Vec<String> = Vec::with_capacity(args.len());
    for a in args {
        let id = task_id(utf8(a)?)?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

fn invalid(what: &'static str, value: &[u8], why: String) -> Error {
    Error::InvalidTask {
        what,
        value: value.to_vec(),
        why,
    }
}

fn utf8(arg: &OsStr) -> Result<&str, Error> {
    arg.to_str()
        .ok_or_else(|| Error::NotUtf8(arg.as_encoded_bytes().to_vec()))
}

fn task_id(id: &str) -> Result<String, Error> {
    if policy_task::is_valid_id(id) {
        Ok(id.to_owned())
    } else {
        let why = "must match [A-Za-z0-9][A-Za-z0-9_]{0,63}".into();
        Err(invalid("task id", id.as_bytes(), why))
    }
}

/// `K=V`: `K` a plain identifier that is no start-up hook (`LD_*` and
/// [`INJECTING`]); `V` printable, no control character.
fn env_pair(arg: &OsStr) -> Result<(String, String), Error> {
    let text = utf8(arg)?;
    let bad = |why: &str| invalid("--env", text.as_bytes(), why.to_owned());
    let (key, value) = text.split_once('=').ok_or_else(|| bad("expected K=V"))?;
    let kb = key.as_bytes();
    let plain_key = !kb.is_empty()
        && kb.len() <= MAX_ENV_KEY
        && (kb[0].is_ascii_alphabetic() || kb[0] == b'_')
        && kb.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'_');
    if !plain_key {
        return Err(bad("the name must match [A-Za-z_][A-Za-z0-9_]{0,127}"));
    }
    if key.starts_with("LD_") || INJECTING.contains(&key) {
        return Err(bad("the name is a loader or shell start-up hook"));
    }
    if value.len() > MAX_ENV_VALUE || value.chars().any(char::is_control) {
        return Err(bad(
            "the value must be at most 4096 bytes without control characters",
        ));
    }
    Ok((key.to_owned(), value.to_owned()))
}

/// The program's arguments: at most [`MAX_ARGS`], each UTF-8 (systemd's
/// D-Bus strings) of at most [`MAX_ARG_BYTES`]; otherwise any bytes, since
/// they reach the program as argv, not as unit-file text.
fn arguments(args: &[OsString]) -> Result<Vec<String>, Error> {
    if args.len() > MAX_ARGS {
        let why = format!("more than {MAX_ARGS} arguments");
        return Err(invalid("arguments", b"", why));
    }
    args.iter()
        .map(|a| {
            let s = utf8(a)?;
            if s.len() > MAX_ARG_BYTES {
                let why = format!("longer than {MAX_ARG_BYTES} bytes");
                return Err(invalid("argument", &s.as_bytes()[..64], why));
            }
            Ok(s.to_owned())
        })
        .collect()
}

/// A task that passed every check: the unit and the systemd-run argv.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Started {
    /// `<app>-task-<uid>-<id>`, and with its suffix.
    pub base: String,
    pub unit: String,
    pub argv: Vec<String>,
}

/// What every task gets, scope or service: the four limits, swap off (so
/// the memory limit is the memory the task has), accounting (so
/// `systemctl show` and `unitgate tasks` report use), and at most
/// [`STOP_TIMEOUT_SECS`] between SIGTERM and SIGKILL when stopped.
fn cgroup_properties(l: &Limits) -> Vec<String> {
    vec![
        format!("CPUQuota={}%", l.cpu_percent),
        format!("MemoryMax={}", l.memory),
        "MemorySwapMax=0".into(),
        format!("TasksMax={}", l.tasks),
        format!("RuntimeMaxSec={}", l.runtime_secs),
        "CPUAccounting=yes".into(),
        "MemoryAccounting=yes".into(),
        "TasksAccounting=yes".into(),
        format!("TimeoutStopSec={STOP_TIMEOUT_SECS}"),
    ]
}

/// What only a service can take (a scope's process is not started by
/// systemd): no privilege gained through exec, a private /tmp (so a task
/// leaves no files there), the kernel's knobs read-only, its whole cgroup
/// killed on stop.
const SERVICE_PROPERTIES: &[&str] = &[
    "NoNewPrivileges=yes",
    "RestrictSUIDSGID=yes",
    "LockPersonality=yes",
    "PrivateTmp=yes",
    "ProtectKernelTunables=yes",
    "ProtectKernelModules=yes",
    "ProtectKernelLogs=yes",
    "ProtectControlGroups=yes",
    "KillMode=control-group",
];

/// The full systemd-run argv of a task of `app` run as `uid`.
pub fn start_argv(app: &str, uid: u32, req: &RunRequest, limits: &Limits) -> Started {
    let base = policy_task::unit_base(app, uid, &req.id);
    let unit = format!("{base}{}", req.kind.suffix());
    let mut argv: Vec<String> = vec![
        "systemd-run".into(),
        "--no-ask-password".into(),
        "--quiet".into(),
        format!("--unit={unit}"),
        format!("--slice={}", policy_task::SLICE),
        format!("--uid={uid}"),
        // Unloaded as soon as it ends, failed or not: a task leaves no unit
        // (and no transient file) behind, however it ended.
        "--collect".into(),
    ];
    let mut props = cgroup_properties(limits);
    match req.kind {
        Kind::Scope => argv.push("--scope".into()),
        Kind::Service => {
            argv.push("--service-type=exec".into());
            props.extend(SERVICE_PROPERTIES.iter().map(|p| (*p).to_owned()));
        }
    }
    argv.extend(props.into_iter().map(|p| format!("--property={p}")));
    argv.extend(req.env.iter().map(|(k, v)| format!("--setenv={k}={v}")));
    argv.push("--".into());
    argv.push(req.command.clone());
    argv.extend(req.args.iter().map(|a| match req.kind {
        // A transient service's command line has its `$VAR`s expanded by
        // systemd when it starts (systemd-run's --expand-environment is
        // newer than 252, and defaults to yes); `$$` is a literal `$`.
        Kind::Service => a.replace('$', "$$"),
        // A scope's program is exec'd by systemd-run itself, unexpanded.
        Kind::Scope => a.clone(),
    }));
    Started { base, unit, argv }
}

#[cfg(test)]
#[path = "task_tests.rs"]
mod tests;
