//! The CLI against a hostile service account: the account owns the state
//! tree, so it can plant links, FIFOs and lookalike directories in it
//! before root (`sudo unitgate …`, as operators type it) or another caller
//! runs a command. None of it may make them act outside that tree.
//!
//! Each test is the reproduction of a route to root or a root-run deletion
//! found against an earlier version; under `UNITGATE_UNDER_TEST` pointing
//! at that version, they fail.

mod common;

use common::{demo_machine, ug, STATE_DIR, USER};
use unitgate_tests::Machine;

/// `unitgate --app demo ARGS` as root, the way `sudo unitgate …` runs it;
/// a command that hangs is killed after a minute (exit 124).
fn ug_root(m: &Machine, args: &str) -> unitgate_tests::Output {
    m.sh(&format!("timeout 60 unitgate --app demo {args}"))
}

/// Replaces the demo unit with one that needs nothing but a shell, so these
/// tests exercise the same thing on any version of the CLI.
/// Operator `op` (group demoops, a caller of demo) and the sudo rule the
/// installer writes for `operators=demoops`: op's commands run as the
/// account (docs/deploy.md, operators).
fn operator(m: &Machine) {
    m.add_user("op", &["unitgate", "demoops"]);
    m.write_file(
        "/etc/sudoers.d/unitgate-app-demo",
        format!("%demoops ALL=({USER}) NOPASSWD: /usr/local/bin/unitgate\n").as_bytes(),
        0o440,
    );
}

fn plain_demo_unit(m: &Machine) {
    m.write_file(
        "/etc/systemd/system/demo@.service",
        b"[Service]\nUser=demo\nExecStart=/bin/sleep infinity\n[Install]\nWantedBy=multi-user.target\n",
        0o644,
    );
    m.sh("systemctl daemon-reload").ok();
}

#[test]
fn root_status_writes_no_file_through_links_the_account_planted() {
    let m = demo_machine("hostile-cache");
    plain_demo_unit(&m);
    ug(&m, "init r1").ok();
    ug(&m, "start r1").ok();
    // The cache's temporary file used to be `.status-cache.<pid>`: the
    // account sprays links for the next few thousand pids (from one
    // process: each `ln` would use up a pid), to a file whose mere
    // existence would give it root (any path root writes would do).
    m.sh_as(
        USER,
        &format!(
            "set -e; mkdir -p {STATE_DIR}/.locks; rm -f {STATE_DIR}/.locks/status-cache.json; \
             cd {STATE_DIR}/.locks; next=$(cat /proc/sys/kernel/ns_last_pid); \
             perl -e 'symlink(\"/etc/ld.so.preload\", \".status-cache.$_\") or die for ($ARGV[0] .. $ARGV[0] + 3000)' $next"
        ),
    )
    .ok();
    let out = ug_root(&m, "status --json r1");
    assert_eq!(out.code, 0, "{out}");
    let json: serde_json::Value = serde_json::from_str(&out.stdout).expect("status JSON");
    assert_eq!(json["instances"][0]["active_state"], "active", "{out}");
    m.sh("test ! -e /etc/ld.so.preload").ok();
    // The cache was written all the same, as a file of the account's.
    let owner = m
        .sh(&format!(
            "stat -c %U {STATE_DIR}/.locks/status-cache.$(id -u {USER}).json"
        ))
        .ok();
    assert_eq!(owner.stdout.trim(), USER, "{owner}");
}

#[test]
fn root_never_deletes_outside_the_state_dir_the_account_redirected() {
    let m = demo_machine("hostile-redirect");
    m.add_user("alice", &[]);
    m.sh("echo precious > /home/alice/thesis && chown alice: /home/alice/thesis")
        .ok();
    // The account owns /var/lib/demo: it swaps its state directory for a
    // link to /home, where `alice` now looks like an instance.
    m.sh_as(
        USER,
        &format!("rm -rf {STATE_DIR} && ln -s /home {STATE_DIR}"),
    )
    .ok();
    let status = ug_root(&m, "status --json");
    assert!(
        !status.stdout.contains("\"alice\""),
        "root's status listed /home/alice as an instance: {status}"
    );
    let delete = ug_root(&m, "delete alice");
    assert_ne!(delete.code, 0, "{delete}");
    m.sh("test -f /home/alice/thesis").ok();
    // Refused with one line that says why, for root and the account alike.
    for out in [&status, &delete, &ug(&m, "status")] {
        assert_eq!(out.code, 77, "{out}");
        assert!(
            out.stderr.contains("symbolic link") && out.stderr.trim_end().lines().count() == 1,
            "{out}"
        );
    }
}

