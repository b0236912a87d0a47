//! Tests of the consensus wire encoding: round trips of every variant with
//! real FN-DSA signatures, strictness (truncation, trailing bytes, unknown
//! versions and tags, out-of-range values, oversized counts) and
//! canonicity under random changes.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use malachite_core::{Input as EngineInput, LocallyProposedValue, ProposedValue};
use malachite_types::{
    NilOrVal, PolkaCertificate, PolkaSignature, Round, RoundCertificate, RoundCertificateType, RoundSignature,
    SignedMessage, SignedProposal, SignedVote, Timeout, TimeoutKind, Validity, ValueOrigin, VoteExtensionPolicy,
    VoteType,
};
use proptest::prelude::*;
use stoq::crypto::{Algorithm, KeyPair};

use super::*;
use crate::consensus::compact::CompactBlock;
use crate::consensus::context::ValidatorSet;
use crate::consensus::signing::{proposal_signing_bytes, vote_bytes};
use crate::modules::staking;
use crate::types::{Block, BlockHeader, EncodedBlock, ProofSection, MAX_BLOCK_TXS};

const CHAIN: &str = "wire-test";

fn keys() -> &'static [KeyPair] {
    static KEYS: OnceLock<Vec<KeyPair>> = OnceLock::new();
    KEYS.get_or_init(|| (0..3).map(|_| KeyPair::generate(Algorithm::FnDsa1024)).collect())
}

fn address(i: usize) -> Address {
    Address(keys()[i].public_key().node_id().0)
}

fn validator_set() -> ValidatorSet {
    ValidatorSet::from_staking(&staking::ValidatorSet(
        keys()
            .iter()
            .map(|k| (k.public_key().node_id().0, k.public_key().clone(), 10))
            .collect(),
    ))
}

fn block_value(b: Option<u8>) -> NilOrVal<BlockId> {
    b.map_or(NilOrVal::Nil, |b| NilOrVal::Val(BlockId([b; 32])))
}

fn signed_vote(i: usize, vote_type: VoteType, height: u64, round: u32, value: Option<u8>) -> SignedVote<HmContext> {
    let vote = Vote {
        vote_type,
        height: Height(height),
        round: Round::new(round),
        value: block_value(value),
        validator: address(i),
    };
    let sig = keys()[i].sign(&vote_bytes(CHAIN, &vote)).expect("sign");
    SignedMessage::new(vote, ConsensusSignature(sig))
}

fn signed_proposal(i: usize, height: u64, round: u32, value: u8, pol_round: Round) -> SignedProposal<HmContext> {
    let proposal = Proposal {
        height: Height(height),
        round: Round::new(round),
        value: BlockId([value; 32]),
        pol_round,
        proposer: address(i),
    };
    let sig = keys()[i].sign(&proposal_signing_bytes(CHAIN, &proposal)).expect("sign");
    SignedMessage::new(proposal, ConsensusSignature(sig))
}

fn polka(signers: usize) -> PolkaCertificate<HmContext> {
    PolkaCertificate {
        height: Height(5),
        round: Round::new(2),
        value_id: BlockId([7; 32]),
        polka_signatures: (0..signers)
            .map(|i| {
                let v = signed_vote(i, VoteType::Prevote, 5, 2, Some(7));
                PolkaSignature::new(v.message.validator, v.signature)
            })
            .collect(),
    }
}

fn round_certificate() -> RoundCertificate<HmContext> {
    let votes = [
        signed_vote(0, VoteType::Prevote, 5, 3, Some(7)),
        signed_vote(1, VoteType::Precommit, 5, 3, None),
        signed_vote(2, VoteType::Precommit, 5, 3, Some(8)),
    ];
    RoundCertificate {
        height: Height(5),
        round: Round::new(3),
        cert_type: RoundCertificateType::Skip,
        round_signatures: votes
            .into_iter()
            .map(|v| RoundSignature {
                vote_type: v.message.vote_type,
                value_id: v.message.value,
                address: v.message.validator,
                signature: v.signature,
            })
            .collect(),
    }
}

