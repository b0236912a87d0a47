//! `hypermesh start`: run a node until SIGINT/SIGTERM.
//!
//! Opens the chain (resuming at the last committed block), binds the STOQ
//! endpoint with the node's TrustChain certificate (renewed before it
//! expires, checkpoints and revocations kept in sync), serves the node API
//! over STOQ and JSON-RPC/HTTP with `/metrics`, and produces blocks. On a
//! signal it stops taking requests, lets the block being produced commit,
//! and exits.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use hypermesh::api::NodeApi;
use hypermesh::chain::{Chain, ChainConfig};
use hypermesh::consensus::BlockApp;
use hypermesh::modules::staking::Staking;
use hypermesh::proofs::space::Plot;
use hypermesh::runtime::{Genesis, Runtime};
use hypermesh::service::{NodeService, ServiceApi};
use prometheus_client::registry::Registry;
use stoq::crypto::read_key_file;
use stoq::pki::Certificate;
use stoq::tls::{Identity, SecurityMode, TlsContext};
use stoq::Endpoint;
use tokio_util::sync::CancellationToken;
use trustchain::client::Enrollment;
use trustchain::manager::{CertManager, CertManagerConfig, TrustSync};
use trustchain::trust::TrustStore;
use trustchain::TrustBundle;

use crate::config::NodeConfig;
use crate::genesis_file::GenesisFile;

/// Arguments of `start`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The node's config (`hypermesh.toml`, written by `hypermesh init`).
    #[arg(long, default_value = ".hypermesh/hypermesh.toml")]
    config: PathBuf,
}

/// The runtime every node of the chain runs: the bank and staking.
pub(crate) fn runtime(genesis: &Genesis) -> anyhow::Result<Runtime> {
    Ok(Runtime::new(
        genesis.params.clone(),
        vec![Arc::new(Staking::default())],
    )?)
}

/// The block application of this validator, with its storage plot
/// (created at the first start: it takes a while).
fn block_app(service: &Arc<NodeService>, config: &NodeConfig, genesis: &Genesis) -> anyhow::Result<BlockApp> {
    let account = service.account();
    let threads = match config.production.verify_threads {
        0 => hypermesh::mempool::default_threads(),
        n => n,
    };
    let mut app = BlockApp::new(service.chain().clone(), account, threads);
    if let Some(params) = genesis.params.consensus.space {
        let path = &config.consensus.plot;
        if !path.exists() {
            eprintln!(
                "creating the storage plot {} ({} MiB); this happens once",
                path.display(),
                params.plot_bytes() >> 20
            );
        }
        let plot = Plot::open_or_create(path, &account, params, &mut |_, _| {})
            .with_context(|| format!("opening the storage plot {}", path.display()))?;
        let reader = service.chain().state().reader(service.chain().tip().height)?;
        let registered = hypermesh::modules::staking::validator_at(&reader, &account)?
            .map(|v| v.plot_root)
            .unwrap_or_default();
        if registered != plot.root() {
            anyhow::bail!(
                "the plot {} has root {}, but this validator registered {}: is this the validator's plot?",
                path.display(),
                stoq::crypto::hex(&plot.root()),
                stoq::crypto::hex(&registered)
            );
        }
        app = app.with_plot(Arc::new(plot));
    }
    Ok(app)
}

/// Raises a validator's STOQ limits so that a whole block travels in one
/// message (frame and gossip payload).
pub(crate) fn raise_limits_for_blocks(config: &mut stoq::EndpointConfig) {
    let block = hypermesh::types::MAX_BLOCK_BYTES + (1 << 20);
    config.limits.max_frame_len = config.limits.max_frame_len.max(block + 1024);
    config.gossip.max_payload = config.gossip.max_payload.max(block);
}

