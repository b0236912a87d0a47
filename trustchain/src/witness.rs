//! Co-signing: what a log operator sends the other members, and the
//! witness check each of them runs before signing a new head.
//!
//! A witness remembers the last head it signed for each log. It signs a new
//! head only if (1) the head it last saw is a prefix of the new one (a
//! consistency proof from its size to the batch start, against the root
//! the operator claims there), (2) appending the batch's entries to the
//! operator's compact frontier at the batch start gives exactly the new
//! root and the batch root, and (3) every entry passes its own policy
//! check. Asked again for the same head it signs again (a retry after a
//! lost reply); asked for a different head at or below a size it already
//! signed, it refuses: that would be a fork. A split view therefore needs
//! a witness to sign twice, and k > n/2 means every two quorums share one.

use stoq::crypto::merkle_leaf_hash;

use crate::checkpoint::CheckpointBody;
use crate::error::{Refusal, WireError};
use crate::inclusion::precertificate_entry;
use crate::log::{verify_consistency, Frontier, Hash, MerkleTree, MAX_PROOF_LEN};
use crate::request::EnrollmentRequest;
use crate::revocation::RevocationRequest;
use crate::wire::{Reader, Writer};

/// Most entries in one batch.
pub const MAX_BATCH: usize = 256;

/// One entry of a batch, with what a co-signer needs to re-check it.
#[derive(Debug, Clone, PartialEq)]
pub enum BatchItem {
    /// A certificate: the request and the precertificate body logged.
    Issue {
        /// The request, as the subject signed it.
        request: EnrollmentRequest,
        /// The DER TBSCertificate without the inclusion proof.
        precert: Vec<u8>,
    },
    /// A revocation.
    Revoke(RevocationRequest),
}

impl BatchItem {
    /// The log entry this item adds.
    pub fn log_entry(&self) -> Vec<u8> {
        match self {
            BatchItem::Issue { precert, .. } => precertificate_entry(precert),
            BatchItem::Revoke(r) => r.statement.log_entry(),
        }
    }

    fn write(&self, w: &mut Writer) {
        match self {
            BatchItem::Issue { request, precert } => {
                w.u8(1).bytes32(&request.encode()).bytes32(precert);
            }
            BatchItem::Revoke(r) => {
                w.u8(2).bytes32(&r.encode());
            }
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        match r.u8()? {
            1 => Ok(BatchItem::Issue {
                request: EnrollmentRequest::decode(r.bytes32(crate::request::MAX_REQUEST_LEN)?)?,
                precert: r.bytes32(16 * 1024)?.to_vec(),
            }),
            2 => Ok(BatchItem::Revoke(RevocationRequest::decode(r.bytes32(16 * 1024)?)?)),
            other => Err(WireError {
                what: "batch item",
                reason: format!("unknown item type {other}"),
            }),
        }
    }
}

/// A head a witness saw (and signed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Tree size.
    pub size: u64,
    /// Root at that size.
    pub root: Hash,
    /// The head's timestamp (ms).
    pub timestamp_ms: u64,
}

impl Head {
    /// Encoding for storage.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u64(self.size).fixed(&self.root).u64(self.timestamp_ms);
        w.finish()
    }

    /// Decoding from storage.
    pub fn decode(buf: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(buf, "witness head");
        let h = Head {
            size: r.u64()?,
            root: r.array()?,
            timestamp_ms: r.u64()?,
        };
        r.finish()?;
        Ok(h)
    }
}

/// What a log operator asks a witness to co-sign.
#[derive(Debug, Clone, PartialEq)]
pub struct CosignRequest {
    /// The new head.
    pub body: CheckpointBody,
    /// The log's root at `body.batch_start`.
    pub prev_root: Hash,
    /// The log's compact frontier at `body.batch_start`.
    pub prev_frontier: Frontier,
    /// The size the consistency proof starts from (the witness's last
    /// head as the operator believes it).
    pub consistency_from: u64,
    /// Consistency proof from `consistency_from` to `body.batch_start`.
    pub consistency: Vec<Hash>,
    /// The batch, in log order.
    pub items: Vec<BatchItem>,
}

