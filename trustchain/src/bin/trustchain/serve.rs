//! `trustchain serve`: run a CA member until SIGINT/SIGTERM.

use anyhow::Context;
use std::path::PathBuf;

use trustchain::member::{MemberConfig, MemberNode};

/// Arguments of `serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The member's config (`trustchain.toml` in its directory); a relative
    /// `data_dir` is taken relative to the config file.
    #[arg(long)]
    config: PathBuf,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("reading {} (written by `trustchain init`)", args.config.display()))?;
    let mut config = MemberConfig::from_toml(&text)?;
    if config.data_dir.is_relative() {
        let base = args.config.parent().map(PathBuf::from).unwrap_or_default();
        config.data_dir = base.join(&config.data_dir);
    }
    let node = MemberNode::start(config).await?;
    println!(
        "trustchain member {} listening on {} (STOQ){}",
        node.index(),
        node.stoq_addr()?,
        node.http_addr().map(|a| format!(", http://{a}")).unwrap_or_default()
    );
    stoq::daemon::shutdown_signal().await;
    eprintln!("shutting down");
    node.shutdown().await;
    Ok(())
}
