//! The installer, the uninstaller and `--purge` over a tree the service
//! account has tampered with (issue #9, item 1): root never acts on what a
//! non-root account can write.
//!
//! The attacker is the reference app's own account, `runner`, which owns
//! `/var/lib/runner-pool` and so may replace anything below it with links,
//! FIFOs or files, or let another user in. Each test plants its trap as that
//! account (`sh_as("runner", …)`), has root run the documented, idempotent
//! command (`install.sh --app-only --app …`, `uninstall.sh --app … --purge`),
//! and checks that what the trap pointed at is exactly as it was, that the
//! account cannot swap the helper sudo runs as root, and that root said what
//! it refused. The legitimate paths (install, re-install, purge, also with
//! the account already gone) keep working. The Debian package's postinst
//! is held to the same rule.

use std::sync::OnceLock;

use unitgate_tests::package::{self, WRITABLE_USR};
use unitgate_tests::{Machine, Output};

const HELPER_DIR: &str = "/usr/local/libexec/unitgate";
const HELPER: &str = "/usr/local/libexec/unitgate/unitgate-systemctl";
const INSTALL_RUNNER_POOL: &str =
    "cd /mnt/src && sh deploy/install.sh --app-only --app deploy/apps/runner-pool";
const PURGE_RUNNER_POOL: &str = "cd /mnt/src && sh deploy/uninstall.sh --app runner-pool --purge";

/// A machine with unitgate and the runner-pool reference app installed by
/// the real installer.
fn machine_with_runner_pool(label: &str) -> Machine {
    let m = Machine::boot(label);
    m.install_unitgate();
    m.sh(INSTALL_RUNNER_POOL).ok();
    m
}

/// Owner, mode, type and (for files) checksum of each path, and the listing
/// of each directory among them: what must not change.
fn footprint(m: &Machine, paths: &[&str]) -> String {
    let list = paths.join(" ");
    m.sh(&format!(
        "for p in {list}; do \
           if [ -e \"$p\" ] || [ -L \"$p\" ]; then stat -c '%n %U:%G %a %F' \"$p\"; else echo \"$p absent\"; fi; \
           if [ -f \"$p\" ] && [ ! -p \"$p\" ]; then sha256sum \"$p\"; fi; \
           if [ -d \"$p\" ] && [ ! -L \"$p\" ]; then ls -la --time-style=+ \"$p\" | sed 1d; fi; \
         done"
    ))
    .ok()
    .stdout
}

/// What the helper is and where it lives (plus sudo's rule for it).
fn helper_footprint(m: &Machine) -> String {
    footprint(m, &[HELPER_DIR, HELPER, "/etc/sudoers.d/unitgate"])
}

/// The account tries to put its own program where sudo runs the helper as
/// root, and runs it through sudo. Must fail on a sound installation.
fn assert_account_cannot_swap_the_helper(m: &Machine) {
    let out = m.sh_as(
        "runner",
        &format!(
            "printf '#!/bin/sh\\nid -u\\n' > {HELPER_DIR}/.evil && chmod 0755 {HELPER_DIR}/.evil \
             && mv -f {HELPER_DIR}/.evil {HELPER} && sudo -n {HELPER}"
        ),
    );
    assert!(
        !(out.success() && out.stdout.trim() == "0"),
        "the account swapped the helper and ran its own program as root: {out}"
    );
    assert!(
        !out.success(),
        "the account could write the helper's directory: {out}"
    );
}

/// Root's command was refused: non-zero exit and a message naming `what`.
#[track_caller]
fn assert_refused(out: &Output, what: &str, why: &str) {
    assert_ne!(out.code, 0, "root's command was not refused: {out}");
    assert!(
        out.stderr.contains(&format!("refusing {what}")) && out.stderr.contains(why),
        "the refusal does not name {what} ({why}): {out}"
    );
}

/// Writes an app directory /root/apps/NAME inside the machine whose
/// install.conf has the given lines (account, home, dirs), with a config
/// and a skeleton but no units.
fn write_app(m: &Machine, name: &str, install_conf: &str) -> String {
    let dir = format!("/root/apps/{name}");
    m.write_file(
        &format!("{dir}/app.toml"),
        format!("unit = \"{name}@.service\"\ncallers = [\"runner\"]\nactions = [\"show\"]\n")
            .as_bytes(),
        0o644,
    );
    m.write_file(
        &format!("{dir}/install.conf"),
        install_conf.as_bytes(),
        0o644,
    );
    m.write_file(&format!("{dir}/skeleton/README"), b"an instance\n", 0o644);
    dir
}

