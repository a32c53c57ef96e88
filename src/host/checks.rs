//! The preflight checks: pure functions of (host facts, bundle requirements) → pass, warn or fail,
//! each with what was found and, unless it passed, how to fix it.

use serde::Serialize;

use super::facts::{Fact, HostFacts, MICROK8S_DATA, MicroK8s, PortState};
use super::quantity::Bytes;
use super::requirements::Requirements;

/// MicroK8s runs many watchers per pod; below these limits pods fail with "too many open files".
pub const INOTIFY_MIN_INSTANCES: u64 = 1280;
pub const INOTIFY_MIN_WATCHES: u64 = 1_048_576;
/// The kernel command line flags a Raspberry Pi needs for the memory cgroup.
pub const PI_CGROUP_FLAGS: &[&str] = &["cgroup_enable=memory", "cgroup_memory=1"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warn,
    Fail,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        }
    }
}

/// One check's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub detail: String,
    /// How to fix it; `None` only when it passed.
    pub fix: Option<String>,
}

impl Check {
    fn pass(name: &str, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            status: Status::Pass,
            detail: detail.into(),
            fix: None,
        }
    }
    fn warn(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            status: Status::Warn,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
    fn fail(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            status: Status::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
    /// A fact that could not be read: not a failure of the host, but nothing to vouch for either.
    fn unreadable(name: &str, why: &str) -> Check {
        Check::warn(
            name,
            format!("could not check: {why}"),
            "make the file readable or run the check as root",
        )
    }
}

/// The overall verdict: the worst status of all checks.
pub fn verdict(checks: &[Check]) -> Status {
    checks
        .iter()
        .map(|c| c.status)
        .max()
        .unwrap_or(Status::Pass)
}

/// Run every check, in the order they are shown.
pub fn run_all(facts: &HostFacts, req: &Requirements) -> Vec<Check> {
    let mut checks = vec![
        cpu(&facts.cpus, req),
        memory(facts, req),
        memory_available(facts, req),
        disk(facts, req),
        os(facts),
        arch(&facts.arch),
        inotify_instances(facts),
        inotify_watches(facts),
        cgroup_memory(facts),
        raspberry_pi(facts),
        hostname(&facts.hostname),
    ];
    checks.extend(ports(facts));
    checks.push(snap(facts));
    checks.push(microk8s(&facts.microk8s));
    checks.push(swap(facts));
    checks
}

fn with<T>(name: &str, fact: &Fact<T>, f: impl FnOnce(&T) -> Check) -> Check {
    match fact {
        Ok(v) => f(v),
        Err(why) => Check::unreadable(name, why),
    }
}

pub fn cpu(cpus: &Fact<u32>, req: &Requirements) -> Check {
    with("cpu", cpus, |&n| {
        let detail = format!("{n} CPUs, the bundle needs {}", req.cpu);
        if n >= req.cpu {
            Check::pass("cpu", detail)
        } else {
            Check::fail(
                "cpu",
                detail,
                format!(
                    "give this machine at least {} CPUs, or choose a smaller bundle",
                    req.cpu
                ),
            )
        }
    })
}

pub fn memory(facts: &HostFacts, req: &Requirements) -> Check {
    with("memory", &facts.memory, |m| {
        let detail = format!("{} total, the bundle needs {}", m.total, req.memory);
        if m.total >= req.memory {
            Check::pass("memory", detail)
        } else {
            Check::fail(
                "memory",
                detail,
                format!(
                    "give this machine at least {} of memory, or choose a smaller bundle",
                    req.memory
                ),
            )
        }
    })
}

pub fn memory_available(facts: &HostFacts, req: &Requirements) -> Check {
    let name = "memory-available";
    with(name, &facts.memory, |m| {
        let want = req.memory_available_warn();
        let detail = format!("{} available, at least {want} recommended", m.available);
        if m.available >= want {
            Check::pass(name, detail)
        } else {
            Check::warn(
                name,
                detail,
                "stop other workloads on this machine before installing",
            )
        }
    })
}

pub fn disk(facts: &HostFacts, req: &Requirements) -> Check {
    with("disk", &facts.disk, |d| {
        let detail = format!(
            "{} free at {} (for /{MICROK8S_DATA}), the bundle needs {}",
            d.free, d.path, req.disk
        );
        if d.free >= req.disk {
            Check::pass("disk", detail)
        } else {
            Check::fail(
                "disk",
                detail,
                format!(
                    "free or add {} on the filesystem holding {}",
                    Bytes(req.disk.0 - d.free.0),
                    d.path
                ),
            )
        }
    })
}

pub fn os(facts: &HostFacts) -> Check {
    with("os", &facts.os, |os| {
        let name = if os.pretty_name.is_empty() {
            format!("{} {}", os.id, os.version_id)
        } else {
            os.pretty_name.clone()
        };
        let version = ubuntu_version(&os.version_id);
        if os.id == "ubuntu" && version.is_some_and(|v| v >= (22, 4)) {
            Check::pass("os", name)
        } else {
            Check::warn(
                "os",
                format!("{name} is not a supported OS"),
                "wharf is tested on Ubuntu 22.04 and newer; elsewhere MicroK8s may work but is unsupported",
            )
        }
    })
}

fn ubuntu_version(v: &str) -> Option<(u32, u32)> {
    let (major, minor) = v.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// The Debian/Kubernetes name of a `uname -m` machine, if MicroK8s and the images support it.
pub fn kube_arch(machine: &str) -> Option<&'static str> {
    match machine {
        "x86_64" | "amd64" => Some("amd64"),
        "aarch64" | "arm64" => Some("arm64"),
        _ => None,
    }
}

pub fn arch(arch: &Fact<String>) -> Check {
    with("arch", arch, |m| match kube_arch(m) {
        Some(a) => Check::pass("arch", format!("{m} ({a})")),
        None => Check::fail(
            "arch",
            format!("{m} is not supported"),
            "use an amd64 or arm64 machine (a 64-bit OS on a Raspberry Pi 4 or 5): the platform images exist only for those",
        ),
    })
}

fn inotify_fix() -> String {
    format!(
        "run `sudo wharf check --fix`, or write fs.inotify.max_user_instances={INOTIFY_MIN_INSTANCES} and fs.inotify.max_user_watches={INOTIFY_MIN_WATCHES} to /etc/sysctl.d/60-wharf-inotify.conf and run `sudo sysctl --system`"
    )
}

pub fn inotify_instances(facts: &HostFacts) -> Check {
    let name = "inotify-instances";
    with(name, &facts.inotify, |i| {
        let detail = format!(
            "fs.inotify.max_user_instances = {}, needs {INOTIFY_MIN_INSTANCES}",
            i.max_user_instances
        );
        if i.max_user_instances >= INOTIFY_MIN_INSTANCES {
            Check::pass(name, detail)
        } else {
            Check::fail(name, detail, inotify_fix())
        }
    })
}

pub fn inotify_watches(facts: &HostFacts) -> Check {
    let name = "inotify-watches";
    with(name, &facts.inotify, |i| {
        let detail = format!(
            "fs.inotify.max_user_watches = {}, needs {INOTIFY_MIN_WATCHES}",
            i.max_user_watches
        );
        if i.max_user_watches >= INOTIFY_MIN_WATCHES {
            Check::pass(name, detail)
        } else {
            Check::fail(name, detail, inotify_fix())
        }
    })
}

pub fn cgroup_memory(facts: &HostFacts) -> Check {
    let name = "cgroup-memory";
    with(name, &facts.cgroup_memory, |&on| {
        if on {
            Check::pass(name, "the memory cgroup controller is enabled")
        } else if facts.raspberry_pi.is_some() {
            Check::fail(
                name,
                "the memory cgroup controller is not enabled",
                "add `cgroup_enable=memory cgroup_memory=1` to the kernel command line (see the raspberry-pi check) and reboot",
            )
        } else {
            Check::fail(
                name,
                "the memory cgroup controller is not enabled",
                "boot with the memory cgroup enabled (kernel parameter `cgroup_enable=memory`, or `systemd.unified_cgroup_hierarchy=1` for cgroup v2) and reboot",
            )
        }
    })
}

/// Whether a kernel command line has every flag the memory cgroup needs.
pub fn cmdline_has_cgroup_flags(cmdline: &str) -> bool {
    let words: Vec<&str> = cmdline.split_whitespace().collect();
    PI_CGROUP_FLAGS.iter().all(|f| words.contains(f))
}

pub fn raspberry_pi(facts: &HostFacts) -> Check {
    let name = "raspberry-pi";
    let Some(pi) = &facts.raspberry_pi else {
        return Check::pass(name, "not a Raspberry Pi");
    };
    match &pi.cmdline {
        Err(why) => Check::fail(
            name,
            format!("{}: {why}", pi.model),
            "create /boot/firmware/cmdline.txt with `cgroup_enable=memory cgroup_memory=1`, then reboot",
        ),
        Ok((path, text)) if cmdline_has_cgroup_flags(text) => {
            Check::pass(name, format!("{}: {path} has the cgroup flags", pi.model))
        }
        Ok((path, _)) => Check::fail(
            name,
            format!(
                "{}: {path} lacks `cgroup_enable=memory cgroup_memory=1`",
                pi.model
            ),
            format!(
                "`wharf up` adds them with your consent (or append them to the single line of {path}), then reboot"
            ),
        ),
    }
}

/// Why a hostname is not a valid Kubernetes node name (lower-case RFC 1123 subdomain), if it is not.
pub fn hostname_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("it is empty");
    }
    if name.len() > 253 {
        return Some("it is longer than 253 characters");
    }
    if name.contains('_') {
        return Some("it contains an underscore");
    }
    if name.chars().any(|c| c.is_ascii_uppercase()) {
        return Some("it contains upper-case letters");
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Some("a dot-separated part is empty or longer than 63 characters");
        }
        if !label
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Some("it has characters other than a-z, 0-9, '-' and '.'");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Some("a part starts or ends with '-'");
        }
    }
    None
}

