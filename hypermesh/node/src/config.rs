//! The node's configuration file (`hypermesh.toml`), with defaults for
//! everything but the files `hypermesh init` writes.

use std::net::{Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use hypermesh::mempool::MempoolConfig;
use hypermesh::service::ServiceConfig;
use serde::{Deserialize, Serialize};

/// Default STOQ port of a node.
pub(crate) const DEFAULT_STOQ_PORT: u16 = 7600;
/// Default JSON-RPC / metrics port of a node.
pub(crate) const DEFAULT_HTTP_PORT: u16 = 7680;

/// `hypermesh.toml`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct NodeConfig {
    /// Where the chain database lives (relative: to the config file).
    pub(crate) data_dir: PathBuf,
    /// The node's FN-DSA-1024 key (its STOQ identity and validator key).
    pub(crate) key: PathBuf,
    /// Its TrustChain certificate (PEM), renewed in place.
    pub(crate) certificate: PathBuf,
    /// The TrustChain trust bundle.
    pub(crate) bundle: PathBuf,
    /// The chain's genesis file.
    pub(crate) genesis: PathBuf,
    /// DNS names in the certificate (renewals ask for the same).
    pub(crate) names: Vec<String>,
    /// STOQ endpoint (IPv6 only).
    pub(crate) stoq: stoq::EndpointConfig,
    /// JSON-RPC 2.0 and `/metrics` over HTTP; `None` turns it off.
    pub(crate) http_listen: Option<SocketAddr>,
    /// Block production.
    pub(crate) production: Production,
    /// Mempool limits.
    pub(crate) mempool: MempoolSection,
    /// State versions kept readable and provable.
    pub(crate) state_history: u64,
    /// The chain database's page cache, MiB.
    pub(crate) db_cache_mib: usize,
    /// How often to poll TrustChain for checkpoints and revocations (ms).
    pub(crate) trust_sync_interval_ms: u64,
    /// BFT consensus with the other validators.
    pub(crate) consensus: ConsensusSection,
}

/// `[consensus]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct ConsensusSection {
    /// Run BFT consensus (off: a single validator producing blocks alone,
    /// which needs more than 2/3 of the voting power).
    pub(crate) enabled: bool,
    /// The other validators.
    pub(crate) peers: Vec<PeerEntry>,
    /// The storage plot (relative: to the config file); created at the
    /// first start when missing.
    pub(crate) plot: PathBuf,
    /// The write-ahead log (relative: to the config file).
    pub(crate) wal: PathBuf,
    /// Propose timeout of round 0 (ms); later rounds add a quarter each.
    pub(crate) propose_timeout_ms: u64,
    /// Prevote and precommit timeouts of round 0 (ms).
    pub(crate) vote_timeout_ms: u64,
    /// Longest a proposer waits for transactions before an empty block (ms).
    pub(crate) empty_block_wait_ms: u64,
}

/// `[[consensus.peers]]`: another validator.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct PeerEntry {
    /// Its STOQ address.
    pub(crate) addr: SocketAddr,
    /// The DNS name in its certificate.
    pub(crate) name: String,
}

impl Default for ConsensusSection {
    fn default() -> Self {
        ConsensusSection {
            enabled: true,
            peers: Vec::new(),
            plot: PathBuf::from("data/plot.bin"),
            wal: PathBuf::from("data/consensus.wal"),
            propose_timeout_ms: 1_000,
            vote_timeout_ms: 500,
            empty_block_wait_ms: 300,
        }
    }
}

impl ConsensusSection {
    /// The validator service's settings.
    pub(crate) fn validator(&self) -> hypermesh::service::ValidatorConfig {
        let mut core = hypermesh::consensus::CoreConfig::default();
        let t = &mut core.timeouts;
        t.propose = Duration::from_millis(self.propose_timeout_ms);
        t.propose_delta = Duration::from_millis(self.propose_timeout_ms / 4);
        t.prevote = Duration::from_millis(self.vote_timeout_ms);
        t.prevote_delta = Duration::from_millis(self.vote_timeout_ms / 2);
        t.precommit = Duration::from_millis(self.vote_timeout_ms);
        t.precommit_delta = Duration::from_millis(self.vote_timeout_ms / 2);
        hypermesh::service::ValidatorConfig {
            wal_path: self.wal.clone(),
            peers: self.peers.iter().map(|p| (p.addr, p.name.clone())).collect(),
            core,
            empty_block_wait: Duration::from_millis(self.empty_block_wait_ms),
            ..hypermesh::service::ValidatorConfig::default()
        }
    }
}

/// `[production]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Production {
    /// Longest time between blocks (ms).
    pub(crate) block_interval_ms: u64,
    /// Most transactions per block; a full block is produced at once.
    pub(crate) max_block_txs: usize,
    /// Produce blocks with no transactions.
    pub(crate) empty_blocks: bool,
    /// Signature-checking threads (0: one per core).
    pub(crate) verify_threads: usize,
}

