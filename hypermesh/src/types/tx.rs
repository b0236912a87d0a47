//! Transactions: who calls which module method, paying what, signed with
//! FN-DSA-1024 and carrying a proof of work.
//!
//! What is signed is the *sighash*: SHAKE256 (64 bytes, for collision
//! resistance at FN-DSA-1024's level) of every field but the proof-of-work
//! nonce and the signature, after a domain prefix. The proof of work is
//! over the sighash too. So a client signs once and then searches for the
//! nonce, and a node hashes the body once: the work check and the
//! signature check each touch 64 bytes, not the whole transaction.
//!
//! The transaction id is SHA3-256 over a domain, the sighash, the
//! proof-of-work nonce and the signature: it commits to every byte of the
//! canonical encoding without hashing the body twice.
//!
//! A sender is named by its full key only in its account's first
//! transaction, which registers the key on chain ([`Sender::Key`]); later
//! ones name the account ([`Sender::Account`], 32 bytes instead of 1,793).
//! The account id is the hash of the key, so the key found for an account
//! is the only one it can be, wherever it was found.

use sha3::digest::{ExtendableOutput, Update, XofReader};
use stoq::crypto::{sha3_256_parts, Algorithm, KeyPair, PublicKey, Signature};

use super::key_cache::KeyCache;
use super::{check_version, ENCODING_VERSION, MAX_CHAIN_ID};
use crate::codec::{check_len, Hash, ReadExt, Reader, WriteExt, Writer};
use crate::error::{Error, Result, TxError};

/// What a sender signs: SHAKE256-512 of the domain-prefixed body.
pub type Sighash = [u8; 64];

const TXID_DOMAIN: &[u8] = b"hypermesh/txid/v1";

/// The sighash of signing bytes (domain prefix and body encoding).
fn sighash_of(signing_bytes: &[u8]) -> Sighash {
    let mut h = sha3::Shake256::default();
    h.update(signing_bytes);
    let mut out = [0u8; 64];
    h.finalize_xof().read(&mut out);
    out
}

/// The id of a transaction with this sighash, proof of work and signature.
fn tx_id(sighash: &Sighash, pow_nonce: u64, signature: &Signature) -> Hash {
    sha3_256_parts(&[
        TXID_DOMAIN,
        &[0],
        sighash,
        &pow_nonce.to_be_bytes(),
        &signature.compact_header(),
        signature.as_bytes(),
    ])
}

/// Largest encoded transaction, in bytes.
pub const MAX_TX_BYTES: usize = 96 * 1024;
/// Largest call argument, in bytes.
pub const MAX_ARGS_BYTES: usize = 64 * 1024;
/// Longest module or method name, in bytes.
pub const MAX_NAME: usize = 32;

const SIGNING_DOMAIN: &[u8] = b"hypermesh/tx/v1";

/// An account: the SHA3-256 of the owner key's SubjectPublicKeyInfo (the
/// same id STOQ gives the node that holds the key).
pub type AccountId = [u8; 32];

/// Who sends a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sender {
    /// The sender's full key (FN-DSA-1024): required in an account's first
    /// transaction, whose execution registers it.
    Key(PublicKey),
    /// An account whose key the chain holds.
    Account(AccountId),
}

const SENDER_KEY: u8 = 0;
const SENDER_ACCOUNT: u8 = 1;

impl Sender {
    /// The sender's account.
    pub fn account(&self) -> AccountId {
        match self {
            Sender::Key(k) => k.node_id().0,
            Sender::Account(a) => *a,
        }
    }

    /// The key, when the transaction carries it.
    pub fn key(&self) -> Option<&PublicKey> {
        match self {
            Sender::Key(k) => Some(k),
            Sender::Account(_) => None,
        }
    }
}

impl From<PublicKey> for Sender {
    fn from(k: PublicKey) -> Self {
        Sender::Key(k)
    }
}

/// A call into a module of the runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The module (`bank`, `staking`, ...).
    pub module: String,
    /// The method within it.
    pub method: String,
    /// The method's arguments, encoded the way the module defines.
    pub args: Vec<u8>,
}

