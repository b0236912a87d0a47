//! Commit certificates: precommit signatures over a block hash by more
//! than two thirds of the voting power of the set that had to commit it.
//!
//! With one validator the certificate holds its one signature; with many,
//! the BFT engine gathers the precommits. Either way a node that syncs a
//! block checks it the same way, so it needs nothing but the validator set
//! of the parent state.

use stoq::crypto::{KeyPair, Signature};

use crate::codec::{Hash, ReadExt, Reader, WriteExt, Writer};
use crate::error::{Error, Result};
use crate::modules::staking::ValidatorSet;
use crate::types::MAX_COMMIT_BYTES;

const VOTE_DOMAIN: &[u8] = b"hypermesh/vote/v1";

/// Most signatures a certificate may carry.
pub const MAX_COMMIT_SIGNATURES: usize = 1_000;

/// What a vote is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum VoteKind {
    /// First round of voting.
    Prevote = 1,
    /// Second round; a quorum of precommits commits the block.
    Precommit = 2,
}

/// The bytes a validator signs to vote `kind` for `block_hash` (`None`:
/// nil) at `height` and `round` of `chain_id`.
pub fn vote_signing_bytes(
    chain_id: &str,
    kind: VoteKind,
    height: u64,
    round: u32,
    block_hash: Option<&Hash>,
) -> Vec<u8> {
    let mut w = Writer::with_domain(VOTE_DOMAIN);
    w.str8(chain_id).u8(kind as u8).u64(height).u32(round);
    match block_hash {
        Some(h) => {
            w.u8(1).hash(h);
        }
        None => {
            w.u8(0);
        }
    }
    w.finish()
}

/// One validator's precommit in a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitSignature {
    /// Its index in the validator set.
    pub validator: u16,
    /// Its FN-DSA signature over the precommit.
    pub signature: Signature,
}

/// Precommits for one block by a quorum of its validator set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitCertificate {
    /// The block's height.
    pub height: u64,
    /// The round the block was decided in.
    pub round: u32,
    /// The block's header hash.
    pub block_hash: Hash,
    /// Signatures, by strictly increasing validator index.
    pub signatures: Vec<CommitSignature>,
}

impl CommitCertificate {
    /// The precommit of `key` for a block, as its entry in `set`.
    pub fn sign(
        chain_id: &str,
        key: &KeyPair,
        set: &ValidatorSet,
        height: u64,
        round: u32,
        block_hash: &Hash,
    ) -> Result<CommitSignature> {
        let index = set
            .0
            .iter()
            .position(|(_, k, _)| k == key.public_key())
            .ok_or_else(|| Error::Signing("this key is not in the validator set".into()))?;
        let msg = vote_signing_bytes(chain_id, VoteKind::Precommit, height, round, Some(block_hash));
        Ok(CommitSignature {
            validator: u16::try_from(index).map_err(|_| Error::Signing("validator index over u16".into()))?,
            signature: key.sign(&msg).map_err(|e| Error::Signing(e.to_string()))?,
        })
    }

    /// The canonical encoding (what a block's `commit` field holds).
    pub fn encode(&self) -> Result<Vec<u8>> {
        if self.signatures.len() > MAX_COMMIT_SIGNATURES {
            return Err(Error::Encode {
                what: "commit certificate",
                reason: format!("{} signatures exceed {MAX_COMMIT_SIGNATURES}", self.signatures.len()),
            });
        }
        let mut w = Writer::new();
        w.u8(crate::types::ENCODING_VERSION)
            .u64(self.height)
            .u32(self.round)
            .hash(&self.block_hash)
            .u32(self.signatures.len() as u32);
        for s in &self.signatures {
            w.u16(s.validator).sig(&s.signature);
        }
        let out = w.finish();
        crate::codec::check_len("commit certificate", out.len(), MAX_COMMIT_BYTES)?;
        Ok(out)
    }

    /// Decodes a certificate (checks only the encoding).
    pub fn decode(buf: &[u8]) -> Result<Self> {
        if buf.len() > MAX_COMMIT_BYTES {
            return Err(Error::Decode {
                what: "commit certificate",
                reason: format!("{} bytes exceed {MAX_COMMIT_BYTES}", buf.len()),
            });
        }
        let mut r = Reader::new(buf, "commit certificate");
        let version = r.u8()?;
        if version != crate::types::ENCODING_VERSION {
            return Err(Error::Decode {
                what: "commit certificate",
                reason: format!("encoding version {version}"),
            });
        }
        let height = r.u64()?;
        let round = r.u32()?;
        let block_hash = r.hash()?;
        let n = r.count32(MAX_COMMIT_SIGNATURES)?;
        let mut signatures = Vec::with_capacity(n.min(r.remaining() / 4));
        for _ in 0..n {
            signatures.push(CommitSignature {
                validator: r.u16()?,
                signature: r.sig()?,
            });
        }
        r.finish()?;
        Ok(CommitCertificate {
            height,
            round,
            block_hash,
            signatures,
        })
    }

