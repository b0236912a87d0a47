//! The canonical binary encoding of what validators send each other
//! ([`Message`]), what each one logs before acting on it ([`WalEntry`]),
//! and equivocation proofs ([`Evidence`], which blocks carry too).
//!
//! Built on [`crate::codec`]: big-endian integers, bounds checked before
//! anything is allocated, strict decoding (unknown versions and tags,
//! out-of-range values, truncation and trailing bytes are all refused).
//! Every value has exactly one encoding: for any accepted bytes `b`,
//! `encode(decode(b)) == b`, and `decode(encode(x)) == x`.
//!
//! # Layout
//!
//! A message, log entry or piece of evidence starts with [`WIRE_VERSION`];
//! a message or log entry then has one tag byte naming its variant (see
//! the `MSG_*` and `WAL_*` constants), and evidence its kind.
//!
//! - height: u64;
//! - round: i64, -1 for nil and 0 to `u32::MAX` for a round; anything
//!   else is refused;
//! - defined round: a round that must not be nil (the round of a
//!   proposal, a vote, a certificate, a proposed value), refused both ways
//!   when nil: signed bytes map nil to `u32::MAX`, so accepting it would
//!   give two values one signature;
//! - address, block id: 32 bytes;
//! - nil-or-block: u8 0 (nil), or u8 1 and the 32-byte block id;
//! - vote type: u8 1 prevote, 2 precommit (as
//!   [`VoteKind`](crate::chain::VoteKind));
//! - signature: u16 length and the compact FN-DSA-1024 signature
//!   ([`Writer::sig`]); other algorithms are refused;
//! - vote: type, height, defined round, nil-or-block, validator;
//! - proposal: height, defined round, block id, polka round (may be nil),
//!   proposer;
//! - signed vote or proposal: the message, then its signature;
//! - polka certificate: height, defined round, block id, u32 count (at
//!   most [`MAX_CERTIFICATE_SIGNATURES`]), then per signer: address,
//!   signature;
//! - round certificate: height, defined round, u8 type (1 skip,
//!   2 precommit), u32 count (as above), then per signer: vote type,
//!   nil-or-block, address, signature;
//! - evidence: u8 1 and two signed votes, or u8 2 and two signed proposals;
//! - block request: height, 32-byte hash;
//! - compact block, transactions request, block transactions: see
//!   [`super::compact`];
//! - block: the rest of the input is [`crate::types::Block::encode`]'s bytes (no
//!   length: a block is always last, and its own decoder is strict);
//! - timeout: round (may be nil), u8 kind: 1 propose, 2 prevote,
//!   3 precommit, 4 rebroadcast, or 5 finalize-height followed by u64
//!   seconds and u32 nanoseconds (below 10^9);
//! - proposed value: height, defined round, valid round (may be nil),
//!   proposer, block id, u8 validity (1 valid, 2 invalid), u8 origin
//!   (1 consensus, 2 sync).
//!
//! Certificates keep their signatures in the order given: duplicates and
//! order are for the certificate checks (in [`super::signing`]) to judge,
//! not the encoding.

use std::time::Duration;

use bytes::Bytes;

use malachite_core::{Input as EngineInput, ProposedValue};
use malachite_types::{
    NilOrVal, PolkaCertificate, PolkaSignature, Round, RoundCertificate, RoundCertificateType, RoundSignature,
    SignedMessage, SignedProposal, SignedVote, Timeout, TimeoutKind, Validity, ValueOrigin, VoteType,
};
use stoq::crypto::Algorithm;

use super::compact;
use super::context::{Address, BlockId, ConsensusSignature, Height, HmContext, Proposal, Vote};
use super::core::{Message, WalEntry};
use super::evidence::Evidence;
use crate::chain::MAX_COMMIT_SIGNATURES;
use crate::codec::{ReadExt, Reader, WriteExt, Writer};
use crate::error::{Error, Result};
use crate::types::{EncodedBlock, MAX_BLOCK_BYTES};

/// The version byte every encoding here starts with.
pub const WIRE_VERSION: u8 = 1;

/// Most signatures a polka or round certificate may carry: as many as a
/// commit certificate (one per validator of the largest set).
pub const MAX_CERTIFICATE_SIGNATURES: usize = MAX_COMMIT_SIGNATURES;