impl Call {
    fn write(&self, w: &mut Writer) -> Result<()> {
        check_len("call module", self.module.len(), MAX_NAME)?;
        check_len("call method", self.method.len(), MAX_NAME)?;
        check_len("call arguments", self.args.len(), MAX_ARGS_BYTES)?;
        w.str8(&self.module).str8(&self.method).bytes32(&self.args);
        Ok(())
    }

    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Call {
            module: r.str8(MAX_NAME)?,
            method: r.str8(MAX_NAME)?,
            args: r.bytes32(MAX_ARGS_BYTES)?.to_vec(),
        })
    }
}

/// Everything a sender signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsignedTransaction {
    /// The chain it is for.
    pub chain_id: String,
    /// The sender: its key, or its account once the key is on chain.
    pub sender: Sender,
    /// The sender's sequence number: exactly one more than its last.
    pub nonce: u64,
    /// The last height at which it may be included.
    pub expiry_height: u64,
    /// Most gas it may use.
    pub gas_limit: u64,
    /// Fee in the native token, charged whether or not the call succeeds.
    pub fee: u128,
    /// What it does.
    pub call: Call,
}

impl UnsignedTransaction {
    /// The domain prefix and the body's encoding: what the sighash hashes.
    pub fn signing_bytes(&self) -> Result<Vec<u8>> {
        let mut w = Writer::with_domain(SIGNING_DOMAIN);
        self.write(&mut w)?;
        Ok(w.finish())
    }

    /// What the signature and the proof of work cover.
    pub fn sighash(&self) -> Result<Sighash> {
        Ok(sighash_of(&self.signing_bytes()?))
    }

    fn write(&self, w: &mut Writer) -> Result<()> {
        check_len("chain id", self.chain_id.len(), MAX_CHAIN_ID)?;
        w.u8(ENCODING_VERSION).str8(&self.chain_id);
        match &self.sender {
            Sender::Key(k) => w.u8(SENDER_KEY).key(k),
            Sender::Account(a) => w.u8(SENDER_ACCOUNT).fixed(a),
        };
        w.u64(self.nonce)
            .u64(self.expiry_height)
            .u64(self.gas_limit)
            .u128(self.fee);
        self.call.write(w)
    }

    fn read(r: &mut Reader<'_>, keys: Option<&KeyCache>) -> Result<Self> {
        check_version("transaction", r.u8()?)?;
        let chain_id = r.str8(MAX_CHAIN_ID)?;
        let sender = match r.u8()? {
            SENDER_KEY => Sender::Key(match keys {
                None => r.key()?,
                Some(cache) => {
                    let raw = r.bytes16(4096)?;
                    cache.get_or_decode(raw).map_err(|e| Error::Decode {
                        what: "transaction",
                        reason: format!("public key: {e}"),
                    })?
                }
            }),
            SENDER_ACCOUNT => Sender::Account(r.array()?),
            tag => {
                return Err(Error::Decode {
                    what: "transaction",
                    reason: format!("unknown sender form {tag}"),
                })
            }
        };
        Ok(UnsignedTransaction {
            chain_id,
            sender,
            nonce: r.u64()?,
            expiry_height: r.u64()?,
            gas_limit: r.u64()?,
            fee: r.u128()?,
            call: Call::read(r)?,
        })
    }

    /// Signs with `key` (which must be the sender's); the proof-of-work
    /// nonce is left at 0 for [`crate::pow::solve`] to fill in.
    pub fn sign(self, key: &KeyPair) -> Result<Transaction> {
        let matches = match &self.sender {
            Sender::Key(k) => k == key.public_key(),
            Sender::Account(a) => *a == key.public_key().node_id().0,
        };
        if !matches {
            return Err(Error::Signing("the key is not the sender's".into()));
        }
        let signature = key.sign(&self.sighash()?).map_err(|e| Error::Signing(e.to_string()))?;
        Ok(Transaction {
            body: self,
            pow_nonce: 0,
            signature,
        })
    }

    /// The sender's account.
    pub fn sender_id(&self) -> AccountId {
        self.sender.account()
    }

    /// Fee per unit of gas limit (what the mempool orders by).
    pub fn fee_per_gas(&self) -> u128 {
        self.fee / u128::from(self.gas_limit.max(1))
    }
}

/// A signed transaction with its proof of work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    /// What was signed.
    pub body: UnsignedTransaction,
    /// The proof-of-work nonce (see [`crate::pow`]).
    pub pow_nonce: u64,
    /// FN-DSA-1024 signature over the signing bytes.
    pub signature: Signature,
}

