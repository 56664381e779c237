//! unitgate: the host CLI.
//!
//! Runs as the app's service account (or any caller the app lists), owns
//! the instance state directories, drives systemd only through the
//! privileged helper `unitgate-systemctl`, and reads state straight from
//! systemd over D-Bus. Every command returns a value; [`main`] is the one
//! place that turns a failure into its stderr line, its exit code and,
//! under `--json`, its `{"error": …}` document.

#![deny(unsafe_code)]

pub mod account;
pub mod app;
pub mod cli;
pub mod completion;
pub mod dirfd;
pub mod envfile;
pub mod error;
pub mod handover;
pub mod helper;
pub mod install;
pub mod instance_limits;
pub mod launch;
pub mod lifecycle;
pub mod lock;
pub mod logs;
pub mod manual;
pub mod name;
pub mod output;
pub mod relay;
pub mod scaffold;
pub mod snapshot;
pub mod status;
pub mod store;
pub mod system;
pub mod systemd;
pub mod task;
pub mod unit;
pub mod walk;
pub mod watch;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use cli::{Cli, Command};
use error::{Error, Result};
use lifecycle::plan::Verb;
use lifecycle::Context;
use lock::Waiter;
use output::{note, Output};

pub fn main() -> ExitCode {
    // A TAB in the shell: the answer is all that may be printed.
    if completion::requested() {
        return completion::run();
    }
    let json = std::env::args_os().skip(1).any(|a| a == "--json");
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version: the text on stdout, a closed pipe
            // quiet, coloured as --color (looked for by hand: parsing
            // stopped at --help) says.
            output::set_colour(cli::color_in_args(std::env::args_os()));
            let text = e.render().ansi().to_string();
            return finish(Output { json: false }.text(&text));
        }
        Err(e) => {
            // One line, like every other error: clap's first line, without
            // its usage block (`--help` has it).
            let msg = e.render().to_string();
            let line = msg.lines().next().unwrap_or("invalid command line");
            let err = Error::usage(
                line.trim_start_matches("error: ").to_owned(),
                "see `unitgate --help`",
            );
            if json {
                let _ = Output { json }.json(&serde_json::json!({ "error": err.to_json() }));
            }
            return finish(Err(err));
        }
    };
    output::set_colour(cli.color);
    if cli.for_operator {
        systemd::distrust_cache();
    }
    let out = Output { json: cli.json };
    let result = run(cli, out);
    if let Err(e) = &result {
        if out.json && e.needs_document() {
            if let Err(Error::ClosedPipe) = out.json(&serde_json::json!({ "error": e.to_json() })) {
                return ExitCode::SUCCESS;
            }
        }
    }
    finish(result)
}

/// The exit: 0, or the error's line on stderr and its code. A closed
/// stdout ends a command quietly with 0, as `head` expects.
fn finish(result: Result<()>) -> ExitCode {
    match result {
        Ok(()) | Err(Error::ClosedPipe) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(msg) = e.message() {
                note(&format!("unitgate: {msg}"));
            }
            ExitCode::from(e.code())
        }
    }
}

