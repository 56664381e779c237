//! The Ansible collection against a fleet (issue #16): three machines with
//! a real systemd, reachable over SSH on a link the test creates (nothing
//! else on it), driven from the host by `ansible-playbook` (ansible-core
//! from PyPI, tests/ansible/venv.sh) with the collection as
//! `ansible-galaxy collection build` makes it.
//!
//! The playbooks are tests/ansible/fleet/*.yml. Root installs unitgate with
//! the collection's role (two hosts from the .deb, one from a built tree),
//! the app, its operators' group and the operator alice; alice then runs the
//! modules with no privilege beyond the sudo rule the app's `operators=`
//! gives. The machines stand for provisioned hosts: the test gives each
//! only an sshd with root's key, as a fleet's hosts have before Ansible.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use unitgate_tests::machine::BASE_DIR;
use unitgate_tests::package::{self, WRITABLE_USR};
use unitgate_tests::{fixture, paths, Link, Machine, Os, Output};

const HOSTS: [&str; 3] = ["m1", "m2", "m3"];
/// Root's part (the role, the operator) and the operator's (the documented
/// example `servers.yml`, and a server on a port of its own).
const SITE: &str = "tests/ansible/fleet/site.yml";
const REFUSED: &str = "tests/ansible/fleet/refused.yml";

