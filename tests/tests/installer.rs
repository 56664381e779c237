//! deploy/install.sh and deploy/uninstall.sh for unitgate itself: what they
//! put in place, that a broken sudoers drop-in never reaches
//! /etc/sudoers.d, and that uninstalling leaves the system as it was (an
//! operator's app configs kept, sudo working).

use unitgate_tests::{completion, Machine, Os};

/// Everything the installer may touch, with owners and modes.
const FOOTPRINT: &str = "for p in /usr/local/bin/unitgate /usr/local/libexec/unitgate \
     /usr/local/libexec/unitgate/unitgate-systemctl /etc/sudoers.d/unitgate /etc/unitgate \
     /etc/unitgate/apps /var/lib/unitgate /usr/local/share/man/man1/unitgate.1 \
     /usr/local/share/man/man1/unitgate-start.1 /usr/local/share/man/man1/unitgate-new-app.1 \
     /usr/local/share/bash-completion/completions/unitgate \
     /usr/local/share/zsh/site-functions/_unitgate \
     /usr/local/share/fish/vendor_completions.d/unitgate.fish \
     /usr/local/share/unitgate/schema/unitgate.schema.json \
     /usr/local/share/doc/unitgate/cli.md /usr/local/share/doc/unitgate/watch.md; do \
       if [ -e $p ]; then stat -c '%n %U:%G %a' $p; else echo \"$p absent\"; fi; \
     done; getent group unitgate >/dev/null && echo 'group unitgate' || echo 'no group unitgate'; \
     ls -A /etc/sudoers.d";

#[test]
fn uninstall_removes_what_install_added_and_keeps_app_configs() {
    let m = Machine::boot("uninstall");
    m.add_user("carol", &[]);
    m.write_file(
        "/etc/sudoers.d/carol",
        b"carol ALL=(root) NOPASSWD: /usr/bin/id\n",
        0o440,
    );
    let before = m.sh(FOOTPRINT).ok().stdout;

    m.install_unitgate();
    let installed = m.sh(FOOTPRINT).ok().stdout;
    assert!(
        installed.contains("/usr/local/libexec/unitgate/unitgate-systemctl root:root 755"),
        "{installed}"
    );
    assert!(installed.contains("group unitgate"), "{installed}");
    for file in [
        "/usr/local/share/man/man1/unitgate-start.1 root:root 644",
        "/usr/local/share/bash-completion/completions/unitgate root:root 644",
        "/usr/local/share/zsh/site-functions/_unitgate root:root 644",
        "/usr/local/share/fish/vendor_completions.d/unitgate.fish root:root 644",
        "/usr/local/share/unitgate/schema/unitgate.schema.json root:root 644",
        "/usr/local/share/doc/unitgate/cli.md root:root 644",
    ] {
        assert!(installed.contains(file), "{file}: {installed}");
    }
    // Again: nothing changes, but the page of a command that is gone.
    let again = m
        .sh("touch /usr/local/share/man/man1/unitgate-gone.1 \
             && cd /mnt/src && CARGO_TARGET_DIR=/mnt/target sh deploy/install.sh")
        .ok();
    assert!(!again.stdout.contains("installed"), "{again}");
    assert!(
        again.stdout.contains(
            "removed /usr/local/share/man/man1/unitgate-gone.1 (no such command any more)"
        ),
        "{again}"
    );
    assert_eq!(m.sh(FOOTPRINT).ok().stdout, installed);
    // An operator's app (complete enough to be driven: completion reads
    // it as a command would).
    m.write_file(
        "/etc/unitgate/apps/mine.toml",
        b"unit = \"mine@.service\"\ncallers = [\"root\"]\nactions = [\"show\"]\n",
        0o644,
    );

    // man finds every page on its own search path (man-db, as on the
    // host; /usr/local/share/man is on it), and they name the installed
    // schema.
    assert_eq!(
        // Debian's /usr/local/man is a link to share/man.
        m.sh("readlink -f \"$(man -w unitgate-start)\"").ok().stdout,
        "/usr/local/share/man/man1/unitgate-start.1\n"
    );
    let page = m.sh("LC_ALL=C MANWIDTH=200 man unitgate-start").ok().stdout;
    for text in [
        "EXIT STATUS",
        "unitgate --json start web1",
        "/usr/local/share/unitgate/schema/unitgate.schema.json",
        "unitgate-stop(1)",
    ] {
        assert!(page.contains(text), "{text}: {page}");
    }
    let pages = m.sh("man -w unitgate unitgate-new-app").ok().stdout;
    assert!(pages.contains("/man/man1/unitgate-new-app.1\n"), "{pages}");

    // bash completion at a TAB: the app from /etc/unitgate/apps, its
    // instances from its state directory, value lists; no file names.
    m.sh("mkdir -p /var/lib/mine/instances/web1 /var/lib/mine/instances/web2 /var/lib/mine/instances/.locks \
          && touch /var/lib/mine/instances/not-a-dir /root/mine.txt").ok();
    let bash = "/usr/local/share/bash-completion/completions/unitgate";
    let tab = |words: &[&str]| completion::bash(&m, None, bash, words);
    // With nothing typed yet clap offers the options too.
    let names = |words: &[&str]| {
        let mut all = tab(words);
        all.retain(|c| !c.starts_with('-'));
        all
    };
    assert_eq!(tab(&["unitgate", "--app", "mi"]), ["mine"]);
    assert_eq!(
        names(&["unitgate", "--app", "mine", "start", ""]),
        ["web1", "web2"]
    );
    assert_eq!(
        tab(&["unitgate", "--app=mine", "stop", "web2", "w"]),
        ["web1", "web2"]
    );
    assert_eq!(
        tab(&["unitgate", "--app", "mine", "status", "x"]),
        Vec::<String>::new()
    );
    assert_eq!(
        tab(&["unitgate", "--color", ""]),
        ["auto", "always", "never"]
    );
    assert!(tab(&["unitgate", "st"]).contains(&"start".to_owned()));

    let out = m
        .sh("cd /mnt/src && sh deploy/uninstall.sh && sh deploy/uninstall.sh")
        .ok();
    assert!(
        out.stdout.contains("removed /etc/sudoers.d/unitgate"),
        "{out}"
    );
    let after = m.sh(FOOTPRINT).ok().stdout;
    // Everything back as it was, except the operator's config (and the
    // directories holding it).
    m.sh("test -f /etc/unitgate/apps/mine.toml").ok();
    let expected = before
        .replace("/etc/unitgate absent", "/etc/unitgate root:root 755")
        .replace(
            "/etc/unitgate/apps absent",
            "/etc/unitgate/apps root:root 755",
        );
    assert_eq!(after, expected);
    // sudo keeps working for everybody else.
    m.sh(&format!("{} -c", m.os().visudo())).ok();
    let id = m.sh_as("carol", "sudo -n /usr/bin/id -u").ok();
    assert_eq!(id.stdout.trim(), "0");
}

