//! The exact systemctl argv each of the five actions becomes (the actions
//! themselves, and their names, are the policy crate's).

/// The only program the helper ever executes.
pub const SYSTEMCTL: &str = "/usr/bin/systemctl";

/// Options before every verb: never page, never prompt for a password.
const COMMON: &[&str] = &["--no-pager", "--no-ask-password"];

/// The fixed property list of `show`: what a caller with only `show` may
/// learn about an instance (the CLI reads systemd over D-Bus instead).
pub const SHOW_PROPERTIES: &str = "--property=Id,LoadState,ActiveState,SubState,UnitFileState,MainPID,\
NRestarts,Result,ActiveEnterTimestamp,InactiveEnterTimestamp,StateChangeTimestamp,MemoryCurrent,ExecMainStatus";

pub use unitgate_policy::action::Action;

/// How an `enable` or `disable` gets systemd to re-read its enable links.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reload {
    /// systemctl's own `daemon-reload` at the end of the call (an app
    /// without unitgate's guard drop-in).
    Now,
    /// Left to unitgate-reload.service: `enable --no-reload --now`, and for
    /// `disable` the helper removes the links itself and systemctl only
    /// stops (see docs/design/constant-cost.md).
    Deferred,
    /// Deferred, and for `enable` the helper makes the links itself too
    /// (the template's file is where the link's target is certain, see
    /// `unit_file.rs`): systemctl only starts.
    Linked,
}

impl Reload {
    /// Whether unitgate-reload.service does the daemon-reload.
    pub fn is_deferred(self) -> bool {
        self != Reload::Now
    }
}

/// The verb and its fixed options, all chosen by us.
fn verb(action: Action, reload: Reload) -> &'static [&'static str] {
    match (action, reload) {
        (Action::Enable, Reload::Deferred) => &["enable", "--no-reload", "--now"],
        (Action::Enable, Reload::Linked) => &["start"],
        (Action::Disable, Reload::Deferred | Reload::Linked) => &["stop"],
        (Action::Enable, Reload::Now) => &["enable", "--now"],
        (Action::Disable, Reload::Now) => &["disable", "--now"],
        // try-restart: a running or activating unit is restarted, a
        // stopped or failed one is left alone. `restart` would start any
        // name it is given, so restarting random names could leave units
        // loaded (and failed) in PID 1; starting is `enable`'s job.
        (Action::Restart, _) => &["try-restart"],
        (Action::ResetFailed, _) => &["reset-failed"],
        (Action::Show, _) => &["show", SHOW_PROPERTIES],
    }
}

/// Full argv: `systemctl <common> <verb> -- UNIT...`. The `--` ends option
/// parsing, so even a unit name starting with `-` (which the name rules
/// already forbid) could never become an option.
pub fn argv(action: Action, reload: Reload, units: &[String]) -> Vec<String> {
    let fixed = std::iter::once("systemctl").chain(COMMON.iter().copied());
    let fixed = fixed
        .chain(verb(action, reload).iter().copied())
        .chain(["--"]);
    fixed
        .map(str::to_owned)
        .chain(units.iter().cloned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(action: Action) -> String {
        argv(
            action,
            Reload::Now,
            &["a@1.service".into(), "a@2.service".into()],
        )
        .join(" ")
    }

    #[test]
    fn a_deferred_reload_changes_only_enable_and_disable() {
        let units = ["a@1.service".to_owned()];
        let line = |a| argv(a, Reload::Deferred, &units).join(" ");
        let p = "systemctl --no-pager --no-ask-password";
        assert_eq!(
            line(Action::Enable),
            format!("{p} enable --no-reload --now -- a@1.service")
        );
        assert_eq!(line(Action::Disable), format!("{p} stop -- a@1.service"));
        let linked = |a| argv(a, Reload::Linked, &units).join(" ");
        assert_eq!(linked(Action::Enable), format!("{p} start -- a@1.service"));
        assert_eq!(linked(Action::Disable), format!("{p} stop -- a@1.service"));
        for a in [Action::Restart, Action::ResetFailed, Action::Show] {
            assert_eq!(line(a), argv(a, Reload::Now, &units).join(" "));
            assert_eq!(linked(a), argv(a, Reload::Now, &units).join(" "));
        }
    }

    #[test]
    fn argv_per_action() {
        let p = "systemctl --no-pager --no-ask-password";
        assert_eq!(
            line(Action::Enable),
            format!("{p} enable --now -- a@1.service a@2.service")
        );
        assert_eq!(
            line(Action::Disable),
            format!("{p} disable --now -- a@1.service a@2.service")
        );
        assert_eq!(
            line(Action::Restart),
            format!("{p} try-restart -- a@1.service a@2.service")
        );
        assert_eq!(
            line(Action::ResetFailed),
            format!("{p} reset-failed -- a@1.service a@2.service")
        );
        assert_eq!(
            line(Action::Show),
            format!(
                "{p} show --property=Id,LoadState,ActiveState,SubState,UnitFileState,MainPID,NRestarts,Result,\
ActiveEnterTimestamp,InactiveEnterTimestamp,StateChangeTimestamp,MemoryCurrent,ExecMainStatus -- a@1.service a@2.service"
            )
        );
    }
}
