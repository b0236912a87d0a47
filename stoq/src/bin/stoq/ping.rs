//! `stoq ping`: connect to a STOQ server, report the handshake, then
//! measure RPC round trips like ping(8); `--message` sends one `echo`.

use anyhow::Context;
use bytes::Bytes;
use std::net::{Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use stoq::tls::SecurityMode;
use stoq::{Endpoint, EndpointConfig};

use crate::common::{load_tls, TlsFiles};
use crate::serve::parse_ping_reply;

/// Arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The server's address, IPv6 (e.g. [::1]:4433).
    #[arg(value_name = "ADDR")]
    addr: SocketAddr,
    /// The name the server's certificate must be valid for.
    #[arg(long, value_name = "DNS_NAME")]
    name: String,
    /// This client's certificate (every STOQ connection is mutually
    /// authenticated).
    #[arg(long, value_name = "FILE")]
    cert: PathBuf,
    /// This client's private key (PKCS#8 PEM, mode 0600).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// Trusted root certificate(s) (PEM); the server must chain to one.
    #[arg(long, value_name = "FILE")]
    trust: PathBuf,
    /// Number of pings (0: none, e.g. with --message only).
    #[arg(long, default_value_t = 5)]
    count: u32,
    /// Pause between pings, in milliseconds.
    #[arg(long, default_value_t = 200)]
    interval_ms: u64,
    /// Request body size of each ping, in bytes.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    size: u32,
    /// After the pings, send this text with the `echo` method and print
    /// the reply.
    #[arg(long, value_name = "TEXT")]
    message: Option<String>,
    /// Handshake and per-request timeout, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    /// Local address to bind (default [::1]:0 for a loopback server, [::]:0
    /// otherwise).
    #[arg(long, value_name = "ADDR")]
    bind: Option<SocketAddr>,
}

/// Round-trip statistics in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
struct Summary {
    min: f64,
    avg: f64,
    max: f64,
    p50: f64,
}

