//! unitgate: the host CLI.
//!
//! Runs as the app's service account (or any caller the app lists), owns
//! the instance state directories, drives systemd only through the
//! privileged helper `unitgate-systemctl`, and reads state straight from
//! systemd over D-Bus. Every failure is an [`error::Error`] value that
//! [`main`] prints as one line and turns into the exit code.

pub mod account;
pub mod app;
pub mod cli;
pub mod dirfd;
pub mod envfile;
pub mod error;
pub mod helper;
pub mod instance;
pub mod launch;
pub mod lifecycle;
pub mod lock;
pub mod logs;
pub mod relay;
pub mod scaffold;
pub mod status;
pub mod system;
pub mod systemd;
pub mod walk;
pub mod watch;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use cli::{Cli, Command};
use error::{Error, Result};
use lock::Waiter;

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                error::code::USAGE
            } else {
                error::code::OK
            });
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(msg) = e.message() {
                eprintln!("unitgate: {msg}");
            }
            ExitCode::from(e.code())
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let waiter = Waiter {
        timeout: Duration::from_secs(cli.wait),
    };
    let json = cli.json;
    // Commands that need no app first.
    match &cli.command {
        Command::Completions { shell } => {
            cli::completions(*shell, &mut std::io::stdout());
            return Ok(());
        }
        Command::Man => {
            return cli::man_page(&mut std::io::stdout())
                .map_err(|e| Error::io("cannot write the man page", e));
        }
        Command::NewApp(args) => return new_app(args),
        // Before anything changes the process: the program inherits it.
        Command::Launch { instance, command } => {
            let app = app::select(cli.app.as_deref())?;
            return launch::run(&app, instance, command);
        }
        _ => {}
    }
    // A bulk command holds one lock file per instance: 1000 must fit.
    system::raise_fd_limit();
    let app = app::select(cli.app.as_deref())?;
    if !matches!(cli.command, Command::Logs { .. }) {
        // Root acts on an app's state only as the account that controls it.
        account::act_for_state_of(&app)?;
    }
    match cli.command {
        Command::Install { force } => lifecycle::install(&app, waiter, force, json),
        Command::Init { instance, set } => lifecycle::init(&app, waiter, &instance, &set, json),
        Command::Start(i) => lifecycle::start(&app, waiter, &i.instances, json),
        Command::Stop(i) => lifecycle::stop(&app, waiter, &i.instances, json),
        Command::Restart(i) => lifecycle::restart(&app, waiter, &i.instances, json),
        Command::Delete(i) => lifecycle::delete(&app, waiter, &i.instances, json),
        Command::Status { instances } => status_command(&app, &instances, json),
        Command::Watch { heal, interval } => watch::run(
            &app,
            watch::Options {
                json,
                heal,
                interval: Duration::from_secs(interval),
            },
        ),
        Command::Logs {
            instance,
            follow,
            lines,
        } => {
            app.check_instance(&instance)?;
            logs::show(&app, &instance, follow, lines)
        }
        Command::Completions { .. }
        | Command::Man
        | Command::NewApp(_)
        | Command::Launch { .. } => unreachable!("handled above"),
    }
}

fn new_app(args: &cli::NewAppArgs) -> Result<()> {
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
    };
    let dir = scaffold::run(&opts, &args.dir)?;
    print!("{}", scaffold::next_steps(&opts, &dir));
    Ok(())
}

fn status_command(app: &app::App, names: &[String], json: bool) -> Result<()> {
    let names = if names.is_empty() {
        None
    } else {
        Some(lifecycle::check_names(app, names)?)
    };
    let rows = status::collect(app, names.as_deref())?;
    if json {
        println!("{}", status::to_json(app, &rows));
    } else {
        print!(
            "{}",
            status::render_table(&rows, status::now_usec(), status::use_colour())
        );
    }
    match names {
        Some(_) => status::named_outcome(&rows),
        None => Ok(()),
    }
}