#[test]
fn a_drop_in_that_fails_visudo_is_never_installed() {
    a_broken_drop_in_never_lands(Os::from_env());
}

/// Where sudo-rs is /usr/bin/sudo and its checker is only `visudo-rs`
/// (Debian's name), the installer validates with that: a broken drop-in is
/// still refused, and the real one installs and works through sudo-rs.
#[test]
fn where_sudo_is_sudo_rs_the_drop_in_is_validated_with_visudo_rs() {
    let m = a_broken_drop_in_never_lands(Os::TrixieSudoRs);
    assert!(!m.sh("command -v visudo").success(), "visudo-rs only");
    let out = m.install_unitgate();
    assert!(
        out.stdout.contains("installed /etc/sudoers.d/unitgate"),
        "{out}"
    );
    m.sh("visudo-rs -c").ok();
    m.add_user("dave", &["unitgate"]);
    let helper = "/usr/local/libexec/unitgate/unitgate-systemctl";
    // Through sudo-rs, the helper runs as root and judges dave (no app
    // named `none`: 78), instead of sudo-rs refusing.
    let out = m.sh_as("dave", &format!("sudo -n {helper} none show x"));
    assert_eq!(out.code, 78, "{out}");
    assert!(out.stderr.starts_with("unitgate-systemctl:"), "{out}");
}

/// Installs from a copy of the checkout whose drop-in is broken: refused,
/// naming the checker, with nothing in /etc/sudoers.d and sudo working.
fn a_broken_drop_in_never_lands(os: Os) -> Machine {
    let m = Machine::boot_on(os, "badsudoers");
    m.add_user("carol", &[]);
    m.write_file(
        "/etc/sudoers.d/carol",
        b"carol ALL=(root) NOPASSWD: /usr/bin/id\n",
        0o440,
    );
    // A copy of the checkout whose drop-in template is broken (its sources
    // only: build trees, fuzz corpora and their artifacts are gigabytes).
    m.sh("mkdir /root/src && tar -C /mnt/src --exclude=./target --exclude='*/fuzz/target' \
          --exclude='*/fuzz/corpus' --exclude='*/fuzz/artifacts' --exclude=./.git -cf - . \
          | tar -C /root/src -xf - && echo '%unitgate ALL=(root NOPASSWD' >> /root/src/sudoers/unitgate")
        .ok();
    let out = m.sh("cd /root/src && CARGO_TARGET_DIR=/mnt/target sh deploy/install.sh");
    assert_ne!(out.code, 0, "{out}");
    assert!(out.stderr.contains(os.visudo()), "{out}");
    let dropins = m.sh("ls -A /etc/sudoers.d").ok().stdout;
    assert!(!dropins.contains("unitgate"), "{dropins}");
    m.sh(&format!("{} -c", os.visudo())).ok();
    let id = m.sh_as("carol", "sudo -n /usr/bin/id -u").ok();
    assert_eq!(id.stdout.trim(), "0");
    m
}

