//! `trustchain log`: fetch checkpoints, entries and proofs, and verify them.

use anyhow::bail;
use std::path::PathBuf;

use stoq::crypto::merkle_leaf_hash;
use trustchain::log::{verify_consistency, verify_inclusion};
use trustchain::messages::ProofRequest;
use trustchain::trust::TrustStore;

use crate::common;

/// `log` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// The latest co-signed checkpoint of each log (signatures verified).
    Head(Common),
    /// Print entries `start..end` of a log (base64 DER bodies).
    Entries {
        #[command(flatten)]
        common: Common,
        /// First entry.
        #[arg(long)]
        start: u64,
        /// One past the last entry.
        #[arg(long)]
        end: u64,
    },
    /// Check a log end to end: every entry is included in the latest head,
    /// and every checkpoint is consistent with the latest.
    Verify(Common),
}

/// Options every `log` command takes.
#[derive(Debug, clap::Args)]
pub(crate) struct Common {
    /// The trust bundle.
    #[arg(long)]
    bundle: PathBuf,
    /// The member (log) to read.
    #[arg(long)]
    member: Option<u16>,
}

pub(crate) async fn run(c: Command) -> anyhow::Result<()> {
    match c {
        Command::Head(o) => {
            let bundle = common::bundle(&o.bundle)?;
            let trust = TrustStore::new(bundle.clone());
            let client = common::client(bundle.clone(), None)?;
            client.sync(&trust).await?;
            for (log, size) in trust.latest_sizes() {
                if o.member.is_some_and(|m| m != log) {
                    continue;
                }
                if let Some(cp) = trust.checkpoint(log, size) {
                    println!(
                        "log {log}: size {size} root {} at {} ms, signed by {:?}",
                        stoq::crypto::hex(&cp.body.root),
                        cp.body.timestamp_ms,
                        cp.signatures.iter().map(|s| s.member).collect::<Vec<_>>()
                    );
                }
            }
        }
        Command::Entries { common: o, start, end } => {
            let bundle = common::bundle(&o.bundle)?;
            let index = common::member_index(&bundle, o.member)?;
            let client = common::client(bundle, None)?;
            use base64::Engine;
            for (i, e) in client.entries(index, start, end).await?.iter().enumerate() {
                println!(
                    "{} {}",
                    start + i as u64,
                    base64::engine::general_purpose::STANDARD.encode(e)
                );
            }
        }
        Command::Verify(o) => {
            let bundle = common::bundle(&o.bundle)?;
            let index = common::member_index(&bundle, o.member)?;
            let trust = TrustStore::new(bundle.clone());
            let client = common::client(bundle, None)?;
            client.sync(&trust).await?;
            let Some(size) = trust
                .latest_sizes()
                .into_iter()
                .find(|(l, _)| *l == index)
                .map(|(_, s)| s)
            else {
                bail!("log {index} has no co-signed checkpoint yet");
            };
            let Some(head) = trust.checkpoint(index, size) else {
                bail!("checkpoint disappeared");
            };
            let mut start = 0;
            while start < size {
                let end = (start + 256).min(size);
                let entries = client.entries(index, start, end).await?;
                if entries.len() as u64 != end - start {
                    bail!("member returned {} entries for {start}..{end}", entries.len());
                }
                for (i, e) in entries.iter().enumerate() {
                    let idx = start + i as u64;
                    let proof = client
                        .proof(index, ProofRequest::Inclusion { index: idx, size })
                        .await?;
                    verify_inclusion(&merkle_leaf_hash(e), idx, size, &proof, &head.body.root)?;
                }
                eprintln!("verified entries {start}..{end}");
                start = end;
            }
            let mut checked = 0;
            for old in trust.checkpoint_sizes(index).into_iter().filter(|s| *s < size) {
                let Some(cp) = trust.checkpoint(index, old) else {
                    continue;
                };
                let proof = client
                    .proof(index, ProofRequest::Consistency { old, new: size })
                    .await?;
                verify_consistency(old, size, &cp.body.root, &head.body.root, &proof)?;
                checked += 1;
            }
            println!(
                "log {index}: {size} entries included in the head; {checked} older checkpoints consistent with it"
            );
        }
    }
    Ok(())
}
