//! The command line, as one clap definition: parsing, the man pages
//! (`manual`), and the completion scripts and their answers at TAB time
//! (`completion`) all come from it.

use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum, ValueHint};
use clap_complete::engine::ArgValueCompleter;

use crate::completion;
use crate::manual;

/// Run the lifecycle of a templated systemd service's instances without root.
#[derive(Debug, Parser)]
#[command(name = "unitgate", version, after_help = manual::top_help(), max_term_width = 100)]
pub struct Cli {
    /// The app to drive [env: UNITGATE_APP] (default: $UNITGATE_APP, else
    /// the only app you may drive).
    // Not clap's `env =`: app::select reads UNITGATE_APP itself, so that an
    // empty value means unset and a non-UTF-8 one is a bad app name (65),
    // as the helper's rules say, rather than a usage error.
    #[arg(long, global = true, value_name = "APP", add = ArgValueCompleter::new(completion::apps))]
    pub app: Option<String>,

    /// Machine-readable output (a stable JSON schema, see `man unitgate`).
    #[arg(long, global = true)]
    pub json: bool,

    /// Set by an operator's command handed over to the app's account
    /// (docs/deploy.md, operators): read no cache the account could forge.
    #[arg(long, global = true, hide = true)]
    pub for_operator: bool,

    /// Seconds to wait for another command's lock (exit 75), and for the system bus
    /// when it is not up yet, as early in boot (exit 69), before giving up.
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = 30)]
    pub wait: u64,

    /// When to colour human output: auto (stdout is a terminal, TERM is
    /// not dumb, NO_COLOR is empty or unset), always, never. JSON never is.
    #[arg(long, global = true, value_name = "WHEN", default_value = "auto")]
    pub color: Color,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the app's install command as you (serialised by an app-wide lock).
    #[command(after_help = manual::command_help("install"))]
    Install {
        /// Passed to the install command as UNITGATE_FORCE=1 (redo work already done).
        #[arg(long)]
        force: bool,
    },
    /// Create an instance's state directory and environment file, atomically.
    #[command(visible_alias = "initialize", after_help = manual::command_help("init"))]
    Init {
        /// Instance name: 1-64 of A-Z a-z 0-9 _ -, starting with a letter or digit.
        // No completer: the name is a new one.
        instance: String,
        /// Extra variable for the instance's environment file (repeatable);
        /// --set PORT=N asks for a specific port of port_range.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// An existing instance is a success ("exists"), left as it is.
        #[arg(long)]
        exist_ok: bool,
    },
    /// Enable and start instances (survive reboot); succeeds once each runs
    /// and stays up for the settle window; a running instance is a no-op.
    #[command(after_help = manual::command_help("start"))]
    Start(Settled),
    /// Stop and disable instances (stay stopped after reboot).
    #[command(after_help = manual::command_help("stop"))]
    Stop(Instances),
    /// Restart running instances, start the others; succeeds once each
    /// runs and stays up for the settle window.
    #[command(after_help = manual::command_help("restart"))]
    Restart(Settled),
    /// Stop instances and delete their state; re-run to finish an interrupted delete.
    #[command(after_help = manual::command_help("delete"))]
    Delete {
        /// A missing instance is a success ("already deleted").
        #[arg(long)]
        missing_ok: bool,
        #[command(flatten)]
        instances: Instances,
    },
    /// Stop instances and rebuild their state from the skeleton, keeping
    /// their port and --set values (crash-safe); they stay stopped.
    #[command(after_help = manual::command_help("reset"))]
    Reset(Instances),
    /// Write instances' environment files again from the app config as it
    /// is now (ports and --set values kept); all instances when none named.
    #[command(after_help = manual::command_help("reconfigure"))]
    Reconfigure {
        /// Restart the changed instances that are running.
        #[arg(long)]
        restart: bool,
        /// Instance names (default: all).
        #[arg(add = ArgValueCompleter::new(completion::instances))]
        instances: Vec<String>,
    },
    /// Show instances (all when none named) with drift; exits 3 if a named
    /// one is not running.
    #[command(after_help = manual::command_help("status"))]
    Status {
        /// Exit 3 if any instance listed has drifted.
        #[arg(long)]
        fail_on_drift: bool,
        /// Instance names (default: all).
        #[arg(add = ArgValueCompleter::new(completion::instances))]
        instances: Vec<String>,
    },
    /// Stream state changes (JSON lines with --json); --heal restarts instances that should run but don't.
    #[command(after_help = manual::command_help("watch"))]
    Watch {
        /// Start again (reset-failed, enable) instances that are initialized and enabled but not running, with back-off.
        #[arg(long)]
        heal: bool,
        /// Seconds between full re-reads, the safety net under systemd's signals.
        #[arg(long, value_name = "SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=86400))]
        interval: u64,
    },
    /// Exec PROGRAM with an instance's environment file: the ExecStart= of
    /// an instance's unit, run as its User= (never root).
    #[command(after_help = manual::command_help("launch"))]
    Launch {
        /// The instance whose environment file to read.
        #[arg(add = ArgValueCompleter::new(completion::instances))]
        instance: String,
        /// The program (absolute path) and its arguments, after `--`;
        /// ${NAME} in an argument is replaced by NAME from the environment file.
        #[arg(last = true, required = true, value_name = "PROGRAM", value_hint = ValueHint::ExecutablePath)]
        command: Vec<std::ffi::OsString>,
    },
    /// Run a program of the app's [tasks] as you, in a transient unit with
    /// limits; waits for it and exits with its status.
    #[command(after_help = manual::command_help("run"))]
    Run(RunArgs),
    /// Stop tasks of yours that `run` started.
    #[command(after_help = manual::command_help("kill"))]
    Kill {
        /// Task ids.
        #[arg(required = true, value_name = "TASK")]
        tasks: Vec<String>,
    },
    /// Set instances' CPU, memory and task limits (at once, kept across
    /// reboots), within the app's [limits]; --reset removes them.
    #[command(after_help = manual::command_help("limit"))]
    Limit(LimitArgs),
    /// List your tasks of the app that systemd has loaded, with their limits.
    #[command(after_help = manual::command_help("tasks"))]
    Tasks,
    /// Show an instance's or a task's journal (with --json: the journal's
    /// JSON, one object per line).
    #[command(after_help = manual::command_help("logs"))]
    Logs {
        /// The instance whose journal to show.
        #[arg(
            required_unless_present = "task",
            conflicts_with = "task",
            add = ArgValueCompleter::new(completion::instances)
        )]
        instance: Option<String>,
        /// A task of yours instead of an instance.
        #[arg(long, value_name = "TASK")]
        task: Option<String>,
        /// Follow the journal.
        #[arg(short, long)]
        follow: bool,
        /// Number of lines to show.
        #[arg(short = 'n', long, value_name = "N", default_value_t = 50)]
        lines: u32,
    },
    /// Print the shell code that completes unitgate's commands, options,
    /// app and instance names (it asks unitgate at each TAB).
    #[command(after_help = manual::command_help("completions"))]
    Completions {
        /// The shell to complete in.
        shell: Shell,
    },
    /// Print the man page unitgate(1) (roff), or write every page into a
    /// directory.
    #[command(after_help = manual::command_help("man"))]
    Man(ManArgs),
    /// Write a hardened unit template, app config and skeleton for a new app
    /// into a directory for review (never into /etc).
    #[command(after_help = manual::command_help("new-app"))]
    NewApp(NewAppArgs),
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write unitgate.1 and one page per command (unitgate-start.1, …)
    /// into DIR (created if missing) instead of printing unitgate(1).
    #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub dir: Option<PathBuf>,
    /// The installation prefix the pages name files under (the JSON
    /// schema, the documentation); default: the one this executable is in.
    #[arg(long, value_name = "PREFIX", value_hint = ValueHint::DirPath)]
    pub prefix: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct NewAppArgs {
    /// App name: names the unit NAME@.service and the config NAME.toml.
    pub name: String,
    /// The command each instance runs (absolute path, or found in PATH now);
    /// may use ${PORT}, ${INSTANCE} and other variables of the instance's environment file.
    #[arg(long, value_name = "CMD", value_hint = ValueHint::CommandString)]
    pub exec: String,
    /// Service account the instances run as (default: the app name).
    #[arg(long, value_name = "USER", value_hint = ValueHint::Username)]
    pub user: Option<String>,
    /// Allocate one port per instance from LOW-HIGH (implies --network inet).
    #[arg(long, value_name = "LOW-HIGH")]
    pub port_range: Option<String>,
    /// MemoryMax= per instance (default 512M).
    #[arg(long, value_name = "SIZE")]
    pub memory_max: Option<String>,
    /// CPUQuota= per instance (default 100%).
    #[arg(long, value_name = "PERCENT")]
    pub cpu_quota: Option<String>,
    /// TasksMax= per instance (default 256).
    #[arg(long, value_name = "N")]
    pub tasks_max: Option<u32>,
    /// Network access: none (default without --port-range) or inet.
    // A list, so that completion offers it and clap refuses anything else
    // as a usage error; scaffold still parses the string.
    #[arg(long, value_name = "NETWORK", value_parser = ["none", "inet"])]
    pub network: Option<String>,
    /// What the service needs beyond the sandbox: x11 (an X display's
    /// socket), tmux (the account's tmux server), inet-in (listens),
    /// inet-out (connects out, never listens); repeat or separate with commas.
    #[arg(long, value_name = "PROFILE", value_delimiter = ',',
          value_parser = clap::builder::PossibleValuesParser::new(crate::scaffold::Profile::NAMES))]
    pub profile: Vec<String>,
    /// Directory to write the app's directory into.
    #[arg(long, value_name = "DIR", default_value = ".", value_hint = ValueHint::DirPath)]
    pub dir: PathBuf,
}