fn block() -> Block {
    let tx = crate::types::test_fixtures::signed_call(&keys()[0], CHAIN, 1, vec![1, 2, 3]);
    Block {
        header: BlockHeader {
            chain_id: CHAIN.into(),
            height: 5,
            parent_hash: [1; 32],
            timestamp_ms: 1_700_000_000_000,
            proposer: address(0).0,
            tx_root: [2; 32],
            state_root: [3; 32],
            validator_set_hash: [4; 32],
            result_root: [5; 32],
            proofs: ProofSection {
                space: vec![6; 10],
                time: vec![],
                stake: vec![7; 3],
                evidence: vec![],
            },
        },
        txs: vec![Arc::new(tx)],
        commit: vec![9; 20],
    }
}

fn sample_evidence() -> Vec<Evidence> {
    vec![
        Evidence::DoubleVote(
            signed_vote(1, VoteType::Prevote, 5, 0, Some(7)),
            signed_vote(1, VoteType::Prevote, 5, 0, None),
        ),
        Evidence::DoubleProposal(
            signed_proposal(2, 5, 1, 7, Round::Nil),
            signed_proposal(2, 5, 1, 8, Round::new(0)),
        ),
    ]
}

fn sample_messages() -> Vec<Message> {
    let mut out = vec![
        Message::Proposal(signed_proposal(0, 5, 0, 7, Round::Nil)),
        Message::Proposal(signed_proposal(0, 5, 4, 7, Round::new(2))),
        Message::Vote(signed_vote(1, VoteType::Prevote, 5, 0, Some(7))),
        Message::Vote(signed_vote(2, VoteType::Precommit, 5, 1, None)),
        Message::Block(EncodedBlock::encode(Arc::new(block())).expect("encode")),
        Message::Polka(polka(3)),
        Message::Polka(polka(0)),
        Message::Round(round_certificate()),
        Message::Round(RoundCertificate {
            cert_type: RoundCertificateType::Precommit,
            ..round_certificate()
        }),
        Message::BlockRequest {
            height: u64::MAX,
            hash: [0xab; 32],
        },
        Message::CompactBlock(compact_block()),
        Message::BlockTxsRequest {
            height: 5,
            hash: [0xcd; 32],
            indices: vec![0, 3, 8_191],
        },
        Message::BlockTxs {
            height: 5,
            hash: [0xcd; 32],
            txs: vec![
                (0, bytes::Bytes::from_static(b"a")),
                (3, bytes::Bytes::from(vec![7; 300])),
            ],
        },
    ];
    out.extend(sample_evidence().into_iter().map(Message::Evidence));
    out
}

fn timeouts() -> Vec<Timeout> {
    vec![
        Timeout::propose(Round::new(0)),
        Timeout::prevote(Round::new(1)),
        Timeout::precommit(Round::new(u32::MAX)),
        Timeout::rebroadcast(Round::Nil),
        Timeout::finalize_height(Round::new(3), Duration::new(7, 999_999_999)),
    ]
}

fn proposed_value(validity: Validity, valid_round: Round) -> ProposedValue<HmContext> {
    ProposedValue {
        height: Height(5),
        round: Round::new(1),
        valid_round,
        proposer: address(0),
        value: BlockId([7; 32]),
        validity,
    }
}

fn sample_wal_entries() -> Vec<WalEntry> {
    let mut out = vec![
        WalEntry::Engine(EngineInput::Vote(signed_vote(0, VoteType::Prevote, 5, 0, Some(7)))),
        WalEntry::Engine(EngineInput::Vote(signed_vote(0, VoteType::Precommit, 5, 0, None))),
        WalEntry::Engine(EngineInput::Proposal(signed_proposal(1, 5, 0, 7, Round::Nil))),
        WalEntry::Engine(EngineInput::PolkaCertificate(polka(2))),
        WalEntry::Engine(EngineInput::ProposedValue(
            proposed_value(Validity::Valid, Round::Nil),
            ValueOrigin::Consensus,
        )),
        WalEntry::Engine(EngineInput::ProposedValue(
            proposed_value(Validity::Invalid, Round::new(0)),
            ValueOrigin::Sync,
        )),
        WalEntry::Block(EncodedBlock::encode(Arc::new(block())).expect("encode")),
    ];
    out.extend(
        timeouts()
            .into_iter()
            .map(|t| WalEntry::Engine(EngineInput::TimeoutElapsed(t))),
    );
    out
}

