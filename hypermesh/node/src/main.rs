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

/// mimalloc v3's `mi_option_purge_delay` (its `include/mimalloc.h`);
/// libmimalloc-sys names no constant for it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long freed allocator memory stays mapped before it is returned to
/// the OS, in milliseconds. mimalloc's default (1 s) is shorter than the
/// churn of a validator under load: a block's transactions, receipts and
/// buffers are freed and allocated again every few hundred milliseconds, so
/// the memory went back to the OS and was faulted in again (the kernel
/// zeroing each page): 4-7 % of all CPU in a profile of `hypermesh bench
/// consensus`, with about 12,000 page faults a second; with 10 s the
/// faults all but stop. Memory is still returned once load drops.
const ALLOCATOR_PURGE_DELAY_MS: std::ffi::c_long = 10_000;

/// Applies [`ALLOCATOR_PURGE_DELAY_MS`] unless the operator set
/// `MIMALLOC_PURGE_DELAY` (mimalloc reads it at process start).
#[allow(unsafe_code)]
fn tune_allocator() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: `mi_option_set` is a plain FFI call taking integers; it is
    // not thread-safe, so it runs first thing in `main`, before any other
    // thread exists. The option id is checked against mimalloc's default
    // by a unit test below.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, ALLOCATOR_PURGE_DELAY_MS) };
}

/// HyperMesh: the chain of the stack.
#[derive(Debug, Parser)]
#[command(name = "hypermesh", version, about)]
struct Cli {
    /// Log filter (e.g. `info`, `hypermesh=debug`); also read from RUST_LOG.
    /// By default `info`, with the consensus engine (which logs every vote
    /// at info) kept to warnings (`arc_malachitebft_core_consensus=info`
    /// brings it back); `warn` for `bench`, whose report is its output.
    #[arg(long, global = true)]
    log: Option<String>,
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
    tune_allocator();
    let cli = Cli::parse();
    let log = cli.log.as_deref().unwrap_or(match cli.command {
        Command::Bench(_) => "warn",
        _ => "info,arc_malachitebft_core_consensus=warn",
    });
    stoq::daemon::init_logging(log, cli.log_json);
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

#[cfg(test)]
mod tests {
    /// The option id still names `purge_delay` in the bundled mimalloc: its
    /// default, 1000 ms, is unlike its neighbours' (1 and 0). Nothing in
    /// this test binary sets allocator options.
    #[test]
    #[allow(unsafe_code)]
    fn the_purge_delay_option_id_names_purge_delay() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        // SAFETY: reading an option is a plain FFI call taking an integer.
        let value = unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) };
        assert_eq!(value, 1000);
    }
}
