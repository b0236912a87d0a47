//! `hypermesh`: the HyperMesh node daemon and its command-line tools.

mod bench;
mod config;
mod genesis_file;
mod remote;
mod setup;
mod start;

use clap::{Parser, Subcommand};

/// mimalloc rather than the system allocator: the node allocates and frees
/// many short-lived buffers per transaction (received frames, decoded
/// calls, receipts), and `hypermesh bench` measured 40-43 us of CPU per
/// transfer with it against 46-47 us with glibc's (and 48 us with
/// jemalloc) on the same machine.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// HyperMesh: the chain of the stack.
#[derive(Debug, Parser)]
#[command(name = "hypermesh", version, about)]
struct Cli {
    /// Log filter (e.g. `info`, `hypermesh=debug`); also read from RUST_LOG.
    #[arg(long, global = true, default_value = "info")]
    log: String,
    /// Write logs as JSON lines.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a genesis file (chain id, validators, balances, parameters).
    Genesis(setup::GenesisArgs),
    /// Create the node's key, enrol it with TrustChain, write its config.
    Init(setup::InitArgs),
    /// Run the node.
    Start(start::Args),
    /// Account keys.
    #[command(subcommand)]
    Keys(setup::KeysCommand),
    /// Send a transaction.
    #[command(subcommand)]
    Tx(remote::TxCommand),
    /// Read the chain's state.
    #[command(subcommand)]
    Query(remote::QueryCommand),
    /// Show a block.
    Block(remote::BlockArgs),
    /// Measure transfers end to end and the state against their baselines.
    Bench(bench::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    stoq::daemon::init_logging(&cli.log, cli.log_json);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Genesis(a) => setup::genesis(a),
            Command::Init(a) => setup::init(a).await,
            Command::Start(a) => start::run(a).await,
            Command::Keys(c) => setup::keys(c),
            Command::Tx(c) => remote::tx(c).await,
            Command::Query(c) => remote::query(c).await,
            Command::Block(a) => remote::block(a).await,
            Command::Bench(a) => bench::run(a).await,
        }
    })
}
