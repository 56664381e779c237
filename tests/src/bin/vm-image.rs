//! Gets the VM tier's guest image ready before the suite runs, so that the
//! test command shows a cold build (Debian packages, about 3 minutes) as a
//! step of its own instead of inside the first VM test's time:
//!
//!     cargo build --release && sudo target/release/vm-image
//!
//! Prints the image's key and directory and whether it was built now.
//! Fails (exit 101, with the build log's tail) if it cannot be had.

use unitgate_tests::vm::ImageCache;

fn main() {
    let image = ImageCache::standard().ensure();
    match image.built_in() {
        Some(took) => println!(
            "vm image {}: built in {:.0} s into {}",
            image.key(),
            took.as_secs_f64(),
            image.dir().display()
        ),
        None => println!(
            "vm image {}: cached in {}",
            image.key(),
            image.dir().display()
        ),
    }
}