/// Largest encoded message: a block plus the version and tag bytes. Every
/// other message is far smaller (a full certificate is about 1.4 MB).
pub const MAX_MESSAGE_BYTES: usize = MAX_BLOCK_BYTES + 2;

/// Largest encoded log entry (a block plus the version and tag bytes).
pub const MAX_WAL_ENTRY_BYTES: usize = MAX_BLOCK_BYTES + 2;

/// Largest encoded evidence: two signed proposals take about 2.8 kB.
pub const MAX_EVIDENCE_BYTES: usize = 4 * 1024;

/// Tag of [`Message::Proposal`].
pub const MSG_PROPOSAL: u8 = 1;
/// Tag of [`Message::Vote`].
pub const MSG_VOTE: u8 = 2;
/// Tag of [`Message::Block`].
pub const MSG_BLOCK: u8 = 3;
/// Tag of [`Message::Polka`].
pub const MSG_POLKA: u8 = 4;
/// Tag of [`Message::Round`].
pub const MSG_ROUND: u8 = 5;
/// Tag of [`Message::Evidence`].
pub const MSG_EVIDENCE: u8 = 6;
/// Tag of [`Message::BlockRequest`].
pub const MSG_BLOCK_REQUEST: u8 = 7;
/// Tag of [`Message::CompactBlock`].
pub const MSG_COMPACT_BLOCK: u8 = 8;
/// Tag of [`Message::BlockTxsRequest`].
pub const MSG_BLOCK_TXS_REQUEST: u8 = 9;
/// Tag of [`Message::BlockTxs`].
pub const MSG_BLOCK_TXS: u8 = 10;

/// Tag of a logged vote (`Input::Vote`).
pub const WAL_VOTE: u8 = 1;
/// Tag of a logged proposal (`Input::Proposal`).
pub const WAL_PROPOSAL: u8 = 2;
/// Tag of a logged polka certificate (`Input::PolkaCertificate`).
pub const WAL_POLKA: u8 = 3;
/// Tag of a logged timeout (`Input::TimeoutElapsed`).
pub const WAL_TIMEOUT: u8 = 4;
/// Tag of a logged proposed value and its origin (`Input::ProposedValue`).
pub const WAL_PROPOSED_VALUE: u8 = 5;
/// Tag of [`WalEntry::Block`].
pub const WAL_BLOCK: u8 = 6;

/// Kind byte of [`Evidence::DoubleVote`].
pub const EVIDENCE_DOUBLE_VOTE: u8 = 1;
/// Kind byte of [`Evidence::DoubleProposal`].
pub const EVIDENCE_DOUBLE_PROPOSAL: u8 = 2;

/// The canonical encoding of a message between validators.
pub fn encode_message(msg: &Message) -> Result<Vec<u8>> {
    let mut w = Writer::new();
    w.u8(WIRE_VERSION);
    match msg {
        Message::Block(block) => return Ok(tagged_block(MSG_BLOCK, block)),
        Message::Proposal(p) => write_signed_proposal(w.u8(MSG_PROPOSAL), p)?,
        Message::Vote(v) => write_signed_vote(w.u8(MSG_VOTE), v)?,
        Message::Polka(c) => write_polka(w.u8(MSG_POLKA), c)?,
        Message::Round(c) => write_round_certificate(w.u8(MSG_ROUND), c)?,
        Message::Evidence(e) => write_evidence(w.u8(MSG_EVIDENCE), e)?,
        Message::BlockRequest { height, hash } => {
            w.u8(MSG_BLOCK_REQUEST).u64(*height).hash(hash);
        }
        Message::CompactBlock(c) => compact::write_compact(w.u8(MSG_COMPACT_BLOCK), c)?,
        Message::BlockTxsRequest { height, hash, indices } => {
            compact::write_request(w.u8(MSG_BLOCK_TXS_REQUEST), *height, hash, indices)?;
        }
        Message::BlockTxs { height, hash, txs } => {
            compact::write_txs(w.u8(MSG_BLOCK_TXS), *height, hash, txs)?;
        }
    }
    Ok(w.finish())
}

/// Decodes a message, refusing anything but the canonical encoding of one
/// within the limits. Checks no signature.
pub fn decode_message(buf: &[u8]) -> Result<Message> {
    decode_message_from(buf, None)
}

/// [`decode_message`] of a received buffer: a block keeps its bytes as
/// a slice of `buf` instead of a copy.
pub fn decode_message_shared(buf: &Bytes) -> Result<Message> {
    decode_message_from(buf, Some(buf))
}

