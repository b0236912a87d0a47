//! Handshakes per second, `CONCURRENCY` in flight (and `MANY` for the full
//! PQ handshake), each a fresh connection from its own client-only quinn
//! endpoint, closed `CLOSE_AFTER` after it is established (long enough for
//! the session tickets to arrive). Rate = handshakes completed before the
//! deadline / duration.
//!
//! - STOQ full: mutual FN-DSA-1024 + X25519MLKEM768 handshakes against a
//!   `stoq::Endpoint` (rate limiter opened up), client configuration
//!   `TlsContext::without_resumption().quic_client_config()`.
//! - Bound: single-thread FN-DSA-1024 signatures/s (measured now) x cores /
//!   2 signatures per mutual handshake.
//! - Classical: plain quinn + rustls default provider, Ed25519 server
//!   certificate, no client authentication, resumption disabled.
//! - STOQ resumed: the same client with resumption on, after one connection
//!   filled the ticket cache. Resumption is checked by counting calls of the
//!   client's server-certificate verifier (a resumed handshake skips it).

use anyhow::Context as _;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::pki::{self, BenchPki, Classical, CLIENT_NAME, SERVER_NAME};
use super::report::{progress, udp6_rcvbuf_drops, CpuMeter, Report, Row};
use super::{crypto, Settings};
use stoq::crypto::Algorithm;
use stoq::tls::{signature_algorithms, StackVerifier, TlsContext};

/// Handshakes in flight at once: enough to keep 2 cores busy (1.7-1.9
/// cores measured), few enough that the server socket's default receive
/// buffer does not overflow.
const CONCURRENCY: usize = 4;
/// The "many in flight" run: with 16, the server's UDP receive buffer
/// (kernel default 208 KiB: neither STOQ nor quinn raise it) overflows and
/// handshakes wait for loss recovery; a 4 MiB buffer removed the drops on a
/// plain quinn server.
const MANY: usize = 16;
/// How long an established connection stays open before the client closes
/// it (the server's NewSessionTicket arrives after the handshake).
const CLOSE_AFTER: Duration = Duration::from_millis(20);
/// How long a handshake under way at the deadline may still take.
const GRACE: Duration = Duration::from_secs(2);
/// Give up when this many handshakes failed.
const MAX_FAILURES: u64 = 50;

/// Outcome of one handshake run.
struct Hammer {
    per_sec: f64,
    cores_busy: f64,
    drops: Option<u64>,
    ok: u64,
    failed: u64,
}

