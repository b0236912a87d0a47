//! The verifier side: what every daemon keeps to accept TrustChain
//! certificates: verified checkpoints and revocations, and the check STOQ
//! runs on every peer chain.
//!
//! webpki has already verified the issuer's signature and the validity
//! window when [`TrustChainCheck`] runs; it adds: issued by a member of the
//! bundle, logged (inclusion path to a batch root that k members
//! co-signed), and not revoked. Members' own TLS certificates (their bundle
//! key, signed by themselves) are accepted without a log proof: the bundle
//! pins those keys, and members must reach each other before anything can
//! be co-signed.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use stoq::pki::{Certificate, CertificateCheck, VerifiedChain};

use crate::bundle::TrustBundle;
use crate::checkpoint::Checkpoint;
use crate::inclusion::precertificate_of;
use crate::log::root_from_inclusion;
use crate::revocation::{issuer_of, SignedRevocation};
use crate::time::to_ms;
use crate::{Error, Result};

#[derive(Default)]
struct State {
    checkpoints: HashMap<(u16, u64), Arc<Checkpoint>>,
    latest: HashMap<u16, u64>,
    revoked: HashMap<(u16, Vec<u8>), u64>,
    forks_detected: u64,
}

/// Verified checkpoints and revocations, shared by a daemon's verifier, its
/// sync task and its metrics.
pub struct TrustStore {
    bundle: Arc<TrustBundle>,
    state: RwLock<State>,
    /// Counts changes, so waiters wake when a checkpoint or revocation
    /// arrives instead of polling.
    changes: tokio::sync::watch::Sender<u64>,
}

impl std::fmt::Debug for TrustStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.read();
        f.debug_struct("TrustStore")
            .field("checkpoints", &s.checkpoints.len())
            .field("revoked", &s.revoked.len())
            .finish()
    }
}

/// Whether a certificate is one of the members' own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateStatus {
    /// A member's own certificate (bundle-pinned key).
    Member(u16),
    /// An issued certificate, logged in log `log_id` at `leaf_index`.
    Logged {
        /// The log.
        log_id: u16,
        /// The entry.
        leaf_index: u64,
    },
}

impl TrustStore {
    /// An empty store for `bundle`.
    pub fn new(bundle: Arc<TrustBundle>) -> Arc<Self> {
        Arc::new(TrustStore {
            bundle,
            state: RwLock::new(State::default()),
            changes: tokio::sync::watch::Sender::new(0),
        })
    }

    /// A receiver that sees a new value after every new checkpoint or
    /// revocation (e.g. `rx.wait_for(|_| store.is_revoked(..))`).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The bundle.
    pub fn bundle(&self) -> &Arc<TrustBundle> {
        &self.bundle
    }

    /// Verifies and keeps a checkpoint; returns whether it was new. Two
    /// different heads of one log at one size are a fork: refused, counted
    /// and reported.
    pub fn add_checkpoint(&self, cp: Checkpoint) -> Result<bool> {
        let key = (cp.body.log_id, cp.body.tree_size);
        if let Some(have) = self.read().checkpoints.get(&key) {
            if have.body.root == cp.body.root && have.body.batch_root == cp.body.batch_root {
                return Ok(false);
            }
        }
        cp.verify(&self.bundle)?;
        let mut s = self.write();
        if let Some(have) = s.checkpoints.get(&key) {
            if have.body.root != cp.body.root || have.body.batch_root != cp.body.batch_root {
                s.forks_detected += 1;
                return Err(Error::Bundle(format!(
                    "fork detected: two different co-signed heads of log {} at size {}",
                    key.0, key.1
                )));
            }
            return Ok(false);
        }
        let latest = s.latest.entry(key.0).or_default();
        *latest = (*latest).max(key.1);
        s.checkpoints.insert(key, Arc::new(cp));
        drop(s);
        self.changed();
        Ok(true)
    }

    /// Verifies and applies a revocation; returns whether it was new.
    pub fn add_revocation(&self, r: &SignedRevocation) -> Result<bool> {
        r.verify(&self.bundle)?;
        let key = (r.statement.issuer_log, r.statement.serial.clone());
        let new = self.write().revoked.insert(key, r.statement.not_after_ms).is_none();
        if new {
            self.changed();
        }
        Ok(new)
    }

