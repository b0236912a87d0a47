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
    assert!(
        txs[0].check_stateless(CHAIN, BITS, Some(key.public_key())).is_ok(),
        "build_tx does the work"
    );

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
                evidence: vec![],
            },
        };
        parent = header.hash().unwrap();
        blocks.push(Arc::new(Block {
            header,
            txs: vec![Arc::new(tx.clone())],
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
                    tx: Transaction::clone(&b.txs[0]),
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

mod transport_tests;
mod wire_tests;
