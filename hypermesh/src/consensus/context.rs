//! HyperMesh's types for Malachite's consensus core: what a height, a
//! value, a vote and a validator are, and which validator proposes.
//!
//! Consensus runs on block hashes (Malachite's "proposal and parts"
//! mode): proposals and votes carry the 32-byte header hash, and the
//! block itself travels beside them, by hash. A value is only ever
//! voted for once the host has the block and has checked it.

use std::fmt;
use std::sync::Arc;

use malachite_types::{self as mt, LinearTimeouts, NilOrVal, Round, SignedExtension, VoteType, VotingPower};
use stoq::crypto::{sha3_256, PublicKey, Signature};

use crate::codec::Hash;
use crate::modules::staking;
use crate::types::AccountId;

/// A validator's address: its account id (the SHA3-256 of its key).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address(pub AccountId);

/// The first six bytes in hex: enough to tell validators and blocks
/// apart in logs.
fn short_hex(bytes: &[u8; 32], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    bytes[..6].iter().try_for_each(|b| write!(f, "{b:02x}"))
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        short_hex(&self.0, f)
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({self})")
    }
}

impl mt::Address for Address {}

/// A block height (the first block is 1).
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Height(pub u64);

impl fmt::Display for Height {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl mt::Height for Height {
    const ZERO: Self = Height(0);
    const INITIAL: Self = Height(1);

    fn increment_by(&self, n: u64) -> Self {
        Height(self.0.saturating_add(n))
    }

    fn decrement_by(&self, n: u64) -> Option<Self> {
        self.0.checked_sub(n).map(Height)
    }

    fn as_u64(&self) -> u64 {
        self.0
    }
}

/// What consensus decides: a block, named by its header hash.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlockId(pub Hash);

impl fmt::Display for BlockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        short_hex(&self.0, f)
    }
}

impl fmt::Debug for BlockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlockId({self})")
    }
}

impl mt::Value for BlockId {
    type Id = BlockId;

    fn id(&self) -> BlockId {
        *self
    }
}

/// A proposal: the proposer of `round` at `height` proposes the block
/// `value`, re-proposing one that had a polka in `pol_round` if defined.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    /// Height.
    pub height: Height,
    /// Round.
    pub round: Round,
    /// The block's hash.
    pub value: BlockId,
    /// The round of the polka behind a re-proposal, or nil.
    pub pol_round: Round,
    /// The proposer.
    pub proposer: Address,
}

impl mt::Proposal<HmContext> for Proposal {
    fn height(&self) -> Height {
        self.height
    }
    fn round(&self) -> Round {
        self.round
    }
    fn value(&self) -> &BlockId {
        &self.value
    }
    fn take_value(self) -> BlockId {
        self.value
    }
    fn pol_round(&self) -> Round {
        self.pol_round
    }
    fn validator_address(&self) -> &Address {
        &self.proposer
    }
}

/// A prevote or precommit for a block or nil.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vote {
    /// Prevote or precommit.
    pub vote_type: VoteType,
    /// Height.
    pub height: Height,
    /// Round.
    pub round: Round,
    /// The block voted for, or nil.
    pub value: NilOrVal<BlockId>,
    /// The voter.
    pub validator: Address,
}

impl mt::Vote<HmContext> for Vote {
    fn height(&self) -> Height {
        self.height
    }
    fn round(&self) -> Round {
        self.round
    }
    fn value(&self) -> &NilOrVal<BlockId> {
        &self.value
    }
    fn take_value(self) -> NilOrVal<BlockId> {
        self.value
    }
    fn vote_type(&self) -> VoteType {
        self.vote_type
    }
    fn validator_address(&self) -> &Address {
        &self.validator
    }
    // Vote extensions are disabled: a vote never carries one.
    fn extension(&self) -> Option<&SignedExtension<HmContext>> {
        None
    }
    fn take_extension(&mut self) -> Option<SignedExtension<HmContext>> {
        None
    }
    fn extend(self, _extension: SignedExtension<HmContext>) -> Self {
        self
    }
}

/// Unused: blocks travel whole, by hash, outside the engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockPart;

impl mt::ProposalPart<HmContext> for BlockPart {
    fn is_first(&self) -> bool {
        true
    }
    fn is_last(&self) -> bool {
        true
    }
}

/// A validator as consensus sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validator {
    /// Its address.
    pub address: Address,
    /// Its FN-DSA key.
    pub public_key: PublicKey,
    /// Its voting power (its bond, scaled to fit 64 bits).
    pub power: VotingPower,
}

