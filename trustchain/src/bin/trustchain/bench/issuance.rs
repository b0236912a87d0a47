//! Issuance on [::1]: certificates per second and latency for a 1-of-1 and
//! a 3-of-5 cluster (every member in this process, sharing the cores),
//! beside the FN-DSA signing rate of the same cores in the same run.
//!
//! Requests are prepared before the clock starts (nonce fetched, token
//! created, proof of possession signed): the subjects' own signatures are
//! client work, not the CA's. Subjects draw their keys from a pool of
//! [`KEY_POOL`]: an FN-DSA-1024 key takes milliseconds to generate, and the
//! CA does the same work whether or not a key repeats (every request has
//! its own token, nonce and proof of possession).

use futures_util::stream::{self, StreamExt};
use hdrhistogram::Histogram;
use std::net::Ipv6Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use stoq::crypto::{read_key_file, Algorithm, KeyPair};
use trustchain::ceremony::{self, CeremonyOptions};
use trustchain::client::{CaClient, Enrollment};
use trustchain::member::{MemberConfig, MemberNode};
use trustchain::messages::TokenCreate;
use trustchain::request::EnrollmentRequest;

use super::{process_cpu_secs, progress, row, signing_bound};

/// Requests in flight for the throughput figure: enough to keep a round
/// full while the previous one is signed and written.
const IN_FLIGHT: usize = 256;

/// Distinct subject keys the requests use in turn.
const KEY_POOL: usize = 64;

struct Cluster {
    _dir: tempfile::TempDir,
    members: Vec<MemberNode>,
    client: CaClient,
}

fn free_base(n: u16) -> u16 {
    loop {
        let p = std::net::UdpSocket::bind("[::1]:0")
            .and_then(|s| s.local_addr())
            .map(|a| a.port())
            .unwrap_or(40_000);
        if p < 60_000 && (0..n).all(|i| std::net::UdpSocket::bind(("::1", p + i)).is_ok()) {
            return p;
        }
    }
}

async fn cluster(n: usize, k: u16) -> anyhow::Result<Cluster> {
    let dir = tempfile::tempdir()?;
    let out = ceremony::run(
        &CeremonyOptions {
            members: n,
            threshold: k,
            zone: "mesh.".into(),
            host: Ipv6Addr::LOCALHOST,
            base_port: free_base(n as u16),
            http_base_port: 0,
            dns_base_port: 0,
            doq_base_port: 0,
            out_dir: dir.path().join("ca"),
        },
        |_| {},
    )?;
    let mut members = Vec::new();
    for (i, d) in out.member_dirs.iter().enumerate() {
        let config = MemberConfig {
            data_dir: d.clone(),
            listen: Some(out.bundle.members[i].address),
            http_listen: None,
            ..MemberConfig::default()
        };
        members.push(MemberNode::start(config).await?);
    }
    let admin = read_key_file(&out.admin_key)?;
    let client = CaClient::unenrolled(&admin, Arc::new(out.bundle))?;
    Ok(Cluster {
        _dir: dir,
        members,
        client,
    })
}

