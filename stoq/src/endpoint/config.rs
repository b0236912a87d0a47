//! Endpoint configuration: every limit has a value here, with defaults.

use serde::{Deserialize, Serialize};
use std::net::{Ipv6Addr, SocketAddr};
use std::time::Duration;

use crate::gossip::GossipConfig;

/// Limits against abuse and overload.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Concurrent bidirectional streams (RPCs in flight) a peer may open.
    pub max_concurrent_bidi_streams: u32,
    /// Concurrent unidirectional streams a peer may open.
    pub max_concurrent_uni_streams: u32,
    /// Largest frame payload accepted, in bytes; checked from the header,
    /// before anything is allocated.
    pub max_frame_len: usize,
    /// New connections per second accepted from one source /64 prefix.
    pub new_connections_per_sec_per_prefix: f64,
    /// Burst allowance of the per-/64 connection rate limiter.
    pub new_connection_burst_per_prefix: f64,
    /// Open connections at most, all peers together.
    pub max_connections: usize,
    /// Bytes of received datagrams buffered per connection.
    pub datagram_receive_buffer: usize,
    /// Kernel receive buffer of the UDP socket (`SO_RCVBUF`). The default
    /// 208 KiB overflows when many peers handshake at once (each ML-KEM
    /// ClientHello is two full datagrams), and lost Initials cost a
    /// retransmission timeout.
    pub socket_receive_buffer: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_concurrent_bidi_streams: 256,
            max_concurrent_uni_streams: 16,
            max_frame_len: crate::frame::DEFAULT_MAX_FRAME_LEN,
            new_connections_per_sec_per_prefix: 20.0,
            new_connection_burst_per_prefix: 40.0,
            max_connections: 4096,
            datagram_receive_buffer: 1 << 20,
            socket_receive_buffer: 4 << 20,
        }
    }
}

/// Timeouts and keep-alive.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Timeouts {
    /// A handshake that has not completed by then is abandoned.
    #[serde(with = "humantime_ms")]
    pub handshake: Duration,
    /// A connection silent for this long is closed.
    #[serde(with = "humantime_ms")]
    pub idle: Duration,
    /// Interval of keep-alive packets on otherwise quiet connections.
    #[serde(with = "humantime_ms")]
    pub keep_alive: Duration,
    /// Deadline of an RPC when the caller gives none.
    #[serde(with = "humantime_ms")]
    pub rpc_default_deadline: Duration,
    /// Time a peer has to send a complete RPC request after opening its
    /// stream (slow senders hold resources).
    #[serde(with = "humantime_ms")]
    pub rpc_request_read: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            handshake: Duration::from_secs(10),
            idle: Duration::from_secs(30),
            keep_alive: Duration::from_secs(5),
            rpc_default_deadline: Duration::from_secs(10),
            rpc_request_read: Duration::from_secs(10),
        }
    }
}

/// Redialling after a failed connection attempt.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Reconnect {
    /// Attempts per `connect` call (1 = no retry).
    pub max_attempts: u32,
    /// Delay before the first retry; doubled each time, with jitter.
    #[serde(with = "humantime_ms")]
    pub initial_backoff: Duration,
    /// Upper bound of the delay between attempts.
    #[serde(with = "humantime_ms")]
    pub max_backoff: Duration,
}

impl Default for Reconnect {
    fn default() -> Self {
        Reconnect {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// Everything an [`super::Endpoint`] needs besides its TLS identity.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct EndpointConfig {
    /// Address to listen on; IPv6 only (`[::1]:0` picks a free port).
    pub listen: SocketAddr,
    /// Abuse limits.
    pub limits: Limits,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Reconnection policy.
    pub reconnect: Reconnect,
    /// Gossip parameters.
    #[serde(skip)]
    pub gossip: GossipConfig,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            listen: SocketAddr::new(Ipv6Addr::LOCALHOST.into(), 0),
            limits: Limits::default(),
            timeouts: Timeouts::default(),
            reconnect: Reconnect::default(),
            gossip: GossipConfig::default(),
        }
    }
}

/// Durations in config files are written in milliseconds.
mod humantime_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_round_trip_and_defaults() {
        let cfg = EndpointConfig::default();
        let text = toml::to_string(&cfg).unwrap();
        let back: EndpointConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, cfg);
        let partial: EndpointConfig =
            toml::from_str("listen = \"[::1]:4433\"\n[limits]\nmax_frame_len = 1024\n").unwrap();
        assert_eq!(partial.limits.max_frame_len, 1024);
        assert_eq!(
            partial.limits.max_concurrent_bidi_streams,
            Limits::default().max_concurrent_bidi_streams
        );
        assert!(
            toml::from_str::<EndpointConfig>("bogus = 1").is_err(),
            "unknown keys are refused"
        );
    }
}
