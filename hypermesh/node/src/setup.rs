//! `hypermesh genesis`, `hypermesh init` and `hypermesh keys`: everything
//! written before a node starts.

use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use hypermesh::proofs::space::SpaceParams;
use hypermesh::runtime::{ChainParams, ConsensusParams, Genesis, GenesisValidator};
use stoq::crypto::{read_key_file, write_key_file, Algorithm, KeyPair, PublicKey};
use trustchain::client::{CaClient, Enrollment};
use trustchain::request::Service;
use trustchain::token::EnrollmentToken;
use trustchain::TrustBundle;

use crate::config::NodeConfig;
use crate::genesis_file::{parse_account, GenesisFile};

/// Arguments of `genesis`.
#[derive(Debug, clap::Args)]
pub(crate) struct GenesisArgs {
    /// Where to write the genesis file.
    #[arg(long, default_value = "genesis.toml")]
    out: PathBuf,
    /// The chain id.
    #[arg(long, default_value = "hypermesh-devnet")]
    chain_id: String,
    /// A validator: `KEYFILE=STAKE[@IPV6]` (a node key, or a public key
    /// PEM; the address defaults to ::1). Its plot root is computed here.
    #[arg(long = "validator", value_name = "KEYFILE=STAKE[@IPV6]")]
    validators: Vec<String>,
    /// Squarings of each block's proof of time (0: none).
    #[arg(long, default_value_t = ConsensusParams::devnet().vdf_steps)]
    vdf_steps: u64,
    /// Validators' plots have 2^N leaves of 32 bytes (0: no proofs of space).
    #[arg(long, default_value_t = 20)]
    plot_log2_leaves: u8,
    /// Plot leaves challenged per block.
    #[arg(long, default_value_t = 4)]
    plot_challenges: u8,
    /// Most voting power per IPv6 /48, in basis points of the total.
    #[arg(long, default_value_t = ConsensusParams::devnet().max_prefix_power_bps)]
    max_prefix_power_bps: u32,
    /// An initial balance: `ACCOUNT=AMOUNT` or `ACCOUNT=AMOUNTdenom`
    /// (ACCOUNT: 64 hex digits, or a key file).
    #[arg(long = "balance", value_name = "ACCOUNT=AMOUNT")]
    balances: Vec<String>,
    /// Proof-of-work bits each transaction needs.
    #[arg(long, default_value_t = ChainParams::default().pow_bits)]
    pow_bits: u32,
    /// Lowest fee per gas.
    #[arg(long, default_value_t = 0)]
    min_fee_per_gas: u64,
    /// Genesis time (ms since the Unix epoch; default now).
    #[arg(long)]
    time_ms: Option<u64>,
    /// Overwrite an existing file.
    #[arg(long)]
    force: bool,
    /// Print the genesis hash of an existing file instead.
    #[arg(long)]
    show: bool,
}

/// A public key from a node key file or a public key PEM.
fn public_key(path: &Path) -> anyhow::Result<PublicKey> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    if text.contains("PUBLIC KEY") {
        return Ok(PublicKey::from_pem(&text)?);
    }
    Ok(read_key_file(path)
        .with_context(|| format!("reading key {}", path.display()))?
        .public_key()
        .clone())
}

fn account_arg(s: &str) -> anyhow::Result<[u8; 32]> {
    if s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit()) {
        return parse_account(s);
    }
    Ok(public_key(Path::new(s))?.node_id().0)
}

