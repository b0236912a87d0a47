//! Transactions carried with their canonical bytes and id, so that the
//! mempool, the block builder and the executor encode and hash each one
//! once rather than at every step.

use std::sync::Arc;

use super::key_cache::KeyCache;
use super::tx::{AccountId, Sighash, Transaction};
use crate::codec::Hash;
use crate::error::{Result, TxError};

/// A decoded transaction with its canonical encoding and its id.
///
/// Built by [`CheckedTx::admit`] (bytes from the network, through every
/// stateless check) or [`CheckedTx::from_committed`] (a transaction read
/// back from a block this node already validated). Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedTx(Arc<Inner>);

#[derive(Debug, PartialEq, Eq)]
struct Inner {
    tx: Transaction,
    bytes: Vec<u8>,
    hash: Hash,
    sender: AccountId,
}

impl CheckedTx {
    /// Decodes `bytes` and runs the stateless checks (chain id, proof of
    /// work, key algorithm, signature), in that order.
    pub fn admit(bytes: &[u8], chain_id: &str, pow_bits: u32) -> Result<CheckedTx, TxError> {
        Self::admit_cached(bytes, chain_id, pow_bits, None)
    }

    /// [`CheckedTx::admit`], decoding sender keys through `keys`.
    pub fn admit_cached(
        bytes: &[u8],
        chain_id: &str,
        pow_bits: u32,
        keys: Option<&KeyCache>,
    ) -> Result<CheckedTx, TxError> {
        let (tx, sighash) = Transaction::decode_cached(bytes, keys)?;
        tx.check_stateless_with(&sighash, chain_id, pow_bits)?;
        Ok(Self::wrap(tx, bytes.to_vec(), &sighash))
    }

    /// Runs the stateless checks on an already decoded transaction.
    pub fn check(tx: Transaction, chain_id: &str, pow_bits: u32) -> Result<CheckedTx, TxError> {
        let malformed = |e: crate::Error| TxError::Malformed(e.to_string());
        let sighash = tx.body.sighash().map_err(malformed)?;
        tx.check_stateless_with(&sighash, chain_id, pow_bits)?;
        let bytes = tx.encode().map_err(malformed)?;
        Ok(Self::wrap(tx, bytes, &sighash))
    }

    /// Wraps a transaction taken from a block whose signatures were
    /// already checked (by this node, or by the validators that committed
    /// it); skips the signature and work checks.
    pub fn from_committed(tx: Transaction) -> Result<CheckedTx> {
        let bytes = tx.encode()?;
        let sighash = tx.body.sighash()?;
        Ok(Self::wrap(tx, bytes, &sighash))
    }

    fn wrap(tx: Transaction, bytes: Vec<u8>, sighash: &Sighash) -> CheckedTx {
        let hash = tx.id_with(sighash);
        let sender = tx.body.sender_id();
        CheckedTx(Arc::new(Inner {
            tx,
            bytes,
            hash,
            sender,
        }))
    }

    /// The transaction.
    pub fn tx(&self) -> &Transaction {
        &self.0.tx
    }

    /// Its canonical encoding.
    pub fn bytes(&self) -> &[u8] {
        &self.0.bytes
    }

    /// Its id (see [`Transaction::hash`]).
    pub fn hash(&self) -> Hash {
        self.0.hash
    }

    /// The sender's account.
    pub fn sender(&self) -> AccountId {
        self.0.sender
    }

    /// The sender's nonce.
    pub fn nonce(&self) -> u64 {
        self.0.tx.body.nonce
    }

    /// Fee per unit of gas limit.
    pub fn fee_per_gas(&self) -> u128 {
        self.0.tx.body.fee_per_gas()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::test_chain::signed;
    use stoq::crypto::{Algorithm, KeyPair};

    #[test]
    fn admit_keeps_the_canonical_bytes_and_id() {
        let key = KeyPair::generate(Algorithm::FnDsa1024);
        let call = crate::Call {
            module: "bank".into(),
            method: "transfer".into(),
            args: crate::modules::bank::transfer_args(&[9; 32], "caes", 5),
        };
        let mut tx = signed(&key, 0, call, 100_000, 10);
        assert!(tx.solve_work(8, 0, 1 << 24).expect("work"));
        let bytes = tx.encode().expect("encode");
        let chain = tx.body.chain_id.clone();
        let checked = CheckedTx::admit(&bytes, &chain, 8).expect("admitted");
        assert_eq!(checked.bytes(), &bytes[..]);
        assert_eq!(checked.hash(), tx.hash().expect("hash"));
        assert_eq!(checked.sender(), tx.body.sender_id());
        assert_eq!(checked, CheckedTx::from_committed(tx.clone()).expect("wrap"));
        assert!(matches!(
            CheckedTx::admit(&bytes, "other", 8),
            Err(TxError::WrongChain { .. })
        ));
        assert!(matches!(
            CheckedTx::admit(&bytes[1..], &chain, 8),
            Err(TxError::Malformed(_))
        ));
    }
}
