//! Following a task's service to its end over D-Bus, without root.
//!
//! The unit is collected as soon as it ends (`--collect`), so its outcome
//! cannot be read afterwards; it is read from the change signals instead.
//! systemd sends a unit's last `PropertiesChanged` (the Service interface
//! with `Result` and the main process's exit, then the Unit interface with
//! the inactive or failed state) before it drops the unit, so a listener
//! that subscribed before the task started sees its end.

use std::collections::HashMap;

use zbus::blocking::{Connection, MessageIterator};
use zbus::message::Type as MsgType;
use zbus::zvariant::OwnedValue;

use crate::error::{Error, Result};

use crate::systemd::{
    dbus_err, DEST as SYSTEMD, MANAGER, PATH as SYSTEMD_PATH, PROPS, SERVICE, UNIT,
};

const DBUS: &str = "org.freedesktop.DBus";
const DBUS_PATH: &str = "/org/freedesktop/DBus";

/// A subscription to one unit's changes.
pub struct Watch {
    // Kept open: the subscription and the match rules live as long as it.
    _conn: Connection,
    iter: MessageIterator,
    path: String,
    unit: String,
}

/// How a task's service ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct End {
    /// systemd's `Result`.
    pub result: String,
    pub exit_status: Option<i32>,
    pub signal: Option<String>,
    signal_number: Option<i32>,
}

impl End {
    pub fn exit_code(&self) -> u8 {
        super::exit_code(&self.result, self.exit_status, self.signal_number)
    }

    /// "exited with status 3", "was killed by SIGKILL (out of memory)", …
    pub fn describe(&self) -> String {
        match (self.result.as_str(), self.exit_status, &self.signal) {
            ("timeout", ..) => "ran past its --timeout and was stopped".into(),
            ("oom-kill", ..) => "was killed for using more memory than its --memory".into(),
            (_, _, Some(sig)) => format!("was killed by {sig} (result {})", self.result),
            (_, Some(status), _) => format!("exited with status {status}"),
            (result, ..) => format!("ended with result {result}"),
        }
    }
}

fn dbus(what: &str) -> impl FnOnce(zbus::Error) -> Error + '_ {
    move |e| dbus_err(what, e)
}

impl Watch {
    /// Subscribes to `unit`'s changes (and its removal), waiting for the
    /// bus to confirm each rule, so nothing after this call is missed.
    pub fn start(unit: &str) -> Result<Watch> {
        let conn =
            crate::systemd::connect_system_bus().map_err(dbus("connecting to the system bus"))?;
        let iter = MessageIterator::from(&conn);
        let path = format!("{SYSTEMD_PATH}/unit/{}", crate::systemd::escape_label(unit));
        let rules = [
            format!(
                "type='signal',sender='{SYSTEMD}',interface='{PROPS}',\
                 member='PropertiesChanged',path='{path}'"
            ),
            format!(
                "type='signal',sender='{SYSTEMD}',interface='{MANAGER}',member='UnitNew',\
                 arg0='{unit}'"
            ),
            format!(
                "type='signal',sender='{SYSTEMD}',interface='{MANAGER}',member='UnitRemoved',\
                 arg0='{unit}'"
            ),
        ];
        for rule in &rules {
            conn.call_method(
                Some(DBUS),
                DBUS_PATH,
                Some(DBUS),
                "AddMatch",
                &(rule.as_str(),),
            )
            .map_err(dbus("adding a match rule"))?;
        }
        conn.call_method(Some(SYSTEMD), SYSTEMD_PATH, Some(MANAGER), "Subscribe", &())
            .map_err(dbus("subscribing to systemd's signals"))?;
        Ok(Watch {
            _conn: conn,
            iter,
            path,
            unit: unit.to_owned(),
        })
    }

