//! Small-message RPC: 1 KiB request, 1 KiB response, many callers at once.
//!
//! - STOQ: `Connection::call("echo", body, None)` against a handler
//!   `|req| async move { Ok(req.body) }` between two `stoq::Endpoint`s.
//! - Baseline: the same exchange on plain quinn streams (rustls defaults):
//!   `open_bi`, write 1 KiB, finish; the server reads to the end, writes
//!   1 KiB back and finishes; the client reads to the end.
//!
//! `CALLERS` tasks call in a loop for the run's duration on one connection;
//! calls/s = completed calls / elapsed; latency per call in an
//! hdrhistogram. Runs alternate (STOQ, quinn) x 3; medians of the rates,
//! latency percentiles of the median run.

use bytes::Bytes;
use hdrhistogram::Histogram;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::pki::{self, BenchPki, Classical, SERVER_NAME};
use super::report::{median, progress, Report, Row};
use super::Settings;
use stoq::crypto::Algorithm;
use stoq::endpoint::RpcRequest;

const BODY: usize = 1024;
const CALLERS: usize = 32;
const MAX_READ: usize = 64 * 1024;

/// One run's result.
struct RunResult {
    calls_per_sec: f64,
    calls: u64,
    hist: Histogram<u64>,
}

/// Runs the RPC measurement.
pub(crate) async fn run(settings: &Settings, report: &mut Report) -> anyhow::Result<()> {
    let body = Bytes::from(vec![0x5Au8; BODY]);
    let pki = BenchPki::new(Algorithm::FnDsa1024)?;
    let server = pki::stoq_endpoint(pki.tls(SERVER_NAME, false)?)?;
    server.register("echo", |req: RpcRequest| async move { Ok(req.body) });
    let client = pki::stoq_endpoint(pki.tls(pki::CLIENT_NAME, false)?)?;
    let conn = client.connect(server.local_addr()?, SERVER_NAME).await?;

    let classical = Classical::new()?;
    let q_server = classical.server()?;
    let q_client = pki::quinn_client_endpoint()?;
    let (q_conn, q_server_conn) = pki::quinn_pair(&q_server, &q_client, classical.client_config(true)?).await?;
    let echo = tokio::spawn(quinn_echo_server(q_server_conn));

    let (mut ours, mut base) = (Vec::new(), Vec::new());
    for i in 1..=3 {
        let c = conn.clone();
        let b = body.clone();
        let r = callers(settings.duration, move || {
            let (c, b) = (c.clone(), b.clone());
            async move {
                let reply = c.call("echo", b, None).await?;
                anyhow::ensure!(reply.len() == BODY, "echo returned {} bytes", reply.len());
                Ok(())
            }
        })
        .await?;
        progress(&format!("rpc run {i}/3: stoq {:.0} calls/s", r.calls_per_sec));
        ours.push(r);
        let c = q_conn.clone();
        let b = body.clone();
        let r = callers(settings.duration, move || quinn_call(c.clone(), b.clone())).await?;
        progress(&format!("rpc run {i}/3: quinn {:.0} calls/s", r.calls_per_sec));
        base.push(r);
    }

    conn.close("bench done");
    q_conn.close(0u32.into(), b"bench done");
    echo.abort();
    client.shutdown().await;
    server.shutdown().await;
    pki::close_quinn(&q_client).await;
    pki::close_quinn(&q_server).await;

    let (o, b) = (median_run(&ours), median_run(&base));
    let lat = |r: &RunResult| {
        (
            r.hist.value_at_quantile(0.5) as f64 / 1000.0,
            r.hist.value_at_quantile(0.99) as f64 / 1000.0,
        )
    };
    let ((o50, o99), (b50, b99)) = (lat(o), lat(b));
    let rates = |v: &[RunResult]| v.iter().map(|r| r.calls_per_sec.round()).collect::<Vec<_>>();
    report.push(
        Row::new(
            "rpc",
            ("stoq", o.calls_per_sec),
            ("quinn", b.calls_per_sec),
            "calls/s",
            ">= 0.80",
        )
        .note(format!(
            "1 KiB echo, {CALLERS} concurrent callers, 1 connection, \
                 median of 3 x {:.1} s runs, alternated",
            settings.duration.as_secs_f64()
        ))
        .note(format!(
            "latency p50/p99: stoq {o50:.3}/{o99:.3} ms, quinn {b50:.3}/{b99:.3} ms (median run)"
        ))
        .note(format!("runs stoq {:?} quinn {:?}", rates(&ours), rates(&base))),
    );
    report.detail(
        "rpc",
        serde_json::json!({
            "stoq_calls_s": rates(&ours), "quinn_calls_s": rates(&base),
            "stoq_median": o.calls_per_sec, "quinn_median": b.calls_per_sec,
            "stoq_p50_ms": o50, "stoq_p99_ms": o99, "quinn_p50_ms": b50, "quinn_p99_ms": b99,
            "stoq_calls": o.calls, "quinn_calls": b.calls,
            "callers": CALLERS, "body_bytes": BODY, "run_seconds": settings.duration.as_secs_f64(),
        }),
    );
    Ok(())
}

/// The run with the median rate (the middle one of three).
fn median_run(runs: &[RunResult]) -> &RunResult {
    let m = median(&runs.iter().map(|r| r.calls_per_sec).collect::<Vec<_>>());
    runs.iter()
        .min_by(|a, b| (a.calls_per_sec - m).abs().total_cmp(&(b.calls_per_sec - m).abs()))
        .unwrap_or(&runs[0])
}

/// `CALLERS` tasks running `call` in a loop until `duration` has passed.
async fn callers<F, Fut>(duration: Duration, call: F) -> anyhow::Result<RunResult>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let call = Arc::new(call);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(CALLERS);
    for _ in 0..CALLERS {
        let call = call.clone();
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
            let mut calls = 0u64;
            while start.elapsed() < duration {
                let t0 = Instant::now();
                call().await?;
                hist.saturating_record(t0.elapsed().as_micros() as u64);
                calls += 1;
            }
            anyhow::Ok((calls, hist))
        }));
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut calls = 0;
    for t in tasks {
        let (c, h) = t.await??;
        calls += c;
        hist.add(h)?;
    }
    let elapsed = start.elapsed().as_secs_f64();
    Ok(RunResult {
        calls_per_sec: calls as f64 / elapsed,
        calls,
        hist,
    })
}

/// One echo call on a fresh bidirectional quinn stream.
async fn quinn_call(conn: quinn::Connection, body: Bytes) -> anyhow::Result<()> {
    let (mut send, mut recv) = conn.open_bi().await?;
    send.write_chunk(body).await?;
    send.finish()?;
    let reply = recv.read_to_end(MAX_READ).await?;
    anyhow::ensure!(reply.len() == BODY, "echo returned {} bytes", reply.len());
    Ok(())
}

/// Serves echo streams on a plain quinn connection until it closes.
async fn quinn_echo_server(conn: quinn::Connection) {
    while let Ok((mut send, mut recv)) = conn.accept_bi().await {
        tokio::spawn(async move {
            let req = recv.read_to_end(MAX_READ).await?;
            send.write_chunk(Bytes::from(req)).await?;
            send.finish()?;
            anyhow::Ok(())
        });
    }
}
