//! What validators sign, and the checks of the certificates the engine
//! hands the host: commit (precommits), polka (prevotes) and round
//! certificates.
//!
//! A vote's signed bytes are the ones a block's commit certificate holds
//! ([`vote_signing_bytes`]), so the precommits gathered by the engine are
//! the certificate stored with the block, and anyone who syncs the block
//! checks them with [`CommitCertificate::verify`].

use std::borrow::Cow;

use malachite_types::{
    CertificateError, CommitCertificate as EngineCommitCertificate, NilOrVal, PolkaCertificate, Round,
    RoundCertificate, RoundCertificateType, SignedMessage, ThresholdParam, ThresholdParams, VoteType, VotingPower,
};
use stoq::crypto::{KeyPair, PublicKey, Signature};

use super::context::{Address, BlockId, ConsensusSignature, HmContext, Proposal, ValidatorSet, Vote};
use crate::chain::{vote_signing_bytes, CommitCertificate, CommitSignature, VoteKind};
use crate::codec::{WriteExt, Writer};
use crate::error::{Error, Result};

const PROPOSAL_DOMAIN: &[u8] = b"hypermesh/proposal/v1";

/// The bytes a proposer signs for `proposal`.
pub fn proposal_signing_bytes(chain_id: &str, proposal: &Proposal) -> Vec<u8> {
    let mut w = Writer::with_domain(PROPOSAL_DOMAIN);
    w.str8(chain_id)
        .u64(proposal.height.0)
        .u32(round_u32(proposal.round))
        .hash(&proposal.value.0)
        .hash(&proposal.proposer.0);
    match proposal.pol_round.as_u32() {
        Some(r) => w.u8(1).u32(r),
        None => w.u8(0),
    };
    w.finish()
}

/// The bytes a validator signs for `vote` (the same as a commit
/// certificate's entries for a precommit).
pub fn vote_bytes(chain_id: &str, vote: &Vote) -> Vec<u8> {
    let value = match &vote.value {
        NilOrVal::Val(id) => Some(&id.0),
        NilOrVal::Nil => None,
    };
    vote_signing_bytes(
        chain_id,
        kind(vote.vote_type),
        vote.height.0,
        round_u32(vote.round),
        value,
    )
}

fn kind(t: VoteType) -> VoteKind {
    match t {
        VoteType::Prevote => VoteKind::Prevote,
        VoteType::Precommit => VoteKind::Precommit,
    }
}

/// Rounds in signed messages are always defined; nil maps to a value no
/// real round reaches, so it can never collide with one.
pub(crate) fn round_u32(round: Round) -> u32 {
    round.as_u32().unwrap_or(u32::MAX)
}

/// `vote` signed with `key` for `chain_id`, as a validator gossips it (the
/// bench and the tests sign conflicting votes with it).
pub fn sign_vote(key: &KeyPair, chain_id: &str, vote: Vote) -> Result<SignedMessage<HmContext, Vote>> {
    let signature = key
        .sign(&vote_bytes(chain_id, &vote))
        .map_err(|e| Error::Signing(e.to_string()))?;
    Ok(SignedMessage::new(vote, ConsensusSignature(signature)))
}

/// Whether `signature` by `key` over `bytes` verifies.
pub fn verifies(key: &PublicKey, bytes: &[u8], signature: &Signature) -> bool {
    key.verify(bytes, signature).is_ok()
}

/// The engine's commit certificate as the one a block stores: signatures
/// ordered by validator index in `set`.
pub fn to_block_certificate(
    cert: &EngineCommitCertificate<HmContext>,
    set: &ValidatorSet,
) -> Result<CommitCertificate> {
    let mut signatures = Vec::with_capacity(cert.commit_signatures.len());
    for s in &cert.commit_signatures {
        let index = set
            .index_of(&s.address)
            .ok_or_else(|| Error::InvalidBlock(format!("commit certificate: {} is not a validator", s.address)))?;
        let validator = u16::try_from(index)
            .map_err(|_| Error::InvalidBlock("commit certificate: validator index over u16".into()))?;
        signatures.push(CommitSignature {
            validator,
            signature: s.signature.0.clone(),
        });
    }
    signatures.sort_by_key(|s| s.validator);
    signatures.dedup_by_key(|s| s.validator);
    Ok(CommitCertificate {
        height: cert.height.0,
        round: round_u32(cert.round),
        block_hash: cert.value_id.0,
        signatures,
    })
}

