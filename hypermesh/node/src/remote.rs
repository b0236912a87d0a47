//! Commands that talk to a running node over STOQ: `tx`, `query`, `block`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use hypermesh::api::{BlockRef, TxStatus};
use hypermesh::client::{self, Client};
use hypermesh::modules::staking::ValidatorSet;
use hypermesh::runtime::Receipt;
use hypermesh::types::Block;
use stoq::crypto::{read_key_file, Algorithm, KeyPair};
use trustchain::TrustBundle;

use crate::config::NodeConfig;
use crate::genesis_file::{parse_account, parse_hex};

/// Which node to talk to.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Remote {
    /// The node's config: its address, name and trust bundle are read
    /// from it (for a node on this machine).
    #[arg(long, env = "HYPERMESH_CONFIG", default_value = ".hypermesh/hypermesh.toml")]
    config: PathBuf,
    /// The node's STOQ address (instead of --config; needs --name and --bundle).
    #[arg(long)]
    node: Option<SocketAddr>,
    /// The node's DNS name in its certificate.
    #[arg(long)]
    name: Option<String>,
    /// The TrustChain trust bundle.
    #[arg(long)]
    bundle: Option<PathBuf>,
}

impl Remote {
    /// Connects, authenticating with `key` (a throw-away key if `None`).
    pub(crate) async fn connect(&self, key: Option<&KeyPair>) -> anyhow::Result<Client> {
        let (addr, name, bundle) = match (&self.node, &self.name, &self.bundle) {
            (Some(a), Some(n), Some(b)) => (*a, n.clone(), b.clone()),
            (Some(_), _, _) => bail!("--node needs --name and --bundle"),
            _ => {
                let c = NodeConfig::load(&self.config)
                    .with_context(|| "reading the node's config (or pass --node, --name and --bundle)")?;
                let name = c
                    .names
                    .first()
                    .cloned()
                    .ok_or_else(|| anyhow::anyhow!("{} names no DNS name", self.config.display()))?;
                let mut addr = c.stoq.listen;
                if addr.ip().is_unspecified() {
                    addr.set_ip(std::net::Ipv6Addr::LOCALHOST.into());
                }
                (addr, name, c.bundle)
            }
        };
        let bundle = Arc::new(
            TrustBundle::load(&bundle).with_context(|| format!("loading the trust bundle {}", bundle.display()))?,
        );
        let key = match key {
            Some(k) => k.clone(),
            None => KeyPair::generate(Algorithm::FnDsa1024),
        };
        Client::connect_with_bundle(&key, bundle, addr, &name)
            .await
            .with_context(|| format!("connecting to the node {name} at {addr} (is it running?)"))
    }
}

/// An account: 64 hex digits, or a key file whose account it is.
pub(crate) fn account(s: &str) -> anyhow::Result<[u8; 32]> {
    if s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit()) {
        return parse_account(s);
    }
    Ok(read_key_file(Path::new(s))
        .with_context(|| format!("{s:?} is neither an account (64 hex digits) nor a key file"))?
        .public_key()
        .node_id()
        .0)
}

fn hex(b: &[u8]) -> String {
    stoq::crypto::hex(b)
}

/// `tx` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum TxCommand {
    /// Transfer tokens.
    Send {
        /// The sender's key.
        #[arg(long)]
        key: PathBuf,
        /// The recipient (account or key file).
        #[arg(long)]
        to: String,
        /// The amount.
        #[arg(long)]
        amount: u128,
        /// The denomination (default: the chain's native one).
        #[arg(long)]
        denom: Option<String>,
        #[command(flatten)]
        common: TxCommon,
    },
    /// Bond stake (become or strengthen a validator).
    Bond {
        /// The operator's key.
        #[arg(long)]
        key: PathBuf,
        /// The amount.
        #[arg(long)]
        amount: u128,
        #[command(flatten)]
        common: TxCommon,
    },
    /// Unbond stake (released after the unbonding period).
    Unbond {
        /// The operator's key.
        #[arg(long)]
        key: PathBuf,
        /// The amount.
        #[arg(long)]
        amount: u128,
        #[command(flatten)]
        common: TxCommon,
    },
}

/// Options of every transaction.
#[derive(Debug, clap::Args)]
pub(crate) struct TxCommon {
    #[command(flatten)]
    remote: Remote,
    /// Gas limit.
    #[arg(long, default_value_t = 100_000)]
    gas_limit: u64,
    /// Return once admitted, without waiting for the block.
    #[arg(long)]
    no_wait: bool,
}