/// Instances to start, and how long each must stay up.
#[derive(Debug, Args)]
pub struct Settled {
    /// Seconds each instance must stay up (running, not restarted) to count
    /// as started; 0: one look. Default: the app's `settle` (2).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(0..=600))]
    pub settle: Option<u64>,
    #[command(flatten)]
    pub instances: Instances,
}

/// `run`'s options.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Task id: 1-64 of A-Z a-z 0-9 _, starting with a letter or digit
    /// (default: a new one, printed by --detach).
    #[arg(long, value_name = "ID")]
    pub name: Option<String>,
    /// CPU, in percent of one CPU (CPUQuota=); default: the app's maximum.
    #[arg(long, value_name = "PCT")]
    pub cpu: Option<String>,
    /// Memory (MemoryMax=, swap off), e.g. 512M; default: the app's maximum.
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<String>,
    /// Processes and threads (TasksMax=); default: the app's maximum.
    #[arg(long, value_name = "N")]
    pub tasks: Option<String>,
    /// Seconds the task may run (RuntimeMaxSec=); default: the app's maximum.
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<String>,
    /// A variable for the task's environment (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Run in a scope: the task is this command's child, with its stdin,
    /// stdout and stderr, and ends when this command is stopped.
    #[arg(long, conflicts_with = "detach")]
    pub scope: bool,
    /// Return once the task started, printing its id.
    #[arg(long)]
    pub detach: bool,
    /// The program (an absolute path the app's [tasks] lists) and its
    /// arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND", value_hint = ValueHint::ExecutablePath)]
    pub command: Vec<std::ffi::OsString>,
}

