//! DNS on [::1]: queries per second over UDP, measured by `dnsperf`, for
//! our [`DnsServer`] and for a stock `hickory-dns` (0.26.3, from crates.io)
//! serving the same zone in the same run, alternating our/stock rounds.
//!
//! The comparison is kept fair: one zone (ours is written out as an RFC 1035
//! zone file for the stock server, and sample answers of both are compared
//! before measuring), one query file, the same number of tokio workers, one
//! UDP socket each, logs at `warn` on both sides (hickory logs every request
//! at `info`). Our server runs in this process on a runtime of its own, so
//! its CPU time can be told apart from the bench's; the stock server is a
//! child process.
//!
//! Without `dnsperf` or the `hickory-dns` binary the part is skipped with a
//! message: `deploy/bench-dns.sh` installs both.

use hickory_server::proto::op::{Message, Query};
use hickory_server::proto::rr::{Name, RecordType};
use std::fmt::Write as _;
use std::net::{Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use trustchain::dns::{DnsConfig, DnsMetrics, DnsServer, MeshZone, NodeRecord, ServiceRecord, ZoneConfig};

use super::{progress, row};

/// The stock server the goal is measured against.
const STOCK_VERSION: &str = "0.26.3";
/// Nodes in the zone (each: AAAA, TXT and one SRV record).
const NODES: usize = 1_000;
/// Lines in the query file (dnsperf loops over it).
const QUERY_LINES: usize = 10_000;
/// Share of the queries, in percent, for names that do not exist.
const NXDOMAIN_PERCENT: u64 = 10;
/// Measured rounds, each one run against ours then one against stock.
const ROUNDS: usize = 3;
/// dnsperf: clients (sockets), threads and queries in flight.
const CLIENTS: usize = 4;
const THREADS: usize = 1;
const OUTSTANDING: usize = 100;
/// Name of our server's runtime threads (15 bytes at most: /proc `comm`).
const OUR_THREADS: &str = "tc-dns-bench";
/// The zone's origin; also the first label of every query name.
const ORIGIN: &str = "mesh.";

const HOW_TO_GET: &str = "deploy/bench-dns.sh installs both dnsperf and hickory-dns (apt-get install -y dnsperf; \
    cargo install hickory-dns --version 0.26.3 --locked --root .bench-tools)";

/// dnsperf figures of one run, or of several added up.
#[derive(Debug, Clone, Default)]
struct Perf {
    /// Queries answered.
    completed: f64,
    /// Seconds the runs took, as dnsperf measured them.
    run_secs: f64,
    /// Sum of the answered queries' latencies (s).
    latency_secs: f64,
    sent: u64,
    lost: u64,
    /// CPU time the server used during the runs (ns), where /proc has it.
    cpu_ns: Option<u64>,
    /// Response codes and their shares, e.g. `NOERROR 90.02%, NXDOMAIN 9.98%`.
    rcodes: String,
}

impl Perf {
    fn qps(&self) -> f64 {
        if self.run_secs > 0.0 {
            self.completed / self.run_secs
        } else {
            0.0
        }
    }

    fn avg_latency_ms(&self) -> f64 {
        if self.completed > 0.0 {
            self.latency_secs / self.completed * 1000.0
        } else {
            0.0
        }
    }

    fn cpu_us_per_query(&self) -> Option<f64> {
        let ns = self.cpu_ns?;
        (self.completed > 0.0).then(|| ns as f64 / 1000.0 / self.completed)
    }

    /// Adds up slices of one server's run.
    fn total(slices: &[Perf]) -> Perf {
        let mut t = Perf {
            cpu_ns: Some(0),
            ..Perf::default()
        };
        for p in slices {
            t.completed += p.completed;
            t.run_secs += p.run_secs;
            t.latency_secs += p.latency_secs;
            t.sent += p.sent;
            t.lost += p.lost;
            t.cpu_ns = t.cpu_ns.zip(p.cpu_ns).map(|(a, b)| a + b);
            t.rcodes.clone_from(&p.rcodes);
        }
        t
    }
}

pub(crate) async fn run(quick: bool, hickory_dns: Option<&Path>) -> anyhow::Result<()> {
    let Some(dnsperf) = find_in_path("dnsperf") else {
        skip("dnsperf is not installed (Debian package dnsperf)");
        return Ok(());
    };
    let stock_bin = match find_hickory(hickory_dns) {
        Ok(p) => p,
        Err(why) => {
            skip(&why);
            return Ok(());
        }
    };
    let stock_version = version_of(&stock_bin).await;
    // Per server and round: `slices` runs of `slice_secs`, alternating.
    let (slices, slice_secs) = if quick { (1, 2) } else { (5, 2) };
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let dir = tempfile::tempdir()?;

    progress(&format!("dns: starting our server ({NODES} nodes, {workers} workers)"));
    let zone = bench_zone()?;
    let ours = Ours::start(zone.clone(), workers).await?;
    let zone_file = dir.path().join("mesh.zone");
    std::fs::write(&zone_file, zone_file_text(&zone, ours.addr).await?)?;

    progress(&format!(
        "dns: starting stock hickory-dns {stock_version} ({})",
        stock_bin.display()
    ));
    let mut stock = Stock::start(&stock_bin, dir.path(), &zone_file, workers).await?;

    let queries = query_lines();
    let query_file = dir.path().join("queries.txt");
    std::fs::write(&query_file, queries.join("\n") + "\n")?;
    let mismatches = compare_answers(&queries, ours.addr, stock.addr).await?;
    if !mismatches.is_empty() {
        progress(&format!(
            "dns: WARNING the servers answer differently ({} of the samples), e.g. {}",
            mismatches.len(),
            mismatches[0]
        ));
    }

    let perf = |addr: SocketAddr, secs: u64, cpu: CpuOf| {
        let dnsperf = dnsperf.clone();
        let query_file = query_file.clone();
        async move { dnsperf_run(&dnsperf, addr, &query_file, secs, cpu).await }
    };
    progress("dns: warming up both servers (1 s each)");
    perf(ours.addr, 1, CpuOf::OurThreads).await?;
    perf(stock.addr, 1, CpuOf::Process(stock.pid)).await?;

    let mut our_runs = Vec::new();
    let mut stock_runs = Vec::new();
    for round in 1..=ROUNDS {
        // Slices alternate ours/stock so that a change in the machine's
        // background load falls on both alike.
        let (mut o, mut s) = (Vec::new(), Vec::new());
        for _ in 0..slices {
            o.push(perf(ours.addr, slice_secs, CpuOf::OurThreads).await?);
            s.push(perf(stock.addr, slice_secs, CpuOf::Process(stock.pid)).await?);
        }
        let (o, s) = (Perf::total(&o), Perf::total(&s));
        progress(&format!(
            "dns round {round}/{ROUNDS}: ours {:.0} q/s ({:.3} ms avg), stock {:.0} q/s ({:.3} ms avg)",
            o.qps(),
            o.avg_latency_ms(),
            s.qps(),
            s.avg_latency_ms()
        ));
        our_runs.push(o);
        stock_runs.push(s);
    }
    if let Some(status) = stock.child.try_wait()? {
        anyhow::bail!(
            "stock hickory-dns exited during the run ({status}):\n{}",
            stock.log_tail()
        );
    }
    stock.stop().await;
    ours.stop().await?;

    let o_qps = median(our_runs.iter().map(Perf::qps));
    let s_qps = median(stock_runs.iter().map(Perf::qps));
    row(
        &format!("DNS queries/s, UDP, {NODES} names, dnsperf, median of {ROUNDS}"),
        format!("{o_qps:.0}/s"),
        format!("{s_qps:.0}/s stock"),
        (s_qps > 0.0).then(|| o_qps / s_qps),
        ">= 0.90",
    );
    let o_lat = median(our_runs.iter().map(Perf::avg_latency_ms));
    let s_lat = median(stock_runs.iter().map(Perf::avg_latency_ms));
    row(
        &format!("DNS average latency at that load, {OUTSTANDING} in flight (ms)"),
        format!("{o_lat:.3}"),
        format!("{s_lat:.3} stock"),
        (s_lat > 0.0).then(|| o_lat / s_lat),
        "",
    );
    let cpu = |runs: &[Perf]| {
        let v: Vec<f64> = runs.iter().filter_map(Perf::cpu_us_per_query).collect();
        (v.len() == runs.len()).then(|| median(v.into_iter()))
    };
    if let (Some(o_cpu), Some(s_cpu)) = (cpu(&our_runs), cpu(&stock_runs)) {
        row(
            "DNS server CPU time per query (µs)",
            format!("{o_cpu:.2}"),
            format!("{s_cpu:.2} stock"),
            (s_cpu > 0.0).then(|| o_cpu / s_cpu),
            "",
        );
    }
    let runs = |r: &[Perf]| {
        r.iter()
            .map(|p| format!("{:.0}", p.qps()))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let paired = our_runs
        .iter()
        .zip(&stock_runs)
        .map(|(o, s)| format!("{:.3}", o.qps() / s.qps().max(f64::MIN_POSITIVE)))
        .collect::<Vec<_>>()
        .join(" ");
    println!(
        "  dns: q/s per round: ours {}, stock {} (ratios {paired}); each round {} s per server in {slice_secs} s \
         slices alternating ours/stock",
        runs(&our_runs),
        runs(&stock_runs),
        slices * slice_secs,
    );
    println!("  dns: both servers: {workers} tokio workers, one UDP socket on [::1], TCP on, DoQ off, logs at warn");
    println!(
        "  dns: same zone ({NODES} nodes: AAAA, TXT, SRV), same {QUERY_LINES} queries (AAAA/TXT, \
         {NXDOMAIN_PERCENT}% NXDOMAIN), dnsperf -c {CLIENTS} -T {THREADS} -q {OUTSTANDING}; stock: {stock_version}"
    );
    if let (Some(o), Some(s)) = (our_runs.last(), stock_runs.last()) {
        println!("  dns: answers (last round): ours {}; stock {}", o.rcodes, s.rcodes);
    }
    let lost: u64 = our_runs.iter().chain(&stock_runs).map(|p| p.lost).sum();
    let sent: u64 = our_runs.iter().chain(&stock_runs).map(|p| p.sent).sum();
    if lost > 0 {
        println!("  dns: {lost} of {sent} queries lost (timed out) over all runs");
    }
    if !mismatches.is_empty() {
        println!(
            "  dns: NOT COMPARABLE: {} sample answers differ between the servers, e.g. {}",
            mismatches.len(),
            mismatches[0]
        );
    }
    Ok(())
}

fn skip(why: &str) {
    println!("  dns: skipped: {why}. {HOW_TO_GET}");
}

/// `name` in `PATH`, if it is there.
fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

/// The stock server: `--hickory-dns`, else `.bench-tools/bin/hickory-dns`
/// (in the current directory, then in this workspace), else `PATH`.
fn find_hickory(given: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = given {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(format!("--hickory-dns {} does not exist", p.display()))
        };
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    [Path::new("."), workspace.as_path()]
        .iter()
        .map(|root| root.join(".bench-tools/bin/hickory-dns"))
        .find(|p| p.is_file())
        .or_else(|| find_in_path("hickory-dns"))
        .ok_or_else(|| {
            "the hickory-dns binary was not found (not in .bench-tools/bin, not in PATH; or give --hickory-dns PATH)"
                .to_string()
        })
}

/// `hickory-dns --version`, noting a version other than the one the goal
/// is set against.
async fn version_of(bin: &Path) -> String {
    let out = tokio::process::Command::new(bin).arg("--version").output().await;
    let text = out
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    match text.split_whitespace().last() {
        Some(v) if v == STOCK_VERSION => v.to_string(),
        Some(v) => format!("{v} (NOT {STOCK_VERSION}, the version the goal is set against)"),
        None => "of unknown version".into(),
    }
}

/// The zone: `NODES` nodes under `mesh.`, as the CA would publish them.
fn bench_zone() -> anyhow::Result<MeshZone> {
    let zone = MeshZone::new(ZoneConfig::default())?;
    zone.upsert_all((0..NODES).map(|i| {
        let mut fingerprint = [0u8; 32];
        for (j, b) in fingerprint.iter_mut().enumerate() {
            *b = (mix(i as u64 * 32 + j as u64) & 0xff) as u8;
        }
        NodeRecord {
            host: node_name(i),
            address: Ipv6Addr::new(0xfd00, 0x6d65, 0x7368, 0, 0, 0, (i >> 16) as u16, i as u16),
            fingerprint,
            services: vec![ServiceRecord {
                service: "_stoq._udp".into(),
                port: 4433,
                priority: 10,
                weight: 5,
            }],
        }
    }))?;
    Ok(zone)
}

fn node_name(i: usize) -> String {
    format!("node-{i:04}")
}

/// splitmix64: deterministic figures without a seeded RNG.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce5_e4b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The zone as an RFC 1035 master file: the apex records as our server
/// answers them (SOA with its serial, NS), then every node's records.
async fn zone_file_text(zone: &MeshZone, ours: SocketAddr) -> anyhow::Result<String> {
    let mut text = format!("$ORIGIN {ORIGIN}\n");
    for rtype in [RecordType::SOA, RecordType::NS] {
        let (answer, _) = ask(ours, ORIGIN, rtype).await?;
        anyhow::ensure!(!answer.answers.is_empty(), "our server has no {rtype} at the apex");
        for r in &answer.answers {
            writeln!(text, "{r}")?;
        }
    }
    let ttl = ZoneConfig::default().ttl;
    for n in zone.records() {
        let host = &n.host;
        writeln!(text, "{host} {ttl} IN AAAA {}", n.address)?;
        writeln!(text, "{host} {ttl} IN TXT \"{}\"", n.fingerprint_txt())?;
        for s in &n.services {
            writeln!(
                text,
                "{}.{host} {ttl} IN SRV {} {} {} {host}",
                s.service, s.priority, s.weight, s.port
            )?;
        }
    }
    Ok(text)
}

/// The query file: AAAA and TXT of existing nodes, and a share of names
/// that do not exist, shuffled deterministically.
fn query_lines() -> Vec<String> {
    (0..QUERY_LINES as u64)
        .map(|i| {
            let r = mix(i ^ 0x00d5_0000);
            let rtype = if r & 1 == 0 { "AAAA" } else { "TXT" };
            if (r >> 8) % 100 < NXDOMAIN_PERCENT {
                format!("absent-{:04}.{ORIGIN} {rtype}", (r >> 20) % 10_000)
            } else {
                format!("{}.{ORIGIN} {rtype}", node_name(((r >> 20) % NODES as u64) as usize))
            }
        })
        .collect()
}

/// One UDP query; the answer and its size on the wire.
async fn ask(server: SocketAddr, name: &str, rtype: RecordType) -> anyhow::Result<(Message, usize)> {
    let socket = tokio::net::UdpSocket::bind((Ipv6Addr::LOCALHOST, 0)).await?;
    let mut query = Message::query();
    query.metadata.recursion_desired = true; // as dnsperf sends them
    query.add_query(Query::query(Name::from_ascii(name)?, rtype));
    socket.send_to(&query.to_vec()?, server).await?;
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, from) = tokio::time::timeout(Duration::from_millis(500), socket.recv_from(&mut buf))
            .await
            .map_err(|_| anyhow::anyhow!("no answer from {server} to {name} {rtype} within 500 ms"))??;
        let answer = Message::from_vec(&buf[..n]).map_err(|e| anyhow::anyhow!("bad answer from {server}: {e}"))?;
        if from == server && answer.metadata.id == query.metadata.id {
            return Ok((answer, n));
        }
    }
}

