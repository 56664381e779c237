//! `install`: the app's install command, run as the caller (never root)
//! with the app-wide lock held, its output relayed as it comes (see
//! [`relay`] for why not on our terminal).

use std::process::Command;
use std::time::{Duration, Instant};

use crate::app::App;
use crate::error::{Error, Result};
use crate::lock::Waiter;
use crate::output::{note, Output};
use crate::relay;
use crate::store::Store;

/// How often a long install says it is still working.
const PROGRESS_EVERY: Duration = Duration::from_secs(15);

pub fn run(app: &App, waiter: Waiter, force: bool, out: Output) -> Result<()> {
    let Some(argv) = &app.install_command else {
        return if out.json {
            out.json(&serde_json::json!({"installed": false, "reason": "no install_command"}))
        } else {
            out.text(&format!(
                "{}: no install_command configured; nothing to do\n",
                app.name
            ))
        };
    };
    // The install command is the app's own code: it runs as the caller,
    // never as root (root would leave root-owned files the service account
    // cannot update, and would run app code with every privilege). Root
    // got here only if root alone controls the state directory.
    if nix::unistd::geteuid().is_root() {
        return Err(Error::NotPermitted {
            what: "`unitgate install` does not run the install command as root".into(),
            hint: "run it as the app's service account, e.g. `sudo -u ACCOUNT unitgate install`"
                .into(),
        });
    }
    crate::walk::check_program(std::path::Path::new(&argv[0]), "install_command")?;
    let store = Store::open_or_create(app)?;
    let _lock = waiter.app(&store)?;
    let began = Instant::now();
    if !out.json {
        note(&format!(
            "unitgate: installing {}: {}",
            app.name,
            argv.join(" ")
        ));
    }
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .env("UNITGATE_APP", &app.name)
        .env("UNITGATE_STATE_DIR", &app.state_dir)
        .env("UNITGATE_FORCE", if force { "1" } else { "0" });
    // With --json, stdout is for the JSON document; the command's goes to stderr.
    let to = if out.json {
        relay::Out::Stderr
    } else {
        relay::Out::Stdout
    };
    let running = relay::spawn(cmd, to).map_err(|e| Error::Config {
        what: format!("cannot run install_command {}: {e}", argv[0]),
        hint: format!("fix install_command in {}", app.config_path.display()),
    })?;
    // Downloads such as SteamCMD's can be silent for minutes.
    let status = running
        .wait(PROGRESS_EVERY, || {
            note(&format!(
                "unitgate: installing {}: still running after {:.0} s",
                app.name,
                began.elapsed().as_secs_f64()
            ))
        })
        .map_err(|e| Error::io("waiting for the install command", e))?;
    let secs = began.elapsed().as_secs_f64();
    if !status.success() {
        let how = match status.code() {
            Some(c) => format!("exit {c}"),
            None => "a signal".to_owned(),
        };
        return Err(Error::Failed {
            what: format!(
                "the install command {} failed with {how} after {secs:.1} s",
                argv[0]
            ),
            hint: "fix what it printed above, then re-run `unitgate install`".into(),
        });
    }
    if out.json {
        out.json(&serde_json::json!({"installed": true, "seconds": secs}))
    } else {
        note(&format!("unitgate: installed {} in {secs:.1} s", app.name));
        Ok(())
    }
}