/// A root-only directory (root:root 0700) with a file in `sub`: what a
/// link planted by the account may point at, and what must survive.
fn root_only_dir(m: &Machine, dir: &str, sub: &str) {
    m.sh(&format!(
        "set -e; mkdir -m 0700 {dir}; mkdir -p {dir}/{sub}; echo keep > {dir}/{sub}/keep"
    ))
    .ok();
}

#[test]
fn reinstall_refuses_a_dirs_entry_the_account_replaced_by_a_link_to_the_helpers_directory() {
    let m = machine_with_runner_pool("tamper-link");
    m.sh_as(
        "runner",
        &format!(
            "rm -rf /var/lib/runner-pool/spool && ln -s {HELPER_DIR} /var/lib/runner-pool/spool"
        ),
    )
    .ok();
    let before = helper_footprint(&m);

    let out = m.sh(INSTALL_RUNNER_POOL);
    assert_eq!(
        helper_footprint(&m),
        before,
        "the helper's directory changed: {out}"
    );
    assert_account_cannot_swap_the_helper(&m);
    m.sh(&format!("test ! -e {HELPER_DIR}/queue")).ok();
    assert_refused(&out, "/var/lib/runner-pool/spool", "symbolic link");
    assert!(out.stderr.contains("nothing was changed"), "{out}");
    // The trap is left as the account made it: it is the account's tree.
    m.sh(&format!(
        "test \"$(readlink /var/lib/runner-pool/spool)\" = {HELPER_DIR}"
    ))
    .ok();
}

#[test]
fn reinstall_refuses_a_link_that_would_put_a_child_directory_outside_the_tree() {
    // spool -> /usr/local/lib: spool/queue would be /usr/local/lib/queue.
    let m = machine_with_runner_pool("tamper-intermediate");
    m.sh_as(
        "runner",
        "rm -rf /var/lib/runner-pool/spool && ln -s /usr/local/lib /var/lib/runner-pool/spool",
    )
    .ok();
    let before = footprint(&m, &["/usr/local/lib", "/usr/local/lib/queue"]);

    let out = m.sh(INSTALL_RUNNER_POOL);
    assert_eq!(
        footprint(&m, &["/usr/local/lib", "/usr/local/lib/queue"]),
        before,
        "a directory outside the app's tree changed: {out}"
    );
    assert_refused(&out, "/var/lib/runner-pool/spool", "symbolic link");
}

#[test]
fn reinstall_refuses_a_top_directory_that_is_a_link() {
    // An app whose directories live in one the account owns: the account
    // can replace the app's top directory itself.
    let m = machine_with_runner_pool("tamper-top");
    let app = write_app(
        &m,
        "nested",
        "account=runner\ndirs=/var/lib/runner-pool/nested /var/lib/runner-pool/nested/data\n",
    );
    let install = format!("cd /mnt/src && sh deploy/install.sh --app-only --app {app}");
    m.sh(&install).ok();
    let st = m
        .sh("stat -c '%n %U:%G %a' /var/lib/runner-pool/nested /var/lib/runner-pool/nested/data")
        .ok()
        .stdout;
    assert_eq!(
        st,
        "/var/lib/runner-pool/nested runner:runner 750\n\
         /var/lib/runner-pool/nested/data runner:runner 750\n"
    );
    m.sh_as(
        "runner",
        &format!(
            "rm -rf /var/lib/runner-pool/nested && ln -s {HELPER_DIR} /var/lib/runner-pool/nested"
        ),
    )
    .ok();
    let before = helper_footprint(&m);

    let out = m.sh(&install);
    assert_eq!(
        helper_footprint(&m),
        before,
        "the helper's directory changed: {out}"
    );
    assert_account_cannot_swap_the_helper(&m);
    m.sh(&format!("test ! -e {HELPER_DIR}/data")).ok();
    assert_refused(&out, "/var/lib/runner-pool/nested", "symbolic link");
}

