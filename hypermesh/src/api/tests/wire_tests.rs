//! The binary encoding and the JSON shapes.

use super::*;

// --- wire -------------------------------------------------------------------

fn all_tx_errors() -> Vec<TxError> {
    vec![
        TxError::Malformed("truncated".into()),
        TxError::Oversized {
            size: 100_000,
            limit: 98_304,
        },
        TxError::WrongChain {
            got: "a".into(),
            expected: "b".into(),
        },
        TxError::InsufficientWork { got: 3, needed: 20 },
        TxError::BadSignature,
        TxError::KeyAlgorithm,
        TxError::Expired { expiry: 5, height: 6 },
        TxError::NonceReplayed { got: 1, expected: 2 },
        TxError::NonceGap { got: 9, expected: 2 },
        TxError::InsufficientFee {
            fee: u128::MAX,
            balance: 1,
        },
        TxError::FeeTooLow { offered: 1, minimum: 2 },
        TxError::Duplicate,
        TxError::MempoolFull { floor: 77 },
        TxError::SenderLimit { limit: 64 },
        TxError::UnknownSender {
            account: "ab".repeat(32),
        },
    ]
}

fn proof_fields(p: &StateProofAt) -> (u64, Hash, Option<Vec<u8>>, StateProof, Option<BlockHeader>) {
    (p.height, p.root, p.value.clone(), p.proof.clone(), p.header.clone())
}

type Decoder = Box<dyn Fn(&[u8]) -> ApiResult<()>>;

fn ok<T>(r: ApiResult<T>) -> ApiResult<()> {
    r.map(|_| ())
}

/// Every message with its decoder, encoded from the fixture.
fn encoded_messages() -> Vec<(&'static str, Vec<u8>, Decoder)> {
    let f = fixture();
    let tx_bytes: Vec<Bytes> = f.txs.iter().map(|t| Bytes::from(t.encode().unwrap())).collect();
    let mut results: Vec<Result<Hash, TxError>> = vec![Ok([5; 32])];
    results.extend(all_tx_errors().into_iter().map(Err));
    let blocks: Vec<Vec<u8>> = f.blocks.iter().map(|b| b.encode().unwrap()).collect();
    let records: Vec<Vec<u8>> = f.events.iter().map(wire::encode_event_record).collect();
    let committed = TxStatus::Committed(Box::new(TxRecord {
        height: 1,
        index: 0,
        tx: f.txs[0].clone(),
        receipt: f.receipts[0][0].clone(),
    }));
    vec![
        (
            "submit request",
            wire::encode_submit(&tx_bytes).unwrap(),
            Box::new(|b| ok(wire::decode_submit(&Bytes::copy_from_slice(b)))),
        ),
        (
            "submit answer",
            wire::encode_submit_results(&results),
            Box::new(|b| ok(wire::decode_submit_results(b))),
        ),
        (
            "status",
            wire::encode_status(&f.status),
            Box::new(|b| ok(wire::decode_status(b))),
        ),
        (
            "block request",
            wire::encode_block_ref(&BlockRef::Hash([4; 32])),
            Box::new(|b| ok(wire::decode_block_ref(b))),
        ),
        (
            "block answer",
            wire::encode_block_answer(Some(&blocks[0])),
            Box::new(|b| ok(wire::decode_block_answer(b))),
        ),
        (
            "height",
            wire::encode_height(7),
            Box::new(|b| ok(wire::decode_height(b))),
        ),
        (
            "receipts",
            wire::encode_receipts(&f.receipts[0]),
            Box::new(|b| ok(wire::decode_receipts(b))),
        ),
        (
            "hash",
            wire::encode_hash(&[3; 32]),
            Box::new(|b| ok(wire::decode_hash(b))),
        ),
        (
            "tx status",
            wire::encode_tx_status(&committed).unwrap(),
            Box::new(|b| ok(wire::decode_tx_status(b))),
        ),
        (
            "account",
            wire::encode_account_info(&AccountInfo {
                height: 1,
                next_nonce: 2,
                pending_nonce: 3,
                balance: 4,
                locked: 5,
            }),
            Box::new(|b| ok(wire::decode_account_info(b))),
        ),
        (
            "query request",
            QueryRequest {
                module: "bank".into(),
                path: "balance".into(),
                args: vec![1, 2],
                height: Some(3),
            }
            .encode()
            .unwrap(),
            Box::new(|b| ok(QueryRequest::decode(b))),
        ),
        (
            "query answer",
            wire::encode_query_answer(3, b"v").unwrap(),
            Box::new(|b| ok(wire::decode_query_answer(b))),
        ),
        (
            "prove request",
            ProveRequest {
                key: PROOF_KEY.to_vec(),
                height: None,
            }
            .encode()
            .unwrap(),
            Box::new(|b| ok(ProveRequest::decode(b))),
        ),
        (
            "proof",
            wire::encode_proof(&f.proof).unwrap(),
            Box::new(|b| ok(wire::decode_proof(b))),
        ),
        (
            "blocks request",
            BlocksRequest {
                from: 1,
                max: 2,
                wait: Duration::from_millis(300),
                max_bytes: 0,
            }
            .encode(),
            Box::new(|b| ok(BlocksRequest::decode(b))),
        ),
        (
            "blocks",
            wire::encode_blocks(&blocks),
            Box::new(|b| ok(wire::decode_blocks(b))),
        ),
        (
            "events request",
            EventsRequest {
                from: 1,
                module: Some("bank".into()),
                kind: None,
                limit: 10,
                wait: Duration::ZERO,
                max_bytes: 1 << 20,
            }
            .encode()
            .unwrap(),
            Box::new(|b| ok(EventsRequest::decode(b))),
        ),
        (
            "events",
            wire::encode_events(&records, 4),
            Box::new(|b| ok(wire::decode_events(b))),
        ),
    ]
}

