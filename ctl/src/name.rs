//! An instance name that passed its app's rules.
//!
//! Every path in the state directory and every unit name is built from an
//! instance name, so a name that was not checked must not exist as one:
//! [`App::instance`](crate::app::App::instance) is the only way to make an
//! [`InstanceName`], and it applies the helper crate's built-in rule and
//! the app's `instance_pattern` — exactly what the helper will judge.

use std::fmt;

use serde::Serialize;

/// A valid instance name of one app (no `/`, `.`, `@`, no leading `-`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct InstanceName(String);

impl InstanceName {
    /// Only for `App::instance`, which has checked `name`.
    pub(crate) fn checked(name: &str) -> InstanceName {
        InstanceName(name.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstanceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for InstanceName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for InstanceName {
    fn borrow(&self) -> &str {
        &self.0
    }
}
