//! Applying blocks: the checks a proposer must make, fees and nonces, one
//! layer per transaction, hooks, and the outcome to commit.

use std::sync::Arc;

use super::context::{BlockInfo, Ctx, StateRead, WriteSet};
use super::gas::GasMeter;
use super::genesis::{ChainParams, Genesis};
use super::receipt::{Event, Receipt};
use super::Module;
use crate::codec::Hash;
use crate::error::{Error, Result, TxError};
use crate::modules::bank;
use crate::types::{AccountId, CheckedTx, Transaction};
use stoq::crypto::PublicKey;

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

/// A block a proposer built from candidates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltBlock {
    /// The transactions included, in order.
    pub txs: Vec<CheckedTx>,
    /// What executing them produced.
    pub outcome: BlockOutcome,
    /// Candidates left out because they failed the stateful checks, with
    /// the reason (those that merely did not fit are not listed).
    pub skipped: Vec<(Hash, TxError)>,
}

/// How much a proposer may put in a block (the gas limit is the chain's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockLimits {
    /// Most transactions.
    pub max_txs: usize,
    /// Most bytes of encoded transactions.
    pub max_bytes: usize,
}

impl Default for BlockLimits {
    fn default() -> Self {
        BlockLimits {
            max_txs: crate::types::MAX_BLOCK_TXS,
            // Room for the header and the commit certificate.
            max_bytes: crate::types::MAX_BLOCK_BYTES
                - crate::types::MAX_COMMIT_BYTES
                - 2 * crate::types::MAX_PROOF_BYTES,
        }
    }
}

#[derive(Clone, Copy)]
enum Selection {
    /// Every transaction must pass (validating a proposal).
    Strict,
    /// Skip what does not pass or fit (building a proposal).
    Build(BlockLimits),
}

enum Refusal {
    Limit(String),
    Tx(TxError),
}

impl Refusal {
    fn message(&self) -> String {
        match self {
            Refusal::Limit(m) => m.clone(),
            Refusal::Tx(e) => e.to_string(),
        }
    }
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
/// The registry of account keys: written by an account's first
/// transaction (which must carry the key), read to check the signatures of
/// the later ones (which name only the account).
const AUTH_KEY: &[u8] = b"auth/k/";

fn nonce_key(account: &AccountId) -> Vec<u8> {
    let mut k = AUTH_NONCE.to_vec();
    k.extend_from_slice(account);
    k
}

fn key_key(account: &AccountId) -> Vec<u8> {
    let mut k = AUTH_KEY.to_vec();
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
        genesis.validate()?;
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
                slashed: Vec::new(),
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
        let expected = self.check_payable(ctx, tx, tx_bytes)?;
        if tx.body.nonce > expected {
            return Err(TxError::NonceGap {
                got: tx.body.nonce,
                expected,
            });
        }
        Ok(())
    }

    /// The checks a node makes before admitting a transaction to its
    /// mempool, against the committed state and for block `height`: those
    /// of [`Runtime::check_tx`] but the nonce may be past the sender's
    /// next (it may follow others still in the mempool), and the gas limit
    /// must fit in a block. Returns the sender's next nonce in that state.
    pub fn check_admission(&self, state: &dyn StateRead, tx: &CheckedTx, height: u64) -> Result<u64, TxError> {
        let body = &tx.tx().body;
        if body.gas_limit > self.params.block_gas_limit {
            return Err(TxError::Malformed(format!(
                "gas limit {} is above the block gas limit {}",
                body.gas_limit, self.params.block_gas_limit
            )));
        }
        let mut ctx = self.ctx(
            state,
            BlockInfo {
                height,
                time_ms: 0,
                proposer: [0; 32],
                slashed: Vec::new(),
            },
        );
        self.check_payable(&mut ctx, tx.tx(), tx.bytes().len())
    }

