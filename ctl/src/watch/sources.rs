//! The watcher's non-D-Bus event sources, each a small thread feeding the
//! main loop's channel: SIGINT/SIGTERM/SIGHUP (`sigwait` on signals every
//! thread blocks), stdout's reader going away (`poll` for POLLERR/POLLHUP
//! on fd 1), instances appearing or vanishing in the state directory and
//! enable links appearing or vanishing in systemd's link directories
//! (inotify).

use std::collections::HashSet;
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::mpsc::Sender;
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use nix::sys::signal::{SigSet, Signal};

use super::Ev;
use crate::app::App;

fn quit_set() -> SigSet {
    [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP]
        .into_iter()
        .collect()
}

/// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread, and so in every
/// thread it spawns afterwards (zbus's included): they are then received
/// only by [`spawn_signals`]'s `sigwait`. Must run before any thread is
/// spawned. Children (the helper via sudo) get a clean mask: std resets it
/// before exec.
pub fn block_quit_signals() {
    let _ = quit_set().thread_block();
}

pub fn spawn_signals(tx: Sender<Ev>) {
    std::thread::Builder::new()
        .name("watch-signals".into())
        .spawn(move || loop {
            if quit_set().wait().is_ok() {
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
            // No events asked for: poll still reports POLLERR/POLLHUP.
            let out = std::io::stdout();
            let mut fds = [PollFd::new(out.as_fd(), PollFlags::empty())];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {
                    let gone = PollFlags::POLLERR | PollFlags::POLLHUP | PollFlags::POLLNVAL;
                    if fds[0].revents().is_some_and(|r| r.intersects(gone)) {
                        let _ = tx.send(Ev::Quit);
                        return;
                    }
                }
                Err(Errno::EINTR) => {}
                Err(_) => return,
            }
        })
        .expect("spawning a thread");
}

/// inotify on the state directory: an instance directory created, renamed
/// or removed marks that instance dirty; losing the directory, everything.
pub fn spawn_state_dir_watch(app: App, tx: Sender<Ev>) {
    std::thread::Builder::new()
        .name("watch-inotify".into())
        .spawn(move || inotify_loop(&app, tx))
        .expect("spawning a thread");
}

fn inotify_loop(app: &App, tx: Sender<Ev>) {
    let dir = &app.state_dir;
    let Ok(inotify) = Inotify::init(InitFlags::IN_CLOEXEC) else {
        return; // the interval re-read still notices
    };
    let mask = AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_MOVE_SELF
        | AddWatchFlags::IN_ONLYDIR
        | AddWatchFlags::IN_DONT_FOLLOW;
    // The watch ends when the directory goes away; these say so.
    let gone =
        AddWatchFlags::IN_IGNORED | AddWatchFlags::IN_DELETE_SELF | AddWatchFlags::IN_MOVE_SELF;
    let mut watch = None;
    let mut missed = false;
    loop {
        let wd = match watch {
            Some(wd) => wd,
            None => match inotify.add_watch(dir.as_path(), mask) {
                Ok(wd) => {
                    watch = Some(wd);
                    if missed && tx.send(Ev::All).is_err() {
                        return;
                    }
                    wd
                }
                Err(_) => {
                    // No state dir yet: look again in a second (the
                    // interval re-read covers the meantime).
                    missed = true;
                    std::thread::sleep(Duration::from_secs(1));
                    continue;
                }
            },
        };
        let events = match inotify.read_events() {
            Ok(events) => events,
            Err(Errno::EINTR) => continue,
            Err(_) => return,
        };
        for ev in events {
            let overflow = ev.mask.contains(AddWatchFlags::IN_Q_OVERFLOW);
            if ev.wd != wd && !overflow {
                continue; // a watch we already dropped
            }
            let sent = if overflow || ev.mask.intersects(gone) {
                if ev.mask.contains(AddWatchFlags::IN_MOVE_SELF) {
                    // The watch follows the moved directory: drop it.
                    let _ = inotify.rm_watch(wd);
                }
                if ev.mask.intersects(gone) {
                    watch = None;
                    missed = true;
                }
                tx.send(Ev::All)
            } else {
                match ev
                    .name
                    .as_deref()
                    .and_then(|n| n.to_str())
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

/// inotify on the link directories (`*.wants`, `*.requires`, `*.upholds`)
/// of [`crate::systemd::ENABLE_DIRS`]: an enable link of one of the app's
/// units created or removed re-reads enablement from disk. systemd
/// announces its own enables and disables (`UnitFilesChanged`); a link made
/// or removed without it sends nothing: the helper's own links for a
/// guarded app (docs/helper.md, "Enabling without a daemon-reload"), made
/// before a `start` and removed before a `stop` that systemd reports only
/// if the instance's state changes, or a link made by hand or by
/// configuration management. Without this, such a
/// change would wait for the interval re-read.
pub fn spawn_enable_links_watch(app: App, tx: Sender<Ev>) {
    std::thread::Builder::new()
        .name("watch-links".into())
        .spawn(move || links_loop(&app, tx))
        .expect("spawning a thread");
}

fn links_loop(app: &App, tx: Sender<Ev>) {
    let Ok(inotify) = Inotify::init(InitFlags::IN_CLOEXEC) else {
        return; // the interval re-read still notices
    };
    let base_mask = AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_ONLYDIR
        | AddWatchFlags::IN_DONT_FOLLOW;
    let link_mask = AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_ONLYDIR
        | AddWatchFlags::IN_DONT_FOLLOW;
    // The configuration directories, watched for link directories made
    // later (the first `enable` into a target makes its `.wants`).
    let mut bases = Vec::new();
    let mut link_dirs = HashSet::new();
    let watch_links = |inotify: &Inotify, dir: &Path, set: &mut HashSet<WatchDescriptor>| {
        if let Ok(wd) = inotify.add_watch(dir, link_mask) {
            set.insert(wd);
        }
    };
    for (base, _) in crate::systemd::ENABLE_DIRS {
        let base = Path::new(base);
        if let Ok(wd) = inotify.add_watch(base, base_mask) {
            bases.push((wd, base));
        }
        for dir in crate::systemd::link_dirs(base) {
            watch_links(&inotify, &dir, &mut link_dirs);
        }
    }
    loop {
        let events = match inotify.read_events() {
            Ok(events) => events,
            Err(Errno::EINTR) => continue,
            Err(_) => return,
        };
        let mut changed = false;
        for ev in events {
            let name = ev.name.as_deref().and_then(|n| n.to_str());
            if ev.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                changed = true;
            } else if let Some(&(_, base)) = bases.iter().find(|(wd, _)| *wd == ev.wd) {
                if let Some(name) = name.filter(|n| crate::systemd::is_link_dir(n)) {
                    watch_links(&inotify, &base.join(name), &mut link_dirs);
                    changed = true;
                }
            } else if link_dirs.contains(&ev.wd) {
                changed |= name.and_then(|n| app.instance_of(n)).is_some();
            }
        }
        if changed && tx.send(Ev::UnitFiles).is_err() {
            return;
        }
    }
}
