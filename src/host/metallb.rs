//! MetalLB address pools for `wharf up --metallb RANGE[,RANGE…]`.
//!
//! Each part is `a.b.c.d-e.f.g.h`, a CIDR (`192.168.1.240/28`), or the IPv6 equivalents. A pool
//! must not hand out the host's own address (the gateway would then shadow SSH and the API
//! server) nor overlap the networks MicroK8s uses itself. The default is proposed from the host's
//! primary IPv4 network: `.240-.250` of its /24, the corner home routers rarely give out.

use std::net::{IpAddr, Ipv4Addr, UdpSocket};

use ipnet::IpNet;

/// MicroK8s' pod network (Calico's default there).
pub const POD_CIDR: &str = "10.1.0.0/16";
/// MicroK8s' service network.
pub const SERVICE_CIDR: &str = "10.152.183.0/24";

/// One pool: an inclusive address range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    pub start: IpAddr,
    pub end: IpAddr,
    /// As MicroK8s' `metallb:` add-on argument wants it (`a-b` or a CIDR).
    pub text: String,
}

/// A validated list of pools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranges(pub Vec<Pool>);

impl Ranges {
    /// The add-on to enable: `metallb:10.0.0.240-10.0.0.250,fd00::/120`.
    pub fn addon(&self) -> String {
        let parts: Vec<&str> = self.0.iter().map(|p| p.text.as_str()).collect();
        format!("metallb:{}", parts.join(","))
    }
}

/// A range that cannot be used; the message names `--metallb` and the bad part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--metallb: `{part}`: {reason}")]
pub struct RangeError {
    pub part: String,
    pub reason: String,
}

fn as_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u32::from(v4) as u128,
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn overlaps(a: &Pool, start: IpAddr, end: IpAddr) -> bool {
    a.start.is_ipv4() == start.is_ipv4()
        && as_u128(a.start) <= as_u128(end)
        && as_u128(start) <= as_u128(a.end)
}

fn parse_pool(part: &str) -> Result<Pool, String> {
    if let Some((a, b)) = part.split_once('-') {
        let start: IpAddr = a
            .trim()
            .parse()
            .map_err(|_| format!("`{}` is not an IP address", a.trim()))?;
        let end: IpAddr = b
            .trim()
            .parse()
            .map_err(|_| format!("`{}` is not an IP address", b.trim()))?;
        if start.is_ipv4() != end.is_ipv4() {
            return Err("start and end are of different families (IPv4 and IPv6)".into());
        }
        if as_u128(start) > as_u128(end) {
            return Err(format!("the start {start} is after the end {end}"));
        }
        return Ok(Pool {
            start,
            end,
            text: format!("{start}-{end}"),
        });
    }
    if part.contains('/') {
        let net: IpNet = part
            .parse()
            .map_err(|_| "not a CIDR (like 192.168.1.240/28)".to_string())?;
        if net.trunc() != net {
            return Err(format!("host bits are set; did you mean {}?", net.trunc()));
        }
        return Ok(Pool {
            start: net.network(),
            end: net.broadcast(),
            text: net.to_string(),
        });
    }
    let ip: IpAddr = part
        .parse()
        .map_err(|_| "not a range (a.b.c.d-e.f.g.h) or a CIDR (a.b.c.d/n)".to_string())?;
    Ok(Pool {
        start: ip,
        end: ip,
        text: format!("{ip}-{ip}"),
    })
}

/// Parse and validate `RANGE[,RANGE…]` against the host's own addresses.
pub fn parse(spec: &str, host_addrs: &[IpAddr]) -> Result<Ranges, RangeError> {
    let reserved: Vec<(IpNet, &str)> = [
        (POD_CIDR, "MicroK8s' pod network"),
        (SERVICE_CIDR, "MicroK8s' service network"),
    ]
    .iter()
    .map(|(c, what)| (c.parse().expect("valid built-in CIDR"), *what))
    .collect();
    let mut pools: Vec<Pool> = Vec::new();
    if spec.trim().is_empty() {
        return Err(RangeError {
            part: spec.into(),
            reason: "no range given; pass e.g. --metallb 192.168.1.240-192.168.1.250".into(),
        });
    }
    for part in spec.split(',') {
        let part = part.trim();
        let err = |reason: String| RangeError {
            part: part.to_string(),
            reason,
        };
        let pool = parse_pool(part).map_err(err)?;
        for ip in [pool.start, pool.end] {
            if ip.is_loopback() || ip.is_multicast() || ip.is_unspecified() {
                return Err(err(format!(
                    "{ip} is a loopback, multicast or unspecified address"
                )));
            }
        }
        if let Some(host) = host_addrs.iter().find(|h| overlaps(&pool, **h, **h)) {
            return Err(err(format!(
                "contains this host's own address {host}; pick addresses no machine uses"
            )));
        }
        for (net, what) in &reserved {
            if overlaps(&pool, net.network(), net.broadcast()) {
                return Err(err(format!("overlaps {what} {net}")));
            }
        }
        if let Some(other) = pools.iter().find(|p| overlaps(&pool, p.start, p.end)) {
            return Err(err(format!("overlaps the earlier range `{}`", other.text)));
        }
        pools.push(pool);
    }
    Ok(Ranges(pools))
}

