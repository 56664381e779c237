//! Operators beside an app's service account (issue #15): people in a
//! group the app lists in `callers` and its installer in `operators=` run
//! the whole lifecycle on the account's instances. Each of their commands
//! runs as the account (ctl/src/handover.rs), so nothing an operator runs
//! opens what the account can write, and the account gets no way to act as
//! an operator: no sudo rule towards them, and never their terminal.

use unitgate_tests::{fixture, Machine};

const USAGE_NO_PERM: i32 = 77;

/// App `opsapp` (a `new-app` scaffold) with `callers = ["opsapp", "@ops"]`
/// and `operators=ops`; alice is in ops (and may read the journal),
/// mallory is not.
fn machine(label: &str) -> Machine {
    let m = Machine::boot(label);
    m.install_unitgate();
    m.sh(
        "groupadd ops && useradd -m -G ops,systemd-journal alice && useradd -m mallory && \
         mkdir -p /root/apps && \
         unitgate new-app opsapp --exec 'sleep infinity' --dir /root/apps >/dev/null && \
         sed -i 's/^callers = .*/callers = [\"opsapp\", \"@ops\"]/' /root/apps/opsapp/app.toml && \
         echo operators=ops >> /root/apps/opsapp/install.conf && \
         cd /mnt/src && sh deploy/install.sh --app-only --app /root/apps/opsapp",
    )
    .ok();
    m
}

#[test]
fn an_operator_runs_the_whole_lifecycle_on_the_accounts_instances_as_the_account() {
    let m = machine("operators-lifecycle");
    let rule = m.sh("cat /etc/sudoers.d/unitgate-app-opsapp").ok();
    assert!(
        rule.stdout
            .contains("%ops ALL=(opsapp) NOPASSWD: /usr/local/bin/unitgate\n"),
        "{rule}"
    );
    let ug = |args: &str| m.sh_as("alice", &format!("unitgate --app opsapp {args}"));
    ug("init one --set GREETING=hi").ok();
    // The account's files, not alice's: the command ran as the account.
    let owner = m
        .sh("stat -c %U /var/lib/opsapp/instances/one /var/lib/opsapp/instances/one/instance.env")
        .ok();
    assert_eq!(owner.stdout, "opsapp\nopsapp\n", "{owner}");
    ug("start one").ok();
    let status = ug("status --json").ok();
    let doc: serde_json::Value = serde_json::from_str(&status.stdout).expect("status JSON");
    assert_eq!(doc["instances"][0]["instance"], "one", "{status}");
    assert_eq!(doc["instances"][0]["active_state"], "active", "{status}");
    // The app named by UNITGATE_APP alone reaches the account's command too
    // (sudo clears the variable).
    let status = m.sh_as("alice", "UNITGATE_APP=opsapp unitgate status").ok();
    assert!(status.stdout.contains("one"), "{status}");
    ug("restart one").ok();
    // logs reads the journal as alice herself: no state involved.
    let logs = ug("logs one").ok();
    assert!(logs.stdout.contains("opsapp@one.service"), "{logs}");
    ug("stop one").ok();
    // An error keeps its code and, under --json, its document.
    let missing = ug("--json start nosuch");
    assert_eq!(missing.code, 66, "{missing}");
    let doc: serde_json::Value =
        serde_json::from_str(&missing.stdout).expect("one JSON results document");
    assert_eq!(
        doc["results"][0]["error"]["kind"], "no-such-instance",
        "{missing}"
    );
    ug("delete one").ok();
    let gone = m.sh("test -e /var/lib/opsapp/instances/one");
    assert!(!gone.success(), "{gone}");
}

#[test]
fn the_account_gets_no_way_to_act_as_an_operator() {
    let m = machine("operators-account");
    // What install.conf's operators= may name: groups that exist, never a
    // glob (the installer splits the words; from / a `*` would have been
    // bin, root, sys…). Refused with nothing changed.
    for (bad, says) in [
        ("*", "operators= holds group names"),
        ("nosuch", "no such group"),
    ] {
        let out = m.sh(&format!(
            "cd / && cp -r /root/apps/opsapp /root/apps/bad && \
             sed -i 's/^operators=.*/operators={bad}/' /root/apps/bad/install.conf && \
             sh /mnt/src/deploy/install.sh --app-only --app /root/apps/bad; rc=$?; \
             rm -rf /root/apps/bad; exit $rc"
        ));
        assert!(!out.success() && out.stderr.contains(says), "{out}");
        m.sh("test ! -e /etc/sudoers.d/unitgate-app-bad && test ! -e /etc/unitgate/apps/bad.toml")
            .ok();
    }
    // No rule towards alice for the account, and none for a non-operator.
    let towards = m.sh_as("opsapp", "sudo -n -u alice true");
    assert!(!towards.success(), "{towards}");
    let stranger = m.sh_as("mallory", "unitgate --app opsapp status");
    assert_eq!(stranger.code, USAGE_NO_PERM, "{stranger}");
    assert!(stranger.stderr.contains("may not drive"), "{stranger}");

    // A link the account plants where an instance would be leads to
    // alice's own files: her delete runs as the account, which neither
    // follows the link nor could write there.
    m.sh("install -d -o alice -m 0755 /home/alice/keep && echo mine > /home/alice/keep/file")
        .ok();
    m.sh_as(
        "opsapp",
        "ln -s /home/alice/keep /var/lib/opsapp/instances/two",
    )
    .ok();
    let _ = m.sh_as("alice", "unitgate --app opsapp delete two");
    let kept = m.sh("cat /home/alice/keep/file").ok();
    assert_eq!(kept.stdout, "mine\n", "{kept}");

    // The account's process never holds alice's terminal: her `watch`, run
    // on a terminal, reaches it through pipes, in a session of its own.
    let fds = m
        .sh(
            "cd /home/alice/keep && \
             su -s /bin/sh alice -c \"DISPLAY=:9 script -qfc 'unitgate --app opsapp watch' /dev/null\" \
               </dev/null >/dev/null 2>&1 &
             deadline=$(( $(date +%s) + 60 ))
             until pid=$(pgrep -u opsapp -f 'unitgate.* watch'); do
               [ $(date +%s) -lt $deadline ] || { echo 'no watch as opsapp'; exit 1; }
               sleep 0.1
             done
             for fd in 0 1 2; do readlink /proc/$pid/fd/$fd | sed 's/:.*//'; done
             ps -o tty= -p $pid
             # Nor her directory (a way into her tree through /proc), nor
             # her environment (sudo keeps DISPLAY).
             readlink /proc/$pid/cwd
             tr '\\0' '\\n' < /proc/$pid/environ | grep -c '^DISPLAY=' || true
             # The terminal goes away: script ends, its session hangs up.
             kill $(pgrep -u alice -x script)",
        )
        .ok();
    assert_eq!(fds.stdout, "/dev/null\npipe\npipe\n?\n/\n0\n", "{fds}");
    fixture::wait_until_showing(
        &m,
        "the watch gone with its terminal",
        "! pgrep -u opsapp -f 'unitgate.* watch' >/dev/null",
        60,
        "ps -eo pid,ppid,pgid,sid,user,stat,tty,args",
    );
}
