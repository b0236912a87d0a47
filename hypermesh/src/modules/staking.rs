//! `staking`: validators bond native tokens, unbond them after an
//! unbonding period, can be slashed and jailed; the active validator set,
//! recomputed at the end of every block, is what the next height's
//! consensus uses (read it at the state of height h for height h + 1).
//!
//! Bonds are self-bonds: the operator's own funds, locked in the bank.
//! Delegation is not in this version.
//!
//! Keys: `staking/v/<operator>` validator record, `staking/ops` the sorted
//! operator list, `staking/u/<height>` what unbonds at that height,
//! `staking/set` the active set.

use stoq::crypto::{sha3_256, PublicKey};

use super::{bank, decode_args, encode, refuse};
use crate::codec::{ReadExt, Reader, WriteExt, Writer};
use crate::error::Result;
use crate::runtime::{Ctx, Event, Genesis, Module, StateRead};
use crate::types::AccountId;

/// The module's name.
pub const NAME: &str = "staking";
/// Most validator records (active or not).
pub const MAX_CANDIDATES: usize = 1_000;

/// Staking parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StakingParams {
    /// Blocks between an unbond and the release of its funds.
    pub unbonding_blocks: u64,
    /// Largest active set.
    pub max_validators: usize,
    /// Least stake of an active validator.
    pub min_stake: u128,
}

impl Default for StakingParams {
    fn default() -> Self {
        StakingParams {
            unbonding_blocks: 100,
            max_validators: 100,
            min_stake: 1,
        }
    }
}

/// A validator record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validator {
    /// Its key: signs proposals and votes; its id is the operator account.
    pub key: PublicKey,
    /// Bonded stake (locked in the bank).
    pub stake: u128,
    /// Jailed validators are not in the active set.
    pub jailed: bool,
}

impl Validator {
    fn encode(&self) -> Vec<u8> {
        encode(|w| {
            w.key(&self.key).u128(self.stake).u8(u8::from(self.jailed));
        })
    }

    fn decode(b: &[u8]) -> Result<Self> {
        let mut r = Reader::new(b, "validator record");
        let v = Validator {
            key: r.key()?,
            stake: r.u128()?,
            jailed: r.u8()? != 0,
        };
        r.finish()?;
        Ok(v)
    }
}

/// The active set: (operator, key, voting power), by operator id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidatorSet(pub Vec<(AccountId, PublicKey, u128)>);

impl ValidatorSet {
    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u32(self.0.len() as u32);
        for (op, key, power) in &self.0 {
            w.hash(op).key(key).u128(*power);
        }
        w.finish()
    }

    /// Decodes a set.
    pub fn decode(b: &[u8]) -> Result<Self> {
        let mut r = Reader::new(b, "validator set");
        let n = r.count32(MAX_CANDIDATES)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push((r.hash()?, r.key()?, r.u128()?));
        }
        r.finish()?;
        Ok(ValidatorSet(v))
    }

    /// The hash headers carry (`validator_set_hash`).
    pub fn hash(&self) -> [u8; 32] {
        sha3_256(&self.encode())
    }

    /// Total voting power.
    pub fn total_power(&self) -> u128 {
        self.0.iter().map(|(_, _, p)| *p).sum()
    }
}

fn validator_key(op: &AccountId) -> Vec<u8> {
    [b"staking/v/".as_slice(), op].concat()
}

fn unbond_key(height: u64) -> Vec<u8> {
    [b"staking/u/".as_slice(), &height.to_be_bytes()].concat()
}

const OPS_KEY: &[u8] = b"staking/ops";
const SET_KEY: &[u8] = b"staking/set";

fn ids(b: Option<Vec<u8>>) -> Result<Vec<AccountId>> {
    let Some(b) = b else { return Ok(Vec::new()) };
    let mut r = Reader::new(&b, "operator list");
    let n = r.count32(MAX_CANDIDATES)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(r.hash()?);
    }
    r.finish()?;
    Ok(out)
}