/// Encodings of every sample, with the decoder that must accept them.
type Decode = fn(&[u8]) -> Result<()>;

fn sample_encodings() -> Vec<(Vec<u8>, Decode)> {
    let mut out: Vec<(Vec<u8>, Decode)> = Vec::new();
    for m in sample_messages() {
        out.push((encode_message(&m).expect("encode"), |b| decode_message(b).map(drop)));
    }
    for e in sample_wal_entries() {
        out.push((encode_wal_entry(&e).expect("encode"), |b| decode_wal_entry(b).map(drop)));
    }
    for e in sample_evidence() {
        out.push((encode_evidence(&e).expect("encode"), |b| decode_evidence(b).map(drop)));
    }
    out
}

fn is_decode_error<T: std::fmt::Debug>(r: Result<T>) -> bool {
    matches!(r, Err(Error::Decode { .. }))
}

fn decode_reason<T: std::fmt::Debug>(r: Result<T>) -> String {
    match r {
        Err(Error::Decode { reason, .. }) => reason,
        other => panic!("expected a decode error, got {other:?}"),
    }
}

#[test]
fn every_message_round_trips() {
    for m in sample_messages() {
        let bytes = encode_message(&m).expect("encode");
        assert_eq!(bytes[0], WIRE_VERSION);
        assert!(bytes.len() <= MAX_MESSAGE_BYTES);
        let back = decode_message(&bytes).expect("decode");
        assert_eq!(back, m);
        assert_eq!(encode_message(&back).expect("re-encode"), bytes);
    }
}

#[test]
fn every_logged_entry_round_trips() {
    for e in sample_wal_entries() {
        let bytes = encode_wal_entry(&e).expect("encode");
        assert!(bytes.len() <= MAX_WAL_ENTRY_BYTES);
        let back = decode_wal_entry(&bytes).expect("decode");
        assert_eq!(back, e);
        assert_eq!(encode_wal_entry(&back).expect("re-encode"), bytes);
    }
}

#[test]
fn evidence_round_trips_and_still_verifies() {
    let set = validator_set();
    for e in sample_evidence() {
        e.verify(CHAIN, &set).expect("the sample is real evidence");
        let bytes = encode_evidence(&e).expect("encode");
        assert!(bytes.len() <= MAX_EVIDENCE_BYTES, "{} bytes", bytes.len());
        let back = decode_evidence(&bytes).expect("decode");
        assert_eq!(back, e);
        assert_eq!(encode_evidence(&back).expect("re-encode"), bytes);
        back.verify(CHAIN, &set).expect("decoded evidence verifies");
    }
}

#[test]
fn inputs_the_engine_never_logs_cannot_be_encoded() {
    let never = [
        EngineInput::StartHeight(Height(5), validator_set(), false, None, VoteExtensionPolicy::Disabled),
        EngineInput::RoundCertificate(round_certificate()),
        EngineInput::Propose(LocallyProposedValue::new(Height(5), Round::new(0), BlockId([7; 32]))),
    ];
    for input in never {
        let r = encode_wal_entry(&WalEntry::Engine(input));
        assert!(matches!(r, Err(Error::Encode { .. })), "{r:?}");
    }
}

#[test]
fn every_truncation_is_refused() {
    for (bytes, decode) in sample_encodings() {
        for cut in 0..bytes.len() {
            assert!(
                decode(&bytes[..cut]).is_err(),
                "accepted a cut at {cut} of {} bytes (tag {})",
                bytes.len(),
                bytes[1]
            );
        }
        decode(&bytes).expect("the whole encoding decodes");
    }
}

#[test]
fn a_trailing_byte_is_refused() {
    for (bytes, decode) in sample_encodings() {
        for extra in [0u8, 1, 0xff] {
            let mut longer = bytes.clone();
            longer.push(extra);
            assert!(
                decode(&longer).is_err(),
                "accepted a trailing {extra} after tag {}",
                bytes[1]
            );
        }
    }
}