/// A valid hostname close to the given one, for the fix text.
pub fn suggest_hostname(name: &str) -> String {
    let mapped: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let cleaned: Vec<&str> = mapped
        .split('.')
        .map(|l| l.trim_matches('-'))
        .filter(|l| !l.is_empty())
        .collect();
    if cleaned.is_empty() {
        "wharf-node".into()
    } else {
        cleaned.join(".")
    }
}

pub fn hostname(hostname: &Fact<String>) -> Check {
    with("hostname", hostname, |h| match hostname_problem(h) {
        None => Check::pass("hostname", h.clone()),
        Some(why) => Check::fail(
            "hostname",
            format!("`{h}` is not a valid Kubernetes node name: {why}"),
            format!("sudo hostnamectl set-hostname {}", suggest_hostname(h)),
        ),
    })
}

pub fn ports(facts: &HostFacts) -> Vec<Check> {
    let microk8s_running = matches!(
        facts.microk8s,
        Ok(MicroK8s::Installed { running: true, .. })
    );
    facts
        .ports
        .iter()
        .map(|(port, state)| {
            let name = format!("port-{port}");
            with(&name, state, |state| match state {
                PortState::Free => Check::pass(&name, format!("{port}/tcp is free")),
                // We cannot tell which process holds it without root; a running MicroK8s is
                // the likely owner, and that is what the detail says.
                PortState::Busy if microk8s_running => Check::pass(
                    &name,
                    format!("{port}/tcp is in use; MicroK8s is running, so presumably by MicroK8s"),
                ),
                PortState::Busy => Check::fail(
                    &name,
                    format!("{port}/tcp is in use and MicroK8s is not running"),
                    format!(
                        "stop the service listening on {port} (`sudo ss -ltnp 'sport = :{port}'` shows which)"
                    ),
                ),
            })
        })
        .collect()
}