#[test]
fn wire_round_trips_every_message() {
    let f = fixture();
    let tx_bytes: Vec<Bytes> = f.txs.iter().map(|t| Bytes::from(t.encode().unwrap())).collect();
    let mut with_empty = tx_bytes.clone();
    with_empty.push(Bytes::new());
    let body = Bytes::from(wire::encode_submit(&with_empty).unwrap());
    assert_eq!(wire::decode_submit(&body).unwrap(), with_empty);

    let mut results: Vec<Result<Hash, TxError>> = vec![Ok([5; 32])];
    results.extend(all_tx_errors().into_iter().map(Err));
    assert_eq!(
        wire::decode_submit_results(&wire::encode_submit_results(&results)).unwrap(),
        results
    );

    assert_eq!(wire::decode_status(&wire::encode_status(&f.status)).unwrap(), f.status);
    wire::decode_empty(&[]).unwrap();

    for at in [BlockRef::Latest, BlockRef::Height(9), BlockRef::Hash([4; 32])] {
        assert_eq!(wire::decode_block_ref(&wire::encode_block_ref(&at)).unwrap(), at);
    }
    let raw = f.blocks[0].encode().unwrap();
    assert_eq!(
        wire::decode_block_answer(&wire::encode_block_answer(Some(&raw))).unwrap(),
        Some((*f.blocks[0]).clone())
    );
    assert_eq!(
        wire::decode_block_answer(&wire::encode_block_answer(None)).unwrap(),
        None
    );

    assert_eq!(wire::decode_height(&wire::encode_height(u64::MAX)).unwrap(), u64::MAX);
    let all_receipts: Vec<Receipt> = f.receipts.iter().flatten().cloned().collect();
    assert_eq!(
        wire::decode_receipts(&wire::encode_receipts(&all_receipts)).unwrap(),
        all_receipts
    );
    assert_eq!(wire::decode_hash(&wire::encode_hash(&[3; 32])).unwrap(), [3; 32]);

    let committed = TxStatus::Committed(Box::new(TxRecord {
        height: 2,
        index: 0,
        tx: f.txs[1].clone(),
        receipt: f.receipts[1][0].clone(),
    }));
    for s in [TxStatus::Unknown, TxStatus::Pending, committed] {
        assert_eq!(wire::decode_tx_status(&wire::encode_tx_status(&s).unwrap()).unwrap(), s);
    }

    let account = AccountInfo {
        height: 1,
        next_nonce: 2,
        pending_nonce: 3,
        balance: u128::MAX,
        locked: 5,
    };
    assert_eq!(
        wire::decode_account_info(&wire::encode_account_info(&account)).unwrap(),
        account
    );

    for height in [None, Some(0), Some(u64::MAX)] {
        let q = QueryRequest {
            module: "staking".into(),
            path: "validator".into(),
            args: vec![0; 100],
            height,
        };
        assert_eq!(QueryRequest::decode(&q.encode().unwrap()).unwrap(), q);
        let p = ProveRequest {
            key: b"k".to_vec(),
            height,
        };
        assert_eq!(ProveRequest::decode(&p.encode().unwrap()).unwrap(), p);
    }
    assert_eq!(
        wire::decode_query_answer(&wire::encode_query_answer(7, b"answer").unwrap()).unwrap(),
        (7, b"answer".to_vec())
    );

    let back = wire::decode_proof(&wire::encode_proof(&f.proof).unwrap()).unwrap();
    assert_eq!(proof_fields(&back), proof_fields(&f.proof));
    back.verify(PROOF_KEY).unwrap();
    let mut genesis_absent = f.proof.clone();
    genesis_absent.header = None;
    genesis_absent.value = None;
    let back = wire::decode_proof(&wire::encode_proof(&genesis_absent).unwrap()).unwrap();
    assert_eq!(proof_fields(&back), proof_fields(&genesis_absent));

    let r = BlocksRequest {
        from: 5,
        max: 64,
        wait: Duration::from_millis(1500),
        max_bytes: 99,
    };
    assert_eq!(BlocksRequest::decode(&r.encode()).unwrap(), r);
    let encoded: Vec<Vec<u8>> = f.blocks.iter().map(|b| b.encode().unwrap()).collect();
    let answer = wire::encode_blocks(&encoded);
    assert_eq!(answer.len(), wire::blocks_answer_len(encoded.iter().map(Vec::len)));
    let blocks: Vec<Block> = f.blocks.iter().map(|b| (**b).clone()).collect();
    assert_eq!(wire::decode_blocks(&answer).unwrap(), blocks);

    let r = EventsRequest {
        from: 5,
        module: Some("bank".into()),
        kind: Some("transfer".into()),
        limit: 100,
        wait: Duration::from_secs(30),
        max_bytes: 0,
    };
    assert_eq!(EventsRequest::decode(&r.encode().unwrap()).unwrap(), r);
    let records: Vec<Vec<u8>> = f.events.iter().map(wire::encode_event_record).collect();
    let answer = wire::encode_events(&records, 4);
    assert_eq!(
        answer.len(),
        wire::EVENTS_ANSWER_OVERHEAD + records.iter().map(Vec::len).sum::<usize>()
    );
    assert_eq!(wire::decode_events(&answer).unwrap(), (f.events.clone(), 4));
}

