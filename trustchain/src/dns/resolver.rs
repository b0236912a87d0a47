//! A DNS-over-QUIC resolver that trusts TrustChain, for dialling by name.

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::lookup::Lookup;
use hickory_resolver::net::runtime::iocompat::AsyncIoTokioAsStd;
use hickory_resolver::net::runtime::{QuicSocketBinder, RuntimeProvider, TokioHandle, TokioRuntimeProvider, TokioTime};
use hickory_resolver::net::NetError;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use hickory_resolver::Resolver;
use quinn::Runtime as _;
use socket2::{Domain, Protocol, Socket, Type};
use std::future::Future;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use stoq::pki::TrustAnchors;
use stoq::tls::{SecurityMode, TlsContext};

use super::{doq, require_ipv6, DnsError, NodeRecord};

/// Resolves mesh names over DNS-over-QUIC, accepting only a server whose
/// certificate chains to a TrustChain root and is valid for the server
/// name. Answers are cached for their TTL ([`MeshResolver::clear_cache`]
/// forgets them); the hosts file is never consulted. Names are taken as
/// fully qualified (`node-1.mesh` means `node-1.mesh.`).
#[derive(Clone)]
pub struct MeshResolver {
    resolver: Resolver<V6OnlyRuntime>,
    server: SocketAddr,
    server_name: Arc<str>,
    tls: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for MeshResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshResolver")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl MeshResolver {
    /// A resolver for a mesh member: asks the DoQ server at `doq_server`,
    /// which must present a certificate for `server_name` issued under the
    /// roots of `tls`, with the stack's post-quantum TLS.
    pub fn new(doq_server: SocketAddr, server_name: &str, tls: &TlsContext) -> Result<Self, DnsError> {
        Self::with_tls_config(doq_server, server_name, doq::client_config(tls)?)
    }

    /// A resolver for a client that is not a mesh member: it only needs
    /// the TrustChain roots to trust.
    pub fn with_roots(
        doq_server: SocketAddr,
        server_name: &str,
        mode: SecurityMode,
        anchors: TrustAnchors,
    ) -> Result<Self, DnsError> {
        Self::with_tls_config(doq_server, server_name, doq::anonymous_client_config(mode, anchors)?)
    }

