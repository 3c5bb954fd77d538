//! An address prefix (`10.96.0.0/12`, `fd00:96::/108`): the Service CIDRs
//! of `service-cidr-set` and the pod CIDRs of `pod-cidr-set`, as the CLI,
//! `capture.conf` and the spec's `cidr` nest carry them.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Serialize, Serializer};

use crate::ident;

/// A network: an address with no bits set past its prefix length (at most
/// 32 for IPv4, 128 for IPv6). An IPv4-mapped IPv6 network of prefix 96 or
/// more (`::ffff:10.96.0.0/108`) is read as the IPv4 network
/// (`10.96.0.0/12`), as the mapping reads such addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix_len: u8,
}

/// Text that is not a CIDR, or a network with host bits set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid CIDR '{text}': {reason}")]
pub struct InvalidCidr {
    /// The text as given.
    pub text: String,
    pub reason: String,
}

impl Cidr {
    /// The network `addr`/`prefix_len`: `None` if the prefix length is too
    /// long for the family or `addr` has host bits set.
    pub fn new(addr: IpAddr, prefix_len: u8) -> Option<Cidr> {
        let cidr = Cidr::canonical(addr, prefix_len)?;
        (cidr.network() == cidr.addr).then_some(cidr)
    }

    /// `addr`/`prefix_len` with IPv4-mapped networks made IPv4, host bits
    /// left as they are; `None` for a prefix too long for the family.
    fn canonical(addr: IpAddr, prefix_len: u8) -> Option<Cidr> {
        let (addr, prefix_len) = match addr {
            IpAddr::V6(v6) if prefix_len >= 96 => match ident::v4_mapped(&v6.octets()) {
                Some(v4) => (IpAddr::V4(Ipv4Addr::from(v4)), prefix_len - 96),
                None => (addr, prefix_len),
            },
            _ => (addr, prefix_len),
        };
        let max = match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        (prefix_len <= max).then_some(Cidr { addr, prefix_len })
    }

    /// The network address (the first address of the prefix).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// `addr` with its host bits cleared.
    fn network(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix_len));
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask.unwrap_or(0)))
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix_len));
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask.unwrap_or(0)))
            }
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

/// JSON shows a CIDR as its text, `"10.96.0.0/12"`.
impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl FromStr for Cidr {
    type Err = InvalidCidr;

    /// `ADDRESS/PREFIX-LENGTH`: an IPv4 or IPv6 address (no zone), a
    /// decimal prefix length, no host bits set.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: String| InvalidCidr {
            text: s.to_owned(),
            reason,
        };
        let Some((addr, len)) = s.split_once('/') else {
            return Err(invalid(
                "expected ADDRESS/PREFIX-LENGTH, e.g. 10.96.0.0/12 or fd00:96::/108".to_owned(),
            ));
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| invalid(format!("'{addr}' is not an IPv4 or IPv6 address")))?;
        let max = match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        let prefix_len = Some(len)
            .filter(|l| (1..=3).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|l| l.parse::<u8>().ok())
            .filter(|&l| l <= max)
            .ok_or_else(|| invalid(format!("prefix length '{len}' is not 0 to {max}")))?;
        let cidr = Cidr::canonical(addr, prefix_len).expect("prefix length checked");
        let network = Cidr {
            addr: cidr.network(),
            ..cidr
        };
        if network != cidr {
            return Err(invalid(format!("host bits set (the network is {network})")));
        }
        Ok(cidr)
    }
}
