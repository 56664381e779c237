//! The watcher's non-D-Bus event sources, each a small thread feeding the
//! main loop's channel: SIGINT/SIGTERM/SIGHUP (`sigwait` on signals every
//! thread blocks), stdout's reader going away (`poll` for POLLERR/POLLHUP
//! on fd 1), and instances appearing or vanishing in the state directory
//! (inotify).

use std::sync::mpsc::Sender;
use std::time::Duration;

use super::Ev;
use crate::app::App;
use crate::system;

const QUIT_SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

fn quit_set() -> libc::sigset_t {
    system::signal_set(&QUIT_SIGNALS)
}

/// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread, and so in every
/// thread it spawns afterwards (zbus's included): they are then received
/// only by [`spawn_signals`]'s `sigwait`. Must run before any thread is
/// spawned. Children (the helper via sudo) get a clean mask: std resets it
/// before exec.
pub fn block_quit_signals() {
    system::block_signals(&quit_set());
}

pub fn spawn_signals(tx: Sender<Ev>) {
    std::thread::Builder::new()
        .name("watch-signals".into())
        .spawn(move || loop {
            if system::wait_signal(&quit_set()).is_ok() {
                let _ = tx.send(Ev::Quit);
                return;
            }
        })
        .expect("spawning a thread");
}

/// Reports when nobody reads stdout any more (the pipe's reader closed, the
/// terminal hung up), so a watcher whose consumer died exits even while
/// nothing changes. Regular files and /dev/null never report.
pub fn spawn_stdout_watch(tx: Sender<Ev>) {
    std::thread::Builder::new()
        .name("watch-stdout".into())
        .spawn(move || loop {
            match system::poll_hangup(1) {
                Ok(rev) if rev & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 => {
                    let _ = tx.send(Ev::Quit);
                    return;
                }
                Ok(_) => {}
                Err(_) => return,
            }
        })
        .expect("spawning a thread");
}

/// inotify on the state directory: an instance directory created, renamed
/// in or out, or removed is `Ev::Dirty(instance)`; the state directory
/// itself vanishing (or an event queue overflow) is `Ev::All`, and it is
/// watched again once it exists.
pub fn spawn_state_dir_watch(app: App, tx: Sender<Ev>) {
    std::thread::Builder::new()
        .name("watch-inotify".into())
        .spawn(move || inotify_loop(&app, tx))
        .expect("spawning a thread");
}

/// inotify(7)'s flag not to follow a link in the watched path's last
/// component (the libc crate does not name it).
const IN_DONTFOLLOW: u32 = 0x0200_0000;

fn inotify_loop(app: &App, tx: Sender<Ev>) {
    let dir = &app.state_dir;
    let Ok(inotify) = system::Inotify::new() else {
        return; // the interval re-read still notices
    };
    let mask = libc::IN_CREATE
        | libc::IN_DELETE
        | libc::IN_MOVED_FROM
        | libc::IN_MOVED_TO
        | libc::IN_DELETE_SELF
        | libc::IN_MOVE_SELF
        | libc::IN_ONLYDIR
        | IN_DONTFOLLOW;
    let mut watching = false;
    let mut wd: libc::c_int = -1;
    let mut missed = false;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if !watching {
            match inotify.add_watch(dir.as_os_str(), mask) {
                Ok(w) => wd = w,
                Err(_) => {
                    // No state dir yet: look again in a second (the
                    // interval re-read covers the meantime).
                    missed = true;
                    std::thread::sleep(Duration::from_secs(1));
                    continue;
                }
            }
            watching = true;
            if missed && tx.send(Ev::All).is_err() {
                return;
            }
        }
        let Ok(n) = inotify.read(&mut buf) else {
            return;
        };
        let mut off = 0;
        while let Some((ev, name, next)) = system::inotify_event(&buf[..n], off) {
            off = next;
            if ev.wd != wd && ev.mask & libc::IN_Q_OVERFLOW == 0 {
                continue; // a watch we already dropped
            }
            let sent = if ev.mask
                & (libc::IN_IGNORED
                    | libc::IN_DELETE_SELF
                    | libc::IN_MOVE_SELF
                    | libc::IN_Q_OVERFLOW)
                != 0
            {
                if ev.mask & libc::IN_MOVE_SELF != 0 {
                    // The watch follows the moved directory: drop it.
                    inotify.rm_watch(wd);
                }
                if ev.mask & (libc::IN_IGNORED | libc::IN_DELETE_SELF | libc::IN_MOVE_SELF) != 0 {
                    watching = false;
                    missed = true;
                }
                tx.send(Ev::All)
            } else {
                match std::str::from_utf8(name)
                    .ok()
                    .and_then(|n| app.instance(n).ok())
                {
                    Some(n) => tx.send(Ev::Dirty(n)),
                    None => Ok(()),
                }
            };
            if sent.is_err() {
                return;
            }
        }
    }
}
