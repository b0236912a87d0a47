//! What every daemon runs to live with TrustChain: [`TrustSync`] keeps its
//! verifier's checkpoints and revocations current (gossip as they happen,
//! a poll of the members as a safety net), and [`CertManager`] renews its
//! certificate at two thirds of its lifetime and hot-swaps it into the STOQ
//! endpoint, retrying with backoff and raising an alarm before expiry.

use bytes::Bytes;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use stoq::crypto::KeyPair;
use stoq::pki::Certificate;
use stoq::tls::Identity;
use stoq::Endpoint;

use crate::checkpoint::Checkpoint;
use crate::client::{CaClient, Enrollment};
use crate::messages::topic;
use crate::revocation::SignedRevocation;
use crate::trust::TrustStore;

/// Keeps a [`TrustStore`] current.
#[derive(Debug)]
pub struct TrustSync;

impl TrustSync {
    /// Applies gossiped checkpoints and revocations, and polls the members
    /// every `interval`. Runs until `shutdown`.
    pub fn spawn(
        endpoint: Endpoint,
        trust: Arc<TrustStore>,
        interval: Duration,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        Self::spawn_counted(endpoint, trust, interval, shutdown).0
    }

    /// [`TrustSync::spawn`], also returning the number of polls of the
    /// members that succeeded so far: a daemon that is about to dial peers
    /// whose certificates are newer than its bundle waits for the first.
    pub fn spawn_counted(
        endpoint: Endpoint,
        trust: Arc<TrustStore>,
        interval: Duration,
        shutdown: CancellationToken,
    ) -> (tokio::task::JoinHandle<()>, watch::Receiver<u64>) {
        let (synced_tx, synced) = watch::channel(0u64);
        let task = tokio::spawn(async move {
            let gossip = endpoint.gossip();
            let (Ok(mut cps), Ok(mut revs)) = (
                gossip.subscribe(topic::CHECKPOINTS),
                gossip.subscribe(topic::REVOCATIONS),
            ) else {
                warn!("cannot subscribe to TrustChain gossip");
                return;
            };
            let client = CaClient::with_endpoint(endpoint.clone(), trust.bundle().clone());
            let mut tick = tokio::time::interval(interval.max(Duration::from_millis(100)));
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    Some(m) = cps.recv() => apply_checkpoint(&trust, &m.payload),
                    Some(m) = revs.recv() => apply_revocation(&trust, &m.payload),
                    _ = tick.tick() => match client.sync(&trust).await {
                        Ok(_) => synced_tx.send_modify(|n| *n += 1),
                        Err(e) => warn!(error = %e, "TrustChain sync failed; verifying with what is known"),
                    },
                }
            }
        });
        (task, synced)
    }
}

fn apply_checkpoint(trust: &TrustStore, payload: &Bytes) {
    match Checkpoint::decode(payload) {
        Ok(cp) => {
            if let Err(e) = trust.add_checkpoint(cp) {
                warn!(error = %e, "gossiped checkpoint refused");
            }
        }
        Err(e) => warn!(error = %e, "malformed checkpoint on gossip"),
    }
}

fn apply_revocation(trust: &TrustStore, payload: &Bytes) {
    match SignedRevocation::decode(payload) {
        Ok(r) => {
            if let Err(e) = trust.add_revocation(&r) {
                warn!(error = %e, "gossiped revocation refused");
            }
        }
        Err(e) => warn!(error = %e, "malformed revocation on gossip"),
    }
}

/// When and how the manager renews.
#[derive(Debug, Clone)]
pub struct CertManagerConfig {
    /// Fraction of the lifetime after which to renew (2/3).
    pub renew_at: f64,
    /// Wait between receiving the new certificate and presenting it, so
    /// peers have its checkpoint (gossip, or their next poll).
    pub propagation_delay: Duration,
    /// First retry delay; doubles up to `max_retry`.
    pub min_retry: Duration,
    /// Longest retry delay.
    pub max_retry: Duration,
    /// Alarm when less than this fraction of the lifetime remains and
    /// renewal keeps failing.
    pub alarm_at_remaining: f64,
    /// Where to write each new certificate (PEM), if anywhere.
    pub cert_path: Option<PathBuf>,
    /// What to ask for.
    pub enrollment: Enrollment,
}

impl Default for CertManagerConfig {
    fn default() -> Self {
        CertManagerConfig {
            renew_at: 2.0 / 3.0,
            propagation_delay: Duration::from_secs(5),
            min_retry: Duration::from_secs(1),
            max_retry: Duration::from_secs(60),
            alarm_at_remaining: 1.0 / 6.0,
            cert_path: None,
            enrollment: Enrollment::default(),
        }
    }
}

/// The manager's metrics.
#[derive(Debug, Clone, Default)]
pub struct CertManagerMetrics {
    /// Renewals that succeeded.
    pub renewals: Counter,
    /// Renewal attempts that failed.
    pub failures: Counter,
    /// Seconds until the presented certificate expires.
    pub expires_in_seconds: Gauge,
    /// 1 while renewal is failing close to expiry.
    pub alarm: Gauge,
}

impl CertManagerMetrics {
    /// Registers under the `trustchain_cert` prefix.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("trustchain_cert");
        r.register("renewals", "Certificate renewals", self.renewals.clone());
        r.register("renewal_failures", "Failed renewal attempts", self.failures.clone());
        r.register(
            "expires_in_seconds",
            "Seconds until the certificate expires",
            self.expires_in_seconds.clone(),
        );
        r.register("alarm", "1 while renewal fails close to expiry", self.alarm.clone());
    }
}

