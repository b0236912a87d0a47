//! Checkpoints: signed tree heads of a member's log, co-signed by at least
//! k members acting as witnesses.
//!
//! A checkpoint commits to the whole log (`tree_size`, `root`) and to the
//! batch of entries it added (`batch_start..tree_size`, `batch_root`).
//! Certificates prove their inclusion in the batch root with a short path
//! (log2 of the batch size), so the co-signatures, 1,280 bytes each, never
//! travel in a certificate: verifiers fetch each checkpoint once (gossip or
//! RPC) and check its k signatures once.

use stoq::crypto::{KeyPair, Signature};

use crate::bundle::{TrustBundle, MAX_MEMBERS};
use crate::error::WireError;
use crate::log::Hash;
use crate::wire::{Reader, Writer};
use crate::{Error, Result};

/// What the members sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointBody {
    /// The bundle this CA is.
    pub bundle_id: [u8; 32],
    /// The log (= the index of the member operating it).
    pub log_id: u16,
    /// Entries in the log.
    pub tree_size: u64,
    /// The log's root at `tree_size`.
    pub root: Hash,
    /// When the log operator made the head (ms since the Unix epoch).
    pub timestamp_ms: u64,
    /// First entry of the batch this head adds.
    pub batch_start: u64,
    /// Merkle root of the batch's entries alone.
    pub batch_root: Hash,
}

impl CheckpointBody {
    const DOMAIN: &'static [u8] = b"trustchain/checkpoint/v1";

    /// The bytes a member signs.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_domain(Self::DOMAIN);
        self.write(&mut w);
        w.finish()
    }

    fn write(&self, w: &mut Writer) {
        w.fixed(&self.bundle_id)
            .u16(self.log_id)
            .u64(self.tree_size)
            .fixed(&self.root)
            .u64(self.timestamp_ms)
            .u64(self.batch_start)
            .fixed(&self.batch_root);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let body = CheckpointBody {
            bundle_id: r.array()?,
            log_id: r.u16()?,
            tree_size: r.u64()?,
            root: r.array()?,
            timestamp_ms: r.u64()?,
            batch_start: r.u64()?,
            batch_root: r.array()?,
        };
        if body.batch_start >= body.tree_size {
            return Err(WireError {
                what: "checkpoint",
                reason: "an empty batch: batch_start must be below tree_size".into(),
            });
        }
        Ok(body)
    }

    /// Entries in the batch.
    pub fn batch_len(&self) -> u64 {
        self.tree_size - self.batch_start
    }

    /// Encodes the body alone.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.write(&mut w);
        w.finish()
    }

    /// Decodes a body alone.
    pub fn decode(buf: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(buf, "checkpoint body");
        let body = CheckpointBody::read(&mut r)?;
        r.finish()?;
        Ok(body)
    }

    /// Signs the body as member `index`.
    pub fn sign(&self, index: u16, key: &KeyPair) -> Result<Cosignature> {
        Ok(Cosignature {
            member: index,
            signature: key.sign(&self.signed_bytes())?,
        })
    }
}

/// One member's signature on a checkpoint body.
#[derive(Debug, Clone, PartialEq)]
pub struct Cosignature {
    /// The signing member.
    pub member: u16,
    /// Its signature over [`CheckpointBody::signed_bytes`].
    pub signature: Signature,
}

/// A checkpoint with its signatures.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// The signed head.
    pub body: CheckpointBody,
    /// Signatures of distinct members, the log operator's first.
    pub signatures: Vec<Cosignature>,
}

impl Checkpoint {
    /// Encodes the checkpoint.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(1);
        self.body.write(&mut w);
        w.u8(self.signatures.len() as u8);
        for s in &self.signatures {
            w.u16(s.member).sig(&s.signature);
        }
        w.finish()
    }

    /// Decodes a checkpoint (signatures are not verified here).
    pub fn decode(buf: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(buf, "checkpoint");
        if r.u8()? != 1 {
            return Err(WireError {
                what: "checkpoint",
                reason: "unknown version".into(),
            });
        }
        let body = CheckpointBody::read(&mut r)?;
        let n = r.count(MAX_MEMBERS)?;
        let mut signatures = Vec::with_capacity(n);
        for _ in 0..n {
            signatures.push(Cosignature {
                member: r.u16()?,
                signature: r.sig()?,
            });
        }
        r.finish()?;
        Ok(Checkpoint { body, signatures })
    }

    /// Checks the checkpoint against `bundle`: the right CA, the log
    /// operator's own signature, and at least k valid signatures of
    /// distinct members. Returns the number of valid signatures.
    pub fn verify(&self, bundle: &TrustBundle) -> Result<usize> {
        let body = &self.body;
        if body.bundle_id != bundle.id() {
            return Err(Error::Bundle("checkpoint belongs to another trust bundle".into()));
        }
        if bundle.member(body.log_id).is_none() {
            return Err(Error::Bundle(format!("checkpoint of unknown log {}", body.log_id)));
        }
        let msg = body.signed_bytes();
        let mut seen = 0u64;
        let mut valid = 0usize;
        let mut operator_signed = false;
        for s in &self.signatures {
            let Some(member) = bundle.member(s.member) else {
                return Err(Error::Bundle(format!("signature by unknown member {}", s.member)));
            };
            let bit = 1u64 << s.member;
            if seen & bit != 0 {
                return Err(Error::Bundle(format!("member {} signed twice", member.name)));
            }
            seen |= bit;
            if member.key().verify(&msg, &s.signature).is_ok() {
                valid += 1;
                operator_signed |= s.member == body.log_id;
            }
        }
        if !operator_signed {
            return Err(Error::Bundle(format!(
                "checkpoint lacks a valid signature of its log operator (member {})",
                body.log_id
            )));
        }
        if valid < bundle.threshold() {
            return Err(Error::Bundle(format!(
                "checkpoint has {valid} valid member signatures, {} needed",
                bundle.threshold()
            )));
        }
        Ok(valid)
    }
}
