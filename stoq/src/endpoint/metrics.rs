//! Prometheus counters of an endpoint.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The endpoint's counters; register them with [`Metrics::register`].
#[derive(Debug, Default, Clone)]
pub struct Metrics {
    /// Handshakes completed (both directions).
    pub connections_established: Counter,
    /// Incoming connection attempts refused by the per-/64 rate limiter.
    pub connections_rate_limited: Counter,
    /// Incoming connection attempts refused at the connection limit.
    pub connections_over_limit: Counter,
    /// Handshakes that failed (certificate refused, timeout, ...).
    pub handshake_failures: Counter,
    /// Connections currently open.
    pub connections_open: Gauge,
    /// RPC requests served.
    pub rpc_served: Counter,
    /// RPC requests answered with an error.
    pub rpc_errors: Counter,
    /// Frames refused as malformed or oversized.
    pub frames_rejected: Counter,
    /// Application messages received.
    pub messages_received: Counter,
    /// Datagrams received.
    pub datagrams_received: Counter,
}

impl Metrics {
    /// Registers every metric under the `stoq` prefix.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("stoq");
        r.register(
            "connections_established",
            "Handshakes completed",
            self.connections_established.clone(),
        );
        r.register(
            "connections_rate_limited",
            "Connections refused by the per-/64 limiter",
            self.connections_rate_limited.clone(),
        );
        r.register(
            "connections_over_limit",
            "Connections refused at the connection limit",
            self.connections_over_limit.clone(),
        );
        r.register(
            "handshake_failures",
            "Failed handshakes",
            self.handshake_failures.clone(),
        );
        r.register("connections_open", "Open connections", self.connections_open.clone());
        r.register("rpc_served", "RPC requests served", self.rpc_served.clone());
        r.register(
            "rpc_errors",
            "RPC requests answered with an error",
            self.rpc_errors.clone(),
        );
        r.register(
            "frames_rejected",
            "Malformed or oversized frames",
            self.frames_rejected.clone(),
        );
        r.register(
            "messages_received",
            "Application messages received",
            self.messages_received.clone(),
        );
        r.register(
            "datagrams_received",
            "Datagrams received",
            self.datagrams_received.clone(),
        );
    }
}