fn put_ids(ctx: &mut Ctx<'_>, ops: &[AccountId]) -> Result<()> {
    let b = encode(|w| {
        w.u32(ops.len() as u32);
        for op in ops {
            w.hash(op);
        }
    });
    ctx.set(OPS_KEY.to_vec(), b)
}

/// The validator record of `op`.
pub fn validator(ctx: &mut Ctx<'_>, op: &AccountId) -> Result<Option<Validator>> {
    ctx.get(&validator_key(op))?.map(|b| Validator::decode(&b)).transpose()
}

/// The active validator set in a committed state (empty before any
/// validator bonds): the set that must commit the next block.
pub fn validator_set(state: &dyn StateRead) -> Result<ValidatorSet> {
    match state.get(SET_KEY)? {
        Some(b) => ValidatorSet::decode(&b),
        None => Ok(ValidatorSet::default()),
    }
}

/// The `staking` module.
#[derive(Debug, Default, Clone, Copy)]
pub struct Staking {
    /// Parameters.
    pub params: StakingParams,
}

impl Staking {
    fn bond(&self, ctx: &mut Ctx<'_>, key: &PublicKey, amount: u128) -> Result<()> {
        let op = key.node_id().0;
        let denom = ctx.native_denom.clone();
        bank::lock(ctx, &op, &denom, amount)?;
        let mut v = match validator(ctx, &op)? {
            Some(v) => v,
            None => {
                let mut ops = ids(ctx.get(OPS_KEY)?)?;
                if ops.len() >= MAX_CANDIDATES {
                    return Err(refuse(NAME, format!("{MAX_CANDIDATES} validators exist already")));
                }
                if let Err(at) = ops.binary_search(&op) {
                    ops.insert(at, op);
                }
                put_ids(ctx, &ops)?;
                Validator {
                    key: key.clone(),
                    stake: 0,
                    jailed: false,
                }
            }
        };
        v.stake = v
            .stake
            .checked_add(amount)
            .ok_or_else(|| refuse(NAME, "stake overflow"))?;
        ctx.set(validator_key(&op), v.encode())?;
        ctx.emit(
            Event::new(NAME, "bond")
                .with("validator", op.to_vec())
                .with("amount", amount.to_be_bytes().to_vec()),
        )
    }

    fn unbond(&self, ctx: &mut Ctx<'_>, op: &AccountId, amount: u128) -> Result<()> {
        let mut v = validator(ctx, op)?.ok_or_else(|| refuse(NAME, "not a validator"))?;
        v.stake = v
            .stake
            .checked_sub(amount)
            .ok_or_else(|| refuse(NAME, format!("cannot unbond {amount}: {} bonded", v.stake)))?;
        ctx.set(validator_key(op), v.encode())?;
        let release = ctx.block.height.saturating_add(self.params.unbonding_blocks);
        let key = unbond_key(release);
        let mut queue = ctx.get(&key)?.unwrap_or_default();
        queue.extend_from_slice(op);
        queue.extend_from_slice(&amount.to_be_bytes());
        ctx.set(key, queue)?;
        ctx.emit(
            Event::new(NAME, "unbond")
                .with("validator", op.to_vec())
                .with("amount", amount.to_be_bytes().to_vec())
                .with("release_height", release.to_be_bytes().to_vec()),
        )
    }

    /// Burns `ppm` millionths of `op`'s stake and jails it (it leaves the
    /// active set at the end of this block). The hook equivocation
    /// evidence calls.
    pub fn slash(ctx: &mut Ctx<'_>, op: &AccountId, ppm: u32, reason: &str) -> Result<u128> {
        let mut v = validator(ctx, op)?.ok_or_else(|| refuse(NAME, "not a validator"))?;
        let burned = v.stake / 1_000_000 * u128::from(ppm.min(1_000_000))
            + v.stake % 1_000_000 * u128::from(ppm.min(1_000_000)) / 1_000_000;
        let denom = ctx.native_denom.clone();
        bank::burn_locked(ctx, op, &denom, burned)?;
        v.stake -= burned;
        v.jailed = true;
        ctx.set(validator_key(op), v.encode())?;
        ctx.emit(
            Event::new(NAME, "slash")
                .with("validator", op.to_vec())
                .with("burned", burned.to_be_bytes().to_vec())
                .with("reason", reason.as_bytes().to_vec()),
        )?;
        Ok(burned)
    }

