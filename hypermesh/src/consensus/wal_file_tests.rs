//! Tests of the on-disk write-ahead log: round trips through reopening,
//! resets, and recovery from every torn or corrupt tail a crash can leave.

use std::sync::{Arc, OnceLock};

use malachite_core::{Input as EngineInput, ProposedValue};
use malachite_types::{NilOrVal, Round, SignedMessage, Timeout, Validity, ValueOrigin, VoteType};
use stoq::crypto::{Algorithm, KeyPair};

use super::*;
use crate::consensus::context::{Address, BlockId, ConsensusSignature, Height, Vote};
use crate::consensus::signing::vote_bytes;
use crate::consensus::wire::encode_wal_entry;
use crate::types::test_fixtures::{header as block_header, signed_call};
use crate::types::{Block, EncodedBlock};

fn key() -> &'static KeyPair {
    static KEY: OnceLock<KeyPair> = OnceLock::new();
    KEY.get_or_init(|| KeyPair::generate(Algorithm::FnDsa1024))
}

fn vote(vote_type: VoteType, round: u32, value: Option<u8>) -> WalEntry {
    let vote = Vote {
        vote_type,
        height: Height(5),
        round: Round::new(round),
        value: value.map_or(NilOrVal::Nil, |b| NilOrVal::Val(BlockId([b; 32]))),
        validator: Address(key().public_key().node_id().0),
    };
    let sig = key().sign(&vote_bytes("wal-test", &vote)).expect("sign");
    WalEntry::Engine(EngineInput::Vote(SignedMessage::new(vote, ConsensusSignature(sig))))
}

fn block() -> WalEntry {
    WalEntry::Block(
        EncodedBlock::encode(Arc::new(Block {
            header: block_header("wal-test", 5, 42),
            txs: vec![],
            commit: vec![],
        }))
        .expect("encode"),
    )
}

fn proposed_value() -> WalEntry {
    WalEntry::Engine(EngineInput::ProposedValue(
        ProposedValue {
            height: Height(5),
            round: Round::new(0),
            valid_round: Round::Nil,
            proposer: Address([2; 32]),
            value: BlockId([7; 32]),
            validity: Validity::Valid,
        },
        ValueOrigin::Consensus,
    ))
}

/// A few entries of each shape; the last is a signed vote (the largest).
fn entries() -> Vec<WalEntry> {
    vec![
        block(),
        proposed_value(),
        vote(VoteType::Prevote, 0, Some(7)),
        WalEntry::Engine(EngineInput::TimeoutElapsed(Timeout::prevote(Round::new(0)))),
        vote(VoteType::Precommit, 0, None),
    ]
}

fn write_log(path: &Path, height: u64, entries: &[WalEntry]) {
    let (mut wal, _, _) = WalFile::open(path).expect("open");
    wal.reset(height).expect("reset");
    for e in entries {
        wal.append(e).expect("append");
    }
    wal.flush_sync().expect("flush");
}

fn store_error<T: std::fmt::Debug>(r: Result<T>) -> String {
    match r {
        Err(Error::Store(m)) => m,
        other => panic!("expected a store error, got {other:?}"),
    }
}

/// The size of `entry`'s record in the file.
fn record_len(entry: &WalEntry) -> usize {
    RECORD_OVERHEAD + encode_wal_entry(entry).expect("encode").len()
}

#[test]
fn a_missing_log_opens_empty_and_needs_a_height() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("wal");
    let (mut wal, height, got) = WalFile::open(&path).expect("open");
    assert_eq!((height, got.len()), (None, 0));
    assert!(store_error(wal.append(&proposed_value())).contains("reset"));
    // Nothing to make durable yet.
    wal.flush_sync().expect("flush with nothing appended");
    assert!(!path.exists(), "opening creates nothing");
    wal.reset(5).expect("reset");
    assert_eq!(wal.height(), Some(5));
    wal.append(&proposed_value()).expect("append");
    wal.flush_sync().expect("flush");
    let (_, height, got) = WalFile::open(&path).expect("reopen");
    assert_eq!((height, got), (Some(5), vec![proposed_value()]));
}

