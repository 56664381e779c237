//! Following a task's service to its end over D-Bus, without root.
//!
//! The unit is collected as soon as it ends (`--collect`), so its outcome
//! cannot be read afterwards; it is read from the change signals instead.
//! systemd sends a unit's last `PropertiesChanged` (the Service interface
//! with `Result` and the main process's exit, then the Unit interface with
//! the inactive or failed state) before it drops the unit, so a listener
//! that subscribed before the task started sees its end.
//!
//! A daemon-reload frees every unit and builds it again, announcing each
//! as removed: a removal before the end is read is checked with systemd
//! (`GetUnit`, which loads nothing) before the task counts as lost.

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
        let mut task = Tracker::default();
        // The serial of a `GetUnit` sent after a removal, until answered.
        let mut asking = None;
        loop {
            let msg = self.next()?;
            if asking.is_some_and(|s| replies_to(&msg, s)) {
                if msg.message_type() == MsgType::Error {
                    return Err(task.lost(&self.unit));
                }
                // Built again by a reload: still running, still ours.
                asking = None;
                continue;
            }
            match task.feed(&msg, &self.path) {
                Seen::End(end) => return Ok(end),
                Seen::Dropped if asking.is_none() => {
                    asking = Some(self.ask(MANAGER, "GetUnit", &(self.unit.as_str(),))?);
                }
                Seen::Dropped | Seen::Nothing => {}
            }
        }
    }

    /// Sends a method call to systemd without waiting for its answer,
    /// which comes in order with the signals sent before it; its serial.
    fn ask<B>(&self, interface: &str, method: &str, body: &B) -> Result<std::num::NonZeroU32>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
    {
        let call = zbus::Message::method_call(SYSTEMD_PATH, method)
            .and_then(|b| b.destination(SYSTEMD))
            .and_then(|b| b.interface(interface))
            .and_then(|b| b.build(body))
            .map_err(dbus("building a call to systemd"))?;
        let serial = call.primary_header().serial_num();
        self._conn.send(&call).map_err(dbus("asking systemd"))?;
        Ok(serial)
    }

    /// The task's end if systemd has already said it: what it sent before
    /// it answers a ping sent now (one connection's messages keep their
    /// order). systemd-run fails its start when the program ends before
    /// the start job does, having sent the unit's last changes first.
    pub fn end_so_far(mut self) -> Result<Option<End>> {
        let serial = self.ask("org.freedesktop.DBus.Peer", "Ping", &())?;
        let mut task = Tracker::default();
        loop {
            let msg = self.next()?;
            if replies_to(&msg, serial) {
                return Ok(None);
            }
            if let Seen::End(end) = task.feed(&msg, &self.path) {
                return Ok(Some(end));
            }
        }
    }

    fn next(&mut self) -> Result<zbus::Message> {
        match self.iter.next() {
            Some(Ok(m)) => Ok(m),
            Some(Err(e)) => Err(dbus("reading from the system bus")(e)),
            None => Err(Error::Dbus {
                what: "the system bus closed the connection".into(),
            }),
        }
    }
}

/// Whether `msg` answers the call with `serial`.
fn replies_to(msg: &zbus::Message, serial: std::num::NonZeroU32) -> bool {
    msg.message_type() != MsgType::Signal && msg.header().reply_serial() == Some(serial)
}

/// What one message says of the task.
#[derive(Debug)]
enum Seen {
    Nothing,
    End(End),
    /// Its unit was dropped before its end was read: by a daemon-reload,
    /// which builds it again, or after an end this connection did not
    /// get. Only systemd can say which.
    Dropped,
}

/// What the signals read so far say of the task's unit.
#[derive(Default)]
struct Tracker {
    /// The Service interface's last values.
    service: HashMap<String, OwnedValue>,
    /// Whether systemd announced the unit (`UnitNew`): any signal before
    /// that is of an earlier unit of the same name on its way out.
    born: bool,
    /// Whether it was seen activating or active: an inactive state before
    /// that is the new unit's, not its end.
    ran: bool,
    /// The last `ActiveState` seen, for the message if the end is lost.
    last_state: Option<String>,
}

impl Tracker {
    /// Takes in one message; the task's end once it is known.
    fn feed(&mut self, msg: &zbus::Message, path: &str) -> Seen {
        if msg.message_type() != MsgType::Signal {
            return Seen::Nothing;
        }
        let header = msg.header();
        match header.member().map(|m| m.as_str()) {
            Some("UnitNew") => {
                self.born = true;
                return Seen::Nothing;
            }
            // Anyone who asks systemd about the name (`systemctl status`,
            // `unitgate tasks`) makes it load a placeholder, announced and
            // dropped again: a unit that never ran is not the task's end.
            Some("UnitRemoved") if self.born && !self.ran && !main_exited(&self.service) => {
                *self = Tracker::default();
                return Seen::Nothing;
            }
            // Gone without its last state change read: the main process's
            // end, if systemd sent it, is the task's end all the same.
            Some("UnitRemoved") if self.born && main_exited(&self.service) => {
                return Seen::End(end_of(&self.service));
            }
            Some("UnitRemoved") if self.born => {
                return Seen::Dropped;
            }
            _ => {}
        }
        if !self.born || header.path().map(|p| p.as_str()) != Some(path) {
            return Seen::Nothing;
        }
        let Ok((iface, changed, _)) = msg
            .body()
            .deserialize::<(String, HashMap<String, OwnedValue>, Vec<String>)>()
        else {
            return Seen::Nothing;
        };
        if iface == SERVICE {
            self.service.extend(changed);
            return Seen::Nothing;
        }
        if iface != UNIT {
            return Seen::Nothing;
        }
        let state = changed
            .get("ActiveState")
            .and_then(|v| String::try_from(v.try_clone().ok()?).ok());
        if state.is_some() {
            self.last_state.clone_from(&state);
        }
        match state.as_deref() {
            Some("inactive" | "failed") if self.ran || main_exited(&self.service) => {
                Seen::End(end_of(&self.service))
            }
            // The state a new unit has before its start job runs.
            Some("inactive" | "failed") | None => Seen::Nothing,
            Some(_) => {
                self.ran = true;
                Seen::Nothing
            }
        }
    }

