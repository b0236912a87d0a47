//! Where blocks, receipts and the transaction index live in redb, beside
//! the state tables, so one write transaction commits a block whole.
//!
//! | table | key | value |
//! |---|---|---|
//! | `chain_meta` | name | bytes (`schema`, `genesis`, `tip`) |
//! | `chain_blocks` | height | block encoding (with its commit) |
//! | `chain_hashes` | block hash | height |
//! | `chain_txs` | tx hash | height (8) ‖ index (4) |
//! | `chain_receipts` | height (8) ‖ index (4) | receipt encoding |
//!
//! The receipt row at index `u32::MAX` holds the events of the block's
//! begin and end hooks.

use redb::TableDefinition;

use crate::codec::{Reader, Writer};
use crate::error::{Error, Result};
use crate::runtime::{Event, MAX_EVENTS};

pub(super) const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("chain_meta");
pub(super) const BLOCKS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("chain_blocks");
pub(super) const HASHES: TableDefinition<'_, [u8; 32], u64> = TableDefinition::new("chain_hashes");
pub(super) const TXS: TableDefinition<'_, [u8; 32], [u8; 12]> = TableDefinition::new("chain_txs");
pub(super) const RECEIPTS: TableDefinition<'_, [u8; 12], &[u8]> = TableDefinition::new("chain_receipts");

/// Layout version of these tables; a data dir with another is refused.
pub(super) const SCHEMA: u32 = 1;
pub(super) const META_SCHEMA: &str = "schema";
pub(super) const META_GENESIS: &str = "genesis";
pub(super) const META_TIP: &str = "tip";

/// The index of the block-events row among a block's receipts.
pub(super) const BLOCK_EVENTS: u32 = u32::MAX;

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