#[test]
fn a_fleet_converges_once_shows_drift_and_goes_on_without_a_host_that_is_down() {
    let deb = package::build("fleet-deb");
    let link = Link::create();
    let controller = Controller::new();
    let mut fleet: Vec<Machine> = (1..=3)
        .map(|n| {
            let m = Machine::boot_on_link(Os::Host, &format!("fleet-m{n}"), &link, n);
            controller.give_ssh(&m, &link.address(n));
            m
        })
        .collect();
    controller.write_inventory(&link, &deb);

    let doc = controller.run("ansible-doc", &["unitgate.unitgate.instance"]);
    assert!(
        doc.stdout.contains("restarted") && doc.stdout.contains("EXAMPLES"),
        "{doc}"
    );

    // Converge: unitgate, the app and two servers plus one on a port of
    // its own, on every host.
    let first = controller.playbook(&[SITE]);
    assert_eq!(first.code, 0, "{first}");
    for host in HOSTS {
        let r = first.recap(host);
        assert!(
            r.changed > 0 && r.failed == 0 && r.unreachable == 0,
            "{host}: {first}"
        );
    }
    for m in &fleet {
        let status = servers(m);
        for name in ["fixed", "srv01", "srv02"] {
            assert_eq!(
                status.get(name).map(String::as_str),
                Some("active enabled"),
                "{name} on {}: {status:?}",
                m.name()
            );
        }
        let env = m
            .sh("cat /var/lib/fleetapp/instances/fixed/instance.env")
            .ok();
        assert!(env.stdout.lines().any(|l| l == r#"PORT="27050""#), "{env}");
    }
    // The role installed from both sources.
    fleet[0]
        .sh("dpkg-query -W unitgate && test -x /usr/bin/unitgate")
        .ok();
    fleet[2]
        .sh("test -x /usr/local/bin/unitgate && ! dpkg-query -W unitgate 2>/dev/null")
        .ok();

    // Again: nothing changes, on any host (the role's installers do not run,
    // the modules find every instance as wanted).
    let again = controller.playbook(&[SITE]);
    assert_eq!(again.code, 0, "{again}");
    for host in HOSTS {
        assert_eq!(again.recap(host).changed, 0, "{host}: {again}");
    }

    // The documented rolling restart: host after host, every running
    // server started anew.
    let before: Vec<_> = fleet.iter().map(main_pids).collect();
    let rolled = controller.playbook(&["ansible/examples/rolling-restart.yml"]);
    assert_eq!(rolled.code, 0, "{rolled}");
    assert_eq!(
        rolled.stdout.matches("PLAY [Rolling restart]").count(),
        3,
        "one batch per host (serial: 1): {rolled}"
    );
    for (m, pids) in fleet.iter().zip(before) {
        let now = main_pids(m);
        assert_eq!(now.len(), 3, "{}: {now:?}", m.name());
        for (name, pid) in &now {
            assert_ne!(
                pids.get(name),
                Some(pid),
                "{name} on {} kept its process",
                m.name()
            );
        }
    }

    // Check mode with a third server per host: each host would change, and the diff
    // says what; nothing does.
    let check = controller.playbook(&[SITE, "--check", "--diff", "-e", "servers_per_host=3"]);
    assert_eq!(check.code, 0, "{check}");
    for host in HOSTS {
        assert_eq!(check.recap(host).changed, 1, "{host}: {check}");
    }
    let s3_diff =
        "\"srv03\": {\n-        \"initialized\": false\n+        \"active_state\": \"active\",";
    assert_eq!(
        check.stdout.matches(s3_diff).count(),
        3,
        "each host's diff shows srv03 before and after: {check}"
    );
    for m in &fleet {
        assert!(
            !servers(m).contains_key("srv03"),
            "check mode started srv03"
        );
    }

    // Out of band on one host: drift in the fleet report.
    fleet[0].sh("systemctl stop fleetapp@srv01.service").ok();
    let report = controller.report();
    assert_eq!(report["m1"].len(), 1, "{report:?}");
    assert_eq!(report["m1"][0]["instance"], "srv01", "{report:?}");
    assert!(report["m1"][0]["drift"].is_string(), "{report:?}");
    assert!(
        report["m2"].is_empty() && report["m3"].is_empty(),
        "{report:?}"
    );

    // One host down: reported unreachable; the others go on, and the drift
    // on m1 is fixed.
    fleet[1].power_off();
    let degraded = controller.playbook(&[SITE]);
    assert_eq!(
        degraded.code, 4,
        "ansible-playbook's code for an unreachable host: {degraded}"
    );
    assert_eq!(degraded.recap("m2").unreachable, 1, "{degraded}");
    let (m1, m3) = (degraded.recap("m1"), degraded.recap("m3"));
    assert!(m1.failed == 0 && m1.changed == 1, "m1: {degraded}");
    assert!(m3.failed == 0 && m3.changed == 0, "m3: {degraded}");
    assert_eq!(servers(&fleet[0])["srv01"], "active enabled");
    let drifted: Vec<_> = status(&fleet[0])
        .into_iter()
        .filter(|i| !i["drift"].is_null())
        .collect();
    assert!(drifted.is_empty(), "m1 still drifts: {drifted:?}");

    the_role_refuses_a_tree_another_account_can_change(&controller, &fleet[2]);

    // What unitgate refuses fails the task with unitgate's own words; an
    // existing server asked for with another port is not passed over.
    let refused = controller.playbook(&[REFUSED, "--limit", "m1"]);
    assert_eq!(refused.code, 0, "both failures ignored: {refused}");
    let failures = refused.failures("m1");
    assert_eq!(failures.len(), 3, "{refused}");
    assert_eq!(failures[0]["rc"], 65, "{refused}");
    assert_eq!(failures[0]["kind"], "bad-name", "{refused}");
    assert!(
        failures[0]["msg"]
            .as_str()
            .unwrap_or_default()
            .contains("Bad Name"),
        "{refused}"
    );
    assert!(
        failures[1]["msg"]
            .as_str()
            .unwrap_or_default()
            .contains("nosuchapp"),
        "{refused}"
    );
    assert_eq!(
        failures[2]["msg"],
        "fixed exists with other settings: it keeps its own PORT='27050' (not '27051'); \
         to give it these, retire it (state: absent) and create it again",
        "{refused}"
    );
}

/// A tree an account could change never has its installer run by the
/// role: root would run what the account wrote. Here the account (mallory)
/// owns what each tree leads to: one in a world-writable directory, one of
/// root's whose `deploy` is a link into her directory.
fn the_role_refuses_a_tree_another_account_can_change(controller: &Controller, m: &Machine) {
    m.sh(
        "set -e; useradd mallory; install -d -m 1777 /var/tmp/shared; \
         install -d -o mallory /var/tmp/shared/tree /var/tmp/shared/tree/deploy \
         /var/tmp/shared/tree/target /var/tmp/shared/tree/target/release; \
         printf 'touch /root/ran-the-accounts-installer\\n' > /var/tmp/shared/tree/deploy/install.sh; \
         touch /var/tmp/shared/tree/target/release/unitgate /var/tmp/shared/tree/target/release/unitgate-systemctl; \
         chown -R mallory /var/tmp/shared/tree; \
         install -d /root/linked/target/release; ln -s /var/tmp/shared/tree/deploy /root/linked/deploy; \
         cp /var/tmp/shared/tree/target/release/* /root/linked/target/release/",
    )
    .ok();
    for (tree, refusal) in [
        (
            "/var/tmp/shared/tree",
            "/var/tmp/shared (directory, uid 0, mode 1777)",
        ),
        ("/root/linked", "/root/linked/deploy (l, uid 0, mode 777)"),
    ] {
        let run = controller.playbook(&[
            SITE,
            "--limit",
            "m3",
            "-e",
            &format!(r#"{{"unitgate_tree": "{tree}", "unitgate_target_dir": ""}}"#),
        ]);
        assert_eq!(run.code, 2, "{run}");
        assert!(
            run.stdout.contains(refusal),
            "the refusal names {refusal}: {run}"
        );
        let ran = m.sh("test -e /root/ran-the-accounts-installer");
        assert!(
            !ran.success(),
            "root ran the planted installer of {tree}: {run}"
        );
    }
}

/// The servers' main processes on a machine, by instance.
fn main_pids(m: &Machine) -> BTreeMap<String, u64> {
    status(m)
        .iter()
        .map(|i| {
            let pid = i["main_pid"].as_u64().unwrap_or_default();
            (i["instance"].as_str().unwrap_or_default().to_string(), pid)
        })
        .collect()
}

/// The account's `status --json` on a machine: its instances.
fn status(m: &Machine) -> Vec<serde_json::Value> {
    let out = m
        .sh_as("fleetapp", "unitgate --app fleetapp status --json")
        .ok();
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("status JSON");
    doc["instances"].as_array().expect("instances").clone()
}

/// The servers' states on a machine, as its account sees them:
/// `"ACTIVE_STATE enabled|disabled"` by instance.
fn servers(m: &Machine) -> BTreeMap<String, String> {
    status(m)
        .iter()
        .map(|i| {
            let enabled = if i["enabled"] == true {
                "enabled"
            } else {
                "disabled"
            };
            (
                i["instance"].as_str().unwrap_or_default().to_string(),
                format!(
                    "{} {enabled}",
                    i["active_state"].as_str().unwrap_or_default()
                ),
            )
        })
        .collect()
}

/// The host as Ansible's controller: the virtual environment, a key pair,
/// the hosts' keys, the collection as built, the app, and the inventory, in
/// a directory of its own removed when dropped. It sits among the machines'
/// directories and is named as they are (`…-<pid>-<n>`), so that the test
/// bed removes it with theirs when a killed run leaves it behind.
struct Controller {
    dir: PathBuf,
    venv: PathBuf,
}

impl Controller {
    fn new() -> Controller {
        let checkout = paths::checkout();
        let venv = host_command(Command::new("bash").arg(checkout.join("tests/ansible/venv.sh")));
        let dir =
            PathBuf::from(BASE_DIR).join(format!("fleet-controller-{}-0", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("home")).expect("controller dir");
        std::fs::write(dir.join("ansible.cfg"), "").expect("ansible.cfg");
        let controller = Controller {
            dir,
            venv: PathBuf::from(venv.trim()),
        };
        let d = controller.dir.display().to_string();
        host_command(Command::new("ssh-keygen").args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "fleet-controller",
            "-f",
            &format!("{d}/id_ed25519"),
        ]));
        // The collection as it ships: built, then installed from the tarball.
        controller.run(
            "ansible-galaxy",
            &[
                "collection",
                "build",
                "--output-path",
                &d,
                &checkout
                    .join("ansible/ansible_collections/unitgate/unitgate")
                    .display()
                    .to_string(),
            ],
        );
        controller.run(
            "ansible-galaxy",
            &[
                "collection",
                "install",
                "--offline",
                "-p",
                &format!("{d}/collections"),
                &format!("{d}/unitgate-unitgate-0.1.0.tar.gz"),
            ],
        );
        // The app: a new-app scaffold whose operators are group ops.
        let ug = paths::target_dir().join("release/unitgate");
        host_command(Command::new(ug).args([
            "new-app",
            "fleetapp",
            "--exec",
            "sleep infinity",
            "--port-range",
            "27000-27099",
            "--dir",
            &d,
        ]));
        let app = controller.dir.join("fleetapp");
        let toml = std::fs::read_to_string(app.join("app.toml")).expect("app.toml");
        let callers = toml
            .lines()
            .find(|l| l.starts_with("callers = "))
            .expect("callers line")
            .to_string();
        std::fs::write(
            app.join("app.toml"),
            toml.replace(&callers, r#"callers = ["fleetapp", "@ops"]"#),
        )
        .expect("app.toml");
        let mut conf = std::fs::read_to_string(app.join("install.conf")).expect("install.conf");
        conf.push_str("operators=ops\n");
        std::fs::write(app.join("install.conf"), conf).expect("install.conf");
        controller
    }

    /// Makes `m` a host Ansible can reach: root's authorized key, a host
    /// key of its own (recorded in the controller's known_hosts), an sshd
    /// on its address on the link only, and a writable `/usr` for dpkg
    /// (the test bed's `/usr` is the host's, read-only).
    fn give_ssh(&self, m: &Machine, address: &str) {
        let key = std::fs::read(self.dir.join("id_ed25519.pub")).expect("public key");
        m.sh(WRITABLE_USR).ok();
        m.sh_with_input(
            &format!(
                "set -e
usermod -p '*' root
install -d -m 0700 /root /root/.ssh
cat > /root/.ssh/authorized_keys
ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/fleet_host_key
cat > /etc/ssh/fleet_sshd_config <<EOF
ListenAddress {address}
HostKey /etc/ssh/fleet_host_key
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowUsers root alice
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
systemd-run --unit=fleet-sshd -p RuntimeDirectory=sshd /usr/sbin/sshd -D -e -f /etc/ssh/fleet_sshd_config"
            ),
            &key,
        )
        .ok();
        fixture::wait_until(
            m,
            "sshd listening on the link",
            &format!("ss -Hltn 'sport = 22' | grep -qF '{address}:22'"),
            30,
        );
        let host_key = m.sh("cat /etc/ssh/fleet_host_key.pub").ok();
        let mut known = std::fs::read_to_string(self.dir.join("known_hosts")).unwrap_or_default();
        known.push_str(&format!("{address} {}", host_key.stdout));
        std::fs::write(self.dir.join("known_hosts"), known).expect("known_hosts");
    }

    /// Hosts m1 and m2 get unitgate from the .deb (`deb`: its path inside a
    /// machine, under /mnt/target, which is the host's target directory),
    /// m3 from the checkout as the machine sees it.
    fn write_inventory(&self, link: &Link, deb: &str) {
        let d = self.dir.display();
        let deb = deb.replacen("/mnt/target", &paths::target_dir().display().to_string(), 1);
        let inventory = format!(
            "[game]
m1 ansible_host={a1} unitgate_deb={deb}
m2 ansible_host={a2} unitgate_deb={deb}
m3 ansible_host={a3} unitgate_tree=/mnt/src unitgate_target_dir=/mnt/target

[game:vars]
ansible_python_interpreter=/usr/bin/python3
ansible_ssh_private_key_file={d}/id_ed25519
ansible_ssh_common_args='-F /dev/null -o UserKnownHostsFile={d}/known_hosts -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes -o ConnectTimeout=5'
fleet_app=fleetapp
fleet_app_dir={d}/fleetapp
fleet_operator_key={d}/id_ed25519.pub
servers_per_host=2
restart_settle=1
",
            a1 = link.address(1),
            a2 = link.address(2),
            a3 = link.address(3),
        );
        std::fs::write(self.dir.join("hosts.ini"), inventory).expect("inventory");
    }

    /// `ansible-playbook -i hosts.ini PLAYBOOK ARGS…`, the playbook's path
    /// relative to the checkout ([`SITE`], [`REFUSED`], or one of the
    /// documented examples in ansible/examples/).
    fn playbook(&self, args: &[&str]) -> Output {
        let book = paths::checkout().join(args[0]);
        let inventory = self.dir.join("hosts.ini");
        let mut argv = vec![
            "-i",
            inventory.to_str().expect("utf-8 path"),
            book.to_str().expect("utf-8 path"),
        ];
        argv.extend(&args[1..]);
        self.play("ansible-playbook", &argv)
    }

    /// The documented drift report's: each host's drifted instances.
    fn report(&self) -> BTreeMap<String, Vec<serde_json::Value>> {
        let path = self.dir.join("report.json");
        let _ = std::fs::remove_file(&path);
        let report = format!("report={}", path.display());
        let run = self.playbook(&["ansible/examples/drift-report.yml", "-e", &report]);
        assert_eq!(run.code, 0, "{run}");
        let text = std::fs::read_to_string(&path).expect("report.json");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("report.json: {e}: {text}"))
    }

    /// A program of the virtual environment, which must succeed.
    fn run(&self, program: &str, args: &[&str]) -> Output {
        self.play(program, args).ok()
    }

    /// A program of the virtual environment, as it ended.
    fn play(&self, program: &str, args: &[&str]) -> Output {
        self.command(program, args)
            .output()
            .unwrap_or_else(|e| panic!("run {program}: {e}"))
            .into()
    }

    /// Ansible's own settings only, from the environment: no ansible.cfg or
    /// ~/.ssh of whoever runs the test.
    fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.venv.join("bin").join(program));
        let d = &self.dir;
        cmd.args(args)
            .current_dir(d)
            .env_clear()
            .env(
                "PATH",
                format!("{}/bin:/usr/sbin:/usr/bin:/sbin:/bin", self.venv.display()),
            )
            .env("HOME", d.join("home"))
            .env("LC_ALL", "C.UTF-8")
            .env("ANSIBLE_CONFIG", d.join("ansible.cfg"))
            .env("ANSIBLE_COLLECTIONS_PATH", d.join("collections"))
            .env("ANSIBLE_LOCAL_TEMP", d.join("home/tmp"))
            .env("ANSIBLE_PIPELINING", "true")
            .env("ANSIBLE_HOST_KEY_CHECKING", "true")
            .env("ANSIBLE_NOCOLOR", "true")
            .env("ANSIBLE_FORKS", "3")
            .env("ANSIBLE_CALLBACK_RESULT_FORMAT", "json")
            .env("ANSIBLE_CALLBACK_FORMAT_PRETTY", "false");
        cmd
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        if std::env::var_os("UNITGATE_KEEP_TESTBED").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A host command that must succeed; its stdout.
fn host_command(cmd: &mut Command) -> String {
    Output::from(cmd.output().expect("run a host command"))
        .ok()
        .stdout
}

/// A host's line of the play recap.
#[derive(Debug, Default)]
struct Recap {
    changed: u32,
    failed: u32,
    unreachable: u32,
}

/// What a playbook's output says, host by host.
trait Played {
    fn recap(&self, host: &str) -> Recap;
    fn failures(&self, host: &str) -> Vec<serde_json::Value>;
}

impl Played for Output {
    fn recap(&self, host: &str) -> Recap {
        let line = self
            .stdout
            .lines()
            .skip_while(|l| !l.starts_with("PLAY RECAP"))
            .find(|l| l.split_whitespace().next() == Some(host))
            .unwrap_or_else(|| panic!("no recap line for {host}: {self}"));
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|f| f.strip_prefix(&format!("{name}=")))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {name}= in {line:?}"))
        };
        Recap {
            changed: field("changed"),
            failed: field("failed"),
            unreachable: field("unreachable"),
        }
    }

    /// The results of the tasks that failed on `host`, in order (the default
    /// callback's `fatal: [HOST]: FAILED! => {…}` lines, one JSON each).
    fn failures(&self, host: &str) -> Vec<serde_json::Value> {
        let prefix = format!("fatal: [{host}]: FAILED! => ");
        self.stdout
            .lines()
            .filter_map(|l| l.strip_prefix(&prefix))
            .map(|json| serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}")))
            .collect()
    }
}