    /// Whether member `issuer`'s certificate `serial` is revoked.
    pub fn is_revoked(&self, issuer: u16, serial: &[u8]) -> bool {
        self.read().revoked.contains_key(&(issuer, serial.to_vec()))
    }

    /// A checkpoint by log and size.
    pub fn checkpoint(&self, log_id: u16, tree_size: u64) -> Option<Arc<Checkpoint>> {
        self.read().checkpoints.get(&(log_id, tree_size)).cloned()
    }

    /// The largest tree size seen per log.
    pub fn latest_sizes(&self) -> Vec<(u16, u64)> {
        let mut v: Vec<_> = self.read().latest.iter().map(|(k, v)| (*k, *v)).collect();
        v.sort_unstable();
        v
    }

    /// The tree sizes of the checkpoints held for `log_id`, ascending.
    pub fn checkpoint_sizes(&self, log_id: u16) -> Vec<u64> {
        let mut v: Vec<u64> = self
            .read()
            .checkpoints
            .keys()
            .filter(|(l, _)| *l == log_id)
            .map(|(_, s)| *s)
            .collect();
        v.sort_unstable();
        v
    }

    /// Counts: checkpoints, revocations, forks detected.
    pub fn counts(&self) -> (usize, usize, u64) {
        let s = self.read();
        (s.checkpoints.len(), s.revoked.len(), s.forks_detected)
    }

    /// Drops checkpoints older than `keep` (no certificate they prove can
    /// still be valid) and revocations of expired certificates.
    pub fn prune(&self, now: SystemTime, keep: Duration) {
        let cutoff = to_ms(now).saturating_sub(u64::try_from(keep.as_millis()).unwrap_or(u64::MAX));
        let now_ms = to_ms(now);
        let mut s = self.write();
        s.checkpoints.retain(|_, cp| cp.body.timestamp_ms >= cutoff);
        s.revoked.retain(|_, not_after| *not_after >= now_ms);
    }

    /// Checks a certificate whose signature and validity webpki verified.
    pub fn verify_certificate(&self, cert: &Certificate) -> Result<CertificateStatus, String> {
        let issuer = issuer_of(&self.bundle, cert).ok_or("not issued by a member of the trust bundle")?;
        let member = self.bundle.member(issuer).ok_or("unknown member")?;
        if cert.public_key() == member.key() {
            return Ok(CertificateStatus::Member(issuer));
        }
        let (proof, leaf) = precertificate_of(cert)
            .map_err(|e| format!("inclusion proof: {e}"))?
            .ok_or("no inclusion proof: the certificate was not logged by TrustChain")?;
        if proof.log_id != issuer {
            return Err(format!(
                "the inclusion proof names log {} but member {} issued the certificate",
                proof.log_id, issuer
            ));
        }
        let cp = self.checkpoint(proof.log_id, proof.tree_size).ok_or_else(|| {
            format!(
                "unknown checkpoint (log {}, size {}): this verifier has not synced it from TrustChain yet",
                proof.log_id, proof.tree_size
            )
        })?;
        let body = &cp.body;
        if proof.leaf_index < body.batch_start || proof.leaf_index >= body.tree_size {
            return Err("the entry is outside the checkpoint's batch".into());
        }
        let root = root_from_inclusion(
            &leaf,
            proof.leaf_index - body.batch_start,
            body.batch_len(),
            &proof.path,
        )
        .map_err(|e| format!("inclusion proof: {e}"))?;
        if root != body.batch_root {
            return Err("inclusion proof does not lead to the co-signed batch root".into());
        }
        if self.is_revoked(issuer, cert.serial()) {
            return Err("certificate is revoked".into());
        }
        Ok(CertificateStatus::Logged {
            log_id: proof.log_id,
            leaf_index: proof.leaf_index,
        })
    }

    /// The STOQ check backed by this store.
    pub fn check(self: &Arc<Self>) -> Arc<dyn CertificateCheck> {
        Arc::new(TrustChainCheck(self.clone()))
    }
}

/// The [`CertificateCheck`] STOQ endpoints install.
#[derive(Debug)]
pub struct TrustChainCheck(pub Arc<TrustStore>);

impl CertificateCheck for TrustChainCheck {
    fn name(&self) -> &'static str {
        "trustchain"
    }

    fn check(&self, chain: &VerifiedChain, _now: SystemTime) -> Result<(), String> {
        self.0.verify_certificate(&chain.end_entity).map(|_| ())
    }
}