/// Runs the handshake measurement.
pub(crate) async fn run(settings: &Settings, report: &mut Report) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    progress("handshake: FN-DSA-1024 signing rate, one thread");
    let sign = crypto::fn_dsa_sign_rate(settings.duration).await?;
    let bound = sign * cores as f64 / 2.0;

    let pki = BenchPki::new(Algorithm::FnDsa1024)?;
    let server = pki::stoq_endpoint(pki.tls(SERVER_NAME, false)?)?;
    let addr = server.local_addr()?;
    let client_tls = pki.tls(CLIENT_NAME, false)?;
    // One client endpoint (socket) per task in flight, as separate clients
    // would have: a shared socket overflows its receive buffer.
    let clients = (0..MANY)
        .map(|_| pki::quinn_client_endpoint())
        .collect::<anyhow::Result<Vec<_>>>()?;

    progress(&format!(
        "handshake: STOQ full mutual PQ handshakes, {CONCURRENCY} in flight"
    ));
    let full_cfg = quinn::ClientConfig::new(client_tls.clone().without_resumption().quic_client_config()?);
    let established = || server.metrics().connections_established.get();
    let failures = || server.metrics().handshake_failures.get();
    let (est0, fail0) = (established(), failures());
    let few = clients.get(..CONCURRENCY).context("too few client endpoints")?;
    let full = hammer(few, full_cfg.clone(), addr, settings.duration).await?;
    tokio::time::sleep(CLOSE_AFTER * 2).await;
    let (server_est, server_fail) = (established() - est0, failures() - fail0);
    progress(&format!("handshake: STOQ full handshakes, {MANY} in flight"));
    let many = hammer(&clients, full_cfg, addr, settings.duration).await?;

    progress("handshake: classical quinn + rustls defaults");
    let classical = Classical::new()?;
    let q_server = classical.server()?;
    let acceptor = pki::accept_all(&q_server);
    let classic = hammer(
        few,
        classical.client_config(false)?,
        q_server.local_addr()?,
        settings.duration,
    )
    .await?;

    progress("handshake: STOQ resumed handshakes");
    let (resume_cfg, verified) = resuming_config(&client_tls)?;
    let warm = clients
        .first()
        .context("no client endpoint")?
        .connect_with(resume_cfg.clone(), addr, SERVER_NAME)?
        .await?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    warm.close(0u32.into(), b"bench");
    let v0 = verified.load(Ordering::Relaxed);
    anyhow::ensure!(v0 == 1, "the warm-up connection verified the server {v0} times");
    let resumed = hammer(few, resume_cfg, addr, settings.duration).await?;
    let full_in_resumed = verified.load(Ordering::Relaxed) - v0;

    tokio::time::sleep(CLOSE_AFTER * 2).await;
    server.shutdown().await;
    for c in &clients {
        pki::close_quinn(c).await;
    }
    acceptor.abort();
    pki::close_quinn(&q_server).await;

    let d = settings.duration.as_secs_f64();
    let classical_kind = format!(
        "plain quinn + rustls default aws-lc-rs provider ({}), Ed25519 server cert (leaf only), \
         no client auth, no resumption",
        pki::rustls_default_suite()
    );
    report.push(
        Row::new(
            "handshake",
            ("stoq full", full.per_sec),
            ("sign bound", bound),
            "hs/s",
            ">= 0.80",
        )
        .note(format!(
            "mutual FN-DSA-1024 + X25519MLKEM768, no resumption, {CONCURRENCY} in flight, {d:.1} s"
        ))
        .note(format!(
            "stoq full: {}; server side: {server_est} established, {server_fail} failed",
            full.summary()
        ))
        .note(format!(
            "bound = {sign:.0} FN-DSA signs/s (1 thread) x {cores} cores / 2 signatures per handshake"
        )),
    );
    report.push(
        Row::new(
            "handshake-classical",
            ("stoq full", full.per_sec),
            ("classical", classic.per_sec),
            "hs/s",
            "none (information)",
        )
        .note(format!("classical = {classical_kind}"))
        .note(format!("classical: {}", classic.summary())),
    );
    report.push(
        Row::new(
            "handshake-16",
            ("stoq full, 16 in flight", many.per_sec),
            ("stoq full, 4 in flight", full.per_sec),
            "hs/s",
            "none (information)",
        )
        .note(format!("stoq full x16: {}", many.summary())),
    );
    let resumed_count = resumed.ok.saturating_sub(full_in_resumed);
    report.push(
        Row::new(
            "handshake-resumed",
            ("stoq resumed", resumed.per_sec),
            ("stoq full", full.per_sec),
            "hs/s",
            "none (information)",
        )
        .note(format!(
            "resumption verified: {resumed_count} of {} handshakes skipped the client's server \
             certificate verification ({full_in_resumed} were full)",
            resumed.ok
        ))
        .note(format!("stoq resumed: {}", resumed.summary())),
    );
    report.detail(
        "handshake",
        serde_json::json!({
            "concurrency": CONCURRENCY, "run_seconds": d, "cores": cores,
            "fn_dsa_sign_per_s_one_thread": sign, "bound_per_s": bound,
            "stoq_full": full.json(), "stoq_full_16_in_flight": many.json(),
            "server_established": server_est, "server_failed": server_fail,
            "classical": classic.json(), "classical_kind": classical_kind,
            "resumed": resumed.json(), "resumed_full_handshakes": full_in_resumed,
            "resumed_verified": resumed_count,
        }),
    );
    Ok(())
}