impl mt::Validator<HmContext> for Validator {
    fn address(&self) -> &Address {
        &self.address
    }
    fn public_key(&self) -> &PublicKey {
        &self.public_key
    }
    fn voting_power(&self) -> VotingPower {
        self.power
    }
}

/// Powers are scaled down by a power of two until their sum fits in this,
/// so the engine's 64-bit sums cannot overflow.
const MAX_TOTAL_POWER: u128 = 1 << 62;

/// The validators of one height, in the staking module's order (the
/// order commit certificates index).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatorSet {
    validators: Arc<Vec<Validator>>,
    total: VotingPower,
    hash: Hash,
}

impl ValidatorSet {
    /// Converts the staking module's set (bonds as 128-bit amounts).
    pub fn from_staking(set: &staking::ValidatorSet) -> Self {
        let total: u128 = set.0.iter().map(|(_, _, p)| *p).fold(0, u128::saturating_add);
        let mut shift = 0;
        while (total >> shift) > MAX_TOTAL_POWER {
            shift += 1;
        }
        let validators: Vec<Validator> = set
            .0
            .iter()
            .map(|(account, key, power)| Validator {
                address: Address(*account),
                public_key: key.clone(),
                // Below MAX_TOTAL_POWER after the shift, so it fits.
                power: u64::try_from(power >> shift).unwrap_or(u64::MAX),
            })
            .collect();
        let total = validators.iter().map(|v| v.power).fold(0u64, u64::saturating_add);
        ValidatorSet {
            validators: Arc::new(validators),
            total,
            hash: set.hash(),
        }
    }

    /// The validators.
    pub fn validators(&self) -> &[Validator] {
        &self.validators
    }

    /// The hash of the staking set this came from (the header field
    /// `validator_set_hash`).
    pub fn hash(&self) -> &Hash {
        &self.hash
    }

    /// The index of `address`, if it is a member.
    pub fn index_of(&self, address: &Address) -> Option<usize> {
        self.validators.iter().position(|v| &v.address == address)
    }
}

impl mt::ValidatorSet<HmContext> for ValidatorSet {
    fn count(&self) -> usize {
        self.validators.len()
    }
    fn total_voting_power(&self) -> VotingPower {
        self.total
    }
    fn get_by_address(&self, address: &Address) -> Option<&Validator> {
        self.validators.iter().find(|v| &v.address == address)
    }
    fn get_by_index(&self, index: usize) -> Option<&Validator> {
        self.validators.get(index)
    }
}

/// An FN-DSA signature with the total order the engine's maps need
/// (by algorithm, then bytes).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConsensusSignature(pub Signature);

impl PartialOrd for ConsensusSignature {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ConsensusSignature {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.0.algorithm(), self.0.as_bytes()).cmp(&(other.0.algorithm(), other.0.as_bytes()))
    }
}

/// FN-DSA-1024 (FALCON) as the engine's signing scheme. Signing and
/// verifying happen in the host (the engine asks through effects); this
/// only names the types and their encodings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FalconScheme;

impl mt::SigningScheme for FalconScheme {
    type DecodingError = String;
    type Signature = ConsensusSignature;
    type PublicKey = PublicKey;
    /// The host holds the key; the engine never sees it.
    type PrivateKey = ();

    fn decode_signature(bytes: &[u8]) -> Result<ConsensusSignature, String> {
        Signature::from_compact_prefix(bytes)
            .and_then(|(s, rest)| {
                if rest.is_empty() {
                    Ok(ConsensusSignature(s))
                } else {
                    Err(stoq::crypto::CryptoError::Encoding("trailing bytes".into()))
                }
            })
            .map_err(|e| e.to_string())
    }
    fn encode_signature(signature: &ConsensusSignature) -> Vec<u8> {
        signature.0.to_compact()
    }
    fn decode_public_key(bytes: &[u8]) -> Result<PublicKey, String> {
        PublicKey::from_compact(bytes).map_err(|e| e.to_string())
    }
    fn encode_public_key(public_key: &PublicKey) -> Vec<u8> {
        public_key.to_compact()
    }
}

/// The consensus context of one chain.
#[derive(Clone, Debug)]
pub struct HmContext {
    chain_id: Arc<str>,
}

impl HmContext {
    /// The context of the chain `chain_id` (bound into every signature).
    pub fn new(chain_id: &str) -> Self {
        HmContext {
            chain_id: Arc::from(chain_id),
        }
    }

    /// The chain id.
    pub fn chain_id(&self) -> &str {
        &self.chain_id
    }
}