#[test]
fn appends_survive_reopening_and_later_ones_follow() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("wal");
    let all = entries();
    write_log(&path, 9, &all[..3]);
    let (mut wal, height, got) = WalFile::open(&path).expect("reopen");
    assert_eq!((height, &got[..]), (Some(9), &all[..3]));
    for e in &all[3..] {
        wal.append(e).expect("append");
    }
    wal.flush_sync().expect("flush");
    // Nothing new: no write, no sync.
    wal.flush_sync().expect("flush again");
    drop(wal);
    let (_, height, got) = WalFile::open(&path).expect("reopen");
    assert_eq!((height, got), (Some(9), all));
}

#[test]
fn only_flushed_appends_are_on_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("wal");
    let (mut wal, _, _) = WalFile::open(&path).expect("open");
    wal.reset(3).expect("reset");
    wal.append(&proposed_value()).expect("append");
    wal.flush_sync().expect("flush");
    wal.append(&block()).expect("append");
    // Dropped without a flush, as in a crash.
    drop(wal);
    let (_, _, got) = WalFile::open(&path).expect("reopen");
    assert_eq!(got, vec![proposed_value()]);
}

#[test]
fn reset_keeps_only_the_new_height() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("wal");
    let all = entries();
    let (mut wal, _, _) = WalFile::open(&path).expect("open");
    wal.reset(5).expect("reset");
    for e in &all[..2] {
        wal.append(e).expect("append");
    }
    wal.flush_sync().expect("flush");
    // Buffered entries of the old height go too.
    wal.append(&all[2]).expect("append");
    wal.reset(6).expect("reset");
    wal.append(&all[3]).expect("append");
    wal.flush_sync().expect("flush");
    drop(wal);
    let (_, height, got) = WalFile::open(&path).expect("reopen");
    assert_eq!((height, got), (Some(6), vec![all[3].clone()]));
    assert!(!tmp_path(&path).exists());
    // A reset to a height with nothing logged leaves just the header.
    let (mut wal, _, _) = WalFile::open(&path).expect("reopen");
    wal.reset(7).expect("reset");
    assert_eq!(fs::metadata(&path).expect("stat").len(), HEADER_BYTES as u64);
    let (_, height, got) = WalFile::open(&path).expect("reopen");
    assert_eq!((height, got.len()), (Some(7), 0));
}

#[test]
fn a_torn_last_record_is_cut_off_at_every_offset_keeping_the_earlier_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("wal");
    let all = entries();
    let (last, earlier) = all.split_last().expect("entries");
    write_log(&path, 5, &all);
    let full = fs::read(&path).expect("read");
    let start = full.len() - record_len(last);
    for cut in start..full.len() {
        fs::write(&path, &full[..cut]).expect("write");
        let (_, height, got) = WalFile::open(&path).expect("a torn tail is not an error");
        assert_eq!((height, &got[..]), (Some(5), earlier), "cut at {cut}");
        assert_eq!(fs::metadata(&path).expect("stat").len(), start as u64, "cut at {cut}");
    }
    // After the cut, appends carry on where the intact records end.
    fs::write(&path, &full[..start + 7]).expect("write");
    let (mut wal, _, _) = WalFile::open(&path).expect("open");
    wal.append(last).expect("append");
    wal.flush_sync().expect("flush");
    assert_eq!(fs::read(&path).expect("read"), full);
}

#[test]
fn a_flipped_byte_in_the_last_record_drops_only_that_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("wal");
    let all = entries();
    let (last, earlier) = all.split_last().expect("entries");
    write_log(&path, 5, &all);
    let full = fs::read(&path).expect("read");
    let start = full.len() - record_len(last);
    for at in start..full.len() {
        let mut bad = full.clone();
        bad[at] ^= 0x10;
        fs::write(&path, &bad).expect("write");
        let (_, _, got) = WalFile::open(&path).expect("a corrupt tail is not an error");
        assert_eq!(&got[..], earlier, "flipped byte {at}");
    }
}

#[test]
fn zeros_after_the_last_record_are_cut_off() {
    // What some file systems show after a crash: the file grew, the data
    // never landed.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("wal");
    let all = entries();
    write_log(&path, 5, &all);
    let full = fs::read(&path).expect("read");
    let mut padded = full.clone();
    padded.extend_from_slice(&[0; 4096]);
    fs::write(&path, &padded).expect("write");
    let (_, _, got) = WalFile::open(&path).expect("open");
    assert_eq!(got, all);
    assert_eq!(fs::read(&path).expect("read"), full);
}

