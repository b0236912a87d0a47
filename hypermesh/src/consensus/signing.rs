//! What validators sign, and the checks of the certificates the engine
//! hands the host: commit (precommits), polka (prevotes) and round
//! certificates.
//!
//! A vote's signed bytes are the ones a block's commit certificate holds
//! ([`vote_signing_bytes`]), so the precommits gathered by the engine are
//! the certificate stored with the block, and anyone who syncs the block
//! checks them with [`CommitCertificate::verify`].

use malachite_types::{
    CertificateError, CommitCertificate as EngineCommitCertificate, NilOrVal, PolkaCertificate, Round,
    RoundCertificate, RoundCertificateType, ThresholdParam, ThresholdParams, VoteType, VotingPower,
};
use stoq::crypto::{PublicKey, Signature};

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

/// Adds up the power of distinct, correctly signing members; the first
/// bad entry fails the whole certificate.
fn tally<'a>(
    set: &ValidatorSet,
    entries: impl Iterator<Item = (&'a Address, Vec<u8>, &'a ConsensusSignature)>,
    on_bad: impl Fn(&'a Address) -> CertificateError<HmContext>,
) -> std::result::Result<VotingPower, CertificateError<HmContext>> {
    let mut seen = std::collections::BTreeSet::new();
    let mut power: VotingPower = 0;
    for (address, bytes, signature) in entries {
        let Some(index) = set.index_of(address) else {
            return Err(CertificateError::UnknownValidator(*address));
        };
        if !seen.insert(index) {
            return Err(CertificateError::DuplicateVote(*address));
        }
        let v = &set.validators()[index];
        if !verifies(&v.public_key, &bytes, &signature.0) {
            return Err(on_bad(address));
        }
        power = power
            .checked_add(v.power)
            .ok_or(CertificateError::VotingPowerOverflow {
                signed: power,
                added: v.power,
            })?;
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
    let round = round_u32(cert.round);
    let entries = cert.commit_signatures.iter().map(|s| {
        let bytes = vote_signing_bytes(
            ctx.chain_id(),
            VoteKind::Precommit,
            cert.height.0,
            round,
            Some(&cert.value_id.0),
        );
        (&s.address, bytes, &s.signature)
    });
    let power = tally(set, entries, |a| {
        let s = cert.commit_signatures.iter().find(|s| &s.address == a);
        match s {
            Some(s) => CertificateError::InvalidCommitSignature(s.clone()),
            None => CertificateError::UnknownValidator(*a),
        }
    })?;
    meets(power, set, thresholds.quorum)
}

/// Checks a polka certificate: a quorum of prevotes for one block.
pub fn verify_polka(
    ctx: &HmContext,
    cert: &PolkaCertificate<HmContext>,
    set: &ValidatorSet,
    thresholds: ThresholdParams,
) -> CertResult {
    let round = round_u32(cert.round);
    let entries = cert.polka_signatures.iter().map(|s| {
        let bytes = vote_signing_bytes(
            ctx.chain_id(),
            VoteKind::Prevote,
            cert.height.0,
            round,
            Some(&cert.value_id.0),
        );
        (&s.address, bytes, &s.signature)
    });
    let power = tally(set, entries, |a| {
        match cert.polka_signatures.iter().find(|s| &s.address == a) {
            Some(s) => CertificateError::InvalidPolkaSignature(s.clone()),
            None => CertificateError::UnknownValidator(*a),
        }
    })?;
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
        (&s.address, bytes, &s.signature)
    });
    let power = tally(set, entries, |a| {
        match cert.round_signatures.iter().find(|s| &s.address == a) {
            Some(s) => CertificateError::InvalidRoundSignature(s.clone()),
            None => CertificateError::UnknownValidator(*a),
        }
    })?;
    let threshold = match cert.cert_type {
        RoundCertificateType::Skip => thresholds.honest,
        RoundCertificateType::Precommit => thresholds.quorum,
    };
    meets(power, set, threshold)
}
