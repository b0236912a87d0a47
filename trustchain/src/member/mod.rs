//! The member daemon: a STOQ endpoint serving enrollment, renewal,
//! revocation, co-signing and the log, the issuance pipeline, gossip of
//! checkpoints and revocations, the read-only HTTP view and the DNS zone.

mod finalize;
mod handlers;
mod http;
mod metrics;
mod nonce;
mod pipeline;
mod replicate;
mod zone;

pub use metrics::MemberMetrics;

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use stoq::crypto::KeyPair;
use stoq::pki::{issue, CertKind, CertificateParams, Issuer};
use stoq::tls::{Identity, SecurityMode, TlsContext};
use stoq::{Endpoint, EndpointConfig};

use crate::bundle::TrustBundle;
use crate::dns::{DnsConfig, DnsMetrics, DnsServer};
use crate::log::MerkleTree;
use crate::messages::topic;
use crate::policy::Policy;
use crate::store::Store;
use crate::trust::TrustStore;
use crate::{Error, Result};

/// Member daemon configuration (TOML).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MemberConfig {
    /// Data directory: `member.key`, `bundle.toml`, `trustchain.redb`.
    pub data_dir: PathBuf,
    /// STOQ listen address; defaults to this member's address in the bundle.
    pub listen: Option<SocketAddr>,
    /// Read-only HTTP (log and `/metrics`); `None` disables it.
    pub http_listen: Option<SocketAddr>,
    /// Issuance policy (must be the same on every member).
    pub policy: Policy,
    /// Most requests co-signed in one round.
    pub max_batch: usize,
    /// How long a round waits for co-signatures, ms.
    pub cosign_timeout_ms: u64,
    /// Lifetime of the member's own TLS certificate, seconds.
    pub member_cert_lifetime_secs: u64,
    /// Interval between syncs of checkpoints and revocations from the other
    /// members, ms.
    pub sync_interval_ms: u64,
    /// DNS for the zone (UDP/TCP and DNS-over-QUIC); `None` disables it.
    pub dns: Option<DnsConfig>,
    /// STOQ endpoint settings (limits and timeouts; the listen address is
    /// the field above).
    pub endpoint: EndpointConfig,
}

impl Default for MemberConfig {
    fn default() -> Self {
        MemberConfig {
            data_dir: PathBuf::from("trustchain-data"),
            listen: None,
            // Off unless configured: TOML cannot say "none" for a default
            // that is on, and `trustchain init` writes both explicitly.
            http_listen: None,
            policy: Policy::default(),
            max_batch: 64,
            cosign_timeout_ms: 3_000,
            member_cert_lifetime_secs: 24 * 3600,
            sync_interval_ms: 5_000,
            dns: None,
            endpoint: EndpointConfig {
                limits: stoq::endpoint::Limits {
                    // Co-sign requests carry whole batches.
                    max_frame_len: 8 << 20,
                    ..Default::default()
                },
                ..EndpointConfig::default()
            },
        }
    }
}

impl MemberConfig {
    /// Parses a TOML config.
    pub fn from_toml(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| Error::Config(e.to_string()))
    }

    /// The member key file.
    pub fn key_path(&self) -> PathBuf {
        self.data_dir.join("member.key")
    }

    /// The bundle file.
    pub fn bundle_path(&self) -> PathBuf {
        self.data_dir.join("bundle.toml")
    }
}

/// What every part of a running member shares.
pub(crate) struct Shared {
    pub(crate) bundle: Arc<TrustBundle>,
    pub(crate) index: u16,
    pub(crate) key: KeyPair,
    pub(crate) issuer: Issuer,
    pub(crate) config: MemberConfig,
    pub(crate) store: Store,
    pub(crate) trust: Arc<TrustStore>,
    pub(crate) tree: RwLock<MerkleTree>,
    pub(crate) nonces: nonce::NonceBook,
    pub(crate) metrics: MemberMetrics,
    pub(crate) dns_metrics: DnsMetrics,
    pub(crate) zone: zone::Zone,
    pub(crate) endpoint: Endpoint,
}

impl Shared {
    pub(crate) fn tree(&self) -> std::sync::RwLockReadGuard<'_, MerkleTree> {
        self.tree.read().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running member.
pub struct MemberNode {
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    http_addr: Option<SocketAddr>,
    dns: Option<DnsServer>,
}

impl std::fmt::Debug for MemberNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberNode").field("index", &self.shared.index).finish()
    }
}

