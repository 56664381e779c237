//! systemd's signals, on a connection of their own: `Subscribe`, match
//! rules for the Manager's signals (`JobRemoved`, `UnitNew`,
//! `UnitRemoved`, `UnitFilesChanged`, `Reloading`), `PropertiesChanged`
//! under `/org/freedesktop/systemd1/unit`, and the bus's
//! `NameOwnerChanged` for systemd itself (a `daemon-reexec` drops and
//! re-takes the name). Every signal becomes "re-read this instance" (or
//! "re-read everything") for the main loop; nothing is decided here.
//!
//! When the connection ends (dbus-daemon restarted), the thread reconnects
//! with back-off (250 ms doubling to 30 s) and says so.

use std::sync::mpsc::Sender;
use std::time::Duration;

use zbus::blocking::{Connection, MessageIterator};
use zbus::message::{Message, Type as MsgType};
use zbus::zvariant::OwnedObjectPath;

use super::Ev;
use crate::app::App;

const SYSTEMD: &str = "org.freedesktop.systemd1";
const SYSTEMD_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
const PROPS: &str = "org.freedesktop.DBus.Properties";
const UNIT_PATH_PREFIX: &str = "/org/freedesktop/systemd1/unit/";
const DBUS: &str = "org.freedesktop.DBus";
const DBUS_PATH: &str = "/org/freedesktop/DBus";

const RULES: &[&str] = &[
    "type='signal',sender='org.freedesktop.systemd1',path='/org/freedesktop/systemd1',interface='org.freedesktop.systemd1.Manager'",
    "type='signal',sender='org.freedesktop.systemd1',interface='org.freedesktop.DBus.Properties',member='PropertiesChanged',path_namespace='/org/freedesktop/systemd1/unit'",
    "type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='org.freedesktop.systemd1'",
];

const MAX_BACKOFF: Duration = Duration::from_secs(30);

pub fn spawn(app: App, tx: Sender<Ev>) {
    std::thread::Builder::new()
        .name("watch-dbus".into())
        .spawn(move || run(&app, &tx))
        .expect("spawning a thread");
}

fn run(app: &App, tx: &Sender<Ev>) {
    let first_backoff = Duration::from_millis(250);
    let mut backoff = first_backoff;
    let mut down = false;
    loop {
        match connect() {
            Ok((conn, iter)) => {
                if tx.send(Ev::BusUp { reconnected: down }).is_err() {
                    return;
                }
                backoff = first_backoff;
                let why = pump(app, &conn, iter, tx);
                drop(conn);
                if tx.send(Ev::BusDown(why, backoff)).is_err() {
                    return;
                }
                down = true;
            }
            Err(e) => {
                if tx.send(Ev::BusDown(e, backoff)).is_err() {
                    return;
                }
                down = true;
            }
        }
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

fn call(
    path: &str,
    dest: &str,
    iface: &str,
    member: &str,
) -> zbus::Result<zbus::message::Builder<'static>> {
    Message::method_call(path.to_owned(), member.to_owned())?
        .destination(dest.to_owned())?
        .interface(iface.to_owned())
}

/// Connects, starts listening, then adds the match rules and subscribes.
/// Requests are sent without waiting for their replies (they arrive on the
/// iterator and are ignored): this thread only ever blocks reading.
fn connect() -> Result<(Connection, MessageIterator), String> {
    let conn = crate::systemd::connect_system_bus()
        .map_err(|e| format!("connecting to the system bus: {e}"))?;
    // Room for a burst (a daemon-reload of 1000 units) without stalling
    // the connection's reader.
    conn.clone().set_max_queued(8192);
    let iter = MessageIterator::from(&conn);
    let send = |m: zbus::Result<Message>| -> Result<(), String> {
        let m = m.map_err(|e| format!("building a request: {e}"))?;
        conn.send(&m)
            .map_err(|e| format!("sending to the system bus: {e}"))
    };
    for rule in RULES {
        send(call(DBUS_PATH, DBUS, DBUS, "AddMatch").and_then(|b| b.build(&(*rule,))))?;
    }
    send(subscribe())?;
    Ok((conn, iter))
}

fn subscribe() -> zbus::Result<Message> {
    call(SYSTEMD_PATH, SYSTEMD, MANAGER, "Subscribe").and_then(|b| b.build(&()))
}

/// Reads signals until the connection ends; returns why it ended.
fn pump(app: &App, conn: &Connection, iter: MessageIterator, tx: &Sender<Ev>) -> String {
    for item in iter {
        let msg = match item {
            Ok(m) => m,
            Err(e) => return format!("reading from the system bus: {e}"),
        };
        if msg.message_type() != MsgType::Signal {
            continue;
        }
        let ev = classify(app, &msg);
        if let Some(Resubscribe) = ev.1 {
            // A new systemd (daemon-reexec) knows nothing of our Subscribe.
            if let Ok(m) = subscribe() {
                let _ = conn.send(&m);
            }
        }
        if let Some(ev) = ev.0 {
            if tx.send(ev).is_err() {
                return String::new();
            }
        }
    }
    "the system bus closed the connection".into()
}

struct Resubscribe;

fn classify(app: &App, msg: &Message) -> (Option<Ev>, Option<Resubscribe>) {
    let header = msg.header();
    let iface = header.interface().map(|i| i.as_str()).unwrap_or("");
    let member = header.member().map(|m| m.as_str()).unwrap_or("");
    let dirty_unit = |unit: &str| app.instance_of(unit).map(Ev::Dirty);
    match (iface, member) {
        (PROPS, "PropertiesChanged") => {
            let ev = header
                .path()
                .and_then(|p| p.as_str().strip_prefix(UNIT_PATH_PREFIX))
                .and_then(crate::systemd::unescape_label)
                .and_then(|u| dirty_unit(&u));
            (ev, None)
        }
        (MANAGER, "JobRemoved") => {
            let ev = msg
                .body()
                .deserialize::<(u32, OwnedObjectPath, String, String)>()
                .ok()
                .and_then(|(_, _, unit, _)| dirty_unit(&unit));
            (ev, None)
        }
        (MANAGER, "UnitNew" | "UnitRemoved") => {
            let ev = msg
                .body()
                .deserialize::<(String, OwnedObjectPath)>()
                .ok()
                .and_then(|(unit, _)| dirty_unit(&unit));
            (ev, None)
        }
        // Enablement (symlinks) may have changed for any unit. It comes
        // before the reload `systemctl enable/disable` asks for, during
        // which systemd answers nothing: enablement is read from disk.
        (MANAGER, "UnitFilesChanged") => (Some(Ev::UnitFiles), None),
        // A reload finished: units may have been reloaded or dropped
        // without a signal each.
        (MANAGER, "Reloading") => match msg.body().deserialize::<bool>() {
            Ok(false) => (Some(Ev::All), None),
            _ => (None, None),
        },
        (DBUS, "NameOwnerChanged") => match msg.body().deserialize::<(String, String, String)>() {
            Ok((name, _old, new)) if name == SYSTEMD && !new.is_empty() => {
                (Some(Ev::All), Some(Resubscribe))
            }
            _ => (None, None),
        },
        _ => (None, None),
    }
}
