//! `stoq serve`: an RPC server answering `echo` and `ping`, with
//! Prometheus `/metrics`, stopped gracefully by SIGINT or SIGTERM.

use anyhow::Context;
use bytes::{BufMut, Bytes, BytesMut};
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::signal::unix::{signal, SignalKind};

use stoq::crypto::NodeId;
use stoq::endpoint::{RpcError, RpcRequest};
use stoq::tls::SecurityMode;
use stoq::{Endpoint, Incoming};

use crate::common::{load_tls, mode_name, parse_mode};
use crate::config::ServeConfig;
use crate::metrics_http;

/// Arguments. Flags override the configuration file, which overrides the
/// built-in defaults (`stoq serve --print-config` shows the result).
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Configuration file (TOML; see stoq/stoq.example.toml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// QUIC listen address, IPv6 only (default [::1]:4433; port 0 picks a
    /// free one).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// This node's certificate (PEM: leaf, then intermediates; no root).
    #[arg(long, value_name = "FILE")]
    cert: Option<PathBuf>,
    /// This node's private key (PKCS#8 PEM, mode 0600).
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// Trusted root certificate(s) (PEM); clients must chain to one.
    #[arg(long, value_name = "FILE")]
    trust: Option<PathBuf>,
    /// Security mode: post-quantum (default) or classical-compat.
    #[arg(long, value_parser = parse_mode)]
    mode: Option<SecurityMode>,
    /// Ed25519 certificate for classical peers (classical-compat only).
    #[arg(long, value_name = "FILE")]
    classical_cert: Option<PathBuf>,
    /// Ed25519 private key for classical peers (classical-compat only).
    #[arg(long, value_name = "FILE")]
    classical_key: Option<PathBuf>,
    /// Roots trusted for classical peers (classical-compat only).
    #[arg(long, value_name = "FILE")]
    classical_trust: Option<PathBuf>,
    /// Address of the Prometheus /metrics endpoint (default [::1]:9464).
    #[arg(long, value_name = "ADDR", conflicts_with = "no_metrics")]
    metrics: Option<SocketAddr>,
    /// Do not serve /metrics.
    #[arg(long)]
    no_metrics: bool,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    print_config: bool,
}

impl Args {
    fn config(&self) -> anyhow::Result<ServeConfig> {
        let mut cfg = match &self.config {
            Some(path) => ServeConfig::load(path)?,
            None => ServeConfig::default(),
        };
        if let Some(listen) = self.listen {
            cfg.endpoint.listen = listen;
        }
        let tls = &mut cfg.tls;
        for (flag, field) in [
            (&self.cert, &mut tls.cert),
            (&self.key, &mut tls.key),
            (&self.trust, &mut tls.trust),
            (&self.classical_cert, &mut tls.classical_cert),
            (&self.classical_key, &mut tls.classical_key),
            (&self.classical_trust, &mut tls.classical_trust),
        ] {
            if flag.is_some() {
                field.clone_from(flag);
            }
        }
        if let Some(mode) = self.mode {
            tls.mode = mode;
        }
        if let Some(metrics) = self.metrics {
            cfg.metrics_listen = metrics.to_string();
        }
        if self.no_metrics {
            cfg.metrics_listen = String::new();
        }
        Ok(cfg)
    }
}

/// The reply of the `ping` method: the server's UNIX time in nanoseconds
/// (u64, big-endian), then its 32-byte node id.
pub(crate) fn ping_reply(node: NodeId, now: SystemTime) -> Bytes {
    let ns = now.duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    let mut b = BytesMut::with_capacity(8 + 32);
    b.put_u64(ns);
    b.put_slice(&node.0);
    b.freeze()
}

/// Parses a [`ping_reply`]: (UNIX time in ns, node id).
pub(crate) fn parse_ping_reply(b: &[u8]) -> Option<(u64, NodeId)> {
    let (ns, id) = b.split_first_chunk::<8>()?;
    Some((u64::from_be_bytes(*ns), NodeId(id.try_into().ok()?)))
}