fn run(cli: Cli, out: Output) -> Result<()> {
    let waiter = Waiter {
        timeout: Duration::from_secs(cli.wait),
    };
    // Commands that need no app first.
    match &cli.command {
        // Their output is a script and roff, not data: --json would be
        // ignored, so it is refused.
        Command::Completions { .. } | Command::Man(_) if out.json => {
            return Err(Error::usage(
                "--json does not apply to `completions` and `man`",
                "run it without --json",
            ))
        }
        Command::Completions { shell } => {
            return output::through(|buf| completion::script(*shell, buf))
        }
        Command::Man(args) => return man(args, out),
        Command::NewApp(args) => return new_app(args, out),
        // Before anything changes the process: the program inherits it.
        Command::Launch { instance, command } => {
            let app = app::select(cli.app.as_deref())?;
            // What launch reads and runs is the account's: never as an
            // operator (the account would choose what they run).
            if let Some(account) = account::other_controller_of(&app)? {
                return Err(Error::NotPermitted {
                    what: format!(
                        "launch runs what the instance's files say, and the files of app '{}' belong to uid {account}: not as you",
                        app.name
                    ),
                    hint: "launch is for the unit's ExecStart=, which runs as the account".into(),
                });
            }
            return launch::run(&app, instance, command);
        }
        _ => {}
    }
    // A bulk command holds one lock file per instance: 1000 must fit.
    system::raise_fd_limit();
    let app = app::select(cli.app.as_deref())?;
    // Tasks and logs touch no state directory.
    if !matches!(
        cli.command,
        Command::Logs { .. } | Command::Run(_) | Command::Kill { .. } | Command::Tasks
    ) {
        // Root acts on an app's state only as the account that controls it.
        account::act_for_state_of(&app)?;
        // An operator's command runs as that account, once the operator
        // is known to be among the app's callers.
        if let Some(account) = account::other_controller_of(&app)? {
            app::check_may_drive(&app::caller()?, &app)?;
            return handover::run_as(account, &app, cli.app.is_some());
        }
    }
    // Judged before anything is touched: a caller the app does not list
    // is told so, not that some directory is unreadable.
    app::check_may_drive(&app::caller()?, &app)?;
    let cx = |settle: Option<u64>| Context {
        app: &app,
        waiter,
        settle: settle.map_or(app.settle, Duration::from_secs),
        out,
    };
    match cli.command {
        Command::Install { force } => install::run(&app, waiter, force, out),
        Command::Init {
            instance,
            set,
            exist_ok,
        } => lifecycle::state::init(&cx(None), &instance, &set, exist_ok),
        Command::Start(s) => lifecycle::run(&cx(s.settle), Verb::Start, &s.instances.instances),
        Command::Stop(i) => lifecycle::run(&cx(None), Verb::Stop, &i.instances),
        Command::Restart(s) => lifecycle::run(&cx(s.settle), Verb::Restart, &s.instances.instances),
        Command::Delete {
            missing_ok,
            instances,
        } => lifecycle::run(&cx(None), Verb::Delete { missing_ok }, &instances.instances),
        Command::Reset(i) => lifecycle::run(&cx(None), Verb::Reset, &i.instances),
        Command::Reconfigure { restart, instances } => {
            lifecycle::state::reconfigure(&cx(None), &instances, restart)
        }
        Command::Status {
            fail_on_drift,
            instances,
        } => status::run(&app, out, waiter.timeout, &instances, fail_on_drift),
        Command::Watch { heal, interval } => watch::run(
            &cx(None),
            watch::Options {
                heal,
                interval: Duration::from_secs(interval),
            },
        ),
        Command::Run(args) => task::run(&app, &args, waiter.timeout, out),
        Command::Kill { tasks } => task::kill(&app, &tasks, waiter.timeout, out),
        Command::Tasks => task::list(&app, out),
        Command::Limit(args) => {
            let req = instance_limits::Request {
                cpu: args.cpu,
                memory: args.memory,
                tasks: args.tasks,
                reset: args.reset,
            };
            instance_limits::run(&app, &args.instances, &req, waiter, out)
        }
        Command::Logs {
            instance,
            task,
            follow,
            lines,
        } => {
            let unit = match (instance, task) {
                (Some(i), _) => app.unit(&app.instance(&i)?),
                (None, Some(t)) => task::TaskId::parse(&t)?.units_glob(&app),
                (None, None) => unreachable!("clap requires one"),
            };
            logs::show(&unit, follow, lines, out.json)
        }
        Command::Completions { .. }
        | Command::Man(_)
        | Command::NewApp(_)
        | Command::Launch { .. } => unreachable!("handled above"),
    }
}

fn man(args: &cli::ManArgs, out: Output) -> Result<()> {
    let prefix = args.prefix.clone().unwrap_or_else(manual::default_prefix);
    match &args.dir {
        None => output::through(|buf| {
            buf.extend(manual::main_page_only(&prefix)?);
            Ok(())
        }),
        Some(dir) => {
            let written = manual::write_pages(dir, &prefix)
                .map_err(|e| Error::io_path("write the man pages into", dir, e))?;
            let list: String = written
                .iter()
                .map(|p| format!("{}\n", p.display()))
                .collect();
            out.text(&list)
        }
    }
}

fn new_app(args: &cli::NewAppArgs, out: Output) -> Result<()> {
    let opts = scaffold::NewApp {
        name: args.name.clone(),
        exec: args.exec.clone(),
        user: args.user.clone(),
        port_range: args
            .port_range
            .as_deref()
            .map(scaffold::parse_port_range)
            .transpose()?,
        memory_max: args.memory_max.clone(),
        cpu_quota: args.cpu_quota.clone(),
        tasks_max: args.tasks_max,
        network: args.network.as_deref().map(str::parse).transpose()?,
        profiles: args
            .profile
            .iter()
            .map(|p| p.parse())
            .collect::<Result<_>>()?,
    };
    let dir = scaffold::run(&opts, &args.dir)?;
    let score = scaffold::score::measure(&dir, &opts.name, &manual::default_prefix());
    if out.json {
        return out.json(&serde_json::json!({
            "app": opts.name,
            "dir": dir,
            "score": score.as_ref().ok(),
        }));
    }
    out.text(&scaffold::next_steps(&opts, &dir, &score))
}
