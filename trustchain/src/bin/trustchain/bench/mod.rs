//! `trustchain bench`: issuance (1-of-1 and 3-of-5 on [::1]) beside the
//! FN-DSA signing rate, and the transparency log (appends with batched
//! head signing, proofs at 1,000,000 entries) and DNS queries per second
//! against a stock hickory-dns serving the same zone, all in one run.

mod dns;
mod issuance;
mod log;

use std::time::{Duration, Instant};

/// Arguments of `bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Shorter runs (CI smoke test); the figures are noisier.
    #[arg(long)]
    quick: bool,
    /// Only these parts (issuance, log, dns); default all.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// The stock hickory-dns 0.26.3 binary the DNS part compares against
    /// (default: .bench-tools/bin/hickory-dns, then PATH; deploy/bench-dns.sh
    /// installs it).
    #[arg(long, value_name = "PATH")]
    hickory_dns: Option<std::path::PathBuf>,
    /// Requests per issuance throughput run (default 8,000; 400 with
    /// --quick). More gives steadier figures (and room to profile).
    #[arg(long, value_name = "N")]
    issuances: Option<usize>,
    /// Issuance only for these clusters, as k-of-n (default 1-of-1,3-of-5).
    #[arg(long, value_delimiter = ',', value_name = "K-of-N")]
    clusters: Vec<String>,
}

pub(crate) async fn run(a: Args) -> anyhow::Result<()> {
    let want = |p: &str| a.only.is_empty() || a.only.iter().any(|o| o == p);
    println!(
        "{:<58} {:>14} {:>16} {:>8}  goal",
        "measure", "ours", "baseline", "ratio"
    );
    if want("issuance") {
        let clusters = if a.clusters.is_empty() {
            vec![(1, 1), (5, 3)]
        } else {
            a.clusters
                .iter()
                .map(|c| parse_cluster(c))
                .collect::<anyhow::Result<_>>()?
        };
        issuance::run(a.quick, a.issuances, &clusters).await?;
    }
    if want("log") {
        log::run(a.quick).await?;
    }
    if want("dns") {
        dns::run(a.quick, a.hickory_dns.as_deref()).await?;
    }
    Ok(())
}

/// Parses `k-of-n` into (n, k).
fn parse_cluster(s: &str) -> anyhow::Result<(usize, u16)> {
    let parsed = s
        .split_once("-of-")
        .and_then(|(k, n)| Some((n.parse::<usize>().ok()?, k.parse::<u16>().ok()?)));
    match parsed {
        Some((n, k)) if k >= 1 && usize::from(k) <= n && n <= 16 => Ok((n, k)),
        _ => anyhow::bail!("--clusters takes k-of-n with 1 <= k <= n <= 16, e.g. 3-of-5; got {s:?}"),
    }
}

/// Prints one result row.
pub(crate) fn row(name: &str, ours: String, baseline: String, ratio: Option<f64>, goal: &str) {
    let ratio = ratio.map(|r| format!("{r:.3}")).unwrap_or_else(|| "-".into());
    println!("{name:<58} {ours:>14} {baseline:>16} {ratio:>8}  {goal}");
}

/// Progress on stderr.
pub(crate) fn progress(msg: &str) {
    eprintln!("bench: {msg}");
}

/// FN-DSA-1024 signatures per second using every core (one signer per
/// core, as the member's signer pool does).
pub(crate) async fn signing_bound(duration: Duration) -> anyhow::Result<f64> {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let key = stoq::crypto::KeyPair::generate(stoq::crypto::Algorithm::FnDsa1024);
    let mut tasks = Vec::new();
    for _ in 0..cores {
        let key = key.clone();
        tasks.push(tokio::task::spawn_blocking(move || -> anyhow::Result<u64> {
            let start = Instant::now();
            let mut n = 0u64;
            while start.elapsed() < duration {
                key.sign(&[0x42; 1024])?;
                n += 1;
            }
            Ok(n)
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    Ok(total as f64 / duration.as_secs_f64())
}

/// CPU time this process used so far (user + system, all threads, live or
/// exited), seconds; `None` where /proc is missing.
pub(crate) fn process_cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold
    // spaces: utime and stime are the 14th and 15th fields overall.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}
