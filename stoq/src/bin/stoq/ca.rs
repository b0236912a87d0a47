//! `stoq ca` (being written).

/// Subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Placeholder.
    Init,
}

pub(crate) fn run(_cmd: Command, _json: bool) -> anyhow::Result<()> {
    anyhow::bail!("not yet written")
}
