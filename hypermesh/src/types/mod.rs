//! Transactions and blocks.

mod block;
mod checked;
mod encoded_block;
mod key_cache;
#[cfg(test)]
pub(crate) mod test_fixtures;
mod tx;

#[cfg(test)]
mod prop_tests;

pub use block::{Block, BlockHeader, ProofSection, MAX_BLOCK_BYTES, MAX_BLOCK_TXS, MAX_COMMIT_BYTES, MAX_PROOF_BYTES};
pub use checked::CheckedTx;
pub use encoded_block::EncodedBlock;
pub use key_cache::KeyCache;
pub(crate) use tx::unknown_sender;
pub use tx::{
    AccountId, Call, Sender, Sighash, Transaction, UnsignedTransaction, MAX_ARGS_BYTES, MAX_NAME, MAX_TX_BYTES,
};

/// Version byte of the current encodings (2: a transaction names its
/// sender by key or by account).
pub const ENCODING_VERSION: u8 = 2;

/// Longest chain id, in bytes.
pub const MAX_CHAIN_ID: usize = 64;

fn check_version(what: &'static str, got: u8) -> crate::Result<()> {
    if got == ENCODING_VERSION {
        Ok(())
    } else {
        Err(crate::Error::Decode {
            what,
            reason: format!("encoding version {got}, this node reads {ENCODING_VERSION}"),
        })
    }
}
