//! The command line, as one clap definition: parsing, `completions` and the
//! man page all come from it.

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

const AFTER_HELP: &str = "\
Exit status:
  0 ok; 1 systemctl failed; 3 status: a named instance is not running (or,
  with --fail-on-drift, one drifted); 4 start/restart: an instance did not
  come up or stay up for the settle window (stop/delete/reset: did not stop);
  64 usage; 65 invalid app or instance name; 66 no such instance;
  69 helper, sudo or systemd unavailable; 73 instance exists;
  75 busy (lock wait timed out; retry); 77 not permitted; 78 app config problem.
Bulk commands print one result per instance and exit with the first failure's code.

--json: every command prints exactly one JSON document; a failure is
{\"error\": {\"kind\", \"code\", \"message\", \"hint\"}} with a stable kind.
Schemas: docs/schema/unitgate.schema.json.

Examples:
  unitgate init web1 --set MAP=c1m1_hotel && unitgate start web1
  unitgate --json status | jq '.instances[] | select(.drift != null)'
  unitgate status --fail-on-drift || alert

App: --app, else $UNITGATE_APP, else the only app you may drive.
App config: /etc/unitgate/apps/<app>.toml (see `man unitgate`).";

/// Run the lifecycle of a templated systemd service's instances without root.
#[derive(Debug, Parser)]
#[command(name = "unitgate", version, about, after_help = AFTER_HELP, max_term_width = 100)]
pub struct Cli {
    /// The app to drive (default: $UNITGATE_APP, else the only app you may drive).
    #[arg(long, global = true, value_name = "APP")]
    pub app: Option<String>,

    /// Machine-readable output (a stable JSON schema, see `man unitgate`).
    #[arg(long, global = true)]
    pub json: bool,

    /// Seconds to wait for another command's lock before giving up with exit 75.
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = 30)]
    pub wait: u64,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the app's install command as you (serialised by an app-wide lock).
    Install {
        /// Passed to the install command as UNITGATE_FORCE=1 (redo work already done).
        #[arg(long)]
        force: bool,
    },
    /// Create an instance's state directory and environment file, atomically.
    #[command(visible_alias = "initialize")]
    Init {
        /// Instance name: 1-64 of A-Z a-z 0-9 _ -, starting with a letter or digit.
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
    Start(Settled),
    /// Stop and disable instances (stay stopped after reboot).
    Stop(Instances),
    /// Restart running instances, start the others; succeeds once each
    /// runs and stays up for the settle window.
    Restart(Settled),
    /// Stop instances and delete their state; re-run to finish an interrupted delete.
    Delete {
        /// A missing instance is a success ("already deleted").
        #[arg(long)]
        missing_ok: bool,
        #[command(flatten)]
        instances: Instances,
    },
    /// Stop instances and rebuild their state from the skeleton, keeping
    /// their port and --set values (crash-safe); they stay stopped.
    Reset(Instances),
    /// Write instances' environment files again from the app config as it
    /// is now (ports and --set values kept); all instances when none named.
    Reconfigure {
        /// Restart the changed instances that are running.
        #[arg(long)]
        restart: bool,
        /// Instance names (default: all).
        instances: Vec<String>,
    },
    /// Show instances (all when none named) with drift; exits 3 if a named
    /// one is not running.
    Status {
        /// Exit 3 if any instance listed has drifted.
        #[arg(long)]
        fail_on_drift: bool,
        instances: Vec<String>,
    },
    /// Stream state changes (JSON lines with --json); --heal restarts instances that should run but don't.
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
    Launch {
        /// The instance whose environment file to read.
        instance: String,
        /// The program (absolute path) and its arguments, after `--`;
        /// ${NAME} in an argument is replaced by NAME from the environment file.
        #[arg(last = true, required = true, value_name = "PROGRAM")]
        command: Vec<std::ffi::OsString>,
    },
    /// Show an instance's journal.
    Logs {
        instance: String,
        /// Follow the journal.
        #[arg(short, long)]
        follow: bool,
        /// Number of lines to show.
        #[arg(short = 'n', long, value_name = "N", default_value_t = 50)]
        lines: u32,
    },
    /// Print a shell completion script.
    Completions { shell: Shell },
    /// Print the man page (roff) to stdout.
    Man,
    /// Write a hardened unit template, app config and skeleton for a new app
    /// into a directory for review (never into /etc).
    NewApp(NewAppArgs),
}

#[derive(Debug, Args)]
pub struct NewAppArgs {
    /// App name: names the unit NAME@.service and the config NAME.toml.
    pub name: String,
    /// The command each instance runs (absolute path, or found in PATH now);
    /// may use ${PORT}, ${INSTANCE} and other variables of the instance's environment file.
    #[arg(long, value_name = "CMD")]
    pub exec: String,
    /// Service account the instances run as (default: the app name).
    #[arg(long, value_name = "USER")]
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
    #[arg(long, value_name = "none|inet")]
    pub network: Option<String>,
    /// Directory to write the app's directory into.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub dir: std::path::PathBuf,
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

#[derive(Debug, Args)]
pub struct Instances {
    /// Instance names.
    #[arg(required = true)]
    pub instances: Vec<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    Elvish,
    Powershell,
}

pub fn command() -> clap::Command {
    Cli::command()
}

pub fn completions(shell: Shell, out: &mut dyn std::io::Write) {
    use clap_complete::Shell as S;
    let s = match shell {
        Shell::Bash => S::Bash,
        Shell::Zsh => S::Zsh,
        Shell::Fish => S::Fish,
        Shell::Elvish => S::Elvish,
        Shell::Powershell => S::PowerShell,
    };
    clap_complete::generate(s, &mut command(), "unitgate", out);
}

pub fn man_page(out: &mut dyn std::io::Write) -> std::io::Result<()> {
    clap_mangen::Man::new(command()).render(out)
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
    fn completions_and_man_page_render() {
        let mut buf = Vec::new();
        completions(Shell::Bash, &mut buf);
        assert!(String::from_utf8_lossy(&buf).contains("unitgate"));
        let mut man = Vec::new();
        man_page(&mut man).unwrap();
        let man = String::from_utf8_lossy(&man);
        assert!(
            man.contains(".TH unitgate") && man.contains("status"),
            "{man}"
        );
    }
}
