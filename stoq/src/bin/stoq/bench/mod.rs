//! `stoq bench`: STOQ's transport measured next to a named baseline in the
//! same run, over `[::1]`, two endpoints in one process. Ratios are printed
//! next to their goals; nothing is asserted.
//!
//! - [`throughput`]: bulk MiB/s on one stream, STOQ vs plain quinn.
//! - [`rpc`]: 1 KiB echo calls/s and latency, `Connection::call` vs quinn
//!   streams.
//! - [`handshake`]: full mutual PQ handshakes/s vs the FN-DSA signing
//!   bound, beside classical and resumed handshakes.
//! - [`rtt`]: round trips per handshake through a 50 ms delay relay.
//! - [`crypto`]: FN-DSA-1024 vs pqcrypto-falcon sign/verify rates.

mod crypto;
mod handshake;
mod pki;
mod report;
mod rpc;
mod rtt;
mod throughput;

use std::time::{Duration, Instant};

use report::{progress, Report};

/// A measurement that `--only` can select.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Measurement {
    /// Bulk transfer on one stream.
    Throughput,
    /// Small-message request/response.
    Rpc,
    /// Handshakes per second.
    Handshake,
    /// Round trips per handshake through a delay relay.
    Rtt,
    /// Signature and verification rates.
    Crypto,
}

const ALL: [Measurement; 5] = [
    Measurement::Throughput,
    Measurement::Rpc,
    Measurement::Handshake,
    Measurement::Rtt,
    Measurement::Crypto,
];

/// Arguments of `stoq bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Run only this measurement (repeatable); all when absent.
    #[arg(long, value_enum)]
    only: Vec<Measurement>,
    /// Seconds per measurement run.
    #[arg(long, default_value_t = 3.0)]
    duration: f64,
    /// Short runs (about 0.3 s each, fewer samples) for smoke tests.
    #[arg(long)]
    quick: bool,
}

/// What every measurement needs to know.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Length of one timed run.
    pub(crate) duration: Duration,
    /// Handshakes per server in the RTT measurement.
    pub(crate) rtt_samples: usize,
}

/// Runs the selected measurements and prints the report.
pub(crate) async fn run(args: Args, json: bool) -> anyhow::Result<()> {
    let secs = if args.quick { 0.3 } else { args.duration };
    anyhow::ensure!(
        secs.is_finite() && secs > 0.0 && secs <= 3600.0,
        "--duration must be in (0, 3600] seconds"
    );
    let settings = Settings {
        duration: Duration::from_secs_f64(secs),
        rtt_samples: if args.quick { 2 } else { 5 },
    };
    let selected: Vec<Measurement> = ALL
        .into_iter()
        .filter(|m| args.only.is_empty() || args.only.contains(m))
        .collect();
    let started = Instant::now();
    let mut report = Report::default();
    for m in &selected {
        progress(&format!("{m:?}: starting"));
        let t0 = Instant::now();
        match m {
            Measurement::Throughput => throughput::run(&settings, &mut report).await?,
            Measurement::Rpc => rpc::run(&settings, &mut report).await?,
            Measurement::Handshake => handshake::run(&settings, &mut report).await?,
            Measurement::Rtt => rtt::run(&settings, &mut report).await?,
            Measurement::Crypto => crypto::run(&settings, &mut report).await?,
        }
        progress(&format!("{m:?}: {:.1} s", t0.elapsed().as_secs_f64()));
    }
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let settings_json = serde_json::json!({
        "run_seconds": secs,
        "quick": args.quick,
        "measurements": selected.iter().map(|m| format!("{m:?}").to_lowercase()).collect::<Vec<_>>(),
        "cores": cores,
        "total_seconds": (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
    });
    report.print(json, settings_json)
}