/// `[mempool]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct MempoolSection {
    /// Most transactions held.
    pub(crate) max_txs: usize,
    /// Most bytes held.
    pub(crate) max_bytes: usize,
    /// Most transactions per sender.
    pub(crate) max_per_sender: usize,
    /// Lowest fee per gas admitted.
    pub(crate) min_fee_per_gas: u64,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            data_dir: PathBuf::from("data"),
            key: PathBuf::from("node.key"),
            certificate: PathBuf::from("node.pem"),
            bundle: PathBuf::from("bundle.toml"),
            genesis: PathBuf::from("genesis.toml"),
            names: Vec::new(),
            stoq: stoq::EndpointConfig {
                listen: SocketAddr::from((Ipv6Addr::LOCALHOST, DEFAULT_STOQ_PORT)),
                ..stoq::EndpointConfig::default()
            },
            http_listen: Some(SocketAddr::from((Ipv6Addr::LOCALHOST, DEFAULT_HTTP_PORT))),
            production: Production::default(),
            mempool: MempoolSection::default(),
            state_history: hypermesh::chain::ChainConfig::default().state_history,
            db_cache_mib: hypermesh::chain::DEFAULT_CACHE_BYTES >> 20,
            trust_sync_interval_ms: 5_000,
            consensus: ConsensusSection::default(),
        }
    }
}

impl Default for Production {
    fn default() -> Self {
        let d = ServiceConfig::default();
        Production {
            block_interval_ms: d.block_interval.as_millis() as u64,
            max_block_txs: d.max_block_txs,
            empty_blocks: d.empty_blocks,
            verify_threads: d.verify_threads,
        }
    }
}

impl Default for MempoolSection {
    fn default() -> Self {
        let d = MempoolConfig::default();
        MempoolSection {
            max_txs: d.max_txs,
            max_bytes: d.max_bytes,
            max_per_sender: d.max_per_sender,
            min_fee_per_gas: d.min_fee_per_gas as u64,
        }
    }
}

impl NodeConfig {
    /// Reads `path`, resolving relative paths against its directory.
    pub(crate) fn load(path: &Path) -> anyhow::Result<NodeConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading {} (written by `hypermesh init`)", path.display()))?;
        let mut c: NodeConfig = toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        for p in [
            &mut c.data_dir,
            &mut c.key,
            &mut c.certificate,
            &mut c.bundle,
            &mut c.genesis,
            &mut c.consensus.plot,
            &mut c.consensus.wal,
        ] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        c.validate()?;
        Ok(c)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if !self.stoq.listen.is_ipv6() {
            bail!(
                "stoq.listen {} is not IPv6: the stack runs on IPv6 only",
                self.stoq.listen
            );
        }
        if let Some(a) = self.http_listen {
            if !a.is_ipv6() {
                bail!("http_listen {a} is not IPv6: the stack runs on IPv6 only");
            }
        }
        if self.production.block_interval_ms == 0 || self.production.max_block_txs == 0 {
            bail!("production.block_interval_ms and production.max_block_txs must be positive");
        }
        if self.state_history == 0 {
            bail!("state_history must be at least 1");
        }
        if self.db_cache_mib == 0 {
            bail!("db_cache_mib must be at least 1");
        }
        if let Some(p) = self.consensus.peers.iter().find(|p| !p.addr.is_ipv6()) {
            bail!("consensus peer {} is not IPv6: the stack runs on IPv6 only", p.addr);
        }
        if self.consensus.propose_timeout_ms == 0 || self.consensus.vote_timeout_ms == 0 {
            bail!("consensus timeouts must be positive");
        }
        Ok(())
    }

    /// The service settings.
    pub(crate) fn service(&self) -> ServiceConfig {
        ServiceConfig {
            block_interval: Duration::from_millis(self.production.block_interval_ms),
            max_block_txs: self.production.max_block_txs,
            empty_blocks: self.production.empty_blocks,
            verify_threads: self.production.verify_threads,
            mempool: MempoolConfig {
                max_txs: self.mempool.max_txs,
                max_bytes: self.mempool.max_bytes,
                max_per_sender: self.mempool.max_per_sender,
                min_fee_per_gas: u128::from(self.mempool.min_fee_per_gas),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_and_unknown_keys_are_refused() {
        let c = NodeConfig::default();
        let text = toml::to_string(&c).expect("serialize");
        assert_eq!(toml::from_str::<NodeConfig>(&text).expect("parse"), c);
        let partial: NodeConfig = toml::from_str("[production]\nmax_block_txs = 7\n").expect("parse");
        assert_eq!(partial.production.max_block_txs, 7);
        assert_eq!(partial.production.block_interval_ms, 1_000);
        assert!(toml::from_str::<NodeConfig>("bogus = 1").is_err());
    }

    #[test]
    fn ipv4_listeners_are_refused() {
        let c = NodeConfig {
            http_listen: Some("127.0.0.1:80".parse().expect("addr")),
            ..NodeConfig::default()
        };
        assert!(c.validate().is_err());
    }
}
