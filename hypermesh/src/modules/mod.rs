//! The core modules: `bank` (balances, transfers, locks, supply) and
//! `staking` (bonds, unbonding, validators, slashing).

pub mod bank;
pub mod staking;

use crate::codec::{Reader, Writer};
use crate::error::{Error, Result};
use crate::types::AccountId;

/// A module-owned account (fee collector, escrow): the SHA3-256 of
/// `module:<name>`, which no key can hash to.
pub fn module_account(name: &str) -> AccountId {
    stoq::crypto::sha3_256(format!("module:{name}").as_bytes())
}

/// Decodes call arguments with `read`, refusing trailing bytes, naming the
/// module and method in the error.
pub(crate) fn decode_args<T>(
    module: &str,
    method: &str,
    args: &[u8],
    read: impl FnOnce(&mut Reader<'_>) -> Result<T>,
) -> Result<T> {
    let mut r = Reader::new(args, "call arguments");
    let bad = |e: Error| Error::Module {
        module: module.into(),
        reason: format!("{method}: bad arguments: {e}"),
    };
    let v = read(&mut r).map_err(bad)?;
    r.finish().map_err(|e| bad(e.into()))?;
    Ok(v)
}

/// A module error.
pub(crate) fn refuse(module: &str, reason: impl Into<String>) -> Error {
    Error::Module {
        module: module.into(),
        reason: reason.into(),
    }
}

/// Encodes with `write` into a fresh buffer.
pub(crate) fn encode(write: impl FnOnce(&mut Writer)) -> Vec<u8> {
    let mut w = Writer::new();
    write(&mut w);
    w.finish()
}
