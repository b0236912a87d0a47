//! The ledger runtime: modules, their execution context, gas, receipts,
//! and the executor that applies a block deterministically.
//!
//! Sans-IO: the executor reads the parent's state through [`StateRead`]
//! and returns the block's writes and receipts; the node decides when and
//! how they are stored (one database transaction with the block).

mod context;
mod exec;
mod gas;
mod genesis;
mod receipt;

pub use context::{BlockInfo, CachedRead, Ctx, MemState, StateRead, WriteSet};
pub use exec::{error_code, BlockLimits, BlockOutcome, BuiltBlock, Runtime};
pub use genesis::{
    ChainParams, ConsensusParams, Genesis, GenesisValidator, MAX_GENESIS_BALANCES, MAX_GENESIS_VALIDATORS,
};

#[cfg(test)]
pub(crate) mod test_chain;
#[cfg(test)]
mod tests;
pub use gas::{GasMeter, GasSchedule};
pub use receipt::{Event, Receipt, MAX_ATTRIBUTES, MAX_EVENTS};

use crate::error::Result;

/// A module of the runtime: a named set of methods over its own keys.
///
/// Execution must be deterministic: the same state and calls give the same
/// writes, events and outputs on every validator (no clocks, randomness,
/// floating point or iteration over unordered maps).
pub trait Module: Send + Sync {
    /// The name calls address it by; also the prefix of its keys.
    fn name(&self) -> &'static str;

    /// Writes the module's genesis state.
    fn genesis(&self, ctx: &mut Ctx<'_>, genesis: &Genesis) -> Result<()>;

    /// Runs before the block's transactions.
    fn begin_block(&self, _ctx: &mut Ctx<'_>) -> Result<()> {
        Ok(())
    }

    /// Executes `method` with `args` for `ctx.sender`; returns its output.
    fn execute(&self, ctx: &mut Ctx<'_>, method: &str, args: &[u8]) -> Result<Vec<u8>>;

    /// Runs after the block's transactions.
    fn end_block(&self, _ctx: &mut Ctx<'_>) -> Result<()> {
        Ok(())
    }

    /// Answers a read-only query at some committed state.
    fn query(&self, state: &dyn StateRead, path: &str, args: &[u8]) -> Result<Vec<u8>>;
}

/// `s` cut to at most `max` bytes at a character boundary.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
