//! The STOQ endpoint: an IPv6-only QUIC endpoint with mutual post-quantum
//! authentication, connection reuse, RPC, gossip, messages and datagrams.

mod addr;
mod config;
mod connection;
mod errors;
mod metrics;
mod pubsub;
mod ratelimit;
mod rpc;

pub use addr::{bind_ipv6_udp, prefix64, require_ipv6};
pub use config::{EndpointConfig, Limits, Reconnect, Timeouts};
pub use connection::{Connection, CLOSE_NORMAL, CLOSE_PROTOCOL_ERROR};
pub use metrics::Metrics;
pub use pubsub::{Gossip, GossipMessage};
pub use ratelimit::PrefixRateLimiter;
pub use rpc::{RpcError, RpcFuture, RpcHandler, RpcRequest, MAX_METHOD_LEN};

use bytes::Bytes;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::crypto::NodeId;
use crate::frame::BufferPool;
use crate::tls::{Identity, PeerIdentity, TlsContext};
use crate::{Error, Result};
use pubsub::lock;

/// Something a peer sent that is not an RPC or gossip.
#[derive(Debug, Clone)]
pub enum Incoming {
    /// A reliable application message ([`Connection::send_message`]).
    Message {
        /// Who sent it.
        from: PeerIdentity,
        /// The payload.
        payload: Bytes,
    },
    /// An unreliable datagram ([`Connection::send_datagram`]).
    Datagram {
        /// Who sent it.
        from: PeerIdentity,
        /// The payload.
        payload: Bytes,
    },
}

/// Queue of [`Incoming`] events before the application takes them.
const EVENT_QUEUE: usize = 4096;

/// State shared by the endpoint and its connections.
pub(crate) struct Shared {
    config: EndpointConfig,
    handlers: RwLock<HashMap<String, Arc<dyn RpcHandler>>>,
    /// Methods a peer that is not enrolled may call.
    public_methods: RwLock<std::collections::HashSet<String>>,
    /// Set when the TLS context admits unenrolled clients: the verifier
    /// that tells enrolled peers from the others after the handshake.
    enrollment_verifier: Option<crate::pki::ChainVerifier>,
    gossip: Gossip,
    events: mpsc::Sender<Incoming>,
    pool: Arc<BufferPool>,
    metrics: Metrics,
    next_conn_id: AtomicUsize,
    connections: Mutex<HashMap<usize, Connection>>,
    shutdown: CancellationToken,
}

/// A STOQ endpoint. Cheap to clone; every clone is the same endpoint.
#[derive(Clone)]
pub struct Endpoint {
    quic: quinn::Endpoint,
    tls: TlsContext,
    shared: Arc<Shared>,
    dialed: Arc<Mutex<HashMap<(SocketAddr, String), Connection>>>,
    events: Arc<Mutex<Option<mpsc::Receiver<Incoming>>>>,
    node_id: NodeId,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("node_id", &self.node_id)
            .field("local", &self.quic.local_addr().ok())
            .finish()
    }
}

impl Endpoint {
    /// Binds to `config.listen` (IPv6 only) and starts accepting
    /// connections. Must be called inside a tokio runtime.
    pub fn bind(config: EndpointConfig, tls: TlsContext) -> Result<Self> {
        let socket = bind_ipv6_udp(config.listen, config.limits.socket_receive_buffer)?;
        let transport = Arc::new(transport_config(&config)?);
        let mut server = quinn::ServerConfig::with_crypto(tls.quic_server_config()?);
        server.transport_config(transport.clone());
        // Connection admission is ours (rate limit per /64, cap), so
        // quinn's own incoming buffer limits stay at their defaults.
        let mut quic = quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            Some(server),
            socket,
            Arc::new(quinn::TokioRuntime),
        )
        .map_err(|source| Error::Io {
            context: "starting QUIC endpoint".into(),
            source,
        })?;
        let mut client = quinn::ClientConfig::new(tls.quic_client_config()?);
        client.transport_config(transport);
        quic.set_default_client_config(client);