#[test]
fn unknown_versions_and_tags_are_refused() {
    let vote = encode_message(&sample_messages()[2]).expect("encode");
    for version in [0u8, 2, 0xff] {
        let mut b = vote.clone();
        b[0] = version;
        assert!(decode_reason(decode_message(&b)).contains("version"));
    }
    for tag in [0u8, MSG_BLOCK_TXS + 1, 0xff] {
        let mut b = vote.clone();
        b[1] = tag;
        assert!(decode_reason(decode_message(&b)).contains("unknown tag"));
    }
    let timeout = encode_wal_entry(&WalEntry::Engine(EngineInput::TimeoutElapsed(Timeout::propose(
        Round::new(1),
    ))))
    .expect("encode");
    for tag in [0u8, WAL_BLOCK + 1, 0xff] {
        let mut b = timeout.clone();
        b[1] = tag;
        assert!(decode_reason(decode_wal_entry(&b)).contains("unknown tag"));
    }
    // The timeout kind is the last byte.
    for kind in [0u8, 6, 0xff] {
        let mut b = timeout.clone();
        *b.last_mut().expect("not empty") = kind;
        assert!(is_decode_error(decode_wal_entry(&b)));
    }
    let evidence = encode_evidence(&sample_evidence()[0]).expect("encode");
    for kind in [0u8, 3, 0xff] {
        let mut b = evidence.clone();
        b[1] = kind;
        assert!(decode_reason(decode_evidence(&b)).contains("unknown kind"));
    }
}

#[test]
fn out_of_range_fields_are_refused() {
    // Vote layout after version and tag: type (1), height (8), round (8),
    // nil-or-block flag at 19.
    let vote = encode_message(&sample_messages()[2]).expect("encode");
    for vote_type in [0u8, 3] {
        let mut b = vote.clone();
        b[2] = vote_type;
        assert!(decode_reason(decode_message(&b)).contains("prevote"));
    }
    let mut b = vote.clone();
    b[19] = 2;
    assert!(decode_reason(decode_message(&b)).contains("flag 2"));

    // Proposed value: validity and origin are the last two bytes.
    let pv = encode_wal_entry(&sample_wal_entries()[4]).expect("encode");
    let n = pv.len();
    for (at, byte) in [(n - 2, 0u8), (n - 2, 3), (n - 1, 0), (n - 1, 3)] {
        let mut b = pv.clone();
        b[at] = byte;
        assert!(is_decode_error(decode_wal_entry(&b)), "byte {byte} at {at}");
    }

    // Round certificate type: after version, tag, height and round.
    let rc = encode_message(&Message::Round(round_certificate())).expect("encode");
    let mut b = rc.clone();
    b[18] = 3;
    assert!(decode_reason(decode_message(&b)).contains("skip"));
}

#[test]
fn rounds_are_i64_with_nil_as_minus_one_and_nil_only_where_allowed() {
    // A proposal: version, tag, height (8), round at 10..18, block id
    // (32), polka round at 50..58.
    let p = encode_message(&Message::Proposal(signed_proposal(0, 5, 4, 7, Round::Nil))).expect("encode");
    assert_eq!(p[10..18], 4i64.to_be_bytes());
    assert_eq!(p[50..58], (-1i64).to_be_bytes());
    let with_round = |at: usize, v: i64| {
        let mut b = p.clone();
        b[at..at + 8].copy_from_slice(&v.to_be_bytes());
        b
    };
    // The largest round is fine in either place.
    let max = i64::from(u32::MAX);
    assert!(decode_message(&with_round(10, max)).is_ok());
    assert!(decode_message(&with_round(50, max)).is_ok());
    // Neither nil nor a u32.
    for v in [-2, i64::MIN, max + 1, i64::MAX] {
        assert!(decode_reason(decode_message(&with_round(10, v))).contains("neither nil"));
        assert!(decode_reason(decode_message(&with_round(50, v))).contains("neither nil"));
    }
    // Nil where a proposal's own round belongs.
    assert!(decode_reason(decode_message(&with_round(10, -1))).contains("nil"));

    // Encoding refuses a nil round where decoding would.
    let mut v = signed_vote(0, VoteType::Prevote, 5, 0, None);
    v.message.round = Round::Nil;
    assert!(matches!(encode_message(&Message::Vote(v)), Err(Error::Encode { .. })));
    let mut c = polka(1);
    c.round = Round::Nil;
    assert!(matches!(encode_message(&Message::Polka(c)), Err(Error::Encode { .. })));
    let mut value = proposed_value(Validity::Valid, Round::Nil);
    value.round = Round::Nil;
    let entry = WalEntry::Engine(EngineInput::ProposedValue(value, ValueOrigin::Consensus));
    assert!(matches!(encode_wal_entry(&entry), Err(Error::Encode { .. })));
}