#[test]
fn reinstall_refuses_a_directory_replaced_by_a_fifo_or_a_file() {
    let m = machine_with_runner_pool("tamper-fifo");
    let queue = "/var/lib/runner-pool/spool/queue";
    for (plant, kind) in [
        (format!("rmdir {queue} && mkfifo -m 0600 {queue}"), "fifo"),
        (
            format!("rm -f {queue} && echo data > {queue}"),
            "regular file",
        ),
    ] {
        m.sh_as("runner", &plant).ok();
        let before = footprint(&m, &[queue, "/var/lib/runner-pool/spool"]);
        let out = m.sh(INSTALL_RUNNER_POOL);
        assert_eq!(
            footprint(&m, &[queue, "/var/lib/runner-pool/spool"]),
            before,
            "{kind}: {out}"
        );
        assert_refused(&out, queue, &format!("is a {kind}, not a directory"));
        assert!(out.stderr.contains("nothing was changed"), "{out}");
    }
}

#[test]
fn reinstall_refuses_a_directory_another_user_owns() {
    // The account lets another user in, who makes the queue directory her
    // own: root must not hand her directory (and her files) to the account.
    let m = machine_with_runner_pool("tamper-owner");
    m.add_user("alice", &[]);
    m.sh_as(
        "runner",
        "chmod 0755 /var/lib/runner-pool && chmod 0777 /var/lib/runner-pool/spool \
         && rmdir /var/lib/runner-pool/spool/queue",
    )
    .ok();
    m.sh_as(
        "alice",
        "mkdir -m 0700 /var/lib/runner-pool/spool/queue && echo mine > /var/lib/runner-pool/spool/queue/mine",
    )
    .ok();
    let alices = [
        "/var/lib/runner-pool/spool/queue",
        "/var/lib/runner-pool/spool/queue/mine",
    ];
    let before = footprint(&m, &alices);
    assert!(
        before.contains("queue alice:alice 700 directory"),
        "{before}"
    );

    let out = m.sh(INSTALL_RUNNER_POOL);
    assert_eq!(
        footprint(&m, &alices),
        before,
        "alice's directory changed hands: {out}"
    );
    assert_refused(&out, "/var/lib/runner-pool/spool/queue", "owned by uid");
}

#[test]
fn install_refuses_system_directories_as_app_directories() {
    let m = Machine::boot("tamper-sysdirs");
    m.install_unitgate();
    let watched = [
        "/var/lib",
        "/usr/local/libexec/unitgate",
        "/etc/unitgate",
        "/etc/unitgate/apps",
    ];
    let before = footprint(&m, &watched);
    for (conf, refused, why) in [
        (
            "home=/var/lib\ndirs=/var/lib/greedy",
            "/var/lib:",
            "a system directory",
        ),
        (
            "dirs=/var/lib/greedy /var/lib/",
            "/var/lib/:",
            "not a plain path",
        ),
        (
            "dirs=/var/lib/greedy /var//lib",
            "/var//lib:",
            "not a plain path",
        ),
        (
            "dirs=/usr/local/libexec/unitgate",
            "/usr/local/libexec/unitgate:",
            "inside /usr/local/libexec/unitgate",
        ),
        ("dirs=/srv /srv/greedy", "/srv:", "a system directory"),
    ] {
        let app = write_app(&m, "greedy", &format!("account=greedy\n{conf}\n"));
        let out = m.sh(&format!(
            "cd /mnt/src && sh deploy/install.sh --app-only --app {app}"
        ));
        assert_eq!(footprint(&m, &watched), before, "{conf}: {out}");
        // Nothing half-done: no account, no record, no config, no directory.
        m.sh("! id greedy && test ! -e /var/lib/unitgate/apps/greedy \
              && test ! -e /etc/unitgate/apps/greedy.toml && test ! -e /var/lib/greedy \
              && test ! -e /srv/greedy")
            .ok();
        assert_refused(&out, refused, why);
    }
}

#[test]
fn install_refuses_a_prefix_an_account_can_write() {
    let m = machine_with_runner_pool("tamper-prefix");
    m.sh("mkdir -p /opt && mkdir -m 0775 /opt/shared && chgrp runner /opt/shared")
        .ok();
    let before = helper_footprint(&m);
    for (prefix, why) in [
        ("/var/lib/runner-pool/prefix", "owned by runner"),
        ("/opt/shared", "writable by its group or others"),
    ] {
        let out = m.sh(&format!(
            "cd /mnt/src && PREFIX={prefix} CARGO_TARGET_DIR=/mnt/target sh deploy/install.sh"
        ));
        assert_eq!(helper_footprint(&m), before, "{prefix}: {out}");
        m.sh(&format!(
            "test ! -e /var/lib/runner-pool/prefix && test -z \"$(ls -A /opt/shared)\" \
             && ! grep -q {prefix} /etc/sudoers.d/unitgate"
        ))
        .ok();
        assert_ne!(out.code, 0, "{prefix}: {out}");
        assert!(
            out.stderr.contains("refusing to write in") && out.stderr.contains(why),
            "{prefix}: {out}"
        );
        assert!(out.stderr.contains("nothing was installed"), "{out}");
    }
    // An app's files are refused the same way.
    let out = m.sh(&format!(
        "PREFIX=/opt/shared; export PREFIX; {INSTALL_RUNNER_POOL}"
    ));
    assert_refused(
        &out,
        "/opt/shared/lib/systemd/system",
        "writable by its group or others",
    );
    m.sh("test -z \"$(ls -A /opt/shared)\"").ok();
}