pub(crate) fn genesis(a: GenesisArgs) -> anyhow::Result<()> {
    if a.show {
        let g = GenesisFile::load(&a.out)?;
        println!(
            "chain {} genesis {} ({} validators, {} balances)",
            g.params.chain_id,
            stoq::crypto::hex(&g.hash()?),
            g.validators.len(),
            g.balances.len()
        );
        return Ok(());
    }
    if a.out.exists() && !a.force {
        bail!(
            "{} exists; pass --force to replace it (every node of a chain needs the same file)",
            a.out.display()
        );
    }
    let space = (a.plot_log2_leaves > 0).then_some(SpaceParams {
        log2_leaves: a.plot_log2_leaves,
        leaf_rounds: 0,
        challenges: a.plot_challenges,
    });
    let params = ChainParams {
        chain_id: a.chain_id,
        pow_bits: a.pow_bits,
        min_fee_per_gas: u128::from(a.min_fee_per_gas),
        consensus: ConsensusParams {
            vdf_steps: a.vdf_steps,
            space,
            max_prefix_power_bps: a.max_prefix_power_bps,
        },
        ..ChainParams::default()
    };
    params.validate()?;
    let mut validators = Vec::new();
    for v in &a.validators {
        let (file, rest) = v
            .rsplit_once('=')
            .ok_or_else(|| anyhow::anyhow!("{v:?}: write a validator as KEYFILE=STAKE[@IPV6]"))?;
        let (stake, ip) = match rest.split_once('@') {
            Some((stake, ip)) => (stake, ip.parse().with_context(|| format!("address {ip:?}"))?),
            None => (rest, std::net::Ipv6Addr::LOCALHOST),
        };
        let key = public_key(Path::new(file))?;
        let plot_root = match &space {
            Some(params) => {
                eprintln!(
                    "computing the plot root of {file} ({} MiB plot)",
                    params.plot_bytes() >> 20
                );
                hypermesh::proofs::space::plot_root(&key.node_id().0, params)?
            }
            None => [0; 32],
        };
        validators.push(GenesisValidator {
            key,
            stake: stake.parse().with_context(|| format!("stake {stake:?}"))?,
            plot_root,
            ip,
        });
    }
    if validators.is_empty() {
        bail!("a chain needs at least one validator: pass --validator node.key=STAKE");
    }
    let mut balances = Vec::new();
    for b in &a.balances {
        let (who, amount) = b
            .rsplit_once('=')
            .ok_or_else(|| anyhow::anyhow!("{b:?}: write a balance as ACCOUNT=AMOUNT[denom]"))?;
        let digits = amount.find(|c: char| !c.is_ascii_digit()).unwrap_or(amount.len());
        let (n, denom) = amount.split_at(digits);
        let denom = if denom.is_empty() {
            params.native_denom.as_str()
        } else {
            denom
        };
        balances.push((
            account_arg(who)?,
            denom.to_string(),
            n.parse().with_context(|| format!("amount {n:?}"))?,
        ));
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as u64;
    let g = Genesis {
        params,
        time_ms: a.time_ms.unwrap_or(now),
        balances,
        validators,
    };
    g.validate()?;
    std::fs::write(&a.out, GenesisFile::from_genesis(&g).to_toml()?)
        .with_context(|| format!("writing {}", a.out.display()))?;
    println!(
        "wrote {}: chain {} genesis {}",
        a.out.display(),
        g.params.chain_id,
        stoq::crypto::hex(&g.hash()?)
    );
    Ok(())
}

/// Arguments of `init`.
#[derive(Debug, clap::Args)]
pub(crate) struct InitArgs {
    /// The node's directory (config, key, certificate, data).
    #[arg(long, default_value = ".hypermesh")]
    dir: PathBuf,
    /// The TrustChain trust bundle (copied into the directory).
    #[arg(long)]
    bundle: PathBuf,
    /// The enrollment token (`tct1...`), or @FILE.
    #[arg(long)]
    token: String,
    /// The node's DNS name inside the TrustChain zone.
    #[arg(long, default_value = "hypermesh-node")]
    name: String,
    /// The STOQ address to listen on (IPv6).
    #[arg(long, default_value_t = std::net::SocketAddr::from((Ipv6Addr::LOCALHOST, crate::config::DEFAULT_STOQ_PORT)))]
    listen: std::net::SocketAddr,
    /// The JSON-RPC/metrics address (IPv6); `none` turns HTTP off.
    #[arg(long, default_value = "[::1]:7680")]
    http: String,
    /// The genesis file to use (copied into the directory).
    #[arg(long)]
    genesis: Option<PathBuf>,
    /// Another validator, `[ADDR]:PORT=NAME` (repeatable; replaces the
    /// config's list when given).
    #[arg(long = "peer", value_name = "ADDR=NAME")]
    peers: Vec<String>,
}

fn parse_peer(s: &str) -> anyhow::Result<crate::config::PeerEntry> {
    let (addr, name) = s
        .split_once('=')
        .ok_or_else(|| anyhow::anyhow!("{s:?}: write a peer as [ADDR]:PORT=NAME"))?;
    let addr: std::net::SocketAddr = addr.parse().with_context(|| format!("peer address {addr:?}"))?;
    if !addr.is_ipv6() {
        bail!("peer {addr} is not IPv6: the stack runs on IPv6 only");
    }
    Ok(crate::config::PeerEntry {
        addr,
        name: name.to_string(),
    })
}

pub(crate) async fn init(a: InitArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&a.dir).with_context(|| format!("creating {}", a.dir.display()))?;
    let key_path = a.dir.join("node.key");
    let key = if key_path.exists() {
        read_key_file(&key_path).with_context(|| format!("reading {}", key_path.display()))?
    } else {
        let k = KeyPair::generate(Algorithm::FnDsa1024);
        write_key_file(&key_path, &k, false)?;
        eprintln!("created node key {}", key_path.display());
        k
    };
    let bundle = TrustBundle::load(&a.bundle).with_context(|| {
        format!(
            "loading the trust bundle {} (written by `trustchain init`)",
            a.bundle.display()
        )
    })?;
    std::fs::copy(&a.bundle, a.dir.join("bundle.toml")).context("copying the bundle")?;
    let text = match a.token.strip_prefix('@') {
        Some(p) => std::fs::read_to_string(p).with_context(|| format!("reading token file {p}"))?,
        None => a.token.clone(),
    };
    let token = EnrollmentToken::from_text(text.trim())?;
    let zone = bundle.zone_suffix().to_string();
    let short = a.name.trim_end_matches('.');
    let name = if short.ends_with(&format!(".{zone}")) {
        short.to_string()
    } else {
        format!("{short}.{zone}")
    };
    let ip = match a.listen.ip() {
        std::net::IpAddr::V6(ip) if !ip.is_unspecified() => Some(ip),
        std::net::IpAddr::V6(_) => None,
        std::net::IpAddr::V4(_) => bail!("--listen must be IPv6"),
    };
    let client = CaClient::unenrolled(&key, std::sync::Arc::new(bundle))?;
    eprintln!("enrolling {name} with TrustChain...");
    let issued = client
        .enroll(
            &key,
            &token,
            &Enrollment {
                names: vec![name.clone()],
                address: ip,
                services: vec![Service {
                    name: "_hypermesh._udp".into(),
                    port: a.listen.port(),
                }],
                lifetime: None,
            },
        )
        .await
        .context("enrolling with TrustChain (is a member running, and the token unused?)")?;
    client.endpoint().shutdown().await;
    std::fs::write(a.dir.join("node.pem"), issued.certificate.to_pem()).context("writing node.pem")?;
    if let Some(g) = &a.genesis {
        GenesisFile::load(g)?;
        std::fs::copy(g, a.dir.join("genesis.toml")).context("copying the genesis")?;
    }
    let config_path = a.dir.join("hypermesh.toml");
    let peers = a
        .peers
        .iter()
        .map(|p| parse_peer(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if config_path.exists() && !peers.is_empty() {
        let text = std::fs::read_to_string(&config_path)?;
        let mut c: NodeConfig = toml::from_str(&text).with_context(|| format!("parsing {}", config_path.display()))?;
        c.consensus.peers = peers.clone();
        std::fs::write(&config_path, toml::to_string(&c)?).context("writing hypermesh.toml")?;
    }
    if !config_path.exists() {
        let mut c = NodeConfig {
            names: vec![name.clone()],
            ..NodeConfig::default()
        };
        c.stoq.listen = a.listen;
        c.consensus.peers = peers;
        c.http_listen = match a.http.as_str() {
            "none" => None,
            s => Some(s.parse().with_context(|| format!("--http {s:?}"))?),
        };
        std::fs::write(&config_path, toml::to_string(&c)?).context("writing hypermesh.toml")?;
    }
    let hours = issued
        .certificate
        .not_after()
        .duration_since(SystemTime::now())
        .map_or(0, |d| d.as_secs() / 3_600);
    println!(
        "node {name} account {} certified for {hours} h (renewed by the node); config {}",
        stoq::crypto::hex(&key.public_key().node_id().0),
        config_path.display()
    );
    Ok(())
}

/// `keys` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum KeysCommand {
    /// Creates an FN-DSA-1024 key (an account).
    New {
        /// Where to write it.
        out: PathBuf,
    },
    /// Shows a key's account and public key.
    Show {
        /// The key file.
        key: PathBuf,
    },
}

pub(crate) fn keys(c: KeysCommand) -> anyhow::Result<()> {
    match c {
        KeysCommand::New { out } => {
            let k = KeyPair::generate(Algorithm::FnDsa1024);
            write_key_file(&out, &k, false).with_context(|| format!("writing {}", out.display()))?;
            println!(
                "{} account {}",
                out.display(),
                stoq::crypto::hex(&k.public_key().node_id().0)
            );
        }
        KeysCommand::Show { key } => {
            let k = public_key(&key)?;
            println!("account {}", stoq::crypto::hex(&k.node_id().0));
            println!("public key {}", crate::genesis_file::key_to_text(&k));
        }
    }
    Ok(())
}