    fn active_set(&self, ctx: &mut Ctx<'_>) -> Result<ValidatorSet> {
        let mut all = Vec::new();
        for op in ids(ctx.get(OPS_KEY)?)? {
            if let Some(v) = validator(ctx, &op)? {
                if !v.jailed && v.stake >= self.params.min_stake {
                    all.push((op, v.key, v.stake));
                }
            }
        }
        // Most stake first, operator id breaking ties, then by id.
        all.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
        all.truncate(self.params.max_validators);
        all.sort_by_key(|v| v.0);
        Ok(ValidatorSet(all))
    }
}

impl Module for Staking {
    fn name(&self) -> &'static str {
        NAME
    }

    fn genesis(&self, ctx: &mut Ctx<'_>, genesis: &Genesis) -> Result<()> {
        let denom = ctx.native_denom.clone();
        for gv in &genesis.validators {
            bank::mint(ctx, &gv.key.node_id().0, &denom, gv.stake)?;
            self.bond(ctx, &gv.key, gv.stake)?;
        }
        let set = self.active_set(ctx)?;
        ctx.set(SET_KEY.to_vec(), set.encode())
    }

    fn execute(&self, ctx: &mut Ctx<'_>, method: &str, args: &[u8]) -> Result<Vec<u8>> {
        let key = ctx.sender_key.clone().ok_or_else(|| refuse(NAME, "no sender"))?;
        let amount = decode_args(NAME, method, args, |r| r.u128())?;
        if amount == 0 {
            return Err(refuse(NAME, "amount must be positive"));
        }
        match method {
            "bond" => self.bond(ctx, &key, amount)?,
            "unbond" => self.unbond(ctx, &key.node_id().0, amount)?,
            other => return Err(refuse(NAME, format!("no method {other:?}"))),
        }
        Ok(Vec::new())
    }

    fn end_block(&self, ctx: &mut Ctx<'_>) -> Result<()> {
        let key = unbond_key(ctx.block.height);
        if let Some(queue) = ctx.get(&key)? {
            let denom = ctx.native_denom.clone();
            for entry in queue.chunks(48) {
                let (op, amount) = entry.split_at(32);
                let op: AccountId = op.try_into().map_err(|_| refuse(NAME, "corrupt unbonding queue"))?;
                let amount =
                    u128::from_be_bytes(amount.try_into().map_err(|_| refuse(NAME, "corrupt unbonding queue"))?);
                bank::unlock(ctx, &op, &denom, amount)?;
            }
            ctx.delete(key)?;
        }
        let set = self.active_set(ctx)?;
        let old = ctx.get(SET_KEY)?;
        let new = set.encode();
        if old.as_deref() != Some(new.as_slice()) {
            ctx.emit(Event::new(NAME, "validator_set").with("hash", set.hash().to_vec()))?;
            ctx.set(SET_KEY.to_vec(), new)?;
        }
        Ok(())
    }

    fn query(&self, state: &dyn StateRead, path: &str, args: &[u8]) -> Result<Vec<u8>> {
        match path {
            "validator_set" => {
                decode_args(NAME, path, args, |_| Ok(()))?;
                Ok(state.get(SET_KEY)?.unwrap_or_else(|| ValidatorSet::default().encode()))
            }
            "validator" => {
                let op = decode_args(NAME, path, args, |r| r.hash())?;
                state
                    .get(&validator_key(&op))?
                    .ok_or_else(|| refuse(NAME, "not a validator"))
            }
            other => Err(refuse(NAME, format!("no query {other:?}"))),
        }
    }
}

/// Arguments of `staking.bond` and `staking.unbond`.
pub fn amount_args(amount: u128) -> Vec<u8> {
    encode(|w| {
        w.u128(amount);
    })
}

/// Decodes the `validator` query's answer.
pub fn decode_validator(b: &[u8]) -> Result<Validator> {
    Validator::decode(b)
}

#[cfg(test)]
#[path = "staking_tests.rs"]
mod tests;