        let node_id = tls.current_certificate()?.node_id();
        let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
        let shared = Arc::new(Shared {
            gossip: Gossip::new(node_id, config.gossip.clone()),
            config,
            handlers: RwLock::new(HashMap::new()),
            public_methods: RwLock::new(Default::default()),
            enrollment_verifier: tls.accepts_unenrolled_clients().then(|| tls.verifier().clone()),
            events: events_tx,
            pool: Arc::new(BufferPool::new(64 * 1024, 256)),
            metrics: Metrics::default(),
            next_conn_id: AtomicUsize::new(1),
            connections: Mutex::new(HashMap::new()),
            shutdown: CancellationToken::new(),
        });
        tokio::spawn(accept_loop(quic.clone(), shared.clone()));
        let endpoint = Endpoint {
            quic,
            tls,
            shared,
            dialed: Default::default(),
            events: Arc::new(Mutex::new(Some(events_rx))),
            node_id,
        };
        info!(node = %node_id.short(), addr = ?endpoint.local_addr().ok(), "STOQ endpoint listening");
        Ok(endpoint)
    }

    /// The bound address.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.quic.local_addr().map_err(|source| Error::Io {
            context: "local address".into(),
            source,
        })
    }

    /// This endpoint's node id (of the certificate it was started with;
    /// rotation keeps the key, so the id stays).
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// The TLS context (trust anchors, current certificate).
    pub fn tls(&self) -> &TlsContext {
        &self.tls
    }

    /// The configuration.
    pub fn config(&self) -> &EndpointConfig {
        &self.shared.config
    }

    /// Replaces the presented certificate for new handshakes without
    /// touching live connections.
    pub fn swap_identity(&self, identity: Identity, classical: Option<Identity>) -> Result<()> {
        self.tls.swap_identity(identity, classical)
    }

    /// Serves `method` with `handler` on every connection.
    pub fn register<H: RpcHandler>(&self, method: &str, handler: H) {
        self.shared
            .handlers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(method.to_string(), Arc::new(handler));
    }

    /// Serves `method` also to peers that are not enrolled (they connected
    /// with a self-signed certificate to an endpoint whose TLS context
    /// accepts unenrolled clients). Every other method refuses them.
    pub fn register_public<H: RpcHandler>(&self, method: &str, handler: H) {
        self.shared
            .public_methods
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(method.to_string());
        self.register(method, handler);
    }

    /// Publish/subscribe over all connections of this endpoint.
    pub fn gossip(&self) -> &Gossip {
        &self.shared.gossip
    }

    /// The endpoint's counters.
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// Takes the receiver of messages and datagrams (once).
    pub fn take_incoming(&self) -> Option<mpsc::Receiver<Incoming>> {
        lock(&self.events).take()
    }

    /// Open connections, both directions.
    pub fn connections(&self) -> Vec<Connection> {
        lock(&self.shared.connections).values().cloned().collect()
    }

    /// An open connection to `node`, if any.
    pub fn connection_to(&self, node: &NodeId) -> Option<Connection> {
        lock(&self.shared.connections)
            .values()
            .find(|c| c.peer().node_id() == *node && !c.is_closed())
            .cloned()
    }

    /// Connects to `addr`, expecting a certificate valid for `server_name`.
    /// Reuses a live connection to the same peer; retries transient
    /// failures with exponential backoff and jitter; certificate and
    /// protocol failures are returned at once.
    pub async fn connect(&self, addr: SocketAddr, server_name: &str) -> Result<Connection> {
        let addr = require_ipv6(addr)?;
        let key = (addr, server_name.to_string());
        if let Some(c) = lock(&self.dialed).get(&key).filter(|c| !c.is_closed()).cloned() {
            return Ok(c);
        }
        let policy = &self.shared.config.reconnect;
        let mut backoff = policy.initial_backoff;
        let mut attempt = 1;
        loop {
            match self.dial_once(addr, server_name).await {
                Ok(conn) => {
                    lock(&self.dialed).insert(key, conn.clone());
                    return Ok(conn);
                }
                Err(e) if e.is_retryable() && attempt < policy.max_attempts.max(1) => {
                    let jitter = backoff.mul_f64(rand::random::<f64>() * 0.5);
                    debug!(%addr, attempt, error = %e, "connect failed, retrying");
                    tokio::time::sleep(backoff + jitter).await;
                    backoff = (backoff * 2).min(policy.max_backoff);
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn dial_once(&self, addr: SocketAddr, server_name: &str) -> Result<Connection> {
        let connecting = self.quic.connect(addr, server_name).map_err(|e| Error::Connection {
            peer: addr,
            reason: e.to_string(),
            retryable: false,
        })?;
        let timeout = self.shared.config.timeouts.handshake;
        let conn = match tokio::time::timeout(timeout, connecting).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                self.shared.metrics.handshake_failures.inc();
                return Err(errors::connection_error(addr, e));
            }
            Err(_) => {
                self.shared.metrics.handshake_failures.inc();
                return Err(Error::Timeout {
                    what: "handshake",
                    after: timeout,
                });
            }
        };
        Connection::establish(conn, self.shared.clone(), false)
    }

    /// Closes every connection and stops accepting; waits (briefly) for the
    /// peers to be told. The RPC handlers are dropped too: they often hold
    /// the application's state, which holds this endpoint, and that cycle
    /// would keep both (and, say, an open database) alive after shutdown.
    pub async fn shutdown(&self) {
        self.shared.shutdown.cancel();
        self.quic.close(CLOSE_NORMAL.into(), b"endpoint shutting down");
        let _ = tokio::time::timeout(Duration::from_secs(2), self.quic.wait_idle()).await;
        lock(&self.shared.connections).clear();
        lock(&self.dialed).clear();
        // quinn releases the socket when its last handle goes, which
        // background tasks may delay, and a rebind keeps the previous socket
        // until its driver next runs: rebinding twice to throwaway sockets
        // lets the address go now, so a restart can bind it at once.
        for _ in 0..2 {
            if let Ok(spare) = std::net::UdpSocket::bind((std::net::Ipv6Addr::LOCALHOST, 0)) {
                let _ = self.quic.rebind(spare);
            }
        }
        self.shared.handlers.write().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

fn transport_config(config: &EndpointConfig) -> Result<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.max_concurrent_bidi_streams(config.limits.max_concurrent_bidi_streams.into());
    t.max_concurrent_uni_streams(config.limits.max_concurrent_uni_streams.into());
    let idle = quinn::IdleTimeout::try_from(config.timeouts.idle)
        .map_err(|_| Error::Config("timeouts.idle is too large".into()))?;
    t.max_idle_timeout(Some(idle));
    t.keep_alive_interval(Some(config.timeouts.keep_alive));
    t.datagram_receive_buffer_size(Some(config.limits.datagram_receive_buffer));
    Ok(t)
}

async fn accept_loop(quic: quinn::Endpoint, shared: Arc<Shared>) {
    let limits = &shared.config.limits;
    let mut limiter = PrefixRateLimiter::new(
        limits.new_connections_per_sec_per_prefix,
        limits.new_connection_burst_per_prefix,
    );
    loop {
        let incoming = tokio::select! {
            i = quic.accept() => match i { Some(i) => i, None => break },
            () = shared.shutdown.cancelled() => break,
        };
        let remote = incoming.remote_address();
        let prefix = match remote.ip() {
            IpAddr::V6(v6) => prefix64(&v6),
            IpAddr::V4(_) => {
                incoming.ignore();
                continue;
            }
        };
        if !limiter.allow(prefix, Instant::now()) {
            shared.metrics.connections_rate_limited.inc();
            debug!(%remote, "connection refused: rate limit of its /64");
            incoming.refuse();
            continue;
        }
        if lock(&shared.connections).len() >= limits.max_connections {
            shared.metrics.connections_over_limit.inc();
            warn!(%remote, max = limits.max_connections, "connection refused: connection limit reached");
            incoming.refuse();
            continue;
        }
        let shared = shared.clone();
        tokio::spawn(async move {
            let timeout = shared.config.timeouts.handshake;
            let result = match incoming.accept() {
                Ok(connecting) => tokio::time::timeout(timeout, connecting).await,
                Err(e) => Ok(Err(e)),
            };
            match result {
                Ok(Ok(conn)) => {
                    if let Err(e) = Connection::establish(conn, shared.clone(), true) {
                        warn!(%remote, error = %e, "refusing connection");
                    }
                }
                Ok(Err(e)) => {
                    shared.metrics.handshake_failures.inc();
                    warn!(%remote, error = %errors::connection_error(remote, e), "incoming handshake failed");
                }
                Err(_) => {
                    shared.metrics.handshake_failures.inc();
                    warn!(%remote, "incoming handshake timed out");
                }
            }
        });
    }
}