    fn with_tls_config(server: SocketAddr, server_name: &str, tls: rustls::ClientConfig) -> Result<Self, DnsError> {
        require_ipv6("doq_server", server)?;
        rustls::pki_types::ServerName::try_from(server_name).map_err(|e| DnsError::InvalidName {
            name: server_name.into(),
            reason: format!("not a TLS server name: {e}"),
        })?;
        let mut connection = ConnectionConfig::quic(Arc::from(server_name));
        connection.port = server.port();
        connection.bind_addr = Some(SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)));
        let name_server = NameServerConfig::new(server.ip(), true, vec![connection]);
        let config = ResolverConfig::from_parts(None, vec![], vec![name_server]);
        let mut builder = Resolver::builder_with_config(config, V6OnlyRuntime::default()).with_tls_config(tls.clone());
        let options = builder.options_mut();
        options.use_hosts_file = ResolveHosts::Never;
        options.recursion_desired = false;
        options.timeout = Duration::from_secs(5);
        options.attempts = 1;
        let resolver = builder
            .build()
            .map_err(|e| DnsError::Tls(format!("building the resolver: {e}")))?;
        Ok(MeshResolver {
            resolver,
            server,
            server_name: Arc::from(server_name),
            tls: Arc::new(tls),
        })
    }

    /// The IPv6 addresses of `name`.
    pub async fn lookup_aaaa(&self, name: &str) -> Result<Vec<Ipv6Addr>, DnsError> {
        let lookup = self.lookup(name, RecordType::AAAA).await?;
        Ok(lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::AAAA(a) => Some(a.0),
                _ => None,
            })
            .collect())
    }

    /// The TXT records of `name`, one string per record (its
    /// character-strings concatenated, invalid UTF-8 replaced).
    pub async fn lookup_txt(&self, name: &str) -> Result<Vec<String>, DnsError> {
        let lookup = self.lookup(name, RecordType::TXT).await?;
        Ok(lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::TXT(t) => Some(t.txt_data.iter().map(|s| String::from_utf8_lossy(s)).collect()),
                _ => None,
            })
            .collect())
    }

    /// The SRV records at `name` (e.g. `_stoq._udp.node-1.mesh`) as
    /// (target, port), by priority then descending weight.
    pub async fn lookup_srv(&self, name: &str) -> Result<Vec<(String, u16)>, DnsError> {
        let lookup = self.lookup(name, RecordType::SRV).await?;
        let mut srv: Vec<_> = lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::SRV(s) => Some((s.priority, std::cmp::Reverse(s.weight), s.target.to_ascii(), s.port)),
                _ => None,
            })
            .collect();
        srv.sort();
        Ok(srv.into_iter().map(|(_, _, target, port)| (target, port)).collect())
    }

    /// The certificate fingerprint a node publishes (`tc-fp=` TXT), if any.
    pub async fn lookup_fingerprint(&self, name: &str) -> Result<Option<[u8; 32]>, DnsError> {
        let txt = self.lookup_txt(name).await?;
        Ok(txt.iter().find_map(|t| NodeRecord::parse_fingerprint_txt(t)))
    }

    /// The socket address to dial `name` on `port`: the first AAAA record;
    /// an IPv6 literal is returned as is.
    pub async fn resolve_socket(&self, name: &str, port: u16) -> Result<SocketAddr, DnsError> {
        if let Ok(ip) = name.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
            let addr = SocketAddr::new(ip, port);
            require_ipv6("address", addr)?;
            return Ok(addr);
        }
        let addrs = self.lookup_aaaa(name).await?;
        let ip = addrs.first().ok_or_else(|| DnsError::NoRecords {
            name: name.into(),
            rtype: "AAAA".into(),
        })?;
        Ok(SocketAddr::from((*ip, port)))
    }

    /// Forgets cached answers (e.g. after a revocation was announced).
    pub fn clear_cache(&self) {
        self.resolver.clear_cache();
    }

    async fn lookup(&self, name: &str, rtype: RecordType) -> Result<Lookup, DnsError> {
        let fqdn = if name.ends_with('.') {
            name.to_string()
        } else {
            format!("{name}.")
        };
        let query = Name::from_ascii(&fqdn).map_err(|e| DnsError::InvalidName {
            name: name.into(),
            reason: e.to_string(),
        })?;
        match self.resolver.lookup(query, rtype).await {
            Ok(lookup) => Ok(lookup),
            Err(e) if e.is_nx_domain() => Err(DnsError::NotFound { name: name.into() }),
            Err(e) if e.is_no_records_found() => Err(DnsError::NoRecords {
                name: name.into(),
                rtype: rtype.to_string(),
            }),
            Err(e) => Err(DnsError::Lookup {
                name: name.into(),
                server: self.server,
                reason: self.explain(e).await,
            }),
        }
    }

    /// hickory reports a refused handshake as "no connections available":
    /// redo the handshake alone to report its real cause.
    async fn explain(&self, e: NetError) -> String {
        if !matches!(e, NetError::NoConnections) {
            return e.to_string();
        }
        match doq::probe(self.server, &self.server_name, &self.tls).await {
            Err(reason) => reason,
            Ok(()) => e.to_string(),
        }
    }
}

/// Tokio, with QUIC sockets made `IPV6_V6ONLY` (hickory's own binder
/// leaves them dual-stack).
#[derive(Clone, Default)]
struct V6OnlyRuntime(TokioRuntimeProvider);

type IoFuture<T> = Pin<Box<dyn Send + Future<Output = std::io::Result<T>>>>;

impl RuntimeProvider for V6OnlyRuntime {
    type Handle = TokioHandle;
    type Timer = TokioTime;
    type Udp = tokio::net::UdpSocket;
    type Tcp = AsyncIoTokioAsStd<tokio::net::TcpStream>;

    fn create_handle(&self) -> Self::Handle {
        self.0.create_handle()
    }

    fn connect_tcp(&self, server: SocketAddr, bind: Option<SocketAddr>, wait: Option<Duration>) -> IoFuture<Self::Tcp> {
        self.0.connect_tcp(server, bind, wait)
    }

    fn bind_udp(&self, local: SocketAddr, server: SocketAddr) -> IoFuture<Self::Udp> {
        self.0.bind_udp(local, server)
    }

    fn quic_binder(&self) -> Option<&dyn QuicSocketBinder> {
        Some(&V6OnlyQuicBinder)
    }
}

struct V6OnlyQuicBinder;

impl QuicSocketBinder for V6OnlyQuicBinder {
    fn bind_quic(&self, local: SocketAddr, server: SocketAddr) -> std::io::Result<Arc<dyn quinn::AsyncUdpSocket>> {
        if !server.is_ipv6() || !local.is_ipv6() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{server} is IPv4: the stack is IPv6-only"),
            ));
        }
        let socket = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
        socket.set_only_v6(true)?;
        socket.bind(&local.into())?;
        quinn::TokioRuntime.wrap_udp_socket(socket.into())
    }
}