#[test]
fn root_acts_as_the_account_that_owns_the_state() {
    let m = demo_machine("hostile-drop");
    plain_demo_unit(&m);
    // An operator's habit: everything through sudo.
    ug_root(&m, "init r1").ok();
    ug_root(&m, "start r1").ok();
    let owner = m
        .sh(&format!(
            "stat -c %U {STATE_DIR}/r1 {STATE_DIR}/r1/instance.env"
        ))
        .ok();
    assert_eq!(owner.stdout, format!("{USER}\n{USER}\n"), "{owner}");
    // The helper saw the account, not root, as its caller.
    let audit = m
        .sh("journalctl -t unitgate-systemctl --no-pager -o cat")
        .ok();
    assert!(
        audit
            .stdout
            .lines()
            .any(|l| l.contains("caller=demo") && l.contains("enable")),
        "{audit}"
    );
    // And the account can go on with what root made.
    ug(&m, "stop r1").ok();
    ug(&m, "delete r1").ok();
}

#[test]
fn an_install_command_the_account_can_rewrite_never_runs_as_another_caller() {
    let m = demo_machine("hostile-install");
    operator(&m);
    // The documented multi-caller layout, with the install program in a
    // tree of the account's own.
    m.sh(&format!(
        "set -e; install -d -o {USER} -g {USER} -m 0755 /srv/demo /srv/demo/bin; \
         printf '#!/bin/sh\\ntouch /tmp/install-ran-as-$(id -un)\\n' > /srv/demo/bin/install; \
         chown {USER}: /srv/demo/bin/install; chmod 0755 /srv/demo/bin/install; \
         sed -i 's|^install_command = .*|install_command = [\"/srv/demo/bin/install\"]|' /etc/unitgate/apps/demo.toml"
    ))
    .ok();
    // The operator's install runs as the account: the account's program,
    // as the account, never as the operator.
    m.sh_as("op", "unitgate --app demo install").ok();
    m.sh("test ! -e /tmp/install-ran-as-op").ok();
    m.sh(&format!(
        "test -e /tmp/install-ran-as-{USER} && rm /tmp/install-ran-as-{USER}"
    ))
    .ok();
    // The account runs its own program.
    ug(&m, "install").ok();
    m.sh(&format!("test -e /tmp/install-ran-as-{USER}")).ok();
    // Not once a group may change a directory above it: members of that
    // group could swap the program for the account.
    m.sh("chmod 0775 /srv/demo/bin").ok();
    let out = ug(&m, "install");
    assert_eq!(out.code, 77, "{out}");
    assert!(out.stderr.contains("writable by its group"), "{out}");
}

#[test]
fn an_instance_named_app_is_an_instance_like_any_other() {
    let m = demo_machine("hostile-app-name");
    let out = ug(&m, "--wait 3 init app");
    assert_eq!(out.code, 0, "{out}");
    ug(&m, "--wait 3 init other").ok();
    ug(&m, "--wait 3 delete app").ok();
}

