//! The Debian package (deploy/deb/build-deb.sh): built from the release
//! binaries, installed with `dpkg -i` in a test machine, a reference app
//! activated from its kit and driven through a full lifecycle by its
//! unprivileged service account, then `dpkg --purge`d: no file of ours is
//! left and sudo still works.
//!
//! The machine's /usr is the host's, read-only; dpkg needs to write there,
//! so the test first mounts a throw-away overlay (tmpfs upper) on /usr
//! inside the machine. Every regular file in that upper layer is then
//! something dpkg wrote, which makes "nothing left after purge" exact.

use std::sync::OnceLock;

use unitgate_tests::package::{self, WRITABLE_USR};
use unitgate_tests::{completion, Machine, Os};

/// The package, built once per run.
fn deb() -> String {
    static BUILT: OnceLock<String> = OnceLock::new();
    BUILT.get_or_init(|| package::build("deploy-deb")).clone()
}

#[test]
fn deb_installs_runs_an_app_lifecycle_and_purges_without_a_trace() {
    let deb = deb();
    let m = Machine::boot("deploy-deb");
    m.sh(WRITABLE_USR).ok();
    m.sh("test ! -e /etc/unitgate && ! getent group unitgate")
        .ok();

    m.sh(&format!("dpkg -i {deb}")).ok();
    // The layout.
    let st = m
        .sh("stat -c '%n %U:%G %a' /usr/bin/unitgate /usr/libexec/unitgate/unitgate-systemctl \
             /etc/sudoers.d/unitgate /etc/unitgate/apps /usr/share/man/man1/unitgate.1.gz \
             /usr/share/bash-completion/completions/unitgate /usr/lib/systemd/system/left4me-server@.service")
        .ok()
        .stdout;
    assert_eq!(
        st,
        "/usr/bin/unitgate root:root 755\n\
         /usr/libexec/unitgate/unitgate-systemctl root:root 755\n\
         /etc/sudoers.d/unitgate root:root 440\n\
         /etc/unitgate/apps root:root 755\n\
         /usr/share/man/man1/unitgate.1.gz root:root 644\n\
         /usr/share/bash-completion/completions/unitgate root:root 644\n\
         /usr/lib/systemd/system/left4me-server@.service root:root 644\n"
    );
    let rule = m.sh("cat /etc/sudoers.d/unitgate").ok().stdout;
    assert!(
        rule.contains("%unitgate ALL=(root) NOPASSWD: /usr/libexec/unitgate/unitgate-systemctl\n"),
        "{rule}"
    );
    m.sh("visudo -c && getent group unitgate").ok();
    // Every page, the completions for three shells, the schema and the
    // docs; man finds the pages on its own search path.
    let st = m
        .sh(
            "stat -c '%n %U:%G %a' /usr/share/man/man1/unitgate-start.1.gz \
             /usr/share/man/man1/unitgate-new-app.1.gz /usr/share/zsh/vendor-completions/_unitgate \
             /usr/share/fish/vendor_completions.d/unitgate.fish \
             /usr/share/unitgate/schema/unitgate.schema.json \
             /usr/share/doc/unitgate/cli.md.gz /usr/share/doc/unitgate/watch.md.gz",
        )
        .ok()
        .stdout;
    assert_eq!(
        st.lines().filter(|l| l.ends_with(" root:root 644")).count(),
        7,
        "{st}"
    );
    assert_eq!(
        m.sh("man -w unitgate-start").ok().stdout,
        "/usr/share/man/man1/unitgate-start.1.gz\n"
    );
    let page = m.sh("LC_ALL=C MANWIDTH=200 man unitgate-start").ok().stdout;
    for text in [
        "EXIT STATUS",
        "/usr/share/unitgate/schema/unitgate.schema.json",
        "unitgate-stop(1)",
    ] {
        assert!(page.contains(text), "{text}: {page}");
    }
    m.sh("zcat /usr/share/doc/unitgate/cli.md.gz | grep -q '^## Completion and manual pages'")
        .ok();
    // Templates shipped, none enabled, no app active.
    let enabled = m
        .sh("ls /etc/systemd/system/*.wants/ | grep -E 'left4me|drdr|runner|orchestrator' || true")
        .stdout;
    assert!(
        enabled.trim().is_empty(),
        "the package enabled units: {enabled}"
    );
    m.sh("test -z \"$(ls -A /etc/unitgate/apps)\"").ok();
    for unit in [
        "left4me-server@1.service",
        "drdr-xvfb@1.service",
        "runner-pool@w1.service",
        "orchestrator@o1.service",
    ] {
        let state = m.sh(&format!("systemctl is-enabled {unit} || true")).stdout;
        assert_eq!(state.trim(), "disabled", "{unit}");
    }

    // Activate the runner-pool reference app from the package's kit: it
    // must not touch the packaged unit files.
    let out = m
        .sh("PREFIX=/usr sh /usr/share/unitgate/deploy/install.sh --app-only --app /usr/share/unitgate/deploy/apps/runner-pool")
        .ok();
    assert!(!out.stdout.contains("/usr/lib/systemd/system"), "{out}");
    m.sh("dpkg -V unitgate").ok();

    // The lifecycle, as the service account, through sudo and the helper.
    let ug = |args: &str| m.sh_as("runner", &format!("unitgate --app runner-pool {args}"));
    ug("init w1").ok();
    // bash completion at a TAB, as the service account: the only app it
    // may drive, and that app's instance.
    let bash = "/usr/share/bash-completion/completions/unitgate";
    let tab = |words: &[&str]| completion::bash(&m, Some("runner"), bash, words);
    // With nothing typed yet clap offers the options too.
    let names = |words: &[&str]| {
        let mut all = tab(words);
        all.retain(|c| !c.starts_with('-'));
        all
    };
    assert_eq!(tab(&["unitgate", "--app", ""]), ["runner-pool"]);
    assert_eq!(names(&["unitgate", "start", ""]), ["w1"]);
    assert_eq!(
        tab(&["unitgate", "--app", "runner-pool", "logs", "w"]),
        ["w1"]
    );
    ug("start w1").ok();
    assert_eq!(
        m.sh("systemctl is-active runner-pool@w1.service")
            .stdout
            .trim(),
        "active"
    );
    let status = ug("--json status").ok().stdout;
    assert!(
        status.contains("\"enabled\": true") || status.contains("\"enabled\":true"),
        "{status}"
    );
    ug("restart w1").ok();
    ug("stop w1").ok();
    assert_eq!(
        m.sh("systemctl is-active runner-pool@w1.service || true")
            .stdout
            .trim(),
        "inactive"
    );
    ug("start w1").ok();

    // Removing the app (and its data), then the package.
    // A running instance is stopped first (it would keep the account busy).
    let out = m
        .sh("PREFIX=/usr sh /usr/share/unitgate/deploy/uninstall.sh --app runner-pool --purge")
        .ok();
    assert!(
        out.stdout
            .contains("stopped and disabled: runner-pool@w1.service"),
        "{out}"
    );
    // Instances an operator enabled by hand, of templates the package
    // ships (two services and a timer, of three apps; the timer running,
    // an escaped instance name among them): removing the package stops and
    // disables them, so that nothing runs from a template that is gone and
    // no enable link is left pointing at one.
    m.sh(
        r"systemctl enable task-runner@t1.service 'left4me-server@a\x2db.service' \
          && systemctl enable --now drdr-x-restart@d1.timer",
    )
    .ok();
    m.sh("dpkg --purge unitgate").ok();
    let dangling = m.sh("find /etc/systemd/system -xtype l").ok().stdout;
    assert!(
        dangling.trim().is_empty(),
        "enable links left pointing at nothing: {dangling}"
    );
    let timer = m.sh("systemctl is-active drdr-x-restart@d1.timer || true");
    assert_eq!(timer.stdout.trim(), "inactive", "{timer}");

    // No file of ours is left.
    let left = m.sh("find /run/usr-rw/upper -not -type d").ok().stdout;
    assert!(left.trim().is_empty(), "files left under /usr: {left}");
    let left = m
        .sh("ls -d /etc/unitgate /etc/sudoers.d/unitgate /etc/sudoers.d/.unitgate* /var/lib/unitgate \
             /var/lib/dpkg/info/unitgate.* /var/lib/runner-pool 2>/dev/null || true")
        .stdout;
    assert!(left.trim().is_empty(), "left behind: {left}");
    m.sh("! getent group unitgate && ! id runner").ok();
    assert!(
        m.sh("dpkg -s unitgate").code != 0,
        "dpkg still knows the package"
    );
    assert_eq!(
        m.sh("systemctl is-active runner-pool@w1.service || true")
            .stdout
            .trim(),
        "inactive"
    );
    // sudo still works (and the helper is no longer reachable through it).
    m.sh("visudo -c").ok();
    m.add_user("opal", &[]);
    m.write_file(
        "/etc/sudoers.d/opal",
        b"opal ALL=(root) NOPASSWD: /usr/bin/id\n",
        0o440,
    );
    assert_eq!(
        m.sh_as("opal", "sudo -n /usr/bin/id -u").ok().stdout.trim(),
        "0"
    );
}

