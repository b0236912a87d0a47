//! Staking: genesis validators, bonding, the unbonding period, slashing
//! and the active set.

use std::sync::Arc;

use stoq::crypto::{Algorithm, KeyPair};

use super::*;
use crate::runtime::BlockInfo;
use crate::types::{Call, Transaction};

use crate::runtime::test_chain::{account as id, signed, TestChain as Chain};

impl Chain {
    fn staking(validators: &[(&KeyPair, u128)], funded: &[(&KeyPair, u128)], params: StakingParams) -> Self {
        Chain::new(
            vec![Arc::new(Staking { params }) as Arc<dyn Module>],
            funded,
            validators,
        )
    }

    /// Applies the next block; each transaction's error, if any.
    fn errors(&mut self, txs: &[Transaction]) -> Vec<Option<(u16, String)>> {
        let out = self.block(txs).expect("block");
        out.receipts.into_iter().map(|r| r.error).collect()
    }

    fn set(&self) -> ValidatorSet {
        ValidatorSet::decode(
            &self
                .runtime
                .query(&self.state, NAME, "validator_set", &[])
                .expect("query"),
        )
        .expect("set")
    }

    fn stake(&self, k: &KeyPair) -> u128 {
        let b = self
            .runtime
            .query(&self.state, NAME, "validator", &id(k))
            .expect("query");
        decode_validator(&b).expect("record").stake
    }

    fn locked(&self, k: &KeyPair) -> u128 {
        let args = encode(|w| {
            w.hash(&id(k)).str8("caes");
        });
        let b = self.runtime.query(&self.state, "bank", "locked", &args).expect("query");
        u128::from_be_bytes(b.try_into().expect("16"))
    }
}

fn call(k: &KeyPair, nonce: u64, method: &str, amount: u128) -> Transaction {
    let call = Call {
        module: NAME.into(),
        method: method.into(),
        args: amount_args(amount),
    };
    signed(k, nonce, call, 200_000, 10)
}

#[test]
fn genesis_validators_form_the_set_and_bonds_change_it_at_the_block_end() {
    let (a, b, c) = (
        KeyPair::generate(Algorithm::FnDsa1024),
        KeyPair::generate(Algorithm::FnDsa1024),
        KeyPair::generate(Algorithm::FnDsa1024),
    );
    let params = StakingParams {
        unbonding_blocks: 3,
        max_validators: 2,
        min_stake: 1,
        slash_ppm: 50_000,
    };
    let mut chain = Chain::staking(&[(&a, 100), (&b, 50)], &[(&c, 1_000), (&a, 100)], params);
    let set = chain.set();
    assert_eq!(set.0.len(), 2);
    assert_eq!(set.total_power(), 150);
    assert_eq!(chain.locked(&a), 100, "stake is locked in the bank");

    // c bonds more than b: with two seats, b leaves the set.
    assert_eq!(chain.errors(&[call(&c, 0, "bond", 60)]), vec![None]);
    let ops: Vec<AccountId> = chain.set().0.iter().map(|v| v.0).collect();
    assert!(ops.contains(&id(&a)) && ops.contains(&id(&c)) && !ops.contains(&id(&b)));

    // Unbonding lowers the stake at once and releases the funds only
    // after the period.
    assert_eq!(chain.errors(&[call(&c, 1, "unbond", 60)]), vec![None]);
    assert_eq!(chain.stake(&c), 0);
    assert_eq!(chain.locked(&c), 60);
    chain.errors(&[]);
    chain.errors(&[]);
    assert_eq!(chain.locked(&c), 60, "still locked before the release height");
    chain.errors(&[]);
    assert_eq!(chain.locked(&c), 0, "released at height + 3");

    // Unbonding more than bonded fails and changes nothing.
    let errors = chain.errors(&[call(&a, 0, "unbond", 101)]);
    assert!(
        errors[0].as_ref().is_some_and(|e| e.1.contains("cannot unbond")),
        "{errors:?}"
    );
    assert_eq!(chain.stake(&a), 100);
}