/// What a server answered, without the message id.
fn summary(answer: &Message, size: usize) -> String {
    let mut records: Vec<String> = answer
        .answers
        .iter()
        .chain(&answer.authorities)
        .chain(&answer.additionals)
        .map(|r| r.to_string())
        .collect();
    records.sort();
    format!(
        "{:?} {} bytes [{}]",
        answer.metadata.response_code,
        size,
        records.join("; ")
    )
}

/// Asks both servers the first queries of the file and a few more kinds;
/// returns the differences.
async fn compare_answers(queries: &[String], ours: SocketAddr, stock: SocketAddr) -> anyhow::Result<Vec<String>> {
    let mut samples: Vec<(String, RecordType)> = queries
        .iter()
        .take(40)
        .filter_map(|l| {
            let (name, rtype) = l.split_once(' ')?;
            Some((name.to_string(), rtype.parse().ok()?))
        })
        .collect();
    samples.extend([
        (ORIGIN.to_string(), RecordType::SOA),
        (ORIGIN.to_string(), RecordType::NS),
        (format!("_stoq._udp.{}.{ORIGIN}", node_name(7)), RecordType::SRV),
        (format!("{}.{ORIGIN}", node_name(7)), RecordType::A),
        ("outside.example.".to_string(), RecordType::AAAA),
    ]);
    let mut mismatches = Vec::new();
    for (name, rtype) in samples {
        let (a, an) = ask(ours, &name, rtype).await?;
        let (b, bn) = ask(stock, &name, rtype).await?;
        let (a, b) = (summary(&a, an), summary(&b, bn));
        if a != b {
            mismatches.push(format!("{name} {rtype}: ours {a}, stock {b}"));
        }
    }
    Ok(mismatches)
}

