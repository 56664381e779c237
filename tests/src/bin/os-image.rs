//! Gets the OS matrix's Debian 13 trees ready (with sudo, and with sudo-rs)
//! before a suite needs them. The test command runs it in the background
//! while the host tier runs, so that a machine without the cache builds the
//! trees (Debian packages, under two minutes) beside other work instead of
//! inside the first test that boots Debian 13:
//!
//!     cargo build --release && sudo target/release/os-image
//!
//! Prints each tree's directory. A test that needs a tree while this builds
//! it waits for the build's lock. Fails (exit 101, with the build log's
//! tail) if a tree cannot be had.

use unitgate_tests::image::{trixie_root, Variant};

fn main() {
    for variant in [Variant::Sudo, Variant::SudoRs] {
        println!("{variant:?}: {}", trixie_root(variant).display());
    }
}