#[test]
fn slashing_burns_stake_and_jails_until_the_set_drops_the_validator() {
    let (a, b) = (
        KeyPair::generate(Algorithm::FnDsa1024),
        KeyPair::generate(Algorithm::FnDsa1024),
    );
    let mut chain = Chain::staking(&[(&a, 1_000_000), (&b, 10)], &[], StakingParams::default());
    let info = BlockInfo {
        height: 1,
        time_ms: 1,
        proposer: [0; 32],
        slashed: Vec::new(),
    };
    let mut ctx = Ctx::new(&chain.state, info, "caes".into());
    let burned = Staking::slash(&mut ctx, &id(&a), 50_000, "equivocation").expect("slash");
    assert_eq!(burned, 50_000, "5% of 1,000,000");
    Staking::default().end_block(&mut ctx).expect("end block");
    chain.state.apply(&ctx.into_writes());
    assert_eq!(chain.stake(&a), 950_000);
    assert_eq!(chain.locked(&a), 950_000);
    let set = chain.set();
    assert_eq!(set.0.len(), 1, "the jailed validator left the set");
    assert_eq!(set.0[0].0, id(&b));
    let supply = chain
        .runtime
        .query(
            &chain.state,
            "bank",
            "supply",
            &encode(|w| {
                w.str8("caes");
            }),
        )
        .expect("supply");
    assert_eq!(u128::from_be_bytes(supply.try_into().expect("16")), 1_000_010 - 50_000);
}

/// `n` validator records, each with power `power` and the address `ip`.
fn records(keys: &[KeyPair], spec: &[(u128, &str)]) -> Vec<(AccountId, PublicKey, u128, Ipv6Addr)> {
    keys.iter()
        .zip(spec)
        .map(|(k, (power, ip))| (id(k), k.public_key().clone(), *power, ip.parse().expect("ip")))
        .collect()
}

fn powers(set: &[(AccountId, PublicKey, u128)]) -> Vec<u128> {
    set.iter().map(|v| v.2).collect()
}

#[test]
fn a_48_over_the_cap_is_scaled_down_together_and_others_keep_their_power() {
    let keys: Vec<KeyPair> = (0..4).map(|_| KeyPair::generate(Algorithm::FnDsa1024)).collect();
    // Three in 2001:db8:1::/48 (two /64s of it), one in 2001:db8:2::/48.
    let set = records(
        &keys,
        &[
            (100, "2001:db8:1:1::1"),
            (100, "2001:db8:1:2::1"),
            (100, "2001:db8:1:1::2"),
            (100, "2001:db8:2::1"),
        ],
    );
    // A third of 400 is 133: the first /48's 300 becomes 3 x 44 = 132.
    let capped = cap_prefix_power(set.clone(), 3_333);
    assert_eq!(powers(&capped), vec![44, 44, 44, 100]);
    let first: u128 = capped[..3].iter().map(|v| v.2).sum();
    assert!(first <= 400 * 3_333 / 10_000);
    // No cap, or a /48 within it: unchanged.
    assert_eq!(powers(&cap_prefix_power(set.clone(), 10_000)), vec![100; 4]);
    assert_eq!(powers(&cap_prefix_power(set, 7_500)), vec![100; 4]);
}

#[test]
fn one_48_keeps_relative_weights_and_a_power_scaled_to_zero_leaves_the_set() {
    let keys: Vec<KeyPair> = (0..3).map(|_| KeyPair::generate(Algorithm::FnDsa1024)).collect();
    // Everyone on one /48 (a devnet on [::1]): all scale alike.
    let local = records(&keys, &[(300, "::1"), (600, "::1"), (900, "::1")]);
    let capped = cap_prefix_power(local, 3_333);
    // A third of 1,800 is 599: 300, 600, 900 become 99, 199, 299.
    assert_eq!(powers(&capped), vec![99, 199, 299]);
    // A validator of power 1 sharing a /48 with a large one rounds to 0
    // under a tight cap, and is left out rather than kept at no power.
    let set = records(
        &keys,
        &[
            (1, "2001:db8:1::1"),
            (10_000, "2001:db8:1::2"),
            (10_000, "2001:db8:2::1"),
        ],
    );
    let capped = cap_prefix_power(set, 1);
    assert_eq!(capped.len(), 2);
    assert_eq!(capped[0].0, id(&keys[1]));
    assert_eq!(powers(&capped), vec![1, 2]);
}
