//! Values the tests of several modules build blocks and transactions from.

use stoq::crypto::KeyPair;

use super::{BlockHeader, Call, Sender, Transaction, UnsignedTransaction};

/// A header of `chain_id` at `height` whose hashes are `[1; 32]` (parent)
/// to `[6; 32]` (result root), in field order, with no proofs.
pub(crate) fn header(chain_id: &str, height: u64, timestamp_ms: u64) -> BlockHeader {
    BlockHeader {
        chain_id: chain_id.into(),
        height,
        parent_hash: [1; 32],
        timestamp_ms,
        proposer: [2; 32],
        tx_root: [3; 32],
        state_root: [4; 32],
        validator_set_hash: [5; 32],
        result_root: [6; 32],
        proofs: Default::default(),
    }
}

/// A `bank.transfer` call with `args`, signed by `key` (which it carries).
pub(crate) fn signed_call(key: &KeyPair, chain_id: &str, nonce: u64, args: Vec<u8>) -> Transaction {
    UnsignedTransaction {
        chain_id: chain_id.into(),
        sender: Sender::Key(key.public_key().clone()),
        nonce,
        expiry_height: 100,
        gas_limit: 10_000,
        fee: 5,
        call: Call {
            module: "bank".into(),
            method: "transfer".into(),
            args,
        },
    }
    .sign(key)
    .expect("sign")
}
