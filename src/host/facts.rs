//! Everything `wharf check` knows about the host, gathered once, from one place.
//!
//! Files under /proc, /sys, /etc and /boot are read below a root directory (`--host-root`), so
//! tests point the gatherer at fixture trees. Facts that no file holds on a real host can be
//! overridden by the fixture tree too, in `<root>/.wharf-fixture/`:
//! `arch` (else `uname -m`), `disk-free-bytes` (else statvfs of the MicroK8s data directory).
//! Ports are probed by binding on the real root and read from `<root>/proc/net/tcp{,6}` otherwise.
//! The checks (`checks.rs`) are pure functions of these facts.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use super::quantity::Bytes;
use super::runner::{Cmd, Runner};

/// A fact, or why it could not be read (the check turns that into a warning).
pub type Fact<T> = Result<T, String>;

/// Where MicroK8s keeps its data; the disk check looks here (or at its nearest existing parent).
pub const MICROK8S_DATA: &str = "var/snap/microk8s/common";

/// The ports MicroK8s listens on: API server, kubelet, cluster agent, dqlite, etcd, ingress.
pub const MICROK8S_PORTS: &[u16] = &[16443, 10250, 25000, 19001, 12379, 80, 443];

/// The directory the host is read from: `/` in real life, a fixture tree in tests.
#[derive(Debug, Clone)]
pub struct HostRoot(PathBuf);

impl HostRoot {
    pub fn new(root: impl Into<PathBuf>) -> HostRoot {
        HostRoot(root.into())
    }

    /// Whether this is the real host (so probing sockets and statvfs mean something).
    pub fn is_real(&self) -> bool {
        self.0 == Path::new("/")
    }

    /// An absolute host path (`/proc/meminfo`) under the root.
    pub fn path(&self, host_path: &str) -> PathBuf {
        self.0.join(host_path.trim_start_matches('/'))
    }

    fn read(&self, host_path: &str) -> Fact<String> {
        let path = self.path(host_path);
        std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    }