fn describe_mode(mode: SecurityMode) -> &'static str {
    match mode {
        SecurityMode::PostQuantum => "X25519MLKEM768 key exchange, FN-DSA-1024 certificates",
        SecurityMode::ClassicalCompat => "X25519MLKEM768 or X25519 key exchange, FN-DSA-1024 or Ed25519 certificates",
    }
}

pub(crate) async fn run(args: Args, json: bool) -> anyhow::Result<()> {
    let cfg = args.config()?;
    if args.print_config {
        print!(
            "{}",
            toml::to_string_pretty(&cfg).context("printing the configuration")?
        );
        return Ok(());
    }
    // IPv4 is refused with the library's message before anything else.
    let listen = stoq::endpoint::require_ipv6(cfg.endpoint.listen)?;
    let metrics_addr = cfg.metrics_addr()?;
    let tls = load_tls(&cfg.tls)?;
    // Handlers first, so that a signal arriving right after startup is
    // taken as a request to stop rather than killing the process.
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let metrics_listener = metrics_addr.map(metrics_http::bind).transpose()?;
    let endpoint = Endpoint::bind(cfg.endpoint.clone(), tls).with_context(|| {
        format!("starting the QUIC endpoint on {listen} (is the port in use? choose another with --listen)")
    })?;

    endpoint.register("echo", |req: RpcRequest| async move { Ok::<_, RpcError>(req.body) });
    let node_id = endpoint.node_id();
    endpoint.register("ping", move |_req: RpcRequest| async move {
        Ok::<_, RpcError>(ping_reply(node_id, SystemTime::now()))
    });
    if let Some(mut incoming) = endpoint.take_incoming() {
        // Nothing consumes messages here; drain them so peers never block.
        tokio::spawn(async move {
            while let Some(event) = incoming.recv().await {
                match event {
                    Incoming::Message { from, payload } => {
                        tracing::info!(peer = %from.node_id().short(), len = payload.len(), "message received")
                    }
                    Incoming::Datagram { from, payload } => {
                        tracing::debug!(peer = %from.node_id().short(), len = payload.len(), "datagram received")
                    }
                }
            }
        });
    }

    let mut registry = Registry::default();
    endpoint.metrics().register(&mut registry);
    let metrics = match metrics_listener {
        Some(listener) => {
            let addr = listener.local_addr()?;
            Some((addr, tokio::spawn(metrics_http::serve(listener, Arc::new(registry)))))
        }
        None => None,
    };
    let metrics_url = metrics.as_ref().map(|(addr, _)| format!("http://{addr}/metrics"));

    let bound = endpoint.local_addr()?;
    let names = endpoint.tls().current_certificate()?.dns_names();
    let mode = cfg.tls.mode;
    if json {
        let out = serde_json::json!({
            "listening": bound.to_string(),
            "node_id": node_id.to_hex(),
            "names": names,
            "mode": mode_name(mode),
            "metrics": metrics_url,
            "methods": ["echo", "ping"],
        });
        println!("{out}");
    } else {
        println!("node id {node_id}");
        println!("names: {}", names.join(", "));
        println!("security: {} ({})", mode_name(mode), describe_mode(mode));
        println!("RPC methods: echo, ping");
        match &metrics_url {
            Some(url) => println!("metrics on {url}"),
            None => println!("metrics off"),
        }
        // Last, in this exact form: scripts and tests wait for it.
        println!("listening on {bound}");
        println!("press Ctrl-C to stop");
    }

    let received = tokio::select! {
        _ = sigterm.recv() => "SIGTERM",
        _ = sigint.recv() => "SIGINT",
    };
    tracing::info!(signal = received, "shutting down");
    if !json {
        println!("{received} received: closing connections");
    }
    endpoint.shutdown().await;
    if let Some((_, task)) = metrics {
        task.abort();
    }
    if !json {
        println!("stopped");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn ping_reply_round_trip() {
        let id = NodeId([7; 32]);
        let t = UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
        let reply = ping_reply(id, t);
        assert_eq!(reply.len(), 40);
        assert_eq!(parse_ping_reply(&reply), Some((1_700_000_000_123_456_789, id)));
        assert_eq!(parse_ping_reply(&reply[..39]), None);
        assert_eq!(parse_ping_reply(&[reply.as_ref(), b"x"].concat()), None);
    }
}