#[test]
fn purge_never_follows_a_link_to_a_root_only_directory() {
    // spool -> a root-only directory holding queue: the old purge ran
    // rm -rf /var/lib/runner-pool/spool/queue as root, through the link.
    let m = machine_with_runner_pool("tamper-purge");
    root_only_dir(&m, "/var/lib/secret", "queue");
    m.sh_as(
        "runner",
        "rm -rf /var/lib/runner-pool/spool && ln -s /var/lib/secret /var/lib/runner-pool/spool",
    )
    .ok();
    let before = footprint(
        &m,
        &[
            "/var/lib/secret",
            "/var/lib/secret/queue",
            "/var/lib/secret/queue/keep",
        ],
    );

    let out = m.sh(PURGE_RUNNER_POOL);
    assert_eq!(
        footprint(
            &m,
            &[
                "/var/lib/secret",
                "/var/lib/secret/queue",
                "/var/lib/secret/queue/keep"
            ]
        ),
        before,
        "purge reached through the account's link: {out}"
    );
    let out = out.ok();
    assert!(out.stdout.contains("not followed"), "{out}");
    // The app's own data and account are gone all the same.
    m.sh("test ! -e /var/lib/runner-pool && ! id runner && test ! -e /var/lib/unitgate/apps/runner-pool")
        .ok();
}

#[test]
fn purge_removes_a_top_directory_link_never_its_target() {
    let m = machine_with_runner_pool("tamper-purge-top");
    // The account replaces the top directory of an app that lives in its tree.
    let app = write_app(
        &m,
        "nested",
        "account=runner\ndirs=/var/lib/runner-pool/nested /var/lib/runner-pool/nested/data\n",
    );
    m.sh(&format!(
        "cd /mnt/src && sh deploy/install.sh --app-only --app {app}"
    ))
    .ok();
    root_only_dir(&m, "/var/lib/secret", "data");
    m.sh_as(
        "runner",
        "rm -rf /var/lib/runner-pool/nested && ln -s /var/lib/secret /var/lib/runner-pool/nested",
    )
    .ok();
    let secret = [
        "/var/lib/secret",
        "/var/lib/secret/data",
        "/var/lib/secret/data/keep",
    ];
    let before = footprint(&m, &secret);
    let out = m.sh("cd /mnt/src && sh deploy/uninstall.sh --app nested --purge");
    assert_eq!(
        footprint(&m, &secret),
        before,
        "purge followed the top link: {out}"
    );
    out.ok();
    m.sh("test ! -e /var/lib/runner-pool/nested && test ! -L /var/lib/runner-pool/nested")
        .ok();
    // runner-pool's account was not created for 'nested': it stays.
    m.sh("id runner && test -d /var/lib/runner-pool/instances")
        .ok();

    // A link at a top directory in a root directory (left by an operator,
    // a restore): removed as a link, its target untouched.
    root_only_dir(&m, "/var/lib/secret2", "spool/queue");
    m.sh("mkdir /var/lib/secret2/instances && echo keep > /var/lib/secret2/instances/keep")
        .ok();
    m.sh("rm -rf /var/lib/runner-pool && ln -s /var/lib/secret2 /var/lib/runner-pool")
        .ok();
    let secret2 = [
        "/var/lib/secret2",
        "/var/lib/secret2/spool/queue",
        "/var/lib/secret2/spool/queue/keep",
        "/var/lib/secret2/instances",
        "/var/lib/secret2/instances/keep",
    ];
    let before = footprint(&m, &secret2);
    let out = m.sh(PURGE_RUNNER_POOL);
    assert_eq!(
        footprint(&m, &secret2),
        before,
        "purge followed the top link: {out}"
    );
    let out = out.ok();
    assert!(out.stdout.contains("not followed"), "{out}");
    m.sh("test ! -e /var/lib/runner-pool && test ! -L /var/lib/runner-pool && ! id runner")
        .ok();
}

