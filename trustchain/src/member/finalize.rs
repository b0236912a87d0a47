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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tracing::{debug, info, warn};

use stoq::crypto::merkle_leaf_hash;
use stoq::crypto::PublicKey;
use stoq::pki::{sign_tbs_for, tbs_add_extension, Certificate};

use super::pipeline::{token_of, LogEntry, Outcome};
use super::replicate::feed_row;
use super::zone::NameRecord;
use super::Shared;
use crate::checkpoint::Checkpoint;
use crate::inclusion::InclusionProof;
use crate::log::MerkleTree;
use crate::messages::{topic, Issued};
use crate::revocation::SignedRevocation;
use crate::store::BatchCommit;
use crate::witness::{BatchItem, CosignRequest};
use crate::Error;

/// The log entries of a batch whose jobs are gone (a pending batch).
pub(super) fn batch_leaves(req: &CosignRequest) -> Vec<LogEntry> {
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
///
/// Workers take the next certificate as they go rather than a fixed share,
/// so a worker slowed by the runtime's threads does not leave the other
/// cores idle at the end of the round; each builds its certificates'
/// bodies too, so the pipeline task does no per-certificate work here.
pub(super) async fn sign_certificates(
    shared: &Arc<Shared>,
    req: &CosignRequest,
    entries: &[LogEntry],
) -> Result<Vec<Certificate>, Error> {
    let body = &req.body;
    let batch_tree = MerkleTree::from_leaf_hashes(entries.iter().map(|(_, h)| *h));
    // (leaf index in the batch, precertificate, subject key)
    let precerts: Vec<(u64, Vec<u8>, PublicKey)> = req
        .items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| match item {
            BatchItem::Issue { precert, request } => Some((i as u64, precert.clone(), request.body.subject.clone())),
            BatchItem::Revoke(_) => None,
        })
        .collect();
    let count = precerts.len();
    let work = Arc::new((precerts, batch_tree, body.log_id, body.tree_size, body.batch_start));
    let next = Arc::new(AtomicUsize::new(0));
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mut tasks = Vec::new();
    for _ in 0..cores.min(count) {
        let (shared, work, next) = (shared.clone(), work.clone(), next.clone());
        tasks.push(tokio::task::spawn_blocking(move || {
            let (precerts, batch_tree, log_id, tree_size, batch_start) = &*work;
            let mut signed = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let Some((i, precert, subject)) = precerts.get(n) else {
                    break;
                };
                let proof = InclusionProof {
                    log_id: *log_id,
                    tree_size: *tree_size,
                    leaf_index: batch_start + i,
                    path: batch_tree.inclusion_proof(*i, batch_tree.size())?,
                };
                let tbs = tbs_add_extension(precert, proof.to_extension()?)?;
                signed.push((n, sign_tbs_for(&tbs, &shared.issuer, subject)?));
            }
            Ok::<_, Error>(signed)
        }));
    }
    let mut out: Vec<Option<Certificate>> = (0..count).map(|_| None).collect();
    for task in tasks {
        let part = task
            .await
            .map_err(|e| Error::Store(format!("signing task failed: {e}")))??;
        for (n, cert) in part {
            out[n] = Some(cert);
        }
    }
    out.into_iter()
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| Error::Store("a certificate was not signed".into()))
}

/// Builds the certificates' and revocations' outcomes of a co-signed batch
/// and commits everything in one transaction.
pub(super) async fn commit(
    shared: &Arc<Shared>,
    req: &CosignRequest,
    cp: &Checkpoint,
    certificates: Vec<Certificate>,
    entries: Vec<LogEntry>,
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
                commit
                    .certificates
                    .push((body.batch_start + i as u64, cert.serial().to_vec(), cert.der().to_vec()));
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