#[test]
fn finalize_durations_have_one_encoding() {
    let t = Timeout::finalize_height(Round::new(0), Duration::new(1, 0));
    let b = encode_wal_entry(&WalEntry::Engine(EngineInput::TimeoutElapsed(t))).expect("encode");
    // The nanoseconds are the last four bytes: a whole second there is
    // another spelling of "2 s" and is refused.
    let mut carry = b.clone();
    let n = carry.len();
    carry[n - 4..].copy_from_slice(&1_000_000_000u32.to_be_bytes());
    assert!(decode_reason(decode_wal_entry(&carry)).contains("second"));
}

/// The bytes of a polka message up to its signature count.
fn polka_head(count: u32) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(WIRE_VERSION).u8(MSG_POLKA).u64(5);
    write_round(&mut w, Round::new(0));
    w.hash(&[7; 32]).u32(count);
    w.finish()
}

#[test]
fn oversized_counts_are_refused_before_allocating() {
    // Over the limit.
    for count in [MAX_CERTIFICATE_SIGNATURES as u32 + 1, u32::MAX] {
        assert!(decode_reason(decode_message(&polka_head(count))).contains("exceed the limit"));
    }
    // Within the limit but more than the bytes left could hold: refused
    // by arithmetic, before reserving room for the entries.
    let full = encode_message(&Message::Polka(polka(2))).expect("encode");
    let mut lying = full.clone();
    let at = polka_head(0).len() - 4;
    lying[at..at + 4].copy_from_slice(&3u32.to_be_bytes());
    assert!(decode_reason(decode_message(&lying)).contains("cannot fit"));
    assert!(decode_reason(decode_message(&polka_head(MAX_CERTIFICATE_SIGNATURES as u32))).contains("cannot fit"));

    // The same bound holds when encoding.
    let mut big = polka(1);
    let entry = big.polka_signatures[0].clone();
    big.polka_signatures = vec![entry; MAX_CERTIFICATE_SIGNATURES + 1];
    assert!(matches!(
        encode_message(&Message::Polka(big.clone())),
        Err(Error::Encode { .. })
    ));
    // At the limit it encodes, decodes, and fits in a message.
    big.polka_signatures.pop();
    let bytes = encode_message(&Message::Polka(big.clone())).expect("encode a full certificate");
    assert_eq!(decode_message(&bytes).expect("decode"), Message::Polka(big));
}

#[test]
fn oversized_inputs_are_refused_unread() {
    let huge = vec![WIRE_VERSION; MAX_MESSAGE_BYTES + 1];
    assert!(decode_reason(decode_message(&huge)).contains("exceed the limit"));
    assert!(decode_reason(decode_wal_entry(&huge)).contains("exceed the limit"));
    let big = vec![WIRE_VERSION; MAX_EVIDENCE_BYTES + 1];
    assert!(decode_reason(decode_evidence(&big)).contains("exceed the limit"));
}

#[test]
fn signatures_of_other_algorithms_are_refused() {
    let ed = KeyPair::generate(Algorithm::Ed25519);
    let mut v = signed_vote(0, VoteType::Prevote, 5, 0, None);
    v.signature = ConsensusSignature(ed.sign(b"anything").expect("sign"));
    assert!(matches!(
        encode_message(&Message::Vote(v.clone())),
        Err(Error::Encode { .. })
    ));
    // The same vote spelled out by hand.
    let mut w = Writer::new();
    w.u8(WIRE_VERSION).u8(MSG_VOTE);
    write_vote(&mut w, &v.message).expect("write vote");
    w.sig(&v.signature.0);
    assert!(decode_reason(decode_message(w.as_slice())).contains("FN-DSA"));
}

