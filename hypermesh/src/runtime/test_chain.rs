//! A chain in memory for module tests: a runtime, its state, and blocks
//! applied one after another.

use std::sync::Arc;

use stoq::crypto::KeyPair;

use super::{BlockInfo, BlockOutcome, ChainParams, Genesis, GenesisValidator, MemState, Module, Runtime};
use crate::error::Result;
use crate::types::{AccountId, Call, CheckedTx, Transaction, UnsignedTransaction};

/// The native denomination of [`ChainParams::default`].
pub(crate) const DENOM: &str = "caes";

/// The account of `k`.
pub(crate) fn account(k: &KeyPair) -> AccountId {
    k.public_key().node_id().0
}

/// A transaction of `from` valid until height 10.
pub(crate) fn signed(from: &KeyPair, nonce: u64, call: Call, gas_limit: u64, fee: u128) -> Transaction {
    UnsignedTransaction {
        chain_id: ChainParams::default().chain_id,
        sender: from.public_key().clone().into(),
        nonce,
        expiry_height: 10,
        gas_limit,
        fee,
        call,
    }
    .sign(from)
    .expect("sign")
}

/// Wraps transactions as a block's (no stateless checks).
pub(crate) fn checked<T: AsRef<Transaction>>(txs: &[T]) -> Vec<CheckedTx> {
    txs.iter()
        .map(|t| CheckedTx::from_committed(t.as_ref().clone(), None).expect("encodable"))
        .collect()
}

pub(crate) struct TestChain {
    pub(crate) runtime: Runtime,
    pub(crate) state: MemState,
    pub(crate) height: u64,
}

impl TestChain {
    /// A chain with the bank and `modules`, `funded` balances and
    /// `validators` (key, stake) at genesis.
    pub(crate) fn new(
        modules: Vec<Arc<dyn Module>>,
        funded: &[(&KeyPair, u128)],
        validators: &[(&KeyPair, u128)],
    ) -> Self {
        let params = ChainParams::default();
        let runtime = Runtime::new(params.clone(), modules).expect("runtime");
        let genesis = Genesis {
            params,
            time_ms: 1,
            balances: funded
                .iter()
                .map(|(k, a)| (account(k), DENOM.to_string(), *a))
                .collect(),
            validators: validators
                .iter()
                .map(|(k, s)| GenesisValidator::new(k.public_key().clone(), *s))
                .collect(),
        };
        let mut state = MemState::default();
        state.apply(&runtime.genesis(&genesis).expect("genesis"));
        TestChain {
            runtime,
            state,
            height: 0,
        }
    }

    /// The next block's info.
    pub(crate) fn next_block(&self) -> BlockInfo {
        BlockInfo {
            height: self.height + 1,
            time_ms: 1_000 + self.height,
            proposer: [7; 32],
            slashed: Vec::new(),
        }
    }

    /// Executes and applies the next block.
    pub(crate) fn block(&mut self, txs: &[Transaction]) -> Result<BlockOutcome> {
        let txs = checked(txs);
        let out = self.runtime.execute_block(&self.state, self.next_block(), &txs)?;
        self.state.apply(&out.writes);
        self.height += 1;
        Ok(out)
    }
}