#[test]
fn untampered_install_is_idempotent_and_purge_works_with_the_account_gone() {
    let m = machine_with_runner_pool("tamper-legit");
    let dirs = "/var/lib/runner-pool /var/lib/runner-pool/instances \
                /var/lib/runner-pool/spool /var/lib/runner-pool/spool/queue";
    let st = m.sh(&format!("stat -c '%n %U:%G %a' {dirs}")).ok().stdout;
    assert_eq!(
        st,
        "/var/lib/runner-pool runner:runner 750\n\
         /var/lib/runner-pool/instances runner:runner 750\n\
         /var/lib/runner-pool/spool runner:runner 750\n\
         /var/lib/runner-pool/spool/queue runner:runner 750\n"
    );
    // A second run changes nothing and says nothing changed.
    let again = m.sh(INSTALL_RUNNER_POOL).ok();
    for word in [
        ": installed ",
        ": updated ",
        ": created ",
        ": gave ",
        ": set ",
    ] {
        assert!(
            !again.stdout.contains(word),
            "second run changed something: {again}"
        );
    }
    assert_eq!(
        m.sh(&format!("stat -c '%n %U:%G %a' {dirs}")).ok().stdout,
        st
    );

    // The account's data, with links of its own pointing out of its tree.
    root_only_dir(&m, "/var/lib/secret", "x");
    m.sh_as(
        "runner",
        "set -e; cd /var/lib/runner-pool; mkdir -p instances/w1/deep/er; echo hi > instances/w1/deep/er/f; \
         ln -s /var/lib/secret instances/w1/out; ln -s /usr/local/libexec/unitgate spool/queue/helper; \
         chmod 0500 instances/w1/deep",
    )
    .ok();
    // The account is gone before its data: purge removes the data as the
    // directories' owner, by number.
    m.sh("userdel runner").ok();
    let before = footprint(
        &m,
        &[
            "/var/lib/secret",
            "/var/lib/secret/x/keep",
            HELPER_DIR,
            HELPER,
        ],
    );
    let out = m.sh(PURGE_RUNNER_POOL);
    let left = m.sh("ls -laR /var/lib/runner-pool 2>&1 || true").stdout;
    assert!(out.success(), "{out}\nleft: {left}");
    assert!(
        out.stdout.contains("purged /var/lib/runner-pool\n"),
        "{out}"
    );
    m.sh("test ! -e /var/lib/runner-pool && test ! -e /var/lib/unitgate/apps/runner-pool")
        .ok();
    assert_eq!(
        footprint(
            &m,
            &[
                "/var/lib/secret",
                "/var/lib/secret/x/keep",
                HELPER_DIR,
                HELPER
            ]
        ),
        before
    );
    // Idempotent.
    m.sh(PURGE_RUNNER_POOL).ok();
}

/// The package, built once per run.
fn deb() -> String {
    static BUILT: OnceLock<String> = OnceLock::new();
    BUILT
        .get_or_init(|| package::build("deploy-deb-tampered"))
        .clone()
}

#[test]
fn deb_postinst_refuses_a_config_directory_another_account_owns() {
    // /etc/unitgate was left to another account (an operator's slip), which
    // made apps/ a link to a root-only directory: the old postinst's
    // chown/chmod went through it and opened that directory to everyone.
    let deb = deb();
    let m = Machine::boot("tamper-deb");
    m.sh(WRITABLE_USR).ok();
    m.add_user("alice", &[]);
    root_only_dir(&m, "/var/lib/secret", "x");
    m.sh("mkdir -m 0755 /etc/unitgate && chown alice:alice /etc/unitgate")
        .ok();
    m.sh_as("alice", "ln -s /var/lib/secret /etc/unitgate/apps")
        .ok();
    let watched = [
        "/var/lib/secret",
        "/var/lib/secret/x",
        "/var/lib/secret/x/keep",
    ];
    let before = footprint(&m, &watched);

    let out = m.sh(&format!("dpkg -i {deb}"));
    assert_eq!(footprint(&m, &watched), before, "{out}");
    assert_ne!(out.code, 0, "configure must fail: {out}");
    assert!(
        out.stderr.contains("refusing to write in /etc/unitgate ("),
        "{out}"
    );
    // Nothing of ours is active: no drop-in, sudo intact.
    m.sh("test ! -e /etc/sudoers.d/unitgate && visudo -c").ok();
}
