//! A private link between test machines and the host: a Linux bridge the
//! test creates, with an address of its own from a range nothing else on
//! the host routes, removed when dropped. Machines join it with
//! [`crate::Machine::boot_on_link`] (nspawn's `--network-bridge=`), each at
//! an address of the same /24; nothing but the bridge's own members can
//! reach those addresses.

use std::process::Command;

/// A bridge named after this process (`ugl<pid>`), so that a run killed
/// before its drop leaves one the next run recognises and removes.
pub struct Link {
    name: String,
    prefix: String,
}

impl Link {
    /// Creates the bridge, up, with `<prefix>.1/24` on the host's side.
    /// Stale bridges of dead test processes go first; a /24 another route
    /// of the host already covers is skipped.
    pub fn create() -> Link {
        remove_stale_links();
        let name = format!("ugl{}", std::process::id());
        let prefix = free_prefix();
        ip(&["link", "add", &name, "type", "bridge"]);
        let link = Link { name, prefix };
        ip(&[
            "addr",
            "add",
            &format!("{}/24", link.host_address()),
            "dev",
            &link.name,
        ]);
        ip(&["link", "set", &link.name, "up"]);
        link
    }

    /// The bridge's interface name on the host.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The host's own address on the link.
    pub fn host_address(&self) -> String {
        format!("{}.1", self.prefix)
    }

    /// The address of member `n` (1 to 250) on the link.
    pub fn address(&self, n: u8) -> String {
        assert!((1..=250).contains(&n), "member {n} out of range");
        format!("{}.{}", self.prefix, n + 1)
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.name])
            .status();
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The first `10.213.N` (N from this process's id) whose /24 no route of
/// the host covers yet.
fn free_prefix() -> String {
    let routes = Command::new("ip")
        .args(["-4", "route", "show", "table", "all"])
        .output()
        .expect("run ip route");
    let routes = String::from_utf8_lossy(&routes.stdout);
    let start = std::process::id() % 200;
    (0..200)
        .map(|i| format!("10.213.{}", (start + i) % 200 + 20))
        .find(|prefix| !routes.contains(&format!("{prefix}.")))
        .expect("a free 10.213.N.0/24 for the test link")
}

/// `ugl<pid>` bridges whose process is gone.
fn remove_stale_links() {
    let Ok(entries) = std::fs::read_dir("/sys/class/net") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("ugl").and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip").args(["link", "del", &name]).status();
        }
    }
}