fn decode_message_from(buf: &[u8], shared: Option<&Bytes>) -> Result<Message> {
    const WHAT: &str = "consensus message";
    check_input_len(WHAT, buf, MAX_MESSAGE_BYTES)?;
    let mut r = Reader::new(buf, WHAT);
    check_version(WHAT, &mut r)?;
    let msg = match r.u8()? {
        MSG_PROPOSAL => Message::Proposal(read_signed_proposal(&mut r)?),
        MSG_VOTE => Message::Vote(read_signed_vote(&mut r)?),
        MSG_BLOCK => Message::Block(read_block_rest(&mut r, shared)?),
        MSG_POLKA => Message::Polka(read_polka(&mut r)?),
        MSG_ROUND => Message::Round(read_round_certificate(&mut r)?),
        MSG_EVIDENCE => Message::Evidence(read_evidence(&mut r)?),
        MSG_BLOCK_REQUEST => Message::BlockRequest {
            height: r.u64()?,
            hash: r.hash()?,
        },
        MSG_COMPACT_BLOCK => Message::CompactBlock(compact::read_compact(&mut r)?),
        MSG_BLOCK_TXS_REQUEST => {
            let (height, hash, indices) = compact::read_request(&mut r)?;
            Message::BlockTxsRequest { height, hash, indices }
        }
        MSG_BLOCK_TXS => {
            let (height, hash, txs) = compact::read_txs(&mut r, shared)?;
            Message::BlockTxs { height, hash, txs }
        }
        tag => return Err(malformed(WHAT, format!("unknown tag {tag}"))),
    };
    r.finish()?;
    Ok(msg)
}

/// The canonical encoding of a write-ahead log entry. Of the engine's
/// inputs, only those it asks to persist are encodable (votes, proposals,
/// polka certificates, elapsed timeouts, proposed values); any other is an
/// [`Error::Encode`], as the engine never logs one.
pub fn encode_wal_entry(entry: &WalEntry) -> Result<Vec<u8>> {
    let (mut head, block) = encode_wal_entry_parts(entry)?;
    if let Some(b) = block {
        b.for_each_part(|p| head.extend_from_slice(p));
    }
    Ok(head)
}

/// [`encode_wal_entry`]'s bytes in two parts, to be written one after the
/// other: a block entry is its two-byte head and the block (its encoding
/// as held, see [`EncodedBlock::for_each_part`]); any other entry is whole
/// in the first.
pub fn encode_wal_entry_parts(entry: &WalEntry) -> Result<(Vec<u8>, Option<&EncodedBlock>)> {
    let mut w = Writer::new();
    w.u8(WIRE_VERSION);
    match entry {
        WalEntry::Block(block) => return Ok((vec![WIRE_VERSION, WAL_BLOCK], Some(block))),
        WalEntry::Engine(input) => match input {
            EngineInput::Vote(v) => write_signed_vote(w.u8(WAL_VOTE), v)?,
            EngineInput::Proposal(p) => write_signed_proposal(w.u8(WAL_PROPOSAL), p)?,
            EngineInput::PolkaCertificate(c) => write_polka(w.u8(WAL_POLKA), c)?,
            EngineInput::TimeoutElapsed(t) => write_timeout(w.u8(WAL_TIMEOUT), t),
            EngineInput::ProposedValue(v, origin) => write_proposed_value(w.u8(WAL_PROPOSED_VALUE), v, *origin)?,
            // Named one by one (no wildcard) so that an engine upgrade
            // adding an input fails to compile here until it is decided
            // whether that input is logged.
            EngineInput::StartHeight(..) => return Err(never_logged("StartHeight")),
            EngineInput::RoundCertificate(_) => return Err(never_logged("RoundCertificate")),
            EngineInput::Propose(_) => return Err(never_logged("Propose")),
            EngineInput::SyncValueResponse(_) => return Err(never_logged("SyncValueResponse")),
        },
    }
    Ok((w.finish(), None))
}

