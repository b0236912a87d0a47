//! Equivocation evidence: two different messages one validator signed for
//! the same height, round and step. Either half alone is a legitimate
//! message; together they prove the validator broke the protocol, which
//! anyone holding its key can check.

use malachite_types::{SignedProposal, SignedVote};

use super::context::{Address, HmContext, ValidatorSet};
use super::signing::{proposal_signing_bytes, verifies, vote_bytes};
use crate::error::{Error, Result};

/// Proof that a validator signed two conflicting messages.
#[derive(Debug, Clone, PartialEq)]
pub enum Evidence {
    /// Two votes of one type for the same height and round, for
    /// different blocks (or a block and nil).
    DoubleVote(SignedVote<HmContext>, SignedVote<HmContext>),
    /// Two proposals for the same height and round.
    DoubleProposal(SignedProposal<HmContext>, SignedProposal<HmContext>),
}

impl Evidence {
    /// The validator it convicts.
    pub fn offender(&self) -> Address {
        match self {
            Evidence::DoubleVote(a, _) => a.message.validator,
            Evidence::DoubleProposal(a, _) => a.message.proposer,
        }
    }

    /// The height of the offence.
    pub fn height(&self) -> u64 {
        match self {
            Evidence::DoubleVote(a, _) => a.message.height.0,
            Evidence::DoubleProposal(a, _) => a.message.height.0,
        }
    }

    /// Checks that both messages are by the same member of `set` (the
    /// validator set of the offence's height), for the same height, round
    /// and step, different, and both correctly signed.
    pub fn verify(&self, chain_id: &str, set: &ValidatorSet) -> Result<()> {
        let bad = |m: &str| Err(Error::InvalidBlock(format!("equivocation evidence: {m}")));
        let offender = self.offender();
        let Some(i) = set.index_of(&offender) else {
            return bad("the offender is not in the validator set");
        };
        let key = &set.validators()[i].public_key;
        let (bytes_a, sig_a, bytes_b, sig_b) = match self {
            Evidence::DoubleVote(a, b) => {
                let (x, y) = (&a.message, &b.message);
                if x.validator != y.validator
                    || x.height != y.height
                    || x.round != y.round
                    || x.vote_type != y.vote_type
                {
                    return bad("the votes are not for the same height, round and step by one validator");
                }
                if x.value == y.value {
                    return bad("the votes do not conflict");
                }
                (
                    vote_bytes(chain_id, x),
                    &a.signature,
                    vote_bytes(chain_id, y),
                    &b.signature,
                )
            }
            Evidence::DoubleProposal(a, b) => {
                let (x, y) = (&a.message, &b.message);
                if x.proposer != y.proposer || x.height != y.height || x.round != y.round {
                    return bad("the proposals are not for the same height and round by one validator");
                }
                if x == y {
                    return bad("the proposals do not conflict");
                }
                (
                    proposal_signing_bytes(chain_id, x),
                    &a.signature,
                    proposal_signing_bytes(chain_id, y),
                    &b.signature,
                )
            }
        };
        if !verifies(key, &bytes_a, &sig_a.0) || !verifies(key, &bytes_b, &sig_b.0) {
            return bad("a signature does not verify");
        }
        Ok(())
    }
}
