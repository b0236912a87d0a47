//! Four real `hypermesh` validator processes running BFT consensus over
//! STOQ on `[::1]`, enrolled with a real TrustChain member: a transfer
//! commits; with one validator killed (kill -9) the other three keep
//! committing; with two killed the chain halts (no quorum); restarted,
//! all four resume and agree on the blocks and the state.

#![allow(clippy::unwrap_used)]

mod common;

use std::fs::OpenOptions;
use std::net::{Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::{bin, first_line, free_port, free_tcp_port, run, NodeDir, TrustChain, WAIT};
use hypermesh::client::{transfer_call, Client};
use serde_json::{json, Value};
use stoq::crypto::{Algorithm, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::block_in_place;
use tokio::time::{sleep, timeout, Instant};

/// Validators of the chain.
const N: usize = 4;
/// Upper bound of every wait for the chain to reach a state.
const CHAIN_WAIT: Duration = Duration::from_secs(120);
/// How long the chain without a quorum is watched for progress.
const HALT_WATCH: Duration = Duration::from_secs(5);
/// How soon a validator that did not answer at all (still starting) is
/// asked again.
const POLL: Duration = Duration::from_millis(100);
/// Longest wait of one request for a block not yet committed (below the
/// request's own 10 s timeout).
const BLOCK_WAIT: Duration = Duration::from_secs(5);
/// Time for a block decided just before a second kill to be committed,
/// before the halt is observed.
const SETTLE: Duration = Duration::from_secs(2);

fn hex(b: &[u8]) -> String {
    stoq::crypto::hex(b)
}

/// One validator: its directory and, while it runs, its process. Its
/// stderr (the log) goes to `log`, across restarts. Starting and stopping
/// block the thread (run them in `block_in_place`: the TrustChain member
/// serves the starting node from this process's runtime).
struct Validator {
    node: NodeDir,
    log: PathBuf,
    child: Option<Child>,
}

impl Validator {
    /// Starts the process and waits for its banner.
    fn start(&mut self) {
        assert!(self.child.is_none(), "{} is running already", self.node.name);
        let log = OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let mut child = Command::new(bin())
            .args([
                "start",
                "--config",
                &self.node.config.to_string_lossy(),
                "--log",
                "info",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let banner = match first_line(&mut child) {
            Ok(b) => b,
            Err(e) => {
                let _ = child.kill();
                let status = child.wait().ok();
                panic!(
                    "{} printed no banner ({e}; exit status {status:?}); its log:\n{}",
                    self.node.name,
                    self.tail(40)
                );
            }
        };
        assert!(banner.contains("listening on"), "{}: {banner}", self.node.name);
        self.child = Some(child);
    }

    /// Kills the process with SIGKILL (no shutdown path runs).
    fn kill9(&mut self) {
        let mut child = self.child.take().expect("the validator is running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Stops the process with SIGTERM; it must exit cleanly.
    fn stop(&mut self) {
        let mut child = self.child.take().expect("the validator is running");
        let pid = child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        // Waited for on a thread of its own, so the wait has a deadline.
        let (exited, exit) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let status = child.wait();
            let _ = exited.send(());
            status
        });
        let in_time = exit.recv_timeout(WAIT).is_ok();
        if !in_time {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
        }
        let status = waiter.join().expect("the waiting thread").unwrap();
        assert!(
            in_time,
            "{} did not stop within {WAIT:?} of SIGTERM; its log:\n{}",
            self.node.name,
            self.tail(40)
        );
        assert!(
            status.success(),
            "{} exited with {status} on SIGTERM; its log:\n{}",
            self.node.name,
            self.tail(40)
        );
    }

    /// The last `n` lines of its log, without colours.
    fn tail(&self, n: usize) -> String {
        let text = strip_colours(&std::fs::read_to_string(&self.log).unwrap_or_default());
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for Validator {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `text` without ANSI escape sequences (`ESC [ ... letter`).
fn strip_colours(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for e in chars.by_ref() {
                if e.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The ends of every validator's log, for failure messages.
fn tails(vs: &[Validator]) -> String {
    vs.iter()
        .map(|v| format!("--- {} ({}):\n{}", v.node.name, v.log.display(), v.tail(25)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// One JSON-RPC call over HTTP; its `result`, or why there is none.
async fn rpc(addr: SocketAddr, method: &str, params: Value) -> Result<Value, String> {
    let body = json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params }).to_string();
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let req = format!(
            "POST / HTTP/1.1\r\nHost: node\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await.map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.map_err(|e| e.to_string())?;
        Ok::<_, String>(String::from_utf8_lossy(&out).into_owned())
    };
    let text = timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| format!("{method} on {addr}: no answer within 10 s"))??;
    let (_, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("{method} on {addr}: not HTTP: {text}"))?;
    let v: Value = serde_json::from_str(body).map_err(|e| format!("{method} on {addr}: {e}: {body}"))?;
    match v.get("result") {
        Some(r) => Ok(r.clone()),
        None => Err(format!("{method} on {addr}: {v}")),
    }
}

/// The height of the node's last committed block (`None`: no answer).
async fn height(v: &Validator) -> Option<u64> {
    rpc(v.node.http, "hm.status", json!({}))
        .await
        .ok()
        .and_then(|s| s["height"].as_u64())
}

/// Heights of `vs` (`None` where a node does not answer).
async fn heights(vs: &[&Validator]) -> Vec<Option<u64>> {
    let mut out = Vec::new();
    for v in vs {
        out.push(height(v).await);
    }
    out
}

/// Waits until every node of `which` reports a height of at least
/// `at_least`; their heights. Each node is asked for that block with a
/// wait (`hm.blocks` answers as soon as it is committed), so nothing is
/// polled but a node that does not answer at all.
async fn wait_heights(all: &[Validator], which: &[usize], at_least: u64, what: &str) -> Vec<u64> {
    let deadline = Instant::now() + CHAIN_WAIT;
    for &i in which {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let hs = heights(&which.iter().map(|&i| &all[i]).collect::<Vec<_>>()).await;
                panic!(
                    "{what}: validators {which:?} did not all reach height {at_least} within {CHAIN_WAIT:?} (heights {hs:?})\n{}",
                    tails(all)
                );
            }
            let wait_ms = left.min(BLOCK_WAIT).as_millis() as u64;
            let params = json!({ "from": at_least, "max": 1, "wait_ms": wait_ms });
            match rpc(all[i].node.http, "hm.blocks", params).await {
                Ok(r) if r["blocks"].as_array().is_some_and(|b| !b.is_empty()) => break,
                Ok(_) => {}
                // Not answering (still starting): asked again shortly.
                Err(_) => sleep(POLL).await,
            }
        }
    }
    let hs = heights(&which.iter().map(|&i| &all[i]).collect::<Vec<_>>()).await;
    hs.into_iter()
        .map(|h| h.expect("a validator that just served the block reports its height"))
        .collect()
}

/// The highest height any of `which` reports.
async fn max_height(all: &[Validator], which: &[usize]) -> u64 {
    let hs = heights(&which.iter().map(|&i| &all[i]).collect::<Vec<_>>()).await;
    hs.iter()
        .flatten()
        .copied()
        .max()
        .unwrap_or_else(|| panic!("no validator of {which:?} answers (heights {hs:?})\n{}", tails(all)))
}

/// Sends `amount` from `from` to `to` through validator `via`; the height
/// of the block that committed it.
async fn transfer(tc: &TrustChain, all: &[Validator], via: usize, from: &KeyPair, to: &[u8; 32], amount: u128) -> u64 {
    let v = &all[via];
    let bundle = Arc::new(trustchain::TrustBundle::load(&tc.bundle_file).unwrap());
    let client = Client::connect_with_bundle(from, bundle, v.node.stoq, &v.node.name)
        .await
        .unwrap_or_else(|e| panic!("connecting to {}: {e}\n{}", v.node.name, tails(all)));
    let hash = client
        .send(from, transfer_call(to, "caes", amount), 100_000)
        .await
        .unwrap_or_else(|e| panic!("submitting a transfer to {}: {e}\n{}", v.node.name, tails(all)));
    let rec = client
        .wait_for_tx(&hash, CHAIN_WAIT)
        .await
        .unwrap_or_else(|e| panic!("the transfer {} did not commit: {e}\n{}", hex(&hash), tails(all)));
    assert!(
        rec.receipt.error.is_none(),
        "the transfer failed: {:?}",
        rec.receipt.error
    );
    client.shutdown().await;
    rec.height
}

/// `bob`'s balance on every validator of `which`.
async fn balances(all: &[Validator], which: &[usize], bob: &[u8; 32]) -> Vec<String> {
    let mut out = Vec::new();
    for &i in which {
        let a = rpc(all[i].node.http, "hm.account", json!({ "account": hex(bob) }))
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", tails(all)));
        out.push(a["balance"].as_str().unwrap_or_default().to_string());
    }
    out
}

/// Initialises validator `i` of `n` in `root/v<i>`, each listing the
/// others as peers (their STOQ addresses and certificate names).
async fn init_validators(tc: &TrustChain, root: &Path, n: usize) -> Vec<NodeDir> {
    let addrs: Vec<(SocketAddr, SocketAddr)> = (0..n)
        .map(|_| {
            (
                SocketAddr::from((Ipv6Addr::LOCALHOST, free_port())),
                SocketAddr::from((Ipv6Addr::LOCALHOST, free_tcp_port())),
            )
        })
        .collect();
    let mut nodes = Vec::new();
    for (i, (stoq, http)) in addrs.iter().enumerate() {
        let short = format!("v{}", i + 1);
        let name = format!("{short}.mesh");
        let dir = root.join(&short);
        let token = tc.token(&name).await;
        let mut args: Vec<String> = vec![
            "init".into(),
            "--dir".into(),
            dir.to_string_lossy().into_owned(),
            "--bundle".into(),
            tc.bundle_file.to_string_lossy().into_owned(),
            "--token".into(),
            token,
            "--name".into(),
            short,
            "--listen".into(),
            stoq.to_string(),
            "--http".into(),
            http.to_string(),
        ];
        for (j, (peer, _)) in addrs.iter().enumerate() {
            if j != i {
                args.push("--peer".into());
                args.push(format!("{peer}=v{}.mesh", j + 1));
            }
        }
        let out = tokio::task::spawn_blocking(move || run(&args.iter().map(String::as_str).collect::<Vec<_>>()))
            .await
            .unwrap();
        assert!(out.contains(&format!("node {name} account")), "{out}");
        nodes.push(NodeDir {
            config: dir.join("hypermesh.toml"),
            dir,
            stoq: *stoq,
            http: *http,
            name,
        });
    }
    nodes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_validators_commit_survive_one_crash_halt_without_quorum_and_resume() {
    let tc = TrustChain::start().await;
    let root = tempfile::tempdir().unwrap();
    let alice = KeyPair::generate(Algorithm::FnDsa1024);
    let bob = KeyPair::generate(Algorithm::FnDsa1024);
    let alice_id = alice.public_key().node_id().0;
    let bob_id = bob.public_key().node_id().0;

    // Four enrolled validators, one genesis with equal stakes and small
    // proofs of space and time.
    let nodes = init_validators(&tc, root.path(), N).await;
    let genesis = root.path().join("genesis.toml");
    let mut args: Vec<String> = vec![
        "genesis".into(),
        "--out".into(),
        genesis.to_string_lossy().into_owned(),
        "--plot-log2-leaves".into(),
        "10".into(),
        "--vdf-steps".into(),
        "2000".into(),
        "--balance".into(),
        format!("{}=1000000000", hex(&alice_id)),
    ];
    for n in &nodes {
        args.push("--validator".into());
        args.push(format!("{}=100@::1", n.dir.join("node.key").display()));
    }
    tokio::task::spawn_blocking(move || run(&args.iter().map(String::as_str).collect::<Vec<_>>()))
        .await
        .unwrap();
    let mut vs: Vec<Validator> = nodes
        .into_iter()
        .map(|node| {
            std::fs::copy(&genesis, node.dir.join("genesis.toml")).unwrap();
            Validator {
                log: node.dir.join("node.log"),
                node,
                child: None,
            }
        })
        .collect();
    let all: Vec<usize> = (0..N).collect();

    // All four start and commit blocks.
    for v in &mut vs {
        block_in_place(|| v.start());
    }
    let hs = wait_heights(&vs, &all, 1, "with all 4 validators").await;
    eprintln!("all 4 validators commit: heights {hs:?}");

    // A transfer submitted to validator 2 commits, and every validator has it.
    let h = transfer(&tc, &vs, 1, &alice, &bob_id, 25).await;
    wait_heights(&vs, &all, h, "after the first transfer").await;
    assert_eq!(balances(&vs, &all, &bob_id).await, vec!["25"; N], "bob's balance");
    eprintln!("a transfer committed at height {h} on all 4");

    // kill -9 one validator: the three others keep committing, and take
    // transactions.
    vs[3].kill9();
    let live = [0, 1, 2];
    let before = max_height(&vs, &live).await;
    let hs = wait_heights(&vs, &live, before + 3, "with validator 4 killed").await;
    eprintln!("validator 4 killed at height {before}: the others reached {hs:?}");
    let h = transfer(&tc, &vs, 0, &alice, &bob_id, 5).await;
    wait_heights(&vs, &live, h, "after the second transfer").await;
    assert_eq!(balances(&vs, &live, &bob_id).await, vec!["30"; 3], "bob's balance");
    eprintln!("a transfer committed at height {h} on the 3 left");

    // kill -9 a second: 2 of 4 is no quorum, the chain halts. (A block
    // decided just before the kill may still be committed: let it land.)
    vs[2].kill9();
    let live = [0, 1];
    sleep(SETTLE).await;
    let halted = max_height(&vs, &live).await;
    sleep(HALT_WATCH).await;
    let after = max_height(&vs, &live).await;
    assert_eq!(
        after,
        halted,
        "the chain advanced with 2 of 4 validators (no quorum)\n{}",
        tails(&vs)
    );
    eprintln!("validator 3 killed: the chain halted at height {halted}");

    // Both restarted: the chain resumes past the halt on all four.
    block_in_place(|| {
        vs[2].start();
        vs[3].start();
    });
    let hs = wait_heights(&vs, &all, halted + 2, "after the restarts").await;
    eprintln!("validators 3 and 4 restarted: heights {hs:?}");

    // All four hold the same block and state at a height all have.
    let common = hs.iter().copied().min().unwrap();
    let mut seen = Vec::new();
    for v in &vs {
        let b = rpc(v.node.http, "hm.block", json!({ "height": common }))
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", tails(&vs)));
        seen.push((
            b["hash"].as_str().unwrap_or_default().to_string(),
            b["state_root"].as_str().unwrap_or_default().to_string(),
        ));
    }
    assert!(
        !seen[0].0.is_empty() && !seen[0].1.is_empty(),
        "block {common}: {seen:?}"
    );
    assert!(
        seen.iter().all(|s| *s == seen[0]),
        "validators disagree on block {common} (hash, state root): {seen:?}\n{}",
        tails(&vs)
    );
    assert_eq!(balances(&vs, &all, &bob_id).await, vec!["30"; N], "bob's balance");
    eprintln!("all 4 agree on block {common}: {:?}", seen[0]);

    // A clean stop of each.
    block_in_place(|| vs.iter_mut().rev().for_each(Validator::stop));
}
