//! Property tests of the canonical encodings: every value round-trips, and
//! no byte of an encoding can change without the decoder refusing it or
//! the hash changing.

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use std::sync::OnceLock;

use stoq::crypto::{Algorithm, KeyPair};

use super::*;
use crate::codec::Hash;

fn keys() -> &'static [KeyPair] {
    static KEYS: OnceLock<Vec<KeyPair>> = OnceLock::new();
    KEYS.get_or_init(|| (0..3).map(|_| KeyPair::generate(Algorithm::FnDsa1024)).collect())
}

prop_compose! {
    fn arb_call()(
        module in "[a-z]{1,32}",
        method in "[a-z_]{1,32}",
        args in proptest::collection::vec(any::<u8>(), 0..512),
    ) -> Call {
        Call { module, method, args }
    }
}

prop_compose! {
    fn arb_tx()(
        chain_id in "[a-z0-9-]{1,64}",
        key in 0usize..3,
        by_account in any::<bool>(),
        nonce in any::<u64>(),
        expiry_height in any::<u64>(),
        gas_limit in any::<u64>(),
        fee in any::<u128>(),
        call in arb_call(),
        pow_nonce in any::<u64>(),
    ) -> Transaction {
        let key = &keys()[key];
        let body = UnsignedTransaction {
            chain_id,
            sender: if by_account {
                Sender::Account(key.public_key().node_id().0)
            } else {
                Sender::Key(key.public_key().clone())
            },
            nonce,
            expiry_height,
            gas_limit,
            fee,
            call,
        };
        let mut tx = body.sign(key).expect("sign");
        tx.pow_nonce = pow_nonce;
        tx
    }
}

fn arb_hash() -> impl Strategy<Value = Hash> {
    any::<[u8; 32]>()
}

prop_compose! {
    fn arb_header()(
        chain_id in "[a-z0-9-]{1,64}",
        height in any::<u64>(),
        hashes in proptest::collection::vec(arb_hash(), 6),
        timestamp_ms in any::<u64>(),
        space in proptest::collection::vec(any::<u8>(), 0..64),
        time in proptest::collection::vec(any::<u8>(), 0..64),
        stake in proptest::collection::vec(any::<u8>(), 0..64),
    ) -> BlockHeader {
        BlockHeader {
            chain_id,
            height,
            parent_hash: hashes[0],
            timestamp_ms,
            proposer: hashes[1],
            tx_root: hashes[2],
            state_root: hashes[3],
            validator_set_hash: hashes[4],
            result_root: hashes[5],
            proofs: ProofSection {
                space,
                time,
                evidence: stake.iter().rev().copied().collect(),
                stake,
            },
        }
    }
}

prop_compose! {
    fn arb_block()(
        header in arb_header(),
        txs in proptest::collection::vec(arb_tx(), 0..4),
        commit in proptest::collection::vec(any::<u8>(), 0..128),
    ) -> Block {
        Block { header, txs: txs.into_iter().map(std::sync::Arc::new).collect(), commit }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn transactions_round_trip(tx in arb_tx()) {
        let bytes = tx.encode().expect("encode");
        prop_assert_eq!(Transaction::decode(&bytes).expect("decode"), tx.clone());
        // Whichever form names the sender, the signature is the account key's.
        let key = keys().iter().find(|k| k.public_key().node_id().0 == tx.body.sender_id()).expect("a test key");
        prop_assert!(key.public_key().verify(&tx.body.sighash().expect("sighash"), &tx.signature).is_ok());
    }

    #[test]
    fn a_changed_transaction_byte_is_refused_or_changes_the_id(
        tx in arb_tx(),
        at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let bytes = tx.encode().expect("encode");
        let mut changed = bytes.clone();
        let i = at.index(changed.len());
        changed[i] ^= flip;
        if let Ok(other) = Transaction::decode(&changed) {
            prop_assert_ne!(&other, &tx);
            prop_assert_ne!(other.hash().expect("hash"), tx.hash().expect("hash"));
        }
    }

    #[test]
    fn headers_round_trip_and_any_changed_byte_changes_the_hash(
        header in arb_header(),
        at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let bytes = header.encode().expect("encode");
        prop_assert_eq!(BlockHeader::decode(&bytes).expect("decode"), header.clone());
        let mut changed = bytes.clone();
        let i = at.index(changed.len());
        changed[i] ^= flip;
        if let Ok(other) = BlockHeader::decode(&changed) {
            prop_assert_ne!(other.hash().expect("hash"), header.hash().expect("hash"));
        }
    }

    #[test]
    fn blocks_round_trip(block in arb_block()) {
        let bytes = block.encode().expect("encode");
        prop_assert_eq!(Block::decode(&bytes).expect("decode"), block.clone());
        // Built from already encoded transactions: the same bytes.
        let encoded: Vec<Vec<u8>> = block.txs.iter().map(|t| t.encode().expect("encode")).collect();
        let parts = Block::encode_parts(&block.header, encoded.iter().map(Vec::as_slice), &block.commit)
            .expect("encode parts");
        prop_assert_eq!(&parts, &bytes);
        // Truncation anywhere is refused.
        for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
            prop_assert!(Block::decode(&bytes[..cut]).is_err());
        }
    }
}

/// Writes valid encodings as seeds for the `chain_decode` fuzz target when
/// `HYPERMESH_FUZZ_SEEDS` names a directory (see `fuzz/README.md`): random
/// bytes practically never form an FN-DSA key, so the fuzzer starts from
/// real transactions and blocks. Does nothing otherwise.
#[test]
fn write_fuzz_seeds_when_asked() {
    let Some(dir) = std::env::var_os("HYPERMESH_FUZZ_SEEDS") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir).expect("seed dir");
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    for i in 0..8 {
        let block = arb_block().new_tree(&mut runner).expect("value").current();
        let tx = block
            .txs
            .first()
            .map(|t| Transaction::clone(t))
            .unwrap_or_else(|| arb_tx().new_tree(&mut runner).expect("value").current());
        for (selector, bytes) in [
            (0u8, tx.encode().expect("tx")),
            (1, block.header.encode().expect("header")),
            (2, block.encode().expect("block")),
        ] {
            let mut seed = vec![selector];
            seed.extend_from_slice(&bytes);
            std::fs::write(dir.join(format!("seed-{selector}-{i}")), seed).expect("write seed");
        }
    }
}