/// Decodes a write-ahead log entry, refusing anything but the canonical
/// encoding of one within the limits.
pub fn decode_wal_entry(buf: &[u8]) -> Result<WalEntry> {
    const WHAT: &str = "write-ahead log entry";
    check_input_len(WHAT, buf, MAX_WAL_ENTRY_BYTES)?;
    let mut r = Reader::new(buf, WHAT);
    check_version(WHAT, &mut r)?;
    let entry = match r.u8()? {
        WAL_VOTE => WalEntry::Engine(EngineInput::Vote(read_signed_vote(&mut r)?)),
        WAL_PROPOSAL => WalEntry::Engine(EngineInput::Proposal(read_signed_proposal(&mut r)?)),
        WAL_POLKA => WalEntry::Engine(EngineInput::PolkaCertificate(read_polka(&mut r)?)),
        WAL_TIMEOUT => WalEntry::Engine(EngineInput::TimeoutElapsed(read_timeout(&mut r)?)),
        WAL_PROPOSED_VALUE => {
            let (value, origin) = read_proposed_value(&mut r)?;
            WalEntry::Engine(EngineInput::ProposedValue(value, origin))
        }
        WAL_BLOCK => WalEntry::Block(read_block_rest(&mut r, None)?),
        tag => return Err(malformed(WHAT, format!("unknown tag {tag}"))),
    };
    r.finish()?;
    Ok(entry)
}

/// The canonical encoding of equivocation evidence (as gossiped and as
/// included in blocks).
pub fn encode_evidence(evidence: &Evidence) -> Result<Vec<u8>> {
    let mut w = Writer::new();
    write_evidence(w.u8(WIRE_VERSION), evidence)?;
    let out = w.finish();
    crate::codec::check_len("evidence", out.len(), MAX_EVIDENCE_BYTES)?;
    Ok(out)
}

/// Decodes evidence, refusing anything but its canonical encoding. Checks
/// only the encoding ([`Evidence::verify`] checks the rest).
pub fn decode_evidence(buf: &[u8]) -> Result<Evidence> {
    const WHAT: &str = "evidence";
    check_input_len(WHAT, buf, MAX_EVIDENCE_BYTES)?;
    let mut r = Reader::new(buf, WHAT);
    check_version(WHAT, &mut r)?;
    let evidence = read_evidence(&mut r)?;
    r.finish()?;
    Ok(evidence)
}

fn malformed(what: &'static str, reason: impl Into<String>) -> Error {
    Error::Decode {
        what,
        reason: reason.into(),
    }
}

fn unencodable(what: &'static str, reason: impl Into<String>) -> Error {
    Error::Encode {
        what,
        reason: reason.into(),
    }
}

fn never_logged(input: &str) -> Error {
    unencodable(
        "write-ahead log entry",
        format!("the engine input {input} is never logged"),
    )
}

/// Refuses an input over `max` before reading any of it.
fn check_input_len(what: &'static str, buf: &[u8], max: usize) -> Result<()> {
    if buf.len() > max {
        return Err(malformed(
            what,
            format!("{} bytes exceed the limit of {max}", buf.len()),
        ));
    }
    Ok(())
}

fn check_version(what: &'static str, r: &mut Reader<'_>) -> Result<()> {
    match r.u8()? {
        WIRE_VERSION => Ok(()),
        v => Err(malformed(what, format!("version {v}, this node reads {WIRE_VERSION}"))),
    }
}

/// Version, tag and a block's encoding as held, copied once into a
/// buffer of the right size (a block may be 16 MiB).
fn tagged_block(tag: u8, block: &EncodedBlock) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + block.len());
    out.extend_from_slice(&[WIRE_VERSION, tag]);
    block.for_each_part(|p| out.extend_from_slice(p));
    out
}

/// A block is always the last field: it takes the rest of the input, and
/// its decoder refuses anything but one canonical block. With `shared`
/// (the whole input, as `Bytes`), the block keeps a slice of it.
fn read_block_rest(r: &mut Reader<'_>, shared: Option<&Bytes>) -> Result<EncodedBlock> {
    let rest = r.take(r.remaining())?;
    let bytes = match shared {
        Some(whole) => whole.slice_ref(rest),
        None => Bytes::copy_from_slice(rest),
    };
    EncodedBlock::decode(bytes)
}

fn write_round(w: &mut Writer, round: Round) {
    w.fixed(&round.as_i64().to_be_bytes());
}

fn read_round(r: &mut Reader<'_>) -> Result<Round> {
    let v = i64::from_be_bytes(r.array()?);
    if v == -1 {
        return Ok(Round::Nil);
    }
    u32::try_from(v).map(Round::new).map_err(|_| {
        malformed(
            "round",
            format!("{v} is neither nil (-1) nor a round (0 to {})", u32::MAX),
        )
    })
}