fn sigs() -> &'static [ConsensusSignature] {
    static SIGS: OnceLock<Vec<ConsensusSignature>> = OnceLock::new();
    SIGS.get_or_init(|| {
        keys()
            .iter()
            .map(|k| ConsensusSignature(k.sign(b"any bytes").expect("sign")))
            .collect()
    })
}

fn shared_block() -> EncodedBlock {
    static BLOCK: OnceLock<EncodedBlock> = OnceLock::new();
    BLOCK
        .get_or_init(|| EncodedBlock::encode(Arc::new(block())).expect("encode"))
        .clone()
}

fn arb_round() -> impl Strategy<Value = Round> {
    prop_oneof![Just(Round::Nil), any::<u32>().prop_map(Round::new)]
}

fn arb_defined_round() -> impl Strategy<Value = Round> {
    any::<u32>().prop_map(Round::new)
}

fn arb_value() -> impl Strategy<Value = NilOrVal<BlockId>> {
    proptest::option::of(any::<[u8; 32]>()).prop_map(|v| v.map_or(NilOrVal::Nil, |h| NilOrVal::Val(BlockId(h))))
}

fn arb_vote_type() -> impl Strategy<Value = VoteType> {
    prop_oneof![Just(VoteType::Prevote), Just(VoteType::Precommit)]
}

fn arb_sig() -> impl Strategy<Value = ConsensusSignature> {
    (0..sigs().len()).prop_map(|i| sigs()[i].clone())
}

fn arb_address() -> impl Strategy<Value = Address> {
    any::<[u8; 32]>().prop_map(Address)
}

prop_compose! {
    fn arb_signed_vote()(
        vote_type in arb_vote_type(),
        height in any::<u64>(),
        round in arb_defined_round(),
        value in arb_value(),
        validator in arb_address(),
        sig in arb_sig(),
    ) -> SignedVote<HmContext> {
        SignedMessage::new(Vote { vote_type, height: Height(height), round, value, validator }, sig)
    }
}

prop_compose! {
    fn arb_signed_proposal()(
        height in any::<u64>(),
        round in arb_defined_round(),
        value in any::<[u8; 32]>(),
        pol_round in arb_round(),
        proposer in arb_address(),
        sig in arb_sig(),
    ) -> SignedProposal<HmContext> {
        let p = Proposal { height: Height(height), round, value: BlockId(value), pol_round, proposer };
        SignedMessage::new(p, sig)
    }
}

prop_compose! {
    fn arb_polka()(
        height in any::<u64>(),
        round in arb_defined_round(),
        value in any::<[u8; 32]>(),
        signers in proptest::collection::vec((arb_address(), arb_sig()), 0..4),
    ) -> PolkaCertificate<HmContext> {
        PolkaCertificate {
            height: Height(height),
            round,
            value_id: BlockId(value),
            polka_signatures: signers.into_iter().map(|(a, s)| PolkaSignature::new(a, s)).collect(),
        }
    }
}

prop_compose! {
    fn arb_round_certificate()(
        height in any::<u64>(),
        round in arb_defined_round(),
        skip in any::<bool>(),
        signers in proptest::collection::vec((arb_vote_type(), arb_value(), arb_address(), arb_sig()), 0..4),
    ) -> RoundCertificate<HmContext> {
        RoundCertificate {
            height: Height(height),
            round,
            cert_type: if skip { RoundCertificateType::Skip } else { RoundCertificateType::Precommit },
            round_signatures: signers
                .into_iter()
                .map(|(vote_type, value_id, address, signature)| RoundSignature {
                    vote_type,
                    value_id,
                    address,
                    signature,
                })
                .collect(),
        }
    }
}

fn arb_evidence() -> impl Strategy<Value = Evidence> {
    prop_oneof![
        (arb_signed_vote(), arb_signed_vote()).prop_map(|(a, b)| Evidence::DoubleVote(a, b)),
        (arb_signed_proposal(), arb_signed_proposal()).prop_map(|(a, b)| Evidence::DoubleProposal(a, b)),
    ]
}

