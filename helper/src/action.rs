//! The five actions and the exact systemctl argv each one becomes.

/// The only program the helper ever executes.
pub const SYSTEMCTL: &str = "/usr/bin/systemctl";

/// Options before every verb: never page, never prompt for a password.
const COMMON: &[&str] = &["--no-pager", "--no-ask-password"];

/// The fixed property list of `show`, chosen for `unitgate status`.
pub const SHOW_PROPERTIES: &str = "--property=Id,LoadState,ActiveState,SubState,UnitFileState,MainPID,\
NRestarts,Result,ActiveEnterTimestamp,InactiveEnterTimestamp,StateChangeTimestamp,MemoryCurrent,ExecMainStatus";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    Enable,
    Disable,
    Restart,
    ResetFailed,
    Show,
}

impl Action {
    pub const ALL: [Action; 5] = [
        Self::Enable,
        Self::Disable,
        Self::Restart,
        Self::ResetFailed,
        Self::Show,
    ];

    /// Whether the action changes systemd. Only those take the unit locks:
    /// a read needs no serialising, and a caller allowed only `show` must not
    /// be able to create lock files in /run.
    pub fn changes_state(self) -> bool {
        !matches!(self, Self::Show)
    }

    /// The name used on the command line and in policy files.
    pub fn name(self) -> &'static str {
        match self {
            Self::Enable => "enable",
            Self::Disable => "disable",
            Self::Restart => "restart",
            Self::ResetFailed => "reset-failed",
            Self::Show => "show",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        Self::ALL.into_iter().find(|a| a.name() == s)
    }

    /// The verb and its fixed options, all chosen by us.
    fn verb(self) -> &'static [&'static str] {
        match self {
            Self::Enable => &["enable", "--now"],
            Self::Disable => &["disable", "--now"],
            // try-restart: a running or activating unit is restarted, a
            // stopped or failed one is left alone. `restart` would start
            // any name it is given, so restarting random names could leave
            // units loaded (and failed) in PID 1; starting is `enable`'s job.
            Self::Restart => &["try-restart"],
            Self::ResetFailed => &["reset-failed"],
            Self::Show => &["show", SHOW_PROPERTIES],
        }
    }

    /// Full argv: `systemctl <common> <verb> -- UNIT...`. The `--` ends
    /// option parsing, so even a unit name starting with `-` (which the name
    /// rules already forbid) could never become an option.
    pub fn argv(self, units: &[String]) -> Vec<String> {
        let fixed = std::iter::once("systemctl").chain(COMMON.iter().copied());
        let fixed = fixed.chain(self.verb().iter().copied()).chain(["--"]);
        fixed
            .map(str::to_owned)
            .chain(units.iter().cloned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(action: Action) -> String {
        action
            .argv(&["a@1.service".into(), "a@2.service".into()])
            .join(" ")
    }

    #[test]
    fn argv_per_action() {
        let p = "systemctl --no-pager --no-ask-password";
        assert_eq!(
            argv(Action::Enable),
            format!("{p} enable --now -- a@1.service a@2.service")
        );
        assert_eq!(
            argv(Action::Disable),
            format!("{p} disable --now -- a@1.service a@2.service")
        );
        assert_eq!(
            argv(Action::Restart),
            format!("{p} try-restart -- a@1.service a@2.service")
        );
        assert_eq!(
            argv(Action::ResetFailed),
            format!("{p} reset-failed -- a@1.service a@2.service")
        );
        assert_eq!(
            argv(Action::Show),
            format!(
                "{p} show --property=Id,LoadState,ActiveState,SubState,UnitFileState,MainPID,NRestarts,Result,\
ActiveEnterTimestamp,InactiveEnterTimestamp,StateChangeTimestamp,MemoryCurrent,ExecMainStatus -- a@1.service a@2.service"
            )
        );
    }

    #[test]
    fn parse_names() {
        for a in Action::ALL {
            assert_eq!(Action::parse(a.name()), Some(a));
        }
        for bad in [
            "",
            "start",
            "stop",
            "Enable",
            "enable ",
            "reset_failed",
            "--now",
            "mask",
            "edit",
        ] {
            assert_eq!(Action::parse(bad), None);
        }
    }
}