type CertResult = std::result::Result<(), CertificateError<HmContext>>;

/// Why [`tally`] refused a certificate: an entry whose signature does not
/// verify (by index, so the caller can name it in its own error type), or
/// any other fault.
enum Refusal {
    BadSignature(usize),
    Other(CertificateError<HmContext>),
}

impl Refusal {
    fn into_error(self, bad: impl FnOnce(usize) -> CertificateError<HmContext>) -> CertificateError<HmContext> {
        match self {
            Refusal::BadSignature(i) => bad(i),
            Refusal::Other(e) => e,
        }
    }
}

/// Adds up the power of distinct, correctly signing members; the first
/// bad entry fails the whole certificate. Entries are (signer, signed
/// bytes, signature); certificates whose entries all sign the same vote
/// pass one borrowed encoding for all of them.
fn tally<'a>(
    set: &ValidatorSet,
    entries: impl Iterator<Item = (&'a Address, Cow<'a, [u8]>, &'a ConsensusSignature)>,
) -> std::result::Result<VotingPower, Refusal> {
    let mut seen = std::collections::BTreeSet::new();
    let mut power: VotingPower = 0;
    for (i, (address, bytes, signature)) in entries.enumerate() {
        let Some(index) = set.index_of(address) else {
            return Err(Refusal::Other(CertificateError::UnknownValidator(*address)));
        };
        if !seen.insert(index) {
            return Err(Refusal::Other(CertificateError::DuplicateVote(*address)));
        }
        let v = &set.validators()[index];
        if !verifies(&v.public_key, &bytes, &signature.0) {
            return Err(Refusal::BadSignature(i));
        }
        power = power
            .checked_add(v.power)
            .ok_or(Refusal::Other(CertificateError::VotingPowerOverflow {
                signed: power,
                added: v.power,
            }))?;
    }
    Ok(power)
}

fn meets(power: VotingPower, set: &ValidatorSet, threshold: ThresholdParam) -> CertResult {
    use malachite_types::ValidatorSet as _;
    let total = set.total_voting_power();
    if threshold.is_met(power, total) {
        Ok(())
    } else {
        Err(CertificateError::NotEnoughVotingPower {
            signed: power,
            total,
            expected: threshold.min_expected(total),
        })
    }
}

/// Checks an engine commit certificate: distinct members, valid
/// precommit signatures, a quorum of power.
pub fn verify_commit(
    ctx: &HmContext,
    cert: &EngineCommitCertificate<HmContext>,
    set: &ValidatorSet,
    thresholds: ThresholdParams,
) -> CertResult {
    let bytes = vote_signing_bytes(
        ctx.chain_id(),
        VoteKind::Precommit,
        cert.height.0,
        round_u32(cert.round),
        Some(&cert.value_id.0),
    );
    let entries = cert
        .commit_signatures
        .iter()
        .map(|s| (&s.address, Cow::Borrowed(bytes.as_slice()), &s.signature));
    let power = tally(set, entries)
        .map_err(|r| r.into_error(|i| CertificateError::InvalidCommitSignature(cert.commit_signatures[i].clone())))?;
    meets(power, set, thresholds.quorum)
}

/// Checks a polka certificate: a quorum of prevotes for one block.
pub fn verify_polka(
    ctx: &HmContext,
    cert: &PolkaCertificate<HmContext>,
    set: &ValidatorSet,
    thresholds: ThresholdParams,
) -> CertResult {
    let bytes = vote_signing_bytes(
        ctx.chain_id(),
        VoteKind::Prevote,
        cert.height.0,
        round_u32(cert.round),
        Some(&cert.value_id.0),
    );
    let entries = cert
        .polka_signatures
        .iter()
        .map(|s| (&s.address, Cow::Borrowed(bytes.as_slice()), &s.signature));
    let power = tally(set, entries)
        .map_err(|r| r.into_error(|i| CertificateError::InvalidPolkaSignature(cert.polka_signatures[i].clone())))?;
    meets(power, set, thresholds.quorum)
}

