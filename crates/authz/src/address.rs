//! TS-0003 §7.1.3 (accessControlIpAddress): IPv4 and IPv6 address ranges in CIDR notation,
//! matched against `rq_ip`, the source address of the packets that carried the request.
//!
//! An entry without a suffix is a single host (`/32` or `/128`). Host bits below the prefix are
//! ignored (`88.77.1.2/16` is `88.77.0.0/16`). A peer address given as an IPv4-mapped IPv6
//! address (`::ffff:a.b.c.d`, as a dual-stack socket reports IPv4 peers) is the IPv4 peer it
//! stands for: it is matched against the `ipv4` list only.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The union of the `ipv4` and `ipv6` lists of one `acip` element.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct AddressSet {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

fn split_prefix(text: &str, max: u32) -> Result<(&str, u32), String> {
    match text.split_once('/') {
        Some((addr, len)) => {
            let ok = !len.is_empty() && len.len() <= 3 && len.bytes().all(|b| b.is_ascii_digit());
            let len: u32 = len
                .parse()
                .ok()
                .filter(|l| ok && *l <= max)
                .ok_or_else(|| format!("`{text}`: prefix length must be 0-{max}"))?;
            Ok((addr, len))
        }
        None => Ok((text, max)),
    }
}

impl AddressSet {
    /// Adds one `ipv4` entry.
    pub(crate) fn push_v4(&mut self, text: &str) -> Result<(), String> {
        let (addr, len) = split_prefix(text, 32)?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| format!("`{text}` is not an IPv4 address in dotted-decimal notation"))?;
        let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
        self.v4.push((u32::from(addr) & mask, mask));
        Ok(())
    }

    /// Adds one `ipv6` entry.
    pub(crate) fn push_v6(&mut self, text: &str) -> Result<(), String> {
        let (addr, len) = split_prefix(text, 128)?;
        let addr: Ipv6Addr = addr
            .parse()
            .map_err(|_| format!("`{text}` is not an IPv6 address"))?;
        let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
        self.v6.push((u128::from(addr) & mask, mask));
        Ok(())
    }

    /// Whether both lists are empty.
    pub(crate) fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// Whether `ip` lies in one of the ranges.
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        match ip {
            IpAddr::V4(v4) => {
                let a = u32::from(v4);
                self.v4.iter().any(|&(net, mask)| a & mask == net)
            }
            IpAddr::V6(v6) => {
                let a = u128::from(v6);
                self.v6.iter().any(|&(net, mask)| a & mask == net)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr() {
        let mut s = AddressSet::default();
        s.push_v4("88.77.0.0/16").unwrap();
        s.push_v4("212.75.201.105").unwrap();
        s.push_v6("fe80::/10").unwrap();
        let ip = |t: &str| t.parse::<IpAddr>().unwrap();
        assert!(s.contains(ip("88.77.255.255")));
        assert!(!s.contains(ip("88.78.0.0")));
        assert!(s.contains(ip("212.75.201.105")));
        assert!(!s.contains(ip("212.75.201.106")));
        assert!(s.contains(ip("febf::1")));
        assert!(!s.contains(ip("fec0::1")));
        assert!(s.contains(ip("::ffff:88.77.1.1")));
        let mut any = AddressSet::default();
        any.push_v6("::/0").unwrap();
        assert!(!any.contains(ip("::ffff:1.2.3.4")));
        assert!(any.contains(ip("2001:db8::1")));
        let mut all4 = AddressSet::default();
        all4.push_v4("0.0.0.0/0").unwrap();
        assert!(all4.contains(ip("1.2.3.4")));
        assert!(!all4.contains(ip("::1")));
    }

    #[test]
    fn refused() {
        let mut s = AddressSet::default();
        for bad in [
            "1.2.3.4/33",
            "1.2.3.4/",
            "1.2.3",
            "::1",
            "1.2.3.4/-1",
            "1.2.3.4/+8",
        ] {
            assert!(s.push_v4(bad).is_err(), "{bad}");
        }
        for bad in ["::/129", "1.2.3.4", "fe80::/x", "fe80::%eth0"] {
            assert!(s.push_v6(bad).is_err(), "{bad}");
        }
    }
}
