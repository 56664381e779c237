//! The five actions a policy can allow, by the names both the policy files
//! and the helper's command line use. What each becomes for systemctl is
//! the helper's business.

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
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

    /// Whether the action changes systemd. Only those take the per-unit
    /// locks: a read needs no serialising, and a caller allowed only `show`
    /// must not be able to create lock files in /run.
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