#[test]
fn deb_refuses_to_enable_a_sudoers_drop_in_that_fails_visudo() {
    // postinst validates before it moves the file into place: with a broken
    // packaged drop-in, configure fails and sudo keeps working.
    let deb = deb();
    let m = Machine::boot("deploy-deb-bad");
    m.sh(WRITABLE_USR).ok();
    m.sh(&format!("dpkg --unpack {deb}")).ok();
    m.sh("chmod 644 /usr/share/unitgate/sudoers && echo 'this is not sudoers syntax' >> /usr/share/unitgate/sudoers").ok();
    let out = m.sh("dpkg --configure unitgate");
    assert!(!out.success(), "configure must fail: {out}");
    assert!(out.stderr.contains("failed visudo -c"), "{out}");
    m.sh("test ! -e /etc/sudoers.d/unitgate && ! ls /etc/sudoers.d/.unitgate.* 2>/dev/null && visudo -c").ok();
    m.sh("dpkg --purge unitgate").ok();
}

/// Where sudo-rs replaced sudo's programs (sudo's own visudo is gone, only
/// `visudo-rs` checks sudoers): postinst validates with it, the drop-in
/// works through sudo-rs, and a broken one is still refused.
#[test]
fn deb_validates_with_visudo_rs_where_sudo_is_sudo_rs() {
    let deb = deb();
    let m = Machine::boot_on(Os::TrixieSudoRs, "deploy-deb-sudo-rs");
    m.sh(WRITABLE_USR).ok();
    m.sh(&format!("dpkg -i {deb}")).ok();
    m.sh("! command -v visudo && visudo-rs -c && test -e /etc/sudoers.d/unitgate")
        .ok();
    m.add_user("dave", &["unitgate"]);
    // sudo-rs runs the helper as root, which judges dave: no app `none`, 78.
    let out = m.sh_as(
        "dave",
        "sudo -n /usr/libexec/unitgate/unitgate-systemctl none show x",
    );
    assert_eq!(out.code, 78, "{out}");
    m.sh("dpkg --purge unitgate").ok();

    m.sh(&format!("dpkg --unpack {deb}")).ok();
    m.sh("chmod 644 /usr/share/unitgate/sudoers && echo 'this is not sudoers syntax' >> /usr/share/unitgate/sudoers").ok();
    let out = m.sh("dpkg --configure unitgate");
    assert!(!out.success(), "configure must fail: {out}");
    assert!(out.stderr.contains("failed visudo-rs -c"), "{out}");
    m.sh("test ! -e /etc/sudoers.d/unitgate && visudo-rs -c")
        .ok();
    m.sh("dpkg --purge unitgate").ok();
}
