//! `hypermesh bench`: the node's speed beside its baselines, in one run on
//! the same cores.
//!
//! - `hypermesh bench` ([`ledger`]): one node, transfers end to end beside
//!   the FN-DSA verification bound, and the state tree.
//! - `hypermesh bench consensus` ([`consensus`]): validators agreeing by
//!   BFT consensus, finality latency and throughput beside the bound
//!   divided among them, and the time from an equivocation to its
//!   evidence on chain.

mod consensus;
mod ledger;

use std::net::Ipv6Addr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use stoq::crypto::{Algorithm, KeyPair};
use stoq::tls::{Identity, SecurityMode, TlsContext};
use trustchain::ceremony::{self, CeremonyOptions};
use trustchain::client::{CaClient, Enrollment};
use trustchain::member::{MemberConfig, MemberNode};
use trustchain::messages::TokenCreate;
use trustchain::trust::TrustStore;

/// Arguments of `bench`: the ledger benchmark's, unless a suite is named.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct Args {
    #[command(subcommand)]
    suite: Option<Suite>,
    #[command(flatten)]
    ledger: ledger::Args,
}

/// Another benchmark than the ledger's.
#[derive(Debug, clap::Subcommand)]
enum Suite {
    /// Validators agreeing by BFT consensus over STOQ: finality latency,
    /// throughput against the verification bound, time to convict an
    /// equivocator.
    Consensus(consensus::Args),
}

pub(crate) async fn run(a: Args) -> anyhow::Result<()> {
    match a.suite {
        None => ledger::run(a.ledger).await,
        Some(Suite::Consensus(c)) => consensus::run(c).await,
    }
}

/// FN-DSA-1024 verifications per second on every core, with the key
/// decoded each time (the primitive as specified: the bound) and decoded
/// beforehand (as admission does for senders it knows).
#[derive(Debug, Clone, Copy)]
struct VerifySample {
    decoded_each_time: f64,
    decoded_before: f64,
}

impl VerifySample {
    /// Measures both on `cores` threads, `each` apiece.
    fn take(cores: usize, each: Duration) -> Self {
        VerifySample {
            decoded_each_time: verify_rate(cores, each, true),
            decoded_before: verify_rate(cores, each, false),
        }
    }

    /// The mean of a sample before a run and one after: a change in the
    /// machine's load during the run weighs on both sides of the ratio
    /// alike.
    fn mean(self, after: Self) -> Self {
        VerifySample {
            decoded_each_time: (self.decoded_each_time + after.decoded_each_time) / 2.0,
            decoded_before: (self.decoded_before + after.decoded_before) / 2.0,
        }
    }
}

/// FN-DSA-1024 verifications per second over `threads` threads.
fn verify_rate(threads: usize, duration: Duration, decode: bool) -> f64 {
    let keys: Vec<KeyPair> = (0..8).map(|_| KeyPair::generate(Algorithm::FnDsa1024)).collect();
    type Sample = (Vec<u8>, stoq::crypto::PublicKey, Vec<u8>, stoq::crypto::Signature);
    let samples: Vec<Sample> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            // What a transaction's signature covers: its 64-byte sighash.
            let msg = vec![i as u8; 64];
            let sig = k.sign(&msg).expect("sign");
            (k.public_key().to_compact(), k.public_key().clone(), msg, sig)
        })
        .collect();
    let count = AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let (samples, count) = (&samples, &count);
            s.spawn(move || {
                let mut i = t;
                let mut local = 0;
                while started.elapsed() < duration {
                    let (raw, decoded, msg, sig) = &samples[i % samples.len()];
                    let ok = if decode {
                        let pk = stoq::crypto::PublicKey::from_compact(raw).expect("key");
                        pk.verify(msg, sig).is_ok()
                    } else {
                        decoded.verify(msg, sig).is_ok()
                    };
                    if ok {
                        local += 1;
                    }
                    i += 1;
                }
                count.fetch_add(local, Ordering::Relaxed);
            });
        }
    });
    count.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// A 1-of-1 TrustChain member in this process and an enrolled identity
/// for each node.
struct Pki {
    _dir: tempfile::TempDir,
    member: MemberNode,
    bundle: Arc<trustchain::TrustBundle>,
    /// Each node's TLS context, in the order of the names given.
    tls: Vec<TlsContext>,
    trust: Arc<TrustStore>,
}

impl Pki {
    async fn shutdown(self) {
        drop(self.trust);
        self.member.shutdown().await;
    }
}

/// Starts a TrustChain member and enrolls each `(key, name)`.
async fn pki(nodes: &[(&KeyPair, String)]) -> anyhow::Result<Pki> {
    let dir = tempfile::tempdir()?;
    let port = std::net::UdpSocket::bind("[::1]:0")?.local_addr()?.port();
    let out = ceremony::run(
        &CeremonyOptions {
            members: 1,
            threshold: 1,
            host: Ipv6Addr::LOCALHOST,
            base_port: port,
            http_base_port: 0,
            dns_base_port: 0,
            doq_base_port: 0,
            out_dir: dir.path().join("ca"),
            ..CeremonyOptions::default()
        },
        |_| {},
    )?;
    let admin = stoq::crypto::read_key_file(&out.admin_key)?;
    let bundle = Arc::new(out.bundle);
    let member = MemberNode::start(MemberConfig {
        data_dir: out.member_dirs[0].clone(),
        listen: Some(bundle.members[0].address),
        http_listen: None,
        ..MemberConfig::default()
    })
    .await?;
    let admin_client = CaClient::unenrolled(&admin, bundle.clone())?;
    let mut issued = Vec::with_capacity(nodes.len());
    for (key, name) in nodes {
        let token = admin_client
            .create_token(
                0,
                &TokenCreate {
                    names: vec![name.clone()],
                    ttl_secs: 600,
                    max_lifetime_secs: 0,
                },
            )
            .await?;
        let client = CaClient::unenrolled(key, bundle.clone())?;
        let cert = client
            .enroll(
                key,
                &token,
                &Enrollment {
                    names: vec![name.clone()],
                    ..Enrollment::default()
                },
            )
            .await?;
        client.endpoint().shutdown().await;
        issued.push(cert.certificate);
    }
    let trust = TrustStore::new(bundle.clone());
    admin_client.sync(&trust).await?;
    admin_client.endpoint().shutdown().await;
    let mut tls = Vec::with_capacity(nodes.len());
    for ((key, _), cert) in nodes.iter().zip(issued) {
        tls.push(
            TlsContext::new(
                SecurityMode::PostQuantum,
                Identity::new(vec![cert], (*key).clone())?,
                None,
                bundle.trust_anchors()?,
                vec![trust.check()],
            )?
            .accept_unenrolled_clients(),
        );
    }
    Ok(Pki {
        _dir: dir,
        member,
        bundle,
        tls,
        trust,
    })
}

/// CPU time (user and system) this process has used, from
/// `/proc/self/stat`; `None` where that is not readable.
fn process_cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) end with ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // utime and stime are fields 14 and 15 of the whole line.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // Linux reports them in USER_HZ, 100 on every architecture it runs on.
    Some(ticks as f64 / 100.0)
}
