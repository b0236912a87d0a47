//! `trustchain`: the CA member daemon and its command-line tools.

#![forbid(unsafe_code)]

mod admin;
mod bench;
mod common;
mod logcmd;
mod node;
mod serve;

use clap::{Parser, Subcommand};

/// TrustChain, the post-quantum k-of-n certificate authority of the stack.
#[derive(Debug, Parser)]
#[command(name = "trustchain", version, about)]
struct Cli {
    /// Log filter (e.g. `info`, `trustchain=debug`); also read from RUST_LOG.
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
    /// Run the key ceremony: root, member keys and certificates, bundle.
    Init(admin::InitArgs),
    /// Run a CA member.
    Serve(serve::Args),
    /// Enrollment tokens.
    #[command(subcommand)]
    Token(admin::TokenCommand),
    /// Enroll a node key with a token and write its certificate.
    Issue(node::IssueArgs),
    /// Renew a certificate before it expires.
    Renew(node::RenewArgs),
    /// Revoke a certificate (as an admin, or with the certificate's key).
    Revoke(admin::RevokeArgs),
    /// Verify a certificate against the bundle, the log and revocations.
    Verify(node::VerifyArgs),
    /// Read and verify the transparency log.
    #[command(subcommand)]
    Log(logcmd::Command),
    /// Show the members' status.
    Status(admin::StatusArgs),
    /// Measure issuance, the log and DNS against their baselines.
    Bench(bench::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    stoq::daemon::init_logging(&cli.log, cli.log_json);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Init(a) => admin::init(a),
            Command::Serve(a) => serve::run(a).await,
            Command::Token(c) => admin::token(c).await,
            Command::Issue(a) => node::issue(a).await,
            Command::Renew(a) => node::renew(a).await,
            Command::Revoke(a) => admin::revoke(a).await,
            Command::Verify(a) => node::verify(a).await,
            Command::Log(c) => logcmd::run(c).await,
            Command::Status(a) => admin::status(a).await,
            Command::Bench(a) => bench::run(a).await,
        }
    })
}