    /// The error for a unit systemd no longer has, its end unread.
    fn lost(&self, unit: &str) -> Error {
        Error::Dbus {
            what: format!(
                "unit {unit} went away before systemd said how it ended (last state seen: {}, no exit of its main process)",
                self.last_state.as_deref().unwrap_or("none")
            ),
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
    use super::*;
    use zbus::zvariant::{OwnedObjectPath, Value};

    const UNIT_NAME: &str = "demo-task-1000-j1.service";
    const PATH: &str = "/org/freedesktop/systemd1/unit/demo_2dtask_2d1000_2dj1_2eservice";

    fn manager(member: &str) -> zbus::Message {
        let path = OwnedObjectPath::try_from(PATH).unwrap();
        zbus::Message::signal(SYSTEMD_PATH, MANAGER, member)
            .unwrap()
            .build(&(UNIT_NAME, path))
            .unwrap()
    }

    fn changed(iface: &str, props: &[(&str, Value<'_>)]) -> zbus::Message {
        let map: HashMap<&str, &Value<'_>> = props.iter().map(|(k, v)| (*k, v)).collect();
        let none: Vec<String> = Vec::new();
        zbus::Message::signal(PATH, PROPS, "PropertiesChanged")
            .unwrap()
            .build(&(iface, map, none))
            .unwrap()
    }

    /// The Service interface's change as systemd sends it at the main
    /// process's exit with `status`.
    fn exited(status: i32) -> zbus::Message {
        let result = if status == 0 { "success" } else { "exit-code" };
        changed(
            SERVICE,
            &[
                ("Result", Value::from(result)),
                ("ExecMainCode", Value::from(libc::CLD_EXITED)),
                ("ExecMainStatus", Value::from(status)),
            ],
        )
    }

    fn state(s: &str) -> zbus::Message {
        changed(UNIT, &[("ActiveState", Value::from(s))])
    }

    fn feed(t: &mut Tracker, msgs: &[zbus::Message]) -> Vec<Seen> {
        msgs.iter().map(|m| t.feed(m, PATH)).collect()
    }

    fn end(seen: &Seen) -> &End {
        match seen {
            Seen::End(end) => end,
            other => panic!("no end: {other:?}"),
        }
    }

    #[test]
    fn a_placeholder_that_comes_and_goes_is_not_the_tasks_end() {
        let mut t = Tracker::default();
        let got = feed(
            &mut t,
            &[
                manager("UnitNew"),
                state("inactive"),
                manager("UnitRemoved"),
            ],
        );
        assert!(got.iter().all(|r| matches!(r, Seen::Nothing)), "{got:?}");
        // The task's own unit after it: its end is read.
        let got = feed(
            &mut t,
            &[
                manager("UnitNew"),
                state("activating"),
                state("active"),
                exited(3),
                state("failed"),
            ],
        );
        let end = end(got.last().unwrap());
        assert_eq!((end.exit_status, end.exit_code()), (Some(3), 3));
    }

    #[test]
    fn a_unit_gone_before_its_last_state_ends_as_its_main_process_did() {
        let mut t = Tracker::default();
        let got = feed(
            &mut t,
            &[
                manager("UnitNew"),
                state("active"),
                exited(0),
                manager("UnitRemoved"),
            ],
        );
        let end = end(got.last().unwrap());
        assert_eq!((end.exit_status, end.exit_code()), (Some(0), 0));
    }

    #[test]
    fn a_running_unit_dropped_and_built_again_by_a_reload_is_followed_to_its_end() {
        let mut t = Tracker::default();
        let got = feed(
            &mut t,
            &[manager("UnitNew"), state("active"), manager("UnitRemoved")],
        );
        // Not an end: the watch asks systemd whether the unit is still there.
        assert!(matches!(got.last(), Some(Seen::Dropped)), "{got:?}");
        let got = feed(
            &mut t,
            &[
                manager("UnitNew"),
                state("active"),
                exited(7),
                state("failed"),
            ],
        );
        let end = end(got.last().unwrap());
        assert_eq!((end.exit_status, end.exit_code()), (Some(7), 7));
        // Where systemd no longer has it, the message says what was seen.
        let e = t.lost(UNIT_NAME).to_string();
        assert!(
            e.contains("went away") && e.contains("last state seen: failed"),
            "{e}"
        );
    }

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