#[test]
fn wire_refuses_truncated_and_trailing_bytes() {
    for (name, bytes, decode) in encoded_messages() {
        decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(
            matches!(decode(&trailing), Err(ApiError::BadRequest(m)) if m.contains("trailing")),
            "{name} with a trailing byte"
        );
        // Every prefix of the small ones; a few cut points of the big ones.
        let cuts: Vec<usize> = if bytes.len() <= 512 {
            (0..bytes.len()).collect()
        } else {
            vec![0, 1, 4, 5, bytes.len() / 2, bytes.len() - 1]
        };
        for cut in cuts {
            assert!(
                matches!(decode(&bytes[..cut]), Err(ApiError::BadRequest(_))),
                "{name} cut at {cut} of {}",
                bytes.len()
            );
        }
    }
    wire::decode_empty(&[0]).unwrap_err();
}

fn counted(count: u32, rest: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    w.u32(count).fixed(rest);
    w.finish()
}

#[test]
fn wire_refuses_counts_and_sizes_over_the_limits_before_allocating() {
    let refused = |r: ApiResult<()>, what: &str| match r {
        Err(ApiError::BadRequest(m)) => m,
        other => panic!("{what}: {other:?}"),
    };
    // Counts above the limits.
    let over = |max: usize| counted(max as u32 + 1, &[]);
    let m = refused(ok(wire::decode_submit(&Bytes::from(over(MAX_SUBMIT_BATCH)))), "submit");
    assert!(m.contains("exceed the limit of 4096"), "{m}");
    refused(ok(wire::decode_submit_results(&over(MAX_SUBMIT_BATCH))), "results");
    refused(ok(wire::decode_receipts(&over(MAX_BLOCK_TXS))), "receipts");
    let m = refused(ok(wire::decode_blocks(&over(MAX_BLOCKS_PER_ANSWER))), "blocks");
    assert!(m.contains("65 items exceed the limit of 64"), "{m}");
    refused(ok(wire::decode_events(&over(wire::MAX_EVENTS_PER_ANSWER))), "events");
    // Counts within the limits that the bytes cannot hold: refused before
    // reserving room for them.
    for (what, r) in [
        ("submit", ok(wire::decode_submit(&Bytes::from(counted(4096, &[0; 10]))))),
        ("results", ok(wire::decode_submit_results(&counted(4096, &[0; 10])))),
        ("receipts", ok(wire::decode_receipts(&counted(8192, &[0; 10])))),
        ("blocks", ok(wire::decode_blocks(&counted(64, &[0; 10])))),
        ("events", ok(wire::decode_events(&counted(1 << 20, &[0; 10])))),
    ] {
        let m = refused(r, what);
        assert!(m.contains("cannot fit"), "{what}: {m}");
    }
    // A transaction over the size limit, in either direction.
    let mut w = Writer::new();
    w.u32(1).u32(MAX_TX_BYTES as u32 + 1).fixed(&vec![0; MAX_TX_BYTES + 1]);
    let m = refused(ok(wire::decode_submit(&Bytes::from(w.finish()))), "big tx");
    assert!(m.contains("exceeds the limit"), "{m}");
    let big = Bytes::from(vec![0; MAX_TX_BYTES + 1]);
    refused(ok(wire::encode_submit(&[big])), "encoding a big tx");
    refused(
        ok(wire::encode_submit(&vec![Bytes::new(); MAX_SUBMIT_BATCH + 1])),
        "a big batch",
    );
    // Fields over their limits are not even encoded.
    let long_key = ProveRequest {
        key: vec![0; crate::state::MAX_KEY_LEN + 1],
        height: None,
    };
    refused(ok(long_key.encode()), "long key");
    let long_module = QueryRequest {
        module: "m".repeat(33),
        path: String::new(),
        args: vec![],
        height: None,
    };
    refused(ok(long_module.encode()), "long module");
    let long_filter = EventsRequest {
        from: 0,
        module: Some("m".repeat(65)),
        kind: None,
        limit: 1,
        wait: Duration::ZERO,
        max_bytes: 0,
    };
    refused(ok(long_filter.encode()), "long filter");
    // Unknown tags.
    refused(ok(wire::decode_block_ref(&[3])), "block ref tag");
    refused(ok(wire::decode_tx_status(&[3])), "tx status tag");
    refused(ok(wire::decode_block_answer(&[2])), "block answer tag");
    let m = refused(
        ok(wire::decode_submit_results(&counted(1, &[1, 0, 99]))),
        "refusal code",
    );
    assert!(m.contains("unknown refusal code 99"), "{m}");
}