    /// A fixture override from `<root>/.wharf-fixture/NAME`, if the tree has one.
    fn fixture(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.0.join(".wharf-fixture").join(name))
            .ok()
            .map(|s| s.trim().to_string())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Memory {
    pub total: Bytes,
    pub available: Bytes,
    pub swap_total: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    /// The host path that was measured (the MicroK8s data directory or its nearest existing parent).
    pub path: String,
    pub free: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OsRelease {
    pub id: String,
    pub version_id: String,
    pub pretty_name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inotify {
    pub max_user_instances: u64,
    pub max_user_watches: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaspberryPi {
    pub model: String,
    /// The kernel command line file and its contents.
    pub cmdline: Fact<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortState {
    Free,
    Busy,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MicroK8s {
    NotInstalled,
    Installed {
        version: String,
        tracking: String,
        running: bool,
    },
}

/// The host as the checks see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    pub cpus: Fact<u32>,
    pub memory: Fact<Memory>,
    pub disk: Fact<Disk>,
    pub os: Fact<OsRelease>,
    /// `uname -m`: x86_64, aarch64, armv7l…
    pub arch: Fact<String>,
    pub inotify: Fact<Inotify>,
    pub cgroup_memory: Fact<bool>,
    /// `None` when this is not a Raspberry Pi.
    pub raspberry_pi: Option<RaspberryPi>,
    pub hostname: Fact<String>,
    pub ports: Vec<(u16, Fact<PortState>)>,
    /// Where `snap` is, if on PATH.
    pub snap: Option<PathBuf>,
    pub microk8s: Fact<MicroK8s>,
}

impl HostFacts {
    /// Read every fact. Never fails: a fact that cannot be read carries its reason.
    pub fn gather(root: &HostRoot, runner: &Runner) -> HostFacts {
        let snap = which::which("snap").ok();
        let microk8s = if snap.is_some() {
            microk8s_fact(runner)
        } else {
            Ok(MicroK8s::NotInstalled)
        };
        HostFacts {
            cpus: cpus(root),
            memory: root.read("/proc/meminfo").and_then(|t| parse_meminfo(&t)),
            disk: disk(root),
            os: root.read("/etc/os-release").map(|t| parse_os_release(&t)),
            arch: arch(root),
            inotify: inotify(root),
            cgroup_memory: cgroup_memory(root),
            raspberry_pi: raspberry_pi(root),
            hostname: root
                .read("/proc/sys/kernel/hostname")
                .map(|t| t.trim().to_string()),
            ports: ports(root),
            snap,
            microk8s,
        }
    }
}

fn cpus(root: &HostRoot) -> Fact<u32> {
    if let Ok(online) = root.read("/sys/devices/system/cpu/online") {
        return parse_cpu_list(&online);
    }
    let cpuinfo = root.read("/proc/cpuinfo")?;
    let n = cpuinfo
        .lines()
        .filter(|l| l.split(':').next().map(str::trim) == Some("processor"))
        .count();
    if n == 0 {
        return Err("no `processor` lines in /proc/cpuinfo".into());
    }
    Ok(n as u32)
}

/// `0-3,6,8-9` → 7: the kernel's CPU list format.
pub fn parse_cpu_list(text: &str) -> Fact<u32> {
    let bad = || format!("`{}` is not a CPU list", text.trim());
    let mut n = 0u32;
    for part in text.trim().split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let a: u32 = a.parse().map_err(|_| bad())?;
                let b: u32 = b.parse().map_err(|_| bad())?;
                if b < a {
                    return Err(bad());
                }
                n += b - a + 1;
            }
            None => {
                part.parse::<u32>().map_err(|_| bad())?;
                n += 1;
            }
        }
    }
    Ok(n)
}

/// MemTotal, MemAvailable and SwapTotal from /proc/meminfo (values in kB).
pub fn parse_meminfo(text: &str) -> Fact<Memory> {
    let field = |name: &str| -> Fact<Bytes> {
        let line = text
            .lines()
            .find(|l| l.split(':').next() == Some(name))
            .ok_or_else(|| format!("/proc/meminfo has no {name}"))?;
        let kb: u64 = line
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("/proc/meminfo: cannot read `{line}`"))?;
        Ok(Bytes(kb * 1024))
    };
    Ok(Memory {
        total: field("MemTotal")?,
        available: field("MemAvailable")?,
        swap_total: field("SwapTotal").unwrap_or(Bytes(0)),
    })
}

fn disk(root: &HostRoot) -> Fact<Disk> {
    // The nearest existing parent: before MicroK8s is installed its directory does not exist,
    // and the space it will get is the space of the filesystem it will be created on.
    let mut host_path = PathBuf::from("/").join(MICROK8S_DATA);
    while !root.path(&host_path.to_string_lossy()).exists() {
        match host_path.parent() {
            Some(parent) => host_path = parent.to_path_buf(),
            None => break,
        }
    }
    let shown = host_path.display().to_string();
    if let Some(free) = root.fixture("disk-free-bytes") {
        let free = free
            .parse()
            .map_err(|_| format!(".wharf-fixture/disk-free-bytes: `{free}` is not a number"))?;
        return Ok(Disk {
            path: shown,
            free: Bytes(free),
        });
    }
    let real = root.path(&shown);
    let stat = nix::sys::statvfs::statvfs(&real)
        .map_err(|e| format!("statvfs {}: {e}", real.display()))?;
    Ok(Disk {
        path: shown,
        free: Bytes(stat.blocks_available() as u64 * stat.fragment_size() as u64),
    })
}

/// `KEY=value` and `KEY="value"` lines of /etc/os-release.
pub fn parse_os_release(text: &str) -> OsRelease {
    let mut os = OsRelease::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value
            .trim()
            .trim_matches('"')
            .trim_matches('\'')
            .to_string();
        match key.trim() {
            "ID" => os.id = value,
            "VERSION_ID" => os.version_id = value,
            "PRETTY_NAME" => os.pretty_name = value,
            _ => {}
        }
    }
    os
}

fn arch(root: &HostRoot) -> Fact<String> {
    if let Some(arch) = root.fixture("arch") {
        return Ok(arch);
    }
    nix::sys::utsname::uname()
        .map(|u| u.machine().to_string_lossy().into_owned())
        .map_err(|e| format!("uname: {e}"))
}