enum Action {
    Transfer {
        to: [u8; 32],
        denom: Option<String>,
        amount: u128,
    },
    Bond(u128),
    Unbond(u128),
}

pub(crate) async fn tx(c: TxCommand) -> anyhow::Result<()> {
    let (key_path, common, action) = match c {
        TxCommand::Send {
            key,
            to,
            amount,
            denom,
            common,
        } => (
            key,
            common,
            Action::Transfer {
                to: account(&to)?,
                denom,
                amount,
            },
        ),
        TxCommand::Bond { key, amount, common } => (key, common, Action::Bond(amount)),
        TxCommand::Unbond { key, amount, common } => (key, common, Action::Unbond(amount)),
    };
    let key = read_key_file(&key_path).with_context(|| format!("reading key {}", key_path.display()))?;
    let client = common.remote.connect(Some(&key)).await?;
    let status = client.status().await?;
    let call = match action {
        Action::Transfer { to, denom, amount } => {
            client::transfer_call(&to, denom.as_deref().unwrap_or(&status.native_denom), amount)
        }
        Action::Bond(amount) => client::bond_call(amount),
        Action::Unbond(amount) => client::unbond_call(amount),
    };
    eprintln!("signing and computing the proof of work ({} bits)...", status.pow_bits);
    let hash = client.send(&key, call, common.gas_limit).await?;
    println!("submitted {}", hex(&hash));
    if common.no_wait {
        client.shutdown().await;
        return Ok(());
    }
    eprintln!("waiting for a block...");
    let rec = client.wait_for_tx(&hash, Duration::from_secs(60)).await?;
    match &rec.receipt.error {
        None => println!(
            "committed in block {} (position {}), gas used {}, fee {}",
            rec.height, rec.index, rec.receipt.gas_used, rec.receipt.fee
        ),
        Some((code, msg)) => println!(
            "committed in block {} but the call failed ({code}): {msg}; the fee of {} was charged",
            rec.height, rec.receipt.fee
        ),
    }
    client.shutdown().await;
    if rec.receipt.error.is_some() {
        bail!("the transaction failed");
    }
    Ok(())
}

