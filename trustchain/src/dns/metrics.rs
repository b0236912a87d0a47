//! Prometheus counters of the DNS server.

use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::ResponseCode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProtocolLabel {
    protocol: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RcodeLabel {
    rcode: &'static str,
}

/// Counters of the DNS server, shared by its clones:
/// `trustchain_dns_queries_total{protocol="udp|tcp|quic"}` (parsed
/// requests) and `trustchain_dns_responses_total{rcode="noerror|nxdomain|
/// refused|..."}` (answers to them). Packets too broken to parse are
/// dropped or answered with FORMERR by hickory before they reach these.
#[derive(Clone, Debug, Default)]
pub struct DnsMetrics {
    queries: Family<ProtocolLabel, Counter>,
    responses: Family<RcodeLabel, Counter>,
}

impl DnsMetrics {
    /// Registers the counters in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "trustchain_dns_queries",
            "DNS requests received, by transport",
            self.queries.clone(),
        );
        registry.register(
            "trustchain_dns_responses",
            "DNS responses sent, by response code",
            self.responses.clone(),
        );
    }

    /// Requests received over `protocol` (`udp`, `tcp` or `quic`).
    pub fn queries(&self, protocol: &str) -> u64 {
        let protocol = protocol_label_of(protocol);
        self.queries.get_or_create(&ProtocolLabel { protocol }).get()
    }

    /// Responses sent with `rcode` (lowercase, e.g. `nxdomain`).
    pub fn responses(&self, rcode: &str) -> u64 {
        let rcode = rcode_label_of(rcode);
        self.responses.get_or_create(&RcodeLabel { rcode }).get()
    }

    pub(crate) fn query(&self, protocol: Protocol) {
        let protocol = match protocol {
            Protocol::Udp => "udp",
            Protocol::Tcp => "tcp",
            Protocol::Quic => "quic",
            _ => "other",
        };
        self.queries.get_or_create(&ProtocolLabel { protocol }).inc();
    }

    pub(crate) fn response(&self, rcode: ResponseCode) {
        let rcode = rcode_label(rcode);
        self.responses.get_or_create(&RcodeLabel { rcode }).inc();
    }
}

fn rcode_label(rcode: ResponseCode) -> &'static str {
    match rcode {
        ResponseCode::NoError => "noerror",
        ResponseCode::FormErr => "formerr",
        ResponseCode::ServFail => "servfail",
        ResponseCode::NXDomain => "nxdomain",
        ResponseCode::NotImp => "notimp",
        ResponseCode::Refused => "refused",
        ResponseCode::NotAuth => "notauth",
        ResponseCode::BADVERS => "badvers",
        _ => "other",
    }
}

const RCODES: [&str; 9] = [
    "noerror", "formerr", "servfail", "nxdomain", "notimp", "refused", "notauth", "badvers", "other",
];

fn rcode_label_of(name: &str) -> &'static str {
    RCODES
        .iter()
        .copied()
        .find(|r| r.eq_ignore_ascii_case(name))
        .unwrap_or("other")
}

fn protocol_label_of(name: &str) -> &'static str {
    ["udp", "tcp", "quic"]
        .into_iter()
        .find(|p| p.eq_ignore_ascii_case(name))
        .unwrap_or("other")
}