fn inotify(root: &HostRoot) -> Fact<Inotify> {
    let number = |name: &str| -> Fact<u64> {
        let host_path = format!("/proc/sys/fs/inotify/{name}");
        let text = root.read(&host_path)?;
        text.trim()
            .parse()
            .map_err(|_| format!("{host_path}: `{}` is not a number", text.trim()))
    };
    Ok(Inotify {
        max_user_instances: number("max_user_instances")?,
        max_user_watches: number("max_user_watches")?,
    })
}

fn cgroup_memory(root: &HostRoot) -> Fact<bool> {
    match root.read("/sys/fs/cgroup/cgroup.controllers") {
        Ok(text) => Ok(text.split_whitespace().any(|c| c == "memory")),
        // cgroup v1: /proc/cgroups lists each controller with an `enabled` column.
        Err(v2_err) => {
            let text = root
                .read("/proc/cgroups")
                .map_err(|v1_err| format!("{v2_err}; {v1_err}"))?;
            Ok(text.lines().any(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                cols.first() == Some(&"memory") && cols.get(3) == Some(&"1")
            }))
        }
    }
}

fn raspberry_pi(root: &HostRoot) -> Option<RaspberryPi> {
    let model = root.read("/proc/device-tree/model").ok()?;
    let model = model.trim_end_matches('\0').trim().to_string();
    if !model.starts_with("Raspberry Pi") {
        return None;
    }
    // Ubuntu keeps it in /boot/firmware; Raspberry Pi OS before bookworm in /boot.
    let cmdline = ["/boot/firmware/cmdline.txt", "/boot/cmdline.txt"]
        .iter()
        .find_map(|p| root.read(p).ok().map(|t| (p.to_string(), t)))
        .ok_or_else(|| "neither /boot/firmware/cmdline.txt nor /boot/cmdline.txt exists".into());
    Some(RaspberryPi { model, cmdline })
}

fn ports(root: &HostRoot) -> Vec<(u16, Fact<PortState>)> {
    let listening = listening_ports(root);
    MICROK8S_PORTS
        .iter()
        .map(|&port| {
            let state = if root.is_real() {
                probe(port, &listening)
            } else {
                listening
                    .as_ref()
                    .map(|l| state_of(port, l))
                    .map_err(Clone::clone)
            };
            (port, state)
        })
        .collect()
}

/// Try to bind the port on every address; privileged ports fall back to the kernel's socket table.
fn probe(port: u16, listening: &Fact<Vec<u16>>) -> Fact<PortState> {
    let addrs = [
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)),
        SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)),
    ];
    for addr in addrs {
        match TcpListener::bind(addr) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => return Ok(PortState::Busy),
            // Without root, ports below 1024 cannot be bound even when free; ask the kernel instead.
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                return listening
                    .as_ref()
                    .map(|l| state_of(port, l))
                    .map_err(Clone::clone);
            }
            // No IPv6 on this host: nothing can listen there either.
            Err(_) if addr.is_ipv6() => {}
            Err(e) => return Err(format!("cannot bind {addr}: {e}")),
        }
    }
    Ok(PortState::Free)
}

fn state_of(port: u16, listening: &[u16]) -> PortState {
    if listening.contains(&port) {
        PortState::Busy
    } else {
        PortState::Free
    }
}

/// Ports in LISTEN state in /proc/net/tcp and tcp6; a missing table means nothing listens.
fn listening_ports(root: &HostRoot) -> Fact<Vec<u16>> {
    let mut ports = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if !root.path(table).exists() {
            continue;
        }
        ports.extend(parse_proc_net_tcp(&root.read(table)?));
    }
    Ok(ports)
}

/// The local ports of LISTEN (state `0A`) sockets in a /proc/net/tcp table.
pub fn parse_proc_net_tcp(text: &str) -> Vec<u16> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let local = cols.get(1)?;
            if cols.get(3) != Some(&"0A") {
                return None;
            }
            let (_, port) = local.rsplit_once(':')?;
            u16::from_str_radix(port, 16).ok()
        })
        .collect()
}

