//! `stoq bench` (being written).

/// Arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

pub(crate) async fn run(_args: Args, _json: bool) -> anyhow::Result<()> {
    anyhow::bail!("not yet written")
}