    /// Checks that the certificate commits `block_hash` at `height` for
    /// `chain_id`: distinct members of `set`, each signature valid, and
    /// together more than two thirds of its power. Returns that power.
    pub fn verify(&self, chain_id: &str, set: &ValidatorSet, height: u64, block_hash: &Hash) -> Result<u128> {
        let bad = |m: String| Err(Error::InvalidBlock(format!("commit certificate: {m}")));
        if self.height != height || &self.block_hash != block_hash {
            return bad(format!("it is for another block (height {})", self.height));
        }
        let msg = vote_signing_bytes(chain_id, VoteKind::Precommit, height, self.round, Some(block_hash));
        let mut power: u128 = 0;
        let mut last: Option<u16> = None;
        for s in &self.signatures {
            if last.is_some_and(|l| s.validator <= l) {
                return bad("validator indexes must strictly increase".into());
            }
            last = Some(s.validator);
            let Some((_, key, p)) = set.0.get(usize::from(s.validator)) else {
                return bad(format!("validator {} is not in the set", s.validator));
            };
            if key.verify(&msg, &s.signature).is_err() {
                return bad(format!("the signature of validator {} does not verify", s.validator));
            }
            power = power.saturating_add(*p);
        }
        let total = set.total_power();
        if total == 0 || power.saturating_mul(3) <= total.saturating_mul(2) {
            return bad(format!("power {power} of {total} is not more than two thirds"));
        }
        Ok(power)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stoq::crypto::Algorithm;

    fn set(keys: &[&KeyPair], powers: &[u128]) -> ValidatorSet {
        ValidatorSet(
            keys.iter()
                .zip(powers)
                .map(|(k, p)| (k.public_key().node_id().0, k.public_key().clone(), *p))
                .collect(),
        )
    }

    #[test]
    fn a_quorum_commits_and_anything_less_or_forged_does_not() {
        let keys: Vec<KeyPair> = (0..4).map(|_| KeyPair::generate(Algorithm::FnDsa1024)).collect();
        let refs: Vec<&KeyPair> = keys.iter().collect();
        let vs = set(&refs, &[10, 10, 10, 10]);
        let hash = [7u8; 32];
        let sig = |i: usize| CommitCertificate::sign("c", &keys[i], &vs, 5, 0, &hash).expect("sign");
        let cert = CommitCertificate {
            height: 5,
            round: 0,
            block_hash: hash,
            signatures: vec![sig(0), sig(1), sig(3)],
        };
        assert_eq!(cert.verify("c", &vs, 5, &hash).expect("quorum"), 30);
        let round_trip = CommitCertificate::decode(&cert.encode().expect("encode")).expect("decode");
        assert_eq!(round_trip, cert);

        let mut two = cert.clone();
        two.signatures.pop();
        assert!(two.verify("c", &vs, 5, &hash).is_err(), "20 of 40 is not a quorum");
        let mut dup = cert.clone();
        dup.signatures[2] = dup.signatures[1].clone();
        assert!(dup.verify("c", &vs, 5, &hash).is_err(), "a validator counts once");
        assert!(cert.verify("other-chain", &vs, 5, &hash).is_err());
        assert!(cert.verify("c", &vs, 6, &hash).is_err());
        assert!(cert.verify("c", &vs, 5, &[8; 32]).is_err());
        let mut forged = cert.clone();
        forged.signatures[0].validator = 2;
        forged.signatures.sort_by_key(|s| s.validator);
        assert!(
            forged.verify("c", &vs, 5, &hash).is_err(),
            "signature under another key"
        );
        let outsider = KeyPair::generate(Algorithm::FnDsa1024);
        assert!(CommitCertificate::sign("c", &outsider, &vs, 5, 0, &hash).is_err());
        let bytes = cert.encode().expect("encode");
        assert!(CommitCertificate::decode(&bytes[..bytes.len() - 1]).is_err());
    }
}