/// `limit`'s options.
#[derive(Debug, Args)]
pub struct LimitArgs {
    /// CPU, in percent of one CPU (CPUQuota=), e.g. 50 or 200.
    #[arg(long, value_name = "PCT")]
    pub cpu: Option<String>,
    /// Memory (MemoryMax=), e.g. 512M.
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<String>,
    /// Processes and threads (TasksMax=).
    #[arg(long, value_name = "N")]
    pub tasks: Option<String>,
    /// Remove the limits `limit` set (the unit file's own apply again).
    #[arg(long, conflicts_with_all = ["cpu", "memory", "tasks"])]
    pub reset: bool,
    /// Instance names.
    #[arg(required = true, add = ArgValueCompleter::new(completion::instances))]
    pub instances: Vec<String>,
}

#[derive(Debug, Args)]
pub struct Instances {
    /// Instance names.
    #[arg(required = true, add = ArgValueCompleter::new(completion::instances))]
    pub instances: Vec<String>,
}

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Color {
    // Undocumented variants: `--help` shows the three as one list.
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    Elvish,
    Powershell,
}

/// The whole definition, built (global options propagated to every
/// subcommand, subcommands named `unitgate-<name>`), as the man pages and
/// completion see it.
pub fn command() -> clap::Command {
    let mut cmd = Cli::command();
    cmd.build();
    cmd
}

