//! `staking`: validators bond native tokens, unbond them after an
//! unbonding period, can be slashed and jailed; the active validator set,
//! recomputed at the end of every block, is what the next height's
//! consensus uses (read it at the state of height h for height h + 1).
//!
//! Bonds are self-bonds: the operator's own funds, locked in the bank.
//! Delegation is not in this version.
//!
//! Each validator registers the Merkle root of its storage plot (what its
//! proofs of space answer to) and its IPv6 address: the voting power of
//! the validators of one /48 is capped (`max_prefix_power_bps` of the
//! genesis), so one network cannot hold the set by splitting its stake.
//!
//! Keys: `staking/v/<operator>` validator record, `staking/ops` the sorted
//! operator list, `staking/u/<height>` what unbonds at that height,
//! `staking/set` the active set, `staking/cap` the /48 cap,
//! `staking/e/<operator><height>` an equivocation already punished.

use std::net::Ipv6Addr;

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
    /// Millionths of its stake an equivocating validator loses.
    pub slash_ppm: u32,
}

impl Default for StakingParams {
    fn default() -> Self {
        StakingParams {
            unbonding_blocks: 100,
            max_validators: 100,
            min_stake: 1,
            slash_ppm: 50_000,
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
    /// The Merkle root of its storage plot (zero until registered).
    pub plot_root: [u8; 32],
    /// Its address (unspecified until registered).
    pub ip: Ipv6Addr,
}

impl Validator {
    fn encode(&self) -> Vec<u8> {
        encode(|w| {
            w.key(&self.key)
                .u128(self.stake)
                .u8(u8::from(self.jailed))
                .hash(&self.plot_root)
                .fixed(&self.ip.octets());
        })
    }

    fn decode(b: &[u8]) -> Result<Self> {
        let mut r = Reader::new(b, "validator record");
        let v = Validator {
            key: r.key()?,
            stake: r.u128()?,
            jailed: r.u8()? != 0,
            plot_root: r.hash()?,
            ip: Ipv6Addr::from(r.array::<16>()?),
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
const CAP_KEY: &[u8] = b"staking/cap";

fn offence_key(op: &AccountId, height: u64) -> Vec<u8> {
    [b"staking/e/".as_slice(), op, &height.to_be_bytes()].concat()
}

/// The /48 an address is in.
fn prefix48(ip: &Ipv6Addr) -> [u8; 6] {
    let o = ip.octets();
    [o[0], o[1], o[2], o[3], o[4], o[5]]
}

/// Caps the power of each /48 at `bps` basis points of the set's total:
/// the validators of a prefix over the cap have their power scaled down
/// together (proportionally, rounding down), and a validator left with
/// none leaves the set. With a single /48 every power scales alike, so
/// the relative weights (all consensus uses) do not change.
pub fn cap_prefix_power(
    set: Vec<(AccountId, PublicKey, u128, Ipv6Addr)>,
    bps: u32,
) -> Vec<(AccountId, PublicKey, u128)> {
    let total: u128 = set.iter().map(|v| v.2).sum();
    let cap = total / 10_000 * u128::from(bps) + total % 10_000 * u128::from(bps) / 10_000;
    let mut per_prefix: std::collections::BTreeMap<[u8; 6], u128> = std::collections::BTreeMap::new();
    for v in &set {
        *per_prefix.entry(prefix48(&v.3)).or_default() += v.2;
    }
    set.into_iter()
        .filter_map(|(op, key, power, ip)| {
            let group = per_prefix.get(&prefix48(&ip)).copied().unwrap_or(power);
            let power = if bps >= 10_000 || group <= cap {
                power
            } else {
                mul_div(power, cap, group)
            };
            (power > 0).then_some((op, key, power))
        })
        .collect()
}

/// `a * b / c` rounded down, exactly (through 256 bits).
fn mul_div(a: u128, b: u128, c: u128) -> u128 {
    use crypto_bigint::{NonZero, U256};
    let Some(c) = Option::<NonZero<U256>>::from(NonZero::new(U256::from_u128(c))) else {
        return 0;
    };
    let q = U256::from_u128(a).wrapping_mul(&U256::from_u128(b)).wrapping_div(&c);
    let words = q.to_words();
    // a <= c here, so the quotient is at most b and fits.
    (u128::from(words[1]) << 64) | u128::from(words[0])
}

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
    fn register(&self, ctx: &mut Ctx<'_>, op: &AccountId, plot_root: [u8; 32], ip: Ipv6Addr) -> Result<()> {
        let mut v = validator(ctx, op)?.ok_or_else(|| refuse(NAME, "bond before registering"))?;
        if plot_root == [0; 32] {
            return Err(refuse(NAME, "the plot root is zero"));
        }
        if ip.is_unspecified() || ip.is_multicast() {
            return Err(refuse(NAME, format!("{ip} is not a validator's address")));
        }
        v.plot_root = plot_root;
        v.ip = ip;
        ctx.set(validator_key(op), v.encode())?;
        ctx.emit(
            Event::new(NAME, "register")
                .with("validator", op.to_vec())
                .with("plot_root", plot_root.to_vec())
                .with("ip", ip.octets().to_vec()),
        )
    }

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
                    plot_root: [0; 32],
                    ip: Ipv6Addr::UNSPECIFIED,
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
                    all.push((op, v.key, v.stake, v.ip));
                }
            }
        }
        // Most stake first, operator id breaking ties, then by id.
        all.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
        all.truncate(self.params.max_validators);
        all.sort_by_key(|v| v.0);
        let bps = match ctx.get(CAP_KEY)? {
            Some(b) => decode_args(NAME, "cap", &b, |r| Ok(r.u32()?))?,
            None => 10_000,
        };
        Ok(ValidatorSet(cap_prefix_power(all, bps)))
    }

