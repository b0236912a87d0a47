//! `bank`: balances in any number of denominations, transfers, supply, and
//! locks that other modules use for escrow (bonds, orders, leases).
//!
//! Keys: `bank/b/<account><denom>` -> u128 balance, `bank/s/<denom>` ->
//! u128 supply, `bank/l/<account><denom>` -> u128 locked. Locked funds stay
//! in the owner's balance but cannot be spent until the locking module
//! releases or seizes them.

use super::{decode_args, encode, module_account, refuse};
use crate::codec::{ReadExt, WriteExt};
use crate::error::Result;
use crate::runtime::{Ctx, Event, Genesis, Module, StateRead};
use crate::types::AccountId;

/// The module's name.
pub const NAME: &str = "bank";
/// Longest denomination, in bytes.
pub const MAX_DENOM: usize = 32;

/// Where fees go until a distribution module pays them out.
pub fn fee_collector() -> AccountId {
    module_account("fee_collector")
}

fn key(tag: u8, account: Option<&AccountId>, denom: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(7 + 32 + denom.len());
    k.extend_from_slice(b"bank/");
    k.push(tag);
    k.push(b'/');
    if let Some(a) = account {
        k.extend_from_slice(a);
    }
    k.extend_from_slice(denom.as_bytes());
    k
}

fn read_amount(v: Option<Vec<u8>>) -> Result<u128> {
    match v {
        None => Ok(0),
        Some(b) => Ok(u128::from_be_bytes(
            b.as_slice()
                .try_into()
                .map_err(|_| refuse(NAME, "corrupt amount in state"))?,
        )),
    }
}

fn store_amount(ctx: &mut Ctx<'_>, k: Vec<u8>, v: u128) -> Result<()> {
    if v == 0 {
        ctx.delete(k)
    } else {
        ctx.set(k, v.to_be_bytes().to_vec())
    }
}

fn check_denom(denom: &str) -> Result<()> {
    let ok = !denom.is_empty()
        && denom.len() <= MAX_DENOM
        && denom
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(refuse(
            NAME,
            format!("bad denomination {denom:?} (1-32 of a-z, 0-9, -)"),
        ))
    }
}

/// The balance of `account` in `denom` (locked funds included).
pub fn balance(ctx: &mut Ctx<'_>, account: &AccountId, denom: &str) -> Result<u128> {
    read_amount(ctx.get(&key(b'b', Some(account), denom))?)
}

/// The part of the balance locked by modules.
pub fn locked(ctx: &mut Ctx<'_>, account: &AccountId, denom: &str) -> Result<u128> {
    read_amount(ctx.get(&key(b'l', Some(account), denom))?)
}

/// Moves `amount` of unlocked funds.
pub fn transfer(ctx: &mut Ctx<'_>, from: &AccountId, to: &AccountId, denom: &str, amount: u128) -> Result<()> {
    check_denom(denom)?;
    let have = balance(ctx, from, denom)?;
    let spendable = have.saturating_sub(locked(ctx, from, denom)?);
    if spendable < amount {
        return Err(refuse(
            NAME,
            format!("insufficient funds: {spendable} {denom} spendable, {amount} needed"),
        ));
    }
    if from == to || amount == 0 {
        return Ok(());
    }
    store_amount(ctx, key(b'b', Some(from), denom), have - amount)?;
    let theirs = balance(ctx, to, denom)?;
    let new = theirs
        .checked_add(amount)
        .ok_or_else(|| refuse(NAME, "balance overflow"))?;
    store_amount(ctx, key(b'b', Some(to), denom), new)
}

/// Creates `amount` new units for `to` (genesis, rewards).
pub fn mint(ctx: &mut Ctx<'_>, to: &AccountId, denom: &str, amount: u128) -> Result<()> {
    check_denom(denom)?;
    let supply_key = key(b's', None, denom);
    let supply = read_amount(ctx.get(&supply_key)?)?
        .checked_add(amount)
        .ok_or_else(|| refuse(NAME, "supply overflow"))?;
    store_amount(ctx, supply_key, supply)?;
    let new = balance(ctx, to, denom)?
        .checked_add(amount)
        .ok_or_else(|| refuse(NAME, "balance overflow"))?;
    store_amount(ctx, key(b'b', Some(to), denom), new)
}

