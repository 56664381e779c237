//! The unitgate test bed: a real systemd, booted in a throw-away
//! systemd-nspawn container on this machine's own OS or on a cached
//! Debian 13 tree, that end-to-end tests drive as root or as an
//! unprivileged user through real `sudo` (or sudo-rs).
//!
//! - [`machine::Machine`] boots, reboots and powers off a container whose
//!   `/etc`, `/var/lib` and `/usr/local` persist across reboots in upper
//!   directories of its own, and cleans everything up when dropped (also on
//!   panic).
//! - [`completion`] drives the installed bash completion as bash does.
//! - [`os::Os`] is which OS a machine boots (the environment selects it for
//!   whole suites); [`image`] builds and caches the Debian 13 trees.
//! - [`paths`] finds the checkout and the built binaries.
//! - [`fixture`] (the helper's tests) and [`demo`] (the CLI's tests and the
//!   benchmarks) set up a machine with unitgate and a demo app installed.
//! - [`network::Link`] is a private link (a bridge) between machines and
//!   the host, for tests that need several hosts.
//! - [`corpus::check_each`] runs a whole corpus of cases before failing.
//! - [`vm`] is the VM tier: groups of checks run in one boot of a Debian
//!   guest under QEMU, for what needs a real kernel's cgroup v2 controllers.

pub mod cgroup;
pub mod completion;
pub mod corpus;
pub mod demo;
pub mod fixture;
pub mod image;
pub mod machine;
pub mod network;
pub mod os;
pub mod package;
pub mod paths;
pub mod vm;

pub use machine::{Machine, Output};
pub use network::Link;
pub use os::Os;
