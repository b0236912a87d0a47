//! A member's Prometheus metrics.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Counters and gauges of a member; register with [`MemberMetrics::register`].
#[derive(Debug, Clone)]
pub struct MemberMetrics {
    /// Certificates issued.
    pub issued: Counter,
    /// Revocations logged.
    pub revoked: Counter,
    /// Requests refused (any reason).
    pub refused: Counter,
    /// Co-signatures this member gave.
    pub cosigned: Counter,
    /// Co-sign requests this member refused.
    pub cosign_refused: Counter,
    /// Co-sign rounds that did not reach k signatures.
    pub quorum_failures: Counter,
    /// Entries in this member's log.
    pub log_size: Gauge,
    /// Issuance latency from admission to certificate, seconds.
    pub issuance_seconds: Histogram,
    /// Entries per co-signed batch.
    pub batch_size: Histogram,
    /// DNS names taken from other members' zone feeds.
    pub names_replicated: Counter,
    /// Zone feed entries refused (certificate not valid, revoked, ...).
    pub feed_refused: Counter,
    /// Names dropped because their certificate expired.
    pub names_expired: Counter,
    /// Names in the zone.
    pub zone_names: Gauge,
}

impl Default for MemberMetrics {
    fn default() -> Self {
        MemberMetrics {
            issued: Counter::default(),
            revoked: Counter::default(),
            refused: Counter::default(),
            cosigned: Counter::default(),
            cosign_refused: Counter::default(),
            quorum_failures: Counter::default(),
            log_size: Gauge::default(),
            issuance_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 10)),
            names_replicated: Counter::default(),
            feed_refused: Counter::default(),
            names_expired: Counter::default(),
            zone_names: Gauge::default(),
        }
    }
}

impl MemberMetrics {
    /// Registers every metric under the `trustchain` prefix.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("trustchain");
        r.register("certificates_issued", "Certificates issued", self.issued.clone());
        r.register("revocations", "Revocations logged", self.revoked.clone());
        r.register("requests_refused", "Requests refused", self.refused.clone());
        r.register("cosignatures", "Co-signatures given", self.cosigned.clone());
        r.register(
            "cosign_refused",
            "Co-sign requests refused",
            self.cosign_refused.clone(),
        );
        r.register(
            "quorum_failures",
            "Co-sign rounds without k signatures",
            self.quorum_failures.clone(),
        );
        r.register("log_size", "Entries in this member's log", self.log_size.clone());
        r.register(
            "issuance_seconds",
            "Issuance latency from admission to certificate",
            self.issuance_seconds.clone(),
        );
        r.register("batch_entries", "Entries per co-signed batch", self.batch_size.clone());
        r.register(
            "zone_names_replicated",
            "DNS names taken from other members' zone feeds",
            self.names_replicated.clone(),
        );
        r.register(
            "zone_feed_refused",
            "Zone feed entries refused",
            self.feed_refused.clone(),
        );
        r.register(
            "zone_names_expired",
            "Names dropped with their expired certificate",
            self.names_expired.clone(),
        );
        r.register("zone_names", "Names in the zone", self.zone_names.clone());
    }
}
