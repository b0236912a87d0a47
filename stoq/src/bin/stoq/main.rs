//! `stoq`: key generation, a development CA, an RPC echo server, ping and
//! the transport benchmarks.

#![forbid(unsafe_code)]

mod bench;
mod ca;
mod common;
mod config;
mod keygen;
mod metrics_http;
mod ping;
mod serve;

use clap::{Parser, Subcommand};

/// STOQ, the post-quantum QUIC transport of the stack.
#[derive(Debug, Parser)]
#[command(name = "stoq", version, about)]
struct Cli {
    /// Print results as JSON (for machines) instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Log filter (e.g. `info`, `stoq=debug`); also read from RUST_LOG.
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
    /// Generate a node key pair (PKCS#8 PEM, mode 0600).
    Keygen(keygen::Args),
    /// A local development CA (until TrustChain issues certificates).
    #[command(subcommand)]
    Ca(ca::Command),
    /// Run an RPC echo/ping server.
    Serve(serve::Args),
    /// Measure round-trip times to a peer.
    Ping(ping::Args),
    /// Run the transport benchmarks against plain quinn baselines.
    Bench(bench::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    stoq::daemon::init_logging(&cli.log, cli.log_json);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Keygen(args) => keygen::run(args, cli.json),
            Command::Ca(cmd) => ca::run(cmd, cli.json),
            Command::Serve(args) => serve::run(args, cli.json).await,
            Command::Ping(args) => ping::run(args, cli.json).await,
            Command::Bench(args) => bench::run(args, cli.json).await,
        }
    })
}
