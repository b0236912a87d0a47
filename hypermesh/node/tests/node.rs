//! A real `hypermesh` process enrolled with a real TrustChain member:
//! transactions over STOQ, JSON-RPC and metrics over HTTP, the CLI, a
//! kill -9 during block production, and a clean SIGTERM stop.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::{run, setup_node, Running, TrustChain, WAIT};
use hypermesh::api::TxStatus;
use hypermesh::client::{build_tx, transfer_call, Client};
use hypermesh::types::Transaction;
use stoq::crypto::{write_key_file, Algorithm, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn hex(b: &[u8]) -> String {
    stoq::crypto::hex(b)
}

async fn http(addr: std::net::SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: node\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let code = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

async fn connect(tc: &TrustChain, node: &common::NodeDir, key: &KeyPair) -> Client {
    let bundle = Arc::new(trustchain::TrustBundle::load(&tc.bundle_file).unwrap());
    Client::connect_with_bundle(key, bundle, node.stoq, &node.name)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_commits_over_stoq_recovers_from_kill_9_and_serves_http_and_the_cli() {
    let tc = TrustChain::start().await;
    let root = tempfile::tempdir().unwrap();
    let alice = KeyPair::generate(Algorithm::FnDsa1024);
    let bob = KeyPair::generate(Algorithm::FnDsa1024);
    let alice_file = root.path().join("alice.key");
    write_key_file(&alice_file, &alice, false).unwrap();
    let alice_id = alice.public_key().node_id().0;
    let bob_id = bob.public_key().node_id().0;
    let node = setup_node(&tc, root.path(), "node-a", &[hex(&alice_id)], 100).await;
    let proc1 = Running::start(&node);
    assert!(
        proc1.banner.contains(&hex(&alice_id)) || proc1.banner.contains("height 0"),
        "{}",
        proc1.banner
    );

    let client = connect(&tc, &node, &alice).await;
    let status = client.status().await.unwrap();
    assert_eq!(status.chain_id, "hypermesh-devnet");

    // 300 transfers of 1..=300, signed up front.
    let n = 300u64;
    let txs: Vec<Transaction> = {
        let (alice, status) = (alice.clone(), status.clone());
        tokio::task::spawn_blocking(move || {
            (0..n)
                .map(|i| {
                    build_tx(
                        &alice,
                        &status,
                        i,
                        transfer_call(&bob_id, "caes", u128::from(i) + 1),
                        100_000,
                        1,
                        1_000_000,
                    )
                    .unwrap()
                })
                .collect()
        })
        .await
        .unwrap()
    };
    let hashes: Vec<_> = txs.iter().map(|t| t.hash().unwrap()).collect();

    // Submit them in batches while blocks are produced; kill -9 as soon as
    // some (not all) are committed.
    for chunk in txs.chunks(50) {
        for r in client.submit(chunk).await.unwrap() {
            r.unwrap();
        }
    }
    let mut seen: BTreeMap<[u8; 32], (u64, u32)> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while seen.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "nothing committed");
        for h in &hashes {
            if let TxStatus::Committed(rec) = client.tx(h).await.unwrap() {
                seen.insert(*h, (rec.height, rec.index));
            }
        }
    }
    let height_before = client.status().await.unwrap().height;
    proc1.kill9();
    client.shutdown().await;

    // Restarted: every commit seen is there, in the same place.
    let proc2 = Running::start(&node);
    let client = connect(&tc, &node, &alice).await;
    assert!(client.status().await.unwrap().height >= height_before);
    for (h, place) in &seen {
        match client.tx(h).await.unwrap() {
            TxStatus::Committed(rec) => assert_eq!((rec.height, rec.index), *place),
            other => panic!("a committed transaction is gone after kill -9: {other:?}"),
        }
    }
    // Resubmitting everything: what was committed is refused as replayed,
    // the rest goes in once.
    let mut refused = 0;
    for chunk in txs.chunks(50) {
        for r in client.submit(chunk).await.unwrap() {
            if let Err(e) = r {
                assert!(matches!(e.code(), 8 | 12), "{e}");
                refused += 1;
            }
        }
    }
    assert!(
        refused >= seen.len(),
        "{refused} refused, {} seen committed",
        seen.len()
    );
    client.wait_for_tx(hashes.last().unwrap(), WAIT).await.unwrap();
    let mut places = std::collections::BTreeSet::new();
    for h in &hashes {
        match client.tx(h).await.unwrap() {
            TxStatus::Committed(rec) => assert!(places.insert((rec.height, rec.index))),
            other => panic!("{other:?}"),
        }
    }
    let bob_info = client.account(&bob_id).await.unwrap();
    assert_eq!(
        bob_info.balance,
        u128::from(n * (n + 1) / 2),
        "each transfer exactly once"
    );
    let alice_info = client.account(&alice_id).await.unwrap();
    assert_eq!(alice_info.next_nonce, n);

    // Proofs verify against the header (the client checks them).
    let key = hypermesh::modules::bank::balance_key(&bob_id, "caes");
    let proof = client.prove(&key, None).await.unwrap();
    assert_eq!(proof.value.unwrap(), bob_info.balance.to_be_bytes().to_vec());

    // JSON-RPC over HTTP and /metrics.
    let (code, body) = http(
        node.http,
        "POST",
        "/",
        r#"{"jsonrpc":"2.0","id":1,"method":"hm.status","params":{}}"#,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(v["result"]["height"].as_u64().unwrap() >= 1, "{v}");
    let (code, body) = http(node.http, "POST", "/", "{not json").await;
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], -32700);
    let (code, metrics) = http(node.http, "GET", "/metrics", "").await;
    assert_eq!(code, 200);
    assert!(metrics.contains("hypermesh_height"), "{metrics}");
    assert!(metrics.contains("hypermesh_committed_txs_total"), "{metrics}");

    // The CLI against the running node.
    client.shutdown().await;
    let config = node.config.to_string_lossy().into_owned();
    let alice_path = alice_file.to_string_lossy().into_owned();
    let bob_hex = hex(&bob_id);
    let out = tokio::task::spawn_blocking(move || {
        let sent = run(&[
            "tx",
            "send",
            "--config",
            &config,
            "--key",
            &alice_path,
            "--to",
            &bob_hex,
            "--amount",
            "5",
        ]);
        let account = run(&["query", "account", &bob_hex, "--config", &config]);
        let block = run(&["block", "latest", "--config", &config]);
        (sent, account, block)
    })
    .await
    .unwrap();
    assert!(out.0.contains("committed in block"), "{}", out.0);
    assert!(out.1.contains(&format!("balance {}", n * (n + 1) / 2 + 5)), "{}", out.1);
    assert!(out.2.starts_with("block "), "{}", out.2);

    proc2.stop();
}