impl Hammer {
    fn summary(&self) -> String {
        let drops = self.drops.map_or("unknown".to_string(), |d| d.to_string());
        format!(
            "{} ok, {} failed, {:.2} cores busy = {:.2} ms CPU per handshake (both ends), \
             {drops} UDP receive-buffer drops (kernel, all sockets)",
            self.ok,
            self.failed,
            self.cores_busy,
            self.cpu_ms()
        )
    }

    fn cpu_ms(&self) -> f64 {
        self.cores_busy * 1000.0 / self.per_sec
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "per_s": self.per_sec, "ok": self.ok, "failed": self.failed,
            "cores_busy": self.cores_busy, "cpu_ms_per_handshake": self.cpu_ms(), "udp_rcvbuf_drops": self.drops,
        })
    }
}

/// One task per client endpoint connecting in a loop until the deadline;
/// counts the handshakes completed by then, so rate = completed / duration.
/// A handshake under way at the deadline may finish (uncounted) within
/// `GRACE`, so that the server does not see it abandoned.
async fn hammer(
    clients: &[quinn::Endpoint],
    cfg: quinn::ClientConfig,
    addr: SocketAddr,
    duration: Duration,
) -> anyhow::Result<Hammer> {
    let deadline = tokio::time::Instant::now() + duration;
    let meter = CpuMeter::start();
    let drops0 = udp6_rcvbuf_drops();
    let at_deadline = tokio::spawn(async move {
        tokio::time::sleep_until(deadline).await;
        (
            meter.cores_busy(),
            drops0.zip(udp6_rcvbuf_drops()).map(|(a, b)| b.saturating_sub(a)),
        )
    });
    let failed = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(clients.len());
    for ep in clients {
        let (ep, cfg, failed) = (ep.clone(), cfg.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            let mut ok = 0u64;
            while tokio::time::Instant::now() < deadline {
                let connecting = ep.connect_with(cfg.clone(), addr, SERVER_NAME)?;
                match tokio::time::timeout_at(deadline + GRACE, connecting).await {
                    Err(_) => break,
                    Ok(Ok(conn)) => {
                        if tokio::time::Instant::now() <= deadline {
                            ok += 1;
                        }
                        tokio::spawn(async move {
                            tokio::time::sleep(CLOSE_AFTER).await;
                            conn.close(0u32.into(), b"bench");
                        });
                    }
                    Ok(Err(e)) => {
                        if failed.fetch_add(1, Ordering::Relaxed) + 1 >= MAX_FAILURES {
                            return Err(e).context("too many failed handshakes");
                        }
                    }
                }
            }
            anyhow::Ok(ok)
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += t.await??;
    }
    let (cores_busy, drops) = at_deadline.await?;
    Ok(Hammer {
        per_sec: ok as f64 / duration.as_secs_f64(),
        cores_busy,
        drops,
        ok,
        failed: failed.load(Ordering::Relaxed),
    })
}

/// The client configuration of `tls` with resumption on and a server
/// certificate verifier that counts its calls.
fn resuming_config(tls: &TlsContext) -> anyhow::Result<(quinn::ClientConfig, Arc<AtomicU64>)> {
    let mut cfg = tls.client_config()?;
    let count = Arc::new(AtomicU64::new(0));
    let inner = StackVerifier::new(tls.verifier().clone(), signature_algorithms(tls.mode()));
    cfg.dangerous().set_certificate_verifier(Arc::new(CountingVerifier {
        inner,
        count: count.clone(),
    }));
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(cfg)?;
    Ok((quinn::ClientConfig::new(Arc::new(crypto)), count))
}

/// Delegates to STOQ's server verifier, counting chain verifications.
#[derive(Debug)]
struct CountingVerifier {
    inner: StackVerifier,
    count: Arc<AtomicU64>,
}

impl ServerCertVerifier for CountingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