/// Writes a round the protocol never leaves nil (see the module table).
fn write_defined_round(w: &mut Writer, what: &'static str, round: Round) -> Result<()> {
    if round.is_nil() {
        return Err(unencodable(what, "its round is nil"));
    }
    write_round(w, round);
    Ok(())
}

fn read_defined_round(r: &mut Reader<'_>, what: &'static str) -> Result<Round> {
    let round = read_round(r)?;
    if round.is_nil() {
        return Err(malformed(what, "its round is nil"));
    }
    Ok(round)
}

fn write_nil_or_block(w: &mut Writer, value: &NilOrVal<BlockId>) {
    match value {
        NilOrVal::Nil => w.u8(0),
        NilOrVal::Val(id) => w.u8(1).hash(&id.0),
    };
}

fn read_nil_or_block(r: &mut Reader<'_>) -> Result<NilOrVal<BlockId>> {
    match r.u8()? {
        0 => Ok(NilOrVal::Nil),
        1 => Ok(NilOrVal::Val(BlockId(r.hash()?))),
        b => Err(malformed(
            "vote value",
            format!("flag {b} is neither nil (0) nor a block (1)"),
        )),
    }
}

fn vote_type_byte(t: VoteType) -> u8 {
    match t {
        VoteType::Prevote => 1,
        VoteType::Precommit => 2,
    }
}

fn read_vote_type(r: &mut Reader<'_>) -> Result<VoteType> {
    match r.u8()? {
        1 => Ok(VoteType::Prevote),
        2 => Ok(VoteType::Precommit),
        b => Err(malformed(
            "vote type",
            format!("{b} is neither prevote (1) nor precommit (2)"),
        )),
    }
}

fn write_sig(w: &mut Writer, s: &ConsensusSignature) -> Result<()> {
    if s.0.algorithm() != Algorithm::FnDsa1024 {
        return Err(unencodable(
            "consensus signature",
            format!("{} signature; validators sign with FN-DSA-1024", s.0.algorithm()),
        ));
    }
    w.sig(&s.0);
    Ok(())
}

fn read_sig(r: &mut Reader<'_>) -> Result<ConsensusSignature> {
    let s = r.sig()?;
    if s.algorithm() != Algorithm::FnDsa1024 {
        return Err(malformed(
            "consensus signature",
            format!("{} signature; validators sign with FN-DSA-1024", s.algorithm()),
        ));
    }
    Ok(ConsensusSignature(s))
}

/// Bytes of one encoded signature: the u16 length, the compact header
/// (version, algorithm, u16 length) and the FN-DSA-1024 signature.
fn signature_bytes() -> usize {
    2 + 4 + Algorithm::FnDsa1024.signature_len()
}

fn write_count(w: &mut Writer, what: &'static str, n: usize) -> Result<()> {
    if n > MAX_CERTIFICATE_SIGNATURES {
        return Err(unencodable(
            what,
            format!("{n} signatures exceed the limit of {MAX_CERTIFICATE_SIGNATURES}"),
        ));
    }
    // At most MAX_CERTIFICATE_SIGNATURES, so it fits.
    w.u32(n as u32);
    Ok(())
}

/// Reads a signature count, refusing one over the limit or one whose
/// entries (at least `entry_bytes` each) cannot fit in what is left,
/// before anything is reserved for them.
fn read_count(r: &mut Reader<'_>, what: &'static str, entry_bytes: usize) -> Result<usize> {
    let n = r.count32(MAX_CERTIFICATE_SIGNATURES)?;
    if n.saturating_mul(entry_bytes) > r.remaining() {
        return Err(malformed(
            what,
            format!("{n} signatures cannot fit in {} bytes", r.remaining()),
        ));
    }
    Ok(n)
}

fn write_vote(w: &mut Writer, v: &Vote) -> Result<()> {
    w.u8(vote_type_byte(v.vote_type)).u64(v.height.0);
    write_defined_round(w, "vote", v.round)?;
    write_nil_or_block(w, &v.value);
    w.hash(&v.validator.0);
    Ok(())
}

fn read_vote(r: &mut Reader<'_>) -> Result<Vote> {
    Ok(Vote {
        vote_type: read_vote_type(r)?,
        height: Height(r.u64()?),
        round: read_defined_round(r, "vote")?,
        value: read_nil_or_block(r)?,
        validator: Address(r.hash()?),
    })
}

