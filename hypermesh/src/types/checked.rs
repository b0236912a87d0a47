//! Transactions carried with their canonical bytes and id, so that the
//! mempool, the block builder and the executor encode and hash each one
//! once rather than at every step.

use std::sync::Arc;

use bytes::Bytes;
use stoq::crypto::PublicKey;

use super::key_cache::KeyCache;
use super::tx::{unknown_sender, AccountId, Sighash, Transaction};
use crate::codec::Hash;
use crate::error::{Error, Result, TxError};

/// A decoded transaction with its canonical encoding, its id and its
/// sender's key.
///
/// Built by [`CheckedTx::admit`] and [`CheckedTx::verify`] (bytes from the
/// network, through every stateless check), [`CheckedTx::check`] (a
/// decoded transaction, same checks) or [`CheckedTx::from_committed`] (a
/// transaction read back from a block already validated). Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedTx(Arc<Inner>);

#[derive(Debug, PartialEq, Eq)]
struct Inner {
    tx: Arc<Transaction>,
    bytes: Bytes,
    hash: Hash,
    sender: AccountId,
    key: PublicKey,
}

impl CheckedTx {
    /// Decodes `bytes` and runs the stateless checks (chain id, proof of
    /// work, key algorithm, signature), in that order. A transaction that
    /// names its sender by account is refused as from an unknown sender:
    /// finding its key takes the chain's state ([`CheckedTx::verify`]).
    pub fn admit(bytes: &[u8], chain_id: &str, pow_bits: u32) -> Result<CheckedTx, TxError> {
        Self::admit_cached(Bytes::copy_from_slice(bytes), chain_id, pow_bits, None)
    }

    /// [`CheckedTx::admit`], decoding sender keys through `keys` (which
    /// also answers for senders named by account) and keeping `bytes`
    /// without a copy.
    pub fn admit_cached(
        bytes: Bytes,
        chain_id: &str,
        pow_bits: u32,
        keys: Option<&KeyCache>,
    ) -> Result<CheckedTx, TxError> {
        let (tx, sighash) = Transaction::decode_shared(&bytes, keys)?;
        let account = tx.body.sender.account();
        let key = match (tx.body.sender.key(), keys) {
            (Some(k), _) => k.clone(),
            (None, Some(cache)) => cache.get(&account).ok_or_else(|| unknown_sender(&account))?,
            (None, None) => return Err(unknown_sender(&account)),
        };
        Self::verify(tx, &sighash, bytes, chain_id, pow_bits, &key)
    }

    /// Runs the stateless checks on a transaction decoded from `bytes`
    /// with `sighash`, given its sender's `key` (the one it carries, or
    /// the one the chain holds for its account).
    pub fn verify(
        tx: Transaction,
        sighash: &Sighash,
        bytes: Bytes,
        chain_id: &str,
        pow_bits: u32,
        key: &PublicKey,
    ) -> Result<CheckedTx, TxError> {
        tx.check_stateless_with(sighash, chain_id, pow_bits, key)?;
        Ok(Self::wrap(Arc::new(tx), bytes, sighash, key.clone()))
    }

    /// Runs the stateless checks on an already decoded transaction; `key`
    /// is needed when it names its sender by account.
    pub fn check(
        tx: Transaction,
        chain_id: &str,
        pow_bits: u32,
        key: Option<&PublicKey>,
    ) -> Result<CheckedTx, TxError> {
        Self::check_shared(Arc::new(tx), chain_id, pow_bits, key)
    }

    /// [`CheckedTx::check`] on a transaction shared with a block.
    pub fn check_shared(
        tx: Arc<Transaction>,
        chain_id: &str,
        pow_bits: u32,
        key: Option<&PublicKey>,
    ) -> Result<CheckedTx, TxError> {
        let malformed = |e: crate::Error| TxError::Malformed(e.to_string());
        let sighash = tx.body.sighash().map_err(malformed)?;
        let key = sender_key(&tx, key)?;
        tx.check_stateless_with(&sighash, chain_id, pow_bits, &key)?;
        let bytes = tx.encode().map_err(malformed)?;
        Ok(Self::wrap(tx, Bytes::from(bytes), &sighash, key))
    }

    /// Wraps a transaction taken from a block whose signatures were
    /// already checked (by this node, or by the validators that committed
    /// it); skips the signature and work checks. `key` is needed when it
    /// names its sender by account, and must be that account's.
    pub fn from_committed(tx: Transaction, key: Option<&PublicKey>) -> Result<CheckedTx> {
        let key = sender_key(&tx, key)?;
        if key.node_id().0 != tx.body.sender.account() {
            return Err(Error::Tx(TxError::BadSignature));
        }
        let bytes = tx.encode()?;
        let sighash = tx.body.sighash()?;
        Ok(Self::wrap(Arc::new(tx), Bytes::from(bytes), &sighash, key))
    }

    fn wrap(tx: Arc<Transaction>, bytes: Bytes, sighash: &Sighash, key: PublicKey) -> CheckedTx {
        let hash = tx.id_with(sighash);
        let sender = tx.body.sender_id();
        CheckedTx(Arc::new(Inner {
            tx,
            bytes,
            hash,
            sender,
            key,
        }))
    }

    /// The transaction, shareable (a block holds it without a copy).
    pub fn shared_tx(&self) -> &Arc<Transaction> {
        &self.0.tx
    }

    /// The sender's key.
    pub fn key(&self) -> &PublicKey {
        &self.0.key
    }

    /// The transaction.
    pub fn tx(&self) -> &Transaction {
        &self.0.tx
    }

    /// Its canonical encoding.
    pub fn bytes(&self) -> &[u8] {
        &self.0.bytes
    }

    /// Its canonical encoding, shareable.
    pub fn shared_bytes(&self) -> &Bytes {
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

/// The key a transaction carries, else `given` (the one found for its
/// account).
fn sender_key(tx: &Transaction, given: Option<&PublicKey>) -> Result<PublicKey, TxError> {
    tx.body
        .sender
        .key()
        .or(given)
        .cloned()
        .ok_or_else(|| unknown_sender(&tx.body.sender.account()))
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
        assert_eq!(checked.key(), key.public_key());
        assert_eq!(checked, CheckedTx::from_committed(tx.clone(), None).expect("wrap"));
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
