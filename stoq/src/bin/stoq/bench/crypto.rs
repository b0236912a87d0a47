//! FN-DSA-1024 through `stoq::crypto` next to round-3 Falcon-1024 from
//! `pqcrypto-falcon` (PQClean): signatures and verifications per second on
//! one thread, same message, same duration. The two are not
//! wire-compatible; this compares implementations of the same lattice
//! scheme, not interoperable signatures.

use anyhow::Context as _;
use pqcrypto_falcon::falcon1024;
use std::time::{Duration, Instant};

use super::report::{progress, Report, Row};
use super::Settings;
use stoq::crypto::{Algorithm, KeyPair};

/// The signed message: about the size of a TLS 1.3 CertificateVerify input.
const MESSAGE: [u8; 130] = [0x20; 130];

/// Calls `op` until `duration` has passed; returns operations per second.
fn rate(duration: Duration, mut op: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < duration {
        op()?;
        n += 1;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// Runs CPU-bound work on the blocking pool.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> anyhow::Result<T> + Send + 'static) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .context("benchmark thread panicked")?
}

/// FN-DSA-1024 signatures per second on one thread (`KeyPair::sign`).
pub(crate) async fn fn_dsa_sign_rate(duration: Duration) -> anyhow::Result<f64> {
    blocking(move || {
        let key = KeyPair::generate(Algorithm::FnDsa1024);
        rate(duration, || {
            key.sign(&MESSAGE)?;
            Ok(())
        })
    })
    .await
}

/// Runs the crypto measurement.
pub(crate) async fn run(settings: &Settings, report: &mut Report) -> anyhow::Result<()> {
    let d = settings.duration;
    progress("crypto: FN-DSA-1024 (stoq) sign");
    let sign = fn_dsa_sign_rate(d).await?;
    progress("crypto: FN-DSA-1024 (stoq) verify");
    let verify = blocking(move || {
        let key = KeyPair::generate(Algorithm::FnDsa1024);
        let sig = key.sign(&MESSAGE)?;
        let pk = key.public_key().clone();
        rate(d, || Ok(pk.verify(&MESSAGE, &sig)?))
    })
    .await?;
    progress("crypto: Falcon-1024 (pqcrypto-falcon) sign");
    let (pq_pk, pq_sk) = falcon1024::keypair();
    let pq_sig = falcon1024::detached_sign(&MESSAGE, &pq_sk);
    let pq_sign = blocking(move || {
        rate(d, || {
            std::hint::black_box(falcon1024::detached_sign(&MESSAGE, &pq_sk));
            Ok(())
        })
    })
    .await?;
    progress("crypto: Falcon-1024 (pqcrypto-falcon) verify");
    let pq_verify = blocking(move || {
        rate(d, || {
            falcon1024::verify_detached_signature(&pq_sig, &MESSAGE, &pq_pk)
                .map_err(|e| anyhow::anyhow!("pqcrypto-falcon refused its own signature: {e:?}"))
        })
    })
    .await?;

    let secs = d.as_secs_f64();
    let (ours, theirs) = ("fn-dsa-1024", "pqcrypto falcon1024");
    let info = "none (information)";
    report.push(
        Row::new("crypto-sign", (ours, sign), (theirs, pq_sign), "ops/s", info).note(format!(
            "one thread, {} B message, {secs:.1} s each; KeyPair::sign vs detached_sign",
            MESSAGE.len()
        )),
    );
    report.push(
        Row::new("crypto-verify", (ours, verify), (theirs, pq_verify), "ops/s", info)
            .note("PublicKey::verify (key decoded once) vs verify_detached_signature (decodes the key)"),
    );
    report.detail(
        "crypto",
        serde_json::json!({
            "fn_dsa_sign_per_s": sign, "fn_dsa_verify_per_s": verify,
            "pqcrypto_falcon_sign_per_s": pq_sign, "pqcrypto_falcon_verify_per_s": pq_verify,
            "message_bytes": MESSAGE.len(), "run_seconds": secs,
        }),
    );
    Ok(())
}