#[test]
fn a_record_length_over_the_limit_is_a_torn_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("wal");
    write_log(&path, 5, &[proposed_value()]);
    let mut bytes = fs::read(&path).expect("read");
    let good = bytes.len();
    let too_long = u32::try_from(MAX_RECORD_BYTES + 1).expect("fits");
    bytes.extend_from_slice(&too_long.to_be_bytes());
    bytes.extend_from_slice(&[1; 64]);
    fs::write(&path, &bytes).expect("write");
    let (_, _, got) = WalFile::open(&path).expect("open");
    assert_eq!(got, vec![proposed_value()]);
    assert_eq!(fs::metadata(&path).expect("stat").len(), good as u64);
}

#[test]
fn an_intact_record_that_does_not_decode_is_an_error_and_left_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("wal");
    write_log(&path, 5, &[proposed_value()]);
    let mut bytes = fs::read(&path).expect("read");
    let payload = [0xffu8, 0xff];
    let len = 2u32.to_be_bytes();
    bytes.extend_from_slice(&len);
    bytes.extend_from_slice(&payload);
    bytes.extend_from_slice(&Checksum::Crc32.of(&[&len, &payload])[..4]);
    fs::write(&path, &bytes).expect("write");
    let m = store_error(WalFile::open(&path));
    assert!(m.contains("does not decode") && m.contains("Move the file away"), "{m}");
    assert_eq!(fs::read(&path).expect("read"), bytes, "nothing cut");
}

/// A version 1 log (SHA3 checksums) of `entries` at `height`, as the node
/// wrote them before version 2.
fn v1_log(height: u64, entries: &[WalEntry]) -> Vec<u8> {
    let mut bytes = MAGIC.to_vec();
    bytes.push(1);
    bytes.extend_from_slice(&height.to_be_bytes());
    let sum = Checksum::Sha3.of(&[&bytes]);
    bytes.extend_from_slice(&sum);
    for e in entries {
        let payload = encode_wal_entry(e).expect("encode");
        let len = (payload.len() as u32).to_be_bytes();
        bytes.extend_from_slice(&len);
        bytes.extend_from_slice(&payload);
        bytes.extend_from_slice(&Checksum::Sha3.of(&[&len, &payload]));
    }
    bytes
}

#[test]
fn a_version_1_log_is_read_appended_to_in_its_format_and_reset_to_version_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("wal");
    let first = vote(VoteType::Prevote, 0, Some(1));
    fs::write(&path, v1_log(5, std::slice::from_ref(&first))).expect("write");
    let (mut wal, height, got) = WalFile::open(&path).expect("open");
    assert_eq!((height, got), (Some(5), vec![first.clone()]));
    // Appending keeps the file's format: it reads back whole.
    let second = proposed_value();
    wal.append(&second).expect("append");
    wal.flush_sync().expect("flush");
    drop(wal);
    assert_eq!(
        fs::read(&path).expect("read"),
        v1_log(5, &[first.clone(), second.clone()])
    );
    let (wal, _, got) = WalFile::open(&path).expect("reopen");
    assert_eq!(got, vec![first, second]);
    // A torn version 1 tail is cut like a version 2 one.
    let mut torn = v1_log(5, &[proposed_value()]);
    let good = torn.len();
    torn.extend_from_slice(&[0, 0, 0, 9, 1, 2]);
    fs::write(&path, &torn).expect("write");
    drop(wal);
    let (mut wal, _, got) = WalFile::open(&path).expect("open torn");
    assert_eq!(got, vec![proposed_value()]);
    assert_eq!(fs::metadata(&path).expect("stat").len(), good as u64);
    // A reset writes version 2.
    wal.reset(6).expect("reset");
    let bytes = fs::read(&path).expect("read");
    assert_eq!((bytes.len(), bytes[8]), (HEADER_BYTES, FORMAT_VERSION));
}

#[test]
fn a_bad_header_is_refused_with_what_to_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("wal");
    write_log(&path, 5, &[proposed_value()]);
    let good = fs::read(&path).expect("read");
    let mut cases: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"HMC".to_vec(),
        b"this is not a write-ahead log, just some text".to_vec(),
    ];
    // Wrong version, a changed height, a changed checksum.
    for at in [8, 12, HEADER_BYTES - 1] {
        let mut b = good.clone();
        b[at] ^= 1;
        cases.push(b);
    }
    for bytes in cases {
        fs::write(&path, &bytes).expect("write");
        let m = store_error(WalFile::open(&path));
        assert!(
            m.contains("not a log this node can read") && m.contains("Move the file away"),
            "{m}"
        );
        assert_eq!(fs::read(&path).expect("read"), bytes, "a refused log is left as it was");
    }
}

