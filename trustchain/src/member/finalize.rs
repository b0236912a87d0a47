//! The end of a round: certificates signed on every core, then the batch
//! (entries, checkpoint, certificates, tokens, revocations, zone) committed
//! in one transaction, then the zone and trust store updated and the
//! checkpoint and revocations gossiped. (The pipeline puts the entries in
//! the in-memory tree before the commit: the next round builds on them.)
//!
//! Signing and the commit run on tokio's blocking pool: the pipeline task
//! awaits them, so the runtime's workers stay free for the handlers and
//! the QUIC drivers that feed the next batch.

use bytes::Bytes;
use std::sync::Arc;
use std::time::Instant;
use tracing::{debug, info, warn};

use stoq::crypto::merkle_leaf_hash;
use stoq::pki::{sign_tbs, tbs_add_extension, Certificate};

use super::pipeline::{token_of, Outcome};
use super::replicate::feed_row;
use super::zone::NameRecord;
use super::Shared;
use crate::checkpoint::Checkpoint;
use crate::inclusion::InclusionProof;
use crate::log::{Hash, MerkleTree};
use crate::messages::{topic, Issued};
use crate::revocation::SignedRevocation;
use crate::store::BatchCommit;
use crate::witness::{BatchItem, CosignRequest};
use crate::Error;

pub(super) fn batch_leaves(req: &CosignRequest) -> Vec<(Vec<u8>, Hash)> {
    req.items
        .iter()
        .map(|i| {
            let e = i.log_entry();
            let h = merkle_leaf_hash(&e);
            (e, h)
        })
        .collect()
}

/// Adds the inclusion proofs and signs the batch's certificates, in log
/// order, on every core. The proofs lead to the batch root, which the
/// request already fixes, so this runs while the witnesses sign the head.
pub(super) async fn sign_certificates(shared: &Arc<Shared>, req: &CosignRequest) -> Result<Vec<Certificate>, Error> {
    let body = &req.body;
    let batch_tree = MerkleTree::from_leaf_hashes(batch_leaves(req).into_iter().map(|(_, h)| h));
    let mut bodies = Vec::new();
    for (i, item) in req.items.iter().enumerate() {
        if let BatchItem::Issue { precert, .. } = item {
            let proof = InclusionProof {
                log_id: body.log_id,
                tree_size: body.tree_size,
                leaf_index: body.batch_start + i as u64,
                path: batch_tree.inclusion_proof(i as u64, batch_tree.size())?,
            };
            bodies.push(tbs_add_extension(precert, proof.to_extension()?)?);
        }
    }
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let chunk = bodies.len().div_ceil(cores).max(1);
    let mut tasks = Vec::new();
    while !bodies.is_empty() {
        let part: Vec<Vec<u8>> = bodies.drain(..chunk.min(bodies.len())).collect();
        let shared = shared.clone();
        tasks.push(tokio::task::spawn_blocking(move || {
            part.iter()
                .map(|tbs| sign_tbs(tbs, &shared.issuer).map_err(Error::from))
                .collect::<Result<Vec<_>, _>>()
        }));
    }
    let mut out = Vec::new();
    for task in tasks {
        let part = task
            .await
            .map_err(|e| Error::Store(format!("signing task failed: {e}")))??;
        out.extend(part);
    }
    Ok(out)
}

/// Builds the certificates' and revocations' outcomes of a co-signed batch
/// and commits everything in one transaction.
pub(super) async fn commit(
    shared: &Arc<Shared>,
    req: &CosignRequest,
    cp: &Checkpoint,
    certificates: Vec<Certificate>,
    entries: Vec<(Vec<u8>, Hash)>,
) -> Result<Vec<Outcome>, Error> {
    let body = &cp.body;
    let mut commit = BatchCommit {
        start: body.batch_start,
        checkpoint: Some(cp.clone()),
        entries,
        ..Default::default()
    };
    // The zone decides which records win over what it holds (a newer
    // certificate for the same name issued by another member, say) under
    // its writer lock, so replication cannot interleave.
    let zone = shared.zone.update().await;
    let mut outcomes = Vec::with_capacity(req.items.len());
    let mut zone_set: Vec<(String, NameRecord)> = Vec::new();
    let mut certificates = certificates.into_iter();
    for (i, item) in req.items.iter().enumerate() {
        match item {
            BatchItem::Issue { request, .. } => {
                let cert = certificates
                    .next()
                    .ok_or_else(|| Error::Store("certificate count mismatch".into()))?;
                commit.certificates.push((cert.serial().to_vec(), cert.der().to_vec()));
                if let Some(id) = token_of(item) {
                    commit.tokens_used.push(id);
                }
                commit.zone_feed.push((
                    body.batch_start + i as u64,
                    feed_row(cert.serial(), request.body.address, &request.body.services),
                ));
                zone_set.extend(NameRecord::for_certificate(
                    &cert,
                    shared.index,
                    request.body.address,
                    &request.body.services,
                ));
                outcomes.push(Outcome::Issued(Issued {
                    certificate: cert,
                    checkpoint: cp.clone(),
                }));
            }
            BatchItem::Revoke(r) => {
                let signed = SignedRevocation::sign(r.statement.clone(), shared.index, &shared.key)?;
                zone_set.extend(shared.zone.tombstones_for(&r.statement));
                commit.revocations.push(signed.clone());
                outcomes.push(Outcome::Revoked(signed));
            }
        }
    }
    let zone_set = zone.winners(zone_set);
    commit.zone_set = zone_set.iter().map(|(h, r)| (h.clone(), r.encode())).collect();
    let t = Instant::now();
    let commit = {
        let shared = shared.clone();
        tokio::task::spawn_blocking(move || shared.store.commit_batch(&commit).map(|()| commit))
            .await
            .map_err(|e| Error::Store(format!("commit task failed: {e}")))??
    };
    debug!(us = t.elapsed().as_micros() as u64, "batch written");
    zone.apply(&zone_set, &commit.zone_remove);
    drop(zone);
    shared.metrics.log_size.set(body.tree_size as i64);
    if let Err(e) = shared.trust.add_checkpoint(cp.clone()) {
        warn!(error = %e, "own checkpoint refused by the trust store");
    }
    let gossip = shared.endpoint.gossip();
    let _ = gossip.publish(topic::CHECKPOINTS, Bytes::from(cp.encode()));
    for r in &commit.revocations {
        let _ = shared.trust.add_revocation(r);
        let _ = gossip.publish(topic::REVOCATIONS, Bytes::from(r.encode()));
        shared.metrics.revoked.inc();
    }
    let issued = commit.certificates.len() as u64;
    shared.metrics.issued.inc_by(issued);
    if issued > 0 {
        info!(log_size = body.tree_size, issued, "certificates issued");
    }
    Ok(outcomes)
}
