//! What `unitgate limit` may set on an instance (issue #14): the policy's
//! `[limits]` table, and a request checked against it. The values use the
//! tasks' grammar ([`crate::task::parse_cpu`] and the rest) and reach
//! systemd only as numbers the helper formats.

use crate::task::{self, CPU_PERCENT, TASKS};
use crate::toml::Table;

/// The table's name.
pub const TABLE: &str = "limits";

/// Where PID 1 keeps what `systemctl set-property` set: the helper
/// writes there through systemd and resets it, the CLI reads it for
/// `status`.
pub const CONTROL_DIR: &str = "/etc/systemd/system.control";

/// The properties `limit` sets, in the order they are given to systemctl;
/// each kept by PID 1 as `<CONTROL_DIR>/<unit>.d/50-<Property>.conf`.
pub const PROPERTIES: [&str; 3] = ["CPUQuota", "MemoryMax", "TasksMax"];

/// The keys of `[limits]`.
pub const KEYS: &[&str] = &["max_cpu_percent", "max_memory", "max_tasks"];

/// The most an instance may be given; an app without `[limits]` allows
/// no `limit` at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitPolicy {
    pub max_cpu_percent: u64,
    pub max_memory: u64,
    pub max_tasks: u64,
}

/// The limits one call sets; `None` leaves that one as it is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Set {
    pub cpu_percent: Option<u64>,
    pub memory: Option<u64>,
    pub tasks: Option<u64>,
}

impl Set {
    pub fn is_empty(&self) -> bool {
        *self == Set::default()
    }
}

impl LimitPolicy {
    /// `set` if each value in it is within its maximum; the error names
    /// the first one above.
    pub fn check(&self, set: Set) -> Result<Set, String> {
        let within = |what: &str, v: Option<u64>, max: u64| match v {
            Some(v) if v > max => Err(format!("{what} {v} is above the app's maximum {max}")),
            _ => Ok(()),
        };
        within("cpu", set.cpu_percent, self.max_cpu_percent)?;
        within("memory", set.memory, self.max_memory)?;
        within("tasks", set.tasks, self.max_tasks)?;
        Ok(set)
    }
}

/// The `[limits]` table, validated; errors name the key and its line.
pub fn from_table(t: &Table) -> Result<LimitPolicy, String> {
    task::only_keys(t, KEYS)?;
    Ok(LimitPolicy {
        max_cpu_percent: task::integer(task::required(t, "max_cpu_percent")?, CPU_PERCENT)?,
        max_memory: task::size(task::required(t, "max_memory")?)?,
        max_tasks: task::integer(task::required(t, "max_tasks")?, TASKS)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> Result<LimitPolicy, String> {
        let doc = crate::toml::parse(text).map_err(|e| e.to_string())?;
        from_table(doc.table(TABLE).expect("a [limits] table"))
    }

    #[test]
    fn a_limits_table_gives_three_maxima() {
        let p = table("[limits]\nmax_cpu_percent = 200\nmax_memory = \"2G\"\nmax_tasks = 64\n")
            .unwrap();
        assert_eq!(
            p,
            LimitPolicy {
                max_cpu_percent: 200,
                max_memory: 2 << 30,
                max_tasks: 64
            }
        );
    }

    #[test]
    fn a_bad_limits_table_is_named_by_key_and_line() {
        for (text, says) in [
            (
                "[limits]\nmax_memory = \"1G\"\nmax_tasks = 5\n",
                "missing `max_cpu_percent`",
            ),
            (
                "[limits]\nmax_cpu_percent = 0\nmax_memory = \"1G\"\nmax_tasks = 5\n",
                "`max_cpu_percent` at line 2 must be from 1",
            ),
            (
                "[limits]\nmax_cpu_percent = 5\nmax_memory = 1\nmax_tasks = 5\n",
                "`max_memory` at line 3 must be a string",
            ),
            (
                "[limits]\nmax_cpu_percent = 5\nmax_memory = \"1G;x\"\nmax_tasks = 5\n",
                "`max_memory` at line 3",
            ),
            (
                "[limits]\nmax_cpu_percent = 5\nmax_memory = \"1G\"\nmax_tasks = 5\nio = 1\n",
                "unknown key `io` in [limits] at line 5",
            ),
        ] {
            let e = table(text).unwrap_err();
            assert!(e.contains(says), "{text:?}: {e}");
        }
    }

    #[test]
    fn a_request_above_a_maximum_is_refused_by_name() {
        let p = LimitPolicy {
            max_cpu_percent: 100,
            max_memory: 1 << 30,
            max_tasks: 10,
        };
        let ok = Set {
            cpu_percent: Some(100),
            memory: None,
            tasks: Some(10),
        };
        assert_eq!(p.check(ok), Ok(ok));
        let e = p
            .check(Set {
                memory: Some(2 << 30),
                ..Set::default()
            })
            .unwrap_err();
        assert!(
            e.contains("memory 2147483648 is above the app's maximum 1073741824"),
            "{e}"
        );
        assert!(p
            .check(Set {
                tasks: Some(11),
                ..Set::default()
            })
            .is_err());
        assert!(Set::default().is_empty());
    }
}