#[test]
fn an_unfinished_reset_leaves_the_old_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("wal");
    write_log(&path, 5, &[proposed_value()]);
    // A crash after writing the new file, before renaming it.
    fs::write(tmp_path(&path), header(6)).expect("write");
    let (mut wal, height, got) = WalFile::open(&path).expect("open");
    assert_eq!((height, got), (Some(5), vec![proposed_value()]));
    assert!(!tmp_path(&path).exists());
    wal.reset(6).expect("reset");
    assert_eq!(WalFile::open(&path).expect("reopen").1, Some(6));
}

#[test]
fn entries_the_wire_refuses_are_not_appended() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("wal");
    let (mut wal, _, _) = WalFile::open(&path).expect("open");
    wal.reset(5).expect("reset");
    let propose = WalEntry::Engine(EngineInput::Propose(malachite_core::LocallyProposedValue::new(
        Height(5),
        Round::new(0),
        BlockId([7; 32]),
    )));
    assert!(matches!(wal.append(&propose), Err(Error::Encode { .. })));
    wal.append(&proposed_value()).expect("the log goes on");
    wal.flush_sync().expect("flush");
    let (_, _, got) = WalFile::open(&path).expect("reopen");
    assert_eq!(got, vec![proposed_value()]);
}

#[test]
fn a_failed_reset_blocks_appends_and_flushes_until_one_succeeds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("not-yet");
    let path = missing.join("wal");
    let (mut wal, _, _) = WalFile::open(&path).expect("open");
    assert!(store_error(wal.reset(5)).contains("creating the reset file"));
    assert!(store_error(wal.append(&proposed_value())).contains("earlier write failed"));
    assert!(store_error(wal.flush_sync()).contains("earlier write failed"));
    fs::create_dir(&missing).expect("mkdir");
    wal.reset(5).expect("reset");
    wal.append(&proposed_value()).expect("append");
    wal.flush_sync().expect("flush");
    assert_eq!(WalFile::open(&path).expect("reopen").2, vec![proposed_value()]);
}

#[test]
fn a_large_buffer_is_written_out_before_the_flush() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("wal");
    let (mut wal, _, _) = WalFile::open(&path).expect("open");
    wal.reset(5).expect("reset");
    let v = vote(VoteType::Prevote, 0, Some(7));
    let n = WRITE_THROUGH_BYTES / record_len(&v) + 2;
    for _ in 0..n {
        wal.append(&v).expect("append");
    }
    // Written (not yet synced) once the buffer passed the threshold.
    assert!(fs::metadata(&path).expect("stat").len() >= WRITE_THROUGH_BYTES as u64);
    wal.flush_sync().expect("flush");
    let (_, _, got) = WalFile::open(&path).expect("reopen");
    assert_eq!(got.len(), n);
    assert!(got.iter().all(|e| *e == v));
}

#[test]
fn a_block_over_the_buffer_size_is_logged_whole_between_its_neighbours() {
    let tx = signed_call(key(), "wal-test", 1, vec![7; 60 * 1024]);
    let WalEntry::Block(small) = block() else {
        unreachable!()
    };
    let mut big = (**small.block()).clone();
    let tx = Arc::new(tx);
    big.txs = (0..2 * WRITE_THROUGH_BYTES / (60 * 1024))
        .map(|_| Arc::clone(&tx))
        .collect();
    let big = WalEntry::Block(EncodedBlock::encode(Arc::new(big)).expect("encode"));
    assert!(record_len(&big) > WRITE_THROUGH_BYTES);

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("wal");
    let entries = [proposed_value(), big, vote(VoteType::Prevote, 0, Some(7))];
    let (mut wal, _, _) = WalFile::open(&path).expect("open");
    wal.reset(5).expect("reset");
    for e in &entries {
        wal.append(e).expect("append");
    }
    wal.flush_sync().expect("flush");
    assert_eq!(WalFile::open(&path).expect("reopen").2, entries);

    // The block's record has its checksum like any other: a flipped byte
    // inside it drops it and what follows.
    let len = fs::metadata(&path).expect("stat").len();
    let mut bytes = fs::read(&path).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    fs::write(&path, &bytes).expect("write");
    assert_eq!(WalFile::open(&path).expect("reopen").2, entries[..1]);
    assert!(fs::metadata(&path).expect("stat").len() < len);
}