/// Locks `amount` of `account`'s unlocked funds.
pub fn lock(ctx: &mut Ctx<'_>, account: &AccountId, denom: &str, amount: u128) -> Result<()> {
    let have = balance(ctx, account, denom)?;
    let held = locked(ctx, account, denom)?;
    if have.saturating_sub(held) < amount {
        return Err(refuse(
            NAME,
            format!("cannot lock {amount} {denom}: {} unlocked", have.saturating_sub(held)),
        ));
    }
    store_amount(ctx, key(b'l', Some(account), denom), held + amount)
}

/// Releases `amount` of `account`'s locked funds.
pub fn unlock(ctx: &mut Ctx<'_>, account: &AccountId, denom: &str, amount: u128) -> Result<()> {
    let held = locked(ctx, account, denom)?;
    let rest = held
        .checked_sub(amount)
        .ok_or_else(|| refuse(NAME, format!("cannot unlock {amount} {denom}: {held} locked")))?;
    store_amount(ctx, key(b'l', Some(account), denom), rest)
}

/// Destroys `amount` of `account`'s locked funds (slashing).
pub fn burn_locked(ctx: &mut Ctx<'_>, account: &AccountId, denom: &str, amount: u128) -> Result<()> {
    unlock(ctx, account, denom, amount)?;
    let have = balance(ctx, account, denom)?;
    store_amount(ctx, key(b'b', Some(account), denom), have.saturating_sub(amount))?;
    let supply_key = key(b's', None, denom);
    let supply = read_amount(ctx.get(&supply_key)?)?;
    store_amount(ctx, supply_key, supply.saturating_sub(amount))
}

/// The `bank` module.
#[derive(Debug, Default, Clone, Copy)]
pub struct Bank;

/// Arguments of `bank.transfer`: recipient, denomination, amount.
pub fn transfer_args(to: &AccountId, denom: &str, amount: u128) -> Vec<u8> {
    encode(|w| {
        w.hash(to).str8(denom).u128(amount);
    })
}

impl Module for Bank {
    fn name(&self) -> &'static str {
        NAME
    }

    fn genesis(&self, ctx: &mut Ctx<'_>, genesis: &Genesis) -> Result<()> {
        for (account, denom, amount) in &genesis.balances {
            mint(ctx, account, denom, *amount)?;
        }
        Ok(())
    }

    fn execute(&self, ctx: &mut Ctx<'_>, method: &str, args: &[u8]) -> Result<Vec<u8>> {
        let sender = ctx.sender.ok_or_else(|| refuse(NAME, "no sender"))?;
        match method {
            "transfer" => {
                let (to, denom, amount) =
                    decode_args(NAME, method, args, |r| Ok((r.hash()?, r.str8(MAX_DENOM)?, r.u128()?)))?;
                transfer(ctx, &sender, &to, &denom, amount)?;
                ctx.emit(
                    Event::new(NAME, "transfer")
                        .with("from", sender.to_vec())
                        .with("to", to.to_vec())
                        .with("denom", denom.as_bytes().to_vec())
                        .with("amount", amount.to_be_bytes().to_vec()),
                )?;
                Ok(Vec::new())
            }
            other => Err(refuse(NAME, format!("no method {other:?}"))),
        }
    }

    fn query(&self, state: &dyn StateRead, path: &str, args: &[u8]) -> Result<Vec<u8>> {
        let amount = match path {
            "balance" => {
                let (account, denom) = decode_args(NAME, path, args, |r| Ok((r.hash()?, r.str8(MAX_DENOM)?)))?;
                read_amount(state.get(&key(b'b', Some(&account), &denom))?)?
            }
            "locked" => {
                let (account, denom) = decode_args(NAME, path, args, |r| Ok((r.hash()?, r.str8(MAX_DENOM)?)))?;
                read_amount(state.get(&key(b'l', Some(&account), &denom))?)?
            }
            "supply" => {
                let denom = decode_args(NAME, path, args, |r| Ok(r.str8(MAX_DENOM)?))?;
                read_amount(state.get(&key(b's', None, &denom))?)?
            }
            other => return Err(refuse(NAME, format!("no query {other:?}"))),
        };
        Ok(amount.to_be_bytes().to_vec())
    }
}

/// The state key of `account`'s balance in `denom` (for proofs).
pub fn balance_key(account: &AccountId, denom: &str) -> Vec<u8> {
    key(b'b', Some(account), denom)
}