fn microk8s_fact(runner: &Runner) -> Fact<MicroK8s> {
    let out = runner
        .output(&Cmd::new("snap").args(["list", "microk8s"]).read_only())
        .map_err(|e| e.to_string())?;
    if !out.success() {
        // `error: no matching snaps installed`
        return if out.stderr.contains("no matching snaps") {
            Ok(MicroK8s::NotInstalled)
        } else {
            Err(format!("`snap list microk8s` failed: {}", out.tail()))
        };
    }
    let (version, tracking) = parse_snap_list(&out.stdout, "microk8s")
        .ok_or_else(|| format!("cannot read `snap list microk8s` output:\n{}", out.stdout))?;
    let running = runner
        .output(&Cmd::new("snap").args(["services", "microk8s"]).read_only())
        .map(|o| o.success() && services_active(&o.stdout, "microk8s.daemon-kubelite"))
        .unwrap_or(false);
    Ok(MicroK8s::Installed {
        version,
        tracking,
        running,
    })
}

/// Version and tracking channel of a snap from `snap list NAME`:
/// `microk8s  v1.32.3  7964  1.32/stable  canonical✓  classic`.
pub fn parse_snap_list(text: &str, name: &str) -> Option<(String, String)> {
    text.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        (cols.first() == Some(&name) && cols.len() >= 4)
            .then(|| (cols[1].to_string(), cols[3].to_string()))
    })
}

/// Whether `snap services` lists this service as active.
pub fn services_active(text: &str, service: &str) -> bool {
    text.lines().any(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        cols.first() == Some(&service) && cols.get(2) == Some(&"active")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        for (text, want) in [("0-3\n", Ok(4)), ("0", Ok(1)), ("0-3,6,8-9", Ok(7))] {
            assert_eq!(parse_cpu_list(text), want, "{text}");
        }
        for bad in ["", "a-b", "3-1", "0-"] {
            assert!(parse_cpu_list(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn meminfo() {
        let m = parse_meminfo(
            "MemTotal:        8000000 kB\nMemFree: 1 kB\nMemAvailable:    6000000 kB\nSwapTotal:       0 kB\n",
        )
        .unwrap();
        assert_eq!(m.total, Bytes(8_000_000 * 1024));
        assert_eq!(m.available, Bytes(6_000_000 * 1024));
        assert_eq!(m.swap_total, Bytes(0));
        assert!(
            parse_meminfo("MemTotal: 1 kB\n")
                .unwrap_err()
                .contains("MemAvailable")
        );
    }

    #[test]
    fn os_release() {
        let os = parse_os_release(
            "PRETTY_NAME=\"Ubuntu 24.04.1 LTS\"\nNAME=\"Ubuntu\"\nVERSION_ID=\"24.04\"\nID=ubuntu\n",
        );
        assert_eq!(os.id, "ubuntu");
        assert_eq!(os.version_id, "24.04");
        assert_eq!(os.pretty_name, "Ubuntu 24.04.1 LTS");
    }

    #[test]
    fn proc_net_tcp_listeners() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n   1: 0100007F:9C4A 0100007F:0050 01 00000000:00000000 00:00000000 00000000  1000        0 2 1 0 20 4 30 10 -1\n";
        assert_eq!(parse_proc_net_tcp(text), vec![80]);
    }

    #[test]
    fn snap_list_and_services() {
        let list = "Name      Version  Rev   Tracking     Publisher   Notes\nmicrok8s  v1.32.3  7964  1.32/stable  canonical✓  classic\n";
        assert_eq!(
            parse_snap_list(list, "microk8s"),
            Some(("v1.32.3".into(), "1.32/stable".into()))
        );
        assert_eq!(parse_snap_list(list, "lxd"), None);
        let services = "Service                          Startup  Current   Notes\nmicrok8s.daemon-containerd       enabled  active    -\nmicrok8s.daemon-kubelite         enabled  inactive  -\n";
        assert!(!services_active(services, "microk8s.daemon-kubelite"));
        assert!(services_active(services, "microk8s.daemon-containerd"));
    }

    #[test]
    fn nearest_existing_parent_is_measured() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("var/snap")).unwrap();
        let root = HostRoot::new(dir.path());
        let disk = disk(&root).unwrap();
        assert_eq!(disk.path, "/var/snap");
        assert!(disk.free.0 > 0);
        std::fs::create_dir_all(dir.path().join(".wharf-fixture")).unwrap();
        std::fs::write(dir.path().join(".wharf-fixture/disk-free-bytes"), "1234\n").unwrap();
        assert_eq!(disk_free(&root), Bytes(1234));
    }

    fn disk_free(root: &HostRoot) -> Bytes {
        disk(root).unwrap().free
    }
}
