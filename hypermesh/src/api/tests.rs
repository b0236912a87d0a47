//! Tests of the API transports and the client: the binary encoding, the
//! JSON shapes, and both transports end to end (a real STOQ endpoint and
//! a real HTTP server on `[::1]`) against a fake node.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use stoq::crypto::{Algorithm, KeyPair};
use stoq::endpoint::RpcError;
use stoq::pki::{issue, CertKind, CertificateParams, Issuer, TrustAnchors};
use stoq::tls::{Identity, SecurityMode, TlsContext};
use stoq::{Endpoint, EndpointConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::http::{hex, unhex};
use super::wire::{self, methods, BlocksRequest, EventsRequest, ProveRequest, QueryRequest};
use super::*;
use crate::chain::{EventRecord, StateProofAt, TxRecord};
use crate::client::{self, Client, ClientError, RemoteTxError};
use crate::codec::Writer;
use crate::runtime::{Event, Receipt};
use crate::state::{StateProof, StateStore};
use crate::types::{BlockHeader, ProofSection, Transaction, MAX_BLOCK_TXS, MAX_TX_BYTES};

const CHAIN: &str = "hm-api-test";
const BITS: u32 = 4;
const DAY: Duration = Duration::from_secs(86_400);
const PROOF_KEY: &[u8] = b"acct/alice";

// --- fixture ----------------------------------------------------------------

struct Fixture {
    status: NodeStatus,
    /// Nonces 1, 2, 3: one per block.
    txs: Vec<Transaction>,
    /// Nonce 99: the fake node refuses it with a nonce gap.
    gap_tx: Transaction,
    /// Heights 1..=3.
    blocks: Vec<Arc<Block>>,
    /// Per block.
    receipts: Vec<Vec<Receipt>>,
    events: Vec<EventRecord>,
    proof: StateProofAt,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(make_fixture)
}

fn make_fixture() -> Fixture {
    let key = KeyPair::generate(Algorithm::FnDsa1024);
    let db = redb::Database::builder()
        .create_with_backend(redb::backends::InMemoryBackend::new())
        .unwrap();
    let store = StateStore::open(Arc::new(db)).unwrap();
    let staged = store
        .stage(
            3,
            [
                (PROOF_KEY.to_vec(), Some(b"100".to_vec())),
                (b"acct/bob".to_vec(), Some(b"5".to_vec())),
            ],
        )
        .unwrap();
    store.commit(&staged).unwrap();
    let root = store.root(3).unwrap();
    let (value, proof) = store.get_with_proof(PROOF_KEY, 3).unwrap();

    let mut status = NodeStatus {
        chain_id: CHAIN.into(),
        genesis_hash: [1; 32],
        height: 3,
        tip_hash: [0; 32],
        tip_time_ms: 1_700_000_003_000,
        state_root: root,
        mempool_txs: 2,
        pow_bits: BITS,
        min_fee_per_gas: u128::MAX / 3,
        native_denom: "caes".into(),
        node: [9; 32],
    };
    let to = [7u8; 32];
    let tx = |nonce: u64| {
        let call = client::transfer_call(&to, "caes", 10 * u128::from(nonce));
        client::build_tx(&key, &status, nonce, call, 50_000, 1_000_000, 100).unwrap()
    };
    let txs: Vec<Transaction> = (1..=3).map(tx).collect();
    let gap_tx = tx(99);
    assert!(txs[0].check_stateless(CHAIN, BITS).is_ok(), "build_tx does the work");

    let mut blocks = Vec::new();
    let mut receipts = Vec::new();
    let mut events = Vec::new();
    let mut parent = status.genesis_hash;
    for (i, tx) in txs.iter().enumerate() {
        let height = i as u64 + 1;
        let hash = tx.hash().unwrap();
        let ok = height != 2;
        let transfer = Event::new("bank", "transfer")
            .with("from", tx.body.sender_id().to_vec())
            .with("amount", (10 * u128::from(tx.body.nonce)).to_be_bytes().to_vec());
        let receipt = Receipt {
            tx_hash: hash,
            error: (!ok).then(|| (7, "insufficient funds".to_string())),
            gas_used: 21_000,
            fee: 1_000_000,
            events: if ok { vec![transfer.clone()] } else { vec![] },
            output: if ok { vec![1, 2] } else { vec![] },
        };
        if ok {
            events.push(EventRecord {
                height,
                tx: Some((0, hash)),
                event: transfer,
            });
        } else {
            events.push(EventRecord {
                height,
                tx: None,
                event: Event::new("staking", "reward").with("validator", vec![9; 32]),
            });
        }
        let header = BlockHeader {
            chain_id: CHAIN.into(),
            height,
            parent_hash: parent,
            timestamp_ms: 1_700_000_000_000 + height * 1000,
            proposer: [9; 32],
            tx_root: Block::tx_root(std::slice::from_ref(tx)).unwrap(),
            state_root: root,
            validator_set_hash: [3; 32],
            result_root: Receipt::root(std::slice::from_ref(&receipt)),
            proofs: ProofSection {
                space: vec![1, 2],
                time: vec![],
                stake: vec![3],
            },
        };
        parent = header.hash().unwrap();
        blocks.push(Arc::new(Block {
            header,
            txs: vec![tx.clone()],
            commit: vec![0xcc; 10],
        }));
        receipts.push(vec![receipt]);
    }
    status.tip_hash = parent;
    let proof = StateProofAt {
        height: 3,
        root,
        value,
        proof,
        header: Some(blocks[2].header.clone()),
    };
    proof.verify(PROOF_KEY).unwrap();
    Fixture {
        status,
        txs,
        gap_tx,
        blocks,
        receipts,
        events,
        proof,
    }
}

// --- a fake node --------------------------------------------------------------

/// Answers from the fixture; errors on cue.
struct FakeApi {
    f: &'static Fixture,
    /// The waits the subscription calls were given.
    waits: Mutex<Vec<Duration>>,
}

fn fake() -> Arc<FakeApi> {
    Arc::new(FakeApi {
        f: fixture(),
        waits: Mutex::new(Vec::new()),
    })
}

fn gap() -> TxError {
    TxError::NonceGap { got: 99, expected: 4 }
}

#[async_trait::async_trait]
impl NodeApi for FakeApi {
    async fn submit(&self, txs: Vec<Bytes>) -> ApiResult<Vec<Result<Hash, TxError>>> {
        Ok(txs
            .iter()
            .map(|b| {
                let tx = Transaction::decode(b)?;
                if tx.body.nonce == 99 {
                    return Err(gap());
                }
                tx.hash().map_err(|e| TxError::Malformed(e.to_string()))
            })
            .collect())
    }

    fn status(&self) -> ApiResult<NodeStatus> {
        Ok(self.f.status.clone())
    }

    fn block(&self, at: BlockRef) -> ApiResult<Option<Arc<Block>>> {
        let blocks = &self.f.blocks;
        Ok(match at {
            BlockRef::Latest => blocks.last().cloned(),
            BlockRef::Height(h) => blocks.iter().find(|b| b.header.height == h).cloned(),
            BlockRef::Hash(h) => blocks.iter().find(|b| b.header.hash().unwrap() == h).cloned(),
        })
    }

    fn receipts(&self, height: u64) -> ApiResult<Vec<Receipt>> {
        match height {
            1..=3 => Ok(self.f.receipts[height as usize - 1].clone()),
            _ => Err(ApiError::NotFound(format!("no block at height {height}"))),
        }
    }

    fn tx(&self, hash: &Hash) -> ApiResult<TxStatus> {
        for (i, b) in self.f.blocks.iter().enumerate() {
            if b.txs[0].hash().unwrap() == *hash {
                return Ok(TxStatus::Committed(Box::new(TxRecord {
                    height: b.header.height,
                    index: 0,
                    tx: b.txs[0].clone(),
                    receipt: self.f.receipts[i][0].clone(),
                })));
            }
        }
        Ok(if *hash == [1; 32] {
            TxStatus::Pending
        } else {
            TxStatus::Unknown
        })
    }

    fn account(&self, account: &AccountId) -> ApiResult<AccountInfo> {
        if *account == [0; 32] {
            return Err(ApiError::Unavailable("pruned".into()));
        }
        Ok(AccountInfo {
            height: 3,
            next_nonce: 4,
            pending_nonce: 6,
            balance: u128::MAX,
            locked: 12,
        })
    }

    fn query(&self, module: &str, path: &str, args: &[u8], height: Option<u64>) -> ApiResult<(u64, Vec<u8>)> {
        match module {
            "bank" => Ok((height.unwrap_or(3), [path.as_bytes(), args].concat())),
            "tx" => Err(ApiError::Tx(gap())),
            "busy" => Err(ApiError::Busy("overloaded".into())),
            "bad" => Err(ApiError::BadRequest("bad arguments".into())),
            _ => Err(ApiError::Query(format!("no module {module}"))),
        }
    }

    fn prove(&self, key: &[u8], height: Option<u64>) -> ApiResult<StateProofAt> {
        if height.is_some_and(|h| h != 3) {
            return Err(ApiError::Unavailable("pruned".into()));
        }
        match key {
            PROOF_KEY => Ok(self.f.proof.clone()),
            // A proof of another key: the client must not accept it.
            b"forged" => Ok(self.f.proof.clone()),
            _ => Err(ApiError::BadRequest("unknown key".into())),
        }
    }

    async fn blocks_from(&self, from: u64, max: usize, wait: Duration) -> ApiResult<Vec<Arc<Block>>> {
        self.waits.lock().unwrap().push(wait);
        let from = from.max(1);
        let out: Vec<_> = self
            .f
            .blocks
            .iter()
            .filter(|b| b.header.height >= from)
            .take(max)
            .cloned()
            .collect();
        if out.is_empty() {
            tokio::time::sleep(wait).await;
        }
        Ok(out)
    }

    async fn events_from(
        &self,
        from: u64,
        module: Option<String>,
        kind: Option<String>,
        _limit: usize,
        wait: Duration,
    ) -> ApiResult<(Vec<EventRecord>, u64)> {
        self.waits.lock().unwrap().push(wait);
        let from = from.max(1);
        if from > 3 {
            tokio::time::sleep(wait).await;
            return Ok((Vec::new(), from));
        }
        let out = self
            .f
            .events
            .iter()
            .filter(|e| e.height >= from)
            .filter(|e| module.as_deref().is_none_or(|m| e.event.module == m))
            .filter(|e| kind.as_deref().is_none_or(|k| e.event.kind == k))
            .cloned()
            .collect();
        Ok((out, 4))
    }
}

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
            "sender"
        ]
    );
    let t = &f.txs[0];
    assert_eq!(tx["hash"], json!(hex(&t.hash().unwrap())));
    assert_eq!(tx["sender"], json!(hex(&t.body.sender_id())));
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
    let many = vec![f.txs[0].clone(); 400];
    assert!(many.iter().map(|t| t.encode().unwrap().len()).sum::<usize>() > 1 << 20);
    let results = c.submit(&many).await.unwrap();
    assert_eq!(results, vec![Ok(hashes[0]); 400]);

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
