//! The watcher's non-D-Bus event sources, each a small thread feeding the
//! main loop's channel: SIGINT/SIGTERM/SIGHUP (`sigwait` on signals every
//! thread blocks), stdout's reader going away (`poll` for POLLERR/POLLHUP
//! on fd 1), and instances appearing or vanishing in the state directory
//! (inotify).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::mpsc::Sender;
use std::time::Duration;

use super::Ev;

const QUIT_SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

fn quit_set() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and fill a local sigset_t.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in QUIT_SIGNALS {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread, and so in every
/// thread it spawns afterwards (zbus's included): they are then received
/// only by [`spawn_signals`]'s `sigwait`. Must run before any thread is
/// spawned. Children (the helper via sudo) get a clean mask: std resets it
/// before exec.
pub fn block_quit_signals() {
    let set = quit_set();
    // SAFETY: a valid sigset_t; no old mask is asked for.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
}

pub fn spawn_signals(tx: Sender<Ev>) {
    std::thread::Builder::new()
        .name("watch-signals".into())
        .spawn(move || loop {
            let set = quit_set();
            let mut sig: libc::c_int = 0;
            // SAFETY: a valid sigset_t and a pointer to a local int.
            let r = unsafe { libc::sigwait(&set, &mut sig) };
            if r == 0 {
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
            let mut pfd = libc::pollfd {
                fd: 1,
                events: 0,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let r = unsafe { libc::poll(&mut pfd, 1, -1) };
            if r < 0 {
                if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return;
            }
            if pfd.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
                let _ = tx.send(Ev::Quit);
                return;
            }
        })
        .expect("spawning a thread");
}

/// inotify on the state directory: an instance directory created, renamed
/// in or out, or removed is `Ev::Dirty(instance)`; the state directory
/// itself vanishing (or an event queue overflow) is `Ev::All`, and it is
/// watched again once it exists.
pub fn spawn_state_dir_watch(dir: PathBuf, tx: Sender<Ev>) {
    std::thread::Builder::new()
        .name("watch-inotify".into())
        .spawn(move || inotify_loop(dir, tx))
        .expect("spawning a thread");
}

fn inotify_loop(dir: PathBuf, tx: Sender<Ev>) {
    // SAFETY: plain syscall.
    let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
    if fd < 0 {
        return; // the interval re-read still notices
    }
    let Ok(cpath) = CString::new(dir.as_os_str().as_bytes()) else {
        return;
    };
    let mask = libc::IN_CREATE
        | libc::IN_DELETE
        | libc::IN_MOVED_FROM
        | libc::IN_MOVED_TO
        | libc::IN_DELETE_SELF
        | libc::IN_MOVE_SELF
        | libc::IN_ONLYDIR;
    let mut watching = false;
    let mut wd: libc::c_int = -1;
    let mut missed = false;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if !watching {
            // SAFETY: a valid fd and NUL-terminated path.
            wd = unsafe { libc::inotify_add_watch(fd, cpath.as_ptr(), mask) };
            if wd < 0 {
                missed = true;
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
            watching = true;
            if missed && tx.send(Ev::All).is_err() {
                return;
            }
        }
        // SAFETY: reading into a buffer we own, of its length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return;
        }
        let n = n as usize;
        let mut off = 0;
        let head = std::mem::size_of::<libc::inotify_event>();
        while off + head <= n {
            // SAFETY: the kernel wrote whole events; read_unaligned copes
            // with the byte buffer's alignment.
            let ev: libc::inotify_event =
                unsafe { std::ptr::read_unaligned(buf[off..].as_ptr().cast()) };
            let name_len = ev.len as usize;
            let name_bytes = &buf[off + head..(off + head + name_len).min(n)];
            off += head + name_len;
            let name = name_bytes.split(|&b| b == 0).next().unwrap_or(&[]);
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
                    // SAFETY: plain syscall on our fd and watch.
                    unsafe { libc::inotify_rm_watch(fd, wd) };
                }
                if ev.mask & (libc::IN_IGNORED | libc::IN_DELETE_SELF | libc::IN_MOVE_SELF) != 0 {
                    watching = false;
                    missed = true;
                }
                tx.send(Ev::All)
            } else {
                match std::str::from_utf8(name) {
                    Ok(n) if unitgate_helper::name::is_valid_instance(n) => {
                        tx.send(Ev::Dirty(n.to_owned()))
                    }
                    _ => Ok(()),
                }
            };
            if sent.is_err() {
                return;
            }
        }
    }
}
