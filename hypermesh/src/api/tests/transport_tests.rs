//! Both transports end to end against the fake node.

use super::*;

// --- STOQ end to end ----------------------------------------------------------------

/// An endpoint on `[::1]` serving `api`, with a certificate for
/// `node.test` from a fresh root; the root's anchors.
fn stoq_server(api: Arc<dyn NodeApi>) -> (Endpoint, TrustAnchors) {
    let root_key = KeyPair::generate(Algorithm::FnDsa1024);
    let subject = "CN=HyperMesh API Test Root";
    let issuer = Issuer::self_signed(root_key.clone(), subject).unwrap();
    let root = issue(
        &CertificateParams::new(CertKind::Root, subject, DAY),
        root_key.public_key(),
        &issuer,
    )
    .unwrap();
    let issuer = Issuer::from_certificate(&root, root_key).unwrap();
    let node_key = KeyPair::generate(Algorithm::FnDsa1024);
    let leaf = issue(
        &CertificateParams::new(CertKind::Leaf, "CN=node.test", DAY).with_dns_names(["node.test"]),
        node_key.public_key(),
        &issuer,
    )
    .unwrap();
    let anchors = TrustAnchors::new([root]).unwrap();
    let tls = TlsContext::new(
        SecurityMode::PostQuantum,
        Identity::new(vec![leaf], node_key).unwrap(),
        None,
        anchors.clone(),
        vec![],
    )
    .unwrap()
    .accept_unenrolled_clients();
    let config = EndpointConfig {
        listen: "[::1]:0".parse().unwrap(),
        ..Default::default()
    };
    let endpoint = Endpoint::bind(config, tls).unwrap();
    stoq_rpc::register(&endpoint, api);
    (endpoint, anchors)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_crosses_stoq_with_typed_errors() {
    let f = fixture();
    let api = fake();
    let (server, anchors) = stoq_server(api.clone());
    let addr = server.local_addr().unwrap();
    let key = KeyPair::generate(Algorithm::FnDsa1024);
    let c = Client::unenrolled(&key, anchors, addr, "node.test").await.unwrap();

    // submit: ids, exact refusals, local refusals.
    let hashes: Vec<Hash> = f.txs.iter().map(|t| t.hash().unwrap()).collect();
    let results = c.submit(&[f.txs[0].clone(), f.gap_tx.clone()]).await.unwrap();
    assert_eq!(results, vec![Ok(hashes[0]), Err(gap())]);
    assert_eq!(c.submit_one(&f.txs[1]).await.unwrap(), hashes[1]);
    let refused = c.submit_one(&f.gap_tx).await.unwrap_err();
    assert_eq!(refused, ClientError::Tx(RemoteTxError::from(gap())));
    assert_eq!(refused.code(), Some(1009));
    let raw = c
        .submit_raw(vec![
            Bytes::from(vec![0; MAX_TX_BYTES + 1]),
            Bytes::from_static(b"junk"),
        ])
        .await
        .unwrap();
    assert!(matches!(raw[0], Err(TxError::Oversized { .. })), "{raw:?}");
    assert!(matches!(raw[1], Err(TxError::Malformed(_))), "{raw:?}");
    // More than one frame's worth (the node reads 1 MiB frames): sent in
    // several calls, answered in order.
    let n = (1 << 20) / f.txs[0].encode().unwrap().len() + 100;
    let many = vec![f.txs[0].clone(); n];
    assert!(many.iter().map(|t| t.encode().unwrap().len()).sum::<usize>() > 1 << 20);
    let results = c.submit(&many).await.unwrap();
    assert_eq!(results, vec![Ok(hashes[0]); n]);

    // reads
    assert_eq!(c.status().await.unwrap(), f.status);
    assert_eq!(c.block(BlockRef::Latest).await.unwrap().unwrap(), *f.blocks[2]);
    assert_eq!(c.block(BlockRef::Height(1)).await.unwrap().unwrap(), *f.blocks[0]);
    let h2 = f.blocks[1].header.hash().unwrap();
    assert_eq!(c.block(BlockRef::Hash(h2)).await.unwrap().unwrap(), *f.blocks[1]);
    assert_eq!(c.block(BlockRef::Height(9)).await.unwrap(), None);
    assert_eq!(c.receipts(2).await.unwrap(), f.receipts[1]);
    match c.tx(&hashes[2]).await.unwrap() {
        TxStatus::Committed(rec) => assert_eq!((rec.height, &rec.tx), (3, &f.txs[2])),
        other => panic!("{other:?}"),
    }
    assert_eq!(c.tx(&[1; 32]).await.unwrap(), TxStatus::Pending);
    assert_eq!(c.tx(&[2; 32]).await.unwrap(), TxStatus::Unknown);
    let info = c.account(&[5; 32]).await.unwrap();
    assert_eq!((info.pending_nonce, info.balance), (6, u128::MAX));
    assert_eq!(
        c.query("bank", "balance", &[1, 2], Some(2)).await.unwrap(),
        (2, b"balance\x01\x02".to_vec())
    );
    let proof = c.prove(PROOF_KEY, None).await.unwrap();
    assert_eq!(proof.value.as_deref(), Some(&b"100"[..]));

    // Errors keep their codes and come back as the same ApiError.
    let e = c.receipts(0).await.unwrap_err();
    assert_eq!(e, ClientError::Api(ApiError::NotFound("no block at height 0".into())));
    assert_eq!(e.code(), Some(404));
    let e = c.account(&[0; 32]).await.unwrap_err();
    assert_eq!(e, ClientError::Api(ApiError::Unavailable("pruned".into())));
    let e = c.query("nope", "x", &[], None).await.unwrap_err();
    assert_eq!(e, ClientError::Api(ApiError::Query("no module nope".into())));
    let e = c.query("busy", "x", &[], None).await.unwrap_err();
    assert_eq!(e.code(), Some(503));
    let e = c.query("bad", "x", &[], None).await.unwrap_err();
    assert_eq!(e, ClientError::Api(ApiError::BadRequest("bad arguments".into())));
    // A refusal as a whole call's error: code and message, no fields.
    match c.query("tx", "x", &[], None).await.unwrap_err() {
        ClientError::Tx(t) => {
            assert_eq!((t.code, t.api_code(), &t.error), (9, 1009, &None));
            assert_eq!(t.message, gap().to_string());
        }
        other => panic!("{other:?}"),
    }
    // A proof that does not verify for the key is refused by the client.
    assert!(matches!(c.prove(b"forged", None).await, Err(ClientError::Proof(_))));
    assert!(matches!(
        c.prove(PROOF_KEY, Some(2)).await,
        Err(ClientError::Api(ApiError::Unavailable(_)))
    ));

    // subscriptions
    let blocks = c.blocks_from(2, 10, Duration::ZERO).await.unwrap();
    assert_eq!(blocks, vec![(*f.blocks[1]).clone(), (*f.blocks[2]).clone()]);
    let blocks = c.blocks_from(0, 1, Duration::ZERO).await.unwrap();
    assert_eq!(blocks[0].header.height, 1, "height 0 is no block");
    let started = std::time::Instant::now();
    assert!(c
        .blocks_from(4, 10, Duration::from_millis(200))
        .await
        .unwrap()
        .is_empty());
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(api.waits.lock().unwrap().last(), Some(&Duration::from_millis(200)));
    let (events, next) = c.events_from(1, Some("bank"), None, 100, Duration::ZERO).await.unwrap();
    assert_eq!(next, 4);
    assert_eq!(events, vec![f.events[0].clone(), f.events[2].clone()]);
    let (events, next) = c
        .events_from(5, None, None, 100, Duration::from_millis(50))
        .await
        .unwrap();
    assert_eq!((events.len(), next), (0, 5));

    // waiting for a transaction
    let rec = c.wait_for_tx(&hashes[0], Duration::from_secs(5)).await.unwrap();
    assert_eq!(rec.height, 1);
    let e = c.wait_for_tx(&[2; 32], Duration::from_millis(300)).await.unwrap_err();
    assert!(matches!(e, ClientError::Timeout(_)), "{e}");

    // Raw calls: the node's limits and the deadline.
    let conn = c.endpoint().connect(addr, "node.test").await.unwrap();
    let e = conn
        .call(methods::STATUS, Bytes::from_static(&[0]), None)
        .await
        .unwrap_err();
    assert!(
        matches!(e, RpcError::BadRequest(ref m) if m.contains("trailing")),
        "{e}"
    );
    let e = conn.call("hm.nope", Bytes::new(), None).await.unwrap_err();
    assert!(matches!(e, RpcError::UnknownMethod(_)), "{e}");
    // An answer budget of one byte still carries one block.
    let small = BlocksRequest {
        from: 1,
        max: 64,
        wait: Duration::ZERO,
        max_bytes: 1,
    };
    let answer = conn
        .call(methods::BLOCKS, Bytes::from(small.encode()), None)
        .await
        .unwrap();
    assert_eq!(wire::decode_blocks(&answer).unwrap().len(), 1);
    // A long wait asked with a short deadline ends before the deadline.
    let long = BlocksRequest {
        from: 10,
        max: 1,
        wait: Duration::from_secs(20),
        max_bytes: 0,
    };
    let answer = conn
        .call(
            methods::BLOCKS,
            Bytes::from(long.encode()),
            Some(Duration::from_millis(1500)),
        )
        .await
        .unwrap();
    assert!(wire::decode_blocks(&answer).unwrap().is_empty());
    assert_eq!(api.waits.lock().unwrap().last(), Some(&Duration::from_millis(500)));

    c.shutdown().await;
    server.shutdown().await;
}

// --- HTTP end to end ------------------------------------------------------------------

struct HttpAnswer {
    status: u16,
    headers: String,
    body: Vec<u8>,
}

impl HttpAnswer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&b[..line_end]).unwrap().trim(), 16).unwrap();
        b = &b[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

/// One HTTP/1.1 exchange on a fresh connection.
async fn http(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> HttpAnswer {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    // A refused body may be cut off by the server: that is its answer.
    let _ = s.write_all(body).await;
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw).await;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let headers = String::from_utf8(raw[..split].to_vec()).unwrap().to_ascii_lowercase();
    let status = headers.split(' ').nth(1).unwrap().parse().unwrap();
    let mut body = raw[split + 4..].to_vec();
    if headers.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    HttpAnswer { status, headers, body }
}

async fn rpc(addr: SocketAddr, method: &str, params: Value) -> Value {
    let request = json!({ "jsonrpc": "2.0", "method": method, "params": params, "id": 7 });
    let answer = http(addr, "POST", "/", request.to_string().as_bytes()).await;
    assert_eq!(answer.status, 200);
    let v = answer.json();
    assert_eq!((&v["jsonrpc"], &v["id"]), (&json!("2.0"), &json!(7)), "{v}");
    v
}

async fn result(addr: SocketAddr, method: &str, params: Value) -> Value {
    let v = rpc(addr, method, params).await;
    assert!(v.get("error").is_none(), "{v}");
    v["result"].clone()
}

async fn error(addr: SocketAddr, method: &str, params: Value) -> Value {
    let v = rpc(addr, method, params).await;
    assert!(v.get("result").is_none(), "{v}");
    v["error"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_crosses_json_rpc_with_typed_errors() {
    let f = fixture();
    let listener = tokio::net::TcpListener::bind("[::1]:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let metrics: http::MetricsFn = Arc::new(|| "# TYPE up gauge\nup 1\n# EOF\n".to_string());
    let server = tokio::spawn(http::serve(listener, fake(), Some(metrics), shutdown.clone()));
    let hashes: Vec<String> = f.txs.iter().map(|t| hex(&t.hash().unwrap())).collect();
    let tx_hex = |t: &Transaction| hex(&t.encode().unwrap());

    // status
    let s = result(addr, "hm.status", Value::Null).await;
    assert_eq!(s["chain_id"], json!(CHAIN));
    assert_eq!(s["height"], json!(3));
    assert_eq!(s["tip_hash"], json!(hex(&f.status.tip_hash)));
    assert_eq!(s["min_fee_per_gas"], json!((u128::MAX / 3).to_string()));
    assert_eq!(s["pow_bits"], json!(BITS));
    assert_eq!(result(addr, "hm.status", json!({})).await, s);

    // blocks
    assert_eq!(result(addr, "hm.block", json!({})).await["height"], json!(3));
    let b1 = result(addr, "hm.block", json!({ "height": 1, "raw": true })).await;
    assert_eq!(
        Block::decode(&unhex(b1["raw"].as_str().unwrap()).unwrap()).unwrap(),
        *f.blocks[0]
    );
    let h2 = hex(&f.blocks[1].header.hash().unwrap());
    let b2 = result(addr, "hm.block", json!({ "hash": h2 })).await;
    assert_eq!((&b2["height"], &b2["hash"]), (&json!(2), &json!(h2)));
    assert_eq!(b2["txs"][0]["hash"], json!(hashes[1]));
    assert_eq!(result(addr, "hm.block", json!({ "height": 9 })).await, Value::Null);
    let e = error(addr, "hm.block", json!({ "height": 1, "hash": h2 })).await;
    assert_eq!(e["code"], json!(-32602));

    // receipts, tx, account
    let r = result(addr, "hm.receipts", json!({ "height": 1 })).await;
    assert_eq!(r[0]["tx_hash"], json!(hashes[0]));
    let e = error(addr, "hm.receipts", json!({ "height": 0 })).await;
    assert_eq!((&e["code"], &e["data"]["kind"]), (&json!(404), &json!("NotFound")));
    let t = result(addr, "hm.tx", json!({ "hash": hashes[2] })).await;
    assert_eq!(
        (&t["status"], &t["height"], &t["index"]),
        (&json!("committed"), &json!(3), &json!(0))
    );
    assert_eq!(t["tx"]["nonce"], json!(3));
    assert_eq!(t["receipt"]["tx_hash"], json!(hashes[2]));
    let t = result(addr, "hm.tx", json!({ "hash": hex(&[1; 32]) })).await;
    assert_eq!(t, json!({ "status": "pending" }));
    let t = result(addr, "hm.tx", json!({ "hash": hex(&[2; 32]) })).await;
    assert_eq!(t, json!({ "status": "unknown" }));
    let e = error(addr, "hm.tx", json!({ "hash": "abcd" })).await;
    assert_eq!(e["code"], json!(-32602));
    let a = result(addr, "hm.account", json!({ "account": hex(&[5; 32]) })).await;
    assert_eq!(
        a,
        json!({
            "height": 3, "next_nonce": 4, "pending_nonce": 6,
            "balance": u128::MAX.to_string(), "locked": "12",
        })
    );
    let e = error(addr, "hm.account", json!({ "account": hex(&[0; 32]) })).await;
    assert_eq!((&e["code"], &e["data"]["kind"]), (&json!(410), &json!("Unavailable")));

    // query, prove
    let q = result(
        addr,
        "hm.query",
        json!({ "module": "bank", "path": "balance", "args": "0102" }),
    )
    .await;
    assert_eq!(q, json!({ "height": 3, "value": hex(b"balance\x01\x02") }));
    let e = error(addr, "hm.query", json!({ "module": "nope", "path": "x" })).await;
    assert_eq!((&e["code"], &e["data"]["kind"]), (&json!(422), &json!("Query")));
    let e = error(addr, "hm.query", json!({ "module": "bad", "path": "x" })).await;
    assert_eq!((&e["code"], &e["data"]["kind"]), (&json!(-32602), &json!("BadRequest")));
    // A transaction refusal as a call's error: the same code as on STOQ.
    let e = error(addr, "hm.query", json!({ "module": "tx", "path": "x" })).await;
    assert_eq!(e["code"], json!(1009));
    assert_eq!(e["data"], json!({ "kind": "Tx", "tx_code": 9, "tx_kind": "NonceGap" }));
    let p = result(addr, "hm.prove", json!({ "key": hex(PROOF_KEY) })).await;
    assert_eq!((&p["height"], &p["value"]), (&json!(3), &json!(hex(b"100"))));
    assert_eq!(p["header"]["height"], json!(3));
    // The hex encodings verify on their own.
    let proof = StateProof::decode(&unhex(p["proof"].as_str().unwrap()).unwrap()).unwrap();
    let root: Hash = unhex(p["root"].as_str().unwrap()).unwrap().try_into().unwrap();
    proof.verify(root, PROOF_KEY, Some(b"100")).unwrap();
    let header = BlockHeader::decode(&unhex(p["header_raw"].as_str().unwrap()).unwrap()).unwrap();
    assert_eq!(header.state_root, root);

    // subscriptions
    let b = result(addr, "hm.blocks", json!({ "from": 2 })).await;
    assert_eq!(b["next"], json!(4));
    let heights: Vec<&Value> = b["blocks"].as_array().unwrap().iter().map(|b| &b["height"]).collect();
    assert_eq!(heights, [&json!(2), &json!(3)]);
    let b = result(addr, "hm.blocks", json!({ "from": 0, "max": 1, "raw": true })).await;
    assert_eq!((&b["next"], &b["blocks"][0]["height"]), (&json!(2), &json!(1)));
    let raw = unhex(b["blocks"][0]["raw"].as_str().unwrap()).unwrap();
    assert_eq!(Block::decode(&raw).unwrap(), *f.blocks[0]);
    let b = result(addr, "hm.blocks", json!({ "from": 10, "wait_ms": 50 })).await;
    assert_eq!(b, json!({ "blocks": [], "next": 10 }));
    let ev = result(addr, "hm.events", json!({ "from": 1, "module": "staking" })).await;
    assert_eq!(ev["next"], json!(4));
    assert_eq!(ev["events"][0]["kind"], json!("reward"));
    assert_eq!(ev["events"][0]["height"], json!(2));
    assert_eq!(ev["events"].as_array().unwrap().len(), 1);

    // submit: a list, and one
    let s = result(
        addr,
        "hm.submit",
        json!({ "txs": [tx_hex(&f.txs[0]), tx_hex(&f.gap_tx), "00"] }),
    )
    .await;
    assert_eq!(s[0], json!({ "hash": hashes[0] }));
    assert_eq!(s[1]["error"]["code"], json!(1009));
    assert_eq!(s[1]["error"]["kind"], json!("NonceGap"));
    assert_eq!(s[2]["error"]["code"], json!(1001), "malformed");
    let one = result(addr, "hm.submit", json!({ "tx": tx_hex(&f.txs[1]) })).await;
    assert_eq!(one, json!({ "hash": hashes[1] }));
    let e = error(addr, "hm.submit", json!({ "tx": tx_hex(&f.gap_tx) })).await;
    assert_eq!(e["code"], json!(1009));
    assert_eq!(e["data"]["tx_code"], json!(9));
    let e = error(addr, "hm.submit", json!({ "txs": ["zz"] })).await;
    assert_eq!(e["code"], json!(-32602));
    let e = error(addr, "hm.submit", json!({})).await;
    assert_eq!(e["code"], json!(-32602));

    // malformed calls
    for (params, why) in [
        (json!({}), "missing field"),
        (json!({ "height": "one" }), "wrong type"),
        (json!({ "height": 1, "extra": 2 }), "unknown field"),
        (json!([1]), "positional"),
    ] {
        let e = error(addr, "hm.receipts", params).await;
        assert_eq!(e["code"], json!(-32602), "{why}: {e}");
    }
    let e = error(addr, "hm.nope", Value::Null).await;
    assert_eq!(e["code"], json!(-32601));
    let parse = http(addr, "POST", "/", b"{\"jsonrpc\": \"2.0\", ").await;
    assert_eq!(parse.status, 200);
    let v = parse.json();
    assert_eq!((&v["error"]["code"], &v["id"]), (&json!(-32700), &Value::Null));
    let bad_version = json!({ "jsonrpc": "1.0", "method": "hm.status", "id": 3 });
    let v = http(addr, "POST", "/", bad_version.to_string().as_bytes()).await.json();
    assert_eq!((&v["error"]["code"], &v["id"]), (&json!(-32600), &json!(3)));
    let v = http(addr, "POST", "/", b"[]").await.json();
    assert_eq!(v["error"]["code"], json!(-32600));
    let too_many: Vec<Value> = (0..65)
        .map(|i| json!({ "jsonrpc": "2.0", "method": "hm.status", "id": i }))
        .collect();
    let v = http(addr, "POST", "/", Value::Array(too_many).to_string().as_bytes())
        .await
        .json();
    assert_eq!(v["error"]["code"], json!(-32600));

    // a batch: answers in order, none for the notification
    let batch = json!([
        { "jsonrpc": "2.0", "method": "hm.status", "id": 1 },
        { "jsonrpc": "2.0", "method": "hm.status" },
        { "jsonrpc": "2.0", "method": "hm.nope", "id": "b" },
        42,
        { "jsonrpc": "2.0", "method": "hm.blocks", "params": { "from": 3 }, "id": 2 },
    ]);
    let v = http(addr, "POST", "/", batch.to_string().as_bytes()).await.json();
    let v = v.as_array().unwrap();
    assert_eq!(v.len(), 4, "{v:?}");
    assert_eq!((&v[0]["id"], &v[0]["result"]["height"]), (&json!(1), &json!(3)));
    assert_eq!((&v[1]["id"], &v[1]["error"]["code"]), (&json!("b"), &json!(-32601)));
    assert_eq!((&v[2]["id"], &v[2]["error"]["code"]), (&Value::Null, &json!(-32600)));
    assert_eq!((&v[3]["id"], &v[3]["result"]["next"]), (&json!(2), &json!(4)));
    let notifications = json!([{ "jsonrpc": "2.0", "method": "hm.status" }]);
    let answer = http(addr, "POST", "/", notifications.to_string().as_bytes()).await;
    assert_eq!((answer.status, answer.body.len()), (204, 0));

    // too big
    let big = vec![b' '; http::MAX_BODY_BYTES + 1];
    assert_eq!(http(addr, "POST", "/", &big).await.status, 413);

    // health and metrics
    let health = http(addr, "GET", "/health", b"").await;
    assert_eq!((health.status, health.body.as_slice()), (200, &b"ok"[..]));
    let m = http(addr, "GET", "/metrics", b"").await;
    assert_eq!(m.status, 200);
    assert!(
        m.headers
            .contains(&format!("content-type: {}", http::METRICS_CONTENT_TYPE)),
        "{}",
        m.headers
    );
    assert!(String::from_utf8(m.body).unwrap().contains("up 1"));

    shutdown.cancel();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn waiting_http_calls_end_at_shutdown() {
    let listener = tokio::net::TcpListener::bind("[::1]:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(http::serve(listener, fake(), None, shutdown.clone()));
    assert_eq!(http(addr, "GET", "/metrics", b"").await.status, 404, "no metrics given");
    let waiting = tokio::spawn(async move { error(addr, "hm.blocks", json!({ "from": 10, "wait_ms": 30_000 })).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    shutdown.cancel();
    let e = waiting.await.unwrap();
    assert_eq!((&e["code"], &e["data"]["kind"]), (&json!(503), &json!("Busy")));
    server.await.unwrap().unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
}