/// The member's own TLS certificate: its bundle key, signed by itself
/// (accepted by every verifier because the bundle pins the key).
pub fn member_identity(bundle: &TrustBundle, index: u16, key: &KeyPair, lifetime: Duration) -> Result<Identity> {
    let member = bundle
        .member(index)
        .ok_or_else(|| Error::Config(format!("member {index} is not in the bundle")))?;
    let issuer = Issuer::from_certificate(&member.certificate, key.clone())?;
    let name = member.dns_name(&bundle.zone);
    let params = CertificateParams::new(CertKind::Leaf, format!("CN={name}"), lifetime).with_dns_names([name]);
    let cert = issue(&params, key.public_key(), &issuer)?;
    Ok(Identity::new(vec![cert], key.clone())?)
}

fn member_index(bundle: &TrustBundle, key: &KeyPair) -> Result<u16> {
    bundle.member_by_key(key.public_key()).map(|m| m.index).ok_or_else(|| {
        Error::Config("the member key is not one of the bundle's members (wrong data dir or bundle?)".into())
    })
}

impl MemberNode {
    /// Opens the data dir, restores the log and starts serving.
    pub async fn start(config: MemberConfig) -> Result<Self> {
        let bundle = Arc::new(TrustBundle::load(&config.bundle_path())?);
        let key = stoq::crypto::read_key_file(&config.key_path())?;
        let index = member_index(&bundle, &key)?;
        let member = bundle
            .member(index)
            .cloned()
            .ok_or_else(|| Error::Config("member missing".into()))?;
        std::fs::create_dir_all(&config.data_dir).map_err(|source| Error::Io {
            context: format!("creating {}", config.data_dir.display()),
            source,
        })?;
        let store = Store::open(&config.data_dir.join("trustchain.redb"))?;
        let leaves = store.leaf_hashes()?;
        let tree = MerkleTree::from_leaf_hashes(leaves);
        let trust = TrustStore::new(bundle.clone());
        for cp in store.all_checkpoints()? {
            if let Err(e) = trust.add_checkpoint(cp) {
                warn!(error = %e, "stored checkpoint refused");
            }
        }
        for r in store.revocations()? {
            let _ = trust.add_revocation(&r);
        }
        let lifetime = Duration::from_secs(config.member_cert_lifetime_secs);
        let identity = member_identity(&bundle, index, &key, lifetime)?;
        let tls = TlsContext::new(
            SecurityMode::PostQuantum,
            identity,
            None,
            bundle.trust_anchors()?,
            vec![trust.check()],
        )?
        .accept_unenrolled_clients();
        let mut ep_config = config.endpoint.clone();
        ep_config.listen = config.listen.unwrap_or(member.address);
        let endpoint = Endpoint::bind(ep_config, tls)?;
        let metrics = MemberMetrics::default();
        metrics.log_size.set(tree.size() as i64);
        let zone = zone::Zone::restore(&bundle, &store)?;
        let shared = Arc::new(Shared {
            issuer: Issuer::from_certificate(&member.certificate, key.clone())?,
            nonces: nonce::NonceBook::new(store.nonce_secret()?),
            bundle,
            index,
            key,
            config,
            store,
            trust,
            tree: RwLock::new(tree),
            metrics,
            dns_metrics: DnsMetrics::default(),
            zone,
            endpoint,
        });
        let shutdown = CancellationToken::new();
        let (jobs_tx, jobs_rx) = mpsc::channel(4096);
        handlers::register(&shared, jobs_tx);
        let mut tasks = vec![
            tokio::spawn(pipeline::run(shared.clone(), jobs_rx, shutdown.clone())),
            tokio::spawn(gossip_in(shared.clone(), shutdown.clone())),
            tokio::spawn(sync_loop(shared.clone(), shutdown.clone())),
            tokio::spawn(replicate::run(shared.clone(), shutdown.clone())),
            tokio::spawn(rotate_own_certificate(shared.clone(), shutdown.clone())),
        ];
        let http_addr = match shared.config.http_listen {
            Some(addr) => {
                let (addr, task) = http::serve(shared.clone(), addr, shutdown.clone()).await?;
                tasks.push(task);
                Some(addr)
            }
            None => None,
        };
        let dns = match &shared.config.dns {
            Some(cfg) => Some(
                DnsServer::start(
                    cfg,
                    shared.zone.dns().clone(),
                    Some(shared.endpoint.tls()),
                    shared.dns_metrics.clone(),
                )
                .await?,
            ),
            None => None,
        };
        info!(
            member = index,
            dns = ?dns.as_ref().map(|d| d.udp_addr()),
            stoq = ?shared.endpoint.local_addr().ok(),
            http = ?http_addr,
            log_size = shared.tree().size(),
            "trustchain member running"
        );
        Ok(MemberNode {
            shared,
            shutdown,
            tasks,
            http_addr,
            dns,
        })
    }