fn write_signed_vote(w: &mut Writer, v: &SignedVote<HmContext>) -> Result<()> {
    write_vote(w, &v.message)?;
    write_sig(w, &v.signature)
}

fn read_signed_vote(r: &mut Reader<'_>) -> Result<SignedVote<HmContext>> {
    let vote = read_vote(r)?;
    Ok(SignedMessage::new(vote, read_sig(r)?))
}

fn write_proposal(w: &mut Writer, p: &Proposal) -> Result<()> {
    w.u64(p.height.0);
    write_defined_round(w, "proposal", p.round)?;
    w.hash(&p.value.0);
    write_round(w, p.pol_round);
    w.hash(&p.proposer.0);
    Ok(())
}

fn read_proposal(r: &mut Reader<'_>) -> Result<Proposal> {
    Ok(Proposal {
        height: Height(r.u64()?),
        round: read_defined_round(r, "proposal")?,
        value: BlockId(r.hash()?),
        pol_round: read_round(r)?,
        proposer: Address(r.hash()?),
    })
}

fn write_signed_proposal(w: &mut Writer, p: &SignedProposal<HmContext>) -> Result<()> {
    write_proposal(w, &p.message)?;
    write_sig(w, &p.signature)
}

fn read_signed_proposal(r: &mut Reader<'_>) -> Result<SignedProposal<HmContext>> {
    let proposal = read_proposal(r)?;
    Ok(SignedMessage::new(proposal, read_sig(r)?))
}

fn write_polka(w: &mut Writer, c: &PolkaCertificate<HmContext>) -> Result<()> {
    const WHAT: &str = "polka certificate";
    w.u64(c.height.0);
    write_defined_round(w, WHAT, c.round)?;
    w.hash(&c.value_id.0);
    write_count(w, WHAT, c.polka_signatures.len())?;
    for s in &c.polka_signatures {
        w.hash(&s.address.0);
        write_sig(w, &s.signature)?;
    }
    Ok(())
}

fn read_polka(r: &mut Reader<'_>) -> Result<PolkaCertificate<HmContext>> {
    const WHAT: &str = "polka certificate";
    let height = Height(r.u64()?);
    let round = read_defined_round(r, WHAT)?;
    let value_id = BlockId(r.hash()?);
    let n = read_count(r, WHAT, 32 + signature_bytes())?;
    let mut polka_signatures = Vec::with_capacity(n);
    for _ in 0..n {
        let address = Address(r.hash()?);
        polka_signatures.push(PolkaSignature::new(address, read_sig(r)?));
    }
    Ok(PolkaCertificate {
        height,
        round,
        value_id,
        polka_signatures,
    })
}

fn write_round_certificate(w: &mut Writer, c: &RoundCertificate<HmContext>) -> Result<()> {
    const WHAT: &str = "round certificate";
    w.u64(c.height.0);
    write_defined_round(w, WHAT, c.round)?;
    w.u8(match c.cert_type {
        RoundCertificateType::Skip => 1,
        RoundCertificateType::Precommit => 2,
    });
    write_count(w, WHAT, c.round_signatures.len())?;
    for s in &c.round_signatures {
        w.u8(vote_type_byte(s.vote_type));
        write_nil_or_block(w, &s.value_id);
        w.hash(&s.address.0);
        write_sig(w, &s.signature)?;
    }
    Ok(())
}

fn read_round_certificate(r: &mut Reader<'_>) -> Result<RoundCertificate<HmContext>> {
    const WHAT: &str = "round certificate";
    let height = Height(r.u64()?);
    let round = read_defined_round(r, WHAT)?;
    let cert_type = match r.u8()? {
        1 => RoundCertificateType::Skip,
        2 => RoundCertificateType::Precommit,
        b => {
            return Err(malformed(
                WHAT,
                format!("type {b} is neither skip (1) nor precommit (2)"),
            ))
        }
    };
    // Vote type, the shortest nil-or-block (nil), address, signature.
    let n = read_count(r, WHAT, 1 + 1 + 32 + signature_bytes())?;
    let mut round_signatures = Vec::with_capacity(n);
    for _ in 0..n {
        round_signatures.push(RoundSignature {
            vote_type: read_vote_type(r)?,
            value_id: read_nil_or_block(r)?,
            address: Address(r.hash()?),
            signature: read_sig(r)?,
        });
    }
    Ok(RoundCertificate {
        height,
        round,
        cert_type,
        round_signatures,
    })
}