/// Checks a round certificate: votes of one round, by more than a third
/// of the power (skip) or a quorum of precommits (precommit type).
pub fn verify_round(
    ctx: &HmContext,
    cert: &RoundCertificate<HmContext>,
    set: &ValidatorSet,
    thresholds: ThresholdParams,
) -> CertResult {
    let round = round_u32(cert.round);
    if cert.cert_type == RoundCertificateType::Precommit {
        if let Some(s) = cert
            .round_signatures
            .iter()
            .find(|s| s.vote_type != VoteType::Precommit)
        {
            return Err(CertificateError::InvalidVoteType(s.address));
        }
    }
    let entries = cert.round_signatures.iter().map(|s| {
        let value = match &s.value_id {
            NilOrVal::Val(BlockId(h)) => Some(h),
            NilOrVal::Nil => None,
        };
        let bytes = vote_signing_bytes(ctx.chain_id(), kind(s.vote_type), cert.height.0, round, value);
        (&s.address, Cow::Owned(bytes), &s.signature)
    });
    let power = tally(set, entries)
        .map_err(|r| r.into_error(|i| CertificateError::InvalidRoundSignature(cert.round_signatures[i].clone())))?;
    let threshold = match cert.cert_type {
        RoundCertificateType::Skip => thresholds.honest,
        RoundCertificateType::Precommit => thresholds.quorum,
    };
    meets(power, set, threshold)
}

#[cfg(test)]
mod tests {
    use malachite_types::CommitSignature as EngineCommitSignature;
    use stoq::crypto::{Algorithm, KeyPair};

    use super::*;
    use crate::consensus::context::Height;
    use crate::modules::staking;

    #[test]
    fn commit_certificates_need_a_quorum_of_valid_distinct_signatures() {
        let keys: Vec<KeyPair> = (0..4).map(|_| KeyPair::generate(Algorithm::FnDsa1024)).collect();
        let set = ValidatorSet::from_staking(&staking::ValidatorSet(
            keys.iter()
                .map(|k| (k.public_key().node_id().0, k.public_key().clone(), 10))
                .collect(),
        ));
        let ctx = HmContext::new("c");
        let block = BlockId([7; 32]);
        let bytes = vote_signing_bytes("c", VoteKind::Precommit, 5, 0, Some(&block.0));
        let entry = |i: usize| {
            EngineCommitSignature::new(
                Address(keys[i].public_key().node_id().0),
                ConsensusSignature(keys[i].sign(&bytes).expect("sign")),
            )
        };
        let cert = |signers: Vec<EngineCommitSignature<HmContext>>| EngineCommitCertificate {
            height: Height(5),
            round: Round::new(0),
            value_id: block,
            commit_signatures: signers,
        };
        let t = ThresholdParams::default();

        assert_eq!(
            verify_commit(&ctx, &cert(vec![entry(0), entry(1), entry(3)]), &set, t),
            Ok(())
        );
        assert!(matches!(
            verify_commit(&ctx, &cert(vec![entry(0), entry(1)]), &set, t),
            Err(CertificateError::NotEnoughVotingPower {
                signed: 20,
                total: 40,
                ..
            })
        ));
        assert!(matches!(
            verify_commit(&ctx, &cert(vec![entry(0), entry(1), entry(1)]), &set, t),
            Err(CertificateError::DuplicateVote(_))
        ));
        // Validator 2's address with validator 3's signature: the bad entry is named.
        let mut forged = entry(3);
        forged.address = Address(keys[2].public_key().node_id().0);
        assert_eq!(
            verify_commit(&ctx, &cert(vec![entry(0), forged.clone(), entry(1)]), &set, t),
            Err(CertificateError::InvalidCommitSignature(forged))
        );
        let outsider = KeyPair::generate(Algorithm::FnDsa1024);
        let stranger = EngineCommitSignature::new(
            Address(outsider.public_key().node_id().0),
            ConsensusSignature(outsider.sign(&bytes).expect("sign")),
        );
        assert!(matches!(
            verify_commit(&ctx, &cert(vec![entry(0), entry(1), stranger]), &set, t),
            Err(CertificateError::UnknownValidator(_))
        ));
        // Another chain's signatures do not count.
        assert!(verify_commit(
            &HmContext::new("other"),
            &cert(vec![entry(0), entry(1), entry(3)]),
            &set,
            t
        )
        .is_err());
    }
}