impl mt::Context for HmContext {
    type Address = Address;
    type Height = Height;
    type ProposalPart = BlockPart;
    type Proposal = Proposal;
    type Validator = Validator;
    type ValidatorSet = ValidatorSet;
    type Timeouts = LinearTimeouts;
    type Value = BlockId;
    type Vote = Vote;
    type Extension = ();
    type SigningScheme = FalconScheme;

    /// Weighted by voting power and unpredictable before the height: the
    /// proposer of `(height, round)` is the validator whose share of the
    /// total power contains a point derived from the height and round,
    /// so a validator with a quarter of the power proposes a quarter of
    /// the rounds, and a crashed one cannot stall consecutive rounds more
    /// often than its share makes likely.
    fn select_proposer<'a>(&self, set: &'a ValidatorSet, height: Height, round: Round) -> &'a Validator {
        proposer_of(set, height, round)
    }

    fn new_proposal(
        &self,
        height: Height,
        round: Round,
        value: BlockId,
        pol_round: Round,
        address: Address,
    ) -> Proposal {
        Proposal {
            height,
            round,
            value,
            pol_round,
            proposer: address,
        }
    }

    fn new_prevote(&self, height: Height, round: Round, value_id: NilOrVal<BlockId>, address: Address) -> Vote {
        Vote {
            vote_type: VoteType::Prevote,
            height,
            round,
            value: value_id,
            validator: address,
        }
    }

    fn new_precommit(&self, height: Height, round: Round, value_id: NilOrVal<BlockId>, address: Address) -> Vote {
        Vote {
            vote_type: VoteType::Precommit,
            height,
            round,
            value: value_id,
            validator: address,
        }
    }
}

/// See [`HmContext::select_proposer`]. The engine is never given an empty
/// set (a chain with no validators does not run consensus).
pub fn proposer_of(set: &ValidatorSet, height: Height, round: Round) -> &Validator {
    let validators = set.validators();
    let total = set.total.max(1);
    let mut seed = Vec::with_capacity(32);
    seed.extend_from_slice(b"hypermesh/proposer/v1");
    seed.extend_from_slice(&height.0.to_be_bytes());
    seed.extend_from_slice(&round.as_i64().to_be_bytes());
    let digest = sha3_256(&seed);
    let mut point_bytes = [0u8; 8];
    point_bytes.copy_from_slice(&digest[..8]);
    // The bias of a 64-bit draw modulo a total below 2^62 is negligible.
    let point = u64::from_be_bytes(point_bytes) % total;
    let mut acc = 0u64;
    for v in validators {
        acc = acc.saturating_add(v.power);
        if point < acc {
            return v;
        }
    }
    // Only reachable with zero total power; any member will do, and there
    // is at least one (see above).
    &validators[(height.0 as usize + round.as_i64().max(0) as usize) % validators.len().max(1)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use stoq::crypto::{Algorithm, KeyPair};

    fn set(powers: &[u128]) -> ValidatorSet {
        let s = staking::ValidatorSet(
            powers
                .iter()
                .map(|p| {
                    let k = KeyPair::generate(Algorithm::FnDsa1024);
                    (k.public_key().node_id().0, k.public_key().clone(), *p)
                })
                .collect(),
        );
        ValidatorSet::from_staking(&s)
    }

    #[test]
    fn proposers_follow_voting_power() {
        let vs = set(&[1, 1, 2]);
        let mut counts = [0u32; 3];
        for h in 1..=3000 {
            let p = proposer_of(&vs, Height(h), Round::new(0));
            counts[vs.index_of(&p.address).expect("member")] += 1;
        }
        // Expected 750/750/1500; the bounds are loose (the draw is a hash).
        assert!(counts[2] > 1300 && counts[2] < 1700, "{counts:?}");
        assert!(counts[0] > 600 && counts[1] > 600, "{counts:?}");
        // Rounds move the proposer: over 20 rounds of one height, more
        // than one validator proposes.
        let distinct: std::collections::BTreeSet<_> = (0..20)
            .map(|r| proposer_of(&vs, Height(7), Round::new(r)).address)
            .collect();
        assert!(distinct.len() > 1);
    }

    #[test]
    fn huge_bonds_are_scaled_into_64_bits_keeping_proportions() {
        let vs = set(&[u128::MAX / 4, u128::MAX / 4, u128::MAX / 2]);
        let p: Vec<u64> = vs.validators().iter().map(|v| v.power).collect();
        assert!(vs.total <= 1 << 62, "total {}", vs.total);
        assert_eq!(p[0], p[1]);
        assert!(p[2] >= 2 * p[0] - 1 && p[2] <= 2 * p[0] + 1, "{p:?}");
    }
}