    /// Slashes and jails the validators this block's evidence convicts,
    /// once per offence height.
    fn punish(&self, ctx: &mut Ctx<'_>) -> Result<()> {
        for (op, height) in ctx.block.slashed.clone() {
            let key = offence_key(&op, height);
            if ctx.get(&key)?.is_some() || validator(ctx, &op)?.is_none() {
                continue;
            }
            Self::slash(ctx, &op, self.params.slash_ppm, "equivocation")?;
            ctx.set(key, Vec::new())?;
        }
        Ok(())
    }
}

impl Module for Staking {
    fn name(&self) -> &'static str {
        NAME
    }

    fn genesis(&self, ctx: &mut Ctx<'_>, genesis: &Genesis) -> Result<()> {
        let denom = ctx.native_denom.clone();
        for gv in &genesis.validators {
            let op = gv.key.node_id().0;
            bank::mint(ctx, &op, &denom, gv.stake)?;
            self.bond(ctx, &gv.key, gv.stake)?;
            if gv.plot_root != [0; 32] {
                let mut v = validator(ctx, &op)?.ok_or_else(|| refuse(NAME, "bonded validator missing"))?;
                v.plot_root = gv.plot_root;
                v.ip = gv.ip;
                ctx.set(validator_key(&op), v.encode())?;
            }
        }
        let cap = genesis.params.consensus.max_prefix_power_bps;
        ctx.set(
            CAP_KEY.to_vec(),
            encode(|w| {
                w.u32(cap);
            }),
        )?;
        let set = self.active_set(ctx)?;
        ctx.set(SET_KEY.to_vec(), set.encode())
    }

    fn execute(&self, ctx: &mut Ctx<'_>, method: &str, args: &[u8]) -> Result<Vec<u8>> {
        let key = ctx.sender_key.clone().ok_or_else(|| refuse(NAME, "no sender"))?;
        if method == "register" {
            let (root, ip) = decode_args(NAME, method, args, |r| {
                Ok((r.hash()?, Ipv6Addr::from(r.array::<16>()?)))
            })?;
            self.register(ctx, &key.node_id().0, root, ip)?;
            return Ok(Vec::new());
        }
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

    fn begin_block(&self, ctx: &mut Ctx<'_>) -> Result<()> {
        self.punish(ctx)
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

/// Arguments of `staking.register`: the plot root and the address.
pub fn register_args(plot_root: &[u8; 32], ip: Ipv6Addr) -> Vec<u8> {
    encode(|w| {
        w.hash(plot_root).fixed(&ip.octets());
    })
}

/// Whether `op` was already punished for an equivocation at `height`.
pub fn punished(state: &dyn StateRead, op: &AccountId, height: u64) -> Result<bool> {
    Ok(state.get(&offence_key(op, height))?.is_some())
}

/// The validator record of `op` in a committed state.
pub fn validator_at(state: &dyn StateRead, op: &AccountId) -> Result<Option<Validator>> {
    state
        .get(&validator_key(op))?
        .map(|b| Validator::decode(&b))
        .transpose()
}

/// Decodes the `validator` query's answer.
pub fn decode_validator(b: &[u8]) -> Result<Validator> {
    Validator::decode(b)
}

#[cfg(test)]
#[path = "staking_tests.rs"]
mod tests;