/// Our server, on a runtime of its own whose threads log at `warn` only.
struct Ours {
    runtime: tokio::runtime::Runtime,
    server: DnsServer,
    addr: SocketAddr,
}

impl Ours {
    async fn start(zone: MeshZone, workers: usize) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name(OUR_THREADS)
            .on_thread_start(quiet_thread_logs)
            .enable_all()
            .build()?;
        let config = DnsConfig {
            listen: SocketAddr::from((Ipv6Addr::LOCALHOST, 0)),
            doq_listen: None,
            ..DnsConfig::default()
        };
        let server = runtime
            .spawn(async move { DnsServer::start(&config, zone, None, DnsMetrics::default()).await })
            .await??;
        let addr = server.udp_addr();
        Ok(Ours { runtime, server, addr })
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.runtime.spawn(self.server.shutdown()).await??;
        self.runtime.shutdown_background();
        Ok(())
    }
}

/// hickory logs every request at `info`: our server's threads get a
/// subscriber of their own at `warn`, whatever the bench's `--log` filter,
/// as the stock server gets `RUST_LOG=warn`.
fn quiet_thread_logs() {
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_writer(std::io::stderr)
        .finish();
    // The thread keeps this default for its whole life.
    std::mem::forget(tracing::subscriber::set_default(subscriber));
}