fn summarize(rtts: &[Duration]) -> Option<Summary> {
    let mut ms: Vec<f64> = rtts.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    if ms.is_empty() {
        return None;
    }
    ms.sort_by(f64::total_cmp);
    let n = ms.len();
    Some(Summary {
        min: ms[0],
        avg: ms.iter().sum::<f64>() / n as f64,
        max: ms[n - 1],
        // Nearest rank.
        p50: ms[n.div_ceil(2) - 1],
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub(crate) async fn run(args: Args, json: bool) -> anyhow::Result<()> {
    let addr = stoq::endpoint::require_ipv6(args.addr)?;
    let timeout = Duration::from_millis(args.timeout_ms.max(1));
    let tls = load_tls(&TlsFiles {
        mode: SecurityMode::PostQuantum,
        cert: Some(args.cert.clone()),
        key: Some(args.key.clone()),
        trust: Some(args.trust.clone()),
        ..TlsFiles::default()
    })?;
    let bind = args.bind.unwrap_or_else(|| {
        let ip = if addr.ip().is_loopback() {
            Ipv6Addr::LOCALHOST
        } else {
            Ipv6Addr::UNSPECIFIED
        };
        SocketAddr::new(ip.into(), 0)
    });
    let mut config = EndpointConfig {
        listen: bind,
        ..EndpointConfig::default()
    };
    config.timeouts.handshake = timeout;
    config.timeouts.rpc_default_deadline = timeout;
    config.reconnect.max_attempts = 3;
    let endpoint = Endpoint::bind(config, tls).with_context(|| format!("binding the client endpoint on {bind}"))?;

    if !json {
        println!(
            "PING {} ({addr}) over STOQ, post-quantum (X25519MLKEM768, FN-DSA-1024), {}-byte requests",
            args.name, args.size
        );
    }
    // The first key exchange in a process initialises aws-lc (tens of
    // milliseconds); do it before the clock starts, so that the handshake
    // time is the handshake's.
    if let Some(group) = stoq::tls::crypto_provider(SecurityMode::PostQuantum).kx_groups.first() {
        let _ = group.start();
    }
    let started = Instant::now();
    let conn = endpoint.connect(addr, &args.name).await.with_context(|| {
        format!(
            "connecting to {addr} as {} (is `stoq serve` running there, with a certificate for that name from the CA in {}?)",
            args.name,
            args.trust.display()
        )
    })?;
    let handshake = started.elapsed();
    let peer = conn.peer().clone();
    let peer_id = peer.node_id();
    if !json {
        println!(
            "connected in {:.1} ms (handshake): peer node id {peer_id}, names {}, key {}",
            ms(handshake),
            peer.names().join(", "),
            peer.public_key().algorithm()
        );
    }

    let body = Bytes::from(vec![0x5a; args.size as usize]);
    let mut rtts = Vec::new();
    let mut pings = Vec::new();
    let ping_started = Instant::now();
    for seq in 1..=args.count {
        let t = Instant::now();
        let result = conn.call("ping", body.clone(), Some(timeout)).await;
        let rtt = t.elapsed();
        let outcome = match result {
            Ok(reply) => match parse_ping_reply(&reply) {
                Some((server_ns, id)) if id == peer_id => Ok((reply.len(), server_ns)),
                Some(_) => Err("the reply names another node id than the handshake".to_string()),
                None => Err(format!("malformed reply ({} bytes)", reply.len())),
            },
            Err(e) => Err(e.to_string()),
        };
        match outcome {
            Ok((len, server_ns)) => {
                rtts.push(rtt);
                pings.push(serde_json::json!({"seq": seq, "rtt_ms": ms(rtt), "server_time_ns": server_ns}));
                if !json {
                    println!(
                        "{len} bytes from {addr} ({}): seq={seq} rtt={:.3} ms",
                        args.name,
                        ms(rtt)
                    );
                }
            }
            Err(error) => {
                pings.push(serde_json::json!({"seq": seq, "error": error}));
                if !json {
                    println!("seq={seq}: {error}");
                }
            }
        }
        if seq < args.count {
            tokio::time::sleep(Duration::from_millis(args.interval_ms)).await;
        }
    }
    let elapsed = ping_started.elapsed();
    let lost = args.count as usize - rtts.len();
    let summary = summarize(&rtts);
    if !json && args.count > 0 {
        println!("--- {} ping statistics ---", args.name);
        println!(
            "{} sent, {} received, {:.0}% loss, time {:.0} ms",
            args.count,
            rtts.len(),
            100.0 * lost as f64 / f64::from(args.count),
            ms(elapsed)
        );
        if let Some(s) = summary {
            println!(
                "rtt min/avg/max/p50 = {:.3}/{:.3}/{:.3}/{:.3} ms",
                s.min, s.avg, s.max, s.p50
            );
        }
    }

    let mut echo = None;
    let mut echo_failed = None;
    if let Some(text) = &args.message {
        let t = Instant::now();
        match conn
            .call("echo", Bytes::from(text.clone().into_bytes()), Some(timeout))
            .await
        {
            Ok(reply) => {
                let rtt = t.elapsed();
                let reply_text = String::from_utf8_lossy(&reply).into_owned();
                if reply_text != *text {
                    echo_failed = Some("the echo reply differs from the message".to_string());
                }
                if !json {
                    println!("echo: sent {:?}, reply {reply_text:?} in {:.3} ms", text, ms(rtt));
                }
                echo = Some(serde_json::json!({"sent": text, "reply": reply_text, "rtt_ms": ms(rtt)}));
            }
            Err(e) => {
                if !json {
                    println!("echo: {e}");
                }
                echo = Some(serde_json::json!({"sent": text, "error": e.to_string()}));
                echo_failed = Some(format!("echo failed: {e}"));
            }
        }
    }

    conn.close("ping done");
    endpoint.shutdown().await;
    if json {
        let out = serde_json::json!({
            "target": addr.to_string(),
            "name": args.name,
            "handshake_ms": ms(handshake),
            "peer": {
                "node_id": peer_id.to_hex(),
                "names": peer.names(),
                "algorithm": peer.public_key().algorithm().name(),
            },
            "pings": pings,
            "sent": args.count,
            "received": rtts.len(),
            "rtt_ms": summary,
            "echo": echo,
        });
        println!("{out}");
    }
    if lost > 0 {
        anyhow::bail!(
            "{lost} of {} pings failed (see the lines above; is the server overloaded or restarting?)",
            args.count
        );
    }
    if let Some(e) = echo_failed {
        anyhow::bail!(e);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_statistics() {
        assert_eq!(summarize(&[]), None);
        let d = |ms| Duration::from_millis(ms);
        let s = summarize(&[d(4), d(1), d(3), d(2)]).unwrap();
        assert_eq!((s.min, s.max, s.p50), (1.0, 4.0, 2.0));
        assert!((s.avg - 2.5).abs() < 1e-9);
        assert_eq!(summarize(&[d(5), d(1), d(9)]).unwrap().p50, 5.0);
    }
}