/// `query` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum QueryCommand {
    /// The node's status.
    Status {
        #[command(flatten)]
        remote: Remote,
    },
    /// An account's balance and nonces.
    Account {
        /// Account (64 hex digits) or key file.
        account: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// A transaction and its receipt.
    Tx {
        /// Its id (hex).
        hash: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// The active validator set.
    Validators {
        #[command(flatten)]
        remote: Remote,
    },
    /// A state value with its proof, verified against the block header.
    Proof {
        /// The state key: text (`bank/s/caes`) or `0x` and hex.
        key: String,
        /// Height (default: the latest).
        #[arg(long)]
        height: Option<u64>,
        #[command(flatten)]
        remote: Remote,
    },
    /// A module query.
    Raw {
        /// The module.
        module: String,
        /// The query path.
        path: String,
        /// Arguments, hex.
        #[arg(long, default_value = "")]
        args: String,
        /// Height (default: the latest).
        #[arg(long)]
        height: Option<u64>,
        #[command(flatten)]
        remote: Remote,
    },
}

fn parse_hash(s: &str) -> anyhow::Result<[u8; 32]> {
    parse_hex(s.trim_start_matches("0x"))?
        .try_into()
        .map_err(|_| anyhow::anyhow!("{s:?} is not 64 hex digits"))
}

pub(crate) async fn query(c: QueryCommand) -> anyhow::Result<()> {
    match c {
        QueryCommand::Status { remote } => {
            let client = remote.connect(None).await?;
            let s = client.status().await?;
            println!("chain {} genesis {}", s.chain_id, hex(&s.genesis_hash));
            println!(
                "height {} block {} time {} ms",
                s.height,
                hex(&s.tip_hash),
                s.tip_time_ms
            );
            println!("state root {}", hex(&s.state_root));
            println!(
                "mempool {} transactions; proof of work {} bits; min fee per gas {} {}",
                s.mempool_txs, s.pow_bits, s.min_fee_per_gas, s.native_denom
            );
            println!("node {}", hex(&s.node));
            client.shutdown().await;
        }
        QueryCommand::Account { account: a, remote } => {
            let id = account(&a)?;
            let client = remote.connect(None).await?;
            let info = client.account(&id).await?;
            let s = client.status().await?;
            println!("account {} at height {}", hex(&id), info.height);
            println!("balance {} {} ({} locked)", info.balance, s.native_denom, info.locked);
            println!("next nonce {} (pending {})", info.next_nonce, info.pending_nonce);
            client.shutdown().await;
        }
        QueryCommand::Tx { hash, remote } => {
            let h = parse_hash(&hash)?;
            let client = remote.connect(None).await?;
            match client.tx(&h).await? {
                TxStatus::Committed(rec) => {
                    println!("committed in block {} position {}", rec.height, rec.index);
                    print_receipt(&rec.receipt);
                }
                TxStatus::Pending => println!("pending in the mempool"),
                TxStatus::Unknown => println!("unknown to this node"),
            }
            client.shutdown().await;
        }
        QueryCommand::Validators { remote } => {
            let client = remote.connect(None).await?;
            let (height, raw) = client.query("staking", "validator_set", &[], None).await?;
            let set = ValidatorSet::decode(&raw)?;
            println!("validators at height {height} (total power {}):", set.total_power());
            for (acct, _, power) in &set.0 {
                println!("  {} power {power}", hex(acct));
            }
            client.shutdown().await;
        }
        QueryCommand::Proof { key, height, remote } => {
            let k = match key.strip_prefix("0x") {
                Some(h) => parse_hex(h)?,
                None => key.into_bytes(),
            };
            let client = remote.connect(None).await?;
            let p = client.prove(&k, height).await?;
            println!("height {} state root {} (proof verified)", p.height, hex(&p.root));
            match &p.value {
                Some(v) => println!("value {}", hex(v)),
                None => println!("absent (exclusion proof)"),
            }
            client.shutdown().await;
        }
        QueryCommand::Raw {
            module,
            path,
            args,
            height,
            remote,
        } => {
            let args = parse_hex(&args)?;
            let client = remote.connect(None).await?;
            let (h, out) = client.query(&module, &path, &args, height).await?;
            println!("height {h}: {}", hex(&out));
            client.shutdown().await;
        }
    }
    Ok(())
}

fn print_receipt(r: &Receipt) {
    match &r.error {
        None => println!("succeeded, gas used {}, fee {}", r.gas_used, r.fee),
        Some((code, msg)) => println!("failed ({code}: {msg}), gas used {}, fee {}", r.gas_used, r.fee),
    }
    for e in &r.events {
        let attrs: Vec<String> = e.attributes.iter().map(|(k, v)| format!("{k}={}", hex(v))).collect();
        println!("  event {}.{} {}", e.module, e.kind, attrs.join(" "));
    }
}

/// Arguments of `block`.
#[derive(Debug, clap::Args)]
pub(crate) struct BlockArgs {
    /// Height, `latest`, or a block hash.
    #[arg(default_value = "latest")]
    at: String,
    /// Print the receipts too.
    #[arg(long)]
    receipts: bool,
    #[command(flatten)]
    remote: Remote,
}

pub(crate) async fn block(a: BlockArgs) -> anyhow::Result<()> {
    let at = match a.at.as_str() {
        "latest" => BlockRef::Latest,
        s if s.len() >= 64 => BlockRef::Hash(parse_hash(s)?),
        s => BlockRef::Height(
            s.parse()
                .with_context(|| format!("{s:?} is not a height, `latest` or a hash"))?,
        ),
    };
    let client = a.remote.connect(None).await?;
    let Some(b) = client.block(at).await? else {
        client.shutdown().await;
        bail!("no such block (height 0 is the genesis state, not a block)");
    };
    print_block(&b)?;
    if a.receipts {
        for (tx, r) in b.txs.iter().zip(client.receipts(b.header.height).await?) {
            println!("tx {}", hex(&tx.hash()?));
            print_receipt(&r);
        }
    }
    client.shutdown().await;
    Ok(())
}

fn print_block(b: &Block) -> anyhow::Result<()> {
    let h = &b.header;
    println!("block {} {}", h.height, hex(&h.hash()?));
    println!("  parent        {}", hex(&h.parent_hash));
    println!("  time          {} ms", h.timestamp_ms);
    println!("  proposer      {}", hex(&h.proposer));
    println!("  transactions  {} (root {})", b.txs.len(), hex(&h.tx_root));
    println!("  state root    {}", hex(&h.state_root));
    println!("  validator set {}", hex(&h.validator_set_hash));
    println!("  result root   {}", hex(&h.result_root));
    println!("  commit        {} bytes", b.commit.len());
    Ok(())
}
