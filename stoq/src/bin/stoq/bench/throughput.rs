//! Bulk throughput on one connection and one unidirectional stream.
//!
//! - STOQ: a `stoq::Endpoint` dials with the post-quantum mutual handshake
//!   and writes on a raw stream of `conn.quic()`. The receiver is a quinn
//!   endpoint with STOQ's TLS server configuration and transport settings:
//!   a `stoq::Endpoint` cannot be the receiver, its connection task takes
//!   every stream the peer opens and parses it as STOQ frames.
//! - STOQ messages (for information): `Connection::send_message` of 64 KiB
//!   payloads between two `stoq::Endpoint`s, counted from `take_incoming`.
//! - Baseline: plain quinn + rustls defaults (Ed25519 certificate, no client
//!   authentication), quinn's default transport.
//!
//! Each run sends 64 KiB `Bytes` chunks with `write_chunk` for the run's
//! duration, then finishes the stream; the receiver counts `read_chunk`
//! bytes until the end of the stream. Rate = bytes / (first write to last
//! byte received). Runs alternate (STOQ, quinn, messages) x 3; medians.

use anyhow::Context as _;
use bytes::Bytes;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

use super::pki::{self, BenchPki, Classical, SERVER_NAME};
use super::report::{median, progress, Report, Row};
use super::Settings;
use stoq::crypto::Algorithm;
use stoq::Incoming;

const CHUNK: usize = 64 * 1024;
const MIB: f64 = 1024.0 * 1024.0;

/// Runs the throughput measurement.
pub(crate) async fn run(settings: &Settings, report: &mut Report) -> anyhow::Result<()> {
    let pki = BenchPki::new(Algorithm::FnDsa1024)?;
    let chunk = Bytes::from(vec![0xA5u8; CHUNK]);

    // STOQ raw stream: stoq::Endpoint client -> quinn receiver with STOQ TLS.
    let receiver = pki::quinn_with_stoq_tls(&pki.tls(SERVER_NAME, false)?)?;
    let stoq_client = pki::stoq_endpoint(pki.tls(pki::CLIENT_NAME, false)?)?;
    let accept = async {
        let incoming = receiver.accept().await.context("receiver closed")?;
        anyhow::Ok(incoming.await?)
    };
    let (stoq_server_conn, stoq_conn) = tokio::try_join!(accept, async {
        anyhow::Ok(stoq_client.connect(receiver.local_addr()?, SERVER_NAME).await?)
    })?;

    // STOQ messages: two stoq::Endpoints.
    let msg_server = pki::stoq_endpoint(pki.tls(SERVER_NAME, false)?)?;
    let mut events = msg_server.take_incoming().context("incoming events already taken")?;
    let msg_conn = stoq_client.connect(msg_server.local_addr()?, SERVER_NAME).await?;

    // Baseline: plain quinn + rustls defaults.
    let classical = Classical::new()?;
    let q_server = classical.server()?;
    let q_client = pki::quinn_client_endpoint()?;
    let (q_conn, q_server_conn) = pki::quinn_pair(&q_server, &q_client, classical.client_config(true)?).await?;

    let (mut ours, mut base, mut msgs) = (Vec::new(), Vec::new(), Vec::new());
    for i in 1..=3 {
        let r = raw_run(stoq_conn.quic(), &stoq_server_conn, &chunk, settings.duration).await?;
        progress(&format!("throughput run {i}/3: stoq raw stream {:.1} MiB/s", r.0));
        ours.push(r);
        let r = raw_run(&q_conn, &q_server_conn, &chunk, settings.duration).await?;
        progress(&format!("throughput run {i}/3: quinn {:.1} MiB/s", r.0));
        base.push(r);
        let r = message_run(&msg_conn, &mut events, &chunk, settings.duration).await?;
        progress(&format!("throughput run {i}/3: stoq messages {:.1} MiB/s", r.0));
        msgs.push(r);
    }

    stoq_conn.close("bench done");
    msg_conn.close("bench done");
    q_conn.close(0u32.into(), b"bench done");
    stoq_client.shutdown().await;
    msg_server.shutdown().await;
    pki::close_quinn(&receiver).await;
    pki::close_quinn(&q_client).await;
    pki::close_quinn(&q_server).await;

    let rates = |v: &[(f64, u64)]| v.iter().map(|r| r.0).collect::<Vec<_>>();
    let sent = |v: &[(f64, u64)]| v.iter().map(|r| r.1 as f64 / MIB).sum::<f64>();
    let (o, b, m) = (median(&rates(&ours)), median(&rates(&base)), median(&rates(&msgs)));
    let stoq_suite = stoq::tls::crypto_provider(stoq::tls::SecurityMode::PostQuantum)
        .cipher_suites
        .first()
        .map(|c| format!("{:?}", c.suite()))
        .unwrap_or_default();
    let base_suite = pki::rustls_default_suite();
    let secs = settings.duration.as_secs_f64();
    let (sent_o, sent_b) = (sent(&ours), sent(&base));
    report.push(
        Row::new("throughput", ("stoq", o), ("quinn", b), "MiB/s", ">= 0.90")
            .note(format!(
                "1 uni stream, 64 KiB write_chunk, median of 3 x {secs:.1} s runs, alternated; \
                 MiB sent: stoq {sent_o:.0}, quinn {sent_b:.0}"
            ))
            .note(format!(
                "runs stoq {:?} quinn {:?}",
                round1(&rates(&ours)),
                round1(&rates(&base))
            ))
            .note(format!(
                "ciphers offered first: stoq {stoq_suite}; quinn baseline ({base_suite})"
            ))
            .note(
                "stoq = stoq::Endpoint sender on conn.quic(); receiver = quinn with STOQ's server \
                 TLS and transport settings (a stoq::Endpoint parses peer-opened streams as frames)",
            ),
    );
    report.push(
        Row::new(
            "throughput-messages",
            ("stoq send_message", m),
            ("quinn", b),
            "MiB/s",
            "none (information)",
        )
        .note(format!(
            "64 KiB messages, framed and batched by STOQ; runs {:?}",
            round1(&rates(&msgs))
        )),
    );
    report.detail(
        "throughput",
        serde_json::json!({
            "stoq_mib_s": rates(&ours), "quinn_mib_s": rates(&base), "stoq_messages_mib_s": rates(&msgs),
            "stoq_median": o, "quinn_median": b, "stoq_messages_median": m,
            "run_seconds": settings.duration.as_secs_f64(), "chunk_bytes": CHUNK,
        }),
    );
    Ok(())
}

