//! Which operating system a test machine boots: the host's own Debian 12
//! (systemd 252, sudo), or a Debian 13 tree built and cached by
//! [`crate::image`] (systemd 257), with sudo or with sudo-rs as
//! `/usr/bin/sudo`.
//!
//! [`Machine::boot`](crate::Machine::boot) boots [`Os::from_env`]: the
//! host unless [`OS_ENV`] names another, which is how `tests/run-all.sh`
//! re-runs whole suites on each OS (the test binaries, built on the host,
//! run unchanged inside). A test that is about one OS boots it by name with
//! [`Machine::boot_on`](crate::Machine::boot_on).

use std::path::PathBuf;

use crate::image::{self, Variant};

/// `host` (the default), `trixie` or `trixie-sudo-rs`.
pub const OS_ENV: &str = "UNITGATE_TESTBED_OS";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Os {
    /// The host's own `/` (Debian 12: systemd 252, sudo 1.9).
    Host,
    /// Debian 13 from the image cache: systemd 257, sudo 1.9.
    Trixie,
    /// The same Debian 13 with sudo-rs as `/usr/bin/sudo` (sudo's own
    /// programs moved aside, its `/etc/sudoers` kept, the way Ubuntu 25.10
    /// switches) and no `visudo`, only sudo-rs's `visudo-rs`.
    TrixieSudoRs,
}

impl Os {
    pub const ALL: [Os; 3] = [Os::Host, Os::Trixie, Os::TrixieSudoRs];

    /// The OS [`OS_ENV`] names; the host when it is unset or empty. Any
    /// other value fails the test: a typo must not quietly test the host.
    pub fn from_env() -> Os {
        let value = std::env::var(OS_ENV).unwrap_or_default();
        if value.is_empty() {
            return Os::Host;
        }
        Os::ALL
            .into_iter()
            .find(|os| os.name() == value)
            .unwrap_or_else(|| {
                let names: Vec<&str> = Os::ALL.iter().map(|os| os.name()).collect();
                panic!("{OS_ENV}={value:?} is not one of {}", names.join(", "))
            })
    }

    /// The name [`OS_ENV`] takes.
    pub fn name(self) -> &'static str {
        match self {
            Os::Host => "host",
            Os::Trixie => "trixie",
            Os::TrixieSudoRs => "trixie-sudo-rs",
        }
    }

    /// The tree nspawn boots (built into the cache first if needed).
    pub fn root(self) -> PathBuf {
        match self {
            Os::Host => PathBuf::from("/"),
            Os::Trixie => image::trixie_root(Variant::Sudo),
            Os::TrixieSudoRs => image::trixie_root(Variant::SudoRs),
        }
    }

    /// The systemd major version the OS runs.
    pub fn systemd_version(self) -> u32 {
        match self {
            Os::Host => 252,
            Os::Trixie | Os::TrixieSudoRs => 257,
        }
    }

    /// How this OS's sudo starts its own messages (refusals included).
    pub fn sudo_prefix(self) -> &'static str {
        match self {
            Os::Host | Os::Trixie => "sudo:",
            Os::TrixieSudoRs => "sudo-rs:",
        }
    }

    /// The sudoers checker the OS has under that name.
    pub fn visudo(self) -> &'static str {
        match self {
            Os::Host | Os::Trixie => "visudo",
            Os::TrixieSudoRs => "visudo-rs",
        }
    }
}
