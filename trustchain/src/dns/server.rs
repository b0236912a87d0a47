//! The authoritative server: hickory-server over IPv6-only sockets, UDP and
//! TCP on one port plus DNS-over-QUIC, answering from the live zone.

use hickory_server::net::runtime::Time;
use hickory_server::proto::rr::{LowerName, RecordType, TSigResponseContext};
use hickory_server::server::{Request, RequestHandler, RequestInfo, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::{
    AuthLookup, AxfrPolicy, Catalog, LookupControlFlow, LookupOptions, ZoneHandler, ZoneType,
};
use hickory_server::Server;
use serde::{Deserialize, Serialize};
use socket2::{Domain, Protocol, Socket, Type};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use stoq::tls::TlsContext;

use super::{doq, require_ipv6, DnsError, DnsMetrics, MeshZone};

const MAX_TIMEOUT_MS: u64 = 300_000;
const TCP_BACKLOG: i32 = 1024;
/// Responses queued per TCP connection (hickory's default).
const TCP_RESPONSE_BUFFER: usize = 32;

/// Where and how the DNS server listens. Every address must be IPv6.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DnsConfig {
    /// UDP and TCP (same port). Port 0 picks a free port.
    pub listen: SocketAddr,
    /// DNS-over-QUIC (RFC 9250); `"off"` in a file (`None`) disables it.
    #[serde(with = "off_or_addr")]
    pub doq_listen: Option<SocketAddr>,
    /// A TCP connection idle this long (ms) is closed.
    pub tcp_timeout_ms: u64,
    /// A DoQ connection idle this long (ms) is closed.
    pub doq_timeout_ms: u64,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            listen: SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 5353)),
            doq_listen: Some(SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 8853))),
            tcp_timeout_ms: 5_000,
            doq_timeout_ms: 5_000,
        }
    }
}

impl DnsConfig {
    /// Refuses IPv4 addresses, clashing ports and out-of-range timeouts.
    pub fn validate(&self) -> Result<(), DnsError> {
        require_ipv6("listen", self.listen)?;
        if let Some(doq) = self.doq_listen {
            require_ipv6("doq_listen", doq)?;
            if doq == self.listen && doq.port() != 0 {
                return Err(DnsError::Config(format!(
                    "doq_listen and listen are both {doq}: DNS over UDP and over QUIC need different ports"
                )));
            }
        }
        for (what, ms) in [
            ("tcp_timeout_ms", self.tcp_timeout_ms),
            ("doq_timeout_ms", self.doq_timeout_ms),
        ] {
            if ms == 0 || ms > MAX_TIMEOUT_MS {
                return Err(DnsError::Config(format!(
                    "{what} = {ms}: it must be between 1 and {MAX_TIMEOUT_MS}"
                )));
            }
        }
        Ok(())
    }
}

/// A running DNS server; [`DnsServer::shutdown`] stops it gracefully,
/// dropping it stops it at once.
pub struct DnsServer {
    server: Server<MeteredCatalog>,
    udp_addr: SocketAddr,
    tcp_addr: SocketAddr,
    doq_addr: Option<SocketAddr>,
}

impl std::fmt::Debug for DnsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsServer")
            .field("udp_addr", &self.udp_addr)
            .field("tcp_addr", &self.tcp_addr)
            .field("doq_addr", &self.doq_addr)
            .finish_non_exhaustive()
    }
}

impl DnsServer {
    /// Binds the listeners and starts answering for `zone`. DoQ (if
    /// `config.doq_listen` is set) presents the certificate of `doq_tls`,
    /// following its rotations.
    pub async fn start(
        config: &DnsConfig,
        zone: MeshZone,
        doq_tls: Option<&TlsContext>,
        metrics: DnsMetrics,
    ) -> Result<Self, DnsError> {
        config.validate()?;
        let doq_tls = match (config.doq_listen, doq_tls) {
            (Some(addr), None) => return Err(DnsError::DoqWithoutCertificate(addr)),
            (Some(addr), Some(tls)) => Some((addr, Arc::new(doq::server_config(tls)?))),
            (None, _) => None,
        };
        let udp = bind_udp("UDP", config.listen)?;
        let udp_addr = local_addr("UDP", config.listen, udp.local_addr())?;
        // With an ephemeral port, serve TCP on the port UDP got if it is free.
        let tcp = match config.listen.port() {
            0 => bind_tcp(udp_addr).or_else(|_| bind_tcp(config.listen))?,
            _ => bind_tcp(config.listen)?,
        };
        let tcp_addr = local_addr("TCP", config.listen, tcp.local_addr())?;

        let mut catalog = Catalog::new();
        catalog.upsert(
            zone.origin_lower().clone(),
            vec![Arc::new(ZoneView { zone: zone.clone() })],
        );
        let mut server = Server::new(MeteredCatalog { catalog, metrics });
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_millis(config.tcp_timeout_ms), TCP_RESPONSE_BUFFER);