/// `--color WHEN` or `--color=WHEN` among raw arguments (the last one
/// wins, as in parsing), for output printed before parsing finished:
/// `--help`. Anything unreadable is `auto`.
pub fn color_in_args(args: impl IntoIterator<Item = std::ffi::OsString>) -> Color {
    let args: Vec<std::ffi::OsString> = args.into_iter().collect();
    let mut choice = Color::Auto;
    let mut i = 1;
    while i < args.len() {
        let Some(a) = args[i].to_str() else {
            i += 1;
            continue;
        };
        if a == "--" {
            break;
        }
        let value = match a.strip_prefix("--color") {
            Some("") => {
                i += 1;
                args.get(i).and_then(|v| v.to_str())
            }
            Some(v) => v.strip_prefix('='),
            None => None,
        };
        if let Some(c) = value.and_then(|v| Color::from_str(v, false).ok()) {
            choice = c;
        }
        i += 1;
    }
    choice
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definition_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn parses_globals_anywhere_and_the_alias() {
        let cli = Cli::try_parse_from([
            "unitgate",
            "initialize",
            "a",
            "--app",
            "demo",
            "--set",
            "K=v",
        ])
        .unwrap();
        assert_eq!(cli.app.as_deref(), Some("demo"));
        assert!(
            matches!(cli.command, Command::Init { ref instance, ref set, exist_ok: false } if instance == "a" && set == &["K=v"])
        );
        let cli = Cli::try_parse_from(["unitgate", "start", "--settle", "0", "a"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Start(Settled {
                settle: Some(0),
                ..
            })
        ));
        let cli =
            Cli::try_parse_from(["unitgate", "--json", "--wait", "5", "start", "1", "2"]).unwrap();
        assert!(cli.json);
        assert_eq!(cli.wait, 5);
        assert!(Cli::try_parse_from(["unitgate", "start"]).is_err());
    }

    #[test]
    fn color_is_found_before_parsing() {
        let c = |a: &[&str]| color_in_args(a.iter().map(std::ffi::OsString::from));
        assert_eq!(c(&["unitgate", "--help"]), Color::Auto);
        assert_eq!(
            c(&["unitgate", "--color", "always", "--help"]),
            Color::Always
        );
        assert_eq!(
            c(&["unitgate", "start", "--help", "--color=never"]),
            Color::Never
        );
        assert_eq!(c(&["unitgate", "--color=bogus", "--help"]), Color::Auto);
        assert_eq!(
            c(&["unitgate", "launch", "a", "--", "--color=never"]),
            Color::Auto
        );
    }

    #[test]
    fn network_is_a_closed_list_and_color_is_global() {
        assert!(Cli::try_parse_from([
            "unitgate",
            "new-app",
            "x",
            "--exec",
            "/bin/true",
            "--network",
            "wifi"
        ])
        .is_err());
        let cli = Cli::try_parse_from(["unitgate", "status", "--color", "never"]).unwrap();
        assert_eq!(cli.color, Color::Never);
        assert_eq!(
            Cli::try_parse_from(["unitgate", "status"]).unwrap().color,
            Color::Auto
        );
    }
}