    /// What [`Runtime::check_tx`] and [`Runtime::check_admission`] share:
    /// not expired at `ctx`'s height, a nonce not yet used, a fee per gas
    /// above the minimum, a gas limit that covers the size, and a spendable
    /// balance that pays the fee. Returns the sender's next nonce.
    fn check_payable(&self, ctx: &mut Ctx<'_>, tx: &Transaction, tx_bytes: usize) -> Result<u64, TxError> {
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
        // An account's first transaction (nonce 0) registers its key, so
        // it must carry it; the later ones follow it, in a block or in the
        // mempool, and may name the account.
        if body.nonce == 0 && body.sender.key().is_none() {
            return Err(crate::types::unknown_sender(&sender));
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
        Ok(expected)
    }

    /// Executes `txs` (each already through the stateless checks) on top
    /// of `state` as block `block`. A transaction that fails
    /// [`Runtime::check_tx`] makes the whole block invalid; one whose call
    /// fails is recorded with its error, pays its fee and writes nothing
    /// else.
    pub fn execute_block(&self, state: &dyn StateRead, block: BlockInfo, txs: &[CheckedTx]) -> Result<BlockOutcome> {
        let built = self.run_block(state, block, txs.iter().cloned(), Selection::Strict)?;
        Ok(built.outcome)
    }

    /// Builds a block as a proposer: takes `candidates` in order and
    /// includes each that passes [`Runtime::check_tx`] on the state so far
    /// and fits the block's gas, size and count limits; the others are
    /// returned in [`BuiltBlock::skipped`] with the reason. Executing the
    /// included transactions with [`Runtime::execute_block`] gives the same
    /// outcome.
    pub fn build_block(
        &self,
        state: &dyn StateRead,
        block: BlockInfo,
        candidates: impl IntoIterator<Item = CheckedTx>,
        limits: BlockLimits,
    ) -> Result<BuiltBlock> {
        self.run_block(state, block, candidates.into_iter(), Selection::Build(limits))
    }

    fn run_block(
        &self,
        state: &dyn StateRead,
        block: BlockInfo,
        txs: impl Iterator<Item = CheckedTx>,
        selection: Selection,
    ) -> Result<BuiltBlock> {
        let mut ctx = self.ctx(state, block);
        let mut block_events = Vec::new();
        for m in &self.modules {
            let from = ctx.event_count();
            ctx.atomic(|c| m.begin_block(c))
                .map_err(|e| Error::InvalidBlock(format!("{} begin_block: {e}", m.name())))?;
            block_events.extend(ctx.events_since(from));
        }
        // Sized up front: growing a block's receipts copied them again and
        // again (about 1 % of a validator's CPU under load).
        let expected = txs.size_hint().0.min(crate::types::MAX_BLOCK_TXS);
        let mut included = Vec::with_capacity(expected);
        let mut skipped = Vec::new();
        let mut receipts = Vec::with_capacity(expected);
        let mut gas_reserved: u64 = 0;
        let mut gas_used: u64 = 0;
        let mut bytes: usize = 0;
        for (i, tx) in txs.enumerate() {
            let reserved = gas_reserved.saturating_add(tx.tx().body.gas_limit);
            let refusal = if reserved > self.params.block_gas_limit {
                Err(Refusal::Limit(format!(
                    "transactions reserve more than the block gas limit {}",
                    self.params.block_gas_limit
                )))
            } else if let Selection::Build(l) = selection {
                if included.len() >= l.max_txs || bytes + tx.bytes().len() + 4 > l.max_bytes {
                    Err(Refusal::Limit("block full".into()))
                } else {
                    Ok(())
                }
            } else {
                Ok(())
            }
            .and_then(|()| self.check_tx(&mut ctx, tx.tx(), tx.bytes().len()).map_err(Refusal::Tx));
            match (refusal, selection) {
                (Ok(()), _) => {}
                (Err(r), Selection::Strict) => {
                    return Err(Error::InvalidBlock(format!("transaction {i}: {}", r.message())));
                }
                (Err(Refusal::Limit(_)), Selection::Build(_)) => continue,
                (Err(Refusal::Tx(e)), Selection::Build(_)) => {
                    skipped.push((tx.hash(), e));
                    continue;
                }
            }
            gas_reserved = reserved;
            bytes += tx.bytes().len() + 4;
            let receipt = self.apply_tx(&mut ctx, &tx)?;
            gas_used = gas_used.saturating_add(receipt.gas_used);
            receipts.push(receipt);
            included.push(tx);
        }
        for m in &self.modules {
            let from = ctx.event_count();
            ctx.atomic(|c| m.end_block(c))
                .map_err(|e| Error::InvalidBlock(format!("{} end_block: {e}", m.name())))?;
            block_events.extend(ctx.events_since(from));
        }
        Ok(BuiltBlock {
            txs: included,
            outcome: BlockOutcome {
                writes: ctx.into_writes(),
                receipts,
                block_events,
                gas_used,
            },
            skipped,
        })
    }

    /// Charges the fee and bumps the nonce (kept whatever happens), then
    /// runs the call in a layer of its own.
    fn apply_tx(&self, ctx: &mut Ctx<'_>, tx: &CheckedTx) -> Result<Receipt> {
        let body = &tx.tx().body;
        let sender = tx.sender();
        let denom = self.params.native_denom.clone();
        bank::transfer(ctx, &sender, &bank::fee_collector(), &denom, body.fee)?;
        if body.nonce == 0 {
            // The first transaction (check_payable made sure it carries
            // the key): register the key for the later ones.
            ctx.set(key_key(&sender), tx.key().to_compact())?;
        }
        ctx.set(nonce_key(&sender), (body.nonce + 1).to_be_bytes().to_vec())?;
        let events_before = ctx.begin_tx(tx.key(), GasMeter::new(self.params.gas, body.gas_limit));
        let result = ctx.charge(self.params.gas.intrinsic(tx.bytes().len())).and_then(|()| {
            match self.module(&body.call.module) {
                Some(m) => m.execute(ctx, &body.call.method, &body.call.args),
                None => Err(Error::Module {
                    module: body.call.module.clone(),
                    reason: "no such module".into(),
                }),
            }
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
            tx_hash: tx.hash(),
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

    /// The key `account` registered with its first transaction, at a
    /// committed state (`None` if it has sent none).
    pub fn registered_key(&self, state: &dyn StateRead, account: &AccountId) -> Result<Option<PublicKey>> {
        let Some(raw) = state.get(&key_key(account))? else {
            return Ok(None);
        };
        let key = PublicKey::from_compact(&raw).map_err(|e| Error::Store(format!("registered key: {e}")))?;
        if key.node_id().0 != *account {
            return Err(Error::Store("the key registered for an account is another's".into()));
        }
        Ok(Some(key))
    }

    /// The next nonce of `account` at a committed state.
    pub fn nonce(&self, state: &dyn StateRead, account: &AccountId) -> Result<u64> {
        let mut ctx = self.ctx(
            state,
            BlockInfo {
                height: 0,
                time_ms: 0,
                proposer: [0; 32],
                slashed: Vec::new(),
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