/// The proposed range: `.240-.250` of the host's /24, or `.200-.210` when the host sits in that corner.
pub fn propose(primary: Ipv4Addr) -> String {
    let [a, b, c, d] = primary.octets();
    let (lo, hi) = if (240..=250).contains(&d) {
        (200, 210)
    } else {
        (240, 250)
    };
    format!("{a}.{b}.{c}.{lo}-{a}.{b}.{c}.{hi}")
}

/// The address the host would use to reach the outside world (no packet is sent: connecting a
/// UDP socket only picks a route).
pub fn primary_ipv4() -> Option<Ipv4Addr> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    socket.connect((Ipv4Addr::new(192, 0, 2, 1), 9)).ok()?;
    match socket.local_addr().ok()?.ip() {
        IpAddr::V4(v4) if !v4.is_loopback() && !v4.is_unspecified() => Some(v4),
        _ => None,
    }
}

/// Every address on the host's interfaces.
pub fn host_addresses() -> Vec<IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    addrs
        .filter_map(|ifa| {
            let addr = ifa.address?;
            if let Some(v4) = addr.as_sockaddr_in() {
                Some(IpAddr::V4(v4.ip()))
            } else {
                addr.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> Vec<IpAddr> {
        vec!["192.168.1.10".parse().unwrap(), "fd00::10".parse().unwrap()]
    }

    #[test]
    fn accepts_ranges_cidrs_and_ipv6() {
        let cases: &[(&str, &str)] = &[
            (
                "192.168.1.240-192.168.1.250",
                "metallb:192.168.1.240-192.168.1.250",
            ),
            ("192.168.1.240/28", "metallb:192.168.1.240/28"),
            (
                " 192.168.1.240/29 , 192.168.1.100-192.168.1.110",
                "metallb:192.168.1.240/29,192.168.1.100-192.168.1.110",
            ),
            ("fd00::100-fd00::1ff", "metallb:fd00::100-fd00::1ff"),
            ("fd00::200/120", "metallb:fd00::200/120"),
            ("192.168.1.200", "metallb:192.168.1.200-192.168.1.200"),
            (
                "192.168.1.200-192.168.1.200",
                "metallb:192.168.1.200-192.168.1.200",
            ),
            ("10.2.0.1-10.2.0.9", "metallb:10.2.0.1-10.2.0.9"),
        ];
        for (spec, addon) in cases {
            let ranges = parse(spec, &host()).unwrap_or_else(|e| panic!("{spec}: {e}"));
            assert_eq!(ranges.addon(), *addon);
        }
    }

    #[test]
    fn rejects_bad_ranges_naming_flag_and_part() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "192.168.1.250-192.168.1.240",
                "192.168.1.250-192.168.1.240",
                "after the end",
            ),
            (
                "192.168.1.1-fd00::1",
                "192.168.1.1-fd00::1",
                "different families",
            ),
            (
                "192.168.1.5-192.168.1.20",
                "192.168.1.5-192.168.1.20",
                "own address 192.168.1.10",
            ),
            ("192.168.1.0/24", "192.168.1.0/24", "own address"),
            ("fd00::/64", "fd00::/64", "own address fd00::10"),
            ("10.1.200.0/24", "10.1.200.0/24", "pod network"),
            ("10.0.0.0/8", "10.0.0.0/8", "pod network"),
            (
                "10.152.183.100-10.152.183.110",
                "10.152.183.100-10.152.183.110",
                "service network",
            ),
            (
                "192.168.1.240/28,192.168.1.250-192.168.1.252",
                "192.168.1.250-192.168.1.252",
                "overlaps the earlier range",
            ),
            (
                "192.168.1.241/28",
                "192.168.1.241/28",
                "did you mean 192.168.1.240/28",
            ),
            ("192.168.1.240/33", "192.168.1.240/33", "not a CIDR"),
            (
                "192.168.1.x-192.168.1.9",
                "192.168.1.x-192.168.1.9",
                "not an IP address",
            ),
            ("lots", "lots", "not a range"),
            ("192.168.1.240/28,", "", "not a range"),
            ("", "", "no range given"),
            ("127.0.0.1-127.0.0.5", "127.0.0.1-127.0.0.5", "loopback"),
        ];
        for (spec, part, reason) in cases {
            let err = parse(spec, &host()).unwrap_err();
            let text = err.to_string();
            assert!(text.starts_with("--metallb: "), "{spec}: {text}");
            assert_eq!(err.part, *part, "{spec}: {text}");
            assert!(text.contains(reason), "{spec}: {text}");
        }
    }

    #[test]
    fn proposes_a_range_from_the_host_network() {
        for (host, want) in [
            ("192.168.1.10", "192.168.1.240-192.168.1.250"),
            ("10.0.2.15", "10.0.2.240-10.0.2.250"),
            ("192.168.1.245", "192.168.1.200-192.168.1.210"),
        ] {
            let ip: Ipv4Addr = host.parse().unwrap();
            let proposed = propose(ip);
            assert_eq!(proposed, want);
            parse(&proposed, &[IpAddr::V4(ip)]).expect("the proposal is itself valid");
        }
    }

    #[test]
    fn host_addresses_include_loopback() {
        // Every Linux host (and container) has lo.
        assert!(host_addresses().contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)));
    }
}
