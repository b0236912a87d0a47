//! Applying blocks: the checks a proposer must make, fees and nonces, one
//! layer per transaction, hooks, and the outcome to commit.

use std::sync::Arc;

use stoq::crypto::PublicKey;

use super::context::{BlockInfo, Ctx, StateRead, WriteSet};
use super::gas::{GasMeter, GasSchedule};
use super::receipt::{Event, Receipt};
use super::Module;
use crate::error::{Error, Result, TxError};
use crate::modules::bank;
use crate::types::{AccountId, Transaction};

/// Chain parameters fixed at genesis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainParams {
    /// The chain id transactions must name.
    pub chain_id: String,
    /// Leading zero bits each transaction's proof of work needs.
    pub pow_bits: u32,
    /// The fee denomination.
    pub native_denom: String,
    /// Most gas all of a block's transactions may reserve.
    pub block_gas_limit: u64,
    /// Lowest fee per unit of gas limit a transaction may offer.
    pub min_fee_per_gas: u128,
    /// Gas costs.
    pub gas: GasSchedule,
}

impl Default for ChainParams {
    fn default() -> Self {
        ChainParams {
            chain_id: "hypermesh-devnet".into(),
            pow_bits: 8,
            native_denom: "caes".into(),
            block_gas_limit: 400_000_000,
            min_fee_per_gas: 0,
            gas: GasSchedule::default(),
        }
    }
}

/// A validator at genesis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenesisValidator {
    /// Its FN-DSA-1024 key (signs votes; its id is the operator account).
    pub key: PublicKey,
    /// Self-bonded stake in the native denomination (minted and locked).
    pub stake: u128,
}

/// What a chain starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Genesis {
    /// Parameters.
    pub params: ChainParams,
    /// Genesis time, ms since the Unix epoch.
    pub time_ms: u64,
    /// Initial balances: account, denomination, amount.
    pub balances: Vec<(AccountId, String, u128)>,
    /// Initial validators.
    pub validators: Vec<GenesisValidator>,
}

/// What executing a block produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockOutcome {
    /// Every write, to commit with the block.
    pub writes: WriteSet,
    /// One receipt per transaction, in order.
    pub receipts: Vec<Receipt>,
    /// Events of the begin and end hooks.
    pub block_events: Vec<Event>,
    /// Gas used by all transactions.
    pub gas_used: u64,
}

/// The runtime: the bank, the other modules, and the chain's parameters.
#[derive(Clone)]
pub struct Runtime {
    params: ChainParams,
    modules: Vec<Arc<dyn Module>>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self.modules.iter().map(|m| m.name()).collect();
        f.debug_struct("Runtime")
            .field("params", &self.params)
            .field("modules", &names)
            .finish()
    }
}

const AUTH_NONCE: &[u8] = b"auth/n/";

fn nonce_key(account: &AccountId) -> Vec<u8> {
    let mut k = AUTH_NONCE.to_vec();
    k.extend_from_slice(account);
    k
}

/// The next nonce `account` must use (0 for a new account).
pub(crate) fn next_nonce(ctx: &mut Ctx<'_>, account: &AccountId) -> Result<u64> {
    match ctx.get(&nonce_key(account))? {
        None => Ok(0),
        Some(b) => Ok(u64::from_be_bytes(
            b.as_slice()
                .try_into()
                .map_err(|_| Error::Store("corrupt nonce in state".into()))?,
        )),
    }
}

impl Runtime {
    /// A runtime with the bank and `modules` (names must be distinct).
    pub fn new(params: ChainParams, modules: Vec<Arc<dyn Module>>) -> Result<Self> {
        let mut all: Vec<Arc<dyn Module>> = vec![Arc::new(bank::Bank)];
        all.extend(modules);
        for (i, m) in all.iter().enumerate() {
            if all[..i].iter().any(|o| o.name() == m.name()) {
                return Err(Error::Genesis(format!("module {} registered twice", m.name())));
            }
        }
        Ok(Runtime { params, modules: all })
    }

