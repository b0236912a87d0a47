//! Where the chain's index lives in redb, beside the state tables, so one
//! write transaction commits a block's index, its state and the tip
//! together. The blocks and receipts themselves are in the block log
//! ([`super::blocklog`]).
//!
//! | table | key | value |
//! |---|---|---|
//! | `chain_meta` | name | bytes (`schema`, `genesis`, `tip`) |
//! | `chain_blocks` | height | log offset (8) ‖ block length (8) ‖ record length (8) |
//! | `chain_hashes` | block hash | height |
//! | `chain_txs` | tx id | height (8) ‖ index (4) |
//!
//! A log record is the block's canonical encoding followed by its results:
//! the receipts, then the events of the block's begin and end hooks.

use redb::TableDefinition;

use crate::codec::{Reader, Writer};
use crate::error::{Error, Result};
use crate::runtime::{Event, Receipt, MAX_EVENTS};

pub(super) const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("chain_meta");
pub(super) const BLOCKS: TableDefinition<'_, u64, [u8; 24]> = TableDefinition::new("chain_blocks");
pub(super) const HASHES: TableDefinition<'_, [u8; 32], u64> = TableDefinition::new("chain_hashes");
pub(super) const TXS: TableDefinition<'_, [u8; 32], [u8; 12]> = TableDefinition::new("chain_txs");

/// Layout version of these tables; a data dir with another is refused.
pub(super) const SCHEMA: u32 = 3;
pub(super) const META_SCHEMA: &str = "schema";
pub(super) const META_GENESIS: &str = "genesis";
pub(super) const META_TIP: &str = "tip";

/// Where a block's record is in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Location {
    pub(super) offset: u64,
    pub(super) block_len: u64,
    pub(super) record_len: u64,
}

impl Location {
    pub(super) fn encode(&self) -> [u8; 24] {
        let mut out = [0u8; 24];
        out[..8].copy_from_slice(&self.offset.to_be_bytes());
        out[8..16].copy_from_slice(&self.block_len.to_be_bytes());
        out[16..].copy_from_slice(&self.record_len.to_be_bytes());
        out
    }

    pub(super) fn decode(b: &[u8; 24]) -> Location {
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[i..i + 8]);
            u64::from_be_bytes(w)
        };
        Location {
            offset: word(0),
            block_len: word(8),
            record_len: word(16),
        }
    }

    /// One past the record's last byte.
    pub(super) fn end(&self) -> u64 {
        self.offset.saturating_add(self.record_len)
    }
}

/// Most receipts a results record holds (one per transaction).
const MAX_RECEIPTS: usize = crate::types::MAX_BLOCK_TXS;

/// Writes a block's results (its receipts' encodings, then hook events).
pub(super) fn write_results(out: &mut dyn std::io::Write, receipts: &[Vec<u8>], events: &[Event]) -> Result<()> {
    let io = |e: std::io::Error| Error::Store(format!("writing receipts: {e}"));
    out.write_all(&(receipts.len() as u32).to_be_bytes()).map_err(io)?;
    for b in receipts {
        out.write_all(&(b.len() as u32).to_be_bytes()).map_err(io)?;
        out.write_all(b).map_err(io)?;
    }
    out.write_all(&encode_events(events)).map_err(io)
}

/// Reads what [`write_results`] wrote.
pub(super) fn read_results(b: &[u8]) -> Result<(Vec<Receipt>, Vec<Event>)> {
    use crate::codec::ReadExt;
    let mut r = Reader::new(b, "block results");
    let n = r.count32(MAX_RECEIPTS)?;
    let mut receipts = Vec::with_capacity(n.min(r.remaining() / 4));
    for _ in 0..n {
        receipts.push(Receipt::decode(r.bytes32(b.len())?)?);
    }
    let rest = r.take(r.remaining())?;
    Ok((receipts, decode_events(rest)?))
}

/// (height, index) as a table key.
pub(super) fn position(height: u64, index: u32) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..8].copy_from_slice(&height.to_be_bytes());
    k[8..].copy_from_slice(&index.to_be_bytes());
    k
}

/// A table key back to (height, index).
pub(super) fn parse_position(k: &[u8; 12]) -> (u64, u32) {
    let mut h = [0u8; 8];
    h.copy_from_slice(&k[..8]);
    let mut i = [0u8; 4];
    i.copy_from_slice(&k[8..]);
    (u64::from_be_bytes(h), u32::from_be_bytes(i))
}

pub(super) fn encode_events(events: &[Event]) -> Vec<u8> {
    let mut w = Writer::new();
    w.u32(events.len() as u32);
    for e in events {
        e.write(&mut w);
    }
    w.finish()
}

pub(super) fn decode_events(b: &[u8]) -> Result<Vec<Event>> {
    use crate::codec::ReadExt;
    let mut r = Reader::new(b, "block events");
    // Hooks of every module may emit; bound by the per-transaction limit
    // times a generous module count.
    let n = r.count32(MAX_EVENTS * 64)?;
    let mut out = Vec::with_capacity(n.min(r.remaining() / 8));
    for _ in 0..n {
        out.push(Event::read(&mut r)?);
    }
    r.finish()?;
    Ok(out)
}

pub(super) fn db_err(e: impl std::fmt::Display) -> Error {
    Error::Store(e.to_string())
}