        let mut doq_addr = None;
        if let Some((addr, tls)) = doq_tls {
            let socket = bind_udp("QUIC", addr)?;
            doq_addr = Some(local_addr("QUIC", addr, socket.local_addr())?);
            server
                .register_quic_listener_and_tls_config(socket, Duration::from_millis(config.doq_timeout_ms), tls)
                .map_err(|e| DnsError::Tls(format!("starting the DoQ listener: {e}")))?;
        }
        tracing::info!(
            origin = %zone.origin(), udp = %udp_addr, tcp = %tcp_addr, doq = ?doq_addr,
            "DNS server listening"
        );
        Ok(DnsServer {
            server,
            udp_addr,
            tcp_addr,
            doq_addr,
        })
    }

    /// The bound UDP address.
    pub fn udp_addr(&self) -> SocketAddr {
        self.udp_addr
    }

    /// The bound TCP address.
    pub fn tcp_addr(&self) -> SocketAddr {
        self.tcp_addr
    }

    /// The bound DNS-over-QUIC address, if enabled.
    pub fn doq_addr(&self) -> Option<SocketAddr> {
        self.doq_addr
    }

    /// Stops accepting, lets requests in progress finish, and waits for
    /// every listener to stop.
    pub async fn shutdown(mut self) -> Result<(), DnsError> {
        self.server
            .shutdown_gracefully()
            .await
            .map_err(|e| DnsError::Server(format!("shutting down: {e}")))
    }
}

fn bind_error(what: &'static str, addr: SocketAddr) -> impl FnOnce(std::io::Error) -> DnsError {
    move |source| DnsError::Bind { what, addr, source }
}

fn local_addr(what: &'static str, addr: SocketAddr, got: std::io::Result<SocketAddr>) -> Result<SocketAddr, DnsError> {
    got.map_err(bind_error(what, addr))
}

/// An IPv6-only UDP socket.
fn bind_udp(what: &'static str, addr: SocketAddr) -> Result<tokio::net::UdpSocket, DnsError> {
    let err = |e| bind_error(what, addr)(e);
    let socket = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP)).map_err(err)?;
    socket.set_only_v6(true).map_err(err)?;
    socket.set_nonblocking(true).map_err(err)?;
    socket.bind(&addr.into()).map_err(err)?;
    tokio::net::UdpSocket::from_std(socket.into()).map_err(err)
}

/// An IPv6-only TCP listener.
fn bind_tcp(addr: SocketAddr) -> Result<tokio::net::TcpListener, DnsError> {
    let err = |e| bind_error("TCP", addr)(e);
    let socket = Socket::new(Domain::IPV6, Type::STREAM, Some(Protocol::TCP)).map_err(err)?;
    socket.set_only_v6(true).map_err(err)?;
    socket.set_reuse_address(true).map_err(err)?;
    socket.set_nonblocking(true).map_err(err)?;
    socket.bind(&addr.into()).map_err(err)?;
    socket.listen(TCP_BACKLOG).map_err(err)?;
    tokio::net::TcpListener::from_std(socket.into()).map_err(err)
}

/// The catalog, counting requests and response codes.
struct MeteredCatalog {
    catalog: Catalog,
    metrics: DnsMetrics,
}

#[async_trait::async_trait]
impl RequestHandler for MeteredCatalog {
    async fn handle_request<R: ResponseHandler, T: Time>(&self, request: &Request, response_handle: R) -> ResponseInfo {
        self.metrics.query(request.protocol());
        let info = self.catalog.handle_request::<R, T>(request, response_handle).await;
        self.metrics.response(info.response_code);
        info
    }
}

/// hickory's view of the zone: every call goes to the snapshot current at
/// that moment (see [`MeshZone`]); dynamic updates and AXFR are refused.
struct ZoneView {
    zone: MeshZone,
}

#[async_trait::async_trait]
impl ZoneHandler for ZoneView {
    fn zone_type(&self) -> ZoneType {
        ZoneType::Primary
    }

    fn axfr_policy(&self) -> AxfrPolicy {
        AxfrPolicy::Deny
    }

    fn origin(&self) -> &LowerName {
        self.zone.origin_lower()
    }

    async fn lookup(
        &self,
        name: &LowerName,
        rtype: RecordType,
        request_info: Option<&RequestInfo<'_>>,
        lookup_options: LookupOptions,
    ) -> LookupControlFlow<AuthLookup> {
        self.zone
            .snapshot()
            .lookup(name, rtype, request_info, lookup_options)
            .await
    }

    async fn search(
        &self,
        request: &Request,
        lookup_options: LookupOptions,
    ) -> (LookupControlFlow<AuthLookup>, Option<TSigResponseContext>) {
        self.zone.snapshot().search(request, lookup_options).await
    }

    async fn nsec_records(&self, name: &LowerName, lookup_options: LookupOptions) -> LookupControlFlow<AuthLookup> {
        self.zone.snapshot().nsec_records(name, lookup_options).await
    }
}

/// `doq_listen` in files: an address, or `"off"`.
mod off_or_addr {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::net::SocketAddr;

    pub(super) fn serialize<S: Serializer>(value: &Option<SocketAddr>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(addr) => s.collect_str(addr),
            None => s.serialize_str("off"),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
        let text = String::deserialize(d)?;
        if text.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        text.parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("{text:?} is not an address like \"[::1]:8853\" or \"off\"")))
    }
}
