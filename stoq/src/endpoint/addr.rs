//! IPv6-only sockets and address checks.

use socket2::{Domain, Protocol, Socket, Type};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use crate::{Error, Result};

/// Refuses IPv4 and IPv4-mapped IPv6 addresses with a message saying what
/// to use instead.
pub fn require_ipv6(addr: SocketAddr) -> Result<SocketAddr> {
    match addr.ip() {
        IpAddr::V4(_) => Err(Error::Ipv4Refused(addr)),
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => Err(Error::Ipv4Refused(addr)),
        IpAddr::V6(_) => Ok(addr),
    }
}

/// Binds a UDP socket with `IPV6_V6ONLY` set, so the endpoint never sees
/// IPv4 traffic even on `[::]`, asking for a `receive_buffer`-byte kernel
/// receive buffer (the kernel may cap it at `net.core.rmem_max`).
pub fn bind_ipv6_udp(addr: SocketAddr, receive_buffer: usize) -> Result<std::net::UdpSocket> {
    let addr = require_ipv6(addr)?;
    let io = |source| Error::Io {
        context: format!("binding UDP {addr}"),
        source,
    };
    let socket = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP)).map_err(io)?;
    socket.set_only_v6(true).map_err(io)?;
    if receive_buffer > 0 {
        // Best effort: a smaller buffer than asked for is not an error.
        let _ = socket.set_recv_buffer_size(receive_buffer);
    }
    socket.bind(&addr.into()).map_err(io)?;
    Ok(socket.into())
}

/// The /64 prefix of an address: the unit the connection rate limiter
/// counts, since one host typically owns a whole /64.
pub fn prefix64(ip: &Ipv6Addr) -> u64 {
    let o = ip.octets();
    u64::from_be_bytes([o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_and_mapped_addresses_are_refused() {
        assert!(matches!(
            require_ipv6("127.0.0.1:1".parse().unwrap()),
            Err(Error::Ipv4Refused(_))
        ));
        assert!(matches!(
            require_ipv6("[::ffff:127.0.0.1]:1".parse().unwrap()),
            Err(Error::Ipv4Refused(_))
        ));
        require_ipv6("[::1]:1".parse().unwrap()).unwrap();
        let msg = require_ipv6("10.0.0.1:5".parse().unwrap()).unwrap_err().to_string();
        assert!(msg.contains("IPv6"), "{msg}");
    }

    #[test]
    fn bound_socket_is_v6_only() {
        let s = bind_ipv6_udp("[::1]:0".parse().unwrap(), 1 << 20).unwrap();
        assert!(socket2::SockRef::from(&s).only_v6().unwrap());
        assert!(bind_ipv6_udp("127.0.0.1:0".parse().unwrap(), 0).is_err());
    }

    #[test]
    fn prefix_groups_a_slash_64() {
        let a: Ipv6Addr = "2001:db8:1:2::1".parse().unwrap();
        let b: Ipv6Addr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: Ipv6Addr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(prefix64(&a), prefix64(&b));
        assert_ne!(prefix64(&a), prefix64(&c));
    }
}