async fn prepare(c: &Cluster, count: usize) -> anyhow::Result<Vec<EnrollmentRequest>> {
    let what = Enrollment {
        names: vec!["bench.mesh".into()],
        ..Enrollment::default()
    };
    let keys: Vec<KeyPair> = stream::iter(0..KEY_POOL.min(count))
        .map(|_| tokio::task::spawn_blocking(|| KeyPair::generate(Algorithm::FnDsa1024)))
        .buffer_unordered(4)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let reqs = stream::iter(0..count)
        .map(|i| {
            let what = what.clone();
            let key = &keys[i % keys.len()];
            async move {
                let token = c
                    .client
                    .create_token(
                        0,
                        &TokenCreate {
                            names: vec!["bench.mesh".into()],
                            ttl_secs: 600,
                            max_lifetime_secs: 0,
                        },
                    )
                    .await?;
                Ok::<_, anyhow::Error>(c.client.prepare_enrollment(0, key, &token, &what).await?)
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    reqs.into_iter().collect()
}

/// Issues `reqs` with `concurrency` in flight; returns (sustained
/// certificates/s, latency histogram in µs).
///
/// The sustained rate counts the completions between the first and the
/// last tenth of them: a burst starts with an empty pipeline and ends
/// draining it (about `concurrency` requests' worth of partly idle
/// cores), which is not the rate the CA keeps up. The whole run's rate is
/// printed beside it.
async fn issue_all(
    c: &Cluster,
    reqs: Vec<EnrollmentRequest>,
    concurrency: usize,
) -> anyhow::Result<(f64, Histogram<u64>)> {
    let start = Instant::now();
    let cpu_start = process_cpu_secs();
    let n = reqs.len();
    let results = stream::iter(reqs)
        .map(|r| async move {
            let t = Instant::now();
            c.client
                .submit_enrollment(0, &r)
                .await
                .map(|_| (t.elapsed(), Instant::now()))
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await;
    let secs = start.elapsed().as_secs_f64();
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut done = Vec::with_capacity(n);
    for r in results {
        let (latency, at) = r?;
        hist.record(latency.as_micros() as u64)?;
        done.push(at);
    }
    done.sort_unstable();
    let (lo, hi) = (n / 10, n - n / 10 - 1);
    let window = done.get(hi).zip(done.get(lo)).map(|(b, a)| (*b - *a).as_secs_f64());
    let sustained = match window {
        Some(w) if n >= 100 && w > 0.0 => (hi - lo) as f64 / w,
        _ => n as f64 / secs,
    };
    let busy = match (cpu_start, process_cpu_secs()) {
        (Some(a), Some(b)) => {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            format!(
                ", CPU busy {:.0}% of {cores} cores",
                100.0 * (b - a) / secs / cores as f64
            )
        }
        _ => String::new(),
    };
    progress(&format!(
        "{n} issuances, {concurrency} in flight: {secs:.2} s, {:.0}/s over the whole run, {sustained:.0}/s sustained (middle 80% of completions){busy}",
        n as f64 / secs
    ));
    Ok((sustained, hist))
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// Runs the issuance part for `clusters`, each (n, k), with `count`
/// requests per throughput run.
pub(crate) async fn run(quick: bool, count: Option<usize>, clusters: &[(usize, u16)]) -> anyhow::Result<()> {
    // Enough requests that filling and draining the pipeline (about
    // IN_FLIGHT requests' worth) is a small part of the run.
    let (default, seq) = if quick { (400, 40) } else { (8_000, 200) };
    let count = count.unwrap_or(default).max(1);
    progress("issuance: FN-DSA-1024 signing rate on all cores");
    let bound = signing_bound(Duration::from_secs(if quick { 1 } else { 3 })).await?;
    row(
        "FN-DSA-1024 signatures/s, all cores (the bound)",
        format!("{bound:.0}/s"),
        "-".into(),
        None,
        "",
    );
    for &(n, k) in clusters {
        progress(&format!("issuance: starting a {k}-of-{n} cluster"));
        let c = cluster(n, k).await?;
        progress(&format!("issuance {k}-of-{n}: preparing {} requests", count + seq));
        let mut reqs = prepare(&c, count + seq).await?;
        let sequential = reqs.split_off(count);
        let (_, lat) = issue_all(&c, sequential, 1).await?;
        let (rate, conc) = issue_all(&c, reqs, IN_FLIGHT).await?;
        row(
            &format!("{k}-of-{n} issuance latency, one at a time, p50 / p99 (ms)"),
            format!("{:.2} / {:.2}", ms(&lat, 0.5), ms(&lat, 0.99)),
            if k > 1 { "goal p50 50 ms".into() } else { "-".into() },
            (k > 1).then(|| ms(&lat, 0.5) / 50.0),
            if k > 1 { "<= 1.0" } else { "" },
        );
        row(
            &format!(
                "{k}-of-{n} certificates/s sustained, {IN_FLIGHT} in flight (p50 {:.1} ms)",
                ms(&conc, 0.5)
            ),
            format!("{rate:.0}/s"),
            format!("{bound:.0}/s signs"),
            Some(rate / bound),
            if k == 1 { ">= 0.5" } else { "" },
        );
        if k > 1 {
            handshake_flight(&c).await?;
        }
        for m in c.members {
            m.shutdown().await;
        }
        c.client.endpoint().shutdown().await;
    }
    Ok(())
}

/// An endpoint presenting a freshly enrolled certificate for `name`.
async fn enrolled_endpoint(
    c: &Cluster,
    name: &str,
) -> anyhow::Result<(stoq::Endpoint, Arc<trustchain::trust::TrustStore>, usize)> {
    let token = c
        .client
        .create_token(
            0,
            &TokenCreate {
                names: vec![name.into()],
                ttl_secs: 600,
                max_lifetime_secs: 0,
            },
        )
        .await?;
    let key = KeyPair::generate(Algorithm::FnDsa1024);
    let what = Enrollment {
        names: vec![name.into()],
        ..Enrollment::default()
    };
    let issued = c.client.enroll(&key, &token, &what).await?;
    let trust = trustchain::trust::TrustStore::new(c.client.bundle().clone());
    c.client.sync(&trust).await?;
    let size = issued.certificate.der().len();
    let tls = stoq::tls::TlsContext::new(
        stoq::tls::SecurityMode::PostQuantum,
        stoq::tls::Identity::new(vec![issued.certificate], key)?,
        None,
        c.client.bundle().trust_anchors()?,
        vec![trust.check()],
    )?
    .without_resumption();
    let check = trust.clone();
    let ep = stoq::Endpoint::bind(
        stoq::EndpointConfig {
            listen: "[::1]:0".parse()?,
            ..Default::default()
        },
        tls,
    )?;
    Ok((ep, check, size))
}

/// A mutual handshake where both sides present 3-of-5 leaf certificates,
/// dialed through a delay relay ([`stoq::relay::DelayRelay`], 25 ms each
/// way, as in `stoq bench --only rtt`): its length in round trips, and the
/// server's first flight against QUIC's anti-amplification budget (three
/// times the client's first flight, both read from the relay's log). Over
/// budget, the server waits for the client's acknowledgements and the
/// handshake costs a second round trip. The client's certificate travels in
/// its second flight, with its Finished, so it adds no round trip.
async fn handshake_flight(c: &Cluster) -> anyhow::Result<()> {
    const ONE_WAY: Duration = Duration::from_millis(25);
    const SAMPLES: usize = 3;
    let rtt = 2 * ONE_WAY;
    progress("handshake: mutual handshake with 3-of-5 certificates");
    let (server, server_trust, cert_len) = enrolled_endpoint(c, "api.mesh").await?;
    let (client, _, _) = enrolled_endpoint(c, "worker.mesh").await?;
    // The server must know the client's checkpoint, issued after its sync.
    c.client.sync(&server_trust).await?;
    row(
        "3-of-5 leaf certificate DER bytes",
        format!("{cert_len} B"),
        "leaf w/o TrustChain 3,360 B".into(),
        Some(cert_len as f64 / 3360.0),
        "",
    );
    // The first handshake of a process costs more (one-time
    // initialisation): warm up without the relay.
    client.connect(server.local_addr()?, "api.mesh").await?.close("warm-up");
    progress(&format!(
        "handshake: {SAMPLES} handshakes through a {} ms RTT relay, resumption off",
        rtt.as_millis()
    ));
    let mut samples = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let relay = stoq::relay::DelayRelay::start(server.local_addr()?, ONE_WAY).await?;
        let start = Instant::now();
        let conn = client.connect(relay.addr(), "api.mesh").await?;
        let rtts = start.elapsed().as_secs_f64() / rtt.as_secs_f64();
        // A server refusing the client's certificate (checked on its second
        // flight) would close the connection within a round trip.
        let refused = tokio::time::timeout(2 * rtt, conn.quic().closed()).await.is_ok();
        anyhow::ensure!(
            !refused && !conn.is_closed(),
            "the server closed the connection after the handshake: client certificate refused?"
        );
        conn.close("bench");
        samples.push((rtts, relay.flights()));
        // Let the close pass the relay before the next sample.
        let _ = tokio::time::timeout(rtt, conn.quic().closed()).await;
    }
    client.shutdown().await;
    server.shutdown().await;

    let mut rtts: Vec<f64> = samples.iter().map(|s| s.0).collect();
    rtts.sort_by(f64::total_cmp);
    let median = rtts[rtts.len() / 2];
    progress(&format!(
        "handshake: runs {:?} RTT; flights (client B/datagrams, server B/datagrams) {:?}",
        samples
            .iter()
            .map(|s| (s.0 * 100.0).round() / 100.0)
            .collect::<Vec<_>>(),
        samples
            .iter()
            .map(|s| s.1.map(|f| (
                f.client_first,
                f.client_first_datagrams,
                f.server_first,
                f.server_first_datagrams
            )))
            .collect::<Vec<_>>(),
    ));
    row(
        &format!(
            "3-of-5 mutual handshake, {} ms RTT relay, median of {SAMPLES}",
            rtt.as_millis()
        ),
        format!("{median:.2} RTT"),
        "1 round trip".into(),
        Some(median),
        "<= 1.5 means one round trip (two: ~2)",
    );
    // The sample whose server flight came closest to its budget.
    let worst = samples
        .iter()
        .filter_map(|s| s.1)
        .filter(|f| f.client_first > 0)
        .max_by(|a, b| {
            let r = |f: &stoq::relay::Flights| f.server_first as f64 / f.amplification_budget() as f64;
            r(a).total_cmp(&r(b))
        });
    match worst {
        Some(f) => {
            row(
                "3-of-5 server first flight (B in datagrams) vs 3 x client",
                format!("{} B in {}", f.server_first, f.server_first_datagrams),
                format!("budget {} B", f.amplification_budget()),
                Some(f.server_first as f64 / f.amplification_budget() as f64),
                "< 1.0 fits (at 1.0 the server was capped)",
            );
            row(
                "client first flight (B in datagrams; client cert in 2nd)",
                format!("{} B in {}", f.client_first, f.client_first_datagrams),
                "assumed 2 x 1200".into(),
                Some(f.client_first as f64 / 2400.0),
                "",
            );
        }
        None => row(
            "3-of-5 server first flight (B in datagrams) vs 3 x client",
            "-".into(),
            "not in relay log".into(),
            None,
            "",
        ),
    }
    Ok(())
}