// --- JSON shapes ---------------------------------------------------------------

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort_unstable();
    k
}

#[test]
fn json_shapes_of_blocks_and_receipts_are_stable() {
    let f = fixture();
    let b = super::http::block_json(&f.blocks[0], true).unwrap();
    assert_eq!(
        keys(&b),
        [
            "chain_id",
            "hash",
            "height",
            "parent_hash",
            "proposer",
            "raw",
            "result_root",
            "state_root",
            "timestamp_ms",
            "tx_root",
            "txs",
            "validator_set_hash"
        ]
    );
    let header = &f.blocks[0].header;
    assert_eq!(b["height"], json!(1));
    assert_eq!(b["hash"], json!(hex(&header.hash().unwrap())));
    assert_eq!(b["parent_hash"], json!(hex(&f.status.genesis_hash)));
    assert_eq!(b["timestamp_ms"], json!(header.timestamp_ms));
    assert_eq!(b["state_root"], json!(hex(&header.state_root)));
    assert_eq!(
        Block::decode(&unhex(b["raw"].as_str().unwrap()).unwrap()).unwrap(),
        *f.blocks[0]
    );
    let tx = &b["txs"][0];
    assert_eq!(
        keys(tx),
        [
            "args",
            "expiry_height",
            "fee",
            "gas_limit",
            "hash",
            "method",
            "module",
            "nonce",
            "sender",
            "sender_key"
        ]
    );
    let t = &f.txs[0];
    assert_eq!(tx["hash"], json!(hex(&t.hash().unwrap())));
    assert_eq!(tx["sender"], json!(hex(&t.body.sender_id())));
    // Past its first transaction an account is named, not its key.
    assert_eq!(tx["sender_key"], Value::Null);
    assert_eq!(tx["fee"], json!("1000000"), "amounts are decimal strings");
    assert_eq!(tx["module"], json!("bank"));
    assert_eq!(tx["args"], json!(hex(&t.body.call.args)));
    let without_raw = super::http::block_json(&f.blocks[0], false).unwrap();
    assert!(without_raw.get("raw").is_none());

    let r = super::http::receipt_json(&f.receipts[0][0]);
    assert_eq!(
        keys(&r),
        ["error", "events", "fee", "gas_used", "output", "success", "tx_hash"]
    );
    assert_eq!(r["success"], json!(true));
    assert_eq!(r["error"], Value::Null);
    assert_eq!(r["fee"], json!("1000000"));
    assert_eq!(r["output"], json!("0102"));
    let e = &r["events"][0];
    assert_eq!(keys(e), ["attributes", "kind", "module"]);
    assert_eq!(keys(&e["attributes"]), ["amount", "from"]);
    assert_eq!(e["attributes"]["from"], json!(hex(&t.body.sender_id())));
    let failed = super::http::receipt_json(&f.receipts[1][0]);
    assert_eq!(failed["success"], json!(false));
    assert_eq!(failed["error"], json!({ "code": 7, "message": "insufficient funds" }));

    let rec = super::http::event_record_json(&f.events[1]);
    assert_eq!(
        keys(&rec),
        ["attributes", "height", "kind", "module", "tx_hash", "tx_index"]
    );
    assert_eq!(rec["tx_index"], Value::Null, "a block hook's event");
    let rec = super::http::event_record_json(&f.events[0]);
    assert_eq!(rec["tx_index"], json!(0));
    assert_eq!(rec["tx_hash"], json!(hex(&f.txs[0].hash().unwrap())));
}

#[test]
fn hex_helpers_round_trip_and_refuse_junk() {
    assert_eq!(hex(&[0x00, 0xab, 0xff]), "00abff");
    assert_eq!(unhex("00abff").unwrap(), [0x00, 0xab, 0xff]);
    assert_eq!(unhex("0x00ABff").unwrap(), [0x00, 0xab, 0xff]);
    assert_eq!(unhex("").unwrap(), Vec::<u8>::new());
    assert!(unhex("abc").is_err());
    assert!(unhex("zz").is_err());
}