impl CosignRequest {
    /// Binary form.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(1).bytes16(&self.body.encode()).fixed(&self.prev_root);
        w.bytes16(&self.prev_frontier.to_bytes());
        w.u64(self.consistency_from).u8(self.consistency.len() as u8);
        for h in &self.consistency {
            w.fixed(h);
        }
        w.u16(self.items.len() as u16);
        for i in &self.items {
            i.write(&mut w);
        }
        w.finish()
    }

    /// Parses the binary form.
    pub fn decode(buf: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(buf, "co-sign request");
        if r.u8()? != 1 {
            return Err(WireError {
                what: "co-sign request",
                reason: "unknown version".into(),
            });
        }
        let body = CheckpointBody::decode(r.bytes16(1024)?)?;
        let prev_root = r.array()?;
        let prev_frontier = Frontier::from_bytes(r.bytes16(64 * 33 + 16)?).map_err(|e| WireError {
            what: "co-sign request",
            reason: e.to_string(),
        })?;
        let consistency_from = r.u64()?;
        let n = r.count(MAX_PROOF_LEN)?;
        let mut consistency = Vec::with_capacity(n);
        for _ in 0..n {
            consistency.push(r.array()?);
        }
        let n = usize::from(r.u16()?);
        if n == 0 || n > MAX_BATCH {
            return Err(WireError {
                what: "co-sign request",
                reason: format!("a batch holds 1 to {MAX_BATCH} items, not {n}"),
            });
        }
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            items.push(BatchItem::read(&mut r)?);
        }
        r.finish()?;
        Ok(CosignRequest {
            body,
            prev_root,
            prev_frontier,
            consistency_from,
            consistency,
            items,
        })
    }
}

/// The outcome of the structural witness check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WitnessVerdict {
    /// A new head extending the last one seen.
    Extends(Head),
    /// Exactly the head signed last time (a retry).
    Repeat(Head),
}

/// Checks that `req` extends `last` consistently and that its batch
/// produces the claimed roots. Entry policy checks are the caller's.
pub fn check_extension(last: Option<&Head>, req: &CosignRequest) -> Result<WitnessVerdict, Refusal> {
    let body = &req.body;
    let new = Head {
        size: body.tree_size,
        root: body.root,
        timestamp_ms: body.timestamp_ms,
    };
    if let Some(last) = last {
        if body.tree_size == last.size && body.root == last.root {
            return Ok(WitnessVerdict::Repeat(*last));
        }
        if body.batch_start < last.size {
            return Err(Refusal::Witness(format!(
                "fork: already signed a head of size {} and this batch starts at {}",
                last.size, body.batch_start
            )));
        }
        if body.timestamp_ms < last.timestamp_ms {
            return Err(Refusal::Witness("timestamp goes backwards".into()));
        }
        if req.consistency_from != last.size {
            return Err(Refusal::Witness(format!(
                "stale view: my last head has size {}",
                last.size
            )));
        }
        verify_consistency(
            last.size,
            body.batch_start,
            &last.root,
            &req.prev_root,
            &req.consistency,
        )
        .map_err(|e| Refusal::Witness(format!("not consistent with the last head I signed: {e}")))?;
    }
    if req.prev_frontier.size() != body.batch_start || req.prev_frontier.root() != req.prev_root {
        return Err(Refusal::Witness("the frontier does not match the previous head".into()));
    }
    if req.items.len() as u64 != body.batch_len() {
        return Err(Refusal::Witness("the batch length differs from the head".into()));
    }
    let leaves: Vec<Hash> = req.items.iter().map(|i| merkle_leaf_hash(&i.log_entry())).collect();
    let mut frontier = req.prev_frontier.clone();
    for leaf in &leaves {
        frontier.push(*leaf);
    }
    if frontier.root() != body.root {
        return Err(Refusal::Witness("the batch does not produce the claimed root".into()));
    }
    if MerkleTree::from_leaf_hashes(leaves).root() != body.batch_root {
        return Err(Refusal::Witness(
            "the batch does not produce the claimed batch root".into(),
        ));
    }
    Ok(WitnessVerdict::Extends(new))
}