#[test]
fn planted_fifos_and_links_in_the_state_dir_neither_hang_nor_redirect_a_command() {
    let m = demo_machine("hostile-plant");
    plain_demo_unit(&m);
    ug(&m, "init a").ok();
    // A FIFO for an environment file (every init reads them all, to find a
    // free port) and for a lock file, a link where the next instance goes,
    // a link for the status cache, a link inside an instance to be deleted.
    m.sh_as(
        USER,
        &format!(
            "set -e; cd {STATE_DIR}; rm a/instance.env; mkfifo a/instance.env; \
             mkfifo .locks/instance.b.lock; ln -s /etc c; \
             ln -sf /etc/passwd .locks/status-cache.json; ln -s /etc a/etc"
        ),
    )
    .ok();
    // Bounded here, so that a hang fails the test instead of the run.
    let init = ug_root(&m, "--wait 2 init d");
    assert_eq!(init.code, 0, "{init}");
    let lock = ug_root(&m, "--wait 2 init b");
    assert_eq!(lock.code, 74, "a FIFO is not a lock file: {lock}");
    assert!(lock.stderr.contains("not a regular file"), "{lock}");
    let link = ug_root(&m, "init c");
    assert_eq!(link.code, 73, "{link}");
    ug_root(&m, "status").ok();
    ug_root(&m, "delete a").ok();
    m.sh("test -s /etc/passwd && test -d /etc/systemd && grep -q '^root:' /etc/passwd")
        .ok();
    let links = m
        .sh(&format!("test -L {STATE_DIR}/c && readlink {STATE_DIR}/c"))
        .ok();
    assert_eq!(links.stdout.trim(), "/etc");
}

#[test]
fn a_status_cache_the_account_forged_does_not_fool_another_caller() {
    let m = demo_machine("hostile-forged-cache");
    plain_demo_unit(&m);
    operator(&m);
    ug(&m, "init r1").ok();
    ug(&m, "start r1").ok();
    let real_pid = m
        .sh("systemctl show -P MainPID demo@r1.service")
        .ok()
        .stdout
        .trim()
        .to_owned();
    // The account knows the unit's invocation id, so it can write an entry
    // that looks current, with a main PID of its choosing, under the cache
    // names an operator's status would read: its own too, which the
    // operator's status, run as the account, would find.
    m.sh_as(
        USER,
        &format!(
            "set -e; inv=$(basename $(readlink /run/systemd/units/invocation:demo@r1.service)); \
             mkdir -p {STATE_DIR}/.locks; for f in status-cache.json status-cache.$(id -u op).json status-cache.$(id -u).json; do \
             printf '{{\"demo@r1.service\":{{\"invocation\":\"%s\",\"main_pid\":1,\"restarts\":0,\"since_usec\":1,\"control_group\":null}}}}' $inv \
               > {STATE_DIR}/.locks/$f; done"
        ),
    )
    .ok();
    let out = m.sh_as("op", "unitgate --app demo status --json r1").ok();
    let json: serde_json::Value = serde_json::from_str(&out.stdout).expect("status JSON");
    assert_eq!(
        json["instances"][0]["main_pid"].to_string(),
        real_pid,
        "the operator was shown the account's main PID: {out}"
    );
}

#[test]
fn the_install_command_gets_neither_roots_terminal_nor_its_environment() {
    let m = demo_machine("hostile-install-tty");
    // What the account's install program sees, and a try at the terminal:
    // a title-setting escape sequence and a bell in its output.
    m.write_file(
        "/usr/local/share/demo/install.sh",
        b"#!/bin/sh\n\
          { [ -t 0 ] && echo tty0; [ -t 1 ] && echo tty1; [ -t 2 ] && echo tty2; \
            (exec 3</dev/tty) 2>/dev/null && echo ctty; \
            env | grep -c ROOT_SECRET; id -un; } > /var/lib/demo/instances/seen\n\
          printf 'plain \\033]0;owned\\007line\\n'\n",
        0o755,
    );
    // Root on a terminal (`script` gives the command a pty), with a secret
    // in its environment.
    let out = m
        .sh("ROOT_SECRET=hunter2 script -qec 'unitgate --app demo install' /dev/null")
        .ok();
    assert!(out.stdout.contains("plain ]0;ownedline"), "{out}");
    assert!(
        !out.stdout.contains('\x1b') && !out.stdout.contains('\x07'),
        "{out:?}"
    );
    let seen = m.sh(&format!("cat {STATE_DIR}/seen")).ok().stdout;
    assert_eq!(seen, format!("0\n{USER}\n"), "what the install program saw");
}