fn compact_block() -> CompactBlock {
    let b = block();
    CompactBlock {
        header: b.header,
        tx_ids: vec![[1; 32], [2; 32]],
        commit: vec![9; 20],
    }
}

fn arb_indices() -> impl Strategy<Value = Vec<u32>> {
    proptest::collection::btree_set(0u32..MAX_BLOCK_TXS as u32, 1..20).prop_map(|s| s.into_iter().collect())
}

fn arb_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        arb_signed_proposal().prop_map(Message::Proposal),
        arb_signed_vote().prop_map(Message::Vote),
        Just(()).prop_map(|_| Message::Block(shared_block())),
        arb_polka().prop_map(Message::Polka),
        arb_round_certificate().prop_map(Message::Round),
        arb_evidence().prop_map(Message::Evidence),
        (any::<u64>(), any::<[u8; 32]>()).prop_map(|(height, hash)| Message::BlockRequest { height, hash }),
        proptest::collection::vec(any::<[u8; 32]>(), 0..20).prop_map(|tx_ids| Message::CompactBlock(CompactBlock {
            tx_ids,
            ..compact_block()
        })),
        (any::<u64>(), any::<[u8; 32]>(), arb_indices()).prop_map(|(height, hash, indices)| Message::BlockTxsRequest {
            height,
            hash,
            indices
        }),
        (any::<u64>(), any::<[u8; 32]>(), arb_indices()).prop_map(|(height, hash, indices)| Message::BlockTxs {
            height,
            hash,
            txs: indices
                .into_iter()
                .map(|i| (i, bytes::Bytes::from(vec![i as u8; (i % 50) as usize])))
                .collect(),
        }),
    ]
}

fn arb_timeout() -> impl Strategy<Value = Timeout> {
    let kind = prop_oneof![
        Just(TimeoutKind::Propose),
        Just(TimeoutKind::Prevote),
        Just(TimeoutKind::Precommit),
        Just(TimeoutKind::Rebroadcast),
        (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| TimeoutKind::FinalizeHeight(Duration::new(s, n))),
    ];
    (arb_round(), kind).prop_map(|(round, kind)| Timeout { kind, round })
}

prop_compose! {
    fn arb_proposed_value()(
        height in any::<u64>(),
        round in arb_defined_round(),
        valid_round in arb_round(),
        proposer in arb_address(),
        value in any::<[u8; 32]>(),
        valid in any::<bool>(),
        sync in any::<bool>(),
    ) -> EngineInput<HmContext> {
        let v = ProposedValue {
            height: Height(height),
            round,
            valid_round,
            proposer,
            value: BlockId(value),
            validity: Validity::from_bool(valid),
        };
        EngineInput::ProposedValue(v, if sync { ValueOrigin::Sync } else { ValueOrigin::Consensus })
    }
}