/// A running certificate manager.
#[derive(Debug)]
pub struct CertManager {
    current: watch::Receiver<Certificate>,
    metrics: CertManagerMetrics,
    task: tokio::task::JoinHandle<()>,
}

impl CertManager {
    /// Starts renewing the certificate `endpoint` presents (held with
    /// `key`). Each renewal keeps the key; the names are the current
    /// certificate's unless the config names others.
    pub fn spawn(
        endpoint: Endpoint,
        key: KeyPair,
        trust: Arc<TrustStore>,
        config: CertManagerConfig,
        shutdown: CancellationToken,
    ) -> crate::Result<Self> {
        let cert = endpoint.tls().current_certificate()?;
        let (tx, rx) = watch::channel(cert);
        let metrics = CertManagerMetrics::default();
        let m = metrics.clone();
        let task = tokio::spawn(async move {
            let mut mgr = Manager {
                client: CaClient::with_endpoint(endpoint.clone(), trust.bundle().clone()),
                endpoint,
                key,
                trust,
                config,
                metrics: m,
                tx,
            };
            mgr.run(shutdown).await;
        });
        Ok(CertManager {
            current: rx,
            metrics,
            task,
        })
    }

    /// The certificate presented now.
    pub fn current(&self) -> Certificate {
        self.current.borrow().clone()
    }

    /// A receiver that sees every new certificate.
    pub fn subscribe(&self) -> watch::Receiver<Certificate> {
        self.current.clone()
    }

    /// The metrics.
    pub fn metrics(&self) -> &CertManagerMetrics {
        &self.metrics
    }

    /// Waits for the manager to stop (after shutdown).
    pub async fn join(self) {
        let _ = self.task.await;
    }
}

struct Manager {
    client: CaClient,
    endpoint: Endpoint,
    key: KeyPair,
    trust: Arc<TrustStore>,
    config: CertManagerConfig,
    metrics: CertManagerMetrics,
    tx: watch::Sender<Certificate>,
}

fn until(t: SystemTime) -> Duration {
    t.duration_since(SystemTime::now()).unwrap_or_default()
}

impl Manager {
    async fn run(&mut self, shutdown: CancellationToken) {
        loop {
            let cert = self.tx.borrow().clone();
            let life = cert
                .not_after()
                .duration_since(cert.not_before())
                .unwrap_or(Duration::from_secs(1));
            self.metrics
                .expires_in_seconds
                .set(until(cert.not_after()).as_secs() as i64);
            let renew_time = cert.not_before() + life.mul_f64(self.config.renew_at.clamp(0.05, 0.95));
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(until(renew_time)) => {}
            }
            let Some(issued) = self.renew_with_retries(&cert, life, &shutdown).await else {
                return;
            };
            let _ = self.trust.add_checkpoint(issued.checkpoint.clone());
            let next = issued.certificate.clone();
            // Leave peers time to learn the new checkpoint while the old
            // certificate is still valid.
            let delay = self.config.propagation_delay.min(until(cert.not_after()) / 2);
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
            }
            match Identity::new(vec![next.clone()], self.key.clone())
                .and_then(|id| self.endpoint.swap_identity(id, None))
            {
                Ok(()) => {
                    self.metrics.renewals.inc();
                    self.metrics.alarm.set(0);
                    if let Some(path) = &self.config.cert_path {
                        if let Err(e) = std::fs::write(path, next.to_pem()) {
                            warn!(path = %path.display(), error = %e, "writing the renewed certificate failed");
                        }
                    }
                    info!(serial = %stoq::crypto::hex(next.serial()), "certificate renewed and swapped in");
                    let _ = self.tx.send(next);
                }
                Err(e) => {
                    error!(error = %e, "renewed certificate could not be installed");
                    self.metrics.failures.inc();
                }
            }
        }
    }

    async fn renew_with_retries(
        &mut self,
        cert: &Certificate,
        life: Duration,
        shutdown: &CancellationToken,
    ) -> Option<crate::messages::Issued> {
        let mut backoff = self.config.min_retry;
        let zone_id = format!(".id.{}", self.client.bundle().zone_suffix());
        let mut what = self.config.enrollment.clone();
        if what.names.is_empty() {
            what.names = cert
                .dns_names()
                .into_iter()
                .filter(|n| !n.ends_with(&zone_id))
                .collect();
        }
        if what.lifetime.is_none() {
            what.lifetime = Some(life);
        }
        loop {
            match self.client.renew(cert, &self.key, &self.key, &what).await {
                Ok(issued) => return Some(issued),
                Err(e) => {
                    self.metrics.failures.inc();
                    let left = until(cert.not_after());
                    self.metrics.expires_in_seconds.set(left.as_secs() as i64);
                    if left.as_secs_f64() < life.as_secs_f64() * self.config.alarm_at_remaining {
                        self.metrics.alarm.set(1);
                        error!(error = %e, expires_in_s = left.as_secs(), "certificate renewal keeps failing and expiry is near");
                    } else {
                        warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "certificate renewal failed");
                    }
                }
            }
            let wait = backoff.min(until(cert.not_after()) / 4).max(Duration::from_millis(100));
            tokio::select! {
                () = shutdown.cancelled() => return None,
                () = tokio::time::sleep(wait) => {}
            }
            backoff = (backoff * 2).min(self.config.max_retry);
        }
    }
}