#[test]
fn staged_install_with_destdir_and_prefix_touches_only_the_stage() {
    let m = Machine::boot("destdir");
    let out = m
        .sh("cd /mnt/src && PREFIX=/usr DESTDIR=/root/stage CARGO_TARGET_DIR=/mnt/target sh deploy/install.sh")
        .ok();
    assert!(out.success(), "{out}");
    let staged = m
        .sh("cd /root/stage && find . -type f | sort && cat etc/sudoers.d/unitgate | grep -v '^#'")
        .ok()
        .stdout;
    assert!(staged.contains("./usr/bin/unitgate"), "{staged}");
    assert!(
        staged.contains("./usr/libexec/unitgate/unitgate-systemctl"),
        "{staged}"
    );
    assert!(
        staged.contains("%unitgate ALL=(root) NOPASSWD: /usr/libexec/unitgate/unitgate-systemctl"),
        "{staged}"
    );
    for file in [
        "./usr/share/man/man1/unitgate.1",
        "./usr/share/man/man1/unitgate-start.1",
        "./usr/share/bash-completion/completions/unitgate",
        // Debian's zsh looks here under /usr.
        "./usr/share/zsh/vendor-completions/_unitgate",
        "./usr/share/fish/vendor_completions.d/unitgate.fish",
        "./usr/share/unitgate/schema/unitgate.schema.json",
        "./usr/share/doc/unitgate/watch.md",
    ] {
        assert!(staged.contains(file), "{file}: {staged}");
    }
    let page = m
        .sh("cat /root/stage/usr/share/man/man1/unitgate-status.1")
        .ok()
        .stdout;
    assert!(
        page.contains("/usr/share/unitgate/schema/unitgate.schema.json"),
        "{page}"
    );
    // Nothing on the live system.
    m.sh("! getent group unitgate && test ! -e /etc/sudoers.d/unitgate && test ! -e /usr/local/bin/unitgate \
          && test ! -e /usr/local/share/man/man1/unitgate.1 && test ! -e /usr/share/man/man1/unitgate.1")
        .ok();
}

#[test]
fn install_and_uninstall_refuse_a_helper_directory_another_account_owns() {
    // The helper's directory was left to another account: it may already
    // have swapped the binary sudo runs as root. Re-owning it silently (as
    // the installer once did) would hide that; root refuses and says why.
    let m = Machine::boot("helperdir");
    m.install_unitgate();
    m.add_user("mallory", &[]);
    m.sh("chown mallory /usr/local/libexec/unitgate").ok();
    let before = m.sh(FOOTPRINT).ok().stdout;

    let out = m.sh("cd /mnt/src && CARGO_TARGET_DIR=/mnt/target sh deploy/install.sh");
    assert_eq!(m.sh(FOOTPRINT).ok().stdout, before, "{out}");
    assert_ne!(out.code, 0, "{out}");
    assert!(
        out.stderr.contains(
            "refusing to write in /usr/local/libexec/unitgate: /usr/local/libexec/unitgate is owned by mallory"
        ) && out.stderr.contains("nothing was installed"),
        "{out}"
    );

    let out = m.sh("cd /mnt/src && sh deploy/uninstall.sh");
    assert_eq!(m.sh(FOOTPRINT).ok().stdout, before, "{out}");
    assert_ne!(out.code, 0, "{out}");
    assert!(
        out.stderr
            .contains("refusing to remove anything from /usr/local/libexec/unitgate")
            && out.stderr.contains("nothing was removed"),
        "{out}"
    );
}

#[test]
fn an_account_two_apps_share_outlives_the_purge_of_the_one_that_made_it() {
    // DrDr's three apps run as one account. Purging the one that created
    // it waited for the others' processes to end, and would then have
    // removed the account under them.
    let m = Machine::boot("shared-account");
    m.install_unitgate();
    m.sh(
        "mkdir -p /root/apps && cd /mnt/src && \
         for app in first second; do \
           unitgate new-app $app --exec 'sleep infinity' --user shared --dir /root/apps >/dev/null && \
           sh deploy/install.sh --app-only --app /root/apps/$app >/dev/null || exit 1; \
         done",
    )
    .ok();
    m.sh_as(
        "shared",
        "unitgate --app second init one && unitgate --app second start one",
    )
    .ok();
    let purge = m
        .sh("cd /mnt/src && sh deploy/uninstall.sh --app first --purge")
        .ok();
    assert!(
        purge
            .stdout
            .contains("kept service account shared: app second runs as it too"),
        "{purge}"
    );
    m.sh("getent passwd shared >/dev/null && systemctl is-active -q second@one.service && test ! -e /var/lib/first")
        .ok();
    // The app that stays removes it.
    m.sh("cd /mnt/src && sh deploy/uninstall.sh --app second --purge")
        .ok();
    let gone = m.sh("getent passwd shared");
    assert!(!gone.success(), "{gone}");
}