    /// The chain parameters.
    pub fn params(&self) -> &ChainParams {
        &self.params
    }

    fn module(&self, name: &str) -> Option<&Arc<dyn Module>> {
        self.modules.iter().find(|m| m.name() == name)
    }

    fn ctx<'a>(&self, state: &'a dyn StateRead, block: BlockInfo) -> Ctx<'a> {
        Ctx::new(state, block, self.params.native_denom.clone())
    }

    /// The genesis state's writes.
    pub fn genesis(&self, genesis: &Genesis) -> Result<WriteSet> {
        if genesis.params != self.params {
            return Err(Error::Genesis("the runtime was built with other parameters".into()));
        }
        let empty = super::context::MemState::default();
        let mut ctx = self.ctx(
            &empty,
            BlockInfo {
                height: 0,
                time_ms: genesis.time_ms,
                proposer: [0; 32],
            },
        );
        for m in &self.modules {
            ctx.atomic(|c| m.genesis(c, genesis))
                .map_err(|e| Error::Genesis(format!("{}: {e}", m.name())))?;
        }
        Ok(ctx.into_writes())
    }

    /// The checks a transaction must pass against state before it may be
    /// included at `height` (the stateless ones, [`Transaction::check_stateless`],
    /// are the caller's): not expired, the next nonce, a fee that is high
    /// enough and payable, a gas limit that covers its size.
    pub fn check_tx(&self, ctx: &mut Ctx<'_>, tx: &Transaction, tx_bytes: usize) -> Result<(), TxError> {
        let body = &tx.body;
        let height = ctx.block.height;
        if height > body.expiry_height {
            return Err(TxError::Expired {
                expiry: body.expiry_height,
                height,
            });
        }
        let sender = body.sender_id();
        let store = |e: Error| TxError::Malformed(format!("state: {e}"));
        let expected = next_nonce(ctx, &sender).map_err(store)?;
        if body.nonce < expected {
            return Err(TxError::NonceReplayed {
                got: body.nonce,
                expected,
            });
        }
        if body.nonce > expected {
            return Err(TxError::NonceGap {
                got: body.nonce,
                expected,
            });
        }
        let offered = body.fee_per_gas();
        if offered < self.params.min_fee_per_gas {
            return Err(TxError::FeeTooLow {
                offered,
                minimum: self.params.min_fee_per_gas,
            });
        }
        let intrinsic = self.params.gas.intrinsic(tx_bytes);
        if body.gas_limit < intrinsic {
            return Err(TxError::Malformed(format!(
                "gas limit {} is below the {intrinsic} its size costs",
                body.gas_limit
            )));
        }
        let denom = self.params.native_denom.clone();
        let balance = bank::balance(ctx, &sender, &denom).map_err(store)?;
        let spendable = balance.saturating_sub(bank::locked(ctx, &sender, &denom).map_err(store)?);
        if spendable < body.fee {
            return Err(TxError::InsufficientFee {
                fee: body.fee,
                balance: spendable,
            });
        }
        Ok(())
    }

    /// Executes `txs` (each already through the stateless checks) on top
    /// of `state` as block `block`. A transaction that fails
    /// [`Runtime::check_tx`] makes the whole block invalid; one whose call
    /// fails is recorded with its error, pays its fee and writes nothing
    /// else.
    pub fn execute_block(&self, state: &dyn StateRead, block: BlockInfo, txs: &[Transaction]) -> Result<BlockOutcome> {
        let mut ctx = self.ctx(state, block);
        let mut block_events = Vec::new();
        for m in &self.modules {
            let from = ctx.event_count();
            ctx.atomic(|c| m.begin_block(c))
                .map_err(|e| Error::InvalidBlock(format!("{} begin_block: {e}", m.name())))?;
            block_events.extend(ctx.events_since(from));
        }
        let mut receipts = Vec::with_capacity(txs.len());
        let mut gas_reserved: u64 = 0;
        let mut gas_used: u64 = 0;
        for (i, tx) in txs.iter().enumerate() {
            let bytes = tx.encode()?;
            gas_reserved = gas_reserved.saturating_add(tx.body.gas_limit);
            if gas_reserved > self.params.block_gas_limit {
                return Err(Error::InvalidBlock(format!(
                    "transactions reserve more than the block gas limit {}",
                    self.params.block_gas_limit
                )));
            }
            self.check_tx(&mut ctx, tx, bytes.len())
                .map_err(|e| Error::InvalidBlock(format!("transaction {i}: {e}")))?;
            let receipt = self.apply_tx(&mut ctx, tx, &bytes)?;
            gas_used = gas_used.saturating_add(receipt.gas_used);
            receipts.push(receipt);
        }
        for m in &self.modules {
            let from = ctx.event_count();
            ctx.atomic(|c| m.end_block(c))
                .map_err(|e| Error::InvalidBlock(format!("{} end_block: {e}", m.name())))?;
            block_events.extend(ctx.events_since(from));
        }
        Ok(BlockOutcome {
            writes: ctx.into_writes(),
            receipts,
            block_events,
            gas_used,
        })
    }

    /// Charges the fee and bumps the nonce (kept whatever happens), then
    /// runs the call in a layer of its own.
    fn apply_tx(&self, ctx: &mut Ctx<'_>, tx: &Transaction, bytes: &[u8]) -> Result<Receipt> {
        let body = &tx.body;
        let sender = body.sender_id();
        let denom = self.params.native_denom.clone();
        bank::transfer(ctx, &sender, &bank::fee_collector(), &denom, body.fee)?;
        ctx.set(nonce_key(&sender), (body.nonce + 1).to_be_bytes().to_vec())?;
        let events_before = ctx.begin_tx(&body.sender, GasMeter::new(self.params.gas, body.gas_limit));
        let result =
            ctx.charge(self.params.gas.intrinsic(bytes.len()))
                .and_then(|()| match self.module(&body.call.module) {
                    Some(m) => m.execute(ctx, &body.call.method, &body.call.args),
                    None => Err(Error::Module {
                        module: body.call.module.clone(),
                        reason: "no such module".into(),
                    }),
                });
        let (error, output) = match result {
            Ok(out) => (None, out),
            Err(e) => (Some((error_code(&e), e.to_string())), Vec::new()),
        };
        let events = if error.is_none() {
            ctx.events_since(events_before)
        } else {
            Vec::new()
        };
        let gas_used = ctx.end_tx(error.is_none(), events_before)?;
        Ok(Receipt {
            tx_hash: stoq::crypto::sha3_256(bytes),
            error,
            gas_used,
            fee: body.fee,
            events,
            output,
        })
    }

    /// Answers a query to `module` at a committed state.
    pub fn query(&self, state: &dyn StateRead, module: &str, path: &str, args: &[u8]) -> Result<Vec<u8>> {
        match self.module(module) {
            Some(m) => m.query(state, path, args),
            None => Err(Error::Module {
                module: module.into(),
                reason: "no such module".into(),
            }),
        }
    }

    /// The next nonce of `account` at a committed state.
    pub fn nonce(&self, state: &dyn StateRead, account: &AccountId) -> Result<u64> {
        let mut ctx = self.ctx(
            state,
            BlockInfo {
                height: 0,
                time_ms: 0,
                proposer: [0; 32],
            },
        );
        next_nonce(&mut ctx, account)
    }
}

/// The receipt code of a failed call.
pub fn error_code(e: &Error) -> u16 {
    match e {
        Error::Module { .. } => 100,
        Error::OutOfGas { .. } => 101,
        Error::Decode { .. } => 102,
        _ => 199,
    }
}