impl AsRef<Transaction> for Transaction {
    fn as_ref(&self) -> &Transaction {
        self
    }
}

impl Transaction {
    /// The canonical encoding.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut w = Writer::new();
        self.body.write(&mut w)?;
        w.u64(self.pow_nonce).sig(&self.signature);
        let out = w.finish();
        check_len("transaction", out.len(), MAX_TX_BYTES)?;
        Ok(out)
    }

    /// Decodes a transaction, refusing anything but its one canonical
    /// encoding within the size limits. Checks nothing else.
    pub fn decode(buf: &[u8]) -> Result<Self, TxError> {
        Self::decode_with_sighash(buf).map(|(tx, _)| tx)
    }

    /// Decodes a transaction and computes its sighash from the received
    /// body bytes (no re-encoding).
    pub fn decode_with_sighash(buf: &[u8]) -> Result<(Self, Sighash), TxError> {
        Self::decode_cached(buf, None)
    }

    /// [`Transaction::decode_with_sighash`], taking sender keys already
    /// decoded from `keys` (and adding new ones to it).
    pub fn decode_cached(buf: &[u8], keys: Option<&KeyCache>) -> Result<(Self, Sighash), TxError> {
        Self::decode_inner(buf, keys, |r| r.sig())
    }

    /// [`Transaction::decode_cached`] of received bytes: the signature is
    /// kept as a slice of `buf`, not copied.
    pub fn decode_shared(buf: &bytes::Bytes, keys: Option<&KeyCache>) -> Result<(Self, Sighash), TxError> {
        Self::decode_inner(buf, keys, |r| {
            let compact = r.bytes16(4096)?;
            Signature::from_compact_shared(&buf.slice_ref(compact)).map_err(|e| trustchain::error::WireError {
                what: "transaction",
                reason: format!("signature: {e}"),
            })
        })
    }

    fn decode_inner(
        buf: &[u8],
        keys: Option<&KeyCache>,
        signature: impl FnOnce(&mut Reader<'_>) -> Result<Signature, trustchain::error::WireError>,
    ) -> Result<(Self, Sighash), TxError> {
        if buf.len() > MAX_TX_BYTES {
            return Err(TxError::Oversized {
                size: buf.len(),
                limit: MAX_TX_BYTES,
            });
        }
        let malformed = |e: Error| TxError::Malformed(e.to_string());
        let mut r = Reader::new(buf, "transaction");
        let body = UnsignedTransaction::read(&mut r, keys).map_err(malformed)?;
        let body_len = buf.len() - r.remaining();
        let pow_nonce = r.u64().map_err(|e| malformed(e.into()))?;
        let signature = signature(&mut r).map_err(|e| malformed(e.into()))?;
        r.finish().map_err(|e| malformed(e.into()))?;
        let mut h = sha3::Shake256::default();
        h.update(SIGNING_DOMAIN);
        h.update(&[0]);
        h.update(&buf[..body_len]);
        let mut sighash = [0u8; 64];
        h.finalize_xof().read(&mut sighash);
        Ok((
            Transaction {
                body,
                pow_nonce,
                signature,
            },
            sighash,
        ))
    }

    /// The transaction id (see the [module documentation](self)).
    pub fn hash(&self) -> Result<Hash> {
        Ok(self.id_with(&self.body.sighash()?))
    }

    /// The id, given the sighash.
    pub(crate) fn id_with(&self, sighash: &Sighash) -> Hash {
        tx_id(sighash, self.pow_nonce, &self.signature)
    }

    /// Finds a proof-of-work nonce of at least `bits` leading zero bits,
    /// trying at most `max_tries` nonces from `start`; whether one was found.
    pub fn solve_work(&mut self, bits: u32, start: u64, max_tries: u64) -> Result<bool> {
        let sighash = self.body.sighash()?;
        match crate::pow::solve(&sighash, bits, start, max_tries) {
            Some(n) => {
                self.pow_nonce = n;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Checks what needs no chain state, cheapest first: the chain id, the
    /// proof of work, the key algorithm, then the signature. `key` is the
    /// sender's, which a transaction naming its account does not carry
    /// (without it such a transaction is refused as from an unknown sender).
    pub fn check_stateless(&self, chain_id: &str, pow_bits: u32, key: Option<&PublicKey>) -> Result<(), TxError> {
        let sighash = self.body.sighash().map_err(|e| TxError::Malformed(e.to_string()))?;
        let key = key
            .or(self.body.sender.key())
            .ok_or_else(|| unknown_sender(&self.body.sender.account()))?;
        self.check_stateless_with(&sighash, chain_id, pow_bits, key)
    }

    /// [`Transaction::check_stateless`] with the sighash and the sender's
    /// key already found.
    pub(crate) fn check_stateless_with(
        &self,
        sighash: &Sighash,
        chain_id: &str,
        pow_bits: u32,
        key: &PublicKey,
    ) -> Result<(), TxError> {
        if self.body.chain_id != chain_id {
            return Err(TxError::WrongChain {
                got: self.body.chain_id.clone(),
                expected: chain_id.into(),
            });
        }
        let got = crate::pow::work_bits(sighash, self.pow_nonce);
        if got < pow_bits {
            return Err(TxError::InsufficientWork { got, needed: pow_bits });
        }
        if key.algorithm() != Algorithm::FnDsa1024 {
            return Err(TxError::KeyAlgorithm);
        }
        // The account is the key's hash: a key for another account cannot
        // stand in for the sender's.
        if key.node_id().0 != self.body.sender.account() {
            return Err(TxError::BadSignature);
        }
        key.verify(sighash, &self.signature).map_err(|_| TxError::BadSignature)
    }
}

/// The refusal of a transaction whose sender's key is not known.
pub(crate) fn unknown_sender(account: &AccountId) -> TxError {
    TxError::UnknownSender {
        account: stoq::crypto::hex(account),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHAIN: &str = "hypermesh-test";
    const BITS: u32 = 8;

    fn signed(key: &KeyPair, args: Vec<u8>) -> Transaction {
        let body = UnsignedTransaction {
            chain_id: CHAIN.into(),
            sender: key.public_key().clone().into(),
            nonce: 1,
            expiry_height: 100,
            gas_limit: 50_000,
            fee: 1_000,
            call: Call {
                module: "bank".into(),
                method: "transfer".into(),
                args,
            },
        };
        let mut tx = body.sign(key).expect("sign");
        assert!(tx.solve_work(BITS, 0, 1 << 24).expect("work"));
        tx
    }

    #[test]
    fn each_stateless_fault_has_its_own_refusal() {
        let key = KeyPair::generate(Algorithm::FnDsa1024);
        let tx = signed(&key, vec![1, 2, 3]);
        assert_eq!(tx.check_stateless(CHAIN, BITS, None), Ok(()));

        let refusal = tx.check_stateless("other-chain", BITS, None).expect_err("wrong chain");
        assert!(matches!(refusal, TxError::WrongChain { .. }), "{refusal}");

        // More work than the nonce has (the hash of a found nonce has at
        // least BITS zero bits, almost never 64).
        let refusal = tx.check_stateless(CHAIN, 64, None).expect_err("too little work");
        assert!(
            matches!(refusal, TxError::InsufficientWork { needed: 64, .. }),
            "{refusal}"
        );

        // A changed field breaks the signature (and first, usually, the
        // work: redo the work so the signature is what fails).
        let mut forged = tx.clone();
        forged.body.fee = 1;
        assert!(forged.solve_work(BITS, 0, 1 << 24).expect("work"));
        assert_eq!(forged.check_stateless(CHAIN, BITS, None), Err(TxError::BadSignature));

        // Signed by someone else's key.
        let other = KeyPair::generate(Algorithm::FnDsa1024);
        let mut stolen = signed(&other, vec![1, 2, 3]);
        stolen.body.sender = key.public_key().clone().into();
        assert!(stolen.solve_work(BITS, 0, 1 << 24).expect("work"));
        assert_eq!(stolen.check_stateless(CHAIN, BITS, None), Err(TxError::BadSignature));

        // Classical keys are refused even when the signature is valid.
        let ed = KeyPair::generate(Algorithm::Ed25519);
        let classical = signed(&ed, vec![]);
        assert_eq!(classical.check_stateless(CHAIN, BITS, None), Err(TxError::KeyAlgorithm));
    }

    #[test]
    fn malformed_and_oversized_bytes_are_refused_by_kind() {
        let key = KeyPair::generate(Algorithm::FnDsa1024);
        let bytes = signed(&key, vec![7; 100]).encode().expect("encode");
        for bad in [&bytes[..0], &bytes[..10], &bytes[..bytes.len() - 1]] {
            assert!(matches!(Transaction::decode(bad), Err(TxError::Malformed(_))));
        }
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(matches!(Transaction::decode(&trailing), Err(TxError::Malformed(_))));
        let mut version = bytes.clone();
        version[0] = 9;
        match Transaction::decode(&version) {
            Err(TxError::Malformed(m)) => assert!(m.contains("version 9"), "{m}"),
            other => panic!("{other:?}"),
        }
        let huge = vec![0u8; MAX_TX_BYTES + 1];
        assert!(matches!(Transaction::decode(&huge), Err(TxError::Oversized { .. })));
        // Arguments over the limit cannot even be encoded.
        let mut big = signed(&key, vec![]);
        big.body.call.args = vec![0; MAX_ARGS_BYTES + 1];
        assert!(matches!(big.encode(), Err(Error::Encode { .. })));
        big.body.call.args.pop();
        assert!(big.encode().is_ok(), "exactly the limit encodes");
    }

    #[test]
    fn a_sender_named_by_account_needs_that_accounts_key() {
        let key = KeyPair::generate(Algorithm::FnDsa1024);
        let other = KeyPair::generate(Algorithm::FnDsa1024);
        let by_key = signed(&key, vec![1]);
        let mut body = by_key.body.clone();
        body.sender = Sender::Account(key.public_key().node_id().0);
        assert!(matches!(body.clone().sign(&other), Err(Error::Signing(_))));
        let mut tx = body.sign(&key).expect("sign");
        assert!(tx.solve_work(BITS, 0, 1 << 24).expect("work"));
        let bytes = tx.encode().expect("encode");
        let full = by_key.encode().expect("encode");
        // The key and its 2-byte length give way to the 32-byte account.
        assert_eq!(full.len() - bytes.len(), 2 + key.public_key().to_compact().len() - 32);
        assert_eq!(Transaction::decode(&bytes).expect("decode"), tx);
        assert_eq!(tx.body.sender_id(), by_key.body.sender_id());
        assert_ne!(tx.hash().expect("id"), by_key.hash().expect("id"));

        assert!(matches!(
            tx.check_stateless(CHAIN, BITS, None),
            Err(TxError::UnknownSender { .. })
        ));
        assert_eq!(tx.check_stateless(CHAIN, BITS, Some(key.public_key())), Ok(()));
        // Another account's key cannot stand in, even one that signed it.
        let mut theirs = tx.clone();
        theirs.body.sender = Sender::Account(other.public_key().node_id().0);
        let mut theirs = theirs.body.sign(&other).expect("sign");
        assert!(theirs.solve_work(BITS, 0, 1 << 24).expect("work"));
        assert_eq!(
            theirs.check_stateless(CHAIN, BITS, Some(key.public_key())),
            Err(TxError::BadSignature)
        );

        // An unknown sender form is malformed.
        let mut tag = bytes.clone();
        let at = 2 + CHAIN.len();
        assert_eq!(tag[at], SENDER_ACCOUNT);
        tag[at] = 7;
        match Transaction::decode(&tag) {
            Err(TxError::Malformed(m)) => assert!(m.contains("sender form 7"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn received_bytes_decode_the_same_and_keep_the_signature_in_place() {
        let key = KeyPair::generate(Algorithm::FnDsa1024);
        let bytes = bytes::Bytes::from(signed(&key, vec![4; 10]).encode().expect("encode"));
        let (shared, sighash) = Transaction::decode_shared(&bytes, None).expect("decode");
        assert_eq!(
            (shared.clone(), sighash),
            Transaction::decode_with_sighash(&bytes).expect("decode")
        );
        let at = shared.signature.as_bytes().as_ptr() as usize - bytes.as_ptr() as usize;
        assert!(at < bytes.len(), "the signature is a slice of the received bytes");
        for cut in [1, 100, bytes.len() - 1] {
            assert!(matches!(
                Transaction::decode_shared(&bytes.slice(..cut), None),
                Err(TxError::Malformed(_))
            ));
        }
    }

    #[test]
    fn only_the_senders_key_signs() {
        let key = KeyPair::generate(Algorithm::FnDsa1024);
        let other = KeyPair::generate(Algorithm::FnDsa1024);
        let tx = signed(&key, vec![]);
        assert!(matches!(tx.body.sign(&other), Err(Error::Signing(_))));
    }
}