fn round1(v: &[f64]) -> Vec<f64> {
    v.iter().map(|x| (x * 10.0).round() / 10.0).collect()
}

/// One run on a fresh stream: returns (MiB/s, bytes).
async fn raw_run(
    sender: &quinn::Connection,
    receiver: &quinn::Connection,
    chunk: &Bytes,
    duration: Duration,
) -> anyhow::Result<(f64, u64)> {
    let receiver = receiver.clone();
    let reader = tokio::spawn(async move {
        let mut recv = receiver.accept_uni().await?;
        let mut bytes = 0u64;
        while let Some(c) = recv.read_chunk(usize::MAX, true).await? {
            bytes += c.bytes.len() as u64;
        }
        anyhow::Ok((bytes, Instant::now()))
    });
    let start = Instant::now();
    let mut send = sender.open_uni().await?;
    let mut sent = 0u64;
    while start.elapsed() < duration {
        send.write_chunk(chunk.clone()).await?;
        sent += chunk.len() as u64;
    }
    send.finish()?;
    let (received, end) = reader.await??;
    anyhow::ensure!(received == sent, "received {received} bytes of {sent}");
    Ok((received as f64 / MIB / (end - start).as_secs_f64(), received))
}

/// One run of STOQ messages: returns (MiB/s, bytes).
async fn message_run(
    conn: &stoq::Connection,
    events: &mut mpsc::Receiver<Incoming>,
    chunk: &Bytes,
    duration: Duration,
) -> anyhow::Result<(f64, u64)> {
    let (done_tx, mut done_rx) = watch::channel(None::<u64>);
    let count = async {
        let mut bytes = 0u64;
        loop {
            if done_rx.borrow().is_some_and(|total| bytes >= total) {
                return anyhow::Ok((bytes, Instant::now()));
            }
            tokio::select! {
                ev = events.recv() => match ev.context("event queue closed")? {
                    Incoming::Message { payload, .. } => bytes += payload.len() as u64,
                    Incoming::Datagram { .. } => {}
                },
                changed = done_rx.changed() => changed?,
            }
        }
    };
    let start = Instant::now();
    let send = async {
        let mut sent = 0u64;
        while start.elapsed() < duration {
            conn.send_message(chunk.clone()).await?;
            sent += chunk.len() as u64;
        }
        done_tx.send(Some(sent))?;
        anyhow::Ok(())
    };
    let ((received, end), ()) = tokio::try_join!(count, send)?;
    Ok((received as f64 / MIB / (end - start).as_secs_f64(), received))
}