fn write_evidence(w: &mut Writer, e: &Evidence) -> Result<()> {
    match e {
        Evidence::DoubleVote(a, b) => {
            write_signed_vote(w.u8(EVIDENCE_DOUBLE_VOTE), a)?;
            write_signed_vote(w, b)
        }
        Evidence::DoubleProposal(a, b) => {
            write_signed_proposal(w.u8(EVIDENCE_DOUBLE_PROPOSAL), a)?;
            write_signed_proposal(w, b)
        }
    }
}

fn read_evidence(r: &mut Reader<'_>) -> Result<Evidence> {
    match r.u8()? {
        EVIDENCE_DOUBLE_VOTE => {
            let a = read_signed_vote(r)?;
            Ok(Evidence::DoubleVote(a, read_signed_vote(r)?))
        }
        EVIDENCE_DOUBLE_PROPOSAL => {
            let a = read_signed_proposal(r)?;
            Ok(Evidence::DoubleProposal(a, read_signed_proposal(r)?))
        }
        kind => Err(malformed("evidence", format!("unknown kind {kind}"))),
    }
}

fn write_timeout(w: &mut Writer, t: &Timeout) {
    write_round(w, t.round);
    match t.kind {
        TimeoutKind::Propose => w.u8(1),
        TimeoutKind::Prevote => w.u8(2),
        TimeoutKind::Precommit => w.u8(3),
        TimeoutKind::Rebroadcast => w.u8(4),
        TimeoutKind::FinalizeHeight(d) => w.u8(5).u64(d.as_secs()).u32(d.subsec_nanos()),
    };
}

fn read_timeout(r: &mut Reader<'_>) -> Result<Timeout> {
    let round = read_round(r)?;
    let kind = match r.u8()? {
        1 => TimeoutKind::Propose,
        2 => TimeoutKind::Prevote,
        3 => TimeoutKind::Precommit,
        4 => TimeoutKind::Rebroadcast,
        5 => {
            let secs = r.u64()?;
            let nanos = r.u32()?;
            // Whole seconds belong in `secs`: one duration, one encoding
            // (and `Duration::new` would carry them over, not refuse).
            if nanos >= 1_000_000_000 {
                return Err(malformed("timeout", format!("{nanos} nanoseconds is a second or more")));
            }
            TimeoutKind::FinalizeHeight(Duration::new(secs, nanos))
        }
        b => return Err(malformed("timeout", format!("unknown kind {b}"))),
    };
    Ok(Timeout { kind, round })
}

fn write_proposed_value(w: &mut Writer, v: &ProposedValue<HmContext>, origin: ValueOrigin) -> Result<()> {
    const WHAT: &str = "proposed value";
    w.u64(v.height.0);
    write_defined_round(w, WHAT, v.round)?;
    write_round(w, v.valid_round);
    w.hash(&v.proposer.0).hash(&v.value.0);
    w.u8(match v.validity {
        Validity::Valid => 1,
        Validity::Invalid => 2,
    });
    w.u8(match origin {
        ValueOrigin::Consensus => 1,
        ValueOrigin::Sync => 2,
    });
    Ok(())
}

fn read_proposed_value(r: &mut Reader<'_>) -> Result<(ProposedValue<HmContext>, ValueOrigin)> {
    const WHAT: &str = "proposed value";
    let height = Height(r.u64()?);
    let round = read_defined_round(r, WHAT)?;
    let valid_round = read_round(r)?;
    let proposer = Address(r.hash()?);
    let value = BlockId(r.hash()?);
    let validity = match r.u8()? {
        1 => Validity::Valid,
        2 => Validity::Invalid,
        b => {
            return Err(malformed(
                WHAT,
                format!("validity {b} is neither valid (1) nor invalid (2)"),
            ))
        }
    };
    let origin = match r.u8()? {
        1 => ValueOrigin::Consensus,
        2 => ValueOrigin::Sync,
        b => {
            return Err(malformed(
                WHAT,
                format!("origin {b} is neither consensus (1) nor sync (2)"),
            ))
        }
    };
    let value = ProposedValue {
        height,
        round,
        valid_round,
        proposer,
        value,
        validity,
    };
    Ok((value, origin))
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