pub fn snap(facts: &HostFacts) -> Check {
    match &facts.snap {
        Some(path) => Check::pass("snap", format!("{}", path.display())),
        None => Check::fail(
            "snap",
            "snap is not installed (MicroK8s is installed with snap)",
            "sudo apt install snapd, then log out and in again",
        ),
    }
}

pub fn microk8s(microk8s: &Fact<MicroK8s>) -> Check {
    match microk8s {
        Ok(MicroK8s::NotInstalled) => {
            Check::pass("microk8s", "not installed yet; `wharf up` installs it")
        }
        Ok(MicroK8s::Installed {
            version,
            tracking,
            running,
        }) => {
            let detail = format!("{version} tracking {tracking}");
            if *running {
                Check::pass("microk8s", format!("{detail}, running"))
            } else {
                Check::warn(
                    "microk8s",
                    format!("{detail}, not running"),
                    "sudo microk8s start",
                )
            }
        }
        Err(why) => Check::warn(
            "microk8s",
            format!("could not tell: {why}"),
            "run `snap list microk8s` to see what is wrong",
        ),
    }
}

pub fn swap(facts: &HostFacts) -> Check {
    with("swap", &facts.memory, |m| {
        if m.swap_total.0 == 0 {
            Check::pass("swap", "off")
        } else {
            Check::warn(
                "swap",
                format!("{} of swap is on", m.swap_total),
                "the kubelet expects swap off: `sudo swapoff -a` and remove swap lines from /etc/fstab",
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::facts::{Disk, Inotify, Memory, OsRelease, RaspberryPi};
    use std::path::PathBuf;

    const GI: u64 = 1 << 30;

    fn req() -> Requirements {
        Requirements {
            cpu: 2,
            memory: Bytes(6 * GI),
            disk: Bytes(30 * GI),
        }
    }

    /// A host that passes everything; each test breaks one fact.
    fn good() -> HostFacts {
        HostFacts {
            cpus: Ok(4),
            memory: Ok(Memory {
                total: Bytes(16 * GI),
                available: Bytes(12 * GI),
                swap_total: Bytes(0),
            }),
            disk: Ok(Disk {
                path: "/var/snap".into(),
                free: Bytes(100 * GI),
            }),
            os: Ok(OsRelease {
                id: "ubuntu".into(),
                version_id: "24.04".into(),
                pretty_name: "Ubuntu 24.04.1 LTS".into(),
            }),
            arch: Ok("x86_64".into()),
            inotify: Ok(Inotify {
                max_user_instances: 1280,
                max_user_watches: 1_048_576,
            }),
            cgroup_memory: Ok(true),
            raspberry_pi: None,
            hostname: Ok("node-1".into()),
            ports: vec![(16443, Ok(PortState::Free)), (80, Ok(PortState::Free))],
            snap: Some(PathBuf::from("/usr/bin/snap")),
            microk8s: Ok(MicroK8s::NotInstalled),
        }
    }

    fn status_of(facts: &HostFacts, name: &str) -> Status {
        run_all(facts, &req())
            .into_iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no check {name}"))
            .status
    }

    #[test]
    fn a_good_host_passes_everything() {
        let checks = run_all(&good(), &req());
        for c in &checks {
            assert_eq!(c.status, Status::Pass, "{c:?}");
            assert!(c.fix.is_none());
        }
        assert_eq!(verdict(&checks), Status::Pass);
    }

    #[test]
    fn each_broken_fact_gives_its_verdict() {
        type Break = fn(&mut HostFacts);
        let cases: Vec<(&str, Break, &str, Status)> = vec![
            ("too few cpus", |f| f.cpus = Ok(1), "cpu", Status::Fail),
            (
                "exactly enough cpus",
                |f| f.cpus = Ok(2),
                "cpu",
                Status::Pass,
            ),
            (
                "unreadable cpus",
                |f| f.cpus = Err("no".into()),
                "cpu",
                Status::Warn,
            ),
            (
                "too little memory",
                |f| f.memory.as_mut().unwrap().total = Bytes(4 * GI),
                "memory",
                Status::Fail,
            ),
            (
                "little available",
                |f| f.memory.as_mut().unwrap().available = Bytes(2 * GI),
                "memory-available",
                Status::Warn,
            ),
            (
                "half available is enough",
                |f| f.memory.as_mut().unwrap().available = Bytes(3 * GI),
                "memory-available",
                Status::Pass,
            ),
            (
                "small disk",
                |f| f.disk.as_mut().unwrap().free = Bytes(20 * GI),
                "disk",
                Status::Fail,
            ),
            (
                "debian",
                |f| f.os.as_mut().unwrap().id = "debian".into(),
                "os",
                Status::Warn,
            ),
            (
                "old ubuntu",
                |f| f.os.as_mut().unwrap().version_id = "20.04".into(),
                "os",
                Status::Warn,
            ),
            (
                "ubuntu 22.04",
                |f| f.os.as_mut().unwrap().version_id = "22.04".into(),
                "os",
                Status::Pass,
            ),
            (
                "arm64",
                |f| f.arch = Ok("aarch64".into()),
                "arch",
                Status::Pass,
            ),
            (
                "32-bit arm",
                |f| f.arch = Ok("armv7l".into()),
                "arch",
                Status::Fail,
            ),
            (
                "riscv",
                |f| f.arch = Ok("riscv64".into()),
                "arch",
                Status::Fail,
            ),
            (
                "low instances",
                |f| f.inotify.as_mut().unwrap().max_user_instances = 128,
                "inotify-instances",
                Status::Fail,
            ),
            (
                "low watches",
                |f| f.inotify.as_mut().unwrap().max_user_watches = 8192,
                "inotify-watches",
                Status::Fail,
            ),
            (
                "no memory cgroup",
                |f| f.cgroup_memory = Ok(false),
                "cgroup-memory",
                Status::Fail,
            ),
            (
                "pi without flags",
                |f| {
                    f.raspberry_pi = Some(RaspberryPi {
                        model: "Raspberry Pi 4 Model B".into(),
                        cmdline: Ok((
                            "/boot/firmware/cmdline.txt".into(),
                            "console=tty1 root=LABEL=writable".into(),
                        )),
                    })
                },
                "raspberry-pi",
                Status::Fail,
            ),
            (
                "pi with flags",
                |f| {
                    f.raspberry_pi = Some(RaspberryPi {
                        model: "Raspberry Pi 4 Model B".into(),
                        cmdline: Ok((
                            "/boot/firmware/cmdline.txt".into(),
                            "console=tty1 cgroup_enable=memory cgroup_memory=1\n".into(),
                        )),
                    })
                },
                "raspberry-pi",
                Status::Pass,
            ),
            (
                "pi with one flag",
                |f| {
                    f.raspberry_pi = Some(RaspberryPi {
                        model: "Raspberry Pi 5".into(),
                        cmdline: Ok((
                            "/boot/firmware/cmdline.txt".into(),
                            "cgroup_enable=memory".into(),
                        )),
                    })
                },
                "raspberry-pi",
                Status::Fail,
            ),
            (
                "upper-case hostname",
                |f| f.hostname = Ok("Node1".into()),
                "hostname",
                Status::Fail,
            ),
            (
                "underscore hostname",
                |f| f.hostname = Ok("my_node".into()),
                "hostname",
                Status::Fail,
            ),
            (
                "fqdn hostname",
                |f| f.hostname = Ok("pi-1.lab.example".into()),
                "hostname",
                Status::Pass,
            ),
            (
                "port busy, no microk8s",
                |f| f.ports[1].1 = Ok(PortState::Busy),
                "port-80",
                Status::Fail,
            ),
            (
                "port busy, microk8s running",
                |f| {
                    f.ports[0].1 = Ok(PortState::Busy);
                    f.microk8s = Ok(MicroK8s::Installed {
                        version: "v1.32.3".into(),
                        tracking: "1.32/stable".into(),
                        running: true,
                    });
                },
                "port-16443",
                Status::Pass,
            ),
            (
                "port busy, microk8s stopped",
                |f| {
                    f.ports[0].1 = Ok(PortState::Busy);
                    f.microk8s = Ok(MicroK8s::Installed {
                        version: "v1.32.3".into(),
                        tracking: "1.32/stable".into(),
                        running: false,
                    });
                },
                "port-16443",
                Status::Fail,
            ),
            ("no snap", |f| f.snap = None, "snap", Status::Fail),
            (
                "microk8s installed and running",
                |f| {
                    f.microk8s = Ok(MicroK8s::Installed {
                        version: "v1.32.3".into(),
                        tracking: "1.32/stable".into(),
                        running: true,
                    })
                },
                "microk8s",
                Status::Pass,
            ),
            (
                "microk8s stopped",
                |f| {
                    f.microk8s = Ok(MicroK8s::Installed {
                        version: "v1.32.3".into(),
                        tracking: "1.32/stable".into(),
                        running: false,
                    })
                },
                "microk8s",
                Status::Warn,
            ),
            (
                "swap on",
                |f| f.memory.as_mut().unwrap().swap_total = Bytes(2 * GI),
                "swap",
                Status::Warn,
            ),
        ];
        for (what, break_it, check, want) in cases {
            let mut facts = good();
            break_it(&mut facts);
            assert_eq!(status_of(&facts, check), want, "{what}");
            let checks = run_all(&facts, &req());
            for c in checks.iter().filter(|c| c.status != Status::Pass) {
                assert!(
                    c.fix.as_deref().is_some_and(|f| !f.is_empty()),
                    "{what}: {c:?} needs a fix"
                );
            }
        }
    }

    #[test]
    fn verdict_is_the_worst_status() {
        let mut facts = good();
        facts.memory.as_mut().unwrap().swap_total = Bytes(GI);
        assert_eq!(verdict(&run_all(&facts, &req())), Status::Warn);
        facts.cpus = Ok(1);
        assert_eq!(verdict(&run_all(&facts, &req())), Status::Fail);
    }

    #[test]
    fn hostnames() {
        for ok in ["a", "node-1", "pi4.local", "x0-y"] {
            assert_eq!(hostname_problem(ok), None, "{ok}");
        }
        for bad in [
            "",
            "Node",
            "my_pi",
            "-a",
            "a-",
            "a..b",
            "a b",
            &"x".repeat(64),
        ] {
            assert!(hostname_problem(bad).is_some(), "{bad:?}");
        }
        assert_eq!(suggest_hostname("My_Pi"), "my-pi");
        assert_eq!(suggest_hostname("__"), "wharf-node");
        assert_eq!(hostname_problem(&suggest_hostname("Büro_PC.")), None);
    }
}
