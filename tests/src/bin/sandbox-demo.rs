//! The README's "run it" command: boots a throw-away machine with a real
//! systemd, installs unitgate and a small demo app, and walks a real
//! lifecycle as the app's unprivileged service account, printing each
//! command and its output, then powers the machine off and removes it.
//!
//!     cargo build --release && sudo target/release/sandbox-demo
//!
//! (Needs root for systemd-nspawn, like the end-to-end tests.)

use unitgate_tests::Machine;

const APP: &str = r#"# /etc/unitgate/apps/demo.toml
unit = "demo@.service"
callers = ["demo"]
actions = ["enable", "disable", "restart", "reset-failed", "show"]
state_dir = "/var/lib/demo/instances"
port_range = [20000, 20099]

[env]
GREETING = "hello from {instance} on port {port}"
"#;

const UNIT: &str = r#"[Unit]
Description=unitgate demo instance %i

[Service]
User=demo
ExecStart=/usr/local/bin/unitgate --app demo launch %i -- /bin/sh -c 'echo "$$GREETING"; exec sleep infinity'
Restart=on-failure

[Install]
WantedBy=multi-user.target
"#;

fn step(m: &Machine, user: &str, cmd: &str) {
    let prompt = if user == "root" { "#" } else { "$" };
    println!("\n{user}@sandbox{prompt} {cmd}");
    let out = if user == "root" {
        m.sh(cmd)
    } else {
        m.sh_as(user, cmd)
    };
    print!("{}", out.stdout);
    if !out.stderr.is_empty() {
        print!("{}", out.stderr);
    }
    if out.code != 0 {
        println!("[exit {}]", out.code);
    }
}

fn main() {
    println!("== booting a sandbox machine (systemd-nspawn, real systemd) ==");
    let mut m = Machine::boot("sandbox-demo");
    println!(
        "booted {} in {:.1} s",
        m.name(),
        m.last_boot_time().as_secs_f64()
    );
    println!("\n== installing unitgate (deploy/install.sh) and the demo app ==");
    print!("{}", m.install_unitgate().stdout);
    m.write_file("/etc/unitgate/apps/demo.toml", APP.as_bytes(), 0o644);
    m.write_file("/etc/systemd/system/demo@.service", UNIT.as_bytes(), 0o644);
    m.sh("systemctl daemon-reload").ok();
    m.add_user("demo", &["unitgate"]);
    m.sh("install -d -o demo -g demo -m 0750 /var/lib/demo /var/lib/demo/instances")
        .ok();
    step(&m, "root", "cat /etc/unitgate/apps/demo.toml");

    println!("\n== the lifecycle, as the unprivileged service account 'demo' ==");
    step(&m, "demo", "id");
    step(&m, "demo", "unitgate init web1");
    step(&m, "demo", "unitgate init web2");
    step(&m, "demo", "cat /var/lib/demo/instances/web1/instance.env");
    step(&m, "demo", "unitgate start web1 web2");
    step(&m, "demo", "unitgate status");
    step(&m, "demo", "unitgate status --json web1");
    println!("\n== rebooting the machine ==");
    m.reboot();
    step(&m, "demo", "unitgate status");
    step(&m, "demo", "unitgate stop web1");
    step(&m, "demo", "unitgate status web1");
    step(&m, "demo", "unitgate delete web1 web2");
    step(&m, "demo", "unitgate status");
    step(&m, "demo", "unitgate start web1");
    println!("\n== done; powering off and removing the sandbox ==");
}
