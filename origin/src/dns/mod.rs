//! Authoritative geo DNS: `edge.<zone>` answers the nearest healthy edge for the client.
//!
//! The origin serves one zone over UDP and TCP (hickory-server with our own
//! [`RequestHandler`](hickory_server::server::RequestHandler), since hickory's catalog never
//! sees EDNS client subnets). Per query:
//!
//! ```text
//! packet ─► hickory parse ─► Handler::respond(now, request)
//!              rate limit (UDP) ─► zone lookup ─► steer(client location, snapshot) ─► answer
//!                                                            ▲
//! registry (coordinator lock) ─► refresh task, every 250 ms ─┘  ArcSwap<Snapshot>, no lock
//! ```
//!
//! - [`zone`]: the zone's names and its fixed records (SOA, NS, glue).
//! - [`handler`]: the request handler: what each query gets, ECS, RFC 8482 ANY, rate limit.
//! - [`snapshot`]: the lock-free copy of the registry the handler answers from.
//! - [`rrl`]: sans-IO response rate limiting per source prefix.
//! - [`stats`]: counters for `/metrics`.
//! - [`server`]: binding UDP and TCP, the refresh task, start and stop.
//!
//! Steering itself is `origin_core::steer`, the same function the join API uses.

pub mod handler;
pub mod rrl;
pub mod server;
pub mod snapshot;
pub mod stats;
pub mod zone;

use std::net::IpAddr;

pub use handler::Handler;
pub use server::{DnsServer, start};
pub use stats::Stats;

/// A client's subnet as bytes, the key steering breaks ties with: family, then the address
/// cut to the prefix (at most /24 for IPv4, /56 for IPv6: the precision of an ECS answer's
/// scope, so every client sharing a cached answer would have got the same edge).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubnetKey {
    bytes: [u8; 17],
    len: usize,
}

impl SubnetKey {
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// `ip` cut to `prefix_len` bits, and never finer than /24 (IPv4) or /56 (IPv6). IPv4-mapped
/// IPv6 addresses count as IPv4.
pub fn subnet_key(ip: IpAddr, prefix_len: u8) -> SubnetKey {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    let mut bytes = [0u8; 17];
    let len = match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(prefix_len.min(handler::SCOPE_V4));
            let masked = u32::from(v4) & !(u32::MAX.checked_shr(bits).unwrap_or(0));
            bytes[0] = 4;
            bytes[1..5].copy_from_slice(&masked.to_be_bytes());
            5
        }
        IpAddr::V6(v6) => {
            let bits = u32::from(prefix_len.min(handler::SCOPE_V6));
            let masked = u128::from(v6) & !(u128::MAX.checked_shr(bits).unwrap_or(0));
            bytes[0] = 6;
            bytes[1..17].copy_from_slice(&masked.to_be_bytes());
            17
        }
    };
    SubnetKey { bytes, len }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ip: &str, len: u8) -> Vec<u8> {
        subnet_key(ip.parse().unwrap(), len).as_bytes().to_vec()
    }

    #[test]
    fn keys_are_subnets() {
        assert_eq!(key("198.51.100.77", 32), [4, 198, 51, 100, 0]);
        assert_eq!(key("198.51.100.77", 16), [4, 198, 51, 0, 0]);
        assert_eq!(key("198.51.100.77", 0), [4, 0, 0, 0, 0]);
        assert_eq!(key("::ffff:198.51.100.77", 128), key("198.51.100.1", 24));
        let v6 = key("2001:db8:aaaa:bbcc:1::1", 128);
        assert_eq!(v6.len(), 17);
        assert_eq!(
            &v6[..9],
            &[6, 0x20, 0x01, 0x0d, 0xb8, 0xaa, 0xaa, 0xbb, 0x00]
        );
        assert!(v6[9..].iter().all(|b| *b == 0));
    }
}