fn arb_wal_entry() -> impl Strategy<Value = WalEntry> {
    prop_oneof![
        arb_signed_vote().prop_map(|v| WalEntry::Engine(EngineInput::Vote(v))),
        arb_signed_proposal().prop_map(|p| WalEntry::Engine(EngineInput::Proposal(p))),
        arb_polka().prop_map(|c| WalEntry::Engine(EngineInput::PolkaCertificate(c))),
        arb_timeout().prop_map(|t| WalEntry::Engine(EngineInput::TimeoutElapsed(t))),
        arb_proposed_value().prop_map(WalEntry::Engine),
        Just(()).prop_map(|_| WalEntry::Block(shared_block())),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_messages_round_trip(m in arb_message()) {
        let bytes = encode_message(&m).expect("encode");
        prop_assert_eq!(decode_message(&bytes).expect("decode"), m);
    }

    #[test]
    fn arbitrary_log_entries_round_trip(e in arb_wal_entry()) {
        let bytes = encode_wal_entry(&e).expect("encode");
        prop_assert_eq!(decode_wal_entry(&bytes).expect("decode"), e);
    }

    #[test]
    fn arbitrary_evidence_round_trips(e in arb_evidence()) {
        let bytes = encode_evidence(&e).expect("encode");
        prop_assert!(bytes.len() <= MAX_EVIDENCE_BYTES);
        prop_assert_eq!(decode_evidence(&bytes).expect("decode"), e);
    }

    /// Whatever a changed byte does, the result is refused or is the one
    /// encoding of what it decodes to.
    #[test]
    fn a_changed_byte_is_refused_or_canonical(
        m in arb_message(),
        e in arb_wal_entry(),
        at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let mut b = encode_message(&m).expect("encode");
        let i = at.index(b.len());
        b[i] ^= flip;
        if let Ok(changed) = decode_message(&b) {
            prop_assert_eq!(encode_message(&changed).expect("re-encode"), b);
        }
        let mut b = encode_wal_entry(&e).expect("encode");
        let i = at.index(b.len());
        b[i] ^= flip;
        if let Ok(changed) = decode_wal_entry(&b) {
            prop_assert_eq!(encode_wal_entry(&changed).expect("re-encode"), b);
        }
    }
}

/// Writes every sample encoding as a seed for the `consensus_wire` fuzz
/// target when `HYPERMESH_WIRE_FUZZ_SEEDS` names a directory: random bytes
/// practically never hold a well-formed FN-DSA signature, so the fuzzer
/// starts from real messages. The first byte picks the decoder, as in the
/// target (0 message, 1 log entry, 2 evidence). Does nothing otherwise.
#[test]
fn write_consensus_wire_fuzz_seeds_when_asked() {
    let Some(dir) = std::env::var_os("HYPERMESH_WIRE_FUZZ_SEEDS") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir).expect("seed dir");
    let mut seeds: Vec<(u8, Vec<u8>)> = Vec::new();
    seeds.extend(
        sample_messages()
            .iter()
            .map(|m| (0, encode_message(m).expect("encode"))),
    );
    seeds.extend(
        sample_wal_entries()
            .iter()
            .map(|e| (1, encode_wal_entry(e).expect("encode"))),
    );
    seeds.extend(
        sample_evidence()
            .iter()
            .map(|e| (2, encode_evidence(e).expect("encode"))),
    );
    for (i, (selector, bytes)) in seeds.into_iter().enumerate() {
        let mut seed = vec![selector];
        seed.extend_from_slice(&bytes);
        std::fs::write(dir.join(format!("seed-{selector}-{i}")), seed).expect("write seed");
    }
}

#[test]
fn transaction_positions_must_be_present_increasing_and_in_a_block() {
    let request = |indices: &[u32]| {
        let mut w = Writer::new();
        w.u8(WIRE_VERSION).u8(MSG_BLOCK_TXS_REQUEST).u64(5).hash(&[1; 32]);
        w.u32(indices.len() as u32);
        for i in indices {
            w.u32(*i);
        }
        w.finish()
    };
    assert!(decode_message(&request(&[0, 1, 9])).is_ok());
    for (bad, why) in [
        (&[][..], "no positions"),
        (&[3, 3][..], "does not follow"),
        (&[4, 2][..], "does not follow"),
        (&[MAX_BLOCK_TXS as u32][..], "past the largest block"),
    ] {
        assert!(decode_reason(decode_message(&request(bad))).contains(why), "{bad:?}");
        // Nor is such a request or answer encodable.
        let msg = Message::BlockTxsRequest {
            height: 5,
            hash: [1; 32],
            indices: bad.to_vec(),
        };
        assert!(matches!(encode_message(&msg), Err(Error::Encode { .. })));
    }
    let dup = Message::BlockTxs {
        height: 5,
        hash: [1; 32],
        txs: vec![(1, bytes::Bytes::new()), (1, bytes::Bytes::new())],
    };
    assert!(matches!(encode_message(&dup), Err(Error::Encode { .. })));

    // A count the bytes cannot hold is refused before anything is reserved.
    let mut w = Writer::new();
    w.u8(WIRE_VERSION)
        .u8(MSG_COMPACT_BLOCK)
        .bytes32(&block().header.encode().expect("header"));
    w.u32(MAX_BLOCK_TXS as u32);
    assert!(decode_reason(decode_message(&w.finish())).contains("cannot fit"));
}