/// The stock `hickory-dns`, a child process on another [::1] port.
struct Stock {
    child: tokio::process::Child,
    pid: u32,
    addr: SocketAddr,
    log: PathBuf,
}

impl Stock {
    async fn start(bin: &Path, dir: &Path, zone_file: &Path, workers: usize) -> anyhow::Result<Self> {
        let port = free_port()?;
        let config = dir.join("hickory-dns.toml");
        // The format of hickory-dns 0.26's `Config` (its src/config/mod.rs):
        // file-backed primary zone, IPv6 loopback only, no privilege drop
        // (the zone sits in a private temporary directory).
        std::fs::write(
            &config,
            format!(
                "listen_addrs_ipv6 = [\"::1\"]\nlisten_port = {port}\ndirectory = {dir:?}\n\
                 drop_privileges = false\n\n[[zones]]\nzone = \"{ORIGIN}\"\nzone_type = \"Primary\"\nfile = {file:?}\n",
                dir = dir.display().to_string(),
                file = zone_file.display().to_string(),
            ),
        )?;
        let log = dir.join("hickory-dns.log");
        let out = std::fs::File::create(&log)?;
        let child = tokio::process::Command::new(bin)
            .arg("--config")
            .arg(&config)
            .arg("--workers")
            .arg(workers.to_string())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .kill_on_drop(true)
            .spawn()?;
        let pid = child
            .id()
            .ok_or_else(|| anyhow::anyhow!("hickory-dns exited at once"))?;
        let mut stock = Stock {
            child,
            pid,
            addr: SocketAddr::from((Ipv6Addr::LOCALHOST, port)),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = stock.child.try_wait()? {
                anyhow::bail!("hickory-dns exited ({status}) at start:\n{}", stock.log_tail());
            }
            if ask(stock.addr, ORIGIN, RecordType::SOA).await.is_ok() {
                return Ok(stock);
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "hickory-dns did not answer on {} within 30 s:\n{}",
                    stock.addr,
                    stock.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// A [::1] port free for both UDP and TCP.
fn free_port() -> anyhow::Result<u16> {
    for _ in 0..100 {
        let udp = std::net::UdpSocket::bind((Ipv6Addr::LOCALHOST, 0))?;
        let port = udp.local_addr()?.port();
        if std::net::TcpListener::bind((Ipv6Addr::LOCALHOST, port)).is_ok() {
            return Ok(port);
        }
    }
    anyhow::bail!("no free port on [::1] for both UDP and TCP")
}

/// Whose CPU time a run is charged with.
#[derive(Debug, Clone, Copy)]
enum CpuOf {
    /// This process's threads named `OUR_THREADS`.
    OurThreads,
    /// Every thread of a process.
    Process(u32),
}

/// CPU time (ns) from `/proc/*/task/*/schedstat`; `None` where the kernel
/// does not keep it.
fn cpu_ns(of: CpuOf) -> Option<u64> {
    let (dir, only_ours) = match of {
        CpuOf::OurThreads => ("/proc/self/task".to_string(), true),
        CpuOf::Process(pid) => (format!("/proc/{pid}/task"), false),
    };
    let mut total = 0;
    for task in std::fs::read_dir(dir).ok()?.flatten() {
        if only_ours {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if comm.trim_end() != OUR_THREADS {
                continue;
            }
        }
        let stat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

/// `dnsperf` against `server` for `seconds`, charging the server's CPU time.
async fn dnsperf_run(
    dnsperf: &Path,
    server: SocketAddr,
    queries: &Path,
    seconds: u64,
    cpu: CpuOf,
) -> anyhow::Result<Perf> {
    let before = cpu_ns(cpu);
    let out = tokio::process::Command::new(dnsperf)
        .args(["-s", &server.ip().to_string(), "-p", &server.port().to_string(), "-d"])
        .arg(queries)
        .args(["-l", &seconds.to_string()])
        .args([
            "-c",
            &CLIENTS.to_string(),
            "-T",
            &THREADS.to_string(),
            "-q",
            &OUTSTANDING.to_string(),
        ])
        .stdin(Stdio::null())
        .output()
        .await?;
    let after = cpu_ns(cpu);
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |label: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    let (Some(run_secs), Some(latency), Some(sent), Some(completed), Some(lost)) = (
        field("Run time (s):"),
        field("Average Latency (s):"),
        field("Queries sent:"),
        field("Queries completed:"),
        field("Queries lost:"),
    ) else {
        anyhow::bail!(
            "dnsperf against {server} ({}) printed no statistics:\n{text}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // "NOERROR 8996 (89.96%), NXDOMAIN 1004 (10.04%)" -> "NOERROR 89.96%, NXDOMAIN 10.04%"
    let rcodes = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Response codes:"))
        .map(|rest| {
            rest.split(',')
                .filter_map(|part| {
                    let mut words = part.split_whitespace();
                    let code = words.next()?;
                    let share = words.nth(1)?.trim_matches(|c| c == '(' || c == ')');
                    Some(format!("{code} {share}"))
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    Ok(Perf {
        completed,
        run_secs,
        latency_secs: latency * completed,
        sent: sent as u64,
        lost: lost as u64,
        cpu_ns: before.zip(after).map(|(b, a)| a.saturating_sub(b)),
        rcodes,
    })
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}