/// How long a validator waits for its first TrustChain sync before it
/// dials the other validators anyway.
const FIRST_TRUST_SYNC: Duration = Duration::from_secs(10);

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let config = NodeConfig::load(&args.config)?;
    let genesis = GenesisFile::load(&config.genesis)?;
    let key = read_key_file(&config.key).with_context(|| format!("reading the node key {}", config.key.display()))?;
    std::fs::create_dir_all(&config.data_dir).with_context(|| format!("creating {}", config.data_dir.display()))?;
    let db_path = config.data_dir.join("chain.redb");
    let chain = Chain::open(
        &db_path,
        runtime(&genesis)?,
        &genesis,
        ChainConfig {
            state_history: config.state_history,
            cache_bytes: config.db_cache_mib.saturating_mul(1 << 20),
        },
    )
    .with_context(|| format!("opening the chain in {}", db_path.display()))?;
    let consensus = config.consensus.enabled;
    let service = if consensus {
        NodeService::for_validator(chain, key.clone(), config.service())?
    } else {
        NodeService::new(chain, key.clone(), config.service())?
    };
    let tip = service.chain().tip();
    let app = if consensus {
        Some(block_app(&service, &config, &genesis)?)
    } else {
        None
    };

    let bundle = Arc::new(
        TrustBundle::load(&config.bundle)
            .with_context(|| format!("loading the trust bundle {}", config.bundle.display()))?,
    );
    let cert_pem = std::fs::read_to_string(&config.certificate)
        .with_context(|| format!("reading {} (written by `hypermesh init`)", config.certificate.display()))?;
    let cert = Certificate::from_pem(&cert_pem)?;
    let trust = TrustStore::new(bundle.clone());
    let tls = TlsContext::new(
        SecurityMode::PostQuantum,
        Identity::new(vec![cert], key.clone()).context("the certificate is not for the node key")?,
        None,
        bundle.trust_anchors()?,
        vec![trust.check()],
    )?
    .accept_unenrolled_clients();
    let mut stoq_config = config.stoq.clone();
    if consensus {
        raise_limits_for_blocks(&mut stoq_config);
    }
    let endpoint =
        Endpoint::bind(stoq_config, tls).with_context(|| format!("binding STOQ on {}", config.stoq.listen))?;
    let shutdown = CancellationToken::new();
    let (sync, mut trust_synced) = TrustSync::spawn_counted(
        endpoint.clone(),
        trust.clone(),
        Duration::from_millis(config.trust_sync_interval_ms),
        shutdown.clone(),
    );
    let certs = CertManager::spawn(
        endpoint.clone(),
        key.clone(),
        trust,
        CertManagerConfig {
            cert_path: Some(config.certificate.clone()),
            enrollment: Enrollment {
                names: config.names.clone(),
                ..Enrollment::default()
            },
            ..CertManagerConfig::default()
        },
        shutdown.clone(),
    )?;

    let mut registry = Registry::default();
    service.metrics().register(&mut registry);
    certs.metrics().register(&mut registry);
    endpoint.metrics().register(&mut registry);
    let registry = Arc::new(Mutex::new(registry));
    let api: Arc<dyn NodeApi> = Arc::new(ServiceApi(service.clone()));
    hypermesh::api::stoq_rpc::register(&endpoint, api.clone());

    let http = match config.http_listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding HTTP on {addr}"))?;
            let local = listener.local_addr()?;
            let reg = registry.clone();
            let metrics: Arc<dyn Fn() -> String + Send + Sync> = Arc::new(move || {
                let mut out = String::new();
                if let Ok(r) = reg.lock() {
                    let _ = prometheus_client::encoding::text::encode(&mut out, &r);
                }
                out
            });
            let task = tokio::spawn(hypermesh::api::http::serve(
                listener,
                api.clone(),
                Some(metrics),
                shutdown.clone(),
            ));
            Some((local, task))
        }
        None => None,
    };
    let producer = match app {
        Some(app) => {
            // The peers' certificates may be newer than the bundle on disk:
            // dialing before the first poll of the CA would fail their
            // handshakes and wait a redial interval.
            let first = tokio::time::timeout(FIRST_TRUST_SYNC, trust_synced.wait_for(|n| *n > 0)).await;
            if !matches!(first, Ok(Ok(_))) {
                tracing::warn!(
                    "no TrustChain member answered within {} s; dialing the validators with the bundle on disk",
                    FIRST_TRUST_SYNC.as_secs()
                );
            }
            service.register_sync(&endpoint);
            service.spawn_validator(
                endpoint.clone(),
                app,
                key,
                config.consensus.validator(),
                shutdown.clone(),
            )?
        }
        None => service.spawn_producer(shutdown.clone()),
    };

    println!(
        "hypermesh node {} on chain {} at height {} listening on {} (STOQ){}",
        stoq::crypto::hex(&service.account()),
        genesis.params.chain_id,
        tip.height,
        endpoint.local_addr()?,
        http.as_ref().map(|(a, _)| format!(", http://{a}")).unwrap_or_default()
    );
    stoq::daemon::shutdown_signal().await;
    eprintln!("shutting down: finishing the block in progress");
    shutdown.cancel();
    let _ = producer.await;
    if let Some((_, task)) = http {
        let _ = task.await;
    }
    endpoint.shutdown().await;
    let _ = sync.await;
    certs.join().await;
    eprintln!("stopped at height {}", service.chain().tip().height);
    Ok(())
}