    /// The STOQ address.
    pub fn stoq_addr(&self) -> Result<SocketAddr> {
        Ok(self.shared.endpoint.local_addr()?)
    }

    /// The HTTP address, if enabled.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// The DNS server's UDP/TCP and DoQ addresses, if enabled.
    pub fn dns_addrs(&self) -> Option<(SocketAddr, Option<SocketAddr>)> {
        self.dns.as_ref().map(|d| (d.udp_addr(), d.doq_addr()))
    }

    /// This member's index.
    pub fn index(&self) -> u16 {
        self.shared.index
    }

    /// The member's trust store.
    pub fn trust(&self) -> &Arc<TrustStore> {
        &self.shared.trust
    }

    /// The number of log entries.
    pub fn log_size(&self) -> u64 {
        self.shared.tree().size()
    }

    /// Stops serving and waits for the tasks.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        if let Some(dns) = self.dns {
            if let Err(e) = dns.shutdown().await {
                warn!(error = %e, "DNS shutdown");
            }
        }
        self.shared.endpoint.shutdown().await;
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Applies checkpoints and revocations other members gossip.
async fn gossip_in(shared: Arc<Shared>, shutdown: CancellationToken) {
    let gossip = shared.endpoint.gossip();
    let (Ok(mut cps), Ok(mut revs)) = (
        gossip.subscribe(topic::CHECKPOINTS),
        gossip.subscribe(topic::REVOCATIONS),
    ) else {
        warn!("cannot subscribe to TrustChain gossip topics");
        return;
    };
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            Some(m) = cps.recv() => {
                if let Ok(cp) = crate::checkpoint::Checkpoint::decode(&m.payload) {
                    if matches!(shared.trust.add_checkpoint(cp.clone()), Ok(true)) {
                        let _ = shared.store.put_checkpoint(&cp);
                    }
                }
            }
            Some(m) = revs.recv() => {
                if let Ok(r) = crate::revocation::SignedRevocation::decode(&m.payload) {
                    if matches!(shared.trust.add_revocation(&r), Ok(true)) {
                        let _ = shared.store.put_revocation(&r);
                        shared.zone.revoked(&r.statement, &shared.store).await;
                    }
                }
            }
        }
    }
}

/// Pulls what gossip may have missed (a member that was down) from the
/// other members.
async fn sync_loop(shared: Arc<Shared>, shutdown: CancellationToken) {
    let interval = Duration::from_millis(shared.config.sync_interval_ms.max(100));
    let client = crate::client::CaClient::with_endpoint(shared.endpoint.clone(), shared.bundle.clone());
    loop {
        let others = shared.bundle.members.iter().filter(|m| m.index != shared.index);
        let results = futures_util::future::join_all(
            others.map(|m| async { (m.index, client.sync_from(m.index, &shared.trust).await) }),
        )
        .await;
        for (index, r) in results {
            match r {
                Ok(resp) => {
                    for cp in &resp.checkpoints {
                        let _ = shared.store.put_checkpoint(cp);
                    }
                    for r in &resp.revocations {
                        let _ = shared.store.put_revocation(r);
                        shared.zone.revoked(&r.statement, &shared.store).await;
                    }
                }
                Err(e) => tracing::debug!(member = index, error = %e, "sync failed"),
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

/// Re-issues the member's own TLS certificate at two thirds of its life.
async fn rotate_own_certificate(shared: Arc<Shared>, shutdown: CancellationToken) {
    let lifetime = Duration::from_secs(shared.config.member_cert_lifetime_secs.max(3));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(lifetime * 2 / 3) => {}
        }
        match member_identity(&shared.bundle, shared.index, &shared.key, lifetime) {
            Ok(id) => {
                if let Err(e) = shared.endpoint.swap_identity(id, None) {
                    warn!(error = %e, "member certificate rotation failed");
                }
            }
            Err(e) => warn!(error = %e, "member certificate rotation failed"),
        }
    }
}
