//! [`NodeApi`] over the service.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::NodeService;
use crate::api::{
    AccountInfo, ApiError, ApiResult, BlockRef, NodeApi, NodeStatus, TxStatus, MAX_BLOCKS_PER_ANSWER, MAX_SUBMIT_BATCH,
    MAX_WAIT,
};
use crate::chain::{EventRecord, StateProofAt};
use crate::codec::Hash;
use crate::error::TxError;
use crate::modules::bank;
use crate::runtime::Receipt;
use crate::types::{AccountId, Block};

/// Waits until block `height` is committed or `wait` passes; whether it is.
async fn wait_for_height(service: &NodeService, height: u64, wait: Duration) -> bool {
    let mut tip = service.subscribe_tip();
    let reached = |t: &u64| *t >= height;
    if reached(&tip.borrow()) || service.chain.tip().height >= height {
        return true;
    }
    let waited = tokio::time::timeout(wait.min(MAX_WAIT), async { tip.wait_for(reached).await.is_ok() }).await;
    matches!(waited, Ok(true))
}

/// Wrapper so the service (held in an `Arc`) can be served as a trait object.
#[derive(Debug, Clone)]
pub struct ServiceApi(pub Arc<NodeService>);

#[async_trait::async_trait]
impl NodeApi for ServiceApi {
    async fn submit(&self, txs: Vec<Bytes>) -> ApiResult<Vec<Result<Hash, TxError>>> {
        if txs.len() > MAX_SUBMIT_BATCH {
            return Err(ApiError::BadRequest(format!(
                "{} transactions exceed the batch limit of {MAX_SUBMIT_BATCH}",
                txs.len()
            )));
        }
        let n = txs.len();
        let out = self.0.admit(txs).await;
        if out.len() != n {
            return Err(ApiError::Busy("admission was interrupted".into()));
        }
        Ok(out)
    }

    fn status(&self) -> ApiResult<NodeStatus> {
        let s = &self.0;
        let tip = s.chain.tip();
        let params = s.chain.runtime().params();
        Ok(NodeStatus {
            chain_id: params.chain_id.clone(),
            genesis_hash: s.chain.genesis_hash(),
            height: tip.height,
            tip_hash: tip.hash,
            tip_time_ms: tip.time_ms,
            state_root: tip.state_root,
            mempool_txs: s.mempool().len() as u64,
            pow_bits: params.pow_bits,
            min_fee_per_gas: params.min_fee_per_gas.max(s.config.mempool.min_fee_per_gas),
            native_denom: params.native_denom.clone(),
            node: s.account,
        })
    }

    fn block(&self, at: BlockRef) -> ApiResult<Option<Arc<Block>>> {
        let height = match at {
            BlockRef::Latest => self.0.chain.tip().height,
            BlockRef::Height(h) => h,
            BlockRef::Hash(h) => match self.0.chain.height_of(&h)? {
                Some(height) => height,
                None => return Ok(None),
            },
        };
        if height == 0 {
            return Ok(None);
        }
        Ok(self.0.block_at(height)?)
    }

    fn receipts(&self, height: u64) -> ApiResult<Vec<Receipt>> {
        if height == 0 || height > self.0.chain.tip().height {
            return Err(ApiError::NotFound(format!("no committed block at height {height}")));
        }
        Ok(self.0.chain.receipts(height)?)
    }

    fn tx(&self, hash: &Hash) -> ApiResult<TxStatus> {
        if let Some(rec) = self.0.chain.tx(hash)? {
            return Ok(TxStatus::Committed(Box::new(rec)));
        }
        Ok(if self.0.mempool().contains(hash) {
            TxStatus::Pending
        } else {
            TxStatus::Unknown
        })
    }

    fn account(&self, account: &AccountId) -> ApiResult<AccountInfo> {
        let chain = &self.0.chain;
        let tip = chain.tip();
        let reader = chain.state().reader(tip.height)?;
        let next_nonce = chain.runtime().nonce(&reader, account)?;
        let denom = &chain.runtime().params().native_denom;
        let amount = |path: &str| -> ApiResult<u128> {
            let args = crate::modules::encode(|w| {
                w.fixed(account).str8(denom);
            });
            let raw = chain.runtime().query(&reader, bank::NAME, path, &args)?;
            let bytes: [u8; 16] = raw
                .as_slice()
                .try_into()
                .map_err(|_| ApiError::Internal("bank answered an amount that is not 16 bytes".into()))?;
            Ok(u128::from_be_bytes(bytes))
        };
        let pending_nonce = self
            .0
            .mempool()
            .pending_nonce(account)
            .unwrap_or(next_nonce)
            .max(next_nonce);
        Ok(AccountInfo {
            height: tip.height,
            next_nonce,
            pending_nonce,
            balance: amount("balance")?,
            locked: amount("locked")?,
        })
    }

    fn query(&self, module: &str, path: &str, args: &[u8], height: Option<u64>) -> ApiResult<(u64, Vec<u8>)> {
        Ok(self.0.chain.query(module, path, args, height)?)
    }

    fn prove(&self, key: &[u8], height: Option<u64>) -> ApiResult<StateProofAt> {
        if key.is_empty() || key.len() > crate::state::MAX_KEY_LEN {
            return Err(ApiError::BadRequest(format!(
                "state keys are 1..={} bytes",
                crate::state::MAX_KEY_LEN
            )));
        }
        Ok(self.0.chain.prove(key, height)?)
    }

    async fn blocks_from(&self, from: u64, max: usize, wait: Duration) -> ApiResult<Vec<Arc<Block>>> {
        let from = from.max(1);
        if !wait_for_height(&self.0, from, wait).await {
            return Ok(Vec::new());
        }
        let tip = self.0.chain.tip().height;
        let last = tip.min(from.saturating_add(max.clamp(1, MAX_BLOCKS_PER_ANSWER) as u64 - 1));
        let mut out = Vec::new();
        for h in from..=last {
            match self.0.block_at(h)? {
                Some(b) => out.push(b),
                None => break,
            }
        }
        Ok(out)
    }

    async fn events_from(
        &self,
        from: u64,
        module: Option<String>,
        kind: Option<String>,
        limit: usize,
        wait: Duration,
    ) -> ApiResult<(Vec<EventRecord>, u64)> {
        let from = from.max(1);
        if !wait_for_height(&self.0, from, wait).await {
            return Ok((Vec::new(), from));
        }
        Ok(self
            .0
            .chain
            .events(from, u64::MAX, module.as_deref(), kind.as_deref(), limit)?)
    }
}
