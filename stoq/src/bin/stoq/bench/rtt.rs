//! Round trips per handshake through a user-space delay relay.
//!
//! The relay ([`stoq::relay::DelayRelay`]) listens on `[::1]`, forwards every datagram between the
//! client and the server after a fixed `ONE_WAY` delay (so RTT = 2 x
//! `ONE_WAY`) and logs each datagram's arrival. A `stoq::Endpoint` client
//! (resumption off) dials a `stoq::Endpoint` server through a fresh relay
//! per sample; handshake time is from `connect` to the established
//! connection, in RTTs. From the log: the client's first flight (what it
//! sent before anything from the server reached it), and the server's first
//! flight (what the server sent before the client's second flight reached
//! it), which QUIC's anti-amplification limit caps at 3 x the first.
//! One handshake to each server without the relay warms the process up
//! first. Control: the same with the root certificate appended to the server's
//! chain, which is expected to cost an extra round trip.

use std::time::{Duration, Instant};

use super::pki::{self, BenchPki, CLIENT_NAME, SERVER_NAME};
use super::report::{median, progress, Report, Row};
use super::Settings;
use stoq::crypto::Algorithm;
use stoq::relay::{DelayRelay, Flights};

const ONE_WAY: Duration = Duration::from_millis(25);
const RTT: Duration = Duration::from_millis(50);

/// Handshake samples against one server: (RTTs, flights) each.
async fn samples(
    server: &stoq::Endpoint,
    client: &stoq::Endpoint,
    n: usize,
) -> anyhow::Result<Vec<(f64, Option<Flights>)>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let relay = DelayRelay::start(server.local_addr()?, ONE_WAY).await?;
        let start = Instant::now();
        let conn = client.connect(relay.addr(), SERVER_NAME).await?;
        let rtts = start.elapsed().as_secs_f64() / RTT.as_secs_f64();
        conn.close("bench");
        out.push((rtts, relay.flights()));
        // Let the close pass the relay before the next sample.
        tokio::time::sleep(RTT).await;
    }
    Ok(out)
}

/// Runs the RTT measurement.
pub(crate) async fn run(settings: &Settings, report: &mut Report) -> anyhow::Result<()> {
    let pki = BenchPki::new(Algorithm::FnDsa1024)?;
    let leaf_only = pki::stoq_endpoint(pki.tls(SERVER_NAME, false)?)?;
    let with_root = pki::stoq_endpoint(pki.tls(SERVER_NAME, true)?)?;
    let client = pki::stoq_endpoint(pki.tls(CLIENT_NAME, false)?.without_resumption())?;
    let chain_len = |ep: &stoq::Endpoint| ep.tls().current_certificate().map(|c| c.der().len()).unwrap_or(0);
    let (leaf_len, root_len) = (chain_len(&leaf_only), pki.root().der().len());

    // The first handshake of a process costs ~25 ms more (one-time
    // initialisation, plain quinn + rustls too): warm up without the relay.
    for server in [&leaf_only, &with_root] {
        client
            .connect(server.local_addr()?, SERVER_NAME)
            .await?
            .close("warm-up");
    }
    let n = settings.rtt_samples;
    progress(&format!(
        "rtt: {n} handshakes through a {} ms RTT relay, leaf only",
        RTT.as_millis()
    ));
    let ours = samples(&leaf_only, &client, n).await?;
    progress(&format!("rtt: {n} handshakes, root appended to the chain (control)"));
    let control = samples(&with_root, &client, n).await?;
    client.shutdown().await;
    leaf_only.shutdown().await;
    with_root.shutdown().await;

    let rtts = |v: &[(f64, Option<Flights>)]| v.iter().map(|s| s.0).collect::<Vec<_>>();
    let (o, c) = (median(&rtts(&ours)), median(&rtts(&control)));
    let describe = |v: &[(f64, Option<Flights>)]| match v.first().and_then(|s| s.1) {
        Some(f) => format!(
            "client first flight {} B in {} datagrams (budget 3x = {} B), server first flight {} B in {} datagrams",
            f.client_first,
            f.client_first_datagrams,
            f.amplification_budget(),
            f.server_first,
            f.server_first_datagrams
        ),
        None => "flights could not be read from the relay log".to_string(),
    };
    let round2 = |v: Vec<f64>| v.into_iter().map(|x| (x * 100.0).round() / 100.0).collect::<Vec<_>>();
    report.push(
        Row::new(
            "rtt",
            ("stoq leaf only", o),
            ("control leaf+root", c),
            "RTT",
            "~1 RTT (control ~2 RTT)",
        )
        .note(format!(
            "{} ms relay RTT, {n} mutual PQ handshakes each, medians; leaf {leaf_len} B, root {root_len} B",
            RTT.as_millis()
        ))
        .note(format!(
            "leaf only: {}; runs {:?}",
            describe(&ours),
            round2(rtts(&ours))
        ))
        .note(format!(
            "leaf+root: {}; runs {:?}",
            describe(&control),
            round2(rtts(&control))
        )),
    );
    let flights_json = |v: &[(f64, Option<Flights>)]| {
        v.iter()
            .map(|s| match s.1 {
                Some(f) => serde_json::json!({
                    "rtts": s.0, "client_first_bytes": f.client_first,
                    "client_first_datagrams": f.client_first_datagrams,
                    "server_first_bytes": f.server_first, "server_first_datagrams": f.server_first_datagrams,
                }),
                None => serde_json::json!({ "rtts": s.0 }),
            })
            .collect::<Vec<_>>()
    };
    report.detail(
        "rtt",
        serde_json::json!({
            "relay_rtt_ms": RTT.as_millis() as u64, "leaf_only_median_rtts": o, "with_root_median_rtts": c,
            "leaf_only": flights_json(&ours), "with_root": flights_json(&control),
            "leaf_der_bytes": leaf_len, "root_der_bytes": root_len,
        }),
    );
    Ok(())
}