    /// Reads the unit's changes until it is inactive or failed after
    /// having run; its end.
    pub fn until_end(mut self) -> Result<End> {
        let mut service: HashMap<String, OwnedValue> = HashMap::new();
        // Whether systemd announced the unit (`UnitNew`): any signal before
        // that is of an earlier unit of the same name on its way out.
        let mut born = false;
        // Whether it was seen activating or active: an inactive state
        // before that is the new unit's, not its end.
        let mut ran = false;
        loop {
            let msg = match self.iter.next() {
                Some(Ok(m)) => m,
                Some(Err(e)) => return Err(dbus("reading from the system bus")(e)),
                None => {
                    return Err(Error::Dbus {
                        what: "the system bus closed the connection".into(),
                    })
                }
            };
            if msg.message_type() != MsgType::Signal {
                continue;
            }
            let header = msg.header();
            match header.member().map(|m| m.as_str()) {
                Some("UnitNew") => {
                    born = true;
                    continue;
                }
                Some("UnitRemoved") if born => {
                    return Err(Error::Dbus {
                        what: format!(
                            "unit {} went away before systemd said how it ended",
                            self.unit
                        ),
                    });
                }
                _ => {}
            }
            if !born || header.path().map(|p| p.as_str()) != Some(self.path.as_str()) {
                continue;
            }
            let Ok((iface, changed, _)) =
                msg.body()
                    .deserialize::<(String, HashMap<String, OwnedValue>, Vec<String>)>()
            else {
                continue;
            };
            if iface == SERVICE {
                service.extend(changed);
                continue;
            }
            if iface != UNIT {
                continue;
            }
            let state = changed
                .get("ActiveState")
                .and_then(|v| String::try_from(v.try_clone().ok()?).ok());
            match state.as_deref() {
                Some("inactive" | "failed") if ran || main_exited(&service) => {
                    return Ok(end_of(&service));
                }
                // The state a new unit has before its start job runs.
                Some("inactive" | "failed") | None => {}
                Some(_) => ran = true,
            }
        }
    }
}

/// Whether systemd recorded the main process's end (a task that started
/// and ended between two of systemd's signal dispatches is seen only so).
fn main_exited(service: &HashMap<String, OwnedValue>) -> bool {
    service
        .get("ExecMainCode")
        .and_then(|v| i32::try_from(v.try_clone().ok()?).ok())
        .is_some_and(|code| code != 0)
}

/// The end from the Service interface's last values.
fn end_of(service: &HashMap<String, OwnedValue>) -> End {
    let get = |k: &str| service.get(k).and_then(|v| v.try_clone().ok());
    let result = get("Result")
        .and_then(|v| String::try_from(v).ok())
        .unwrap_or_else(|| "unknown".into());
    let code = get("ExecMainCode").and_then(|v| i32::try_from(v).ok());
    let status = get("ExecMainStatus").and_then(|v| i32::try_from(v).ok());
    let (exit_status, signal_number) = match code {
        Some(libc::CLD_EXITED) => (status, None),
        Some(libc::CLD_KILLED | libc::CLD_DUMPED) => (None, status),
        _ => (None, None),
    };
    let signal = signal_number.map(|s| {
        nix::sys::signal::Signal::try_from(s)
            .map_or_else(|_| format!("signal {s}"), |sig| sig.as_str().to_owned())
    });
    End {
        result,
        exit_status,
        signal,
        signal_number,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn exit_codes_per_end() {
        use super::super::exit_code;
        assert_eq!(exit_code("success", Some(0), None), 0);
        assert_eq!(exit_code("exit-code", Some(3), None), 3);
        assert_eq!(exit_code("exit-code", Some(0), None), 1);
        assert_eq!(exit_code("signal", None, Some(15)), 143);
        // systemd counts a service's death by SIGTERM a clean exit.
        assert_eq!(exit_code("success", None, Some(15)), 143);
        assert_eq!(exit_code("timeout", None, Some(15)), 124);
        assert_eq!(exit_code("oom-kill", None, Some(9)), 137);
        assert_eq!(exit_code("resources", None, None), 1);
    }
}
